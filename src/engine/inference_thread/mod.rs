//! The inference thread: one per engine. It owns the model and its llama.cpp context as locals
//! (the context borrows the model), loads them, then runs the scheduler until shutdown.
//!
//! - `scheduler`: the step loop, one batched `decode` per step.
//! - `wait_queue`: where admitted requests wait for a free slot.
//! - `slot`: one KV sequence and the request it serves, with explicit states.
//! - `sampler`: picks each slot's next token.
//! - `reply_text`: turns sampled tokens into whole UTF-8 text with stop strings held back, and
//!   emits the request's chunks (`utf8_stream`, `stop_matcher`).

mod reply_text;
mod sampler;
mod scheduler;
mod slot;
pub mod stop_matcher;
pub mod utf8_stream;
mod wait_queue;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use tracing::{info, warn};

use super::error::{panic_to_error, EngineError, EngineResult};
use super::faults::Faults;
use super::load::{self, Loaded};
use super::options::EngineConfig;
use super::prompt_thread::tokenizer::Tokenizer;
use super::request::PreparedRequest;
use super::status::{EngineStatus, Shared};
use super::{LoadedFn, ModelInfo, ProgressFn};
use scheduler::{Scheduler, SchedulerConfig};

/// What the inference thread receives.
pub enum Command {
    /// A request whose prompt the prompt thread has tokenized.
    Submit(Box<PreparedRequest>),
    Shutdown,
}

/// The thread's function: load, report through `on_loaded`, then serve `commands`.
pub(super) fn run(
    config: EngineConfig,
    faults: Faults,
    shared: Arc<Shared>,
    loaded: Arc<OnceLock<Loaded>>,
    commands: Receiver<Command>,
    progress: Option<ProgressFn>,
    on_loaded: LoadedFn,
) {
    let on_loaded = Mutex::new(Some(on_loaded));
    let report = |r: EngineResult<ModelInfo>| {
        if let Some(f) = on_loaded.lock().unwrap_or_else(|p| p.into_inner()).take() {
            f(r);
        }
    };
    let fail = |e: EngineError| {
        shared.update(|c| {
            c.status = EngineStatus::Error;
            c.last_error = Some(e.message.clone());
        });
        report(Err(e));
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let started = Instant::now();
        let model = match load::load_model(&config, progress) {
            Ok(m) => Arc::new(m),
            Err(e) => return fail(e),
        };
        let plan = match load::plan_context(&model, &config, &faults) {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        let ctx = match load::new_context(&model, &config, &plan) {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        let load::ContextPlan {
            n_ctx_per_seq,
            n_batch,
            template,
        } = plan;
        let info = load::model_info(&model, &config, n_ctx_per_seq, n_batch, &template, started);
        info!(model = %info.name, context = n_ctx_per_seq, load_ms = info.load_ms, "model loaded");
        let _ = loaded.set(Loaded {
            tokenizer: Tokenizer::new(&model),
            model: model.clone(),
            template,
            n_ctx_per_seq,
        });
        shared.update(|c| {
            c.status = EngineStatus::Ok;
            c.model_name = Some(info.name.clone());
            c.context_size = n_ctx_per_seq;
            c.slots_total = config.parallel;
        });
        report(Ok(info));
        let cfg = SchedulerConfig {
            faults,
            n_batch: n_batch as usize,
            prompt_chunk: config.prompt_chunk_size.min(n_batch) as usize,
            n_ctx_per_seq,
            parallel: config.parallel as usize,
        };
        Scheduler::new(&model, ctx, cfg, &shared).run(commands);
    }));
    if let Err(payload) = outcome {
        let e = panic_to_error(payload);
        warn!(error = %e, "the inference thread panicked");
        fail(e);
    }
}
