//! One streaming chat request against an OpenAI-compatible endpoint, timed token by token.

use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// An endpoint and how to ask it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Base URL ending in `/v1` (no trailing slash).
    pub url: String,
    pub api_key: Option<String>,
}

/// What every request of a run sends besides its prompt.
#[derive(Debug, Clone)]
pub struct Workload {
    pub max_tokens: u32,
    pub temperature: f32,
    /// Send `ignore_eos` (Lantern, llama-server, vLLM) so every answer is `max_tokens` long.
    pub ignore_eos: bool,
    pub response_format: Option<Value>,
}

/// What one request measured.
#[derive(Debug, Clone)]
pub struct Sample {
    pub ttft: Duration,
    /// Gaps between consecutive content chunks.
    pub gaps: Vec<Duration>,
    pub tokens: u64,
    /// From the first content chunk to the last.
    pub decode_time: Duration,
    pub text: String,
}

/// A client that opens a fresh connection per request: a pooled keep-alive connection the
/// server has just closed fails the next request ("error sending request"), which is the
/// client's race, not the server's failure. Connecting over loopback costs well under 1 ms.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("HTTP client")
}

fn authorized(req: reqwest::RequestBuilder, endpoint: &Endpoint) -> reqwest::RequestBuilder {
    match &endpoint.api_key {
        Some(key) => req.bearer_auth(key),
        None => req,
    }
}

/// The first model `GET /models` lists.
pub async fn first_model(client: &reqwest::Client, endpoint: &Endpoint) -> Result<String, String> {
    let url = format!("{}/models", endpoint.url);
    let body: Value = authorized(client.get(&url), endpoint)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    body["data"][0]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("GET {url} listed no model"))
}

/// Streams one chat completion and times its content chunks.
pub async fn stream_chat(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    work: &Workload,
    model: &str,
    messages: Value,
    max_tokens: u32,
) -> Result<Sample, String> {
    let mut body = json!({
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": work.temperature,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if work.ignore_eos {
        body["ignore_eos"] = json!(true);
    }
    if let Some(format) = &work.response_format {
        body["response_format"] = format.clone();
        // A grammar ends the answer itself; banning EOS after it completes is an error in
        // llama-server ("empty grammar stack"), so only max_tokens bounds it here.
        body["ignore_eos"] = json!(false);
    }
    let start = Instant::now();
    let request = client
        .post(format!("{}/chat/completions", endpoint.url))
        // Measure the engine, not Lantern's response cache.
        .header("Cache-Control", "no-cache")
        .json(&body);
    let response = authorized(request, endpoint)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        return Err(format!("HTTP {status}: {text}"));
    }
    let mut events = response.bytes_stream().eventsource();
    let mut first: Option<Instant> = None;
    let mut last = start;
    let mut gaps = Vec::with_capacity(max_tokens as usize);
    let (mut chunks, mut usage_tokens, mut text) = (0u64, None, String::new());
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| e.to_string())?;
        if event.data == "[DONE]" {
            break;
        }
        let v: Value = serde_json::from_str(&event.data).map_err(|e| e.to_string())?;
        if let Some(err) = v.get("error") {
            return Err(format!("stream error: {err}"));
        }
        if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
            usage_tokens = Some(n);
        }
        let Some(piece) = v["choices"][0]["delta"]["content"]
            .as_str()
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        let now = Instant::now();
        match first {
            None => first = Some(now),
            Some(_) => gaps.push(now - last),
        }
        last = now;
        chunks += 1;
        text.push_str(piece);
    }
    let first = first.ok_or("no content was streamed")?;
    Ok(Sample {
        ttft: first - start,
        gaps,
        tokens: usage_tokens.unwrap_or(chunks),
        decode_time: last - first,
        text,
    })
}

/// Microseconds, up to an hour, 3 significant digits.
pub fn histogram(values: impl Iterator<Item = Duration>) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
    for v in values {
        h.saturating_record(v.as_micros() as u64);
    }
    h
}

/// The quantile `q` of `h`, in milliseconds.
pub fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}
