//! Loading, run once on the inference thread when an engine starts: the GGUF file is checked
//! before llama.cpp sees it (`model_file`), the model is loaded, the KV cache is checked
//! against free memory before llama.cpp allocates it (`memory`), the chat template is chosen
//! and the context is created. `Loaded` is what the other threads read afterwards.

pub mod backend;
pub mod devices;
pub mod memory;
pub mod model_file;
pub mod thread_pool;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use self::thread_pool::EngineContext;
use super::chat_format::ChatFormats;
use super::error::{EngineError, EngineResult};
use super::faults::Faults;
use super::options::{self, EngineConfig, Pooling};
use super::prompt_cache::disk::DiskCache;
use super::prompt_thread::chat_template::ChatTemplate;
use super::prompt_thread::tokenizer::Tokenizer;
use super::{ModelInfo, ProgressFn};

/// Read-only model state that the caller's thread and the prompt thread use to prepare
/// requests, set once the load succeeds.
pub struct Loaded {
    pub model: Arc<LlamaModel>,
    pub template: ChatTemplate,
    /// The template in llama.cpp's chat formats (tool calls, reasoning); `None` without a
    /// Jinja template llama.cpp can read.
    pub chat_formats: Option<ChatFormats>,
    pub tokenizer: Tokenizer,
    pub n_ctx_per_seq: u32,
    /// An embedding engine's pooling; `None` for a generation engine.
    pub pooling: Option<Pooling>,
    /// The prompt cache's disk tier, read by the prompt thread.
    pub disk_cache: Option<Arc<DiskCache>>,
}

impl Loaded {
    pub fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<LlamaToken> {
        self.tokenizer
            .tokenize(&self.model, text.as_bytes(), add_special, parse_special)
    }
}

/// What the load settles about the context before creating it.
pub struct ContextPlan {
    /// Tokens one conversation may hold; for an embedding engine, the longest text.
    pub n_ctx_per_seq: u32,
    pub n_batch: u32,
    pub template: ChatTemplate,
    pub chat_formats: Option<ChatFormats>,
    /// An embedding engine's pooling, settled from the option or the model.
    pub pooling: Option<Pooling>,
    /// The KV cache's estimated size, when the model's family allows an estimate.
    pub kv_cache_bytes: Option<u64>,
}

