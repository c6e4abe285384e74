//! The seam between HTTP handlers and inference, in the style of TGI's `Backend::schedule`.

use std::path::PathBuf;

use async_trait::async_trait;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::tools::OutputFormat;
use crate::{EngineError, Event, GenerateRequest};

/// Events of one choice. Dropping it cancels the choice and frees its slot.
pub type EventStream = UnboundedReceiver<Event>;

/// A scheduled request: one event stream per choice, and how to read their text.
#[derive(Debug)]
pub struct Generation {
    pub choices: Vec<EventStream>,
    pub format: OutputFormat,
    /// Tokens of the prepared prompt (known before any is decoded).
    pub prompt_tokens: u32,
}

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
    pub n_vocab: u32,
    /// Width of the model's embeddings.
    pub n_embd: u32,
    /// Serves embeddings only (no generation context).
    pub embeddings_only: bool,
}

/// A LoRA adapter to serve on a model.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSpec {
    /// Its name on the model (served as the model id `BASE:NAME`).
    pub name: String,
    /// A GGUF LoRA adapter made for the model.
    pub path: PathBuf,
    /// Multiplies the adapter's effect (0: the base model's output).
    pub scale: f32,
}

/// A loaded adapter and its traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterInfo {
    pub spec: LoraSpec,
    /// Requests of this adapter in slots.
    pub running: usize,
    /// Requests of this adapter queued for a slot.
    pub waiting: usize,
    /// Requests served since it was loaded.
    pub requests: u64,
}

/// One input to embed.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbedInput {
    Text(String),
    Tokens(Vec<u32>),
}

/// A pooled, L2-normalised embedding and the tokens it was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    pub vector: Vec<f32>,
    pub tokens: u32,
}

fn unsupported(what: &str) -> EngineError {
    EngineError::InvalidRequest {
        message: format!("This model does not support {what}."),
        param: Some("model".into()),
    }
}

/// A model's workers right now: sequences in slots, requests waiting for one, and KV cells
/// used by running sequences out of all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub running: u32,
    pub waiting: u32,
    pub kv_used: u64,
    pub kv_total: u64,
    /// Speculative draft tokens verified, and accepted, since the model was loaded.
    pub drafted: u64,
    pub accepted: u64,
}

/// Something that generates text for requests.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    fn info(&self) -> &ModelInfo;

    /// Requests running or queued. A model at 0 is idle: it may be unloaded or evicted.
    fn load(&self) -> usize {
        0
    }

    /// False once an inference worker died (a panic): the server reloads the model.
    fn healthy(&self) -> bool {
        true
    }

    /// What the workers are doing now, for metrics.
    fn stats(&self) -> EngineStats {
        EngineStats::default()
    }

    /// Prepares the prompt (template, tokenization, grammar) off the async runtime and queues
    /// the request. Errors here are the request's fault or the engine being gone; errors
    /// after this arrive as [`Event::Error`].
    async fn schedule(&self, request: GenerateRequest) -> Result<Generation, EngineError>;

    /// Tokens the prompt takes once prepared (chat template, tools), without generating.
    async fn count_tokens(&self, _prompt: crate::Prompt) -> Result<u32, EngineError> {
        Err(unsupported("token counting"))
    }

    /// The LoRA adapters loaded on this model.
    fn adapters(&self) -> Vec<AdapterInfo> {
        Vec::new()
    }

    /// Loads a LoRA adapter, checked against the model, off the async runtime.
    async fn load_adapter(&self, _spec: LoraSpec) -> Result<AdapterInfo, EngineError> {
        Err(unsupported("LoRA adapters"))
    }

    /// Unloads an adapter no request is using.
    fn unload_adapter(&self, name: &str) -> Result<(), EngineError> {
        Err(EngineError::AdapterNotFound { name: name.into() })
    }

    /// The model's tokens for `text`.
    fn tokenize(&self, _text: &str, _add_special: bool) -> Result<Vec<u32>, EngineError> {
        Err(unsupported("tokenization"))
    }

    /// The text of `tokens` (special tokens rendered).
    fn detokenize(&self, _tokens: &[u32]) -> Result<String, EngineError> {
        Err(unsupported("detokenization"))
    }

    /// One embedding per input, in order.
    async fn embed(&self, _inputs: Vec<EmbedInput>) -> Result<Vec<Embedding>, EngineError> {
        Err(unsupported("embeddings"))
    }
}
