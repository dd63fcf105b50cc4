//! The `Engine` handle. Its methods run on the caller's thread (the JS thread, through the
//! binding): they validate a request, take its place in the admission count (`QUEUE_FULL`
//! otherwise) and hand it to the prompt thread. Nothing here waits for llama.cpp.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use llama_cpp_2::token::LlamaToken;
use tracing::{info_span, warn};

use super::error::{EngineError, EngineResult, ErrorCode};
use super::faults::Faults;
use super::inference_thread::{self, Command};
use super::load::{self, Loaded};
use super::options::Pooling;
use super::options::{EmbedOptions, EngineConfig, GenerateOptions, LoadOptions};
use super::prompt_thread::{self, fit, CommandSender, PromptJob};
use super::request::{CancelFlag, EmbedInput, EmbedRequest, EventSink, PreparedRequest, ReplySink};
use super::status::{self, add, EngineStatus, Health, Metrics, Shared};
use super::{Input, ModelInfo};

/// Handle to one model served by its own inference thread.
pub struct Engine {
    shared: Arc<Shared>,
    config: EngineConfig,
    loaded: Arc<OnceLock<Loaded>>,
    /// To the prompt thread, which renders and tokenizes, then forwards to `commands`.
    prompt_jobs: Mutex<Option<Sender<PromptJob>>>,
    commands: CommandSender,
    prompt_thread: Mutex<Option<JoinHandle<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    next_request: AtomicU64,
}

/// Called with load progress in [0, 1]; returning false cancels the load.
pub type ProgressFn = Box<dyn FnMut(f32) -> bool + Send>;
/// Called once, on the inference thread, when the load succeeds or fails.
pub type LoadedFn = Box<dyn FnOnce(EngineResult<ModelInfo>) + Send>;
/// Called once, on the inference thread, after it has freed the model.
pub type StoppedFn = Box<dyn FnOnce() + Send>;

impl Engine {
    /// Validates options and starts the inference thread, which loads the model and then
    /// reports through `on_loaded`. Returns at once: loading never blocks the caller.
    pub fn start(
        options: LoadOptions,
        progress: Option<ProgressFn>,
        on_loaded: LoadedFn,
    ) -> EngineResult<Self> {
        let config = options.validate()?;
        load::backend::init()?;
        #[cfg(feature = "fault-injection")]
        let faults = Faults::new(config.faults.as_deref());
        #[cfg(not(feature = "fault-injection"))]
        let faults = Faults;
        let prompt_delay = faults.prompt_delay();
        let shared = Arc::new(Shared::default());
        let loaded = Arc::new(OnceLock::new());
        let (tx, rx) = mpsc::channel();
        let commands: CommandSender = Arc::new(Mutex::new(Some(tx)));
        let (jobs_tx, jobs_rx) = mpsc::channel();
        let prompt_thread = {
            let loaded = loaded.clone();
            let commands = commands.clone();
            let shared = shared.clone();
            // Ends by itself when the engine drops `prompt_jobs` (shutdown or drop).
            std::thread::Builder::new()
                .name("napi-llama-prompt".into())
                .spawn(move || prompt_thread::run(jobs_rx, loaded, commands, shared, prompt_delay))
                .map_err(|e| {
                    EngineError::internal(format!("cannot start the prompt thread: {e}"))
                })?
        };
        let thread = {
            let config = config.clone();
            let shared = shared.clone();
            let loaded = loaded.clone();
            std::thread::Builder::new()
                .name("napi-llama-inference".into())
                .spawn(move || {
                    inference_thread::run(config, faults, shared, loaded, rx, progress, on_loaded)
                })
                .map_err(|e| {
                    EngineError::internal(format!("cannot start the inference thread: {e}"))
                })?
        };
        Ok(Self {
            shared,
            config,
            loaded,
            prompt_jobs: Mutex::new(Some(jobs_tx)),
            commands,
            prompt_thread: Mutex::new(Some(prompt_thread)),
            thread: Mutex::new(Some(thread)),
            next_request: AtomicU64::new(1),
        })
    }

    /// Loads a model and waits for it: for Rust callers and tests.
    pub fn load_blocking(options: LoadOptions) -> EngineResult<Self> {
        let (tx, rx) = mpsc::channel();
        let engine = Self::start(
            options,
            None,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )?;
        match rx.recv() {
            Ok(Ok(_)) => Ok(engine),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(EngineError::internal(
                "the inference thread stopped while loading",
            )),
        }
    }

    fn loaded(&self) -> EngineResult<&Loaded> {
        match self.shared.status() {
            EngineStatus::Ok => self.loaded.get().ok_or_else(EngineError::not_loaded),
            EngineStatus::Loading => Err(EngineError::new(
                ErrorCode::ModelNotLoaded,
                "the model is still loading: await initialize() before sending requests",
            )),
            EngineStatus::Unloaded => Err(EngineError::new(
                ErrorCode::ModelNotLoaded,
                "the model was unloaded (shutdown): call initialize() again",
            )),
            EngineStatus::Error => Err(EngineError::new(
                ErrorCode::ModelNotLoaded,
                format!(
                    "the engine is in error state ({}): shut it down and initialize again",
                    self.shared.health().last_error.unwrap_or_default()
                ),
            )),
        }
    }

