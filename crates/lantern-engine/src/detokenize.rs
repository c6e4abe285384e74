//! Incremental UTF-8 decoding of token pieces: a character split across tokens is held until
//! its last byte arrives, so no broken character is ever emitted.

/// Turns a stream of byte pieces into text.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Appends `bytes` and moves every complete character into `out`. Invalid bytes become
    /// U+FFFD; an incomplete trailing character is kept for the next call.
    pub fn push(&mut self, bytes: &[u8], out: &mut String) {
        self.pending.extend_from_slice(bytes);
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(text) => {
                    out.push_str(text);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = start + e.valid_up_to();
                    // SAFETY-free: from_utf8 just validated this range.
                    out.push_str(std::str::from_utf8(&self.pending[start..valid]).unwrap_or(""));
                    match e.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            start = valid + bad;
                        }
                        None => {
                            start = valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
    }

    /// Ends the stream. A character whose remaining bytes were never generated (the request
    /// hit `max_tokens` mid-character) is dropped rather than sent broken.
    pub fn finish(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multibyte_character_split_across_pieces() {
        let bytes = "é漢🙂".as_bytes();
        let mut stream = Utf8Stream::default();
        let mut emitted = Vec::new();
        for b in bytes {
            let mut out = String::new();
            stream.push(std::slice::from_ref(b), &mut out);
            emitted.push(out);
        }
        // Each character appears whole, exactly when its last byte arrives.
        assert_eq!(emitted.concat(), "é漢🙂");
        assert!(emitted.iter().all(|s| s.chars().count() <= 1));
        assert_eq!(emitted.iter().filter(|s| !s.is_empty()).count(), 3);
    }

    #[test]
    fn invalid_bytes_become_replacement() {
        let mut stream = Utf8Stream::default();
        let mut out = String::new();
        stream.push(b"a\xffb", &mut out);
        assert_eq!(out, "a\u{fffd}b");
    }

    #[test]
    fn incomplete_character_dropped_at_finish() {
        let mut stream = Utf8Stream::default();
        let mut out = String::new();
        stream.push(&"漢".as_bytes()[..2], &mut out);
        stream.finish();
        stream.push("a".as_bytes(), &mut out);
        assert_eq!(out, "a");
    }
}
