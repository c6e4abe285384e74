//! Scheduler tests against a fake model: token `t` is followed by `t + 1`, token 99 ends
//! generation, and token `t` reads as "t ".

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::*;
use crate::sampling::Sampler;
use crate::scheduler::{common_prefix, IdlePrefixes};
use crate::slot::{ChoiceJob, Outstanding};
use crate::{Delta, SamplingParams};

const EOG: i32 = 99;
const VOCAB: usize = 128;

#[derive(Default)]
struct Fake {
    batch: Vec<(i32, i32, i32, bool)>,
    /// Every decoded batch, for assertions.
    history: Vec<Vec<(i32, i32, i32, bool)>>,
    truncations: Vec<(i32, i32)>,
    copies: Vec<(i32, i32)>,
    /// Logits of the last decoded batch, per entry (empty where none were asked for).
    rows: Vec<Vec<f32>>,
    /// Fail every decode whose batch is larger than this.
    fail_above: Option<usize>,
    /// Fail every decode whose batch holds this token.
    fail_on_token: Option<i32>,
    /// Refuse partial KV removal, as llama.cpp does for Mamba, RWKV and hybrid models.
    recurrent: bool,
    /// The adapter key applied now; under key k, token t is followed by t + 1 + k.
    applied: u32,
    /// Every adapter switch, in order.
    adapters: Vec<u32>,
    /// The adapter applied to each decoded batch (parallel to `history`).
    batch_adapters: Vec<u32>,
    /// The tokens each sequence's KV holds, by position: a decode must continue exactly
    /// where its sequence ends, as llama.cpp requires.
    cells: Vec<Vec<i32>>,
}

impl crate::draft::Tokenizer for Fake {
    /// The inverse of the pieces: "4 5 " is tokens 4 and 5.
    fn tokenize(&self, text: &[u8], out: &mut Vec<i32>) {
        let text = String::from_utf8_lossy(text);
        out.extend(
            text.split_terminator(' ')
                .filter_map(|t| t.parse::<i32>().ok()),
        );
    }
    fn token_piece(&self, token: i32, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("{token} ").as_bytes());
    }
}

impl Runtime for Fake {
    fn clear_batch(&mut self) {
        self.batch.clear();
    }
    fn add_to_batch(&mut self, token: i32, pos: i32, seq: i32, logits: bool) {
        self.batch.push((token, pos, seq, logits));
    }
    fn decode(&mut self) -> Result<(), String> {
        if self
            .fail_above
            .is_some_and(|limit| self.batch.len() > limit)
        {
            return Err("no KV slot".into());
        }
        if let Some(poison) = self.fail_on_token {
            if self.batch.iter().any(|t| t.0 == poison) {
                return Err("cannot decode this token".into());
            }
        }
        for &(token, pos, seq, _) in &self.batch {
            let seq = seq as usize;
            if self.cells.len() <= seq {
                self.cells.resize(seq + 1, Vec::new());
            }
            let cells = &mut self.cells[seq];
            assert_eq!(
                pos as usize,
                cells.len(),
                "sequence {seq} decoded at position {pos} but holds {} cells",
                cells.len()
            );
            cells.push(token);
        }
        self.history.push(self.batch.clone());
        self.batch_adapters.push(self.applied);
        let shift = self.applied as i32;
        // The model: token t is followed by t + 1 (clearly the likeliest), t + 2 next.
        self.rows = self
            .batch
            .iter()
            .map(|&(token, _, _, logits)| {
                if !logits {
                    return Vec::new();
                }
                let mut row = vec![0.0; VOCAB];
                row[(token + 1 + shift) as usize % VOCAB] = 10.0;
                row[(token + 2 + shift) as usize % VOCAB] = 5.0;
                row
            })
            .collect();
        Ok(())
    }
    fn logits(&self, idx: i32) -> &[f32] {
        let row = &self.rows[idx as usize];
        assert!(!row.is_empty(), "sampled a row without logits");
        row
    }
    fn truncate_seq(&mut self, seq: i32, from: i32) -> bool {
        self.truncations.push((seq, from));
        // A recurrent model keeps one state per sequence: only clearing it all works.
        let done = !self.recurrent || from == 0;
        if done {
            if let Some(cells) = self.cells.get_mut(seq as usize) {
                cells.truncate(from as usize);
            }
        }
        done
    }
    fn copy_seq(&mut self, src: i32, dst: i32) {
        self.copies.push((src, dst));
        let held = self.cells.get(src as usize).cloned().unwrap_or_default();
        if self.cells.len() <= dst as usize {
            self.cells.resize(dst as usize + 1, Vec::new());
        }
        self.cells[dst as usize] = held;
    }
    fn is_eog(&self, token: i32) -> bool {
        token == EOG
    }
    fn set_adapter(&mut self, adapter: Option<&AdapterRef>) {
        self.applied = adapter.map_or(0, |a| a.key);
        self.adapters.push(self.applied);
    }
    fn can_rewind(&self) -> bool {
        !self.recurrent
    }
}

