//! Range checks on request fields, with OpenAI-style messages naming the parameter.

use crate::chat::{ChatCompletionRequest, ContentPart, MessageContent};
use crate::common::SamplingFields;
use crate::completions::{CompletionRequest, Prompt};
use crate::tools::{ResponseFormat, ToolChoice};

/// A request field that is out of range or unsupported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidParam {
    pub param: String,
    pub message: String,
}

impl InvalidParam {
    pub fn new(param: &str, message: impl Into<String>) -> Self {
        InvalidParam {
            param: param.to_string(),
            message: message.into(),
        }
    }
}

/// Most stop sequences a request may carry, as in the OpenAI API.
pub const MAX_STOP_SEQUENCES: usize = 4;
/// Most choices per request.
pub const MAX_N: i64 = 16;
/// Most alternatives per position (chat; the legacy endpoint allows 5).
pub const MAX_TOP_LOGPROBS: i64 = 20;
pub const MAX_LEGACY_LOGPROBS: i64 = 5;
/// Most `logit_bias` entries, as in the OpenAI API.
pub const MAX_LOGIT_BIAS: usize = 1024;

fn check_range(param: &str, value: Option<f64>, min: f64, max: f64) -> Result<(), InvalidParam> {
    match value {
        Some(v) if !(min..=max).contains(&v) || v.is_nan() => Err(InvalidParam::new(
            param,
            format!("{v} is not a valid value for '{param}': it must be between {min} and {max}."),
        )),
        _ => Ok(()),
    }
}

