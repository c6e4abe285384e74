//! Shared state of the HTTP layer: the served models and their backends.

use std::sync::{Arc, OnceLock};

use lantern_engine::Backend;

use crate::error::ApiError;

/// One servable model. `backend` is empty while the model loads.
pub struct ModelEntry {
    pub id: String,
    pub owned_by: String,
    backend: OnceLock<Arc<dyn Backend>>,
}

impl ModelEntry {
    pub fn new(id: impl Into<String>) -> Self {
        ModelEntry {
            id: id.into(),
            owned_by: "lantern".into(),
            backend: OnceLock::new(),
        }
    }

    /// Marks the model ready. Returns false if it already was.
    pub fn set_ready(&self, backend: Arc<dyn Backend>) -> bool {
        self.backend.set(backend).is_ok()
    }

    pub fn backend(&self) -> Option<&Arc<dyn Backend>> {
        self.backend.get()
    }
}

#[derive(Clone)]
pub struct AppState {
    pub models: Arc<Vec<ModelEntry>>,
    pub max_body_bytes: usize,
}

impl AppState {
    pub fn new(models: Vec<ModelEntry>, max_body_bytes: usize) -> Self {
        AppState {
            models: Arc::new(models),
            max_body_bytes,
        }
    }

    pub fn entry(&self, id: &str) -> Result<&ModelEntry, ApiError> {
        self.models
            .iter()
            .find(|m| m.id == id)
            .ok_or_else(|| ApiError::ModelNotFound {
                model: id.to_string(),
                available: self.models.iter().map(|m| m.id.clone()).collect(),
            })
    }

    /// The backend serving `model`: 404 if unknown, 503 while it loads.
    pub fn backend(&self, model: &str) -> Result<Arc<dyn Backend>, ApiError> {
        let entry = self.entry(model)?;
        entry
            .backend()
            .cloned()
            .ok_or_else(|| ApiError::ModelLoading(entry.id.clone()))
    }

    pub fn all_ready(&self) -> bool {
        self.models.iter().all(|m| m.backend().is_some())
    }
}
