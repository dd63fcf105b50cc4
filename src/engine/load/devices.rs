//! The ggml devices a model runs on, named for `ModelInfo.devices` and `health()`.

use std::ffi::CStr;

use llama_cpp_sys_2 as sys;

fn text(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: ggml returns NUL-terminated names that live as long as the device registry.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// `"<name>: <description>"` of each device holding the model: the GPUs when layers are
/// offloaded (llama.cpp splits layers across all of them), and the CPU, which always holds
/// the rest (the input embeddings at least).
pub fn model_devices(offloaded: bool) -> Vec<String> {
    let mut out = Vec::new();
    // SAFETY: read-only queries of ggml's device registry, filled once the backend is loaded.
    let count = unsafe { sys::ggml_backend_dev_count() };
    for i in 0..count {
        let dev = unsafe { sys::ggml_backend_dev_get(i) };
        if dev.is_null() {
            continue;
        }
        let kind = unsafe { sys::ggml_backend_dev_type(dev) };
        let wanted = match kind {
            sys::GGML_BACKEND_DEVICE_TYPE_CPU => true,
            sys::GGML_BACKEND_DEVICE_TYPE_GPU | sys::GGML_BACKEND_DEVICE_TYPE_IGPU => offloaded,
            _ => false,
        };
        if wanted {
            let name = text(unsafe { sys::ggml_backend_dev_name(dev) });
            let description = text(unsafe { sys::ggml_backend_dev_description(dev) });
            out.push(format!("{name}: {}", description.trim()));
        }
    }
    // GPUs first: the device that does the work leads the list.
    out.sort_by_key(|d| d.starts_with("CPU"));
    out
}
