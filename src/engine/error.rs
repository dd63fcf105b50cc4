//! Engine errors: one stable code per failure class (DESIGN.md §2) plus a message that says
//! what to do. The napi layer maps these to JS errors carrying `err.code`.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    ModelNotLoaded,
    ModelLoadFailed,
    InvalidArgument,
    ContextOverflow,
    Timeout,
    Aborted,
    QueueFull,
    AlreadyInitialized,
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
            ErrorCode::AlreadyInitialized => "ALREADY_INITIALIZED",
            ErrorCode::Internal => "INTERNAL",
        }
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
