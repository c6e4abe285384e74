//! `lantern bench serve`: the same streaming chat workload against one or more
//! OpenAI-compatible endpoints, alternating between them, at each concurrency; reports
//! throughput, TTFT and inter-token latency per run and the ratios between endpoints.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

use super::client::{first_model, histogram, http, ms, stream_chat, Endpoint, Sample, Workload};

const DEFAULT_PROMPT: &str = "Write a long story about a lighthouse keeper.";

#[derive(Debug, Clone, clap::Args)]
pub struct ServeBenchArgs {
    /// Base URL of an endpoint, e.g. http://127.0.0.1:8080/v1; repeat to compare endpoints
    #[arg(long, required = true)]
    pub url: Vec<String>,
    /// Environment variable holding the API key sent to every endpoint (as a bearer token)
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,
    /// Model id; once for all endpoints or once per --url in order. A comma-separated list
    /// spreads an endpoint's requests over several models in turn (a base model and its
    /// LoRA adapters, say) [default: the first one GET /models lists]
    #[arg(long)]
    pub model: Vec<String>,
    /// Requests in flight at once; a comma-separated list runs each level
    #[arg(long, short = 'c', value_delimiter = ',', default_value = "1")]
    pub concurrency: Vec<usize>,
    /// Requests per endpoint and concurrency [default: the concurrency]
    #[arg(long, short = 'n')]
    pub requests: Option<usize>,
    /// Open-loop load: requests arrive at this many per second (Poisson arrivals, the same
    /// seeded times for every endpoint) whether or not earlier ones are done, as real traffic
    /// does; `-c` then caps those in flight [default: closed loop, each of `-c` clients
    /// sends its next request when its last one is done]
    #[arg(long, value_name = "PER_SECOND", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Rounds per concurrency; endpoints take turns within each, in alternating order, so
    /// the machine's drift does not favour one
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Tokens generated per request (max_tokens; with ignore_eos unless --natural)
    #[arg(long, default_value_t = 128)]
    pub max_tokens: u32,
    #[arg(long, default_value = DEFAULT_PROMPT)]
    pub prompt: String,
    /// A file of prompts, one per line; requests go through them in turn (overrides --prompt)
    #[arg(long, value_name = "FILE")]
    pub prompts: Option<PathBuf>,
    /// Let answers end on their own: do not send ignore_eos (which proprietary APIs refuse)
    #[arg(long)]
    pub natural: bool,
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Requests per endpoint sent first and not measured (warm caches, lazy loads)
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// `response_format` sent with every request, as JSON (e.g. a json_schema), to measure
    /// what constrained sampling costs (without ignore_eos: the grammar ends the answer)
    #[arg(long, value_name = "JSON", value_parser = parse_json)]
    pub response_format: Option<Value>,
    /// Write each prompt's answers side by side (answers.md and answers.html in --out, or the
    /// current directory)
    #[arg(long)]
    pub answers: bool,
    /// Print one JSON object per run (endpoint and concurrency), one per line
    #[arg(long)]
    pub json: bool,
    /// Directory for report.json, the answers and the chart (chart.svg and chart.png)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Prompt-caching scenario instead of the load test: for each of `--requests` rounds, two
    /// requests share a system prompt of about this many tokens (fresh each round); reports
    /// the TTFT of the first, of the second, and their ratio (first --url only)
    #[arg(long, value_name = "TOKENS")]
    pub shared_prefix: Option<usize>,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err("a positive number of requests per second".into()),
    }
}

/// When each of `total` requests arrives, from the start: Poisson arrivals at `rate` per
/// second (exponential gaps), seeded so every endpoint and round gets the same times.
fn arrivals(rate: f64, total: usize) -> Vec<Duration> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut at = 0.0f64;
    (0..total)
        .map(|_| {
            at += -(1.0 - rng.random::<f64>()).ln() / rate;
            Duration::from_secs_f64(at)
        })
        .collect()
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))
}