fn scheduler(n_slots: usize, max_batch_tokens: usize) -> Scheduler<Fake> {
    Scheduler::new(
        Fake::default(),
        SchedulerConfig {
            n_slots,
            n_ctx_per_seq: 64,
            max_batch_tokens,
            // Drafting has its own tests; these check the plain schedule.
            spec: crate::SpecConfig {
                mode: crate::SpecMode::Off,
                ..crate::SpecConfig::default()
            },
        },
    )
}

fn greedy() -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        ..SamplingParams::default()
    }
}

/// A job with one choice per sampler.
fn job_with(
    tokens: Vec<i32>,
    max_tokens: u32,
    stop: &[&str],
    samplers: Vec<Sampler>,
) -> (Job, Vec<UnboundedReceiver<Event>>) {
    let mut receivers = Vec::new();
    let choices = samplers
        .into_iter()
        .map(|sampler| {
            let (tx, rx) = unbounded_channel();
            receivers.push(rx);
            ChoiceJob {
                sampler,
                events: tx,
            }
        })
        .collect();
    let job = Job {
        tokens,
        max_tokens,
        stop: stop.iter().map(|s| s.to_string()).collect(),
        ignore_eos: false,
        choices,
        outstanding: None,
        received: std::time::Instant::now(),
        deadline: None,
        span: tracing::Span::none(),
        adapter: None,
        prediction: None,
    };
    (job, receivers)
}

fn job(tokens: Vec<i32>, max_tokens: u32, stop: &[&str]) -> (Job, UnboundedReceiver<Event>) {
    let (job, mut rx) = job_with(
        tokens,
        max_tokens,
        stop,
        vec![Sampler::new(&greedy(), None, None, 0)],
    );
    (job, rx.remove(0))
}

fn run_until_idle(s: &mut Scheduler<Fake>) {
    for _ in 0..1000 {
        if s.is_idle() {
            return;
        }
        s.step();
    }
    panic!("scheduler did not go idle");
}

fn collect(rx: &mut UnboundedReceiver<Event>) -> (String, Option<Event>) {
    let mut text = String::new();
    while let Ok(ev) = rx.try_recv() {
        match ev {
            Event::Delta(d) => text.push_str(&d.text),
            other => return (text, Some(other)),
        }
    }
    (text, None)
}

