//! Stop strings over streamed text. Text that could be the beginning of a stop string is held
//! back until it is known not to be one, so a stop string never reaches the caller, even when
//! the model produces it across several tokens.

#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
}

/// What one push produced.
#[derive(Debug, PartialEq, Eq)]
pub struct StopOutcome {
    /// Text that is safe to emit now.
    pub text: String,
    /// A stop string was found: generation must end, and `text` is everything before it.
    pub stopped: bool,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> StopOutcome {
        if self.stops.is_empty() {
            return StopOutcome {
                text: text.to_string(),
                stopped: false,
            };
        }
        self.held.push_str(text);
        let first_stop = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(at) = first_stop {
            let text = self.held[..at].to_string();
            self.held.clear();
            return StopOutcome {
                text,
                stopped: true,
            };
        }
        let keep = self.longest_partial_stop_suffix();
        let emit_len = self.held.len() - keep;
        let text = self.held[..emit_len].to_string();
        self.held.drain(..emit_len);
        StopOutcome {
            text,
            stopped: false,
        }
    }

    /// Releases held text at the end of generation (no stop string completed).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Length of the longest suffix of `held` that is a proper prefix of some stop string.
    /// Such a suffix always starts on a char boundary, since stop strings are valid UTF-8.
    fn longest_partial_stop_suffix(&self) -> usize {
        let held = self.held.as_bytes();
        let mut best = 0;
        for stop in &self.stops {
            let stop = stop.as_bytes();
            let max = (stop.len() - 1).min(held.len());
            for len in (best + 1..=max).rev() {
                if held[held.len() - len..] == stop[..len] {
                    best = len;
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            let o = m.push(p);
            out.push_str(&o.text);
            if o.stopped {
                return (out, true);
            }
        }
        out.push_str(&m.finish());
        (out, false)
    }

    #[test]
    fn stop_split_across_pieces_never_leaks() {
        assert_eq!(
            run(&["<|end|>"], &["Hello <|", "en", "d|> tail"]),
            ("Hello ".into(), true)
        );
        assert_eq!(run(&["\n\n"], &["a\n", "\nb"]), ("a".into(), true));
    }

    #[test]
    fn partial_match_that_fails_is_released() {
        assert_eq!(run(&["STOP"], &["ST", "OP"]), ("".into(), true));
        assert_eq!(run(&["STOP"], &["ST", "ART"]), ("START".into(), false));
        assert_eq!(run(&["STOP"], &["xST"]), ("xST".into(), false));
    }

    #[test]
    fn persian_stop_string() {
        assert_eq!(
            run(&["پایان"], &["سلام پا", "یان بعد"]),
            ("سلام ".into(), true)
        );
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        assert_eq!(run(&["b", "a"], &["xxab"]), ("xx".into(), true));
    }

    #[test]
    fn holds_only_possible_prefixes() {
        let mut m = StopMatcher::new(vec!["abc".into()]);
        assert_eq!(m.push("zab").text, "z");
        assert_eq!(m.push("x").text, "abx");
    }
}
