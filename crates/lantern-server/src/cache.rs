//! The response cache: deterministic requests (temperature 0, or an explicit seed) answered
//! before are served again without touching the engine. Backed by moka, keyed by a BLAKE3 hash
//! of the canonical JSON of the fields that affect the output.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use moka::sync::Cache;
use serde::Deserialize;
use serde_json::Value;

/// Response header saying how the cache treated the request.
pub const CACHE_HEADER: &str = "x-lantern-cache";

/// `[cache]` in the config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub enabled: bool,
    pub max_entries: u64,
    /// Total size of the cached texts, in bytes.
    pub max_bytes: u64,
    pub ttl_secs: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            max_entries: 1024,
            max_bytes: 64 * 1024 * 1024,
            ttl_secs: 3600,
        }
    }
}

/// How the cache treated one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    Bypass,
}

impl CacheStatus {
    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
        })
    }
}

use crate::output::RawChoice;
use lantern_api::fields::{ignored_for_output, FieldClass};

/// A whole successful response (its choices' raw output), minus its id and timestamp.
pub type CachedResponse = Vec<RawChoice>;

fn weight(response: &CachedResponse) -> u64 {
    // Fixed overhead per entry plus the texts and logprobs.
    256 + response
        .iter()
        .map(|c| c.text.len() as u64 + 64 * c.logprobs.len() as u64)
        .sum::<u64>()
}

pub type CacheKey = [u8; 32];

#[derive(Clone)]
pub struct ResponseCache {
    cache: Option<Cache<CacheKey, Arc<CachedResponse>>>,
}

impl ResponseCache {
    pub fn new(config: &CacheConfig) -> Self {
        if !config.enabled || config.max_entries == 0 || config.max_bytes == 0 {
            return ResponseCache { cache: None };
        }
        // moka bounds one total weight. Giving every entry at least max_bytes / max_entries of
        // weight bounds the entry count too.
        let floor = (config.max_bytes / config.max_entries).max(1);
        let cache = Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(move |_: &CacheKey, v: &Arc<CachedResponse>| {
                weight(v).max(floor).min(u32::MAX as u64) as u32
            })
            .time_to_live(Duration::from_secs(config.ttl_secs.max(1)))
            .build();
        ResponseCache { cache: Some(cache) }
    }

    /// The key under which this request may be cached, or `None` (bypass) when caching is
    /// off, the client asked for `Cache-Control: no-cache`, or the output is not deterministic.
    pub fn key_for(
        &self,
        endpoint: &str,
        model_id: &str,
        request: &Value,
        fields: &'static [(&'static str, FieldClass)],
        deterministic: bool,
        headers: &HeaderMap,
    ) -> Option<CacheKey> {
        self.cache.as_ref()?;
        if !deterministic || wants_no_cache(headers) {
            return None;
        }
        Some(request_key(endpoint, model_id, request, fields))
    }

    pub fn get(&self, key: &CacheKey) -> Option<Arc<CachedResponse>> {
        self.cache.as_ref()?.get(key)
    }

    /// Stores a finished response; one cut by the request deadline is not the answer.
    pub fn insert(&self, key: CacheKey, response: CachedResponse) {
        let cut = response
            .iter()
            .any(|c| c.finish_reason == lantern_engine::FinishReason::Deadline);
        if let (Some(cache), false) = (&self.cache, cut) {
            cache.insert(key, Arc::new(response));
        }
    }
}

fn wants_no_cache(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| {
            matches!(
                d.trim().to_ascii_lowercase().as_str(),
                "no-cache" | "no-store"
            )
        })
}

