//! The scheduler's side of speculative decoding: which draft tokens go into a batch, and the
//! bookkeeping after a draft was verified. Sampling walks the draft in `sample_all`.

use super::{Runtime, Scheduler, MIN_DRAFT_VALUE};

impl<R: Runtime> Scheduler<R> {
    /// Proposes drafts for the generating sequences in the batch, then adds draft tokens in
    /// levels, one more per sequence each: as many levels as give the step the most expected
    /// tokens per second. A sequence's draft token adds the chance that it and the ones before
    /// it are accepted, and a level costs the step time its tokens add. All levels up to the
    /// shortest draft are priced, not only until one fails to pay: a step's cost per token is
    /// not smooth in its size (matrix kernels work in tiles), so a level that does not pay
    /// alone can lead to one that does. Every sequence gets the same number, and a batch with
    /// a prompt chunk gets none: llama.cpp splits a batch into micro-batches holding equally
    /// many tokens of each sequence, so an uneven draft would cost a whole extra pass.
    /// Returns the batch's new size.
    pub(super) fn add_drafts(&mut self, base: usize) -> usize {
        let spec = self.cfg.spec;
        let (mut seqs, mut depth, mut prefilling) = (0usize, usize::MAX, false);
        for (seq, slot) in self.slots.iter_mut().enumerate() {
            let Some(a) = slot else { continue };
            a.drafted = 0;
            if !a.in_batch || a.chunk > 0 {
                prefilling |= a.chunk > 0;
                a.draft.clear();
                continue;
            }
            // Tokens after the one sampled from `next_token`, within max_tokens and context.
            let room = a.max_tokens.saturating_sub(a.generated + 1) as usize;
            let ctx_room = (self.cfg.n_ctx_per_seq as i64 - i64::from(a.n_past) - 1).max(0);
            let limit = (spec.max_draft as usize).min(room).min(ctx_room as usize);
            let (history, last) = (&self.kv[seq], a.next_token);
            a.drafter
                .propose(&spec, &self.rt, history, last, limit, &mut a.draft);
            seqs += 1;
            depth = depth.min(a.draft.len());
        }
        if seqs == 0 || prefilling {
            return base;
        }
        let mut outputs = seqs as f64;
        let (mut best, mut levels) = (outputs / self.cost.time(base), 0);
        for level in 1..=depth {
            let n = base + level * seqs;
            if n > self.cfg.max_batch_tokens {
                break;
            }
            let value: f64 = self
                .slots
                .iter()
                .flatten()
                .filter(|a| a.in_batch)
                .map(|a| f64::from(a.drafter.rate()).powi(level as i32))
                .sum();
            if value < MIN_DRAFT_VALUE * seqs as f64 {
                break;
            }
            outputs += value;
            let speed = outputs / self.cost.time(n);
            if speed > best {
                (best, levels) = (speed, level);
            }
        }
        if levels == 0 {
            return base;
        }
        for a in self.slots.iter_mut().flatten().filter(|a| a.in_batch) {
            a.drafted = levels;
        }
        let mut at = base;
        for (seq, slot) in self.slots.iter_mut().enumerate() {
            let Some(a) = slot.as_mut().filter(|a| a.drafted > 0) else {
                continue;
            };
            a.draft_at = at as i32;
            for (i, &token) in a.draft[..a.drafted].iter().enumerate() {
                self.rt
                    .add_to_batch(token, a.n_past + 1 + i as i32, seq as i32, true);
            }
            at += a.drafted;
        }
        at
    }

    /// After sampling walked `seq`'s draft: `accepted` of `drafted` tokens were taken. The
    /// rest of the draft's KV is removed (the sequence then holds exactly what `kv` lists),
    /// and the sequence's acceptance rate and the draft counters learn of it.
    pub(super) fn verified(&mut self, seq: usize, drafted: usize, accepted: usize) {
        if let Some(a) = self.slots[seq].as_mut() {
            a.drafter.record(drafted, accepted);
        }
        if accepted < drafted {
            self.rt.truncate_seq(seq as i32, self.kv[seq].len() as i32);
        }
        if let Some(stats) = &self.stats {
            use std::sync::atomic::Ordering::Relaxed;
            stats.drafted.fetch_add(drafted as u64, Relaxed);
            stats.accepted.fetch_add(accepted as u64, Relaxed);
        }
    }
}
