//! One output parser per choice: splits generated text into reasoning, content and tool-call
//! deltas as it streams, and produces the same split when run over a whole answer.

use super::reasoning::ReasoningSplitter;
use super::{hermes, llama3, mistral, ToolFormat};

/// How a request's output is to be read, decided when its prompt was prepared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputFormat {
    /// Tool calls to recognise, when the request offered tools.
    pub tool_calls: Option<ToolFormat>,
    /// `<think>` blocks to split out; `Some(true)` when the prompt already opened one.
    pub reasoning: Option<bool>,
}

/// A piece of one tool call: the first for a call carries its name, later ones only more of
/// its arguments (a JSON text, split anywhere).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCallDelta {
    /// Position of the call in the answer.
    pub index: u32,
    pub name: Option<String>,
    pub arguments: String,
}

/// What a piece of generated text turned out to be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub content: String,
    pub reasoning: String,
    pub tool_calls: Vec<ToolCallDelta>,
}

impl Parsed {
    pub fn is_empty(&self) -> bool {
        self.content.is_empty() && self.reasoning.is_empty() && self.tool_calls.is_empty()
    }

    /// Appends a call fragment, merging it into the previous one for the same call.
    pub(crate) fn push_call(&mut self, delta: ToolCallDelta) {
        if let Some(last) = self.tool_calls.last_mut() {
            if last.index == delta.index && delta.name.is_none() {
                last.arguments.push_str(&delta.arguments);
                return;
            }
        }
        self.tool_calls.push(delta);
    }
}

/// The family-specific half: content text in, content and calls out.
pub(crate) trait ToolParser: Send {
    fn push(&mut self, text: &str, out: &mut Parsed);
    /// The answer ended: flush held text, complete or give up on an open call.
    fn finish(&mut self, out: &mut Parsed);
}

pub struct OutputParser {
    reasoning: Option<ReasoningSplitter>,
    tools: Option<Box<dyn ToolParser>>,
    /// Scratch for the reasoning splitter's content output.
    content: String,
}

impl std::fmt::Debug for OutputParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputParser")
            .field("reasoning", &self.reasoning.is_some())
            .field("tools", &self.tools.is_some())
            .finish()
    }
}

impl OutputParser {
    pub fn new(format: OutputFormat) -> Self {
        let tools: Option<Box<dyn ToolParser>> = format.tool_calls.map(|f| match f {
            ToolFormat::Hermes => Box::new(hermes::HermesParser::default()) as Box<dyn ToolParser>,
            ToolFormat::Llama3 => Box::new(llama3::Llama3Parser::default()),
            ToolFormat::Mistral => Box::new(mistral::MistralParser::default()),
        });
        OutputParser {
            reasoning: format.reasoning.map(ReasoningSplitter::new),
            tools,
            content: String::new(),
        }
    }

    /// Whether this parser changes anything (else text can pass through untouched).
    pub fn is_identity(&self) -> bool {
        self.reasoning.is_none() && self.tools.is_none()
    }

    pub fn push(&mut self, text: &str) -> Parsed {
        let mut out = Parsed::default();
        self.content.clear();
        match &mut self.reasoning {
            Some(r) => r.push(text, &mut out.reasoning, &mut self.content),
            None => self.content.push_str(text),
        }
        self.route_content(&mut out);
        out
    }

    pub fn finish(&mut self) -> Parsed {
        let mut out = Parsed::default();
        self.content.clear();
        if let Some(r) = &mut self.reasoning {
            r.finish(&mut out.reasoning, &mut self.content);
        }
        self.route_content(&mut out);
        if let Some(t) = &mut self.tools {
            t.finish(&mut out);
        }
        out
    }

    fn route_content(&mut self, out: &mut Parsed) {
        if self.content.is_empty() {
            return;
        }
        match &mut self.tools {
            Some(t) => t.push(&self.content, out),
            None => out.content.push_str(&self.content),
        }
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `marker`: text that must
/// wait because it may be the start of the marker.
pub(crate) fn partial_suffix(text: &str, marker: &str) -> usize {
    (1..marker.len().min(text.len() + 1))
        .rev()
        .filter(|&k| marker.is_char_boundary(k) && text.is_char_boundary(text.len() - k))
        .find(|&k| text.ends_with(&marker[..k]))
        .unwrap_or(0)
}

/// Runs `parser` over pieces and returns everything it produced, merged.
#[cfg(test)]
pub(crate) fn run_pieces(format: OutputFormat, pieces: &[&str]) -> Parsed {
    let mut parser = OutputParser::new(format);
    let mut all = Parsed::default();
    let mut merge = |p: Parsed| {
        all.content.push_str(&p.content);
        all.reasoning.push_str(&p.reasoning);
        for c in p.tool_calls {
            all.push_call(c);
        }
    };
    for piece in pieces {
        merge(parser.push(piece));
    }
    merge(parser.finish());
    all
}

/// Splits `text` into pieces of `n` characters, as a stream of tokens would arrive.
#[cfg(test)]
pub(crate) fn chunks(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(n).map(|c| c.iter().collect()).collect()
}
