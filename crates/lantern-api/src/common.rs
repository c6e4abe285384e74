//! Types shared by the chat and completions endpoints.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A stop sequence or the model's end-of-generation token was reached.
    Stop,
    /// `max_tokens` or the context limit was reached.
    Length,
    /// The answer is tool calls.
    ToolCalls,
}

/// `stop`: one string or up to four strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum StopSequences {
    One(String),
    Many(Vec<String>),
}

impl StopSequences {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StopSequences::One(s) => vec![s],
            StopSequences::Many(v) => v,
        }
    }

    pub fn as_slice(&self) -> &[String] {
        match self {
            StopSequences::One(s) => std::slice::from_ref(s),
            StopSequences::Many(v) => v,
        }
    }
}

/// `stream_options`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamOptions {
    /// Send a last chunk with `usage` and an empty `choices` before `[DONE]`.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// Token accounting for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
    pub prompt_tokens_details: PromptTokensDetails,
    #[serde(default)]
    pub completion_tokens_details: CompletionTokensDetails,
}

impl Usage {
    pub fn new(prompt_tokens: u32, completion_tokens: u32, cached_tokens: u32) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            prompt_tokens_details: PromptTokensDetails { cached_tokens },
            completion_tokens_details: CompletionTokensDetails::default(),
        }
    }
}

/// Breakdown of the completion tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CompletionTokensDetails {
    /// Tokens whose text was all reasoning.
    pub reasoning_tokens: u32,
    /// With `prediction`: the prediction's tokens that appeared in the completion.
    pub accepted_prediction_tokens: u32,
    /// With `prediction`: the prediction's tokens that did not.
    pub rejected_prediction_tokens: u32,
}

/// `prediction` (Predicted Outputs): text the answer is expected to largely repeat, such as
/// a file being regenerated with a small change. It makes generation faster, never different.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Prediction {
    /// Always `content`.
    #[serde(rename = "type")]
    pub kind: String,
    pub content: PredictionContent,
}

/// The predicted text: a string or text parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum PredictionContent {
    Text(String),
    Parts(Vec<PredictionPart>),
}

/// One part of a predicted output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PredictionPart {
    /// Always `text`.
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
}

impl Prediction {
    /// The predicted text, or which part of the field is wrong.
    pub fn text(&self) -> Result<String, crate::InvalidParam> {
        if self.kind != "content" {
            return Err(crate::InvalidParam::new(
                "prediction.type",
                format!(
                    "'{}' is not a supported prediction type: it must be 'content'.",
                    self.kind
                ),
            ));
        }
        match &self.content {
            PredictionContent::Text(t) => Ok(t.clone()),
            PredictionContent::Parts(parts) => {
                let mut text = String::new();
                for (i, p) in parts.iter().enumerate() {
                    if p.kind != "text" {
                        return Err(crate::InvalidParam::new(
                            &format!("prediction.content[{i}].type"),
                            format!(
                                "'{}' is not a supported part type: it must be 'text'.",
                                p.kind
                            ),
                        ));
                    }
                    text.push_str(&p.text);
                }
                Ok(text)
            }
        }
    }
}

/// Breakdown of the prompt tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PromptTokensDetails {
    /// Prompt tokens whose KV was reused from an earlier request.
    pub cached_tokens: u32,
}

/// Sampling fields common to both endpoints, borrowed from either request for validation
/// and for handing to the engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct SamplingFields<'a> {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<i64>,
    pub min_p: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub seed: Option<i64>,
    pub max_tokens: Option<i64>,
    pub n: Option<i64>,
    pub stop: Option<&'a StopSequences>,
    pub logit_bias: Option<&'a std::collections::BTreeMap<String, f64>>,
}

/// A stream chunk's `usage`: with `include_usage`, `null` on every chunk but the one that
/// carries it; absent without.
pub fn stream_usage(usage: Option<Usage>, include_usage: bool) -> Option<Option<Usage>> {
    match usage {
        Some(u) => Some(Some(u)),
        None => include_usage.then_some(None),
    }
}
