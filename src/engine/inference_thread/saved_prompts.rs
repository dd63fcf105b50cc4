//! Moves KV sequences between the slots and the prompt caches, on the inference thread: a
//! slot's sequence is saved before another conversation overwrites it (ahead of need while the
//! engine is idle, where it fits), and a saved one is restored into a slot when a request's
//! prompt starts with it.

use std::time::Instant;

use llama_cpp_2::context::session::LlamaStateSeqFlags;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::token::LlamaToken;
use tracing::{debug, warn};

use crate::engine::prompt_cache::disk::DiskWriter;
use crate::engine::prompt_cache::memory::MemoryCache;
use crate::engine::prompt_cache::{CachedPrompt, MIN_CACHED_TOKENS};
use crate::engine::status::{add, set, Shared};

use super::slot::Slot;

pub struct SavedPrompts {
    memory: MemoryCache,
    disk: Option<DiskWriter>,
}

impl SavedPrompts {
    pub fn new(limit_bytes: u64, disk: Option<DiskWriter>) -> Self {
        Self {
            memory: MemoryCache::new(limit_bytes),
            disk,
        }
    }

    /// Whether anything is kept when slots are reused.
    pub fn enabled(&self) -> bool {
        self.memory.enabled() || self.disk.is_some()
    }

    /// The saved state sharing the longest prefix with `tokens`, and that prefix's length.
    pub fn best_match(&self, tokens: &[LlamaToken]) -> Option<(usize, usize)> {
        self.memory.best_match(tokens)
    }

    /// Saves `slot`'s sequence, unless it is short or already kept.
    pub fn save(&mut self, ctx: &LlamaContext, slot: &Slot, shared: &Shared) {
        if self.worth_saving(slot) {
            let size = state_size(ctx, slot);
            self.keep_snapshot(ctx, slot, size, shared);
        }
    }

    /// Saves a slot that still holds its sequence, ahead of need (the engine is idle), only
    /// where the state fits beside those kept: while the slot still holds it, a copy must not
    /// push out a state that exists nowhere else. Admission saves it when it takes the slot.
    pub fn save_ahead(&mut self, ctx: &LlamaContext, slot: &Slot, shared: &Shared) {
        if !self.worth_saving(slot) {
            return;
        }
        let size = state_size(ctx, slot);
        let tokens = slot.cache.len() * std::mem::size_of::<LlamaToken>();
        if self.memory.has_room((size + tokens) as u64) {
            self.keep_snapshot(ctx, slot, size, shared);
        }
    }

    fn worth_saving(&self, slot: &Slot) -> bool {
        self.enabled() && slot.cache.len() >= MIN_CACHED_TOKENS && !self.memory.covers(&slot.cache)
    }

    fn keep_snapshot(&mut self, ctx: &LlamaContext, slot: &Slot, size: usize, shared: &Shared) {
        if let Some(prompt) = snapshot(ctx, slot, size) {
            add(&shared.counters.prompt_cache_saves, 1);
            debug!(
                tokens = prompt.tokens.len(),
                bytes = prompt.state.len(),
                "prompt cache: slot state saved"
            );
            self.adopt(prompt, shared);
        }
    }

    /// Keeps a state (a slot's, or one the prompt thread brought back from disk); what the
    /// memory bound pushes out goes to the disk tier, if any.
    pub fn adopt(&mut self, prompt: CachedPrompt, shared: &Shared) {
        let evicted = self.memory.insert(prompt);
        add(
            &shared.counters.prompt_cache_evictions,
            evicted.len() as u64,
        );
        if let Some(disk) = &self.disk {
            for prompt in evicted {
                disk.offer(prompt);
            }
        }
        self.publish(shared);
    }

    /// Moves kept state `index` out of the memory tier (to be restored into a slot).
    pub fn take(&mut self, index: usize, shared: &Shared) -> CachedPrompt {
        let prompt = self.memory.remove(index);
        self.publish(shared);
        prompt
    }

    fn publish(&self, shared: &Shared) {
        let c = &shared.counters;
        set(&c.prompt_cache_entries, self.memory.len() as u64);
        set(&c.prompt_cache_bytes, self.memory.bytes());
    }

    /// At shutdown: with a disk tier, every kept state and every slot's sequence is written to
    /// it (so they survive the restart), and the writer is waited for.
    pub fn shutdown(&mut self, ctx: &LlamaContext, slots: &[Slot], shared: &Shared) {
        let Some(mut disk) = self.disk.take() else {
            return;
        };
        // A slot saved ahead of need is in memory already: written once, from there.
        let in_slots: Vec<CachedPrompt> = slots
            .iter()
            .filter(|s| s.cache.len() >= MIN_CACHED_TOKENS && !self.memory.covers(&s.cache))
            .filter_map(|s| snapshot(ctx, s, state_size(ctx, s)))
            .collect();
        let mut all = self.memory.drain();
        all.extend(in_slots);
        for prompt in all {
            disk.write_waiting(prompt);
        }
        disk.finish();
        self.publish(shared);
    }
}

/// Bytes llama.cpp needs to save `slot`'s sequence (it walks the sequence's cells to find out).
fn state_size(ctx: &LlamaContext, slot: &Slot) -> usize {
    ctx.state_seq_get_size_ext(slot.seq_id, LlamaStateSeqFlags::empty())
}

/// `slot`'s sequence as llama.cpp serializes it, with its tokens; `size` is its `state_size`.
fn snapshot(ctx: &LlamaContext, slot: &Slot, size: usize) -> Option<CachedPrompt> {
    let flags = LlamaStateSeqFlags::empty();
    let mut state = vec![0u8; size];
    // SAFETY: `state` holds the `size` bytes llama.cpp just said this sequence needs.
    let written = unsafe { ctx.state_seq_get_data_ext(state.as_mut_ptr(), slot.seq_id, flags) };
    if written != size {
        warn!(
            size,
            written,
            "prompt cache: llama.cpp saved a different size than announced; state not kept"
        );
        return None;
    }
    Some(CachedPrompt {
        tokens: slot.cache.clone(),
        state,
    })
}

/// Restores `prompt` into `slot` (its sequence and token list). False when llama.cpp refuses
/// the state; the slot is then empty.
pub fn restore_into(
    ctx: &mut LlamaContext,
    slot: &mut Slot,
    prompt: &CachedPrompt,
    shared: &Shared,
) -> bool {
    let started = Instant::now();
    // SAFETY: the bytes were produced by `state_seq_get_data_ext` of this model and llama.cpp
    // build (the disk tier checks both, and a checksum, before a file's bytes get here);
    // llama.cpp checks their shape and refuses a mismatch with 0.
    let restored = unsafe {
        ctx.state_seq_set_data_ext(&prompt.state, slot.seq_id, LlamaStateSeqFlags::empty())
    };
    slot.cache.clear();
    if !restored {
        let _ = ctx.clear_kv_cache_seq(Some(slot.seq_id as u32), None, None);
        add(&shared.counters.prompt_cache_restore_failures, 1);
        warn!("prompt cache: llama.cpp refused a saved state; the prompt is evaluated in full");
        return false;
    }
    slot.cache.extend_from_slice(&prompt.tokens);
    let c = &shared.counters;
    add(&c.prompt_cache_restores, 1);
    add(
        &c.prompt_cache_restore_us,
        started.elapsed().as_micros() as u64,
    );
    debug!(
        tokens = slot.cache.len(),
        "prompt cache: state restored into a slot"
    );
    true
}
