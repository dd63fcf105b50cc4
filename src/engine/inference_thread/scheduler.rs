//! The inference thread's loop. Every step builds one batch holding the pending token of each
//! generating slot plus prompt chunks of newly admitted slots, calls `decode` once, then
//! samples for every slot whose logits were requested (continuous batching, as in
//! llama-server). Cancellation and deadlines are checked between steps: llama.cpp cannot
//! interrupt a running `decode`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Instant;

use crate::engine::load::thread_pool::EngineContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use tracing::{debug, warn};

use crate::engine::error::{panic_to_error, EngineError, ErrorCode};
use crate::engine::faults::Faults;
use crate::engine::request::{
    CancelReason, Event, EventSink, FinishReason, Generation, PreparedRequest, Timings,
};
use crate::engine::status::{add, set, sub, Shared};

use super::reply_text::ReplyText;
use super::sampler::build_sampler;
use super::saved_prompts::{restore_into, SavedPrompts};
use super::slot::{Active, Phase, Slot};
use super::thinking_block::ThinkingBlock;
use super::wait_queue::WaitQueue;
use super::Command;
use crate::engine::chat_format::StructuredReply;
use crate::engine::prompt_cache::{common_prefix, MIN_CACHED_TOKENS};

pub struct SchedulerConfig {
    pub faults: Faults,
    pub n_batch: usize,
    /// Prompt tokens one step may carry while other slots are generating (see `fill_batch`).
    pub prompt_chunk: usize,
    pub n_ctx_per_seq: u32,
    pub parallel: usize,
    /// The window of the model's sliding-window layers; 0 when it has none.
    pub sliding_window: u32,
}

pub struct Scheduler<'m> {
    model: &'m LlamaModel,
    ctx: EngineContext<'m>,
    batch: LlamaBatch<'static>,
    slots: Vec<Slot>,
    queue: WaitQueue,
    cfg: SchedulerConfig,
    shared: &'m Shared,
    admissions: u64,
    faults: Faults,
    saved: SavedPrompts,
}

fn ms(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1000.0
}

impl<'m> Scheduler<'m> {
    pub fn new(
        model: &'m LlamaModel,
        ctx: EngineContext<'m>,
        mut cfg: SchedulerConfig,
        saved: SavedPrompts,
        shared: &'m Shared,
    ) -> Self {
        let slots = (0..cfg.parallel).map(|i| Slot::new(i as i32)).collect();
        let faults = std::mem::take(&mut cfg.faults);
        Self {
            model,
            ctx,
            batch: LlamaBatch::new(cfg.n_batch, 1),
            slots,
            queue: WaitQueue::default(),
            cfg,
            shared,
            admissions: 0,
            faults,
            saved,
        }
    }

    fn busy(&self) -> bool {
        !self.queue.is_empty() || self.slots.iter().any(|s| !s.is_idle())
    }

