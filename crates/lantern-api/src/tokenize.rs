//! `POST /tokenize` and `POST /detokenize`, in llama-server's shapes (also under `/v1/`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenizeRequest {
    /// Optional when the server serves one model.
    #[serde(default)]
    pub model: Option<String>,
    pub content: String,
    /// Add the model's BOS (and other special tokens it adds). Default false, as llama-server.
    #[serde(default)]
    pub add_special: bool,
    /// Return `{id, piece}` objects instead of bare ids.
    #[serde(default)]
    pub with_pieces: bool,
}

/// `tokens`: ids, or `{id, piece}` with `with_pieces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenizeResponse {
    #[schema(value_type = Vec<TokenEntry>)]
    pub tokens: Vec<serde_json::Value>,
}

/// One entry of `tokens` (documents the response shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TokenEntry {
    Id(u32),
    WithPiece { id: u32, piece: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetokenizeRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub tokens: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DetokenizeResponse {
    pub content: String,
}
