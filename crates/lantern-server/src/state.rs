//! Shared state of the HTTP layer: the configured models, their load state, and the cache.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::future::{BoxFuture, FutureExt, Shared};
use lantern_engine::{Backend, LoraSpec};

use crate::auth::ApiKeys;
use crate::cache::ResponseCache;
use crate::error::ApiError;
use crate::lifecycle::Lifecycle;
use crate::limits::Limits;

/// Loads a model's backend (blocking; run on the blocking pool).
pub type Loader = Arc<dyn Fn() -> Result<Arc<dyn Backend>, String> + Send + Sync>;

type LoadFuture = Shared<BoxFuture<'static, Result<Arc<dyn Backend>, String>>>;

enum Phase {
    Unloaded,
    /// Every request that arrives during the load awaits this same future.
    Loading(LoadFuture),
    Loaded(Arc<dyn Backend>),
}

/// A LoRA adapter served on a model as `BASE:NAME` (and its aliases).
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterEntry {
    pub spec: LoraSpec,
    pub aliases: Vec<String>,
}

/// An adapter's name goes into model ids (`BASE:NAME`) and URLs: keep it plain.
pub fn check_adapter_name(name: &str) -> Result<(), String> {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if plain {
        Ok(())
    } else {
        Err(format!(
            "invalid adapter name '{name}': use 1 to 64 letters, digits, '-', '_' or '.'"
        ))
    }
}

/// The adapters a model serves: the configured ones and those loaded at runtime. Shared with
/// its loader, so a model unloaded and loaded again comes back with the same adapters.
pub type AdapterSet = Arc<Mutex<Vec<AdapterEntry>>>;

/// One servable model.
pub struct ModelEntry {
    pub id: String,
    pub aliases: Vec<String>,
    pub owned_by: String,
    /// Loaded at start-up (health waits for it) rather than on first use.
    pub eager: bool,
    /// Unload after this many idle seconds (0: never).
    pub idle_unload_secs: u64,
    /// Estimated memory while loaded, for `max_memory_bytes`; corrected by the loaded backend.
    memory_bytes: AtomicU64,
    loader: Option<Loader>,
    /// Shared with the task that finishes a load, so a load nobody waits for still lands.
    phase: Arc<Mutex<Phase>>,
    last_used: AtomicU64,
    /// Requests between picking this model and being queued on it: it must stay loaded.
    holds: Arc<AtomicUsize>,
    pub adapters: AdapterSet,
}

/// A request's claim on a model, from picking it until the engine counts the request.
pub struct Hold(Arc<AtomicUsize>);

