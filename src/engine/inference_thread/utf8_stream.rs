//! Incremental UTF-8 decoding of token pieces. Byte-level BPE vocabularies split multi-byte
//! characters (Persian letters, emoji) across tokens; this holds back an incomplete trailing
//! sequence until the bytes that complete it arrive, so every emitted string is whole.

#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
    /// Invalid bytes dropped so far.
    dropped: usize,
}

impl Utf8Stream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes and returns the text that is now complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // Safe: from_utf8 just validated this prefix.
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        // An incomplete sequence at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        // Bytes that can never become valid (the model produced broken
                        // UTF-8): drop them, so that callers only ever see whole characters.
                        Some(bad) => {
                            self.dropped += bad;
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream. An incomplete tail (generation stopped inside a character) is dropped.
    pub fn finish(&mut self) -> String {
        self.dropped += self.pending.len();
        self.pending.clear();
        String::new()
    }

    /// Bytes dropped because they never formed a valid character.
    pub fn dropped(&self) -> usize {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_split_persian_letters() {
        let text = "سلام، چطوری؟ 👋";
        let bytes = text.as_bytes();
        for split in 1..bytes.len() {
            let mut s = Utf8Stream::new();
            let mut out = s.push(&bytes[..split]);
            out.push_str(&s.push(&bytes[split..]));
            out.push_str(&s.finish());
            assert_eq!(out, text);
        }
        let mut s = Utf8Stream::new();
        let mut out = String::new();
        for b in bytes {
            let piece = s.push(std::slice::from_ref(b));
            assert!(!piece.contains('\u{FFFD}'));
            out.push_str(&piece);
        }
        assert_eq!(out, text);
        assert_eq!(s.finish(), "");
        assert_eq!(s.dropped(), 0);
    }

    #[test]
    fn drops_invalid_bytes() {
        let mut s = Utf8Stream::new();
        assert_eq!(s.push(&[b'a', 0xFF, b'b']), "ab");
        assert_eq!(s.push(&[0xD8]), "");
        assert_eq!(s.finish(), "");
        assert_eq!(s.dropped(), 2);
    }
}
