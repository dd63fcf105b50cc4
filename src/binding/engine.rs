//! The exported native class. Each method converts arguments, calls the engine and converts
//! the result; events cross back to JavaScript through threadsafe functions that live only as
//! long as the operation they serve, so an idle engine keeps no handle open on the event loop.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use napi::bindgen_prelude::{Either, Function, Uint32Array};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;

use super::error::to_js_error;
use super::event_loop_slice::ShortSlice;
use super::logging;
use super::pending_text::TextMailbox;
use super::types::*;
use crate::engine::{
    self, CancelFlag, CancelReason, EmbedInput, Engine, ErrorCode, Event, EventSink, Health,
    Metrics,
};

/// What the threadsafe function carries: text waiting in a request's mailbox, or a final event
/// (converted to its JavaScript shape on the JavaScript thread).
enum Delivery {
    Text(TextMailbox),
    Event(Event),
}

/// A request's events, on their way to its JavaScript callback. Chunks go through the mailbox,
/// so chunks that pile up while the JavaScript thread is busy arrive as one; the final event
/// follows them on the same queue, so it never overtakes text. With an `interval`, a chunk that
/// comes sooner than that after the last one sent waits in the mailbox for the next one.
struct JsEventSink {
    deliver: ThreadsafeFunction<Delivery, (), NativeEvent, Status, false>,
    text: TextMailbox,
    interval: Duration,
    /// When text last went to the mailbox for delivery (a chunk that joined a delivery still
    /// queued counts: it reaches JavaScript with it).
    last_sent: Option<Instant>,
    /// Text waits in the mailbox with no delivery queued for it.
    holding: bool,
}

impl JsEventSink {
    fn new(on_event: Function<NativeEvent, ()>, interval: Duration) -> napi::Result<Self> {
        let deliver = on_event
            .build_threadsafe_function::<Delivery>()
            .callee_handled::<false>()
            .build_callback(|ctx| {
                Ok(match ctx.value {
                    Delivery::Text(mailbox) => {
                        let (text, tokens) = mailbox.take();
                        NativeEvent::Chunk { text, tokens }
                    }
                    Delivery::Event(event) => event.into(),
                })
            })?;
        Ok(JsEventSink {
            deliver,
            text: TextMailbox::default(),
            interval,
            last_sent: None,
            holding: false,
        })
    }

    fn enqueue(&self, delivery: Delivery) -> bool {
        self.deliver
            .call(delivery, ThreadsafeFunctionCallMode::NonBlocking)
            == Status::Ok
    }

    /// Queues the delivery that takes the mailbox's text (the caller claimed it).
    fn enqueue_text(&mut self) -> bool {
        let sent = self.enqueue(Delivery::Text(self.text.clone()));
        if !sent {
            self.text.take(); // nothing is queued to take it: start afresh
        }
        sent
    }

    /// Queues a delivery for text held in the mailbox, if any waits and none is queued.
    fn deliver_held(&mut self) {
        if std::mem::take(&mut self.holding) && self.text.claim() {
            self.last_sent = Some(Instant::now());
            self.enqueue_text();
        }
    }

    fn too_soon(&self, now: Instant) -> bool {
        self.last_sent
            .is_some_and(|last| now.duration_since(last) < self.interval)
    }
}

impl EventSink for JsEventSink {
    fn send(&mut self, event: Event) -> bool {
        match event {
            Event::Chunk { text, tokens } => {
                let now = Instant::now();
                if self.too_soon(now) {
                    self.text.hold(&text, tokens);
                    self.holding = true;
                    return !self.deliver.aborted();
                }
                self.last_sent = Some(now);
                self.holding = false; // the held text goes with this chunk
                if !self.text.put(&text, tokens) {
                    // Joins the delivery already queued, which never runs if the function was
                    // torn down meanwhile (the environment is exiting): then nobody listens.
                    return !self.deliver.aborted();
                }
                self.enqueue_text()
            }
            // Held text first: nothing overtakes it.
            other => {
                self.deliver_held();
                self.enqueue(Delivery::Event(other))
            }
        }
    }

    fn flush(&mut self) {
        self.deliver_held();
    }

