//! The pure-Rust engine: one inference thread per loaded model, fed over a channel.
//! Nothing here knows about napi; the binding layer in `src/` wraps it for JavaScript.

mod backend;
pub mod chat_template;
pub mod error;
mod faults;
mod gbnf;
mod memory;
mod model_file;
pub mod options;
mod preparer;
mod prompt;
pub mod request;
mod sampler;
mod scheduler;
pub mod status;
pub mod stop_matcher;
mod tokenizer;
pub mod utf8_stream;

use std::num::NonZeroU32;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use tracing::{info, info_span, warn};

pub use chat_template::{ChatMessage, Role, TemplateSource};
pub use error::{EngineError, EngineResult, ErrorCode};
pub use options::{EngineConfig, GenerateOptions, LoadOptions, OverflowPolicy};
pub use request::{CancelFlag, CancelReason, Event, EventSink, FinishReason, Generation, Timings};
use request::{PreparedRequest, ReplySink};
pub use status::{EngineStatus, Health, Metrics};

use chat_template::ChatTemplate;
use preparer::{CommandSender, PromptJob};
use scheduler::{Command, Scheduler, SchedulerConfig};
use status::{add, Shared};
use tokenizer::Tokenizer;

/// What a caller sends: a raw completion prompt or chat messages.
#[derive(Debug, Clone)]
pub enum Input {
    Text(String),
    Chat(Vec<ChatMessage>),
}

/// Facts about the loaded model, returned by a successful load.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub model_path: String,
    pub name: String,
    pub architecture: String,
    pub context_size: u32,
    pub trained_context_size: u32,
    pub vocab_size: u32,
    pub parameters: f64,
    pub size_bytes: f64,
    pub chat_template: String,
    pub chat_template_source: TemplateSource,
    pub parallel: u32,
    pub batch_size: u32,
    pub threads: i32,
    pub gpu_layers: u32,
    pub load_ms: f64,
}

/// Read-only model state the caller's thread uses to prepare requests.
struct Loaded {
    model: Arc<LlamaModel>,
    template: ChatTemplate,
    tokenizer: Tokenizer,
    n_ctx_per_seq: u32,
}

impl Loaded {
    fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<LlamaToken> {
        self.tokenizer
            .tokenize(&self.model, text.as_bytes(), add_special, parse_special)
    }
}

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
        backend::init()?;
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
                .spawn(move || preparer::run(jobs_rx, loaded, commands, shared))
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
                .spawn(move || inference_thread(config, shared, loaded, rx, progress, on_loaded))
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
        Ok(prompt::prompt_tokens(loaded, input, false)?.len())
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

/// What llama.cpp's grammar parser would reject (printing to stderr) or could never satisfy:
/// a `<text>` that is not exactly one token, an id beyond the vocabulary, and an
/// end-of-generation token, which llama.cpp's grammar masks out everywhere. Runs on the
/// prompt thread: each distinct `<text>` costs a tokenization.
fn check_grammar_tokens(loaded: &Loaded, uses: &[gbnf::TokenUse]) -> EngineResult<()> {
    let vocab = loaded.model.vocab();
    let n_vocab = vocab.n_tokens().max(0) as u32;
    let mut seen = std::collections::HashSet::new();
    for u in uses.iter().filter(|u| seen.insert(&u.token)) {
        let (token, shown) = match &u.token {
            gbnf::TokenRef::Id(id) if *id >= n_vocab => {
                return Err(EngineError::invalid_argument(format!(
                    "grammar token <[{id}]> at {} is outside the vocabulary ({n_vocab} tokens)",
                    u.place
                )))
            }
            gbnf::TokenRef::Id(id) => (LlamaToken(*id as i32), format!("<[{id}]>")),
            gbnf::TokenRef::Text(text) => match loaded.tokenize(text, false, true).as_slice() {
                [one] => (*one, text.clone()),
                many => {
                    return Err(EngineError::invalid_argument(format!(
                        "grammar token {text} at {} is {} tokens of this model's vocabulary, not one: use a literal string instead",
                        u.place,
                        many.len()
                    )))
                }
            },
        };
        if vocab.is_eog(token) {
            return Err(EngineError::invalid_argument(format!(
                "grammar token {shown} at {} ends generation, and llama.cpp's grammar never allows such a token: leave it out, the reply ends by itself when the grammar is complete",
                u.place
            )));
        }
    }
    Ok(())
}

