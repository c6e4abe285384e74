//! Range checks on request fields, with OpenAI-style messages naming the parameter.

use crate::chat::{ChatCompletionRequest, ContentPart, MessageContent};
use crate::common::SamplingFields;
use crate::completions::{CompletionRequest, Prompt};

/// A request field that is out of range or unsupported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidParam {
    pub param: String,
    pub message: String,
}

impl InvalidParam {
    fn new(param: &str, message: impl Into<String>) -> Self {
        InvalidParam {
            param: param.to_string(),
            message: message.into(),
        }
    }
}

/// Most stop sequences a request may carry, as in the OpenAI API.
pub const MAX_STOP_SEQUENCES: usize = 4;

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
        match self.n {
            Some(n) if n < 1 => {
                return Err(InvalidParam::new(
                    "n",
                    format!("{n} is not a valid value for 'n': it must be at least 1."),
                ))
            }
            Some(n) if n > 1 => {
                return Err(InvalidParam::new(
                    "n",
                    format!(
                    "n={n} is not supported: this server generates one choice per request (n=1)."
                ),
                ))
            }
            _ => {}
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
        if self.logprobs == Some(true) {
            return Err(InvalidParam::new(
                "logprobs",
                "'logprobs' is not supported by this server yet.",
            ));
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
        if let Some(b) = self.best_of {
            if b != 1 {
                return Err(InvalidParam::new(
                    "best_of",
                    format!("best_of={b} is not supported: only best_of=1 is."),
                ));
            }
        }
        if self.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(InvalidParam::new(
                "suffix",
                "'suffix' (fill-in-the-middle) is not supported by this server.",
            ));
        }
        if self.logprobs.is_some_and(|l| l > 0) {
            return Err(InvalidParam::new(
                "logprobs",
                "'logprobs' is not supported by this server yet.",
            ));
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
            (json!({"n": 2}), "n"),
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
