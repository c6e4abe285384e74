//! HTTP handlers, one file per endpoint group, and the translation from wire requests to
//! engine requests that they share.

pub mod chat;
pub mod completions;
pub mod health;
pub mod models;

use axum::response::Response;
use futures::future::try_join_all;
use lantern_api::common::SamplingFields;
use lantern_engine::{FinishReason, GenerateRequest, SamplingParams};

use crate::cache::{CacheKey, CacheStatus, CACHE_HEADER};
use crate::error::ApiError;
use crate::sse::{collect, replay, sse_response, ChunkFormat, Completion, OnComplete};
use crate::state::{AppState, ModelEntry};

/// Validated wire sampling fields → engine parameters (OpenAI defaults where unset).
pub(crate) fn sampling_params(fields: &SamplingFields<'_>) -> SamplingParams {
    let defaults = SamplingParams::default();
    SamplingParams {
        temperature: fields
            .temperature
            .map_or(defaults.temperature, |v| v as f32),
        top_p: fields.top_p.map_or(defaults.top_p, |v| v as f32),
        top_k: fields
            .top_k
            .map_or(defaults.top_k, |v| v.min(i32::MAX as i64) as i32),
        min_p: fields.min_p.map_or(defaults.min_p, |v| v as f32),
        presence_penalty: fields.presence_penalty.map_or(0.0, |v| v as f32),
        frequency_penalty: fields.frequency_penalty.map_or(0.0, |v| v as f32),
        // OpenAI seeds are 64-bit; llama.cpp's are 32-bit. Fold the high half in so distinct
        // seeds stay distinct, and keep u32::MAX (llama.cpp's "random") out of reach.
        seed: fields.seed.map(|s| {
            let folded = (s as u64 ^ ((s as u64) >> 32)) as u32;
            if folded == u32::MAX {
                0
            } else {
                folded
            }
        }),
    }
}

pub(crate) fn max_tokens(fields: &SamplingFields<'_>) -> Option<u32> {
    fields
        .max_tokens
        .map(|m| m.clamp(1, u32::MAX as i64) as u32)
}

pub(crate) fn stop_strings(fields: &SamplingFields<'_>) -> Vec<String> {
    fields
        .stop
        .map(|s| {
            s.as_slice()
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn finish_reason(reason: FinishReason) -> lantern_api::FinishReason {
    match reason {
        FinishReason::Stop => lantern_api::FinishReason::Stop,
        FinishReason::Length => lantern_api::FinishReason::Length,
    }
}

pub(crate) fn usage(u: lantern_engine::TokenUsage) -> lantern_api::Usage {
    lantern_api::Usage::new(u.prompt_tokens, u.completion_tokens, u.cached_tokens)
}

/// Serves generation requests: from the response cache when `key` hits, else from the model's
/// backend (storing the result under `key` once it finished successfully). `stream` carries
/// the chunk format and `include_usage` for SSE; `render` builds the JSON body otherwise. The
/// `x-lantern-cache` header says which path was taken.
pub(crate) async fn respond<F: ChunkFormat>(
    state: &AppState,
    model: &ModelEntry,
    key: Option<CacheKey>,
    requests: Vec<GenerateRequest>,
    stream: Option<(F, bool)>,
    render: impl FnOnce(Vec<Completion>) -> Response,
) -> Result<Response, ApiError> {
    if let Some(hit) = key.as_ref().and_then(|k| state.cache.get(k)) {
        let response = match stream {
            Some((format, include_usage)) => {
                sse_response(format, replay(&hit), include_usage, None)
            }
            None => render(hit.as_ref().clone()),
        };
        return Ok(with_cache_status(response, CacheStatus::Hit));
    }
    let backend = state.backend(model).await?;
    // All choices run concurrently; if one is rejected, the others' receivers are dropped,
    // which cancels them.
    let streams = try_join_all(requests.into_iter().map(|r| backend.schedule(r))).await?;
    let response = match stream {
        Some((format, include_usage)) => {
            let sink = key.map(|k| {
                let cache = state.cache.clone();
                Box::new(move |done: Vec<Completion>| cache.insert(k, done)) as OnComplete
            });
            sse_response(format, streams, include_usage, sink)
        }
        None => {
            let done = try_join_all(streams.into_iter().map(collect)).await?;
            if let Some(k) = key {
                state.cache.insert(k, done.clone());
            }
            render(done)
        }
    };
    let status = if key.is_some() {
        CacheStatus::Miss
    } else {
        CacheStatus::Bypass
    };
    Ok(with_cache_status(response, status))
}

fn with_cache_status(mut response: Response, status: CacheStatus) -> Response {
    response
        .headers_mut()
        .insert(CACHE_HEADER, status.header_value());
    response
}

/// Marks responses that never reached the cache (errors) as `bypass`, so every chat and
/// completions response carries the header.
pub(crate) async fn default_cache_header(mut response: Response) -> Response {
    if !response.headers().contains_key(CACHE_HEADER) {
        response
            .headers_mut()
            .insert(CACHE_HEADER, CacheStatus::Bypass.header_value());
    }
    response
}

/// Whether sampling is reproducible, so the response may be cached: greedy, or seeded.
pub(crate) fn is_deterministic(fields: &SamplingFields<'_>) -> bool {
    fields.temperature == Some(0.0) || fields.seed.is_some()
}
