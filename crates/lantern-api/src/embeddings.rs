//! `POST /v1/embeddings` request and response.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validate::InvalidParam;

/// Request body of `POST /v1/embeddings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingRequest {
    pub model: String,
    pub input: EmbeddingInput,
    /// `float` (default) or `base64` (little-endian float32).
    #[serde(default)]
    pub encoding_format: Option<String>,
    /// Accepted only when it equals the model's embedding width.
    #[serde(default)]
    pub dimensions: Option<i64>,
    #[serde(default)]
    pub user: Option<String>,
}

/// `input`: a string, strings, a token array, or token arrays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

/// Most inputs in one request, as in the OpenAI API.
pub const MAX_EMBEDDING_INPUTS: usize = 2048;

impl EmbeddingRequest {
    pub fn is_base64(&self) -> bool {
        self.encoding_format.as_deref() == Some("base64")
    }

    pub fn validate(&self) -> Result<(), InvalidParam> {
        match self.encoding_format.as_deref() {
            None | Some("float") | Some("base64") => {}
            Some(other) => {
                return Err(InvalidParam::new(
                    "encoding_format",
                    format!("'{other}' is not a valid encoding_format: use 'float' or 'base64'."),
                ))
            }
        }
        let count = match &self.input {
            EmbeddingInput::Text(_) => 1,
            EmbeddingInput::Texts(v) => v.len(),
            EmbeddingInput::Tokens(v) => usize::from(!v.is_empty()),
            EmbeddingInput::TokenLists(v) => v.len(),
        };
        let empty = match &self.input {
            EmbeddingInput::Text(s) => s.is_empty(),
            EmbeddingInput::Texts(v) => v.is_empty() || v.iter().any(String::is_empty),
            EmbeddingInput::Tokens(v) => v.is_empty(),
            EmbeddingInput::TokenLists(v) => v.is_empty() || v.iter().any(Vec::is_empty),
        };
        if empty {
            return Err(InvalidParam::new(
                "input",
                "'input' must not be empty, nor contain empty items.",
            ));
        }
        if count > MAX_EMBEDDING_INPUTS {
            return Err(InvalidParam::new(
                "input",
                format!("'input' has {count} items; at most {MAX_EMBEDDING_INPUTS} are allowed."),
            ));
        }
        Ok(())
    }
}

/// Response body of `POST /v1/embeddings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingResponse {
    /// Always `list`.
    pub object: String,
    pub data: Vec<EmbeddingData>,
    pub model: String,
    pub usage: EmbeddingUsage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingData {
    /// Always `embedding`.
    pub object: String,
    pub index: u32,
    pub embedding: EmbeddingVector,
}

/// The vector as floats, or as base64 of little-endian float32s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingVector {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingUsage {
    pub prompt_tokens: u32,
    pub total_tokens: u32,
}
