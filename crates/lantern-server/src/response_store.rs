//! Stored Responses API conversations (`store: true`): the response object and the items the
//! model saw, so `previous_response_id` continues a conversation and `GET /v1/responses/{id}`
//! retrieves it. Bounded in entries and bytes, with a TTL (moka). Unlike the response cache,
//! nothing here is replayed as an answer.

use std::sync::Arc;
use std::time::Duration;

use lantern_api::responses::{Item, ResponseObject};
use moka::sync::Cache;
use serde::Deserialize;

/// `[responses]` in the config file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseStoreConfig {
    pub max_entries: u64,
    /// Total size of the stored responses and their conversations, in bytes.
    pub max_bytes: u64,
    pub ttl_secs: u64,
}

impl Default for ResponseStoreConfig {
    fn default() -> Self {
        ResponseStoreConfig {
            max_entries: 10_000,
            max_bytes: 256 * 1024 * 1024,
            ttl_secs: 30 * 24 * 3600,
        }
    }
}

/// One stored response.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub response: ResponseObject,
    /// Everything the model was given, in order: the earlier turns (when continuing) and this
    /// request's input; `instructions` are not items and are not carried over.
    pub input: Vec<Item>,
}

impl StoredResponse {
    /// The conversation as a next turn continues it: the input, then this response's output.
    pub fn conversation(&self) -> impl Iterator<Item = &Item> {
        self.input.iter().chain(&self.response.output)
    }

    fn weight(&self) -> u64 {
        let text: usize = self.conversation().map(item_bytes).sum();
        512 + text as u64
    }
}

fn item_bytes(item: &Item) -> usize {
    64 + match item {
        Item::Message { content, .. } => content.iter().map(|c| c.text().len()).sum(),
        Item::FunctionCall {
            name, arguments, ..
        } => name.len() + arguments.len(),
        Item::FunctionCallOutput { output, .. } => output.len(),
        Item::Reasoning { content, .. } => content.iter().map(|c| c.text.len() * 2).sum(),
    }
}

/// A response to keep once it has finished (`store: true`), with the conversation it saw.
pub struct PendingStore {
    store: ResponseStore,
    input: Vec<Item>,
}

impl PendingStore {
    pub fn new(store: ResponseStore, input: Vec<Item>) -> Self {
        PendingStore { store, input }
    }

    pub fn keep(self, response: &ResponseObject) {
        self.store.insert(StoredResponse {
            response: response.clone(),
            input: self.input,
        });
    }
}

#[derive(Clone)]
pub struct ResponseStore {
    cache: Cache<String, Arc<StoredResponse>>,
}

impl Default for ResponseStore {
    fn default() -> Self {
        ResponseStore::new(&ResponseStoreConfig::default())
    }
}

impl ResponseStore {
    pub fn new(config: &ResponseStoreConfig) -> Self {
        // As in the response cache: a weight floor per entry bounds the entry count too.
        let entries = config.max_entries.max(1);
        let bytes = config.max_bytes.max(1);
        let floor = (bytes / entries).max(1);
        let cache = Cache::builder()
            .max_capacity(bytes)
            .weigher(move |_: &String, v: &Arc<StoredResponse>| {
                v.weight().max(floor).min(u32::MAX as u64) as u32
            })
            .time_to_live(Duration::from_secs(config.ttl_secs.max(1)))
            .build();
        ResponseStore { cache }
    }

    pub fn insert(&self, stored: StoredResponse) {
        self.cache
            .insert(stored.response.id.clone(), Arc::new(stored));
    }

    pub fn get(&self, id: &str) -> Option<Arc<StoredResponse>> {
        self.cache.get(id)
    }

    /// True when it was there.
    pub fn remove(&self, id: &str) -> bool {
        self.cache.remove(id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lantern_api::responses::ContentItem;

    fn stored(id: &str, text: &str) -> StoredResponse {
        StoredResponse {
            response: serde_json::from_value(serde_json::json!({
                "id": id, "object": "response", "created_at": 0, "status": "completed",
                "error": null, "incomplete_details": null, "instructions": null,
                "max_output_tokens": null, "model": "m", "output": [],
                "parallel_tool_calls": true, "previous_response_id": null, "reasoning": {},
                "store": true, "temperature": 1.0, "text": {}, "tool_choice": "auto",
                "tools": [], "top_p": 1.0, "truncation": "disabled", "usage": null,
                "user": null, "metadata": {}
            }))
            .unwrap(),
            input: vec![Item::Message {
                id: "msg_1".into(),
                role: "user".into(),
                content: vec![ContentItem::InputText { text: text.into() }],
                status: "completed".into(),
            }],
        }
    }

    #[test]
    fn keeps_retrieves_and_deletes() {
        let store = ResponseStore::default();
        store.insert(stored("resp_a", "hi"));
        assert_eq!(store.get("resp_a").unwrap().input.len(), 1);
        assert!(store.remove("resp_a"));
        assert!(store.get("resp_a").is_none());
        assert!(!store.remove("resp_a"));
    }

    #[test]
    fn bounded_by_bytes() {
        let store = ResponseStore::new(&ResponseStoreConfig {
            max_entries: 100,
            max_bytes: 10_000,
            ttl_secs: 60,
        });
        for i in 0..50 {
            store.insert(stored(&format!("resp_{i}"), &"x".repeat(2_000)));
        }
        store.cache.run_pending_tasks();
        let kept = (0..50)
            .filter(|i| store.get(&format!("resp_{i}")).is_some())
            .count();
        assert!(
            kept <= 5,
            "{kept} entries of ~2.6 kB kept under a 10 kB bound"
        );
    }
}
