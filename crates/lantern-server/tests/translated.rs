//! The Responses and Messages APIs' HTTP layer against a fake backend: mid-stream failures end
//! each stream in its own protocol, and every error of /v1/messages is Anthropic's envelope.

mod common;

use axum::http::StatusCode;
use common::{app, app_with, send, text};
use lantern_engine::{EngineError, Event};
use serde_json::{json, Value};

/// `(event name, data)` of each SSE event.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = Value::Null;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap();
                }
            }
            (name, data)
        })
        .collect()
}

fn failing() -> axum::Router {
    app_with(
        vec![text("x"), Event::Error(EngineError::Decode("boom".into()))],
        false,
        true,
    )
}

#[tokio::test]
async fn responses_stream_failure_is_response_failed() {
    let body = json!({"model": "fake", "input": "hi", "stream": true}).to_string();
    let (status, _, out) = send(failing(), "POST", "/v1/responses", &body).await;
    assert_eq!(status, StatusCode::OK);
    let evs = events(&out);
    let (name, last) = evs.last().unwrap();
    assert_eq!(name, "response.failed");
    assert_eq!(last["response"]["status"], "failed");
    assert!(last["response"]["error"]["message"].is_string());
    let seq: Vec<u64> = evs
        .iter()
        .map(|(_, d)| d["sequence_number"].as_u64().unwrap())
        .collect();
    assert_eq!(seq, (0..evs.len() as u64).collect::<Vec<_>>());
    assert!(!out.contains("[DONE]"));
}

#[tokio::test]
async fn messages_stream_failure_is_an_error_event() {
    let body = json!({"model": "fake", "max_tokens": 8, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]})
    .to_string();
    let (status, _, out) = send(failing(), "POST", "/v1/messages", &body).await;
    assert_eq!(status, StatusCode::OK);
    let evs = events(&out);
    assert_eq!(evs[0].0, "message_start");
    let (name, last) = evs.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(last["type"], "error");
    assert_eq!(last["error"]["type"], "api_error");
}

#[tokio::test]
async fn messages_errors_are_anthropic_envelopes() {
    let cases = [
        (json!({"model": "fake", "messages": []}).to_string(), StatusCode::BAD_REQUEST, "invalid_request_error"),
        (json!({"model": "nope", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}).to_string(), StatusCode::NOT_FOUND, "not_found_error"),
        ("{not json".to_string(), StatusCode::BAD_REQUEST, "invalid_request_error"),
        (json!({"model": "fake", "max_tokens": 4, "messages": [], "mcp_servers": [{}]}).to_string(), StatusCode::BAD_REQUEST, "invalid_request_error"),
    ];
    for (body, want, kind) in cases {
        let (status, ctype, out) = send(app(), "POST", "/v1/messages", &body).await;
        assert_eq!(status, want, "{out}");
        assert!(ctype.starts_with("application/json"));
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["type"], "error", "{out}");
        assert_eq!(v["error"]["type"], kind, "{out}");
        assert!(v["error"]["message"].as_str().unwrap().len() > 5);
    }
    // A model still loading is Anthropic's 529 overloaded_error.
    let body =
        json!({"model": "fake", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, out) = send(
        app_with(vec![], false, false),
        "POST",
        "/v1/messages",
        &body.to_string(),
    )
    .await;
    assert_eq!(status.as_u16(), 529, "{out}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["error"]["type"],
        "overloaded_error"
    );
    // Other routes keep OpenAI's envelope.
    let (_, _, out) = send(app(), "POST", "/v1/responses", "{not json").await;
    assert!(serde_json::from_str::<Value>(&out).unwrap()["error"]["message"].is_string());
}

#[tokio::test]
async fn responses_store_retrieve_and_delete() {
    let app = app();
    let body = json!({"model": "fake", "input": "hi"}).to_string();
    let (status, _, out) = send(app.clone(), "POST", "/v1/responses", &body).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let created: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(created["output"][0]["content"][0]["text"], "Hello");
    let id = created["id"].as_str().unwrap();
    let (status, _, got) = send(app.clone(), "GET", &format!("/v1/responses/{id}"), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_str::<Value>(&got).unwrap(), created);
    let (_, _, items) = send(
        app.clone(),
        "GET",
        &format!("/v1/responses/{id}/input_items"),
        "",
    )
    .await;
    let items: Value = serde_json::from_str(&items).unwrap();
    assert_eq!(items["data"][0]["content"][0]["text"], "hi");
    assert_eq!(items["has_more"], false);
    let (status, _, _) = send(app.clone(), "DELETE", &format!("/v1/responses/{id}"), "").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, out) = send(app, "GET", &format!("/v1/responses/{id}"), "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["error"]["type"],
        "invalid_request_error"
    );
}
