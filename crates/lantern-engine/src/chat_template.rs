//! Renders a model's own Jinja chat template (`tokenizer.chat_template`) the way Hugging Face
//! transformers does: same globals, `trim_blocks`/`lstrip_blocks`, Python string methods.

use minijinja::{context, Environment, Error as JinjaError, ErrorKind};
use serde::Serialize;

use crate::EngineError;

/// ChatML, used when the model carries no template of its own.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// One message as the template sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatTurn {
    pub role: String,
    /// Text parts are already joined; assistant messages with only tool calls have `None`.
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<serde_json::Value>,
}

impl ChatTurn {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatTurn {
            role: role.into(),
            content: Some(content.into()),
            name: None,
            tool_call_id: None,
            tool_calls: None,
        }
    }
}

/// What a template can express, found by rendering probes at load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TemplateCaps {
    /// Renders the `tools` variable (the Hugging Face convention).
    pub tools: bool,
    /// Renders assistant `tool_calls` and `tool` messages.
    pub tool_calls: bool,
    /// Has a `developer` role of its own; otherwise developer messages become system ones.
    pub developer: bool,
    /// Writes `<think>` blocks (reasoning models).
    pub thinks: bool,
}

/// A compiled chat template plus the special-token strings it may reference.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    source: String,
    caps: TemplateCaps,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish_non_exhaustive()
    }
}

fn raise_exception(message: String) -> Result<String, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, message))
}

/// A format chrono cannot render (`%Q`) is a template error, not a panic in `to_string`.
fn strftime_now(format: String) -> Result<String, JinjaError> {
    use std::fmt::Write;
    let mut out = String::new();
    write!(out, "{}", chrono::Local::now().format(&format)).map_err(|_| {
        JinjaError::new(
            ErrorKind::InvalidOperation,
            format!("strftime_now: invalid format {format:?}"),
        )
    })?;
    Ok(out)
}

