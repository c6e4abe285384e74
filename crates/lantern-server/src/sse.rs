//! Generation results as HTTP: collecting choices for a JSON response, or streaming them as
//! Server-Sent Events framed exactly like OpenAI's (`data: {json}\n\n`, `data: [DONE]`).

use std::convert::Infallible;
use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use lantern_api::{FinishReason, Usage};
use lantern_engine::{EngineError, Event, EventStream};

use crate::error::ApiError;
use crate::output::{
    total_usage, ChoiceDelta, ChoiceSource, ChoiceState, FinishedChoice, RawChoice,
};

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

/// Called with every choice's raw output once a stream has finished successfully.
pub type OnComplete = Box<dyn FnOnce(Vec<RawChoice>) + Send>;

fn worker_vanished() -> ApiError {
    ApiError::Engine(EngineError::WorkerGone)
}

/// Waits for a choice to finish and parses it.
pub async fn collect(
    mut source: ChoiceSource,
    logprobs: bool,
) -> Result<(FinishedChoice, RawChoice), ApiError> {
    let mut state = ChoiceState::new(&mut source, logprobs, true);
    while let Some(event) = source.events.recv().await {
        match event {
            Event::Delta(d) => {
                state.push(d);
            }
            Event::Done {
                finish_reason,
                usage,
            } => {
                state.finish(finish_reason, usage);
                return Ok(state.into_parts());
            }
            Event::Error(e) => return Err(e.into()),
        }
    }
    Err(worker_vanished())
}

/// How one endpoint renders its stream chunks (already serialized to JSON).
pub trait ChunkFormat: Send + 'static {
    /// Sent for each choice before any token (chat: the `role` delta).
    fn opening(&self, index: u32) -> Option<String>;
    /// The chunks for one delta of choice `index`.
    fn delta(&self, index: u32, delta: ChoiceDelta, out: &mut Vec<String>);
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
    sources: Vec<ChoiceSource>,
    logprobs: bool,
    include_usage: bool,
    on_complete: Option<OnComplete>,
    cut: impl Future<Output = ()> + Send + 'static,
) -> Response {
    let n = sources.len();
    // Raw output is kept only when someone wants it (the cache).
    let keep = on_complete.is_some();
    let mut sources = sources;
    let mut states: Vec<ChoiceState> = sources
        .iter_mut()
        .map(|s| ChoiceState::new(s, logprobs, keep))
        .collect();
    let mut merged = stream::select_all(sources.into_iter().enumerate().map(|(i, s)| {
        receiver_stream(s.events)
            .map(move |e| (i as u32, e))
            .boxed()
    }));
    let body = async_stream::stream! {
        for i in 0..n as u32 {
            if let Some(chunk) = format.opening(i) {
                yield chunk;
            }
        }
        let mut finished = vec![false; n];
        let mut chunks = Vec::new();
        let mut cut = Box::pin(cut);
        loop {
            // The shutdown grace period ending cuts the stream with an error event.
            let next = tokio::select! {
                biased;
                () = &mut cut => None,
                next = merged.next() => Some(next),
            };
            let Some(next) = next else {
                yield error_data(ApiError::ShuttingDown);
                return;
            };
            let Some((i, event)) = next else { break };
            let state = &mut states[i as usize];
            match event {
                Event::Delta(d) => {
                    let delta = state.push(d);
                    if !delta.is_empty() {
                        format.delta(i, delta, &mut chunks);
                    }
                }
                Event::Done { finish_reason, usage } => {
                    let (delta, reason) = state.finish(finish_reason, usage);
                    if !delta.is_empty() {
                        format.delta(i, delta, &mut chunks);
                    }
                    chunks.push(format.finish(i, reason));
                    finished[i as usize] = true;
                }
                Event::Error(e) => {
                    yield error_data(e.into());
                    return;
                }
            }
            for chunk in chunks.drain(..) {
                yield chunk;
            }
        }
        if finished.iter().any(|f| !f) {
            yield error_data(worker_vanished());
            return;
        }
        if include_usage {
            let done: Vec<_> = states.iter().map(|s| s.finished()).collect();
            yield format.usage(total_usage(done.iter().map(|c| (c.prompt, &c.usage))));
        }
        if let Some(sink) = on_complete {
            sink(states.into_iter().map(|s| s.into_parts().1).collect());
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
