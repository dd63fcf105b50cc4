//! JavaScript-facing option and result objects, and their conversion to and from the engine's
//! types. Numbers stay f64 here: the engine validates ranges.

use napi::bindgen_prelude::Either;
use napi_derive::napi;

use crate::engine::{
    self, chat_template, EngineResult, Event, Generation, Health, Input, Metrics, ModelInfo,
};

#[napi(object)]
pub struct NativeLoadOptions {
    pub model_path: String,
    pub context_size: Option<f64>,
    pub batch_size: Option<f64>,
    pub threads: Option<f64>,
    pub gpu_layers: Option<f64>,
    pub parallel: Option<f64>,
    pub max_queue: Option<f64>,
    pub use_mmap: Option<bool>,
    pub chat_template: Option<String>,
    pub default_timeout_ms: Option<f64>,
    pub prompt_chunk_size: Option<f64>,
    pub log_level: Option<String>,
    pub responsive_event_loop: Option<bool>,
    /// Test-only fault injection (see src/engine/faults.rs); not in index.d.ts.
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
            gpu_layers: o.gpu_layers,
            parallel: o.parallel,
            max_queue: o.max_queue,
            use_mmap: o.use_mmap,
            chat_template: o.chat_template.clone(),
            default_timeout_ms: o.default_timeout_ms,
            prompt_chunk_size: o.prompt_chunk_size,
            faults: o.faults.clone(),
        }
    }
}

#[napi(object)]
pub struct NativeGenerateOptions {
    pub max_tokens: Option<f64>,
    pub temperature: Option<f64>,
    pub top_k: Option<f64>,
    pub top_p: Option<f64>,
    pub min_p: Option<f64>,
    pub repeat_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub seed: Option<f64>,
    pub stop: Option<Vec<String>>,
    pub timeout_ms: Option<f64>,
    pub grammar: Option<String>,
    pub json_schema: Option<String>,
    pub request_id: Option<String>,
    pub cache_prompt: Option<bool>,
    pub context_overflow: Option<String>,
    pub parse_special_tokens: Option<bool>,
}

impl From<NativeGenerateOptions> for engine::GenerateOptions {
    fn from(o: NativeGenerateOptions) -> Self {
        Self {
            max_tokens: o.max_tokens,
            temperature: o.temperature,
            top_k: o.top_k,
            top_p: o.top_p,
            min_p: o.min_p,
            repeat_penalty: o.repeat_penalty,
            frequency_penalty: o.frequency_penalty,
            presence_penalty: o.presence_penalty,
            seed: o.seed,
            stop: o.stop,
            timeout_ms: o.timeout_ms,
            grammar: o.grammar,
            json_schema: o.json_schema,
            request_id: o.request_id,
            cache_prompt: o.cache_prompt,
            context_overflow: o.context_overflow,
            parse_special_tokens: o.parse_special_tokens,
        }
    }
}

#[napi(object)]
pub struct NativeChatMessage {
    pub role: String,
    pub content: String,
}

pub type NativeInput = Either<String, Vec<NativeChatMessage>>;

pub fn to_input(input: NativeInput) -> EngineResult<Input> {
    match input {
        Either::A(text) => Ok(Input::Text(text)),
        Either::B(messages) => Ok(Input::Chat(chat_template::parse_messages(
            messages
                .iter()
                .map(|m| (m.role.as_str(), m.content.as_str())),
        )?)),
    }
}

#[napi(object)]
pub struct NativeModelInfo {
    pub model_path: String,
    pub name: String,
    pub architecture: String,
    pub context_size: u32,
    pub trained_context_size: u32,
    pub vocab_size: u32,
    pub parameters: f64,
    pub size_bytes: f64,
    pub chat_template: String,
    pub chat_template_source: String,
    pub parallel: u32,
    pub batch_size: u32,
    pub threads: i32,
    pub gpu_layers: u32,
    pub load_ms: f64,
}

impl From<ModelInfo> for NativeModelInfo {
    fn from(i: ModelInfo) -> Self {
        Self {
            model_path: i.model_path,
            name: i.name,
            architecture: i.architecture,
            context_size: i.context_size,
            trained_context_size: i.trained_context_size,
            vocab_size: i.vocab_size,
            parameters: i.parameters,
            size_bytes: i.size_bytes,
            chat_template: i.chat_template,
            chat_template_source: i.chat_template_source.as_str().to_string(),
            parallel: i.parallel,
            batch_size: i.batch_size,
            threads: i.threads,
            gpu_layers: i.gpu_layers,
            load_ms: i.load_ms,
        }
    }
}

#[napi(object)]
pub struct NativeFailure {
    pub code: String,
    pub message: String,
}

/// The outcome of a load, delivered once.
#[napi(object)]
pub struct NativeLoadEvent {
    pub info: Option<NativeModelInfo>,
    pub error: Option<NativeFailure>,
}

#[napi(object)]
pub struct NativeTimings {
    pub queue_ms: f64,
    pub prompt_ms: f64,
    pub ttft_ms: f64,
    pub generate_ms: f64,
    pub tokens_per_second: f64,
}

