//! Quality of a model on a text, computed as llama.cpp's `llama-perplexity` does: the text is
//! tokenized once (special tokens added), cut into chunks of `ctx` tokens (BOS in front of each
//! when the vocabulary adds one), and every chunk's second half is scored, each position
//! predicting the next token. Against a reference model's distributions (written to a file by
//! an earlier run on the same text), also the KL divergence and top-1 agreement.

use std::io::{BufReader, BufWriter, Read, Write};
use std::num::NonZeroU32;
use std::path::Path;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;

use crate::EngineError;

/// How to evaluate.
#[derive(Debug, Clone, Copy)]
pub struct EvalConfig {
    /// Tokens per chunk (llama-perplexity's `-c`).
    pub ctx: u32,
    pub threads: usize,
    /// At most this many chunks (None: all the text holds).
    pub chunks: Option<usize>,
}

/// What the evaluation gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalResult {
    pub perplexity: f64,
    pub chunks: usize,
    /// Tokens scored.
    pub scored: usize,
    /// Mean KL divergence from the reference's distributions (0 for the reference itself).
    pub kld: Option<f64>,
    /// Share of positions where both models' likeliest next token agree.
    pub top1: Option<f64>,
}

/// Where the reference's distributions go or come from.
pub enum Reference<'a> {
    /// This model is the reference: write its log-probabilities here.
    Write(&'a Path),
    /// Compare with the distributions an earlier run wrote here.
    Compare(&'a Path),
}

fn io(path: &Path, e: std::io::Error) -> EngineError {
    EngineError::ModelUnreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Log-softmax of `logits` into `out`.
fn log_softmax(logits: &[f32], out: &mut Vec<f32>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let log_sum = sum.ln() as f32 + max;
    out.clear();
    out.extend(logits.iter().map(|&l| l - log_sum));
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// Evaluates the model at `model_path` on `text`; `progress(chunk, chunks)` after each chunk.
pub fn evaluate(
    model_path: &Path,
    text: &str,
    config: EvalConfig,
    reference: Reference<'_>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalResult, EngineError> {
    let model = super::load::load_model(model_path, 0, 0)?;
    let backend = super::load::backend()?;
    let n_ctx = config.ctx as usize;
    let vocab = model.vocab();
    let add_bos = vocab.should_add_bos() && super::prepare::may_add_special(&model, true);
    let tokens: Vec<i32> = vocab
        .tokenize(text.as_bytes(), add_bos, false)
        .into_iter()
        .map(|t| t.0)
        .collect();
    if tokens.len() < 2 * n_ctx {
        return Err(EngineError::InvalidRequest {
            message: format!(
                "the text has {} tokens; evaluating with a context of {n_ctx} needs at least {} (a longer text, or a smaller context)",
                tokens.len(),
                2 * n_ctx
            ),
            param: Some("text".into()),
        });
    }
    let n_chunks = (tokens.len() / n_ctx).min(config.chunks.unwrap_or(usize::MAX));
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(config.ctx))
        .with_n_batch(config.ctx)
        .with_n_ubatch(config.ctx)
        .with_n_seq_max(1)
        .with_n_threads(config.threads as i32)
        .with_n_threads_batch(config.threads as i32);
    let mut ctx = {
        let _guard = super::load::CONTEXT_CREATION.lock();
        model
            .new_context(backend, params)
            .map_err(|e| EngineError::Context(e.to_string()))?
    };
    let n_vocab = model.n_vocab() as usize;
    let bos = vocab.bos().0;
    let first = n_ctx / 2;
    let mut batch = LlamaBatch::new(n_ctx, 1);
    let (mut nll, mut kld, mut agree, mut count) = (0.0f64, 0.0f64, 0usize, 0usize);
    let mut writer = match reference {
        Reference::Write(path) => Some(BufWriter::new(
            std::fs::File::create(path).map_err(|e| io(path, e))?,
        )),
        Reference::Compare(_) => None,
    };
    let mut reader = match reference {
        Reference::Compare(path) => Some((
            BufReader::new(std::fs::File::open(path).map_err(|e| io(path, e))?),
            path,
        )),
        Reference::Write(_) => None,
    };
    let (mut logp, mut ref_logp, mut bytes) =
        (Vec::new(), vec![0f32; n_vocab], vec![0u8; n_vocab * 4]);
    for chunk in 0..n_chunks {
        let start = chunk * n_ctx;
        ctx.clear_kv_cache();
        batch.clear();
        for k in 0..n_ctx {
            let token = if k == 0 && add_bos {
                bos
            } else {
                tokens[start + k]
            };
            batch
                .add(
                    llama_cpp_2::token::LlamaToken(token),
                    k as i32,
                    &[0],
                    k >= first,
                )
                .map_err(|e| EngineError::Decode(e.to_string()))?;
        }
        ctx.decode(&mut batch)
            .map_err(|e| EngineError::Decode(e.to_string()))?;
        for j in first..n_ctx - 1 {
            log_softmax(ctx.get_logits_ith(j as i32), &mut logp);
            let next = tokens[start + j + 1] as usize;
            nll -= f64::from(logp[next]);
            count += 1;
            if let Some(w) = writer.as_mut() {
                for v in &logp {
                    w.write_all(&v.to_le_bytes())
                        .map_err(|e| io(Path::new("reference"), e))?;
                }
            }
            if let Some((r, path)) = reader.as_mut() {
                r.read_exact(&mut bytes).map_err(|e| {
                    io(
                        path,
                        std::io::Error::new(
                            e.kind(),
                            format!("the reference holds fewer positions: {e}"),
                        ),
                    )
                })?;
                for (v, b) in ref_logp.iter_mut().zip(bytes.chunks_exact(4)) {
                    *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
                kld += ref_logp
                    .iter()
                    .zip(&logp)
                    .map(|(&r, &q)| f64::from(r).exp() * f64::from(r - q))
                    .sum::<f64>();
                agree += usize::from(argmax(&ref_logp) == argmax(&logp));
            }
        }
        progress(chunk + 1, n_chunks);
    }
    if let Some(mut w) = writer {
        w.flush().map_err(|e| io(Path::new("reference"), e))?;
    }
    let compared = matches!(reference, Reference::Compare(_));
    let is_reference = matches!(reference, Reference::Write(_));
    Ok(EvalResult {
        perplexity: (nll / count as f64).exp(),
        chunks: n_chunks,
        scored: count,
        kld: if compared {
            Some(kld / count as f64)
        } else {
            is_reference.then_some(0.0)
        },
        top1: if compared {
            Some(agree as f64 / count as f64)
        } else {
            is_reference.then_some(1.0)
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_sums_to_one_and_keeps_the_order() {
        let mut out = Vec::new();
        log_softmax(&[1.0, 3.0, 2.0], &mut out);
        let total: f32 = out.iter().map(|v| v.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert_eq!(argmax(&out), 1);
    }
}