    /// Serves commands until shutdown or until every sender is gone.
    pub fn run(mut self, commands: Receiver<Command>) {
        loop {
            // Idle: block until work arrives, so an idle engine costs no CPU.
            if !self.busy() {
                // Nothing to decode until a command arrives: llama.cpp's workers sleep meanwhile.
                self.ctx.rest_threads();
                let arrived = self.save_while_idle(&commands);
                match arrived.map_or_else(|| commands.recv(), Ok) {
                    Ok(cmd) => {
                        if !self.handle(cmd) {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            let mut shutting_down = false;
            loop {
                match commands.try_recv() {
                    Ok(cmd) => {
                        if !self.handle(cmd) {
                            shutting_down = true;
                            break;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        shutting_down = true;
                        break;
                    }
                }
            }
            if shutting_down {
                break;
            }
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| self.step())) {
                let err = panic_to_error(payload);
                warn!(error = %err, "inference step panicked; failing the requests in flight");
                self.shared
                    .update(|c| c.last_error = Some(err.message.clone()));
                self.fail_all_active(&err);
                self.forget_all_caches();
            }
        }
        let err = EngineError::aborted("the engine was shut down before this request finished");
        self.fail_all_active(&err);
        while let Some(req) = self.queue.pop() {
            self.reject(req, err.clone());
        }
        self.publish_occupancy();
        self.saved.shutdown(&self.ctx, &self.slots, self.shared);
    }

    /// Saves finished replies' slot states to the prompt cache, one slot at a time, until a
    /// command arrives (returned) or none is left. Admission would otherwise save a slot it
    /// takes over, inside the new request's time to first token; done here, the copy uses time
    /// in which the engine waits anyway (the next request crossing HTTP and the chat template),
    /// and admission finds the state already saved. Only where it fits (`save_ahead`).
    fn save_while_idle(&mut self, commands: &Receiver<Command>) -> Option<Command> {
        while let Some(i) = self
            .slots
            .iter()
            .position(|s| s.offer_pending && s.is_idle())
        {
            self.slots[i].offer_pending = false;
            self.saved
                .save_ahead(&self.ctx, &self.slots[i], self.shared);
            if let Ok(cmd) = commands.try_recv() {
                return Some(cmd);
            }
        }
        None
    }

    /// Sends the text paced streams hold: all of it, or (`due_only`) what has waited its
    /// interval.
    fn flush_paced_text(&mut self, due_only: bool) {
        for a in self.slots.iter_mut().filter_map(|s| s.active.as_mut()) {
            if due_only {
                a.req.sink.flush_due();
            } else {
                a.req.sink.flush();
            }
        }
    }

    /// Returns false on shutdown.
    fn handle(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Submit(req) => {
                // Admission (`QUEUE_FULL`) was decided at submit: every request that gets
                // here has its place.
                self.queue.push(req);
                // In the queue before it leaves transit: `queueDepth` never dips.
                self.publish_occupancy();
                sub(&self.shared.counters.requests_in_transit, 1);
                true
            }
            Command::Embed(req) => {
                // The handle sends these only to an embedding engine, which runs the embedder.
                sub(&self.shared.counters.requests_in_transit, 1);
                self.shared.count_failure(ErrorCode::InvalidArgument);
                let mut sink = req.sink;
                sink.send(Event::Error(EngineError::invalid_argument(
                    "this engine generates text: load it with embeddings: true to embed or rank",
                )));
                true
            }
            Command::Shutdown => false,
        }
    }

    fn publish_occupancy(&self) {
        let c = &self.shared.counters;
        set(&c.requests_queued, self.queue.len() as u64);
        set(
            &c.requests_active,
            self.slots.iter().filter(|s| !s.is_idle()).count() as u64,
        );
    }

    fn reject(&mut self, mut req: Box<PreparedRequest>, err: EngineError) {
        // A state the prompt thread moved out of the disk tier for it is kept, not lost.
        if let Some(prompt) = req.restored.take() {
            self.saved.adopt(prompt, self.shared);
        }
        self.shared.count_failure(err.code);
        req.sink.send(Event::Error(err));
    }

    fn step(&mut self) {
        self.faults.maybe_panic();
        self.drop_cancelled();
        // Admission may compile a grammar or restore a saved prompt, and the step after it
        // evaluates prompt tokens: both take longer than a token, so held text goes out first.
        let admitting = !self.queue.is_empty() && self.slots.iter().any(Slot::is_idle);
        self.flush_paced_text(!admitting);
        self.admit();
        self.publish_occupancy();
        let load = self.fill_batch();
        if load.total() == 0 {
            return;
        }
        if load.prompt > 0 && load.generating > 0 {
            // A long prompt keeps evaluating in chunks after its admission step.
            self.flush_paced_text(false);
        }
        self.faults.delay_step();
        let started = Instant::now();
        add(&self.shared.counters.decode_calls, 1);
        let decoded = if self.faults.decode_fails() {
            Err("injected fault".to_string())
        } else {
            self.ctx.decode(&mut self.batch).map_err(|e| e.to_string())
        };
        if let Err(e) = decoded {
            let err = EngineError::internal(format!("llama.cpp decode failed: {e}"));
            warn!(error = %err, "decode failed");
            self.shared
                .update(|c| c.last_error = Some(err.message.clone()));
            self.fail_all_active(&err);
            // A failed decode may have left part of the batch in the KV cache.
            self.forget_all_caches();
            return;
        }
        self.sample_all();
        self.shared
            .record_step(load.prompt, load.generating, started.elapsed());
        self.publish_occupancy();
    }

    /// Empties every slot's KV sequence and cache record.
    fn forget_all_caches(&mut self) {
        self.ctx.clear_kv_cache();
        for slot in &mut self.slots {
            slot.cache.clear();
            slot.offer_pending = false;
        }
    }

    /// Ends queued and running requests whose caller cancelled or whose deadline passed.
    fn drop_cancelled(&mut self) {
        let now = Instant::now();
        let ended = self.queue.take_ended(now);
        // Out of `queueDepth` before their callers hear about it.
        if !ended.is_empty() {
            self.publish_occupancy();
        }
        for (req, err) in ended {
            self.reject(req, err);
        }
        for i in 0..self.slots.len() {
            let err = self.slots[i]
                .active
                .as_ref()
                .and_then(|a| a.req.ended_by(now));
            if let Some(err) = err {
                self.fail_slot(i, err);
            }
        }
    }

    /// Moves queued requests (FIFO) into free slots. Each goes to the free slot whose cache
    /// shares the longest prefix with its prompt, if that is worth keeping; otherwise, and on a
    /// tie, to a free slot next to busy ones (see `busy_neighbours`), then the least recently
    /// used. When a saved state shares a longer prefix, it is restored into a free slot chosen
    /// the same way. Only the rest of the prompt is evaluated.
    fn admit(&mut self) {
        while !self.queue.is_empty() {
            let Some(i) = self.queue.front().and_then(|req| self.pick_slot(req)) else {
                return;
            };
            let Some(mut req) = self.queue.pop() else {
                return;
            };
            let plan = req.reply_plan.as_ref();
            let sampler = match build_sampler(
                self.model,
                &req.params.sampling,
                plan.and_then(|p| p.grammar.as_ref()),
            ) {
                Ok(s) => s,
                Err(err) => {
                    self.reject(req, err);
                    continue;
                }
            };
            let structured = match plan.map(|p| StructuredReply::new(&p.parser)).transpose() {
                Ok(s) => s,
                Err(err) => {
                    self.reject(req, err);
                    continue;
                }
            };
            let mut stops = req.params.stop.clone();
            let mut thinking = None;
            let mut visible_controls = Vec::new();
            if let Some(plan) = plan {
                stops.extend(plan.stops.iter().cloned());
                visible_controls = plan.control_tokens.iter().map(|&t| LlamaToken(t)).collect();
                // Followed on every reply of a thinking template: a lazy tool grammar pauses
                // inside the block, and a budget closes it.
                thinking = (!plan.thinking_end_tokens.is_empty()).then(|| {
                    ThinkingBlock::new(
                        plan.reasoning_budget,
                        plan.starts_thinking,
                        plan.thinking_start_tag.clone(),
                        plan.thinking_end_tags.clone(),
                    )
                });
            }
            let (i, restored) = self.fill_slot(i, &mut req);
            let reused = self.reuse_prefix(i, &req);
            // Counted at admission, like `promptTokensEvaluated`, so requests that end early
            // (aborted, timed out) appear in both.
            let c = &self.shared.counters;
            add(&c.prompt_tokens_total, req.tokens.len() as u64);
            add(&c.cached_tokens_total, reused as u64);
            if reused > 0 {
                add(&c.cache_hits, 1);
            }
            if restored {
                add(&c.prompt_cache_restored_tokens, reused as u64);
            }
            self.admissions += 1;
            self.slots[i].last_used = self.admissions;
            self.slots[i].offer_pending = false;
            debug!(request_id = %req.params.request_id, slot = i, prompt_tokens = req.tokens.len(), cached_tokens = reused, restored, "admitted");
            let reply = ReplyText::new(stops, req.stream, structured);
            self.slots[i].active = Some(Active {
                req,
                phase: Phase::Prompt { fed: reused },
                sampler,
                reply,
                cached_tokens: reused,
                n_past: reused as i32,
                completion_tokens: 0,
                admitted_at: Instant::now(),
                first_token_at: None,
                thinking,
                forced: std::collections::VecDeque::new(),
                visible_controls,
            });
        }
    }

    fn pick_slot(&self, req: &PreparedRequest) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_idle())
            .max_by_key(|&(i, s)| {
                let shared = if req.params.cache_prompt {
                    common_prefix(&s.cache, &req.tokens)
                } else {
                    0
                };
                // A few shared tokens (a chat template's opening) save less than a broken run
                // of sequences costs at every step.
                let worth_keeping = if shared >= MIN_CACHED_TOKENS {
                    shared
                } else {
                    0
                };
                (
                    worth_keeping,
                    self.busy_neighbours(i),
                    std::cmp::Reverse(s.last_used),
                )
            })
            .map(|(i, _)| i)
    }

