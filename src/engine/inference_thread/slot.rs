//! A slot: one KV sequence of the context, and the request it serves, if any. Like
//! llama-server's slots, a busy slot is always in one explicit phase; the scheduler moves it
//! from phase to phase once per step.

use std::time::Instant;

use llama_cpp_2::token::LlamaToken;

use super::reply_text::ReplyText;
use super::sampler::Sampler;
use super::thinking_block::ThinkingBlock;
use crate::engine::request::PreparedRequest;

/// Where a busy slot's request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Its prompt is being evaluated in chunks: `fed` prompt tokens are in the KV cache or
    /// in this step's batch (reused cache tokens included).
    Prompt { fed: usize },
    /// Its newest token (the prompt's last, or the last sampled) is in this step's batch;
    /// the logits at batch index `logits_at` are sampled after the decode.
    Decoding { logits_at: i32 },
    /// `next` was sampled and goes into the next step's batch.
    Generating { next: LlamaToken },
}

/// A request in a slot.
pub struct Active {
    pub req: Box<PreparedRequest>,
    pub phase: Phase,
    pub sampler: Sampler,
    pub reply: ReplyText,
    /// Prompt tokens reused from the slot's cache.
    pub cached_tokens: usize,
    /// Position of the next token fed for this sequence.
    pub n_past: i32,
    pub completion_tokens: u32,
    pub admitted_at: Instant,
    pub first_token_at: Option<Instant>,
    /// The thinking block of a thinking model's structured reply (`reasoningBudget`, and where a lazy tool grammar pauses).
    pub thinking: Option<ThinkingBlock>,
    /// Tokens to feed instead of sampling (a thinking block's end tag, once its budget is spent).
    pub forced: std::collections::VecDeque<LlamaToken>,
    /// Control tokens whose text the reply must show (the chat parser reads them).
    pub visible_controls: Vec<LlamaToken>,
}

pub struct Slot {
    pub seq_id: i32,
    /// None while idle.
    pub active: Option<Active>,
    /// The tokens whose keys and values this slot's sequence holds, in position order. Kept
    /// after a request ends so that the next request sharing a prefix skips it.
    pub cache: Vec<LlamaToken>,
    /// Admission counter value when the slot was last taken: among free slots that are
    /// otherwise equal, the least recently used is taken first.
    pub last_used: u64,
    /// `cache` holds a finished request's tokens not yet offered to the prompt cache: the
    /// inference thread offers them when it has nothing else to do.
    pub offer_pending: bool,
}

impl Slot {
    pub fn new(seq_id: i32) -> Self {
        Self {
            seq_id,
            active: None,
            cache: Vec::new(),
            last_used: 0,
            offer_pending: false,
        }
    }

    pub fn is_idle(&self) -> bool {
        self.active.is_none()
    }
}
