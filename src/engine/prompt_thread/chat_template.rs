//! Rendering chat messages into a prompt. A model's own `tokenizer.chat_template` is Jinja and
//! is rendered with minijinja (llama.cpp's `llama_chat_apply_template` only knows fixed
//! families). A model without a template falls back to llama.cpp's built-in format for its
//! architecture; a caller may also name a built-in family or pass Jinja source.

use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use minijinja::{context, Environment, Error as JinjaError, ErrorKind};
use serde::Serialize;

use crate::engine::chat_format::ToolCall;
use crate::engine::error::{EngineError, EngineResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    /// A tool's answer to a call (`toolCallId`).
    Tool,
}

impl Role {
    pub fn parse(role: &str) -> EngineResult<Self> {
        match role {
            "system" => Ok(Role::System),
            "user" => Ok(Role::User),
            "assistant" => Ok(Role::Assistant),
            "tool" => Ok(Role::Tool),
            other => Err(EngineError::invalid_argument(format!(
                "unknown chat role {other:?}: use 'system', 'user', 'assistant' or 'tool'"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// Calls an assistant message made.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a tool message answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn text(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// Where the template in use came from; reported in `ModelInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), napi_derive::napi(string_enum = "kebab-case"))]
pub enum TemplateSource {
    /// The GGUF's own `tokenizer.chat_template`.
    Model,
    /// `chatTemplate` from the load options.
    Option,
    /// The model has no template: llama.cpp's built-in format for its architecture.
    BuiltinFallback,
}

impl TemplateSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateSource::Model => "model",
            TemplateSource::Option => "option",
            TemplateSource::BuiltinFallback => "builtin-fallback",
        }
    }
}

enum Renderer {
    Jinja(Box<Environment<'static>>),
    Builtin(LlamaChatTemplate),
}

pub struct ChatTemplate {
    renderer: Renderer,
    /// A built-in family name, or "jinja".
    pub name: String,
    pub source: TemplateSource,
    pub bos_token: String,
    pub eos_token: String,
    /// The Jinja source, when the template is Jinja (not a built-in family name).
    pub jinja_source: Option<String>,
}

const TEMPLATE_NAME: &str = "chat";

fn looks_like_jinja(text: &str) -> bool {
    text.contains("{%") || text.contains("{{")
}

/// llama.cpp's built-in family for a model that carries no template.
fn builtin_for_architecture(arch: &str) -> &'static str {
    match arch {
        a if a.starts_with("gemma") => "gemma",
        "phi3" => "phi3",
        "llama" => "llama3",
        _ => "chatml",
    }
}

impl ChatTemplate {
    pub fn for_model(model: &LlamaModel, override_template: Option<&str>) -> EngineResult<Self> {
        let vocab = model.vocab();
        let piece =
            |tok| String::from_utf8_lossy(&vocab.token_to_piece(tok, true, None)).into_owned();
        let bos_token = piece(vocab.bos());
        let eos_token = piece(vocab.eos());
        let (text, source) = match override_template {
            Some(t) => (t.to_string(), TemplateSource::Option),
            None => match model
                .chat_template(None)
                .ok()
                .and_then(|t| t.to_string().ok())
            {
                Some(t) => (t, TemplateSource::Model),
                None => {
                    let arch = model
                        .meta_val_str("general.architecture")
                        .unwrap_or_default();
                    (
                        builtin_for_architecture(&arch).to_string(),
                        TemplateSource::BuiltinFallback,
                    )
                }
            },
        };
        // A broken template in the model file is a broken model file; in chatTemplate it is a
        // bad argument.
        let blame = |e: EngineError| {
            match source {
            TemplateSource::Model => EngineError::load_failed(format!(
                "the model's own chat template cannot be used ({}): pass chatTemplate (Jinja source, or a family name such as 'chatml') to override it",
                e.message
            )),
            _ => e,
        }
        };
        let jinja_source = looks_like_jinja(&text).then(|| text.clone());
        let (renderer, name) = if looks_like_jinja(&text) {
            (
                Renderer::Jinja(Box::new(jinja_environment(text).map_err(blame)?)),
                "jinja".to_string(),
            )
        } else {
            let tmpl = LlamaChatTemplate::new(text.trim())
                .map_err(|_| EngineError::invalid_argument("chatTemplate contains a NUL byte"))?;
            (Renderer::Builtin(tmpl), text.trim().to_string())
        };
        let template = ChatTemplate {
            renderer,
            name,
            source,
            bos_token,
            eos_token,
            jinja_source,
        };
        // Render once now so that a broken template fails the load, not the first request.
        template
            .render(model, &[ChatMessage::text(Role::User, "hi")])
            .map_err(|e| {
                blame(EngineError::invalid_argument(format!(
                    "chat template cannot be used: {}",
                    e.message
                )))
            })?;
        Ok(template)
    }

    /// Renders messages into prompt text ending with the assistant's turn opener.
    pub fn render(&self, model: &LlamaModel, messages: &[ChatMessage]) -> EngineResult<String> {
        match &self.renderer {
            Renderer::Jinja(env) => render_jinja(env, messages, &self.bos_token, &self.eos_token),
            Renderer::Builtin(tmpl) => {
                let chat = messages
                    .iter()
                    .map(|m| LlamaChatMessage::new(m.role.as_str().to_string(), m.content.clone()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| {
                        EngineError::invalid_argument("chat message contains a NUL byte")
                    })?;
                model.apply_chat_template(tmpl, &chat, true).map_err(|e| {
                    EngineError::invalid_argument(format!(
                        "built-in chat template {:?} failed ({e}); pass chatTemplate with Jinja source or a known family name such as 'chatml', 'gemma', 'llama3'",
                        self.name
                    ))
                })
            }
        }
    }

    /// True when the rendered prompt already starts with the BOS text, so the tokenizer
    /// must not add a second one.
    pub fn starts_with_bos(&self, rendered: &str) -> bool {
        !self.bos_token.is_empty() && rendered.starts_with(&self.bos_token)
    }
}

/// Today's date and time in the given strftime format, as the Python `strftime_now` that
/// Hugging Face chat templates (Llama 3.x, Mistral, Granite) call to print the current date.
fn strftime_now(format: String) -> Result<String, JinjaError> {
    use std::fmt::Write;
    let mut out = String::new();
    write!(out, "{}", chrono::Local::now().format(&format)).map_err(|_| {
        JinjaError::new(
            ErrorKind::InvalidOperation,
            format!("strftime_now: {format:?} is not a valid strftime format"),
        )
    })?;
    Ok(out)
}

fn raise_exception(message: String) -> Result<String, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, message))
}

fn render_jinja(
    env: &Environment<'static>,
    messages: &[ChatMessage],
    bos_token: &str,
    eos_token: &str,
) -> EngineResult<String> {
    let tmpl = env
        .get_template(TEMPLATE_NAME)
        .map_err(|e| EngineError::internal(format!("chat template lost: {e}")))?;
    tmpl.render(context! {
        messages => messages,
        add_generation_prompt => true,
        bos_token => bos_token,
        eos_token => eos_token,
    })
    .map_err(|e| match e.kind() {
        ErrorKind::OutOfFuel => EngineError::invalid_argument(format!(
            "chat template did not finish within {TEMPLATE_FUEL} instructions (does it loop?): fix chatTemplate or the model's template"
        )),
        _ => EngineError::invalid_argument(format!("chat template rejected the messages: {e:#}")),
    })
}

/// Instructions one render may execute (see `jinja_environment`).
const TEMPLATE_FUEL: u64 = 50_000_000;

fn jinja_environment(source: String) -> EngineResult<Environment<'static>> {
    let mut env = Environment::new();
    // HF templates are written for Python's Jinja2: allow `.strip()`, `.items()` and friends.
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.set_trim_blocks(false);
    // A template that loops (for ever, or for 10^10 iterations) would hold the prompt thread,
    // and every request behind it, without end. Real chat templates spend a few dozen
    // instructions per message; this budget is about a second of work.
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.add_template_owned(TEMPLATE_NAME, source).map_err(|e| {
        EngineError::invalid_argument(format!("chat template is not valid Jinja: {e}"))
    })?;
    Ok(env)
}

