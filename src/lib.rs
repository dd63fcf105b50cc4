//! napi-llama: llama.cpp inside Node.js. `engine` is pure Rust; `binding` is the thin napi
//! layer that converts options, events and errors for JavaScript.

mod binding;
pub mod engine;
