//! Choice output as Anthropic's Messages API shows it: the message with its thinking, text
//! and `tool_use` blocks, stop reasons and usage, and the stream of `message_start`,
//! `content_block_start`/`_delta`/`_stop`, `message_delta`, `message_stop` and `ping`.

use lantern_api::messages::{AnthropicError, AnthropicUsage, ContentBlock, MessageResponse};
use lantern_api::FinishReason;
use lantern_engine::TokenUsage;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::output::{ChoiceDelta, FinishedChoice};
use crate::routes::responses_render::new_id;
use crate::sse::{ChunkFormat, Frame};

/// Anthropic's tool ids look like `toolu_…`; the engine's calls are named `call_…`.
fn tool_id(call_id: &str) -> String {
    format!("toolu_{}", call_id.strip_prefix("call_").unwrap_or(call_id))
}

fn usage(u: &TokenUsage) -> AnthropicUsage {
    AnthropicUsage {
        input_tokens: u.prompt_tokens.saturating_sub(u.cached_tokens),
        output_tokens: u.completion_tokens,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: u.cached_tokens,
    }
}

/// `stop_reason` and `stop_sequence`.
fn stop(c: &FinishedChoice, stops: &[String]) -> (String, Option<String>) {
    match (c.finish_reason, c.stop_sequence) {
        (FinishReason::ToolCalls, _) => ("tool_use".into(), None),
        (FinishReason::Length, _) => ("max_tokens".into(), None),
        (FinishReason::Stop, Some(i)) => ("stop_sequence".into(), stops.get(i as usize).cloned()),
        (FinishReason::Stop, None) => ("end_turn".into(), None),
    }
}

/// The arguments as the object Anthropic's `input` is (`{}` if the model wrote no JSON).
fn input_of(arguments: &str) -> Value {
    serde_json::from_str::<Value>(arguments)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}))
}