#[test]
fn generates_until_max_tokens() {
    let mut s = scheduler(2, 16);
    let (j, mut rx) = job(vec![1, 2, 3], 4, &[]);
    s.enqueue(j);
    run_until_idle(&mut s);
    let (text, done) = collect(&mut rx);
    assert_eq!(text, "4 5 6 7 ");
    let Some(Event::Done {
        finish_reason,
        mut usage,
    }) = done
    else {
        panic!("expected the end of the choice, got {done:?}");
    };
    assert_eq!(finish_reason, FinishReason::Length);
    // Admitted in the first step: it waited no longer than the test took.
    assert!(usage.queued < std::time::Duration::from_secs(5));
    usage.queued = Default::default();
    assert_eq!(
        usage,
        TokenUsage {
            prompt_tokens: 3,
            completion_tokens: 4,
            cached_tokens: 0,
            ..Default::default()
        }
    );
    // The prompt went in one batch with logits only on its last token.
    assert_eq!(
        s.runtime().history[0],
        vec![(1, 0, 0, false), (2, 1, 0, false), (3, 2, 0, true)]
    );
}

#[test]
fn a_shared_prefix_is_reused_and_reported() {
    let mut s = scheduler(2, 16);
    let (j, mut rx) = job(vec![1, 2, 3], 2, &[]);
    s.enqueue(j);
    run_until_idle(&mut s);
    // Slot 0 now holds [1, 2, 3, 4]: the prompt plus the first generated token (the second was
    // sampled but never decoded).
    collect(&mut rx);
    let (j, mut rx) = job(vec![1, 2, 3, 4, 9], 1, &[]);
    s.enqueue(j);
    s.step();
    assert_eq!(s.runtime().history.last().unwrap(), &vec![(9, 4, 0, true)]);
    run_until_idle(&mut s);
    match collect(&mut rx).1 {
        Some(Event::Done { usage, .. }) => assert_eq!(usage.cached_tokens, 4),
        other => panic!("{other:?}"),
    }
    // An identical prompt still decodes its last token to get fresh logits.
    let (j, mut rx) = job(vec![1, 2, 3, 4, 9], 1, &[]);
    s.enqueue(j);
    s.step();
    assert_eq!(s.runtime().history.last().unwrap(), &vec![(9, 4, 0, true)]);
    run_until_idle(&mut s);
    assert_eq!(collect(&mut rx).0, "10 ");
}

#[test]
fn unrelated_prompt_takes_the_least_recently_used_slot_and_clears_it() {
    let mut s = scheduler(2, 16);
    for p in [vec![1, 2], vec![5, 6]] {
        let (j, _rx) = job(p, 1, &[]);
        s.enqueue(j);
        run_until_idle(&mut s);
    }
    // Both slots hold an unrelated prefix; the one that finished first (slot 0) is reused
    // and cleared, and slot 1 keeps its cache.
    let before = s.runtime().truncations.len();
    let (j, _rx) = job(vec![40, 41], 1, &[]);
    s.enqueue(j);
    s.step();
    let last = s.runtime().history.last().unwrap();
    assert!(last.iter().all(|t| t.1 < 2 && t.0 >= 40));
    assert!(
        last.iter().all(|t| t.2 == 0),
        "the least recently used slot: {last:?}"
    );
    assert_eq!(&s.runtime().truncations[before..], &[(0, 0)]);
}

#[test]
fn recurrent_model_prefills_from_zero_when_a_partial_removal_is_refused() {
    let mut s = scheduler(1, 16);
    s.runtime_mut().recurrent = true;
    let (j, mut rx) = job(vec![1, 2, 3], 2, &[]);
    s.enqueue(j);
    run_until_idle(&mut s);
    collect(&mut rx);
    // Same prefix: a transformer would reuse 4 cells; a recurrent state cannot be rewound.
    let (j, mut rx) = job(vec![1, 2, 3, 4, 9], 2, &[]);
    s.enqueue(j);
    s.step();
    let positions: Vec<i32> = s
        .runtime()
        .history
        .last()
        .unwrap()
        .iter()
        .map(|t| t.1)
        .collect();
    assert_eq!(
        positions,
        [0, 1, 2, 3, 4],
        "the whole prompt again, from position 0"
    );
    run_until_idle(&mut s);
    let (text, done) = collect(&mut rx);
    assert_eq!(text, "10 11 ");
    assert!(
        matches!(done, Some(Event::Done { usage, .. }) if usage.cached_tokens == 0),
        "{done:?}"
    );
}

