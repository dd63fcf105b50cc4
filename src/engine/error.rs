//! Engine errors: one stable code per failure class plus a message that says what to do.
//! `ErrorCode` is the one list of codes: the binding sets it natively as `err.code`, and the
//! generated TypeScript types derive the `ErrorCode` union from it.

use std::fmt;

/// The stable `code` of every error napi-llama throws or rejects with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(not(test), napi_derive::napi(string_enum = "UPPER_SNAKE"))]
pub enum ErrorCode {
    /// generate/stream/tokenize before `initialize`, while loading, or after `shutdown`.
    ModelNotLoaded,
    /// Missing, truncated or corrupt file, not GGUF, unsupported architecture, not enough memory.
    ModelLoadFailed,
    /// Empty input, unknown role or option key, out-of-range number, bad grammar or schema.
    InvalidArgument,
    /// The prompt (plus reserved output) cannot fit the context.
    ContextOverflow,
    /// `timeoutMs` elapsed (queue wait included).
    Timeout,
    /// The `signal` aborted, the stream was cancelled, or the engine shut down.
    Aborted,
    /// More waiting requests than `maxQueue` (a remote engine: the server answered 429, or 503
    /// busy).
    QueueFull,
    /// A remote backend cannot be reached: connection refused or reset, DNS, TLS, connect
    /// timeout, or a stream cut part way. Raised by the JavaScript layer's remote engine.
    Unavailable,
    /// `initialize` while a model is loaded or loading, without `replace: true`. Raised by the
    /// JavaScript layer, which owns the default engine.
    AlreadyInitialized,
    /// A caught panic or llama.cpp failure; the engine stays usable or reports `error`.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ModelNotLoaded => "MODEL_NOT_LOADED",
            ErrorCode::ModelLoadFailed => "MODEL_LOAD_FAILED",
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::ContextOverflow => "CONTEXT_OVERFLOW",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::Aborted => "ABORTED",
            ErrorCode::QueueFull => "QUEUE_FULL",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::AlreadyInitialized => "ALREADY_INITIALIZED",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

impl AsRef<str> for ErrorCode {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError {
    pub code: ErrorCode,
    pub message: String,
}

impl EngineError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    pub fn load_failed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ModelLoadFailed, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    pub fn not_loaded() -> Self {
        Self::new(
            ErrorCode::ModelNotLoaded,
            "no model is loaded: call initialize({ modelPath }) first and await it",
        )
    }

    /// `TIMEOUT` for a request whose `timeoutMs` (given here) has passed.
    pub fn timed_out(timeout: Option<std::time::Duration>) -> Self {
        let limit = timeout.map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        Self::new(
            ErrorCode::Timeout,
            format!("the request did not finish within timeoutMs = {limit} (queue wait included): raise timeoutMs or lower maxTokens"),
        )
    }

    pub fn aborted(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Aborted, message)
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for EngineError {}

pub type EngineResult<T> = Result<T, EngineError>;

/// Turns a caught panic payload into an `INTERNAL` error.
pub fn panic_to_error(payload: Box<dyn std::any::Any + Send>) -> EngineError {
    let detail = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    };
    EngineError::internal(format!("internal error (caught panic): {detail}"))
}