impl ChatTemplate {
    /// Compiles `source`; a template that does not parse is an error at load time, not per request.
    pub fn new(source: &str, bos_token: String, eos_token: String) -> Result<Self, EngineError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| EngineError::Template(format!("invalid Jinja: {e}")))?;
        let mut template = ChatTemplate {
            env,
            bos_token,
            eos_token,
            source: source.to_string(),
            caps: TemplateCaps::default(),
        };
        template.caps = template.probe();
        Ok(template)
    }

    /// Renders small conversations to see which features the template shows (a template that
    /// ignores `tools` renders the same text with and without them), as llama.cpp's chat
    /// capability detection does.
    fn probe(&self) -> TemplateCaps {
        const TOOL: &str = "lantern_probe_tool";
        let user = [ChatTurn::new("user", "hi")];
        let tools = [serde_json::json!({"type": "function", "function": {
            "name": TOOL, "description": "probe", "parameters": {"type": "object", "properties": {}}}})];
        let with_tools = self.render_with(&user, Some(&tools), &Default::default());
        let mut call = ChatTurn::new("assistant", "");
        call.tool_calls = Some(serde_json::json!([{"id": "call_probe", "type": "function",
            "function": {"name": TOOL, "arguments": {"x": 1}}}]));
        let mut result = ChatTurn::new("tool", "lantern_probe_result");
        result.tool_call_id = Some("call_probe".into());
        let history = [ChatTurn::new("user", "hi"), call, result];
        let rendered_calls = self
            .render_with(&history, Some(&tools), &Default::default())
            .unwrap_or_default();
        let developer = self
            .render_with(
                &[
                    ChatTurn::new("developer", "lantern_probe_dev"),
                    ChatTurn::new("user", "hi"),
                ],
                None,
                &Default::default(),
            )
            .unwrap_or_default();
        TemplateCaps {
            tools: with_tools.is_ok_and(|t| t.contains(TOOL)),
            tool_calls: rendered_calls.contains(TOOL)
                && rendered_calls.contains("lantern_probe_result"),
            // A template that prints any role verbatim also "renders" developer; only one that
            // names the role was written for it.
            developer: self.source.contains("developer") && developer.contains("lantern_probe_dev"),
            thinks: self.source.contains("<think>"),
        }
    }

    pub fn caps(&self) -> TemplateCaps {
        self.caps
    }

    /// The Jinja source, for telling tool-call formats apart.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn chatml(bos_token: String, eos_token: String) -> Self {
        Self::new(CHATML_TEMPLATE, bos_token, eos_token).expect("built-in ChatML template compiles")
    }

    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    /// Renders the conversation, ending with the assistant's generation prompt.
    pub fn render(&self, messages: &[ChatTurn]) -> Result<String, EngineError> {
        self.render_with(messages, None, &Default::default())
    }

    /// Renders with `tools` (when given) and extra template variables such as
    /// `enable_thinking`.
    pub fn render_with(
        &self,
        messages: &[ChatTurn],
        tools: Option<&[serde_json::Value]>,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, EngineError> {
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| EngineError::Template(e.to_string()))?;
        let base = context! {
            messages => messages,
            tools => tools,
            add_generation_prompt => true,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        };
        template
            .render(context! { ..base, ..minijinja::Value::from_serialize(extra) })
            .map_err(|e| {
                // raise_exception is the template rejecting the conversation (e.g. roles out of
                // order): that is the caller's fault, so report it as a bad request.
                if e.kind() == ErrorKind::InvalidOperation {
                    EngineError::InvalidRequest {
                        message: format!(
                            "The model's chat template rejected the messages: {}",
                            e.detail().unwrap_or("no reason given")
                        ),
                        param: Some("messages".into()),
                    }
                } else {
                    EngineError::Template(format!("{e:#}"))
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_smollm2_template_like_transformers() {
        let t = ChatTemplate::new(SMOLLM2, "<|im_start|>".into(), "<|im_end|>".into()).unwrap();
        let out = t.render(&[ChatTurn::new("user", "Hi")]).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_string_methods_and_globals() {
        let src = "{{ bos_token }}{% for m in messages %}{{ m.role.upper() }}:{{ m.content.strip() }}{% if m.content.strip().startswith('x') %}!{% endif %}\n{% endfor %}";
        let t = ChatTemplate::new(src, "<s>".into(), "</s>".into()).unwrap();
        let out = t.render(&[ChatTurn::new("user", "  xy  ")]).unwrap();
        // trim_blocks removes the newline after `{% endif %}`, as in transformers.
        assert_eq!(out, "<s>USER:xy!");
    }

    #[test]
    fn raise_exception_is_a_bad_request() {
        let src = "{% if messages[0].role != 'user' %}{{ raise_exception('Conversation roles must alternate') }}{% endif %}";
        let t = ChatTemplate::new(src, String::new(), String::new()).unwrap();
        match t.render(&[ChatTurn::new("assistant", "x")]) {
            Err(EngineError::InvalidRequest { message, .. }) => {
                assert!(message.contains("roles must alternate"), "{message}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn strftime_now_is_available() {
        let t =
            ChatTemplate::new("{{ strftime_now('%Y') }}", String::new(), String::new()).unwrap();
        let year: i32 = t.render(&[]).unwrap().parse().unwrap();
        assert!(year >= 2024);
    }

    #[test]
    fn a_bad_strftime_format_is_an_error_not_a_panic() {
        let t = ChatTemplate::new("{{ strftime_now('%Q') }}", String::new(), String::new())
            .expect("it parses");
        let err = t.render(&[]).expect_err("%Q is not a chrono specifier");
        assert!(err.to_string().contains("strftime_now"), "{err}");
    }

    #[test]
    fn break_and_continue_work_as_in_transformers() {
        let src = "{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}\
                   {% if m.content == 'stop' %}{% break %}{% endif %}{{ m.content }};{% endfor %}";
        let t = ChatTemplate::new(src, String::new(), String::new()).expect("loop controls load");
        let turns = [
            ChatTurn::new("system", "S"),
            ChatTurn::new("user", "a"),
            ChatTurn::new("assistant", "b"),
            ChatTurn::new("user", "stop"),
            ChatTurn::new("user", "c"),
        ];
        assert_eq!(t.render(&turns).unwrap(), "a;b;");
    }

    #[test]
    fn chatml_fallback() {
        let t = ChatTemplate::chatml(String::new(), String::new());
        assert_eq!(
            t.render(&[ChatTurn::new("system", "S"), ChatTurn::new("user", "U")]).unwrap(),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn broken_template_fails_at_load() {
        assert!(ChatTemplate::new("{% for %}", String::new(), String::new()).is_err());
    }
}