#[test]
fn end_of_generation_token_stops() {
    let mut s = scheduler(1, 16);
    let (j, mut rx) = job(vec![96], 100, &[]);
    s.enqueue(j);
    run_until_idle(&mut s);
    let (text, done) = collect(&mut rx);
    assert_eq!(text, "97 98 ");
    assert!(matches!(
        done,
        Some(Event::Done {
            finish_reason: FinishReason::Stop,
            ..
        })
    ));
}

#[test]
fn ignore_eos_generates_past_the_end_token() {
    let mut s = scheduler(1, 16);
    let (mut j, mut rx) = job(vec![97], 4, &[]);
    j.ignore_eos = true;
    s.enqueue(j);
    run_until_idle(&mut s);
    let (text, done) = collect(&mut rx);
    assert_eq!(text, "98 99 100 101 ");
    assert!(matches!(
        done,
        Some(Event::Done {
            finish_reason: FinishReason::Length,
            ..
        })
    ));
}

#[test]
fn stop_string_across_tokens_is_removed() {
    let mut s = scheduler(1, 16);
    let (j, mut rx) = job(vec![10], 50, &["2 13"]);
    s.enqueue(j);
    run_until_idle(&mut s);
    let (text, done) = collect(&mut rx);
    assert_eq!(text, "11 1");
    assert!(matches!(
        done,
        Some(Event::Done {
            finish_reason: FinishReason::StopSequence(0),
            ..
        })
    ));
}

#[test]
fn new_request_joins_a_running_batch() {
    let mut s = scheduler(2, 16);
    let (a, mut rx_a) = job(vec![1], 10, &[]);
    s.enqueue(a);
    s.step();
    s.step();
    let (b, mut rx_b) = job(vec![50, 51], 2, &[]);
    s.enqueue(b);
    s.step();
    // The third step decodes A's next token and B's whole prompt together.
    let third = &s.runtime().history[2];
    assert_eq!(third[0].2, 0);
    assert_eq!(&third[1..], &[(50, 0, 1, false), (51, 1, 1, true)]);
    run_until_idle(&mut s);
    assert_eq!(collect(&mut rx_a).0, "2 3 4 5 6 7 8 9 10 11 ");
    assert_eq!(collect(&mut rx_b).0, "52 53 ");
}

#[test]
fn long_prompt_is_prefilled_in_chunks_while_others_decode() {
    let mut s = scheduler(2, 4);
    let (a, mut rx_a) = job(vec![1], 20, &[]);
    s.enqueue(a);
    s.step();
    let (b, mut rx_b) = job((20..30).collect(), 1, &[]);
    s.enqueue(b);
    s.step();
    s.step();
    s.step();
    let h = &s.runtime().history;
    // Every step after admission carries A's decode token plus at most 3 prompt tokens of B.
    for batch in &h[1..4] {
        assert_eq!(batch[0].2, 0, "A decodes every step");
        assert!(batch.len() <= 4);
    }
    let b_positions: Vec<i32> = h[1..4]
        .iter()
        .flat_map(|b| b.iter().filter(|t| t.2 == 1).map(|t| t.1))
        .collect();
    assert_eq!(b_positions, (0..9).collect::<Vec<_>>());
    run_until_idle(&mut s);
    assert_eq!(collect(&mut rx_b).0, "30 ");
    assert!(matches!(
        collect(&mut rx_a).1,
        Some(Event::Done {
            finish_reason: FinishReason::Length,
            ..
        })
    ));
}

#[test]
fn queued_requests_wait_for_a_slot_and_complete() {
    let mut s = scheduler(2, 16);
    let mut rxs = Vec::new();
    for i in 0..5 {
        let (j, rx) = job(vec![i * 10], 3, &[]);
        s.enqueue(j);
        rxs.push(rx);
    }
    s.step();
    assert_eq!(s.runtime().history[0].len(), 2, "only two slots");
    run_until_idle(&mut s);
    for (i, rx) in rxs.iter_mut().enumerate() {
        let base = i as i32 * 10;
        let expected = format!("{} {} {} ", base + 1, base + 2, base + 3);
        assert_eq!(collect(rx).0, expected);
    }
}

