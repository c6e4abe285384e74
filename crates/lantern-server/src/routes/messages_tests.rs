use super::*;

fn request(body: Value) -> MessagesRequest {
    let mut base = json!({"model": "m", "max_tokens": 16});
    base.as_object_mut()
        .unwrap()
        .extend(body.as_object().unwrap().clone());
    serde_json::from_value(base).unwrap()
}

fn param(e: ApiError) -> Option<String> {
    match e {
        ApiError::InvalidRequest { param, .. } => param,
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[test]
fn system_tool_use_and_tool_result_become_chat_turns() {
    let req = request(json!({
        "system": [{"type": "text", "text": "be brief"}],
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hm", "signature": ""},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}]},
                {"type": "text", "text": "thanks"}]},
        ],
        "tools": [{"name": "w", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "stop_sequences": ["END"],
    }));
    let (_, chat) = to_chat(&req, true).unwrap();
    let m = chat["messages"].as_array().unwrap();
    assert_eq!(m[0], json!({"role": "system", "content": "be brief"}));
    assert_eq!(m[2]["content"], "Checking.");
    assert_eq!(m[2]["tool_calls"][0]["id"], "toolu_1");
    assert_eq!(
        m[2]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(
        m[3],
        json!({"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"})
    );
    assert_eq!(m[4], json!({"role": "user", "content": "thanks"}));
    assert_eq!(
        chat["tools"][0]["function"]["parameters"],
        json!({"type": "object"})
    );
    assert_eq!(chat["tool_choice"], "required");
    assert_eq!(chat["parallel_tool_calls"], false);
    assert_eq!(chat["stop"], json!(["END"]));
    assert_eq!(chat["max_completion_tokens"], 16);
}

#[test]
fn thinking_and_output_format_translate() {
    let (_, off) = to_chat(
        &request(json!({"messages": [], "thinking": {"type": "disabled"}})),
        true,
    )
    .unwrap();
    assert_eq!(off["reasoning_effort"], "none");
    let (_, on) = to_chat(
        &request(json!({"messages": [], "thinking": {"type": "enabled", "budget_tokens": 1024}})),
        true,
    )
    .unwrap();
    assert_eq!(on["chat_template_kwargs"]["enable_thinking"], true);
    let (_, json_out) = to_chat(
        &request(json!({"messages": [], "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}})),
        true,
    )
    .unwrap();
    assert_eq!(
        json_out["response_format"]["json_schema"]["schema"],
        json!({"type": "object"})
    );
}

#[test]
fn refusals_name_the_field() {
    let mut no_max = request(json!({"messages": []}));
    no_max.max_tokens = None;
    assert_eq!(
        param(to_chat(&no_max, true).unwrap_err()),
        Some("max_tokens".into())
    );
    assert!(
        to_chat(&no_max, false).is_ok(),
        "count_tokens needs no max_tokens"
    );
    let cases = [
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}),
            "messages[0].content[0].type",
        ),
        (
            json!({"messages": [{"role": "system", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
            "tools.0.type",
        ),
        (
            json!({"messages": [], "tool_choice": {"type": "tool"}, "tools": [{"name": "f"}]}),
            "tool_choice.name",
        ),
        (
            json!({"messages": [], "thinking": {"type": "maybe"}}),
            "thinking.type",
        ),
        (
            json!({"messages": [], "output_config": {"task_budget": 3}}),
            "output_config.task_budget",
        ),
    ];
    for (body, expected) in cases {
        let err = to_chat(&request(body.clone()), true).unwrap_err();
        assert_eq!(param(err), Some(expected.into()), "{body}");
    }
}
