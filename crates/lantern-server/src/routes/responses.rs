//! `POST /v1/responses` and the stored responses (`GET`/`DELETE /v1/responses/{id}`,
//! `GET /v1/responses/{id}/input_items`). A request becomes a chat request (input items →
//! messages, function tools, `text.format` → `response_format`) and runs on the chat path;
//! `responses_render` turns the finished choice or its stream into the Responses shapes.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lantern_api::chat::ChatCompletionRequest;
use lantern_api::responses::{
    CreateResponseRequest, DeletedResponse, Item, ItemList, ResponseObject, TextFormat,
};
use lantern_api::ErrorResponse;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::extract::Checked;
use crate::response_store::PendingStore;
use crate::routes::chat::ChatJob;
use crate::routes::respond;
use crate::routes::responses_input::{chat_messages, invalid, parse_input, text_field};
use crate::routes::responses_render::{ResponseShell, ResponsesFormat};
use crate::state::AppState;

/// Chat parameter names → this API's, for errors found on the chat path.
const RENAMES: &[(&str, &str)] = &[
    ("messages", "input"),
    ("max_completion_tokens", "max_output_tokens"),
    ("response_format", "text.format"),
    ("reasoning_effort", "reasoning.effort"),
];

/// `include` values: honoured, or about built-in tools and images that never occur here.
const INCLUDES: &[&str] = &[
    "message.output_text.logprobs",
    "reasoning.encrypted_content",
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
];

fn not_found(id: &str, param: Option<&str>) -> ApiError {
    ApiError::NotFound {
        message: format!(
            "Response with id '{id}' not found (it was never stored, was deleted, or expired)."
        ),
        param: param.map(String::from),
    }
}

/// Creates a model response: text, function calls, or both.
#[utoipa::path(
    post,
    path = "/v1/responses",
    tag = "responses",
    request_body = CreateResponseRequest,
    responses(
        (status = 200, description = "The response; with `stream: true`, `text/event-stream` of named events (`response.created` … `response.completed`), each with `sequence_number`", body = ResponseObject),
        (status = 400, description = "Invalid request, or a field or tool type this server refuses (named in `param`)", body = ErrorResponse),
        (status = 401, description = "Missing or wrong API key (when keys are configured)", body = ErrorResponse),
        (status = 404, description = "Unknown model, or an unknown `previous_response_id`", body = ErrorResponse),
        (status = 413, description = "Body too large", body = ErrorResponse),
        (status = 429, description = "The model's queue is full (max_queue)", body = ErrorResponse),
        (status = 500, description = "Inference failed", body = ErrorResponse),
        (status = 503, description = "Model loading, or the server shutting down", body = ErrorResponse),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Checked { req, raw: _ }: Checked<CreateResponseRequest>,
) -> Result<Response, ApiError> {
    if !matches!(req.truncation.as_deref(), None | Some("disabled")) {
        return Err(invalid(
            "Only truncation 'disabled' is supported: a conversation longer than the context is a 400, never cut silently.",
            "truncation",
        ));
    }
    for (i, what) in req.include.iter().flatten().enumerate() {
        if !INCLUDES.contains(&what.as_str()) {
            return Err(invalid(
                format!(
                    "Unsupported include value '{what}'. Supported: {}.",
                    INCLUDES.join(", ")
                ),
                format!("include[{i}]"),
            ));
        }
    }
    let previous = match &req.previous_response_id {
        Some(id) => Some(
            state
                .responses
                .get(id)
                .ok_or_else(|| not_found(id, Some("previous_response_id")))?,
        ),
        None => None,
    };
    let mut conversation: Vec<Item> = previous
        .iter()
        .flat_map(|p| p.conversation().cloned())
        .collect();
    conversation.extend(parse_input(req.input.as_ref())?);
    let (chat, raw) = to_chat(&req, &conversation)?;
    let job = ChatJob::new(&state, &headers, "responses", &chat, &raw)
        .map_err(|e| e.rename_param(RENAMES))?;
    let shell = ResponseShell::new(&req, job.logprobs.is_some());
    // Kept by whichever renders the finished response: the stream, or the JSON body.
    let mut pending = req
        .store()
        .then(|| PendingStore::new(state.responses.clone(), conversation));
    let stream = req
        .is_stream()
        .then(|| ResponsesFormat::new(shell.clone(), pending.take()));
    respond(
        &state,
        &job.target,
        job.key,
        vec![job.request],
        job.logprobs.is_some(),
        stream,
        move |done| {
            let object = shell.finished(&done[0]);
            if let Some(p) = pending {
                p.keep(&object);
            }
            Json(object).into_response()
        },
    )
    .await
    .map_err(|e| e.rename_param(RENAMES))
}

