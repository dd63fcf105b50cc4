//! Tokenization whose cost stays linear in the number of control-token texts in the input.
//!
//! llama.cpp's tokenizer first cuts the text at every special-token text
//! (`tokenizer_st_partition`), and each cut walks its list of fragments from the start, so the
//! cost grows with the square of how many it finds. A chat of 20,000 short messages (40,000
//! `<|im_start|>`/`<|im_end|>`) took 25 s to tokenize here, 100,000 messages would take
//! minutes, and all the while the prompt thread, and every request queued behind it, waits.
//!
//! So text holding many special-token texts is cut, right after one of them, into pieces of
//! at most `SPECIALS_PER_PIECE`, and each piece is tokenized alone. That changes no token:
//! llama.cpp cuts the text at that point too, and its SPM and BPE tokenizers treat the text
//! after a special token the same whether or not it starts the input. Only cuts where that
//! provably holds are taken: after a special-token text that no other special-token text
//! overlaps (so llama.cpp, which takes longer ones first, makes it a token of its own), that
//! does not strip the whitespace to its right, and that neither begins nor ends with
//! whitespace (a neighbour's stripping could take it). Other vocabulary types go to llama.cpp
//! unchanged.
//!
//! The same fact lets a long prompt reuse the tokens of its beginning when an earlier prompt
//! began the same way (`tokenized_prefixes`): a conversation's next turn sends only its new
//! text through llama.cpp.

use aho_corasick::{AhoCorasick, MatchKind};
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token_type::LlamaTokenAttr;
use llama_cpp_2::vocab::LlamaVocab;

use super::tokenized_prefixes::TokenizedPrefixes;

/// Special-token texts per piece; llama.cpp's quadratic partition is cheap at this size.
pub(crate) const SPECIALS_PER_PIECE: usize = 256;

/// A prompt's beginning is kept for the next one only from this length on: a shorter one costs
/// llama.cpp less to tokenize again than the extra call that keeping it takes.
const MIN_KEPT_BYTES: usize = 1024;

/// The special-token texts llama.cpp cuts at: with `parse_special`, control, user-defined and
/// unknown tokens; without it, only user-defined ones.
struct Specials {
    /// Leftmost-longest matcher, for counting and for finding cut candidates.
    matcher: AhoCorasick,
    /// Every occurrence, overlapping, for checking that a cut's special-token text stands alone.
    overlapping: AhoCorasick,
    /// Per pattern: no cut after it. The token, or another with the same text (llama.cpp may
    /// apply either), strips whitespace to its right, so a cut after it would keep that
    /// whitespace; or its text begins or ends with whitespace, which a neighbouring token's
    /// stripping could take from it.
    no_cut_after: Vec<bool>,
    longest: usize,
}

impl Specials {
    fn build(texts: Vec<(Vec<u8>, bool)>) -> Option<Self> {
        if texts.is_empty() {
            return None;
        }
        let longest = texts.iter().map(|(t, _)| t.len()).max().unwrap_or(0);
        let patterns: Vec<&[u8]> = texts.iter().map(|(t, _)| t.as_slice()).collect();
        let mut rstrip_by_text: std::collections::HashMap<&[u8], bool> = Default::default();
        for (text, rstrip) in &texts {
            *rstrip_by_text.entry(text.as_slice()).or_default() |= *rstrip;
        }
        let edge_space = |t: &[u8]| {
            t.first().is_some_and(u8::is_ascii_whitespace)
                || t.last().is_some_and(u8::is_ascii_whitespace)
        };
        let no_cut_after = texts
            .iter()
            .map(|(t, _)| rstrip_by_text[t.as_slice()] || edge_space(t))
            .collect();
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .ok()?;
        let overlapping = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .ok()?;
        Some(Self {
            matcher,
            overlapping,
            no_cut_after,
            longest,
        })
    }

    /// True when no other special-token text overlaps the one at `start..end`: llama.cpp
    /// then cuts the text at both of its ends, whatever order it finds them in.
    fn stands_alone(&self, text: &[u8], start: usize, end: usize) -> bool {
        let from = start.saturating_sub(self.longest);
        let to = (end + self.longest).min(text.len());
        !self
            .overlapping
            .find_overlapping_iter(&text[from..to])
            .any(|m| {
                let (s, e) = (from + m.start(), from + m.end());
                (s, e) != (start, end) && s < end && e > start
            })
    }

