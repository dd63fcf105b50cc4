//! The one place engine errors become JavaScript errors. napi-rs can only attach its own
//! `Status` names as `err.code`, so the code travels in the message as `[CODE] text` and
//! index.js turns it into `err.code` on the JS side (see `toError` there).

use napi::{Error, Status};

use crate::engine::EngineError;

pub fn map_error(err: EngineError) -> Error {
    Error::new(
        Status::GenericFailure,
        format!("[{}] {}", err.code.as_str(), err.message),
    )
}
