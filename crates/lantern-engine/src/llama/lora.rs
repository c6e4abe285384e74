//! LoRA adapters on a loaded model: checked against the model's GGUF (so a wrong adapter is a
//! one-line error naming the mismatch), loaded by llama.cpp, applied to a context for the
//! steps that decode its sequences, and freed when the last user lets go.

use std::ffi::CString;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::{LlamaLoraAdapter, LlamaModel};
use llama_cpp_sys_2 as sys;

use super::gguf::Header;
use crate::slot::{AdapterRef, Outstanding};
use crate::{AdapterInfo, EngineError, LoraSpec};

/// A llama.cpp LoRA adapter of one model, with the scale it is served at.
pub(crate) struct LoraAdapter {
    raw: NonNull<sys::llama_adapter_lora>,
    scale: f32,
    /// llama.cpp frees a model's adapters with it: the model must outlive this.
    _model: Arc<LlamaModel>,
}

// SAFETY: the adapter is immutable once loaded; llama.cpp only reads it while decoding.
unsafe impl Send for LoraAdapter {}
// SAFETY: as above.
unsafe impl Sync for LoraAdapter {}

/// Adapter loads are rare; one at a time keeps llama.cpp's per-model adapter list consistent.
static LOADING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn invalid(path: &Path, reason: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidRequest {
        message: format!("LoRA adapter {}: {reason}", path.display()),
        param: Some("path".into()),
    }
}

impl LoraAdapter {
    /// Checks `path` against the model file and loads it. Call from a blocking context.
    pub fn load(
        model: &Arc<LlamaModel>,
        model_path: &Path,
        path: &Path,
        scale: f32,
    ) -> Result<Self, EngineError> {
        check(model_path, path)?;
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| invalid(path, "the path contains a NUL byte"))?;
        let _one = LOADING.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: `LlamaModel` is `repr(transparent)` over a non-null `llama_model` pointer;
        // llama.cpp adds the adapter to the model's list and reads the tensors from the file.
        let raw = unsafe {
            let model_ptr = *(Arc::as_ptr(model) as *const NonNull<sys::llama_model>);
            sys::llama_adapter_lora_init(model_ptr.as_ptr(), c_path.as_ptr())
        };
        let raw = NonNull::new(raw).ok_or_else(|| {
            invalid(
                path,
                "llama.cpp could not load it (its log says why; is it a LoRA for this model?)",
            )
        })?;
        Ok(LoraAdapter {
            raw,
            scale,
            _model: model.clone(),
        })
    }

    /// Makes this adapter the only one the context applies.
    pub fn apply(&self, ctx: &mut LlamaContext<'_>) {
        // SAFETY: `LlamaLoraAdapter` is `repr(transparent)` over this pointer and has no Drop,
        // so the temporary view frees nothing.
        let mut view: LlamaLoraAdapter = unsafe { std::mem::transmute(self.raw) };
        if let Err(e) = ctx.lora_adapter_set(&mut view, self.scale) {
            tracing::error!(error = %e, "could not apply the LoRA adapter");
        }
    }
}

impl Drop for LoraAdapter {
    fn drop(&mut self) {
        // SAFETY: loaded by llama_adapter_lora_init and freed once, before the model (held
        // above); no context applies it any more (each context's runtime holds a reference
        // while it does).
        unsafe { sys::llama_adapter_lora_free(self.raw.as_ptr()) }
    }
}

/// Removes every adapter from the context.
pub(crate) fn clear(ctx: &mut LlamaContext<'_>) {
    // The wrapper clears all adapters whatever it is given; this pointer is never read.
    let mut view: LlamaLoraAdapter =
        unsafe { std::mem::transmute(NonNull::<sys::llama_adapter_lora>::dangling()) };
    if let Err(e) = ctx.lora_adapter_remove(&mut view) {
        tracing::error!(error = %e, "could not remove the LoRA adapter");
    }
}

/// The adapter's metadata and every `lora_a`/`lora_b` pair against the model's tensors, with
/// llama.cpp's own rules, so the error can say what does not match.
fn check(model_path: &Path, path: &Path) -> Result<(), EngineError> {
    if !path.is_file() {
        return Err(invalid(path, "no such file"));
    }
    let adapter =
        Header::open_with_tensors(path).ok_or_else(|| invalid(path, "not a readable GGUF file"))?;
    let model = Header::open_with_tensors(model_path)
        .ok_or_else(|| invalid(path, "the model's own GGUF header cannot be read"))?;
    let kind = adapter.string("general.type").unwrap_or_default();
    if kind != "adapter" {
        return Err(invalid(
            path,
            format!("general.type is '{kind}', not 'adapter': this is not an adapter"),
        ));
    }
    let adapter_type = adapter.string("adapter.type").unwrap_or_default();
    if adapter_type != "lora" {
        return Err(invalid(
            path,
            format!("adapter.type is '{adapter_type}', not 'lora'"),
        ));
    }
    let (arch, model_arch) = (
        adapter.string("general.architecture").unwrap_or_default(),
        model.string("general.architecture").unwrap_or_default(),
    );
    if arch != model_arch {
        return Err(invalid(
            path,
            format!("it is for the '{arch}' architecture, the model is '{model_arch}'"),
        ));
    }
    let base: std::collections::HashMap<String, [i64; 4]> = model.tensors().into_iter().collect();
    let tensors = adapter.tensors();
    let shape = |suffix: &str, name: &str| {
        tensors
            .iter()
            .find(|(n, _)| n.strip_suffix(suffix) == Some(name))
            .map(|(_, ne)| *ne)
    };
    let mut pairs = 0;
    for (name, _) in &tensors {
        let Some(target) = name.strip_suffix(".lora_a") else {
            continue;
        };
        let (Some(a), Some(b)) = (shape(".lora_a", target), shape(".lora_b", target)) else {
            return Err(invalid(
                path,
                format!("'{target}' has lora_a but no lora_b"),
            ));
        };
        let Some(w) = base.get(target) else {
            return Err(invalid(path, format!("the model has no tensor '{target}'")));
        };
        // Token embeddings store B untransposed (llama.cpp's llm_build_inp_embd).
        let fits = if target.ends_with("token_embd.weight") {
            w[0] == b[1] && w[1] == a[1]
        } else {
            w[0] == a[0] && w[1] == b[1] && a[1] == b[0]
        };
        if !fits {
            return Err(invalid(
                path,
                format!(
                    "'{target}' is [{}, {}] in the model but the adapter's A is [{}, {}] and B [{}, {}]: it was made for another model",
                    w[0], w[1], a[0], a[1], b[0], b[1]
                ),
            ));
        }
        pairs += 1;
    }
    if pairs == 0 {
        return Err(invalid(path, "it holds no LoRA tensor pairs"));
    }
    Ok(())
}

