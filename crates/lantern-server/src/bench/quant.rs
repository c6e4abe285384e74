//! `lantern bench quant`: a model at several quantization levels, measured in one run: file
//! size, load time, peak memory while serving, prompt and decode speed at 1 and 8 sequences,
//! perplexity on a text, and KL divergence and top-1 agreement against the most precise level;
//! written as report.md (with a recommendation), report.json and a chart.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use lantern_engine::{default_threads, evaluate, quantize, EvalConfig, QuantType, Reference};
use serde::Serialize;
use serde_json::json;

use super::client::{http, stream_chat, Endpoint, Workload};

#[derive(Debug, Clone, clap::Args)]
pub struct QuantBenchArgs {
    /// The model to start from (best: an F16 GGUF)
    #[arg(long)]
    pub model: PathBuf,
    /// Levels to quantize the model to and measure
    #[arg(long, value_delimiter = ',', default_value = "q8_0,q4_k_m,q4_0")]
    pub types: Vec<String>,
    /// Measure these GGUF files instead of quantizing (comma-separated)
    #[arg(long, value_delimiter = ',')]
    pub files: Vec<PathBuf>,
    /// Plain text to measure perplexity and KL divergence on
    #[arg(long, value_name = "FILE")]
    pub text: PathBuf,
    /// Where the report, the chart and the quantized files go
    #[arg(long, value_name = "DIR", default_value = "bench-quant")]
    pub out: PathBuf,
    /// Tokens per perplexity chunk (llama-perplexity's -c)
    #[arg(long, default_value_t = 512)]
    pub ctx: u32,
    /// At most this many perplexity chunks [default: all the text holds]
    #[arg(long)]
    pub chunks: Option<usize>,
    /// CPU threads for every step [default: the physical cores]
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
    /// Speed rounds; the levels take turns within each, in alternating order
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Quality budget: the recommendation is the smallest level whose perplexity is at most
    /// this many percent above the reference's
    #[arg(long, default_value_t = 5.0)]
    pub budget: f64,
    /// Quantize an input that is already quantized (quality is lost twice)
    #[arg(long)]
    pub allow_requantize: bool,
}

/// One measured level.
#[derive(Debug, Clone, Serialize)]
pub struct Level {
    pub name: String,
    pub path: PathBuf,
    pub size_bytes: u64,
    pub reference: bool,
    pub load_s: f64,
    pub peak_rss_bytes: u64,
    pub prompt_tok_s_1: f64,
    pub prompt_tok_s_8: f64,
    pub decode_tok_s_1: f64,
    pub decode_tok_s_8: f64,
    pub perplexity: f64,
    pub kld: f64,
    pub top1: f64,
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({elapsed})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or("model".into(), |s| s.to_string_lossy().into_owned())
}

/// The files to measure, quantizing where asked: (name, path).
fn levels(args: &QuantBenchArgs, threads: usize) -> Result<Vec<(String, PathBuf)>, String> {
    let mut out = vec![(format!("{} (input)", stem(&args.model)), args.model.clone())];
    if !args.files.is_empty() {
        out.extend(args.files.iter().map(|f| (stem(f), f.clone())));
        return Ok(out);
    }
    let dir = args.out.join("models");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for kind in &args.types {
        let kind: QuantType = kind.parse()?;
        let path = dir.join(format!("{}-{}.gguf", stem(&args.model), kind.name));
        let bar = bar(0, &format!("quantizing to {}", kind.name));
        let done = quantize(
            &args.model,
            &path,
            kind,
            threads as u32,
            args.allow_requantize,
            &mut |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            },
        );
        bar.finish_and_clear();
        done.map_err(|e| {
            let hint = if e.to_string().contains("requantiz") {
                " (the model is already quantized: pass --allow-requantize)"
            } else {
                ""
            };
            format!("quantizing to {}: {e}{hint}", kind.name)
        })?;
        eprintln!("bench quant: wrote {}", path.display());
        out.push((kind.name.to_string(), path));
    }
    Ok(out)
}

