//! Turns a request's prompt into tokens and its constraints into a grammar matcher: template
//! rendering, tokenization and grammar compilation are CPU work, so this runs on the blocking
//! pool, never on the async runtime's workers or the inference thread.

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llguidance::Matcher;

use super::literal::{literal_ranges, segments, SpecialTexts};
use crate::chat_template::ChatTemplate;
use crate::grammar::{GrammarCompiler, SharedCompiler};
use crate::sampling::ClosingTokens;
use crate::tools::{prepare_chat, OutputFormat, PRESERVED_TOKENS};
use crate::{EngineError, Grammar, Prompt};

/// Vocabulary facts found once per model.
#[derive(Debug, Clone, Default)]
pub(crate) struct VocabFacts {
    /// Control tokens that tool-call and reasoning parsers need to see, sorted.
    pub preserved: Vec<i32>,
    /// Mistral's `[TOOL_CALLS]`, when it is one token.
    pub tool_calls_token: Option<u32>,
    /// What a JSON answer is closed with near its budget (see `Sampler::with_closing`).
    pub closing: ClosingTokens,
    /// The control tokens' texts, which message content must not turn into.
    pub specials: SpecialTexts,
}

/// A piece that only closes: quotes, brackets and spaces.
fn is_closer(piece: &[u8]) -> bool {
    let trimmed = piece.trim_ascii();
    !trimmed.is_empty() && trimmed.iter().all(|b| matches!(b, b'"' | b']' | b'}'))
}

/// One of the shortest JSON values.
fn is_short_value(piece: &[u8]) -> bool {
    matches!(piece.trim_ascii(), b"0" | b"null" | b"\"\"" | b"{}" | b"[]")
}

impl VocabFacts {
    pub fn of(model: &LlamaModel) -> Self {
        let vocab = model.vocab();
        let single = |text: &str| match vocab.tokenize(text.as_bytes(), false, true).as_slice() {
            [t] => Some(*t),
            _ => None,
        };
        let mut preserved: Vec<i32> = PRESERVED_TOKENS
            .iter()
            .filter_map(|text| single(text))
            // Only control tokens are dropped by default; others render anyway.
            .filter(|&t| vocab.token_to_piece(t, false, None).is_empty())
            .map(|t| t.0)
            .collect();
        preserved.sort_unstable();
        let (mut quotes, mut brackets, mut values) = (Vec::new(), Vec::new(), Vec::new());
        let mut specials = Vec::new();
        let mut depth = Vec::with_capacity(model.n_vocab() as usize);
        let mut flips_string = Vec::with_capacity(model.n_vocab() as usize);
        for t in (0..model.n_vocab()).map(LlamaToken) {
            let piece = vocab.token_to_piece(t, false, None);
            if piece.is_empty() {
                // A control token: it has text only when rendered as special.
                let text = vocab.token_to_piece(t, true, None);
                if let Ok(text) = String::from_utf8(text) {
                    specials.push(text);
                }
            }
            let opens = piece.iter().filter(|b| matches!(b, b'{' | b'[')).count() as i32;
            let closes = piece.iter().filter(|b| matches!(b, b'}' | b']')).count() as i32;
            depth.push((opens - closes).clamp(-127, 127) as i8);
            let quote_count = piece.iter().filter(|&&b| b == b'"').count();
            flips_string.push(quote_count % 2 == 1);
            if vocab.is_eog(t) || (is_closer(&piece) && quote_count == 0) {
                brackets.push(t.0 as u32);
            } else if is_closer(&piece) {
                quotes.push(t.0 as u32);
            } else if is_short_value(&piece) {
                values.push(t.0 as u32);
            }
        }
        VocabFacts {
            preserved,
            tool_calls_token: single("[TOOL_CALLS]").map(|t| t.0 as u32),
            closing: ClosingTokens {
                quotes: quotes.into(),
                brackets: brackets.into(),
                values: values.into(),
                depth: depth.into(),
                flips_string: flips_string.into(),
            },
            specials: SpecialTexts::new(specials.iter().map(String::as_str)),
        }
    }
}

/// A prompt ready for the scheduler.
pub(crate) struct Prepared {
    pub tokens: Vec<i32>,
    pub format: OutputFormat,
    pub grammar: Option<Matcher>,
}

/// Tokenizes the stretches of `text` apart: message content with special-token text as plain
/// text, the template's markup with special tokens parsed.
fn tokenize_literal(
    model: &LlamaModel,
    text: &str,
    literal: &[std::ops::Range<usize>],
    add_bos: bool,
) -> Vec<i32> {
    let mut tokens = Vec::new();
    for (i, (part, special)) in segments(text, literal).into_iter().enumerate() {
        tokens.extend(
            model
                .vocab()
                .tokenize(
                    part.as_bytes(),
                    may_add_special(model, add_bos && i == 0),
                    special,
                )
                .into_iter()
                .map(|t| t.0),
        );
    }
    tokens
}