    /// Busy slots next to slot `i`: see `busy_neighbours`.
    fn busy_neighbours(&self, i: usize) -> u8 {
        busy_neighbours(|j| self.slots.get(j).is_some_and(|s| !s.is_idle()), i)
    }

    /// Chooses the slot that serves `req`, given `best`, the free slot sharing the longest
    /// prefix with it. When a kept state (or the one the prompt thread brought back from disk)
    /// shares more, it is restored into a free slot next to busy ones, else the least recently
    /// used (returns true), and leaves the cache: the slot holds it from then on, and saves it
    /// again when it is lost.
    /// Whatever a slot held that is about to be lost is saved first, so the conversation it
    /// belongs to can come back to it.
    fn fill_slot(&mut self, best: usize, req: &mut PreparedRequest) -> (usize, bool) {
        let use_cache = req.params.cache_prompt;
        let shared_with = |tokens: &[LlamaToken]| {
            if use_cache {
                common_prefix(tokens, &req.tokens)
            } else {
                0
            }
        };
        let in_slot = shared_with(&self.slots[best].cache);
        let in_memory = use_cache
            .then(|| self.saved.best_match(&req.tokens))
            .flatten();
        let loaded = req.restored.take();
        let from_disk = loaded.as_ref().map_or(0, |p| shared_with(&p.tokens));
        let from_memory = in_memory.map_or(0, |(_, n)| n);
        // The state to restore, moved out of its tier: the slot holds it from now on.
        let (chosen, left) = if from_disk > in_slot.max(from_memory) {
            (loaded, None)
        } else {
            match in_memory {
                Some((entry, shared)) if shared > in_slot => {
                    (Some(self.saved.take(entry, self.shared)), loaded)
                }
                _ => (None, loaded),
            }
        };
        if let Some(prompt) = left {
            self.saved.adopt(prompt, self.shared);
        }
        let Some(prompt) = chosen else {
            self.save_if_lost(best, in_slot);
            return (best, false);
        };
        let target = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_idle())
            .max_by_key(|&(i, s)| (self.busy_neighbours(i), std::cmp::Reverse(s.last_used)))
            .map_or(best, |(i, _)| i);
        self.save_if_lost(target, 0);
        let restored = restore_into(&mut self.ctx, &mut self.slots[target], &prompt, self.shared);
        (target, restored)
    }

    /// Saves slot `i`'s sequence when more than a few of its tokens beyond the first `kept`
    /// are about to be overwritten.
    fn save_if_lost(&mut self, i: usize, kept: usize) {
        if self.slots[i].cache.len().saturating_sub(kept) >= MIN_CACHED_TOKENS {
            self.saved.save(&self.ctx, &self.slots[i], self.shared);
        }
    }

    /// Trims slot `i`'s sequence to the prefix it shares with the request's prompt and
    /// returns how many prompt tokens need no evaluation. At least the last prompt token is
    /// always evaluated again: its logits are needed to sample the first reply token.
    fn reuse_prefix(&mut self, i: usize, req: &PreparedRequest) -> usize {
        let slot = &mut self.slots[i];
        let seq = slot.seq_id;
        let mut keep = if req.params.cache_prompt {
            common_prefix(&slot.cache, &req.tokens).min(req.tokens.len() - 1)
        } else {
            0
        };
        if keep > 0 && keep < slot.cache.len() {
            // Sliding-window layers only hold the last `window` positions of a restored state
            // (llama.cpp saves no more), so cutting it back works only while the new last
            // position still sees a whole window (llama-server's check). Otherwise: start over.
            let window = self.cfg.sliding_window as i32;
            let window_intact =
                window == 0 || self.ctx.kv_cache_seq_pos_min(seq) <= (keep as i32 - window).max(0);
            let trimmed = window_intact
                && matches!(
                    self.ctx
                        .clear_kv_cache_seq(Some(seq as u32), Some(keep as u32), None),
                    Ok(true)
                );
            if !trimmed {
                add(&self.shared.counters.prompt_cache_swa_fallbacks, 1);
                keep = 0;
            }
        }
        if keep == 0 {
            let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
        }
        slot.cache.truncate(keep);
        keep
    }

    /// Builds this step's batch. Generating slots come first, one token each, so that every
    /// stream moves at every step; prompt chunks fill the room left, in admission order. While
    /// any slot is generating, prompt tokens per step are capped at `prompt_chunk`, so that a
    /// long prompt is spread over several steps instead of freezing the other streams.
    fn fill_batch(&mut self) -> BatchLoad {
        self.batch.clear();
        let capacity = self.cfg.n_batch;
        let mut load = BatchLoad::default();
        for slot in &mut self.slots {
            let Some(a) = slot.active.as_mut() else {
                continue;
            };
            let Phase::Generating { next } = a.phase else {
                continue;
            };
            // Without room the token waits for the next step, still `Generating`.
            if load.total() < capacity
                && self.batch.add(next, a.n_past, &[slot.seq_id], true).is_ok()
            {
                a.phase = Phase::Decoding {
                    logits_at: load.total() as i32,
                };
                a.n_past += 1;
                slot.cache.push(next);
                load.generating += 1;
            }
        }
        let prompt_budget = if load.generating > 0 {
            self.cfg.prompt_chunk
        } else {
            capacity
        };
        let mut order: Vec<usize> = (0..self.slots.len()).collect();
        order.sort_by_key(|&i| self.slots[i].last_used);
        for i in order {
            let slot = &mut self.slots[i];
            let Some(a) = slot.active.as_mut() else {
                continue;
            };
            let Phase::Prompt { mut fed } = a.phase else {
                continue;
            };
            let remaining = a.req.tokens.len() - fed;
            let room = (capacity - load.total()).min(prompt_budget - load.prompt);
            if remaining == 0 || room == 0 {
                continue;
            }
            for _ in 0..remaining.min(room) {
                let last = fed + 1 == a.req.tokens.len();
                let tok = a.req.tokens[fed];
                if self.batch.add(tok, a.n_past, &[slot.seq_id], last).is_err() {
                    break;
                }
                if last {
                    a.phase = Phase::Decoding {
                        logits_at: load.total() as i32,
                    };
                }
                a.n_past += 1;
                fed += 1;
                slot.cache.push(tok);
                load.prompt += 1;
            }
            if let Phase::Prompt { .. } = a.phase {
                a.phase = Phase::Prompt { fed };
            }
        }
        load
    }

    fn sample_all(&mut self) {
        for i in 0..self.slots.len() {
            let Some(a) = self.slots[i].active.as_mut() else {
                continue;
            };
            let Phase::Decoding { logits_at } = a.phase else {
                continue;
            };
            if a.forced.is_empty() {
                if a.thinking.as_ref().and_then(|b| b.must_close()).is_some() {
                    let plan = a.req.reply_plan.as_ref();
                    let end = plan
                        .map(|p| p.thinking_end_tokens.as_slice())
                        .unwrap_or_default();
                    a.forced.extend(end.iter().map(|&t| LlamaToken(t)));
                    if let Some(b) = a.thinking.as_mut() {
                        b.closed();
                    }
                }
            }
            let thinking = a.thinking.as_ref().is_some_and(|b| b.inside());
            let token = match a.forced.pop_front() {
                Some(token) => {
                    a.sampler.accept_forced(token, thinking);
                    token
                }
                None => match a.sampler.sample(&self.ctx, self.model, logits_at, thinking) {
                    Ok(token) => token,
                    Err(err) => {
                        self.fail_slot(i, err);
                        continue;
                    }
                },
            };
            let now = Instant::now();
            if a.first_token_at.is_none() {
                a.first_token_at = Some(now);
                let prompt_ms = ms(a.admitted_at, now);
                add(
                    &self.shared.counters.prompt_us_total,
                    (prompt_ms * 1000.0) as u64,
                );
            }
            let vocab = self.model.vocab();
            if vocab.is_eog(token) {
                self.finish(i, FinishReason::Eos);
                continue;
            }
            if a.n_past as u32 >= self.cfg.n_ctx_per_seq {
                // Every KV cell of the sequence is used, so this token could never be decoded.
                // Ending without it keeps promptTokens + completionTokens ≤ contextSize.
                self.finish(i, FinishReason::Length);
                continue;
            }
            a.completion_tokens += 1;
            let piece = vocab.token_to_piece(token, a.visible_controls.contains(&token), None);
            if a.thinking.as_mut().is_some_and(|b| b.observe(&piece)) {
                let plan = a.req.reply_plan.as_ref();
                let end: Vec<LlamaToken> = plan
                    .map(|p| {
                        p.thinking_end_tokens
                            .iter()
                            .map(|&t| LlamaToken(t))
                            .collect()
                    })
                    .unwrap_or_default();
                a.sampler.thinking_closed(&end);
            }
            let pushed = a.reply.push_token(&piece, &mut a.req.sink);
            if let Some(delivered) = pushed.chunk_delivered {
                if !delivered || self.faults.sink_lost() {
                    // Nobody listens any more: stop spending compute on it.
                    a.req.cancel.cancel(CancelReason::Aborted);
                }
            }
            if pushed.stopped {
                self.finish(i, FinishReason::Stop);
            } else if a.completion_tokens >= a.req.params.max_tokens {
                self.finish(i, FinishReason::Length);
            } else {
                a.phase = Phase::Generating { next: token };
            }
        }
    }

    /// Ends the slot's request. Its KV sequence stays: it is the prompt cache for the next
    /// request that shares a prefix with it.
    /// Occupancy is published before the caller hears the outcome, so `health()` called
    /// from the request's own callback already counts the slot free.
    fn free_slot(&mut self, i: usize) -> Option<Active> {
        let active = self.slots[i].active.take();
        if active.is_some() {
            self.slots[i].offer_pending = true;
            self.publish_occupancy();
        }
        active
    }

    fn finish(&mut self, i: usize, reason: FinishReason) {
        let Some(mut a) = self.free_slot(i) else {
            return;
        };
        let (text, mut reason, parsed) = a.reply.finish(reason, &mut a.req.sink);
        let plan = a.req.reply_plan.as_ref();
        let (text, reasoning_text, tool_calls) = match parsed {
            Some(parsed) => {
                if !parsed.tool_calls.is_empty() && reason != FinishReason::Length {
                    reason = FinishReason::ToolCalls;
                }
                let separate = plan.is_some_and(|p| p.separate_reasoning);
                let has_tools = plan.is_some_and(|p| p.has_tools);
                (
                    parsed.content,
                    separate.then_some(parsed.reasoning),
                    has_tools.then_some(parsed.tool_calls),
                )
            }
            None => (text, None, None),
        };
        let now = Instant::now();
        let first = a.first_token_at.unwrap_or(now);
        let generate_ms = ms(first, now);
        let tokens_per_second = if a.completion_tokens > 1 && generate_ms > 0.0 {
            f64::from(a.completion_tokens - 1) / (generate_ms / 1000.0)
        } else {
            0.0
        };
        let timings = Timings {
            queue_ms: ms(a.req.submitted_at, a.admitted_at),
            prompt_ms: ms(a.admitted_at, first),
            ttft_ms: ms(a.req.submitted_at, first),
            generate_ms,
            tokens_per_second,
        };
        let c = &self.shared.counters;
        add(&c.requests_completed, 1);
        add(&c.completion_tokens_total, u64::from(a.completion_tokens));
        add(&c.generate_us_total, (generate_ms * 1000.0) as u64);
        set(&c.last_ttft_us, (timings.ttft_ms * 1000.0) as u64);
        self.shared.record_ttft(timings.ttft_ms);
        set(&c.last_tps_milli, (tokens_per_second * 1000.0) as u64);
        debug!(request_id = %a.req.params.request_id, reason = reason.as_str(), tokens = a.completion_tokens, invalid_utf8_bytes_dropped = a.reply.dropped_bytes(), "finished");
        let generation = Generation {
            text,
            reasoning_text,
            tool_calls,
            finish_reason: reason,
            prompt_tokens: a.req.tokens.len() as u32,
            completion_tokens: a.completion_tokens,
            cached_tokens: a.cached_tokens as u32,
            dropped_messages: a.req.dropped_messages,
            timings,
            request_id: a.req.params.request_id.clone(),
        };
        a.req.sink.send(Event::Done(generation));
    }

    fn fail_slot(&mut self, i: usize, err: EngineError) {
        if let Some(mut a) = self.free_slot(i) {
            debug!(request_id = %a.req.params.request_id, code = err.code.as_str(), "failed");
            self.shared.count_failure(err.code);
            if err.code == ErrorCode::Internal {
                self.shared
                    .update(|c| c.last_error = Some(err.message.clone()));
            }
            // Tokens generated before the failure were computed all the same.
            add(
                &self.shared.counters.completion_tokens_total,
                u64::from(a.completion_tokens),
            );
            a.req.sink.send(Event::Error(err));
        }
    }

    fn fail_all_active(&mut self, err: &EngineError) {
        for i in 0..self.slots.len() {
            self.fail_slot(i, err.clone());
        }
    }
}