/// What one serving round measured for a level.
#[derive(Debug, Clone, Copy, Default)]
struct Speed {
    load_s: f64,
    rss: u64,
    pp1: f64,
    pp8: f64,
    tg1: f64,
    tg8: f64,
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Peak resident memory of a process (Linux's VmHWM).
fn peak_rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_string();
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(0)
}

/// A child `lantern serve` on one level, killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_ready(client: &reqwest::Client, base: &str, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.0.try_wait() {
            return Err(format!("the server exited with {status} while loading"));
        }
        if let Ok(r) = client.get(format!("{base}/health")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("the server was not ready after 10 minutes".into())
}

/// Prompt tokens per second of `n` different prompts at once (none shares a cached prefix).
async fn prompt_speed(
    client: &reqwest::Client,
    base: &str,
    model: &str,
    text: &str,
    n: usize,
    round: usize,
) -> Result<f64, String> {
    let started = Instant::now();
    let results: Vec<Result<u64, String>> = futures::stream::iter(0..n)
        .map(|i| async move {
            let body = json!({"model": model, "prompt": format!("Excerpt {round}-{i}. {text}"),
                              "max_tokens": 1, "temperature": 0});
            let v: serde_json::Value = client
                .post(format!("{base}/v1/completions"))
                .header("Cache-Control", "no-cache")
                .json(&body)
                .send()
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            v["usage"]["prompt_tokens"]
                .as_u64()
                .ok_or_else(|| format!("no usage in {v}"))
        })
        .buffer_unordered(n)
        .collect()
        .await;
    let tokens: u64 = results
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .iter()
        .sum();
    Ok(tokens as f64 / started.elapsed().as_secs_f64())
}

/// Decode tokens per second: one stream's own rate, or `n` streams' aggregate.
async fn decode_speed(
    client: &reqwest::Client,
    base: &str,
    model: &str,
    n: usize,
) -> Result<f64, String> {
    let endpoint = Endpoint {
        url: format!("{base}/v1"),
        api_key: None,
    };
    let work = Workload {
        max_tokens: 64,
        temperature: 0.0,
        ignore_eos: true,
        response_format: None,
    };
    let started = Instant::now();
    let samples: Vec<_> = futures::stream::iter(0..n)
        .map(|i| {
            let (endpoint, work) = (&endpoint, &work);
            async move {
                let messages = json!([{"role": "user", "content": format!("Story {i}: write about a lighthouse keeper.")}]);
                stream_chat(client, endpoint, work, model, messages, 64).await
            }
        })
        .buffer_unordered(n)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    if n == 1 {
        let s = &samples[0];
        return Ok(s.tokens.saturating_sub(1) as f64 / s.decode_time.as_secs_f64().max(1e-9));
    }
    let tokens: u64 = samples.iter().map(|s| s.tokens).sum();
    Ok(tokens as f64 / started.elapsed().as_secs_f64())
}

