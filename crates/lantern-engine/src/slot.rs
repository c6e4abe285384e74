//! What the scheduler keeps per request and per slot: the queued job, the running choice,
//! and the conversion of its tokens into text deltas that keep the token↔text link through
//! UTF-8 and stop-string holdback.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use smallvec::SmallVec;
use tokio::sync::mpsc::UnboundedSender;

use crate::detokenize::Utf8Stream;
use crate::draft::{Drafter, Predicted};
use crate::sampling::Sampler;
use crate::stop::StopMatcher;
use crate::{Delta, Event, TokenLogprob};

/// Counts a request as outstanding (running or queued) for as long as it lives: dropped with
/// the job when it leaves the queue, or with the last of its choices when they end.
pub(crate) struct Outstanding(pub Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The LoRA adapter a request runs under, as the scheduler sees it: sequences batch together
/// only with the same key, and KV computed under one key is never reused under another.
#[derive(Clone)]
pub(crate) struct AdapterRef {
    /// Nonzero, unique per loaded adapter (0 is the base model).
    pub key: u32,
    /// Requests of this adapter in slots, for metrics.
    pub running: Arc<std::sync::atomic::AtomicUsize>,
    /// The runtime's adapter (a llama.cpp one), applied to the context for its steps.
    pub handle: Arc<dyn std::any::Any + Send + Sync>,
}

/// One choice of a job: its own sampler (seed, grammar state) and its own event channel.
pub(crate) struct ChoiceJob {
    pub sampler: Sampler,
    pub events: UnboundedSender<Event>,
}

/// A tokenized request, ready for as many slots as it has choices.
pub(crate) struct Job {
    pub tokens: Vec<i32>,
    pub max_tokens: u32,
    pub stop: Vec<String>,
    pub ignore_eos: bool,
    pub choices: Vec<ChoiceJob>,
    pub outstanding: Option<Outstanding>,
    /// When the request was handed to the worker, for the timings logged at its end.
    pub received: Instant,
    /// Generation ends at this instant (max_request_secs).
    pub deadline: Option<Instant>,
    /// The request's tracing span (its request id): the worker's log lines about it use it.
    pub span: tracing::Span,
    /// None: the base model. The guard counts the request as using the adapter (it cannot be
    /// unloaded) until it ends.
    pub adapter: Option<(AdapterRef, Outstanding)>,
    /// The request's predicted output (drafts for speculative decoding).
    pub prediction: Option<Predicted>,
}

impl Job {
    /// Every choice's receiver is gone: nobody wants the answer.
    pub fn is_abandoned(&self) -> bool {
        self.choices.iter().all(|c| c.events.is_closed())
    }
}

/// Where a slot's choice stands relative to the prompt it shares with its siblings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fork {
    /// A single choice, or a choice that has its own copy of the prompt's KV.
    Own,
    /// Prefills the prompt for these sibling slots, which copy its KV when it is done.
    Parent(Vec<usize>),
    /// Waits for the parent slot to finish the prompt.
    Child,
}

/// A choice occupying a slot.
pub(crate) struct Active {
    pub prompt: Arc<[i32]>,
    /// Prompt tokens already in the KV cache.
    pub prefilled: usize,
    /// Position of the next token to decode (= tokens in the KV cache).
    pub n_past: i32,
    pub generated: u32,
    pub max_tokens: u32,
    pub deadline: Option<Instant>,
    pub span: tracing::Span,
    pub ignore_eos: bool,
    pub sampler: Sampler,
    /// Prompt tokens whose KV was reused from the slot's previous request.
    pub cached: usize,
    /// Last sampled token, decoded in the next step.
    pub next_token: i32,
    /// Index of this slot's logits in the current batch.
    pub logits_at: Option<i32>,
    /// Prompt tokens added to the current batch (0 while generating).
    pub chunk: usize,
    pub in_batch: bool,
    pub fork: Fork,
    pub admitted: u64,
    pub received: Instant,
    pub started: Instant,
    pub first_token: Option<Instant>,
    pub text: TextOut,
    pub events: UnboundedSender<Event>,
    pub _outstanding: Option<Arc<Outstanding>>,
    pub adapter: Option<AdapterRef>,
    /// Holds the adapter in use, and counts the request as running under it.
    pub _adapter_use: Option<Arc<(Outstanding, Outstanding)>>,
    pub drafter: Drafter,
    /// Tokens proposed to follow `next_token`; the first `drafted` are in the current batch,
    /// from batch index `draft_at` on.
    pub draft: Vec<i32>,
    pub drafted: usize,
    pub draft_at: i32,
}

impl Active {
    pub fn is_prefilling(&self) -> bool {
        self.prefilled < self.prompt.len()
    }

    /// The batch group (adapter key) this choice decodes in.
    pub fn adapter_key(&self) -> u32 {
        self.adapter.as_ref().map_or(0, |a| a.key)
    }

    /// Takes part in batches: not waiting for a sibling's prompt.
    pub fn is_runnable(&self) -> bool {
        self.fork != Fork::Child
    }
}

/// A generated token whose text has not been sent yet.
struct PendingToken {
    /// Byte offsets of its text within everything this choice decoded.
    start: usize,
    end: usize,
    token: i32,
    logprob: Option<TokenLogprob>,
}

