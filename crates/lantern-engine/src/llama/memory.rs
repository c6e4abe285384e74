//! Memory a model will need once loaded, estimated from its GGUF metadata without loading it:
//! the weights (the file) plus each replica's KV cache (f16 keys and values for `ctx_size`
//! tokens in every layer).

use std::path::Path;

use llama_cpp_2::gguf::GgufContext;

use super::EngineConfig;

/// `GGUF_TYPE_UINT32` in the GGUF specification.
const GGUF_TYPE_UINT32: u32 = 4;
/// f16 KV cache, llama.cpp's default.
const KV_BYTES_PER_VALUE: u64 = 2;

/// Shape of the attention, as far as the KV cache is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KvShape {
    pub n_layer: u64,
    pub n_head_kv: u64,
    pub key_length: u64,
    pub value_length: u64,
}

impl KvShape {
    pub fn bytes_per_token(&self) -> u64 {
        self.n_layer * self.n_head_kv * (self.key_length + self.value_length) * KV_BYTES_PER_VALUE
    }

    fn read(path: &Path) -> Option<KvShape> {
        let gguf = GgufContext::from_file(path)?;
        let arch_idx = gguf.find_key("general.architecture");
        let arch = (arch_idx >= 0)
            .then(|| gguf.val_str(arch_idx))
            .flatten()?
            .to_string();
        // Read a u32 only when it is one: ggml aborts on a getter of the wrong type.
        let u32_of = |key: &str| {
            let idx = gguf.find_key(&format!("{arch}.{key}"));
            (idx >= 0 && gguf.kv_type(idx) as u32 == GGUF_TYPE_UINT32)
                .then(|| u64::from(gguf.val_u32(idx)))
        };
        let n_layer = u32_of("block_count")?;
        let n_embd = u32_of("embedding_length")?;
        let n_head = u32_of("attention.head_count")?.max(1);
        let n_head_kv = u32_of("attention.head_count_kv").unwrap_or(n_head);
        let head_dim = n_embd / n_head;
        Some(KvShape {
            n_layer,
            n_head_kv,
            key_length: u32_of("attention.key_length").unwrap_or(head_dim),
            value_length: u32_of("attention.value_length").unwrap_or(head_dim),
        })
    }
}

/// Bytes `replicas` workers of this model will hold: weights once, a KV cache per replica.
/// Falls back to the file size alone when the metadata cannot be read.
pub fn estimate_memory(config: &EngineConfig, replicas: u32) -> u64 {
    let weights = std::fs::metadata(&config.model_path)
        .map(|m| m.len())
        .unwrap_or(0);
    let kv = KvShape::read(&config.model_path)
        .map(|shape| shape.bytes_per_token() * u64::from(config.ctx_size) * u64::from(replicas))
        .unwrap_or(0);
    weights + kv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_bytes_per_token_of_a_grouped_query_model() {
        // SmolLM2-135M: 30 layers, 3 KV heads of 64 dimensions, f16 K and V.
        let shape = KvShape {
            n_layer: 30,
            n_head_kv: 3,
            key_length: 64,
            value_length: 64,
        };
        assert_eq!(shape.bytes_per_token(), 23_040);
    }

    #[test]
    fn unreadable_metadata_falls_back_to_the_file_size() {
        let path = std::env::temp_dir().join(format!("lantern-mem-{}.gguf", std::process::id()));
        std::fs::write(&path, b"not a gguf").unwrap();
        let estimate = estimate_memory(&EngineConfig::new(&path), 2);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(estimate, 10);
    }
}