/// One endpoint and concurrency, measured.
#[derive(Debug, Clone)]
pub struct Run {
    pub url: String,
    pub model: String,
    pub concurrency: usize,
    /// Arrivals per second (open loop), and when the last request arrived.
    pub rate: Option<(f64, Duration)>,
    pub ok: usize,
    pub failed: usize,
    pub tokens: u64,
    pub wall: Duration,
    pub aggregate_tok_s: f64,
    pub per_stream_tok_s: f64,
    pub ttft_p50: f64,
    pub ttft_p95: f64,
    pub itl_p50: f64,
    pub itl_p95: f64,
}

impl Run {
    fn json(&self, max_tokens: u32) -> Value {
        json!({
            "url": self.url, "model": self.model, "concurrency": self.concurrency,
            "rate": self.rate.map(|r| r.0),
            "arrival_span_s": self.rate.map(|r| r.1.as_secs_f64()),
            "requests": self.ok, "failed": self.failed, "max_tokens": max_tokens,
            "tokens": self.tokens, "wall_s": self.wall.as_secs_f64(),
            "aggregate_tok_s": self.aggregate_tok_s, "per_stream_tok_s": self.per_stream_tok_s,
            "ttft_ms_p50": self.ttft_p50, "ttft_ms_p95": self.ttft_p95,
            "itl_ms_p50": self.itl_p50, "itl_ms_p95": self.itl_p95,
        })
    }
}

/// An endpoint with the models its requests take in turn.
struct Target {
    endpoint: Endpoint,
    models: Vec<String>,
}

impl Target {
    fn label(&self) -> String {
        format!("{} ({})", self.endpoint.url, self.models.join(","))
    }
}

/// Everything one measured batch of requests produced.
struct Batch {
    samples: Vec<(usize, Sample)>,
    errors: Vec<String>,
    wall: Duration,
}

