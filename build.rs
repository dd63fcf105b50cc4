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
}
