//! Checks a model file before llama.cpp sees it: llama.cpp asserts (debug) or prints and
//! returns null on bad files, and we want a message that names the path and the reason.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::engine::error::{EngineError, EngineResult};

const GGUF_MAGIC: &[u8; 4] = b"GGUF";
/// Magic + version + tensor count + metadata count.
const GGUF_HEADER_LEN: u64 = 4 + 4 + 8 + 8;

pub fn check_gguf_file(path: &Path) -> EngineResult<()> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| {
        EngineError::load_failed(format!(
            "cannot read model file {shown}: {e} (run `npm run fetch-model` to get a test model)"
        ))
    })?;
    if meta.is_dir() {
        return Err(EngineError::load_failed(format!(
            "model path {shown} is a directory, not a .gguf file"
        )));
    }
    if meta.len() < GGUF_HEADER_LEN {
        return Err(EngineError::load_failed(format!(
            "model file {shown} is {} bytes long: too short to be a GGUF model (truncated download?)",
            meta.len()
        )));
    }
    let mut header = [0u8; GGUF_HEADER_LEN as usize];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(|e| EngineError::load_failed(format!("cannot read model file {shown}: {e}")))?;
    if &header[..4] != GGUF_MAGIC {
        return Err(EngineError::load_failed(format!(
            "model file {shown} is not a GGUF file (its first bytes are not \"GGUF\"); convert it with llama.cpp's convert_hf_to_gguf.py"
        )));
    }
    let version = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if !(2..=3).contains(&version) {
        return Err(EngineError::load_failed(format!(
            "model file {shown} has GGUF version {version}; this build reads versions 2 and 3"
        )));
    }
    check_hyperparameters(path)
}

/// llama.cpp's LLAMA_MAX_LAYERS.
const MAX_LAYERS: u64 = 512;

/// Reads the metadata (not the tensors) and checks the numbers llama.cpp's loader asserts
/// on or cannot represent: a layer count of 0 (`GGML_ASSERT`, which aborts the process) and a
/// trained context that does not fit an i32. Anything else is left to llama.cpp.
fn check_hyperparameters(path: &Path) -> EngineResult<()> {
    use llama_cpp_2::gguf::GgufContext;
    use llama_cpp_sys_2::{GGUF_TYPE_INT32, GGUF_TYPE_STRING, GGUF_TYPE_UINT32, GGUF_TYPE_UINT64};
    let shown = path.display();
    let Some(gguf) = GgufContext::from_file(path) else {
        return Err(EngineError::load_failed(format!(
            "model file {shown} has a GGUF header whose metadata cannot be read (corrupt or truncated file?)"
        )));
    };
    let arch_key = gguf.find_key("general.architecture");
    if arch_key < 0 || gguf.kv_type(arch_key) != GGUF_TYPE_STRING {
        return Err(EngineError::load_failed(format!(
            "model file {shown} does not name its architecture (general.architecture): not a llama.cpp model"
        )));
    }
    let arch = gguf.val_str(arch_key).unwrap_or_default().to_string();
    // Typed reads assert (abort) on a type mismatch, so each is read with its own getter;
    // other types are left to llama.cpp.
    let number = |key: &str| -> Option<i128> {
        let i = gguf.find_key(key);
        if i < 0 {
            return None;
        }
        match gguf.kv_type(i) {
            GGUF_TYPE_UINT32 => Some(i128::from(gguf.val_u32(i))),
            GGUF_TYPE_INT32 => Some(i128::from(gguf.val_i32(i))),
            GGUF_TYPE_UINT64 => Some(i128::from(gguf.val_u64(i))),
            _ => None,
        }
    };
    let checks = [
        (format!("{arch}.block_count"), 1, i128::from(MAX_LAYERS)),
        (format!("{arch}.context_length"), 1, i128::from(i32::MAX)),
    ];
    for (key, lo, hi) in checks {
        if let Some(v) = number(&key).filter(|v| !(lo..=hi).contains(v)) {
            return Err(EngineError::load_failed(format!(
                "model file {shown} says {key} = {v}, outside {lo}..={hi}: the file is corrupt or not a model llama.cpp can run"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("napi-llama-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn rejects_bad_files_with_reasons() {
        let missing = check_gguf_file(Path::new("/nonexistent/model.gguf")).unwrap_err();
        assert!(missing.message.contains("/nonexistent/model.gguf"));
        let text = check_gguf_file(&temp_file(
            "text.gguf",
            b"this is not a model, just some text here",
        ))
        .unwrap_err();
        assert!(text.message.contains("not a GGUF"));
        let empty = check_gguf_file(&temp_file("empty.gguf", b"")).unwrap_err();
        assert!(empty.message.contains("too short"));
        let dir = check_gguf_file(&std::env::temp_dir()).unwrap_err();
        assert!(dir.message.contains("directory"));
        let mut v9 = b"GGUF".to_vec();
        v9.extend_from_slice(&9u32.to_le_bytes());
        v9.extend_from_slice(&[0u8; 16]);
        assert!(check_gguf_file(&temp_file("v9.gguf", &v9))
            .unwrap_err()
            .message
            .contains("version 9"));
    }
}
