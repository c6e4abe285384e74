//! `POST /v1/completions` (legacy text completions) request, response and stream chunk.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::common::{
    FinishReason, Prediction, SamplingFields, StopSequences, StreamOptions, Usage,
};
use crate::logprobs::CompletionLogprobs;

/// Request body of `POST /v1/completions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: Prompt,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Extension (llama.cpp, vLLM).
    #[serde(default)]
    pub top_k: Option<i64>,
    /// Extension (llama.cpp, vLLM).
    #[serde(default)]
    pub min_p: Option<f64>,
    #[serde(default)]
    pub n: Option<i64>,
    #[serde(default)]
    pub best_of: Option<i64>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub stop: Option<StopSequences>,
    /// Defaults to 16, as in the OpenAI API.
    #[serde(default)]
    pub max_tokens: Option<i64>,
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    #[serde(default)]
    pub seed: Option<i64>,
    /// Extension (llama.cpp, vLLM): keep generating past the end-of-generation token.
    #[serde(default)]
    pub ignore_eos: Option<bool>,
    /// Echo the prompt before the completion.
    #[serde(default)]
    pub echo: Option<bool>,
    /// Log-probabilities of the sampled tokens and this many alternatives (0 to 5).
    #[serde(default)]
    pub logprobs: Option<i64>,
    /// Token id (as a string) → bias from -100 (ban) to 100 (force).
    #[serde(default)]
    pub logit_bias: Option<std::collections::BTreeMap<String, f64>>,
    #[serde(default)]
    pub suffix: Option<String>,
    /// Extension: Predicted Outputs, as in chat.
    #[serde(default)]
    pub prediction: Option<Prediction>,
    #[serde(default)]
    pub user: Option<String>,
}

/// Default `max_tokens` of the completions endpoint, as in the OpenAI API.
pub const DEFAULT_COMPLETION_MAX_TOKENS: i64 = 16;

impl CompletionRequest {
    pub fn sampling(&self) -> SamplingFields<'_> {
        SamplingFields {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            seed: self.seed,
            max_tokens: Some(self.max_tokens.unwrap_or(DEFAULT_COMPLETION_MAX_TOKENS)),
            n: self.n,
            stop: self.stop.as_ref(),
            logit_bias: self.logit_bias.as_ref(),
        }
    }

    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

/// `prompt`: a string, an array of strings, an array of token ids, or an array of such arrays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

/// One prompt after normalisation.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptInput {
    Text(String),
    Tokens(Vec<u32>),
}

impl Prompt {
    pub fn into_inputs(self) -> Vec<PromptInput> {
        match self {
            Prompt::Text(s) => vec![PromptInput::Text(s)],
            Prompt::Texts(v) => v.into_iter().map(PromptInput::Text).collect(),
            Prompt::Tokens(t) => vec![PromptInput::Tokens(t)],
            Prompt::TokenLists(v) => v.into_iter().map(PromptInput::Tokens).collect(),
        }
    }
}

/// Response body of a non-streaming completion, and each stream chunk (same shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompletionResponse {
    pub id: String,
    /// Always `text_completion`.
    pub object: String,
    pub created: u64,
    pub model: String,
    /// Omitted: Lantern has no backend fingerprint (the schema allows absence, not null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    pub choices: Vec<CompletionChoice>,
    /// Always present on a non-streaming response. On a stream with
    /// `stream_options.include_usage`, `null` on every chunk but the last, which has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Usage>)]
    pub usage: Option<Option<Usage>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CompletionChoice {
    pub text: String,
    pub index: u32,
    pub logprobs: Option<CompletionLogprobs>,
    pub finish_reason: Option<FinishReason>,
}
