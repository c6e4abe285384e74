//! Hermes/Qwen tool calls: `<tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>`.
//! Arguments stream as they are generated when the call starts with its name (as Lantern's
//! grammar writes it); other key orders are parsed once the call is complete.

use serde_json::Value;

use super::json_scan::{read_string, skip_ws, ValueScanner};
use super::output::{partial_suffix, Parsed, ToolCallDelta, ToolParser};

pub(crate) const OPEN: &str = "<tool_call>";
pub(crate) const CLOSE: &str = "</tool_call>";

/// Where a call's text stands on its way to a streamable header.
enum Header {
    /// Too little text to tell.
    Need,
    /// Not `{"name": "...", "arguments": ` (another order, or not JSON): parse at the end.
    Mismatch,
    /// The name, and the offset where the arguments value starts.
    Found(String, usize),
}

/// `{ "name" : "<name>" , "arguments" : ` with any JSON whitespace.
fn header(raw: &str) -> Header {
    fn lit<'a>(s: &'a str, expected: &str) -> Result<&'a str, Header> {
        let s = skip_ws(s);
        if let Some(rest) = s.strip_prefix(expected) {
            Ok(rest)
        } else if expected.starts_with(s) {
            Err(Header::Need)
        } else {
            Err(Header::Mismatch)
        }
    }
    let run = || -> Result<Header, Header> {
        let s = lit(raw, "{")?;
        let s = lit(s, "\"name\"")?;
        let s = skip_ws(lit(s, ":")?);
        if s.is_empty() {
            return Err(Header::Need);
        }
        if !s.starts_with('"') {
            return Err(Header::Mismatch);
        }
        let (name, s) = read_string(s).ok_or(Header::Need)?;
        let s = lit(s, ",")?;
        let s = match lit(s, "\"arguments\"") {
            Ok(rest) => rest,
            Err(Header::Mismatch) => lit(s, "\"parameters\"")?,
            Err(e) => return Err(e),
        };
        let s = skip_ws(lit(s, ":")?);
        match s.chars().next() {
            None => Err(Header::Need),
            // Arguments given as a JSON string are decoded at the end, not streamed.
            Some('"') => Err(Header::Mismatch),
            Some(_) => Ok(Header::Found(name, raw.len() - s.len())),
        }
    };
    run().unwrap_or_else(|h| h)
}

#[derive(Default)]
struct Call {
    raw: String,
    streaming: bool,
    buffered: bool,
    args_sent: usize,
    scanner: ValueScanner,
}

#[derive(Default)]
pub(crate) struct HermesParser {
    held: String,
    in_call: bool,
    call: Call,
    calls: u32,
    /// Whitespace-only content, sent only if real content follows or no call comes.
    pending_ws: String,
}

impl HermesParser {
    fn content(&mut self, text: &str, out: &mut Parsed) {
        if text.is_empty() {
            return;
        }
        if text.trim().is_empty() {
            self.pending_ws.push_str(text);
            return;
        }
        out.content.push_str(&std::mem::take(&mut self.pending_ws));
        out.content.push_str(text);
    }

    fn advance_call(&mut self, out: &mut Parsed) {
        let call = &mut self.call;
        if !call.streaming && !call.buffered {
            match header(&call.raw) {
                Header::Need => return,
                Header::Mismatch => {
                    call.buffered = true;
                    return;
                }
                Header::Found(name, at) => {
                    call.streaming = true;
                    call.args_sent = at;
                    out.push_call(ToolCallDelta {
                        index: self.calls,
                        name: Some(name),
                        arguments: String::new(),
                    });
                }
            }
        }
        if call.streaming && !call.scanner.is_done() {
            let fresh = &call.raw[call.args_sent..];
            let end = call.scanner.feed(fresh).unwrap_or(fresh.len());
            if end > 0 {
                out.push_call(ToolCallDelta {
                    index: self.calls,
                    name: None,
                    arguments: fresh[..end].to_string(),
                });
            }
            call.args_sent += fresh.len();
        }
    }

    /// The call's closing tag arrived, or the answer ended inside it.
    fn complete_call(&mut self, out: &mut Parsed, closed: bool) {
        let call = std::mem::take(&mut self.call);
        if call.streaming {
            self.calls += 1;
            return;
        }
        match parse_call(&call.raw) {
            Some((name, arguments)) => {
                out.push_call(ToolCallDelta {
                    index: self.calls,
                    name: Some(name),
                    arguments,
                });
                self.calls += 1;
            }
            None => {
                // Not a call after all: keep the text rather than lose it.
                let text = format!("{OPEN}{}{}", call.raw, if closed { CLOSE } else { "" });
                self.content(&text, out);
            }
        }
    }
}

/// A whole call object: its name and arguments as a JSON text.
pub(crate) fn parse_call(raw: &str) -> Option<(String, String)> {
    let value: Value = serde_json::from_str(raw.trim()).ok()?;
    call_from_value(&value)
}

/// `{"name": ..., "arguments"|"parameters": ...}` → name and arguments JSON.
pub(crate) fn call_from_value(value: &Value) -> Option<(String, String)> {
    let name = value.get("name")?.as_str()?.to_string();
    let args = value
        .get("arguments")
        .or_else(|| value.get("parameters"))
        .cloned()
        .unwrap_or(Value::Object(Default::default()));
    let arguments = match args {
        Value::String(s) => s,
        other => other.to_string(),
    };
    Some((name, arguments))
}

