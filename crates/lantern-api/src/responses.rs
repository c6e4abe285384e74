//! OpenAI Responses API (`POST /v1/responses`): the request, the `response` object, its
//! input and output items, and the named stream events.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::logprobs::TokenLogprob;

/// Request body of `POST /v1/responses`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreateResponseRequest {
    pub model: String,
    /// A string (one user message) or a list of input items.
    #[serde(default)]
    pub input: Option<ResponseInput>,
    /// A system message put first; not carried over by `previous_response_id`.
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub max_output_tokens: Option<i64>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Extension (vLLM): keep only the k most likely tokens.
    #[serde(default)]
    pub top_k: Option<i64>,
    /// Extension (vLLM): drop tokens below `min_p` × the top probability.
    #[serde(default)]
    pub min_p: Option<f64>,
    /// Extension: a seed makes sampling reproducible.
    #[serde(default)]
    pub seed: Option<i64>,
    /// Function tools (`{type:"function", name, description, parameters, strict}`).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub tools: Option<Vec<Value>>,
    /// `none`, `auto`, `required`, `{type:"function", name}` or
    /// `{type:"allowed_tools", mode, tools}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub text: Option<TextConfig>,
    #[serde(default)]
    pub reasoning: Option<ReasoningConfig>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub stream_options: Option<Value>,
    /// Keep the response for `previous_response_id` and retrieval (default true).
    #[serde(default)]
    pub store: Option<bool>,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// `disabled` (the default) only.
    #[serde(default)]
    pub truncation: Option<String>,
    /// Extra output: `message.output_text.logprobs`, `reasoning.encrypted_content`.
    #[serde(default)]
    pub include: Option<Vec<String>>,
    /// With `include: ["message.output_text.logprobs"]`: alternatives per token (0..=20).
    #[serde(default)]
    pub top_logprobs: Option<i64>,
    #[serde(default)]
    pub user: Option<String>,
}

impl CreateResponseRequest {
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    pub fn store(&self) -> bool {
        self.store.unwrap_or(true)
    }

    pub fn includes(&self, what: &str) -> bool {
        self.include.iter().flatten().any(|i| i == what)
    }
}

/// `input`: one user message as text, or items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ResponseInput {
    Text(String),
    /// Messages (`type` may be left out), `function_call`, `function_call_output`,
    /// `reasoning` items.
    Items(Vec<Value>),
}

/// `text`: the answer's format.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TextConfig {
    #[serde(default)]
    pub format: Option<TextFormat>,
    /// `medium` only (local models have no verbosity control).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbosity: Option<String>,
}

/// `text.format`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TextFormat {
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        #[schema(value_type = Object)]
        schema: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
    },
}

/// `reasoning`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReasoningConfig {
    /// `none` turns a template's thinking off where it can.
    #[serde(default)]
    pub effort: Option<String>,
    /// Summaries are not produced: the reasoning item carries the full text instead.
    #[serde(default)]
    pub summary: Option<String>,
    /// Deprecated name of `summary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_summary: Option<String>,
}

/// One item of a conversation: what `input` lists and `output` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    Message {
        id: String,
        role: String,
        content: Vec<ContentItem>,
        status: String,
    },
    FunctionCall {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        status: String,
    },
    FunctionCallOutput {
        id: String,
        call_id: String,
        output: String,
        status: String,
    },
    Reasoning {
        id: String,
        #[schema(value_type = Vec<Object>)]
        summary: Vec<Value>,
        content: Vec<ReasoningText>,
        /// With `include: ["reasoning.encrypted_content"]`: the reasoning, opaque (base64),
        /// to hand back in a later input.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<String>,
        status: String,
    },
}

impl Item {
    pub fn id(&self) -> &str {
        match self {
            Item::Message { id, .. }
            | Item::FunctionCall { id, .. }
            | Item::FunctionCallOutput { id, .. }
            | Item::Reasoning { id, .. } => id,
        }
    }
}

/// A part of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentItem {
    InputText {
        text: String,
    },
    OutputText {
        text: String,
        #[schema(value_type = Vec<Object>)]
        annotations: Vec<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        logprobs: Option<Vec<TokenLogprob>>,
    },
    Refusal {
        refusal: String,
    },
}

impl ContentItem {
    pub fn output_text(text: String, logprobs: Option<Vec<TokenLogprob>>) -> Self {
        ContentItem::OutputText {
            text,
            annotations: Vec::new(),
            logprobs,
        }
    }

    pub fn text(&self) -> &str {
        match self {
            ContentItem::InputText { text } | ContentItem::OutputText { text, .. } => text,
            ContentItem::Refusal { refusal } => refusal,
        }
    }
}

/// `reasoning` item content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReasoningText {
    /// Always `reasoning_text`.
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
}

impl ReasoningText {
    pub fn new(text: String) -> Self {
        ReasoningText {
            kind: "reasoning_text".into(),
            text,
        }
    }
}

/// The `response` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResponseObject {
    pub id: String,
    /// Always `response`.
    pub object: String,
    pub created_at: u64,
    /// `in_progress`, `completed`, `incomplete` or `failed`.
    pub status: String,
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
    /// `{reason: "max_output_tokens"}` when the answer was cut.
    #[schema(value_type = Option<Object>)]
    pub incomplete_details: Option<Value>,
    pub instructions: Option<String>,
    pub max_output_tokens: Option<i64>,
    pub model: String,
    pub output: Vec<Item>,
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<String>,
    #[schema(value_type = Object)]
    pub reasoning: Value,
    pub store: bool,
    pub temperature: f64,
    #[schema(value_type = Object)]
    pub text: Value,
    #[schema(value_type = Object)]
    pub tool_choice: Value,
    #[schema(value_type = Vec<Object>)]
    pub tools: Vec<Value>,
    pub top_p: f64,
    pub truncation: String,
    pub usage: Option<ResponseUsage>,
    pub user: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

/// `usage` of a response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResponseUsage {
    pub input_tokens: u32,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: u32,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InputTokensDetails {
    /// Input tokens whose KV was reused (a continued conversation's earlier turns).
    pub cached_tokens: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutputTokensDetails {
    pub reasoning_tokens: u32,
}

/// `GET /v1/responses/{id}/input_items` and other lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ItemList {
    /// Always `list`.
    pub object: String,
    pub data: Vec<Item>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub has_more: bool,
}

/// `DELETE /v1/responses/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeletedResponse {
    pub id: String,
    /// Always `response`.
    pub object: String,
    pub deleted: bool,
}
