//! Prepares a chat prompt: roles the template lacks mapped onto ones it has, tools shown the
//! way the template expects (or described in the system prompt when it knows none), and the
//! grammar and output format that go with them.

use serde_json::Value;

use super::grammar::{function_name, tool_grammar};
use super::hermes::{CLOSE, OPEN};
use super::{OutputFormat, ToolFormat};
use crate::chat_template::{ChatTemplate, ChatTurn};
use crate::grammar::GrammarSource;
use crate::{ChatPrompt, EngineError, ToolChoice};

/// A rendered prompt and how to constrain and read its answer.
#[derive(Debug)]
pub(crate) struct PreparedChat {
    pub text: String,
    /// The grammar, and the request field it enforces (named in errors).
    pub grammar: Option<(GrammarSource, &'static str)>,
    pub format: OutputFormat,
}

/// How tools are shown to a template without tool support.
fn describe_tools(tools: &[Value], choice: &ToolChoice) -> String {
    let mut text = String::from(
        "# Tools\n\nYou can call functions to help with the request. Their signatures, with JSON Schema parameters, are listed inside <tools></tools>:\n<tools>\n",
    );
    for tool in tools {
        text.push_str(&tool["function"].to_string());
        text.push('\n');
    }
    text.push_str("</tools>\n\nTo call a function, answer with one JSON object per call, each inside <tool_call></tool_call> tags:\n<tool_call>\n{\"name\": \"function_name\", \"arguments\": {\"parameter\": \"value\"}}\n</tool_call>\nResults come back inside <tool_response></tool_response> tags.");
    match choice {
        ToolChoice::Required => text.push_str(" You must call at least one function now."),
        ToolChoice::Function(name) => {
            text.push_str(&format!(" You must call the function `{name}` now."))
        }
        _ => text.push_str(" When no function is needed, answer normally."),
    }
    text
}

/// `arguments` as the template expects them: templates iterate or `tojson` an object, while
/// the OpenAI API sends a JSON string.
fn arguments_as_objects(calls: &Value) -> Value {
    let mut calls = calls.clone();
    if let Some(list) = calls.as_array_mut() {
        for call in list {
            if let Some(args) = call.pointer_mut("/function/arguments") {
                if let Some(parsed) = args.as_str().and_then(|s| serde_json::from_str(s).ok()) {
                    *args = parsed;
                }
            }
        }
    }
    calls
}

/// A past assistant call written out as the Hermes text the model would have produced.
fn calls_as_text(calls: &Value) -> String {
    let mut text = String::new();
    for call in calls.as_array().into_iter().flatten() {
        let args = call
            .pointer("/function/arguments")
            .map(|a| match a.as_str() {
                Some(s) => serde_json::from_str(s).unwrap_or(Value::String(s.into())),
                None => a.clone(),
            })
            .unwrap_or(Value::Null);
        // Name first, as the grammar makes the model write it.
        let name = call
            .pointer("/function/name")
            .cloned()
            .unwrap_or(Value::Null);
        text.push_str(&format!(
            "{OPEN}\n{{\"name\": {name}, \"arguments\": {args}}}\n{CLOSE}\n"
        ));
    }
    text.trim_end().to_string()
}

/// Rewrites the history for the template's roles. `native`: the template renders tool calls
/// and results itself; otherwise calls become Hermes text and results user turns.
fn map_turns(messages: Vec<ChatTurn>, template: &ChatTemplate, native: bool) -> Vec<ChatTurn> {
    let caps = template.caps();
    let mut out: Vec<ChatTurn> = Vec::with_capacity(messages.len());
    for mut turn in messages {
        if turn.role == "developer" && !caps.developer {
            turn.role = "system".into();
        }
        if native {
            if let Some(calls) = &turn.tool_calls {
                turn.tool_calls = Some(arguments_as_objects(calls));
            }
            out.push(turn);
            continue;
        }
        if let Some(calls) = turn.tool_calls.take() {
            let mut content = turn.content.take().unwrap_or_default();
            if !content.is_empty() {
                content.push('\n');
            }
            content.push_str(&calls_as_text(&calls));
            turn.content = Some(content);
        }
        if turn.role == "tool" {
            let result = format!(
                "<tool_response>\n{}\n</tool_response>",
                turn.content.as_deref().unwrap_or("")
            );
            // Consecutive results share one user turn, for templates that need alternation.
            match out.last_mut() {
                Some(last) if last.role == "user" && last.tool_call_id.is_some() => {
                    let c = last.content.get_or_insert_with(String::new);
                    c.push('\n');
                    c.push_str(&result);
                }
                _ => {
                    let mut user = ChatTurn::new("user", result);
                    // Marks the turn as made of tool results (never rendered by the fallback).
                    user.tool_call_id = turn.tool_call_id.take();
                    out.push(user);
                }
            }
            continue;
        }
        out.push(turn);
    }
    if !native {
        for turn in &mut out {
            turn.tool_call_id = None;
        }
    }
    out
}

/// Puts `text` into the system prompt: appended to a leading system turn, or as a new one.
fn add_system(turns: &mut Vec<ChatTurn>, text: &str) {
    match turns.first_mut() {
        Some(first) if first.role == "system" => {
            let c = first.content.get_or_insert_with(String::new);
            if !c.is_empty() {
                c.push_str("\n\n");
            }
            c.push_str(text);
        }
        _ => turns.insert(0, ChatTurn::new("system", text)),
    }
}

fn check_tool_choice(tools: &[Value], choice: &ToolChoice) -> Result<(), EngineError> {
    if let ToolChoice::Function(name) = choice {
        if !tools
            .iter()
            .any(|t| function_name(t) == Some(name.as_str()))
        {
            return Err(EngineError::InvalidRequest {
                message: format!(
                    "'tool_choice' names the function '{name}', which is not in 'tools'."
                ),
                param: Some("tool_choice".into()),
            });
        }
    }
    if matches!(choice, ToolChoice::Required | ToolChoice::Function(_)) && tools.is_empty() {
        return Err(EngineError::InvalidRequest {
            message: "'tool_choice' requires a call, but no 'tools' were given.".into(),
            param: Some("tool_choice".into()),
        });
    }
    Ok(())
}

/// Renders `chat` and decides its grammar and output format. `answer` is `response_format`'s
/// grammar; `tool_calls_token` the id of Mistral's `[TOOL_CALLS]` token, if the vocabulary has
/// one.
pub(crate) fn prepare_chat(
    template: &ChatTemplate,
    chat: ChatPrompt,
    answer: Option<GrammarSource>,
    tool_calls_token: Option<u32>,
) -> Result<PreparedChat, EngineError> {
    check_tool_choice(&chat.tools, &chat.tool_choice)?;
    let caps = template.caps();
    let native_format = caps
        .tools
        .then(|| ToolFormat::of_template(template.source()))
        .flatten();
    let native = native_format.is_some() && caps.tool_calls;
    let offer = !chat.tools.is_empty() && chat.tool_choice != ToolChoice::None;
    let mut turns = map_turns(chat.messages, template, native);
    if offer && !native {
        add_system(&mut turns, &describe_tools(&chat.tools, &chat.tool_choice));
    }
    let mut extra = chat.template_kwargs;
    if let Some(on) = chat.enable_thinking {
        extra.insert("enable_thinking".into(), Value::Bool(on));
    }
    let tools = (offer && native).then_some(chat.tools.as_slice());
    let text = template.render_with(&turns, tools, &extra)?;
    let format = OutputFormat {
        tool_calls: offer.then(|| {
            native_format
                .filter(|_| native)
                .unwrap_or(ToolFormat::Hermes)
        }),
        reasoning: caps.thinks.then(|| text.trim_end().ends_with("<think>")),
    };
    let grammar = match format.tool_calls {
        Some(tool_format) => tool_grammar(
            tool_format,
            native,
            &chat.tools,
            &chat.tool_choice,
            chat.parallel_tool_calls,
            answer.as_ref(),
            tool_calls_token,
        )?
        .map(|g| (g, "tools"))
        .or(answer.map(|a| (a, "response_format"))),
        None => answer.map(|a| (a, "response_format")),
    };
    Ok(PreparedChat {
        text,
        grammar,
        format,
    })
}

#[cfg(test)]
#[path = "prompt_tests.rs"]
mod tests;
