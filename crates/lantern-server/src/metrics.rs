//! Prometheus metrics at `GET /metrics` (through the `metrics` facade and its Prometheus
//! exporter): request counts and latencies, token counters, and, read from the engines at
//! scrape time, slots, queue and KV gauges, also under the vLLM names that the Kubernetes
//! Gateway API Inference Extension's endpoint picker reads by default.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics::{Histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::ApiError;
use crate::state::AppState;

/// Latency buckets in seconds, from a fast token to a long generation.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Installs the process-wide recorder; its handle renders the scrape.
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    describe();
    // Histograms buffer samples until upkeep; scrapes run it too, this bounds the buffer.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

fn describe() {
    describe_counter!(
        "lantern_requests_total",
        "HTTP requests by route and status."
    );
    describe_histogram!(
        "lantern_request_duration_seconds",
        Unit::Seconds,
        "Time until the response starts (headers), by route."
    );
    describe_histogram!(
        "lantern_e2e_request_latency_seconds",
        Unit::Seconds,
        "Time from scheduling a choice to its last token."
    );
    describe_histogram!(
        "lantern_time_to_first_token_seconds",
        Unit::Seconds,
        "Time from scheduling a choice to its first token."
    );
    describe_histogram!(
        "lantern_inter_token_latency_seconds",
        Unit::Seconds,
        "Time between a choice's tokens."
    );
    describe_histogram!(
        "lantern_queue_time_seconds",
        Unit::Seconds,
        "Time a choice waited for a slot."
    );
    describe_counter!(
        "lantern_prompt_tokens_total",
        "Prompt tokens of finished choices."
    );
    describe_counter!(
        "lantern_cached_prompt_tokens_total",
        "Prompt tokens whose KV was reused from a slot's cache."
    );
    describe_counter!("lantern_generation_tokens_total", "Tokens generated.");
    describe_counter!(
        "lantern_response_cache_total",
        "Generation requests by response-cache result (hit, miss, bypass)."
    );
    describe_counter!(
        "lantern_rejected_requests_total",
        "Requests refused, by reason."
    );
    describe_gauge!("lantern_slots_busy", "Sequences decoding now.");
    describe_gauge!("lantern_slots_total", "Sequences that can decode at once.");
    describe_gauge!("lantern_requests_waiting", "Requests waiting for a slot.");
    describe_gauge!(
        "lantern_kv_cells_used",
        "KV-cache cells held by running sequences."
    );
    describe_gauge!("lantern_kv_cells_total", "KV-cache cells in all.");
    describe_gauge!(
        "lantern_model_load_seconds",
        Unit::Seconds,
        "How long the model's last load took."
    );
    describe_counter!(
        "lantern_spec_draft_tokens_total",
        "Draft tokens verified by speculative decoding (since the model was loaded)."
    );
    describe_counter!(
        "lantern_spec_accepted_tokens_total",
        "Draft tokens that were accepted (since the model was loaded)."
    );
    describe_gauge!(
        "lantern_lora_adapters_loaded",
        "LoRA adapters loaded on the model."
    );
    describe_counter!(
        "lantern_lora_requests_total",
        "Generation requests served under each LoRA adapter."
    );
    describe_gauge!(
        "lantern_lora_requests_running",
        "Requests of each LoRA adapter decoding now."
    );
    describe_gauge!(
        "lantern_lora_requests_waiting",
        "Requests of each LoRA adapter waiting for a slot."
    );
    describe_gauge!(
        "vllm:lora_requests_info",
        "Running and waiting LoRA adapters (labels) as of the value's Unix time (vLLM's, for inference gateways)."
    );
    describe_gauge!(
        "vllm:num_requests_running",
        "Requests decoding now (vLLM's name, for inference gateways)."
    );
    describe_gauge!(
        "vllm:num_requests_waiting",
        "Requests waiting (vLLM's name, for inference gateways)."
    );
    describe_gauge!(
        "vllm:kv_cache_usage_perc",
        "KV-cache usage, 0 to 1 (vLLM's name, for inference gateways)."
    );
}

