//! Splits a `<think>…</think>` block at the start of an answer into reasoning (Qwen3,
//! DeepSeek-R1, SmolLM3 and other templates that think).

use super::output::partial_suffix;

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing but whitespace yet: an opening tag may still come.
    Start,
    Inside,
    /// Right after the closing tag: whitespace here is dropped.
    Closed,
    Content,
}

#[derive(Debug)]
pub(crate) struct ReasoningSplitter {
    state: State,
    held: String,
    /// Nothing sent as reasoning yet: leading newlines are dropped.
    fresh: bool,
}

impl ReasoningSplitter {
    /// `inside`: the prompt ended with an opening tag, so the answer starts in reasoning.
    pub fn new(inside: bool) -> Self {
        ReasoningSplitter {
            state: if inside { State::Inside } else { State::Start },
            held: String::new(),
            fresh: true,
        }
    }

    pub fn push(&mut self, text: &str, reasoning: &mut String, content: &mut String) {
        self.held.push_str(text);
        loop {
            match self.state {
                State::Start => {
                    let trimmed = self.held.trim_start();
                    if let Some(rest) = trimmed.strip_prefix(OPEN) {
                        self.held = rest.to_string();
                        self.state = State::Inside;
                    } else if trimmed.is_empty() || OPEN.starts_with(trimmed) {
                        return;
                    } else {
                        self.state = State::Content;
                    }
                }
                State::Inside => {
                    if let Some(at) = self.held.find(CLOSE) {
                        let before: String = self.held.drain(..at).collect();
                        self.held.drain(..CLOSE.len());
                        self.emit(&before, reasoning);
                        self.state = State::Closed;
                        continue;
                    }
                    let keep = partial_suffix(&self.held, CLOSE);
                    let emit: String = self.held.drain(..self.held.len() - keep).collect();
                    self.emit(&emit, reasoning);
                    return;
                }
                State::Closed => {
                    let trimmed = self.held.trim_start();
                    if trimmed.is_empty() {
                        self.held.clear();
                        return;
                    }
                    self.held = trimmed.to_string();
                    self.state = State::Content;
                }
                State::Content => {
                    content.push_str(&self.held);
                    self.held.clear();
                    return;
                }
            }
        }
    }

    fn emit(&mut self, text: &str, reasoning: &mut String) {
        let text = if self.fresh {
            text.trim_start_matches('\n')
        } else {
            text
        };
        if !text.is_empty() {
            self.fresh = false;
            reasoning.push_str(text);
        }
    }

    pub fn finish(&mut self, reasoning: &mut String, content: &mut String) {
        match self.state {
            // An unterminated block (cut by max_tokens) is still reasoning.
            State::Inside => {
                let held = std::mem::take(&mut self.held);
                self.emit(&held, reasoning);
            }
            State::Start | State::Content => content.push_str(&self.held),
            State::Closed => {}
        }
        self.held.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::super::output::{chunks, run_pieces, OutputFormat};

    fn split(inside: bool, text: &str, n: usize) -> (String, String) {
        let pieces = chunks(text, n);
        let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let out = run_pieces(
            OutputFormat {
                tool_calls: None,
                reasoning: Some(inside),
            },
            &pieces,
        );
        (out.reasoning, out.content)
    }

    // Qwen3's shape of answer (its template opens no block itself).
    const QWEN3: &str = "<think>\nOkay, the user asks for the capital of France. That is Paris.\n</think>\n\nThe capital of France is **Paris**.";

    #[test]
    fn qwen3_block_is_split_in_any_piece_size() {
        for n in [1, 2, 3, 7, 200] {
            let (reasoning, content) = split(false, QWEN3, n);
            assert_eq!(
                reasoning, "Okay, the user asks for the capital of France. That is Paris.\n",
                "n={n}"
            );
            assert_eq!(content, "The capital of France is **Paris**.", "n={n}");
        }
    }

    // DeepSeek-R1's shape: its template ends the prompt with
    // "<think>\n", so the answer starts inside the block.
    const R1: &str = "The user wants 2+2. That's 4.\n</think>\n\n2 + 2 = 4.";

    #[test]
    fn prompt_opened_block() {
        let (reasoning, content) = split(true, R1, 3);
        assert_eq!(reasoning, "The user wants 2+2. That's 4.\n");
        assert_eq!(content, "2 + 2 = 4.");
    }

    #[test]
    fn no_block_is_all_content_and_cut_block_is_reasoning() {
        assert_eq!(
            split(false, "Just an answer.", 2),
            (String::new(), "Just an answer.".into())
        );
        assert_eq!(split(false, "<thi", 1), (String::new(), "<thi".into()));
        assert_eq!(
            split(false, "<think>half a thou", 4),
            ("half a thou".into(), String::new())
        );
    }
}
