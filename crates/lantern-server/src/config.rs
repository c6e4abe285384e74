//! Start-up configuration: CLI flags over an optional TOML file over defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use lantern_engine::{
    default_threads, EngineConfig, SpecConfig, SpecMode, DEFAULT_BATCH_SIZE, DEFAULT_CTX_SIZE,
    DEFAULT_PARALLEL,
};
use serde::Deserialize;

use crate::auth::AuthArgs;
use crate::cache::CacheConfig;
use crate::download::{default_cache_dir, HfSource};
use crate::limits::{LimitArgs, Limits};
use crate::response_store::ResponseStoreConfig;
use crate::state::{check_adapter_name, AdapterEntry, ReasoningFields, ResidencyLimits};

/// The model served when `--model` is not given; `make model` fetches it.
pub const DEFAULT_MODEL_PATH: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
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
    /// Model layers to offload to the GPU: a number, or `all` (needs a `cuda` or `vulkan`
    /// build) [default: 0, CPU only]
    #[arg(long, visible_alias = "n-gpu-layers", value_name = "N|all", value_parser = parse_gpu_layers)]
    pub gpu_layers: Option<u32>,
    /// GPU that holds the model, by its index in the list llama.cpp logs [default: 0]
    #[arg(long, value_name = "INDEX")]
    pub main_gpu: Option<i32>,
    /// Jinja chat template file, used instead of the model's own (e.g. for a base model that
    /// ships none) [default: the GGUF's tokenizer.chat_template, else ChatML]
    #[arg(long, value_name = "FILE", conflicts_with = "chat_template")]
    pub chat_template_file: Option<PathBuf>,
    /// Jinja chat template given inline; see --chat-template-file
    #[arg(long, value_name = "JINJA")]
    pub chat_template: Option<String>,
    /// Largest accepted request body in bytes [default: 8388608]
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
    /// A LoRA adapter served as the model id `MODEL:NAME`, as NAME=PATH (scale 1) or
    /// NAME=PATH@SCALE; repeatable
    #[arg(long = "lora", value_name = "NAME=PATH[@SCALE]", value_parser = parse_lora)]
    pub lora: Vec<FileLora>,
    /// Speculative decoding: auto (a request's `prediction`, else prompt lookup), prediction,
    /// ngram (prompt lookup only) or off [default: auto]
    #[arg(long, value_name = "MODE")]
    pub speculative: Option<SpecMode>,
    /// Most draft tokens verified per sequence and step [default: 16]
    #[arg(long, value_name = "N")]
    pub draft_max: Option<u32>,
    /// Shortest run of last tokens prompt lookup matches [default: 2]
    #[arg(long, value_name = "N")]
    pub draft_ngram_min: Option<u32>,
    /// Longest run of last tokens prompt lookup matches [default: 4]
    #[arg(long, value_name = "N")]
    pub draft_ngram_max: Option<u32>,
    /// Serve the model for embeddings only: no generation slots are created
    #[arg(long)]
    pub embeddings_only: bool,
    /// Let special-token text in message content (`<|im_end|>` typed by a user) become
    /// control tokens, as before content was kept literal; only for trusted clients
    #[arg(long)]
    pub parse_special_in_content: bool,
    /// TOML config file; flags override it
    #[arg(long, env = "LANTERN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log lines as `text` or `json` (one object per line, for log collectors)
    #[arg(long, env = "LANTERN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// llama.cpp's own log (tensor listings, buffer sizes) at this level and above: off,
    /// error, warn, info or debug; RUST_LOG, when set, decides instead [default: warn]
    #[arg(long, value_name = "LEVEL", default_value = "warn")]
    pub llama_log_level: String,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The config file: the flags' settings (for a single model) plus `[[models]]` and `[cache]`.
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
    gpu_layers: Option<GpuLayers>,
    main_gpu: Option<i32>,
    chat_template: Option<String>,
    chat_template_file: Option<PathBuf>,
    max_body_bytes: Option<usize>,
    embeddings_only: Option<bool>,
    parse_special_in_content: Option<bool>,
    /// Message fields that carry reasoning: both, reasoning_content or reasoning.
    reasoning_fields: Option<ReasoningFields>,
    max_queue: Option<usize>,
    max_loaded_models: Option<usize>,
    max_memory_bytes: Option<u64>,
    model_cache_dir: Option<PathBuf>,
    /// A Hub download that receives nothing for this long fails (and may be retried).
    download_stall_secs: Option<u64>,
    #[serde(default)]
    cache: CacheConfig,
    /// Stored Responses API conversations.
    #[serde(default)]
    responses: ResponseStoreConfig,
    #[serde(default)]
    auth: AuthArgs,
    #[serde(default)]
    limits: LimitArgs,
    #[serde(default)]
    models: Vec<FileModel>,
    /// The single model's LoRA adapters.
    #[serde(default)]
    lora: Vec<FileLora>,
    #[serde(default)]
    speculative: FileSpeculative,
}

