//! The llama.cpp-backed [`Backend`]: loads a GGUF model, starts its inference thread, and
//! prepares prompts (chat template, tokenization) on the blocking thread pool.

mod gpu;
mod load;
mod memory;
pub use load::check_model_file;
pub use memory::estimate_memory;
mod runtime;
mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use crate::backend::{Backend, EventStream, ModelInfo};
use crate::chat_template::ChatTemplate;
use crate::scheduler::{common_prefix, IdlePrefixes, Job, Outstanding};
use crate::{EngineError, GenerateRequest, Prompt};

/// Prompt tokens decoded per step at most (llama.cpp's `n_batch`, with chunked prefill).
pub const DEFAULT_BATCH_SIZE: u32 = 512;
/// Sequences decoded together.
pub const DEFAULT_PARALLEL: u32 = 4;
/// KV tokens shared by all sequences.
pub const DEFAULT_CTX_SIZE: u32 = 8192;

/// How to load and run one model.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    pub model_path: PathBuf,
    pub threads: usize,
    /// Sequences decoded together.
    pub parallel: u32,
    /// KV tokens shared by all sequences; each gets `ctx_size / parallel`.
    pub ctx_size: u32,
    /// Most tokens per decode step (generation tokens plus prompt chunks).
    pub batch_size: u32,
    pub gpu_layers: u32,
    /// GPU holding the whole model (or its first part) when several are present.
    pub main_gpu: i32,
    /// Requests that may wait for a slot beyond the `parallel` running ones; more are refused
    /// with [`EngineError::QueueFull`]. `None`: unbounded.
    pub max_queue: Option<usize>,
    /// Jinja chat template used instead of the GGUF's own (`tokenizer.chat_template`), for
    /// models that ship none (base models) or a broken one.
    pub chat_template: Option<String>,
}

impl EngineConfig {
    pub fn new(model_path: impl Into<PathBuf>) -> Self {
        EngineConfig {
            model_path: model_path.into(),
            threads: default_threads(),
            parallel: DEFAULT_PARALLEL,
            ctx_size: DEFAULT_CTX_SIZE,
            batch_size: DEFAULT_BATCH_SIZE,
            gpu_layers: 0,
            main_gpu: 0,
            max_queue: None,
            chat_template: None,
        }
    }

    /// The batch must at least hold one token per sequence.
    fn batch_tokens(&self) -> usize {
        self.batch_size.max(self.parallel) as usize
    }

    /// llama.cpp's micro-batch (`n_ubatch`): larger batches are computed in pieces this big,
    /// and the compute buffer is sized for it.
    fn ubatch_tokens(&self) -> u32 {
        self.batch_tokens().min(512) as u32
    }
}

/// Physical cores: llama.cpp's throughput drops sharply when threads exceed them.
pub fn default_threads() -> usize {
    num_cpus::get_physical().max(1)
}

/// One inference thread (a replica): its queue, its load, and its idle slots' cached prompts.
struct Worker {
    jobs: Sender<Job>,
    /// Requests running or queued.
    outstanding: Arc<AtomicUsize>,
    idle_prefixes: IdlePrefixes,
}

impl Worker {
    /// Longest prefix of `tokens` held by one of its idle slots, and the tokens they hold in all.
    fn cached(&self, tokens: &[i32]) -> (usize, usize) {
        let Ok(table) = self.idle_prefixes.lock() else {
            return (0, 0);
        };
        let best = table
            .iter()
            .map(|kv| common_prefix(kv, tokens))
            .max()
            .unwrap_or(0);
        (best, table.iter().map(Vec::len).sum())
    }
}

/// A loaded model with its inference threads (replicas sharing the weights).
pub struct LlamaEngine {
    model: Arc<LlamaModel>,
    template: Arc<ChatTemplate>,
    workers: Vec<Worker>,
    info: ModelInfo,
    /// Most outstanding requests per worker before QueueFull.
    limit: Option<usize>,
}

