//! `GET /health`: 200 once every model is loaded, 503 before.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `loading`, `unhealthy` (a model's inference worker died; the next request to it
    /// reloads it) or `draining` (shutting down).
    pub status: &'static str,
}

/// Liveness and readiness.
#[utoipa::path(get, path = "/health", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Still loading the model, or shutting down", body = Health),
    ))]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    if state.lifecycle.is_draining() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health { status: "draining" }),
        )
    } else if state.models.iter().any(|m| m.status() == "unhealthy") {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "unhealthy",
            }),
        )
    } else if state.all_ready() {
        (StatusCode::OK, Json(Health { status: "ok" }))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health { status: "loading" }),
        )
    }
}