    /// Where to cut `text`: after every `per_piece`-th special-token text, at the first cut
    /// from there on after one that stands alone and may be cut after (see the module's doc).
    /// Empty when the text needs no cutting.
    fn cuts(&self, text: &[u8], per_piece: usize) -> Vec<usize> {
        let mut cuts = Vec::new();
        let mut since_cut = 0;
        for m in self.matcher.find_iter(text) {
            since_cut += 1;
            if since_cut >= per_piece
                && m.end() < text.len()
                && !self.no_cut_after[m.pattern().as_usize()]
                && self.stands_alone(text, m.start(), m.end())
            {
                cuts.push(m.end());
                since_cut = 0;
            }
        }
        cuts
    }
}

/// Tokenizes like `vocab.tokenize`, in pieces when the text holds many special-token texts.
pub struct Tokenizer {
    /// For `parse_special` true and false; None where pieces are never needed or not safe.
    parsing: Option<Specials>,
    plain: Option<Specials>,
    /// Every text that only `parse_special` turns into a token (control and unknown tokens).
    control: Option<AhoCorasick>,
    per_piece: usize,
    /// The beginnings of recent prompts, tokenized.
    prefixes: TokenizedPrefixes,
}

impl Tokenizer {
    pub fn new(model: &LlamaModel) -> Self {
        Self::with_piece_size(model, SPECIALS_PER_PIECE)
    }

    fn with_piece_size(model: &LlamaModel, per_piece: usize) -> Self {
        let vocab = model.vocab();
        let none = Self {
            parsing: None,
            plain: None,
            control: None,
            per_piece,
            prefixes: TokenizedPrefixes::new(),
        };
        // Only SPM ('llama') and BPE ('gpt2') are known to carry no state across a special
        // token. Read from the GGUF: llama-cpp-2's `vocab_type()` panics on the other kinds
        // (WPM for BERT embedding models, UGM, …).
        let kind = model
            .meta_val_str("tokenizer.ggml.model")
            .unwrap_or_default();
        if !matches!(kind.as_str(), "llama" | "gpt2") {
            return none;
        }
        // `attr()` panics on attribute bits it does not know: then tokenize as llama.cpp does.
        let scanned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut parsing = Vec::new();
            let mut plain = Vec::new();
            let mut control = Vec::new();
            for token in vocab.tokens() {
                let attr = vocab.attr(token);
                let user_defined = attr.contains(LlamaTokenAttr::UserDefined);
                let special = user_defined
                    || attr.contains(LlamaTokenAttr::Control)
                    || attr.contains(LlamaTokenAttr::Unknown);
                let Some(text) = vocab.text(token).map(|t| t.to_bytes().to_vec()) else {
                    continue;
                };
                if !special || text.is_empty() {
                    continue;
                }
                let rstrip = attr.contains(LlamaTokenAttr::RStrip);
                if user_defined {
                    plain.push((text.clone(), rstrip));
                } else {
                    control.push(text.clone());
                }
                parsing.push((text, rstrip));
            }
            (parsing, plain, control)
        }));
        let Ok((parsing, plain, control)) = scanned else {
            return none;
        };
        Self {
            parsing: Specials::build(parsing),
            plain: Specials::build(plain),
            control: AhoCorasick::new(&control).ok(),
            per_piece,
            prefixes: TokenizedPrefixes::new(),
        }
    }

    /// Whether `parse_special` could change how `text` tokenizes: it holds the text of a
    /// control token somewhere. One linear scan, where comparing two tokenizations costs two
    /// trips through llama.cpp's tokenizer (which compiles its regexes on every call).
    pub fn has_control_text(&self, model: &LlamaModel, text: &str) -> bool {
        match &self.control {
            Some(control) => control.find_overlapping_iter(text).next().is_some(),
            None => {
                let vocab = model.vocab();
                vocab.tokenize(text.as_bytes(), false, true)
                    != vocab.tokenize(text.as_bytes(), false, false)
            }
        }
    }

    pub fn tokenize(
        &self,
        model: &LlamaModel,
        text: &[u8],
        add_special: bool,
        parse_special: bool,
    ) -> Vec<LlamaToken> {
        let vocab = model.vocab();
        let specials = if parse_special {
            self.parsing.as_ref()
        } else {
            self.plain.as_ref()
        };
        let Some(specials) = specials else {
            return vocab.tokenize(text, add_special, parse_special);
        };
        // Prompts (the texts tokenized with control tokens) may begin as a recent one did.
        let every_cut = if parse_special {
            specials.cuts(text, 1)
        } else {
            Vec::new()
        };
        let body = match every_cut.last() {
            Some(&last) if last >= MIN_KEPT_BYTES => {
                let hashes = self.prefixes.hashes(text, &every_cut);
                let found = self.prefixes.longest(text, &every_cut, &hashes);
                let from = found.as_ref().map_or(0, |f| f.end);
                let mut head = found.as_ref().map_or_else(Vec::new, |f| f.tokens.to_vec());
                if last > from {
                    head.extend(self.in_pieces(&vocab, specials, &text[from..last], parse_special));
                    let hash = hashes[hashes.len() - 1];
                    self.prefixes.keep(text, last, hash, &head, found.as_ref());
                }
                head.extend(self.in_pieces(&vocab, specials, &text[last..], parse_special));
                head
            }
            _ => {
                let cuts = specials.cuts(text, self.per_piece);
                if cuts.is_empty() {
                    return vocab.tokenize(text, add_special, parse_special);
                }
                pieces(&vocab, text, cuts, parse_special)
            }
        };
        // What `add_special` adds around the whole text (llama.cpp's SPM and BPE branches).
        let mut tokens = Vec::with_capacity(body.len() + 2);
        if add_special && vocab.should_add_bos() {
            tokens.push(vocab.bos());
        }
        tokens.extend(body);
        if add_special && vocab.should_add_eos() {
            tokens.push(vocab.eos());
        }
        tokens
    }

    /// `text`'s tokens without the ones `add_special` adds, cut after every `per_piece`-th
    /// special-token text.
    fn in_pieces(
        &self,
        vocab: &LlamaVocab,
        specials: &Specials,
        text: &[u8],
        parse_special: bool,
    ) -> Vec<LlamaToken> {
        pieces(
            vocab,
            text,
            specials.cuts(text, self.per_piece),
            parse_special,
        )
    }
}

