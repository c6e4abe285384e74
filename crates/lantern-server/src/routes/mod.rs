//! HTTP handlers, one file per endpoint group, and what the generation endpoints share: the
//! request prelude (validation, model, cache key), the translation to engine requests, and
//! serving from the cache or the engine.

pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod health;
pub mod lora;
pub mod messages;
mod messages_render;
pub mod models;
pub mod playground;
pub mod responses;
mod responses_input;
mod responses_render;
pub mod tokenize;

use axum::http::HeaderMap;
use axum::response::Response;
use futures::future::try_join_all;
use lantern_api::common::SamplingFields;
use lantern_api::fields::FieldClass;
use lantern_engine::{GenerateRequest, Grammar, Prompt, SamplingParams};
use serde_json::Value;

use crate::cache::{CacheKey, CacheStatus, CACHE_HEADER};
use crate::error::ApiError;
use crate::output::{sources, FinishedChoice, RawChoice};
use crate::sse::{collect, sse_response, ChunkFormat, OnComplete};
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
        seed: fields.seed.map(|s| s as u64),
        // Keys were checked to be token ids by validation.
        logit_bias: fields
            .logit_bias
            .map(|b| {
                b.iter()
                    .filter_map(|(k, v)| Some((k.parse().ok()?, *v as f32)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// A generation request with the fields both endpoints share.
pub(crate) fn generate_request(
    fields: &SamplingFields<'_>,
    prompt: Prompt,
    ignore_eos: Option<bool>,
    logprobs: Option<u32>,
    grammar: Option<Grammar>,
) -> GenerateRequest {
    GenerateRequest {
        prompt,
        sampling: sampling_params(fields),
        max_tokens: fields
            .max_tokens
            .map(|m| m.clamp(1, u32::MAX as i64) as u32),
        stop: fields
            .stop
            .map(|s| {
                s.as_slice()
                    .iter()
                    .filter(|s| !s.is_empty())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default(),
        ignore_eos: ignore_eos.unwrap_or(false),
        n: fields.n.unwrap_or(1).clamp(1, i64::from(u32::MAX)) as u32,
        logprobs,
        grammar,
        // Set by the server's limits when the request is scheduled.
        deadline: None,
        // Set from the request's target when it is scheduled.
        adapter: None,
        // Chat and completions set it from `prediction`.
        prediction: None,
    }
}

/// What a generation request runs on: a model, and perhaps one of its LoRA adapters.
pub(crate) struct Target<'s> {
    pub entry: &'s ModelEntry,
    pub adapter: Option<String>,
}

impl Target<'_> {
    /// The id responses report: `BASE:NAME` under an adapter.
    pub fn id(&self) -> String {
        match &self.adapter {
            Some(a) => format!("{}:{a}", self.entry.id),
            None => self.entry.id.clone(),
        }
    }
}

/// What every generation handler does first: the model (and adapter), and the cache key
/// (when the output is deterministic and caching applies; an adapter is part of it).
pub(crate) fn prelude<'s>(
    state: &'s AppState,
    headers: &HeaderMap,
    endpoint: &str,
    model: &str,
    raw: &Value,
    table: &'static [(&'static str, FieldClass)],
    fields: &SamplingFields<'_>,
) -> Result<(Target<'s>, Option<CacheKey>), ApiError> {
    let (entry, adapter) = state.target(model)?;
    let target = Target { entry, adapter };
    // Greedy, or seeded: reproducible, so the response may be cached.
    let deterministic = fields.temperature == Some(0.0) || fields.seed.is_some();
    let key = state
        .cache
        .key_for(endpoint, &target.id(), raw, table, deterministic, headers);
    Ok((target, key))
}

/// Serves generation requests: from the response cache when `key` hits, else from the model's
/// backend (storing the raw output under `key` once it finished successfully). `stream`
/// is the SSE format; `render` builds the JSON body otherwise. The `x-lantern-cache` header says which path was taken.
pub(crate) async fn respond<F: ChunkFormat>(
    state: &AppState,
    target: &Target<'_>,
    key: Option<CacheKey>,
    requests: Vec<GenerateRequest>,
    logprobs: bool,
    stream: Option<F>,
    render: impl FnOnce(Vec<FinishedChoice>) -> Response,
) -> Result<Response, ApiError> {
    if let Some(hit) = key.as_ref().and_then(|k| state.cache.get(k)) {
        let replay = hit.iter().map(RawChoice::replay).collect();
        let response = match stream {
            Some(format) => {
                sse_response(format, replay, logprobs, None, state.lifecycle.cut_signal())
            }
            None => render(collect_all(replay, logprobs).await?.0),
        };
        crate::metrics::cache_result("hit");
        return Ok(with_cache_status(response, CacheStatus::Hit));
    }
    let started = std::time::Instant::now();
    let model = target.entry;
    // Held until the engine counts the requests, so the model cannot be evicted between.
    let _hold = model.hold();
    let backend = state.backend(model).await?;
    let (mut requests, prompts) = split_choices(requests, backend.info().parallel);
    for r in &mut requests {
        state.request_limits.apply(r);
        r.adapter.clone_from(&target.adapter);
    }
    // All prompts are scheduled concurrently; if one is rejected, the others' receivers are
    // dropped, which cancels them.
    let generations = try_join_all(requests.into_iter().map(|r| backend.schedule(r))).await?;
    let id = target.id();
    crate::metrics::adapter_request(&model.id, target.adapter.as_deref());
    let choices = sources(prompts.into_iter().zip(generations), &id, started);
    let response = match stream {
        Some(format) => {
            let sink = key.map(|k| {
                let cache = state.cache.clone();
                Box::new(move |raw: Vec<RawChoice>| cache.insert(k, raw)) as OnComplete
            });
            sse_response(
                format,
                choices,
                logprobs,
                sink,
                state.lifecycle.cut_signal(),
            )
        }
        None => {
            let (done, raw) = collect_all(choices, logprobs).await?;
            if let Some(k) = key {
                state.cache.insert(k, raw);
            }
            render(done)
        }
    };
    let status = if key.is_some() {
        crate::metrics::cache_result("miss");
        CacheStatus::Miss
    } else {
        crate::metrics::cache_result("bypass");
        CacheStatus::Bypass
    };
    Ok(with_cache_status(response, status))
}

/// Splits a request for more choices than the model decodes at once (`n` > `parallel`) into
/// groups of at most `parallel`, each prefilled once and run as slots free up; returns each
/// group's original prompt index (usage counts a prompt once). A seeded request gives each
/// group its own derived seed, so the choices differ and stay reproducible.
fn split_choices(
    requests: Vec<GenerateRequest>,
    parallel: u32,
) -> (Vec<GenerateRequest>, Vec<u32>) {
    let parallel = parallel.max(1);
    let mut out = Vec::with_capacity(requests.len());
    let mut prompts = Vec::with_capacity(requests.len());
    for (prompt, request) in requests.into_iter().enumerate() {
        let mut left = request.n;
        let mut group = 0u64;
        while left > parallel {
            let mut part = request.clone();
            part.n = parallel;
            part.sampling.seed = request.sampling.seed.map(|s| group_seed(s, group));
            out.push(part);
            prompts.push(prompt as u32);
            left -= parallel;
            group += 1;
        }
        let mut last = request;
        last.n = left;
        last.sampling.seed = last.sampling.seed.map(|s| group_seed(s, group));
        out.push(last);
        prompts.push(prompt as u32);
    }
    (out, prompts)
}

/// The first group keeps the client's seed, so `n` within `parallel` is unchanged.
fn group_seed(seed: u64, group: u64) -> u64 {
    seed.wrapping_add(group.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

async fn collect_all(
    choices: Vec<crate::output::ChoiceSource>,
    logprobs: bool,
) -> Result<(Vec<FinishedChoice>, Vec<RawChoice>), ApiError> {
    let parts = try_join_all(choices.into_iter().map(|c| collect(c, logprobs))).await?;
    Ok(parts.into_iter().unzip())
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

#[cfg(test)]
mod tests {
    use super::*;
    use lantern_engine::Prompt;

    fn request(n: u32, seed: Option<u64>) -> GenerateRequest {
        let mut r = GenerateRequest::new(Prompt::Text("hi".into()));
        r.n = n;
        r.sampling.seed = seed;
        r
    }

    #[test]
    fn choices_beyond_the_slots_run_in_groups_of_one_prompt() {
        let (parts, prompts) = split_choices(vec![request(10, Some(7)), request(2, None)], 4);
        assert_eq!(parts.iter().map(|r| r.n).collect::<Vec<_>>(), [4, 4, 2, 2]);
        assert_eq!(prompts, [0, 0, 0, 1]);
        let seeds: Vec<_> = parts.iter().map(|r| r.sampling.seed).collect();
        assert_eq!(seeds[0], Some(7), "the first group keeps the client's seed");
        assert!(seeds[1] != seeds[0] && seeds[2] != seeds[1] && seeds[2] != seeds[0]);
        assert_eq!(seeds[3], None);
    }

    #[test]
    fn choices_within_the_slots_are_one_request() {
        let (parts, prompts) = split_choices(vec![request(4, Some(1))], 4);
        assert_eq!(parts, vec![request(4, Some(1))]);
        assert_eq!(prompts, [0]);
    }
}
