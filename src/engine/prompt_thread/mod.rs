//! The prompt thread: renders chat templates (`chat_template`), tokenizes (`tokenizer`, which
//! reuses the tokens of recent prompts' beginnings: `tokenized_prefixes`) and
//! fits prompts to the context (`fit`), checks grammar token references against the
//! vocabulary, and moves a matching saved prompt state back from the prompt cache's disk tier,
//! off the caller's thread and off the inference thread.
//!
//! On the caller's (JS) thread, a long conversation cost milliseconds of blocked event loop per
//! request (about 0.7 ms per kB of text here; a 1 MB prompt blocked it for over a second). On
//! the inference thread it would stall every stream's next token instead. One thread per engine
//! keeps requests in submission order (FIFO admission stays fair).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::info_span;

pub mod chat_template;
pub mod fit;
pub mod tokenized_prefixes;
pub mod tokenizer;

use crate::engine::error::{panic_to_error, EngineError};
use crate::engine::grammar;
use crate::engine::inference_thread::Command;
use crate::engine::load::Loaded;
use crate::engine::prompt_cache::MIN_CACHED_TOKENS;
use crate::engine::request::{Event, EventSink, PreparedRequest, ReplySink};
use crate::engine::status::{sub, Shared};
use crate::engine::Input;

/// A request as submitted: validated options, and the input still to render and tokenize into
/// `request.tokens` (empty until then).
pub struct PromptJob {
    pub input: Input,
    pub request: Box<PreparedRequest>,
}

/// The inference thread's command sender, shared with `Engine`: shutdown takes it (under the
/// lock) before sending `Shutdown`, so a request forwarded here either reaches the scheduler
/// ahead of `Shutdown` or finds no sender and ends as `ABORTED`. None is ever lost in between.
pub type CommandSender = Arc<Mutex<Option<Sender<Command>>>>;

/// Serves jobs until the engine drops its job sender (shutdown). `extra_delay` is the
/// test-only fault that makes every preparation slow on purpose.
pub fn run(
    jobs: Receiver<PromptJob>,
    loaded: Arc<OnceLock<Loaded>>,
    commands: CommandSender,
    shared: Arc<Shared>,
    extra_delay: Option<Duration>,
) {
    for PromptJob { input, mut request } in jobs {
        let _span = info_span!("request", request_id = %request.params.request_id).entered();
        let Some(model) = loaded.get() else {
            reject(&shared, request.sink, EngineError::not_loaded());
            continue;
        };
        // Work queued behind a long prompt may have been cancelled, timed out or shut down
        // meanwhile: end it without tokenizing it.
        let early = request.ended_by(Instant::now()).or_else(|| {
            lock(&commands).is_none().then(|| {
                EngineError::aborted("the engine was shut down before this request started")
            })
        });
        if let Some(err) = early {
            reject(&shared, request.sink, err);
            continue;
        }
        if let Some(delay) = extra_delay {
            std::thread::sleep(delay);
        }
        let fitted = catch_unwind(AssertUnwindSafe(|| {
            grammar::check_token_refs(model, &request.params.sampling.grammar_tokens)?;
            fit::fit_prompt(model, &input, &request.params)
        }))
        .unwrap_or_else(|p| {
            let err = panic_to_error(p);
            shared.update(|c| c.last_error = Some(err.message.clone()));
            Err(err)
        });
        match fitted {
            Ok(fitted) => {
                request.tokens = fitted.tokens;
                request.dropped_messages = fitted.dropped_messages;
                request.reply_plan = fitted.reply_plan;
                // Reading a saved state from disk here keeps the disk off the inference
                // thread; the scheduler restores it if nothing in memory matches better.
                if let Some(disk) = model
                    .disk_cache
                    .as_ref()
                    .filter(|_| request.params.cache_prompt)
                {
                    request.restored = disk.take_best(&request.tokens, MIN_CACHED_TOKENS);
                }
            }
            Err(err) => {
                reject(&shared, request.sink, err);
                continue;
            }
        }
        let guard = lock(&commands);
        let unsent = match guard.as_ref() {
            Some(tx) => match tx.send(Command::Submit(request)) {
                Ok(()) => None,
                Err(e) => match e.0 {
                    Command::Submit(request) => Some(request),
                    Command::Embed(_) | Command::Shutdown => None,
                },
            },
            None => Some(request),
        };
        drop(guard);
        if let Some(request) = unsent {
            reject(
                &shared,
                request.sink,
                EngineError::aborted("the engine was shut down before this request started"),
            );
        }
    }
}

fn lock(commands: &CommandSender) -> std::sync::MutexGuard<'_, Option<Sender<Command>>> {
    commands.lock().unwrap_or_else(|p| p.into_inner())
}

/// Ends a request that never reached the scheduler.
fn reject(shared: &Shared, mut sink: ReplySink, err: EngineError) {
    sub(&shared.counters.requests_in_transit, 1);
    shared.count_failure(err.code);
    sink.send(Event::Error(err));
}
