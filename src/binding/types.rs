//! The JavaScript shapes that only the binding has: load options (the engine's plus the
//! binding's own), chat messages as JavaScript gives them, and the events a request sends
//! back. Results (`Generation`, `Health`, `Metrics`, `ModelInfo`) and the generate options are
//! the engine's own types, exported as they are.

use napi::bindgen_prelude::{Either, Float32Array};
use napi_derive::napi;

use crate::engine::{
    self, chat_template, EngineError, EngineResult, ErrorCode, Event, Generation, Input, ModelInfo,
};

/// Options for loading a model.
#[napi(object)]
pub struct NativeLoadOptions {
    /// Path of a `.gguf` model file. `npm run fetch-model` downloads the test models.
    pub model_path: String,
    /// Tokens one conversation (one sequence) may hold. Default: min(trained context, 4096).
    /// An embedding engine: the longest text, default min(trained context, 512).
    pub context_size: Option<f64>,
    /// Most tokens evaluated in one decode step (prompt chunks are split to this). Default 512.
    pub batch_size: Option<f64>,
    /// llama.cpp threads. Default: the number of physical cores. More than free cores is slower.
    pub threads: Option<f64>,
    /// How long llama.cpp's worker threads busy-wait for the next decode step before they sleep,
    /// 0–100 (llama.cpp's polling level, llama-server's `--poll`). Default 50. 0 sleeps at once,
    /// which frees the cores between steps for other work but costs tokens/s on small models.
    /// An idle engine's workers sleep whatever the level. Linux builds keep a persistent pool of
    /// workers; elsewhere ggml starts them per decode and the level has no effect.
    pub thread_poll: Option<f64>,
    /// Layers to offload to a GPU (needs a GPU build). Default 0.
    pub gpu_layers: Option<f64>,
    /// Requests decoded at the same time (slots), all in one batch per step. Default 4. Each
    /// slot owns `contextSize` tokens of KV cache, which also serves as its prompt cache.
    pub parallel: Option<f64>,
    /// Requests allowed to wait for a slot before `QUEUE_FULL`. Default 64. The engine holds at
    /// most `parallel + maxQueue` requests at once; the next one is refused when submitted.
    pub max_queue: Option<f64>,
    /// Memory-map the model file. Default true.
    pub use_mmap: Option<bool>,
    /// Jinja chat template source, or a llama.cpp built-in family name ('chatml', 'gemma',
    /// 'llama3', …).
    pub chat_template: Option<String>,
    /// Timeout applied to requests that set no `timeoutMs`. Default: none.
    pub default_timeout_ms: Option<f64>,
    /// Most prompt tokens one decode step evaluates while other requests are streaming, so a
    /// long prompt cannot freeze them (it is spread over several steps). Default 128, at most
    /// `batchSize`. With nothing streaming, prompts are evaluated `batchSize` tokens per step.
    pub prompt_chunk_size: Option<f64>,
    /// Bytes of host memory for the prompt cache: when a slot is taken by another
    /// conversation, the KV state it held is kept here (least recently used evicted), and a
    /// request whose prompt starts with a kept state restores it instead of evaluating that
    /// part again. Default: min(25% of the memory free at load, 2 GiB). 0 disables it (slots
    /// still reuse what they hold).
    pub prompt_cache_bytes: Option<f64>,
    /// A folder for states that fall out of the memory cache; they survive a restart (files
    /// of another model or llama.cpp build are ignored). Default: none (no disk tier).
    pub prompt_cache_dir: Option<String>,
    /// Bytes the disk tier may use in `promptCacheDir` (least recently used deleted first).
    /// Default 10 GiB.
    pub prompt_cache_disk_bytes: Option<f64>,
    /// Load an embedding engine: it serves `embed()` (and `rank()` for a reranker) instead of
    /// `generate()`, evaluating many texts in one decode: up to `parallel` texts (default 64
    /// for an embedding engine) and `max(batchSize, contextSize)` tokens. Default false.
    pub embeddings: Option<bool>,
    /// A `Pooling` for an embedding engine: 'mean' | 'cls' | 'last' | 'rank'. Default: the
    /// model's own (GGUF `<arch>.pooling_type`), else 'mean'.
    pub pooling: Option<String>,
    /// A `LogLevel`: 'off' | 'error' | 'warn' (default) | 'info' | 'debug' | 'trace'. llama.cpp's
    /// own logs appear at 'debug' and 'trace'. Env: NAPI_LLAMA_LOG.
    pub log_level: Option<String>,
    /// Linux 6.12+: ask the scheduler for a 0.1 ms time slice for the thread that loads the
    /// model (the event loop), so it runs as soon as it wakes instead of waiting for the
    /// inference threads' turn. Its CPU share does not change. Undone when the last engine it
    /// loaded shuts down. Ignored on other systems and older kernels. Default false: it cuts
    /// event-loop delay, but costs tokens/s on small models (docs/benchmarks.md).
    pub responsive_event_loop: Option<bool>,
    /// Test-only fault injection (`src/engine/faults.rs`); not part of the public API.
    #[napi(js_name = "__faults")]
    pub faults: Option<String>,
}