/// Generated tokens → deltas: whole UTF-8 characters, stop strings held back and removed,
/// each token reported with the text that completes it.
pub(crate) struct TextOut {
    utf8: Utf8Stream,
    stop: StopMatcher,
    pending: VecDeque<PendingToken>,
    /// Bytes decoded so far, and bytes sent.
    produced: usize,
    sent: usize,
}

impl TextOut {
    pub fn new(stop: Vec<String>) -> Self {
        TextOut {
            utf8: Utf8Stream::default(),
            stop: StopMatcher::new(stop),
            pending: VecDeque::with_capacity(4),
            produced: 0,
            sent: 0,
        }
    }

    /// Adds a token and its piece; `scratch` is reused text storage. Returns the delta that
    /// is now safe to send, and which stop string matched, if one did (generation must end).
    pub fn push(
        &mut self,
        token: i32,
        piece: &[u8],
        logprob: Option<TokenLogprob>,
        scratch: &mut String,
    ) -> (Option<Delta>, Option<u32>) {
        scratch.clear();
        self.utf8.push(piece, scratch);
        let start = self.produced;
        self.produced += scratch.len();
        self.pending.push_back(PendingToken {
            start,
            end: self.produced,
            token,
            logprob,
        });
        let mut out = String::new();
        let stopped = self.stop.push(scratch, &mut out);
        self.sent += out.len();
        if stopped.is_some() {
            // Tokens that contributed text before the match are reported; the rest is cut.
            let cut = self.sent;
            return (self.release(out, |t| t.start < cut), stopped);
        }
        if out.is_empty() {
            return (None, None);
        }
        let sent = self.sent;
        (self.release(out, |t| t.end <= sent), None)
    }

    /// Ends the choice. `flush`: no stop string matched, so held-back text is sent.
    pub fn finish(&mut self, flush: bool) -> Option<Delta> {
        self.utf8.finish();
        let mut out = String::new();
        if flush {
            self.stop.finish(&mut out);
            self.sent += out.len();
        }
        let sent = self.sent;
        self.release(out, |t| t.start < sent || t.end <= sent)
    }

    fn release(&mut self, text: String, include: impl Fn(&PendingToken) -> bool) -> Option<Delta> {
        let mut tokens = SmallVec::new();
        let mut logprobs = Vec::new();
        while let Some(t) = self.pending.front() {
            if !include(t) {
                break;
            }
            let t = self.pending.pop_front().expect("front exists");
            tokens.push(t.token);
            logprobs.extend(t.logprob);
        }
        if text.is_empty() && tokens.is_empty() {
            return None;
        }
        Some(Delta {
            text,
            tokens,
            logprobs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(out: &mut TextOut, pieces: &[(i32, &[u8])]) -> (Vec<Delta>, bool) {
        let mut scratch = String::new();
        let mut deltas = Vec::new();
        for &(tok, piece) in pieces {
            let (d, stopped) = out.push(tok, piece, None, &mut scratch);
            deltas.extend(d);
            if stopped.is_some() {
                return (deltas, true);
            }
        }
        deltas.extend(out.finish(true));
        (deltas, false)
    }

    #[test]
    fn split_character_is_reported_with_the_token_that_completes_it() {
        let e = "é".as_bytes();
        let mut out = TextOut::new(vec![]);
        let (deltas, _) = feed(&mut out, &[(1, b"a"), (2, &e[..1]), (3, &e[1..])]);
        assert_eq!(deltas.len(), 2);
        assert_eq!(
            (deltas[0].text.as_str(), &deltas[0].tokens[..]),
            ("a", &[1][..])
        );
        assert_eq!(
            (deltas[1].text.as_str(), &deltas[1].tokens[..]),
            ("é", &[2, 3][..])
        );
    }

    #[test]
    fn tokens_inside_a_stop_string_are_not_reported() {
        let mut out = TextOut::new(vec!["END".into()]);
        let (deltas, stopped) = feed(&mut out, &[(1, b"ok "), (2, b"E"), (3, b"ND"), (4, b"x")]);
        assert!(stopped);
        let text: String = deltas.iter().map(|d| d.text.as_str()).collect();
        let tokens: Vec<i32> = deltas
            .iter()
            .flat_map(|d| d.tokens.iter().copied())
            .collect();
        assert_eq!(text, "ok ");
        assert_eq!(tokens, [1]);
    }

    #[test]
    fn held_back_text_keeps_its_tokens_until_released() {
        let mut out = TextOut::new(vec!["END".into()]);
        let mut scratch = String::new();
        let (d, _) = out.push(1, b"a E", None, &mut scratch);
        // "a " is safe, "E" may start the stop string: token 1 waits with it.
        assert_eq!(d.as_ref().map(|d| d.text.as_str()), Some("a "));
        assert!(d.unwrap().tokens.is_empty());
        let (d, _) = out.push(2, b"x", None, &mut scratch);
        let d = d.unwrap();
        assert_eq!((d.text.as_str(), &d.tokens[..]), ("Ex", &[1, 2][..]));
    }
}
