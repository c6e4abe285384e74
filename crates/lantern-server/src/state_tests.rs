//! Residency limits with stand-in backends: what is evicted, and when.
use std::path::PathBuf;

use async_trait::async_trait;
use lantern_engine::{EngineError, GenerateRequest, Generation, ModelInfo};

use super::*;
use crate::cache::{CacheConfig, ResponseCache};

/// A loaded model that only reports its size.
struct Sized(ModelInfo);

#[async_trait]
impl Backend for Sized {
    fn info(&self) -> &ModelInfo {
        &self.0
    }

    async fn schedule(&self, _: GenerateRequest) -> Result<Generation, EngineError> {
        Err(EngineError::WorkerGone)
    }
}

fn entry(id: &str, estimate: u64, actual: u64) -> ModelEntry {
    let loader: Loader = Arc::new(move || {
        Ok(Arc::new(Sized(ModelInfo {
            path: PathBuf::from("m.gguf"),
            n_ctx_per_seq: 1,
            parallel: 1,
            created: 0,
            memory_bytes: actual,
            n_vocab: 1,
            n_embd: 1,
            embeddings_only: false,
        })) as Arc<dyn Backend>)
    });
    let e = ModelEntry::new(id).with_loader(loader);
    e.set_memory_bytes(estimate);
    e
}

fn state(models: Vec<ModelEntry>, max_memory_bytes: u64) -> AppState {
    AppState::new(models, 1024, ResponseCache::new(&CacheConfig::default())).with_limits(
        ResidencyLimits {
            max_loaded_models: None,
            max_memory_bytes: Some(max_memory_bytes),
        },
    )
}

#[tokio::test]
async fn a_model_sized_only_after_loading_still_makes_room() {
    // "hub" is estimated at 0 (not downloaded yet) but holds 300 once loaded.
    let s = state(vec![entry("local", 100, 100), entry("hub", 0, 300)], 350);
    s.backend(&s.models[0]).await.unwrap();
    s.backend(&s.models[1]).await.unwrap();
    assert_eq!(s.models[1].memory_bytes(), 300);
    assert_eq!(s.models[0].status(), "unloaded");
    assert_eq!(s.models[1].status(), "loaded");
}

#[tokio::test]
async fn models_that_fit_together_stay_loaded() {
    let s = state(vec![entry("a", 100, 100), entry("b", 0, 200)], 350);
    s.backend(&s.models[0]).await.unwrap();
    s.backend(&s.models[1]).await.unwrap();
    assert_eq!(s.models[0].status(), "loaded");
    assert_eq!(s.models[1].status(), "loaded");
}

#[tokio::test]
async fn an_estimate_over_the_limit_evicts_before_loading() {
    let s = state(vec![entry("a", 200, 200), entry("b", 200, 200)], 350);
    s.backend(&s.models[0]).await.unwrap();
    s.backend(&s.models[1]).await.unwrap();
    assert_eq!(s.models[0].status(), "unloaded");
    // Used again, "a" comes back and "b", now least recently used, goes.
    s.backend(&s.models[0]).await.unwrap();
    assert_eq!(s.models[1].status(), "unloaded");
}
