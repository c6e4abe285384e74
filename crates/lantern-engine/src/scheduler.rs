//! Continuous batching. Every step decodes one token for each generating sequence and, in the
//! same batch, prompt chunks of newly admitted requests (chunked prefill), then samples.
//! Requests are admitted between steps. A finished sequence's KV stays in its slot, and a new
//! request goes to the idle slot holding the longest prefix of its prompt, so only the rest is
//! prefilled (a multi-turn chat prefills only the new turn). The scheduler is generic over
//! [`Runtime`] so it can be tested without llama.cpp.

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use crate::detokenize::Utf8Stream;
use crate::stop::StopMatcher;
use crate::{EngineError, Event, FinishReason, SamplingParams, TokenUsage};

/// The model operations the scheduler needs. Tokens and sequence ids are llama.cpp's `i32`s.
pub(crate) trait Runtime {
    type Sampler;
    fn new_sampler(&self, params: &SamplingParams) -> Self::Sampler;
    fn clear_batch(&mut self);
    fn add_to_batch(&mut self, token: i32, pos: i32, seq: i32, logits: bool);
    fn decode(&mut self) -> Result<(), String>;
    /// Picks (and accepts) the next token from the logits at `batch_index`.
    fn sample(&mut self, sampler: &mut Self::Sampler, batch_index: i32) -> i32;
    /// Drops the KV of `seq` from position `from` on.
    fn truncate_seq(&mut self, seq: i32, from: i32);
    fn is_eog(&self, token: i32) -> bool;
    fn token_piece(&self, token: i32, out: &mut Vec<u8>);
}

