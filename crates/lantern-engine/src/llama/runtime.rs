//! The scheduler's [`Runtime`] backed by a real llama.cpp context.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use super::lora::{self, LoraAdapter};
use crate::draft::Tokenizer;
use crate::scheduler::Runtime;
use crate::slot::AdapterRef;

pub(crate) struct LlamaRuntime<'m> {
    pub model: &'m LlamaModel,
    pub ctx: LlamaContext<'m>,
    pub batch: LlamaBatch<'static>,
    /// Control tokens rendered as text (tool-call and reasoning markers), sorted.
    pub preserved: Vec<i32>,
    /// The adapter the context applies, held so it is not freed meanwhile.
    pub adapter: Option<AdapterRef>,
    /// A sequence's KV can be cut at any position (not a recurrent or hybrid model).
    pub rewindable: bool,
}

impl Tokenizer for LlamaRuntime<'_> {
    fn tokenize(&self, text: &[u8], out: &mut Vec<i32>) {
        let tokens = self.model.vocab().tokenize(text, false, false);
        out.extend(tokens.into_iter().map(|t| t.0));
    }

    fn token_piece(&self, token: i32, out: &mut Vec<u8>) {
        let special = self.preserved.binary_search(&token).is_ok();
        self.model
            .vocab()
            .token_to_piece_into(LlamaToken(token), out, special, None);
    }
}

impl Runtime for LlamaRuntime<'_> {
    fn clear_batch(&mut self) {
        self.batch.clear();
    }

    fn add_to_batch(&mut self, token: i32, pos: i32, seq: i32, logits: bool) {
        // The scheduler never exceeds the batch's capacity (max_batch_tokens).
        self.batch
            .add(LlamaToken(token), pos, &[seq], logits)
            .expect("batch capacity matches the scheduler's budget");
    }

    fn decode(&mut self) -> Result<(), String> {
        self.ctx.decode(&mut self.batch).map_err(|e| e.to_string())
    }

    fn logits(&self, batch_index: i32) -> &[f32] {
        self.ctx.get_logits_ith(batch_index)
    }

    fn truncate_seq(&mut self, seq: i32, from: i32) -> bool {
        let from = u32::try_from(from).unwrap_or(0);
        match self
            .ctx
            .clear_kv_cache_seq(Some(seq as u32), Some(from), None)
        {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!(seq, from, error = %e, "could not clear KV cells");
                false
            }
        }
    }

    fn copy_seq(&mut self, src: i32, dst: i32) {
        // Each sequence has its own KV stream: llama.cpp copies the whole stream (its cells
        // are reset first), on the next decode.
        let _ = self.ctx.clear_kv_cache_seq(Some(dst as u32), None, None);
        if let Err(e) = self.ctx.copy_kv_cache_seq(src, dst, None, None) {
            tracing::warn!(src, dst, error = %e, "could not copy KV cells");
        }
    }

    fn is_eog(&self, token: i32) -> bool {
        self.model.vocab().is_eog(LlamaToken(token))
    }

    fn set_adapter(&mut self, adapter: Option<&AdapterRef>) {
        match adapter.and_then(|a| a.handle.downcast_ref::<LoraAdapter>()) {
            Some(lora) => lora.apply(&mut self.ctx),
            None => lora::clear(&mut self.ctx),
        }
        self.adapter = adapter.cloned();
    }

    fn can_rewind(&self) -> bool {
        self.rewindable
    }
}
