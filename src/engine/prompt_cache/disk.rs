//! The disk tier: states that fall out of memory, one file each in `promptCacheDir`, bounded by
//! `promptCacheDiskBytes` (least recently used deleted first). They survive a restart: the
//! folder is indexed when an engine loads, by reading each file's header.
//!
//! Files are written by a thread of their own, so the inference thread only hands a state
//! over (it never waits on the disk; when the writer is behind, the state is dropped). The
//! prompt thread, preparing a request, moves the best matching state back to memory.

use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use llama_cpp_2::token::LlamaToken;
use tracing::{debug, warn};

use super::file_format::{self, Rejected, EXTENSION};
use super::{common_prefix, CachedPrompt};

/// States the writer may have waiting; more are dropped rather than held in memory.
const WRITE_BACKLOG: usize = 4;

struct DiskEntry {
    path: PathBuf,
    tokens: Vec<LlamaToken>,
    bytes: u64,
    last_used: u64,
}

#[derive(Default)]
struct Index {
    entries: Vec<DiskEntry>,
    bytes: u64,
    clock: u64,
}

/// Counters the engine's metrics read.
#[derive(Default)]
pub struct DiskCounters {
    pub entries: AtomicU64,
    pub bytes: AtomicU64,
    pub writes: AtomicU64,
    pub loads: AtomicU64,
    pub evictions: AtomicU64,
    /// Files not loaded: another model or build, truncated, damaged, unreadable.
    pub rejected: AtomicU64,
    /// States dropped because the writer was behind or the disk refused them.
    pub dropped: AtomicU64,
}

pub struct DiskCache {
    dir: PathBuf,
    fingerprint: String,
    limit_bytes: u64,
    index: Mutex<Index>,
    pub counters: DiskCounters,
}

