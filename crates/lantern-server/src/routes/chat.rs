//! `POST /v1/chat/completions`: the request → an engine chat prompt (tools, tool choice,
//! response format, thinking switch), and the chat rendering of choices and deltas.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lantern_api::chat::{
    AssistantMessage, ChatChoice, ChatCompletionChunk, ChatCompletionRequest,
    ChatCompletionResponse, ChatDelta, ChatMessage, ChunkChoice, ContentPart, MessageContent,
};
use lantern_api::fields::CHAT_FIELDS;
use lantern_api::logprobs::ChoiceLogprobs;
use lantern_api::tools::{
    FunctionCall, FunctionCallChunk, ResponseFormat, ToolCall, ToolCallChunk, ToolChoice,
};
use lantern_api::{stream_usage, ErrorResponse, FinishReason, Usage};
use lantern_engine::{ChatPrompt, ChatTurn, Grammar, Prompt};

use crate::error::ApiError;
use crate::extract::Checked;
use crate::output::{total_usage, ChoiceDelta, FinishedChoice};
use crate::routes::{generate_request, prelude, respond};
use crate::sse::{envelope_frame, usage_and_done, ChunkFormat, Frame, ResponseMeta};
use crate::state::{AppState, ReasoningFields};
use crate::wire::chat_logprobs;

/// Creates a model response for the given chat conversation.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    tag = "chat",
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "The completion; with `stream: true`, `text/event-stream` of `ChatCompletionChunk`s ending in `data: [DONE]`", body = ChatCompletionResponse),
        (status = 400, description = "Invalid request, or a field this server refuses (named in `param`)", body = ErrorResponse),
        (status = 404, description = "Unknown model", body = ErrorResponse),
        (status = 401, description = "Missing or wrong API key (when keys are configured)", body = ErrorResponse),
        (status = 413, description = "Body too large", body = ErrorResponse),
        (status = 429, description = "The model's queue is full (max_queue); retry after Retry-After", body = ErrorResponse),
        (status = 500, description = "Inference failed", body = ErrorResponse),
        (status = 503, description = "Model loading, or the server shutting down", body = ErrorResponse),
    )
)]
pub async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Checked { req, raw }: Checked<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let job = ChatJob::new(&state, &headers, "chat", &req, &raw)?;
    let meta = ResponseMeta::new("chatcmpl", &req.model);
    let format = ChatFormat {
        meta: meta.clone(),
        reasoning: state.reasoning_fields,
        may_call: job.may_call,
        include_usage: req.include_usage(),
    };
    let stream = req.is_stream().then(|| format.clone());
    respond(
        &state,
        &job.target,
        job.key,
        vec![job.request],
        job.logprobs.is_some(),
        stream,
        |done| {
            let usage = total_usage(done.iter());
            let choices = done
                .iter()
                .enumerate()
                .map(|(i, c)| ChatChoice {
                    index: i as u32,
                    message: format.message(c),
                    logprobs: c.logprobs.as_ref().map(|l| chat_logprobs(l)),
                    finish_reason: c.finish_reason,
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
        },
    )
    .await
}

/// A validated chat request, ready for [`respond`]: the Responses and Messages APIs translate
/// their requests into chat requests and run them through here too.
pub(crate) struct ChatJob<'s> {
    pub target: crate::routes::Target<'s>,
    pub key: Option<crate::cache::CacheKey>,
    pub request: lantern_engine::GenerateRequest,
    /// Alternatives per token when logprobs were asked for.
    pub logprobs: Option<u32>,
    /// Tools are offered and may be called.
    pub may_call: bool,
}

