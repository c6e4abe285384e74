//! The prompt-caching scenario: two requests sharing a long system prompt, fresh each round;
//! the second's TTFT against the first's shows what prefix reuse saves.

use std::time::Duration;

use serde_json::json;

use super::client::{stream_chat, Endpoint, Workload};

/// About `tokens` tokens of ordinary English, different for each `seed`.
fn system_prompt(tokens: usize, seed: usize) -> String {
    const WORDS: [&str; 16] = [
        "the", "keeper", "walked", "along", "a", "quiet", "harbor", "while", "ships", "waited",
        "for", "morning", "light", "over", "grey", "water",
    ];
    let mut text = format!("Session {seed}. You are a careful assistant. Background notes:");
    for i in 0..tokens {
        text.push(' ');
        text.push_str(WORDS[(i * 7 + seed) % WORDS.len()]);
    }
    text
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub async fn run(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    model: &str,
    work: &Workload,
    tokens: usize,
    rounds: usize,
    json_out: bool,
) -> Result<(), String> {
    // A different seed per run and round, so no earlier run's cache can help the first request.
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as usize)
        .unwrap_or(0);
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let system = system_prompt(tokens, base + round);
        for (question, out) in [
            ("Summarise the notes in one sentence.", &mut first),
            ("What was the keeper waiting for?", &mut second),
        ] {
            let messages = json!([
                {"role": "system", "content": system},
                {"role": "user", "content": question},
            ]);
            out.push(
                stream_chat(client, endpoint, work, model, messages, 8)
                    .await?
                    .ttft,
            );
        }
        eprintln!("bench: prefix round {}/{rounds} done", round + 1);
    }
    let (a, b) = (median(first), median(second));
    let ratio = b.as_secs_f64() / a.as_secs_f64();
    if json_out {
        println!(
            "{}",
            json!({"url": endpoint.url, "model": model, "prefix_tokens": tokens, "rounds": rounds,
                   "ttft_first_ms": a.as_secs_f64() * 1000.0,
                   "ttft_second_ms": b.as_secs_f64() * 1000.0, "ratio": ratio})
        );
    } else {
        println!("shared prefix       ~{tokens} tokens, {rounds} rounds");
        println!(
            "TTFT first request  {:.1} ms (median)",
            a.as_secs_f64() * 1000.0
        );
        println!(
            "TTFT second request {:.1} ms (median)",
            b.as_secs_f64() * 1000.0
        );
        println!("ratio               {ratio:.3}");
    }
    Ok(())
}
