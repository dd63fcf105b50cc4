//! The process-wide llama.cpp backend. `LlamaBackend::init` succeeds once per process, so it
//! lives in a `OnceLock` and is never dropped.
//!
//! In the portable build (`dynamic-backends`), ggml's backends are separate libraries beside the
//! addon: one CPU backend per x86-64 variant, of which ggml loads the best this CPU runs, and a
//! GPU backend (Vulkan) where one was built and the machine has its driver. They are loaded from
//! the folder the addon itself was loaded from, never from the working directory.

use std::sync::OnceLock;

use llama_cpp_2::llama_backend::LlamaBackend;

use crate::engine::error::{EngineError, EngineResult};

static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

pub fn init() -> EngineResult<()> {
    get().map(|_| ())
}

pub fn get() -> EngineResult<&'static LlamaBackend> {
    BACKEND
        .get_or_init(|| {
            // Route llama.cpp's own logs through tracing, where the log level filters them.
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            #[cfg(feature = "dynamic-backends")]
            dynamic::load()?;
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::internal(format!("cannot initialize the llama.cpp backend: {e}")))
}

#[cfg(feature = "dynamic-backends")]
mod dynamic {
    #[cfg(unix)]
    use std::ffi::CStr;
    use std::path::PathBuf;

    /// The folder of the shared library this code is in (the `.node` file), found with
    /// `dladdr` on one of its own functions.
    #[cfg(unix)]
    fn addon_folder() -> Option<PathBuf> {
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        let address = addon_folder as *const libc::c_void;
        if unsafe { libc::dladdr(address, &mut info) } == 0 || info.dli_fname.is_null() {
            return None;
        }
        let file = unsafe { CStr::from_ptr(info.dli_fname) }.to_str().ok()?;
        let folder = std::fs::canonicalize(file).ok()?.parent()?.to_path_buf();
        Some(folder)
    }

    /// The Windows build needs `GetModuleHandleExW` + `GetModuleFileNameW` here; until then
    /// it refuses to guess (ggml's default would search the working directory).
    #[cfg(not(unix))]
    fn addon_folder() -> Option<PathBuf> {
        None
    }

    pub fn load() -> Result<(), String> {
        let folder = addon_folder().ok_or("cannot find the folder the addon was loaded from")?;
        llama_cpp_2::llama_backend::load_backends_from_path(&folder);
        let cpu = unsafe {
            llama_cpp_sys_2::ggml_backend_dev_by_type(llama_cpp_sys_2::GGML_BACKEND_DEVICE_TYPE_CPU)
        };
        if cpu.is_null() {
            return Err(format!(
                "no ggml CPU backend this CPU can run was found in {} (libggml-cpu-*.so)",
                folder.display()
            ));
        }
        Ok(())
    }
}
