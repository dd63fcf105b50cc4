//! What travels between the caller and the inference thread: a prepared request, the events
//! it produces, and the flag the caller uses to cancel it.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use llama_cpp_2::token::LlamaToken;

use super::chat_format::ReplyPlan;
use super::chat_format::{ReplyDelta, ToolCall};
use super::error::EngineError;
use super::options::RequestParams;
use super::prompt_cache::CachedPrompt;

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), napi_derive::napi(string_enum = "camelCase"))]
pub enum FinishReason {
    /// A stop string matched.
    Stop,
    /// `maxTokens` reached, or the context is full.
    Length,
    /// The model produced an end-of-generation token.
    Eos,
    /// The reply is tool calls (`Generation.toolCalls`).
    ToolCalls,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Eos => "eos",
            FinishReason::ToolCalls => "toolCalls",
        }
    }
}

/// Where a request's time went, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(not(test), napi_derive::napi(object))]
pub struct Timings {
    /// Waiting for a free slot.
    pub queue_ms: f64,
    /// Evaluating the prompt (admission to first sampled token).
    pub prompt_ms: f64,
    /// Submission to first sampled token (queue + prompt).
    pub ttft_ms: f64,
    /// First to last sampled token.
    pub generate_ms: f64,
    /// Completion tokens per second over the generation time (0 with fewer than two tokens).
    pub tokens_per_second: f64,
}

/// The result of one request.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(not(test), napi_derive::napi(object))]
pub struct Generation {
    /// The reply, without any stop string (with tools or separated reasoning: the content
    /// alone, without call markup or reasoning).
    pub text: String,
    /// The reasoning of a thinking model, when it came apart from the reply
    /// (`reasoning: 'separate'`).
    pub reasoning_text: Option<String>,
    /// The calls the reply made; present (maybe empty) when the request offered tools.
    pub tool_calls: Option<Vec<ToolCall>>,
    pub finish_reason: FinishReason,
    /// Tokens of the prompt as evaluated (after the chat template and any dropped turns).
    pub prompt_tokens: u32,
    /// Tokens generated, including an end-of-generation token.
    pub completion_tokens: u32,
    /// Prompt tokens reused from a slot's cache instead of evaluated.
    pub cached_tokens: u32,
    /// Chat messages dropped to fit the context (`contextOverflow: 'drop-oldest'`).
    pub dropped_messages: u32,
    pub timings: Timings,
    /// The caller's `requestId`, or one the engine made (`req-N`).
    pub request_id: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Whole UTF-8 text with no stop-string prefix in it; `tokens` counts the tokens it covers.
    Chunk {
        text: String,
        tokens: u32,
    },
    /// A piece of a structured reply (tools or separated reasoning), streaming only.
    Delta(ReplyDelta),
    Done(Generation),
    /// The final event of an `embed` or `rank` request.
    Embedded(Embeddings),
    Error(EngineError),
}

/// The result of an `embed` or `rank` request: one vector per text (for `rank`, each holds the
/// document's score first), in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    /// Tokens evaluated, over all texts.
    pub prompt_tokens: u32,
}

/// Receives a request's events on the inference thread. Returns false once nobody listens
/// any more, which cancels the request.
pub trait EventSink: Send {
    fn send(&mut self, event: Event) -> bool;

    /// Sends text the sink holds back (a paced stream) now: a step that takes long is next.
    fn flush(&mut self) {}

    /// Sends held text whose interval has passed: called between steps, so text is never
    /// held much longer than its interval while the reply makes no new text (a stop string
    /// being matched, tokens without text).
    fn flush_due(&mut self) {}
}

impl EventSink for std::sync::mpsc::Sender<Event> {
    fn send(&mut self, event: Event) -> bool {
        std::sync::mpsc::Sender::send(self, event).is_ok()
    }
}

/// Wraps a request's sink and remembers whether the final event (done or error) went out. If
/// the request is dropped without one (a bug, or a thread that died), the caller still gets an
/// `INTERNAL` error instead of waiting forever. It also holds the request's place in the
/// engine's admission count, and gives it back just before the final event goes out, so a
/// caller who submits again from the final event's handler finds the place free.
pub struct ReplySink {
    inner: Box<dyn EventSink>,
    ended: bool,
    release: Option<Box<dyn FnOnce() + Send>>,
}