impl Drop for Hold {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Unix time in milliseconds: least-recently-used order needs finer than seconds.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
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
            memory_bytes: AtomicU64::new(0),
            loader: None,
            phase: Arc::new(Mutex::new(Phase::Unloaded)),
            last_used: AtomicU64::new(now_millis()),
            holds: Arc::default(),
            adapters: Arc::default(),
        }
    }

    /// The adapter `name` selects on this model: `ID:NAME` (or `ALIAS:NAME`) or one of the
    /// adapter's aliases.
    pub fn adapter_named(&self, name: &str) -> Option<String> {
        let adapters = self.adapters.lock().expect("adapters lock");
        let (base, adapter) = name.rsplit_once(':').unwrap_or(("", ""));
        let base_matches = base == self.id || self.aliases.iter().any(|a| a == base);
        adapters
            .iter()
            .find(|a| {
                (base_matches && a.spec.name == adapter) || a.aliases.iter().any(|x| x == name)
            })
            .map(|a| a.spec.name.clone())
    }

    /// Every name requests may use for this model: the id, the aliases, and each adapter's.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::iter::once(&self.id)
            .chain(&self.aliases)
            .cloned()
            .collect();
        for a in self.adapters.lock().expect("adapters lock").iter() {
            names.push(format!("{}:{}", self.id, a.spec.name));
            names.extend(a.aliases.iter().cloned());
        }
        names
    }

    /// Keeps the model from being evicted or unloaded while the guard lives.
    pub fn hold(&self) -> Hold {
        self.holds.fetch_add(1, Ordering::Relaxed);
        Hold(self.holds.clone())
    }

    /// Loaded with nothing running, queued or about to be: it may be unloaded.
    pub fn is_idle(&self) -> bool {
        self.holds.load(Ordering::Relaxed) == 0 && self.loaded().is_some_and(|b| b.load() == 0)
    }

    pub fn with_loader(mut self, loader: Loader) -> Self {
        self.loader = Some(loader);
        self
    }

    /// Estimated memory while loaded.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes.load(Ordering::Relaxed)
    }

    pub fn set_memory_bytes(&self, bytes: u64) {
        self.memory_bytes.store(bytes, Ordering::Relaxed);
    }

    pub fn set_ready(&self, backend: Arc<dyn Backend>) {
        *self.phase.lock().expect("phase lock") = Phase::Loaded(backend);
    }

    /// Loaded or loading: it holds (or is about to hold) memory.
    fn is_resident(&self) -> bool {
        !matches!(*self.phase.lock().expect("phase lock"), Phase::Unloaded)
    }

    /// `loaded`, `loading` or `unloaded`.
    pub fn status(&self) -> &'static str {
        match &*self.phase.lock().expect("phase lock") {
            Phase::Unloaded => "unloaded",
            Phase::Loading(_) => "loading",
            Phase::Loaded(b) if !b.healthy() => "unhealthy",
            Phase::Loaded(_) => "loaded",
        }
    }

    pub fn loaded(&self) -> Option<Arc<dyn Backend>> {
        match &*self.phase.lock().expect("phase lock") {
            Phase::Loaded(b) => Some(b.clone()),
            _ => None,
        }
    }

    /// Unix milliseconds of the last request.
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
    /// fails, each of them gets a 503 saying why, and a later request tries again. Loads go
    /// through [`AppState::backend`], which makes room under the limits first.
    async fn get_or_load(&self) -> Result<Arc<dyn Backend>, ApiError> {
        self.last_used.store(now_millis(), Ordering::Relaxed);
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
                        let started = std::time::Instant::now();
                        let loaded = tokio::task::spawn_blocking(move || loader())
                            .await
                            .unwrap_or_else(|e| Err(format!("the loader panicked: {e}")));
                        if loaded.is_ok() {
                            metrics::gauge!("lantern_model_load_seconds", "model" => id)
                                .set(started.elapsed().as_secs_f64());
                        }
                        loaded
                    }
                    .boxed()
                    .shared();
                    *phase = Phase::Loading(f.clone());
                    // The load finishes and is published even if every request waiting for
                    // it goes away (clients disconnect) before it does.
                    tokio::spawn(publish_load(self.phase.clone(), f.clone()));
                    f
                }
            }
        };
        let result = load.clone().await;
        settle(&self.phase, &load, &result);
        result.map_err(|reason| ApiError::ModelLoadFailed {
            model: self.id.clone(),
            reason,
        })
    }
}

/// A finished load's outcome becomes the phase, unless the model was unloaded (and perhaps
/// loaded again) meanwhile: only the load still in progress settles it.
fn settle(phase: &Mutex<Phase>, load: &LoadFuture, result: &Result<Arc<dyn Backend>, String>) {
    let mut phase = phase.lock().expect("phase lock");
    if matches!(&*phase, Phase::Loading(f) if f.ptr_eq(load)) {
        *phase = match result {
            Ok(b) => Phase::Loaded(b.clone()),
            Err(_) => Phase::Unloaded,
        };
    }
}

async fn publish_load(phase: Arc<Mutex<Phase>>, load: LoadFuture) {
    let result = load.clone().await;
    settle(&phase, &load, &result);
}

/// Limits on how many models stay loaded at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResidencyLimits {
    pub max_loaded_models: Option<usize>,
    pub max_memory_bytes: Option<u64>,
}

/// Which message fields carry a thinking model's reasoning: `reasoning_content` (DeepSeek's
/// name, most clients) and `reasoning` (vLLM's newer name).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasoningFields {
    #[default]
    Both,
    ReasoningContent,
    Reasoning,
}

#[derive(Clone)]
pub struct AppState {
    pub models: Arc<Vec<ModelEntry>>,
    pub max_body_bytes: usize,
    pub cache: ResponseCache,
    pub limits: ResidencyLimits,
    pub reasoning_fields: ReasoningFields,
    /// What one request may ask for (sizes, deadline).
    pub request_limits: Limits,
    pub lifecycle: Lifecycle,
    /// Keys every non-public route requires (none: open).
    pub keys: ApiKeys,
    /// Browser origins allowed to call the API (none: no CORS headers).
    pub cors: Option<tower_http::cors::CorsLayer>,
    /// Renders `/metrics`; none where no recorder is installed (tests).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Stored Responses API conversations (`store: true`).
    pub responses: crate::response_store::ResponseStore,
    /// Serializes eviction decisions, so two loads cannot both count the same free room.
    evicting: Arc<std::sync::Mutex<()>>,
}

