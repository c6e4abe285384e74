//! The seam between HTTP handlers and inference, in the style of TGI's `Backend::schedule`.

use std::path::PathBuf;

use async_trait::async_trait;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::{EngineError, Event, GenerateRequest};

/// Events of one request. Dropping it cancels the request and frees its slot.
pub type EventStream = UnboundedReceiver<Event>;

/// Facts about a loaded model that callers need.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub path: PathBuf,
    /// KV tokens available to one sequence (prompt + completion).
    pub n_ctx_per_seq: u32,
    /// Sequences decoded together.
    pub parallel: u32,
    /// Unix seconds at load.
    pub created: u64,
    /// Estimated bytes held while loaded: the weights plus every replica's buffers.
    pub memory_bytes: u64,
}

/// Something that generates text for requests.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    fn info(&self) -> &ModelInfo;

    /// Requests running or queued. A model at 0 is idle: it may be unloaded or evicted.
    fn load(&self) -> usize {
        0
    }

    /// Prepares the prompt (template, tokenization) off the async runtime and queues the
    /// request. Errors here are the request's fault or the engine being gone; errors after
    /// this arrive as [`Event::Error`].
    async fn schedule(&self, request: GenerateRequest) -> Result<EventStream, EngineError>;
}
