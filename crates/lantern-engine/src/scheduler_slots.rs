//! Which idle slot a request takes. A reusable cached prefix decides first; otherwise the
//! slot that keeps the busy ones contiguous, since llama.cpp decodes only sequences of
//! consecutive ids in one pass (one KV stream per sequence), and the cache that slot held is
//! moved aside rather than lost.

use std::cmp::Reverse;

use super::{common_prefix, Runtime, Scheduler, KEEP_FRACTION};
use crate::slot::Fork;

/// Shortest cache worth a KV stream copy to keep.
const MIN_KEPT_CACHE: usize = 16;

/// Fewest tokens a sequence may still generate for moving it to be worth a stream copy.
const MIN_MOVED_REMAINING: u32 = 16;

impl<R: Runtime> Scheduler<R> {
    /// The idle slot whose KV shares the longest prefix with `prompt`, and the length of
    /// that prefix. Among equals, the one that keeps the busy slots most contiguous, then
    /// the least recently used.
    ///
    /// A slot whose cache the prompt would mostly discard (it shares less than
    /// [`KEEP_FRACTION`] of it, say a system-prompt header of a long conversation) counts as
    /// sharing nothing, so an empty or least recently used slot is taken instead and that
    /// conversation stays cached for its next turn.
    pub(super) fn pick_slot(&self, prompt: &[i32], adapter: u32) -> Option<(usize, usize)> {
        (0..self.slots.len())
            .filter(|&seq| self.slots[seq].is_none())
            .map(|seq| {
                // KV computed under another adapter is worth nothing to this request.
                let common = if self.kv_adapter[seq] == adapter {
                    common_prefix(&self.kv[seq], prompt)
                } else {
                    0
                };
                let worth = common as f32 >= KEEP_FRACTION * self.kv[seq].len() as f32;
                (seq, common, if worth { common } else { 0 })
            })
            .max_by_key(|&(seq, _, worth)| {
                let runs = self.runs_with(&[seq]);
                (
                    worth,
                    Reverse(runs),
                    Reverse(self.last_used[seq]),
                    Reverse(seq),
                )
            })
            .map(|(seq, common, _)| (seq, common))
    }

    /// Idle slots for the other choices of a prompt going to `primary`, chosen one by one
    /// as [`Self::pick_slot`] chooses among slots with nothing to reuse.
    pub(super) fn pick_siblings(&self, primary: usize, n: usize) -> Option<Vec<usize>> {
        let mut chosen = vec![primary];
        for _ in 0..n {
            let mut with = chosen.clone();
            with.push(0);
            let next = (0..self.slots.len())
                .filter(|seq| self.slots[*seq].is_none() && !chosen.contains(seq))
                .min_by_key(|&seq| {
                    *with.last_mut().expect("pushed") = seq;
                    (self.runs_with(&with), self.last_used[seq], seq)
                })?;
            chosen.push(next);
        }
        chosen.remove(0);
        Some(chosen)
    }

    /// Runs of consecutive busy slots there would be with `also` busy too. llama.cpp's
    /// micro-batches hold only sequences of consecutive ids (one KV stream per sequence),
    /// so each run past the first costs the step another pass over the weights.
    fn runs_with(&self, also: &[usize]) -> usize {
        let busy = |seq: usize| self.slots[seq].is_some() || also.contains(&seq);
        (0..self.slots.len())
            .filter(|&seq| busy(seq) && (seq == 0 || !busy(seq - 1)))
            .count()
    }

    /// Before idle slot `seq` is taken for a request that reuses `reused` of its cached
    /// tokens: if it was chosen to keep the busy slots contiguous and its cache would be
    /// lost, that cache is copied into the least recently used idle slot (one KV stream
    /// copy, far cheaper than prefilling the conversation again), so the choice evicts what
    /// the least-recently-used rule would have. `taken` are all the request's slots.
    pub(super) fn keep_cache(&mut self, seq: usize, reused: usize, taken: &[usize]) {
        let len = self.kv[seq].len();
        // A recurrent state is not split by sequence id; nothing to gain from moving it.
        if len < MIN_KEPT_CACHE
            || reused as f32 >= KEEP_FRACTION * len as f32
            || !self.rt.can_rewind()
        {
            return;
        }
        let victim = (0..self.slots.len())
            .filter(|&s| self.slots[s].is_none() && !taken.contains(&s))
            .min_by_key(|&s| (!self.kv[s].is_empty(), self.last_used[s], s));
        let Some(to) =
            victim.filter(|&s| self.kv[s].is_empty() || self.last_used[s] < self.last_used[seq])
        else {
            return;
        };
        tracing::debug!(
            from = seq,
            to,
            tokens = len,
            "idle slot's cache copied aside: the slot keeps the busy ones contiguous"
        );
        self.rt.copy_seq(seq as i32, to as i32);
        self.kv[to] = self.kv[seq].clone();
        self.kv_adapter[to] = self.kv_adapter[seq];
        self.last_used[to] = self.last_used[seq];
        self.publish(to, Some(&self.kv[to]));
    }

    /// Closes a gap between busy slots that no waiting request fills: the last busy
    /// sequence moves into the first idle slot below it (a KV stream copy, after the cache
    /// there is kept aside), one move per step. Gaps appear when a request in the middle
    /// ends while nothing waits; each costs every step another pass over the weights.
    pub(super) fn compact(&mut self) {
        if !self.waiting.is_empty() || self.isolate.is_some() || !self.rt.can_rewind() {
            return;
        }
        if self.runs_with(&[]) <= 1 {
            return;
        }
        let Some(from) = (0..self.slots.len())
            .rev()
            .find(|&s| self.slots[s].is_some())
        else {
            return;
        };
        let movable = self.slots[from].as_ref().is_some_and(|a| {
            a.fork == Fork::Own && a.max_tokens.saturating_sub(a.generated) >= MIN_MOVED_REMAINING
        });
        let Some(to) = (0..from).find(|&s| self.slots[s].is_none()) else {
            return;
        };
        if !movable {
            return;
        }
        self.keep_cache(to, 0, &[to, from]);
        tracing::debug!(from, to, "sequence moved to close a gap between busy slots");
        self.rt.copy_seq(from as i32, to as i32);
        self.slots[to] = self.slots[from].take();
        self.kv[to] = self.kv[from].clone();
        self.kv_adapter[to] = self.kv_adapter[from];
        // The old stream holds a stale copy of a conversation that goes on elsewhere.
        self.last_used[from] = 0;
        self.publish(to, None);
        self.publish(from, Some(&self.kv[from]));
    }
}
