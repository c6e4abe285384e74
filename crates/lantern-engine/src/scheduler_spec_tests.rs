//! Speculative decoding in the scheduler: drafts verified in the ordinary batch, accepted
//! tokens advancing a sequence several positions per step, rejected ones cut from the KV
//! (the fake checks every decode continues where its sequence's KV ends), and the output
//! always what decoding without drafts gives.

use super::*;
use crate::step_cost::StepCost;
use crate::{SpecConfig, SpecMode};

fn spec_scheduler(n_slots: usize, mode: SpecMode, cost: StepCost) -> Scheduler<Fake> {
    let mut s = Scheduler::new(
        Fake::default(),
        SchedulerConfig {
            n_slots,
            n_ctx_per_seq: 64,
            max_batch_tokens: 64,
            spec: SpecConfig {
                mode,
                ..SpecConfig::default()
            },
        },
    );
    s.cost = cost;
    s
}

/// Memory-bound steps: each extra token costs a tenth of a one-token step.
fn cheap_tokens() -> StepCost {
    StepCost::fixed(&[(1, 1.0), (8, 1.7), (16, 2.5), (32, 4.1), (64, 7.3)])
}

fn with_prediction(
    tokens: Vec<i32>,
    max_tokens: u32,
    stop: &[&str],
    prediction: &[i32],
) -> (Job, UnboundedReceiver<Event>) {
    let (mut j, rx) = job(tokens, max_tokens, stop);
    // The fake's text for these tokens: "4 5 6 ".
    let text: String = prediction.iter().map(|t| format!("{t} ")).collect();
    j.prediction = Some(crate::draft::Predicted {
        text: text.as_bytes().into(),
        tokens: prediction.len() as u32,
    });
    (j, rx)
}

/// The text and final event of a job run alone without drafts.
fn plain_run(tokens: Vec<i32>, max_tokens: u32, stop: &[&str]) -> (String, Option<Event>) {
    let mut s = spec_scheduler(1, SpecMode::Off, cheap_tokens());
    let (j, mut rx) = job(tokens, max_tokens, stop);
    s.enqueue(j);
    run_until_idle(&mut s);
    collect(&mut rx)
}

fn done(event: Option<Event>) -> (FinishReason, TokenUsage) {
    match event {
        Some(Event::Done {
            finish_reason,
            usage,
        }) => (finish_reason, usage),
        other => panic!("expected the end of the choice, got {other:?}"),
    }
}

/// Decode steps that asked for the logits of more than one token of sequence `seq` (a
/// prefill chunk asks for one).
fn multi_token_steps(s: &Scheduler<Fake>, seq: i32) -> usize {
    s.runtime()
        .history
        .iter()
        .filter(|b| b.iter().filter(|t| t.2 == seq && t.3).count() > 1)
        .count()
}

#[test]
fn a_right_prediction_is_accepted_several_tokens_per_step() {
    let (want, want_done) = plain_run(vec![1, 2, 3], 12, &[]);
    let mut s = spec_scheduler(1, SpecMode::Prediction, cheap_tokens());
    let prediction: Vec<i32> = (4..16).collect();
    let (j, mut rx) = with_prediction(vec![1, 2, 3], 12, &[], &prediction);
    s.enqueue(j);
    run_until_idle(&mut s);
    let (text, end) = collect(&mut rx);
    assert_eq!(text, want);
    let (reason, usage) = done(end);
    assert_eq!(reason, done(want_done).0);
    assert_eq!(usage.completion_tokens, 12);
    assert_eq!(usage.accepted_prediction_tokens, 12);
    assert_eq!(usage.rejected_prediction_tokens, 0);
    // One prefill step, then far fewer than the 11 one-token steps decoding alone takes.
    let steps = s.runtime().history.len();
    assert!(steps <= 4, "{steps} steps: {:?}", s.runtime().history);
    // Every draft token carries logits, at the positions after the sequence's next token.
    let second = &s.runtime().history[1];
    assert!(second.len() > 2, "{second:?}");
    assert!(second.iter().all(|t| t.3));
    let positions: Vec<i32> = second.iter().map(|t| t.1).collect();
    assert_eq!(positions, (3..3 + second.len() as i32).collect::<Vec<_>>());
}

#[test]
fn a_wrong_prediction_is_rejected_cut_from_the_kv_and_changes_nothing() {
    let (want, _) = plain_run(vec![1, 2, 3], 10, &[]);
    let mut s = spec_scheduler(1, SpecMode::Prediction, cheap_tokens());
    // Right for two tokens, then wrong.
    let (j, mut rx) = with_prediction(vec![1, 2, 3], 10, &[], &[4, 5, 40, 41, 42, 43]);
    s.enqueue(j);
    run_until_idle(&mut s);
    let (text, end) = collect(&mut rx);
    assert_eq!(text, want);
    let usage = done(end).1;
    assert_eq!(usage.accepted_prediction_tokens, 2);
    assert_eq!(usage.rejected_prediction_tokens, 4);
    // Step 2 decoded 4 at position 3 and drafted 5 40 41 ...: 5 was accepted, 40 was not,
    // so everything from position 5 on was removed.
    let second = &s.runtime().history[1];
    assert_eq!(
        &second[..3],
        &[(4, 3, 0, true), (5, 4, 0, true), (40, 5, 0, true)]
    );
    assert!(
        s.runtime().truncations.contains(&(0, 5)),
        "{:?}",
        s.runtime().truncations
    );
    // The slot's KV is exactly prompt + answer but the last token: a follow-up reuses it all.
    let mut next: Vec<i32> = (1..=12).collect();
    next.push(50);
    let (j, mut rx) = job(next, 1, &[]);
    s.enqueue(j);
    run_until_idle(&mut s);
    assert_eq!(done(collect(&mut rx).1).1.cached_tokens, 12);
}

