//! tracing setup. One subscriber per process writes to stderr; `logLevel` reloads its filter.
//! llama.cpp's own logs (target `llama_cpp_2`) are shown only at `debug` and `trace`.

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

use crate::engine::EngineError;

static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

fn directives(level: &str) -> String {
    let llama = if matches!(level, "debug" | "trace") {
        level
    } else {
        "off"
    };
    format!("off,napi_llama={level},llama_cpp_2={llama}")
}

pub fn set_level(level: Option<&str>) -> Result<(), EngineError> {
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
    let filter = EnvFilter::new(directives(&level));
    match FILTER.get() {
        Some(handle) => {
            let _ = handle.reload(filter);
        }
        None => {
            let (layer, handle) = reload::Layer::new(filter);
            let installed = tracing_subscriber::registry()
                .with(layer)
                .with(fmt::layer().with_writer(std::io::stderr).with_target(true))
                .try_init()
                .is_ok();
            if installed {
                let _ = FILTER.set(handle);
            }
        }
    }
    Ok(())
}
