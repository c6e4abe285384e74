//! Anthropic Messages API (`POST /v1/messages`, `POST /v1/messages/count_tokens`): request,
//! message, content blocks, usage, and the error envelope, as Anthropic's API names them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Request body of `POST /v1/messages`; `count_tokens` takes the same minus the sampling
/// fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MessagesRequest {
    pub model: String,
    pub messages: Vec<InputMessage>,
    #[serde(default)]
    pub system: Option<SystemPrompt>,
    /// Required, as Anthropic's API requires it (count_tokens excepted).
    #[serde(default)]
    pub max_tokens: Option<i64>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub top_k: Option<i64>,
    #[serde(default)]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub tools: Option<Vec<AnthropicTool>>,
    #[serde(default)]
    pub tool_choice: Option<AnthropicToolChoice>,
    /// `{type:"enabled", budget_tokens}`, `{type:"adaptive"}` or `{type:"disabled"}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub thinking: Option<Value>,
    /// `{format: {type:"json_schema", schema}, effort}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub output_config: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// Request body of `POST /v1/messages/count_tokens`: a messages request whose fields are
/// checked against the count's own list (no sampling fields, no `max_tokens`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CountTokensRequest(pub MessagesRequest);

/// `system`: a string or text blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SystemPrompt {
    Text(String),
    Blocks(Vec<Value>),
}

/// One turn: `user` or `assistant`, with a string or content blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InputMessage {
    pub role: String,
    pub content: InputContent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum InputContent {
    Text(String),
    /// `text`, `tool_use`, `tool_result`, `thinking`, `redacted_thinking` blocks.
    Blocks(Vec<Value>),
}

/// A client tool. Server tools (a `type` such as `web_search_20250305`) are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AnthropicTool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub input_schema: Option<Value>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub cache_control: Option<Value>,
}

/// `tool_choice`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AnthropicToolChoice {
    /// `auto`, `any`, `tool` or `none`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub disable_parallel_tool_use: Option<bool>,
}

/// A content block of the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[schema(value_type = Object)]
        input: Value,
    },
    Thinking {
        thinking: String,
        /// Lantern signs nothing; present because clients expect the field.
        signature: String,
    },
}

/// Response body of `POST /v1/messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MessageResponse {
    pub id: String,
    /// Always `message`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always `assistant`.
    pub role: String,
    pub model: String,
    pub content: Vec<ContentBlock>,
    /// `end_turn`, `max_tokens`, `stop_sequence` or `tool_use`; null in `message_start`.
    pub stop_reason: Option<String>,
    pub stop_sequence: Option<String>,
    pub usage: AnthropicUsage,
}

/// Token counts as Anthropic reports them: `input_tokens` excludes those read from the cache.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AnthropicUsage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cache_creation_input_tokens: u32,
    pub cache_read_input_tokens: u32,
}

/// Response body of `POST /v1/messages/count_tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CountTokensResponse {
    pub input_tokens: u32,
}

/// Anthropic's error envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AnthropicError {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: String,
    pub error: AnthropicErrorBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AnthropicErrorBody {
    /// `invalid_request_error`, `authentication_error`, `not_found_error`,
    /// `request_too_large`, `rate_limit_error`, `api_error`, `overloaded_error`.
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

impl AnthropicError {
    /// The envelope for an HTTP status, as Anthropic maps them.
    pub fn for_status(status: u16, message: String) -> Self {
        let kind = match status {
            400 | 405 | 422 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            _ => "api_error",
        };
        AnthropicError {
            kind: "error".into(),
            error: AnthropicErrorBody {
                kind: kind.into(),
                message,
            },
        }
    }
}
