//! Anthropic's Messages API: `POST /v1/messages` and `POST /v1/messages/count_tokens`. A
//! request becomes a chat request (system, text, `tool_use` and `tool_result` blocks, tools,
//! tool choice, thinking) and runs on the chat path; `messages_render` shows the result as
//! Anthropic does. Errors on these routes use Anthropic's envelope ([`anthropic_errors`]).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lantern_api::chat::ChatCompletionRequest;
use lantern_api::messages::{
    AnthropicError, CountTokensRequest, CountTokensResponse, InputContent, MessageResponse,
    MessagesRequest, SystemPrompt,
};
use lantern_api::ErrorResponse;
use lantern_engine::Prompt;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::extract::Checked;
use crate::routes::chat::{chat_prompt, ChatJob};
use crate::routes::messages_render::{message, AnthropicFormat};
use crate::routes::respond;
use crate::state::AppState;

/// Chat parameter names → Anthropic's, for errors found on the chat path.
const RENAMES: &[(&str, &str)] = &[
    ("max_completion_tokens", "max_tokens"),
    ("stop", "stop_sequences"),
    ("response_format", "output_config.format"),
];

fn invalid(message: impl Into<String>, param: impl Into<String>) -> ApiError {
    let param = param.into();
    ApiError::invalid(format!("{param}: {}", message.into()), Some(param))
}

/// Creates a message (Anthropic's API).
#[utoipa::path(
    post,
    path = "/v1/messages",
    tag = "anthropic",
    request_body = MessagesRequest,
    responses(
        (status = 200, description = "The message; with `stream: true`, `text/event-stream` of `message_start`, `content_block_*`, `message_delta`, `message_stop` and `ping` events", body = MessageResponse),
        (status = 400, description = "Invalid request (Anthropic's envelope: `{type: \"error\", error: {type, message}}`)", body = AnthropicError),
        (status = 401, description = "Missing or wrong API key (`x-api-key`)", body = AnthropicError),
        (status = 404, description = "Unknown model", body = AnthropicError),
        (status = 413, description = "Body too large", body = AnthropicError),
        (status = 429, description = "The model's queue is full (max_queue)", body = AnthropicError),
        (status = 500, description = "Inference failed", body = AnthropicError),
        (status = 529, description = "Overloaded: the model is loading or the server shutting down", body = AnthropicError),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Checked { req, raw: _ }: Checked<MessagesRequest>,
) -> Result<Response, ApiError> {
    let (chat, raw) = to_chat(&req, true)?;
    let job = ChatJob::new(&state, &headers, "messages", &chat, &raw)
        .map_err(|e| e.rename_param(RENAMES))?;
    let stops = job.request.stop.clone();
    let format = AnthropicFormat::new(&req.model, stops.clone());
    let stream = req.stream.unwrap_or(false).then_some(format);
    let model = req.model.clone();
    respond(
        &state,
        &job.target,
        job.key,
        vec![job.request],
        false,
        stream,
        move |done| Json(message(&model, &done[0], &stops)).into_response(),
    )
    .await
    .map_err(|e| e.rename_param(RENAMES))
}

/// Counts the tokens a message request's prompt takes (Anthropic's API).
#[utoipa::path(
    post,
    path = "/v1/messages/count_tokens",
    tag = "anthropic",
    request_body = MessagesRequest,
    responses(
        (status = 200, description = "The prompt's token count: system, messages and tools, as the chat template renders them", body = CountTokensResponse),
        (status = 400, description = "Invalid request", body = AnthropicError),
        (status = 401, description = "Missing or wrong API key (`x-api-key`)", body = AnthropicError),
        (status = 404, description = "Unknown model", body = AnthropicError),
        (status = 413, description = "Body too large", body = AnthropicError),
    )
)]
pub async fn count_tokens(
    State(state): State<AppState>,
    Checked {
        req: CountTokensRequest(req),
        raw: _,
    }: Checked<CountTokensRequest>,
) -> Result<Json<CountTokensResponse>, ApiError> {
    let (chat, _) = to_chat(&req, false)?;
    chat.validate()
        .map_err(|e| ApiError::from(e).rename_param(RENAMES))?;
    // An adapter shares its model's tokenizer and template.
    let (entry, _) = state.target(&req.model)?;
    let _hold = entry.hold();
    let backend = state.backend(entry).await?;
    let input_tokens = backend
        .count_tokens(Prompt::Chat(chat_prompt(&chat)))
        .await?;
    Ok(Json(CountTokensResponse { input_tokens }))
}