/// The pooling a model's GGUF declares (`<arch>.pooling_type`), if it is one we serve.
fn model_pooling(model: &LlamaModel) -> Option<Pooling> {
    let arch = model
        .meta_val_str("general.architecture")
        .unwrap_or_default();
    let value: i32 = model
        .meta_val_str(&format!("{arch}.pooling_type"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    match LlamaPoolingType::from(value) {
        LlamaPoolingType::Mean => Some(Pooling::Mean),
        LlamaPoolingType::Cls => Some(Pooling::Cls),
        LlamaPoolingType::Last => Some(Pooling::Last),
        LlamaPoolingType::Rank => Some(Pooling::Rank),
        LlamaPoolingType::None | LlamaPoolingType::Unspecified => None,
    }
}

/// A model whose attention is not causal (BERT and its kin): it embeds, it cannot generate.
fn is_encoder(model: &LlamaModel) -> bool {
    let arch = model
        .meta_val_str("general.architecture")
        .unwrap_or_default();
    model
        .meta_val_str(&format!("{arch}.attention.causal"))
        .is_ok_and(|v| v.trim() == "false")
}

/// A reranker GGUF: rank pooling declared, or a `rerank` template (Qwen3-Reranker style).
pub fn is_reranker(model: &LlamaModel) -> bool {
    model_pooling(model) == Some(Pooling::Rank) || model.chat_template(Some("rerank")).is_ok()
}

fn llama_pooling(pooling: Pooling) -> LlamaPoolingType {
    match pooling {
        Pooling::Mean => LlamaPoolingType::Mean,
        Pooling::Cls => LlamaPoolingType::Cls,
        Pooling::Last => LlamaPoolingType::Last,
        Pooling::Rank => LlamaPoolingType::Rank,
    }
}

pub fn load_model(config: &EngineConfig, progress: Option<ProgressFn>) -> EngineResult<LlamaModel> {
    model_file::check_gguf_file(&config.model_path)?;
    let mut params = LlamaModelParams::default()
        .with_n_gpu_layers(config.gpu_layers)
        .with_use_mmap(config.use_mmap);
    if config.gpu_layers == 0 {
        // No GPU at all, not only no layers: llama.cpp otherwise gives the model every GPU
        // device it finds and runs large prompt batches there, with buffers in its memory.
        params = params
            .with_devices(&[])
            .map_err(|e| EngineError::internal(format!("cannot set the model's devices: {e}")))?;
    }
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

/// Context size per sequence, the memory check and the chat template: everything that can
/// refuse the configuration before llama.cpp allocates the KV cache.
pub fn plan_context(
    model: &LlamaModel,
    config: &EngineConfig,
    faults: &Faults,
) -> EngineResult<ContextPlan> {
    let trained = model.n_ctx_train();
    let n_ctx_per_seq = match config.context_size {
        Some(n) if n > trained => {
            return Err(EngineError::invalid_argument(format!(
                "contextSize {n} is larger than the {trained} tokens this model was trained on"
            )))
        }
        Some(n) => n,
        None if config.embeddings.is_some() => trained.min(options::DEFAULT_EMBEDDING_CONTEXT),
        None => trained.min(options::DEFAULT_CONTEXT_SIZE),
    };
    // An embedding engine evaluates whole texts, at most a batch of them at a time, and keeps
    // nothing between decodes: its cache holds one batch.
    if config.embeddings.is_none() && is_encoder(model) {
        return Err(EngineError::invalid_argument(format!(
            "{} is an encoder (embedding) model, which cannot generate: load it with embeddings: true and call embed()",
            config.model_path.display()
        )));
    }
    let pooling = config.embeddings.map(|chosen| {
        chosen
            .or_else(|| model_pooling(model))
            .unwrap_or(Pooling::Mean)
    });
    if pooling == Some(Pooling::Rank) && !is_reranker(model) && !faults.any_model_ranks() {
        return Err(EngineError::invalid_argument(format!(
            "pooling 'rank' needs a reranker model (its GGUF declares rank pooling or has a rerank template); {} is not one: use pooling 'mean', 'cls' or 'last' to embed with it",
            config.model_path.display()
        )));
    }
    let n_batch = match pooling {
        Some(_) => config.batch_size.max(n_ctx_per_seq),
        None => config.batch_size.min(n_ctx_per_seq * config.parallel),
    };
    let (cache_tokens, cache_seqs) = match pooling {
        Some(_) => (n_batch, 1),
        None => (n_ctx_per_seq, config.parallel),
    };
    let kv_cache_bytes = memory::kv_cache_bytes(model, cache_tokens, cache_seqs);
    // With layers offloaded to a GPU their cache lives there, not in this memory.
    let needed = kv_cache_bytes.filter(|_| config.gpu_layers == 0);
    let available = faults.available_memory().or_else(memory::available_memory);
    memory::check_fits(
        &config.model_path,
        needed,
        available,
        n_ctx_per_seq,
        config.parallel,
    )?;
    let template = ChatTemplate::for_model(model, config.chat_template.as_deref())?;
    let chat_formats = match pooling {
        Some(_) => None,
        None => chat_formats(model, config, &template),
    };
    Ok(ContextPlan {
        n_ctx_per_seq,
        n_batch,
        template,
        chat_formats,
        pooling,
        kv_cache_bytes,
    })
}

/// The template in llama.cpp's chat formats. A template that minijinja renders but llama.cpp's
/// Jinja cannot read still serves plain chats: only tools and reasoning are refused then.
fn chat_formats(
    model: &LlamaModel,
    config: &EngineConfig,
    template: &ChatTemplate,
) -> Option<ChatFormats> {
    let tool_use = match config.chat_template {
        Some(_) => None,
        None => model
            .chat_template(Some("tool_use"))
            .ok()
            .and_then(|t| t.to_string().ok()),
    };
    ChatFormats::new(
        template.jinja_source.as_deref(),
        tool_use.as_deref(),
        &template.bos_token,
        &template.eos_token,
    )
    .unwrap_or_else(|e| {
        tracing::warn!(error = %e.message, "tool calls and reasoning are off for this model");
        None
    })
}

pub fn new_context<'m>(
    model: &'m LlamaModel,
    config: &EngineConfig,
    plan: &ContextPlan,
) -> EngineResult<EngineContext<'m>> {
    let ctx_params = LlamaContextParams::default()
        .with_n_batch(plan.n_batch)
        .with_n_ubatch(plan.n_batch)
        .with_n_seq_max(config.parallel)
        .with_n_threads(config.threads)
        .with_n_threads_batch(config.threads);
    let ctx_params = match plan.pooling {
        // One cache shared by the batch's texts (unified): a text may take any share of it.
        // A text's pooled vector comes from one ubatch, so a batch is one ubatch.
        Some(pooling) => ctx_params
            .with_n_ctx(NonZeroU32::new(plan.n_batch))
            .with_kv_unified(true)
            .with_embeddings(true)
            .with_pooling_type(llama_pooling(pooling)),
        None => ctx_params.with_n_ctx(NonZeroU32::new(plan.n_ctx_per_seq * config.parallel)),
    };
    let backend = backend::get()?;
    EngineContext::create(config.threads, config.thread_poll, || {
        model.new_context(backend, ctx_params)
    })
    .map_err(|e| {
        EngineError::load_failed(format!(
            "cannot create a llama.cpp context for {} ({e}): lower contextSize or parallel",
            config.model_path.display()
        ))
    })
}

pub fn model_info(
    model: &LlamaModel,
    config: &EngineConfig,
    plan: &ContextPlan,
    started: Instant,
) -> ModelInfo {
    let ContextPlan {
        n_ctx_per_seq,
        n_batch,
        template,
        pooling,
        kv_cache_bytes,
        chat_formats,
    } = plan;
    let (n_ctx_per_seq, n_batch) = (*n_ctx_per_seq, *n_batch);
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
    // What was offloaded, not what was asked: nothing without a GPU backend, and at most
    // every repeating layer plus the output layer.
    // SAFETY: a pure query of how llama.cpp was built; the backend is initialised.
    let gpu_layers = if unsafe { llama_cpp_sys_2::llama_supports_gpu_offload() } {
        config.gpu_layers.min(model.n_layer() + 1)
    } else {
        0
    };
    ModelInfo {
        model_path: config.model_path.display().to_string(),
        name,
        architecture: meta("general.architecture"),
        context_size: n_ctx_per_seq,
        trained_context_size: model.n_ctx_train(),
        vocab_size: model.n_vocab().max(0) as u32,
        parameters: model.n_params() as f64,
        size_bytes: model.size() as f64,
        kv_cache_bytes: kv_cache_bytes.map(|b| b as f64),
        memory_bytes: (model.size() + kv_cache_bytes.unwrap_or(0)) as f64,
        chat_template: template.name.clone(),
        chat_template_source: template.source,
        thinking: chat_formats.as_ref().is_some_and(|f| f.supports_thinking),
        parallel: config.parallel,
        batch_size: n_batch,
        threads: config.threads,
        gpu_layers,
        devices: devices::model_devices(gpu_layers > 0),
        pooling: *pooling,
        embedding_size: match pooling {
            Some(Pooling::Rank) => model.n_cls_out(),
            _ => model.n_embd_out().max(0) as u32,
        },
        load_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}

/// The attention window of the model's sliding-window layers (GGUF
/// `{arch}.attention.sliding_window`), 0 when it has none.
pub fn sliding_window(model: &LlamaModel) -> u32 {
    let arch = model
        .meta_val_str("general.architecture")
        .unwrap_or_default();
    model
        .meta_val_str(&format!("{arch}.attention.sliding_window"))
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