    /// Tokenizes text as the model sees it: no BOS, special-token text kept as plain text.
    pub fn tokenize(&self, text: &str) -> EngineResult<Vec<u32>> {
        let loaded = self.loaded()?;
        Ok(loaded
            .tokenize(text, false, false)
            .into_iter()
            .map(|t| t.0 as u32)
            .collect())
    }

    /// Turns token ids back into text (lossless for ids from `tokenize`).
    pub fn detokenize(&self, tokens: &[u32]) -> EngineResult<String> {
        let loaded = self.loaded()?;
        let vocab = loaded.model.vocab();
        let n_vocab = vocab.n_tokens() as u32;
        let mut bytes = Vec::new();
        for &t in tokens {
            if t >= n_vocab {
                return Err(EngineError::invalid_argument(format!(
                    "token id {t} is out of range: the vocabulary has {n_vocab} tokens"
                )));
            }
            bytes.extend(vocab.token_to_piece(LlamaToken(t as i32), false, None));
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Number of tokens the input costs as a prompt (chat input is rendered first).
    pub fn count_tokens(&self, input: &Input) -> EngineResult<usize> {
        let loaded = self.loaded()?;
        Ok(fit::prompt_tokens(loaded, input, false)?.len())
    }

    /// Validates the options on the caller's thread (errors return here), then hands the
    /// request to the prompt thread, which renders and tokenizes it and queues it for a slot.
    /// Everything after validation, including `CONTEXT_OVERFLOW`, arrives on `sink`.
    pub fn submit(
        &self,
        input: Input,
        options: &GenerateOptions,
        stream: bool,
        sink: Box<dyn EventSink>,
    ) -> EngineResult<SubmittedRequest> {
        let submitted_at = Instant::now();
        self.loaded()?;
        if self.config.embeddings.is_some() {
            return Err(EngineError::invalid_argument(
                "this engine was loaded with embeddings: true and serves embed()/rank(): load the model without it to generate",
            ));
        }
        let params = options.validate(self.config.default_timeout, || {
            format!("req-{}", self.next_request.fetch_add(1, Ordering::Relaxed))
        })?;
        let _span = info_span!("request", request_id = %params.request_id).entered();
        if let Input::Text(t) = &input {
            tracing::trace!(prompt = %t, "prompt");
        }
        let cancel = CancelFlag::default();
        let request_id = params.request_id.clone();
        let deadline = params.timeout.map(|t| submitted_at + t);
        // Counted before it can finish, so completed + failed never exceed the total.
        add(&self.shared.counters.requests_total, 1);
        let sink = self.admit(sink)?;
        let job = PromptJob {
            input,
            request: Box::new(PreparedRequest {
                tokens: Vec::new(),
                dropped_messages: 0,
                params,
                stream,
                submitted_at,
                deadline,
                cancel: cancel.clone(),
                sink,
                restored: None,
                reply_plan: None,
            }),
        };
        add(&self.shared.counters.requests_in_transit, 1);
        let sender = self.prompt_jobs.lock().unwrap_or_else(|p| p.into_inner());
        let unsent = match sender.as_ref() {
            Some(tx) => tx.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        drop(sender);
        if let Some(job) = unsent {
            status::sub(&self.shared.counters.requests_in_transit, 1);
            status::sub(&self.shared.counters.requests_total, 1);
            job.request.sink.discard();
            return Err(EngineError::not_loaded());
        }
        Ok(SubmittedRequest { cancel, request_id })
    }

    /// Queues an `embed` or `rank` request for the inference thread, which tokenizes the texts
    /// and evaluates them with other requests' texts in as few decodes as fit. Checks that
    /// need no tokens return here; a text over the context arrives on `sink`.
    pub fn embed(
        &self,
        input: EmbedInput,
        options: &EmbedOptions,
        sink: Box<dyn EventSink>,
    ) -> EngineResult<SubmittedRequest> {
        let submitted_at = Instant::now();
        self.loaded()?;
        let pooling = self.config_pooling();
        match (&input, pooling) {
            (_, None) => {
                return Err(EngineError::invalid_argument(
                    "this engine generates text: load it with embeddings: true to embed or rank",
                ))
            }
            (EmbedInput::Rank { .. }, Some(p)) if p != Pooling::Rank => {
                return Err(EngineError::invalid_argument(format!(
                    "rank() needs a reranker model (pooling 'rank'); this engine pools '{}'",
                    p.as_str()
                )))
            }
            (EmbedInput::Texts(_), Some(Pooling::Rank)) => {
                return Err(EngineError::invalid_argument(
                    "this engine is a reranker (pooling 'rank'): use rank(query, documents)",
                ))
            }
            _ => {}
        }
        if input.is_empty() {
            return Err(EngineError::invalid_argument(match input {
                EmbedInput::Texts(_) => "embed() needs at least one text",
                EmbedInput::Rank { .. } => "rank() needs at least one document",
            }));
        }
        let params = options.validate(self.config.default_timeout, || {
            format!("req-{}", self.next_request.fetch_add(1, Ordering::Relaxed))
        })?;
        let _span = info_span!("request", request_id = %params.request_id).entered();
        let cancel = CancelFlag::default();
        let request_id = params.request_id.clone();
        add(&self.shared.counters.requests_total, 1);
        let sink = self.admit(sink)?;
        let request = EmbedRequest {
            input,
            normalize: params.normalize,
            request_id: params.request_id,
            timeout: params.timeout,
            deadline: params.timeout.map(|t| submitted_at + t),
            cancel: cancel.clone(),
            sink,
        };
        // Counted until the inference thread takes it, so `queueDepth` sees it meanwhile.
        add(&self.shared.counters.requests_in_transit, 1);
        let sender = self.commands.lock().unwrap_or_else(|p| p.into_inner());
        let unsent = match sender.as_ref() {
            Some(tx) => tx
                .send(Command::Embed(Box::new(request)))
                .err()
                .map(|e| e.0),
            None => Some(Command::Embed(Box::new(request))),
        };
        drop(sender);
        if let Some(Command::Embed(request)) = unsent {
            status::sub(&self.shared.counters.requests_in_transit, 1);
            status::sub(&self.shared.counters.requests_total, 1);
            request.sink.discard();
            return Err(EngineError::not_loaded());
        }
        Ok(SubmittedRequest { cancel, request_id })
    }

    /// The pooling of an embedding engine as loaded (the option, else the model's).
    fn config_pooling(&self) -> Option<Pooling> {
        self.loaded.get().and_then(|l| l.pooling)
    }

    /// Takes a place for a new request among the `parallel + maxQueue` the engine holds at
    /// once (in a slot, queued, or still being tokenized), or refuses it with `QUEUE_FULL`.
    /// Deciding here, on the caller's thread, keeps the bound exact even while the prompt
    /// thread is busy with a long prompt. The place is given back with the final event.
    fn admit(&self, sink: Box<dyn EventSink>) -> EngineResult<ReplySink> {
        let slots = u64::from(self.config.parallel);
        let capacity = slots + self.config.max_queue as u64;
        let outstanding = &self.shared.counters.requests_outstanding;
        let taken = outstanding.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < capacity).then_some(n + 1)
        });
        if let Err(held) = taken {
            let err = EngineError::new(
                ErrorCode::QueueFull,
                format!(
                    "{} requests are already waiting for a slot (maxQueue = {}): retry later or raise maxQueue/parallel",
                    held.saturating_sub(slots),
                    self.config.max_queue
                ),
            );
            self.shared.count_failure(err.code);
            return Err(err);
        }
        let shared = Arc::clone(&self.shared);
        Ok(ReplySink::new(
            sink,
            Box::new(move || status::sub(&shared.counters.requests_outstanding, 1)),
        ))
    }