/// `speculative = { mode, max_draft, min_ngram, max_ngram }`, at the top level or per model.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpeculative {
    mode: Option<SpecMode>,
    max_draft: Option<u32>,
    min_ngram: Option<u32>,
    max_ngram: Option<u32>,
}

/// One `lora = [...]` entry: an adapter served as `MODEL:NAME` (and its aliases).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLora {
    pub name: String,
    pub path: PathBuf,
    #[serde(default = "one")]
    pub scale: f32,
    #[serde(default)]
    pub aliases: Vec<String>,
}

fn one() -> f32 {
    1.0
}

/// `--lora NAME=PATH[@SCALE]`.
fn parse_lora(value: &str) -> Result<FileLora, String> {
    let (name, rest) = value
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=PATH or NAME=PATH@SCALE, got `{value}`"))?;
    let (path, scale) = match rest.rsplit_once('@') {
        Some((path, scale)) => (
            path,
            scale
                .parse()
                .map_err(|_| format!("`{scale}` is not a scale (a number like 0.5)"))?,
        ),
        None => (rest, 1.0),
    };
    Ok(FileLora {
        name: name.into(),
        path: path.into(),
        scale,
        aliases: Vec::new(),
    })
}

fn adapters(key: &str, lora: &[FileLora]) -> Result<Vec<AdapterEntry>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        key: format!("{key}lora"),
        reason,
    };
    let mut out: Vec<AdapterEntry> = Vec::new();
    for l in lora {
        check_adapter_name(&l.name).map_err(invalid)?;
        if !l.scale.is_finite() {
            return Err(invalid(format!(
                "adapter '{}': scale must be a number",
                l.name
            )));
        }
        if out.iter().any(|a| a.spec.name == l.name) {
            return Err(invalid(format!("two adapters are named '{}'", l.name)));
        }
        out.push(AdapterEntry {
            spec: lantern_engine::LoraSpec {
                name: l.name.clone(),
                path: l.path.clone(),
                scale: l.scale,
            },
            aliases: l.aliases.clone(),
        });
    }
    Ok(out)
}

/// `gpu_layers`: a count, or `"all"`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
enum GpuLayers {
    Count(u32),
    All(AllLayers),
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum AllLayers {
    All,
}

impl GpuLayers {
    /// The count llama.cpp takes: `all` is any number at least the model's layer count.
    fn count(self) -> u32 {
        match self {
            GpuLayers::Count(n) => n,
            GpuLayers::All(_) => u32::MAX,
        }
    }
}

/// `--gpu-layers N|all`.
fn parse_gpu_layers(value: &str) -> Result<u32, String> {
    if value.eq_ignore_ascii_case("all") {
        return Ok(u32::MAX);
    }
    value
        .parse()
        .map_err(|_| format!("expected a number of layers or `all`, got `{value}`"))
}

/// When a model is loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadPolicy {
    /// At start-up; the server is healthy once all eager models are loaded.
    #[default]
    Eager,
    /// On the first request that needs it.
    Lazy,
}

/// One `[[models]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    id: Option<String>,
    path: Option<PathBuf>,
    source: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    replicas: Option<u32>,
    parallel: Option<u32>,
    ctx_size: Option<u32>,
    threads: Option<usize>,
    batch_size: Option<u32>,
    gpu_layers: Option<GpuLayers>,
    main_gpu: Option<i32>,
    max_queue: Option<usize>,
    chat_template: Option<String>,
    chat_template_file: Option<PathBuf>,
    #[serde(default)]
    load: LoadPolicy,
    #[serde(default)]
    idle_unload_secs: u64,
    embeddings_only: Option<bool>,
    #[serde(default)]
    lora: Vec<FileLora>,
    #[serde(default)]
    speculative: FileSpeculative,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("invalid setting {key}: {reason}")]
    Invalid { key: String, reason: String },
    #[error("invalid listen address {0}")]
    Address(String),
}

