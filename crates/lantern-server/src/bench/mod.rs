//! `lantern bench`: load tests of OpenAI-compatible endpoints (`serve`) and the quantization
//! report (`quant`).

mod answers;
mod chart;
mod client;
mod prefix;
pub mod quant;
mod quant_report;
pub mod serve;

pub use serve::ServeBenchArgs;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Drive one or more OpenAI-compatible endpoints with the same streaming chat workload and
    /// compare them: throughput, TTFT and inter-token latency, answers side by side
    Serve(ServeBenchArgs),
    /// Quantize a model to several levels (or take GGUF files) and measure each in one run:
    /// size, load time, memory, speed, perplexity, KL divergence; a report with a chart
    Quant(quant::QuantBenchArgs),
}

/// Runs a benchmark; the error is one line for the user.
pub fn run(command: BenchCommand) -> Result<(), String> {
    // Progress bars and results only: llama.cpp's chatter just for errors, unless RUST_LOG.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,llama-cpp-2=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start: {e}"))?;
    match command {
        BenchCommand::Serve(args) => runtime.block_on(serve::run(args)),
        BenchCommand::Quant(args) => {
            drop(runtime);
            quant::run(args)
        }
    }
}