/// Counts a request as outstanding (running or queued) for as long as it lives: dropped with
/// the job when it leaves the queue, or with the slot's request when it ends.
pub(crate) struct Outstanding(pub std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The cached tokens of each idle slot (empty while a slot is busy), shared with the router
/// that picks a replica for a new prompt. Written only when a slot is taken or freed.
pub(crate) type IdlePrefixes = std::sync::Arc<std::sync::Mutex<Vec<Vec<i32>>>>;

/// Length of the common prefix of two token sequences.
pub(crate) fn common_prefix(a: &[i32], b: &[i32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A tokenized request, ready for a slot.
pub(crate) struct Job {
    pub tokens: Vec<i32>,
    pub sampling: SamplingParams,
    pub max_tokens: u32,
    pub stop: Vec<String>,
    pub ignore_eos: bool,
    pub events: UnboundedSender<Event>,
    pub outstanding: Option<Outstanding>,
    /// When the request was handed to the worker, for the timings logged at its end.
    pub received: Instant,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct SchedulerConfig {
    /// Sequences decoded together (`--parallel`).
    pub n_slots: usize,
    pub n_ctx_per_seq: u32,
    /// Most tokens in one decode call.
    pub max_batch_tokens: usize,
}

/// A request occupying a slot.
struct Active<S> {
    prompt: Vec<i32>,
    /// Prompt tokens already in the KV cache.
    prefilled: usize,
    /// Position of the next token to decode (= tokens in the KV cache).
    n_past: i32,
    generated: u32,
    max_tokens: u32,
    ignore_eos: bool,
    sampler: S,
    /// Prompt tokens whose KV was reused from the slot's previous request.
    cached: usize,
    /// Last sampled token, decoded in the next step.
    next_token: i32,
    /// Index of this slot's logits in the current batch.
    logits_at: Option<i32>,
    /// Prompt tokens added to the current batch (0 while generating).
    chunk: usize,
    in_batch: bool,
    admitted: u64,
    received: Instant,
    started: Instant,
    first_token: Option<Instant>,
    utf8: Utf8Stream,
    stop: StopMatcher,
    events: UnboundedSender<Event>,
    _outstanding: Option<Outstanding>,
}

impl<S> Active<S> {
    fn is_prefilling(&self) -> bool {
        self.prefilled < self.prompt.len()
    }
}

pub(crate) struct Scheduler<R: Runtime> {
    rt: R,
    cfg: SchedulerConfig,
    slots: Vec<Option<Active<R::Sampler>>>,
    /// Tokens whose KV each slot holds, at positions 0.., kept after its request ends.
    kv: Vec<Vec<i32>>,
    /// When each slot last finished a request, to reuse the least recently used one.
    last_used: Vec<u64>,
    waiting: VecDeque<Job>,
    admissions: u64,
    idle_prefixes: Option<IdlePrefixes>,
    // Scratch buffers reused every token, so the decode loop does not allocate for them.
    piece: Vec<u8>,
    text: String,
}

impl<R: Runtime> Scheduler<R> {
    pub fn new(rt: R, cfg: SchedulerConfig) -> Self {
        Scheduler {
            rt,
            cfg,
            slots: (0..cfg.n_slots).map(|_| None).collect(),
            kv: vec![Vec::new(); cfg.n_slots],
            last_used: vec![0; cfg.n_slots],
            waiting: VecDeque::new(),
            admissions: 0,
            idle_prefixes: None,
            piece: Vec::with_capacity(64),
            text: String::with_capacity(64),
        }
    }

    /// Publishes idle slots' cached tokens to `table` (one entry per slot).
    pub fn publish_idle_prefixes(&mut self, table: IdlePrefixes) {
        self.idle_prefixes = Some(table);
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
        self.reap_cancelled();
        self.admit();
        loop {
            if !self.build_batch() {
                return;
            }
            match self.rt.decode() {
                Ok(()) => break,
                Err(reason) => self.recover_from_failed_decode(reason),
            }
        }
        self.commit_batch();
        self.sample_all();
    }

    fn reap_cancelled(&mut self) {
        self.waiting.retain(|job| !job.events.is_closed());
        for seq in 0..self.slots.len() {
            if self.slots[seq]
                .as_ref()
                .is_some_and(|a| a.events.is_closed())
            {
                self.cancel(seq);
            }
        }
    }

    /// The idle slot whose KV shares the longest prefix with `prompt` (least recently used
    /// among equals), and the length of that prefix.
    fn pick_slot(&self, prompt: &[i32]) -> Option<(usize, usize)> {
        (0..self.slots.len())
            .filter(|&seq| self.slots[seq].is_none())
            .map(|seq| (seq, common_prefix(&self.kv[seq], prompt)))
            .max_by_key(|&(seq, common)| (common, Reverse(self.last_used[seq]), Reverse(seq)))
    }

    fn admit(&mut self) {
        while !self.waiting.is_empty() {
            let Some((seq, common)) = self.pick_slot(&self.waiting[0].tokens) else {
                return;
            };
            let job = self.waiting.pop_front().expect("checked non-empty");
            // The last prompt token is always decoded again: its logits start generation.
            let reuse = common.min(job.tokens.len() - 1);
            self.rt.truncate_seq(seq as i32, reuse as i32);
            self.kv[seq].truncate(reuse);
            self.publish(seq, None);
            self.admissions += 1;
            let sampler = self.rt.new_sampler(&job.sampling);
            self.slots[seq] = Some(Active {
                prompt: job.tokens,
                prefilled: reuse,
                n_past: reuse as i32,
                cached: reuse,
                generated: 0,
                max_tokens: job.max_tokens,
                ignore_eos: job.ignore_eos,
                sampler,
                next_token: 0,
                logits_at: None,
                chunk: 0,
                in_batch: false,
                admitted: self.admissions,
                received: job.received,
                started: Instant::now(),
                first_token: None,
                utf8: Utf8Stream::default(),
                stop: StopMatcher::new(job.stop),
                events: job.events,
                _outstanding: job.outstanding,
            });
        }
    }

    /// Fills the batch: first one token per generating sequence, then prompt chunks in
    /// admission order within the remaining budget. Returns false if there is nothing to do.
    fn build_batch(&mut self) -> bool {
        self.rt.clear_batch();
        let mut n = 0usize;
        for (seq, slot) in self.slots.iter_mut().enumerate() {
            let Some(a) = slot else { continue };
            a.logits_at = None;
            a.chunk = 0;
            a.in_batch = false;
            if !a.is_prefilling() {
                self.rt
                    .add_to_batch(a.next_token, a.n_past, seq as i32, true);
                a.logits_at = Some(n as i32);
                a.in_batch = true;
                n += 1;
            }
        }
        let mut prefilling: Vec<(u64, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(seq, s)| {
                s.as_ref()
                    .filter(|a| a.is_prefilling())
                    .map(|a| (a.admitted, seq))
            })
            .collect();
        prefilling.sort_unstable();
        for (_, seq) in prefilling {
            let budget = self.cfg.max_batch_tokens.saturating_sub(n);
            if budget == 0 {
                break;
            }
            let a = self.slots[seq]
                .as_mut()
                .expect("prefilling slot is occupied");
            let take = budget.min(a.prompt.len() - a.prefilled);
            for i in 0..take {
                let idx = a.prefilled + i;
                let last = idx + 1 == a.prompt.len();
                self.rt
                    .add_to_batch(a.prompt[idx], a.n_past + i as i32, seq as i32, last);
                if last {
                    a.logits_at = Some(n as i32);
                }
                n += 1;
            }
            a.chunk = take;
            a.in_batch = true;
        }
        n > 0
    }

    /// A decode failed (typically no KV space). Roll back what this batch wrote, fail the most
    /// recently admitted request in it, and let the caller retry the rest.
    fn recover_from_failed_decode(&mut self, reason: String) {
        let mut newest: Option<(u64, usize)> = None;
        for seq in 0..self.slots.len() {
            if let Some(a) = self.slots[seq].as_ref().filter(|a| a.in_batch) {
                self.rt.truncate_seq(seq as i32, a.n_past);
                if newest.is_none_or(|(adm, _)| a.admitted > adm) {
                    newest = Some((a.admitted, seq));
                }
            }
        }
        if let Some((_, seq)) = newest {
            tracing::warn!(seq, %reason, "decode failed; failing the newest request in the batch");
            if let Some(a) = &self.slots[seq] {
                let _ = a.events.send(Event::Error(EngineError::Decode(reason)));
            }
            // Free its cells too: the cache may be full.
            self.rt.truncate_seq(seq as i32, 0);
            self.kv[seq].clear();
            self.release(seq);
        }
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

    fn sample_all(&mut self) {
        for seq in 0..self.slots.len() {
            let Some(a) = self.slots[seq].as_mut() else {
                continue;
            };
            let Some(idx) = a.logits_at else { continue };
            let token = self.rt.sample(&mut a.sampler, idx);
            a.generated += 1;
            if a.first_token.is_none() {
                a.first_token = Some(Instant::now());
            }
            if !a.ignore_eos && self.rt.is_eog(token) {
                self.finish(seq, FinishReason::Stop, true);
                continue;
            }
            self.piece.clear();
            self.rt.token_piece(token, &mut self.piece);
            self.text.clear();
            a.utf8.push(&self.piece, &mut self.text);
            let mut out = String::new();
            let stopped = a.stop.push(&self.text, &mut out);
            if !out.is_empty() && a.events.send(Event::Text(out)).is_err() {
                self.cancel(seq);
                continue;
            }
            if stopped {
                self.finish(seq, FinishReason::Stop, false);
            } else if a.generated >= a.max_tokens || a.n_past as u32 >= self.cfg.n_ctx_per_seq {
                self.finish(seq, FinishReason::Length, true);
            } else {
                a.next_token = token;
            }
        }
    }

    /// Sends the text held back for a possible stop string (when `flush`: no stop string
    /// matched) and the final event, then frees the slot.
    fn finish(&mut self, seq: usize, reason: FinishReason, flush: bool) {
        let Some(a) = self.slots[seq].as_mut() else {
            return;
        };
        a.utf8.finish();
        if flush {
            let mut out = String::new();
            a.stop.finish(&mut out);
            if !out.is_empty() {
                let _ = a.events.send(Event::Text(out));
            }
        }
        let usage = TokenUsage {
            prompt_tokens: a.prompt.len() as u32,
            completion_tokens: a.generated,
            cached_tokens: a.cached as u32,
        };
        log_timings(seq, a, reason);
        let _ = a.events.send(Event::Done {
            finish_reason: reason,
            usage,
        });
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
    /// decoded tokens.
    fn release(&mut self, seq: usize) {
        self.slots[seq] = None;
        self.last_used[seq] = self.admissions;
        self.publish(seq, Some(&self.kv[seq]));
    }
}

/// One line per finished request, like llama-server's per-task timings: where its time went.
fn log_timings<S>(seq: usize, a: &Active<S>, reason: FinishReason) {
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

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