#[test]
fn outstanding_count_falls_as_requests_finish_or_are_abandoned() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let count = Arc::new(AtomicUsize::new(0));
    let mut s = scheduler(1, 16);
    let mut receivers = Vec::new();
    for _ in 0..3 {
        let (mut j, rx) = job(vec![1], 3, &[]);
        count.fetch_add(1, Ordering::Relaxed);
        j.outstanding = Some(Outstanding(count.clone()));
        s.enqueue(j);
        receivers.push(rx);
    }
    s.step();
    assert_eq!(count.load(Ordering::Relaxed), 3, "one running, two queued");
    drop(receivers.pop());
    s.step();
    assert_eq!(
        count.load(Ordering::Relaxed),
        2,
        "the abandoned queued job is gone"
    );
    run_until_idle(&mut s);
    assert_eq!(count.load(Ordering::Relaxed), 0);
}

#[test]
fn dropped_receiver_frees_the_slot_by_the_next_step() {
    let mut s = scheduler(1, 16);
    let (a, rx_a) = job(vec![1], 50, &[]);
    s.enqueue(a);
    s.step();
    s.step();
    drop(rx_a);
    let before = s.runtime().truncations.len();
    let (b, mut rx_b) = job(vec![60], 2, &[]);
    s.enqueue(b);
    s.step();
    // A is gone and its KV removed; B got the slot in the same step.
    assert!(s.runtime().truncations[before..].contains(&(0, 0)));
    assert_eq!(s.runtime().history.last().unwrap(), &vec![(60, 0, 0, true)]);
    run_until_idle(&mut s);
    assert_eq!(collect(&mut rx_b).0, "61 62 ");
}

#[test]
fn failed_decode_fails_the_request_that_caused_it_not_the_newest() {
    let mut s = scheduler(2, 4);
    // A's long prompt is prefilled in chunks of 4; its second chunk holds the poison token.
    let (a, mut rx_a) = job(vec![40, 41, 42, 43, 44, 45, 46], 3, &[]);
    s.enqueue(a);
    s.step();
    let (c, mut rx_c) = job(vec![1], 3, &[]);
    s.enqueue(c);
    s.runtime_mut().fail_on_token = Some(45);
    run_until_idle(&mut s);
    let (_, a_end) = collect(&mut rx_a);
    assert!(
        matches!(a_end, Some(Event::Error(EngineError::Decode(_)))),
        "{a_end:?}"
    );
    let (c_text, c_end) = collect(&mut rx_c);
    assert_eq!(c_text, "2 3 4 ", "the newest request was innocent");
    assert!(matches!(c_end, Some(Event::Done { .. })));
}

#[test]
fn failed_decode_fails_only_the_request_too_big_to_decode() {
    let mut s = scheduler(2, 16);
    let (a, mut rx_a) = job(vec![1], 5, &[]);
    s.enqueue(a);
    s.step();
    let (b, mut rx_b) = job(vec![40, 41, 42], 5, &[]);
    s.enqueue(b);
    s.runtime_mut().fail_above = Some(2);
    let before = s.runtime().truncations.len();
    run_until_idle(&mut s);
    let (_, b_end) = collect(&mut rx_b);
    assert!(matches!(b_end, Some(Event::Error(EngineError::Decode(_)))));
    let (a_text, a_end) = collect(&mut rx_a);
    assert_eq!(a_text, "2 3 4 5 6 ");
    assert!(matches!(a_end, Some(Event::Done { .. })));
    // The failed batch's writes were rolled back: A's from its position, B's from its start
    // (once after the batch failed, once when B alone failed), besides B's admission.
    let new = &s.runtime().truncations[before..];
    assert!(new.contains(&(0, 1)), "{new:?}");
    assert!(new.iter().filter(|&&t| t == (1, 0)).count() >= 3, "{new:?}");
}

