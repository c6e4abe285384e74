//! What one decode step costs by batch size on this machine, with the logits of every token
//! (as verifying a speculative draft needs) and of the last token only (as llama-bench and
//! prefill have them), at a given KV depth. Speculative decoding pays only as far as a draft
//! token costs less than a step; this shows by how much, per model file and quantization.
//!
//! ```sh
//! cargo run --release -p lantern-engine --example step_cost -- MODEL.gguf [THREADS] [DEPTH]
//! ```

use std::num::NonZeroU32;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

const SIZES: [usize; 8] = [1, 2, 3, 4, 6, 8, 12, 16];
const REPEATS: usize = 11;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: step_cost MODEL.gguf [THREADS] [DEPTH]")?;
    let threads: i32 = args.next().map_or(Ok(2), |a| a.parse())?;
    let depth: i32 = args.next().map_or(Ok(480), |a| a.parse())?;
    let mut backend = LlamaBackend::init()?;
    backend.void_logs();
    let model = LlamaModel::load_from_file(&backend, &path, &LlamaModelParams::default())?;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(depth as u32 + 64))
        .with_n_batch(512)
        .with_n_ubatch(512)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = model.new_context(&backend, params)?;
    let mut batch = LlamaBatch::new(512, 1);
    // Any tokens do: the cost of a step does not depend on which they are.
    for start in (0..depth).step_by(512) {
        batch.clear();
        let end = (start + 512).min(depth);
        for pos in start..end {
            batch.add(LlamaToken(100 + pos % 300), pos, &[0], pos == end - 1)?;
        }
        ctx.decode(&mut batch)?;
    }
    println!("{path}: {threads} threads, {depth} KV cells before each step, median of {REPEATS}");
    println!("| tokens | all logits ms | x 1 token | last logits ms | x 1 token |");
    println!("|---|---|---|---|---|");
    let mut unit = [0.0; 2];
    for n in SIZES {
        let mut row = format!("| {n} |");
        for (i, all) in [true, false].into_iter().enumerate() {
            let mut times = Vec::with_capacity(REPEATS);
            for _ in 0..REPEATS {
                batch.clear();
                for k in 0..n {
                    let pos = depth + k as i32;
                    batch.add(LlamaToken(200 + k as i32), pos, &[0], all || k == n - 1)?;
                }
                let started = Instant::now();
                ctx.decode(&mut batch)?;
                times.push(started.elapsed().as_secs_f64() * 1000.0);
                ctx.clear_kv_cache_seq(Some(0), Some(depth as u32), None)?;
            }
            times.sort_by(f64::total_cmp);
            let ms = times[REPEATS / 2];
            if n == 1 {
                unit[i] = ms;
            }
            row += &format!(" {ms:.2} | {:.2} |", ms / unit[i]);
        }
        println!("{row}");
    }
    Ok(())
}
