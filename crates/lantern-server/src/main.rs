//! The `lantern` binary.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use axum::serve::ListenerExt;
use clap::{Parser, Subcommand};
use lantern_engine::{check_model_file, EngineError, LlamaEngine};
use lantern_server::config::{ServeArgs, ServeConfig};
use lantern_server::{router, AppState, ModelEntry};
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
    Serve(ServeArgs),
    /// Print the OpenAPI document (YAML) generated from the code
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Openapi => {
            print!("{}", lantern_server::openapi::yaml());
            ExitCode::SUCCESS
        }
        Command::Serve(args) => {
            init_tracing();
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => return fail(format!("cannot start the async runtime: {e}")),
            };
            match runtime.block_on(serve(args)) {
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

fn init_tracing() {
    // llama.cpp's own chatter (tensor listings, buffer sizes) only at warn unless asked for.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,llama-cpp-2=warn,tower_http=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let config = ServeConfig::resolve(args).map_err(|e| e.to_string())?;
    // Fail before binding, in one line, when the model file is unusable.
    if let Err(e) = check_model_file(&config.engine.model_path) {
        return Err(match e {
            EngineError::ModelNotFound { path } if config.default_model => format!(
                "default model {} not found; run `make model` to fetch it, or pass --model PATH",
                path.display()
            ),
            other => other.to_string(),
        });
    }
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.addr))?;
    let state = AppState::new(
        vec![ModelEntry::new(&config.model_id)],
        config.max_body_bytes,
    );
    tracing::info!(
        model = %config.engine.model_path.display(),
        id = %config.model_id,
        "listening on http://{} (loading the model; /health answers 503 until it is ready)",
        config.addr
    );

    let (failed_tx, mut failed_rx) = tokio::sync::mpsc::channel::<String>(1);
    let loading = state.clone();
    let engine_config = config.engine.clone();
    tokio::task::spawn_blocking(move || match LlamaEngine::load(engine_config) {
        Ok(engine) => {
            loading.models[0].set_ready(Arc::new(engine));
            tracing::info!(
                "ready: POST /v1/chat/completions with model \"{}\"",
                loading.models[0].id
            );
        }
        Err(e) => {
            let _ = failed_tx.blocking_send(e.to_string());
        }
    });

    // Every streamed token is a small write: without TCP_NODELAY, Nagle's algorithm holds it
    // back until the client's (delayed) ACK of the previous one.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, router(state)).with_graceful_shutdown(shutdown_signal());
    tokio::select! {
        result = server => result.map_err(|e| format!("server error: {e}")),
        Some(reason) = failed_rx.recv() => Err(reason),
    }
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
