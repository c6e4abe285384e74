//! `POST /v1/embeddings`: pooled, L2-normalised vectors from the model's embedding context,
//! as floats or base64 (little-endian float32, what both official SDKs ask for by default).

use axum::extract::State;
use axum::Json;
use base64::Engine as _;
use lantern_api::embeddings::{
    EmbeddingData, EmbeddingInput, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage,
    EmbeddingVector,
};
use lantern_api::ErrorResponse;
use lantern_engine::EmbedInput;

use crate::error::ApiError;
use crate::extract::Checked;
use crate::state::AppState;

fn inputs(input: EmbeddingInput) -> Vec<EmbedInput> {
    match input {
        EmbeddingInput::Text(s) => vec![EmbedInput::Text(s)],
        EmbeddingInput::Texts(v) => v.into_iter().map(EmbedInput::Text).collect(),
        EmbeddingInput::Tokens(t) => vec![EmbedInput::Tokens(t)],
        EmbeddingInput::TokenLists(v) => v.into_iter().map(EmbedInput::Tokens).collect(),
    }
}

fn base64_f32(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Creates an embedding vector for each input.
#[utoipa::path(
    post,
    path = "/v1/embeddings",
    tag = "embeddings",
    request_body = EmbeddingRequest,
    responses(
        (status = 200, description = "One embedding per input, in order", body = EmbeddingResponse),
        (status = 400, description = "Invalid request, an input too long, or `dimensions` the model cannot give", body = ErrorResponse),
        (status = 401, description = "Missing or wrong API key (when keys are configured)", body = ErrorResponse),
        (status = 404, description = "Unknown model", body = ErrorResponse),
        (status = 413, description = "Body too large", body = ErrorResponse),
        (status = 503, description = "Model loading, or the server shutting down", body = ErrorResponse),
    )
)]
pub async fn embeddings(
    State(state): State<AppState>,
    Checked { req, .. }: Checked<EmbeddingRequest>,
) -> Result<Json<EmbeddingResponse>, ApiError> {
    req.validate()?;
    let entry = state.entry(&req.model)?;
    let _hold = entry.hold();
    let backend = state.backend(entry).await?;
    let width = backend.info().n_embd;
    if let Some(d) = req.dimensions {
        if d != i64::from(width) {
            return Err(ApiError::invalid(
                format!("This model's embeddings have {width} dimensions and cannot be shortened; omit 'dimensions' or set it to {width}."),
                Some("dimensions".into()),
            ));
        }
    }
    let base64 = req.is_base64();
    let embedded = backend.embed(inputs(req.input)).await?;
    let tokens: u32 = embedded.iter().map(|e| e.tokens).sum();
    let data = embedded
        .into_iter()
        .enumerate()
        .map(|(i, e)| EmbeddingData {
            object: "embedding".into(),
            index: i as u32,
            embedding: if base64 {
                EmbeddingVector::Base64(base64_f32(&e.vector))
            } else {
                EmbeddingVector::Float(e.vector)
            },
        })
        .collect();
    Ok(Json(EmbeddingResponse {
        object: "list".into(),
        data,
        model: req.model,
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_little_endian_f32() {
        let encoded = base64_f32(&[1.0, -2.5]);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        assert_eq!(
            bytes,
            [1.0f32.to_le_bytes(), (-2.5f32).to_le_bytes()].concat()
        );
    }
}
