//! A structured reply read as it grows: the whole text so far is parsed again after each new
//! piece (as llama.cpp's server does), and what changed since the last parse goes out as
//! deltas. Tool-call markup never reaches the content: the parser holds back text that may
//! still turn into a call.

use serde::Deserialize;

use super::native::Parser;
use super::ToolCall;
use crate::engine::error::{EngineError, EngineResult};

/// A piece of a tool call in a stream: the first piece of a call carries its id and name,
/// later pieces more of its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(not(test), napi_derive::napi(object))]
pub struct ToolCallDelta {
    /// The call's position in the reply's `toolCalls`.
    pub index: u32,
    /// Set on the call's first piece, else empty.
    pub id: String,
    /// Set on the call's first piece, else empty.
    pub name: String,
    /// More of the arguments' JSON text.
    pub arguments: String,
}

/// One change to a structured reply: more content, more reasoning, or a tool-call piece.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(not(test), napi_derive::napi(object))]
pub struct ReplyDelta {
    /// More reply text.
    pub text: String,
    /// More reasoning text.
    pub reasoning: String,
    pub tool_call: Option<ToolCallDelta>,
    /// Tokens this delta covers (the tokens sampled since the previous delta).
    pub tokens: u32,
}

/// The reply read whole.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedReply {
    pub content: String,
    pub reasoning: String,
    pub tool_calls: Vec<ToolCall>,
}

#[derive(Deserialize)]
struct Update {
    /// Only on the final update.
    #[serde(default)]
    message: Option<Message>,
    diffs: Vec<Diff>,
}

#[derive(Deserialize)]
struct Message {
    content: String,
    reasoning_content: String,
    tool_calls: Vec<WireCall>,
}

#[derive(Deserialize)]
struct WireCall {
    id: String,
    name: String,
    arguments: String,
}

#[derive(Deserialize)]
struct Diff {
    content: String,
    reasoning: String,
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    arguments: String,
}

pub struct StructuredReply {
    parser: Parser,
    /// The raw reply so far (after stop strings).
    text: String,
}

impl StructuredReply {
    pub fn new(parser_params: &str) -> EngineResult<Self> {
        let parser = Parser::new(parser_params).map_err(|e| {
            EngineError::internal(format!("llama.cpp's chat parser did not start: {e}"))
        })?;
        Ok(Self {
            parser,
            text: String::new(),
        })
    }

    /// Adds reply text to be read whole at the end (a reply nobody streams needs no deltas).
    pub fn append(&mut self, text: &str) {
        self.text.push_str(text);
    }

    /// Adds reply text; returns what changed (a text the parser cannot read yet gives none).
    pub fn push(&mut self, text: &str) -> Vec<ReplyDelta> {
        if text.is_empty() {
            return Vec::new();
        }
        self.text.push_str(text);
        match self.parser.update(&self.text, true) {
            Ok(out) => serde_json::from_str::<Update>(&out)
                .map(|u| deltas(u.diffs))
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// Reads the whole reply. Returns the message and the deltas not yet sent. A reply the
    /// format cannot read (the model wrote broken markup where no grammar held it) is all
    /// content, as written.
    pub fn finish(&mut self) -> (ParsedReply, Vec<ReplyDelta>) {
        let update = self
            .parser
            .update(&self.text, false)
            .map_err(|e| e.to_string())
            .and_then(|out| serde_json::from_str::<Update>(&out).map_err(|e| e.to_string()))
            .and_then(|u| match u.message {
                Some(message) => Ok((message, u.diffs)),
                None => Err("the final parse returned no message".to_string()),
            });
        match update {
            Ok((message, diffs)) => (
                ParsedReply {
                    content: message.content,
                    reasoning: message.reasoning_content,
                    tool_calls: message
                        .tool_calls
                        .into_iter()
                        .map(|c| ToolCall {
                            id: c.id,
                            name: c.name,
                            arguments: c.arguments,
                        })
                        .collect(),
                },
                deltas(diffs),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "the reply does not match the chat format: returned as text");
                (
                    ParsedReply {
                        content: self.text.clone(),
                        ..ParsedReply::default()
                    },
                    Vec::new(),
                )
            }
        }
    }
}

fn deltas(diffs: Vec<Diff>) -> Vec<ReplyDelta> {
    diffs
        .into_iter()
        .map(|d| ReplyDelta {
            text: d.content,
            reasoning: d.reasoning,
            tool_call: d.index.map(|index| ToolCallDelta {
                index,
                id: d.id,
                name: d.name,
                arguments: d.arguments,
            }),
            tokens: 0,
        })
        .filter(|d| !d.text.is_empty() || !d.reasoning.is_empty() || d.tool_call.is_some())
        .collect()
}
