//! The Lantern HTTP server: axum routes for the OpenAI API, error mapping, SSE streaming,
//! configuration and start-up. Inference happens behind [`lantern_engine::Backend`].

pub mod app;
pub mod auth;
pub mod bench;
pub mod cache;
pub mod config;
pub mod download;
pub mod error;
mod extract;
pub mod lifecycle;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod output;
pub mod quantize;
pub mod response_store;
mod routes;
pub mod serve;
mod sse;
pub mod state;
mod wire;

pub use app::router;
pub use config::ServeConfig;
pub use error::ApiError;
pub use state::{AppState, ModelEntry};
