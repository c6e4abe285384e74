//! Finds where a JSON value ends in text that arrives in pieces, so call arguments can be
//! streamed as they are generated and the text after them recognised.

/// Scans one JSON value, byte by byte, across pushes.
#[derive(Debug, Default, Clone)]
pub(crate) struct ValueScanner {
    started: bool,
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// A bare scalar (number, true, false, null) at the top level.
    scalar: bool,
    done: bool,
}

impl ValueScanner {
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds `text`; returns the byte offset just past the value's end when it ends in `text`.
    pub fn feed(&mut self, text: &str) -> Option<usize> {
        if self.done {
            return Some(0);
        }
        for (i, b) in text.bytes().enumerate() {
            if !self.started {
                if b.is_ascii_whitespace() {
                    continue;
                }
                self.started = true;
                match b {
                    b'{' | b'[' => self.depth = 1,
                    b'"' => self.in_string = true,
                    _ => self.scalar = true,
                }
                continue;
            }
            if self.scalar {
                if matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace() {
                    self.done = true;
                    return Some(i);
                }
                continue;
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                    if self.depth == 0 {
                        self.done = true;
                        return Some(i + 1);
                    }
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        self.done = true;
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// Skips JSON whitespace.
pub(crate) fn skip_ws(s: &str) -> &str {
    s.trim_start_matches([' ', '\t', '\n', '\r'])
}

/// Reads a complete JSON string literal at the start of `s`: its value and the rest.
pub(crate) fn read_string(s: &str) -> Option<(String, &str)> {
    if !s.starts_with('"') {
        return None;
    }
    let mut scanner = ValueScanner::default();
    let end = scanner.feed(s)?;
    let value: String = serde_json::from_str(&s[..end]).ok()?;
    Some((value, &s[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_end_across_pieces_ignores_braces_in_strings() {
        let mut s = ValueScanner::default();
        assert_eq!(s.feed(r#" {"a": "}{\"", "#), None);
        assert_eq!(s.feed(r#""b": [1, {"c": 2}]"#), None);
        assert_eq!(s.feed("}</tool_call>"), Some(1));
    }

    #[test]
    fn scalars_and_strings() {
        assert_eq!(ValueScanner::default().feed("42}"), Some(2));
        assert_eq!(ValueScanner::default().feed(r#""x\"y" rest"#), Some(6));
    }

    #[test]
    fn read_string_literal() {
        assert_eq!(
            read_string(r#""get_weather", "arguments""#),
            Some(("get_weather".to_string(), r#", "arguments""#))
        );
        assert_eq!(read_string(r#""unterminated"#), None);
    }
}
