//! The caller's tool and reasoning options, checked on the caller's thread: every mistake is
//! `INVALID_ARGUMENT` naming the field, before anything is queued.

use serde_json::{json, Map, Value};

use crate::engine::error::{EngineError, EngineResult};
use crate::engine::grammar;
use crate::engine::prompt_thread::chat_template::{ChatMessage, Role};

/// How a thinking model's reasoning reaches the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(not(test), napi_derive::napi(string_enum = "lowercase"))]
pub enum ReasoningMode {
    /// Apart from the reply: `Generation.reasoningText`, and reasoning chunks in `stream()`.
    #[default]
    Separate,
    /// Left in the reply text, tags and all, as the model wrote it.
    Inline,
    /// Asks the template not to think (where it can).
    Off,
}

impl ReasoningMode {
    fn parse(value: Option<&str>) -> EngineResult<Self> {
        match value {
            None | Some("separate") => Ok(Self::Separate),
            Some("inline") => Ok(Self::Inline),
            Some("off") => Ok(Self::Off),
            Some(other) => Err(EngineError::invalid_argument(format!(
                "reasoning must be 'separate', 'inline' or 'off', got {other:?}"
            ))),
        }
    }
}

/// Whether and how the model calls tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolChoice {
    /// The model decides; a call, once it starts, is constrained by the grammar.
    #[default]
    Auto,
    /// The reply is text only.
    None,
    /// The reply is one or more calls (a named choice: calls of that tool).
    Required,
}

impl ToolChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            ToolChoice::Auto => "auto",
            ToolChoice::None => "none",
            ToolChoice::Required => "required",
        }
    }
}

/// The tool and reasoning settings of one request.
#[derive(Debug, Clone, Default)]
pub struct ChatFormatParams {
    /// Tool definitions in the OpenAI shape (`{type: 'function', function: {…}}`); for a named
    /// `toolChoice`, only that tool.
    pub tools: Vec<Value>,
    pub tool_choice: ToolChoice,
    pub parallel_tool_calls: bool,
    pub reasoning: ReasoningMode,
    /// Most tokens of reasoning; 0 asks the template not to think.
    pub reasoning_budget: Option<u32>,
}

impl ChatFormatParams {
    pub fn enable_thinking(&self) -> bool {
        self.reasoning != ReasoningMode::Off && self.reasoning_budget != Some(0)
    }

    /// Whether a chat must go through llama.cpp's chat formats rather than the plain renderer.
    pub fn is_structured(&self, messages: &[ChatMessage], template_thinks: bool) -> bool {
        !self.tools.is_empty()
            || messages
                .iter()
                .any(|m| m.role == Role::Tool || !m.tool_calls.is_empty())
            || (template_thinks && self.reasoning != ReasoningMode::Inline)
    }

    /// Reads `tools` and `toolChoice` (JSON text from the JavaScript layer), `parallelToolCalls`,
    /// `reasoning` and `reasoningBudget`.
    pub fn validate(
        tools: Option<&str>,
        tool_choice: Option<&str>,
        parallel_tool_calls: Option<bool>,
        reasoning: Option<&str>,
        reasoning_budget: Option<u32>,
    ) -> EngineResult<Self> {
        let mut tools = match tools {
            None => Vec::new(),
            Some(text) => parse_tools(text)?,
        };
        let (tool_choice, named) = match tool_choice {
            None => (ToolChoice::Auto, None),
            Some(text) => parse_tool_choice(text)?,
        };
        if let Some(name) = named {
            let Some(tool) = tools
                .iter()
                .find(|t| t["function"]["name"] == name.as_str())
            else {
                return Err(EngineError::invalid_argument(format!(
                    "toolChoice names {name:?}, which is not one of tools"
                )));
            };
            tools = vec![tool.clone()];
        }
        if tools.is_empty() && tool_choice == ToolChoice::Required {
            return Err(EngineError::invalid_argument(
                "toolChoice 'required' needs tools: pass at least one tool",
            ));
        }
        Ok(Self {
            tools,
            tool_choice,
            parallel_tool_calls: parallel_tool_calls.unwrap_or(false),
            reasoning: ReasoningMode::parse(reasoning)?,
            reasoning_budget,
        })
    }
}

