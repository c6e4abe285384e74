//! GGUF headers read by ggml's own parser: metadata and tensor shapes, no tensor data.

use std::ffi::{CStr, CString};
use std::path::Path;
use std::ptr::NonNull;

use llama_cpp_sys_2 as sys;

/// An open GGUF header.
pub(crate) struct Header {
    gguf: NonNull<sys::gguf_context>,
    /// Tensor shapes, when opened with [`Header::open_with_tensors`].
    tensors: Option<NonNull<sys::ggml_context>>,
}

impl Header {
    pub fn open(path: &Path) -> Option<Header> {
        Self::init(path, false)
    }

    /// Also reads the tensors' shapes (metadata only, no data).
    pub fn open_with_tensors(path: &Path) -> Option<Header> {
        Self::init(path, true)
    }

    fn init(path: &Path, tensors: bool) -> Option<Header> {
        let path = CString::new(path.to_str()?).ok()?;
        let mut meta: *mut sys::ggml_context = std::ptr::null_mut();
        let params = sys::gguf_init_params {
            no_alloc: true,
            ctx: if tensors {
                &mut meta
            } else {
                std::ptr::null_mut()
            },
        };
        // SAFETY: a valid C string and params; a null result (unreadable file) is handled.
        let gguf = NonNull::new(unsafe { sys::gguf_init_from_file(path.as_ptr(), params) })?;
        Some(Header {
            gguf,
            tensors: NonNull::new(meta),
        })
    }

    /// Every tensor's name and shape (ggml order: `ne[0]` is the row length); empty unless
    /// opened with [`Header::open_with_tensors`].
    pub fn tensors(&self) -> Vec<(String, [i64; 4])> {
        let mut out = Vec::new();
        let Some(ctx) = self.tensors else { return out };
        // SAFETY: the metadata context lives as long as `self`; ggml walks its own list.
        unsafe {
            let mut t = sys::ggml_get_first_tensor(ctx.as_ptr());
            while !t.is_null() {
                let name = CStr::from_ptr(sys::ggml_get_name(t)).to_string_lossy();
                out.push((name.into_owned(), (*t).ne));
                t = sys::ggml_get_next_tensor(ctx.as_ptr(), t);
            }
        }
        out
    }

    /// The key's index when its value has type `ty` (ggml aborts on a getter of the wrong type).
    pub fn find(&self, key: &str, ty: sys::gguf_type) -> Option<i64> {
        let key = CString::new(key).ok()?;
        // SAFETY: the context is live for `self`'s lifetime; indices come from ggml itself.
        unsafe {
            let idx = sys::gguf_find_key(self.gguf.as_ptr(), key.as_ptr());
            (idx >= 0 && sys::gguf_get_kv_type(self.gguf.as_ptr(), idx) == ty).then_some(idx)
        }
    }

    pub fn u32(&self, key: &str) -> Option<u64> {
        let idx = self.find(key, sys::GGUF_TYPE_UINT32)?;
        // SAFETY: `idx` holds a u32.
        Some(u64::from(unsafe {
            sys::gguf_get_val_u32(self.gguf.as_ptr(), idx)
        }))
    }

    pub fn string(&self, key: &str) -> Option<String> {
        let idx = self.find(key, sys::GGUF_TYPE_STRING)?;
        // SAFETY: `idx` holds a string, NUL-terminated by ggml and owned by the context.
        let s = unsafe { CStr::from_ptr(sys::gguf_get_val_str(self.gguf.as_ptr(), idx)) };
        Some(s.to_string_lossy().into_owned())
    }

    pub fn array_len(&self, key: &str) -> Option<u64> {
        let idx = self.find(key, sys::GGUF_TYPE_ARRAY)?;
        // SAFETY: `idx` holds an array.
        Some(unsafe { sys::gguf_get_arr_n(self.gguf.as_ptr(), idx) } as u64)
    }
}

impl Drop for Header {
    fn drop(&mut self) {
        // SAFETY: created by gguf_init_from_file, freed once.
        unsafe {
            sys::gguf_free(self.gguf.as_ptr());
            if let Some(ctx) = self.tensors {
                sys::ggml_free(ctx.as_ptr());
            }
        }
    }
}
