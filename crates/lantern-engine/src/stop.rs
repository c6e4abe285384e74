//! Stop strings matched on decoded text across token boundaries. Text that could be the start
//! of a stop string is held back until it is resolved, so matched text is never sent.

/// Watches generated text for any of a request's stop strings.
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        StopMatcher {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
        }
    }

    /// Feeds new text; appends what is safe to send to `out`. Returns the index (among the
    /// non-empty stop strings, in order) of the stop string that matched, in which case `out`
    /// got the text before it and the rest is discarded.
    pub fn push(&mut self, text: &str, out: &mut String) -> Option<u32> {
        if self.stops.is_empty() {
            out.push_str(text);
            return None;
        }
        self.held.push_str(text);
        let matched = self
            .stops
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.held.find(s).map(|at| (at, i)))
            .min();
        if let Some((at, i)) = matched {
            out.push_str(&self.held[..at]);
            self.held.clear();
            return Some(i as u32);
        }
        let keep = self.partial_match_len();
        let emit = self.held.len() - keep;
        out.push_str(&self.held[..emit]);
        self.held.drain(..emit);
        None
    }

    /// Releases held-back text at the end of generation (no stop string completed).
    pub fn finish(&mut self, out: &mut String) {
        out.push_str(&self.held);
        self.held.clear();
    }

    /// Length of the longest suffix of the held text that is a proper prefix of a stop string.
    fn partial_match_len(&self) -> usize {
        self.stops
            .iter()
            .filter_map(|stop| {
                (1..stop.len())
                    .rev()
                    .filter(|&k| stop.is_char_boundary(k))
                    .find(|&k| self.held.ends_with(&stop[..k]))
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let (out, matched) = run_which(stops, pieces);
        (out, matched.is_some())
    }

    fn run_which(stops: &[&str], pieces: &[&str]) -> (String, Option<u32>) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            if let Some(i) = m.push(p, &mut out) {
                return (out, Some(i));
            }
        }
        m.finish(&mut out);
        (out, None)
    }

    #[test]
    fn match_across_pieces_is_removed() {
        assert_eq!(
            run(&["END"], &["Hello E", "N", "D tail"]),
            ("Hello ".into(), true)
        );
    }

    #[test]
    fn partial_prefix_released_when_it_diverges() {
        assert_eq!(run(&["END"], &["a E", "N", "x"]), ("a ENx".into(), false));
    }

    #[test]
    fn held_text_is_not_sent_early() {
        let mut m = StopMatcher::new(vec!["\n\n".into()]);
        let mut out = String::new();
        assert_eq!(m.push("line\n", &mut out), None);
        assert_eq!(out, "line");
        assert_eq!(m.push("\nmore", &mut out), Some(0));
        assert_eq!(out, "line");
    }

    #[test]
    fn earliest_of_several_stops_wins_and_is_named() {
        assert_eq!(run_which(&["b", "a"], &["xxab"]), ("xx".into(), Some(1)));
        assert_eq!(run_which(&["b", "a"], &["xxba"]), ("xx".into(), Some(0)));
    }

    #[test]
    fn multibyte_stop() {
        assert_eq!(run(&["漢字"], &["ok 漢", "字!"]), ("ok ".into(), true));
    }
}
