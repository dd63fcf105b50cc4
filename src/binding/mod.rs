//! The napi layer, run on the JavaScript thread: the exported `NativeEngine` class (`engine`),
//! the JavaScript shapes of options and results (`types`), engine errors as JavaScript errors
//! with `err.code` (`error`), llama.cpp's log routing (`logging`), streamed text on its way to
//! the JavaScript thread (`pending_text`) and the scheduler hint that keeps the event loop
//! responsive (`event_loop_slice`). The napi modules are left out of
//! `cargo test` builds, whose test binary has no Node.js to resolve napi symbols.

#[cfg(not(test))]
mod engine;
#[cfg(not(test))]
mod error;
#[cfg_attr(test, allow(dead_code))]
mod event_loop_slice;
#[cfg(not(test))]
mod logging;
#[cfg_attr(test, allow(dead_code))]
mod pending_text;
#[cfg(not(test))]
mod types;
