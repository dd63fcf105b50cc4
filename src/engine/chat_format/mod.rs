//! Tool calls and reasoning, through llama.cpp's own chat-format machinery (`common/chat.h`,
//! reached through the C++ bridge in `common_chat.cpp`): the model's Jinja template renders the
//! tools, llama.cpp recognises the template's family (Hermes / Qwen `<tool_call>`, Llama 3.x,
//! Mistral, DeepSeek, generic JSON, …) and answers with the grammar, its triggers and a parser
//! for that family. No family is parsed by code of ours.
//!
//! - `options`: the caller's `tools`, `toolChoice`, `reasoning` and `reasoningBudget`, checked.
//! - `ChatFormats` (built at load, read on the prompt thread): renders a structured request
//!   into prompt text and a `ReplyPlan`.
//! - `StructuredReply` (inference thread): parses the reply as it grows into content,
//!   reasoning and tool-call deltas, and the final message.

mod native;
pub mod options;
mod reply;

use serde::Deserialize;
use serde_json::{json, Value};

pub use options::{ChatFormatParams, ReasoningMode, ToolChoice};
pub use reply::{ParsedReply, ReplyDelta, StructuredReply, ToolCallDelta};

use crate::engine::error::{EngineError, EngineResult};
use crate::engine::prompt_thread::chat_template::{ChatMessage, Role};

/// One tool call: in a generated reply, or in an assistant message of the history.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[cfg_attr(not(test), napi_derive::napi(object))]
pub struct ToolCall {
    /// Unique within the conversation; a `tool` message answers it by this id.
    pub id: String,
    /// The function's name, one of the request's `tools`.
    pub name: String,
    /// The arguments as JSON text (an object).
    pub arguments: String,
}

/// How the reply of a structured request is constrained and read.
#[derive(Debug, Clone, Default)]
pub struct ReplyPlan {
    /// The parser's settings (JSON for the bridge).
    pub parser: String,
    /// The grammar llama.cpp built for the tool calls, if any.
    pub grammar: Option<PlanGrammar>,
    /// Texts that end the reply besides the caller's stops.
    pub stops: Vec<String>,
    /// Control-token texts the reply must show as text (the parser reads them).
    pub preserved_tokens: Vec<String>,
    /// Their token ids (each that is one token), set by the prompt thread.
    pub control_tokens: Vec<i32>,
    /// The tokens of the first thinking end tag, set by the prompt thread.
    pub thinking_end_tokens: Vec<i32>,
    /// Reasoning is read apart from the content (`reasoning: 'separate'`) and reported: the
    /// template thinks.
    pub separate_reasoning: bool,
    /// Tools were offered: the final reply reports `toolCalls`, even when empty.
    pub has_tools: bool,
    /// The reply starts inside a thinking block (the prompt opened it).
    pub starts_thinking: bool,
    /// The texts that open and close a thinking block, and the token budget of that block.
    pub thinking_start_tag: String,
    pub thinking_end_tags: Vec<String>,
    pub reasoning_budget: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct PlanGrammar {
    pub gbnf: String,
    /// Unconstrained until a trigger appears (`toolChoice: 'auto'`).
    pub lazy: bool,
    pub trigger_patterns: Vec<String>,
    pub trigger_tokens: Vec<i32>,
    /// A strict grammar describes the assistant turn from its opener, which the prompt
    /// already holds: the grammar is fed these tokens first (set by the prompt thread).
    pub generation_prompt: String,
    pub prefill_tokens: Vec<i32>,
}

/// What llama.cpp decided for one request (the bridge's answer to `apply`).
#[derive(Debug, Deserialize)]
struct Applied {
    format: String,
    prompt: String,
    grammar: String,
    grammar_lazy: bool,
    generation_prompt: String,
    supports_thinking: bool,
    thinking_start_tag: String,
    thinking_end_tags: Vec<String>,
    trigger_patterns: Vec<String>,
    trigger_tokens: Vec<i32>,
    preserved_tokens: Vec<String>,
    additional_stops: Vec<String>,
    parser: String,
}

/// A model's Jinja templates in llama.cpp's chat-format machinery: the default one, and the
/// GGUF's `tool_use` variant for requests with tools when the model has one.
pub struct ChatFormats {
    default: native::Templates,
    tool_use: Option<native::Templates>,
    /// The default template thinks before answering (llama.cpp found thinking tags in it).
    pub supports_thinking: bool,
}

impl ChatFormats {
    /// Parses the templates; `None` when there is no Jinja source (a built-in family name).
    pub fn new(
        source: Option<&str>,
        tool_use_source: Option<&str>,
        bos_token: &str,
        eos_token: &str,
    ) -> EngineResult<Option<Self>> {
        let Some(source) = source else {
            return Ok(None);
        };
        let parse = |src: &str| {
            native::Templates::new(src, bos_token, eos_token).map_err(|e| {
                EngineError::invalid_argument(format!(
                    "llama.cpp cannot parse the chat template for tool calls and reasoning: {e}"
                ))
            })
        };
        let default = parse(source)?;
        let tool_use = tool_use_source.map(parse).transpose()?;
        let probe = apply(
            &default,
            &[ChatMessage::text(Role::User, "hi")],
            &ChatFormatParams::default(),
        );
        let supports_thinking = probe.map(|a| a.supports_thinking).unwrap_or(false);
        Ok(Some(Self {
            default,
            tool_use,
            supports_thinking,
        }))
    }

