//! The HTTP layer against a fake backend: framing, error envelopes, panics, loading state.

mod common;

use axum::http::StatusCode;
use common::{app, app_with, app_with_format, done, send, text};
use lantern_engine::tools::{OutputFormat, ToolFormat};
use lantern_engine::{EngineError, Event};
use serde_json::{json, Value};

fn chat_body(extra: Value) -> String {
    let mut body = json!({"model": "fake", "messages": [{"role": "user", "content": "hi"}]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body.to_string()
}

fn assert_envelope(status: StatusCode, ctype: &str, body: &str, want: StatusCode) -> Value {
    assert_eq!(status, want, "{body}");
    assert!(ctype.starts_with("application/json"), "{ctype}");
    let v: Value = serde_json::from_str(body).unwrap();
    let err = &v["error"];
    assert!(err["message"].is_string());
    assert!(err["type"].is_string());
    assert!(err.get("param").is_some() && err.get("code").is_some());
    err.clone()
}

#[tokio::test]
async fn chat_non_stream_shape() {
    let (status, _, body) =
        send(app(), "POST", "/v1/chat/completions", &chat_body(json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(
        v["choices"][0],
        json!({"index": 0, "message": {"role": "assistant", "content": "Hello", "refusal": null},
               "logprobs": null, "finish_reason": "stop"})
    );
    assert_eq!(v["usage"]["total_tokens"], 5);
}

#[tokio::test]
async fn chat_stream_framing() {
    let (status, ctype, body) = send(
        app(),
        "POST",
        "/v1/chat/completions",
        &chat_body(json!({"stream": true, "stream_options": {"include_usage": true}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.starts_with("text/event-stream"));
    let events: Vec<&str> = body.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert!(events.iter().all(|e| e.starts_with("data: ")), "{body}");
    assert_eq!(*events.last().unwrap(), "data: [DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(&e[6..]).unwrap())
        .collect();
    assert_eq!(chunks.len(), 5, "role, two deltas, finish, usage");
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(chunks[1]["choices"][0]["delta"], json!({"content": "Hel"}));
    assert_eq!(chunks[3]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[4]["choices"], json!([]));
    assert_eq!(chunks[4]["usage"]["completion_tokens"], 2);
    let ids: std::collections::HashSet<_> = chunks.iter().map(|c| c["id"].clone()).collect();
    assert_eq!(ids.len(), 1);
    // As OpenAI sends it: every chunk but the last says `"usage": null`.
    assert!(chunks[..4]
        .iter()
        .all(|c| c.get("usage") == Some(&Value::Null)));

    // Without include_usage there is no usage key at all.
    let (_, _, body) = send(
        app(),
        "POST",
        "/v1/chat/completions",
        &chat_body(json!({"stream": true})),
    )
    .await;
    let plain: Vec<Value> = body
        .split("\n\n")
        .filter(|e| e.starts_with("data: {"))
        .map(|e| serde_json::from_str(&e[6..]).unwrap())
        .collect();
    assert_eq!(plain.len(), 4);
    assert!(plain.iter().all(|c| c.get("usage").is_none()));
}

#[tokio::test]
async fn error_after_stream_began_is_an_sse_error_event() {
    let app = app_with(
        vec![text("x"), Event::Error(EngineError::Decode("boom".into()))],
        false,
        true,
    );
    let (status, _, body) = send(
        app,
        "POST",
        "/v1/chat/completions",
        &chat_body(json!({"stream": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let last = body.split("\n\n").filter(|e| !e.is_empty()).last().unwrap();
    let v: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(v["error"]["type"], "server_error");
    assert!(!body.contains("[DONE]"));
}

#[tokio::test]
async fn stream_cut_short_without_done_is_an_error() {
    let app = app_with(vec![text("x")], false, true);
    let (_, _, body) = send(
        app,
        "POST",
        "/v1/chat/completions",
        &chat_body(json!({"stream": true})),
    )
    .await;
    assert!(body.contains("\"error\""), "{body}");
    let (status, ctype, body) = send(
        app_with(vec![text("x")], false, true),
        "POST",
        "/v1/chat/completions",
        &chat_body(json!({})),
    )
    .await;
    assert_envelope(status, &ctype, &body, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn panic_becomes_500_envelope() {
    let app = app_with(vec![], true, true);
    let (status, ctype, body) =
        send(app, "POST", "/v1/chat/completions", &chat_body(json!({}))).await;
    let err = assert_envelope(status, &ctype, &body, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(err["type"], "server_error");
}

#[tokio::test]
async fn loading_model_is_503_and_health_says_so() {
    let (status, ctype, body) = send(
        app_with(vec![], false, false),
        "POST",
        "/v1/chat/completions",
        &chat_body(json!({})),
    )
    .await;
    assert_envelope(status, &ctype, &body, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, body) = send(app_with(vec![], false, false), "GET", "/health", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, r#"{"status":"loading"}"#);
    let (status, _, body) = send(app(), "GET", "/health", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"status":"ok"}"#);
}

#[tokio::test]
async fn request_errors() {
    let cases: Vec<(&str, &str, String, StatusCode)> = vec![
        (
            "POST",
            "/v1/chat/completions",
            "{oops".into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/chat/completions",
            String::new(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/chat/completions",
            chat_body(json!({"model": "other"})),
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            "/v1/chat/completions",
            chat_body(json!({"top_p": 2})),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/v1/chat/completions",
            "x".repeat(5000),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "GET",
            "/v1/chat/completions",
            String::new(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "PUT",
            "/v1/models",
            String::new(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        ("GET", "/nope", String::new(), StatusCode::NOT_FOUND),
        (
            "GET",
            "/v1/models/other",
            String::new(),
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            "/v1/completions",
            json!({"model": "fake", "prompt": "too long"}).to_string(),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (method, uri, body, want) in cases {
        let (status, ctype, text) = send(app(), method, uri, &body).await;
        let err = assert_envelope(status, &ctype, &text, want);
        if uri == "/v1/completions" {
            assert_eq!(err["code"], "context_length_exceeded");
            assert_eq!(err["param"], "prompt");
        }
    }
}

#[tokio::test]
async fn models_endpoints() {
    let (status, _, body) = send(app(), "GET", "/v1/models", "").await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        json!({"object": "list", "data": [{"id": "fake", "object": "model", "created": 1_700_000_000u64, "owned_by": "lantern", "status": "loaded"}]})
    );
    let (status, _, body) = send(app(), "GET", "/v1/models/fake", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["id"], "fake");
}

#[tokio::test]
async fn completions_several_prompts_stream() {
    let (status, _, body) = send(
        app(),
        "POST",
        "/v1/completions",
        &json!({"model": "fake", "prompt": ["a", "b"], "stream": true}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let chunks: Vec<Value> = body
        .split("\n\n")
        .filter(|e| e.starts_with("data: {"))
        .map(|e| serde_json::from_str(&e[6..]).unwrap())
        .collect();
    for index in [0, 1] {
        let text: String = chunks
            .iter()
            .filter(|c| c["choices"][0]["index"] == index)
            .map(|c| c["choices"][0]["text"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(text, "Hello");
        let finishes = chunks
            .iter()
            .filter(|c| {
                c["choices"][0]["index"] == index && c["choices"][0]["finish_reason"] == "stop"
            })
            .count();
        assert_eq!(finishes, 1);
    }
    assert!(body.ends_with("data: [DONE]\n\n"));
}

fn hermes() -> OutputFormat {
    OutputFormat {
        tool_calls: Some(ToolFormat::Hermes),
        reasoning: None,
    }
}

fn call_events() -> Vec<Event> {
    vec![
        text("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\""),
        text(": \"Paris\"}}\n</tool_call>"),
        done(),
    ]
}

const TOOLS: &str = r#""tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]"#;

#[tokio::test]
async fn tool_calls_render_with_null_content_and_finish_reason() {
    let app = app_with_format(call_events(), false, true, hermes());
    let body =
        format!(r#"{{"model":"fake","messages":[{{"role":"user","content":"hi"}}],{TOOLS}}}"#);
    let (status, _, body) = send(app, "POST", "/v1/chat/completions", &body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"city": "Paris"}"#);
}

#[tokio::test]
async fn streamed_tool_calls_send_id_and_name_once() {
    let app = app_with_format(call_events(), false, true, hermes());
    let body = format!(
        r#"{{"model":"fake","stream":true,"messages":[{{"role":"user","content":"hi"}}],{TOOLS}}}"#
    );
    let (status, _, body) = send(app, "POST", "/v1/chat/completions", &body).await;
    assert_eq!(status, StatusCode::OK);
    let chunks: Vec<Value> = body
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let pieces: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert!(pieces.len() >= 2);
    assert!(pieces[0]["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(pieces[0]["function"]["name"], "get_weather");
    assert_eq!(pieces[0]["function"]["arguments"], "");
    assert!(pieces[1..]
        .iter()
        .all(|p| p.get("id").is_none() && p["function"].get("name").is_none()));
    let args: String = pieces
        .iter()
        .map(|p| p["function"]["arguments"].as_str().unwrap())
        .collect();
    assert_eq!(args, r#"{"city": "Paris"}"#);
    let finish: Vec<_> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, ["tool_calls"]);
}

#[tokio::test]
async fn unknown_and_refused_fields_are_400_naming_them() {
    for (field, value) in [
        ("repetition_penalty", "1.2"),
        ("audio", r#"{"voice":"alloy"}"#),
        ("web_search_options", "{}"),
    ] {
        let body = format!(
            r#"{{"model":"fake","messages":[{{"role":"user","content":"hi"}}],"{field}":{value}}}"#
        );
        let (status, _, body) = send(app(), "POST", "/v1/chat/completions", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["param"], field);
    }
    let body = r#"{"model":"fake","messages":[{"role":"user","content":"hi"}],"store":true,"metadata":{"a":"b"},"service_tier":"auto"}"#;
    let (status, _, _) = send(app(), "POST", "/v1/chat/completions", body).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn several_choices_count_the_prompt_once() {
    let body = r#"{"model":"fake","n":3,"messages":[{"role":"user","content":"hi"}]}"#;
    let (status, _, body) = send(app(), "POST", "/v1/chat/completions", body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let indices: Vec<_> = v["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, [0, 1, 2]);
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    assert_eq!(v["usage"]["completion_tokens"], 6);
}
