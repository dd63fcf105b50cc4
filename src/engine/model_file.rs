//! Checks a model file before llama.cpp sees it: llama.cpp asserts (debug) or prints and
//! returns null on bad files, and we want a message that names the path and the reason.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::error::{EngineError, EngineResult};

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