/// `text`'s tokens without the ones `add_special` adds, tokenized piece by piece at `cuts`.
fn pieces(
    vocab: &LlamaVocab,
    text: &[u8],
    cuts: Vec<usize>,
    parse_special: bool,
) -> Vec<LlamaToken> {
    let mut tokens = Vec::new();
    let mut start = 0;
    for end in cuts.into_iter().chain(std::iter::once(text.len())) {
        tokens.extend(vocab.tokenize(&text[start..end], false, parse_special));
        start = end;
    }
    tokens
}

#[cfg(test)]
impl Tokenizer {
    /// Prompt beginnings kept.
    pub(crate) fn kept_prefixes(&self) -> usize {
        self.prefixes.stats().0
    }

    /// Where the longest kept beginning of `text` ends, if one is kept.
    pub(crate) fn kept_prefix_end(&self, text: &[u8]) -> Option<usize> {
        let cuts = self.parsing.as_ref()?.cuts(text, 1);
        let hashes = self.prefixes.hashes(text, &cuts);
        self.prefixes.longest(text, &cuts, &hashes).map(|f| f.end)
    }

    /// Where `text`'s last cut is: the end of the beginning its tokenization keeps.
    pub(crate) fn last_cut(&self, text: &[u8]) -> Option<usize> {
        self.parsing.as_ref()?.cuts(text, 1).last().copied()
    }

    /// How many pieces a text without a kept beginning is cut into (`SPECIALS_PER_PIECE`).
    pub(crate) fn pieces(&self, text: &[u8], parse_special: bool) -> usize {
        let specials = if parse_special {
            &self.parsing
        } else {
            &self.plain
        };
        1 + specials
            .as_ref()
            .map_or(0, |s| s.cuts(text, self.per_piece).len())
    }
}

#[cfg(test)]
pub(crate) fn with_piece_size(model: &LlamaModel, per_piece: usize) -> Tokenizer {
    Tokenizer::with_piece_size(model, per_piece)
}
