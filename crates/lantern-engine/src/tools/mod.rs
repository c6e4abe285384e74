//! Tool calling and reasoning output: how a model's chat template shows tools, how its answer
//! is constrained to valid calls, and how its text is split back into content, reasoning and
//! calls, one parser per format family (as mistral.rs's `tools/parsers`).
//!
//! A template that knows tools gets them as `tools`, and the model answers in its own format
//! (Hermes/Qwen `<tool_call>` tags, Llama 3 JSON, Mistral `[TOOL_CALLS]`). A template that
//! does not (the default SmolLM2 is one) gets the tools described in the system prompt in the
//! Hermes format, and its answer is constrained by a grammar to either plain text or
//! `<tool_call>` blocks whose JSON matches a tool's parameters.

mod grammar;
mod hermes;
mod json_scan;
mod llama3;
mod mistral;
mod output;
mod prompt;
mod reasoning;

pub use output::{OutputFormat, OutputParser, Parsed, ToolCallDelta};
pub(crate) use prompt::prepare_chat;

/// The tool-call syntax a model writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFormat {
    /// `<tool_call>{"name": ..., "arguments": ...}</tool_call>` (Hermes, Qwen; and Lantern's
    /// format for templates without tools).
    Hermes,
    /// `{"name": ..., "parameters": ...}`, optionally after `<|python_tag|>` (Llama 3.x).
    Llama3,
    /// `[TOOL_CALLS][{"name": ..., "arguments": ...}]` or `[TOOL_CALLS]name[ARGS]{...}`.
    Mistral,
}

impl ToolFormat {
    /// The native format of a template that renders tools, from its markup.
    pub fn of_template(source: &str) -> Option<ToolFormat> {
        if source.contains("<tool_call>") {
            Some(ToolFormat::Hermes)
        } else if source.contains("[TOOL_CALLS]") {
            Some(ToolFormat::Mistral)
        } else if source.contains("<|python_tag|>") || source.contains("ipython") {
            Some(ToolFormat::Llama3)
        } else {
            None
        }
    }
}

/// Marker strings that are special tokens in some vocabularies but belong in the text the
/// parsers read; the engine renders these tokens instead of dropping them.
pub const PRESERVED_TOKENS: [&str; 8] = [
    "<tool_call>",
    "</tool_call>",
    "<think>",
    "</think>",
    "[TOOL_CALLS]",
    "[ARGS]",
    "[CALL_ID]",
    "<|python_tag|>",
];
