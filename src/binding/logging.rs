//! tracing setup. One subscriber per process writes to stderr; `logLevel` reloads its filter.
//! llama.cpp's own logs are shown only at `debug` and `trace`. llama-cpp-2 forwards them under
//! the target `llama-cpp-2` (with hyphens; its own events use `llama_cpp_2`).

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

use napi_derive::napi;

use crate::engine::EngineError;

static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// How much napi-llama logs to stderr (`logLevel`).
#[napi(string_enum = "lowercase")]
pub enum LogLevel {
    Off,
    Error,
    /// The default.
    Warn,
    Info,
    /// Also llama.cpp's own logs.
    Debug,
    Trace,
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

fn directives(level: &str) -> String {
    let llama = if matches!(level, "debug" | "trace") {
        level
    } else {
        "off"
    };
    format!("off,napi_llama={level},llama_cpp_2={llama},llama-cpp-2={llama}")
}

/// The level to use: `level`, else `NAPI_LLAMA_LOG`, else `warn`; an unknown one is an error.
pub fn check_level(level: Option<&str>) -> Result<String, EngineError> {
    let env_level = std::env::var("NAPI_LLAMA_LOG").ok();
    let level = level
        .map(str::to_string)
        .or(env_level)
        .unwrap_or_else(|| "warn".into());
    if !LEVELS.contains(&level.as_str()) {
        return Err(EngineError::invalid_argument(format!(
            "logLevel must be one of {LEVELS:?}, got {level:?}"
        )));
    }
    Ok(level)
}

pub fn set_level(level: Option<&str>) -> Result<(), EngineError> {
    let level = check_level(level)?;
    let filter = EnvFilter::new(directives(&level));
    match FILTER.get() {
        Some(handle) => {
            let _ = handle.reload(filter);
        }
        None => {
            let (layer, handle) = reload::Layer::new(filter);
            let installed = tracing_subscriber::registry()
                .with(layer)
                .with(
                    fmt::layer()
                        .with_writer(std::io::stderr)
                        .with_target(true)
                        // Colour codes only for a person at a terminal, not in log files,
                        // and not when NO_COLOR asks for none.
                        .with_ansi(
                            std::io::stderr().is_terminal()
                                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
                        ),
                )
                .try_init()
                .is_ok();
            if installed {
                let _ = FILTER.set(handle);
                route_panics_to_tracing();
            }
        }
    }
    Ok(())
}

/// Panics inside the addon are caught and become `INTERNAL` errors (the engine's threads and
/// every napi entry point catch them); their report goes through the same filter as every
/// other log line (error level) instead of straight to stderr, with a backtrace when
/// RUST_BACKTRACE asks for one. This hook belongs to the addon's own Rust runtime: the host
/// process and other addons keep theirs.
fn route_panics_to_tracing() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with a non-text payload".into());
        let backtrace = std::backtrace::Backtrace::capture();
        let backtrace = match backtrace.status() {
            std::backtrace::BacktraceStatus::Captured => format!("\n{backtrace}"),
            _ => String::new(),
        };
        tracing::error!(
            target: "napi_llama",
            thread = thread.name().unwrap_or("unnamed"),
            %location,
            "panicked: {message}{backtrace}"
        );
    }));
}
