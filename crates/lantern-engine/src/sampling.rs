//! Per-choice token selection over a row of logits, in Rust so that one pass yields what the
//! API reports (log-probabilities of the distribution the token is drawn from) and a grammar
//! that allows no token becomes an error rather than an abort inside llama.cpp.
//!
//! Order, as llama.cpp's default chain: penalties, logit bias, grammar mask, then (after the
//! log-probabilities are read) top-k, top-p, min-p, temperature and a seeded draw. Plain
//! greedy decoding with nothing else to apply is an argmax over the raw logits: no copy.

use std::collections::HashMap;

use llguidance::Matcher;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::SamplingParams;

/// Most alternatives reported per position (the OpenAI API's limit).
pub const MAX_TOP_LOGPROBS: u32 = 20;

/// What was chosen at one position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sampled {
    pub token: i32,
    /// The token's log-probability and the top alternatives, when asked for.
    pub logprobs: Option<(f32, Vec<(i32, f32)>)>,
}

/// Why no token could be chosen.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum SampleError {
    #[error("the grammar allows no token at this point: {0}")]
    DeadEnd(String),
    #[error("grammar error: {0}")]
    Grammar(String),
}

/// After a token is accepted: whether the grammar is complete (nothing more may follow).
pub(crate) type GrammarDone = bool;

/// Tokens that bring a JSON answer to an end, found once per vocabulary. Inside a string the
/// closing quotes come first; outside one the brackets (with the end-of-generation tokens),
/// since a quote there would open a new key; then the shortest values, where a value must come.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClosingTokens {
    /// Closers that hold a quote (`"`, `"}`, ...).
    pub quotes: std::sync::Arc<[u32]>,
    /// Closers without one (`}`, `]}`, end of generation).
    pub brackets: std::sync::Arc<[u32]>,
    pub values: std::sync::Arc<[u32]>,
    /// Per token: brackets it opens minus brackets it closes, to estimate how many tokens
    /// closing will take.
    pub depth: std::sync::Arc<[i8]>,
    /// Per token: whether it holds an odd number of quotes, to know whether the answer is
    /// inside a string (an estimate: escaped quotes are rare in model output).
    pub flips_string: std::sync::Arc<[bool]>,
}

/// Tokens left before the budget ends at which a grammar answer starts closing, beyond one
/// per open bracket.
const CLOSING_RESERVE: u32 = 12;

pub(crate) struct Sampler {
    params: SamplingParams,
    /// `params.is_plain_greedy()` with no grammar and no logprobs: argmax of the raw row.
    plain: bool,
    rng: StdRng,
    grammar: Option<Box<Matcher>>,
    /// With a grammar: tokens preferred when the budget is nearly spent.
    closing: Option<ClosingTokens>,
    /// Brackets open in the answer so far (estimated from its tokens).
    depth: u32,
    in_string: bool,
    top_logprobs: Option<u32>,
    /// Generated tokens and how often, for presence and frequency penalties.
    counts: HashMap<i32, u32>,
    penalties: bool,
    // Scratch reused at every token.
    logits: Vec<f32>,
    candidates: Vec<(i32, f32)>,
}

impl Sampler {
    /// `choice` perturbs the seed so that the choices of an `n > 1` request differ while each
    /// stays reproducible.
    pub fn new(
        params: &SamplingParams,
        grammar: Option<Matcher>,
        top_logprobs: Option<u32>,
        choice: u32,
    ) -> Self {
        let rng = match params.seed {
            Some(seed) => StdRng::seed_from_u64(seed ^ (u64::from(choice) << 48)),
            None => StdRng::from_os_rng(),
        };
        Sampler {
            plain: params.is_plain_greedy() && grammar.is_none() && top_logprobs.is_none(),
            penalties: params.presence_penalty != 0.0 || params.frequency_penalty != 0.0,
            params: params.clone(),
            rng,
            grammar: grammar.map(Box::new),
            closing: None,
            depth: 0,
            in_string: false,
            top_logprobs: top_logprobs.map(|k| k.min(MAX_TOP_LOGPROBS)),
            counts: HashMap::new(),
            logits: Vec::new(),
            candidates: Vec::new(),
        }
    }

    pub fn has_grammar(&self) -> bool {
        self.grammar.is_some()
    }

