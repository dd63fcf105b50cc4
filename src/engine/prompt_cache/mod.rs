//! Prompt caches that outlive a slot's KV sequence. A chat service has more conversations
//! than slots: when another chat takes a slot, the sequence it held (its tokens' keys and
//! values, saved with llama.cpp's per-sequence state calls) is kept here, so the returning
//! conversation restores it instead of evaluating its whole history again.
//!
//! | tier | module | thread |
//! |---|---|---|
//! | host memory, bounded by `promptCacheBytes` | [`memory`] | the inference thread owns it |
//! | disk, bounded by `promptCacheDiskBytes` (optional, `promptCacheDir`) | [`disk`] | written by its own thread, read by the prompt thread |
//!
//! A state lives in one tier at a time: memory evicts to disk (least recently used first),
//! and the prompt thread moves a disk state back to memory when a request's prompt starts with
//! it. [`file_format`] is the on-disk layout, checked before llama.cpp sees a byte of it.

pub mod disk;
pub mod file_format;
pub mod memory;

use llama_cpp_2::token::LlamaToken;

/// States of fewer tokens are not kept: evaluating them again costs about as much as copying.
pub const MIN_CACHED_TOKENS: usize = 16;

/// A saved KV sequence: the tokens it holds, in position order, and llama.cpp's serialized
/// state of that sequence.
pub struct CachedPrompt {
    pub tokens: Vec<LlamaToken>,
    pub state: Vec<u8>,
}

impl CachedPrompt {
    /// What it costs to keep, in bytes.
    pub fn bytes(&self) -> u64 {
        (self.state.len() + self.tokens.len() * std::mem::size_of::<LlamaToken>()) as u64
    }
}

/// Tokens the two lists share from their start.
pub fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
