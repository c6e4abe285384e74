//! The one place engine events become per-choice output: content, reasoning and tool-call
//! deltas with their logprobs (through the engine's parsers), finished choices, finish
//! reasons and usage. Every wire format (chat, completions, streamed or not, live or from the
//! cache) renders from these types; `sse`, `cache` and the routes all use this module.

use lantern_api::{FinishReason, Usage};
use lantern_engine::tools::{OutputFormat, OutputParser, Parsed};
use lantern_engine::{Delta, Event, EventStream, Generation, TokenLogprob, TokenUsage};

use crate::metrics::ChoiceTimer;

/// One choice's events, the prompt it answers, and how to read its text.
pub struct ChoiceSource {
    pub prompt: u32,
    /// Length of the prepared prompt, known before the first token.
    pub prompt_tokens: u32,
    pub events: EventStream,
    pub format: OutputFormat,
    /// Live choices are timed for the metrics; replays are not.
    pub timer: Option<ChoiceTimer>,
}

/// The choices of one or more scheduled prompts, in order (prompt by prompt).
/// The first choice of each prompt counts its prompt tokens in the metrics.
pub fn sources(
    generations: impl IntoIterator<Item = (u32, Generation)>,
    model: &str,
    started: std::time::Instant,
) -> Vec<ChoiceSource> {
    let mut counted = std::collections::HashSet::new();
    generations
        .into_iter()
        .flat_map(|(prompt, g)| {
            let (format, tokens) = (g.format, g.prompt_tokens);
            g.choices
                .into_iter()
                .map(move |events| (prompt, tokens, format, events))
        })
        .map(|(prompt, prompt_tokens, format, events)| {
            let first = counted.insert(prompt);
            ChoiceSource {
                prompt,
                prompt_tokens,
                events,
                format,
                timer: Some(ChoiceTimer::new(model, started, first)),
            }
        })
        .collect()
}

/// A piece of a tool call, with its id once known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCallPiece {
    pub index: u32,
    /// Set on the call's first piece, with `name`.
    pub id: Option<String>,
    pub name: Option<String>,
    pub arguments: String,
}

/// What one engine delta adds to a choice.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChoiceDelta {
    pub content: String,
    pub reasoning: String,
    pub tool_calls: Vec<ToolCallPiece>,
    pub logprobs: Vec<TokenLogprob>,
}

impl ChoiceDelta {
    pub fn is_empty(&self) -> bool {
        self.content.is_empty()
            && self.reasoning.is_empty()
            && self.tool_calls.is_empty()
            && self.logprobs.is_empty()
    }
}

/// A complete tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCallOut {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// A finished choice, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedChoice {
    pub prompt: u32,
    pub content: String,
    pub reasoning: String,
    pub tool_calls: Vec<ToolCallOut>,
    /// When logprobs were asked for.
    pub logprobs: Option<Vec<TokenLogprob>>,
    pub finish_reason: FinishReason,
    /// Which of the request's stop strings ended it (an index into `GenerateRequest::stop`).
    pub stop_sequence: Option<u32>,
    /// Completion tokens that went into the reasoning (those whose text was all reasoning).
    pub reasoning_tokens: u32,
    pub usage: TokenUsage,
}

impl FinishedChoice {
    /// `content` as the API reports it: null when the answer is only tool calls.
    pub fn content(&self) -> Option<String> {
        (!self.content.is_empty() || self.tool_calls.is_empty()).then(|| self.content.clone())
    }
}

/// A choice's raw engine output, as the response cache keeps it: replayed through the same
/// parsers, it renders exactly as the live answer did.
#[derive(Debug, Clone, PartialEq)]
pub struct RawChoice {
    pub prompt: u32,
    pub format: OutputFormat,
    pub text: String,
    pub logprobs: Vec<TokenLogprob>,
    pub finish_reason: lantern_engine::FinishReason,
    pub usage: TokenUsage,
}

impl RawChoice {
    /// Event streams that replay this choice.
    pub fn replay(&self) -> ChoiceSource {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let _ = tx.send(Event::Delta(Delta {
            text: self.text.clone(),
            tokens: self.logprobs.iter().map(|l| l.token).collect(),
            logprobs: self.logprobs.clone(),
        }));
        let _ = tx.send(Event::Done {
            finish_reason: self.finish_reason,
            usage: self.usage,
        });
        ChoiceSource {
            prompt: self.prompt,
            prompt_tokens: self.usage.prompt_tokens,
            events: rx,
            format: self.format,
            timer: None,
        }
    }
}