    /// Renders a structured request: the prompt text, and how to read its reply.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        params: &ChatFormatParams,
    ) -> EngineResult<(String, ReplyPlan)> {
        let templates = match (&self.tool_use, params.tools.is_empty()) {
            (Some(tool_use), false) => tool_use,
            _ => &self.default,
        };
        let applied = apply(templates, messages, params)?;
        if !params.tools.is_empty()
            && params.tool_choice != ToolChoice::None
            && applied.grammar.is_empty()
        {
            return Err(EngineError::invalid_argument(
                "this model's chat template does not render tools (llama.cpp found no tool-call format in it): load the model with a tool-aware chatTemplate, such as the package's templates/chatml-tools.jinja for ChatML models",
            ));
        }
        let separate_reasoning =
            params.reasoning == ReasoningMode::Separate && applied.supports_thinking;
        let grammar = (!applied.grammar.is_empty()).then(|| PlanGrammar {
            gbnf: shape_root(
                &applied.grammar,
                params.tool_choice == ToolChoice::Required,
                params.parallel_tool_calls,
            ),
            lazy: applied.grammar_lazy,
            trigger_patterns: applied.trigger_patterns.clone(),
            trigger_tokens: applied.trigger_tokens.clone(),
            generation_prompt: applied.generation_prompt.clone(),
            prefill_tokens: Vec::new(),
        });
        let parser = json!({
            "format": applied.format,
            "parser": applied.parser,
            "generation_prompt": applied.generation_prompt,
            // 'off' still strips the closed, empty block the template wrote.
            "reasoning": params.reasoning != ReasoningMode::Inline,
            "parse_tool_calls": !params.tools.is_empty() && params.tool_choice != ToolChoice::None,
        })
        .to_string();
        let starts_thinking = !applied.thinking_start_tag.is_empty()
            && thinking_open_at_end(
                &applied.generation_prompt,
                &applied.thinking_start_tag,
                &applied.thinking_end_tags,
            );
        tracing::trace!(format = %applied.format, prompt = %applied.prompt, "rendered a structured chat");
        Ok((
            applied.prompt,
            ReplyPlan {
                parser,
                grammar,
                stops: applied.additional_stops,
                preserved_tokens: applied.preserved_tokens,
                control_tokens: Vec::new(),
                thinking_end_tokens: Vec::new(),
                separate_reasoning,
                has_tools: !params.tools.is_empty(),
                starts_thinking,
                thinking_start_tag: applied.thinking_start_tag,
                thinking_end_tags: applied.thinking_end_tags,
                reasoning_budget: params.reasoning_budget,
            },
        ))
    }
}

/// Two changes to the `root` rule of llama.cpp's tool grammar. Its strict grammar lets the
/// reply hold free text before the first call (an optional `until-N` rule): with
/// `toolChoice: 'required'` the call comes first, since a small model would otherwise write
/// text until `maxTokens` and never call. And its `tool-calls` rule repeats calls whatever
/// `parallel_tool_calls` says: without parallel calls, the reply holds one (`tool-call`).
fn shape_root(gbnf: &str, calls_first: bool, parallel: bool) -> String {
    // Only where `tool-calls` is a bare repetition of `tool-call`: families that wrap their
    // calls in a section (`section_start tool-call… section_end`) keep their own rule, which
    // llama.cpp already builds from `parallel_tool_calls`.
    let one_call_only = !parallel
        && gbnf.lines().any(|line| {
            matches!(
                line.strip_prefix("tool-calls ::= ").map(str::trim),
                Some("(tool-call space)+" | "(tool-call? space)+" | "(tool-call space)*")
            )
        });
    let parallel = !one_call_only;
    gbnf.lines()
        .map(|line| match line.strip_prefix("root ::= ") {
            Some(body) => {
                let kept: Vec<&str> = body
                    .split(' ')
                    .filter(|part| {
                        !(calls_first
                            && part.starts_with("until-")
                            && part.ends_with('?')
                            && part[6..part.len() - 1].bytes().all(|b| b.is_ascii_digit()))
                    })
                    .map(|part| match (parallel, part) {
                        (false, "tool-calls") => "tool-call",
                        (false, "(tool-calls)") => "(tool-call)",
                        _ => part,
                    })
                    .collect();
                format!("root ::= {}", kept.join(" "))
            }
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `text` leaves a thinking block open: its last start tag has no end tag after it.
fn thinking_open_at_end(text: &str, start_tag: &str, end_tags: &[String]) -> bool {
    let Some(start) = text.rfind(start_tag) else {
        return false;
    };
    let after = &text[start + start_tag.len()..];
    !end_tags.iter().any(|end| after.contains(end.as_str()))
}

fn apply(
    templates: &native::Templates,
    messages: &[ChatMessage],
    params: &ChatFormatParams,
) -> EngineResult<Applied> {
    let request = json!({
        "messages": messages.iter().map(openai_message).collect::<Vec<_>>(),
        "tools": params.tools,
        "tool_choice": params.tool_choice.as_str(),
        "parallel_tool_calls": params.parallel_tool_calls,
        "enable_thinking": params.enable_thinking(),
        "reasoning": params.reasoning != ReasoningMode::Inline,
    });
    let out = templates.apply(&request.to_string()).map_err(|e| {
        EngineError::invalid_argument(format!(
            "the chat template could not render this request with llama.cpp's chat formats: {e}"
        ))
    })?;
    serde_json::from_str(&out)
        .map_err(|e| EngineError::internal(format!("unreadable answer from the chat bridge: {e}")))
}

/// A message in the OpenAI shape llama.cpp's chat code reads.
fn openai_message(m: &ChatMessage) -> Value {
    let mut v = json!({ "role": m.role.as_str(), "content": m.content });
    if !m.tool_calls.is_empty() {
        v["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "type": "function",
                    "function": { "name": c.name, "arguments": c.arguments },
                })
            })
            .collect();
    }
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = json!(id);
    }
    v
}

#[cfg(test)]
mod tests;