#[test]
fn context_limit_ends_with_length() {
    let mut s = Scheduler::new(
        Fake::default(),
        SchedulerConfig {
            n_slots: 1,
            n_ctx_per_seq: 6,
            max_batch_tokens: 16,
            spec: crate::SpecConfig::default(),
        },
    );
    let (j, mut rx) = job(vec![1, 2, 3, 4], 100, &[]);
    s.enqueue(j);
    run_until_idle(&mut s);
    let (text, done) = collect(&mut rx);
    // Positions 4 and 5 are free: the token sampled after position 5 ends the sequence.
    assert_eq!(text, "5 6 7 ");
    assert!(matches!(
        done,
        Some(Event::Done {
            finish_reason: FinishReason::Length,
            ..
        })
    ));
}

#[test]
fn idle_slots_publish_their_cached_tokens_for_routing() {
    let table: IdlePrefixes = std::sync::Arc::new(std::sync::Mutex::new(vec![Vec::new(); 2]));
    let mut s = scheduler(2, 16);
    s.publish_idle_prefixes(table.clone());
    let (j, _rx) = job(vec![1, 2, 3], 2, &[]);
    s.enqueue(j);
    s.step();
    assert!(
        table.lock().unwrap().iter().all(Vec::is_empty),
        "a busy slot publishes nothing"
    );
    run_until_idle(&mut s);
    assert_eq!(table.lock().unwrap()[0], vec![1, 2, 3, 4]);
    let (j, _rx) = job(vec![1, 2, 9], 5, &[]);
    s.enqueue(j);
    s.step();
    assert!(
        table.lock().unwrap()[0].is_empty(),
        "taken again: withdrawn"
    );
    assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 9, 9]), 2);
}

fn drain(rx: &mut UnboundedReceiver<Event>) -> Vec<Event> {
    let mut events = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        events.push(ev);
    }
    events
}

#[test]
fn several_choices_prefill_once_and_copy_the_prompt() {
    let mut s = scheduler(4, 16);
    let samplers = (0..3)
        .map(|i| Sampler::new(&greedy(), None, None, i))
        .collect();
    let (j, mut rxs) = job_with(vec![1, 2, 3], 3, &[], samplers);
    s.enqueue(j);
    s.step();
    // One prefill in the first batch; the prompt's KV then copied to the two siblings.
    assert_eq!(s.runtime().history[0].len(), 3);
    assert_eq!(s.runtime().copies.len(), 2);
    assert!(s.runtime().copies.iter().all(|&(src, _)| src == 0));
    run_until_idle(&mut s);
    // The second step decodes all three choices together, at the same position.
    let second = &s.runtime().history[1];
    assert_eq!(second.len(), 3);
    assert!(second.iter().all(|&(tok, pos, _, _)| tok == 4 && pos == 3));
    for rx in &mut rxs {
        let (text, done) = collect(rx);
        assert_eq!(text, "4 5 6 ");
        assert!(matches!(done, Some(Event::Done { usage, .. }) if usage.prompt_tokens == 3));
    }
}

#[test]
fn choices_wait_until_enough_slots_are_free() {
    let mut s = scheduler(2, 16);
    let (a, mut rx_a) = job(vec![1], 3, &[]);
    s.enqueue(a);
    s.step();
    let samplers = (0..2)
        .map(|i| Sampler::new(&greedy(), None, None, i))
        .collect();
    let (b, mut rxs) = job_with(vec![50], 2, &[], samplers);
    s.enqueue(b);
    s.step();
    assert!(
        s.runtime().history[1].iter().all(|t| t.2 == 0),
        "B waits for two slots"
    );
    run_until_idle(&mut s);
    assert_eq!(collect(&mut rx_a).0, "2 3 4 ");
    for rx in &mut rxs {
        assert_eq!(collect(rx).0, "51 52 ");
    }
}