impl LlamaEngine {
    /// Loads the model and starts its worker; blocks until the worker reports ready. Call it
    /// from a blocking context (`spawn_blocking`).
    pub fn load(config: EngineConfig) -> Result<Self, EngineError> {
        Self::load_replicas(config, 1)
    }

    /// Loads the weights once and starts `replicas` workers on them, each with its own context
    /// (KV cache and slots). A request goes to the worker whose idle slots hold the longest
    /// prefix of its prompt, else to the least loaded one.
    pub fn load_replicas(config: EngineConfig, replicas: usize) -> Result<Self, EngineError> {
        if config.parallel == 0 || config.ctx_size < config.parallel {
            return Err(EngineError::Context(format!(
                "--ctx-size ({}) must be at least --parallel ({}), and --parallel at least 1",
                config.ctx_size, config.parallel
            )));
        }
        let started = std::time::Instant::now();
        let model = Arc::new(load::load_model(
            &config.model_path,
            config.gpu_layers,
            config.main_gpu,
        )?);
        let template = Arc::new(chat_template_of(&model, config.chat_template.as_deref())?);
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut workers = Vec::with_capacity(replicas);
        let mut n_ctx_per_seq = 0;
        // Contexts are created one at a time: llama.cpp marks concurrent creation unsound.
        for _ in 0..replicas.max(1) {
            let (tx, rx) = std::sync::mpsc::channel();
            let idle_prefixes: IdlePrefixes = Arc::new(std::sync::Mutex::new(vec![
                Vec::new();
                config.parallel
                    as usize
            ]));
            n_ctx_per_seq =
                worker::spawn(model.clone(), config.clone(), rx, idle_prefixes.clone())?;
            workers.push(Worker {
                jobs: tx,
                outstanding: Arc::new(AtomicUsize::new(0)),
                idle_prefixes,
            });
        }
        let memory_bytes = estimate_memory(&config, workers.len() as u32);
        tracing::info!(
            model = %config.model_path.display(),
            params = model.n_params(),
            replicas = workers.len(),
            memory_mib = memory_bytes >> 20,
            seconds = format!("{:.1}", started.elapsed().as_secs_f32()),
            "model loaded"
        );
        Ok(LlamaEngine {
            info: ModelInfo {
                path: config.model_path.clone(),
                n_ctx_per_seq,
                parallel: config.parallel,
                created,
                memory_bytes,
            },
            model,
            template,
            workers,
            limit: config.max_queue.map(|q| q + config.parallel as usize),
        })
    }

    /// The worker for a prompt: an idle slot with the longest cached prefix wins; otherwise
    /// the least loaded worker, preferring the one with the least cached KV to overwrite.
    fn route(&self, tokens: &[i32]) -> &Worker {
        self.workers
            .iter()
            .map(|w| {
                let load = w.outstanding.load(Ordering::Relaxed);
                let (prefix, held) = w.cached(tokens);
                // Only an idle slot can take the request with its cached prefix.
                let prefix = if load < self.info.parallel as usize {
                    prefix
                } else {
                    0
                };
                (
                    w,
                    (prefix, std::cmp::Reverse(load), std::cmp::Reverse(held)),
                )
            })
            .max_by_key(|(_, key)| *key)
            .map(|(w, _)| w)
            .expect("an engine has at least one worker")
    }
}

fn token_text(model: &LlamaModel, token: LlamaToken) -> String {
    String::from_utf8_lossy(&model.vocab().token_to_piece(token, true, None)).into_owned()
}