impl<'s> ChatJob<'s> {
    /// Validates `req` (fields, limits), resolves the model, and keys the cache on `raw` (the
    /// body the cache key is computed from) under `endpoint`.
    pub fn new(
        state: &'s AppState,
        headers: &HeaderMap,
        endpoint: &str,
        req: &ChatCompletionRequest,
        raw: &serde_json::Value,
    ) -> Result<Self, ApiError> {
        req.validate()?;
        state.request_limits.check_chat(req)?;
        let fields = req.sampling();
        let (target, key) = prelude(
            state,
            headers,
            endpoint,
            &req.model,
            raw,
            CHAT_FIELDS,
            &fields,
        )?;
        let logprobs = (req.logprobs == Some(true)).then(|| req.top_logprobs.unwrap_or(0) as u32);
        let prompt = chat_prompt(req);
        let may_call =
            !prompt.tools.is_empty() && prompt.tool_choice != lantern_engine::ToolChoice::None;
        let mut request = generate_request(
            &fields,
            Prompt::Chat(prompt),
            req.ignore_eos,
            logprobs,
            grammar(req.response_format.as_ref()),
        );
        // Checked by validate().
        request.prediction = req.prediction.as_ref().and_then(|p| p.text().ok());
        Ok(ChatJob {
            target,
            key,
            request,
            logprobs,
            may_call,
        })
    }
}

fn grammar(format: Option<&ResponseFormat>) -> Option<Grammar> {
    match format? {
        ResponseFormat::Text => None,
        ResponseFormat::JsonObject => Some(Grammar::JsonObject),
        ResponseFormat::JsonSchema { json_schema } => Some(Grammar::JsonSchema(
            json_schema.schema.clone().unwrap_or_default(),
        )),
    }
}