    /// A grammar answer about to run out of tokens (`max_tokens` or the context) is steered
    /// to finish: among the tokens the grammar allows, only `closing` ones are kept while any
    /// is allowed, so the answer ends as valid JSON instead of being cut off.
    pub fn with_closing(mut self, closing: ClosingTokens) -> Self {
        self.closing = self.grammar.is_some().then_some(closing);
        self
    }

    /// Chooses the next token from one row of logits, `remaining` tokens before the budget
    /// ends. Does not accept it: call [`Sampler::accept`] with the token actually used.
    pub fn sample(&mut self, row: &[f32], remaining: u32) -> Result<Sampled, SampleError> {
        if self.plain {
            return Ok(Sampled {
                token: argmax(row),
                logprobs: None,
            });
        }
        self.logits.clear();
        self.logits.extend_from_slice(row);
        self.apply_penalties();
        self.apply_bias();
        self.apply_grammar(remaining)?;
        let logprobs = self.top_logprobs.map(|k| log_probs(&self.logits, k));
        let token = if self.params.temperature <= 0.0 {
            argmax(&self.logits)
        } else {
            self.draw()
        };
        let logprobs = logprobs.map(|(lse, top)| (self.logits[token as usize] - lse, top));
        Ok(Sampled { token, logprobs })
    }

    /// Records the chosen token: penalty counts, grammar state.
    pub fn accept(&mut self, token: i32) -> Result<GrammarDone, SampleError> {
        if self.penalties {
            *self.counts.entry(token).or_insert(0) += 1;
        }
        if let Some(c) = self.closing.as_ref() {
            let i = token as usize;
            if let Some(delta) = c.depth.get(i) {
                self.depth = self
                    .depth
                    .saturating_add_signed(i32::from(*delta))
                    .min(1 << 16);
            }
            self.in_string ^= c.flips_string.get(i).copied().unwrap_or(false);
        }
        let Some(m) = self.grammar.as_mut() else {
            return Ok(false);
        };
        m.consume_token(token as u32)
            .map_err(|e| SampleError::Grammar(e.to_string()))?;
        Ok(m.is_stopped())
    }

    fn apply_penalties(&mut self) {
        let (presence, frequency) = (self.params.presence_penalty, self.params.frequency_penalty);
        for (&token, &count) in &self.counts {
            if let Some(l) = self.logits.get_mut(token as usize) {
                *l -= presence + frequency * count as f32;
            }
        }
    }

    fn apply_bias(&mut self) {
        for &(token, bias) in &self.params.logit_bias {
            if let Some(l) = self.logits.get_mut(token as usize) {
                // -100 is a ban, as in the OpenAI API; other values shift the logit.
                *l = if bias <= -100.0 {
                    f32::NEG_INFINITY
                } else {
                    *l + bias
                };
            }
        }
    }

    fn apply_grammar(&mut self, remaining: u32) -> Result<(), SampleError> {
        let Some(m) = self.grammar.as_mut() else {
            return Ok(());
        };
        let mask = m
            .compute_mask()
            .map_err(|e| SampleError::Grammar(e.to_string()))?;
        let mut any = false;
        for (i, l) in self.logits.iter_mut().enumerate() {
            if !mask.is_allowed(i as u32) {
                *l = f32::NEG_INFINITY;
            } else if *l > f32::NEG_INFINITY {
                any = true;
            }
        }
        if !any {
            return Err(SampleError::DeadEnd(if mask.is_zero() {
                "the grammar rejects every token".into()
            } else {
                "every token the grammar allows is banned by logit_bias".into()
            }));
        }
        let reserve = CLOSING_RESERVE + self.depth;
        if remaining > reserve {
            return Ok(());
        }
        // Taken out for the loop so `keep_only` can borrow the logits; put back after.
        if let Some(closing) = self.closing.take() {
            let tiers = if self.in_string {
                [&closing.quotes, &closing.brackets, &closing.values]
            } else {
                [&closing.brackets, &closing.values, &closing.quotes]
            };
            for tier in tiers {
                if self.keep_only(tier) {
                    break;
                }
            }
            self.closing = Some(closing);
        }
        Ok(())
    }