#[napi(object)]
pub struct NativeGeneration {
    pub text: String,
    pub finish_reason: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub cached_tokens: u32,
    pub dropped_messages: u32,
    pub timings: NativeTimings,
    pub request_id: String,
}

impl From<Generation> for NativeGeneration {
    fn from(g: Generation) -> Self {
        Self {
            text: g.text,
            finish_reason: g.finish_reason.as_str().to_string(),
            prompt_tokens: g.prompt_tokens,
            completion_tokens: g.completion_tokens,
            cached_tokens: g.cached_tokens,
            dropped_messages: g.dropped_messages,
            timings: NativeTimings {
                queue_ms: g.timings.queue_ms,
                prompt_ms: g.timings.prompt_ms,
                ttft_ms: g.timings.ttft_ms,
                generate_ms: g.timings.generate_ms,
                tokens_per_second: g.timings.tokens_per_second,
            },
            request_id: g.request_id,
        }
    }
}

/// One event of a request: `chunk`, `done` or `error`.
#[napi(object)]
pub struct NativeEvent {
    pub kind: String,
    pub text: Option<String>,
    pub tokens: Option<u32>,
    pub generation: Option<NativeGeneration>,
    pub error: Option<NativeFailure>,
}

impl From<Event> for NativeEvent {
    fn from(e: Event) -> Self {
        let empty = |kind: &str| NativeEvent {
            kind: kind.into(),
            text: None,
            tokens: None,
            generation: None,
            error: None,
        };
        match e {
            Event::Chunk { text, tokens } => NativeEvent {
                text: Some(text),
                tokens: Some(tokens),
                ..empty("chunk")
            },
            Event::Done(g) => NativeEvent {
                generation: Some(g.into()),
                ..empty("done")
            },
            Event::Error(err) => NativeEvent {
                error: Some(NativeFailure {
                    code: err.code.as_str().into(),
                    message: err.message,
                }),
                ..empty("error")
            },
        }
    }
}

#[napi(object)]
pub struct NativeHealth {
    pub status: String,
    pub model_name: Option<String>,
    pub context_size: u32,
    pub uptime_ms: f64,
    pub last_error: Option<String>,
    pub slots_busy: u32,
    pub slots_total: u32,
    pub queue_depth: u32,
}

impl From<Health> for NativeHealth {
    fn from(h: Health) -> Self {
        Self {
            status: h.status.as_str().into(),
            model_name: h.model_name,
            context_size: h.context_size,
            uptime_ms: h.uptime_ms,
            last_error: h.last_error,
            slots_busy: h.slots_busy,
            slots_total: h.slots_total,
            queue_depth: h.queue_depth,
        }
    }
}

#[napi(object)]
pub struct NativeMetrics {
    pub requests_total: f64,
    pub requests_completed: f64,
    pub requests_failed: f64,
    pub requests_aborted: f64,
    pub requests_timed_out: f64,
    pub requests_active: f64,
    pub requests_queued: f64,
    pub prompt_tokens_total: f64,
    pub completion_tokens_total: f64,
    pub cached_tokens_total: f64,
    pub cache_hits: f64,
    pub prompt_tokens_evaluated: f64,
    pub decode_calls: f64,
    pub prompt_ms_total: f64,
    pub generate_ms_total: f64,
    pub last_ttft_ms: f64,
    pub last_tokens_per_second: f64,
    pub prompt_tokens_per_second: f64,
    pub decode_tokens_per_second: f64,
    pub ttft_p50_ms: f64,
    pub ttft_p95_ms: f64,
    pub ttft_p99_ms: f64,
    pub slots_busy: u32,
    pub slots_total: u32,
    pub queue_depth: u32,
    pub uptime_ms: f64,
}

impl From<Metrics> for NativeMetrics {
    fn from(m: Metrics) -> Self {
        Self {
            requests_total: m.requests_total as f64,
            requests_completed: m.requests_completed as f64,
            requests_failed: m.requests_failed as f64,
            requests_aborted: m.requests_aborted as f64,
            requests_timed_out: m.requests_timed_out as f64,
            requests_active: m.requests_active as f64,
            requests_queued: m.requests_queued as f64,
            prompt_tokens_total: m.prompt_tokens_total as f64,
            completion_tokens_total: m.completion_tokens_total as f64,
            cached_tokens_total: m.cached_tokens_total as f64,
            cache_hits: m.cache_hits as f64,
            prompt_tokens_evaluated: m.prompt_tokens_evaluated as f64,
            decode_calls: m.decode_calls as f64,
            prompt_ms_total: m.prompt_ms_total,
            generate_ms_total: m.generate_ms_total,
            last_ttft_ms: m.last_ttft_ms,
            last_tokens_per_second: m.last_tokens_per_second,
            prompt_tokens_per_second: m.prompt_tokens_per_second,
            decode_tokens_per_second: m.decode_tokens_per_second,
            ttft_p50_ms: m.ttft_p50_ms,
            ttft_p95_ms: m.ttft_p95_ms,
            ttft_p99_ms: m.ttft_p99_ms,
            slots_busy: m.slots_busy,
            slots_total: m.slots_total,
            queue_depth: m.queue_depth,
            uptime_ms: m.uptime_ms,
        }
    }
}
