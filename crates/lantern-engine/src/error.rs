//! The engine's one error type.

use std::path::PathBuf;

/// Everything that can go wrong below the HTTP layer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("model file {path} not found")]
    ModelNotFound { path: PathBuf },
    #[error("cannot read model file {path}: {reason}")]
    ModelUnreadable { path: PathBuf, reason: String },
    #[error("failed to load model {path}: {reason}")]
    ModelLoad { path: PathBuf, reason: String },
    #[error("failed to create the inference context: {0}")]
    Context(String),
    /// The request itself is unusable (bad template input, empty prompt, ...).
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
    #[error("This model's maximum context length is {limit} tokens per sequence. However, your request has {requested} prompt tokens. Please reduce the length of the {param}.")]
    ContextLengthExceeded {
        limit: u32,
        requested: u32,
        param: &'static str,
    },
    #[error("chat template error: {0}")]
    Template(String),
    #[error("decode failed: {0}")]
    Decode(String),
    /// Constrained decoding could not go on (the grammar allows no token, or rejected one).
    #[error("structured output failed: {0}")]
    Grammar(String),
    #[error("quantization failed: {0}")]
    Quantize(String),
    #[error("The model has no LoRA adapter named '{name}'.")]
    AdapterNotFound { name: String },
    #[error("A LoRA adapter named '{name}' is already loaded on this model; unload it first.")]
    AdapterExists { name: String },
    #[error("The LoRA adapter '{name}' is in use by {requests} running or queued requests; unload it once they finish.")]
    AdapterInUse { name: String, requests: usize },
    #[error("the inference worker has stopped")]
    WorkerGone,
    #[error("The server is busy: {outstanding} requests are running or queued for this model (limit {limit}). Retry shortly.")]
    QueueFull { outstanding: usize, limit: usize },
}
