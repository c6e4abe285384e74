//! Mistral tool calls after the `[TOOL_CALLS]` token: a JSON array
//! (`[{"name": ..., "arguments": ...}]`, v3 templates) or `name[ARGS]{...}` per call (newer
//! templates, optionally `name[CALL_ID]id[ARGS]{...}`). Text before the token is content.

use serde_json::Value;

use super::hermes::call_from_value;
use super::output::{partial_suffix, Parsed, ToolCallDelta, ToolParser};

const TOOL_CALLS: &str = "[TOOL_CALLS]";
const ARGS: &str = "[ARGS]";
const CALL_ID: &str = "[CALL_ID]";

#[derive(Debug, Default)]
pub(crate) struct MistralParser {
    held: String,
    in_calls: bool,
}

fn parse_segment(segment: &str, calls: &mut Vec<(String, String)>) -> Option<()> {
    let segment = segment.trim();
    if segment.starts_with('[') {
        let list: Vec<Value> = serde_json::from_str(segment).ok()?;
        for v in &list {
            calls.push(call_from_value(v)?);
        }
        return Some(());
    }
    let (head, args) = segment.split_once(ARGS)?;
    let name = head.split(CALL_ID).next()?.trim();
    let args: Value = serde_json::from_str(args.trim()).ok()?;
    if name.is_empty() {
        return None;
    }
    calls.push((name.to_string(), args.to_string()));
    Some(())
}

/// Every call after the first `[TOOL_CALLS]`; `None` if any part does not parse.
fn parse_calls(text: &str) -> Option<Vec<(String, String)>> {
    let mut calls = Vec::new();
    for segment in text.split(TOOL_CALLS).filter(|s| !s.trim().is_empty()) {
        parse_segment(segment, &mut calls)?;
    }
    (!calls.is_empty()).then_some(calls)
}

impl ToolParser for MistralParser {
    fn push(&mut self, text: &str, out: &mut Parsed) {
        self.held.push_str(text);
        if self.in_calls {
            return;
        }
        if let Some(at) = self.held.find(TOOL_CALLS) {
            out.content.push_str(&self.held[..at]);
            self.held.drain(..at + TOOL_CALLS.len());
            self.in_calls = true;
            return;
        }
        let keep = partial_suffix(&self.held, TOOL_CALLS);
        let emit: String = self.held.drain(..self.held.len() - keep).collect();
        out.content.push_str(&emit);
    }

    fn finish(&mut self, out: &mut Parsed) {
        let held = std::mem::take(&mut self.held);
        if !self.in_calls {
            out.content.push_str(&held);
            return;
        }
        match parse_calls(&held) {
            Some(calls) => {
                for (i, (name, arguments)) in calls.into_iter().enumerate() {
                    out.push_call(ToolCallDelta {
                        index: i as u32,
                        name: Some(name),
                        arguments,
                    });
                }
            }
            None => {
                out.content.push_str(TOOL_CALLS);
                out.content.push_str(&held);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::output::{chunks, run_pieces, OutputFormat};
    use super::super::ToolFormat;

    fn parse(text: &str, n: usize) -> super::Parsed {
        let pieces = chunks(text, n);
        let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let format = OutputFormat {
            tool_calls: Some(ToolFormat::Mistral),
            reasoning: None,
        };
        run_pieces(format, &pieces)
    }

    #[test]
    fn v3_json_array() {
        // Mistral-7B-Instruct-v0.3's shape of answer.
        let out = parse(
            "[TOOL_CALLS] [{\"name\": \"get_current_weather\", \"arguments\": {\"location\": \"Paris, France\", \"format\": \"celsius\"}}]",
            5,
        );
        assert_eq!(out.content, "");
        assert_eq!(out.tool_calls.len(), 1);
        assert_eq!(
            out.tool_calls[0].name.as_deref(),
            Some("get_current_weather")
        );
        let args: serde_json::Value = serde_json::from_str(&out.tool_calls[0].arguments).unwrap();
        assert_eq!(args["format"], "celsius");
    }

    #[test]
    fn args_marker_form_with_two_calls() {
        // Mistral Small 3.2 / Devstral's shape: one [TOOL_CALLS] per call.
        let out = parse(
            "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}[TOOL_CALLS]get_time[CALL_ID]abc123XYZ[ARGS]{}",
            3,
        );
        let names: Vec<_> = out
            .tool_calls
            .iter()
            .map(|c| c.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["get_weather", "get_time"]);
        assert_eq!(out.tool_calls[1].arguments, "{}");
    }

    #[test]
    fn text_then_calls_and_malformed() {
        let out = parse("Sure.[TOOL_CALLS]f[ARGS]{\"a\": 1}", 2);
        assert_eq!(out.content, "Sure.");
        assert_eq!(out.tool_calls.len(), 1);
        let out = parse("[TOOL_CALLS]{broken", 2);
        assert!(out.tool_calls.is_empty());
        assert_eq!(out.content, "[TOOL_CALLS]{broken");
    }
}
