//! Caller-facing options in their raw numeric form (JS numbers are f64) and their validation
//! into typed engine parameters. All range checks live here so that nothing out of range
//! reaches llama.cpp.

use std::path::PathBuf;
use std::time::Duration;

use super::chat_format::{ChatFormatParams, ReasoningMode};
use super::error::{EngineError, EngineResult};
use super::grammar;

/// Options for loading a model, as given by the caller.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub model_path: String,
    pub context_size: Option<f64>,
    pub batch_size: Option<f64>,
    pub threads: Option<f64>,
    pub thread_poll: Option<f64>,
    pub gpu_layers: Option<f64>,
    pub parallel: Option<f64>,
    pub max_queue: Option<f64>,
    pub use_mmap: Option<bool>,
    pub chat_template: Option<String>,
    pub default_timeout_ms: Option<f64>,
    pub prompt_chunk_size: Option<f64>,
    pub prompt_cache_bytes: Option<f64>,
    pub prompt_cache_dir: Option<String>,
    pub prompt_cache_disk_bytes: Option<f64>,
    pub embeddings: Option<bool>,
    pub pooling: Option<String>,
    /// Test-only fault injection spec (see `faults.rs`); `None` = the environment's.
    pub faults: Option<String>,
}

/// Validated load configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub model_path: PathBuf,
    /// Tokens one sequence (one conversation) may hold; `None` = min(trained context, 4096).
    pub context_size: Option<u32>,
    pub batch_size: u32,
    pub threads: i32,
    /// How long llama.cpp's worker threads busy-wait for the next decode step (0–100).
    pub thread_poll: u32,
    pub gpu_layers: u32,
    pub parallel: u32,
    pub max_queue: usize,
    pub use_mmap: bool,
    pub chat_template: Option<String>,
    pub default_timeout: Option<Duration>,
    /// Prompt tokens a decode step may carry while other requests are generating.
    pub prompt_chunk_size: u32,
    /// Host memory for saved prompt states; `None` = decided at load from free memory.
    pub prompt_cache_bytes: Option<u64>,
    /// Folder of the disk tier; `None` = no disk tier.
    pub prompt_cache_dir: Option<PathBuf>,
    pub prompt_cache_disk_bytes: u64,
    /// `Some` for an embedding engine (`embeddings: true`): it serves `embed` and `rank`
    /// instead of generation, pooling as given (`None` inside: as the model says).
    pub embeddings: Option<Option<Pooling>>,
    #[cfg(feature = "fault-injection")]
    pub faults: Option<String>,
}

/// How an embedding engine turns a text's token vectors into one vector (`pooling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), napi_derive::napi(string_enum = "lowercase"))]
pub enum Pooling {
    /// The average of the text's token vectors.
    Mean,
    /// The first token's vector (BERT-style models).
    Cls,
    /// The last token's vector (decoder embedding models).
    Last,
    /// A reranker's relevance score for a query and a document (`rank()`).
    Rank,
}