#[test]
fn a_sibling_whose_parent_ends_before_the_copy_gets_an_error() {
    let mut s = scheduler(2, 2);
    let samplers = (0..2)
        .map(|i| Sampler::new(&greedy(), None, None, i))
        .collect();
    let (j, mut rxs) = job_with(vec![1, 2, 3, 4, 5], 3, &[], samplers);
    s.enqueue(j);
    s.step();
    let parent = rxs.remove(0);
    drop(parent);
    run_until_idle(&mut s);
    assert!(matches!(drain(&mut rxs[0]).last(), Some(Event::Error(_))));
    assert!(s.runtime().copies.is_empty());
}

#[test]
fn logprobs_arrive_with_their_tokens() {
    let mut s = scheduler(1, 16);
    let (j, mut rxs) = job_with(
        vec![10],
        3,
        &[],
        vec![Sampler::new(&greedy(), None, Some(2), 0)],
    );
    s.enqueue(j);
    run_until_idle(&mut s);
    let deltas: Vec<Delta> = drain(&mut rxs[0])
        .into_iter()
        .filter_map(|e| match e {
            Event::Delta(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(deltas.len(), 3);
    for (d, expected) in deltas.iter().zip(11..) {
        assert_eq!(&d.tokens[..], &[expected]);
        let lp = &d.logprobs[0];
        assert_eq!(lp.token, expected);
        assert_eq!(lp.bytes, format!("{expected} ").into_bytes());
        assert_eq!(lp.top.len(), 2);
        assert_eq!(lp.top[0].token, expected);
        assert_eq!(lp.top[1].token, expected + 1);
        assert!(lp.logprob < 0.0 && lp.logprob > -0.1);
    }
}

#[test]
fn logit_bias_ban_changes_the_greedy_path() {
    let mut s = scheduler(1, 16);
    let p = SamplingParams {
        logit_bias: vec![(11, -100.0)],
        ..greedy()
    };
    let (j, mut rxs) = job_with(vec![10], 2, &[], vec![Sampler::new(&p, None, None, 0)]);
    s.enqueue(j);
    run_until_idle(&mut s);
    // 11 is banned, so 12 (the second choice) follows 10; then 13 follows 12.
    assert_eq!(collect(&mut rxs[0]).0, "12 13 ");
}

fn fake_grammar(lark: &str) -> llguidance::Matcher {
    let words: Vec<Vec<u8>> = (0..VOCAB as i32)
        .map(|t| {
            if t == EOG {
                b"\xFF<eog>".to_vec()
            } else {
                format!("{t} ").into_bytes()
            }
        })
        .collect();
    crate::grammar::GrammarCompiler::new(&crate::grammar::test_env(&words, EOG as u32))
        .unwrap()
        .compile(
            &crate::grammar::GrammarSource::Lark(lark.into()),
            "response_format",
        )
        .unwrap()
}

#[test]
fn a_grammar_overrides_the_model_and_ends_the_answer_when_complete() {
    let mut s = scheduler(1, 16);
    let sampler = Sampler::new(&greedy(), Some(fake_grammar(r#"start: "7 8 ""#)), None, 0);
    let (j, mut rxs) = job_with(vec![1], 50, &[], vec![sampler]);
    s.enqueue(j);
    run_until_idle(&mut s);
    let (text, done) = collect(&mut rxs[0]);
    assert_eq!(text, "7 8 ");
    assert!(matches!(
        done,
        Some(Event::Done {
            finish_reason: FinishReason::Stop,
            ..
        })
    ));
}

#[test]
fn a_grammar_with_no_allowed_token_ends_the_choice_with_an_error() {
    let mut s = scheduler(1, 16);
    let p = SamplingParams {
        logit_bias: vec![(7, -100.0)],
        ..greedy()
    };
    let sampler = Sampler::new(&p, Some(fake_grammar(r#"start: "7 ""#)), None, 0);
    let (j, mut rxs) = job_with(vec![1], 5, &[], vec![sampler]);
    s.enqueue(j);
    run_until_idle(&mut s);
    assert!(matches!(
        drain(&mut rxs[0]).last(),
        Some(Event::Error(EngineError::Grammar(_)))
    ));
    // The slot is free again.
    let (j, mut rx) = job(vec![20], 1, &[]);
    s.enqueue(j);
    run_until_idle(&mut s);
    assert_eq!(collect(&mut rx).0, "21 ");
}

#[test]
fn stats_follow_running_and_waiting_requests() {
    use std::sync::atomic::Ordering::Relaxed;
    let mut s = scheduler(1, 16);
    let stats = std::sync::Arc::new(crate::scheduler::SlotStats::default());
    s.publish_stats(stats.clone());
    let (a, _rx_a) = job(vec![1, 2, 3], 5, &[]);
    let (b, _rx_b) = job(vec![10, 11], 5, &[]);
    s.enqueue(a);
    s.enqueue(b);
    assert_eq!(stats.waiting.load(Relaxed), 2);
    s.step();
    assert_eq!(stats.running.load(Relaxed), 1);
    assert_eq!(stats.waiting.load(Relaxed), 1);
    // The prompt's three tokens, then one more per step.
    assert_eq!(stats.kv_used.load(Relaxed), 3);
    s.step();
    assert_eq!(stats.kv_used.load(Relaxed), 4);
    run_until_idle(&mut s);
    assert_eq!(stats.running.load(Relaxed), 0);
    assert_eq!(stats.waiting.load(Relaxed), 0);
    assert_eq!(stats.kv_used.load(Relaxed), 0);
}

#[test]
fn a_passed_deadline_ends_the_choice_as_deadline() {
    let mut s = scheduler(1, 16);
    let (mut j, mut rx) = job(vec![1, 2, 3], 50, &[]);
    j.deadline = Some(std::time::Instant::now());
    s.enqueue(j);
    run_until_idle(&mut s);
    let (text, done) = collect(&mut rx);
    // The first token is sampled before the deadline is looked at.
    assert_eq!(text, "4 ");
    assert!(
        matches!(done, Some(Event::Done { finish_reason: FinishReason::Deadline, usage }) if usage.completion_tokens == 1),
        "{done:?}"
    );
}

#[test]
fn a_prompt_sharing_only_a_short_header_keeps_the_long_conversation_cached() {
    let mut s = scheduler(2, 64);
    // Slot 0 caches a long conversation that starts with the header [1, 2, 3].
    let conversation: Vec<i32> = [1, 2, 3].into_iter().chain(10..40).collect();
    let (j, mut rx) = job(conversation.clone(), 1, &[]);
    s.enqueue(j);
    run_until_idle(&mut s);
    collect(&mut rx);
    // A new conversation with the same header goes to the empty slot 1.
    let (j, mut rx) = job(vec![1, 2, 3, 50, 51], 1, &[]);
    s.enqueue(j);
    s.step();
    let last = s.runtime().history.last().unwrap();
    assert!(last.iter().all(|t| t.2 == 1), "{last:?}");
    run_until_idle(&mut s);
    collect(&mut rx);
    // The long conversation's next turn still finds all of it in slot 0.
    let mut next_turn = conversation.clone();
    next_turn.extend([40, 60, 61]);
    let (j, mut rx) = job(next_turn, 1, &[]);
    s.enqueue(j);
    run_until_idle(&mut s);
    match collect(&mut rx).1 {
        Some(Event::Done { usage, .. }) => assert_eq!(usage.cached_tokens, 33),
        other => panic!("{other:?}"),
    }
}

#[path = "scheduler_lora_tests.rs"]
mod lora;

#[path = "scheduler_spec_tests.rs"]
mod spec;

#[path = "scheduler_slot_tests.rs"]
mod slots;
