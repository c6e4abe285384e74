//! The fake backend and request helpers the HTTP-layer tests share.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use lantern_engine::tools::OutputFormat;
use lantern_engine::{
    Backend, Delta, EngineError, Event, FinishReason, GenerateRequest, Generation, ModelInfo,
    Prompt, TokenUsage,
};
use lantern_server::cache::{CacheConfig, ResponseCache};
use lantern_server::{router, AppState, ModelEntry};
use tower::ServiceExt;

/// Replies with fixed events; `panic` makes `schedule` panic.
pub struct Fake {
    info: ModelInfo,
    events: Vec<Event>,
    panic: bool,
    format: OutputFormat,
}

#[async_trait]
impl Backend for Fake {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    async fn schedule(&self, request: GenerateRequest) -> Result<Generation, EngineError> {
        assert!(!self.panic, "fake backend panicked on purpose");
        if let Prompt::Text(t) = &request.prompt {
            if t == "too long" {
                return Err(EngineError::ContextLengthExceeded {
                    limit: 10,
                    requested: 20,
                    param: "prompt",
                });
            }
        }
        // Every choice replays the same events.
        let choices = (0..request.n)
            .map(|_| {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                for e in &self.events {
                    tx.send(e.clone()).unwrap();
                }
                rx
            })
            .collect();
        Ok(Generation {
            choices,
            format: self.format,
            prompt_tokens: 3,
        })
    }
}

pub fn done() -> Event {
    Event::Done {
        finish_reason: FinishReason::Stop,
        usage: TokenUsage {
            prompt_tokens: 3,
            completion_tokens: 2,
            cached_tokens: 0,
            ..Default::default()
        },
    }
}

pub fn text(t: &str) -> Event {
    Event::Delta(Delta::text(t))
}

pub fn app_with(events: Vec<Event>, panic: bool, ready: bool) -> axum::Router {
    app_with_format(events, panic, ready, OutputFormat::default())
}

pub fn app_with_format(
    events: Vec<Event>,
    panic: bool,
    ready: bool,
    format: OutputFormat,
) -> axum::Router {
    let entry = ModelEntry::new("fake");
    if ready {
        entry.set_ready(Arc::new(Fake {
            info: ModelInfo {
                path: PathBuf::from("fake.gguf"),
                n_ctx_per_seq: 128,
                parallel: 1,
                created: 1_700_000_000,
                memory_bytes: 0,
                n_vocab: 100,
                n_embd: 8,
                embeddings_only: false,
            },
            events,
            panic,
            format,
        }));
    }
    router(AppState::new(
        vec![entry],
        4096,
        ResponseCache::new(&CacheConfig::default()),
    ))
}

pub fn app() -> axum::Router {
    app_with(vec![text("Hel"), text("lo"), done()], false, true)
}

pub async fn send(
    app: axum::Router,
    method: &str,
    uri: &str,
    body: &str,
) -> (StatusCode, String, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    let status = res.status();
    let ctype = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, ctype, String::from_utf8(bytes.to_vec()).unwrap())
}