impl Pooling {
    const NAMES: [(&'static str, Pooling); 4] = [
        ("mean", Pooling::Mean),
        ("cls", Pooling::Cls),
        ("last", Pooling::Last),
        ("rank", Pooling::Rank),
    ];

    fn parse(value: Option<&str>) -> EngineResult<Option<Self>> {
        let Some(value) = value else { return Ok(None) };
        Self::NAMES
            .iter()
            .find(|(name, _)| *name == value)
            .map(|(_, p)| Some(*p))
            .ok_or_else(|| {
                EngineError::invalid_argument(format!(
                    "pooling must be 'mean', 'cls', 'last' or 'rank', got '{value}'"
                ))
            })
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("mean", |(name, _)| name)
    }
}

pub const DEFAULT_CONTEXT_SIZE: u32 = 4096;
pub const DEFAULT_BATCH_SIZE: u32 = 512;
pub const DEFAULT_MAX_QUEUE: usize = 64;
/// The longest text an embedding engine takes by default, as llama-server's default batch
/// allows: retrieval chunks are shorter, and a longer limit costs a larger compute buffer.
pub const DEFAULT_EMBEDDING_CONTEXT: u32 = 512;
/// Texts an embedding engine evaluates in one decode at most (its `parallel` default): short
/// texts are many per batch, and each costs only its tokens in the shared cache.
pub const DEFAULT_EMBEDDING_PARALLEL: u32 = 64;
/// Slots (concurrent conversations). Four keeps a 2-core machine's batches full without
/// making one stream much slower; each slot owns `contextSize` tokens of KV cache.
pub const DEFAULT_PARALLEL: u32 = 4;
pub const DEFAULT_MAX_TOKENS: u32 = 512;
/// Small enough that a step with a prompt chunk in it costs a few generation steps, large
/// enough that prompt evaluation keeps most of its batching speed.
pub const DEFAULT_PROMPT_CHUNK: u32 = 128;
/// llama.cpp's own default polling level (llama-server's `--poll`): between the decode steps
/// of a reply the workers are awake for the next one; an idle engine puts them to sleep.
pub const DEFAULT_THREAD_POLL: u32 = 50;
/// The host-memory prompt cache by default: this share of the memory free at load, …
pub const DEFAULT_PROMPT_CACHE_SHARE: f64 = 0.25;
/// … and at most this much.
pub const DEFAULT_PROMPT_CACHE_MAX_BYTES: u64 = 2 << 30;
pub const DEFAULT_PROMPT_CACHE_DISK_BYTES: u64 = 10 << 30;
const MAX_CACHE_BYTES: f64 = 1e15;
const MIN_TEMPERATURE: f64 = 1e-6;
const MAX_TIMEOUT_MS: f64 = 24.0 * 3600.0 * 1000.0;

/// Shows a number the way JavaScript would write it short: `1e+308`, not 309 digits.
fn show_number(v: f64) -> String {
    let magnitude = v.abs();
    if v.is_finite() && magnitude != 0.0 && !(1e-6..1e21).contains(&magnitude) {
        let shown = format!("{v:e}");
        if shown.contains("e-") {
            shown
        } else {
            shown.replace('e', "e+")
        }
    } else {
        format!("{v}")
    }
}

/// Reads an optional number, rejecting NaN, infinities, non-integers (when `integer`) and
/// values outside `[min, max]`, with a message naming the option.
fn number(
    name: &str,
    value: Option<f64>,
    min: f64,
    max: f64,
    integer: bool,
) -> EngineResult<Option<f64>> {
    let Some(v) = value else { return Ok(None) };
    let shown = show_number(v);
    if !v.is_finite() {
        return Err(EngineError::invalid_argument(format!(
            "{name} must be a finite number, got {shown}"
        )));
    }
    if integer && v.fract() != 0.0 {
        return Err(EngineError::invalid_argument(format!(
            "{name} must be an integer, got {shown}"
        )));
    }
    if v < min || v > max {
        return Err(EngineError::invalid_argument(format!(
            "{name} must be between {min} and {max}, got {shown}"
        )));
    }
    Ok(Some(v))
}

impl LoadOptions {
    pub fn validate(&self) -> EngineResult<EngineConfig> {
        if self.model_path.trim().is_empty() {
            return Err(EngineError::invalid_argument(
                "modelPath is required: pass the path of a .gguf file (npm run fetch-model gets a test model)",
            ));
        }
        #[cfg(not(feature = "fault-injection"))]
        if self.faults.is_some() {
            return Err(EngineError::invalid_argument(
                "__faults is test-only fault injection, compiled in only with the cargo feature fault-injection (npm test builds it)",
            ));
        }
        let physical = num_cpus::get_physical().max(1) as f64;
        let threads = number("threads", self.threads, 1.0, 1024.0, true)?.unwrap_or(physical);
        let pooling = Pooling::parse(self.pooling.as_deref())?;
        let embeddings = match (self.embeddings, pooling) {
            (Some(true), pooling) => Some(pooling),
            (_, Some(_)) => {
                return Err(EngineError::invalid_argument(
                    "pooling applies to an embedding engine: pass embeddings: true with it",
                ))
            }
            _ => None,
        };
        Ok(EngineConfig {
            model_path: PathBuf::from(&self.model_path),
            context_size: number("contextSize", self.context_size, 16.0, 4_194_304.0, true)?
                .map(|v| v as u32),
            batch_size: number("batchSize", self.batch_size, 1.0, 65_536.0, true)?
                .map_or(DEFAULT_BATCH_SIZE, |v| v as u32),
            threads: threads as i32,
            thread_poll: number("threadPoll", self.thread_poll, 0.0, 100.0, true)?
                .map_or(DEFAULT_THREAD_POLL, |v| v as u32),
            gpu_layers: number("gpuLayers", self.gpu_layers, 0.0, 100_000.0, true)?
                .map_or(0, |v| v as u32),
            parallel: number("parallel", self.parallel, 1.0, 256.0, true)?.map_or(
                if embeddings.is_some() {
                    DEFAULT_EMBEDDING_PARALLEL
                } else {
                    DEFAULT_PARALLEL
                },
                |v| v as u32,
            ),
            max_queue: number("maxQueue", self.max_queue, 0.0, 1_000_000.0, true)?
                .map_or(DEFAULT_MAX_QUEUE, |v| v as usize),
            use_mmap: self.use_mmap.unwrap_or(true),
            chat_template: self.chat_template.clone().filter(|t| !t.trim().is_empty()),
            default_timeout: number(
                "defaultTimeoutMs",
                self.default_timeout_ms,
                1.0,
                MAX_TIMEOUT_MS,
                false,
            )?
            .map(|ms| Duration::from_micros((ms * 1000.0) as u64)),
            prompt_chunk_size: number(
                "promptChunkSize",
                self.prompt_chunk_size,
                1.0,
                65_536.0,
                true,
            )?
            .map_or(DEFAULT_PROMPT_CHUNK, |v| v as u32),
            prompt_cache_bytes: number(
                "promptCacheBytes",
                self.prompt_cache_bytes,
                0.0,
                MAX_CACHE_BYTES,
                true,
            )?
            .map(|v| v as u64),
            prompt_cache_dir: match self.prompt_cache_dir.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(dir) => Some(PathBuf::from(dir)),
            },
            prompt_cache_disk_bytes: number(
                "promptCacheDiskBytes",
                self.prompt_cache_disk_bytes,
                0.0,
                MAX_CACHE_BYTES,
                true,
            )?
            .map_or(DEFAULT_PROMPT_CACHE_DISK_BYTES, |v| v as u64),
            embeddings,
            #[cfg(feature = "fault-injection")]
            faults: self.faults.clone(),
        })
    }
}