/// Retrieves a stored response.
#[utoipa::path(get, path = "/v1/responses/{id}", tag = "responses",
    params(("id" = String, Path, description = "The response id (`resp_…`)")),
    responses(
        (status = 200, description = "The stored response", body = ResponseObject),
        (status = 401, description = "Missing or wrong API key (when keys are configured)", body = ErrorResponse),
        (status = 404, description = "Unknown, deleted or expired id", body = ErrorResponse),
    ))]
pub async fn retrieve(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ResponseObject>, ApiError> {
    let stored = state
        .responses
        .get(&id)
        .ok_or_else(|| not_found(&id, None))?;
    Ok(Json(stored.response.clone()))
}

/// Deletes a stored response.
#[utoipa::path(delete, path = "/v1/responses/{id}", tag = "responses",
    params(("id" = String, Path, description = "The response id (`resp_…`)")),
    responses(
        (status = 200, description = "Deleted", body = DeletedResponse),
        (status = 401, description = "Missing or wrong API key (when keys are configured)", body = ErrorResponse),
        (status = 404, description = "Unknown, deleted or expired id", body = ErrorResponse),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeletedResponse>, ApiError> {
    if !state.responses.remove(&id) {
        return Err(not_found(&id, None));
    }
    Ok(Json(DeletedResponse {
        id,
        object: "response".into(),
        deleted: true,
    }))
}

/// Query of `GET /v1/responses/{id}/input_items`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// 1 to 100 (default 20).
    limit: Option<usize>,
    /// `asc` or `desc` (default).
    order: Option<String>,
    /// Items after this item id, in the chosen order.
    after: Option<String>,
    /// Accepted for compatibility; items are always returned whole.
    #[allow(dead_code)]
    include: Option<Vec<String>>,
}

/// The items a stored response was given: the earlier turns it continued and its own input.
#[utoipa::path(get, path = "/v1/responses/{id}/input_items", tag = "responses",
    params(("id" = String, Path, description = "The response id (`resp_…`)"), ListQuery),
    responses(
        (status = 200, description = "The input items, newest first unless `order=asc`", body = ItemList),
        (status = 400, description = "Invalid `limit` or `order`", body = ErrorResponse),
        (status = 401, description = "Missing or wrong API key (when keys are configured)", body = ErrorResponse),
        (status = 404, description = "Unknown, deleted or expired id", body = ErrorResponse),
    ))]
pub async fn input_items(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<ItemList>, ApiError> {
    let stored = state
        .responses
        .get(&id)
        .ok_or_else(|| not_found(&id, None))?;
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(invalid("'limit' must be between 1 and 100.", "limit"));
    }
    let mut items: Vec<&Item> = stored.input.iter().collect();
    match q.order.as_deref() {
        None | Some("desc") => items.reverse(),
        Some("asc") => {}
        Some(_) => return Err(invalid("'order' must be 'asc' or 'desc'.", "order")),
    }
    if let Some(after) = &q.after {
        let at = items.iter().position(|i| i.id() == after).ok_or_else(|| {
            invalid(
                format!("No input item '{after}' in this response."),
                "after",
            )
        })?;
        items.drain(..=at);
    }
    let has_more = items.len() > limit;
    let data: Vec<Item> = items.into_iter().take(limit).cloned().collect();
    Ok(Json(ItemList {
        object: "list".into(),
        first_id: data.first().map(|i| i.id().to_string()),
        last_id: data.last().map(|i| i.id().to_string()),
        data,
        has_more,
    }))
}

/// The chat `tool_choice`, and the function names `allowed_tools` permits (none: all).
fn tool_choice(choice: Option<&Value>) -> Result<(Value, Option<Vec<String>>), ApiError> {
    let o = match choice {
        None => return Ok((json!("auto"), None)),
        Some(Value::String(mode)) if ["none", "auto", "required"].contains(&mode.as_str()) => {
            return Ok((json!(mode), None))
        }
        Some(Value::Object(o)) => o,
        Some(_) => {
            return Err(invalid(
                "'tool_choice' must be 'none', 'auto', 'required' or an object.",
                "tool_choice",
            ))
        }
    };
    match o.get("type").and_then(Value::as_str) {
        Some("function") => {
            let name = text_field(o, "tool_choice", "name")?;
            Ok((
                json!({"type": "function", "function": {"name": name}}),
                None,
            ))
        }
        Some("allowed_tools") => {
            let listed = o.get("tools").and_then(Value::as_array);
            let mut names = Vec::new();
            for (k, t) in listed.into_iter().flatten().enumerate() {
                if t.get("type").and_then(Value::as_str) != Some("function") {
                    return Err(invalid(
                        "Built-in tools are not available on this server: only function tools run here.",
                        format!("tool_choice.tools[{k}].type"),
                    ));
                }
                let name = t.get("name").and_then(Value::as_str).unwrap_or_default();
                names.push(name.to_string());
            }
            let mode = match o.get("mode").and_then(Value::as_str) {
                Some("required") => json!("required"),
                None | Some("auto") => json!("auto"),
                Some(_) => {
                    return Err(invalid(
                        "'tool_choice.mode' must be 'auto' or 'required'.",
                        "tool_choice.mode",
                    ))
                }
            };
            Ok((mode, Some(names)))
        }
        other => Err(invalid(
            format!("tool_choice {other:?} names a built-in tool, which this server does not run."),
            "tool_choice",
        )),
    }
}