impl DiskCache {
    /// Opens (creating it if needed) and indexes `dir`. Files written for another model or
    /// llama.cpp build, and damaged ones, are skipped with a warning and left alone.
    pub fn open(dir: &Path, limit_bytes: u64, fingerprint: String) -> std::io::Result<Arc<Self>> {
        fs::create_dir_all(dir)?;
        let cache = Arc::new(Self {
            dir: dir.to_path_buf(),
            fingerprint,
            limit_bytes,
            index: Mutex::new(Index::default()),
            counters: DiskCounters::default(),
        });
        let mut found = Vec::new();
        for entry in fs::read_dir(dir)?.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
                continue;
            }
            match cache.read_header(&path) {
                Ok((tokens, bytes)) => {
                    let modified = entry.metadata().and_then(|m| m.modified()).ok();
                    found.push((
                        modified,
                        DiskEntry {
                            path,
                            tokens,
                            bytes,
                            last_used: 0,
                        },
                    ));
                }
                Err(why) => {
                    add(&cache.counters.rejected, 1);
                    warn!(file = %path.display(), reason = %why, "prompt cache: file skipped");
                }
            }
        }
        // Oldest first, so the least recently written are the first evicted.
        found.sort_by_key(|(modified, _)| *modified);
        {
            let mut index = cache.lock();
            for (_, mut entry) in found {
                index.clock += 1;
                entry.last_used = index.clock;
                index.bytes += entry.bytes;
                index.entries.push(entry);
            }
            cache.evict_over_limit(&mut index);
            cache.publish(&index);
        }
        Ok(cache)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read_header(&self, path: &Path) -> Result<(Vec<LlamaToken>, u64), Rejected> {
        let len = fs::metadata(path)?.len();
        let mut file = std::io::BufReader::new(fs::File::open(path)?);
        let header = file_format::read_header(&mut file, &self.fingerprint, len)?;
        Ok((header.tokens, header.file_len))
    }

    fn publish(&self, index: &Index) {
        self.counters
            .entries
            .store(index.entries.len() as u64, Ordering::Relaxed);
        self.counters.bytes.store(index.bytes, Ordering::Relaxed);
    }

    /// Moves the state sharing the longest prefix (at least `min_shared` tokens) with `tokens`
    /// out of the disk tier: the file is read, checked and deleted. None when no file matches
    /// or the best one does not check out (it is then deleted too).
    pub fn take_best(&self, tokens: &[LlamaToken], min_shared: usize) -> Option<CachedPrompt> {
        let entry = {
            let mut index = self.lock();
            let (i, _) = index
                .entries
                .iter()
                .enumerate()
                .map(|(i, e)| (i, common_prefix(&e.tokens, tokens)))
                .filter(|&(_, shared)| shared >= min_shared)
                .max_by_key(|&(_, shared)| shared)?;
            let entry = index.entries.swap_remove(i);
            index.bytes -= entry.bytes;
            self.publish(&index);
            entry
        };
        let loaded = fs::read(&entry.path)
            .map_err(Rejected::from)
            .and_then(|bytes| file_format::read(&bytes, &self.fingerprint));
        let _ = fs::remove_file(&entry.path);
        match loaded {
            Ok(prompt) => {
                add(&self.counters.loads, 1);
                debug!(
                    tokens = prompt.tokens.len(),
                    "prompt cache: state moved from disk to memory"
                );
                Some(prompt)
            }
            Err(why) => {
                add(&self.counters.rejected, 1);
                warn!(file = %entry.path.display(), reason = %why, "prompt cache: file not loaded");
                None
            }
        }
    }

    /// Writes one state (on the writer thread). A state already on disk as a prefix of another
    /// is not written; states it extends are deleted.
    fn write(&self, prompt: &CachedPrompt) {
        {
            let mut index = self.lock();
            if let Some(holder) = index
                .entries
                .iter()
                .position(|e| e.tokens.starts_with(&prompt.tokens))
            {
                index.clock += 1;
                let clock = index.clock;
                index.entries[holder].last_used = clock;
                return;
            }
            let superseded: Vec<usize> = (0..index.entries.len())
                .filter(|&i| prompt.tokens.starts_with(&index.entries[i].tokens))
                .collect();
            for i in superseded.into_iter().rev() {
                let old = index.entries.swap_remove(i);
                index.bytes -= old.bytes;
                let _ = fs::remove_file(&old.path);
            }
            self.publish(&index);
        }
        let path = self
            .dir
            .join(format!("{:016x}.{EXTENSION}", token_hash(&prompt.tokens)));
        let partial = path.with_extension(format!("{EXTENSION}.partial"));
        let written = fs::File::create(&partial).and_then(|file| {
            let mut out = BufWriter::new(file);
            file_format::write(&mut out, &self.fingerprint, prompt)?;
            out.into_inner().map_err(|e| e.into_error())?.sync_data()
        });
        // Renamed only when complete, so a crash mid-write leaves no file that looks whole.
        if let Err(e) = written.and_then(|()| fs::rename(&partial, &path)) {
            let _ = fs::remove_file(&partial);
            add(&self.counters.dropped, 1);
            warn!(dir = %self.dir.display(), error = %e, "prompt cache: cannot write a state to disk");
            return;
        }
        let bytes = fs::metadata(&path)
            .map(|m| m.len())
            .unwrap_or(prompt.bytes());
        add(&self.counters.writes, 1);
        let mut index = self.lock();
        index.clock += 1;
        let last_used = index.clock;
        // The same tokens written again replace their old file's entry.
        if let Some(same) = index.entries.iter().position(|e| e.path == path) {
            let old = index.entries.swap_remove(same);
            index.bytes -= old.bytes;
        }
        index.bytes += bytes;
        index.entries.push(DiskEntry {
            path,
            tokens: prompt.tokens.clone(),
            bytes,
            last_used,
        });
        self.evict_over_limit(&mut index);
        self.publish(&index);
    }

    fn evict_over_limit(&self, index: &mut Index) {
        while index.bytes > self.limit_bytes {
            let Some(oldest) = index
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i)
            else {
                break;
            };
            let old = index.entries.swap_remove(oldest);
            index.bytes -= old.bytes;
            let _ = fs::remove_file(&old.path);
            add(&self.counters.evictions, 1);
        }
    }

    /// The paths indexed now.
    #[cfg(test)]
    pub fn files(&self) -> std::collections::HashSet<PathBuf> {
        self.lock().entries.iter().map(|e| e.path.clone()).collect()
    }
}

/// The writer thread and the channel to it.
pub struct DiskWriter {
    sender: Option<SyncSender<CachedPrompt>>,
    thread: Option<JoinHandle<()>>,
    cache: Arc<DiskCache>,
}