/// Parses caller messages (role, content, tool calls, the call answered), rejecting empty
/// lists, unknown roles and tool history that does not hang together.
pub fn parse_messages<'a>(
    items: impl IntoIterator<Item = (&'a str, &'a str, Vec<ToolCall>, Option<String>)>,
) -> EngineResult<Vec<ChatMessage>> {
    let messages = items
        .into_iter()
        .map(|(role, content, tool_calls, tool_call_id)| {
            Ok(ChatMessage {
                role: Role::parse(role)?,
                content: content.to_string(),
                tool_calls,
                tool_call_id,
            })
        })
        .collect::<EngineResult<Vec<_>>>()?;
    if messages.is_empty() {
        return Err(EngineError::invalid_argument(
            "messages is empty: pass at least one message",
        ));
    }
    crate::engine::chat_format::options::check_tool_messages(&messages)?;
    Ok(messages)
}

/// Jinja rendering without a model, for the property tests.
#[cfg(test)]
pub mod tests_support {
    use super::*;

    /// The ChatML template SmolLM2's GGUF carries.
    pub fn chatml() -> Environment<'static> {
        jinja_environment(
            "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
                .to_string(),
        )
        .expect("ChatML compiles")
    }

    pub fn render_jinja(
        env: &Environment<'static>,
        messages: &[ChatMessage],
    ) -> EngineResult<String> {
        super::render_jinja(env, messages, "", "")
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::engine::ErrorCode;

    fn user(text: &str) -> ChatMessage {
        ChatMessage::text(Role::User, text)
    }

    #[test]
    fn a_template_that_loops_fails_within_a_few_seconds_instead_of_hanging() {
        let env = jinja_environment(
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}{{ messages[0].content }}"
                .to_string(),
        )
        .expect("compiles");
        let started = Instant::now();
        let err = render_jinja(&env, &[user("hi")], "", "").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument);
        assert!(err.message.contains("does it loop"), "{}", err.message);
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn strftime_now_prints_todays_date() {
        let env = jinja_environment(
            "{{ strftime_now('%Y-%m-%d') }}|{{ messages[0].content }}".to_string(),
        )
        .expect("compiles");
        let before = chrono::Local::now().format("%Y-%m-%d").to_string();
        let text = render_jinja(&env, &[user("hi")], "", "").expect("renders");
        let after = chrono::Local::now().format("%Y-%m-%d").to_string();
        assert!(
            text == format!("{before}|hi") || text == format!("{after}|hi"),
            "{text}"
        );
        let bad = jinja_environment("{{ strftime_now('%Q') }}".to_string()).expect("compiles");
        let err = render_jinja(&bad, &[user("hi")], "", "").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidArgument, "{}", err.message);
    }

    #[test]
    fn the_instruction_budget_fits_a_very_long_chat() {
        let env = tests_support::chatml();
        let chat: Vec<ChatMessage> = (0..20_000).map(|i| user(&format!("turn {i}"))).collect();
        let text = render_jinja(&env, &chat, "", "").expect("renders");
        assert!(text.contains("turn 19999"));
    }
}
