//! `POST /tokenize` and `POST /detokenize` (also under `/v1/`), in llama-server's shapes.

use axum::extract::State;
use axum::Json;
use lantern_api::tokenize::{
    DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse,
};
use lantern_api::ErrorResponse;
use serde_json::json;

use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::state::{AppState, ModelEntry};

/// The named model, or the only one served.
fn model<'s>(state: &'s AppState, name: Option<&str>) -> Result<&'s ModelEntry, ApiError> {
    match name {
        Some(name) => state.entry(name),
        None if state.models.len() == 1 => Ok(&state.models[0]),
        None => Err(ApiError::invalid(
            "This server serves several models: name one in 'model'.",
            Some("model".into()),
        )),
    }
}

/// Tokenizes text with the model's vocabulary.
#[utoipa::path(post, path = "/tokenize", tag = "tokens", request_body = TokenizeRequest,
    responses(
        (status = 200, description = "Token ids (or `{id, piece}` with `with_pieces`)", body = TokenizeResponse),
        (status = 400, description = "Invalid request", body = ErrorResponse),
        (status = 401, description = "Missing or wrong API key (when keys are configured)", body = ErrorResponse),
        (status = 404, description = "Unknown model", body = ErrorResponse),
    ))]
pub async fn tokenize(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<TokenizeRequest>,
) -> Result<Json<TokenizeResponse>, ApiError> {
    let entry = model(&state, req.model.as_deref())?;
    let _hold = entry.hold();
    let backend = state.backend(entry).await?;
    let ids = backend.tokenize(&req.content, req.add_special)?;
    let tokens = if req.with_pieces {
        ids.iter()
            .map(|&id| {
                let piece = backend.detokenize(&[id])?;
                Ok(json!({"id": id, "piece": piece}))
            })
            .collect::<Result<Vec<_>, ApiError>>()?
    } else {
        ids.into_iter().map(|id| json!(id)).collect()
    };
    Ok(Json(TokenizeResponse { tokens }))
}

/// Turns token ids back into text.
#[utoipa::path(post, path = "/detokenize", tag = "tokens", request_body = DetokenizeRequest,
    responses(
        (status = 200, description = "The text", body = DetokenizeResponse),
        (status = 400, description = "Invalid request or a token outside the vocabulary", body = ErrorResponse),
        (status = 401, description = "Missing or wrong API key (when keys are configured)", body = ErrorResponse),
        (status = 404, description = "Unknown model", body = ErrorResponse),
    ))]
pub async fn detokenize(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<DetokenizeRequest>,
) -> Result<Json<DetokenizeResponse>, ApiError> {
    let entry = model(&state, req.model.as_deref())?;
    let _hold = entry.hold();
    let backend = state.backend(entry).await?;
    Ok(Json(DetokenizeResponse {
        content: backend.detokenize(&req.tokens)?,
    }))
}
