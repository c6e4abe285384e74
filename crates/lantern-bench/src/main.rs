//! `lantern-bench`: sends concurrent streaming chat requests to any OpenAI-compatible base URL
//! and reports aggregate decode throughput, time to first token and inter-token latency.

use std::time::{Duration, Instant};

use clap::Parser;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

#[derive(Parser, Debug, Clone)]
#[command(about = "Benchmark an OpenAI-compatible server with concurrent streaming chat requests")]
struct Args {
    /// Base URL, e.g. http://127.0.0.1:8080/v1
    #[arg(long)]
    url: String,
    /// Model id [default: the first one GET /models lists]
    #[arg(long)]
    model: Option<String>,
    /// Requests in flight at once
    #[arg(long, short = 'c', default_value_t = 1)]
    concurrency: usize,
    /// Total requests [default: the concurrency]
    #[arg(long, short = 'n')]
    requests: Option<usize>,
    /// Tokens generated per request (sent as max_tokens, with ignore_eos so every request
    /// generates exactly this many)
    #[arg(long, default_value_t = 128)]
    max_tokens: u32,
    #[arg(long, default_value = "Write a long story about a lighthouse keeper.")]
    prompt: String,
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Requests sent first and not measured (warm caches, lazy loads)
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// `response_format` sent with every request, as JSON (e.g. a json_schema), to measure
    /// what constrained sampling costs (without ignore_eos: the grammar ends the answer)
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    response_format: Option<Value>,
    /// Print one JSON object instead of the table
    #[arg(long)]
    json: bool,
    /// Prompt-caching scenario instead of the load test: for each of `--requests` rounds, two
    /// requests share a system prompt of about this many tokens (fresh each round); reports
    /// the TTFT of the first, of the second, and their ratio
    #[arg(long, value_name = "TOKENS")]
    shared_prefix: Option<usize>,
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))
}

/// About `tokens` tokens of ordinary English, different for each `seed`.
fn system_prompt(tokens: usize, seed: usize) -> String {
    const WORDS: [&str; 16] = [
        "the", "keeper", "walked", "along", "a", "quiet", "harbor", "while", "ships", "waited",
        "for", "morning", "light", "over", "grey", "water",
    ];
    let mut text = format!("Session {seed}. You are a careful assistant. Background notes:");
    for i in 0..tokens {
        text.push(' ');
        text.push_str(WORDS[(i * 7 + seed) % WORDS.len()]);
    }
    text
}

/// Runs the shared-prefix scenario; returns (first TTFTs, second TTFTs).
async fn prefix_rounds(
    client: &reqwest::Client,
    args: &Args,
    model: &str,
    tokens: usize,
    rounds: usize,
) -> Result<(Vec<Duration>, Vec<Duration>), String> {
    // A different seed per run and round, so no earlier run's cache can help the first request.
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as usize)
        .unwrap_or(0);
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let system = system_prompt(tokens, base + round);
        for (question, out) in [
            ("Summarise the notes in one sentence.", &mut first),
            ("What was the keeper waiting for?", &mut second),
        ] {
            let messages = json!([
                {"role": "system", "content": system},
                {"role": "user", "content": question},
            ]);
            out.push(stream_chat(client, args, model, messages, 8).await?.ttft);
        }
        eprintln!("bench: prefix round {}/{rounds} done", round + 1);
    }
    Ok((first, second))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// What one request measured.
struct Sample {
    ttft: Duration,
    /// Gaps between consecutive content chunks.
    gaps: Vec<Duration>,
    tokens: u64,
    /// From the first content chunk to the last.
    decode_time: Duration,
}

async fn resolve_model(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let body: Value = client
        .get(format!("{url}/models"))
        .send()
        .await
        .map_err(|e| format!("GET {url}/models: {e}"))?
        .json()
        .await
        .map_err(|e| format!("GET {url}/models: {e}"))?;
    body["data"][0]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("GET {url}/models listed no model"))
}

async fn one_request(client: &reqwest::Client, args: &Args, model: &str) -> Result<Sample, String> {
    let messages = json!([{"role": "user", "content": args.prompt}]);
    stream_chat(client, args, model, messages, args.max_tokens).await
}