/// Follows one choice from engine events to deltas, keeping what a finished choice and the
/// cache need.
pub struct ChoiceState {
    parser: OutputParser,
    logprobs: bool,
    done: FinishedChoice,
    raw: RawChoice,
    /// Keep the raw text for the cache.
    keep_raw: bool,
    timer: Option<ChoiceTimer>,
}

fn call_id() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("call_{}", &hex[..24])
}

impl ChoiceState {
    /// Takes the source's timer, if any.
    pub fn new(source: &mut ChoiceSource, logprobs: bool, keep_raw: bool) -> Self {
        ChoiceState {
            parser: OutputParser::new(source.format),
            logprobs,
            done: FinishedChoice {
                prompt: source.prompt,
                content: String::new(),
                reasoning: String::new(),
                tool_calls: Vec::new(),
                logprobs: logprobs.then(Vec::new),
                finish_reason: FinishReason::Stop,
                stop_sequence: None,
                reasoning_tokens: 0,
                usage: TokenUsage::default(),
            },
            raw: RawChoice {
                prompt: source.prompt,
                format: source.format,
                text: String::new(),
                logprobs: Vec::new(),
                finish_reason: lantern_engine::FinishReason::Stop,
                usage: TokenUsage::default(),
            },
            keep_raw,
            timer: source.timer.take(),
        }
    }

    /// Turns parser output into a delta, naming new calls and recording everything.
    fn record(&mut self, parsed: Parsed, logprobs: Vec<TokenLogprob>) -> ChoiceDelta {
        self.done.content.push_str(&parsed.content);
        self.done.reasoning.push_str(&parsed.reasoning);
        let mut pieces = Vec::with_capacity(parsed.tool_calls.len());
        for call in parsed.tool_calls {
            let id = call.name.as_ref().map(|_| call_id());
            match (&call.name, &id) {
                (Some(name), Some(id)) => self.done.tool_calls.push(ToolCallOut {
                    id: id.clone(),
                    name: name.clone(),
                    arguments: call.arguments.clone(),
                }),
                _ => {
                    if let Some(last) = self.done.tool_calls.get_mut(call.index as usize) {
                        last.arguments.push_str(&call.arguments);
                    }
                }
            }
            pieces.push(ToolCallPiece {
                index: call.index,
                id,
                name: call.name,
                arguments: call.arguments,
            });
        }
        if let Some(all) = &mut self.done.logprobs {
            all.extend(logprobs.iter().cloned());
        }
        ChoiceDelta {
            content: parsed.content,
            reasoning: parsed.reasoning,
            tool_calls: pieces,
            logprobs: if self.logprobs { logprobs } else { Vec::new() },
        }
    }

    pub fn push(&mut self, delta: Delta) -> ChoiceDelta {
        if let Some(t) = &mut self.timer {
            t.tokens(delta.tokens.len());
        }
        if self.keep_raw {
            self.raw.text.push_str(&delta.text);
            self.raw.logprobs.extend(delta.logprobs.iter().cloned());
        }
        let parsed = if self.parser.is_identity() {
            Parsed {
                content: delta.text,
                ..Parsed::default()
            }
        } else {
            self.parser.push(&delta.text)
        };
        if !parsed.reasoning.is_empty() && parsed.content.is_empty() && parsed.tool_calls.is_empty()
        {
            self.done.reasoning_tokens += delta.tokens.len() as u32;
        }
        self.record(parsed, delta.logprobs)
    }

