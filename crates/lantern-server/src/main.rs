//! The `lantern` binary.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use lantern_engine::{check_model_file, estimate_memory, Backend, EngineError, LlamaEngine};
use lantern_server::auth::{cors_layer, ApiKeys};
use lantern_server::cache::ResponseCache;
use lantern_server::config::{LoadPolicy, LogFormat, ModelConfig, ServeArgs, ServeConfig};
use lantern_server::download;
use lantern_server::state::{now_millis, AdapterSet, Loader};
use lantern_server::{router, ApiError, AppState, ModelEntry};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "lantern",
    version,
    about = "OpenAI-compatible inference server for GGUF models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a model over the OpenAI API
    // A flag given again overrides the earlier one, so a container's entrypoint flags
    // (--host, --port, --gpu-layers) can be changed by `docker run IMAGE --port 9000`.
    #[command(args_override_self = true)]
    Serve(Box<ServeArgs>),
    /// Print the OpenAPI document (YAML) generated from the code
    Openapi,
    /// Benchmarks: compare OpenAI-compatible endpoints (`serve`)
    #[command(subcommand)]
    Bench(Box<lantern_server::bench::BenchCommand>),
    /// Quantize a GGUF model to another level (llama.cpp's quantizer), e.g. an F16 GGUF to q4_k_m
    Quantize(lantern_server::quantize::QuantizeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Openapi => {
            print!("{}", lantern_server::openapi::yaml());
            ExitCode::SUCCESS
        }
        Command::Bench(command) => match lantern_server::bench::run(*command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => fail(message),
        },
        Command::Quantize(args) => match lantern_server::quantize::run(&args) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(message) => fail(message),
        },
        Command::Serve(args) => {
            if let Err(message) = init_tracing(&args) {
                return fail(message);
            }
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => return fail(format!("cannot start the async runtime: {e}")),
            };
            let result = runtime.block_on(serve(*args));
            // Do not wait on work nobody will collect (a model load in progress).
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => fail(message),
            }
        }
    }
}

fn fail(message: String) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

