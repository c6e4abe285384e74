//! `POST /v1/completions` (legacy text completions), including several prompts in one request.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lantern_api::completions::{
    CompletionChoice, CompletionRequest, CompletionResponse, PromptInput,
};
use lantern_api::{ErrorResponse, FinishReason, Usage};
use lantern_engine::{GenerateRequest, Prompt};

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::routes::{
    finish_reason, is_deterministic, max_tokens, respond, sampling_params, stop_strings,
};
use crate::sse::{total_usage, ChunkFormat, ResponseMeta};
use crate::state::AppState;

/// Creates a completion for the prompt (or for each prompt of an array).
#[utoipa::path(
    post,
    path = "/v1/completions",
    tag = "completions",
    request_body = CompletionRequest,
    responses(
        (status = 200, description = "The completion; with `stream: true`, `text/event-stream` of chunks of the same shape ending in `data: [DONE]`", body = CompletionResponse),
        (status = 400, description = "Invalid request", body = ErrorResponse),
        (status = 404, description = "Unknown model", body = ErrorResponse),
        (status = 413, description = "Body too large", body = ErrorResponse),
        (status = 500, description = "Inference failed", body = ErrorResponse),
        (status = 503, description = "Model loading", body = ErrorResponse),
    )
)]
pub async fn completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<CompletionRequest>,
) -> Result<Response, ApiError> {
    req.validate()?;
    let entry = state.entry(&req.model)?;
    let fields = req.sampling();
    let key = state.cache.key_for(
        "completions",
        &entry.id,
        &req,
        is_deterministic(&fields),
        &headers,
    );
    let inputs = req.prompt.clone().into_inputs();
    let echo = req.echo.unwrap_or(false);
    if echo && inputs.iter().any(|p| matches!(p, PromptInput::Tokens(_))) {
        return Err(ApiError::invalid(
            "'echo' is supported for text prompts only.",
            Some("echo".into()),
        ));
    }
    let echoes: Vec<String> = inputs
        .iter()
        .map(|p| match p {
            PromptInput::Text(t) if echo => t.clone(),
            _ => String::new(),
        })
        .collect();
    let requests = inputs
        .into_iter()
        .map(|input| GenerateRequest {
            prompt: match input {
                PromptInput::Text(t) => Prompt::Text(t),
                PromptInput::Tokens(t) => Prompt::Tokens(t),
            },
            sampling: sampling_params(&fields),
            max_tokens: max_tokens(&fields),
            stop: stop_strings(&fields),
            ignore_eos: req.ignore_eos.unwrap_or(false),
        })
        .collect();
    let meta = ResponseMeta::new("cmpl", &req.model);
    let stream = req.is_stream().then(|| {
        let format = CompletionFormat {
            meta: meta.clone(),
            echoes: echoes.clone(),
        };
        (format, req.include_usage())
    });
    respond(&state, entry, key, requests, stream, |done| {
        let usage = total_usage(done.iter().map(|c| &c.usage));
        let choices = done
            .into_iter()
            .zip(echoes)
            .enumerate()
            .map(|(i, (c, echo))| CompletionChoice {
                text: echo + &c.text,
                index: i as u32,
                logprobs: None,
                finish_reason: Some(finish_reason(c.finish_reason)),
            })
            .collect();
        Json(CompletionResponse {
            id: meta.id,
            object: "text_completion".into(),
            created: meta.created,
            model: meta.model,
            system_fingerprint: None,
            choices,
            usage: Some(usage),
        })
        .into_response()
    })
    .await
}

struct CompletionFormat {
    meta: ResponseMeta,
    echoes: Vec<String>,
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
            usage,
        };
        serde_json::to_string(&chunk).expect("chunks serialize")
    }

    fn choice(&self, index: u32, text: String, finish_reason: Option<FinishReason>) -> String {
        self.chunk(
            vec![CompletionChoice {
                text,
                index,
                logprobs: None,
                finish_reason,
            }],
            None,
        )
    }
}

impl ChunkFormat for CompletionFormat {
    fn opening(&self, index: u32) -> Option<String> {
        let echo = &self.echoes[index as usize];
        (!echo.is_empty()).then(|| self.choice(index, echo.clone(), None))
    }

    fn text(&self, index: u32, text: String) -> String {
        self.choice(index, text, None)
    }

    fn finish(&self, index: u32, reason: FinishReason) -> String {
        self.choice(index, String::new(), Some(reason))
    }

    fn usage(&self, usage: Usage) -> String {
        self.chunk(Vec::new(), Some(usage))
    }
}
