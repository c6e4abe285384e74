//! OpenAI-compatible wire types: what goes over HTTP, field for field as the official
//! OpenAI schema names it. Nothing here knows about llama.cpp or axum.

pub mod chat;
pub mod common;
pub mod completions;
pub mod embeddings;
pub mod error;
pub mod fields;
pub mod logprobs;
pub mod messages;
pub mod models;
pub mod responses;
pub mod tokenize;
pub mod tools;
mod validate;

pub use common::{
    stream_usage, CompletionTokensDetails, FinishReason, Prediction, PredictionContent,
    PredictionPart, PromptTokensDetails, StopSequences, StreamOptions, Usage,
};
pub use error::{ErrorBody, ErrorResponse};
pub use validate::{InvalidParam, MAX_STOP_SEQUENCES};