/// Rewrites the OpenAI error envelope of any failed `/v1/messages` request (the handler's,
/// the key check's, the router's) into Anthropic's, keeping the headers and the status (but
/// 503, which becomes Anthropic's 529 `overloaded_error`).
pub async fn anthropic_errors(request: Request, next: Next) -> Response {
    let anthropic = request.uri().path().starts_with("/v1/messages");
    let response = next.run(request).await;
    if !anthropic || !(response.status().is_client_error() || response.status().is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<ErrorResponse>(&bytes)
        .map(|e| e.error.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
    let envelope = AnthropicError::for_status(parts.status.as_u16(), message);
    // Anthropic says "overloaded" with 529, which its clients retry.
    if parts.status == StatusCode::SERVICE_UNAVAILABLE {
        parts.status = StatusCode::from_u16(529).expect("529 is a valid status");
    }
    let body = serde_json::to_vec(&envelope).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

fn text_of_blocks(blocks: &[Value], at: &str) -> Result<String, ApiError> {
    let mut texts = Vec::with_capacity(blocks.len());
    for (j, b) in blocks.iter().enumerate() {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => texts.push(b.get("text").and_then(Value::as_str).unwrap_or_default()),
            other => {
                return Err(invalid(
                    format!("content blocks of type {other:?} are not supported here: text only"),
                    format!("{at}[{j}].type"),
                ))
            }
        }
    }
    Ok(texts.join("\n"))
}

/// One Anthropic message as chat messages: a user turn's `tool_result` blocks become `tool`
/// messages ahead of its text; an assistant turn's `tool_use` blocks become its tool calls.
fn push_turn(
    i: usize,
    role: &str,
    content: &InputContent,
    out: &mut Vec<Value>,
) -> Result<(), ApiError> {
    let at = format!("messages[{i}]");
    if role != "user" && role != "assistant" {
        return Err(invalid(
            format!("unexpected role \"{role}\": user or assistant"),
            format!("{at}.role"),
        ));
    }
    let blocks = match content {
        InputContent::Text(text) => {
            out.push(json!({"role": role, "content": text}));
            return Ok(());
        }
        InputContent::Blocks(blocks) => blocks,
    };
    let (mut texts, mut calls) = (Vec::new(), Vec::new());
    for (j, b) in blocks.iter().enumerate() {
        let at = format!("{at}.content[{j}]");
        let field = |name: &str| b.get(name).and_then(Value::as_str).unwrap_or_default();
        match (b.get("type").and_then(Value::as_str), role) {
            (Some("text"), _) => texts.push(field("text").to_string()),
            (Some("tool_use"), "assistant") => {
                let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({"id": field("id"), "type": "function",
                    "function": {"name": field("name"), "arguments": input.to_string()}}));
            }
            (Some("tool_result"), "user") => {
                let mut text = match b.get("content") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => text_of_blocks(parts, &format!("{at}.content"))?,
                    Some(_) => {
                        return Err(invalid("a string or text blocks", format!("{at}.content")))
                    }
                };
                if b.get("is_error") == Some(&Value::Bool(true)) {
                    text = format!("Error: {text}");
                }
                out.push(
                    json!({"role": "tool", "tool_call_id": field("tool_use_id"), "content": text}),
                );
            }
            // Earlier thinking is not shown again (templates drop it).
            (Some("thinking" | "redacted_thinking"), "assistant") => {}
            (other, _) => {
                return Err(invalid(
                    format!(
                    "content blocks of type {other:?} are not supported in {role} messages here"
                ),
                    format!("{at}.type"),
                ))
            }
        }
    }
    if !texts.is_empty() || !calls.is_empty() {
        let mut m = json!({"role": role, "content": texts.join("\n")});
        if !calls.is_empty() {
            m["tool_calls"] = json!(calls);
        }
        out.push(m);
    }
    Ok(())
}

fn tool_choice(req: &MessagesRequest) -> Result<Option<Value>, ApiError> {
    let Some(choice) = &req.tool_choice else {
        return Ok(None);
    };
    Ok(Some(match choice.kind.as_str() {
        "auto" => json!("auto"),
        "any" => json!("required"),
        "none" => json!("none"),
        "tool" => match &choice.name {
            Some(name) => json!({"type": "function", "function": {"name": name}}),
            None => return Err(invalid("Field required", "tool_choice.name")),
        },
        other => {
            return Err(invalid(
                format!("unknown type \"{other}\": auto, any, tool or none"),
                "tool_choice.type",
            ))
        }
    }))
}