async fn batch(
    client: &reqwest::Client,
    target: &Target,
    work: &Workload,
    prompts: &[String],
    concurrency: usize,
    arrivals: &[Duration],
) -> Batch {
    let total = arrivals.len();
    let started = Instant::now();
    let done = AtomicUsize::new(0);
    let results: Vec<(usize, Result<Sample, String>)> = futures::stream::iter(0..total)
        .map(|i| {
            let done = &done;
            async move {
                // Closed loop: every arrival is at 0, so a request starts once one is done.
                tokio::time::sleep_until((started + arrivals[i]).into()).await;
                let prompt = i % prompts.len();
                let model = &target.models[i % target.models.len()];
                let messages = json!([{"role": "user", "content": prompts[prompt]}]);
                let r = stream_chat(
                    client,
                    &target.endpoint,
                    work,
                    model,
                    messages,
                    work.max_tokens,
                )
                .await;
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                eprintln!(
                    "bench: [{n}/{total}] {} {}",
                    target.endpoint.url,
                    if r.is_ok() { "ok" } else { "failed" }
                );
                (prompt, r)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let wall = started.elapsed();
    let mut out = Batch {
        samples: Vec::new(),
        errors: Vec::new(),
        wall,
    };
    for (prompt, r) in results {
        match r {
            Ok(s) => out.samples.push((prompt, s)),
            Err(e) => out.errors.push(e),
        }
    }
    out
}

fn summarize(
    target: &Target,
    concurrency: usize,
    rate: Option<(f64, Duration)>,
    batches: &[Batch],
) -> Run {
    let samples: Vec<&Sample> = batches
        .iter()
        .flat_map(|b| b.samples.iter().map(|(_, s)| s))
        .collect();
    let wall: Duration = batches.iter().map(|b| b.wall).sum();
    let tokens: u64 = samples.iter().map(|s| s.tokens).sum();
    let per_stream = samples
        .iter()
        .map(|s| s.tokens.saturating_sub(1) as f64 / s.decode_time.as_secs_f64().max(1e-9))
        .sum::<f64>()
        / samples.len().max(1) as f64;
    let ttft = histogram(samples.iter().map(|s| s.ttft));
    let itl = histogram(samples.iter().flat_map(|s| s.gaps.iter().copied()));
    Run {
        url: target.endpoint.url.clone(),
        model: target.models.join(","),
        concurrency,
        rate,
        ok: samples.len(),
        failed: batches.iter().map(|b| b.errors.len()).sum(),
        tokens,
        wall,
        aggregate_tok_s: tokens as f64 / wall.as_secs_f64().max(1e-9),
        per_stream_tok_s: per_stream,
        ttft_p50: ms(&ttft, 0.5),
        ttft_p95: ms(&ttft, 0.95),
        itl_p50: ms(&itl, 0.5),
        itl_p95: ms(&itl, 0.95),
    }
}

async fn targets(
    client: &reqwest::Client,
    args: &ServeBenchArgs,
    key: Option<String>,
) -> Result<Vec<Target>, String> {
    if !args.model.is_empty() && args.model.len() != 1 && args.model.len() != args.url.len() {
        return Err(format!(
            "--model was given {} times for {} --url: give it once, or once per --url",
            args.model.len(),
            args.url.len()
        ));
    }
    let mut out = Vec::new();
    for (i, url) in args.url.iter().enumerate() {
        let endpoint = Endpoint {
            url: url.trim_end_matches('/').to_string(),
            api_key: key.clone(),
        };
        let models = match args.model.get(i).or(args.model.first()) {
            Some(list) => list.split(',').map(|m| m.trim().to_string()).collect(),
            None => vec![first_model(client, &endpoint).await?],
        };
        out.push(Target { endpoint, models });
    }
    Ok(out)
}

fn prompts(args: &ServeBenchArgs) -> Result<Vec<String>, String> {
    let Some(path) = &args.prompts else {
        return Ok(vec![args.prompt.clone()]);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --prompts {}: {e}", path.display()))?;
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if lines.is_empty() {
        return Err(format!("--prompts {} holds no prompt", path.display()));
    }
    Ok(lines)
}

/// Runs the benchmark; the error is one line for the user.
pub async fn run(args: ServeBenchArgs) -> Result<(), String> {
    let key =
        match &args.api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                format!("--api-key-env {var}: that environment variable is not set")
            })?),
            None => None,
        };
    let client = http();
    let targets = targets(&client, &args, key).await?;
    let work = Workload {
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        ignore_eos: !args.natural,
        response_format: args.response_format.clone(),
    };
    if let Some(tokens) = args.shared_prefix {
        let total = args.requests.unwrap_or(1).max(1);
        return super::prefix::run(
            &client,
            &targets[0].endpoint,
            &targets[0].models[0],
            &work,
            tokens,
            total,
            args.json,
        )
        .await;
    }
    let prompts = prompts(&args)?;
    for t in &targets {
        for i in 0..args.warmup {
            let model = &t.models[i % t.models.len()];
            let messages = json!([{"role": "user", "content": prompts[0]}]);
            stream_chat(
                &client,
                &t.endpoint,
                &work,
                model,
                messages,
                work.max_tokens,
            )
            .await
            .map_err(|e| format!("warm-up request to {} failed: {e}", t.endpoint.url))?;
        }
    }
    let mut runs = Vec::new();
    // answers[prompt][endpoint]: the first answer each endpoint gave.
    let mut answers: Vec<Vec<Option<String>>> = vec![vec![None; targets.len()]; prompts.len()];
    for &c in &args.concurrency {
        let total = args.requests.unwrap_or(c).max(1);
        let times = match args.rate {
            Some(rate) => arrivals(rate, total),
            None => vec![Duration::ZERO; total],
        };
        let pace = match args.rate {
            Some(rate) => format!("arriving at {rate}/s, at most {c} at a time"),
            None => format!("{c} at a time"),
        };
        eprintln!(
            "bench: {total} requests, {pace}, {} tokens each, against {}",
            args.max_tokens,
            targets
                .iter()
                .map(Target::label)
                .collect::<Vec<_>>()
                .join(" vs ")
        );
        let mut batches: Vec<Vec<Batch>> = (0..targets.len()).map(|_| Vec::new()).collect();
        for round in 0..args.rounds.max(1) {
            let order: Vec<usize> = if round % 2 == 0 {
                (0..targets.len()).collect()
            } else {
                (0..targets.len()).rev().collect()
            };
            for i in order {
                let b = batch(&client, &targets[i], &work, &prompts, c, &times).await;
                for e in &b.errors {
                    eprintln!("bench: request to {} failed: {e}", targets[i].endpoint.url);
                }
                for (p, s) in &b.samples {
                    answers[*p][i].get_or_insert_with(|| s.text.clone());
                }
                batches[i].push(b);
            }
        }
        for (t, b) in targets.iter().zip(&batches) {
            let rate = args.rate.zip(times.last().copied());
            runs.push(summarize(t, c, rate, b));
        }
    }
    report(&args, &runs, targets.len());
    if let Some(dir) = write_dir(&args) {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if args.answers {
            let labels: Vec<String> = targets.iter().map(Target::label).collect();
            super::answers::write(&dir, &prompts, &labels, &answers)?;
        }
        if args.out.is_some() {
            let all: Vec<Value> = runs.iter().map(|r| r.json(args.max_tokens)).collect();
            let body = json!({"runs": all, "ratios": ratios(&runs, targets.len())});
            std::fs::write(dir.join("report.json"), format!("{body:#}\n"))
                .map_err(|e| format!("cannot write report.json: {e}"))?;
            super::chart::serve_chart(&dir, &runs)?;
            eprintln!("bench: wrote {}", dir.display());
        }
    }
    if runs.iter().all(|r| r.ok == 0) {
        return Err("every request failed".into());
    }
    if runs.iter().any(|r| r.failed > 0) {
        return Err("some requests failed (see above)".into());
    }
    Ok(())
}