    pub fn health(&self) -> Health {
        self.shared.health()
    }

    pub fn metrics(&self) -> Metrics {
        self.shared.metrics()
    }

    /// Asks the inference thread to stop: requests in flight or queued end with `ABORTED`,
    /// then the context and the model are freed and `on_stopped` runs. Idempotent.
    pub fn shutdown(&self, on_stopped: StoppedFn) {
        self.prompt_jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let tx = self
            .commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(tx) = &tx {
            let _ = tx.send(Command::Shutdown);
        }
        drop(tx);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        let prompt_thread = self
            .prompt_thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let shared = self.shared.clone();
        // Join off the caller's thread: a decode step may still be running. Once both threads
        // are gone, every request has had its final event.
        let joiner = std::thread::Builder::new()
            .name("napi-llama-shutdown".into())
            .spawn(move || {
                if let Some(t) = thread {
                    let _ = t.join();
                }
                if let Some(t) = prompt_thread {
                    let _ = t.join();
                }
                shared.update(|c| c.status = EngineStatus::Unloaded);
                on_stopped();
            });
        if let Err(e) = joiner {
            warn!(error = %e, "cannot spawn the shutdown thread");
        }
    }

    /// Shuts down and waits: for Rust callers and tests.
    pub fn shutdown_blocking(&self) {
        let (tx, rx) = mpsc::channel();
        self.shutdown(Box::new(move || {
            let _ = tx.send(());
        }));
        let _ = rx.recv();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.prompt_jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(tx) = self
            .commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = tx.send(Command::Shutdown);
        }
    }
}

/// The caller's handle to a queued request.
pub struct SubmittedRequest {
    pub cancel: CancelFlag,
    pub request_id: String,
}
