//! The inference thread: owns the `LlamaContext`, reports readiness (or the context error)
//! through a handshake carrying the per-sequence context size, then
//! alternates between taking new requests and running scheduler steps.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::Arc;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;

use super::runtime::LlamaRuntime;
use super::EngineConfig;
use crate::scheduler::{IdlePrefixes, Scheduler, SchedulerConfig, SlotStats};
use crate::slot::Job;
use crate::EngineError;

pub(crate) fn spawn(
    model: Arc<LlamaModel>,
    config: EngineConfig,
    jobs: Receiver<Job>,
    idle_prefixes: IdlePrefixes,
    stats: Arc<SlotStats>,
    alive: Arc<AtomicBool>,
    preserved: Vec<i32>,
) -> Result<u32, EngineError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("lantern-infer".into())
        .spawn(move || {
            let _alive = AliveGuard(alive);
            let published = (idle_prefixes, stats);
            run(&model, &config, jobs, published, preserved, ready_tx)
        })
        .map_err(|e| EngineError::Context(format!("cannot start the inference thread: {e}")))?;
    ready_rx.recv().unwrap_or(Err(EngineError::WorkerGone))
}

/// Marks the worker dead when its thread ends, by a panic above all: the engine stops
/// routing to it and reports itself unhealthy, and the server reloads the model.
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
        if std::thread::panicking() {
            tracing::error!("inference worker panicked: its requests fail, and the model is reloaded on the next request");
        }
    }
}

fn run(
    model: &LlamaModel,
    config: &EngineConfig,
    jobs: Receiver<Job>,
    (idle_prefixes, stats): (IdlePrefixes, Arc<SlotStats>),
    preserved: Vec<i32>,
    ready: SyncSender<Result<u32, EngineError>>,
) {
    let batch_tokens = config.batch_tokens();
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(config.ctx_size))
        .with_n_seq_max(config.parallel)
        .with_n_batch(batch_tokens as u32)
        .with_n_ubatch(config.ubatch_tokens())
        .with_n_threads(config.threads as i32)
        .with_n_threads_batch(config.threads as i32);
    let backend = match super::load::backend() {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let created = {
        let _guard = super::load::CONTEXT_CREATION.lock();
        model.new_context(backend, params)
    };
    let ctx = match created {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = ready.send(Err(EngineError::Context(format!(
                "{e} (ctx-size {} with {} parallel sequences may need more memory than is available)",
                config.ctx_size, config.parallel
            ))));
            return;
        }
    };
    let n_ctx_per_seq = ctx.n_ctx() / config.parallel;
    let runtime = LlamaRuntime {
        model,
        ctx,
        batch: LlamaBatch::new(batch_tokens, 1),
        preserved,
        adapter: None,
        // llama.cpp keeps one state per sequence for these: no cutting drafts off.
        rewindable: !model.is_recurrent() && !model.is_hybrid(),
    };
    let mut scheduler = Scheduler::new(
        runtime,
        SchedulerConfig {
            n_slots: config.parallel as usize,
            n_ctx_per_seq,
            max_batch_tokens: batch_tokens,
            spec: config.speculative,
        },
    );
    scheduler.publish_idle_prefixes(idle_prefixes);
    scheduler.publish_stats(stats);
    if ready.send(Ok(n_ctx_per_seq)).is_err() {
        return;
    }
    tracing::info!(
        threads = config.threads,
        parallel = config.parallel,
        ctx_size = config.ctx_size,
        n_ctx_per_seq,
        "inference worker ready"
    );
    let mut open = true;
    loop {
        if scheduler.is_idle() {
            if !open {
                break;
            }
            scheduler.release_adapter();
            match jobs.recv() {
                Ok(job) => scheduler.enqueue(job),
                Err(_) => break,
            }
        }
        while open {
            match jobs.try_recv() {
                Ok(job) => scheduler.enqueue(job),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        scheduler.step();
    }
    tracing::info!("inference worker stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_worker_marks_itself_dead() {
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        let joined = std::thread::spawn(move || {
            let _alive = AliveGuard(flag);
            panic!("a bug in the decode loop");
        })
        .join();
        assert!(joined.is_err());
        assert!(!alive.load(Ordering::Relaxed));
    }
}
