//! Turns a request's prompt into tokens and its constraints into a grammar matcher: template
//! rendering, tokenization and grammar compilation are CPU work, so this runs on the blocking
//! pool, never on the async runtime's workers or the inference thread.

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llguidance::Matcher;

use crate::chat_template::ChatTemplate;
use crate::grammar::{GrammarCompiler, SharedCompiler};
use crate::sampling::ClosingTokens;
use crate::tools::{prepare_chat, OutputFormat, PRESERVED_TOKENS};
use crate::{EngineError, Grammar, Prompt};

/// Vocabulary facts found once per model.
#[derive(Debug, Clone, Default)]
pub(crate) struct VocabFacts {
    /// Control tokens that tool-call and reasoning parsers need to see, sorted.
    pub preserved: Vec<i32>,
    /// Mistral's `[TOOL_CALLS]`, when it is one token.
    pub tool_calls_token: Option<u32>,
    /// What a JSON answer is closed with near its budget (see `Sampler::with_closing`).
    pub closing: ClosingTokens,
}

/// A piece that only closes: quotes, brackets and spaces.
fn is_closer(piece: &[u8]) -> bool {
    let trimmed = piece.trim_ascii();
    !trimmed.is_empty() && trimmed.iter().all(|b| matches!(b, b'"' | b']' | b'}'))
}

/// One of the shortest JSON values.
fn is_short_value(piece: &[u8]) -> bool {
    matches!(piece.trim_ascii(), b"0" | b"null" | b"\"\"" | b"{}" | b"[]")
}

impl VocabFacts {
    pub fn of(model: &LlamaModel) -> Self {
        let vocab = model.vocab();
        let single = |text: &str| match vocab.tokenize(text.as_bytes(), false, true).as_slice() {
            [t] => Some(*t),
            _ => None,
        };
        let mut preserved: Vec<i32> = PRESERVED_TOKENS
            .iter()
            .filter_map(|text| single(text))
            // Only control tokens are dropped by default; others render anyway.
            .filter(|&t| vocab.token_to_piece(t, false, None).is_empty())
            .map(|t| t.0)
            .collect();
        preserved.sort_unstable();
        let (mut quotes, mut brackets, mut values) = (Vec::new(), Vec::new(), Vec::new());
        let mut depth = Vec::with_capacity(model.n_vocab() as usize);
        let mut flips_string = Vec::with_capacity(model.n_vocab() as usize);
        for t in (0..model.n_vocab()).map(LlamaToken) {
            let piece = vocab.token_to_piece(t, false, None);
            let opens = piece.iter().filter(|b| matches!(b, b'{' | b'[')).count() as i32;
            let closes = piece.iter().filter(|b| matches!(b, b'}' | b']')).count() as i32;
            depth.push((opens - closes).clamp(-127, 127) as i8);
            let quote_count = piece.iter().filter(|&&b| b == b'"').count();
            flips_string.push(quote_count % 2 == 1);
            if vocab.is_eog(t) || (is_closer(&piece) && quote_count == 0) {
                brackets.push(t.0 as u32);
            } else if is_closer(&piece) {
                quotes.push(t.0 as u32);
            } else if is_short_value(&piece) {
                values.push(t.0 as u32);
            }
        }
        VocabFacts {
            preserved,
            tool_calls_token: single("[TOOL_CALLS]").map(|t| t.0 as u32),
            closing: ClosingTokens {
                quotes: quotes.into(),
                brackets: brackets.into(),
                values: values.into(),
                depth: depth.into(),
                flips_string: flips_string.into(),
            },
        }
    }
}

/// A prompt ready for the scheduler.
pub(crate) struct Prepared {
    pub tokens: Vec<i32>,
    pub format: OutputFormat,
    pub grammar: Option<Matcher>,
}

fn tokenize(model: &LlamaModel, text: &str, add_bos: bool) -> Vec<i32> {
    model
        .vocab()
        .tokenize(text.as_bytes(), add_bos, true)
        .into_iter()
        .map(|t| t.0)
        .collect()
}

fn compiler<'a>(
    model: &LlamaModel,
    shared: &'a SharedCompiler,
) -> Result<&'a GrammarCompiler, EngineError> {
    shared
        .get_or_init(|| {
            let started = std::time::Instant::now();
            let compiler = GrammarCompiler::new(&LlamaSampler::llguidance_tok_env(model));
            tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                "structured output: vocabulary indexed for grammars"
            );
            compiler
        })
        .as_ref()
        .map_err(|e| EngineError::Grammar(format!("cannot index the vocabulary: {e}")))
}

pub(crate) fn prepare(
    model: &LlamaModel,
    template: &ChatTemplate,
    shared: &SharedCompiler,
    facts: &VocabFacts,
    prompt: Prompt,
    answer: Option<&Grammar>,
) -> Result<Prepared, EngineError> {
    let answer = answer.map(Grammar::source);
    let (tokens, format, grammar) = match prompt {
        Prompt::Chat(chat) => {
            let p = prepare_chat(template, chat, answer, facts.tool_calls_token)?;
            // The template may already have written BOS; do not add a second one.
            let add_bos =
                template.bos_token().is_empty() || !p.text.starts_with(template.bos_token());
            (tokenize(model, &p.text, add_bos), p.format, p.grammar)
        }
        Prompt::Text(text) => (
            tokenize(model, &text, true),
            OutputFormat::default(),
            answer.map(|a| (a, "response_format")),
        ),
        Prompt::Tokens(ids) => {
            let n_vocab = model.n_vocab() as u32;
            if let Some(bad) = ids.iter().find(|&&t| t >= n_vocab) {
                return Err(EngineError::InvalidRequest {
                    message: format!(
                        "Token id {bad} in 'prompt' is outside the model's vocabulary (0..{n_vocab})."
                    ),
                    param: Some("prompt".into()),
                });
            }
            (
                ids.into_iter().map(|t| t as i32).collect(),
                OutputFormat::default(),
                answer.map(|a| (a, "response_format")),
            )
        }
    };
    if tokens.is_empty() {
        return Err(EngineError::InvalidRequest {
            message: "The prompt is empty after tokenization.".into(),
            param: Some("prompt".into()),
        });
    }
    let grammar = match grammar {
        Some((source, param)) => Some(compiler(model, shared)?.compile(&source, param)?),
        None => None,
    };
    Ok(Prepared {
        tokens,
        format,
        grammar,
    })
}

/// The text of a token, special tokens included (for template variables). A vocabulary
/// without BOS or EOS reports -1, which llama.cpp's `token_to_piece` does not accept (it can
/// throw across the C boundary and abort): such a token has no text.
pub(crate) fn token_text(model: &LlamaModel, token: LlamaToken) -> String {
    if token.0 < 0 || token.0 >= model.n_vocab() {
        return String::new();
    }
    String::from_utf8_lossy(&model.vocab().token_to_piece(token, true, None)).into_owned()
}