/// `GET /metrics`: the engines' gauges as they are now, then everything in Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String)))]
pub async fn scrape(State(state): State<AppState>) -> Response {
    let Some(handle) = &state.metrics else {
        return ApiError::RouteNotFound {
            method: "GET".into(),
            path: "/metrics".into(),
        }
        .into_response();
    };
    for entry in state.models.iter() {
        let model = entry.id.clone();
        let (stats, slots) = match entry.loaded() {
            Some(b) => {
                let stats = b.stats();
                let per_seq = u64::from(b.info().n_ctx_per_seq).max(1);
                (stats, (stats.kv_total / per_seq) as u32)
            }
            None => (lantern_engine::EngineStats::default(), 0),
        };
        let usage = if stats.kv_total == 0 {
            0.0
        } else {
            stats.kv_used as f64 / stats.kv_total as f64
        };
        gauge!("lantern_slots_busy", "model" => model.clone()).set(stats.running);
        gauge!("lantern_slots_total", "model" => model.clone()).set(slots);
        gauge!("lantern_requests_waiting", "model" => model.clone()).set(stats.waiting);
        gauge!("lantern_kv_cells_used", "model" => model.clone()).set(stats.kv_used as f64);
        gauge!("lantern_kv_cells_total", "model" => model.clone()).set(stats.kv_total as f64);
        gauge!("vllm:num_requests_running", "model_name" => model.clone()).set(stats.running);
        gauge!("vllm:num_requests_waiting", "model_name" => model.clone()).set(stats.waiting);
        gauge!("vllm:kv_cache_usage_perc", "model_name" => model.clone()).set(usage);
        // The optional cache description of the gateway protocol: one cell per block.
        gauge!("vllm:cache_config_info", "model_name" => model.clone(), "block_size" => "1",
            "num_gpu_blocks" => stats.kv_total.to_string())
        .set(1.0);
        if let Some(backend) = entry.loaded() {
            lora_gauges(&model, backend.as_ref());
            counter!("lantern_spec_draft_tokens_total", "model" => model.clone())
                .absolute(stats.drafted);
            counter!("lantern_spec_accepted_tokens_total", "model" => model.clone())
                .absolute(stats.accepted);
        }
    }
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

/// A model's adapters now, and the inference gateway's `vllm:lora_requests_info`: the names
/// of adapters with requests running and waiting, valued at the scrape's Unix time (the
/// endpoint picker reads the newest series).
fn lora_gauges(model: &str, backend: &dyn lantern_engine::Backend) {
    let adapters = backend.adapters();
    gauge!("lantern_lora_adapters_loaded", "model" => model.to_string()).set(adapters.len() as f64);
    if adapters.is_empty() {
        return;
    }
    let names = |pick: fn(&lantern_engine::AdapterInfo) -> usize| {
        let names: Vec<&str> = adapters
            .iter()
            .filter(|a| pick(a) > 0)
            .map(|a| a.spec.name.as_str())
            .collect();
        names.join(",")
    };
    for a in &adapters {
        let labels = [
            ("model", model.to_string()),
            ("adapter", a.spec.name.clone()),
        ];
        gauge!("lantern_lora_requests_running", &labels).set(a.running as f64);
        gauge!("lantern_lora_requests_waiting", &labels).set(a.waiting as f64);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    // At most one adapter per batch, but one per slot may be running at once.
    let max_lora = backend.info().parallel.to_string();
    gauge!("vllm:lora_requests_info", "max_lora" => max_lora,
        "running_lora_adapters" => names(|a| a.running),
        "waiting_lora_adapters" => names(|a| a.waiting))
    .set(now);
}

/// A generation request on `model`, under `adapter` when it names one.
pub fn adapter_request(model: &str, adapter: Option<&str>) {
    if let Some(adapter) = adapter {
        counter!("lantern_lora_requests_total", "model" => model.to_string(),
            "adapter" => adapter.to_string())
        .increment(1);
    }
}

/// Middleware: counts every request by route and status and times it to its first byte.
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    counter!("lantern_requests_total", "route" => route.clone(), "status" => status).increment(1);
    histogram!("lantern_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// A refusal, by the error's code (or type when it has none).
pub fn rejected(reason: &str) {
    counter!("lantern_rejected_requests_total", "reason" => reason.to_string()).increment(1);
}

/// A generation request's response-cache result.
pub fn cache_result(result: &'static str) {
    counter!("lantern_response_cache_total", "result" => result).increment(1);
}

/// Timing of one live choice: its handles are looked up once, so each token records into an
/// atomic histogram without allocating.
pub struct ChoiceTimer {
    started: Instant,
    last: Option<Instant>,
    ttft: Histogram,
    itl: Histogram,
    model: String,
    /// The first choice of its prompt: counts the prompt's tokens (once, as usage does).
    counts_prompt: bool,
}

impl ChoiceTimer {
    pub fn new(model: &str, started: Instant, counts_prompt: bool) -> Self {
        ChoiceTimer {
            started,
            last: None,
            counts_prompt,
            ttft: histogram!("lantern_time_to_first_token_seconds", "model" => model.to_string()),
            itl: histogram!("lantern_inter_token_latency_seconds", "model" => model.to_string()),
            model: model.to_string(),
        }
    }

    /// `tokens` arrived together now.
    pub fn tokens(&mut self, tokens: usize) {
        if tokens == 0 {
            return;
        }
        let now = Instant::now();
        match self.last {
            None => self
                .ttft
                .record(now.duration_since(self.started).as_secs_f64()),
            // Several tokens in one delta (held back for a stop string): spread the gap.
            Some(last) => {
                let gap = now.duration_since(last).as_secs_f64() / tokens as f64;
                for _ in 0..tokens {
                    self.itl.record(gap);
                }
            }
        }
        self.last = Some(now);
    }

    pub fn finished(&self, usage: &lantern_engine::TokenUsage) {
        let model = self.model.clone();
        histogram!("lantern_e2e_request_latency_seconds", "model" => model.clone())
            .record(self.started.elapsed().as_secs_f64());
        histogram!("lantern_queue_time_seconds", "model" => model.clone())
            .record(usage.queued.as_secs_f64());
        if self.counts_prompt {
            let cached = usage.cached_tokens.min(usage.prompt_tokens);
            counter!("lantern_prompt_tokens_total", "model" => model.clone())
                .increment(u64::from(usage.prompt_tokens));
            counter!("lantern_cached_prompt_tokens_total", "model" => model.clone())
                .increment(u64::from(cached));
        }
        counter!("lantern_generation_tokens_total", "model" => model)
            .increment(u64::from(usage.completion_tokens));
    }
}
