//! `POST /v1/chat/completions`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lantern_api::chat::{
    AssistantMessage, ChatChoice, ChatCompletionChunk, ChatCompletionRequest,
    ChatCompletionResponse, ChatDelta, ChatMessage, ChunkChoice, ContentPart, MessageContent,
};
use lantern_api::{ErrorResponse, FinishReason, Usage};
use lantern_engine::{ChatTurn, GenerateRequest, Prompt};

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::routes::{
    finish_reason, is_deterministic, max_tokens, respond, sampling_params, stop_strings,
};
use crate::sse::{total_usage, ChunkFormat, ResponseMeta};
use crate::state::AppState;

/// Creates a model response for the given chat conversation.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "chat",
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "The completion; with `stream: true`, `text/event-stream` of `ChatCompletionChunk`s ending in `data: [DONE]`", body = ChatCompletionResponse),
        (status = 400, description = "Invalid request", body = ErrorResponse),
        (status = 404, description = "Unknown model", body = ErrorResponse),
        (status = 413, description = "Body too large", body = ErrorResponse),
        (status = 500, description = "Inference failed", body = ErrorResponse),
        (status = 503, description = "Model loading", body = ErrorResponse),
    )
)]
pub async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    req.validate()?;
    let entry = state.entry(&req.model)?;
    let fields = req.sampling();
    let key = state
        .cache
        .key_for("chat", &entry.id, &req, is_deterministic(&fields), &headers);
    let request = GenerateRequest {
        prompt: Prompt::Chat(req.messages.iter().map(to_turn).collect()),
        sampling: sampling_params(&fields),
        max_tokens: max_tokens(&fields),
        stop: stop_strings(&fields),
        ignore_eos: req.ignore_eos.unwrap_or(false),
    };
    let meta = ResponseMeta::new("chatcmpl", &req.model);
    let stream = req
        .is_stream()
        .then(|| (ChatFormat(meta.clone()), req.include_usage()));
    respond(&state, entry, key, vec![request], stream, |done| {
        let usage = total_usage(done.iter().map(|c| &c.usage));
        let choices = done
            .into_iter()
            .enumerate()
            .map(|(i, c)| ChatChoice {
                index: i as u32,
                message: AssistantMessage::new(c.text),
                logprobs: None,
                finish_reason: finish_reason(c.finish_reason),
            })
            .collect();
        Json(ChatCompletionResponse {
            id: meta.id,
            object: "chat.completion".into(),
            created: meta.created,
            model: meta.model,
            system_fingerprint: None,
            choices,
            usage,
        })
        .into_response()
    })
    .await
}

/// Array content is flattened to its text parts, which every chat template understands.
fn content_text(content: &MessageContent) -> String {
    match content {
        MessageContent::Text(s) => s.clone(),
        MessageContent::Parts(parts) => parts
            .iter()
            .filter_map(|p| match p {
                ContentPart::Text { text } => Some(text.as_str()),
                ContentPart::Refusal { refusal } => Some(refusal.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn to_turn(message: &ChatMessage) -> ChatTurn {
    let mut turn = ChatTurn::new(message.role(), "");
    turn.content = message.content().map(content_text);
    turn.name = message.name().map(str::to_string);
    match message {
        ChatMessage::Tool { tool_call_id, .. } => turn.tool_call_id = Some(tool_call_id.clone()),
        ChatMessage::Assistant {
            tool_calls: Some(calls),
            ..
        } => turn.tool_calls = Some(serde_json::Value::Array(calls.clone())),
        _ => {}
    }
    // Templates concatenate content with `+`; an assistant turn with only tool calls gets "".
    if turn.content.is_none() {
        turn.content = Some(String::new());
    }
    turn
}

struct ChatFormat(ResponseMeta);

impl ChatFormat {
    fn chunk(&self, choices: Vec<ChunkChoice>, usage: Option<Usage>) -> String {
        let chunk = ChatCompletionChunk {
            id: self.0.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.0.created,
            model: self.0.model.clone(),
            system_fingerprint: None,
            choices,
            usage,
        };
        serde_json::to_string(&chunk).expect("chunks serialize")
    }

    fn delta(&self, index: u32, delta: ChatDelta, finish_reason: Option<FinishReason>) -> String {
        self.chunk(
            vec![ChunkChoice {
                index,
                delta,
                logprobs: None,
                finish_reason,
            }],
            None,
        )
    }
}

impl ChunkFormat for ChatFormat {
    fn opening(&self, index: u32) -> Option<String> {
        let delta = ChatDelta {
            role: Some("assistant".into()),
            content: Some(String::new()),
        };
        Some(self.delta(index, delta, None))
    }

    fn text(&self, index: u32, text: String) -> String {
        let delta = ChatDelta {
            role: None,
            content: Some(text),
        };
        self.delta(index, delta, None)
    }

    fn finish(&self, index: u32, reason: FinishReason) -> String {
        self.delta(index, ChatDelta::default(), Some(reason))
    }

    fn usage(&self, usage: Usage) -> String {
        self.chunk(Vec::new(), Some(usage))
    }
}
