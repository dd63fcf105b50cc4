//! The pure-Rust engine: one model served by two threads of its own, fed over channels.
//! Nothing here knows about JavaScript; `src/binding` wraps it for Node.js.
//!
//! A request's path, by the thread that runs each step:
//!
//! | step | thread | module |
//! |---|---|---|
//! | validated, admitted or refused (`QUEUE_FULL`) | the caller's | [`handle`], [`options`], [`grammar`] |
//! | chat template rendered, tokenized, fitted to the context | the prompt thread | [`prompt_thread`] |
//! | waits for a free slot | the inference thread | `inference_thread::wait_queue` |
//! | a saved prompt state moved back from disk, if one matches | the prompt thread | [`prompt_cache`] (`disk`) |
//! | its slot chosen: a free slot's sequence, or a saved state restored into one | the inference thread | `inference_thread::saved_prompts`, [`prompt_cache`] (`memory`) |
//! | decoded in a batch with the other slots, sampled | the inference thread | `inference_thread::scheduler`, `slot`, `sampler` |
//! | text assembled (whole UTF-8, stop strings held back), chunks sent | the inference thread | `inference_thread::reply_text` |
//! | states evicted from memory written to disk | the cache writer thread | [`prompt_cache`] (`disk`) |
//!
//! An embedding engine (`embeddings: true`) runs `inference_thread::embedder` instead of the
//! scheduler: `embed` and `rank` requests go straight from the caller's thread to the
//! inference thread, which tokenizes their texts and evaluates as many as fit in one decode.
//!
//! Loading runs once on the inference thread before it serves anything ([`load`]). What
//! crosses threads: [`request`] (prepared requests, events, cancel flags) and [`status`]
//! (counters read by `health()` and `metrics()`).

pub mod chat_format;
pub mod error;
#[cfg_attr(feature = "fault-injection", path = "faults.rs")]
#[cfg_attr(not(feature = "fault-injection"), path = "no_faults.rs")]
mod faults;
pub mod grammar;
mod handle;
mod inference_thread;
pub mod load;
pub mod options;
pub mod prompt_cache;
pub mod prompt_thread;
pub mod request;
pub mod status;

pub use error::{EngineError, EngineResult, ErrorCode};
pub use handle::{Engine, LoadedFn, ProgressFn, StoppedFn, SubmittedRequest};
pub use inference_thread::{stop_matcher, utf8_stream};
pub use options::{
    EmbedOptions, EngineConfig, GenerateOptions, LoadOptions, OverflowPolicy, Pooling,
};
pub use prompt_thread::chat_template::{self, ChatMessage, Role, TemplateSource};
pub use request::{
    CancelFlag, CancelReason, EmbedInput, Embeddings, Event, EventSink, FinishReason, Generation,
    Timings,
};
pub use status::{EngineStatus, Health, Metrics};

/// What a caller sends: a raw completion prompt or chat messages.
#[derive(Debug, Clone)]
pub enum Input {
    Text(String),
    Chat(Vec<ChatMessage>),
}

/// Facts about the loaded model, returned by a successful load.
#[derive(Debug, Clone)]
#[cfg_attr(not(test), napi_derive::napi(object))]
pub struct ModelInfo {
    pub model_path: String,
    /// GGUF `general.name`, or the file name.
    pub name: String,
    /// GGUF `general.architecture`, e.g. 'llama', 'gemma3'.
    pub architecture: String,
    /// Tokens one conversation (one slot) may hold.
    pub context_size: u32,
    pub trained_context_size: u32,
    pub vocab_size: u32,
    pub parameters: f64,
    /// Size of the weights in bytes.
    pub size_bytes: f64,
    /// The KV cache this engine allocated for all its slots, in bytes (llama.cpp's F16
    /// cache); absent for model families whose cache is not one per layer (recurrent,
    /// hybrid, MLA, shared-KV).
    pub kv_cache_bytes: Option<f64>,
    /// What the engine holds in memory: weights plus KV cache. A lower bound (llama.cpp's
    /// compute buffers come on top); a host that loads several models budgets with it.
    pub memory_bytes: f64,
    /// 'jinja' when a Jinja template renders chats, else the llama.cpp built-in family name.
    pub chat_template: String,
    pub chat_template_source: TemplateSource,
    /// The chat template thinks before answering (llama.cpp found thinking tags in it): its
    /// reasoning comes apart from the reply unless `reasoning` says otherwise.
    pub thinking: bool,
    /// Slots: requests decoded at the same time.
    pub parallel: u32,
    pub batch_size: u32,
    pub threads: i32,
    /// Layers actually offloaded: 0 on a CPU-only build, whatever `gpuLayers` asked for.
    pub gpu_layers: u32,
    /// The devices holding the model, as `"<ggml name>: <description>"`: the GPUs first when
    /// layers are offloaded (e.g. `"Vulkan0: …"`), then the CPU (e.g. `"CPU: AMD EPYC …"`).
    pub devices: Vec<String>,
    /// An embedding engine's pooling (`embeddings: true`); absent on a generation engine.
    pub pooling: Option<options::Pooling>,
    /// Length of the model's output vectors (`embed()` returns this many numbers per text;
    /// for a reranker, the scores per pair).
    pub embedding_size: u32,
    pub load_ms: f64,
}

#[cfg(test)]
mod tests;