impl SamplingFields<'_> {
    /// Checks every field against the ranges the OpenAI API documents.
    pub fn validate(&self) -> Result<(), InvalidParam> {
        check_range("temperature", self.temperature, 0.0, 2.0)?;
        check_range("top_p", self.top_p, 0.0, 1.0)?;
        check_range("min_p", self.min_p, 0.0, 1.0)?;
        check_range("presence_penalty", self.presence_penalty, -2.0, 2.0)?;
        check_range("frequency_penalty", self.frequency_penalty, -2.0, 2.0)?;
        if let Some(k) = self.top_k {
            if k < 0 {
                return Err(InvalidParam::new(
                    "top_k",
                    format!(
                        "{k} is not a valid value for 'top_k': it must be 0 (disabled) or more."
                    ),
                ));
            }
        }
        if let Some(m) = self.max_tokens {
            if m < 1 {
                return Err(InvalidParam::new(
                    "max_tokens",
                    format!("{m} is not a valid value for 'max_tokens': it must be at least 1."),
                ));
            }
        }
        if let Some(n) = self.n {
            if !(1..=MAX_N).contains(&n) {
                return Err(InvalidParam::new(
                    "n",
                    format!("{n} is not a valid value for 'n': it must be between 1 and {MAX_N}."),
                ));
            }
        }
        if let Some(bias) = self.logit_bias {
            if bias.len() > MAX_LOGIT_BIAS {
                return Err(InvalidParam::new(
                    "logit_bias",
                    format!(
                        "'logit_bias' has {} entries; at most {MAX_LOGIT_BIAS} are allowed.",
                        bias.len()
                    ),
                ));
            }
            for (token, value) in bias {
                if token.parse::<u32>().is_err() {
                    return Err(InvalidParam::new(
                        "logit_bias",
                        format!("Invalid key '{token}' in 'logit_bias': keys are token ids (integers as strings)."),
                    ));
                }
                if !(-100.0..=100.0).contains(value) {
                    return Err(InvalidParam::new(
                        "logit_bias",
                        format!("Invalid value {value} for token {token} in 'logit_bias': it must be between -100 and 100."),
                    ));
                }
            }
        }
        if let Some(stop) = self.stop {
            let stops = stop.as_slice();
            if stops.len() > MAX_STOP_SEQUENCES {
                return Err(InvalidParam::new(
                    "stop",
                    format!(
                        "'stop' has {} sequences; at most {MAX_STOP_SEQUENCES} are allowed.",
                        stops.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl ChatCompletionRequest {
    /// Validates everything the schema alone cannot express.
    pub fn validate(&self) -> Result<(), InvalidParam> {
        if self.messages.is_empty() {
            return Err(InvalidParam::new(
                "messages",
                "'messages' must contain at least one message.",
            ));
        }
        for (i, message) in self.messages.iter().enumerate() {
            if let Some(MessageContent::Parts(parts)) = message.content() {
                for part in parts {
                    if !matches!(part, ContentPart::Text { .. } | ContentPart::Refusal { .. }) {
                        return Err(InvalidParam::new(
                            &format!("messages[{i}].content"),
                            format!(
                                "Content parts of type '{}' are not supported by this model; only 'text' parts are.",
                                part.type_name()
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(k) = self.top_logprobs {
            if !(0..=MAX_TOP_LOGPROBS).contains(&k) {
                return Err(InvalidParam::new(
                    "top_logprobs",
                    format!("{k} is not a valid value for 'top_logprobs': it must be between 0 and {MAX_TOP_LOGPROBS}."),
                ));
            }
            if self.logprobs != Some(true) {
                return Err(InvalidParam::new(
                    "top_logprobs",
                    "'top_logprobs' requires 'logprobs' to be true.",
                ));
            }
        }
        self.validate_tools()?;
        if let Some(p) = &self.prediction {
            p.text()?;
        }
        if let Some(effort) = &self.reasoning_effort {
            if !["none", "minimal", "low", "medium", "high", "xhigh", "max"]
                .contains(&effort.as_str())
            {
                return Err(InvalidParam::new(
                    "reasoning_effort",
                    format!("'{effort}' is not a valid reasoning_effort: use none, minimal, low, medium, high, xhigh or max."),
                ));
            }
        }
        if let Some(ResponseFormat::JsonSchema { json_schema }) = &self.response_format {
            if json_schema.schema.is_none() {
                return Err(InvalidParam::new(
                    "response_format.json_schema.schema",
                    "'response_format.json_schema' needs a 'schema' to enforce.",
                ));
            }
        }
        if self.max_completion_tokens.is_some() && self.max_tokens.is_some() {
            return Err(InvalidParam::new(
                "max_tokens",
                "Set either 'max_tokens' or 'max_completion_tokens', not both.",
            ));
        }
        self.sampling().validate().map_err(|mut e| {
            if e.param == "max_tokens" && self.max_completion_tokens.is_some() {
                e.param = "max_completion_tokens".into();
                e.message = e.message.replace("'max_tokens'", "'max_completion_tokens'");
            }
            e
        })
    }
}

impl ChatCompletionRequest {
    fn validate_tools(&self) -> Result<(), InvalidParam> {
        let tools = self.tools.as_deref().unwrap_or_default();
        let mut names = std::collections::HashSet::new();
        for (i, tool) in tools.iter().enumerate() {
            let param = format!("tools[{i}]");
            if tool.kind != "function" {
                return Err(InvalidParam::new(
                    &format!("{param}.type"),
                    format!(
                        "Tools of type '{}' are not supported; only 'function' tools are.",
                        tool.kind
                    ),
                ));
            }
            let Some(function) = &tool.function else {
                return Err(InvalidParam::new(
                    &format!("{param}.function"),
                    "A function tool needs 'function'.",
                ));
            };
            let valid = !function.name.is_empty()
                && function.name.len() <= 64
                && function
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                return Err(InvalidParam::new(
                    &format!("{param}.function.name"),
                    format!(
                        "Invalid function name '{}': use up to 64 letters, digits, '_' or '-'.",
                        function.name
                    ),
                ));
            }
            if !names.insert(function.name.as_str()) {
                return Err(InvalidParam::new(
                    &format!("{param}.function.name"),
                    format!(
                        "The function name '{}' is used twice in 'tools'.",
                        function.name
                    ),
                ));
            }
            if function.parameters.as_ref().is_some_and(|p| !p.is_object()) {
                return Err(InvalidParam::new(
                    &format!("{param}.function.parameters"),
                    "'parameters' must be a JSON Schema object.",
                ));
            }
        }
        match &self.tool_choice {
            None => Ok(()),
            Some(ToolChoice::Mode(m)) if m == "none" || m == "auto" => Ok(()),
            Some(ToolChoice::Mode(m)) if m == "required" => {
                if tools.is_empty() {
                    Err(InvalidParam::new("tool_choice", "tool_choice 'required' needs 'tools'."))
                } else {
                    Ok(())
                }
            }
            Some(ToolChoice::Mode(m)) => Err(InvalidParam::new(
                "tool_choice",
                format!("'{m}' is not a valid tool_choice: use none, auto, required, or a named function."),
            )),
            Some(ToolChoice::Named(named)) => {
                if named.kind != "function" {
                    return Err(InvalidParam::new(
                        "tool_choice.type",
                        format!("tool_choice of type '{}' is not supported; use 'function'.", named.kind),
                    ));
                }
                if !names.contains(named.function.name.as_str()) {
                    return Err(InvalidParam::new(
                        "tool_choice.function.name",
                        format!("tool_choice names the function '{}', which is not in 'tools'.", named.function.name),
                    ));
                }
                Ok(())
            }
        }
    }
}

impl CompletionRequest {
    /// Validates everything the schema alone cannot express.
    pub fn validate(&self) -> Result<(), InvalidParam> {
        let empty = match &self.prompt {
            Prompt::Texts(v) => v.is_empty(),
            Prompt::Tokens(v) => v.is_empty(),
            Prompt::TokenLists(v) => v.is_empty() || v.iter().any(Vec::is_empty),
            Prompt::Text(_) => false,
        };
        if empty {
            return Err(InvalidParam::new("prompt", "'prompt' must not be empty."));
        }
        if let Some(k) = self.logprobs {
            if !(0..=MAX_LEGACY_LOGPROBS).contains(&k) {
                return Err(InvalidParam::new(
                    "logprobs",
                    format!("{k} is not a valid value for 'logprobs': it must be between 0 and {MAX_LEGACY_LOGPROBS}."),
                ));
            }
            if self.echo == Some(true) {
                return Err(InvalidParam::new(
                    "logprobs",
                    "'logprobs' together with 'echo' (log-probabilities of the prompt) is not supported.",
                ));
            }
        }
        if let Some(p) = &self.prediction {
            p.text()?;
        }
        self.sampling().validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat(extra: serde_json::Value) -> ChatCompletionRequest {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn accepts_defaults() {
        assert_eq!(chat(json!({})).validate(), Ok(()));
    }

    #[test]
    fn rejects_out_of_range_fields_naming_the_param() {
        for (body, param) in [
            (json!({"temperature": 2.5}), "temperature"),
            (json!({"temperature": -0.1}), "temperature"),
            (json!({"top_p": 1.5}), "top_p"),
            (json!({"max_tokens": 0}), "max_tokens"),
            (json!({"max_completion_tokens": 0}), "max_completion_tokens"),
            (json!({"n": 17}), "n"),
            (json!({"top_logprobs": 3}), "top_logprobs"),
            (
                json!({"logprobs": true, "top_logprobs": 21}),
                "top_logprobs",
            ),
            (json!({"logit_bias": {"abc": 1}}), "logit_bias"),
            (json!({"logit_bias": {"5": 101}}), "logit_bias"),
            (json!({"tool_choice": "required"}), "tool_choice"),
            (json!({"tools": [{"type": "web_search"}]}), "tools[0].type"),
            (
                json!({"tools": [{"type": "function", "function": {"name": "a b"}}]}),
                "tools[0].function.name",
            ),
            (
                json!({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "g"}}}),
                "tool_choice.function.name",
            ),
            (json!({"reasoning_effort": "extreme"}), "reasoning_effort"),
            (
                json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}),
                "response_format.json_schema.schema",
            ),
            (json!({"n": 0}), "n"),
            (json!({"top_k": -1}), "top_k"),
            (json!({"presence_penalty": 3}), "presence_penalty"),
            (json!({"stop": ["a", "b", "c", "d", "e"]}), "stop"),
            (json!({"messages": []}), "messages"),
        ] {
            let err = chat(body.clone()).validate().unwrap_err();
            assert_eq!(err.param, param, "{body}");
        }
    }

    #[test]
    fn rejects_image_parts() {
        let req = chat(json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "http://x/y.png"}}
        ]}]}));
        let err = req.validate().unwrap_err();
        assert_eq!(err.param, "messages[0].content");
        assert!(err.message.contains("image_url"));
    }

    #[test]
    fn unknown_role_fails_to_parse() {
        let body = json!({"model": "m", "messages": [{"role": "wizard", "content": "hi"}]});
        let err = serde_json::from_value::<ChatCompletionRequest>(body).unwrap_err();
        assert!(err.to_string().contains("wizard"), "{err}");
    }

    #[test]
    fn completion_prompt_forms() {
        for prompt in [
            json!("hi"),
            json!(["hi"]),
            json!([1, 2, 3]),
            json!([[1, 2]]),
        ] {
            let req: CompletionRequest =
                serde_json::from_value(json!({"model": "m", "prompt": prompt})).unwrap();
            assert_eq!(req.validate(), Ok(()), "{prompt}");
        }
        let req: CompletionRequest =
            serde_json::from_value(json!({"model": "m", "prompt": []})).unwrap();
        assert_eq!(req.validate().unwrap_err().param, "prompt");
    }
}
