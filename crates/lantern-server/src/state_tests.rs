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

#[tokio::test]
async fn a_model_held_by_a_request_is_not_evicted() {
    let s = state(vec![entry("a", 200, 200), entry("b", 200, 200)], 350);
    s.backend(&s.models[0]).await.unwrap();
    // A request has picked "a" and not reached its engine yet.
    let hold = s.models[0].hold();
    assert!(!s.models[0].is_idle());
    s.backend(&s.models[1]).await.unwrap();
    assert_eq!(
        s.models[0].status(),
        "loaded",
        "held: over the limit rather than evicted"
    );
    drop(hold);
    assert!(s.models[0].is_idle());
    // Released, it is the least recently used idle model, and goes for the next load.
    s.models[1].unload();
    s.backend(&s.models[1]).await.unwrap();
    assert_eq!(s.models[0].status(), "unloaded");
}

#[tokio::test]
async fn a_load_nobody_waits_for_still_finishes() {
    let gate = Arc::new(std::sync::Barrier::new(2));
    let release = gate.clone();
    let loader: Loader = Arc::new(move || {
        release.wait();
        entry("x", 0, 10).loader.as_ref().unwrap()()
    });
    let s = state(vec![ModelEntry::new("slow").with_loader(loader)], 1000);
    // The only waiter gives up (a client that disconnected) while the load runs.
    let waiter = {
        let s = s.clone();
        tokio::spawn(async move { s.backend(&s.models[0]).await.map(|_| ()) })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(s.models[0].status(), "loading");
    waiter.abort();
    let _ = waiter.await;
    tokio::task::spawn_blocking(move || gate.wait())
        .await
        .unwrap();
    for _ in 0..100 {
        if s.models[0].status() == "loaded" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the load was never published: {}", s.models[0].status());
}

/// A backend whose worker died after loading.
struct Dead(ModelInfo);

#[async_trait]
impl Backend for Dead {
    fn info(&self) -> &ModelInfo {
        &self.0
    }

    fn healthy(&self) -> bool {
        false
    }

    async fn schedule(&self, _: GenerateRequest) -> Result<Generation, EngineError> {
        Err(EngineError::WorkerGone)
    }
}

#[tokio::test]
async fn a_model_whose_worker_died_is_reported_and_reloaded() {
    let loads = Arc::new(AtomicUsize::new(0));
    let counter = loads.clone();
    let loader: Loader = Arc::new(move || {
        let info = entry("x", 0, 10).loader.as_ref().unwrap()()?.info().clone();
        // The first load's worker dies; the reload is healthy.
        Ok(if counter.fetch_add(1, Ordering::Relaxed) == 0 {
            Arc::new(Dead(info)) as Arc<dyn Backend>
        } else {
            Arc::new(Sized(info)) as Arc<dyn Backend>
        })
    });
    let s = state(vec![ModelEntry::new("m").with_loader(loader)], 1000);
    s.models[0].get_or_load().await.unwrap();
    assert_eq!(s.models[0].status(), "unhealthy");
    let backend = s.backend(&s.models[0]).await.unwrap();
    assert!(backend.healthy());
    assert_eq!(loads.load(Ordering::Relaxed), 2);
    assert_eq!(s.models[0].status(), "loaded");
}
