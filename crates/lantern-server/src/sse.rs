//! Generation results as HTTP: collecting events for a JSON response, or streaming them as
//! Server-Sent Events framed exactly like OpenAI's (`data: {json}\n\n`, `data: [DONE]`).

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use lantern_api::{FinishReason, Usage};
use lantern_engine::{EngineError, Event, EventStream, TokenUsage};
use tokio::sync::mpsc::unbounded_channel;

use crate::error::ApiError;
use crate::routes::{finish_reason, usage};

/// `id`, `created` and `model`, identical in every chunk of one response.
#[derive(Debug, Clone)]
pub struct ResponseMeta {
    pub id: String,
    pub created: u64,
    pub model: String,
}

impl ResponseMeta {
    pub fn new(prefix: &str, model: &str) -> Self {
        ResponseMeta {
            id: format!("{prefix}-{}", uuid::Uuid::new_v4().simple()),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            model: model.to_string(),
        }
    }
}

/// One finished choice: what a response is rendered from, and what the cache stores.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub finish_reason: lantern_engine::FinishReason,
    pub usage: TokenUsage,
}

/// Called with every choice once a stream has finished successfully.
pub type OnComplete = Box<dyn FnOnce(Vec<Completion>) + Send>;

/// Event streams that replay finished choices, for serving a cached response through the same
/// SSE path as a live one.
pub fn replay(choices: &[Completion]) -> Vec<EventStream> {
    choices
        .iter()
        .map(|c| {
            let (tx, rx) = unbounded_channel();
            let _ = tx.send(Event::Text(c.text.clone()));
            let _ = tx.send(Event::Done {
                finish_reason: c.finish_reason,
                usage: c.usage,
            });
            rx
        })
        .collect()
}

fn worker_vanished() -> ApiError {
    ApiError::Engine(EngineError::WorkerGone)
}

/// Waits for a request to finish and gathers its text.
pub async fn collect(mut events: EventStream) -> Result<Completion, ApiError> {
    let mut text = String::new();
    while let Some(event) = events.recv().await {
        match event {
            Event::Text(t) => text.push_str(&t),
            Event::Done {
                finish_reason,
                usage,
            } => {
                return Ok(Completion {
                    text,
                    finish_reason,
                    usage,
                })
            }
            Event::Error(e) => return Err(e.into()),
        }
    }
    Err(worker_vanished())
}

pub fn total_usage<'a>(parts: impl IntoIterator<Item = &'a TokenUsage>) -> Usage {
    let mut sum = TokenUsage::default();
    for u in parts {
        sum.prompt_tokens += u.prompt_tokens;
        sum.completion_tokens += u.completion_tokens;
        sum.cached_tokens += u.cached_tokens;
    }
    usage(sum)
}

/// How one endpoint renders its stream chunks (already serialized to JSON).
pub trait ChunkFormat: Send + 'static {
    /// Sent for each choice before any token (chat: the `role` delta).
    fn opening(&self, index: u32) -> Option<String>;
    fn text(&self, index: u32, text: String) -> String;
    fn finish(&self, index: u32, reason: FinishReason) -> String;
    /// The last chunk with `stream_options.include_usage`.
    fn usage(&self, usage: Usage) -> String;
}

fn receiver_stream(rx: EventStream) -> impl Stream<Item = Event> {
    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) })
}

fn error_data(error: ApiError) -> String {
    tracing::error!(%error, "generation failed mid-stream");
    serde_json::to_string(&error.envelope()).unwrap_or_default()
}

/// Streams the choices as SSE. Dropping the response (client gone) drops the receivers,
/// which cancels generation.
pub fn sse_response<F: ChunkFormat>(
    format: F,
    choices: Vec<EventStream>,
    include_usage: bool,
    on_complete: Option<OnComplete>,
) -> Response {
    let n = choices.len();
    let mut merged = stream::select_all(
        choices
            .into_iter()
            .enumerate()
            .map(|(i, rx)| receiver_stream(rx).map(move |e| (i as u32, e)).boxed()),
    );
    let body = async_stream::stream! {
        for i in 0..n as u32 {
            if let Some(chunk) = format.opening(i) {
                yield chunk;
            }
        }
        // Texts are kept only when someone wants the finished choices (the cache).
        let keep = on_complete.is_some();
        let mut texts = vec![String::new(); if keep { n } else { 0 }];
        let mut finished: Vec<Option<(lantern_engine::FinishReason, TokenUsage)>> = vec![None; n];
        while let Some((i, event)) = merged.next().await {
            match event {
                Event::Text(text) => {
                    if keep {
                        texts[i as usize].push_str(&text);
                    }
                    yield format.text(i, text);
                }
                Event::Done { finish_reason: reason, usage } => {
                    finished[i as usize] = Some((reason, usage));
                    yield format.finish(i, finish_reason(reason));
                }
                Event::Error(e) => {
                    yield error_data(e.into());
                    return;
                }
            }
        }
        let Some(finished) = finished.into_iter().collect::<Option<Vec<_>>>() else {
            yield error_data(worker_vanished());
            return;
        };
        if include_usage {
            yield format.usage(total_usage(finished.iter().map(|(_, u)| u)));
        }
        if let Some(sink) = on_complete {
            sink(texts
                .into_iter()
                .zip(finished)
                .map(|(text, (finish_reason, usage))| Completion { text, finish_reason, usage })
                .collect());
        }
        yield "[DONE]".to_string();
    };
    let events = body.map(|data| Ok::<_, Infallible>(SseEvent::default().data(data)));
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    // Tell reverse proxies (nginx) not to buffer the stream.
    response
        .headers_mut()
        .insert("x-accel-buffering", "no".parse().expect("static header"));
    response
}