fn write_dir(args: &ServeBenchArgs) -> Option<PathBuf> {
    match (&args.out, args.answers) {
        (Some(dir), _) => Some(dir.clone()),
        (None, true) => Some(PathBuf::from(".")),
        (None, false) => None,
    }
}

/// Each endpoint's throughput and TTFT relative to the first endpoint's, per concurrency.
fn ratios(runs: &[Run], endpoints: usize) -> Vec<Value> {
    runs.chunks(endpoints)
        .flat_map(|level| {
            let base = &level[0];
            level[1..].iter().map(move |r| {
                json!({
                    "concurrency": r.concurrency, "url": r.url, "against": base.url,
                    "aggregate_tok_s": r.aggregate_tok_s / base.aggregate_tok_s.max(1e-9),
                    "ttft_p50": r.ttft_p50 / base.ttft_p50.max(1e-9),
                    "itl_p50": r.itl_p50 / base.itl_p50.max(1e-9),
                })
            })
        })
        .collect()
}

fn report(args: &ServeBenchArgs, runs: &[Run], endpoints: usize) {
    if args.json {
        for r in runs {
            println!("{}", r.json(args.max_tokens));
        }
        return;
    }
    println!(
        "{:<44} {:>4} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "endpoint (model)",
        "c",
        "ok/fail",
        "agg tok/s",
        "TTFT p50",
        "TTFT p95",
        "ITL p50",
        "ITL p95"
    );
    for r in runs {
        let label = format!("{} ({})", r.url, r.model);
        println!(
            "{:<44} {:>4} {:>9} {:>10.1} {:>8.1}ms {:>8.1}ms {:>8.1}ms {:>8.1}ms",
            label,
            r.concurrency,
            format!("{}/{}", r.ok, r.failed),
            r.aggregate_tok_s,
            r.ttft_p50,
            r.ttft_p95,
            r.itl_p50,
            r.itl_p95
        );
    }
    for v in ratios(runs, endpoints) {
        println!(
            "c={}: {} vs {}: throughput {:.2}x, TTFT p50 {:.2}x, ITL p50 {:.2}x",
            v["concurrency"],
            v["url"].as_str().unwrap_or(""),
            v["against"].as_str().unwrap_or(""),
            v["aggregate_tok_s"].as_f64().unwrap_or(0.0),
            v["ttft_p50"].as_f64().unwrap_or(0.0),
            v["itl_p50"].as_f64().unwrap_or(0.0)
        );
    }
}
