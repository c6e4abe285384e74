//! `/v1/models` types.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One model, as `GET /v1/models/{id}` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Model {
    pub id: String,
    /// Always `model`.
    pub object: String,
    /// Unix seconds when the model was loaded.
    pub created: u64,
    pub owned_by: String,
    /// Extension: `loaded`, `loading`, `unloaded`, or `unhealthy` (an inference worker died;
    /// the next request reloads it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl Model {
    pub fn new(id: impl Into<String>, created: u64, owned_by: impl Into<String>) -> Self {
        Model {
            id: id.into(),
            object: "model".into(),
            created,
            owned_by: owned_by.into(),
            status: None,
        }
    }
}

/// `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: String,
    pub data: Vec<Model>,
}

impl ModelList {
    pub fn new(data: Vec<Model>) -> Self {
        ModelList {
            object: "list".into(),
            data,
        }
    }
}
