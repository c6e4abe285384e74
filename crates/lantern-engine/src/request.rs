//! What a caller submits to the engine and what comes back.

use crate::chat_template::ChatTurn;

/// The prompt, before the engine turns it into tokens.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Rendered with the model's chat template, generation prompt appended.
    Chat(Vec<ChatTurn>),
    /// Tokenized as is (special tokens parsed, BOS added if the model wants one).
    Text(String),
    /// Token ids, used verbatim.
    Tokens(Vec<u32>),
}

/// Per-request sampling settings. Defaults are the OpenAI API's.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    pub top_p: f32,
    /// 0 disables.
    pub top_k: i32,
    /// 0 disables.
    pub min_p: f32,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    /// `None` draws a random seed.
    pub seed: Option<u32>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: None,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding with no penalties: the argmax fast path applies.
    pub fn is_plain_greedy(&self) -> bool {
        self.temperature <= 0.0 && self.presence_penalty == 0.0 && self.frequency_penalty == 0.0
    }
}

/// One generation request.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateRequest {
    pub prompt: Prompt,
    pub sampling: SamplingParams,
    /// `None`: until the end of the sequence's context.
    pub max_tokens: Option<u32>,
    /// Stop strings; the matched text is never returned.
    pub stop: Vec<String>,
    /// Do not stop at the model's end-of-generation token (benchmarks, tests).
    pub ignore_eos: bool,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
}

/// Token counts of a finished request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Prompt tokens whose KV was reused rather than computed.
    pub cached_tokens: u32,
}

/// What the engine sends back for a request, in order: any number of `Text`, then exactly one
/// `Done` or `Error`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Newly generated text: whole UTF-8 characters, stop strings held back and removed.
    Text(String),
    Done {
        finish_reason: FinishReason,
        usage: TokenUsage,
    },
    Error(crate::EngineError),
}
