//! Process-wide llama.cpp initialisation and model loading with clear errors and progress.

use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::{send_logs_to_tracing, LogOptions};

use super::gpu;
use crate::EngineError;

/// llama.cpp may be initialised once per process.
pub(crate) fn backend() -> Result<&'static LlamaBackend, EngineError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            send_logs_to_tracing(LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Context(format!("llama.cpp backend init failed: {e}")))
}

/// llama.cpp marks creating contexts concurrently as unsound: every creation holds this.
pub(crate) static CONTEXT_CREATION: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Checks what llama.cpp would otherwise report only as a null pointer: the file exists, is
/// readable, and starts with the GGUF magic.
pub fn check_model_file(path: &Path) -> Result<(), EngineError> {
    let mut file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => EngineError::ModelNotFound {
            path: path.to_path_buf(),
        },
        _ => EngineError::ModelUnreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    })?;
    if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(EngineError::ModelUnreadable {
            path: path.to_path_buf(),
            reason: "it is a directory, not a GGUF file".into(),
        });
    }
    let mut magic = [0u8; 4];
    match file.read_exact(&mut magic) {
        Ok(()) if &magic == b"GGUF" => Ok(()),
        Ok(()) | Err(_) => Err(EngineError::ModelLoad {
            path: path.to_path_buf(),
            reason: "not a GGUF file (bad magic bytes)".into(),
        }),
    }
}

/// Loads the weights, logging progress in 10% steps.
pub(crate) fn load_model(
    path: &Path,
    gpu_layers: u32,
    main_gpu: i32,
) -> Result<LlamaModel, EngineError> {
    check_model_file(path)?;
    let backend = backend()?;
    let placement = gpu::place(&gpu::gpus(), gpu_layers, main_gpu).map_err(|reason| {
        EngineError::ModelLoad {
            path: path.to_path_buf(),
            reason,
        }
    })?;
    gpu::log(&placement);
    let gpu_layers = match placement {
        gpu::Placement::Offload { gpu_layers, .. } => gpu_layers,
        gpu::Placement::Cpu | gpu::Placement::NoGpu => 0,
    };
    let shown = path.display().to_string();
    let mut next_report = 0.0f32;
    let params = LlamaModelParams::default()
        .with_n_gpu_layers(gpu_layers)
        .with_main_gpu(main_gpu)
        .with_progress_callback(move |progress| {
            if progress >= next_report {
                tracing::info!(model = %shown, "loading model: {:.0}%", progress * 100.0);
                next_report = (progress + 0.1).min(1.0);
            }
            true
        });
    LlamaModel::load_from_file(backend, path, &params).map_err(|e| EngineError::ModelLoad {
        path: path.to_path_buf(),
        reason: format!(
            "llama.cpp could not read it: corrupt, truncated, or an unsupported architecture (see the llama.cpp error above; {e})"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_not_found() {
        let err = check_model_file(Path::new("/nonexistent/model.gguf")).unwrap_err();
        assert!(matches!(err, EngineError::ModelNotFound { .. }));
    }

    #[test]
    fn non_gguf_file_is_rejected() {
        let dir = std::env::temp_dir().join(format!("lantern-load-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.gguf");
        std::fs::write(&path, b"this is not a model").unwrap();
        let err = check_model_file(&path).unwrap_err();
        assert!(err.to_string().contains("not a GGUF file"), "{err}");
        let err = check_model_file(&dir).unwrap_err();
        assert!(matches!(err, EngineError::ModelUnreadable { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