    /// The choice ended: the parsers' last output. The finish reason as the API says it is
    /// then in [`Self::finished`].
    pub fn finish(
        &mut self,
        reason: lantern_engine::FinishReason,
        usage: TokenUsage,
    ) -> ChoiceDelta {
        if let Some(t) = &self.timer {
            t.finished(&usage);
        }
        let parsed = self.parser.finish();
        let delta = self.record(parsed, Vec::new());
        // The cache keeps the engine's reason (a deadline cut is never stored as an answer).
        self.raw.finish_reason = reason;
        let reason = match reason {
            lantern_engine::FinishReason::Length | lantern_engine::FinishReason::Deadline => {
                FinishReason::Length
            }
            lantern_engine::FinishReason::Stop if !self.done.tool_calls.is_empty() => {
                FinishReason::ToolCalls
            }
            lantern_engine::FinishReason::Stop | lantern_engine::FinishReason::StopSequence(_) => {
                FinishReason::Stop
            }
        };
        if let lantern_engine::FinishReason::StopSequence(i) = self.raw.finish_reason {
            self.done.stop_sequence = Some(i);
        }
        self.done.finish_reason = reason;
        self.done.usage = usage;
        self.raw.usage = usage;
        delta
    }

    pub fn finished(&self) -> &FinishedChoice {
        &self.done
    }

    pub fn into_parts(self) -> (FinishedChoice, RawChoice) {
        (self.done, self.raw)
    }
}

/// Usage of a response: each prompt counted once (its choices share it), completions summed.
pub fn total_usage<'a>(choices: impl IntoIterator<Item = &'a FinishedChoice>) -> Usage {
    let mut prompts = std::collections::BTreeMap::new();
    let (mut completion, mut details) = (0, lantern_api::CompletionTokensDetails::default());
    for c in choices {
        let u = &c.usage;
        prompts
            .entry(c.prompt)
            .or_insert((u.prompt_tokens, u.cached_tokens));
        completion += u.completion_tokens;
        details.reasoning_tokens += c.reasoning_tokens;
        details.accepted_prediction_tokens += u.accepted_prediction_tokens;
        details.rejected_prediction_tokens += u.rejected_prediction_tokens;
    }
    let (prompt_tokens, cached) = prompts
        .values()
        .fold((0, 0), |(p, c), (pp, cc)| (p + pp, c + cc));
    Usage {
        completion_tokens_details: details,
        ..Usage::new(prompt_tokens, completion, cached)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lantern_engine::tools::ToolFormat;

    fn source(format: OutputFormat) -> ChoiceSource {
        let (_tx, rx) = tokio::sync::mpsc::unbounded_channel();
        ChoiceSource {
            prompt: 0,
            prompt_tokens: 0,
            events: rx,
            format,
            timer: None,
        }
    }

    #[test]
    fn tool_call_gets_one_id_and_tool_calls_finish() {
        let src = source(OutputFormat {
            tool_calls: Some(ToolFormat::Hermes),
            reasoning: None,
        });
        let mut src = src;
        let mut state = ChoiceState::new(&mut src, false, true);
        let first = state.push(Delta::text(
            "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\"",
        ));
        let second = state.push(Delta::text(": 1}}\n</tool_call>"));
        let last = state.finish(lantern_engine::FinishReason::Stop, TokenUsage::default());
        assert_eq!(state.finished().finish_reason, FinishReason::ToolCalls);
        assert!(first.tool_calls[0]
            .id
            .as_deref()
            .unwrap()
            .starts_with("call_"));
        assert!(second
            .tool_calls
            .iter()
            .all(|p| p.id.is_none() && p.name.is_none()));
        assert!(last.is_empty());
        let done = state.finished();
        assert_eq!(done.content(), None);
        assert_eq!(done.tool_calls[0].arguments, r#"{"a": 1}"#);
        let (_, raw) = state.into_parts();
        assert!(raw.text.starts_with("<tool_call>"));
    }

    #[test]
    fn usage_counts_each_prompt_once() {
        let mut state = ChoiceState::new(&mut source(OutputFormat::default()), false, false);
        state.finish(
            lantern_engine::FinishReason::Stop,
            TokenUsage {
                prompt_tokens: 10,
                completion_tokens: 3,
                cached_tokens: 2,
                accepted_prediction_tokens: 2,
                rejected_prediction_tokens: 5,
                ..Default::default()
            },
        );
        let (one, _) = state.into_parts();
        let other = FinishedChoice {
            prompt: 1,
            ..one.clone()
        };
        let usage = total_usage([&one, &one, &other]);
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (20, 9));
        assert_eq!(usage.prompt_tokens_details.cached_tokens, 4);
        let d = &usage.completion_tokens_details;
        assert_eq!(
            (d.accepted_prediction_tokens, d.rejected_prediction_tokens),
            (6, 15)
        );
    }
}