fn init_tracing(args: &ServeArgs) -> Result<(), String> {
    let level = args.llama_log_level.to_ascii_lowercase();
    if !["off", "error", "warn", "info", "debug", "trace"].contains(&level.as_str()) {
        return Err(format!(
            "--llama-log-level {level}: use off, error, warn, info or debug"
        ));
    }
    // llama.cpp's own chatter (tensor listings, buffer sizes) only at warn unless asked for.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("info,llama-cpp-2={level},tower_http=info")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Json => builder.json().with_current_span(true).init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let config = ServeConfig::resolve(args).map_err(|e| e.to_string())?;
    // Fail before binding, in one line, when a model file is unusable.
    for model in config.models.iter().filter(|m| m.source.is_none()) {
        if let Err(e) = check_model_file(&model.engine.model_path) {
            return Err(match e {
                EngineError::ModelNotFound { path } if model.default_model => format!(
                    "default model {} not found; run `make model` to fetch it, or pass --model PATH",
                    path.display()
                ),
                other => other.to_string(),
            });
        }
    }
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.addr))?;
    let count_memory = config.limits.max_memory_bytes.is_some();
    let entries = config
        .models
        .iter()
        .map(|m| model_entry(m, count_memory))
        .collect();
    let state = AppState::new(
        entries,
        config.max_body_bytes,
        ResponseCache::new(&config.cache),
    )
    .with_limits(config.limits);
    let mut state = state;
    state.reasoning_fields = config.reasoning_fields;
    state.request_limits = config.request_limits.clone();
    state.responses = lantern_server::response_store::ResponseStore::new(&config.responses);
    state.metrics = Some(lantern_server::metrics::install()?);
    state.keys = ApiKeys::new(
        &config.auth,
        std::env::var("LANTERN_API_KEYS").ok().as_deref(),
    )
    .map_err(|e| e.to_string())?;
    state.cors = cors_layer(&config.auth.cors_allowed_origins)?;
    if state.keys.is_open() {
        tracing::warn!("no API keys are set: every route is open to anyone who can reach this address (set --api-key, api_keys_file or LANTERN_API_KEYS)");
    } else if config.auth.api_keys_file.is_some() {
        tokio::spawn(reload_keys_on_sighup(state.keys.clone()));
    }
    for m in &config.models {
        tracing::info!(
            id = %m.id,
            aliases = ?m.aliases,
            model = %m.engine.model_path.display(),
            replicas = m.replicas,
            load = ?m.load,
            "serving model"
        );
    }
    tracing::info!(
        "listening on http://{} (/health answers 503 until the eager models are loaded)",
        config.addr
    );

    // Eager models load now; a failure stops the server with the reason.
    let (failed_tx, mut failed_rx) = tokio::sync::mpsc::channel::<String>(1);
    for (i, m) in config.models.iter().enumerate() {
        if m.load != LoadPolicy::Eager {
            continue;
        }
        let (state, failed) = (state.clone(), failed_tx.clone());
        tokio::spawn(async move {
            let entry = &state.models[i];
            match state.backend(entry).await {
                Ok(_) => {
                    tracing::info!(model = %entry.id, "ready: POST /v1/chat/completions with model \"{}\"", entry.id)
                }
                Err(e) => {
                    let reason = match e {
                        ApiError::ModelLoadFailed { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    let _ = failed.send(reason).await;
                }
            }
        });
    }
    drop(failed_tx);
    if state.models.iter().any(|m| m.idle_unload_secs > 0) {
        tokio::spawn(unload_idle_models(state.clone()));
    }

    let limits = &config.request_limits;
    let server = lantern_server::serve::run(
        listener,
        router(state.clone()),
        limits.header_read_timeout,
        limits.shutdown_grace,
        state.lifecycle.clone(),
        shutdown_signal(),
    );
    tokio::select! {
        () = server => Ok(()),
        Some(reason) = failed_rx.recv() => Err(reason),
    }
}

/// A model entry whose loader starts `replicas` workers on one copy of the weights (the
/// engine routes each request between them).
fn model_entry(m: &ModelConfig, count_memory: bool) -> ModelEntry {
    let (engine, replicas) = (m.engine.clone(), m.replicas as usize);
    let (source, cache_dir, stall) = (m.source.clone(), m.cache_dir.clone(), m.download_stall);
    let adapters: AdapterSet = Arc::new(std::sync::Mutex::new(m.adapters.clone()));
    let served = adapters.clone();
    let loader: Loader = Arc::new(move || {
        let mut engine = engine.clone();
        // The adapters served now, those loaded at runtime included.
        engine.lora = served
            .lock()
            .expect("adapters lock")
            .iter()
            .map(|a| a.spec.clone())
            .collect();
        if let Some(source) = &source {
            // The loader runs on the blocking pool, inside the runtime.
            let fetch = download::fetch(source, &cache_dir, stall);
            engine.model_path = tokio::runtime::Handle::current().block_on(fetch)?;
        }
        let engine = LlamaEngine::load_replicas(engine, replicas).map_err(|e| e.to_string())?;
        Ok(Arc::new(engine) as Arc<dyn Backend>)
    });
    let mut entry = ModelEntry::new(&m.id).with_loader(loader);
    entry.aliases = m.aliases.clone();
    entry.adapters = adapters;
    entry.eager = m.load == LoadPolicy::Eager;
    entry.idle_unload_secs = m.idle_unload_secs;
    if count_memory {
        // From the GGUF header; a Hub model not yet downloaded counts as 0 until it is loaded.
        entry.set_memory_bytes(estimate_memory(&m.engine, m.replicas));
    }
    entry
}

/// Unloads models idle for longer than their `idle_unload_secs`.
async fn unload_idle_models(state: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let now = now_millis();
        for entry in state.models.iter().filter(|e| e.idle_unload_secs > 0) {
            let idle = entry.is_idle()
                && now.saturating_sub(entry.last_used()) >= entry.idle_unload_secs * 1000;
            if idle && entry.unload() {
                tracing::info!(model = %entry.id, idle_secs = entry.idle_unload_secs, "unloaded idle model");
            }
        }
    }
}

/// SIGHUP re-reads the API keys file; a file that cannot be read keeps the keys in force.
async fn reload_keys_on_sighup(keys: ApiKeys) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            match keys.reload() {
                Ok(n) => tracing::info!(keys = n, "SIGHUP: API keys reloaded"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: keeping the previous API keys"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = keys;
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
