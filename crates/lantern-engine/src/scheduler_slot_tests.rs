//! Slot choice and batch order against llama.cpp's micro-batching: with one KV stream per
//! sequence, a micro-batch holds only sequences of consecutive ids, in the order they first
//! appear in the batch, with equally many tokens each. Every extra micro-batch is another
//! pass over the weights, so the tests count passes as llama.cpp would split the batch.

use super::*;

/// The micro-batches llama.cpp's `split_equal(n_ubatch, sequential = true)` makes of a
/// batch of `(token, pos, seq, logits)` entries (the micro-batch size never binds here).
fn passes(batch: &[(i32, i32, i32, bool)]) -> usize {
    let mut used = vec![false; batch.len()];
    let mut passes = 0;
    while used.iter().any(|u| !u) {
        // The sequences of this pass: consecutive ids, in order of first unused token.
        let mut seqs: Vec<i32> = Vec::new();
        for (i, t) in batch.iter().enumerate() {
            if !used[i] && !seqs.contains(&t.2) && seqs.last().is_none_or(|&l| t.2 == l + 1) {
                seqs.push(t.2);
            }
        }
        // Equally many tokens of each: rounds while every sequence has one left.
        loop {
            let next: Vec<Option<usize>> = seqs
                .iter()
                .map(|&s| (0..batch.len()).find(|&i| !used[i] && batch[i].2 == s))
                .collect();
            if next.iter().any(Option::is_none) {
                break;
            }
            for i in next.into_iter().flatten() {
                used[i] = true;
            }
        }
        passes += 1;
    }
    passes
}

#[test]
fn passes_follow_llama_cpp_split() {
    let t = |seq| (1, 0, seq, true);
    assert_eq!(passes(&[t(0), t(1), t(2)]), 1);
    assert_eq!(passes(&[t(0), t(2)]), 2);
    assert_eq!(passes(&[t(1), t(0)]), 2);
    assert_eq!(passes(&[t(0), t(1), t(1), t(1)]), 2);
}

/// Slots 0 and 2 generating, slot 1 idle after a short request: the gap. Slot 2 has
/// `last_max_tokens` to generate, too few to be worth moving down unless it is 16 or more.
fn gap(s: &mut Scheduler<Fake>, last_max_tokens: u32) -> Vec<UnboundedReceiver<Event>> {
    let mut receivers = Vec::new();
    for (prompt, max_tokens) in [(vec![1], 30), (vec![20], 2), (vec![40], last_max_tokens)] {
        let (j, rx) = job(prompt, max_tokens, &[]);
        s.enqueue(j);
        s.step();
        receivers.push(rx);
    }
    // Slot 1 has generated its two tokens: the next step decodes slots 0 and 2 only.
    assert_eq!(s.runtime().history.last().unwrap().len(), 3);
    receivers
}

fn seqs_of_last_batch(s: &Scheduler<Fake>) -> Vec<i32> {
    s.runtime()
        .history
        .last()
        .unwrap()
        .iter()
        .map(|t| t.2)
        .collect()
}

#[test]
fn a_nearly_finished_sequence_is_not_moved_to_close_a_gap() {
    let mut s = scheduler(4, 16);
    let _running = gap(&mut s, 12);
    for _ in 0..3 {
        s.step();
        assert_eq!(seqs_of_last_batch(&s), [0, 2]);
    }
    assert!(s.runtime().copies.is_empty());
    assert_eq!(passes(s.runtime().history.last().unwrap()), 2);
}

#[test]
fn a_gap_nothing_fills_is_closed_by_moving_the_last_sequence_down() {
    let mut s = scheduler(4, 16);
    let mut rx = gap(&mut s, 30);
    s.step();
    // Slot 2's sequence moved into slot 1 (the finished request's 2 cached tokens are not
    // worth keeping): one run, one pass.
    assert_eq!(s.runtime().copies, [(2, 1)]);
    assert_eq!(seqs_of_last_batch(&s), [0, 1]);
    assert_eq!(passes(s.runtime().history.last().unwrap()), 1);
    run_until_idle(&mut s);
    // It went on where it was: the fake checks every position continues its sequence's KV.
    let expected: String = (41..71).map(|t| format!("{t} ")).collect();
    assert_eq!(collect(&mut rx[2]).0, expected);
}