async fn stream_chat(
    client: &reqwest::Client,
    args: &Args,
    model: &str,
    messages: Value,
    max_tokens: u32,
) -> Result<Sample, String> {
    let mut body = json!({
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": args.temperature,
        "ignore_eos": true,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if let Some(format) = &args.response_format {
        body["response_format"] = format.clone();
        // A grammar ends the answer itself; banning EOS after it completes is an error in
        // llama-server ("empty grammar stack"), so only max_tokens bounds it here.
        body["ignore_eos"] = json!(false);
    }
    let start = Instant::now();
    let response = client
        .post(format!("{}/chat/completions", args.url))
        // Measure the engine, not Lantern's response cache.
        .header("Cache-Control", "no-cache")
        .json(&body)
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
    let mut gaps = Vec::with_capacity(args.max_tokens as usize);
    let mut chunks = 0u64;
    let mut usage_tokens = None;
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
        let has_text = v["choices"][0]["delta"]["content"]
            .as_str()
            .is_some_and(|s| !s.is_empty());
        if has_text {
            let now = Instant::now();
            match first {
                None => first = Some(now),
                Some(_) => gaps.push(now - last),
            }
            last = now;
            chunks += 1;
        }
    }
    let first = first.ok_or("no content was streamed")?;
    Ok(Sample {
        ttft: first - start,
        gaps,
        tokens: usage_tokens.unwrap_or(chunks),
        decode_time: last - first,
    })
}

fn histogram(values: impl Iterator<Item = Duration>) -> Histogram<u64> {
    // Microseconds, up to an hour, 3 significant digits.
    let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
    for v in values {
        h.saturating_record(v.as_micros() as u64);
    }
    h
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let args = Args {
        url: args.url.trim_end_matches('/').to_string(),
        ..args
    };
    // A fresh connection per request: a pooled keep-alive connection that the server has
    // just closed fails the next request ("error sending request"), which is the client's
    // race, not the server's failure. Connecting over loopback costs well under a millisecond.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("HTTP client");
    let model = match &args.model {
        Some(m) => m.clone(),
        None => match resolve_model(&client, &args.url).await {
            Ok(m) => m,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        },
    };
    let total = args.requests.unwrap_or(args.concurrency).max(1);
    if let Some(tokens) = args.shared_prefix {
        let (first, second) = match prefix_rounds(&client, &args, &model, tokens, total).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        };
        let (a, b) = (median(first), median(second));
        let ratio = b.as_secs_f64() / a.as_secs_f64();
        if args.json {
            println!(
                "{}",
                json!({"url": args.url, "model": model, "prefix_tokens": tokens, "rounds": total,
                       "ttft_first_ms": a.as_secs_f64() * 1000.0,
                       "ttft_second_ms": b.as_secs_f64() * 1000.0, "ratio": ratio})
            );
        } else {
            println!("shared prefix       ~{tokens} tokens, {total} rounds");
            println!(
                "TTFT first request  {:.1} ms (median)",
                a.as_secs_f64() * 1000.0
            );
            println!(
                "TTFT second request {:.1} ms (median)",
                b.as_secs_f64() * 1000.0
            );
            println!("ratio               {ratio:.3}");
        }
        return;
    }
    for _ in 0..args.warmup {
        if let Err(e) = one_request(&client, &args, &model).await {
            eprintln!("error: warm-up request failed: {e}");
            std::process::exit(1);
        }
    }
    eprintln!(
        "bench: {total} requests, {} at a time, {} tokens each, against {} ({model})",
        args.concurrency, args.max_tokens, args.url
    );
    let started = Instant::now();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<Sample, String>> = futures::stream::iter(0..total)
        .map(|_| async {
            let r = one_request(&client, &args, &model).await;
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            eprintln!(
                "bench: [{n}/{total}] {}",
                if r.is_ok() { "ok" } else { "failed" }
            );
            r
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let wall = started.elapsed();
    let (samples, errors): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    let samples: Vec<Sample> = samples.into_iter().map(Result::unwrap).collect();
    for e in &errors {
        eprintln!("bench: request failed: {}", e.as_ref().err().unwrap());
    }
    if samples.is_empty() {
        eprintln!("error: every request failed");
        std::process::exit(1);
    }
    let tokens: u64 = samples.iter().map(|s| s.tokens).sum();
    let aggregate = tokens as f64 / wall.as_secs_f64();
    let per_stream: f64 = samples
        .iter()
        .map(|s| (s.tokens.saturating_sub(1)) as f64 / s.decode_time.as_secs_f64().max(1e-9))
        .sum::<f64>()
        / samples.len() as f64;
    let ttft = histogram(samples.iter().map(|s| s.ttft));
    let itl = histogram(samples.iter().flat_map(|s| s.gaps.iter().copied()));
    if args.json {
        println!(
            "{}",
            json!({
                "url": args.url, "model": model, "concurrency": args.concurrency,
                "requests": samples.len(), "failed": errors.len(), "max_tokens": args.max_tokens,
                "tokens": tokens, "wall_s": wall.as_secs_f64(),
                "aggregate_tok_s": aggregate, "per_stream_tok_s": per_stream,
                "ttft_ms_p50": ms(&ttft, 0.5), "ttft_ms_p95": ms(&ttft, 0.95),
                "itl_ms_p50": ms(&itl, 0.5), "itl_ms_p95": ms(&itl, 0.95),
            })
        );
    } else {
        println!(
            "requests            {} ok, {} failed",
            samples.len(),
            errors.len()
        );
        println!(
            "tokens generated    {tokens} in {:.2} s",
            wall.as_secs_f64()
        );
        println!("aggregate decode    {aggregate:.1} tok/s");
        println!("per-stream decode   {per_stream:.1} tok/s");
        println!(
            "TTFT                p50 {:.1} ms   p95 {:.1} ms",
            ms(&ttft, 0.5),
            ms(&ttft, 0.95)
        );
        println!(
            "inter-token latency p50 {:.1} ms   p95 {:.1} ms",
            ms(&itl, 0.5),
            ms(&itl, 0.95)
        );
    }
    if !errors.is_empty() {
        std::process::exit(1);
    }
}
