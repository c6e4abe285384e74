//! The llama.cpp-backed [`Backend`]: loads a GGUF model, starts its inference thread, and
//! prepares prompts (chat template, tokenization) on the blocking thread pool.

mod embed;
mod eval;
mod gguf;
mod gpu;
mod literal;
mod load;
mod lora;
mod memory;
mod prepare;
mod quantize;
pub use eval::{evaluate, EvalConfig, EvalResult, Reference};
pub use load::check_model_file;
pub use memory::estimate_memory;
pub use quantize::{quantize, QuantType, QUANT_TYPES};
mod runtime;
mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use crate::backend::{
    AdapterInfo, Backend, EmbedInput, Embedding, EngineStats, Generation, LoraSpec, ModelInfo,
};
use crate::chat_template::ChatTemplate;
use crate::draft::Predicted;
use crate::grammar::SharedCompiler;
use crate::sampling::Sampler;
use crate::scheduler::{common_prefix, IdlePrefixes, SlotStats};
use crate::slot::{ChoiceJob, Job, Outstanding};
use crate::{EngineError, GenerateRequest, Prompt, SpecConfig, MAX_TOP_LOGPROBS};
use embed::Embedder;
use prepare::{may_add_special, prepare, token_text, VocabFacts};

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
    /// Serve embeddings only: no generation context, the embedding context made at load.
    pub embeddings_only: bool,
    /// Parse special-token text in message content as control tokens (the behaviour before
    /// content was kept literal; only for trusted clients).
    pub parse_special_in_content: bool,
    /// LoRA adapters loaded with the model.
    pub lora: Vec<LoraSpec>,
    /// Speculative decoding (drafts from predictions and prompt lookup).
    pub speculative: SpecConfig,
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
            embeddings_only: false,
            parse_special_in_content: false,
            lora: Vec::new(),
            speculative: SpecConfig::default(),
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
    stats: Arc<SlotStats>,
    /// False once its thread has ended (a panic): it gets no more requests.
    alive: Arc<AtomicBool>,
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
    facts: Arc<VocabFacts>,
    grammar: SharedCompiler,
    config: EngineConfig,
    /// Created on the first embedding request (at load for embedding-only models).
    embedder: OnceLock<Result<Embedder, EngineError>>,
    adapters: Arc<lora::Adapters>,
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
        let adapters = Arc::new(lora::Adapters::default());
        for spec in &config.lora {
            let name = spec.name.clone();
            adapters
                .add(&model, &config.model_path, spec.clone())
                .map_err(|e| EngineError::ModelLoad {
                    path: config.model_path.clone(),
                    reason: format!("LoRA adapter '{name}': {e}"),
                })?;
        }
        let facts = Arc::new(VocabFacts::of(&model));
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut workers = Vec::with_capacity(replicas);
        let mut n_ctx_per_seq = config.ctx_size / config.parallel;
        let embedder = OnceLock::new();
        if config.embeddings_only {
            let _ = embedder.set(Ok(embed::spawn(model.clone(), &config)?));
        } else {
            // Contexts are created one at a time: llama.cpp marks concurrent creation unsound.
            for _ in 0..replicas.max(1) {
                let (tx, rx) = std::sync::mpsc::channel();
                let idle_prefixes: IdlePrefixes = Arc::new(std::sync::Mutex::new(vec![
                    Vec::new();
                    config.parallel
                        as usize
                ]));
                let stats = Arc::new(SlotStats::default());
                let alive = Arc::new(AtomicBool::new(true));
                n_ctx_per_seq = worker::spawn(
                    model.clone(),
                    config.clone(),
                    rx,
                    idle_prefixes.clone(),
                    stats.clone(),
                    alive.clone(),
                    facts.preserved.clone(),
                )?;
                workers.push(Worker {
                    jobs: tx,
                    outstanding: Arc::new(AtomicUsize::new(0)),
                    idle_prefixes,
                    stats,
                    alive,
                });
            }
        }
        // What llama.cpp allocated (each sequence's share padded), not what was asked for.
        let allocated = EngineConfig {
            ctx_size: n_ctx_per_seq * config.parallel,
            ..config.clone()
        };
        let memory_bytes = estimate_memory(
            if workers.is_empty() {
                &config
            } else {
                &allocated
            },
            workers.len().max(1) as u32,
        );
        tracing::info!(
            model = %config.model_path.display(),
            params = model.n_params(),
            replicas = workers.len(),
            embeddings_only = config.embeddings_only,
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
                n_vocab: model.n_vocab() as u32,
                n_embd: model.n_embd_out().max(0) as u32,
                embeddings_only: config.embeddings_only,
            },
            model,
            template,
            workers,
            limit: config.max_queue.map(|q| q + config.parallel as usize),
            facts,
            grammar: Arc::new(OnceLock::new()),
            config,
            embedder,
            adapters,
        })
    }

    /// The worker for a prompt: an idle slot with the longest cached prefix wins; otherwise
    /// the least loaded worker, preferring the one with the least cached KV to overwrite.
    fn route(&self, tokens: &[i32]) -> Option<&Worker> {
        self.workers
            .iter()
            .filter(|w| w.alive.load(Ordering::Relaxed))
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
    }

    /// Checks what depends on the model: `n` within the slots, bias tokens in the vocabulary.
    /// Template, tokenization and grammar, on the blocking pool (see `prepare`).
    async fn prepare_blocking(
        &self,
        prompt: Prompt,
        answer: Option<crate::Grammar>,
    ) -> Result<prepare::Prepared, EngineError> {
        let (model, template, grammar, facts) = (
            self.model.clone(),
            self.template.clone(),
            self.grammar.clone(),
            self.facts.clone(),
        );
        let literal = !self.config.parse_special_in_content;
        tokio::task::spawn_blocking(move || {
            prepare(
                &model,
                &template,
                &grammar,
                &facts,
                prompt,
                answer.as_ref(),
                literal,
            )
        })
        .await
        .map_err(|e| EngineError::Template(format!("prompt preparation panicked: {e}")))?
    }

    fn check(&self, request: &GenerateRequest) -> Result<(), EngineError> {
        if self.info.embeddings_only {
            return Err(EngineError::InvalidRequest {
                message: "This model serves embeddings only (embeddings_only in the config); use POST /v1/embeddings.".into(),
                param: Some("model".into()),
            });
        }
        if request.n > self.info.parallel {
            return Err(EngineError::InvalidRequest {
                message: format!(
                    "n={} exceeds the {} sequences this model decodes in parallel (--parallel); ask for at most {}.",
                    request.n, self.info.parallel, self.info.parallel
                ),
                param: Some("n".into()),
            });
        }
        if let Some(&(bad, _)) = request
            .sampling
            .logit_bias
            .iter()
            .find(|(t, _)| *t >= self.info.n_vocab)
        {
            return Err(EngineError::InvalidRequest {
                message: format!(
                    "Token id {bad} in 'logit_bias' is outside the model's vocabulary (0..{}).",
                    self.info.n_vocab
                ),
                param: Some("logit_bias".into()),
            });
        }
        Ok(())
    }

    fn embedder(&self) -> Result<&Embedder, EngineError> {
        self.embedder
            .get_or_init(|| embed::spawn(self.model.clone(), &self.config))
            .as_ref()
            .map_err(Clone::clone)
    }
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

