use llguidance::Matcher;

use super::*;
use crate::grammar::{test_env, GrammarCompiler, GrammarSource};

fn params(temperature: f32) -> SamplingParams {
    SamplingParams {
        temperature,
        seed: Some(42),
        ..SamplingParams::default()
    }
}

/// A row where token `i` has logit `values[i]`.
fn row(values: &[f32]) -> Vec<f32> {
    values.to_vec()
}

#[test]
fn argmax_first_of_ties() {
    assert_eq!(argmax(&[0.1, 3.0, -1.0, 3.0]), 1);
    assert_eq!(argmax(&[f32::NEG_INFINITY, -5.0]), 1);
}

#[test]
fn greedy_takes_the_argmax_and_bias_can_ban_or_force() {
    let logits = row(&[1.0, 5.0, 2.0, 0.0]);
    let mut s = Sampler::new(&params(0.0), None, None, 0);
    assert_eq!(s.sample(&logits, 100).unwrap().token, 1);
    let mut p = params(0.0);
    p.logit_bias = vec![(1, -100.0)];
    assert_eq!(
        Sampler::new(&p, None, None, 0)
            .sample(&logits, 100)
            .unwrap()
            .token,
        2
    );
    p.logit_bias = vec![(3, 100.0)];
    assert_eq!(
        Sampler::new(&p, None, None, 0)
            .sample(&logits, 100)
            .unwrap()
            .token,
        3
    );
}

#[test]
fn logprobs_are_a_log_softmax_and_top_is_sorted() {
    let logits = row(&[1.0, 3.0, 2.0, 0.5]);
    let mut s = Sampler::new(&params(0.0), None, Some(3), 0);
    let sampled = s.sample(&logits, 100).unwrap();
    let (lp, top) = sampled.logprobs.unwrap();
    let lse = logits.iter().map(|l| l.exp()).sum::<f32>().ln();
    assert_eq!(sampled.token, 1);
    assert!((lp - (3.0 - lse)).abs() < 1e-5);
    assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), [1, 2, 0]);
    assert_eq!(top[0].1, lp);
    let total: f32 = top.iter().map(|t| t.1.exp()).sum();
    assert!(total <= 1.0 && total > 0.9);
}

#[test]
fn seeded_draws_repeat_and_choices_differ() {
    let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
    let draw = |choice: u32| -> Vec<i32> {
        let mut s = Sampler::new(&params(1.0), None, None, choice);
        (0..30)
            .map(|_| s.sample(&logits, 100).unwrap().token)
            .collect()
    };
    assert_eq!(draw(0), draw(0));
    assert_ne!(draw(0), draw(1));
}

#[test]
fn truncation_keeps_the_likeliest() {
    let logits = row(&[0.0, 4.0, 3.9, 0.1, 0.2]);
    for p in [
        SamplingParams {
            top_k: 1,
            ..params(1.5)
        },
        SamplingParams {
            top_p: 0.01,
            ..params(1.5)
        },
        SamplingParams {
            min_p: 0.99,
            ..params(1.5)
        },
    ] {
        let mut s = Sampler::new(&p, None, None, 0);
        for _ in 0..20 {
            assert_eq!(s.sample(&logits, 100).unwrap().token, 1, "{p:?}");
        }
    }
    // top_k 2 never leaves the two best.
    let mut s = Sampler::new(
        &SamplingParams {
            top_k: 2,
            ..params(2.0)
        },
        None,
        None,
        0,
    );
    for _ in 0..50 {
        assert!([1, 2].contains(&s.sample(&logits, 100).unwrap().token));
    }
}

#[test]
fn top_p_widens_past_its_first_window() {
    // 2000 equal tokens: top_p 0.5 needs 1000 of them, more than the first 256 sorted.
    let logits = vec![0.0f32; 2000];
    let mut c: Vec<(i32, f32)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as i32, l))
        .collect();
    top_p(&mut c, 0.5, 0.0);
    assert_eq!(c.len(), 1000);
}

#[test]
fn penalties_count_generated_tokens() {
    let logits = row(&[2.0, 1.9, 0.0]);
    let p = SamplingParams {
        frequency_penalty: 0.5,
        ..params(0.0)
    };
    let mut s = Sampler::new(&p, None, None, 0);
    assert_eq!(s.sample(&logits, 100).unwrap().token, 0);
    s.accept(0).unwrap();
    assert_eq!(
        s.sample(&logits, 100).unwrap().token,
        1,
        "0 is now penalised"
    );
}

fn matcher(words: &[&str], lark: &str) -> Matcher {
    let mut words: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
    words.push(b"\xFF<eos>".to_vec());
    let eos = words.len() as u32 - 1;
    GrammarCompiler::new(&test_env(&words, eos))
        .unwrap()
        .compile(&GrammarSource::Lark(lark.into()), "response_format")
        .unwrap()
}

#[test]
fn grammar_masks_even_the_greedy_fast_path_and_reports_completion() {
    // Token 0 is the model's favourite; the grammar only allows "b" then "c".
    let logits = row(&[9.0, 1.0, 0.5, 0.0]);
    let g = matcher(&["a", "b", "c"], r#"start: "bc""#);
    let mut s = Sampler::new(&params(0.0), Some(g), None, 0);
    let t = s.sample(&logits, 100).unwrap().token;
    assert_eq!(t, 1);
    assert!(!s.accept(t).unwrap());
    let t = s.sample(&logits, 100).unwrap().token;
    assert_eq!(t, 2);
    assert!(s.accept(t).unwrap() || s.sample(&logits, 100).unwrap().token == 3);
}

#[test]
fn grammar_with_every_allowed_token_banned_is_an_error_not_an_abort() {
    let logits = row(&[9.0, 1.0, 0.5, 0.0]);
    let g = matcher(&["a", "b", "c"], r#"start: "b""#);
    let mut p = params(0.7);
    p.logit_bias = vec![(1, -100.0)];
    let mut s = Sampler::new(&p, Some(g), None, 0);
    assert!(matches!(
        s.sample(&logits, 100),
        Err(SampleError::DeadEnd(_))
    ));
}

#[test]
fn a_grammar_answer_near_its_budget_is_steered_to_close() {
    // "a" keeps the string going, '"' closes it; the model prefers "a".
    let logits = row(&[9.0, 1.0, 0.0]);
    let words = ["a", "\"", "x"];
    let lark = r#"start: "\"" /a*/ "\"""#;
    let closing = ClosingTokens {
        quotes: vec![1u32].into(),
        brackets: vec![3u32].into(),
        values: vec![2u32].into(),
        depth: vec![0i8; 4].into(),
        flips_string: vec![false, true, false, false].into(),
    };
    let mut s =
        Sampler::new(&params(0.0), Some(matcher(&words, lark)), None, 0).with_closing(closing);
    s.accept(1).unwrap();
    assert_eq!(
        s.sample(&logits, 100).unwrap().token,
        0,
        "far from the budget: the model's choice"
    );
    assert_eq!(
        s.sample(&logits, 2).unwrap().token,
        1,
        "near it: the closing quote"
    );
}
