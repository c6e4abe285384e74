//! `POST /v1/completions` (legacy text completions), including several prompts and several
//! choices per prompt in one request.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lantern_api::completions::{
    CompletionChoice, CompletionRequest, CompletionResponse, PromptInput,
};
use lantern_api::fields::COMPLETION_FIELDS;
use lantern_api::logprobs::CompletionLogprobs;
use lantern_api::{stream_usage, ErrorResponse, FinishReason, Usage};
use lantern_engine::Prompt;

use crate::error::ApiError;
use crate::extract::Checked;
use crate::output::{total_usage, ChoiceDelta, FinishedChoice};
use crate::routes::{generate_request, prelude, respond};
use crate::sse::{envelope_frame, usage_and_done, ChunkFormat, Frame, ResponseMeta};
use crate::state::AppState;
use crate::wire::completion_logprobs;

/// Creates a completion for the prompt (or for each prompt of an array).
#[utoipa::path(
    post,
    path = "/v1/completions",
    tag = "completions",
    request_body = CompletionRequest,
    responses(
        (status = 200, description = "The completion; with `stream: true`, `text/event-stream` of chunks of the same shape ending in `data: [DONE]`", body = CompletionResponse),
        (status = 400, description = "Invalid request, or a field this server refuses (named in `param`)", body = ErrorResponse),
        (status = 404, description = "Unknown model", body = ErrorResponse),
        (status = 401, description = "Missing or wrong API key (when keys are configured)", body = ErrorResponse),
        (status = 413, description = "Body too large", body = ErrorResponse),
        (status = 429, description = "The model's queue is full (max_queue); retry after Retry-After", body = ErrorResponse),
        (status = 500, description = "Inference failed", body = ErrorResponse),
        (status = 503, description = "Model loading, or the server shutting down", body = ErrorResponse),
    )
)]
pub async fn completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Checked { req, raw }: Checked<CompletionRequest>,
) -> Result<Response, ApiError> {
    req.validate()?;
    state.request_limits.check_completion(&req)?;
    let fields = req.sampling();
    let (target, key) = prelude(
        &state,
        &headers,
        "completions",
        &req.model,
        &raw,
        COMPLETION_FIELDS,
        &fields,
    )?;
    let inputs = req.prompt.clone().into_inputs();
    let echo = req.echo.unwrap_or(false);
    if echo && inputs.iter().any(|p| matches!(p, PromptInput::Tokens(_))) {
        return Err(ApiError::invalid(
            "'echo' is supported for text prompts only.",
            Some("echo".into()),
        ));
    }
    let n = fields.n.unwrap_or(1).max(1) as usize;
    // Choice i answers prompt i / n, as in the OpenAI API.
    let echoes: Vec<String> = inputs
        .iter()
        .flat_map(|p| {
            let e = match p {
                PromptInput::Text(t) if echo => t.clone(),
                _ => String::new(),
            };
            std::iter::repeat_n(e, n)
        })
        .collect();
    // `text_offset` counts from the start of the prompt, echoed or not, as the OpenAI API
    // does (a token prompt's text is not known here, so it counts from 0).
    let starts: Vec<u32> = inputs
        .iter()
        .flat_map(|p| {
            let chars = match p {
                PromptInput::Text(t) => t.chars().count() as u32,
                PromptInput::Tokens(_) => 0,
            };
            std::iter::repeat_n(chars, n)
        })
        .collect();
    let logprobs = req.logprobs.map(|k| k as u32);
    let requests = inputs
        .into_iter()
        .map(|input| {
            let prompt = match input {
                PromptInput::Text(t) => Prompt::Text(t),
                PromptInput::Tokens(t) => Prompt::Tokens(t),
            };
            let mut request = generate_request(&fields, prompt, req.ignore_eos, logprobs, None);
            request.prediction = req.prediction.as_ref().and_then(|p| p.text().ok());
            request
        })
        .collect();
    let meta = ResponseMeta::new("cmpl", &req.model);
    let stream = req.is_stream().then(|| CompletionFormat {
        meta: meta.clone(),
        offsets: starts.clone(),
        echoes: echoes.clone(),
        include_usage: req.include_usage(),
    });
    respond(
        &state,
        &target,
        key,
        requests,
        logprobs.is_some(),
        stream,
        |done| {
            let usage = total_usage(done.iter());
            let choices = done
                .into_iter()
                .zip(echoes.into_iter().zip(starts))
                .enumerate()
                .map(|(i, (c, (echo, mut offset)))| CompletionChoice {
                    logprobs: c
                        .logprobs
                        .as_ref()
                        .map(|l| completion_logprobs(l, &mut offset)),
                    text: echo + &c.content,
                    index: i as u32,
                    finish_reason: Some(c.finish_reason),
                })
                .collect();
            Json(CompletionResponse {
                id: meta.id,
                object: "text_completion".into(),
                created: meta.created,
                model: meta.model,
                system_fingerprint: None,
                choices,
                usage: Some(Some(usage)),
            })
            .into_response()
        },
    )
    .await
}

struct CompletionFormat {
    meta: ResponseMeta,
    echoes: Vec<String>,
    /// Character offset of each choice's next token, for `text_offset`.
    offsets: Vec<u32>,
    /// Every chunk carries `usage` (null until the last).
    include_usage: bool,
}

impl CompletionFormat {
    fn chunk(&self, choices: Vec<CompletionChoice>, usage: Option<Usage>) -> String {
        let chunk = CompletionResponse {
            id: self.meta.id.clone(),
            object: "text_completion".into(),
            created: self.meta.created,
            model: self.meta.model.clone(),
            system_fingerprint: None,
            choices,
            usage: stream_usage(usage, self.include_usage),
        };
        serde_json::to_string(&chunk).expect("chunks serialize")
    }

    fn choice(
        &self,
        index: u32,
        text: String,
        logprobs: Option<CompletionLogprobs>,
        finish_reason: Option<FinishReason>,
    ) -> String {
        self.chunk(
            vec![CompletionChoice {
                text,
                index,
                logprobs,
                finish_reason,
            }],
            None,
        )
    }
}

impl ChunkFormat for CompletionFormat {
    fn opening(&mut self, index: u32, _prompt_tokens: u32, out: &mut Vec<Frame>) {
        let echo = &self.echoes[index as usize];
        if !echo.is_empty() {
            out.push(Frame::data(self.choice(index, echo.clone(), None, None)));
        }
    }

    fn delta(&mut self, index: u32, delta: ChoiceDelta, out: &mut Vec<Frame>) {
        let logprobs = (!delta.logprobs.is_empty())
            .then(|| completion_logprobs(&delta.logprobs, &mut self.offsets[index as usize]));
        out.push(Frame::data(self.choice(
            index,
            delta.content,
            logprobs,
            None,
        )));
    }

    fn finish(&mut self, index: u32, choice: &FinishedChoice, out: &mut Vec<Frame>) {
        let chunk = self.choice(index, String::new(), None, Some(choice.finish_reason));
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
