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

/// Request fields that do not change the generated text.
const IGNORED_FIELDS: [&str; 3] = ["stream", "stream_options", "user"];

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

use crate::sse::Completion;

/// A whole successful response (its choices), minus its id and timestamp.
pub type CachedResponse = Vec<Completion>;

fn weight(response: &CachedResponse) -> u64 {
    // Fixed overhead per entry plus the texts.
    256 + response.iter().map(|c| c.text.len() as u64).sum::<u64>()
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
        request: &impl serde::Serialize,
        deterministic: bool,
        headers: &HeaderMap,
    ) -> Option<CacheKey> {
        self.cache.as_ref()?;
        if !deterministic || wants_no_cache(headers) {
            return None;
        }
        Some(request_key(endpoint, model_id, request))
    }

    pub fn get(&self, key: &CacheKey) -> Option<Arc<CachedResponse>> {
        self.cache.as_ref()?.get(key)
    }

    pub fn insert(&self, key: CacheKey, response: CachedResponse) {
        if let Some(cache) = &self.cache {
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

/// BLAKE3 of the canonical JSON of the output-affecting fields. `model` is replaced by the
/// resolved model id, so an alias and the id share entries.
pub fn request_key(endpoint: &str, model_id: &str, request: &impl serde::Serialize) -> CacheKey {
    let mut value = serde_json::to_value(request).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        for field in IGNORED_FIELDS {
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
    use lantern_engine::{FinishReason, TokenUsage};
    use serde_json::json;

    #[test]
    fn key_ignores_stream_user_and_field_order() {
        let a = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0, "stream": true, "user": "u1"});
        let b = json!({"temperature": 0, "messages": [{"content": "x", "role": "user"}], "model": "m", "stream_options": {"include_usage": true}});
        assert_eq!(request_key("chat", "m", &a), request_key("chat", "m", &b));
        let c =
            json!({"model": "m", "messages": [{"role": "user", "content": "y"}], "temperature": 0});
        assert_ne!(request_key("chat", "m", &a), request_key("chat", "m", &c));
        assert_ne!(
            request_key("chat", "m", &a),
            request_key("completions", "m", &a)
        );
        let with_max = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0, "max_tokens": 5});
        assert_ne!(
            request_key("chat", "m", &a),
            request_key("chat", "m", &with_max)
        );
    }

    #[test]
    fn bypass_rules() {
        let cache = ResponseCache::new(&CacheConfig::default());
        let req = json!({"model": "m"});
        let mut headers = HeaderMap::new();
        assert!(cache.key_for("chat", "m", &req, true, &headers).is_some());
        assert!(cache.key_for("chat", "m", &req, false, &headers).is_none());
        headers.insert(
            "cache-control",
            HeaderValue::from_static("max-age=0, no-cache"),
        );
        assert!(cache.key_for("chat", "m", &req, true, &headers).is_none());
        let off = ResponseCache::new(&CacheConfig {
            enabled: false,
            ..CacheConfig::default()
        });
        assert!(off
            .key_for("chat", "m", &req, true, &HeaderMap::new())
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
            let response = vec![Completion {
                text: "x".into(),
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
