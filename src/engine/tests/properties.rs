//! Property tests (bounded fuzzing, part of `cargo test`) of the pure text pipeline: the UTF-8
//! stream decoder, the stop-string matcher and Jinja chat rendering. Each case splits its input
//! at arbitrary points, as token boundaries do.

use proptest::prelude::*;

use super::chat_template::{self, ChatMessage, Role};
use super::stop_matcher::StopMatcher;
use super::utf8_stream::Utf8Stream;

/// Sorted, distinct cut points in `0..=len`, each moved down until `ok` accepts it.
fn cut_points(len: usize, cuts: &[usize], ok: impl Fn(usize) -> bool) -> Vec<usize> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| {
            let mut c = c % (len + 1);
            while !ok(c) {
                c -= 1;
            }
            c
        })
        .collect();
    points.sort_unstable();
    points.dedup();
    points.push(len);
    points
}

/// Splits `bytes` at arbitrary byte positions, as byte-level tokens do.
fn split_at(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut from = 0;
    cut_points(bytes.len(), cuts, |_| true)
        .into_iter()
        .map(|to| {
            let piece = bytes[from..to].to_vec();
            from = to;
            piece
        })
        .collect()
}

/// Splits `text` on char boundaries near the given cut points.
fn split_text(text: &str, cuts: &[usize]) -> Vec<String> {
    let mut from = 0;
    cut_points(text.len(), cuts, |c| text.is_char_boundary(c))
        .into_iter()
        .map(|to| {
            let piece = text[from..to].to_string();
            from = to;
            piece
        })
        .collect()
}

const REPLACEMENT: char = '\u{FFFD}';

/// 2,048 cases per property (under a second); `PROPTEST_CASES` runs longer fuzzing sessions.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn utf8_stream_rebuilds_any_valid_text(text in "\\PC{0,64}", cuts in prop::collection::vec(0usize..512, 0..12)) {
        let mut s = Utf8Stream::new();
        let mut out = String::new();
        for piece in split_at(text.as_bytes(), &cuts) {
            out.push_str(&s.push(&piece));
        }
        out.push_str(&s.finish());
        prop_assert_eq!(out, text);
        prop_assert_eq!(s.dropped(), 0);
    }

    #[test]
    fn utf8_stream_never_emits_replacement_characters(bytes in prop::collection::vec(any::<u8>(), 0..96), cuts in prop::collection::vec(0usize..512, 0..12)) {
        let mut s = Utf8Stream::new();
        let mut out = String::new();
        for piece in split_at(&bytes, &cuts) {
            out.push_str(&s.push(&piece));
        }
        out.push_str(&s.finish());
        // Every input byte is either emitted inside a whole character or counted as dropped,
        // and no replacement character appears unless the input itself encoded one.
        let input_has_replacement = bytes.windows(3).any(|w| w == [0xEF, 0xBF, 0xBD]);
        let has_replacement = out.contains(REPLACEMENT);
        prop_assert!(input_has_replacement || !has_replacement);
        prop_assert_eq!(out.len() + s.dropped(), bytes.len());
    }

    #[test]
    fn stop_strings_never_leak_and_cut_right_before_one(
        text in "[ab ا€]{0,40}",
        stops in prop::collection::vec("[ab ا€]{1,4}", 0..4),
        cuts in prop::collection::vec(0usize..256, 0..10),
    ) {
        let mut m = StopMatcher::new(stops.clone());
        let mut out = String::new();
        let mut stopped = false;
        for piece in split_text(&text, &cuts) {
            let o = m.push(&piece);
            out.push_str(&o.text);
            if o.stopped {
                stopped = true;
                break;
            }
        }
        if !stopped {
            out.push_str(&m.finish());
        }
        // Streamed, the cut comes at the first stop string completed so far (which one can
        // depend on where the text was split): the output is the text right up to a stop
        // string, and contains none.
        let any_stop = stops.iter().any(|s| text.contains(s.as_str()));
        prop_assert_eq!(stopped, any_stop);
        prop_assert!(text.starts_with(out.as_str()));
        if stopped {
            let rest = &text[out.len()..];
            prop_assert!(stops.iter().any(|s| rest.starts_with(s.as_str())));
        } else {
            prop_assert_eq!(&out, &text);
        }
        for s in &stops {
            prop_assert!(!out.contains(s.as_str()));
        }
    }

    #[test]
    fn chatml_renders_any_content_verbatim(contents in prop::collection::vec("\\PC{0,40}", 1..5)) {
        let template = chat_template::tests_support::chatml();
        let messages: Vec<ChatMessage> = contents
            .iter()
            .enumerate()
            .map(|(i, c)| {
                ChatMessage::text(if i % 2 == 0 { Role::User } else { Role::Assistant }, c.clone())
            })
            .collect();
        let rendered = chat_template::tests_support::render_jinja(&template, &messages).unwrap();
        for c in &contents {
            prop_assert!(rendered.contains(c.as_str()));
        }
        prop_assert!(rendered.ends_with("<|im_start|>assistant\n"));
    }
}
