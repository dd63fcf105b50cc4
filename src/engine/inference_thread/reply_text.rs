//! A request's reply text, assembled token by token: token pieces become whole UTF-8 text
//! (`Utf8Stream`), text that may begin a stop string is held back (`StopMatcher`), and what is
//! safe goes out as a chunk event when the caller streams. The one place chunks are emitted.
//! A structured reply (tools, separated reasoning) sends its safe text through llama.cpp's
//! chat parser instead, and goes out as content, reasoning and tool-call deltas.

use super::stop_matcher::StopMatcher;
use super::utf8_stream::Utf8Stream;
use crate::engine::chat_format::{ParsedReply, StructuredReply};
use crate::engine::request::{Event, EventSink, FinishReason, ReplySink};

pub struct ReplyText {
    utf8: Utf8Stream,
    stop: StopMatcher,
    text: String,
    structured: Option<StructuredReply>,
    /// Send chunk events (stream) or only collect the text (generate).
    stream: bool,
    /// Tokens sampled since the last chunk: a chunk counts the tokens it covers.
    tokens_since_chunk: u32,
}

/// What one token did to the reply.
pub struct Pushed {
    /// A stop string completed: the reply is over.
    pub stopped: bool,
    /// Whether a chunk went out, and if so whether it was delivered (false: nobody listens).
    pub chunk_delivered: Option<bool>,
}

impl ReplyText {
    pub fn new(stops: Vec<String>, stream: bool, structured: Option<StructuredReply>) -> Self {
        Self {
            utf8: Utf8Stream::new(),
            stop: StopMatcher::new(stops),
            text: String::new(),
            structured,
            stream,
            tokens_since_chunk: 0,
        }
    }

    /// Adds one sampled token's bytes.
    pub fn push_token(&mut self, piece: &[u8], sink: &mut ReplySink) -> Pushed {
        self.tokens_since_chunk += 1;
        let text = self.utf8.push(piece);
        let outcome = self.stop.push(&text);
        let chunk_delivered = self.emit(outcome.text, sink);
        Pushed {
            stopped: outcome.stopped,
            chunk_delivered,
        }
    }

    /// Ends the reply for `reason`: releases held text (an incomplete character is dropped;
    /// held text that completes a stop string turns the reason into `Stop`) and returns the
    /// whole text with the final reason; a structured reply also comes back parsed.
    pub fn finish(
        &mut self,
        mut reason: FinishReason,
        sink: &mut ReplySink,
    ) -> (String, FinishReason, Option<ParsedReply>) {
        if reason != FinishReason::Stop {
            let tail = self.stop.push(&self.utf8.finish());
            let mut rest = tail.text;
            if tail.stopped {
                reason = FinishReason::Stop;
            } else {
                rest.push_str(&self.stop.finish());
            }
            self.emit(rest, sink);
        }
        let parsed = self.structured.as_mut().map(|reply| {
            let (parsed, rest) = reply.finish();
            if self.stream {
                for mut delta in rest {
                    delta.tokens = std::mem::take(&mut self.tokens_since_chunk);
                    sink.send(Event::Delta(delta));
                }
            }
            parsed
        });
        (std::mem::take(&mut self.text), reason, parsed)
    }

    /// Invalid UTF-8 bytes the model produced, dropped from the reply.
    pub fn dropped_bytes(&self) -> usize {
        self.utf8.dropped()
    }

    /// Adds safe text to the reply and, when streaming, sends it as a chunk: returns whether
    /// that chunk was delivered, or None when no chunk was sent.
    fn emit(&mut self, text: String, sink: &mut ReplySink) -> Option<bool> {
        if text.is_empty() {
            return None;
        }
        self.text.push_str(&text);
        if let Some(reply) = &mut self.structured {
            if !self.stream {
                reply.append(&text);
                return None;
            }
            let deltas = reply.push(&text);
            if deltas.is_empty() {
                return None;
            }
            let mut delivered = true;
            for mut delta in deltas {
                delta.tokens = std::mem::take(&mut self.tokens_since_chunk);
                delivered &= sink.send(Event::Delta(delta));
            }
            return Some(delivered);
        }
        if !self.stream {
            return None;
        }
        let tokens = std::mem::take(&mut self.tokens_since_chunk);
        Some(sink.send(Event::Chunk { text, tokens }))
    }
}
