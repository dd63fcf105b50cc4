//! The tokens of recent prompts' beginnings, so that the next turn of a conversation sends only
//! its new text through llama.cpp's tokenizer.
//!
//! A chat's prompt grows by a reply and a message per turn, and llama.cpp tokenizes the whole
//! text every time, on the request's way to its first token (a cost that grows with the
//! history; it is in docs/benchmarks.md). Text up to a cut right after a special-token text
//! that stands alone (see `tokenizer`) tokenizes the same alone as at the start of any longer
//! text, so the tokens of such a beginning, kept from one turn, stand for that part of the
//! next prompt.
//!
//! A prompt keeps its text up to its last cut, when that is long enough to be worth it
//! (`tokenizer`); a prompt that extends a kept one replaces it, so a conversation holds one
//! entry. Entries are found by a hash of the text up to each cut and confirmed byte for byte,
//! so a collision only costs a lookup. One entry may take a quarter of the byte budget; the
//! least recently used go first once the entries hold more than the whole.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};

use llama_cpp_2::token::LlamaToken;
use lru::LruCache;

/// Memory for kept beginnings per engine. Tokenizing is cheap next to a KV state of the same
/// text, so this stays small beside the prompt cache while holding the histories of many
/// conversations.
const BUDGET_BYTES: usize = 8 << 20;

/// What an entry costs beyond its text and tokens: the map's node, two allocations.
const ENTRY_OVERHEAD_BYTES: usize = 160;

struct Prefix {
    text: Box<[u8]>,
    /// Shared, so a lookup copies them outside the lock.
    tokens: Arc<[LlamaToken]>,
}

fn entry_bytes(text_len: usize, tokens: usize) -> usize {
    text_len + tokens * std::mem::size_of::<LlamaToken>() + ENTRY_OVERHEAD_BYTES
}

impl Prefix {
    fn bytes(&self) -> usize {
        entry_bytes(self.text.len(), self.tokens.len())
    }
}

struct Entries {
    by_hash: LruCache<u64, Prefix>,
    bytes: usize,
}

pub struct TokenizedPrefixes {
    entries: Mutex<Entries>,
    /// Keys chosen per engine: texts cannot be crafted to collide on purpose.
    hashing: RandomState,
    budget: usize,
}

/// A kept beginning of the text being tokenized.
pub struct Found {
    /// Where it ends in the text (one of the cuts).
    pub end: usize,
    pub tokens: Arc<[LlamaToken]>,
    hash: u64,
}

impl TokenizedPrefixes {
    pub fn new() -> Self {
        Self::with_budget(BUDGET_BYTES)
    }

    pub(crate) fn with_budget(budget: usize) -> Self {
        Self {
            entries: Mutex::new(Entries {
                by_hash: LruCache::unbounded(),
                bytes: 0,
            }),
            hashing: RandomState::new(),
            budget,
        }
    }

    /// The key of `text` up to each of `cuts` (ascending), in one pass. Every lookup and every
    /// entry gets its keys from here, so they agree however the hasher treats split input.
    pub fn hashes(&self, text: &[u8], cuts: &[usize]) -> Vec<u64> {
        let mut hasher = self.hashing.build_hasher();
        let mut from = 0;
        cuts.iter()
            .map(|&cut| {
                hasher.write(&text[from..cut]);
                from = cut;
                hasher.finish()
            })
            .collect()
    }

    /// The longest kept beginning of `text` that ends at one of `cuts` (ascending), whose keys
    /// are `hashes`.
    pub fn longest(&self, text: &[u8], cuts: &[usize], hashes: &[u64]) -> Option<Found> {
        let mut entries = self.lock();
        cuts.iter().zip(hashes).rev().find_map(|(&end, &hash)| {
            let prefix = entries.by_hash.get(&hash)?;
            (*prefix.text == text[..end]).then(|| Found {
                end,
                tokens: prefix.tokens.clone(),
                hash,
            })
        })
    }