impl DiskWriter {
    pub fn start(cache: Arc<DiskCache>) -> std::io::Result<Self> {
        let (sender, states) = mpsc::sync_channel(WRITE_BACKLOG);
        let for_thread = cache.clone();
        let thread = std::thread::Builder::new()
            .name("napi-llama-cache-writer".into())
            .spawn(move || write_all(&for_thread, states))?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
            cache,
        })
    }

    /// Hands a state to the writer without waiting; dropped when the writer is behind.
    pub fn offer(&self, prompt: CachedPrompt) {
        if let Some(sender) = &self.sender {
            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                sender.try_send(prompt)
            {
                add(&self.cache.counters.dropped, 1);
            }
        }
    }

    /// Hands a state to the writer, waiting for room (at shutdown, when nothing else waits).
    pub fn write_waiting(&self, prompt: CachedPrompt) {
        if let Some(sender) = &self.sender {
            let _ = sender.send(prompt);
        }
    }

    /// Writes what is pending and stops the thread.
    pub fn finish(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for DiskWriter {
    fn drop(&mut self) {
        self.finish();
    }
}

fn write_all(cache: &DiskCache, states: Receiver<CachedPrompt>) {
    for prompt in states {
        cache.write(&prompt);
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// FNV-1a over the tokens: a stable file name, so the same tokens map to the same file.
fn token_hash(tokens: &[LlamaToken]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in tokens.iter().flat_map(|t| t.0.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(tokens: std::ops::Range<i32>, state_len: usize) -> CachedPrompt {
        CachedPrompt {
            tokens: tokens.map(LlamaToken).collect(),
            state: vec![7; state_len],
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("napi-llama-disk-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn writes_survive_a_reopen_and_move_back_to_memory() {
        let dir = temp_dir("reopen");
        {
            let cache = DiskCache::open(&dir, 1 << 20, "fp".into()).unwrap();
            let mut writer = DiskWriter::start(cache.clone()).unwrap();
            writer.write_waiting(prompt(0..50, 100));
            writer.finish();
            assert_eq!(cache.files().len(), 1);
        }
        let cache = DiskCache::open(&dir, 1 << 20, "fp".into()).unwrap();
        let ask: Vec<LlamaToken> = (0..60).map(LlamaToken).collect();
        assert!(
            cache.take_best(&ask, 60).is_none(),
            "50 shared tokens < 60 asked"
        );
        let back = cache.take_best(&ask, 16).unwrap();
        assert_eq!(back.tokens.len(), 50);
        assert!(
            cache.files().is_empty(),
            "taken means moved out of the disk tier"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn another_models_files_are_skipped_and_kept() {
        let dir = temp_dir("other");
        {
            let cache = DiskCache::open(&dir, 1 << 20, "model A".into()).unwrap();
            let mut writer = DiskWriter::start(cache).unwrap();
            writer.write_waiting(prompt(0..50, 100));
            writer.finish();
        }
        fs::write(dir.join(format!("broken.{EXTENSION}")), b"NLPROMPT\x01\x00").unwrap();
        let cache = DiskCache::open(&dir, 1 << 20, "model B".into()).unwrap();
        assert!(cache.files().is_empty());
        assert_eq!(cache.counters.rejected.load(Ordering::Relaxed), 2);
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 2, "left alone");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn bounded_by_bytes_and_prefixes_are_not_kept_twice() {
        let dir = temp_dir("bound");
        let cache = DiskCache::open(&dir, 2500, "fp".into()).unwrap();
        let mut writer = DiskWriter::start(cache.clone()).unwrap();
        writer.write_waiting(prompt(0..20, 1000));
        writer.write_waiting(prompt(0..30, 1000)); // extends the first: replaces it
        writer.write_waiting(prompt(100..120, 1000));
        writer.write_waiting(prompt(200..220, 1000)); // over the bound: the oldest goes
        writer.finish();
        let left = cache.lock();
        let firsts: Vec<i32> = left.entries.iter().map(|e| e.tokens[0].0).collect();
        assert_eq!(left.entries.len(), 2, "{firsts:?}");
        assert!(firsts.contains(&100) && firsts.contains(&200));
        assert_eq!(cache.counters.evictions.load(Ordering::Relaxed), 1);
        drop(left);
        let _ = fs::remove_dir_all(&dir);
    }
}