/// The conversation and its tool settings, as the engine takes them.
pub(crate) fn chat_prompt(req: &ChatCompletionRequest) -> ChatPrompt {
    let tool_choice = match &req.tool_choice {
        None => lantern_engine::ToolChoice::Auto,
        Some(ToolChoice::Mode(m)) => match m.as_str() {
            "none" => lantern_engine::ToolChoice::None,
            "required" => lantern_engine::ToolChoice::Required,
            _ => lantern_engine::ToolChoice::Auto,
        },
        Some(ToolChoice::Named(n)) => lantern_engine::ToolChoice::Function(n.function.name.clone()),
    };
    ChatPrompt {
        messages: req.messages.iter().map(to_turn).collect(),
        tools: req
            .tools
            .iter()
            .flatten()
            .filter_map(|t| serde_json::to_value(t).ok())
            .collect(),
        tool_choice,
        parallel_tool_calls: req.parallel_tool_calls.unwrap_or(true),
        enable_thinking: (req.reasoning_effort.as_deref() == Some("none")).then_some(false),
        template_kwargs: req.chat_template_kwargs.clone().unwrap_or_default(),
    }
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

#[derive(Clone)]
struct ChatFormat {
    meta: ResponseMeta,
    reasoning: ReasoningFields,
    /// Tools may be called: the opening chunk leaves `content` out (OpenAI sends null there),
    /// so an answer that only calls tools ends with `content: null` in the SDKs' helpers.
    may_call: bool,
    /// Every chunk carries `usage` (null until the last).
    include_usage: bool,
}

impl ChatFormat {
    fn message(&self, c: &FinishedChoice) -> AssistantMessage {
        let mut m = AssistantMessage::new(String::new());
        m.content = c.content();
        if !c.tool_calls.is_empty() {
            m.tool_calls = Some(
                c.tool_calls
                    .iter()
                    .map(|t| ToolCall {
                        id: t.id.clone(),
                        kind: "function".into(),
                        function: FunctionCall {
                            name: t.name.clone(),
                            arguments: t.arguments.clone(),
                        },
                    })
                    .collect(),
            );
        }
        (m.reasoning_content, m.reasoning) = self.reasoning_fields(&c.reasoning);
        m
    }

    /// `reasoning_content` and/or `reasoning`, as configured; nothing when there is none.
    fn reasoning_fields(&self, text: &str) -> (Option<String>, Option<String>) {
        if text.is_empty() {
            return (None, None);
        }
        let t = Some(text.to_string());
        match self.reasoning {
            ReasoningFields::Both => (t.clone(), t),
            ReasoningFields::ReasoningContent => (t, None),
            ReasoningFields::Reasoning => (None, t),
        }
    }

    fn chunk(&self, choices: Vec<ChunkChoice>, usage: Option<Usage>) -> String {
        let chunk = ChatCompletionChunk {
            id: self.meta.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.meta.created,
            model: self.meta.model.clone(),
            system_fingerprint: None,
            choices,
            usage: stream_usage(usage, self.include_usage),
        };
        serde_json::to_string(&chunk).expect("chunks serialize")
    }

    fn one(
        &self,
        index: u32,
        delta: ChatDelta,
        logprobs: Option<ChoiceLogprobs>,
        finish_reason: Option<FinishReason>,
    ) -> String {
        self.chunk(
            vec![ChunkChoice {
                index,
                delta,
                logprobs,
                finish_reason,
            }],
            None,
        )
    }
}

impl ChunkFormat for ChatFormat {
    fn opening(&mut self, index: u32, _prompt_tokens: u32, out: &mut Vec<Frame>) {
        let delta = ChatDelta {
            role: Some("assistant".into()),
            content: (!self.may_call).then(String::new),
            ..ChatDelta::default()
        };
        out.push(Frame::data(self.one(index, delta, None, None)));
    }

    /// Reasoning, content and each call piece go in chunks of their own (a call's first
    /// chunk carries its id and name, later ones only arguments, as OpenAI streams them);
    /// the delta's logprobs ride on its content chunk, else on its first.
    fn delta(&mut self, index: u32, d: ChoiceDelta, out: &mut Vec<Frame>) {
        let mut deltas = Vec::new();
        let mut content_at = None;
        if !d.reasoning.is_empty() {
            let (reasoning_content, reasoning) = self.reasoning_fields(&d.reasoning);
            deltas.push(ChatDelta {
                reasoning_content,
                reasoning,
                ..ChatDelta::default()
            });
        }
        if !d.content.is_empty() || (d.tool_calls.is_empty() && d.reasoning.is_empty()) {
            content_at = Some(deltas.len());
            deltas.push(ChatDelta {
                content: Some(d.content),
                ..ChatDelta::default()
            });
        }
        for piece in d.tool_calls {
            let call = |id, kind, name, arguments| ChatDelta {
                tool_calls: Some(vec![ToolCallChunk {
                    index: piece.index,
                    id,
                    kind,
                    function: FunctionCallChunk { name, arguments },
                }]),
                ..ChatDelta::default()
            };
            if piece.name.is_some() {
                deltas.push(call(
                    piece.id.clone(),
                    Some("function".into()),
                    piece.name.clone(),
                    Some(String::new()),
                ));
            }
            if !piece.arguments.is_empty() {
                deltas.push(call(None, None, None, Some(piece.arguments.clone())));
            }
        }
        let mut logprobs = (!d.logprobs.is_empty()).then(|| chat_logprobs(&d.logprobs));
        let carrier = content_at.unwrap_or(0);
        for (i, delta) in deltas.into_iter().enumerate() {
            let lp = if i == carrier { logprobs.take() } else { None };
            out.push(Frame::data(self.one(index, delta, lp, None)));
        }
    }

    fn finish(&mut self, index: u32, choice: &FinishedChoice, out: &mut Vec<Frame>) {
        let chunk = self.one(
            index,
            ChatDelta::default(),
            None,
            Some(choice.finish_reason),
        );
        out.push(Frame::data(chunk));
    }

    fn close(&mut self, choices: &[&FinishedChoice], out: &mut Vec<Frame>) {
        let chunk = |usage| self.chunk(Vec::new(), Some(usage));
        usage_and_done(self.include_usage, choices, chunk, out);
    }

    fn error(&mut self, error: &ApiError) -> Frame {
        envelope_frame(error)
    }
}