/// Per-request options, as given by the caller. Numbers stay f64 (JavaScript numbers):
/// `validate` checks their ranges.
#[derive(Debug, Clone, Default)]
#[cfg_attr(not(test), napi_derive::napi(object))]
pub struct GenerateOptions {
    /// Most tokens to generate. Default 512.
    pub max_tokens: Option<f64>,
    /// 0 = greedy (as is anything below 1e-6). Default 0.8.
    pub temperature: Option<f64>,
    /// Default 40; 0 disables.
    pub top_k: Option<f64>,
    /// Default 0.95; 1 disables.
    pub top_p: Option<f64>,
    /// Default 0.05; 0 disables.
    pub min_p: Option<f64>,
    /// Default 1 (off).
    pub repeat_penalty: Option<f64>,
    /// Default 0 (off).
    pub frequency_penalty: Option<f64>,
    /// Default 0 (off).
    pub presence_penalty: Option<f64>,
    /// Same seed + same input + same options = same output. Default: random.
    pub seed: Option<f64>,
    /// Generation ends before any of these strings; they never appear in the output.
    pub stop: Option<Vec<String>>,
    /// Reject with `TIMEOUT` after this many ms, queue wait included.
    pub timeout_ms: Option<f64>,
    /// GBNF grammar (root rule `root`) constraining the output.
    pub grammar: Option<String>,
    /// JSON Schema text the output must match; converted to a grammar.
    pub json_schema: Option<String>,
    /// Id carried in logs and results. Default: generated (`req-N`).
    pub request_id: Option<String>,
    /// Reuse the longest prefix of this prompt that a free slot already holds (e.g. the
    /// earlier turns of the same chat); only the rest is evaluated. Default true.
    pub cache_prompt: Option<bool>,
    /// When the prompt does not fit the context (an `OverflowPolicy`): 'error' (default)
    /// rejects with `CONTEXT_OVERFLOW`; 'drop-oldest' (chat input only) drops the oldest
    /// non-system turns until the prompt plus min(maxTokens, contextSize / 4) tokens of reply
    /// fit, and reports `droppedMessages`.
    pub context_overflow: Option<String>,
    /// Parse control-token text in the input (`<|im_start|>` in a raw prompt or in a
    /// message's content) as control tokens. Default false: such text stays text, so a user
    /// cannot forge a turn; the chat template's own markers are always control tokens.
    pub parse_special_tokens: Option<bool>,
    /// Functions the model may call, as JSON text of an array of `{ name, description?,
    /// parameters? }` (the JavaScript layer serializes `tools`).
    pub tools: Option<String>,
    /// JSON text of 'auto' (default), 'none', 'required' or `{ name }`.
    pub tool_choice: Option<String>,
    /// Let one reply hold several calls. Default false.
    pub parallel_tool_calls: Option<bool>,
    /// A `ReasoningMode`: 'separate' (default), 'inline' or 'off'.
    pub reasoning: Option<String>,
    /// Most tokens a thinking model may spend reasoning before it must answer; 0 asks the
    /// template not to think.
    pub reasoning_budget: Option<f64>,
    /// `stream()` only: the shortest time in ms between two text pieces of this reply. Tokens
    /// generated sooner wait and join the next piece (its `tokens` counts them all); the first
    /// piece goes out at once, and held text goes out once the interval has passed (even if
    /// no new text comes), before the final chunk, and before a step that admits or evaluates
    /// another request's prompt. Reasoning and tool-call pieces are not paced. Fewer, larger
    /// pieces cost the JavaScript thread (and an HTTP client) less per token, which a fast
    /// model on few cores feels. Default 0: every token's text goes out as soon as it is whole.
    pub stream_interval_ms: Option<f64>,
}

