//! Continuous batching. Every step decodes one token for each generating sequence and, in the
//! same batch, prompt chunks of newly admitted requests (chunked prefill), then samples.
//! Requests are admitted between steps. A finished sequence's KV stays in its slot, and a new
//! request goes to the idle slot holding the longest prefix of its prompt, so only the rest is
//! prefilled (a multi-turn chat prefills only the new turn). The choices of an `n > 1` request
//! take several slots at once: one prefills the prompt, the others copy its KV and sample
//! from the same logits. Sampling (penalties, bias, grammar, logprobs) is the pure-Rust
//! [`crate::sampling::Sampler`]; the scheduler is generic over [`Runtime`] so it can be tested
//! without llama.cpp.
//!
//! Speculative decoding happens in the same step: a generating sequence may add draft tokens
//! (from [`crate::draft`]) after its next token, each with logits. Sampling then walks the
//! draft: while the token sampled at a position equals the draft token there, that token's
//! KV is already computed and the next position's logits are ready, so one step yields
//! several tokens; the KV of the rest is removed. Sampling each position exactly as an
//! ordinary step would (same sampler, same state, same random draws) makes the output
//! identical to decoding without drafts, greedy or not: for a draft that is one fixed
//! token, "sample, then compare" is the standard rejection-sampling acceptance. How many
//! draft tokens go into a batch is decided by what they are expected to add (the sequence's
//! acceptance rate) against what they cost (the step times measured by [`StepCost`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::draft::{Drafter, SpecConfig, Tokenizer};
use crate::slot::{Active, AdapterRef, Fork, Job, TextOut};
use crate::step_cost::StepCost;
use crate::{EngineError, Event, FinishReason, TokenLogprob, TokenUsage, TopLogprob};

/// The model operations the scheduler needs. Tokens and sequence ids are llama.cpp's `i32`s.
pub(crate) trait Runtime: Tokenizer {
    fn clear_batch(&mut self);
    fn add_to_batch(&mut self, token: i32, pos: i32, seq: i32, logits: bool);
    fn decode(&mut self) -> Result<(), String>;
    /// The logits row of batch entry `batch_index` (one that was added with logits).
    fn logits(&self, batch_index: i32) -> &[f32];
    /// Drops the KV of `seq` from position `from` on. False when the model refuses a partial
    /// removal (recurrent and hybrid models keep one state per sequence, not per position);
    /// clearing from 0 always works.
    fn truncate_seq(&mut self, seq: i32, from: i32) -> bool;
    /// Makes `dst` hold exactly the KV of `src` (the choices of one prompt).
    fn copy_seq(&mut self, src: i32, dst: i32);
    fn is_eog(&self, token: i32) -> bool;
    /// Applies `adapter` (None: the base model) to every sequence of the following decodes.
    fn set_adapter(&mut self, adapter: Option<&AdapterRef>);
    /// Whether a sequence's KV can be cut at any position (not a recurrent model), which
    /// rejecting draft tokens needs.
    fn can_rewind(&self) -> bool;
}

/// The cached tokens of each idle slot (empty while a slot is busy), shared with the router
/// that picks a replica for a new prompt. Written only when a slot is taken or freed.
pub(crate) type IdlePrefixes = std::sync::Arc<std::sync::Mutex<Vec<Vec<i32>>>>;

/// What a worker is doing, published after every step for metrics (relaxed atomics: a scrape
/// may see one step's numbers mixed with the next's).
#[derive(Debug, Default)]
pub(crate) struct SlotStats {
    /// Sequences in a slot.
    pub running: std::sync::atomic::AtomicU32,
    /// Requests waiting for slots.
    pub waiting: std::sync::atomic::AtomicU32,
    /// KV cells the running sequences hold.
    pub kv_used: std::sync::atomic::AtomicU64,
    /// Draft tokens verified, and those accepted, since the worker started.
    pub drafted: std::sync::atomic::AtomicU64,
    pub accepted: std::sync::atomic::AtomicU64,
}

