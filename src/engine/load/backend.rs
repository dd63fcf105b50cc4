//! The process-wide llama.cpp backend. `LlamaBackend::init` succeeds once per process, so it
//! lives in a `OnceLock` and is never dropped.

use std::sync::OnceLock;

use llama_cpp_2::llama_backend::LlamaBackend;

use crate::engine::error::{EngineError, EngineResult};

static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

pub fn init() -> EngineResult<()> {
    get().map(|_| ())
}

pub fn get() -> EngineResult<&'static LlamaBackend> {
    BACKEND
        .get_or_init(|| {
            // Route llama.cpp's own logs through tracing, where the log level filters them.
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::internal(format!("cannot initialize the llama.cpp backend: {e}")))
}