async fn serve_round(
    path: &Path,
    threads: usize,
    text: &str,
    round: usize,
    log: &Path,
) -> Result<Speed, String> {
    let client = http();
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let log = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let child = std::process::Command::new(exe)
        .args([
            "serve",
            "--port",
            &port.to_string(),
            "--threads",
            &threads.to_string(),
        ])
        .args(["--parallel", "8", "--ctx-size", "8192", "--model"])
        .arg(path)
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start lantern serve: {e}"))?;
    let mut child = Child(child);
    wait_ready(&client, &base, &mut child).await?;
    let load_s = started.elapsed().as_secs_f64();
    let endpoint = Endpoint {
        url: format!("{base}/v1"),
        api_key: None,
    };
    let model = super::client::first_model(&client, &endpoint).await?;
    // A first request warms caches, so the first level measured is not at a disadvantage.
    decode_speed(&client, &base, &model, 1).await?;
    let pp1 = prompt_speed(&client, &base, &model, text, 1, round).await?;
    let pp8 = prompt_speed(&client, &base, &model, text, 8, round).await?;
    let tg1 = decode_speed(&client, &base, &model, 1).await?;
    let tg8 = decode_speed(&client, &base, &model, 8).await?;
    Ok(Speed {
        load_s,
        rss: peak_rss(child.0.id()),
        pp1,
        pp8,
        tg1,
        tg8,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// About 400 words of the text, for the prompt-speed requests (well within a slot's 1024).
fn prompt_text(text: &str) -> String {
    text.split_whitespace()
        .take(300)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn run(args: QuantBenchArgs) -> Result<(), String> {
    let threads = args.threads.unwrap_or_else(default_threads);
    let text = std::fs::read_to_string(&args.text)
        .map_err(|e| format!("cannot read --text {}: {e}", args.text.display()))?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let files = levels(&args, threads)?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len());
    let sizes = files
        .iter()
        .map(|(_, p)| size(p).map_err(|e| format!("cannot read {}: {e}", p.display())))
        .collect::<Result<Vec<u64>, String>>()?;
    // The most precise level is the reference: the largest file.
    let reference = (0..files.len()).max_by_key(|&i| sizes[i]).unwrap_or(0);
    let ref_file = args.out.join("reference.logprobs");
    let config = EvalConfig {
        ctx: args.ctx,
        threads,
        chunks: args.chunks,
    };
    let mut quality = vec![None; files.len()];
    let order = std::iter::once(reference).chain((0..files.len()).filter(|&i| i != reference));
    for i in order {
        let (name, path) = &files[i];
        let bar = bar(0, &format!("perplexity of {name}"));
        let mode = if i == reference {
            Reference::Write(&ref_file)
        } else {
            Reference::Compare(&ref_file)
        };
        let r = evaluate(path, &text, config, mode, &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .map_err(|e| format!("evaluating {name}: {e}"))?;
        bar.finish_and_clear();
        eprintln!(
            "bench quant: {name}: perplexity {:.4} over {} tokens ({} chunks of {})",
            r.perplexity, r.scored, r.chunks, args.ctx
        );
        quality[i] = Some(r);
    }
    let _ = std::fs::remove_file(&ref_file);
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let prompt = prompt_text(&text);
    let mut speeds: Vec<Vec<Speed>> = vec![Vec::new(); files.len()];
    let logs = args.out.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let rounds = args.rounds.max(1);
    let progress = bar((rounds * files.len()) as u64, "serving speed");
    for round in 0..rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..files.len()).collect()
        } else {
            (0..files.len()).rev().collect()
        };
        for i in order {
            let (name, path) = &files[i];
            let log = logs.join(format!("{}-{round}.log", stem(path)));
            let s = runtime
                .block_on(serve_round(path, threads, &prompt, round, &log))
                .map_err(|e| format!("serving {name}: {e} (log: {})", log.display()))?;
            speeds[i].push(s);
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    let levels: Vec<Level> = files
        .iter()
        .enumerate()
        .map(|(i, (name, path))| {
            let q = quality[i].expect("every level was evaluated");
            let pick = |f: fn(&Speed) -> f64| median(speeds[i].iter().map(f).collect());
            Level {
                name: name.clone(),
                path: path.clone(),
                size_bytes: sizes[i],
                reference: i == reference,
                load_s: pick(|s| s.load_s),
                peak_rss_bytes: speeds[i].iter().map(|s| s.rss).max().unwrap_or(0),
                prompt_tok_s_1: pick(|s| s.pp1),
                prompt_tok_s_8: pick(|s| s.pp8),
                decode_tok_s_1: pick(|s| s.tg1),
                decode_tok_s_8: pick(|s| s.tg8),
                perplexity: q.perplexity,
                kld: q.kld.unwrap_or(0.0),
                top1: q.top1.unwrap_or(1.0),
            }
        })
        .collect();
    super::quant_report::write(&args, &levels)?;
    eprintln!(
        "bench quant: wrote {}",
        args.out.join("report.md").display()
    );
    Ok(())
}
