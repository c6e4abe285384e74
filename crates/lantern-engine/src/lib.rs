//! Everything llama.cpp: model loading, the continuous-batching scheduler, sampling, chat
//! templates and detokenization. Knows nothing of HTTP.
//!
//! One dedicated OS thread per loaded model owns the `LlamaContext`; callers talk to it through
//! the [`Backend`] trait: [`Backend::schedule`] returns a per-request event channel, and
//! dropping the receiver cancels the request.

mod backend;
mod chat_template;
mod detokenize;
mod draft;
mod error;
mod grammar;
mod llama;
mod request;
mod sampling;
mod scheduler;
mod slot;
mod step_cost;
mod stop;
pub mod tools;

pub use backend::{
    AdapterInfo, Backend, EmbedInput, Embedding, EngineStats, EventStream, Generation, LoraSpec,
    ModelInfo,
};
pub use chat_template::{ChatTemplate, ChatTurn, TemplateCaps};
pub use draft::{SpecConfig, SpecMode};
pub use error::EngineError;
pub use llama::{
    check_model_file, default_threads, estimate_memory, evaluate, quantize, EngineConfig,
    EvalConfig, EvalResult, LlamaEngine, QuantType, Reference, DEFAULT_BATCH_SIZE,
    DEFAULT_CTX_SIZE, DEFAULT_PARALLEL, QUANT_TYPES,
};
pub use request::{
    ChatPrompt, Delta, Event, FinishReason, GenerateRequest, Grammar, Prompt, SamplingParams,
    TokenLogprob, TokenUsage, ToolChoice, TopLogprob,
};
pub use sampling::MAX_TOP_LOGPROBS;
