//! What one client may ask of the server: request sizes beyond the body limit, connection
//! timeouts, a generation deadline, and the shutdown grace period. Each refusal is a 400
//! naming the field and the setting that bounds it.

use std::time::Duration;

use lantern_api::chat::ChatCompletionRequest;
use lantern_api::completions::{CompletionRequest, Prompt};
use lantern_engine::GenerateRequest;
use serde::Deserialize;

use crate::error::ApiError;

/// `[limits]` in the config file; the flags of the same names override it.
#[derive(Debug, Default, Clone, PartialEq, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitArgs {
    /// Most prompts in one /v1/completions request [default: 128]
    #[arg(long, value_name = "N")]
    pub max_prompts: Option<usize>,
    /// Most messages in one chat request [default: 1024]
    #[arg(long, value_name = "N")]
    pub max_messages: Option<usize>,
    /// Longest stop string, in bytes [default: 256]
    #[arg(long, value_name = "BYTES")]
    pub max_stop_bytes: Option<usize>,
    /// Largest max_tokens a request may ask for; also the default when it asks for none
    /// [default: unset, the sequence's context bounds it]
    #[arg(long = "max-tokens-limit", value_name = "N")]
    pub max_tokens: Option<u32>,
    /// Seconds a client has to send a request's headers; also how long an idle keep-alive
    /// connection stays open [default: 30]
    #[arg(long, value_name = "SECS")]
    pub header_read_timeout_secs: Option<u64>,
    /// A request's generation ends (finish_reason "length") after this many seconds
    /// [default: 0, no deadline]
    #[arg(long, value_name = "SECS")]
    pub max_request_secs: Option<u64>,
    /// On SIGTERM/SIGINT, seconds in-flight requests get to finish before they are cut
    /// [default: 20]
    #[arg(long, value_name = "SECS")]
    pub shutdown_grace_secs: Option<u64>,
}

/// The limits in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_prompts: usize,
    pub max_messages: usize,
    pub max_stop_bytes: usize,
    pub max_tokens: Option<u32>,
    pub header_read_timeout: Duration,
    pub max_request: Option<Duration>,
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        LimitArgs::default().resolve(LimitArgs::default())
    }
}

impl LimitArgs {
    /// Flags (`self`) win over the file.
    pub fn resolve(self, file: LimitArgs) -> Limits {
        let secs = Duration::from_secs;
        Limits {
            max_prompts: self.max_prompts.or(file.max_prompts).unwrap_or(128),
            max_messages: self.max_messages.or(file.max_messages).unwrap_or(1024),
            max_stop_bytes: self.max_stop_bytes.or(file.max_stop_bytes).unwrap_or(256),
            max_tokens: self.max_tokens.or(file.max_tokens),
            header_read_timeout: secs(
                self.header_read_timeout_secs
                    .or(file.header_read_timeout_secs)
                    .unwrap_or(30)
                    .max(1),
            ),
            max_request: self
                .max_request_secs
                .or(file.max_request_secs)
                .filter(|&s| s > 0)
                .map(secs),
            shutdown_grace: secs(
                self.shutdown_grace_secs
                    .or(file.shutdown_grace_secs)
                    .unwrap_or(20),
            ),
        }
    }
}

fn over(param: &str, message: String) -> ApiError {
    ApiError::InvalidRequest {
        message,
        param: Some(param.into()),
        code: Some("limit_exceeded".into()),
    }
}

impl Limits {
    pub fn check_chat(&self, req: &ChatCompletionRequest) -> Result<(), ApiError> {
        if req.messages.len() > self.max_messages {
            return Err(over(
                "messages",
                format!(
                    "{} messages exceed this server's limit of {} per request (max_messages).",
                    req.messages.len(),
                    self.max_messages
                ),
            ));
        }
        let max_tokens = req.max_completion_tokens.or(req.max_tokens);
        let param = if req.max_completion_tokens.is_some() {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        self.check_common(req.stop.as_ref().map(|s| s.as_slice()), max_tokens, param)
    }

    pub fn check_completion(&self, req: &CompletionRequest) -> Result<(), ApiError> {
        let n = prompt_count(req);
        if n > self.max_prompts {
            return Err(over(
                "prompt",
                format!(
                    "{n} prompts exceed this server's limit of {} per request (max_prompts).",
                    self.max_prompts
                ),
            ));
        }
        self.check_common(
            req.stop.as_ref().map(|s| s.as_slice()),
            req.max_tokens,
            "max_tokens",
        )
    }

    /// The server's share of a generation request: the max_tokens default and the deadline.
    pub fn apply(&self, request: &mut GenerateRequest) {
        if request.max_tokens.is_none() {
            request.max_tokens = self.max_tokens;
        }
        request.deadline = self.max_request.map(|d| std::time::Instant::now() + d);
    }

    fn check_common(
        &self,
        stop: Option<&[String]>,
        max_tokens: Option<i64>,
        param: &str,
    ) -> Result<(), ApiError> {
        if let Some(long) = stop
            .unwrap_or_default()
            .iter()
            .find(|s| s.len() > self.max_stop_bytes)
        {
            return Err(over(
                "stop",
                format!(
                    "A {}-byte stop string exceeds this server's limit of {} bytes (max_stop_bytes).",
                    long.len(),
                    self.max_stop_bytes
                ),
            ));
        }
        if let (Some(asked), Some(limit)) = (max_tokens, self.max_tokens) {
            if asked > i64::from(limit) {
                return Err(over(
                    param,
                    format!("{param}={asked} exceeds this server's limit of {limit} (--max-tokens-limit)."),
                ));
            }
        }
        Ok(())
    }
}

/// Prompts in a completions request (a token list is one prompt).
fn prompt_count(req: &CompletionRequest) -> usize {
    match &req.prompt {
        Prompt::Text(_) | Prompt::Tokens(_) => 1,
        Prompt::Texts(v) => v.len(),
        Prompt::TokenLists(v) => v.len(),
    }
}
