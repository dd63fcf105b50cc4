//! The C ABI of `common_chat.cpp`, wrapped: owned handles freed on drop, JSON in and out,
//! every C++ failure an `Err` with llama.cpp's message.

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr::{self, NonNull};

extern "C" {
    fn napi_llama_chat_string_free(s: *mut c_char);
    fn napi_llama_chat_templates_new(
        source: *const c_char,
        bos_token: *const c_char,
        eos_token: *const c_char,
        error: *mut *mut c_char,
    ) -> *mut c_void;
    fn napi_llama_chat_templates_free(templates: *mut c_void);
    fn napi_llama_chat_apply(
        templates: *const c_void,
        request: *const c_char,
        out: *mut *mut c_char,
    ) -> i32;
    fn napi_llama_chat_parser_new(params: *const c_char, error: *mut *mut c_char) -> *mut c_void;
    fn napi_llama_chat_parser_free(parser: *mut c_void);
    fn napi_llama_chat_parser_update(
        parser: *mut c_void,
        text: *const c_char,
        len: usize,
        partial: bool,
        out: *mut *mut c_char,
    ) -> i32;
}

/// Takes ownership of a string the bridge allocated.
fn take_string(s: *mut c_char) -> String {
    if s.is_null() {
        return "out of memory".to_string();
    }
    // SAFETY: the bridge returns NUL-terminated strings from malloc, freed only here.
    let text = unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned();
    unsafe { napi_llama_chat_string_free(s) };
    text
}

/// A bridge call's outcome: `out` holds the answer (rc 0) or the error message.
fn outcome(rc: i32, out: *mut c_char) -> Result<String, String> {
    let text = take_string(out);
    if rc == 0 {
        Ok(text)
    } else {
        Err(text)
    }
}

fn c_string(text: &str) -> Result<CString, String> {
    CString::new(text).map_err(|_| "text with a NUL character".to_string())
}

/// A parsed Jinja chat template in llama.cpp's chat-format machinery.
pub struct Templates(NonNull<c_void>);

// SAFETY: the templates are read-only after parsing; `apply` takes `&self` and llama.cpp's
// renderer keeps its state per call.
unsafe impl Send for Templates {}
unsafe impl Sync for Templates {}

impl Templates {
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, String> {
        let (source, bos, eos) = (
            c_string(source)?,
            c_string(bos_token)?,
            c_string(eos_token)?,
        );
        let mut error = ptr::null_mut();
        // SAFETY: valid C strings; the bridge catches every C++ exception.
        let handle = unsafe {
            napi_llama_chat_templates_new(source.as_ptr(), bos.as_ptr(), eos.as_ptr(), &mut error)
        };
        NonNull::new(handle)
            .map(Self)
            .ok_or_else(|| take_string(error))
    }

    /// Renders a request (JSON, see `common_chat.cpp`); returns llama.cpp's answer as JSON.
    pub fn apply(&self, request: &str) -> Result<String, String> {
        let request = c_string(request)?;
        let mut out = ptr::null_mut();
        // SAFETY: a live handle and a valid C string; `out` is always set.
        let rc = unsafe { napi_llama_chat_apply(self.0.as_ptr(), request.as_ptr(), &mut out) };
        outcome(rc, out)
    }
}

impl Drop for Templates {
    fn drop(&mut self) {
        // SAFETY: created by `napi_llama_chat_templates_new`, freed once.
        unsafe { napi_llama_chat_templates_free(self.0.as_ptr()) }
    }
}

/// One reply's parser; remembers the last parse to report what changed.
pub struct Parser(NonNull<c_void>);

// SAFETY: owned by one request, used from one thread at a time.
unsafe impl Send for Parser {}

impl Parser {
    pub fn new(params: &str) -> Result<Self, String> {
        let params = c_string(params)?;
        let mut error = ptr::null_mut();
        // SAFETY: a valid C string; the bridge catches every C++ exception.
        let handle = unsafe { napi_llama_chat_parser_new(params.as_ptr(), &mut error) };
        NonNull::new(handle)
            .map(Self)
            .ok_or_else(|| take_string(error))
    }

    /// Parses the reply so far; returns the message and the diffs as JSON.
    pub fn update(&mut self, text: &str, partial: bool) -> Result<String, String> {
        let mut out = ptr::null_mut();
        // SAFETY: a live handle; the text is passed with its length (it may hold NUL).
        let rc = unsafe {
            napi_llama_chat_parser_update(
                self.0.as_ptr(),
                text.as_ptr().cast(),
                text.len(),
                partial,
                &mut out,
            )
        };
        outcome(rc, out)
    }
}

impl Drop for Parser {
    fn drop(&mut self) {
        // SAFETY: created by `napi_llama_chat_parser_new`, freed once.
        unsafe { napi_llama_chat_parser_free(self.0.as_ptr()) }
    }
}
