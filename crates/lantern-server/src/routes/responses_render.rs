//! Choice output as the Responses API shows it: the `response` object with its output items
//! (reasoning, message, function calls), and the named stream events in OpenAI's order, each
//! with its `sequence_number`.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use lantern_api::responses::{
    ContentItem, CreateResponseRequest, InputTokensDetails, Item, OutputTokensDetails,
    ReasoningText, ResponseObject, ResponseUsage,
};
use lantern_api::FinishReason;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::output::{ChoiceDelta, FinishedChoice};
use crate::response_store::PendingStore;
use crate::sse::{ChunkFormat, Frame};
use crate::wire::chat_logprobs;

/// `prefix_` and 32 hex digits, as OpenAI's ids look.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// What every `response` object of one request shares: its id and the request's settings,
/// echoed as OpenAI echoes them.
#[derive(Debug, Clone)]
pub struct ResponseShell {
    object: ResponseObject,
    logprobs: bool,
    reasoning: ReasoningOut,
}

/// What a reasoning item carries besides its text.
#[derive(Debug, Clone, Copy)]
struct ReasoningOut {
    /// `reasoning.summary` was asked for: the reasoning text is its own summary.
    summary: bool,
    /// `include: ["reasoning.encrypted_content"]`.
    encrypted: bool,
}

impl ReasoningOut {
    fn item(self, id: String, text: String, status: &str) -> Item {
        let summary = if self.summary && !text.is_empty() {
            vec![json!({"type": "summary_text", "text": text})]
        } else {
            Vec::new()
        };
        Item::Reasoning {
            id,
            summary,
            encrypted_content: self
                .encrypted
                .then(|| base64::engine::general_purpose::STANDARD.encode(&text)),
            content: vec![ReasoningText::new(text)],
            status: status.into(),
        }
    }
}

impl ResponseShell {
    pub fn new(req: &CreateResponseRequest, logprobs: bool) -> Self {
        let reasoning = req.reasoning.clone().unwrap_or_default();
        let summary = reasoning.summary.is_some() || reasoning.generate_summary.is_some();
        let text = match req.text.as_ref().and_then(|t| t.format.as_ref()) {
            Some(f) => json!({"format": f}),
            None => json!({"format": {"type": "text"}}),
        };
        let object = ResponseObject {
            id: new_id("resp"),
            object: "response".into(),
            created_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            status: "in_progress".into(),
            error: None,
            incomplete_details: None,
            instructions: req.instructions.clone(),
            max_output_tokens: req.max_output_tokens,
            model: req.model.clone(),
            output: Vec::new(),
            parallel_tool_calls: req.parallel_tool_calls.unwrap_or(true),
            previous_response_id: req.previous_response_id.clone(),
            reasoning: json!({"effort": reasoning.effort, "summary": reasoning.summary}),
            store: req.store(),
            temperature: req.temperature.unwrap_or(1.0),
            text,
            tool_choice: req.tool_choice.clone().unwrap_or(json!("auto")),
            tools: req.tools.clone().unwrap_or_default(),
            top_p: req.top_p.unwrap_or(1.0),
            truncation: "disabled".into(),
            usage: None,
            user: req.user.clone(),
            metadata: req.metadata.clone().unwrap_or_default(),
        };
        ResponseShell {
            object,
            logprobs,
            reasoning: ReasoningOut {
                summary,
                encrypted: req.includes("reasoning.encrypted_content"),
            },
        }
    }

    /// The object with this status, output and usage.
    fn with(&self, choice: Option<&FinishedChoice>, output: Vec<Item>) -> ResponseObject {
        let mut o = self.object.clone();
        o.output = output;
        if let Some(c) = choice {
            let cut = c.finish_reason == FinishReason::Length;
            o.status = if cut { "incomplete" } else { "completed" }.into();
            o.incomplete_details = cut.then(|| json!({"reason": "max_output_tokens"}));
            o.usage = Some(usage(c));
        }
        o
    }

    /// The whole response to a finished choice.
    pub fn finished(&self, c: &FinishedChoice) -> ResponseObject {
        let mut output = Vec::new();
        if !c.reasoning.is_empty() {
            let item = self
                .reasoning
                .item(new_id("rs"), c.reasoning.clone(), "completed");
            output.push(item);
        }
        let status = item_status(c);
        if c.content().is_some() {
            let logprobs = self.logprobs.then(|| {
                let lp = c.logprobs.as_deref().unwrap_or_default();
                chat_logprobs(lp).content.unwrap_or_default()
            });
            output.push(Item::Message {
                id: new_id("msg"),
                role: "assistant".into(),
                content: vec![ContentItem::output_text(c.content.clone(), logprobs)],
                status: status.into(),
            });
        }
        for call in &c.tool_calls {
            output.push(Item::FunctionCall {
                id: new_id("fc"),
                call_id: call.id.clone(),
                name: call.name.clone(),
                arguments: call.arguments.clone(),
                status: "completed".into(),
            });
        }
        self.with(Some(c), output)
    }
}