impl ToolParser for HermesParser {
    fn push(&mut self, text: &str, out: &mut Parsed) {
        self.held.push_str(text);
        loop {
            if !self.in_call {
                if let Some(at) = self.held.find(OPEN) {
                    let before = self.held[..at].to_string();
                    self.content(&before, out);
                    self.held.drain(..at + OPEN.len());
                    self.in_call = true;
                    continue;
                }
                let keep = partial_suffix(&self.held, OPEN);
                let emit: String = self.held.drain(..self.held.len() - keep).collect();
                self.content(&emit, out);
                return;
            }
            if let Some(at) = self.held.find(CLOSE) {
                self.call.raw.push_str(&self.held[..at]);
                self.held.drain(..at + CLOSE.len());
                self.advance_call(out);
                self.complete_call(out, true);
                self.in_call = false;
                continue;
            }
            let keep = partial_suffix(&self.held, CLOSE);
            let moved: String = self.held.drain(..self.held.len() - keep).collect();
            self.call.raw.push_str(&moved);
            self.advance_call(out);
            return;
        }
    }

    fn finish(&mut self, out: &mut Parsed) {
        let held = std::mem::take(&mut self.held);
        if self.in_call {
            self.call.raw.push_str(&held);
            self.advance_call(out);
            self.complete_call(out, false);
            self.in_call = false;
        } else {
            self.content(&held, out);
        }
        if self.calls == 0 {
            out.content.push_str(&std::mem::take(&mut self.pending_ws));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::output::{chunks, run_pieces, OutputFormat};
    use super::super::ToolFormat;
    use super::*;

    fn parse(text: &str, n: usize) -> Parsed {
        let pieces = chunks(text, n);
        let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
        run_pieces(
            OutputFormat {
                tool_calls: Some(ToolFormat::Hermes),
                reasoning: None,
            },
            &pieces,
        )
    }

    fn call(index: u32, name: &str, arguments: &str) -> ToolCallDelta {
        ToolCallDelta {
            index,
            name: Some(name.into()),
            arguments: arguments.into(),
        }
    }

    // What Lantern's grammar makes SmolLM2-135M write for a weather tool (compact JSON).
    const SMOLLM2: &str = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call>";

    #[test]
    fn grammar_output_streams_in_any_piece_size() {
        for n in [1, 2, 5, 13, 500] {
            let out = parse(SMOLLM2, n);
            assert_eq!(out.content, "", "n={n}");
            assert_eq!(
                out.tool_calls,
                vec![call(
                    0,
                    "get_weather",
                    r#"{"city": "Paris", "unit": "celsius"}"#
                )],
                "n={n}"
            );
        }
    }

    #[test]
    fn name_comes_first_and_alone() {
        let mut p = HermesParser::default();
        let mut out = Parsed::default();
        p.push(
            "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\"",
            &mut out,
        );
        assert_eq!(out.tool_calls, vec![call(0, "f", r#"{"a""#)]);
        let mut more = Parsed::default();
        p.push(": 1}}\n</tool_call>", &mut more);
        assert_eq!(more.tool_calls[0].name, None);
        assert_eq!(more.tool_calls[0].arguments, ": 1}");
    }

    // Qwen2.5's shape of answer: two calls, pretty-printed, whitespace between.
    const QWEN: &str = "<tool_call>\n{\"name\": \"get_current_temperature\", \"arguments\": {\"location\": \"San Francisco, CA, USA\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_temperature_date\", \"arguments\": {\"location\": \"San Francisco, CA, USA\", \"date\": \"2024-10-01\"}}\n</tool_call>";

    #[test]
    fn parallel_calls() {
        let out = parse(QWEN, 3);
        assert_eq!(out.content, "");
        assert_eq!(out.tool_calls.len(), 2);
        assert_eq!(out.tool_calls[1].index, 1);
        assert_eq!(
            out.tool_calls[1].name.as_deref(),
            Some("get_temperature_date")
        );
        let args: Value = serde_json::from_str(&out.tool_calls[1].arguments).unwrap();
        assert_eq!(args["date"], "2024-10-01");
    }

    #[test]
    fn other_key_order_and_string_arguments_parse_at_the_end() {
        let out = parse(
            "<tool_call>{\"arguments\": {\"x\": 1}, \"name\": \"f\"}</tool_call>",
            4,
        );
        assert_eq!(out.tool_calls, vec![call(0, "f", r#"{"x":1}"#)]);
        let out = parse(
            "<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"x\\\": 2}\"}</tool_call>",
            4,
        );
        assert_eq!(out.tool_calls, vec![call(0, "f", r#"{"x": 2}"#)]);
    }

    #[test]
    fn plain_text_and_false_alarms_stay_content() {
        assert_eq!(
            parse("Hello <tool without call", 2).content,
            "Hello <tool without call"
        );
        let out = parse("<tool_call>not json</tool_call> ok", 3);
        assert!(out.tool_calls.is_empty());
        assert_eq!(out.content, "<tool_call>not json</tool_call> ok");
        assert_eq!(parse("  \n", 1).content, "  \n");
    }

    #[test]
    fn text_before_a_call_is_content() {
        let out = parse(
            "Let me check.\n<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>",
            2,
        );
        assert_eq!(out.content, "Let me check.\n");
        assert_eq!(out.tool_calls, vec![call(0, "f", "{}")]);
    }

    #[test]
    fn call_cut_by_max_tokens_keeps_what_was_streamed() {
        let out = parse(
            "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": \"par",
            3,
        );
        assert_eq!(out.tool_calls, vec![call(0, "f", r#"{"a": "par"#)]);
    }
}