fn tokenize(model: &LlamaModel, text: &str, add_bos: bool) -> Vec<i32> {
    model
        .vocab()
        .tokenize(text.as_bytes(), may_add_special(model, add_bos), true)
        .into_iter()
        .map(|t| t.0)
        .collect()
}

fn compiler<'a>(
    model: &LlamaModel,
    shared: &'a SharedCompiler,
) -> Result<&'a GrammarCompiler, EngineError> {
    shared
        .get_or_init(|| {
            let started = std::time::Instant::now();
            let compiler = GrammarCompiler::new(&LlamaSampler::llguidance_tok_env(model));
            tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                "structured output: vocabulary indexed for grammars"
            );
            compiler
        })
        .as_ref()
        .map_err(|e| EngineError::Grammar(format!("cannot index the vocabulary: {e}")))
}

pub(crate) fn prepare(
    model: &LlamaModel,
    template: &ChatTemplate,
    shared: &SharedCompiler,
    facts: &VocabFacts,
    prompt: Prompt,
    answer: Option<&Grammar>,
    literal_content: bool,
) -> Result<Prepared, EngineError> {
    let answer = answer.map(Grammar::source);
    let (tokens, format, grammar) = match prompt {
        Prompt::Chat(chat) => {
            // Only content that holds special-token text needs its own tokenization.
            let risky: Vec<String> = if literal_content {
                chat.messages
                    .iter()
                    .filter_map(|m| m.content.as_deref())
                    .filter(|c| facts.specials.occur_in(c))
                    .map(String::from)
                    .collect()
            } else {
                Vec::new()
            };
            let p = prepare_chat(template, chat, answer, facts.tool_calls_token)?;
            // The template may already have written BOS; do not add a second one.
            let add_bos =
                template.bos_token().is_empty() || !p.text.starts_with(template.bos_token());
            let tokens = if risky.is_empty() {
                tokenize(model, &p.text, add_bos)
            } else {
                let contents: Vec<&str> = risky.iter().map(String::as_str).collect();
                let literal = literal_ranges(&p.text, &contents).ok_or_else(|| {
                    EngineError::InvalidRequest {
                        message: "A message holds special-token text (such as <|im_end|>) that the chat template changed, so it cannot be kept as plain text; remove it, or start the server with --parse-special-in-content.".into(),
                        param: Some("messages".into()),
                    }
                })?;
                tokenize_literal(model, &p.text, &literal, add_bos)
            };
            (tokens, p.format, p.grammar)
        }
        Prompt::Text(text) => (
            tokenize(model, &text, true),
            OutputFormat::default(),
            answer.map(|a| (a, "response_format")),
        ),
        Prompt::Tokens(ids) => {
            let n_vocab = model.n_vocab() as u32;
            if let Some(bad) = ids.iter().find(|&&t| t >= n_vocab) {
                return Err(EngineError::InvalidRequest {
                    message: format!(
                        "Token id {bad} in 'prompt' is outside the model's vocabulary (0..{n_vocab})."
                    ),
                    param: Some("prompt".into()),
                });
            }
            (
                ids.into_iter().map(|t| t as i32).collect(),
                OutputFormat::default(),
                answer.map(|a| (a, "response_format")),
            )
        }
    };
    if tokens.is_empty() {
        return Err(EngineError::InvalidRequest {
            message: "The prompt is empty after tokenization.".into(),
            param: Some("prompt".into()),
        });
    }
    let grammar = match grammar {
        Some((source, param)) => Some(compiler(model, shared)?.compile(&source, param)?),
        None => None,
    };
    Ok(Prepared {
        tokens,
        format,
        grammar,
    })
}

/// Whether tokenizing may add the model's special tokens: never for a vocabulary without a
/// BOS, where llama.cpp's tokenizer asserts (aborting the process) if asked to add one.
pub(crate) fn may_add_special(model: &LlamaModel, wanted: bool) -> bool {
    let bos = model.vocab().bos().0;
    wanted && bos >= 0 && bos < model.n_vocab()
}

/// The text of a token, special tokens included (for template variables). A vocabulary
/// without BOS or EOS reports -1, which llama.cpp's `token_to_piece` does not accept (it can
/// throw across the C boundary and abort): such a token has no text.
pub(crate) fn token_text(model: &LlamaModel, token: LlamaToken) -> String {
    if token.0 < 0 || token.0 >= model.n_vocab() {
        return String::new();
    }
    String::from_utf8_lossy(&model.vocab().token_to_piece(token, true, None)).into_owned()
}
