//! One cached prompt per file, little-endian:
//!
//! | field | size |
//! |---|---|
//! | magic `NLPROMPT` | 8 |
//! | format version | u32 |
//! | fingerprint length, fingerprint (UTF-8: llama.cpp build and model identity) | u32 + n |
//! | token count, tokens | u32 + 4 × n |
//! | state length, state (llama.cpp's sequence state) | u64 + n |
//! | CRC-32 of everything before it | u32 |
//!
//! The header (up to the state) is enough to index a file; a file is loaded only when its
//! length, fingerprint and checksum all agree, so llama.cpp never parses a truncated,
//! damaged or foreign state (its reader trusts its input).

use std::io::{self, Read, Write};

use llama_cpp_2::token::LlamaToken;

use super::CachedPrompt;

pub const EXTENSION: &str = "promptcache";
const MAGIC: &[u8; 8] = b"NLPROMPT";
const FORMAT_VERSION: u32 = 1;
/// Headers are small; a larger declared length means a damaged file.
const MAX_FINGERPRINT: u32 = 64 * 1024;

/// Why a file is not loaded.
#[derive(Debug)]
pub enum Rejected {
    NotACacheFile,
    OtherFormatVersion(u32),
    /// Written for another model or another llama.cpp build.
    OtherModel(String),
    /// Shorter or longer than its header says.
    WrongLength {
        expected: u64,
        actual: u64,
    },
    ChecksumMismatch,
    Io(io::Error),
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejected::NotACacheFile => write!(f, "not a napi-llama prompt-cache file"),
            Rejected::OtherFormatVersion(v) => write!(
                f,
                "written in format version {v}, this build reads {FORMAT_VERSION}"
            ),
            Rejected::OtherModel(fp) => {
                write!(f, "written for another model or llama.cpp build ({fp})")
            }
            Rejected::WrongLength { expected, actual } => {
                write!(
                    f,
                    "truncated or damaged: {actual} bytes where its header says {expected}"
                )
            }
            Rejected::ChecksumMismatch => write!(f, "damaged: its checksum does not match"),
            Rejected::Io(e) => write!(f, "unreadable: {e}"),
        }
    }
}

impl From<io::Error> for Rejected {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Rejected::NotACacheFile
        } else {
            Rejected::Io(e)
        }
    }
}

/// What a file's header says.
pub struct Header {
    pub tokens: Vec<LlamaToken>,
    /// The whole file's length according to the header.
    pub file_len: u64,
}

/// Writes `prompt` in the file format.
pub fn write(out: &mut impl Write, fingerprint: &str, prompt: &CachedPrompt) -> io::Result<()> {
    let mut crc = crc32fast::Hasher::new();
    let mut put = |bytes: &[u8]| -> io::Result<()> {
        crc.update(bytes);
        out.write_all(bytes)
    };
    put(MAGIC)?;
    put(&FORMAT_VERSION.to_le_bytes())?;
    put(&(fingerprint.len() as u32).to_le_bytes())?;
    put(fingerprint.as_bytes())?;
    put(&(prompt.tokens.len() as u32).to_le_bytes())?;
    let tokens: Vec<u8> = prompt
        .tokens
        .iter()
        .flat_map(|t| t.0.to_le_bytes())
        .collect();
    put(&tokens)?;
    put(&(prompt.state.len() as u64).to_le_bytes())?;
    put(&prompt.state)?;
    let sum = crc.finalize();
    out.write_all(&sum.to_le_bytes())
}

/// Reads and checks the header of a file of `actual_len` bytes.
pub fn read_header(
    input: &mut impl Read,
    fingerprint: &str,
    actual_len: u64,
) -> Result<Header, Rejected> {
    let (header, _) = read_header_counting(input, fingerprint, actual_len)?;
    Ok(header)
}