impl From<&NativeLoadOptions> for engine::LoadOptions {
    fn from(o: &NativeLoadOptions) -> Self {
        Self {
            model_path: o.model_path.clone(),
            context_size: o.context_size,
            batch_size: o.batch_size,
            threads: o.threads,
            thread_poll: o.thread_poll,
            gpu_layers: o.gpu_layers,
            parallel: o.parallel,
            max_queue: o.max_queue,
            use_mmap: o.use_mmap,
            chat_template: o.chat_template.clone(),
            default_timeout_ms: o.default_timeout_ms,
            prompt_chunk_size: o.prompt_chunk_size,
            prompt_cache_bytes: o.prompt_cache_bytes,
            prompt_cache_dir: o.prompt_cache_dir.clone(),
            prompt_cache_disk_bytes: o.prompt_cache_disk_bytes,
            embeddings: o.embeddings,
            pooling: o.pooling.clone(),
            faults: o.faults.clone(),
        }
    }
}

/// One chat message; `role` is 'system', 'user', 'assistant' or 'tool'.
#[napi(object)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
    /// The calls an assistant message made (earlier turns of a tool-using chat).
    pub tool_calls: Option<Vec<engine::chat_format::ToolCall>>,
    /// The call a `tool` message answers.
    pub tool_call_id: Option<String>,
}

pub fn to_input(input: Either<String, Vec<ChatMessage>>) -> EngineResult<Input> {
    match input {
        Either::A(text) => Ok(Input::Text(text)),
        Either::B(messages) => Ok(Input::Chat(chat_template::parse_messages(
            messages.iter().map(|m| {
                (
                    m.role.as_str(),
                    m.content.as_str(),
                    m.tool_calls.clone().unwrap_or_default(),
                    m.tool_call_id.clone(),
                )
            }),
        )?)),
    }
}

/// A failure delivered as an event (the JavaScript layer turns it into an error).
#[napi(object)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        Self {
            code: e.code,
            message: e.message,
        }
    }
}

/// The outcome of a load, delivered once.
#[napi(discriminant = "kind", discriminant_case = "lowercase")]
pub enum NativeLoadEvent {
    Loaded { info: ModelInfo },
    Failed { error: Failure },
}

/// One event of a request: text chunks (streaming only), then `done` or `error`.
#[napi(discriminant = "kind", discriminant_case = "lowercase")]
pub enum NativeEvent {
    /// Whole UTF-8 text, never part of a stop string; `tokens` counts the tokens it covers.
    Chunk {
        text: String,
        tokens: u32,
    },
    /// A piece of a reply with tools or separated reasoning (streaming only).
    Delta {
        delta: engine::chat_format::ReplyDelta,
    },
    Done {
        generation: Generation,
    },
    /// The final event of `embed` and `rank`: one vector per text, in input order.
    Embedded {
        vectors: Vec<Float32Array>,
        prompt_tokens: u32,
    },
    Error {
        error: Failure,
    },
}

impl From<Event> for NativeEvent {
    fn from(e: Event) -> Self {
        match e {
            Event::Chunk { text, tokens } => NativeEvent::Chunk { text, tokens },
            Event::Delta(delta) => NativeEvent::Delta { delta },
            Event::Done(generation) => NativeEvent::Done { generation },
            Event::Embedded(e) => NativeEvent::Embedded {
                vectors: e.vectors.into_iter().map(Float32Array::new).collect(),
                prompt_tokens: e.prompt_tokens,
            },
            Event::Error(err) => NativeEvent::Error { error: err.into() },
        }
    }
}
