//! `POST /v1/chat/completions` request, response and stream chunk.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::common::{
    FinishReason, Prediction, SamplingFields, StopSequences, StreamOptions, Usage,
};
use crate::logprobs::ChoiceLogprobs;
use crate::tools::{ResponseFormat, Tool, ToolCall, ToolCallChunk, ToolChoice};

/// Request body of `POST /v1/chat/completions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Extension (llama.cpp, vLLM): keep only the k most likely tokens; 0 disables.
    #[serde(default)]
    pub top_k: Option<i64>,
    /// Extension (llama.cpp, vLLM): drop tokens below `min_p` × the top probability.
    #[serde(default)]
    pub min_p: Option<f64>,
    #[serde(default)]
    pub n: Option<i64>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub stop: Option<StopSequences>,
    /// Deprecated by OpenAI in favour of `max_completion_tokens`; both are accepted.
    #[serde(default)]
    pub max_tokens: Option<i64>,
    #[serde(default)]
    pub max_completion_tokens: Option<i64>,
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    #[serde(default)]
    pub seed: Option<i64>,
    /// Extension (llama.cpp, vLLM): keep generating past the end-of-generation token.
    #[serde(default)]
    pub ignore_eos: Option<bool>,
    #[serde(default)]
    pub logprobs: Option<bool>,
    #[serde(default)]
    pub top_logprobs: Option<i64>,
    /// Token id (as a string) → bias from -100 (ban) to 100 (force).
    #[serde(default)]
    pub logit_bias: Option<std::collections::BTreeMap<String, f64>>,
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
    /// `none` turns off the thinking of templates that can switch it off.
    #[serde(default)]
    pub reasoning_effort: Option<String>,
    /// Extension (vLLM, llama.cpp): extra variables for the chat template, e.g.
    /// `{"enable_thinking": false}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub chat_template_kwargs: Option<serde_json::Map<String, serde_json::Value>>,
    /// Predicted Outputs: drafted and verified, so the answer comes faster, unchanged.
    #[serde(default)]
    pub prediction: Option<Prediction>,
    #[serde(default)]
    pub user: Option<String>,
}

impl ChatCompletionRequest {
    pub fn sampling(&self) -> SamplingFields<'_> {
        SamplingFields {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            seed: self.seed,
            max_tokens: self.max_completion_tokens.or(self.max_tokens),
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

/// One message of the conversation, tagged by `role`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ChatMessage {
    System {
        content: MessageContent,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Developer {
        content: MessageContent,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    User {
        content: MessageContent,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    Assistant {
        #[serde(default)]
        content: Option<MessageContent>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refusal: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Vec<Object>>)]
        tool_calls: Option<Vec<serde_json::Value>>,
    },
    Tool {
        content: MessageContent,
        tool_call_id: String,
    },
}

impl ChatMessage {
    pub fn role(&self) -> &'static str {
        match self {
            ChatMessage::System { .. } => "system",
            ChatMessage::Developer { .. } => "developer",
            ChatMessage::User { .. } => "user",
            ChatMessage::Assistant { .. } => "assistant",
            ChatMessage::Tool { .. } => "tool",
        }
    }

    pub fn content(&self) -> Option<&MessageContent> {
        match self {
            ChatMessage::System { content, .. }
            | ChatMessage::Developer { content, .. }
            | ChatMessage::User { content, .. }
            | ChatMessage::Tool { content, .. } => Some(content),
            ChatMessage::Assistant { content, .. } => content.as_ref(),
        }
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            ChatMessage::System { name, .. }
            | ChatMessage::Developer { name, .. }
            | ChatMessage::User { name, .. }
            | ChatMessage::Assistant { name, .. } => name.as_deref(),
            ChatMessage::Tool { .. } => None,
        }
    }
}

/// Message content: a plain string or an array of typed parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One typed part of an array content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text {
        text: String,
    },
    Refusal {
        refusal: String,
    },
    ImageUrl {
        #[schema(value_type = Object)]
        image_url: serde_json::Value,
    },
    InputAudio {
        #[schema(value_type = Object)]
        input_audio: serde_json::Value,
    },
    File {
        #[schema(value_type = Object)]
        file: serde_json::Value,
    },
}

impl ContentPart {
    pub fn type_name(&self) -> &'static str {
        match self {
            ContentPart::Text { .. } => "text",
            ContentPart::Refusal { .. } => "refusal",
            ContentPart::ImageUrl { .. } => "image_url",
            ContentPart::InputAudio { .. } => "input_audio",
            ContentPart::File { .. } => "file",
        }
    }
}

/// Response body of a non-streaming chat completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletionResponse {
    pub id: String,
    /// Always `chat.completion`.
    pub object: String,
    pub created: u64,
    pub model: String,
    /// Omitted: Lantern has no backend fingerprint (the schema allows absence, not null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    pub choices: Vec<ChatChoice>,
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatChoice {
    pub index: u32,
    pub message: AssistantMessage,
    pub logprobs: Option<ChoiceLogprobs>,
    pub finish_reason: FinishReason,
}

/// The generated message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: String,
    /// Null when the answer is only tool calls.
    pub content: Option<String>,
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Extension (DeepSeek, vLLM): the model's thinking, split out of `content`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Extension (vLLM's newer name): the same as `reasoning_content`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
}

impl AssistantMessage {
    pub fn new(content: String) -> Self {
        AssistantMessage {
            role: "assistant".into(),
            content: Some(content),
            refusal: None,
            tool_calls: None,
            reasoning_content: None,
            reasoning: None,
        }
    }
}

/// One `data:` event of a streaming chat completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatCompletionChunk {
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: String,
    pub created: u64,
    pub model: String,
    /// Omitted: Lantern has no backend fingerprint (the schema allows absence, not null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    pub choices: Vec<ChunkChoice>,
    /// With `stream_options.include_usage`: `null` on every chunk but the last, which has
    /// the usage (as OpenAI sends it); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Usage>)]
    pub usage: Option<Option<Usage>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: ChatDelta,
    pub logprobs: Option<ChoiceLogprobs>,
    pub finish_reason: Option<FinishReason>,
}

/// What a chunk adds to the message. The first chunk carries `role`; later ones content,
/// reasoning or tool-call pieces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallChunk>>,
}
