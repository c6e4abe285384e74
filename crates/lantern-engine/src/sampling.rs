//! Per-request samplers. Plain greedy decoding is an argmax over the logits (no sampler chain,
//! no candidate array); everything else is llama.cpp's chain in its usual order:
//! penalties, top-k, top-p, min-p, temperature, then a seeded draw.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::sampling::LlamaSampler;

use crate::SamplingParams;

/// How far back presence and frequency penalties look, as in llama.cpp's default.
const PENALTY_LAST_N: i32 = 64;

pub(crate) enum SlotSampler {
    Greedy,
    Chain(LlamaSampler),
}

impl SlotSampler {
    pub fn new(params: &SamplingParams, n_vocab: i32) -> Self {
        if params.is_plain_greedy() {
            return SlotSampler::Greedy;
        }
        let mut chain = Vec::with_capacity(6);
        if params.presence_penalty != 0.0 || params.frequency_penalty != 0.0 {
            chain.push(LlamaSampler::penalties(
                n_vocab,
                PENALTY_LAST_N,
                1.0,
                params.frequency_penalty,
                params.presence_penalty,
            ));
        }
        if params.temperature <= 0.0 {
            chain.push(LlamaSampler::greedy());
            return SlotSampler::Chain(LlamaSampler::chain_simple(chain));
        }
        if params.top_k > 0 {
            chain.push(LlamaSampler::top_k(params.top_k));
        }
        if params.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(params.top_p, 1));
        }
        if params.min_p > 0.0 {
            chain.push(LlamaSampler::min_p(params.min_p, 1));
        }
        chain.push(LlamaSampler::temp(params.temperature));
        // llama.cpp treats u32::MAX as "pick a random seed".
        chain.push(LlamaSampler::dist(params.seed.unwrap_or(u32::MAX)));
        SlotSampler::Chain(LlamaSampler::chain_simple(chain))
    }

    /// Chooses the next token from the logits of batch row `idx`. The chain's `sample` also
    /// accepts the token (penalty state); it must not be accepted again.
    pub fn sample(&mut self, ctx: &LlamaContext<'_>, idx: i32) -> i32 {
        match self {
            SlotSampler::Greedy => argmax(ctx.get_logits_ith(idx)),
            SlotSampler::Chain(chain) => chain.sample(ctx, idx).0,
        }
    }
}

/// Index of the largest logit; the first one wins ties, as llama.cpp's greedy sampler does.
pub(crate) fn argmax(logits: &[f32]) -> i32 {
    let mut best = 0usize;
    let mut best_value = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_value {
            best_value = v;
            best = i;
        }
    }
    best as i32
}

#[cfg(test)]
mod tests {
    use super::argmax;

    #[test]
    fn argmax_first_of_ties() {
        assert_eq!(argmax(&[0.1, 3.0, -1.0, 3.0]), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, -5.0]), 1);
    }
}