/// Options of `embed()` and `rank()`.
#[derive(Debug, Clone, Default)]
#[cfg_attr(not(test), napi_derive::napi(object))]
pub struct EmbedOptions {
    /// Scale each vector to length 1 (cosine similarity is then a dot product). Default true.
    /// Rank scores are never scaled.
    pub normalize: Option<bool>,
    /// Reject with `TIMEOUT` after this many ms, queue wait included.
    pub timeout_ms: Option<f64>,
    /// Id carried in logs. Default: generated (`req-N`).
    pub request_id: Option<String>,
}

/// Validated `EmbedOptions`.
#[derive(Debug, Clone)]
pub struct EmbedParams {
    pub normalize: bool,
    pub timeout: Option<Duration>,
    pub request_id: String,
}

impl EmbedOptions {
    pub fn validate(
        &self,
        default_timeout: Option<Duration>,
        next_id: impl FnOnce() -> String,
    ) -> EngineResult<EmbedParams> {
        Ok(EmbedParams {
            normalize: self.normalize.unwrap_or(true),
            timeout: number("timeoutMs", self.timeout_ms, 1.0, MAX_TIMEOUT_MS, false)?
                .map(|ms| Duration::from_micros((ms * 1000.0) as u64))
                .or(default_timeout),
            request_id: request_id(self.request_id.as_deref(), next_id)?,
        })
    }
}

/// The caller's `requestId` (at most 256 bytes), else a generated one.
fn request_id(given: Option<&str>, next_id: impl FnOnce() -> String) -> EngineResult<String> {
    match given {
        Some(id) if id.len() > 256 => Err(EngineError::invalid_argument(
            "requestId is longer than 256 bytes",
        )),
        Some(id) if !id.is_empty() => Ok(id.to_string()),
        _ => Ok(next_id()),
    }
}

/// What to do when a prompt does not fit the context (`contextOverflow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(test), napi_derive::napi(string_enum = "kebab-case"))]
pub enum OverflowPolicy {
    /// Reject with `CONTEXT_OVERFLOW`.
    Error,
    /// Drop the oldest non-system chat turns until the prompt fits.
    DropOldest,
}

