//! `lantern quantize`: a GGUF model requantized by llama.cpp, with a progress bar and the
//! sizes at the end.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use lantern_engine::{default_threads, quantize, QuantType};

#[derive(clap::Args)]
pub struct QuantizeArgs {
    /// The GGUF model to read: F16, BF16 or F32 for the best result; an already quantized one
    /// needs --allow-requantize
    pub input: PathBuf,
    /// Where to write the quantized model
    pub output: PathBuf,
    /// q8_0, q6_k, q5_k_m, q5_0, q4_k_m, q4_1, q4_0, q3_k_m, q2_k or iq4_nl
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: String,
    /// Threads to quantize with [default: the physical cores]
    #[arg(long)]
    pub threads: Option<u32>,
    /// Quantize tensors that are already quantized (more quality lost than from F16)
    #[arg(long)]
    pub allow_requantize: bool,
    /// Overwrite OUTPUT if it exists
    #[arg(long)]
    pub force: bool,
}

fn mib(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / (1024.0 * 1024.0))
}

/// Runs the command; the error is one line for the user.
pub fn run(args: &QuantizeArgs) -> Result<String, String> {
    let kind: QuantType = args.kind.parse()?;
    if args.output.exists() && !args.force {
        return Err(format!(
            "{} exists; pass --force to overwrite it",
            args.output.display()
        ));
    }
    if args.input.canonicalize().ok() == args.output.canonicalize().ok() && args.output.exists() {
        return Err("the output would overwrite the input; write to another file".into());
    }
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "quantizing to {msg} [{bar:40}] {pos}/{len} tensors ({elapsed})",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(kind.name);
    let threads = args.threads.unwrap_or_else(|| default_threads() as u32);
    let result = quantize(
        &args.input,
        &args.output,
        kind,
        threads,
        args.allow_requantize,
        &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    );
    bar.finish_and_clear();
    match result {
        Ok(()) => {
            let (input, output) = (mib(&args.input), mib(&args.output));
            Ok(format!(
                "wrote {} ({output:.1} MiB, {}) from {} ({input:.1} MiB): {:.2}x the input's size",
                args.output.display(),
                kind.name,
                args.input.display(),
                output / input.max(f64::MIN_POSITIVE)
            ))
        }
        Err(e) => {
            let mut message = e.to_string();
            if message.contains("requantiz") && !args.allow_requantize {
                message.push_str(" (the input is already quantized: pass --allow-requantize)");
            }
            Err(message)
        }
    }
}