fn inference_thread(
    config: EngineConfig,
    shared: Arc<Shared>,
    loaded: Arc<OnceLock<Loaded>>,
    commands: mpsc::Receiver<Command>,
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
        let faults = faults::Faults::new(config.faults.as_deref());
        let model = match load_model(&config, progress) {
            Ok(m) => Arc::new(m),
            Err(e) => return fail(e),
        };
        let setup = (|| {
            let trained = model.n_ctx_train();
            let n_ctx_per_seq = match config.context_size {
                Some(n) if n > trained => {
                    return Err(EngineError::invalid_argument(format!(
                    "contextSize {n} is larger than the {trained} tokens this model was trained on"
                )))
                }
                Some(n) => n,
                None => trained.min(options::DEFAULT_CONTEXT_SIZE),
            };
            // With layers offloaded to a GPU their cache lives there, not in this memory.
            let needed = (config.gpu_layers == 0)
                .then(|| memory::kv_cache_bytes(&model, n_ctx_per_seq, config.parallel))
                .flatten();
            let available = faults.available_memory().or_else(memory::available_memory);
            memory::check_fits(
                &config.model_path,
                needed,
                available,
                n_ctx_per_seq,
                config.parallel,
            )?;
            let template = ChatTemplate::for_model(&model, config.chat_template.as_deref())?;
            Ok((n_ctx_per_seq, template))
        })();
        let (n_ctx_per_seq, template) = match setup {
            Ok(v) => v,
            Err(e) => return fail(e),
        };
        let n_batch = config.batch_size.min(n_ctx_per_seq * config.parallel);
        let ctx_params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx_per_seq * config.parallel))
            .with_n_batch(n_batch)
            .with_n_ubatch(n_batch)
            .with_n_seq_max(config.parallel)
            .with_n_threads(config.threads)
            .with_n_threads_batch(config.threads);
        let backend = match backend::get() {
            Ok(b) => b,
            Err(e) => return fail(e),
        };
        let ctx = match model.new_context(backend, ctx_params) {
            Ok(c) => c,
            Err(e) => {
                return fail(EngineError::load_failed(format!(
                    "cannot create a llama.cpp context for {} ({e}): lower contextSize or parallel",
                    config.model_path.display()
                )))
            }
        };
        let info = model_info(&model, &config, n_ctx_per_seq, n_batch, &template, started);
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
        let e = error::panic_to_error(payload);
        warn!(error = %e, "the inference thread panicked");
        fail(e);
    }
}

fn load_model(config: &EngineConfig, progress: Option<ProgressFn>) -> EngineResult<LlamaModel> {
    model_file::check_gguf_file(&config.model_path)?;
    let mut params = LlamaModelParams::default()
        .with_n_gpu_layers(config.gpu_layers)
        .with_use_mmap(config.use_mmap);
    if let Some(cb) = progress {
        params = params.with_progress_callback(cb);
    }
    let backend = backend::get()?;
    LlamaModel::load_from_file(backend, &config.model_path, &params).map_err(|e| {
        EngineError::load_failed(format!(
            "llama.cpp could not load {} ({e}): the file may be truncated or corrupt, or its architecture unsupported by this build (set logLevel: 'debug' to see llama.cpp's reason)",
            config.model_path.display()
        ))
    })
}

fn model_info(
    model: &LlamaModel,
    config: &EngineConfig,
    n_ctx_per_seq: u32,
    n_batch: u32,
    template: &ChatTemplate,
    started: Instant,
) -> ModelInfo {
    let meta = |k: &str| model.meta_val_str(k).unwrap_or_default();
    let name = Some(meta("general.name"))
        .filter(|n| !n.is_empty())
        .or_else(|| {
            config
                .model_path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    ModelInfo {
        model_path: config.model_path.display().to_string(),
        name,
        architecture: meta("general.architecture"),
        context_size: n_ctx_per_seq,
        trained_context_size: model.n_ctx_train(),
        vocab_size: model.n_vocab().max(0) as u32,
        parameters: model.n_params() as f64,
        size_bytes: model.size() as f64,
        chat_template: template.name.clone(),
        chat_template_source: template.source,
        parallel: config.parallel,
        batch_size: n_batch,
        threads: config.threads,
        // What was offloaded, not what was asked: nothing without a GPU backend, and at most
        // every repeating layer plus the output layer.
        // SAFETY: a pure query of how llama.cpp was built; the backend is initialised.
        gpu_layers: if unsafe { llama_cpp_sys_2::llama_supports_gpu_offload() } {
            config.gpu_layers.min(model.n_layer() + 1)
        } else {
            0
        },
        load_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}

#[cfg(test)]
mod property_tests;
#[cfg(test)]
mod tests;