    fn flush_due(&mut self) {
        if self.holding && !self.too_soon(Instant::now()) {
            self.deliver_held();
        }
    }
}

#[napi]
pub struct NativeEngine {
    engine: Arc<Engine>,
    /// The calling JS thread's short scheduler slice, held until shutdown.
    short_slice: Mutex<Option<ShortSlice>>,
}

#[napi]
impl NativeEngine {
    /// Starts loading a model on a new inference thread; `on_loaded` runs once with the outcome.
    // Panics are caught inside: napi's catch_unwind does not combine with a fallible factory.
    #[napi(factory)]
    pub fn start(
        options: NativeLoadOptions,
        on_progress: Option<ThreadsafeFunction<f64, (), f64, Status, false>>,
        on_loaded: ThreadsafeFunction<NativeLoadEvent, (), NativeLoadEvent, Status, false>,
    ) -> napi::Result<Self, ErrorCode> {
        std::panic::catch_unwind(move || Self::start_inner(options, on_progress, on_loaded))
            .unwrap_or_else(|p| Err(to_js_error(engine::error::panic_to_error(p))))
    }

    /// Checks load options the way `start` does, without loading anything.
    #[napi(catch_unwind)]
    pub fn check_options(options: NativeLoadOptions) -> napi::Result<(), ErrorCode> {
        logging::check_level(options.log_level.as_deref()).map_err(to_js_error)?;
        engine::LoadOptions::from(&options)
            .validate()
            .map(|_| ())
            .map_err(to_js_error)
    }

    /// Checks generate options the way `submit` does (ranges, stop strings, grammar, schema)
    /// without a model: a remote engine refuses what a local one would before sending anything.
    #[napi(catch_unwind)]
    pub fn check_generate_options(options: engine::GenerateOptions) -> napi::Result<(), ErrorCode> {
        options
            .validate(None, String::new)
            .map(|_| ())
            .map_err(to_js_error)
    }

    /// The metrics of an engine that has served nothing: every counter 0.
    #[napi]
    pub fn empty_metrics() -> Metrics {
        Metrics::default()
    }

    fn start_inner(
        options: NativeLoadOptions,
        on_progress: Option<ThreadsafeFunction<f64, (), f64, Status, false>>,
        on_loaded: ThreadsafeFunction<NativeLoadEvent, (), NativeLoadEvent, Status, false>,
    ) -> napi::Result<Self, ErrorCode> {
        logging::set_level(options.log_level.as_deref()).map_err(to_js_error)?;
        let progress = on_progress.map(|cb| -> engine::ProgressFn {
            Box::new(move |p| {
                cb.call(f64::from(p), ThreadsafeFunctionCallMode::NonBlocking);
                true
            })
        });
        let loaded: engine::LoadedFn = Box::new(move |result| {
            let event = match result {
                Ok(info) => NativeLoadEvent::Loaded { info },
                Err(e) => NativeLoadEvent::Failed { error: e.into() },
            };
            on_loaded.call(event, ThreadsafeFunctionCallMode::NonBlocking);
        });
        let engine = Engine::start((&options).into(), progress, loaded).map_err(to_js_error)?;
        // start() runs on the JS thread that will receive the events.
        let short_slice = match options.responsive_event_loop {
            Some(true) => ShortSlice::acquire(),
            _ => None,
        };
        Ok(NativeEngine {
            engine: Arc::new(engine),
            short_slice: Mutex::new(short_slice),
        })
    }

    /// Queues a request; its events go to `on_event`. Validation errors throw synchronously.
    #[napi(catch_unwind)]
    pub fn submit(
        &self,
        input: Either<String, Vec<ChatMessage>>,
        options: Option<engine::GenerateOptions>,
        stream: bool,
        on_event: Function<NativeEvent, ()>,
    ) -> napi::Result<NativeRequest, ErrorCode> {
        let input = to_input(input).map_err(to_js_error)?;
        let options = options.unwrap_or_default();
        // A bad value fails in `submit` below, which checks every option in one order; the
        // sink made meanwhile is dropped unused.
        let interval = options.stream_interval().unwrap_or_default();
        let sink = JsEventSink::new(on_event, interval)
            .map_err(|e| napi::Error::new(ErrorCode::Internal, e.reason.clone()))?;
        let submitted = self
            .engine
            .submit(input, &options, stream, Box::new(sink))
            .map_err(to_js_error)?;
        Ok(NativeRequest {
            cancel: submitted.cancel,
        })
    }

