//! Constrained decoding through llguidance: JSON objects, JSON Schemas and Lark grammars
//! (tool calls) compiled into a per-choice [`Matcher`] that masks the tokens it rejects.
//! Compilation is CPU work done on the blocking pool; the engine thread only computes masks.

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use serde_json::{json, Value};
use toktrie::TokEnv;

use crate::{EngineError, Grammar};

/// A grammar ready to compile: JSON Schema or Lark source, and the request field it came
/// from (named in errors).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GrammarSource {
    JsonSchema { schema: Value, lenient: bool },
    Lark(String),
}

/// JSON as llguidance writes it: compact separators with one space, no free whitespace (a
/// small model left free to emit whitespace can fill its whole budget with newlines).
pub(crate) fn json_options(lenient: bool) -> Value {
    json!({
        "whitespace_flexible": false,
        "item_separator": ", ",
        "key_separator": ": ",
        "lenient": lenient,
    })
}

/// Adds Lantern's JSON options to a schema unless it carries its own `x-guidance`.
pub(crate) fn with_json_options(mut schema: Value, lenient: bool) -> Value {
    if let Value::Object(map) = &mut schema {
        map.entry("x-guidance")
            .or_insert_with(|| json_options(lenient));
    }
    schema
}

impl Grammar {
    pub(crate) fn source(&self) -> GrammarSource {
        match self {
            Grammar::JsonObject => GrammarSource::JsonSchema {
                schema: json!({"type": "object"}),
                lenient: false,
            },
            Grammar::JsonSchema(schema) => GrammarSource::JsonSchema {
                schema: schema.clone(),
                lenient: false,
            },
        }
    }
}

/// Compiles grammars for one model's vocabulary.
pub(crate) struct GrammarCompiler {
    factory: ParserFactory,
}

impl GrammarCompiler {
    pub fn new(tok_env: &TokEnv) -> Result<Self, String> {
        let mut factory = ParserFactory::new_simple(tok_env).map_err(|e| e.to_string())?;
        factory.quiet();
        Ok(GrammarCompiler { factory })
    }

    /// A fresh matcher for `source`. `param` names the request field in the error.
    pub fn compile(&self, source: &GrammarSource, param: &str) -> Result<Matcher, EngineError> {
        let grammar = match source {
            GrammarSource::JsonSchema { schema, lenient } => {
                if !schema.is_object() && !schema.is_boolean() {
                    return Err(invalid(param, "the schema must be a JSON object".into()));
                }
                TopLevelGrammar::from_json_schema(with_json_options(schema.clone(), *lenient))
            }
            GrammarSource::Lark(text) => TopLevelGrammar::from_lark(text.clone()),
        };
        let parser = self
            .factory
            .create_parser(grammar)
            .map_err(|e| invalid(param, explain(&e.to_string())))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(invalid(param, explain(&e)));
        }
        Ok(matcher)
    }
}

fn invalid(param: &str, reason: String) -> EngineError {
    EngineError::InvalidRequest {
        message: format!("Invalid '{param}': {reason}"),
        param: Some(param.to_string()),
    }
}

/// llguidance's messages, made to say what a user can change.
fn explain(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message).trim();
    if let Some(keys) = first
        .find("Unimplemented keys: ")
        .map(|at| &first[at + "Unimplemented keys: ".len()..])
    {
        return format!(
            "the schema uses keywords that constrained decoding cannot enforce: {keys}. Remove them, or describe the constraint in the prompt instead."
        );
    }
    format!("the schema cannot be enforced: {first}")
}

/// Shared by every request of a model: built once, on the first request that needs it
/// (walking the vocabulary takes a moment).
pub(crate) type SharedCompiler = Arc<std::sync::OnceLock<Result<GrammarCompiler, String>>>;

/// A vocabulary of the given token texts for tests (`eos` is the end token's id).
#[cfg(test)]
pub(crate) fn test_env(words: &[Vec<u8>], eos: u32) -> TokEnv {
    use toktrie::{ApproximateTokEnv, TokRxInfo, TokTrie};
    let info = TokRxInfo::new(words.len() as u32, eos);
    Arc::new(ApproximateTokEnv::new(TokTrie::from(&info, words)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Single bytes as tokens, plus an end-of-sequence token.
    fn byte_env() -> TokEnv {
        let mut words: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        words.push(b"\xFF<eos>".to_vec());
        test_env(&words, 256)
    }

    fn compiler() -> GrammarCompiler {
        GrammarCompiler::new(&byte_env()).unwrap()
    }

    #[test]
    fn json_object_allows_only_an_opening_brace_first() {
        let mut m = compiler()
            .compile(&Grammar::JsonObject.source(), "response_format")
            .unwrap();
        let mask = m.compute_mask().unwrap();
        assert!(mask.is_allowed(b'{' as u32));
        assert!(!mask.is_allowed(b'[' as u32));
        assert!(!mask.is_allowed(b' ' as u32), "no free whitespace");
    }

    #[test]
    fn unsupported_keyword_names_it() {
        let schema = json!({"type": "object", "if": {"required": ["a"]}, "then": {}});
        let err = compiler()
            .compile(&Grammar::JsonSchema(schema).source(), "response_format")
            .err()
            .expect("refused");
        match err {
            EngineError::InvalidRequest { message, param } => {
                assert_eq!(param.as_deref(), Some("response_format"));
                assert!(message.contains("\"if\""), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lark_with_embedded_schema_compiles() {
        let lark = r#"start: "<a>" %json {"type": "integer"} "</a>""#;
        let mut m = compiler()
            .compile(&GrammarSource::Lark(lark.into()), "tools")
            .unwrap();
        for b in b"<a>12</a>" {
            let mask = m.compute_mask().unwrap();
            assert!(mask.is_allowed(*b as u32), "{}", *b as char);
            m.consume_token(*b as u32).unwrap();
        }
        assert!(m.is_accepting().unwrap());
    }
}