    /// Masks every token outside `tokens`, if any of them is still allowed. `candidates` is
    /// the scratch (`draw` refills it next), so closing allocates nothing per token.
    fn keep_only(&mut self, tokens: &[u32]) -> bool {
        let logits = &self.logits;
        self.candidates.clear();
        self.candidates.extend(tokens.iter().filter_map(|&t| {
            let l = *logits.get(t as usize)?;
            l.is_finite().then_some((t as i32, l))
        }));
        if self.candidates.is_empty() {
            return false;
        }
        self.logits.fill(f32::NEG_INFINITY);
        for &(t, l) in &self.candidates {
            self.logits[t as usize] = l;
        }
        true
    }

    /// top-k, top-p and min-p on the untempered distribution, then a draw at the temperature.
    fn draw(&mut self) -> i32 {
        let p = &self.params;
        self.candidates.clear();
        self.candidates.extend(
            self.logits
                .iter()
                .enumerate()
                .filter(|(_, l)| l.is_finite())
                .map(|(i, &l)| (i as i32, l)),
        );
        let c = &mut self.candidates;
        if c.is_empty() {
            // Every logit is -inf (all banned): fall back to the raw argmax.
            return argmax(&self.logits);
        }
        if p.top_k > 0 && (p.top_k as usize) < c.len() {
            keep_top(c, p.top_k as usize);
        }
        let max = c.iter().map(|&(_, l)| l).fold(f32::NEG_INFINITY, f32::max);
        if p.top_p < 1.0 {
            top_p(c, p.top_p, max);
        }
        if p.min_p > 0.0 {
            // p_i >= min_p * p_max  <=>  l_i >= l_max + ln(min_p)
            let floor = max + p.min_p.ln();
            c.retain(|&(_, l)| l >= floor);
        }
        let t = p.temperature;
        let total: f64 = c
            .iter()
            .map(|&(_, l)| f64::from(((l - max) / t).exp()))
            .sum();
        let mut target = self.rng.random::<f64>() * total;
        for &(id, l) in c.iter() {
            target -= f64::from(((l - max) / t).exp());
            if target <= 0.0 {
                return id;
            }
        }
        c.last().map_or(0, |&(id, _)| id)
    }
}

/// Keeps the `k` largest logits (unordered).
fn keep_top(c: &mut Vec<(i32, f32)>, k: usize) {
    c.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
    c.truncate(k);
}

/// Keeps the smallest set of most likely tokens whose probability reaches `top_p`, sorted by
/// logit. Sorts only as far as needed: the top 256 first, widening if they fall short.
fn top_p(c: &mut Vec<(i32, f32)>, top_p: f32, max: f32) {
    let total: f64 = c.iter().map(|&(_, l)| f64::from((l - max).exp())).sum();
    let goal = f64::from(top_p) * total;
    let mut window = 256usize;
    loop {
        let n = window.min(c.len());
        if n < c.len() {
            c.select_nth_unstable_by(n - 1, |a, b| b.1.total_cmp(&a.1));
        }
        c[..n].sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        let mut sum = 0.0;
        for i in 0..n {
            sum += f64::from((c[i].1 - max).exp());
            if sum >= goal {
                c.truncate(i + 1);
                return;
            }
        }
        if n == c.len() {
            return;
        }
        window *= 4;
    }
}

/// Log-sum-exp of the row and its `k` most likely tokens with their log-probabilities.
fn log_probs(logits: &[f32], k: u32) -> (f32, Vec<(i32, f32)>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits
        .iter()
        .filter(|l| l.is_finite())
        .map(|&l| f64::from((l - max).exp()))
        .sum();
    let lse = max + sum.ln() as f32;
    let mut top: Vec<(i32, f32)> = Vec::with_capacity(k as usize + 1);
    if k > 0 {
        for (i, &l) in logits.iter().enumerate() {
            if !l.is_finite() {
                continue;
            }
            if top.len() < k as usize {
                top.push((i as i32, l));
                top.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
            } else if l > top[top.len() - 1].1 {
                let last = top.len() - 1;
                top[last] = (i as i32, l);
                top.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
            }
        }
    }
    for t in &mut top {
        t.1 -= lse;
    }
    (lse, top)
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
#[path = "sampling_tests.rs"]
mod tests;
