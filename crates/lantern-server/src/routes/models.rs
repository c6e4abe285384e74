//! `GET /v1/models` and `GET /v1/models/{id}`.

use axum::extract::{Path, State};
use axum::Json;
use lantern_api::models::{Model, ModelList};
use lantern_api::ErrorResponse;

use crate::error::ApiError;
use crate::state::{AppState, ModelEntry};

/// The entry under `name` (its id or an alias), with its load status.
fn to_model(entry: &ModelEntry, name: &str) -> Model {
    let created = entry.loaded().map_or(0, |b| b.info().created);
    let mut model = Model::new(name, created, entry.owned_by.clone());
    model.status = Some(entry.status().to_string());
    model.memory_bytes = entry
        .loaded()
        .map(|b| b.info().memory_bytes)
        .or(Some(entry.memory_bytes()))
        .filter(|&b| b > 0);
    model
}

/// Lists the models this server serves.
#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses(
        (status = 200, description = "The served models", body = ModelList),
        (status = 401, description = "Missing or wrong API key (when keys are configured)", body = ErrorResponse),
    ))]
pub async fn list(State(state): State<AppState>) -> Json<ModelList> {
    let all = state.models.iter().flat_map(|entry| {
        let base = std::iter::once(&entry.id)
            .chain(&entry.aliases)
            .map(move |name| to_model(entry, name));
        base.chain(adapter_models(entry))
    });
    Json(ModelList::new(all.collect()))
}

/// A model's LoRA adapters, each under `BASE:NAME` and its aliases, with the base as parent.
fn adapter_models(entry: &ModelEntry) -> Vec<Model> {
    let adapters = entry.adapters.lock().expect("adapters lock").clone();
    adapters
        .iter()
        .flat_map(|a| {
            std::iter::once(format!("{}:{}", entry.id, a.spec.name)).chain(a.aliases.clone())
        })
        .map(|name| {
            let mut model = to_model(entry, &name);
            model.parent = Some(entry.id.clone());
            model
        })
        .collect()
}

/// Retrieves one model by id.
#[utoipa::path(get, path = "/v1/models/{id}", tag = "models",
    params(("id" = String, Path, description = "Model id, as listed by GET /v1/models")),
    responses(
        (status = 200, description = "The model", body = Model),
        (status = 401, description = "Missing or wrong API key (when keys are configured)", body = ErrorResponse),
        (status = 404, description = "Unknown model", body = ErrorResponse),
    ))]
pub async fn retrieve(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Model>, ApiError> {
    let (entry, adapter) = state.target(&id)?;
    let mut model = to_model(entry, &id);
    model.parent = adapter.map(|_| entry.id.clone());
    Ok(Json(model))
}