impl AppState {
    pub fn new(models: Vec<ModelEntry>, max_body_bytes: usize, cache: ResponseCache) -> Self {
        AppState {
            models: Arc::new(models),
            max_body_bytes,
            cache,
            limits: ResidencyLimits::default(),
            reasoning_fields: ReasoningFields::default(),
            request_limits: Limits::default(),
            lifecycle: Lifecycle::default(),
            keys: ApiKeys::default(),
            cors: None,
            metrics: None,
            responses: Default::default(),
            evicting: Arc::new(std::sync::Mutex::new(())),
        }
    }

    pub fn with_limits(mut self, limits: ResidencyLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Before `incoming` loads: unloads least recently used idle models until it fits the
    /// limits. Models with requests in flight are never evicted; if only those remain, the
    /// load goes ahead over the limit (logged) rather than failing the request.
    fn make_room(&self, incoming: &ModelEntry) {
        let ResidencyLimits {
            max_loaded_models,
            max_memory_bytes,
        } = self.limits;
        if (max_loaded_models.is_none() && max_memory_bytes.is_none()) || incoming.is_resident() {
            return;
        }
        self.evict_until_fits(incoming);
    }

    /// Unloads least recently used idle models other than `incoming` until the resident ones
    /// and `incoming` fit the limits, or only busy ones are left.
    fn evict_until_fits(&self, incoming: &ModelEntry) {
        let ResidencyLimits {
            max_loaded_models,
            max_memory_bytes,
        } = self.limits;
        let _guard = self.evicting.lock().expect("eviction lock");
        loop {
            let resident: Vec<&ModelEntry> = self
                .models
                .iter()
                .filter(|m| m.is_resident() && !std::ptr::eq(*m, incoming))
                .collect();
            let memory: u64 = resident.iter().map(|m| m.memory_bytes()).sum();
            let over_count = max_loaded_models.is_some_and(|max| resident.len() + 1 > max);
            let over_memory =
                max_memory_bytes.is_some_and(|max| memory + incoming.memory_bytes() > max);
            if !over_count && !over_memory {
                return;
            }
            let victim = resident
                .iter()
                .filter(|m| m.is_idle())
                .min_by_key(|m| m.last_used());
            match victim {
                Some(v) if v.unload() => {
                    tracing::info!(model = %v.id, to_load = %incoming.id, "evicted least recently used model");
                }
                _ => {
                    tracing::warn!(model = %incoming.id, "loading over the model limits: every loaded model is busy");
                    return;
                }
            }
        }
    }

    /// The model named `name`, by id or alias; 404 listing the ids when there is none.
    pub fn entry(&self, name: &str) -> Result<&ModelEntry, ApiError> {
        self.models
            .iter()
            .find(|m| m.id == name || m.aliases.iter().any(|a| a == name))
            .ok_or_else(|| self.not_found(name))
    }

    /// What a generation request's `model` selects: a model, or a model and one of its LoRA
    /// adapters (`BASE:NAME` or an adapter alias).
    pub fn target(&self, name: &str) -> Result<(&ModelEntry, Option<String>), ApiError> {
        if let Ok(entry) = self.entry(name) {
            return Ok((entry, None));
        }
        self.models
            .iter()
            .find_map(|m| m.adapter_named(name).map(|a| (m, Some(a))))
            .ok_or_else(|| self.not_found(name))
    }

    fn not_found(&self, name: &str) -> ApiError {
        ApiError::ModelNotFound {
            model: name.to_string(),
            available: self.models.iter().flat_map(|m| m.names()).collect(),
        }
    }

    /// The backend serving `entry`, loading it (within the limits) if it is not loaded.
    pub async fn backend(&self, entry: &ModelEntry) -> Result<Arc<dyn Backend>, ApiError> {
        self.make_room(entry);
        let mut backend = entry.get_or_load().await?;
        if !backend.healthy() {
            // An inference worker died: load the model afresh for this request.
            tracing::error!(model = %entry.id, "model unhealthy (an inference worker died): reloading it");
            entry.unload();
            backend = entry.get_or_load().await?;
        }
        // The start-up estimate can be wrong (a Hub model is sized only once downloaded): the
        // loaded backend's own figure replaces it, and others make room if it no longer fits.
        let actual = backend.info().memory_bytes;
        if self.limits.max_memory_bytes.is_some() && entry.memory_bytes() != actual {
            entry.set_memory_bytes(actual);
            self.evict_until_fits(entry);
        }
        Ok(backend)
    }

    /// Healthy once every eager model is loaded.
    pub fn all_ready(&self) -> bool {
        self.models
            .iter()
            .filter(|m| m.eager)
            .all(|m| m.loaded().is_some())
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