/// One servable model, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub id: String,
    /// Downloaded from the Hub into `cache_dir` before loading; `engine.model_path` is then
    /// the downloaded file.
    pub source: Option<HfSource>,
    pub cache_dir: PathBuf,
    /// A download that receives nothing this long fails; the next request retries it.
    pub download_stall: std::time::Duration,
    pub aliases: Vec<String>,
    pub replicas: u32,
    pub load: LoadPolicy,
    /// Unload after this many seconds without requests (0: never).
    pub idle_unload_secs: u64,
    /// True when the path is the built-in default (the error then says `make model`).
    pub default_model: bool,
    /// LoRA adapters served on it, each as `ID:NAME`.
    pub adapters: Vec<AdapterEntry>,
    pub engine: EngineConfig,
}

/// Everything `lantern serve` needs, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub models: Vec<ModelConfig>,
    pub max_body_bytes: usize,
    pub cache: CacheConfig,
    pub responses: ResponseStoreConfig,
    pub limits: ResidencyLimits,
    pub reasoning_fields: ReasoningFields,
    /// API keys and CORS origins, flags and file joined.
    pub auth: AuthArgs,
    pub request_limits: Limits,
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
    key: impl Into<String>,
    value: T,
    min: T,
) -> Result<T, ConfigError> {
    if value < min {
        return Err(ConfigError::Invalid {
            key: key.into(),
            reason: format!("{value} is below the minimum {min}"),
        });
    }
    Ok(value)
}

/// Per-model settings with CLI flags first, then the model's entry, then the file's top level.
struct Layers<'a> {
    args: &'a ServeArgs,
    file: &'a FileConfig,
}