/// Function tools as chat tools, and the chat `tool_choice`. Built-in tools are refused,
/// unless the request can never call them (`tool_choice: "none"`, or `allowed_tools` that
/// leaves them out), as the API documents those choices.
fn chat_tools(req: &CreateResponseRequest) -> Result<(Vec<Value>, Value), ApiError> {
    let (choice, allowed) = tool_choice(req.tool_choice.as_ref())?;
    let never_called = choice == "none";
    let mut tools = Vec::new();
    for (i, tool) in req.tools.iter().flatten().enumerate() {
        let kind = tool.get("type").and_then(Value::as_str).unwrap_or_default();
        let name = tool.get("name").and_then(Value::as_str);
        let listed = allowed
            .as_ref()
            .is_none_or(|a| kind == "function" && name.is_some_and(|n| a.iter().any(|x| x == n)));
        if kind != "function" {
            if never_called || !listed {
                continue;
            }
            return Err(invalid(
                format!("Tools of type '{kind}' are not available on this server: only function tools run here (a request with tool_choice 'none' may carry them)."),
                format!("tools[{i}].type"),
            ));
        }
        if !listed {
            continue;
        }
        let mut function = Map::new();
        for field in ["name", "description", "parameters", "strict"] {
            if let Some(v) = tool.get(field).filter(|v| !v.is_null()) {
                function.insert(field.into(), v.clone());
            }
        }
        if !function.contains_key("name") {
            return Err(invalid(
                "A function tool needs a 'name'.",
                format!("tools[{i}].name"),
            ));
        }
        tools.push(json!({"type": "function", "function": function}));
    }
    Ok((tools, choice))
}

/// The chat request this one runs as, and its JSON (the response cache keys on it, so a
/// continued conversation is keyed by everything the model sees).
fn to_chat(
    req: &CreateResponseRequest,
    conversation: &[Item],
) -> Result<(ChatCompletionRequest, Value), ApiError> {
    let messages = chat_messages(req.instructions.as_deref(), conversation);
    if messages.is_empty() {
        return Err(invalid(
            "'input' is required (or 'previous_response_id' with 'instructions').",
            "input",
        ));
    }
    if let Some(v) = req.text.as_ref().and_then(|t| t.verbosity.as_deref()) {
        if v != "medium" {
            return Err(invalid(
                "'text.verbosity' other than \"medium\" is not supported by local models.",
                "text.verbosity",
            ));
        }
    }
    let (tools, tool_choice) = chat_tools(req)?;
    let response_format = match req.text.as_ref().and_then(|t| t.format.as_ref()) {
        None | Some(TextFormat::Text) => Value::Null,
        Some(TextFormat::JsonObject) => json!({"type": "json_object"}),
        Some(TextFormat::JsonSchema {
            name,
            schema,
            description,
            strict,
        }) => json!({"type": "json_schema", "json_schema": {
            "name": name, "schema": schema, "description": description, "strict": strict}}),
    };
    let logprobs = req.includes("message.output_text.logprobs") || req.top_logprobs.is_some();
    let mut body = json!({
        "model": req.model,
        "messages": messages,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "top_k": req.top_k,
        "min_p": req.min_p,
        "seed": req.seed,
        "max_completion_tokens": req.max_output_tokens,
        "parallel_tool_calls": req.parallel_tool_calls,
        "reasoning_effort": req.reasoning.as_ref().and_then(|r| r.effort.clone()),
    });
    let extra = body.as_object_mut().expect("an object");
    if !tools.is_empty() {
        extra.insert("tools".into(), json!(tools));
        extra.insert("tool_choice".into(), tool_choice);
    } else if tool_choice == "required" {
        return Err(invalid(
            "tool_choice 'required' needs function tools.",
            "tool_choice",
        ));
    }
    if !response_format.is_null() {
        extra.insert("response_format".into(), response_format);
    }
    if logprobs {
        extra.insert("logprobs".into(), json!(true));
        extra.insert("top_logprobs".into(), json!(req.top_logprobs.unwrap_or(0)));
    }
    extra.retain(|_, v| !v.is_null());
    let chat = serde_json::from_value(body.clone())
        .map_err(|e| invalid(format!("Invalid request: {e}"), "input"))?;
    Ok((chat, body))
}

#[cfg(test)]
#[path = "responses_tests.rs"]
mod tests;
