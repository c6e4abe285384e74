//! `GET /v1/models` and `GET /v1/models/{id}`.

use axum::extract::{Path, State};
use axum::Json;
use lantern_api::models::{Model, ModelList};
use lantern_api::ErrorResponse;

use crate::error::ApiError;
use crate::state::{AppState, ModelEntry};

fn to_model(entry: &ModelEntry) -> Model {
    let created = entry.backend().map_or(0, |b| b.info().created);
    Model::new(entry.id.clone(), created, entry.owned_by.clone())
}

/// Lists the models this server serves.
#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses((status = 200, description = "The served models", body = ModelList)))]
pub async fn list(State(state): State<AppState>) -> Json<ModelList> {
    Json(ModelList::new(state.models.iter().map(to_model).collect()))
}

/// Retrieves one model by id.
#[utoipa::path(get, path = "/v1/models/{id}", tag = "models",
    params(("id" = String, Path, description = "Model id, as listed by GET /v1/models")),
    responses(
        (status = 200, description = "The model", body = Model),
        (status = 404, description = "Unknown model", body = ErrorResponse),
    ))]
pub async fn retrieve(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Model>, ApiError> {
    Ok(Json(to_model(state.entry(&id)?)))
}