/// OpenAI's rule for function names.
fn valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn parse_tools(text: &str) -> EngineResult<Vec<Value>> {
    let bad = |m: String| EngineError::invalid_argument(m);
    let value: Value =
        serde_json::from_str(text).map_err(|e| bad(format!("tools is not valid JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(bad("tools must be an array of function definitions".into()));
    };
    let mut names = std::collections::HashSet::new();
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(mut item) = item else {
                return Err(bad(format!(
                    "tools[{i}] must be an object {{ name, description?, parameters? }}"
                )));
            };
            // OpenAI's wrapped shape `{ type: 'function', function: {…} }` is accepted too.
            if let Some(Value::Object(inner)) = item.get("function") {
                match item.get("type") {
                    None => {}
                    Some(t) if t == "function" => {}
                    Some(t) => {
                        return Err(bad(format!("tools[{i}].type must be 'function', got {t}")))
                    }
                }
                item = inner.clone();
            }
            let name = match item.get("name") {
                Some(Value::String(n)) if valid_tool_name(n) => n.clone(),
                Some(Value::String(n)) => {
                    return Err(bad(format!(
                        "tools[{i}].name {n:?} must be 1 to 64 letters, digits, '_' or '-'"
                    )))
                }
                _ => {
                    return Err(bad(format!(
                        "tools[{i}] has no name: every tool needs a string name"
                    )))
                }
            };
            if !names.insert(name.clone()) {
                return Err(bad(format!("tools[{i}].name {name:?} appears twice")));
            }
            let description = match item.get("description") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(d)) => d.clone(),
                Some(_) => return Err(bad(format!("tools[{i}].description must be a string"))),
            };
            let parameters = match item.get("parameters") {
                None | Some(Value::Null) => json!({ "type": "object", "properties": {} }),
                Some(Value::Object(schema)) => check_parameters(i, schema)?,
                Some(_) => {
                    return Err(bad(format!(
                        "tools[{i}].parameters must be a JSON Schema object with type 'object'"
                    )))
                }
            };
            Ok(json!({
                "type": "function",
                "function": { "name": name, "description": description, "parameters": parameters },
            }))
        })
        .collect()
}

/// A tool's arguments are one JSON object: its schema must describe one, and llama.cpp must be
/// able to turn it into a grammar.
fn check_parameters(i: usize, schema: &Map<String, Value>) -> EngineResult<Value> {
    match schema.get("type") {
        Some(t) if t == "object" => {}
        None if schema.contains_key("properties") => {}
        _ => {
            return Err(EngineError::invalid_argument(format!(
                "tools[{i}].parameters must be an object schema (type: 'object'), since a call's arguments are one JSON object"
            )))
        }
    }
    let value = Value::Object(schema.clone());
    grammar::from_options(None, Some(&value.to_string())).map_err(|e| {
        EngineError::invalid_argument(format!("tools[{i}].parameters: {}", e.message))
    })?;
    Ok(value)
}

/// `"auto"`, `"none"`, `"required"`, `{ name }` or OpenAI's `{ type: 'function', function: { name } }`.
fn parse_tool_choice(text: &str) -> EngineResult<(ToolChoice, Option<String>)> {
    let bad = || {
        EngineError::invalid_argument(
            "toolChoice must be 'auto', 'none', 'required' or { name } naming one of tools",
        )
    };
    let value: Value = serde_json::from_str(text).map_err(|_| bad())?;
    match &value {
        Value::String(s) => match s.as_str() {
            "auto" => Ok((ToolChoice::Auto, None)),
            "none" => Ok((ToolChoice::None, None)),
            "required" => Ok((ToolChoice::Required, None)),
            _ => Err(bad()),
        },
        Value::Object(o) => {
            let name = o
                .get("name")
                .or_else(|| o.get("function").and_then(|f| f.get("name")))
                .and_then(Value::as_str)
                .ok_or_else(bad)?;
            Ok((ToolChoice::Required, Some(name.to_string())))
        }
        _ => Err(bad()),
    }
}

/// Tool-call history must hang together: each call has a name and JSON-object arguments, and
/// each `tool` message answers a call made earlier in the conversation.
pub fn check_tool_messages(messages: &[ChatMessage]) -> EngineResult<()> {
    let mut calls = std::collections::HashSet::new();
    for (i, m) in messages.iter().enumerate() {
        if !m.tool_calls.is_empty() && m.role != Role::Assistant {
            return Err(EngineError::invalid_argument(format!(
                "messages[{i}] has toolCalls but is not an assistant message"
            )));
        }
        for (j, call) in m.tool_calls.iter().enumerate() {
            if !valid_tool_name(&call.name) {
                return Err(EngineError::invalid_argument(format!(
                    "messages[{i}].toolCalls[{j}].name {:?} must be 1 to 64 letters, digits, '_' or '-'",
                    call.name
                )));
            }
            if call.id.is_empty() || !calls.insert(call.id.as_str()) {
                return Err(EngineError::invalid_argument(format!(
                    "messages[{i}].toolCalls[{j}].id must be non-empty and unique in the conversation"
                )));
            }
            if !matches!(
                serde_json::from_str::<Value>(&call.arguments),
                Ok(Value::Object(_))
            ) {
                return Err(EngineError::invalid_argument(format!(
                    "messages[{i}].toolCalls[{j}].arguments must be JSON text of an object"
                )));
            }
        }
        if m.role == Role::Tool {
            match &m.tool_call_id {
                Some(id) if calls.contains(id.as_str()) => {}
                Some(id) => {
                    return Err(EngineError::invalid_argument(format!(
                        "messages[{i}] answers tool call {id:?}, which no earlier assistant message made"
                    )))
                }
                None => {
                    return Err(EngineError::invalid_argument(format!(
                        "messages[{i}] is a tool message without toolCallId: name the call it answers"
                    )))
                }
            }
        }
    }
    Ok(())
}