fn item_status(c: &FinishedChoice) -> &'static str {
    if c.finish_reason == FinishReason::Length {
        "incomplete"
    } else {
        "completed"
    }
}

fn usage(c: &FinishedChoice) -> ResponseUsage {
    let u = &c.usage;
    ResponseUsage {
        input_tokens: u.prompt_tokens,
        input_tokens_details: InputTokensDetails {
            cached_tokens: u.cached_tokens,
        },
        output_tokens: u.completion_tokens,
        output_tokens_details: OutputTokensDetails {
            reasoning_tokens: c.reasoning_tokens,
        },
        total_tokens: u.prompt_tokens + u.completion_tokens,
    }
}

/// The item being streamed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Open {
    Reasoning,
    Message,
    Call(u32),
}

/// The Responses stream: `response.created` and `response.in_progress`, each output item
/// added, filled by deltas and done in turn, then `response.completed` (or `.incomplete`,
/// or `.failed`) with the whole object. No `[DONE]`.
pub struct ResponsesFormat {
    shell: ResponseShell,
    seq: u64,
    output: Vec<Item>,
    open: Option<Open>,
    /// Where the finished response goes (`store: true`).
    store: Option<PendingStore>,
}

impl ResponsesFormat {
    pub fn new(shell: ResponseShell, store: Option<PendingStore>) -> Self {
        ResponsesFormat {
            shell,
            seq: 0,
            output: Vec::new(),
            open: None,
            store,
        }
    }

    fn event(&mut self, name: &'static str, fields: Value) -> Frame {
        let mut body = Map::new();
        body.insert("type".into(), json!(name));
        body.insert("sequence_number".into(), json!(self.seq));
        if let Value::Object(f) = fields {
            body.extend(f);
        }
        self.seq += 1;
        Frame::named(name, Value::Object(body).to_string())
    }

    fn last(&self) -> (String, usize) {
        let i = self.output.len() - 1;
        (self.output[i].id().to_string(), i)
    }

    fn open_item(&mut self, kind: Open, item: Item, out: &mut Vec<Frame>) {
        self.close_open("completed", out);
        self.output.push(item.clone());
        self.open = Some(kind);
        let (id, index) = self.last();
        out.push(self.event(
            "response.output_item.added",
            json!({"output_index": index, "item": item}),
        ));
        let part = match kind {
            Open::Message => {
                json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []})
            }
            Open::Reasoning => json!({"type": "reasoning_text", "text": ""}),
            Open::Call(_) => return,
        };
        out.push(self.event(
            "response.content_part.added",
            json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
        ));
    }

    fn ensure(&mut self, kind: Open, out: &mut Vec<Frame>) {
        if self.open == Some(kind) {
            return;
        }
        let item = match kind {
            Open::Message => Item::Message {
                id: new_id("msg"),
                role: "assistant".into(),
                content: Vec::new(),
                status: "in_progress".into(),
            },
            _ => Item::Reasoning {
                id: new_id("rs"),
                summary: Vec::new(),
                content: Vec::new(),
                encrypted_content: None,
                status: "in_progress".into(),
            },
        };
        self.open_item(kind, item, out);
        // The part being filled, in the item as `.done` and `response.completed` show it.
        match self.output.last_mut() {
            Some(Item::Message { content, .. }) => content.push(ContentItem::output_text(
                String::new(),
                self.shell.logprobs.then(Vec::new),
            )),
            Some(Item::Reasoning { content, .. }) => {
                content.push(ReasoningText::new(String::new()))
            }
            _ => {}
        }
    }

    /// Ends the open item with its `.done` events.
    fn close_open(&mut self, status: &str, out: &mut Vec<Frame>) {
        let Some(kind) = self.open.take() else {
            return;
        };
        let (id, index) = self.last();
        let reasoning = self.shell.reasoning;
        let item = &mut self.output[index];
        let mut events = Vec::new();
        match (kind, &mut *item) {
            (
                Open::Message,
                Item::Message {
                    content, status: s, ..
                },
            ) => {
                *s = status.into();
                let part = content
                    .first()
                    .cloned()
                    .unwrap_or_else(|| ContentItem::output_text(String::new(), None));
                let logprobs = match &part {
                    ContentItem::OutputText { logprobs, .. } => {
                        json!(logprobs.clone().unwrap_or_default())
                    }
                    _ => json!([]),
                };
                events.push((
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": index,
                    "content_index": 0, "text": part.text(), "logprobs": logprobs}),
                ));
                events.push((
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index,
                    "content_index": 0, "part": part}),
                ));
            }
            (Open::Reasoning, Item::Reasoning { content, .. }) => {
                let text = content.first().map(|c| c.text.clone()).unwrap_or_default();
                events.push((
                    "response.reasoning_text.done",
                    json!({"item_id": id, "output_index": index,
                    "content_index": 0, "text": text}),
                ));
                events.push((
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index,
                    "content_index": 0, "part": {"type": "reasoning_text", "text": text}}),
                ));
                *item = reasoning.item(id.clone(), text, "completed");
            }
            (
                Open::Call(_),
                Item::FunctionCall {
                    arguments,
                    name,
                    status: s,
                    ..
                },
            ) => {
                *s = "completed".into();
                events.push((
                    "response.function_call_arguments.done",
                    json!({"item_id": id,
                    "output_index": index, "name": name, "arguments": arguments}),
                ));
            }
            _ => {}
        }
        let item = self.output[index].clone();
        for (name, fields) in events {
            out.push(self.event(name, fields));
        }
        out.push(self.event(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        ));
    }

    fn append(&mut self, text: &str, logprobs: &[lantern_engine::TokenLogprob]) {
        match self.output.last_mut() {
            Some(Item::Message { content, .. }) => {
                if let Some(ContentItem::OutputText {
                    text: t,
                    logprobs: l,
                    ..
                }) = content.first_mut()
                {
                    t.push_str(text);
                    if let Some(l) = l {
                        l.extend(chat_logprobs(logprobs).content.unwrap_or_default());
                    }
                }
            }
            Some(Item::Reasoning { content, .. }) => {
                if let Some(c) = content.first_mut() {
                    c.text.push_str(text);
                }
            }
            _ => {}
        }
    }
}