/// Length of the common prefix of two token sequences.
pub(crate) fn common_prefix(a: &[i32], b: &[i32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Share of a slot's cached tokens a new prompt must keep for the slot to be chosen for
/// its cache (llama-server has a similar threshold, relative to the prompt).
const KEEP_FRACTION: f32 = 0.5;

/// A draft token expected to be accepted less often than this is not worth verifying, even
/// where the step cost says it is nearly free.
const MIN_DRAFT_VALUE: f64 = 0.1;

#[derive(Debug, Clone, Copy)]
pub(crate) struct SchedulerConfig {
    /// Sequences decoded together (`--parallel`).
    pub n_slots: usize,
    pub n_ctx_per_seq: u32,
    /// Most tokens in one decode call.
    pub max_batch_tokens: usize,
    pub spec: SpecConfig,
}

pub(crate) struct Scheduler<R: Runtime> {
    rt: R,
    cfg: SchedulerConfig,
    slots: Vec<Option<Active>>,
    /// Tokens whose KV each slot holds, at positions 0.., kept after its request ends.
    kv: Vec<Vec<i32>>,
    /// The adapter key each slot's KV was computed under (0: the base model).
    kv_adapter: Vec<u32>,
    /// The adapter key the runtime applies now.
    applied: u32,
    /// The adapter group the last batch decoded; groups take turns.
    turn: u32,
    /// When each slot last finished a request, to reuse the least recently used one.
    last_used: Vec<u64>,
    waiting: VecDeque<Job>,
    admissions: u64,
    idle_prefixes: Option<IdlePrefixes>,
    stats: Option<std::sync::Arc<SlotStats>>,
    /// While finding which sequence a failed batch cannot decode: batch only this one.
    isolate: Option<usize>,
    /// Step times by batch size, which price draft tokens.
    cost: StepCost,
    /// Drafting is possible (the model's KV can be rewound).
    drafting: bool,
    // Scratch buffers reused every token, so the decode loop does not allocate for them.
    piece: Vec<u8>,
    text: String,
}

impl<R: Runtime> Scheduler<R> {
    pub fn new(rt: R, cfg: SchedulerConfig) -> Self {
        let drafting = !cfg.spec.is_off() && rt.can_rewind();
        Scheduler {
            rt,
            cfg,
            slots: (0..cfg.n_slots).map(|_| None).collect(),
            kv: vec![Vec::new(); cfg.n_slots],
            kv_adapter: vec![0; cfg.n_slots],
            applied: 0,
            turn: 0,
            last_used: vec![0; cfg.n_slots],
            waiting: VecDeque::new(),
            admissions: 0,
            idle_prefixes: None,
            stats: None,
            isolate: None,
            cost: StepCost::default(),
            drafting,
            piece: Vec::with_capacity(64),
            text: String::with_capacity(64),
        }
    }

    /// Publishes idle slots' cached tokens to `table` (one entry per slot).
    pub fn publish_idle_prefixes(&mut self, table: IdlePrefixes) {
        self.idle_prefixes = Some(table);
    }

    /// Publishes the slots' occupancy to `stats` after every step.
    pub fn publish_stats(&mut self, stats: std::sync::Arc<SlotStats>) {
        self.stats = Some(stats);
    }

    fn publish_stats_now(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(stats) = &self.stats else { return };
        let (mut running, mut kv) = (0u32, 0u64);
        for a in self.slots.iter().flatten() {
            running += 1;
            kv += a.n_past.max(0) as u64;
        }
        stats.running.store(running, Relaxed);
        stats.waiting.store(self.waiting.len() as u32, Relaxed);
        stats.kv_used.store(kv, Relaxed);
    }

    fn publish(&self, seq: usize, tokens: Option<&Vec<i32>>) {
        if let Some(table) = &self.idle_prefixes {
            if let Ok(mut t) = table.lock() {
                match tokens {
                    Some(kv) => t[seq].clone_from(kv),
                    None => t[seq].clear(),
                }
            }
        }
    }

    pub fn enqueue(&mut self, job: Job) {
        self.waiting.push_back(job);
        self.publish_stats_now();
    }

    /// Nothing running and nothing waiting: the worker may block for the next request.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.slots.iter().all(Option::is_none)
    }

    #[cfg(test)]
    pub fn runtime(&self) -> &R {
        &self.rt
    }

    #[cfg(test)]
    pub fn runtime_mut(&mut self) -> &mut R {
        &mut self.rt
    }

    /// Runs one decode step: reap cancelled requests, admit waiting ones, decode, sample.
    pub fn step(&mut self) {
        self.decode_step();
        self.publish_stats_now();
    }

    fn decode_step(&mut self) {
        self.reap_cancelled();
        self.admit();
        self.compact();
        let tokens = self.build_batch();
        if tokens == 0 {
            return;
        }
        // Step times price drafts; without drafting the clock is not read.
        let started = self.drafting.then(Instant::now);
        match self.rt.decode() {
            Ok(()) => {
                self.commit_batch();
                self.sample_all();
                // Sampling included: every draft token's logits row is read.
                if let Some(started) = started {
                    self.cost.record(tokens, started.elapsed().as_secs_f64());
                }
            }
            Err(reason) => self.decode_each_alone(reason),
        }
    }

    fn reap_cancelled(&mut self) {
        self.waiting.retain(|job| !job.is_abandoned());
        for seq in 0..self.slots.len() {
            if self.slots[seq]
                .as_ref()
                .is_some_and(|a| a.events.is_closed())
            {
                self.cancel(seq);
            }
        }
    }

    fn admit(&mut self) {
        while let Some(job) = self.waiting.front() {
            let adapter = job.adapter.as_ref().map_or(0, |(a, _)| a.key);
            let Some((seq, common)) = self.pick_slot(&job.tokens, adapter) else {
                return;
            };
            // Every choice of a job starts together; it waits until enough slots are free.
            let Some(siblings) = self.pick_siblings(seq, job.choices.len() - 1) else {
                return;
            };
            let job = self.waiting.pop_front().expect("checked non-empty");
            let slots: Vec<usize> = std::iter::once(seq)
                .chain(siblings.iter().copied())
                .collect();
            for (i, &slot) in slots.iter().enumerate() {
                self.keep_cache(slot, if i == 0 { common } else { 0 }, &slots);
            }
            // The last prompt token is always decoded again: its logits start generation.
            let mut reuse = common.min(job.tokens.len() - 1);
            if !self.rt.truncate_seq(seq as i32, reuse as i32) {
                // A recurrent state cannot be rewound: start the sequence over.
                tracing::debug!(seq, reuse, "partial KV removal refused; prefilling from 0");
                self.rt.truncate_seq(seq as i32, 0);
                reuse = 0;
            }
            self.kv[seq].truncate(reuse);
            self.kv_adapter[seq] = adapter;
            self.publish(seq, None);
            self.admissions += 1;
            let prompt: Arc<[i32]> = job.tokens.into();
            let outstanding = job.outstanding.map(Arc::new);
            let max_draft = if self.drafting {
                self.cfg.spec.max_draft as usize
            } else {
                0
            };
            let now = Instant::now();
            let (adapter_ref, adapter_use) = match job.adapter {
                Some((a, in_use)) => {
                    a.running.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let running = crate::slot::Outstanding(a.running.clone());
                    (Some(a), Some(Arc::new((in_use, running))))
                }
                None => (None, None),
            };
            for (i, (choice, &slot)) in job.choices.into_iter().zip(&slots).enumerate() {
                if i > 0 {
                    self.publish(slot, None);
                }
                self.slots[slot] = Some(Active {
                    prompt: prompt.clone(),
                    prefilled: if i == 0 { reuse } else { 0 },
                    n_past: if i == 0 { reuse as i32 } else { 0 },
                    cached: if i == 0 { reuse } else { 0 },
                    generated: 0,
                    max_tokens: job.max_tokens,
                    deadline: job.deadline,
                    span: job.span.clone(),
                    ignore_eos: job.ignore_eos,
                    sampler: choice.sampler,
                    next_token: 0,
                    logits_at: None,
                    chunk: 0,
                    in_batch: false,
                    fork: match i {
                        0 if siblings.is_empty() => Fork::Own,
                        0 => Fork::Parent(siblings.clone()),
                        _ => Fork::Child,
                    },
                    admitted: self.admissions,
                    received: job.received,
                    started: now,
                    first_token: None,
                    text: TextOut::new(job.stop.clone()),
                    events: choice.events,
                    _outstanding: outstanding.clone(),
                    adapter: adapter_ref.clone(),
                    _adapter_use: adapter_use.clone(),
                    drafter: Drafter::new(job.prediction.clone()),
                    draft: Vec::with_capacity(max_draft),
                    drafted: 0,
                    draft_at: 0,
                });
            }
        }
    }

    /// The adapter group the next batch decodes: the only one when all running sequences
    /// share one (the usual case, no switching), else the next after the last served, so
    /// each group gets every k-th step whatever its size and no burst starves another.
    /// The runtime is switched to it here.
    fn batch_group(&mut self) -> u32 {
        let key = |a: &Active| a.adapter_key();
        let group = if let Some(seq) = self.isolate {
            self.slots[seq].as_ref().map_or(0, key)
        } else {
            let (mut lowest, mut next) = (None::<u32>, None::<u32>);
            for a in self.slots.iter().flatten().filter(|a| a.is_runnable()) {
                let k = key(a);
                lowest = Some(lowest.map_or(k, |l| l.min(k)));
                if k > self.turn {
                    next = Some(next.map_or(k, |n| n.min(k)));
                }
            }
            next.or(lowest).unwrap_or(0)
        };
        self.turn = group;
        if group != self.applied {
            let adapter = self
                .slots
                .iter()
                .flatten()
                .find_map(|a| a.adapter.as_ref().filter(|r| r.key == group));
            self.rt.set_adapter(adapter);
            self.applied = group;
        }
        group
    }

    /// Stops applying an adapter while nothing runs, so an unloaded one can be freed.
    pub fn release_adapter(&mut self) {
        if self.applied != 0 {
            self.rt.set_adapter(None);
            self.applied = 0;
        }
    }

    /// Fills the batch: one token per generating sequence, then prompt chunks in admission
    /// order within the remaining budget, then draft tokens worth their cost. Tokens go in
    /// sequence order: llama.cpp puts only sequences of consecutive ids, in the order they
    /// first appear, into one micro-batch. Returns the batch's size (0: nothing to do).
    fn build_batch(&mut self) -> usize {
        self.rt.clear_batch();
        let isolate = self.isolate;
        let group = self.batch_group();
        // One adapter group per batch: llama.cpp applies adapters to the whole context.
        let included = |seq: usize, a: &Active| {
            a.is_runnable() && isolate.is_none_or(|only| only == seq) && a.adapter_key() == group
        };
        let mut prefilling: Vec<(u64, usize)> = Vec::new();
        let mut generating = 0usize;
        for (seq, slot) in self.slots.iter_mut().enumerate() {
            let Some(a) = slot else { continue };
            a.logits_at = None;
            a.chunk = 0;
            a.in_batch = included(seq, a);
            if a.in_batch && a.is_prefilling() {
                prefilling.push((a.admitted, seq));
            } else if a.in_batch {
                generating += 1;
            }
        }
        prefilling.sort_unstable();
        let mut budget = self.cfg.max_batch_tokens.saturating_sub(generating);
        for (_, seq) in prefilling {
            let a = self.slots[seq]
                .as_mut()
                .expect("prefilling slot is occupied");
            a.chunk = budget.min(a.prompt.len() - a.prefilled);
            a.in_batch = a.chunk > 0;
            budget -= a.chunk;
        }
        let mut n = 0usize;
        for (seq, slot) in self.slots.iter_mut().enumerate() {
            let Some(a) = slot.as_mut().filter(|a| a.in_batch) else {
                continue;
            };
            if a.chunk == 0 {
                self.rt
                    .add_to_batch(a.next_token, a.n_past, seq as i32, true);
                a.logits_at = Some(n as i32);
                n += 1;
                continue;
            }
            for i in 0..a.chunk {
                let idx = a.prefilled + i;
                let last = idx + 1 == a.prompt.len();
                self.rt
                    .add_to_batch(a.prompt[idx], a.n_past + i as i32, seq as i32, last);
                if last {
                    a.logits_at = Some(n as i32);
                }
                n += 1;
            }
        }
        if self.drafting {
            n = self.add_drafts(n);
        }
        n
    }

    /// A failed batch: each of its sequences is decoded alone, so the one that cannot be
    /// decoded (the request that caused the failure) fails and the others go on.
    fn decode_each_alone(&mut self, reason: String) {
        let seqs: Vec<usize> = (0..self.slots.len())
            .filter(|&seq| self.slots[seq].as_ref().is_some_and(|a| a.in_batch))
            .collect();
        // What the failed batch may have written; a recurrent model may refuse (its state is
        // then cleared with the request if that one fails too).
        for &seq in &seqs {
            let n_past = self.slots[seq].as_ref().map_or(0, |a| a.n_past);
            let _ = self.rt.truncate_seq(seq as i32, n_past);
        }
        if let [seq] = seqs[..] {
            return self.fail_decode(seq, reason);
        }
        tracing::warn!(%reason, sequences = seqs.len(), "decode failed; decoding each sequence alone to find the cause");
        for seq in seqs {
            self.isolate = Some(seq);
            let built = self.build_batch();
            self.isolate = None;
            if built == 0 {
                continue;
            }
            match self.rt.decode() {
                Ok(()) => {
                    self.commit_batch();
                    self.sample_all();
                }
                // fail_decode clears everything the sequence wrote.
                Err(reason) => self.fail_decode(seq, reason),
            }
        }
    }

    fn fail_decode(&mut self, seq: usize, reason: String) {
        tracing::warn!(seq, %reason, "decode failed for this request");
        // Free its cells too: the cache may be full.
        let _ = self.rt.truncate_seq(seq as i32, 0);
        self.kv[seq].clear();
        self.fail(seq, EngineError::Decode(reason));
    }

    fn commit_batch(&mut self) {
        for (seq, slot) in self.slots.iter_mut().enumerate() {
            let Some(a) = slot.as_mut().filter(|a| a.in_batch) else {
                continue;
            };
            if a.chunk > 0 {
                let end = a.prefilled + a.chunk;
                self.kv[seq].extend_from_slice(&a.prompt[a.prefilled..end]);
                a.prefilled = end;
                a.n_past += a.chunk as i32;
            } else {
                self.kv[seq].push(a.next_token);
                a.n_past += 1;
            }
        }
    }

    /// A parent whose prompt is now in the KV hands a copy to each waiting sibling, which
    /// then samples its first token from the same logits.
    fn fork_finished_prompts(&mut self) {
        for seq in 0..self.slots.len() {
            let Some(a) = self.slots[seq].as_mut() else {
                continue;
            };
            if a.is_prefilling() || a.logits_at.is_none() {
                continue;
            }
            let Fork::Parent(children) = std::mem::replace(&mut a.fork, Fork::Own) else {
                continue;
            };
            let (at, n_past) = (a.logits_at, a.n_past);
            for child in children {
                self.rt.copy_seq(seq as i32, child as i32);
                self.kv[child] = self.kv[seq].clone();
                self.kv_adapter[child] = self.kv_adapter[seq];
                if let Some(c) = self.slots[child].as_mut() {
                    c.fork = Fork::Own;
                    c.prefilled = c.prompt.len();
                    c.n_past = n_past;
                    c.logits_at = at;
                }
            }
        }
    }

    fn sample_all(&mut self) {
        self.fork_finished_prompts();
        for seq in 0..self.slots.len() {
            let Some(a) = self.slots[seq].as_mut() else {
                continue;
            };
            let Some(idx) = a.logits_at.take() else {
                continue;
            };
            let (drafted, draft_at) = (std::mem::take(&mut a.drafted), a.draft_at);
            let proposed = a.draft.first().copied();
            let mut accepted = 0;
            let mut at = idx;
            // Each accepted draft token moves the sequence one position on, where the logits
            // of the next are already computed.
            while let Some(token) = self.sample_one(seq, at) {
                let a = self.slots[seq]
                    .as_mut()
                    .expect("sample_one keeps a live slot");
                if accepted < drafted && a.draft[accepted] == token {
                    self.kv[seq].push(token);
                    a.n_past += 1;
                    at = draft_at + accepted as i32;
                    accepted += 1;
                    continue;
                }
                a.next_token = token;
                if drafted == 0 {
                    if let Some(first) = proposed {
                        a.drafter.shadow(first == token);
                    }
                }
                break;
            }
            if drafted > 0 {
                self.verified(seq, drafted, accepted);
            }
        }
    }

    /// Samples the token at batch entry `idx` for `seq` and sends its text. Returns it when
    /// the sequence goes on; None when it ended (end token, stop string, grammar, length,
    /// deadline, error or a gone client), its slot then freed.
    fn sample_one(&mut self, seq: usize, idx: i32) -> Option<i32> {
        let a = self.slots[seq].as_mut()?;
        let remaining = a
            .max_tokens
            .saturating_sub(a.generated)
            .min(self.cfg.n_ctx_per_seq.saturating_sub(a.n_past as u32));
        let sampled = match a.sampler.sample(self.rt.logits(idx), remaining) {
            Ok(s) => s,
            Err(e) => {
                self.fail(seq, EngineError::Grammar(e.to_string()));
                return None;
            }
        };
        let token = sampled.token;
        a.generated += 1;
        if a.first_token.is_none() {
            a.first_token = Some(Instant::now());
        }
        let grammar_done = match a.sampler.accept(token) {
            Ok(done) => done,
            Err(e) => {
                self.fail(seq, EngineError::Grammar(e.to_string()));
                return None;
            }
        };
        // Under a grammar the end token is its own decision: it ends the answer.
        if (!a.ignore_eos || a.sampler.has_grammar()) && self.rt.is_eog(token) {
            self.finish(seq, FinishReason::Stop, true);
            return None;
        }
        let logprob = sampled
            .logprobs
            .map(|(logprob, top)| token_logprob(&self.rt, token, logprob, top));
        self.piece.clear();
        self.rt.token_piece(token, &mut self.piece);
        let a = self.slots[seq].as_mut().expect("slot checked above");
        a.drafter.advance(&self.piece);
        let (delta, stopped) = a.text.push(token, &self.piece, logprob, &mut self.text);
        if let Some(delta) = delta {
            if a.events.send(Event::Delta(delta)).is_err() {
                self.cancel(seq);
                return None;
            }
        }
        if let Some(i) = stopped {
            self.finish(seq, FinishReason::StopSequence(i), false);
        } else if grammar_done {
            self.finish(seq, FinishReason::Stop, true);
        } else if a.generated >= a.max_tokens || a.n_past as u32 >= self.cfg.n_ctx_per_seq {
            self.finish(seq, FinishReason::Length, true);
        } else if a.deadline.is_some_and(|d| Instant::now() >= d) {
            a.span.in_scope(|| {
                tracing::info!(
                    seq,
                    completion_tokens = a.generated,
                    "generation deadline reached (max_request_secs): finished with length"
                )
            });
            self.finish(seq, FinishReason::Deadline, true);
        } else {
            return Some(token);
        }
        None
    }

    /// Sends the text held back for a possible stop string (when `flush`: no stop string
    /// matched) and the final event, then frees the slot.
    fn finish(&mut self, seq: usize, reason: FinishReason, flush: bool) {
        let Some(a) = self.slots[seq].as_mut() else {
            return;
        };
        if let Some(delta) = a.text.finish(flush) {
            let _ = a.events.send(Event::Delta(delta));
        }
        let predicted = a.drafter.prediction_len() as u32;
        let used = a.drafter.matched_prediction.min(predicted);
        let usage = TokenUsage {
            prompt_tokens: a.prompt.len() as u32,
            completion_tokens: a.generated,
            cached_tokens: a.cached as u32,
            queued: a.started.duration_since(a.received),
            accepted_prediction_tokens: used,
            rejected_prediction_tokens: predicted - used,
        };
        log_timings(seq, a, reason);
        let _ = a.events.send(Event::Done {
            finish_reason: reason,
            usage,
        });
        self.release(seq);
    }

    /// Ends the choice in `seq` with an error.
    fn fail(&mut self, seq: usize, error: EngineError) {
        if let Some(a) = &self.slots[seq] {
            let _span = a.span.enter();
            tracing::warn!(seq, %error, "generation failed");
            let _ = a.events.send(Event::Error(error));
        }
        self.release(seq);
    }

    /// The receiver was dropped (client disconnected): free the slot now. Its KV stays, like
    /// any finished request's, for prefix reuse.
    fn cancel(&mut self, seq: usize) {
        if let Some(a) = &self.slots[seq] {
            tracing::info!(
                seq,
                generated = a.generated,
                "client went away; request cancelled, slot freed"
            );
        }
        self.release(seq);
    }

    /// Frees the slot. Its KV stays for prefix reuse; `kv[seq]` already lists exactly the
    /// decoded tokens. Siblings still waiting for this slot's prompt cannot start: they end
    /// with an error.
    fn release(&mut self, seq: usize) {
        let taken = self.slots[seq].take().map(|a| a.fork);
        if taken == Some(Fork::Child) {
            // Its parent must not copy a prompt into a slot that may soon be someone else's.
            for a in self.slots.iter_mut().flatten() {
                if let Fork::Parent(children) = &mut a.fork {
                    children.retain(|&c| c != seq);
                }
            }
        }
        if let Some(Fork::Parent(children)) = taken {
            for child in children {
                self.fail(
                    child,
                    EngineError::Decode("the choice that was prefilling the prompt ended".into()),
                );
            }
        }
        self.last_used[seq] = self.admissions;
        self.publish(seq, Some(&self.kv[seq]));
    }
}

/// The API's view of a sampled token's probabilities: pieces for the token and its
/// alternatives.
fn token_logprob<R: Runtime>(
    rt: &R,
    token: i32,
    logprob: f32,
    top: Vec<(i32, f32)>,
) -> TokenLogprob {
    let piece = |t: i32| {
        let mut bytes = Vec::new();
        rt.token_piece(t, &mut bytes);
        bytes
    };
    TokenLogprob {
        token,
        bytes: piece(token),
        logprob,
        top: top
            .into_iter()
            .map(|(t, logprob)| TopLogprob {
                token: t,
                bytes: piece(t),
                logprob,
            })
            .collect(),
    }
}

/// One line per finished request, like llama-server's per-task timings: where its time went.
fn log_timings(seq: usize, a: &Active, reason: FinishReason) {
    let _span = a.span.enter();
    let now = Instant::now();
    let first = a.first_token.unwrap_or(now);
    let decode_secs = now.duration_since(first).as_secs_f64();
    let ms = |d: std::time::Duration| (d.as_secs_f64() * 1000.0).round();
    tracing::debug!(
        seq,
        prompt_tokens = a.prompt.len(),
        cached_tokens = a.cached,
        completion_tokens = a.generated,
        queued_ms = ms(a.started.duration_since(a.received)),
        prefill_ms = ms(first.duration_since(a.started)),
        decode_tok_s = ((a.generated.saturating_sub(1)) as f64 / decode_secs.max(1e-9)).round(),
        ?reason,
        "request finished"
    );
}

#[path = "scheduler_drafts.rs"]
mod drafts;

#[path = "scheduler_slots.rs"]
mod slots;

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
