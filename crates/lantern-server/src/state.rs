//! Shared state of the HTTP layer: the configured models, their load state, and the cache.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::{BoxFuture, FutureExt, Shared};
use lantern_engine::Backend;

use crate::cache::ResponseCache;
use crate::error::ApiError;

/// Loads a model's backend (blocking; run on the blocking pool).
pub type Loader = Arc<dyn Fn() -> Result<Arc<dyn Backend>, String> + Send + Sync>;

type LoadFuture = Shared<BoxFuture<'static, Result<Arc<dyn Backend>, String>>>;

enum Phase {
    Unloaded,
    /// Every request that arrives during the load awaits this same future.
    Loading(LoadFuture),
    Loaded(Arc<dyn Backend>),
}

/// One servable model.
pub struct ModelEntry {
    pub id: String,
    pub aliases: Vec<String>,
    pub owned_by: String,
    /// Loaded at start-up (health waits for it) rather than on first use.
    pub eager: bool,
    /// Unload after this many idle seconds (0: never).
    pub idle_unload_secs: u64,
    loader: Option<Loader>,
    phase: Mutex<Phase>,
    last_used: AtomicU64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl ModelEntry {
    /// An entry whose backend is supplied later with [`ModelEntry::set_ready`].
    pub fn new(id: impl Into<String>) -> Self {
        ModelEntry {
            id: id.into(),
            aliases: Vec::new(),
            owned_by: "lantern".into(),
            eager: true,
            idle_unload_secs: 0,
            loader: None,
            phase: Mutex::new(Phase::Unloaded),
            last_used: AtomicU64::new(now_secs()),
        }
    }

    pub fn with_loader(mut self, loader: Loader) -> Self {
        self.loader = Some(loader);
        self
    }

    pub fn set_ready(&self, backend: Arc<dyn Backend>) {
        *self.phase.lock().expect("phase lock") = Phase::Loaded(backend);
    }

    /// `loaded`, `loading` or `unloaded`.
    pub fn status(&self) -> &'static str {
        match &*self.phase.lock().expect("phase lock") {
            Phase::Unloaded => "unloaded",
            Phase::Loading(_) => "loading",
            Phase::Loaded(_) => "loaded",
        }
    }

    pub fn loaded(&self) -> Option<Arc<dyn Backend>> {
        match &*self.phase.lock().expect("phase lock") {
            Phase::Loaded(b) => Some(b.clone()),
            _ => None,
        }
    }

    pub fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    /// Drops the backend; requests already running finish on the worker before it exits.
    pub fn unload(&self) -> bool {
        let mut phase = self.phase.lock().expect("phase lock");
        if matches!(*phase, Phase::Loaded(_)) {
            *phase = Phase::Unloaded;
            return true;
        }
        false
    }

    /// The backend, loading it first if needed. Concurrent callers share one load; when it
    /// fails, each of them gets a 503 saying why, and a later request tries again.
    pub async fn backend(&self) -> Result<Arc<dyn Backend>, ApiError> {
        self.last_used.store(now_secs(), Ordering::Relaxed);
        let load = {
            let mut phase = self.phase.lock().expect("phase lock");
            match &*phase {
                Phase::Loaded(b) => return Ok(b.clone()),
                Phase::Loading(f) => f.clone(),
                Phase::Unloaded => {
                    let Some(loader) = self.loader.clone() else {
                        return Err(ApiError::ModelLoading(self.id.clone()));
                    };
                    let id = self.id.clone();
                    let f = async move {
                        tracing::info!(model = %id, "loading model");
                        tokio::task::spawn_blocking(move || loader())
                            .await
                            .unwrap_or_else(|e| Err(format!("the loader panicked: {e}")))
                    }
                    .boxed()
                    .shared();
                    *phase = Phase::Loading(f.clone());
                    f
                }
            }
        };
        let result = load.await;
        let mut phase = self.phase.lock().expect("phase lock");
        if matches!(*phase, Phase::Loading(_)) {
            *phase = match &result {
                Ok(b) => Phase::Loaded(b.clone()),
                Err(_) => Phase::Unloaded,
            };
        }
        result.map_err(|reason| ApiError::ModelLoadFailed {
            model: self.id.clone(),
            reason,
        })
    }
}

#[derive(Clone)]
pub struct AppState {
    pub models: Arc<Vec<ModelEntry>>,
    pub max_body_bytes: usize,
    pub cache: ResponseCache,
}

impl AppState {
    pub fn new(models: Vec<ModelEntry>, max_body_bytes: usize, cache: ResponseCache) -> Self {
        AppState {
            models: Arc::new(models),
            max_body_bytes,
            cache,
        }
    }

    /// The model named `name`, by id or alias; 404 listing the ids when there is none.
    pub fn entry(&self, name: &str) -> Result<&ModelEntry, ApiError> {
        self.models
            .iter()
            .find(|m| m.id == name || m.aliases.iter().any(|a| a == name))
            .ok_or_else(|| ApiError::ModelNotFound {
                model: name.to_string(),
                available: self.models.iter().map(|m| m.id.clone()).collect(),
            })
    }

    /// The backend serving `model`: 404 if unknown, loading it if it is lazy.
    pub async fn backend(&self, model: &str) -> Result<Arc<dyn Backend>, ApiError> {
        self.entry(model)?.backend().await
    }

    /// Healthy once every eager model is loaded.
    pub fn all_ready(&self) -> bool {
        self.models
            .iter()
            .filter(|m| m.eager)
            .all(|m| m.loaded().is_some())
    }
}