#[test]
fn prompt_lookup_drafts_text_the_prompt_repeats() {
    // The prompt ends with the start of a run it holds earlier: 10 11 … 17, then 10 11.
    let prompt: Vec<i32> = (10..18).chain([10, 11]).collect();
    let (want, _) = plain_run(prompt.clone(), 8, &[]);
    let mut s = spec_scheduler(1, SpecMode::Ngram, cheap_tokens());
    let (j, mut rx) = job(prompt, 8, &[]);
    s.enqueue(j);
    run_until_idle(&mut s);
    let (text, end) = collect(&mut rx);
    assert_eq!(text, want);
    let usage = done(end).1;
    assert_eq!(usage.completion_tokens, 8);
    // No prediction, nothing to report as accepted or rejected.
    assert_eq!(
        (
            usage.accepted_prediction_tokens,
            usage.rejected_prediction_tokens
        ),
        (0, 0)
    );
    assert!(multi_token_steps(&s, 0) >= 1, "{:?}", s.runtime().history);
    assert!(s.runtime().history.len() < 8);
}

#[test]
fn an_end_token_inside_a_draft_ends_the_answer_and_cuts_the_rest() {
    let (want, want_end) = plain_run(vec![95], 20, &[]);
    assert_eq!(want, "96 97 98 ");
    let mut s = spec_scheduler(1, SpecMode::Prediction, cheap_tokens());
    let (j, mut rx) = with_prediction(vec![95], 20, &[], &[96, 97, 98, 99, 100, 101]);
    s.enqueue(j);
    run_until_idle(&mut s);
    let (text, end) = collect(&mut rx);
    assert_eq!(text, want);
    assert_eq!(done(end).0, done(want_end).0);
    // 96 at position 1 with drafts 97 98 99 100 101: 99 is the end; from position 4 on the
    // KV is removed (95 96 97 98 stay).
    assert!(
        s.runtime().truncations.contains(&(0, 4)),
        "{:?}",
        s.runtime().truncations
    );
    assert_eq!(s.runtime().cells[0], [95, 96, 97, 98]);
}

#[test]
fn a_stop_string_inside_a_draft_ends_the_answer_as_without_drafts() {
    let (want, want_end) = plain_run(vec![1, 2, 3], 20, &["7 8"]);
    assert_eq!(want, "4 5 6 ");
    let mut s = spec_scheduler(1, SpecMode::Prediction, cheap_tokens());
    let prediction: Vec<i32> = (4..20).collect();
    let (j, mut rx) = with_prediction(vec![1, 2, 3], 20, &["7 8"], &prediction);
    s.enqueue(j);
    run_until_idle(&mut s);
    let (text, end) = collect(&mut rx);
    assert_eq!(text, want);
    assert_eq!(done(end).0, done(want_end).0);
}

#[test]
fn max_tokens_bounds_the_draft() {
    let mut s = spec_scheduler(1, SpecMode::Prediction, cheap_tokens());
    let prediction: Vec<i32> = (4..30).collect();
    let (j, mut rx) = with_prediction(vec![1, 2, 3], 5, &[], &prediction);
    s.enqueue(j);
    run_until_idle(&mut s);
    let (text, end) = collect(&mut rx);
    assert_eq!(text, "4 5 6 7 8 ");
    let (reason, usage) = done(end);
    assert_eq!((reason, usage.completion_tokens), (FinishReason::Length, 5));
    // Never more drafted than can still be answered: 4 decoded, at most 3 drafts after it.
    let longest = s.runtime().history[1..].iter().map(Vec::len).max().unwrap();
    assert_eq!(longest, 4, "{:?}", s.runtime().history);
}

/// Runs a job with a right prediction beside `other` (on prompt 50 51), checks both answers
/// are what each gets alone, and returns the scheduler for its batches.
fn beside(other: (Job, UnboundedReceiver<Event>)) -> Scheduler<Fake> {
    let (want_a, _) = plain_run(vec![1, 2, 3], 10, &[]);
    let (want_b, _) = plain_run(vec![50, 51], 10, &[]);
    let mut s = spec_scheduler(2, SpecMode::Auto, cheap_tokens());
    let (a, mut rx_a) = with_prediction(vec![1, 2, 3], 10, &[], &(4..14).collect::<Vec<_>>());
    let (b, mut rx_b) = other;
    s.enqueue(a);
    s.enqueue(b);
    run_until_idle(&mut s);
    assert_eq!(collect(&mut rx_a).0, want_a);
    assert_eq!(collect(&mut rx_b).0, want_b);
    s
}