/// Tokens one decode step carries, by kind.
#[derive(Debug, Default, Clone, Copy)]
struct BatchLoad {
    prompt: usize,
    generating: usize,
}

impl BatchLoad {
    fn total(&self) -> usize {
        self.prompt + self.generating
    }
}

/// Busy slots next to slot `i` (0, 1 or 2). llama.cpp decodes a batch in one pass only when its
/// sequences have consecutive ids (the KV cache keeps one stream per sequence, and a pass covers
/// a range of streams), so every gap between busy slots costs another pass over the weights at
/// every step. A new request therefore goes next to busy slots, keeping them in one run.
fn busy_neighbours(is_busy: impl Fn(usize) -> bool, i: usize) -> u8 {
    u8::from(i.checked_sub(1).is_some_and(&is_busy)) + u8::from(is_busy(i + 1))
}

#[cfg(test)]
mod tests {
    use super::busy_neighbours;

    fn neighbours(busy: &[bool], i: usize) -> u8 {
        busy_neighbours(|j| busy.get(j).copied().unwrap_or(false), i)
    }

    #[test]
    fn a_free_slot_between_busy_ones_joins_their_runs() {
        let busy = [true, false, true, false, false];
        assert_eq!(
            neighbours(&busy, 1),
            2,
            "fills the gap: one run instead of two"
        );
        assert_eq!(neighbours(&busy, 3), 1, "extends the run");
        assert_eq!(neighbours(&busy, 4), 0, "would start a new run");
        assert_eq!(
            neighbours(&[false, true], 0),
            1,
            "the first slot has no left neighbour"
        );
        assert_eq!(neighbours(&[true, false], 1), 1, "nor the last a right one");
    }
}
