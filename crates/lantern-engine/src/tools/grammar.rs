//! Grammars that make a model's answer a valid tool call (or plain text, when it may choose),
//! in Lark with each tool's parameters embedded as a JSON Schema.

use serde_json::{json, Value};

use super::ToolFormat;
use crate::grammar::{json_options, GrammarSource};
use crate::{EngineError, ToolChoice};

/// Text that never contains a Hermes call tag (the "answer in prose" branch).
const HERMES_TEXT: &str = r"TEXT: /(?s:.+)/ & ~/(?s:.*<tool_call>.*)/";

/// The tools a call may use under `choice`, with their index in `tools`.
fn selected<'a>(tools: &'a [Value], choice: &ToolChoice) -> Vec<(usize, &'a Value)> {
    tools
        .iter()
        .enumerate()
        .filter(|(_, t)| match choice {
            ToolChoice::Function(name) => function_name(t) == Some(name.as_str()),
            _ => true,
        })
        .collect()
}

pub(crate) fn function_name(tool: &Value) -> Option<&str> {
    tool.pointer("/function/name").and_then(Value::as_str)
}

/// One Lark rule per tool: a JSON object naming it, with its parameters as arguments. A
/// tool marked `strict` refuses schema keywords the grammar cannot enforce; others are
/// enforced as far as they can be (as the OpenAI API treats non-strict tools).
fn call_rules(tools: &[(usize, &Value)], args_key: &str) -> (String, Vec<String>) {
    let mut rules = String::new();
    let mut names = Vec::new();
    for &(i, tool) in tools {
        let function = &tool["function"];
        let strict = function.get("strict").and_then(Value::as_bool) == Some(true);
        let parameters = match function.get("parameters") {
            Some(p) if p.is_object() => p.clone(),
            _ => json!({"type": "object", "properties": {}}),
        };
        let mut properties = serde_json::Map::new();
        properties.insert("name".into(), json!({"const": function["name"]}));
        properties.insert(args_key.into(), parameters);
        let schema = json!({
            "x-guidance": json_options(!strict),
            "type": "object",
            "properties": properties,
            "required": ["name", args_key],
            "additionalProperties": false,
        });
        let rule = format!("tool_{i}");
        rules.push_str(&format!("{rule}: %json {schema}\n"));
        names.push(rule);
    }
    (rules, names)
}

/// A text answer constrained by `response_format`, as a Lark rule, or free text.
fn answer_rule(answer: Option<&GrammarSource>) -> Option<String> {
    match answer {
        Some(GrammarSource::JsonSchema { schema, lenient }) => Some(format!(
            "answer: %json {}\n",
            crate::grammar::with_json_options(schema.clone(), *lenient)
        )),
        _ => None,
    }
}

/// The grammar for a request offering `tools`, or `None` when the answer is free: a template
/// with native tool support choosing freely (its output is parsed, not constrained).
pub(crate) fn tool_grammar(
    format: ToolFormat,
    native: bool,
    tools: &[Value],
    choice: &ToolChoice,
    parallel: bool,
    answer: Option<&GrammarSource>,
    tool_calls_token: Option<u32>,
) -> Result<Option<GrammarSource>, EngineError> {
    let forced = matches!(choice, ToolChoice::Required | ToolChoice::Function(_));
    if !forced && native && answer.is_none() {
        return Ok(None);
    }
    let tools = selected(tools, choice);
    if tools.is_empty() {
        return Err(EngineError::InvalidRequest {
            message: "'tool_choice' names a function that is not in 'tools'.".into(),
            param: Some("tool_choice".into()),
        });
    }
    // A model that was never taught tools (no native format) repeats a call it just made
    // instead of ending: it gets one call per answer. `parallel_tool_calls` permits several
    // calls, it never requires them, so one call honours it.
    let parallel = parallel && native && !matches!(choice, ToolChoice::Function(_));
    let args_key = if format == ToolFormat::Llama3 {
        "parameters"
    } else {
        "arguments"
    };
    let (rules, names) = call_rules(&tools, args_key);
    let body = names.join(" | ");
    let calls = match format {
        ToolFormat::Hermes => {
            let more = if parallel { " (\"\\n\" call)*" } else { "" };
            // A newline may end the answer: models write one after a call, and must not be
            // forced into another call by it.
            format!(
                "calls: call{more} \"\\n\"?\ncall: \"<tool_call>\\n\" body \"\\n</tool_call>\"\n"
            )
        }
        ToolFormat::Llama3 => {
            let more = if parallel { " (\"; \" call)*" } else { "" };
            format!("calls: call{more}\ncall: body\n")
        }
        ToolFormat::Mistral => {
            let marker =
                tool_calls_token.map_or("\"[TOOL_CALLS]\"".to_string(), |id| format!("<[{id}]>"));
            let more = if parallel { " (\", \" body)*" } else { "" };
            format!("calls: {marker} \" \"? \"[\" body{more} \"]\"\n")
        }
    };
    let (start, text) = match (forced, answer_rule(answer)) {
        (true, _) => ("start: calls\n".to_string(), String::new()),
        (false, Some(answer)) => ("start: answer | calls\n".to_string(), answer),
        (false, None) if format == ToolFormat::Hermes => (
            "start: TEXT | calls\n".to_string(),
            format!("{HERMES_TEXT}\n"),
        ),
        // Formats without a tag cannot tell prose from a call: a free choice is not
        // constrained (only Hermes is used for templates without tools).
        (false, None) => return Ok(None),
    };
    Ok(Some(GrammarSource::Lark(format!(
        "{start}{calls}body: {body}\n{rules}{text}"
    ))))
}
