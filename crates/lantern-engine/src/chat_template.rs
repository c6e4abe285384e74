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

/// A compiled chat template plus the special-token strings it may reference.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
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

fn strftime_now(format: String) -> String {
    chrono::Local::now().format(&format).to_string()
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
        Ok(ChatTemplate {
            env,
            bos_token,
            eos_token,
        })
    }

    pub fn chatml(bos_token: String, eos_token: String) -> Self {
        Self::new(CHATML_TEMPLATE, bos_token, eos_token).expect("built-in ChatML template compiles")
    }

    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    /// Renders the conversation, ending with the assistant's generation prompt.
    pub fn render(&self, messages: &[ChatTurn]) -> Result<String, EngineError> {
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| EngineError::Template(e.to_string()))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
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
