//! Every request field of the chat, completions and embeddings endpoints, in one of three
//! classes: honoured (it changes the output, and the output follows it), metadata (accepted
//! and ignored, as OpenAI-compatible clients send it), or refused (a non-default value is a
//! 400 naming it). A field in no class is refused as unrecognised, as the OpenAI API does:
//! a client must never get output that silently ignores what it asked for.

use serde_json::{Map, Value};

use crate::InvalidParam;

/// What the server does with a request field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldClass {
    Honoured,
    Metadata,
    Refused,
}

use FieldClass::{Honoured, Metadata, Refused};

/// `POST /v1/chat/completions`. Extensions (as llama.cpp and vLLM accept them) are marked.
pub const CHAT_FIELDS: &[(&str, FieldClass)] = &[
    ("model", Honoured),
    ("messages", Honoured),
    ("temperature", Honoured),
    ("top_p", Honoured),
    ("n", Honoured),
    ("stream", Honoured),
    ("stream_options", Honoured),
    ("stop", Honoured),
    ("max_tokens", Honoured),
    ("max_completion_tokens", Honoured),
    ("presence_penalty", Honoured),
    ("frequency_penalty", Honoured),
    ("seed", Honoured),
    ("logprobs", Honoured),
    ("top_logprobs", Honoured),
    ("logit_bias", Honoured),
    ("tools", Honoured),
    ("tool_choice", Honoured),
    ("parallel_tool_calls", Honoured),
    ("response_format", Honoured),
    // Turns a template's thinking off ("none") where it can; no effect on other models.
    ("reasoning_effort", Honoured),
    ("top_k", Honoured),
    ("min_p", Honoured),
    ("ignore_eos", Honoured),
    ("chat_template_kwargs", Honoured),
    // Changes speed and usage, never the text.
    ("prediction", Honoured),
    ("user", Metadata),
    ("store", Metadata),
    ("metadata", Metadata),
    ("service_tier", Metadata),
    ("prompt_cache_key", Metadata),
    ("prompt_cache_retention", Metadata),
    ("prompt_cache_options", Metadata),
    ("safety_identifier", Metadata),
    ("audio", Refused),
    ("modalities", Refused),
    ("web_search_options", Refused),
    ("functions", Refused),
    ("function_call", Refused),
    ("verbosity", Refused),
    ("moderation", Refused),
];

/// `POST /v1/completions`.
pub const COMPLETION_FIELDS: &[(&str, FieldClass)] = &[
    ("model", Honoured),
    ("prompt", Honoured),
    ("temperature", Honoured),
    ("top_p", Honoured),
    ("n", Honoured),
    ("stream", Honoured),
    ("stream_options", Honoured),
    ("stop", Honoured),
    ("max_tokens", Honoured),
    ("presence_penalty", Honoured),
    ("frequency_penalty", Honoured),
    ("seed", Honoured),
    ("logprobs", Honoured),
    ("logit_bias", Honoured),
    ("echo", Honoured),
    ("top_k", Honoured),
    ("min_p", Honoured),
    ("ignore_eos", Honoured),
    ("prediction", Honoured),
    ("user", Metadata),
    ("best_of", Refused),
    ("suffix", Refused),
];

/// `POST /v1/embeddings`.
pub const EMBEDDING_FIELDS: &[(&str, FieldClass)] = &[
    ("model", Honoured),
    ("input", Honoured),
    ("encoding_format", Honoured),
    // Honoured when it equals the model's width (no truncation is offered).
    ("dimensions", Honoured),
    ("user", Metadata),
];

/// `POST /v1/responses`. Built-in tools, `truncation: auto` and unsupported `include` values
/// are refused by the handler, which names the item.
pub const RESPONSES_FIELDS: &[(&str, FieldClass)] = &[
    ("model", Honoured),
    ("input", Honoured),
    ("instructions", Honoured),
    ("max_output_tokens", Honoured),
    ("temperature", Honoured),
    ("top_p", Honoured),
    ("tools", Honoured),
    ("tool_choice", Honoured),
    ("parallel_tool_calls", Honoured),
    ("text", Honoured),
    ("reasoning", Honoured),
    ("stream", Honoured),
    ("store", Honoured),
    ("previous_response_id", Honoured),
    ("truncation", Honoured),
    ("include", Honoured),
    ("top_logprobs", Honoured),
    ("top_k", Honoured),
    ("min_p", Honoured),
    ("seed", Honoured),
    // Limits calls to built-in tools, which this server never runs.
    ("max_tool_calls", Metadata),
    // Only `include_obfuscation`: padding against side channels, never the text.
    ("stream_options", Metadata),
    ("metadata", Metadata),
    ("user", Metadata),
    ("safety_identifier", Metadata),
    ("service_tier", Metadata),
    ("prompt_cache_key", Metadata),
    ("prompt_cache_retention", Metadata),
    ("prompt_cache_options", Metadata),
    ("background", Refused),
    ("conversation", Refused),
    ("prompt", Refused),
    ("context_management", Refused),
    ("moderation", Refused),
    ("image", Refused),
];

