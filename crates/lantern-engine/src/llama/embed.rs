//! Embeddings on a context of their own, so embedding traffic never takes a generation slot
//! or disturbs its KV cache. One thread owns the context; inputs are batched up to its size,
//! pooled (the GGUF's pooling type, else mean), and L2-normalised.

use std::num::NonZeroU32;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::oneshot;

use super::EngineConfig;
use crate::EngineError;

/// Sequences embedded in one decode at most.
const MAX_SEQS: u32 = 8;

type Reply = oneshot::Sender<Result<Vec<Vec<f32>>, EngineError>>;

struct EmbedJob {
    inputs: Vec<Vec<i32>>,
    reply: Reply,
}

/// The embedding thread's handle.
pub(crate) struct Embedder {
    jobs: Sender<EmbedJob>,
    /// Most tokens in one input.
    pub max_tokens: u32,
}

impl Embedder {
    pub async fn embed(&self, inputs: Vec<Vec<i32>>) -> Result<Vec<Vec<f32>>, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send(EmbedJob { inputs, reply })
            .map_err(|_| EngineError::WorkerGone)?;
        rx.await.map_err(|_| EngineError::WorkerGone)?
    }
}

/// The GGUF's pooling type when it declares one (embedding models), else mean pooling (a
/// decoder model used for embeddings).
fn pooling(model: &LlamaModel) -> LlamaPoolingType {
    let declared = model
        .meta_val_str("general.architecture")
        .ok()
        .and_then(|arch| model.meta_val_str(&format!("{arch}.pooling_type")).ok());
    match declared {
        Some(_) => LlamaPoolingType::Unspecified,
        None => LlamaPoolingType::Mean,
    }
}

/// Creates the embedding context and its thread; blocks until the context exists.
pub(crate) fn spawn(
    model: Arc<LlamaModel>,
    config: &EngineConfig,
) -> Result<Embedder, EngineError> {
    let n_ctx = (config.ctx_size / config.parallel).clamp(64, model.n_ctx_train().max(64));
    let threads = config.threads as i32;
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("lantern-embed".into())
        .spawn(move || {
            let params = LlamaContextParams::default()
                .with_embeddings(true)
                .with_pooling_type(pooling(&model))
                .with_n_ctx(NonZeroU32::new(n_ctx))
                .with_n_batch(n_ctx)
                .with_n_ubatch(n_ctx)
                .with_n_seq_max(MAX_SEQS)
                .with_kv_unified(true)
                .with_n_threads(threads)
                .with_n_threads_batch(threads);
            let ctx = super::load::backend().and_then(|backend| {
                let _guard = super::load::CONTEXT_CREATION.lock();
                model
                    .new_context(backend, params)
                    .map_err(|e| EngineError::Context(format!("embedding context: {e}")))
            });
            match ctx {
                Ok(ctx) => {
                    let _ = ready_tx.send(Ok(()));
                    tracing::info!(n_ctx, "embedding context ready");
                    run(ctx, n_ctx as usize, rx);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        })
        .map_err(|e| EngineError::Context(format!("cannot start the embedding thread: {e}")))?;
    ready_rx.recv().unwrap_or(Err(EngineError::WorkerGone))?;
    Ok(Embedder {
        jobs: tx,
        max_tokens: n_ctx,
    })
}

fn run(mut ctx: llama_cpp_2::context::LlamaContext<'_>, n_ctx: usize, jobs: Receiver<EmbedJob>) {
    let mut batch = LlamaBatch::new(n_ctx, 1);
    while let Ok(job) = jobs.recv() {
        let result = embed_all(&mut ctx, &mut batch, n_ctx, &job.inputs);
        let _ = job.reply.send(result);
    }
}

/// Embeds inputs in groups that fit the context together.
fn embed_all(
    ctx: &mut llama_cpp_2::context::LlamaContext<'_>,
    batch: &mut LlamaBatch<'_>,
    n_ctx: usize,
    inputs: &[Vec<i32>],
) -> Result<Vec<Vec<f32>>, EngineError> {
    let mut out = Vec::with_capacity(inputs.len());
    let mut start = 0;
    while start < inputs.len() {
        let mut end = start;
        let mut tokens = 0;
        while end < inputs.len()
            && end - start < MAX_SEQS as usize
            && tokens + inputs[end].len() <= n_ctx
        {
            tokens += inputs[end].len();
            end += 1;
        }
        batch.clear();
        for (seq, input) in inputs[start..end].iter().enumerate() {
            for (pos, &t) in input.iter().enumerate() {
                batch
                    .add(LlamaToken(t), pos as i32, &[seq as i32], true)
                    .map_err(|e| EngineError::Decode(e.to_string()))?;
            }
        }
        ctx.clear_kv_cache();
        ctx.decode(batch)
            .map_err(|e| EngineError::Decode(format!("embedding: {e}")))?;
        for seq in 0..end - start {
            let v = ctx
                .embeddings_seq_ith(seq as i32)
                .map_err(|e| EngineError::Decode(format!("embedding: {e}")))?;
            out.push(normalized(v));
        }
        start = end;
    }
    ctx.clear_kv_cache();
    Ok(out)
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    let scale = if norm > 0.0 { (1.0 / norm) as f32 } else { 0.0 };
    v.iter().map(|x| x * scale).collect()
}