impl ChunkFormat for ResponsesFormat {
    fn opening(&mut self, _index: u32, _prompt_tokens: u32, out: &mut Vec<Frame>) {
        let object = self.shell.with(None, Vec::new());
        out.push(self.event("response.created", json!({"response": object})));
        out.push(self.event("response.in_progress", json!({"response": object})));
    }

    fn delta(&mut self, _index: u32, d: ChoiceDelta, out: &mut Vec<Frame>) {
        if !d.reasoning.is_empty() {
            self.ensure(Open::Reasoning, out);
            self.append(&d.reasoning, &[]);
            let (id, index) = self.last();
            out.push(self.event(
                "response.reasoning_text.delta",
                json!({"item_id": id,
                "output_index": index, "content_index": 0, "delta": d.reasoning}),
            ));
        }
        if !d.content.is_empty() {
            self.ensure(Open::Message, out);
            let logprobs: &[lantern_engine::TokenLogprob] = if self.shell.logprobs {
                &d.logprobs
            } else {
                &[]
            };
            self.append(&d.content, logprobs);
            let lp = chat_logprobs(logprobs).content.unwrap_or_default();
            let (id, index) = self.last();
            out.push(self.event(
                "response.output_text.delta",
                json!({"item_id": id,
                "output_index": index, "content_index": 0, "delta": d.content, "logprobs": lp}),
            ));
        }
        for piece in d.tool_calls {
            if let (Some(name), Some(call_id)) = (piece.name, piece.id) {
                let item = Item::FunctionCall {
                    id: new_id("fc"),
                    call_id,
                    name,
                    arguments: String::new(),
                    status: "in_progress".into(),
                };
                self.open_item(Open::Call(piece.index), item, out);
            }
            if piece.arguments.is_empty() || self.open != Some(Open::Call(piece.index)) {
                continue;
            }
            if let Some(Item::FunctionCall { arguments, .. }) = self.output.last_mut() {
                arguments.push_str(&piece.arguments);
            }
            let (id, index) = self.last();
            out.push(self.event(
                "response.function_call_arguments.delta",
                json!({"item_id": id,
                "output_index": index, "delta": piece.arguments}),
            ));
        }
    }

    fn finish(&mut self, _index: u32, choice: &FinishedChoice, out: &mut Vec<Frame>) {
        if self.output.is_empty() {
            // An empty answer is still one message, as non-streamed.
            self.ensure(Open::Message, out);
        }
        self.close_open(item_status(choice), out);
    }

    fn close(&mut self, choices: &[&FinishedChoice], out: &mut Vec<Frame>) {
        let Some(choice) = choices.first() else {
            return;
        };
        let object = self.shell.with(Some(choice), self.output.clone());
        if let Some(pending) = self.store.take() {
            pending.keep(&object);
        }
        let name = if object.status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        out.push(self.event(name, json!({"response": object})));
    }

    fn error(&mut self, error: &ApiError) -> Frame {
        let mut object = self.shell.with(None, self.output.clone());
        object.status = "failed".into();
        let envelope = error.envelope().error;
        object.error = Some(json!({
            "code": envelope.code.unwrap_or_else(|| "server_error".into()),
            "message": envelope.message,
        }));
        self.event("response.failed", json!({"response": object}))
    }
}