/// `POST /v1/messages` (Anthropic).
pub const MESSAGES_FIELDS: &[(&str, FieldClass)] = &[
    ("model", Honoured),
    ("messages", Honoured),
    ("system", Honoured),
    ("max_tokens", Honoured),
    ("temperature", Honoured),
    ("top_p", Honoured),
    ("top_k", Honoured),
    ("stop_sequences", Honoured),
    ("stream", Honoured),
    ("tools", Honoured),
    ("tool_choice", Honoured),
    ("thinking", Honoured),
    ("output_config", Honoured),
    ("metadata", Metadata),
    ("service_tier", Metadata),
    // Prompt caching is automatic here (prefix reuse); the hint changes nothing.
    ("cache_control", Metadata),
    ("inference_geo", Metadata),
    ("speed", Metadata),
    ("user_profile_id", Metadata),
    ("workspace_id", Metadata),
    ("container", Refused),
    ("mcp_servers", Refused),
    ("context_management", Refused),
];

/// `POST /v1/messages/count_tokens` (Anthropic).
pub const COUNT_TOKENS_FIELDS: &[(&str, FieldClass)] = &[
    ("model", Honoured),
    ("messages", Honoured),
    ("system", Honoured),
    ("tools", Honoured),
    ("tool_choice", Honoured),
    ("thinking", Honoured),
    ("output_config", Honoured),
    ("cache_control", Metadata),
    ("speed", Metadata),
    ("user_profile_id", Metadata),
    ("workspace_id", Metadata),
    ("mcp_servers", Refused),
    ("context_management", Refused),
];

/// Whether a refused field carries a value that asks for nothing (its default).
fn is_default(field: &str, value: &Value) -> bool {
    match (field, value) {
        (_, Value::Null) => true,
        ("modalities", Value::Array(items)) => items.iter().all(|m| m == "text"),
        ("verbosity", v) => v == "medium",
        ("best_of", v) => v == 1,
        ("suffix", v) => v == "",
        ("functions", Value::Array(items)) | ("mcp_servers", Value::Array(items)) => {
            items.is_empty()
        }
        ("background", v) => v == false,
        _ => false,
    }
}

fn refusal(field: &str) -> String {
    match field {
        "audio" | "modalities" => "Audio output is not supported: this server generates text only (modalities: [\"text\"]).".into(),
        "web_search_options" => "Web search is not available on this server.".into(),
        "functions" | "function_call" => format!("'{field}' is deprecated and not supported; use 'tools' and 'tool_choice'."),
        "verbosity" => "'verbosity' other than \"medium\" is not supported by local models.".into(),
        "moderation" => "Moderation is not available on this server.".into(),
        "best_of" => "best_of other than 1 is not supported.".into(),
        "background" => "Background responses are not supported: send the request with stream or wait for it.".into(),
        "conversation" => "Conversations objects are not supported; continue with 'previous_response_id'.".into(),
        "prompt" => "Stored prompt templates are not supported; send 'instructions' and 'input'.".into(),
        "context_management" => "Server-side context management is not supported by this server.".into(),
        "image" => "Image generation is not available on this server.".into(),
        "container" => "Code execution containers are not available on this server.".into(),
        "mcp_servers" => "Remote MCP servers are not supported by this server.".into(),
        "suffix" => "'suffix' (fill-in-the-middle) is not supported by this server.".into(),
        _ => format!("'{field}' is not supported by this server."),
    }
}

/// Checks a request body's top-level fields against `table`: unknown fields and refused
/// fields with a non-default value are errors naming the field.
pub fn check_fields(
    body: &Map<String, Value>,
    table: &[(&str, FieldClass)],
) -> Result<(), InvalidParam> {
    for (key, value) in body {
        match table.iter().find(|(name, _)| name == key) {
            None => {
                return Err(InvalidParam::new(
                    key,
                    format!("Unrecognized request argument supplied: {key}"),
                ))
            }
            Some((_, Refused)) if !is_default(key, value) => {
                return Err(InvalidParam::new(key, refusal(key)))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Fields whose value never changes the output: left out of response-cache keys.
pub fn ignored_for_output(
    table: &'static [(&'static str, FieldClass)],
) -> impl Iterator<Item = &'static str> {
    table
        .iter()
        .filter(|(name, class)| *class == Metadata || ["stream", "stream_options"].contains(name))
        .map(|(name, _)| *name)
}

#[cfg(test)]
#[path = "fields_tests.rs"]
mod tests;
