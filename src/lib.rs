//! napi-llama: llama.cpp inside Node.js. `engine` is pure Rust; the other modules are the thin
//! napi layer that converts options, events and errors for JavaScript. The napi layer is left
//! out of `cargo test` builds, whose test binary has no Node.js to resolve napi symbols.

pub mod engine;
#[cfg(not(test))]
mod js_engine;
#[cfg(not(test))]
mod js_error;
#[cfg(not(test))]
mod js_types;
#[cfg(not(test))]
mod logging;
