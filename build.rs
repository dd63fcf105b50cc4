fn main() {
    napi_build::setup();
    // The llama.cpp build identity written into prompt-cache files: a KV state saved by one
    // llama.cpp build is not loaded by another. The pinned llama-cpp-sys-2 version names it.
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"llama-cpp-sys-2\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=NAPI_LLAMA_LLAMA_CPP_SYS_VERSION={version}");
    build_chat_format_bridge();
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        // The engine notes the context pointer llama-cpp-2 keeps private, to attach a
        // persistent thread pool to it (src/engine/load/thread_pool.rs).
        println!("cargo:rustc-link-arg-cdylib=-Wl,--wrap=llama_new_context_with_model");
    }
    if std::env::var_os("CARGO_FEATURE_DYNAMIC_BACKENDS").is_some() {
        // The shared llama.cpp and ggml libraries travel beside the addon in its package
        // folder: the loader finds them there, never through the working directory.
        let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
        if os == "linux" {
            println!("cargo:rustc-cdylib-link-arg=-Wl,-rpath,$ORIGIN");
        } else if os == "macos" {
            println!("cargo:rustc-cdylib-link-arg=-Wl,-rpath,@loader_path");
        }
    }
}

/// Compiles the C ABI over llama.cpp's `common/chat.h` (tool-call and reasoning formats)
/// against the same llama.cpp source that llama-cpp-sys-2 built, found through the CMake cache
/// of that build (its `DEP_LLAMA_ROOT` output folder), so the headers always match the linked
/// `llama-common` library.
fn build_chat_format_bridge() {
    const SOURCE: &str = "src/engine/chat_format/common_chat.cpp";
    println!("cargo:rerun-if-changed={SOURCE}");
    let root = std::env::var("DEP_LLAMA_ROOT")
        .expect("llama-cpp-sys-2 did not report its build folder (DEP_LLAMA_ROOT)");
    let cache = std::path::Path::new(&root)
        .join("build")
        .join("CMakeCache.txt");
    let llama_src = std::fs::read_to_string(&cache)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("CMAKE_HOME_DIRECTORY:INTERNAL="))
                .map(std::path::PathBuf::from)
        })
        .unwrap_or_else(|| panic!("no llama.cpp source folder in {}", cache.display()));
    cc::Build::new()
        .cpp(true)
        .file(SOURCE)
        .include(llama_src.join("common"))
        .include(llama_src.join("include"))
        .include(llama_src.join("ggml/include"))
        .include(llama_src.join("vendor"))
        .flag_if_supported("-std=c++17")
        // llama.cpp's headers define unused static helpers; their warnings are not ours.
        .warnings(false)
        .pic(true)
        .compile("napi_llama_chat_format");
}