fn tokens_of(model: &LlamaModel, input: EmbedInput) -> Result<Vec<i32>, EngineError> {
    let tokens: Vec<i32> = match input {
        EmbedInput::Text(text) => model
            .vocab()
            .tokenize(text.as_bytes(), may_add_special(model, true), false)
            .into_iter()
            .map(|t| t.0)
            .collect(),
        EmbedInput::Tokens(ids) => {
            let n_vocab = model.n_vocab() as u32;
            if let Some(bad) = ids.iter().find(|&&t| t >= n_vocab) {
                return Err(EngineError::InvalidRequest {
                    message: format!("Token id {bad} in 'input' is outside the model's vocabulary (0..{n_vocab})."),
                    param: Some("input".into()),
                });
            }
            ids.into_iter().map(|t| t as i32).collect()
        }
    };
    if tokens.is_empty() {
        return Err(EngineError::InvalidRequest {
            message: "An input is empty after tokenization.".into(),
            param: Some("input".into()),
        });
    }
    Ok(tokens)
}

/// Longest prediction, in bytes per token of the context, tokenized before its token count
/// is checked (no token of a real vocabulary is longer).
const MAX_PREDICTION_BYTES_PER_TOKEN: usize = 64;

/// A request's predicted output, checked against the answer's limit: tokenized as the
/// answer would be (literal text, no BOS), at most `limit` tokens (the context per sequence).
fn predicted(model: &LlamaModel, limit: u32, text: String) -> Result<Predicted, EngineError> {
    let limit = limit as usize;
    let too_long = |size: String| {
        EngineError::InvalidRequest {
        message: format!(
            "The prediction ({size}) is longer than an answer can be: at most {limit} tokens (the context per sequence)."
        ),
        param: Some("prediction".into()),
    }
    };
    if text.len() > limit * MAX_PREDICTION_BYTES_PER_TOKEN {
        return Err(too_long(format!("{} bytes", text.len())));
    }
    let tokens = model.vocab().tokenize(text.as_bytes(), false, false).len();
    if tokens > limit {
        return Err(too_long(format!("{tokens} tokens")));
    }
    Ok(Predicted {
        text: text.into_bytes().into(),
        tokens: tokens as u32,
    })
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

    fn healthy(&self) -> bool {
        self.workers.iter().all(|w| w.alive.load(Ordering::Relaxed))
    }

    fn stats(&self) -> EngineStats {
        let per_worker = u64::from(self.info.n_ctx_per_seq) * u64::from(self.info.parallel);
        let mut total = EngineStats::default();
        for w in &self.workers {
            total.running += w.stats.running.load(Ordering::Relaxed);
            total.waiting += w.stats.waiting.load(Ordering::Relaxed);
            total.kv_used += w.stats.kv_used.load(Ordering::Relaxed);
            total.drafted += w.stats.drafted.load(Ordering::Relaxed);
            total.accepted += w.stats.accepted.load(Ordering::Relaxed);
            total.kv_total += per_worker;
        }
        total
    }

    async fn schedule(&self, request: GenerateRequest) -> Result<Generation, EngineError> {
        self.check(&request)?;
        let param = match request.prompt {
            Prompt::Chat(_) => "messages",
            _ => "prompt",
        };
        let GenerateRequest {
            prompt,
            sampling,
            max_tokens,
            stop,
            ignore_eos,
            n,
            logprobs,
            grammar: answer,
            deadline,
            adapter,
            prediction,
        } = request;
        // Claimed before the (slow) preparation, so the adapter cannot be unloaded meanwhile.
        let adapter = adapter.map(|name| self.adapters.claim(&name)).transpose()?;
        let prediction = match prediction.filter(|p| !p.is_empty()) {
            Some(text) => {
                let (model, limit) = (self.model.clone(), self.info.n_ctx_per_seq);
                let checked = tokio::task::spawn_blocking(move || predicted(&model, limit, text));
                Some(checked.await.map_err(|e| {
                    EngineError::Template(format!("prediction tokenization panicked: {e}"))
                })??)
            }
            None => None,
        };
        let prepared = self.prepare_blocking(prompt, answer).await?;
        let limit = self.info.n_ctx_per_seq;
        // At least one position must remain for the first generated token.
        if prepared.tokens.len() as u32 >= limit {
            return Err(EngineError::ContextLengthExceeded {
                limit,
                requested: prepared.tokens.len() as u32,
                param,
            });
        }
        let worker = self
            .route(&prepared.tokens)
            .ok_or(EngineError::WorkerGone)?;
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
        let top = logprobs.map(|k| k.min(MAX_TOP_LOGPROBS));
        let mut receivers = Vec::with_capacity(n as usize);
        let mut choices = Vec::with_capacity(n as usize);
        for i in 0..n.max(1) {
            let matcher = prepared.grammar.as_ref().map(|m| m.deep_clone());
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            choices.push(ChoiceJob {
                sampler: Sampler::new(&sampling, matcher, top, i)
                    .with_closing(self.facts.closing.clone()),
                events: tx,
            });
            receivers.push(rx);
        }
        let prompt_tokens = prepared.tokens.len() as u32;
        let job = Job {
            tokens: prepared.tokens,
            max_tokens: max_tokens.unwrap_or(u32::MAX),
            stop,
            ignore_eos,
            choices,
            outstanding: Some(outstanding),
            received: std::time::Instant::now(),
            deadline,
            span: tracing::Span::current(),
            adapter,
            prediction,
        };
        worker.jobs.send(job).map_err(|_| EngineError::WorkerGone)?;
        Ok(Generation {
            choices: receivers,
            format: prepared.format,
            prompt_tokens,
        })
    }

    fn adapters(&self) -> Vec<AdapterInfo> {
        self.adapters.list()
    }

    async fn load_adapter(&self, spec: LoraSpec) -> Result<AdapterInfo, EngineError> {
        if self.info.embeddings_only {
            return Err(EngineError::InvalidRequest {
                message: "This model serves embeddings only; LoRA adapters apply to generation."
                    .into(),
                param: Some("model".into()),
            });
        }
        let (adapters, model, path) = (
            self.adapters.clone(),
            self.model.clone(),
            self.config.model_path.clone(),
        );
        tokio::task::spawn_blocking(move || adapters.add(&model, &path, spec))
            .await
            .map_err(|e| EngineError::Context(format!("adapter loading panicked: {e}")))?
    }

    fn unload_adapter(&self, name: &str) -> Result<(), EngineError> {
        self.adapters.remove(name)
    }

    async fn count_tokens(&self, prompt: Prompt) -> Result<u32, EngineError> {
        Ok(self.prepare_blocking(prompt, None).await?.tokens.len() as u32)
    }

    fn tokenize(&self, text: &str, add_special: bool) -> Result<Vec<u32>, EngineError> {
        Ok(self
            .model
            .vocab()
            .tokenize(
                text.as_bytes(),
                may_add_special(&self.model, add_special),
                true,
            )
            .into_iter()
            .map(|t| t.0 as u32)
            .collect())
    }

    fn detokenize(&self, tokens: &[u32]) -> Result<String, EngineError> {
        if let Some(bad) = tokens.iter().find(|&&t| t >= self.info.n_vocab) {
            return Err(EngineError::InvalidRequest {
                message: format!(
                    "Token id {bad} in 'tokens' is outside the model's vocabulary (0..{}).",
                    self.info.n_vocab
                ),
                param: Some("tokens".into()),
            });
        }
        let tokens: Vec<LlamaToken> = tokens.iter().map(|&t| LlamaToken(t as i32)).collect();
        let bytes = self.model.vocab().detokenize(&tokens, false, true);
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn embed(&self, inputs: Vec<EmbedInput>) -> Result<Vec<Embedding>, EngineError> {
        let model = self.model.clone();
        let tokens = tokio::task::spawn_blocking(move || {
            inputs
                .into_iter()
                .map(|i| tokens_of(&model, i))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| EngineError::Template(format!("tokenization panicked: {e}")))??;
        // The context is created on first use: a blocking step, once.
        let embedder = tokio::task::block_in_place(|| self.embedder())?;
        if let Some(long) = tokens.iter().find(|t| t.len() as u32 > embedder.max_tokens) {
            return Err(EngineError::ContextLengthExceeded {
                limit: embedder.max_tokens,
                requested: long.len() as u32,
                param: "input",
            });
        }
        let counts: Vec<u32> = tokens.iter().map(|t| t.len() as u32).collect();
        let vectors = embedder.embed(tokens).await?;
        Ok(vectors
            .into_iter()
            .zip(counts)
            .map(|(vector, tokens)| Embedding { vector, tokens })
            .collect())
    }
}