#[test]
fn sequences_with_drafts_batch_together_at_one_depth_and_each_gets_its_own_answer() {
    let s = beside(with_prediction(
        vec![50, 51],
        10,
        &[],
        &(52..62).collect::<Vec<_>>(),
    ));
    // Both drafted in one batch, as many tokens each (llama.cpp's micro-batches hold equally
    // many tokens per sequence).
    let history = &s.runtime().history;
    let both = history
        .iter()
        .find(|b| b.iter().filter(|t| t.2 == 0 && t.3).count() > 1)
        .expect("a batch with drafts");
    let count = |seq| both.iter().filter(|t| t.2 == seq).count();
    assert_eq!(count(0), count(1), "{both:?}");
}

#[test]
fn a_sequence_without_a_draft_keeps_the_batch_plain() {
    let s = beside(job(vec![50, 51], 10, &[]));
    // While both ran, no batch held a draft (sequence 1 had nothing to propose).
    for b in s
        .runtime()
        .history
        .iter()
        .filter(|b| b.iter().any(|t| t.2 == 1))
    {
        assert!(b.iter().filter(|t| t.2 == 0 && t.3).count() <= 1, "{b:?}");
    }
}

#[test]
fn drafting_backs_off_when_drafts_keep_failing() {
    // After each right token the prediction says 0, which the model never says.
    let prediction: Vec<i32> = (4..40).flat_map(|t| [t, 0]).collect();
    let mut s = spec_scheduler(1, SpecMode::Prediction, cheap_tokens());
    let (j, mut rx) = with_prediction(vec![3], 40, &[], &prediction);
    s.enqueue(j);
    run_until_idle(&mut s);
    let (text, _) = collect(&mut rx);
    assert_eq!(text, plain_run(vec![3], 40, &[]).0);
    let history = &s.runtime().history;
    let drafting: Vec<bool> = history.iter().map(|b| b.len() > 1).collect();
    let tried = drafting.iter().filter(|&&d| d).count();
    assert!(tried >= 2, "it tried the prediction first: {history:?}");
    assert!(
        drafting[drafting.len() - 10..].iter().all(|&d| !d),
        "it stopped drafting once the drafts kept failing: {drafting:?}"
    );
}

#[test]
fn a_draft_that_pays_only_when_longer_is_drafted_long() {
    // A second token costs nearly a whole step, but four cost little more than two (matrix
    // kernels that work in tiles of four): one draft token does not pay, three do.
    let tiles = StepCost::fixed(&[
        (1, 1.0),
        (2, 1.95),
        (4, 2.0),
        (8, 2.6),
        (16, 4.0),
        (64, 16.0),
    ]);
    let mut s = spec_scheduler(1, SpecMode::Prediction, tiles);
    let prediction: Vec<i32> = (4..20).collect();
    let (j, mut rx) = with_prediction(vec![1, 2, 3], 12, &[], &prediction);
    s.enqueue(j);
    run_until_idle(&mut s);
    let (text, end) = collect(&mut rx);
    assert_eq!(text, plain_run(vec![1, 2, 3], 12, &[]).0);
    assert_eq!(done(end).1.accepted_prediction_tokens, 12);
    let second = &s.runtime().history[1];
    assert!(
        second.len() >= 4,
        "drafted past the level that does not pay: {second:?}"
    );
}

#[test]
fn compute_bound_steps_get_no_drafts() {
    // Every token costs as much as a whole one-token step: no draft can pay for itself.
    let mut s = spec_scheduler(
        1,
        SpecMode::Prediction,
        StepCost::fixed(&[(1, 1.0), (8, 8.0), (16, 16.0), (32, 32.0), (64, 64.0)]),
    );
    let prediction: Vec<i32> = (4..20).collect();
    let (j, mut rx) = with_prediction(vec![1, 2, 3], 10, &[], &prediction);
    s.enqueue(j);
    run_until_idle(&mut s);
    let usage = done(collect(&mut rx).1).1;
    // The prediction still matched every token, it was just never worth verifying ahead.
    assert_eq!(usage.accepted_prediction_tokens, 10);
    assert_eq!(multi_token_steps(&s, 0), 0, "{:?}", s.runtime().history);
}

#[test]
fn a_model_that_cannot_rewind_gets_no_drafts() {
    let mut s = Scheduler::new(
        Fake {
            recurrent: true,
            ..Fake::default()
        },
        SchedulerConfig {
            n_slots: 1,
            n_ctx_per_seq: 64,
            max_batch_tokens: 64,
            spec: SpecConfig::default(),
        },
    );
    s.cost = cheap_tokens();
    let prediction: Vec<i32> = (4..20).collect();
    let (j, mut rx) = with_prediction(vec![1, 2, 3], 10, &[], &prediction);
    s.enqueue(j);
    run_until_idle(&mut s);
    assert_eq!(collect(&mut rx).0, "4 5 6 7 8 9 10 11 12 13 ");
    assert_eq!(multi_token_steps(&s, 0), 0);
}
