use serde_json::json;

use super::*;

/// The request properties of the official OpenAI schema (openapi `CreateChatCompletionRequest`,
/// `CreateCompletionRequest`, `CreateEmbeddingRequest`, with their `allOf` parts), as of the
/// schema this server was checked against.
const OFFICIAL_CHAT: [&str; 37] = [
    "audio",
    "frequency_penalty",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "max_completion_tokens",
    "max_tokens",
    "messages",
    "metadata",
    "modalities",
    "model",
    "moderation",
    "n",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt_cache_key",
    "prompt_cache_options",
    "prompt_cache_retention",
    "reasoning_effort",
    "response_format",
    "safety_identifier",
    "seed",
    "service_tier",
    "stop",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "user",
    "verbosity",
    "web_search_options",
];
const OFFICIAL_COMPLETIONS: [&str; 18] = [
    "best_of",
    "echo",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "max_tokens",
    "model",
    "n",
    "presence_penalty",
    "prompt",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "suffix",
    "temperature",
    "top_p",
    "user",
];
const OFFICIAL_EMBEDDINGS: [&str; 5] = ["dimensions", "encoding_format", "input", "model", "user"];

fn classes(table: &[(&str, FieldClass)], name: &str) -> usize {
    table.iter().filter(|(n, _)| *n == name).count()
}

#[test]
fn every_official_field_is_in_exactly_one_class() {
    for (table, official) in [
        (CHAT_FIELDS, &OFFICIAL_CHAT[..]),
        (COMPLETION_FIELDS, &OFFICIAL_COMPLETIONS[..]),
        (EMBEDDING_FIELDS, &OFFICIAL_EMBEDDINGS[..]),
    ] {
        for name in official {
            assert_eq!(classes(table, name), 1, "{name}");
        }
        // And nothing is listed twice (extensions included).
        for (name, _) in table {
            assert_eq!(classes(table, name), 1, "{name} listed twice");
        }
    }
}

fn check(body: serde_json::Value) -> Result<(), InvalidParam> {
    check_fields(body.as_object().unwrap(), CHAT_FIELDS)
}

#[test]
fn unknown_and_refused_fields_name_themselves() {
    let err = check(json!({"model": "m", "repetition_penalty": 1.1})).unwrap_err();
    assert_eq!(err.param, "repetition_penalty");
    assert!(err.message.contains("Unrecognized request argument"));
    for (field, value) in [
        ("audio", json!({"voice": "alloy", "format": "wav"})),
        ("modalities", json!(["text", "audio"])),
        ("web_search_options", json!({})),
        ("functions", json!([{"name": "f"}])),
        ("function_call", json!("auto")),
        ("verbosity", json!("low")),
    ] {
        let err = check(json!({ field: value })).unwrap_err();
        assert_eq!(err.param, field);
    }
}

#[test]
fn defaults_of_refused_fields_and_metadata_pass() {
    check(
        json!({"modalities": ["text"], "verbosity": "medium", "audio": null, "user": "u",
        "store": true, "metadata": {"a": "b"}, "service_tier": "auto", "prompt_cache_key": "k",
        "safety_identifier": "s"}),
    )
    .unwrap();
}

#[test]
fn only_metadata_and_stream_settings_are_left_out_of_cache_keys() {
    let ignored: Vec<_> = ignored_for_output(CHAT_FIELDS).collect();
    assert!(ignored.contains(&"user") && ignored.contains(&"stream"));
    for (name, class) in CHAT_FIELDS {
        if *class == FieldClass::Honoured && !["stream", "stream_options"].contains(name) {
            assert!(!ignored.contains(name), "{name}");
        }
    }
}
