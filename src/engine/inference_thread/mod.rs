//! The inference thread: one per engine. It owns the model and its llama.cpp context as locals
//! (the context borrows the model), loads them, then runs the scheduler until shutdown.
//!
//! - `scheduler`: the step loop, one batched `decode` per step.
//! - `wait_queue`: where admitted requests wait for a free slot.
//! - `slot`: one KV sequence and the request it serves, with explicit states.
//! - `sampler`: picks each slot's next token.
//! - `saved_prompts`: saves a slot's sequence before another conversation takes the slot (or
//!   ahead of need while the engine is idle), and restores saved ones (the prompt cache's
//!   memory tier, spilling to its disk tier).
//! - `reply_text`: turns sampled tokens into whole UTF-8 text with stop strings held back, and
//!   emits the request's chunks (`utf8_stream`, `stop_matcher`).

mod embedder;
mod reply_text;
mod sampler;
mod saved_prompts;
mod scheduler;
mod slot;
pub mod stop_matcher;
mod thinking_block;
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
use super::options::{EngineConfig, Pooling};
use super::prompt_cache::disk::{DiskCache, DiskWriter};
use super::prompt_thread::tokenizer::Tokenizer;
use super::request::{EmbedRequest, PreparedRequest};
use super::status::set;
use super::status::{EngineStatus, Shared};
use super::{LoadedFn, ModelInfo, ProgressFn};
use saved_prompts::SavedPrompts;
use scheduler::{Scheduler, SchedulerConfig};

/// What the inference thread receives.
pub enum Command {
    /// A request whose prompt the prompt thread has tokenized.
    Submit(Box<PreparedRequest>),
    /// An `embed` or `rank` request for an embedding engine.
    Embed(Box<EmbedRequest>),
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
        let info = load::model_info(&model, &config, &plan, started);
        if let Some(pooling) = plan.pooling {
            info!(model = %info.name, pooling = pooling.as_str(), load_ms = info.load_ms, "embedding model loaded");
            let _ = loaded.set(Loaded {
                disk_cache: None,
                tokenizer: Tokenizer::new(&model),
                model: model.clone(),
                template: plan.template,
                chat_formats: None,
                n_ctx_per_seq: plan.n_ctx_per_seq,
                pooling: Some(pooling),
            });
            shared.update(|c| {
                c.status = EngineStatus::Ok;
                c.model_name = Some(info.name.clone());
                c.devices = Some(info.devices.clone());
                c.context_size = plan.n_ctx_per_seq;
                c.slots_total = config.parallel;
            });
            report(Ok(info));
            let Some(loaded) = loaded.get() else { return };
            let cfg = embedder::EmbedderConfig {
                n_batch: plan.n_batch as usize,
                max_text_tokens: plan.n_ctx_per_seq as usize,
                // A model without a classifier (a test stand-in for a reranker, `rank:1`)
                // gets its score read right by llama.cpp only for a batch's first sequence.
                max_sequences: if pooling == Pooling::Rank && !load::is_reranker(&model) {
                    1
                } else {
                    config.parallel as usize
                },
                pooling,
            };
            embedder::Embedder::new(loaded, ctx, cfg, &shared, faults).run(commands);
            return;
        }
        let load::ContextPlan {
            n_ctx_per_seq,
            n_batch,
            template,
            chat_formats,
            ..
        } = plan;
        let cache_bytes = config
            .prompt_cache_bytes
            .unwrap_or_else(load::memory::default_prompt_cache_bytes);
        let disk = match &config.prompt_cache_dir {
            Some(dir) => match open_disk_cache(dir, &config, &model) {
                Ok(opened) => Some(opened),
                Err(e) => return fail(e),
            },
            None => None,
        };
        info!(model = %info.name, context = n_ctx_per_seq, load_ms = info.load_ms, prompt_cache_bytes = cache_bytes, "model loaded");
        set(&shared.counters.prompt_cache_limit_bytes, cache_bytes);
        let disk_writer = match &disk {
            Some(cache) => {
                let _ = shared.disk_cache.set(cache.clone());
                match DiskWriter::start(cache.clone()) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        return fail(EngineError::load_failed(format!(
                            "cannot start the prompt cache's writer thread: {e}"
                        )))
                    }
                }
            }
            None => None,
        };
        let _ = loaded.set(Loaded {
            disk_cache: disk,
            tokenizer: Tokenizer::new(&model),
            model: model.clone(),
            template,
            chat_formats,
            n_ctx_per_seq,
            pooling: None,
        });
        shared.update(|c| {
            c.status = EngineStatus::Ok;
            c.model_name = Some(info.name.clone());
            c.devices = Some(info.devices.clone());
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
            sliding_window: load::sliding_window(&model),
        };
        let saved = SavedPrompts::new(cache_bytes, disk_writer);
        Scheduler::new(&model, ctx, cfg, saved, &shared).run(commands);
    }));
    if let Err(payload) = outcome {
        let e = panic_to_error(payload);
        warn!(error = %e, "the inference thread panicked");
        fail(e);
    }
}

/// Opens the disk tier. Its files carry a fingerprint of the llama.cpp build and the model,
/// so a state is only ever restored into the model and build that saved it.
fn open_disk_cache(
    dir: &std::path::Path,
    config: &EngineConfig,
    model: &llama_cpp_2::model::LlamaModel,
) -> EngineResult<Arc<DiskCache>> {
    let fingerprint = format!(
        "llama-cpp-sys-2 {}; model {} params {} bytes {} vocab {} layers {} embd {}",
        env!("NAPI_LLAMA_LLAMA_CPP_SYS_VERSION"),
        model.meta_val_str("general.name").unwrap_or_default(),
        model.n_params(),
        model.size(),
        model.n_vocab(),
        model.n_layer(),
        model.n_embd(),
    );
    DiskCache::open(dir, config.prompt_cache_disk_bytes, fingerprint).map_err(|e| {
        EngineError::invalid_argument(format!(
            "promptCacheDir {} cannot be used ({e}): give a folder this process may create and write",
            dir.display()
        ))
    })
}