/// `thinking` and `output_config` as chat fields.
fn thinking_and_output(
    req: &MessagesRequest,
    body: &mut Map<String, Value>,
) -> Result<(), ApiError> {
    if let Some(thinking) = req.thinking.as_ref().filter(|t| !t.is_null()) {
        match thinking.get("type").and_then(Value::as_str) {
            // `budget_tokens` is advisory here, as max_tokens bounds the whole answer.
            Some("enabled" | "adaptive") => {
                body.insert(
                    "chat_template_kwargs".into(),
                    json!({"enable_thinking": true}),
                );
            }
            Some("disabled") => {
                body.insert("reasoning_effort".into(), json!("none"));
            }
            other => {
                return Err(invalid(
                    format!("unknown type {other:?}: enabled, adaptive or disabled"),
                    "thinking.type",
                ))
            }
        }
    }
    let Some(config) = req.output_config.as_ref().and_then(Value::as_object) else {
        return Ok(());
    };
    for (key, value) in config {
        match key.as_str() {
            "effort" if value.is_null() || value.is_string() => {}
            "format" if value.is_null() => {}
            "format" => match value.get("type").and_then(Value::as_str) {
                Some("json_schema") => {
                    let schema = value.get("schema").cloned().unwrap_or_else(|| json!({}));
                    body.insert(
                        "response_format".into(),
                        json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}),
                    );
                }
                other => {
                    return Err(invalid(
                        format!("unknown format type {other:?}: json_schema"),
                        "output_config.format.type",
                    ))
                }
            },
            _ => {
                return Err(invalid(
                    "Extra inputs are not permitted",
                    format!("output_config.{key}"),
                ))
            }
        }
    }
    Ok(())
}

/// The chat request this one runs as, and its JSON (what the response cache keys on).
fn to_chat(
    req: &MessagesRequest,
    needs_max_tokens: bool,
) -> Result<(ChatCompletionRequest, Value), ApiError> {
    if needs_max_tokens && req.max_tokens.is_none() {
        return Err(invalid("Field required", "max_tokens"));
    }
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    match &req.system {
        None => {}
        Some(SystemPrompt::Text(text)) => messages.push(json!({"role": "system", "content": text})),
        Some(SystemPrompt::Blocks(blocks)) => {
            let text = text_of_blocks(blocks, "system")?;
            messages.push(json!({"role": "system", "content": text}));
        }
    }
    for (i, m) in req.messages.iter().enumerate() {
        push_turn(i, &m.role, &m.content, &mut messages)?;
    }
    let mut tools = Vec::new();
    for (i, t) in req.tools.iter().flatten().enumerate() {
        if let Some(kind) = t.kind.as_deref().filter(|k| *k != "custom") {
            return Err(invalid(
                format!("server tool \"{kind}\" is not available on this server: client tools (name, input_schema) only"),
                format!("tools.{i}.type"),
            ));
        }
        let schema = t
            .input_schema
            .clone()
            .unwrap_or_else(|| json!({"type": "object"}));
        tools.push(json!({"type": "function", "function": {
            "name": t.name, "description": t.description, "parameters": schema}}));
    }
    let mut body = json!({
        "model": req.model,
        "messages": messages,
        "max_completion_tokens": req.max_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "top_k": req.top_k,
        "stop": req.stop_sequences,
    });
    let fields = body.as_object_mut().expect("an object");
    if !tools.is_empty() {
        fields.insert("tools".into(), json!(tools));
    }
    if let Some(choice) = tool_choice(req)? {
        if tools.is_empty() && choice != "none" && choice != "auto" {
            return Err(invalid("tool_choice needs tools", "tool_choice"));
        }
        if !tools.is_empty() {
            fields.insert("tool_choice".into(), choice);
        }
    }
    if req
        .tool_choice
        .as_ref()
        .and_then(|c| c.disable_parallel_tool_use)
        == Some(true)
    {
        fields.insert("parallel_tool_calls".into(), json!(false));
    }
    thinking_and_output(req, fields)?;
    fields.retain(|_, v| !v.is_null());
    let chat = serde_json::from_value(body.clone())
        .map_err(|e| invalid(format!("invalid request: {e}"), "messages"))?;
    Ok((chat, body))
}

#[cfg(test)]
#[path = "messages_tests.rs"]
mod tests;
