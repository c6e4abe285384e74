use super::*;

fn request(body: Value) -> CreateResponseRequest {
    let mut base = json!({"model": "m"});
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

fn chat_of(body: Value) -> Value {
    let req = request(body);
    let items = parse_input(req.input.as_ref()).unwrap();
    to_chat(&req, &items).unwrap().1
}

#[test]
fn string_input_and_instructions_become_system_and_user() {
    let chat = chat_of(json!({"input": "hi", "instructions": "be brief", "max_output_tokens": 7}));
    assert_eq!(
        chat["messages"],
        json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    );
    assert_eq!(chat["max_completion_tokens"], 7);
}

#[test]
fn calls_join_the_assistant_turn_and_outputs_become_tool_messages() {
    let chat = chat_of(json!({"input": [
        {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
        {"type": "function_call", "call_id": "call_1", "name": "w", "arguments": "{}"},
        {"type": "function_call", "call_id": "call_2", "name": "w", "arguments": "{\"a\":1}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
    ]}));
    let m = chat["messages"].as_array().unwrap();
    assert_eq!(m.len(), 3);
    assert_eq!(m[1]["role"], "assistant");
    assert_eq!(m[1]["tool_calls"].as_array().unwrap().len(), 2);
    assert_eq!(m[1]["tool_calls"][1]["function"]["arguments"], "{\"a\":1}");
    assert_eq!(
        m[2],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "sunny"})
    );
}

#[test]
fn function_tools_and_text_format_translate() {
    let chat = chat_of(json!({"input": "x",
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "tool_choice": {"type": "function", "name": "f"},
        "text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}}},
        "include": ["message.output_text.logprobs"], "top_logprobs": 2}));
    assert_eq!(chat["tools"][0]["function"]["name"], "f");
    assert_eq!(chat["tool_choice"]["function"]["name"], "f");
    assert_eq!(
        chat["response_format"]["json_schema"]["schema"],
        json!({"type": "object"})
    );
    assert_eq!(
        (chat["logprobs"].clone(), chat["top_logprobs"].clone()),
        (json!(true), json!(2))
    );
}

#[test]
fn built_in_tools_are_refused_unless_they_cannot_be_called() {
    let web = json!([{"type": "function", "name": "f"}, {"type": "web_search"}]);
    let req = request(json!({"input": "x", "tools": web}));
    let items = parse_input(req.input.as_ref()).unwrap();
    assert_eq!(
        param(to_chat(&req, &items).unwrap_err()),
        Some("tools[1].type".into())
    );
    let none = chat_of(json!({"input": "x", "tools": web, "tool_choice": "none"}));
    assert_eq!(none["tools"].as_array().unwrap().len(), 1);
    let allowed = chat_of(json!({"input": "x", "tools": web, "tool_choice":
        {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "f"}]}}));
    assert_eq!(allowed["tools"].as_array().unwrap().len(), 1);
    assert_eq!(allowed["tool_choice"], "auto");
}

#[test]
fn unsupported_items_and_parts_are_named() {
    let cases = [
        (
            json!([{"type": "item_reference", "id": "x"}]),
            "input[0].type",
        ),
        (json!([{"type": "computer_call"}]), "input[0].type"),
        (
            json!([{"role": "user", "content": [{"type": "input_image", "image_url": "u"}]}]),
            "input[0].content[0].type",
        ),
        (json!([{"role": "wizard", "content": "x"}]), "input[0].role"),
        (
            json!([{"type": "function_call", "name": "f"}]),
            "input[0].call_id",
        ),
    ];
    for (input, expected) in cases {
        let req = request(json!({"input": input}));
        let err = parse_input(req.input.as_ref()).unwrap_err();
        assert_eq!(param(err), Some(expected.into()), "{input}");
    }
}

#[test]
fn chat_errors_are_renamed_to_this_api() {
    let e = ApiError::invalid("bad", Some("max_completion_tokens".into())).rename_param(RENAMES);
    assert_eq!(param(e), Some("max_output_tokens".into()));
    let e = ApiError::invalid("bad", Some("messages[2].content".into())).rename_param(RENAMES);
    assert_eq!(param(e), Some("input[2].content".into()));
    let e = ApiError::invalid("bad", Some("messages_x".into())).rename_param(RENAMES);
    assert_eq!(param(e), Some("messages_x".into()));
}