impl OverflowPolicy {
    fn parse(value: Option<&str>) -> EngineResult<Self> {
        match value {
            None | Some("error") => Ok(Self::Error),
            Some("drop-oldest") => Ok(Self::DropOldest),
            Some(other) => Err(EngineError::invalid_argument(format!(
                "contextOverflow must be 'error' or 'drop-oldest', got '{other}'"
            ))),
        }
    }
}

/// Validated sampling parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    pub top_k: i32,
    pub top_p: f32,
    pub min_p: f32,
    pub repeat_penalty: f32,
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    /// Tokens of history the penalties look at.
    pub penalty_last_n: i32,
    pub seed: u32,
    /// GBNF text (from `grammar`, or converted from `jsonSchema`).
    pub grammar: Option<String>,
    /// The grammar's `<…>` token references, checked against the vocabulary on the prompt
    /// thread.
    pub grammar_tokens: Vec<grammar::TokenUse>,
}

/// Validated request parameters (everything but the input).
#[derive(Debug, Clone)]
pub struct RequestParams {
    pub max_tokens: u32,
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
    pub timeout: Option<Duration>,
    pub request_id: String,
    /// Reuse the longest cached prefix of a slot (llama-server's `cache_prompt`).
    pub cache_prompt: bool,
    pub overflow: OverflowPolicy,
    /// Parse control-token text in the input (raw prompts and message contents) as control
    /// tokens instead of text.
    pub parse_special: bool,
    /// Tools and reasoning (llama.cpp's chat formats).
    pub chat_format: ChatFormatParams,
}

const MAX_STOP_STRINGS: usize = 16;
const MAX_STOP_LEN: usize = 1024;

/// Most `streamIntervalMs` accepted: longer than any pause a reader would wait through.
const MAX_STREAM_INTERVAL_MS: f64 = 60_000.0;

impl GenerateOptions {
    /// `streamIntervalMs`, checked (the JavaScript binding paces deliveries with it).
    pub fn stream_interval(&self) -> EngineResult<Duration> {
        Ok(number(
            "streamIntervalMs",
            self.stream_interval_ms,
            0.0,
            MAX_STREAM_INTERVAL_MS,
            false,
        )?
        .map_or(Duration::ZERO, |ms| {
            Duration::from_micros((ms * 1000.0) as u64)
        }))
    }