    /// Keeps the tokens of `text[..end]` under `hash` (its key from `hashes`), in place of
    /// `extended` (the kept beginning they grew from, if any). One entry may take a quarter of
    /// the budget, so that one huge prompt does not push out every conversation.
    pub fn keep(
        &self,
        text: &[u8],
        end: usize,
        hash: u64,
        tokens: &[LlamaToken],
        extended: Option<&Found>,
    ) {
        let size = entry_bytes(end, tokens.len());
        if size > self.budget / 4 {
            return;
        }
        let prefix = Prefix {
            text: text[..end].into(),
            tokens: tokens.into(),
        };
        let mut entries = self.lock();
        if let Some(old) = extended.and_then(|f| entries.by_hash.pop(&f.hash)) {
            entries.bytes -= old.bytes();
        }
        if let Some(old) = entries.by_hash.put(hash, prefix) {
            entries.bytes -= old.bytes();
        }
        entries.bytes += size;
        while entries.bytes > self.budget {
            let Some((_, old)) = entries.by_hash.pop_lru() else {
                break;
            };
            entries.bytes -= old.bytes();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
impl TokenizedPrefixes {
    pub(crate) fn stats(&self) -> (usize, usize) {
        let entries = self.lock();
        (entries.by_hash.len(), entries.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(n: i32) -> Vec<LlamaToken> {
        (0..n).map(LlamaToken).collect()
    }

    fn keep(kept: &TokenizedPrefixes, text: &[u8], end: usize, n: i32, extended: Option<&Found>) {
        let hash = kept.hashes(text, &[end])[0];
        kept.keep(text, end, hash, &tokens(n), extended);
    }

    fn longest(kept: &TokenizedPrefixes, text: &[u8], cuts: &[usize]) -> Option<Found> {
        kept.longest(text, cuts, &kept.hashes(text, cuts))
    }

    #[test]
    fn finds_the_longest_kept_beginning_and_confirms_its_text() {
        let kept = TokenizedPrefixes::new();
        let text = b"<a>one<b>two<c>three";
        keep(&kept, text, 6, 2, None);
        keep(&kept, text, 12, 4, None);
        let found = longest(&kept, text, &[3, 6, 12, 15]).expect("a kept beginning");
        assert_eq!((found.end, found.tokens.len()), (12, 4));
        // Same cut positions, other text: nothing matches.
        assert!(longest(&kept, b"<a>uno<b>dos<c>tres", &[3, 6, 12, 15]).is_none());
    }

    #[test]
    fn an_extended_beginning_replaces_the_one_it_grew_from() {
        let kept = TokenizedPrefixes::new();
        let first = b"<a>one<b>";
        keep(&kept, first, first.len(), 3, None);
        let second = b"<a>one<b>two<c>";
        let found = longest(&kept, second, &[3, 9, 15]).expect("the first turn");
        assert_eq!(found.end, 9);
        keep(&kept, second, 15, 5, Some(&found));
        assert_eq!(kept.stats().0, 1);
        assert_eq!(longest(&kept, second, &[3, 9, 15]).map(|f| f.end), Some(15));
    }

    #[test]
    fn stays_within_its_budget_dropping_the_least_recently_used() {
        let budget = 4000;
        let kept = TokenizedPrefixes::with_budget(budget);
        let texts: Vec<Vec<u8>> = (0..50)
            .map(|i| format!("<s>{i:0>90}").into_bytes())
            .collect();
        for (i, text) in texts.iter().enumerate() {
            keep(&kept, text, text.len(), 10, None);
            // The first text stays in use, so it stays.
            assert!(
                longest(&kept, &texts[0], &[texts[0].len()]).is_some(),
                "after {i}"
            );
            assert!(kept.stats().1 <= budget);
        }
        assert!(longest(&kept, &texts[1], &[texts[1].len()]).is_none());
        // More than a quarter of the budget: not kept.
        let huge = vec![b'x'; budget / 4];
        keep(&kept, &huge, huge.len(), 1, None);
        assert!(longest(&kept, &huge, &[huge.len()]).is_none());
    }
}
