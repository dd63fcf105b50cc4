//! The host-memory tier: saved KV sequences, bounded by bytes, least recently used evicted.
//! Owned by the inference thread (no locking); evicted entries go to the disk tier, if any.

use llama_cpp_2::token::LlamaToken;

use super::{common_prefix, CachedPrompt};

struct Entry {
    prompt: CachedPrompt,
    last_used: u64,
}

pub struct MemoryCache {
    entries: Vec<Entry>,
    limit_bytes: u64,
    bytes: u64,
    clock: u64,
}

impl MemoryCache {
    pub fn new(limit_bytes: u64) -> Self {
        Self {
            entries: Vec::new(),
            limit_bytes,
            bytes: 0,
            clock: 0,
        }
    }

    pub fn enabled(&self) -> bool {
        self.limit_bytes > 0
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether `bytes` more fit without pushing any entry out.
    pub fn has_room(&self, bytes: u64) -> bool {
        self.bytes.saturating_add(bytes) <= self.limit_bytes
    }

    /// The entry sharing the longest prefix with `tokens` (the most recently used on a tie),
    /// and that prefix's length.
    pub fn best_match(&self, tokens: &[LlamaToken]) -> Option<(usize, usize)> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, common_prefix(&e.prompt.tokens, tokens), e.last_used))
            .filter(|&(_, shared, _)| shared > 0)
            .max_by_key(|&(_, shared, last_used)| (shared, last_used))
            .map(|(i, shared, _)| (i, shared))
    }

    /// True when some entry already holds `tokens` (as the whole or a prefix of its own).
    pub fn covers(&self, tokens: &[LlamaToken]) -> bool {
        self.entries
            .iter()
            .any(|e| e.prompt.tokens.starts_with(tokens))
    }

    pub fn remove(&mut self, index: usize) -> CachedPrompt {
        let entry = self.entries.swap_remove(index);
        self.bytes -= entry.prompt.bytes();
        entry.prompt
    }

    /// Keeps `prompt` as the most recently used entry, and returns the entries pushed out to
    /// stay within the bound (least recently used first). An entry whose tokens are a prefix of
    /// the new one is dropped (the new one serves every prompt it served); if an entry already
    /// holds the new one's tokens, that entry is refreshed instead.
    pub fn insert(&mut self, prompt: CachedPrompt) -> Vec<CachedPrompt> {
        // One state larger than the whole bound must not flush the others out.
        if prompt.bytes() > self.limit_bytes {
            return vec![prompt];
        }
        self.clock += 1;
        if let Some(holder) = self
            .entries
            .iter_mut()
            .find(|e| e.prompt.tokens.starts_with(&prompt.tokens))
        {
            holder.last_used = self.clock;
            return Vec::new();
        }
        let mut i = 0;
        while i < self.entries.len() {
            if prompt.tokens.starts_with(&self.entries[i].prompt.tokens) {
                self.remove(i);
            } else {
                i += 1;
            }
        }
        self.bytes += prompt.bytes();
        self.entries.push(Entry {
            prompt,
            last_used: self.clock,
        });
        let mut evicted = Vec::new();
        // The new entry fits alone, so the others go before it does.
        while self.bytes > self.limit_bytes {
            let Some(oldest) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i)
            else {
                break;
            };
            evicted.push(self.remove(oldest));
        }
        evicted
    }

    /// Every entry, least recently used first (for writing them all to disk at shutdown).
    pub fn drain(&mut self) -> Vec<CachedPrompt> {
        self.entries.sort_by_key(|e| e.last_used);
        self.bytes = 0;
        self.entries.drain(..).map(|e| e.prompt).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(tokens: std::ops::Range<i32>, state_len: usize) -> CachedPrompt {
        CachedPrompt {
            tokens: tokens.map(LlamaToken).collect(),
            state: vec![0; state_len],
        }
    }

    fn ask(tokens: std::ops::Range<i32>) -> Vec<LlamaToken> {
        tokens.map(LlamaToken).collect()
    }

    #[test]
    fn finds_the_longest_shared_prefix() {
        let mut cache = MemoryCache::new(1 << 20);
        cache.insert(prompt(0..10, 100));
        cache.insert(prompt(100..140, 100));
        assert_eq!(cache.best_match(&ask(100..120)).map(|(_, n)| n), Some(20));
        assert_eq!(cache.best_match(&ask(0..5)).map(|(_, n)| n), Some(5));
        assert!(cache.best_match(&ask(500..510)).is_none());
    }

    #[test]
    fn evicts_least_recently_used_to_stay_within_bytes() {
        let per = prompt(0..10, 1000).bytes();
        let mut cache = MemoryCache::new(per * 2);
        assert!(cache.insert(prompt(0..10, 1000)).is_empty());
        assert!(cache.insert(prompt(100..110, 1000)).is_empty());
        let evicted = cache.insert(prompt(200..210, 1000));
        assert_eq!(evicted.len(), 1);
        assert_eq!(evicted[0].tokens[0], LlamaToken(0));
        assert!(cache.covers(&ask(200..210)));
        assert!(cache.bytes() <= per * 2);
        // Larger than the whole bound: handed straight on, the others stay.
        let huge = cache.insert(prompt(300..310, 10_000));
        assert_eq!(huge[0].tokens[0], LlamaToken(300));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn prefixes_are_not_kept_twice() {
        let mut cache = MemoryCache::new(1 << 20);
        cache.insert(prompt(0..20, 100));
        cache.insert(prompt(0..30, 100));
        assert_eq!(cache.len(), 1, "the longer one replaces its prefix");
        assert!(cache.insert(prompt(0..25, 100)).is_empty(), "already held");
        assert_eq!(cache.len(), 1);
        assert!(cache.covers(&ask(0..30)) && !cache.covers(&ask(0..31)));
        let taken = cache.remove(0);
        assert_eq!(taken.tokens.len(), 30);
        assert!(cache.is_empty() && cache.bytes() == 0);
    }

    #[test]
    fn zero_bytes_keeps_nothing() {
        let mut cache = MemoryCache::new(0);
        let evicted = cache.insert(prompt(0..20, 100));
        assert!(!cache.enabled() && cache.is_empty() && evicted.len() == 1);
    }
}
