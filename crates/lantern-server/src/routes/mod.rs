//! HTTP handlers, one file per endpoint group, and the translation from wire requests to
//! engine requests that they share.

pub mod chat;
pub mod completions;
pub mod health;
pub mod models;

use lantern_api::common::SamplingFields;
use lantern_engine::{FinishReason, SamplingParams};

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
