//! Engine log-probabilities in the API's two shapes.

use std::collections::BTreeMap;

use lantern_api::logprobs::{ChoiceLogprobs, CompletionLogprobs, TokenLogprob, TopLogprob};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The chat shape: one entry per token with its alternatives.
pub fn chat_logprobs(tokens: &[lantern_engine::TokenLogprob]) -> ChoiceLogprobs {
    ChoiceLogprobs {
        content: Some(
            tokens
                .iter()
                .map(|t| TokenLogprob {
                    token: text(&t.bytes),
                    logprob: t.logprob,
                    bytes: Some(t.bytes.clone()),
                    top_logprobs: t
                        .top
                        .iter()
                        .map(|a| TopLogprob {
                            token: text(&a.bytes),
                            logprob: a.logprob,
                            bytes: Some(a.bytes.clone()),
                        })
                        .collect(),
                })
                .collect(),
        ),
        refusal: None,
    }
}

/// The legacy completions shape; `offset` is the character offset of the first token in the
/// choice's text, advanced past these tokens.
pub fn completion_logprobs(
    tokens: &[lantern_engine::TokenLogprob],
    offset: &mut u32,
) -> CompletionLogprobs {
    let mut out = CompletionLogprobs::default();
    for t in tokens {
        let piece = text(&t.bytes);
        out.text_offset.push(*offset);
        *offset += piece.chars().count() as u32;
        out.tokens.push(piece);
        out.token_logprobs.push(t.logprob);
        let mut top = BTreeMap::new();
        for a in &t.top {
            top.insert(text(&a.bytes), a.logprob);
        }
        out.top_logprobs.push(top);
    }
    out
}