    pub fn validate(
        &self,
        default_timeout: Option<Duration>,
        next_id: impl FnOnce() -> String,
    ) -> EngineResult<RequestParams> {
        let max_tokens = number("maxTokens", self.max_tokens, 1.0, 1_048_576.0, true)?
            .map_or(DEFAULT_MAX_TOKENS, |v| v as u32);
        let seed = match number("seed", self.seed, 0.0, u32::MAX as f64, true)? {
            Some(s) => s as u32,
            None => random_seed(),
        };
        let stop = self.stop.clone().unwrap_or_default();
        if stop.len() > MAX_STOP_STRINGS {
            return Err(EngineError::invalid_argument(format!(
                "stop accepts at most {MAX_STOP_STRINGS} strings, got {}",
                stop.len()
            )));
        }
        for s in &stop {
            if s.is_empty() || s.len() > MAX_STOP_LEN {
                return Err(EngineError::invalid_argument(format!(
                    "each stop string must be 1 to {MAX_STOP_LEN} bytes long"
                )));
            }
        }
        let (grammar, grammar_tokens) =
            grammar::from_options(self.grammar.as_deref(), self.json_schema.as_deref())?;
        let mut chat_format = ChatFormatParams::validate(
            self.tools.as_deref(),
            self.tool_choice.as_deref(),
            self.parallel_tool_calls,
            self.reasoning.as_deref(),
            number(
                "reasoningBudget",
                self.reasoning_budget,
                0.0,
                1_048_576.0,
                true,
            )?
            .map(|v| v as u32),
        )?;
        if grammar.is_some() && !chat_format.tools.is_empty() {
            return Err(EngineError::invalid_argument(
                "tools come with a grammar of their own: pass grammar or jsonSchema, or tools, not both",
            ));
        }
        // A grammar constrains the reply from its first token, where a thinking model would
        // think: such a request asks the template not to think.
        if grammar.is_some() {
            match self.reasoning.as_deref() {
                Some("separate") => {
                    return Err(EngineError::invalid_argument(
                        "grammar and jsonSchema constrain the whole reply, so reasoning cannot come apart from it: leave reasoning unset (the model is asked not to think) or pass 'inline'",
                    ))
                }
                None => chat_format.reasoning = ReasoningMode::Off,
                _ => {}
            }
        }
        let timeout = number("timeoutMs", self.timeout_ms, 1.0, MAX_TIMEOUT_MS, false)?
            .map(|ms| Duration::from_micros((ms * 1000.0) as u64))
            .or(default_timeout);
        let request_id = request_id(self.request_id.as_deref(), next_id)?;
        self.stream_interval()?;
        Ok(RequestParams {
            max_tokens,
            sampling: SamplingParams {
                // Below 1e-6 the division by the temperature overflows f32 logits to ±inf:
                // such a temperature is greedy in all but name, so it is treated as 0.
                temperature: number("temperature", self.temperature, 0.0, 100.0, false)?
                    .map_or(0.8, |v| if v < MIN_TEMPERATURE { 0.0 } else { v as f32 }),
                top_k: number("topK", self.top_k, 0.0, 1_000_000.0, true)?.map_or(40, |v| v as i32),
                top_p: number("topP", self.top_p, 0.0, 1.0, false)?.map_or(0.95, |v| v as f32),
                min_p: number("minP", self.min_p, 0.0, 1.0, false)?.map_or(0.05, |v| v as f32),
                repeat_penalty: number("repeatPenalty", self.repeat_penalty, 0.01, 100.0, false)?
                    .map_or(1.0, |v| v as f32),
                frequency_penalty: number(
                    "frequencyPenalty",
                    self.frequency_penalty,
                    -2.0,
                    2.0,
                    false,
                )?
                .map_or(0.0, |v| v as f32),
                presence_penalty: number(
                    "presencePenalty",
                    self.presence_penalty,
                    -2.0,
                    2.0,
                    false,
                )?
                .map_or(0.0, |v| v as f32),
                penalty_last_n: 64,
                seed,
                grammar,
                grammar_tokens,
            },
            stop,
            timeout,
            request_id,
            cache_prompt: self.cache_prompt.unwrap_or(true),
            overflow: OverflowPolicy::parse(self.context_overflow.as_deref())?,
            parse_special: self.parse_special_tokens.unwrap_or(false),
            chat_format,
        })
    }
}

