//! `lantern bench`: load tests of OpenAI-compatible endpoints (`serve`) and the quantization
//! report (`quant`).

mod answers;
mod chart;
mod client;
mod prefix;
pub mod serve;

pub use serve::ServeBenchArgs;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Drive one or more OpenAI-compatible endpoints with the same streaming chat workload and
    /// compare them: throughput, TTFT and inter-token latency, answers side by side
    Serve(ServeBenchArgs),
}

/// Runs a benchmark; the error is one line for the user.
pub fn run(command: BenchCommand) -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start: {e}"))?;
    match command {
        BenchCommand::Serve(args) => runtime.block_on(serve::run(args)),
    }
}