/// Sorts object keys recursively, so equal requests serialize identically whatever order
/// their fields arrived in.
fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// BLAKE3 of the canonical JSON of the request minus the fields that cannot change its
/// output (metadata, streaming), so every honoured field is part of the key. `model` is
/// replaced by the resolved model id, so an alias and the id share entries.
pub fn request_key(
    endpoint: &str,
    model_id: &str,
    request: &Value,
    fields: &'static [(&'static str, FieldClass)],
) -> CacheKey {
    let mut value = request.clone();
    if let Value::Object(map) = &mut value {
        for field in ignored_for_output(fields) {
            map.remove(field);
        }
        map.retain(|_, v| !v.is_null());
        map.insert("model".into(), Value::String(model_id.into()));
        map.insert("endpoint".into(), Value::String(endpoint.into()));
    }
    let text = serde_json::to_string(&canonical(value)).unwrap_or_default();
    *blake3::hash(text.as_bytes()).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lantern_api::fields::{CHAT_FIELDS, COMPLETION_FIELDS};
    use lantern_engine::{FinishReason, TokenUsage};
    use serde_json::json;

    fn key(v: &Value) -> CacheKey {
        request_key("chat", "m", v, CHAT_FIELDS)
    }

    #[test]
    fn key_ignores_metadata_stream_and_field_order() {
        let a = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0, "stream": true, "user": "u1", "metadata": {"k": "v"}});
        let b = json!({"temperature": 0, "messages": [{"content": "x", "role": "user"}], "model": "m", "stream_options": {"include_usage": true}, "store": true});
        assert_eq!(key(&a), key(&b));
        let c =
            json!({"model": "m", "messages": [{"role": "user", "content": "y"}], "temperature": 0});
        assert_ne!(key(&a), key(&c));
        assert_ne!(
            key(&a),
            request_key("completions", "m", &a, COMPLETION_FIELDS)
        );
    }

    /// A value for each honoured field that differs from leaving it out.
    fn sample_value(field: &str) -> Value {
        match field {
            "messages" => json!([{"role": "user", "content": "other"}]),
            "stop" => json!(["x"]),
            "logit_bias" => json!({"5": 10}),
            "tools" => json!([{"type": "function", "function": {"name": "f"}}]),
            "tool_choice" => json!("required"),
            "response_format" => json!({"type": "json_object"}),
            "reasoning_effort" => json!("none"),
            "chat_template_kwargs" => json!({"enable_thinking": false}),
            "logprobs" | "parallel_tool_calls" | "ignore_eos" => json!(true),
            "model" => json!("other-model"),
            _ => json!(3),
        }
    }

    #[test]
    fn requests_differing_in_any_honoured_field_never_share_a_key() {
        let base =
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0});
        for (field, class) in CHAT_FIELDS {
            if *class != FieldClass::Honoured
                || ["stream", "stream_options", "model"].contains(field)
            {
                continue;
            }
            let mut other = base.clone();
            other[*field] = sample_value(field);
            assert_ne!(key(&base), key(&other), "{field}");
        }
    }

    #[test]
    fn bypass_rules() {
        let cache = ResponseCache::new(&CacheConfig::default());
        let req = json!({"model": "m"});
        let mut headers = HeaderMap::new();
        assert!(cache
            .key_for("chat", "m", &req, CHAT_FIELDS, true, &headers)
            .is_some());
        assert!(cache
            .key_for("chat", "m", &req, CHAT_FIELDS, false, &headers)
            .is_none());
        headers.insert(
            "cache-control",
            HeaderValue::from_static("max-age=0, no-cache"),
        );
        assert!(cache
            .key_for("chat", "m", &req, CHAT_FIELDS, true, &headers)
            .is_none());
        let off = ResponseCache::new(&CacheConfig {
            enabled: false,
            ..CacheConfig::default()
        });
        assert!(off
            .key_for("chat", "m", &req, CHAT_FIELDS, true, &HeaderMap::new())
            .is_none());
    }

    #[test]
    fn entry_count_is_bounded_by_weight_floor() {
        let cache = ResponseCache::new(&CacheConfig {
            max_entries: 4,
            max_bytes: 4000,
            ..CacheConfig::default()
        });
        for i in 0..50u8 {
            let response = vec![RawChoice {
                prompt: 0,
                format: Default::default(),
                text: "x".into(),
                logprobs: Vec::new(),
                finish_reason: FinishReason::Stop,
                usage: TokenUsage::default(),
            }];
            cache.insert([i; 32], response);
        }
        let inner = cache.cache.as_ref().unwrap();
        inner.run_pending_tasks();
        assert!(inner.entry_count() <= 4, "{}", inner.entry_count());
    }
}
