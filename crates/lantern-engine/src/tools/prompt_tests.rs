use serde_json::json;

use super::*;

const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// A Hermes-style template that renders tools, calls and results (Qwen2.5's structure, cut
/// down).
const HERMES: &str = r#"{%- if tools %}<|im_start|>system
<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools><|im_end|>
{% endif %}{%- for m in messages %}{%- if m.role == 'tool' %}<|im_start|>user
<tool_response>{{ m.content }}</tool_response><|im_end|>
{% elif m.tool_calls %}<|im_start|>assistant
{% for c in m.tool_calls %}<tool_call>{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}}</tool_call>{% endfor %}<|im_end|>
{% else %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endif %}{%- endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}"#;

fn template(src: &str) -> ChatTemplate {
    ChatTemplate::new(src, String::new(), String::new()).unwrap()
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
}

fn chat(messages: Vec<ChatTurn>, choice: ToolChoice) -> ChatPrompt {
    ChatPrompt {
        messages,
        tools: vec![weather_tool()],
        tool_choice: choice,
        parallel_tool_calls: true,
        ..ChatPrompt::default()
    }
}

#[test]
fn probes_tell_templates_apart() {
    let smol = template(SMOLLM2).caps();
    assert!(!smol.tools && !smol.tool_calls && !smol.developer && !smol.thinks);
    let hermes = template(HERMES).caps();
    assert!(hermes.tools && hermes.tool_calls);
    assert_eq!(ToolFormat::of_template(HERMES), Some(ToolFormat::Hermes));
}

#[test]
fn template_without_tools_gets_them_in_the_system_prompt_and_a_grammar() {
    let t = template(SMOLLM2);
    let p = prepare_chat(
        &t,
        chat(
            vec![ChatTurn::new("user", "Weather in Paris?")],
            ToolChoice::Required,
        ),
        None,
        None,
    )
    .unwrap();
    assert!(
        p.text.starts_with("<|im_start|>system\n# Tools"),
        "{}",
        p.text
    );
    assert!(p.text.contains("\"name\":\"get_weather\""));
    assert!(p.text.contains("You must call at least one function"));
    assert_eq!(p.format.tool_calls, Some(ToolFormat::Hermes));
    match p.grammar {
        Some((GrammarSource::Lark(g), "tools")) => {
            assert!(g.starts_with("start: calls\n"), "{g}");
            assert!(g.contains("\"const\":\"get_weather\""), "{g}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn history_with_calls_is_rewritten_for_a_template_without_tools() {
    let mut call = ChatTurn::new("assistant", "");
    call.tool_calls = Some(json!([{"id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]));
    let mut result = ChatTurn::new("tool", "18C and sunny");
    result.tool_call_id = Some("call_1".into());
    let mut result2 = ChatTurn::new("tool", "no rain");
    result2.tool_call_id = Some("call_2".into());
    let messages = vec![
        ChatTurn::new("developer", "Be brief."),
        ChatTurn::new("user", "Weather?"),
        call,
        result,
        result2,
    ];
    let p = prepare_chat(
        &template(SMOLLM2),
        chat(messages, ToolChoice::Auto),
        None,
        None,
    )
    .unwrap();
    assert!(
        p.text
            .starts_with("<|im_start|>system\nBe brief.\n\n# Tools"),
        "{}",
        p.text
    );
    assert!(p.text.contains(
        "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\"}}\n</tool_call><|im_end|>"
    ), "{}", p.text);
    assert!(p.text.contains("<|im_start|>user\n<tool_response>\n18C and sunny\n</tool_response>\n<tool_response>\nno rain\n</tool_response><|im_end|>"), "{}", p.text);
    // Free choice: text or calls.
    let Some((GrammarSource::Lark(g), _)) = p.grammar else {
        panic!()
    };
    assert!(g.starts_with("start: TEXT | calls"), "{g}");
}

#[test]
fn native_template_gets_tools_and_object_arguments_and_no_grammar_when_free() {
    let mut call = ChatTurn::new("assistant", "");
    call.tool_calls = Some(json!([{"id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]));
    let messages = vec![ChatTurn::new("user", "Weather?"), call];
    let p = prepare_chat(
        &template(HERMES),
        chat(messages, ToolChoice::Auto),
        None,
        None,
    )
    .unwrap();
    assert!(p.text.contains("<tools>{\"function\""), "{}", p.text);
    assert!(
        p.text.contains(
            r#"<tool_call>{"name": "get_weather", "arguments": {"city":"Paris"}}</tool_call>"#
        ),
        "{}",
        p.text
    );
    assert!(p.grammar.is_none());
    assert_eq!(p.format.tool_calls, Some(ToolFormat::Hermes));
}

#[test]
fn tool_choice_none_hides_tools_and_unknown_function_is_refused() {
    let p = prepare_chat(
        &template(SMOLLM2),
        chat(vec![ChatTurn::new("user", "hi")], ToolChoice::None),
        None,
        None,
    )
    .unwrap();
    assert!(!p.text.contains("# Tools"));
    assert!(p.grammar.is_none() && p.format.tool_calls.is_none());
    let err = prepare_chat(
        &template(SMOLLM2),
        chat(
            vec![ChatTurn::new("user", "hi")],
            ToolChoice::Function("nope".into()),
        ),
        None,
        None,
    )
    .unwrap_err();
    assert!(
        matches!(err, EngineError::InvalidRequest { param: Some(p), .. } if p == "tool_choice")
    );
}

#[test]
fn thinking_template_opens_reasoning() {
    let src = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}assistant: {% if enable_thinking is defined and not enable_thinking %}<think></think>{% else %}<think>{% endif %}";
    let t = template(src);
    let mut c = ChatPrompt {
        messages: vec![ChatTurn::new("user", "hi")],
        ..ChatPrompt::default()
    };
    let p = prepare_chat(&t, c.clone(), None, None).unwrap();
    assert_eq!(p.format.reasoning, Some(true));
    c.enable_thinking = Some(false);
    let p = prepare_chat(&t, c, None, None).unwrap();
    assert_eq!(p.format.reasoning, Some(false));
}