/// One loaded adapter, as the engine keeps it.
struct Loaded {
    spec: LoraSpec,
    adapter: AdapterRef,
    /// Requests using it, queued or running: it cannot be unloaded while any is.
    in_use: Arc<AtomicUsize>,
    requests: AtomicU64,
}

/// The adapters loaded on one model, by name. Read when a request is scheduled, never in the
/// decode loop (jobs carry their adapter).
#[derive(Default)]
pub(crate) struct Adapters {
    list: RwLock<Vec<Loaded>>,
    next_key: AtomicU32,
}

impl Adapters {
    /// Loads `spec` (blocking: reads the file).
    pub fn add(
        &self,
        model: &Arc<LlamaModel>,
        model_path: &Path,
        spec: LoraSpec,
    ) -> Result<AdapterInfo, EngineError> {
        if self.read().iter().any(|l| l.spec.name == spec.name) {
            return Err(EngineError::AdapterExists { name: spec.name });
        }
        if !spec.scale.is_finite() {
            return Err(invalid(&spec.path, "scale must be a finite number"));
        }
        let started = std::time::Instant::now();
        let lora = LoraAdapter::load(model, model_path, &spec.path, spec.scale)?;
        let key = self.next_key.fetch_add(1, Ordering::Relaxed) + 1;
        let loaded = Loaded {
            adapter: AdapterRef {
                key,
                running: Arc::default(),
                handle: Arc::new(lora),
            },
            spec,
            in_use: Arc::default(),
            requests: AtomicU64::new(0),
        };
        let info = loaded.info();
        let mut list = self.list.write().unwrap_or_else(|e| e.into_inner());
        if list.iter().any(|l| l.spec.name == info.spec.name) {
            return Err(EngineError::AdapterExists {
                name: info.spec.name,
            });
        }
        tracing::info!(
            adapter = %info.spec.name,
            path = %info.spec.path.display(),
            scale = info.spec.scale,
            ms = started.elapsed().as_millis() as u64,
            "LoRA adapter loaded"
        );
        list.push(loaded);
        Ok(info)
    }

    /// Unloads `name` unless a request uses it. Its memory is freed once no context applies
    /// it (at the latest when its worker next goes idle).
    pub fn remove(&self, name: &str) -> Result<(), EngineError> {
        let mut list = self.list.write().unwrap_or_else(|e| e.into_inner());
        let i = list
            .iter()
            .position(|l| l.spec.name == name)
            .ok_or_else(|| EngineError::AdapterNotFound { name: name.into() })?;
        let requests = list[i].in_use.load(Ordering::Relaxed);
        if requests > 0 {
            return Err(EngineError::AdapterInUse {
                name: name.into(),
                requests,
            });
        }
        list.remove(i);
        tracing::info!(adapter = %name, "LoRA adapter unloaded");
        Ok(())
    }

    /// The adapter for a request, counted as in use until the returned guard drops.
    pub fn claim(&self, name: &str) -> Result<(AdapterRef, Outstanding), EngineError> {
        let list = self.read();
        let l = list.iter().find(|l| l.spec.name == name).ok_or_else(|| {
            EngineError::InvalidRequest {
                message: format!("The model has no LoRA adapter named '{name}'."),
                param: Some("model".into()),
            }
        })?;
        l.in_use.fetch_add(1, Ordering::Relaxed);
        l.requests.fetch_add(1, Ordering::Relaxed);
        Ok((l.adapter.clone(), Outstanding(l.in_use.clone())))
    }

    pub fn list(&self) -> Vec<AdapterInfo> {
        self.read().iter().map(Loaded::info).collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Loaded>> {
        self.list.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl Loaded {
    fn info(&self) -> AdapterInfo {
        let in_use = self.in_use.load(Ordering::Relaxed);
        let running = self.adapter.running.load(Ordering::Relaxed).min(in_use);
        AdapterInfo {
            spec: self.spec.clone(),
            running,
            waiting: in_use - running,
            requests: self.requests.load(Ordering::Relaxed),
        }
    }
}