fn read_header_counting(
    input: &mut impl Read,
    fingerprint: &str,
    actual_len: u64,
) -> Result<(Header, u64), Rejected> {
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(Rejected::NotACacheFile);
    }
    let version = read_u32(input)?;
    if version != FORMAT_VERSION {
        return Err(Rejected::OtherFormatVersion(version));
    }
    let fp_len = read_u32(input)?;
    if fp_len > MAX_FINGERPRINT {
        return Err(Rejected::NotACacheFile);
    }
    let mut fp = vec![0u8; fp_len as usize];
    input.read_exact(&mut fp)?;
    let fp = String::from_utf8_lossy(&fp).into_owned();
    if fp != fingerprint {
        return Err(Rejected::OtherModel(fp));
    }
    let n_tokens = u64::from(read_u32(input)?);
    // Checked against the file's length before allocating what the header claims.
    let header_len = 8 + 4 + 4 + u64::from(fp_len) + 4 + 4 * n_tokens + 8;
    if header_len > actual_len {
        return Err(Rejected::WrongLength {
            expected: header_len,
            actual: actual_len,
        });
    }
    let mut raw = vec![0u8; 4 * n_tokens as usize];
    input.read_exact(&mut raw)?;
    let tokens = raw
        .chunks_exact(4)
        .map(|c| LlamaToken(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    let mut len = [0u8; 8];
    input.read_exact(&mut len)?;
    let state_len = u64::from_le_bytes(len);
    let file_len = header_len.saturating_add(state_len).saturating_add(4);
    if file_len != actual_len {
        return Err(Rejected::WrongLength {
            expected: file_len,
            actual: actual_len,
        });
    }
    Ok((Header { tokens, file_len }, header_len))
}

/// Parses and checks a whole file's bytes.
pub fn read(bytes: &[u8], fingerprint: &str) -> Result<CachedPrompt, Rejected> {
    let actual = bytes.len() as u64;
    let (header, header_len) = read_header_counting(&mut &bytes[..], fingerprint, actual)?;
    let body_end = bytes.len() - 4;
    let stored = u32::from_le_bytes([
        bytes[body_end],
        bytes[body_end + 1],
        bytes[body_end + 2],
        bytes[body_end + 3],
    ]);
    if crc32fast::hash(&bytes[..body_end]) != stored {
        return Err(Rejected::ChecksumMismatch);
    }
    Ok(CachedPrompt {
        tokens: header.tokens,
        state: bytes[header_len as usize..body_end].to_vec(),
    })
}

fn read_u32(input: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    input.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CachedPrompt {
        CachedPrompt {
            tokens: (0..40).map(LlamaToken).collect(),
            state: (0..1000u32).map(|i| (i % 251) as u8).collect(),
        }
    }

    fn encoded(fp: &str) -> Vec<u8> {
        let mut out = Vec::new();
        write(&mut out, fp, &sample()).unwrap();
        out
    }

    #[test]
    fn round_trips() {
        let bytes = encoded("model A");
        let back = read(&bytes, "model A").unwrap();
        assert_eq!(back.tokens, sample().tokens);
        assert_eq!(back.state, sample().state);
        let header = read_header(&mut &bytes[..], "model A", bytes.len() as u64).unwrap();
        assert_eq!(header.tokens.len(), 40);
        assert_eq!(header.file_len, bytes.len() as u64);
    }

    #[test]
    fn refuses_other_models_truncation_and_damage() {
        let bytes = encoded("model A");
        assert!(matches!(
            read(&bytes, "model B"),
            Err(Rejected::OtherModel(_))
        ));
        for cut in [0, 5, 20, 100, bytes.len() - 1] {
            assert!(read(&bytes[..cut], "model A").is_err(), "cut at {cut}");
        }
        let mut damaged = bytes.clone();
        damaged[300] ^= 1;
        assert!(matches!(
            read(&damaged, "model A"),
            Err(Rejected::ChecksumMismatch)
        ));
        assert!(matches!(
            read(b"hello world, not a cache", "model A"),
            Err(Rejected::NotACacheFile)
        ));
    }
}
