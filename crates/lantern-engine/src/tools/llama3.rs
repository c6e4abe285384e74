//! Llama 3.x JSON tool calls: the answer is `{"name": "f", "parameters": {...}}` (optionally
//! after `<|python_tag|>`, several separated by `;`). Whether an answer is a call is known from
//! its first character; a call is parsed once complete.

use serde_json::Value;

use super::hermes::call_from_value;
use super::output::{Parsed, ToolCallDelta, ToolParser};

const PYTHON_TAG: &str = "<|python_tag|>";

#[derive(Debug, Default, PartialEq, Eq)]
enum Mode {
    #[default]
    Deciding,
    Calls,
    Content,
}

#[derive(Debug, Default)]
pub(crate) struct Llama3Parser {
    mode: Mode,
    held: String,
}

/// Every JSON object in `text`, separated by whitespace or `;`, as calls; `None` if any part
/// is not a call.
pub(crate) fn parse_calls(text: &str) -> Option<Vec<(String, String)>> {
    let mut calls = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        let value = values.next()?.ok()?;
        let used = values.byte_offset();
        calls.push(call_from_value(&value)?);
        rest = rest[used..]
            .trim_start()
            .trim_start_matches(';')
            .trim_start();
    }
    (!calls.is_empty()).then_some(calls)
}

impl ToolParser for Llama3Parser {
    fn push(&mut self, text: &str, out: &mut Parsed) {
        match self.mode {
            Mode::Content => out.content.push_str(text),
            Mode::Calls => self.held.push_str(text),
            Mode::Deciding => {
                self.held.push_str(text);
                let trimmed = self.held.trim_start();
                if trimmed.is_empty() || (PYTHON_TAG.starts_with(trimmed) && trimmed != PYTHON_TAG)
                {
                    return;
                }
                if trimmed.starts_with('{') || trimmed.starts_with(PYTHON_TAG) {
                    self.mode = Mode::Calls;
                } else {
                    self.mode = Mode::Content;
                    out.content.push_str(&std::mem::take(&mut self.held));
                }
            }
        }
    }

    fn finish(&mut self, out: &mut Parsed) {
        let held = std::mem::take(&mut self.held);
        if self.mode != Mode::Calls {
            out.content.push_str(&held);
            return;
        }
        let body = held.trim_start().trim_start_matches(PYTHON_TAG);
        match parse_calls(body) {
            Some(calls) => {
                for (i, (name, arguments)) in calls.into_iter().enumerate() {
                    out.push_call(ToolCallDelta {
                        index: i as u32,
                        name: Some(name),
                        arguments,
                    });
                }
            }
            None => out.content.push_str(&held),
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
            tool_calls: Some(ToolFormat::Llama3),
            reasoning: None,
        };
        run_pieces(format, &pieces)
    }

    #[test]
    fn json_call_with_parameters() {
        // Llama 3.1/3.2's shape of a custom-tool answer.
        let out = parse(
            "{\"name\": \"get_current_conditions\", \"parameters\": {\"location\": \"San Francisco, CA\", \"unit\": \"Fahrenheit\"}}",
            4,
        );
        assert_eq!(out.content, "");
        assert_eq!(out.tool_calls.len(), 1);
        assert_eq!(
            out.tool_calls[0].name.as_deref(),
            Some("get_current_conditions")
        );
        let args: serde_json::Value = serde_json::from_str(&out.tool_calls[0].arguments).unwrap();
        assert_eq!(args["unit"], "Fahrenheit");
    }

    #[test]
    fn python_tag_and_several_calls() {
        let out = parse(
            "<|python_tag|>{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"x\": 1}}",
            3,
        );
        let names: Vec<_> = out
            .tool_calls
            .iter()
            .map(|c| c.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(out.tool_calls[1].index, 1);
    }

    #[test]
    fn prose_and_broken_json_are_content() {
        assert_eq!(
            parse("The weather is nice.", 2).content,
            "The weather is nice."
        );
        let out = parse("{not a call", 2);
        assert!(out.tool_calls.is_empty());
        assert_eq!(out.content, "{not a call");
    }
}
