//! What a caller submits to the engine and what comes back.

use smallvec::SmallVec;

use crate::chat_template::ChatTurn;

/// A conversation to render with the model's chat template.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatPrompt {
    pub messages: Vec<ChatTurn>,
    /// OpenAI `tools` entries (`{"type":"function","function":{name, description, parameters}}`).
    pub tools: Vec<serde_json::Value>,
    pub tool_choice: ToolChoice,
    /// Several calls in one answer (`parallel_tool_calls`).
    pub parallel_tool_calls: bool,
    /// The template's `enable_thinking` switch, where it has one; `None` leaves its default.
    pub enable_thinking: Option<bool>,
    /// Extra variables for the template (`chat_template_kwargs`).
    pub template_kwargs: serde_json::Map<String, serde_json::Value>,
}

/// `tool_choice`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides between text and calls.
    #[default]
    Auto,
    /// No call: the tools are not shown to the model.
    None,
    /// At least one call.
    Required,
    /// Exactly this function.
    Function(String),
}

/// The prompt, before the engine turns it into tokens.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Rendered with the model's chat template, generation prompt appended.
    Chat(ChatPrompt),
    /// Tokenized as is (special tokens parsed, BOS added if the model wants one).
    Text(String),
    /// Token ids, used verbatim.
    Tokens(Vec<u32>),
}

/// A constraint on the generated text, enforced token by token.
#[derive(Debug, Clone, PartialEq)]
pub enum Grammar {
    /// Any JSON object.
    JsonObject,
    /// JSON valid against this schema. Constructs the grammar cannot enforce are refused.
    JsonSchema(serde_json::Value),
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
    pub seed: Option<u64>,
    /// Added to the logits of these tokens; -100 bans a token outright.
    pub logit_bias: Vec<(u32, f32)>,
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
            logit_bias: Vec::new(),
        }
    }
}

impl SamplingParams {
    /// Greedy decoding that reads nothing but the raw logits: no penalties, no bias. The
    /// sampler adds its own conditions (no grammar, no logprobs) before taking the argmax fast
    /// path.
    pub fn is_plain_greedy(&self) -> bool {
        self.temperature <= 0.0
            && self.presence_penalty == 0.0
            && self.frequency_penalty == 0.0
            && self.logit_bias.is_empty()
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
    /// Choices generated from the one prompt (prefilled once).
    pub n: u32,
    /// Report each token's log-probability and this many alternatives (0..=20).
    pub logprobs: Option<u32>,
    /// `response_format`: constrains the text answer.
    pub grammar: Option<Grammar>,
    /// Generation ends here with [`FinishReason::Deadline`] (the server's max_request_secs).
    pub deadline: Option<std::time::Instant>,
    /// The LoRA adapter (by name) to generate with; None: the base model.
    pub adapter: Option<String>,
    /// Text the answer is expected to resemble (OpenAI's Predicted Outputs): drafted and
    /// verified, so it speeds generation up without changing it.
    pub prediction: Option<String>,
}

impl GenerateRequest {
    pub fn new(prompt: Prompt) -> Self {
        GenerateRequest {
            prompt,
            sampling: SamplingParams::default(),
            max_tokens: None,
            stop: Vec::new(),
            ignore_eos: false,
            n: 1,
            logprobs: None,
            grammar: None,
            deadline: None,
            adapter: None,
            prediction: None,
        }
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The end-of-generation token, or a grammar's end.
    Stop,
    /// The request's stop string at this index (of `GenerateRequest::stop`) matched.
    StopSequence(u32),
    Length,
    /// The request's deadline passed (reported as `length`, never cached).
    Deadline,
}

/// Token counts of a finished choice, and how long it waited for a slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Prompt tokens whose KV was reused rather than computed.
    pub cached_tokens: u32,
    /// From the worker receiving the request to a slot taking it (zero for a cached replay).
    pub queued: std::time::Duration,
    /// Tokens of the request's prediction that the answer used (verified drafts), and the
    /// rest of the prediction's tokens.
    pub accepted_prediction_tokens: u32,
    pub rejected_prediction_tokens: u32,
}

/// A candidate token and its log-probability.
#[derive(Debug, Clone, PartialEq)]
pub struct TopLogprob {
    pub token: i32,
    /// The token's piece: may be part of a UTF-8 character.
    pub bytes: Vec<u8>,
    pub logprob: f32,
}

/// The log-probability of one generated token, and the most likely alternatives at its
/// position, from the distribution it was drawn from (after penalties, bias and grammar,
/// before temperature and truncation).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub token: i32,
    pub bytes: Vec<u8>,
    pub logprob: f32,
    pub top: Vec<TopLogprob>,
}

/// Newly generated text and the tokens it came from. Text is whole UTF-8 characters with
/// stop strings held back and removed; a token is reported with the text it completes, so a
/// token whose text was cut by a stop string is not reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    pub text: String,
    pub tokens: SmallVec<[i32; 2]>,
    /// One entry per token, when logprobs were asked for.
    pub logprobs: Vec<TokenLogprob>,
}

impl Delta {
    pub fn text(text: impl Into<String>) -> Self {
        Delta {
            text: text.into(),
            ..Delta::default()
        }
    }
}

/// What the engine sends back for one choice, in order: any number of `Delta`, then exactly
/// one `Done` or `Error`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Delta(Delta),
    Done {
        finish_reason: FinishReason,
        usage: TokenUsage,
    },
    Error(crate::EngineError),
}
