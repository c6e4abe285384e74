//! Generation results as HTTP: collecting choices for a JSON response, or streaming them as
//! Server-Sent Events framed exactly like OpenAI's (`data: {json}\n\n`, `data: [DONE]`).

use std::convert::Infallible;
use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use lantern_engine::{EngineError, Event, EventStream};

use crate::error::ApiError;
use crate::output::{ChoiceDelta, ChoiceSource, ChoiceState, FinishedChoice, RawChoice};

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

/// One server-sent event: an optional `event:` name (the Responses and Anthropic streams
/// name every event; chat and completions send bare `data:`) and its data.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub event: Option<&'static str>,
    pub data: String,
}

impl Frame {
    pub fn data(data: String) -> Self {
        Frame { event: None, data }
    }

    pub fn named(event: &'static str, data: String) -> Self {
        Frame {
            event: Some(event),
            data,
        }
    }
}

/// How one endpoint renders its stream: every method gets the parsed choice output and adds
/// events to `out`. A format keeps whatever state its wire protocol needs (open blocks,
/// sequence numbers).
pub trait ChunkFormat: Send + 'static {
    /// Before any token of choice `index`, whose prompt is `prompt_tokens` long.
    fn opening(&mut self, index: u32, prompt_tokens: u32, out: &mut Vec<Frame>);
    /// What one delta of choice `index` adds.
    fn delta(&mut self, index: u32, delta: ChoiceDelta, out: &mut Vec<Frame>);
    /// Choice `index` ended (its last delta was already rendered).
    fn finish(&mut self, index: u32, choice: &FinishedChoice, out: &mut Vec<Frame>);
    /// Every choice ended: usage and the stream's terminator.
    fn close(&mut self, choices: &[&FinishedChoice], out: &mut Vec<Frame>);
    /// Generation failed mid-stream: the last event.
    fn error(&mut self, error: &ApiError) -> Frame;
}

/// How a chat or completions stream ends: with `include_usage`, a chunk (`usage_chunk`) for
/// the usage of all choices; then `[DONE]`.
pub fn usage_and_done(
    include_usage: bool,
    choices: &[&FinishedChoice],
    usage_chunk: impl FnOnce(lantern_api::Usage) -> String,
    out: &mut Vec<Frame>,
) {
    if include_usage {
        let usage = crate::output::total_usage(choices.iter().copied());
        out.push(Frame::data(usage_chunk(usage)));
    }
    out.push(Frame::data("[DONE]".into()));
}

/// An OpenAI error envelope as a bare `data:` event.
pub fn envelope_frame(error: &ApiError) -> Frame {
    Frame::data(serde_json::to_string(&error.envelope()).unwrap_or_default())
}

fn receiver_stream(rx: EventStream) -> impl Stream<Item = Event> {
    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) })
}

fn error_frame<F: ChunkFormat>(format: &mut F, error: ApiError) -> Frame {
    tracing::error!(%error, "generation failed mid-stream");
    format.error(&error)
}

/// Streams the choices as SSE. Dropping the response (client gone) drops the receivers,
/// which cancels generation.
pub fn sse_response<F: ChunkFormat>(
    mut format: F,
    sources: Vec<ChoiceSource>,
    logprobs: bool,
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
    let prompt_tokens: Vec<u32> = sources.iter().map(|s| s.prompt_tokens).collect();
    let mut merged = stream::select_all(sources.into_iter().enumerate().map(|(i, s)| {
        receiver_stream(s.events)
            .map(move |e| (i as u32, e))
            .boxed()
    }));
    let body = async_stream::stream! {
        let mut chunks = Vec::new();
        for (i, &tokens) in prompt_tokens.iter().enumerate() {
            format.opening(i as u32, tokens, &mut chunks);
        }
        for chunk in chunks.drain(..) {
            yield chunk;
        }
        let mut finished = vec![false; n];
        let mut cut = Box::pin(cut);
        loop {
            // The shutdown grace period ending cuts the stream with an error event.
            let next = tokio::select! {
                biased;
                () = &mut cut => None,
                next = merged.next() => Some(next),
            };
            let Some(next) = next else {
                yield error_frame(&mut format, ApiError::ShuttingDown);
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
                    let delta = state.finish(finish_reason, usage);
                    if !delta.is_empty() {
                        format.delta(i, delta, &mut chunks);
                    }
                    format.finish(i, state.finished(), &mut chunks);
                    finished[i as usize] = true;
                }
                Event::Error(e) => {
                    for chunk in chunks.drain(..) {
                        yield chunk;
                    }
                    yield error_frame(&mut format, e.into());
                    return;
                }
            }
            for chunk in chunks.drain(..) {
                yield chunk;
            }
        }
        if finished.iter().any(|f| !f) {
            yield error_frame(&mut format, worker_vanished());
            return;
        }
        {
            let done: Vec<_> = states.iter().map(|s| s.finished()).collect();
            format.close(&done, &mut chunks);
        }
        if let Some(sink) = on_complete {
            sink(states.into_iter().map(|s| s.into_parts().1).collect());
        }
        for chunk in chunks.drain(..) {
            yield chunk;
        }
    };
    // `event:` goes before `data:`, as OpenAI and Anthropic send them.
    let events = body.map(|frame| {
        let event = match frame.event {
            Some(name) => SseEvent::default().event(name),
            None => SseEvent::default(),
        };
        Ok::<_, Infallible>(event.data(frame.data))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response();
    // Tell reverse proxies (nginx) not to buffer the stream.
    response
        .headers_mut()
        .insert("x-accel-buffering", "no".parse().expect("static header"));
    response
}