    /// Queues texts for an embedding engine; the vectors (or the error) go to `on_event`.
    #[napi(catch_unwind)]
    pub fn embed(
        &self,
        texts: Vec<String>,
        options: Option<engine::EmbedOptions>,
        on_event: Function<NativeEvent, ()>,
    ) -> napi::Result<NativeRequest, ErrorCode> {
        self.submit_embedding(EmbedInput::Texts(texts), options, on_event)
    }

    /// Queues a query and documents for a reranker; one score per document goes to `on_event`.
    #[napi(catch_unwind)]
    pub fn rank(
        &self,
        query: String,
        documents: Vec<String>,
        options: Option<engine::EmbedOptions>,
        on_event: Function<NativeEvent, ()>,
    ) -> napi::Result<NativeRequest, ErrorCode> {
        self.submit_embedding(EmbedInput::Rank { query, documents }, options, on_event)
    }

    fn submit_embedding(
        &self,
        input: EmbedInput,
        options: Option<engine::EmbedOptions>,
        on_event: Function<NativeEvent, ()>,
    ) -> napi::Result<NativeRequest, ErrorCode> {
        let options = options.unwrap_or_default();
        let sink = JsEventSink::new(on_event, Duration::ZERO)
            .map_err(|e| napi::Error::new(ErrorCode::Internal, e.reason.clone()))?;
        let submitted = self
            .engine
            .embed(input, &options, Box::new(sink))
            .map_err(to_js_error)?;
        Ok(NativeRequest {
            cancel: submitted.cancel,
        })
    }

    #[napi(catch_unwind)]
    pub fn tokenize(&self, text: String) -> napi::Result<Uint32Array, ErrorCode> {
        Ok(Uint32Array::new(
            self.engine.tokenize(&text).map_err(to_js_error)?,
        ))
    }

    #[napi(catch_unwind)]
    pub fn detokenize(&self, tokens: Vec<u32>) -> napi::Result<String, ErrorCode> {
        self.engine.detokenize(&tokens).map_err(to_js_error)
    }

    #[napi(catch_unwind)]
    pub fn count_tokens(
        &self,
        input: Either<String, Vec<ChatMessage>>,
    ) -> napi::Result<u32, ErrorCode> {
        let input = to_input(input).map_err(to_js_error)?;
        Ok(self.engine.count_tokens(&input).map_err(to_js_error)? as u32)
    }

    #[napi(catch_unwind)]
    pub fn health(&self) -> Health {
        self.engine.health()
    }

    #[napi(catch_unwind)]
    pub fn metrics(&self) -> Metrics {
        self.engine.metrics()
    }

    /// Cancels everything in flight, frees the model, then calls `on_stopped`.
    #[napi(catch_unwind)]
    pub fn shutdown(&self, on_stopped: ThreadsafeFunction<(), (), (), Status, false>) {
        drop(
            self.short_slice
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        self.engine.shutdown(Box::new(move || {
            on_stopped.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }));
    }
}

/// Why the caller stops a request.
#[napi(string_enum = "lowercase")]
pub enum CancelCause {
    /// Its `signal` aborted or its stream was cancelled: it ends with `ABORTED`.
    Abort,
    /// Its `timeoutMs` passed: it ends with `TIMEOUT`.
    Timeout,
}

/// A queued or running request.
#[napi]
pub struct NativeRequest {
    cancel: CancelFlag,
}

#[napi]
impl NativeRequest {
    /// Stops the request at the next decode step.
    #[napi(catch_unwind)]
    pub fn cancel(&self, cause: CancelCause) {
        self.cancel.cancel(match cause {
            CancelCause::Abort => CancelReason::Aborted,
            CancelCause::Timeout => CancelReason::TimedOut,
        });
    }
}