impl Layers<'_> {
    fn engine(
        &self,
        key: &str,
        path: PathBuf,
        m: Option<&FileModel>,
        max_queue: Option<usize>,
    ) -> Result<EngineConfig, ConfigError> {
        let (a, f) = (self.args, self.file);
        // A model entry's template is its own; the flags, else the flat keys, are for a single
        // model. The inline and file forms override as a pair.
        let (inline, file) = match m {
            Some(m) => (&m.chat_template, &m.chat_template_file),
            None if a.chat_template.is_some() || a.chat_template_file.is_some() => {
                (&a.chat_template, &a.chat_template_file)
            }
            None => (&f.chat_template, &f.chat_template_file),
        };
        let chat_template = chat_template(key, inline.as_ref(), file.as_ref())?;
        let speculative = self.speculative(key, m)?;
        let threads = a.threads.or(m.and_then(|m| m.threads)).or(f.threads);
        let parallel = a.parallel.or(m.and_then(|m| m.parallel)).or(f.parallel);
        let ctx_size = a.ctx_size.or(m.and_then(|m| m.ctx_size)).or(f.ctx_size);
        let batch_size = a
            .batch_size
            .or(m.and_then(|m| m.batch_size))
            .or(f.batch_size);
        let parallel = at_least(
            format!("{key}parallel"),
            parallel.unwrap_or(DEFAULT_PARALLEL),
            1,
        )?;
        let gpu_layers = a
            .gpu_layers
            .or(m.and_then(|m| m.gpu_layers).map(GpuLayers::count))
            .or(f.gpu_layers.map(GpuLayers::count))
            .unwrap_or(0);
        if gpu_layers > 0 && !cfg!(any(feature = "cuda", feature = "vulkan")) {
            return Err(ConfigError::Invalid {
                key: format!("{key}gpu_layers"),
                reason: "this lantern is a CPU-only build; rebuild with `cargo build --release -p lantern-server --features cuda` (NVIDIA, needs the CUDA toolkit) or `--features vulkan` (any Vulkan GPU, needs glslc and the Vulkan headers) to offload layers to a GPU, or set gpu_layers = 0".into(),
            });
        }
        Ok(EngineConfig {
            model_path: path,
            threads: at_least(
                format!("{key}threads"),
                threads.unwrap_or_else(default_threads),
                1,
            )?,
            parallel,
            ctx_size: at_least(
                format!("{key}ctx_size"),
                ctx_size.unwrap_or(DEFAULT_CTX_SIZE),
                parallel * 16,
            )?,
            batch_size: at_least(
                format!("{key}batch_size"),
                batch_size.unwrap_or(DEFAULT_BATCH_SIZE),
                1,
            )?,
            gpu_layers,
            main_gpu: a
                .main_gpu
                .or(m.and_then(|m| m.main_gpu))
                .or(f.main_gpu)
                .unwrap_or(0),
            max_queue: m.and_then(|m| m.max_queue).or(max_queue),
            chat_template,
            embeddings_only: a.embeddings_only
                || m.and_then(|m| m.embeddings_only)
                    .or(f.embeddings_only)
                    .unwrap_or(false),
            parse_special_in_content: a.parse_special_in_content
                || f.parse_special_in_content.unwrap_or(false),
            // The served adapters, filled in by the loader (runtime ones included).
            lora: Vec::new(),
            speculative,
        })
    }

    fn speculative(&self, key: &str, m: Option<&FileModel>) -> Result<SpecConfig, ConfigError> {
        let (a, f) = (self.args, &self.file.speculative);
        let m = m.map(|m| &m.speculative);
        let d = SpecConfig::default();
        let pick = |flag: Option<u32>, get: fn(&FileSpeculative) -> Option<u32>, default| {
            flag.or(m.and_then(get)).or(get(f)).unwrap_or(default)
        };
        let spec = SpecConfig {
            mode: a
                .speculative
                .or(m.and_then(|m| m.mode))
                .or(f.mode)
                .unwrap_or(d.mode),
            max_draft: pick(a.draft_max, |s| s.max_draft, d.max_draft),
            min_ngram: pick(a.draft_ngram_min, |s| s.min_ngram, d.min_ngram),
            max_ngram: pick(a.draft_ngram_max, |s| s.max_ngram, d.max_ngram),
        };
        let invalid = |field: &str, reason: String| ConfigError::Invalid {
            key: format!("{key}speculative.{field}"),
            reason,
        };
        if spec.max_draft > 64 {
            return Err(invalid(
                "max_draft",
                format!("{} is above the maximum 64", spec.max_draft),
            ));
        }
        at_least(format!("{key}speculative.min_ngram"), spec.min_ngram, 1)?;
        if spec.max_ngram < spec.min_ngram || spec.max_ngram > 16 {
            return Err(invalid(
                "max_ngram",
                format!(
                    "{} must be between min_ngram ({}) and 16",
                    spec.max_ngram, spec.min_ngram
                ),
            ));
        }
        Ok(spec)
    }
}

/// Reads and compiles a configured chat template, so a missing file or a syntax error stops
/// start-up instead of failing the model's first request.
fn chat_template(
    key: &str,
    inline: Option<&String>,
    file: Option<&PathBuf>,
) -> Result<Option<String>, ConfigError> {
    let (source, what) = match (inline, file) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(ConfigError::Invalid {
                key: format!("{key}chat_template"),
                reason: "set either chat_template or chat_template_file, not both".into(),
            })
        }
        (Some(text), None) => (text.clone(), "chat_template"),
        (None, Some(path)) => (
            std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
                key: format!("{key}chat_template_file"),
                reason: format!("cannot read {}: {e}", path.display()),
            })?,
            "chat_template_file",
        ),
    };
    lantern_engine::ChatTemplate::new(&source, String::new(), String::new()).map_err(|e| {
        ConfigError::Invalid {
            key: format!("{key}{what}"),
            reason: e.to_string(),
        }
    })?;
    Ok(Some(source))
}

