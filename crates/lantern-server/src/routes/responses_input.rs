//! Responses API input: items checked one by one (with the path of what is wrong), and the
//! conversation they make as chat messages.

use lantern_api::responses::{ContentItem, Item, ReasoningText, ResponseInput};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::routes::responses_render::new_id;

pub(super) fn invalid(message: impl Into<String>, param: impl Into<String>) -> ApiError {
    ApiError::invalid(message, Some(param.into()))
}

/// `input` as items, each checked, with ids where the client gave none.
pub(super) fn parse_input(input: Option<&ResponseInput>) -> Result<Vec<Item>, ApiError> {
    match input {
        None => Ok(Vec::new()),
        Some(ResponseInput::Text(text)) => Ok(vec![Item::Message {
            id: new_id("msg"),
            role: "user".into(),
            content: vec![ContentItem::InputText { text: text.clone() }],
            status: "completed".into(),
        }]),
        Some(ResponseInput::Items(values)) => values
            .iter()
            .enumerate()
            .map(|(i, v)| parse_item(&format!("input[{i}]"), v))
            .collect(),
    }
}

pub(super) fn text_field(
    obj: &Map<String, Value>,
    at: &str,
    name: &str,
) -> Result<String, ApiError> {
    obj.get(name)
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| {
            invalid(
                format!("'{at}.{name}' must be a string."),
                format!("{at}.{name}"),
            )
        })
}

fn parse_item(at: &str, value: &Value) -> Result<Item, ApiError> {
    let obj = value
        .as_object()
        .ok_or_else(|| invalid(format!("'{at}' must be an object."), at))?;
    let id = |prefix| {
        obj.get("id")
            .and_then(Value::as_str)
            .map_or_else(|| new_id(prefix), String::from)
    };
    let status = "completed".to_string();
    match obj.get("type").and_then(Value::as_str).unwrap_or("message") {
        "message" => {
            let role = text_field(obj, at, "role")?;
            if !["user", "assistant", "system", "developer"].contains(&role.as_str()) {
                return Err(invalid(
                    format!("Invalid role '{role}': expected user, assistant, system or developer."),
                    format!("{at}.role"),
                ));
            }
            let content = match obj.get("content") {
                Some(Value::String(text)) if role == "assistant" => {
                    vec![ContentItem::output_text(text.clone(), None)]
                }
                Some(Value::String(text)) => vec![ContentItem::InputText { text: text.clone() }],
                Some(Value::Array(parts)) => parts
                    .iter()
                    .enumerate()
                    .map(|(j, p)| parse_part(&format!("{at}.content[{j}]"), p))
                    .collect::<Result<_, _>>()?,
                _ => {
                    return Err(invalid(
                        format!("'{at}.content' must be a string or a list of content parts."),
                        format!("{at}.content"),
                    ))
                }
            };
            Ok(Item::Message {
                id: id("msg"),
                role,
                content,
                status,
            })
        }
        "function_call" => Ok(Item::FunctionCall {
            id: id("fc"),
            call_id: text_field(obj, at, "call_id")?,
            name: text_field(obj, at, "name")?,
            arguments: text_field(obj, at, "arguments")?,
            status,
        }),
        "function_call_output" => function_call_output(at, obj, id("fco")),
        // Earlier thinking, handed back: kept in the conversation, not shown to the template.
        "reasoning" => Ok(reasoning(obj, id("rs"))),
        "item_reference" => Err(invalid(
            "Item references are not supported: send the item itself, or continue a stored conversation with 'previous_response_id'.",
            format!("{at}.type"),
        )),
        other => Err(invalid(
            format!("Input items of type '{other}' are not supported: this server takes message, function_call, function_call_output and reasoning items."),
            format!("{at}.type"),
        )),
    }
}

fn function_call_output(at: &str, obj: &Map<String, Value>, id: String) -> Result<Item, ApiError> {
    let output = match obj.get("output") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| parse_part(&format!("{at}.output[{j}]"), p).map(|c| c.text().to_string()))
            .collect::<Result<Vec<_>, _>>()?
            .join("\n"),
        _ => {
            return Err(invalid(
                format!("'{at}.output' must be a string or a list of text parts."),
                format!("{at}.output"),
            ))
        }
    };
    Ok(Item::FunctionCallOutput {
        id,
        call_id: text_field(obj, at, "call_id")?,
        output,
        status: "completed".into(),
    })
}

fn reasoning(obj: &Map<String, Value>, id: String) -> Item {
    Item::Reasoning {
        id,
        summary: obj
            .get("summary")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        content: obj
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("text").and_then(Value::as_str))
            .map(|t| ReasoningText::new(t.to_string()))
            .collect(),
        encrypted_content: obj
            .get("encrypted_content")
            .and_then(Value::as_str)
            .map(String::from),
        status: "completed".into(),
    }
}

fn parse_part(at: &str, part: &Value) -> Result<ContentItem, ApiError> {
    let obj = part
        .as_object()
        .ok_or_else(|| invalid(format!("'{at}' must be an object."), at))?;
    match obj.get("type").and_then(Value::as_str) {
        Some("input_text") => Ok(ContentItem::InputText {
            text: text_field(obj, at, "text")?,
        }),
        Some("output_text") => Ok(ContentItem::output_text(text_field(obj, at, "text")?, None)),
        Some("refusal") => Ok(ContentItem::Refusal {
            refusal: text_field(obj, at, "refusal")?,
        }),
        Some(kind @ ("input_image" | "input_file" | "input_audio")) => Err(invalid(
            format!(
                "Content of type '{kind}' is not supported: this server's models read text only."
            ),
            format!("{at}.type"),
        )),
        other => Err(invalid(
            format!("Unknown content type {other:?}: expected input_text, output_text or refusal."),
            format!("{at}.type"),
        )),
    }
}

/// The conversation as chat messages: calls join the assistant turn before them, outputs
/// become `tool` messages, reasoning is left to the template (which drops earlier thinking).
pub(super) fn chat_messages(instructions: Option<&str>, items: &[Item]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(items.len() + 1);
    if let Some(text) = instructions {
        out.push(json!({"role": "system", "content": text}));
    }
    for item in items {
        match item {
            Item::Message { role, content, .. } => {
                let text: Vec<&str> = content.iter().map(ContentItem::text).collect();
                out.push(json!({"role": role, "content": text.join("\n")}));
            }
            Item::FunctionCall {
                call_id,
                name,
                arguments,
                ..
            } => {
                let call = json!({"id": call_id, "type": "function",
                    "function": {"name": name, "arguments": arguments}});
                match out.last_mut() {
                    Some(last) if last["role"] == "assistant" => {
                        match last.get_mut("tool_calls").and_then(Value::as_array_mut) {
                            Some(calls) => calls.push(call),
                            None => last["tool_calls"] = json!([call]),
                        }
                    }
                    _ => out
                        .push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
                }
            }
            Item::FunctionCallOutput {
                call_id, output, ..
            } => out.push(json!({"role": "tool", "tool_call_id": call_id, "content": output})),
            Item::Reasoning { .. } => {}
        }
    }
    out
}
