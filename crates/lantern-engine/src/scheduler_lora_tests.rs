//! LoRA adapter groups in the scheduler: one adapter per batch, groups taking turns, and KV
//! never reused across adapters. The fake model shifts its next token by the adapter key.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::*;
use crate::slot::AdapterRef;

fn adapter(key: u32) -> (AdapterRef, Arc<AtomicUsize>) {
    let in_use = Arc::new(AtomicUsize::new(0));
    let a = AdapterRef {
        key,
        running: Arc::default(),
        handle: Arc::new(()),
    };
    (a, in_use)
}

/// A greedy job under adapter `key` (0: the base model).
fn job_under(key: u32, tokens: Vec<i32>, max_tokens: u32) -> (Job, UnboundedReceiver<Event>) {
    let (mut j, rx) = job(tokens, max_tokens, &[]);
    if key != 0 {
        let (a, in_use) = adapter(key);
        in_use.fetch_add(1, Ordering::Relaxed);
        j.adapter = Some((a, Outstanding(in_use)));
    }
    (j, rx)
}

fn text_of(rx: &mut UnboundedReceiver<Event>) -> String {
    let (text, done) = collect(rx);
    assert!(matches!(done, Some(Event::Done { .. })), "{done:?}");
    text
}

#[test]
fn each_batch_holds_one_adapter_group_and_groups_take_turns() {
    let mut s = scheduler(4, 64);
    let jobs: Vec<_> = [(0, 1), (0, 11), (3, 21), (5, 31)]
        .into_iter()
        .map(|(key, start)| {
            let (j, rx) = job_under(key, vec![start, start + 1], 6);
            s.enqueue(j);
            (key, rx)
        })
        .collect();
    run_until_idle(&mut s);
    let rt = s.runtime();
    for (batch, &applied) in rt.history.iter().zip(&rt.batch_adapters) {
        let seqs: Vec<i32> = batch.iter().map(|e| e.2).collect();
        // Slots 0 and 1 hold the base jobs, 2 adapter 3, 3 adapter 5 (admission order).
        let expected: &[i32] = match applied {
            0 => &[0, 1],
            3 => &[2],
            5 => &[3],
            other => panic!("unknown adapter {other}"),
        };
        assert!(
            seqs.iter().all(|s| expected.contains(s)),
            "batch {seqs:?} under adapter {applied}"
        );
    }
    // Round robin in key order, from after the last group served (the base, at start):
    // 3, 5, base, 3, 5, base, ... while all three have work.
    assert_eq!(&rt.batch_adapters[..6], &[3, 5, 0, 3, 5, 0]);
    for (key, mut rx) in jobs {
        let text = text_of(&mut rx);
        assert_eq!(text.split_whitespace().count(), 6, "adapter {key}: {text}");
    }
}

#[test]
fn a_burst_on_one_adapter_does_not_starve_the_base_model() {
    let mut s = scheduler(4, 64);
    let mut burst = Vec::new();
    for i in 0..3 {
        let (j, rx) = job_under(2, vec![10 * i + 1, 10 * i + 2], 30);
        s.enqueue(j);
        burst.push(rx);
    }
    let (j, mut base) = job_under(0, vec![50, 51], 5);
    s.enqueue(j);
    // The base request gets every second step: it finishes within about 2 x 5 steps plus
    // prefill, long before the burst's 30 tokens.
    for _ in 0..14 {
        s.step();
    }
    let text = text_of(&mut base);
    assert_eq!(text, "52 53 54 55 56 ");
    for rx in &mut burst {
        assert!(
            !matches!(collect(rx).1, Some(Event::Done { .. })),
            "the burst is still running"
        );
    }
    run_until_idle(&mut s);
}

#[test]
fn outputs_under_adapters_match_their_outputs_alone() {
    let alone = |key: u32, start: i32| {
        let mut s = scheduler(4, 64);
        let (j, mut rx) = job_under(key, vec![start, start + 1], 5);
        s.enqueue(j);
        run_until_idle(&mut s);
        text_of(&mut rx)
    };
    let expected = [alone(0, 1), alone(4, 1), alone(7, 1)];
    // The adapter changes the output; together they are what they are alone.
    assert_ne!(expected[0], expected[1]);
    assert_ne!(expected[1], expected[2]);
    let mut s = scheduler(4, 64);
    let mut rxs = Vec::new();
    for key in [0, 4, 7] {
        let (j, rx) = job_under(key, vec![1, 2], 5);
        s.enqueue(j);
        rxs.push(rx);
    }
    run_until_idle(&mut s);
    for (rx, want) in rxs.iter_mut().zip(&expected) {
        assert_eq!(&text_of(rx), want);
    }
}

#[test]
fn kv_from_one_adapter_is_not_reused_under_another() {
    let mut s = scheduler(1, 64);
    let (j, mut rx) = job_under(3, vec![1, 2, 3, 4], 2);
    s.enqueue(j);
    run_until_idle(&mut s);
    text_of(&mut rx);
    // The same prompt under the base model: the slot's cache is from adapter 3.
    let (j, mut rx) = job_under(0, vec![1, 2, 3, 4, 5], 2);
    s.enqueue(j);
    run_until_idle(&mut s);
    let Some(Event::Done { usage, .. }) = drain(&mut rx).pop() else {
        panic!("no end");
    };
    assert_eq!(usage.cached_tokens, 0, "KV of another adapter was reused");
    assert_eq!(s.runtime().truncations.last(), Some(&(0, 0)));
    // And again under the base model: now its own KV is reused.
    let (j, mut rx) = job_under(0, vec![1, 2, 3, 4, 5, 6], 2);
    s.enqueue(j);
    run_until_idle(&mut s);
    let Some(Event::Done { usage, .. }) = drain(&mut rx).pop() else {
        panic!("no end");
    };
    assert_eq!(usage.cached_tokens, 5);
}

#[test]
fn adapter_use_is_counted_until_the_request_ends_and_released_when_idle() {
    let mut s = scheduler(2, 64);
    let (a, in_use) = adapter(9);
    in_use.fetch_add(1, Ordering::Relaxed);
    let running = a.running.clone();
    let (mut j, mut rx) = job(vec![1, 2], 3, &[]);
    j.adapter = Some((a, Outstanding(in_use.clone())));
    s.enqueue(j);
    assert_eq!(in_use.load(Ordering::Relaxed), 1);
    assert_eq!(running.load(Ordering::Relaxed), 0, "queued, not running");
    s.step();
    assert_eq!(running.load(Ordering::Relaxed), 1);
    run_until_idle(&mut s);
    text_of(&mut rx);
    assert_eq!(in_use.load(Ordering::Relaxed), 0);
    assert_eq!(running.load(Ordering::Relaxed), 0);
    assert_eq!(s.runtime().adapters, vec![9]);
    s.release_adapter();
    assert_eq!(s.runtime().adapters, vec![9, 0]);
}
