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
    /// Extension: the memory the model takes (or would take) while loaded, estimated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// For a LoRA adapter (`BASE:NAME`): the base model's id, as vLLM reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

impl Model {
    pub fn new(id: impl Into<String>, created: u64, owned_by: impl Into<String>) -> Self {
        Model {
            id: id.into(),
            object: "model".into(),
            created,
            owned_by: owned_by.into(),
            status: None,
            memory_bytes: None,
            parent: None,
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

/// A LoRA adapter served on a model (`GET /v1/lora-adapters`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LoraAdapter {
    /// The model id that selects it: `BASE:NAME`.
    pub id: String,
    /// Always `lora_adapter`.
    pub object: String,
    /// The base model's id.
    pub model: String,
    pub name: String,
    /// The GGUF adapter file.
    pub path: String,
    pub scale: f64,
    pub aliases: Vec<String>,
    /// The base model's status: the adapter is applied while the model is `loaded`.
    pub status: String,
    /// Requests of this adapter in slots now.
    pub running: u64,
    /// Requests of this adapter waiting for a slot.
    pub waiting: u64,
    /// Requests served since it was loaded.
    pub requests: u64,
}

/// `GET /v1/lora-adapters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LoraAdapterList {
    /// Always `list`.
    pub object: String,
    pub data: Vec<LoraAdapter>,
}

/// `POST /v1/lora-adapters`: load a GGUF LoRA adapter onto a served model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadLoraAdapterRequest {
    /// The base model's id (or alias).
    pub model: String,
    /// Served as `MODEL:NAME`; letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// A GGUF LoRA adapter file on the server, made for this model.
    pub path: String,
    /// Multiplies the adapter's effect (0: the base model's output).
    #[serde(default)]
    pub scale: Option<f64>,
}
