//! The one place engine errors become JavaScript errors: napi-rs sets `err.code` to the
//! error's status, which here is the engine's `ErrorCode` string.

use crate::engine::{EngineError, ErrorCode};

pub fn to_js_error(err: EngineError) -> napi::Error<ErrorCode> {
    napi::Error::new(err.code, err.message)
}
