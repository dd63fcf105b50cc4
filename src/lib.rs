//! napi-llama: llama.cpp inside Node.js. `engine` is pure Rust; the other modules are the thin
//! napi layer that converts options, events and errors for JavaScript. The napi layer is left
//! out of `cargo test` builds, whose test binary has no Node.js to resolve napi symbols.

pub mod engine;
// Used by the napi layer; outside the cfg so `cargo test` covers it.
#[cfg_attr(test, allow(dead_code))]
mod event_loop_slice;
#[cfg(not(test))]
mod js_engine;
#[cfg(not(test))]
mod js_error;
#[cfg(not(test))]
mod js_types;
#[cfg(not(test))]
mod logging;