#[test]
fn an_unrelated_request_fills_the_gap_between_busy_slots() {
    // Slot 3 has never been used, so the least recently used rule alone would take it.
    let mut s = scheduler(4, 16);
    let _running = gap(&mut s, 12);
    s.step();
    assert_eq!(passes(s.runtime().history.last().unwrap()), 2);
    let (j, _rx) = job(vec![60], 5, &[]);
    s.enqueue(j);
    s.step();
    s.step();
    let last = s.runtime().history.last().unwrap();
    assert_eq!(last.iter().map(|t| t.2).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(passes(last), 1, "{last:?}");
}

#[test]
fn a_prompt_chunk_goes_in_sequence_order_beside_decode_tokens() {
    let mut s = scheduler(3, 16);
    let _running = gap(&mut s, 12);
    s.step();
    let (j, _rx) = job((60..68).collect(), 5, &[]);
    s.enqueue(j);
    s.step();
    let batch = s.runtime().history.last().unwrap();
    let seqs: Vec<i32> = batch.iter().map(|t| t.2).collect();
    assert!(seqs.is_sorted(), "{seqs:?}");
    assert_eq!(batch.len(), 10);
    // One pass with a token of each sequence, one with the rest of the prompt.
    assert_eq!(passes(batch), 2, "{batch:?}");
}

#[test]
fn a_request_with_several_choices_takes_slots_next_to_the_busy_one() {
    let mut s = scheduler(4, 16);
    // Slots 0, 1 and 2 hold finished requests (0 the oldest); slot 3 then runs a long one.
    for p in [1, 20, 40, 60] {
        let (j, rx) = job(vec![p], if p == 60 { 30 } else { 1 }, &[]);
        s.enqueue(j);
        if p == 60 {
            s.step();
            std::mem::forget(rx);
        } else {
            run_until_idle(&mut s);
        }
    }
    assert_eq!(s.runtime().history.last().unwrap()[0].2, 3);
    let samplers = (0..2)
        .map(|i| Sampler::new(&greedy(), None, None, i))
        .collect();
    let (j, _rxs) = job_with(vec![80], 5, &[], samplers);
    s.enqueue(j);
    s.step();
    // Slots 2 and 1 join 3 in one run; the least recently used slot 0 keeps its cache.
    assert_eq!(s.runtime().copies, [(2, 1)]);
    s.step();
    let last = s.runtime().history.last().unwrap();
    assert_eq!(last.iter().map(|t| t.2).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(passes(last), 1);
}

/// Three slots: a long request generating in slot 0 and `conversation` finished in slot 1;
/// then an unrelated request, which takes slot 1 to keep the busy slots one run.
fn finished_beside_busy(conversation: &[i32]) -> (Scheduler<Fake>, Vec<UnboundedReceiver<Event>>) {
    let mut s = scheduler(3, 32);
    let (a, rx_a) = job(vec![1], 40, &[]);
    s.enqueue(a);
    s.step();
    let (b, mut rx_b) = job(conversation.to_vec(), 2, &[]);
    s.enqueue(b);
    while !matches!(collect(&mut rx_b).1, Some(Event::Done { .. })) {
        s.step();
    }
    let (c, rx_c) = job(vec![60, 61], 30, &[]);
    s.enqueue(c);
    s.step();
    assert!(decoded_in(&s, 60, 1), "{:?}", s.runtime().history.last());
    (s, vec![rx_a, rx_c])
}

/// The last batch decoded `token` in sequence `seq`.
fn decoded_in(s: &Scheduler<Fake>, token: i32, seq: i32) -> bool {
    let last = s.runtime().history.last().unwrap();
    last.iter().any(|t| t.0 == token && t.2 == seq)
}

#[test]
fn a_conversation_in_the_gap_is_moved_aside_and_keeps_its_cache() {
    let conversation: Vec<i32> = (100..120).collect();
    let (mut s, _running) = finished_beside_busy(&conversation);
    // Slot 1's 20-token cache was copied into the empty slot 2 first.
    assert_eq!(s.runtime().copies, [(1, 2)]);
    // The conversation's next turn finds all of it, in slot 2: the prompt and the first
    // answer token (the last one sampled was never decoded).
    let mut next_turn = conversation.clone();
    next_turn.extend([120, 121, 130]);
    let (b2, mut rx_b2) = job(next_turn, 1, &[]);
    s.enqueue(b2);
    s.step();
    assert!(decoded_in(&s, 130, 2));
    run_until_idle(&mut s);
    match collect(&mut rx_b2).1 {
        Some(Event::Done { usage, .. }) => assert_eq!(usage.cached_tokens, 21),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_short_cache_is_not_worth_a_copy() {
    let (s, _running) = finished_beside_busy(&[100, 101]);
    assert!(s.runtime().copies.is_empty());
}