impl ServeConfig {
    pub fn resolve(args: ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let layers = Layers {
            args: &args,
            file: &file,
        };
        let max_queue = file.max_queue;
        let cache_dir = file
            .model_cache_dir
            .clone()
            .unwrap_or_else(default_cache_dir);
        let download_stall =
            std::time::Duration::from_secs(file.download_stall_secs.unwrap_or(60).max(1));
        // --model (or a top-level `model`) serves exactly that file; otherwise `[[models]]`,
        // otherwise the default model.
        let single = args.model.is_some() || file.models.is_empty();
        let mut models = Vec::new();
        if single {
            let default_model = args.model.is_none() && file.model.is_none();
            let path = args
                .model
                .clone()
                .or(file.model.clone())
                .unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL_PATH));
            let id = args
                .model_id
                .clone()
                .or(file.model_id.clone())
                .unwrap_or_else(|| model_id_from_path(&path));
            models.push(ModelConfig {
                id,
                source: None,
                cache_dir: cache_dir.clone(),
                download_stall,
                aliases: Vec::new(),
                replicas: 1,
                load: LoadPolicy::Eager,
                idle_unload_secs: 0,
                default_model,
                adapters: adapters(
                    "",
                    if args.lora.is_empty() {
                        &file.lora
                    } else {
                        &args.lora
                    },
                )?,
                engine: layers.engine("", path, None, max_queue)?,
            });
        } else {
            if args.chat_template.is_some() || args.chat_template_file.is_some() {
                return Err(ConfigError::Invalid {
                    key: "--chat-template-file".into(),
                    reason: "applies to a single --model; with [[models]], set chat_template_file in each entry".into(),
                });
            }
            for (i, m) in file.models.iter().enumerate() {
                let invalid = |reason: String| ConfigError::File {
                    path: args.config.clone().unwrap_or_default(),
                    reason: format!("models[{i}]: {reason}"),
                };
                let (path, source) = match (&m.path, &m.source) {
                    (Some(p), None) => (p.clone(), None),
                    (None, Some(s)) => {
                        let source = HfSource::parse(s).map_err(invalid)?;
                        (cache_dir.join(source.file_name()), Some(source))
                    }
                    _ => return Err(invalid("set exactly one of `path` or `source`".into())),
                };
                let id = m.id.clone().unwrap_or_else(|| model_id_from_path(&path));
                let key = format!("models[{i}] ({id}).");
                // An entry's settings are in the file: say which file.
                let in_file = |e: ConfigError| match e {
                    ConfigError::Invalid { key, reason } => ConfigError::File {
                        path: args.config.clone().unwrap_or_default(),
                        reason: format!("{key}: {reason}"),
                    },
                    other => other,
                };
                models.push(ModelConfig {
                    source,
                    cache_dir: cache_dir.clone(),
                    download_stall,
                    replicas: at_least(format!("{key}replicas"), m.replicas.unwrap_or(1), 1)
                        .map_err(in_file)?,
                    aliases: m.aliases.clone(),
                    load: m.load,
                    idle_unload_secs: m.idle_unload_secs,
                    default_model: false,
                    adapters: adapters(&key, &m.lora).map_err(in_file)?,
                    engine: layers
                        .engine(&key, path, Some(m), max_queue)
                        .map_err(in_file)?,
                    id,
                });
            }
        }
        check_unique_names(&models).map_err(|reason| match &args.config {
            Some(path) => ConfigError::File {
                path: path.clone(),
                reason,
            },
            None => ConfigError::Invalid {
                key: "model_id".into(),
                reason,
            },
        })?;
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
        let max_body_bytes = at_least(
            "max_body_bytes",
            args.max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(DEFAULT_MAX_BODY_BYTES),
            1024,
        )?;
        Ok(ServeConfig {
            addr,
            models,
            max_body_bytes,
            cache: file.cache,
            responses: file.responses,
            limits: ResidencyLimits {
                max_loaded_models: file.max_loaded_models,
                max_memory_bytes: file.max_memory_bytes,
            },
            reasoning_fields: file.reasoning_fields.unwrap_or_default(),
            auth: args.auth.merge(file.auth),
            request_limits: args.limits.resolve(file.limits),
        })
    }
}

/// Ids and aliases share one namespace: each name must route to exactly one model.
fn check_unique_names(models: &[ModelConfig]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::<String>::new();
    for m in models {
        let adapter_names = m.adapters.iter().flat_map(|a| {
            std::iter::once(format!("{}:{}", m.id, a.spec.name)).chain(a.aliases.iter().cloned())
        });
        let names: Vec<String> = std::iter::once(m.id.clone())
            .chain(m.aliases.iter().cloned())
            .chain(adapter_names)
            .collect();
        for name in &names {
            if !seen.insert(name.clone()) {
                return Err(format!(
                    "duplicate model id or alias '{name}' (in model '{}')",
                    m.id
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