impl ReplySink {
    pub fn new(inner: Box<dyn EventSink>, release: Box<dyn FnOnce() + Send>) -> Self {
        Self {
            inner,
            ended: false,
            release: Some(release),
        }
    }

    /// For a request the caller already got a synchronous error for: gives its place back
    /// without sending anything.
    pub fn discard(mut self) {
        self.ended = true;
        self.give_back();
    }

    fn give_back(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

impl EventSink for ReplySink {
    fn send(&mut self, event: Event) -> bool {
        if matches!(event, Event::Done(_) | Event::Embedded(_) | Event::Error(_)) {
            self.ended = true;
            self.give_back();
        }
        self.inner.send(event)
    }

    fn flush(&mut self) {
        self.inner.flush()
    }

    fn flush_due(&mut self) {
        self.inner.flush_due()
    }
}

impl Drop for ReplySink {
    fn drop(&mut self) {
        if !self.ended {
            self.give_back();
            self.inner
                .send(Event::Error(super::error::EngineError::internal(
                    "the engine lost this request without an answer (a bug): retry it",
                )));
        }
    }
}

/// Why a caller cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    Aborted = 1,
    TimedOut = 2,
}

/// Shared between the caller's handle and the inference thread; checked between decode steps.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicU8>);

impl CancelFlag {
    pub fn cancel(&self, reason: CancelReason) {
        let _ = self
            .0
            .compare_exchange(0, reason as u8, Ordering::AcqRel, Ordering::Acquire);
    }

    pub fn reason(&self) -> Option<CancelReason> {
        match self.0.load(Ordering::Acquire) {
            1 => Some(CancelReason::Aborted),
            2 => Some(CancelReason::TimedOut),
            _ => None,
        }
    }
}

/// A request whose prompt is rendered, tokenized and checked, ready for a slot.
pub struct PreparedRequest {
    pub tokens: Vec<LlamaToken>,
    /// Chat messages dropped by the `drop-oldest` context policy.
    pub dropped_messages: u32,
    pub params: RequestParams,
    /// Send chunk events (stream) or only the final result (generate).
    pub stream: bool,
    pub submitted_at: Instant,
    pub deadline: Option<Instant>,
    pub cancel: CancelFlag,
    pub sink: ReplySink,
    /// A saved prompt state the prompt thread moved back from disk for this request.
    pub restored: Option<CachedPrompt>,
    /// How to constrain and read the reply (tools, reasoning), set by the prompt thread.
    pub reply_plan: Option<ReplyPlan>,
}

impl PreparedRequest {
    /// Why the request must end now, if it must: its caller cancelled it, or its deadline
    /// (`timeoutMs`, queue wait included) has passed.
    pub fn ended_by(&self, now: Instant) -> Option<EngineError> {
        self.cancel
            .ended_by(self.deadline, self.params.timeout, now)
    }
}

impl CancelFlag {
    /// Why a request holding this flag must end now: cancelled, or past its deadline.
    pub fn ended_by(
        &self,
        deadline: Option<Instant>,
        timeout: Option<std::time::Duration>,
        now: Instant,
    ) -> Option<EngineError> {
        match self.reason() {
            Some(CancelReason::Aborted) => Some(EngineError::aborted("the request was aborted")),
            Some(CancelReason::TimedOut) => Some(EngineError::timed_out(timeout)),
            None => match deadline {
                Some(d) if now >= d => Some(EngineError::timed_out(timeout)),
                _ => None,
            },
        }
    }
}

/// What an embedding engine is asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbedInput {
    /// One vector per text.
    Texts(Vec<String>),
    /// One relevance score per document (a reranker, pooling `rank`).
    Rank {
        query: String,
        documents: Vec<String>,
    },
}

impl EmbedInput {
    pub fn len(&self) -> usize {
        match self {
            EmbedInput::Texts(texts) => texts.len(),
            EmbedInput::Rank { documents, .. } => documents.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An admitted `embed` or `rank` request on its way to the inference thread.
pub struct EmbedRequest {
    pub input: EmbedInput,
    /// Scale each vector to length 1 (never for rank scores).
    pub normalize: bool,
    pub request_id: String,
    pub timeout: Option<std::time::Duration>,
    pub deadline: Option<Instant>,
    pub cancel: CancelFlag,
    pub sink: ReplySink,
}
