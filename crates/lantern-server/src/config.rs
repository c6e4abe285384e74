//! Start-up configuration: CLI flags over an optional TOML file over defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use lantern_engine::{default_threads, EngineConfig, DEFAULT_BATCH_SIZE};
use serde::Deserialize;

/// The model served when `--model` is not given; `make model` fetches it.
pub const DEFAULT_MODEL_PATH: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
pub const DEFAULT_PARALLEL: u32 = 4;
pub const DEFAULT_CTX_SIZE: u32 = 8192;
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// `lantern serve` flags. Every one may also be set in the config file.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServeArgs {
    /// GGUF model file [default: models/SmolLM2-135M-Instruct.Q4_1.gguf]
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Id shown in /v1/models and expected in requests [default: the file stem, lowercased]
    #[arg(long, value_name = "ID")]
    pub model_id: Option<String>,
    /// Address to listen on [default: 127.0.0.1]
    #[arg(long)]
    pub host: Option<String>,
    /// Port to listen on [default: 8080]
    #[arg(long)]
    pub port: Option<u16>,
    /// CPU threads for inference [default: physical cores]
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
    /// Sequences decoded together (slots) [default: 4]
    #[arg(long, short = 'p')]
    pub parallel: Option<u32>,
    /// Total KV-cache tokens, shared equally by the slots [default: 8192]
    #[arg(long, short = 'c')]
    pub ctx_size: Option<u32>,
    /// Most tokens decoded per step, generation plus prompt chunks [default: 512]
    #[arg(long, short = 'b')]
    pub batch_size: Option<u32>,
    /// Largest accepted request body in bytes [default: 8388608]
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
    /// TOML config file; flags override it
    #[arg(long, env = "LANTERN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The config file: the same settings as the flags, in snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    model: Option<PathBuf>,
    model_id: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    threads: Option<usize>,
    parallel: Option<u32>,
    ctx_size: Option<u32>,
    batch_size: Option<u32>,
    max_body_bytes: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("invalid setting {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error("invalid listen address {0}")]
    Address(String),
}

/// Everything `lantern serve` needs, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub model_id: String,
    /// True when the model path is the built-in default (the error then says `make model`).
    pub default_model: bool,
    pub engine: EngineConfig,
    pub max_body_bytes: usize,
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        // toml's message spans lines (a source excerpt); keep the one-line summary.
        reason: e.message().to_string()
            + &e.span()
                .map(|s| {
                    let line = text[..s.start].matches('\n').count() + 1;
                    format!(" (line {line})")
                })
                .unwrap_or_default(),
    })
}

/// The id a model file is served under: its stem, lowercased.
pub fn model_id_from_path(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "model".into())
}

fn at_least<T: PartialOrd + std::fmt::Display + Copy>(
    key: &'static str,
    value: T,
    min: T,
) -> Result<T, ConfigError> {
    if value < min {
        return Err(ConfigError::Invalid {
            key,
            reason: format!("{value} is below the minimum {min}"),
        });
    }
    Ok(value)
}

impl ServeConfig {
    pub fn resolve(args: ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let default_model = args.model.is_none() && file.model.is_none();
        let model = args
            .model
            .or(file.model)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL_PATH));
        let model_id = args
            .model_id
            .or(file.model_id)
            .unwrap_or_else(|| model_id_from_path(&model));
        let host = args
            .host
            .or(file.host)
            .unwrap_or_else(|| "127.0.0.1".into());
        let port = args.port.or(file.port).unwrap_or(8080);
        let addr = format!("{host}:{port}");
        let addr = addr
            .parse::<SocketAddr>()
            .or_else(|_| format!("[{host}]:{port}").parse())
            .map_err(|_| ConfigError::Address(addr))?;
        let threads = at_least(
            "threads",
            args.threads
                .or(file.threads)
                .unwrap_or_else(default_threads),
            1,
        )?;
        let parallel = at_least(
            "parallel",
            args.parallel.or(file.parallel).unwrap_or(DEFAULT_PARALLEL),
            1,
        )?;
        let ctx_size = args.ctx_size.or(file.ctx_size).unwrap_or(DEFAULT_CTX_SIZE);
        let ctx_size = at_least("ctx_size", ctx_size, parallel * 16)?;
        let batch_size = at_least(
            "batch_size",
            args.batch_size
                .or(file.batch_size)
                .unwrap_or(DEFAULT_BATCH_SIZE),
            1,
        )?;
        let max_body_bytes = at_least(
            "max_body_bytes",
            args.max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(DEFAULT_MAX_BODY_BYTES),
            1024,
        )?;
        Ok(ServeConfig {
            addr,
            model_id,
            default_model,
            engine: EngineConfig {
                model_path: model,
                threads,
                parallel,
                ctx_size,
                batch_size,
                gpu_layers: 0,
            },
            max_body_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let cfg = ServeConfig::resolve(ServeArgs::default()).unwrap();
        assert_eq!(cfg.model_id, "smollm2-135m-instruct.q4_1");
        assert!(cfg.default_model);
        assert_eq!(cfg.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.engine.parallel, 4);
    }

    #[test]
    fn flags_override_file() {
        let dir = std::env::temp_dir().join(format!("lantern-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("l.toml");
        std::fs::write(
            &path,
            "port = 9000\nparallel = 2\nmodel = \"x/My-Model.gguf\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            parallel: Some(3),
            ..Default::default()
        };
        let cfg = ServeConfig::resolve(args).unwrap();
        assert_eq!(cfg.addr.port(), 9000);
        assert_eq!(cfg.engine.parallel, 3);
        assert_eq!(cfg.model_id, "my-model");
        assert!(!cfg.default_model);

        std::fs::write(&path, "port = 9000\nparalel = 2\n").unwrap();
        let err = ServeConfig::resolve(ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("paralel") && err.contains("line 2"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rejects_bad_values() {
        let err = ServeConfig::resolve(ServeArgs {
            parallel: Some(0),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("parallel"));
    }
}
