//! Memory a model will need once loaded, estimated from its GGUF header without loading it,
//! following llama.cpp's own allocations: the weights (the file), and per replica an f16 KV
//! cache for `ctx_size` tokens in every layer, the compute buffer sized for a full micro-batch
//! (dominated by its `n_ubatch x n_vocab` logits), and the per-sequence output buffer.

use std::path::Path;

use super::gguf::Header;
use super::EngineConfig;

/// f16 KV cache, llama.cpp's default.
const KV_BYTES_PER_VALUE: u64 = 2;
const F32_BYTES: u64 = 4;
/// Activations per micro-batch token besides the logits, in units of the feed-forward width;
/// fitted to llama.cpp's reported compute buffers (SmolLM2-135M and Gemma 3 270M within 1%).
const ACTIVATIONS_PER_FF: u64 = 3;

/// The dimensions the estimate needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dims {
    pub n_layer: u64,
    pub n_head_kv: u64,
    pub key_length: u64,
    pub value_length: u64,
    pub n_vocab: u64,
    pub n_ff: u64,
}

impl Dims {
    fn read(path: &Path) -> Option<Dims> {
        let gguf = Header::open(path)?;
        let arch = gguf.string("general.architecture")?;
        let of = |key: &str| gguf.u32(&format!("{arch}.{key}"));
        let n_embd = of("embedding_length")?;
        let n_head = of("attention.head_count")?.max(1);
        let head_dim = n_embd / n_head;
        Some(Dims {
            n_layer: of("block_count")?,
            n_head_kv: of("attention.head_count_kv").unwrap_or(n_head),
            key_length: of("attention.key_length").unwrap_or(head_dim),
            value_length: of("attention.value_length").unwrap_or(head_dim),
            n_vocab: of("vocab_size")
                .or_else(|| gguf.array_len("tokenizer.ggml.tokens"))
                .unwrap_or(0),
            // Per-layer widths (an array) are rare; 4 x n_embd is the usual ratio.
            n_ff: of("feed_forward_length").unwrap_or(4 * n_embd),
        })
    }

    pub fn kv_bytes_per_token(&self) -> u64 {
        self.n_layer * self.n_head_kv * (self.key_length + self.value_length) * KV_BYTES_PER_VALUE
    }

    /// One context's buffers: KV cache, compute buffer and output buffer.
    pub fn context_bytes(&self, ctx_size: u32, n_ubatch: u32, parallel: u32) -> u64 {
        let kv = self.kv_bytes_per_token() * u64::from(ctx_size);
        let compute =
            u64::from(n_ubatch) * (self.n_vocab + ACTIVATIONS_PER_FF * self.n_ff) * F32_BYTES;
        let output = u64::from(parallel) * self.n_vocab * F32_BYTES;
        kv + compute + output
    }
}

/// The KV size llama.cpp allocates for `ctx_size` over `parallel` sequences: each
/// sequence's share is padded up to a multiple of 256 cells.
pub fn allocated_ctx(ctx_size: u32, parallel: u32) -> u32 {
    let parallel = parallel.max(1);
    (ctx_size / parallel).div_ceil(256) * 256 * parallel
}

/// Bytes `replicas` workers of this model will hold: the weights once, and each replica's
/// context buffers. Falls back to the file size alone when the header cannot be read.
pub fn estimate_memory(config: &EngineConfig, replicas: u32) -> u64 {
    let weights = std::fs::metadata(&config.model_path)
        .map(|m| m.len())
        .unwrap_or(0);
    let contexts = Dims::read(&config.model_path)
        .map(|dims| {
            let ctx = allocated_ctx(config.ctx_size, config.parallel);
            dims.context_bytes(ctx, config.ubatch_tokens(), config.parallel) * u64::from(replicas)
        })
        .unwrap_or(0);
    weights + contexts
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    fn smollm2() -> Dims {
        // SmolLM2-135M: 30 layers, 3 KV heads of 64 dimensions, 49152 tokens, n_ff 1536.
        Dims {
            n_layer: 30,
            n_head_kv: 3,
            key_length: 64,
            value_length: 64,
            n_vocab: 49152,
            n_ff: 1536,
        }
    }

    fn gemma3() -> Dims {
        Dims {
            n_layer: 18,
            n_head_kv: 1,
            key_length: 256,
            value_length: 256,
            n_vocab: 262_144,
            n_ff: 2048,
        }
    }

    #[test]
    fn kv_bytes_per_token_of_a_grouped_query_model() {
        assert_eq!(smollm2().kv_bytes_per_token(), 23_040);
    }

    /// llama.cpp's own log for SmolLM2-135M at ctx 8192, 4 sequences, n_ubatch 512:
    /// KV 180.00 MiB, compute 104.77 MiB, output 0.75 MiB; and for Gemma 3 270M (18 layers,
    /// 1 KV head of 256, 262144 tokens, n_ff 2048): KV 144.00, compute 523.53, output 4.00.
    #[test]
    fn context_bytes_match_what_llama_cpp_allocates() {
        let smol = smollm2().context_bytes(8192, 512, 4) as f64 / MIB;
        assert!(
            (smol - (180.0 + 104.77 + 0.75)).abs() < 0.01 * smol,
            "{smol}"
        );
        let gemma = gemma3().context_bytes(8192, 512, 4) as f64 / MIB;
        assert!(
            (gemma - (144.0 + 523.53 + 4.0)).abs() < 0.01 * gemma,
            "{gemma}"
        );
    }

    #[test]
    fn each_sequence_share_is_padded_to_256_cells() {
        assert_eq!(allocated_ctx(8192, 4), 8192);
        assert_eq!(allocated_ctx(1000, 3), 3 * 512);
        assert_eq!(allocated_ctx(4096, 1), 4096);
        assert_eq!(allocated_ctx(100, 1), 256);
        assert_eq!(allocated_ctx(4100, 2), 2 * 2304);
    }

    #[test]
    fn unreadable_header_falls_back_to_the_file_size() {
        let path = std::env::temp_dir().join(format!("lantern-mem-{}.gguf", std::process::id()));
        std::fs::write(&path, b"not a gguf").unwrap();
        let estimate = estimate_memory(&EngineConfig::new(&path), 2);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(estimate, 10);
    }

    /// The real models, when present (`make test` fetches both): the headers yield the
    /// dimensions above. Gemma's GGUF has no `vocab_size`, so its tokens array is counted.
    #[test]
    fn reads_the_dimensions_of_the_real_models() {
        for (file, dims) in [
            ("SmolLM2-135M-Instruct.Q4_1.gguf", smollm2()),
            ("gemma-3-270m-Q4_K_M.gguf", gemma3()),
        ] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../models")
                .join(file);
            if !path.exists() {
                eprintln!(
                    "skipped: {} is absent (make model model-gemma3)",
                    path.display()
                );
                continue;
            }
            assert_eq!(Dims::read(&path), Some(dims), "{file}");
        }
    }
}
