//! Requantizing a GGUF model through llama.cpp's `llama_model_quantize`, with progress read
//! from its per-tensor log lines (the function has no progress callback).

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::Path;

use llama_cpp_sys_2 as sys;

use crate::EngineError;

/// The quantization levels `lantern quantize` offers, by their usual names.
pub const QUANT_TYPES: &[(&str, sys::llama_ftype)] = &[
    ("q8_0", sys::LLAMA_FTYPE_MOSTLY_Q8_0),
    ("q6_k", sys::LLAMA_FTYPE_MOSTLY_Q6_K),
    ("q5_k_m", sys::LLAMA_FTYPE_MOSTLY_Q5_K_M),
    ("q5_0", sys::LLAMA_FTYPE_MOSTLY_Q5_0),
    ("q4_k_m", sys::LLAMA_FTYPE_MOSTLY_Q4_K_M),
    ("q4_1", sys::LLAMA_FTYPE_MOSTLY_Q4_1),
    ("q4_0", sys::LLAMA_FTYPE_MOSTLY_Q4_0),
    ("q3_k_m", sys::LLAMA_FTYPE_MOSTLY_Q3_K_M),
    ("q2_k", sys::LLAMA_FTYPE_MOSTLY_Q2_K),
    ("iq4_nl", sys::LLAMA_FTYPE_MOSTLY_IQ4_NL),
];

/// A quantization level, checked against [`QUANT_TYPES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantType {
    pub name: &'static str,
    ftype: sys::llama_ftype,
}

impl std::str::FromStr for QuantType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        QUANT_TYPES
            .iter()
            .find(|(name, _)| *name == lower)
            .map(|&(name, ftype)| QuantType { name, ftype })
            .ok_or_else(|| {
                let names: Vec<&str> = QUANT_TYPES.iter().map(|(n, _)| *n).collect();
                format!(
                    "unknown quantization type '{s}'; valid: {}",
                    names.join(", ")
                )
            })
    }
}

/// What the log callback sees during one quantization.
struct Watch<'a> {
    progress: &'a mut dyn FnMut(u32, u32),
    /// The last error line llama.cpp logged, for the failure message.
    error: String,
}

/// `[  12/ 272] blk.1.attn_q.weight - ...` → (12, 272).
fn tensor_count(line: &str) -> Option<(u32, u32)> {
    let inner = line.trim_start().strip_prefix('[')?.split(']').next()?;
    let (done, total) = inner.split_once('/')?;
    Some((done.trim().parse().ok()?, total.trim().parse().ok()?))
}

unsafe extern "C" fn on_log(level: sys::ggml_log_level, text: *const c_char, data: *mut c_void) {
    if text.is_null() || data.is_null() {
        return;
    }
    // SAFETY: `data` is the `Watch` that `quantize` keeps alive while the callback is set, and
    // llama.cpp quantizes on the calling thread's behalf (the callback is not called after).
    let watch = unsafe { &mut *(data as *mut Watch<'_>) };
    let line = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    if let Some((done, total)) = tensor_count(&line) {
        (watch.progress)(done, total);
    } else if level == sys::GGML_LOG_LEVEL_ERROR {
        watch.error = line.trim().to_string();
    }
}

fn c_path(path: &Path) -> Result<CString, EngineError> {
    CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| EngineError::ModelUnreadable {
        path: path.to_path_buf(),
        reason: "the path contains a NUL byte".into(),
    })
}

/// Writes `output`, `input` quantized to `kind`, reporting `(tensors done, tensors)` as it
/// goes. `allow_requantize` lets already-quantized tensors be requantized (quality loss).
pub fn quantize(
    input: &Path,
    output: &Path,
    kind: QuantType,
    threads: u32,
    allow_requantize: bool,
    progress: &mut dyn FnMut(u32, u32),
) -> Result<(), EngineError> {
    super::check_model_file(input)?;
    super::load::backend()?;
    let (src, dst) = (c_path(input)?, c_path(output)?);
    // SAFETY: plain data returned by value.
    let mut params = unsafe { sys::llama_model_quantize_default_params() };
    params.nthread = threads as i32;
    params.ftype = kind.ftype;
    params.allow_requantize = allow_requantize;
    let mut watch = Watch {
        progress,
        error: String::new(),
    };
    // SAFETY: the callback's data outlives the call; logging goes back to tracing after (not
    // to llama.cpp's default, which writes everything to stderr).
    let rc = unsafe {
        sys::llama_log_set(Some(on_log), &mut watch as *mut Watch<'_> as *mut c_void);
        sys::llama_model_quantize(src.as_ptr(), dst.as_ptr(), &params)
    };
    llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
    if rc != 0 {
        let _ = std::fs::remove_file(output);
        let reason = if watch.error.is_empty() {
            format!("llama_model_quantize returned {rc}")
        } else {
            watch.error
        };
        return Err(EngineError::Quantize(reason));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_parse_by_name_and_unknown_lists_the_valid_ones() {
        let q: QuantType = "Q4_K_M".parse().unwrap();
        assert_eq!(q.name, "q4_k_m");
        let err = "q9_9".parse::<QuantType>().unwrap_err();
        assert!(
            err.contains("q9_9") && err.contains("q8_0") && err.contains("iq4_nl"),
            "{err}"
        );
    }

    #[test]
    fn tensor_lines_give_progress() {
        assert_eq!(
            tensor_count(
                "[  12/ 272]                 blk.1.attn_q.weight - [  576,   576], type =    f16, "
            ),
            Some((12, 272))
        );
        assert_eq!(
            tensor_count("llama_model_quantize_impl: model size = 1 MB"),
            None
        );
    }
}