/// The configured template, else the GGUF's own, else ChatML.
fn chat_template_of(
    model: &LlamaModel,
    configured: Option<&str>,
) -> Result<ChatTemplate, EngineError> {
    let vocab = model.vocab();
    let bos = token_text(model, vocab.bos());
    let eos = token_text(model, vocab.eos());
    if let Some(source) = configured {
        tracing::info!("using the configured chat template instead of the model's");
        return ChatTemplate::new(source, bos, eos);
    }
    match model.chat_template(None) {
        Ok(t) => {
            let source = t
                .to_string()
                .map_err(|e| EngineError::Template(format!("chat template is not UTF-8: {e}")))?;
            ChatTemplate::new(&source, bos, eos)
        }
        Err(_) => {
            tracing::warn!("the model has no chat template; using ChatML");
            Ok(ChatTemplate::chatml(bos, eos))
        }
    }
}

/// Turns the prompt into tokens: template rendering and tokenization are CPU work, so this
/// runs on the blocking pool, never on the async runtime's workers.
fn tokenize_prompt(
    model: &LlamaModel,
    template: &ChatTemplate,
    prompt: Prompt,
) -> Result<Vec<i32>, EngineError> {
    let vocab = model.vocab();
    let tokens: Vec<i32> = match prompt {
        Prompt::Chat(messages) => {
            let text = template.render(&messages)?;
            // The template may already have written BOS; do not add a second one.
            let add_bos =
                template.bos_token().is_empty() || !text.starts_with(template.bos_token());
            vocab
                .tokenize(text.as_bytes(), add_bos, true)
                .into_iter()
                .map(|t| t.0)
                .collect()
        }
        Prompt::Text(text) => vocab
            .tokenize(text.as_bytes(), true, true)
            .into_iter()
            .map(|t| t.0)
            .collect(),
        Prompt::Tokens(ids) => {
            let n_vocab = model.n_vocab() as u32;
            if let Some(bad) = ids.iter().find(|&&t| t >= n_vocab) {
                return Err(EngineError::InvalidRequest {
                    message: format!(
                        "Token id {bad} in 'prompt' is outside the model's vocabulary (0..{n_vocab})."
                    ),
                    param: Some("prompt".into()),
                });
            }
            ids.into_iter().map(|t| t as i32).collect()
        }
    };
    if tokens.is_empty() {
        return Err(EngineError::InvalidRequest {
            message: "The prompt is empty after tokenization.".into(),
            param: Some("prompt".into()),
        });
    }
    Ok(tokens)
}

#[async_trait]
impl Backend for LlamaEngine {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn load(&self) -> usize {
        self.workers
            .iter()
            .map(|w| w.outstanding.load(Ordering::Relaxed))
            .sum()
    }

    async fn schedule(&self, request: GenerateRequest) -> Result<EventStream, EngineError> {
        let param = match request.prompt {
            Prompt::Chat(_) => "messages",
            _ => "prompt",
        };
        let model = self.model.clone();
        let template = self.template.clone();
        let tokens =
            tokio::task::spawn_blocking(move || tokenize_prompt(&model, &template, request.prompt))
                .await
                .map_err(|e| {
                    EngineError::Template(format!("prompt preparation panicked: {e}"))
                })??;
        let limit = self.info.n_ctx_per_seq;
        // At least one position must remain for the first generated token.
        if tokens.len() as u32 >= limit {
            return Err(EngineError::ContextLengthExceeded {
                limit,
                requested: tokens.len() as u32,
                param,
            });
        }
        let worker = self.route(&tokens);
        // Claiming the place is one atomic step, so a burst cannot overshoot the limit.
        let previous = worker.outstanding.fetch_add(1, Ordering::Relaxed);
        let outstanding = Outstanding(worker.outstanding.clone());
        if let Some(limit) = self.limit {
            if previous >= limit {
                return Err(EngineError::QueueFull {
                    outstanding: previous,
                    limit,
                });
            }
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let job = Job {
            tokens,
            sampling: request.sampling,
            max_tokens: request.max_tokens.unwrap_or(u32::MAX),
            stop: request.stop,
            ignore_eos: request.ignore_eos,
            events: tx,
            outstanding: Some(outstanding),
            received: std::time::Instant::now(),
        };
        worker.jobs.send(job).map_err(|_| EngineError::WorkerGone)?;
        Ok(rx)
    }
}