fn random_seed() -> u32 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> String {
        "req-1".into()
    }

    #[test]
    fn defaults_are_valid() {
        let p = GenerateOptions::default().validate(None, id).unwrap();
        assert_eq!(p.max_tokens, DEFAULT_MAX_TOKENS);
        assert_eq!(p.request_id, "req-1");
    }

    #[test]
    fn stream_interval_is_checked_and_defaults_to_none() {
        let interval = |ms: Option<f64>| {
            GenerateOptions {
                stream_interval_ms: ms,
                ..Default::default()
            }
            .stream_interval()
        };
        assert_eq!(interval(None).unwrap(), Duration::ZERO);
        assert_eq!(interval(Some(25.5)).unwrap(), Duration::from_micros(25_500));
        for bad in [-1.0, 60_001.0, f64::NAN, f64::INFINITY] {
            let err = interval(Some(bad)).unwrap_err();
            assert!(err.message.contains("streamIntervalMs"), "{}", err.message);
            let whole = GenerateOptions {
                stream_interval_ms: Some(bad),
                ..Default::default()
            };
            assert!(whole.validate(None, id).is_err(), "validate checks it too");
        }
    }

    #[test]
    fn a_vanishing_temperature_is_greedy() {
        let p = GenerateOptions {
            temperature: Some(1e-39),
            ..Default::default()
        }
        .validate(None, id)
        .unwrap();
        assert_eq!(p.sampling.temperature, 0.0);
    }

    #[test]
    fn huge_numbers_are_shown_short() {
        let err = GenerateOptions {
            timeout_ms: Some(1e308),
            ..Default::default()
        }
        .validate(None, id)
        .unwrap_err();
        assert!(err.message.ends_with("got 1e+308"), "{}", err.message);
        assert_eq!(show_number(2.5), "2.5");
        assert_eq!(show_number(1e-9), "1e-9");
    }

    #[test]
    fn rejects_bad_numbers() {
        for (opts, word) in [
            (
                GenerateOptions {
                    temperature: Some(f64::NAN),
                    ..Default::default()
                },
                "temperature",
            ),
            (
                GenerateOptions {
                    max_tokens: Some(-1.0),
                    ..Default::default()
                },
                "maxTokens",
            ),
            (
                GenerateOptions {
                    max_tokens: Some(1.5),
                    ..Default::default()
                },
                "maxTokens",
            ),
            (
                GenerateOptions {
                    top_p: Some(2.0),
                    ..Default::default()
                },
                "topP",
            ),
            (
                GenerateOptions {
                    seed: Some(f64::INFINITY),
                    ..Default::default()
                },
                "seed",
            ),
            (
                GenerateOptions {
                    timeout_ms: Some(0.0),
                    ..Default::default()
                },
                "timeoutMs",
            ),
        ] {
            let err = opts.validate(None, id).unwrap_err();
            assert_eq!(err.code.as_str(), "INVALID_ARGUMENT");
            assert!(err.message.contains(word), "{}", err.message);
        }
    }

    #[test]
    fn load_options_need_a_path() {
        let err = LoadOptions::default().validate().unwrap_err();
        assert_eq!(err.code.as_str(), "INVALID_ARGUMENT");
        let cfg = LoadOptions {
            model_path: "x.gguf".into(),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert!(cfg.threads >= 1);
        assert_eq!(cfg.parallel, DEFAULT_PARALLEL);
        assert_eq!(cfg.thread_poll, DEFAULT_THREAD_POLL);
    }

    #[test]
    fn thread_poll_is_a_level_from_0_to_100() {
        let with = |v: f64| LoadOptions {
            model_path: "x.gguf".into(),
            thread_poll: Some(v),
            ..Default::default()
        };
        assert_eq!(with(0.0).validate().unwrap().thread_poll, 0);
        assert_eq!(with(100.0).validate().unwrap().thread_poll, 100);
        for bad in [-1.0, 101.0, 2.5, f64::NAN] {
            let err = with(bad).validate().unwrap_err();
            assert_eq!(err.code.as_str(), "INVALID_ARGUMENT");
            assert!(err.message.contains("threadPoll"), "{}", err.message);
        }
    }

    #[test]
    fn overflow_policy_is_checked() {
        let p = GenerateOptions::default().validate(None, id).unwrap();
        assert_eq!(p.overflow, OverflowPolicy::Error);
        assert!(p.cache_prompt);
        let drop = GenerateOptions {
            context_overflow: Some("drop-oldest".into()),
            ..Default::default()
        };
        assert_eq!(
            drop.validate(None, id).unwrap().overflow,
            OverflowPolicy::DropOldest
        );
        let bad = GenerateOptions {
            context_overflow: Some("truncate".into()),
            ..Default::default()
        };
        let err = bad.validate(None, id).unwrap_err();
        assert!(err.message.contains("contextOverflow"), "{}", err.message);
    }

    #[test]
    fn schema_becomes_grammar() {
        let opts = GenerateOptions {
            json_schema: Some(r#"{"type":"object","properties":{"a":{"type":"integer"}}}"#.into()),
            ..Default::default()
        };
        let p = opts.validate(None, id).unwrap();
        assert!(p.sampling.grammar.unwrap().contains("root"));
        let bad = GenerateOptions {
            json_schema: Some("{not json".into()),
            ..Default::default()
        };
        assert_eq!(
            bad.validate(None, id).unwrap_err().code.as_str(),
            "INVALID_ARGUMENT"
        );
        let unknown_type = GenerateOptions {
            json_schema: Some(
                r#"{"type":"object","properties":{"type":{"type":"string"},"a":{"type":"frobnicate"}}}"#
                    .into(),
            ),
            ..Default::default()
        };
        let err = unknown_type.validate(None, id).unwrap_err();
        assert_eq!(err.code.as_str(), "INVALID_ARGUMENT");
        assert!(
            err.message.contains("#/properties/a/type"),
            "{}",
            err.message
        );
        assert!(err.message.contains("frobnicate"), "{}", err.message);
    }
}