/// The whole message for a finished choice.
pub fn message(model: &str, c: &FinishedChoice, stops: &[String]) -> MessageResponse {
    let mut content = Vec::new();
    if !c.reasoning.is_empty() {
        content.push(ContentBlock::Thinking {
            thinking: c.reasoning.clone(),
            signature: String::new(),
        });
    }
    if !c.content.is_empty() || (c.tool_calls.is_empty() && content.is_empty()) {
        content.push(ContentBlock::Text {
            text: c.content.clone(),
        });
    }
    for call in &c.tool_calls {
        content.push(ContentBlock::ToolUse {
            id: tool_id(&call.id),
            name: call.name.clone(),
            input: input_of(&call.arguments),
        });
    }
    let (stop_reason, stop_sequence) = stop(c, stops);
    MessageResponse {
        id: new_id("msg"),
        kind: "message".into(),
        role: "assistant".into(),
        model: model.to_string(),
        content,
        stop_reason: Some(stop_reason),
        stop_sequence,
        usage: usage(&c.usage),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Block {
    Thinking,
    Text,
    ToolUse(u32),
}

/// The Messages stream: blocks open, fill and stop one after another.
pub struct AnthropicFormat {
    id: String,
    model: String,
    stops: Vec<String>,
    /// The open block and its index; `next` is the index the next block gets.
    open: Option<(Block, u32)>,
    next: u32,
}

impl AnthropicFormat {
    pub fn new(model: &str, stops: Vec<String>) -> Self {
        AnthropicFormat {
            id: new_id("msg"),
            model: model.to_string(),
            stops,
            open: None,
            next: 0,
        }
    }

    fn event(name: &'static str, mut body: Value) -> Frame {
        body["type"] = json!(name);
        Frame::named(name, body.to_string())
    }

    fn stop_open(&mut self, out: &mut Vec<Frame>) {
        if let Some((_, index)) = self.open.take() {
            out.push(Self::event("content_block_stop", json!({"index": index})));
        }
    }

    /// The block for `kind`, opened (closing the one before) unless it is the open one.
    fn block(&mut self, kind: Block, start: Value, out: &mut Vec<Frame>) -> u32 {
        match self.open {
            Some((open, index)) if open == kind => index,
            _ => {
                self.stop_open(out);
                let index = self.next;
                self.next += 1;
                self.open = Some((kind, index));
                out.push(Self::event(
                    "content_block_start",
                    json!({"index": index, "content_block": start}),
                ));
                index
            }
        }
    }

    fn block_delta(index: u32, delta: Value) -> Frame {
        Self::event(
            "content_block_delta",
            json!({"index": index, "delta": delta}),
        )
    }
}

impl ChunkFormat for AnthropicFormat {
    fn opening(&mut self, _index: u32, prompt_tokens: u32, out: &mut Vec<Frame>) {
        let message = json!({
            "id": self.id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": prompt_tokens, "output_tokens": 0,
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        });
        out.push(Self::event("message_start", json!({"message": message})));
        out.push(Self::event("ping", json!({})));
    }

    fn delta(&mut self, _index: u32, d: ChoiceDelta, out: &mut Vec<Frame>) {
        if !d.reasoning.is_empty() {
            let start = json!({"type": "thinking", "thinking": "", "signature": ""});
            let index = self.block(Block::Thinking, start, out);
            let delta = json!({"type": "thinking_delta", "thinking": d.reasoning});
            out.push(Self::block_delta(index, delta));
        }
        if !d.content.is_empty() {
            let index = self.block(Block::Text, json!({"type": "text", "text": ""}), out);
            let delta = json!({"type": "text_delta", "text": d.content});
            out.push(Self::block_delta(index, delta));
        }
        for piece in d.tool_calls {
            if let (Some(name), Some(id)) = (&piece.name, &piece.id) {
                self.stop_open(out);
                let start =
                    json!({"type": "tool_use", "id": tool_id(id), "name": name, "input": {}});
                self.block(Block::ToolUse(piece.index), start, out);
            }
            match self.open {
                Some((Block::ToolUse(i), index))
                    if i == piece.index && !piece.arguments.is_empty() =>
                {
                    let delta =
                        json!({"type": "input_json_delta", "partial_json": piece.arguments});
                    out.push(Self::block_delta(index, delta));
                }
                _ => {}
            }
        }
    }

    fn finish(&mut self, _index: u32, choice: &FinishedChoice, out: &mut Vec<Frame>) {
        if self.next == 0 {
            // An empty answer is still one (empty) text block, as non-streamed.
            self.block(Block::Text, json!({"type": "text", "text": ""}), out);
        }
        self.stop_open(out);
        let (stop_reason, stop_sequence) = stop(choice, &self.stops);
        out.push(Self::event(
            "message_delta",
            json!({"delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                "usage": usage(&choice.usage)}),
        ));
    }

    fn close(&mut self, _choices: &[&FinishedChoice], out: &mut Vec<Frame>) {
        out.push(Self::event("message_stop", json!({})));
    }

    fn error(&mut self, error: &ApiError) -> Frame {
        let envelope = AnthropicError::for_status(error.status().as_u16(), error.to_string());
        Frame::named(
            "error",
            serde_json::to_string(&envelope).unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::ToolCallPiece;

    fn finished(reason: FinishReason, stop_sequence: Option<u32>) -> FinishedChoice {
        FinishedChoice {
            prompt: 0,
            content: "hi".into(),
            reasoning: String::new(),
            tool_calls: Vec::new(),
            logprobs: None,
            finish_reason: reason,
            stop_sequence,
            reasoning_tokens: 0,
            usage: TokenUsage {
                prompt_tokens: 10,
                completion_tokens: 2,
                cached_tokens: 4,
                ..Default::default()
            },
        }
    }

    #[test]
    fn stop_reasons_and_usage_as_anthropic_reports_them() {
        let stops = vec!["END".to_string(), "STOP".to_string()];
        let m = message("m", &finished(FinishReason::Stop, Some(1)), &stops);
        assert_eq!(m.stop_reason.as_deref(), Some("stop_sequence"));
        assert_eq!(m.stop_sequence.as_deref(), Some("STOP"));
        assert_eq!(
            (m.usage.input_tokens, m.usage.cache_read_input_tokens),
            (6, 4)
        );
        let m = message("m", &finished(FinishReason::Stop, None), &stops);
        assert_eq!(
            (m.stop_reason.as_deref(), m.stop_sequence),
            (Some("end_turn"), None)
        );
        let m = message("m", &finished(FinishReason::Length, None), &stops);
        assert_eq!(m.stop_reason.as_deref(), Some("max_tokens"));
    }

    fn names(frames: &[Frame]) -> Vec<&str> {
        frames.iter().map(|f| f.event.unwrap()).collect()
    }

    #[test]
    fn stream_opens_and_stops_blocks_in_order() {
        let mut f = AnthropicFormat::new("m", Vec::new());
        let mut out = Vec::new();
        f.opening(0, 10, &mut out);
        f.delta(
            0,
            ChoiceDelta {
                reasoning: "think".into(),
                ..Default::default()
            },
            &mut out,
        );
        f.delta(
            0,
            ChoiceDelta {
                content: "a".into(),
                ..Default::default()
            },
            &mut out,
        );
        f.delta(
            0,
            ChoiceDelta {
                content: "b".into(),
                ..Default::default()
            },
            &mut out,
        );
        let call = ToolCallPiece {
            index: 0,
            id: Some("call_x".into()),
            name: Some("f".into()),
            arguments: "{\"a\"".into(),
        };
        f.delta(
            0,
            ChoiceDelta {
                tool_calls: vec![call],
                ..Default::default()
            },
            &mut out,
        );
        let more = ToolCallPiece {
            index: 0,
            id: None,
            name: None,
            arguments: ":1}".into(),
        };
        f.delta(
            0,
            ChoiceDelta {
                tool_calls: vec![more],
                ..Default::default()
            },
            &mut out,
        );
        f.finish(0, &finished(FinishReason::ToolCalls, None), &mut out);
        f.close(&[], &mut out);
        assert_eq!(
            names(&out),
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        let tool_start: Value = serde_json::from_str(&out[9].data).unwrap();
        assert_eq!(tool_start["index"], 2);
        assert_eq!(tool_start["content_block"]["id"], "toolu_x");
        let delta: Value = serde_json::from_str(&out[13].data).unwrap();
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    }
}
