//! Health and counters shared between the inference thread (writer) and callers (readers).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::error::ErrorCode;
use super::prompt_cache::disk::{DiskCache, DiskCounters};

/// TTFT percentiles are computed over this many most recent requests.
const TTFT_WINDOW: usize = 1024;

/// What `health()` reports about an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    not(test),
    napi_derive::napi(string_enum = "lowercase", js_name = "HealthStatus")
)]
pub enum EngineStatus {
    /// The model is loading.
    Loading,
    /// Serving requests.
    Ok,
    /// Never loaded, or shut down.
    Unloaded,
    /// The load failed, or the engine hit an unrecoverable error (`lastError` says which).
    Error,
}

impl EngineStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineStatus::Loading => "loading",
            EngineStatus::Ok => "ok",
            EngineStatus::Unloaded => "unloaded",
            EngineStatus::Error => "error",
        }
    }
}

/// An engine's state, cheap to read (for health checks).
#[derive(Debug, Clone)]
#[cfg_attr(not(test), napi_derive::napi(object))]
pub struct Health {
    pub status: EngineStatus,
    /// The loaded model's `general.name` (else its file name); null when none is loaded.
    pub model_name: Option<String>,
    /// Tokens of context each slot has.
    pub context_size: u32,
    pub uptime_ms: f64,
    /// The last load failure or internal error, if any.
    pub last_error: Option<String>,
    /// The devices holding the loaded model (see `ModelInfo.devices`); absent before a load
    /// and on engines that do not run the model here.
    pub devices: Option<Vec<String>>,
    /// Slots serving a request now.
    pub slots_busy: u32,
    pub slots_total: u32,
    /// Requests waiting for a slot, including those still being tokenized.
    pub queue_depth: u32,
}

/// Counters and rates since the engine loaded; JSON-friendly numbers.
#[derive(Debug, Clone, Default)]
#[cfg_attr(not(test), napi_derive::napi(object))]
pub struct Metrics {
    /// Requests submitted (refused ones included).
    pub requests_total: f64,
    pub requests_completed: f64,
    pub requests_failed: f64,
    pub requests_aborted: f64,
    pub requests_timed_out: f64,
    pub requests_active: f64,
    pub requests_queued: f64,
    pub prompt_tokens_total: f64,
    pub completion_tokens_total: f64,
    /// Prompt tokens reused from slot caches.
    pub cached_tokens_total: f64,
    /// Requests that reused at least one cached prompt token.
    pub cache_hits: f64,
    /// Prompt tokens actually evaluated (prompt tokens minus cached ones).
    pub prompt_tokens_evaluated: f64,
    /// `decode` calls; each carries the tokens of every active request.
    pub decode_calls: f64,
    pub prompt_ms_total: f64,
    pub generate_ms_total: f64,
    pub last_ttft_ms: f64,
    pub last_tokens_per_second: f64,
    /// Aggregate prompt evaluation speed over all decode steps (each step's time is split
    /// between its prompt and generation tokens in proportion to their count).
    pub prompt_tokens_per_second: f64,
    /// Aggregate generation speed over all slots, measured the same way.
    pub decode_tokens_per_second: f64,
    /// Time to first token over the most recent completed requests (0 before any).
    pub ttft_p50_ms: f64,
    pub ttft_p95_ms: f64,
    pub ttft_p99_ms: f64,
    pub slots_busy: u32,
    pub slots_total: u32,
    /// Requests waiting for a slot, including those still being tokenized.
    pub queue_depth: u32,
    pub uptime_ms: f64,
    /// Saved prompt states kept in host memory.
    pub prompt_cache_entries: f64,
    /// Bytes they take, at most `promptCacheLimitBytes`.
    pub prompt_cache_bytes: f64,
    /// The memory bound (`promptCacheBytes`, or the default decided at load).
    pub prompt_cache_limit_bytes: f64,
    /// Slot sequences saved before another conversation took the slot.
    pub prompt_cache_saves: f64,
    /// Requests whose prompt started with a saved state, restored into their slot.
    pub prompt_cache_hits: f64,
    /// Prompt tokens those requests reused from the restored states (also counted in
    /// `cachedTokensTotal`).
    pub prompt_cache_restored_tokens: f64,
    pub prompt_cache_restore_ms_total: f64,
    /// States pushed out of memory by its bound (to the disk tier, if there is one).
    pub prompt_cache_evictions: f64,
    /// Saved states llama.cpp refused to restore; their prompts were evaluated in full.
    pub prompt_cache_restore_failures: f64,
    /// Cached prefixes that could not be cut back to the part a prompt shares, because the
    /// model's sliding-window layers no longer hold its early positions; those prompts were
    /// evaluated in full.
    pub prompt_cache_swa_fallbacks: f64,
    /// States on disk (`promptCacheDir`), and their bytes (at most `promptCacheDiskBytes`).
    pub prompt_cache_disk_entries: f64,
    pub prompt_cache_disk_bytes: f64,
    pub prompt_cache_disk_writes: f64,
    /// States moved back from disk to memory for a request.
    pub prompt_cache_disk_loads: f64,
    pub prompt_cache_disk_evictions: f64,
    /// Files not loaded: another model or llama.cpp build, truncated or damaged.
    pub prompt_cache_disk_rejected: f64,
    /// States not written: the writer was behind, or the disk refused them.
    pub prompt_cache_disk_dropped: f64,
}

#[derive(Default)]
pub struct Counters {
    pub requests_total: AtomicU64,
    pub requests_completed: AtomicU64,
    pub requests_failed: AtomicU64,
    pub requests_aborted: AtomicU64,
    pub requests_timed_out: AtomicU64,
    pub requests_active: AtomicU64,
    pub requests_queued: AtomicU64,
    /// Submitted, but not yet in the scheduler's queue: being prepared on the prompt thread,
    /// or in the channel the inference thread reads between decode steps. Counted as queued,
    /// so `queueDepth` is current the moment `generate()`/`stream()` returns.
    pub requests_in_transit: AtomicU64,
    /// Submitted and not yet answered: in transit, queued or in a slot. Admission keeps it at
    /// most `parallel + maxQueue`.
    pub requests_outstanding: AtomicU64,
    pub prompt_tokens_total: AtomicU64,
    pub completion_tokens_total: AtomicU64,
    pub cached_tokens_total: AtomicU64,
    pub cache_hits: AtomicU64,
    pub prompt_tokens_evaluated: AtomicU64,
    pub decoded_tokens: AtomicU64,
    pub decode_calls: AtomicU64,
    /// Decode-step time attributed to prompt and to generation tokens, in microseconds.
    pub prompt_step_us: AtomicU64,
    pub decode_step_us: AtomicU64,
    /// Microseconds, to keep integer atomics.
    pub prompt_us_total: AtomicU64,
    pub generate_us_total: AtomicU64,
    pub last_ttft_us: AtomicU64,
    /// tokens/s × 1000.
    pub last_tps_milli: AtomicU64,
    pub prompt_cache_entries: AtomicU64,
    pub prompt_cache_bytes: AtomicU64,
    pub prompt_cache_limit_bytes: AtomicU64,
    pub prompt_cache_saves: AtomicU64,
    pub prompt_cache_restores: AtomicU64,
    pub prompt_cache_restored_tokens: AtomicU64,
    pub prompt_cache_restore_us: AtomicU64,
    pub prompt_cache_evictions: AtomicU64,
    pub prompt_cache_restore_failures: AtomicU64,
    pub prompt_cache_swa_fallbacks: AtomicU64,
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn sub(counter: &AtomicU64, n: u64) {
    // Saturating: a counter never wraps below zero.
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
    });
}

pub(crate) fn set(counter: &AtomicU64, n: u64) {
    counter.store(n, Ordering::Relaxed);
}

pub struct StatusCell {
    pub status: EngineStatus,
    pub model_name: Option<String>,
    pub devices: Option<Vec<String>>,
    pub context_size: u32,
    pub slots_total: u32,
    pub last_error: Option<String>,
}

/// Everything callers may read while the inference thread runs.
pub struct Shared {
    pub started: Instant,
    pub counters: Counters,
    pub cell: Mutex<StatusCell>,
    ttft_ms: Mutex<VecDeque<f64>>,
    /// The disk tier of the prompt cache, when the engine has one.
    pub disk_cache: OnceLock<Arc<DiskCache>>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            counters: Counters::default(),
            cell: Mutex::new(StatusCell {
                status: EngineStatus::Loading,
                model_name: None,
                devices: None,
                context_size: 0,
                slots_total: 0,
                last_error: None,
            }),
            ttft_ms: Mutex::new(VecDeque::with_capacity(TTFT_WINDOW)),
            disk_cache: OnceLock::new(),
        }
    }
}

impl Shared {
    pub fn update(&self, f: impl FnOnce(&mut StatusCell)) {
        let mut cell = self.cell.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut cell);
    }

    /// Accounts one decode step of `prompt` prompt and `generating` generation tokens.
    pub fn record_step(&self, prompt: usize, generating: usize, took: Duration) {
        let total = prompt + generating;
        if total == 0 {
            return;
        }
        let us = took.as_micros() as u64;
        let prompt_us = us * prompt as u64 / total as u64;
        let c = &self.counters;
        add(&c.prompt_tokens_evaluated, prompt as u64);
        add(&c.decoded_tokens, generating as u64);
        add(&c.prompt_step_us, prompt_us);
        add(&c.decode_step_us, us - prompt_us);
    }

    pub fn record_ttft(&self, ms: f64) {
        let mut window = self.ttft_ms.lock().unwrap_or_else(|p| p.into_inner());
        if window.len() == TTFT_WINDOW {
            window.pop_front();
        }
        window.push_back(ms);
    }

    pub fn status(&self) -> EngineStatus {
        self.cell.lock().unwrap_or_else(|p| p.into_inner()).status
    }

    pub(crate) fn count_failure(&self, code: ErrorCode) {
        let c = &self.counters;
        match code {
            ErrorCode::Aborted => add(&c.requests_aborted, 1),
            ErrorCode::Timeout => add(&c.requests_timed_out, 1),
            _ => add(&c.requests_failed, 1),
        }
    }

    fn queued(&self) -> u64 {
        let c = &self.counters;
        c.requests_queued.load(Ordering::Relaxed) + c.requests_in_transit.load(Ordering::Relaxed)
    }

    pub fn health(&self) -> Health {
        let cell = self.cell.lock().unwrap_or_else(|p| p.into_inner());
        let c = &self.counters;
        Health {
            status: cell.status,
            model_name: cell.model_name.clone(),
            context_size: cell.context_size,
            uptime_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            last_error: cell.last_error.clone(),
            devices: cell.devices.clone(),
            slots_busy: c.requests_active.load(Ordering::Relaxed) as u32,
            slots_total: cell.slots_total,
            queue_depth: self.queued() as u32,
        }
    }

    pub fn metrics(&self) -> Metrics {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let count = |a: &AtomicU64| get(a) as f64;
        let rate = |tokens: u64, us: u64| {
            if us == 0 {
                0.0
            } else {
                tokens as f64 / (us as f64 / 1e6)
            }
        };
        let mut ttft: Vec<f64> = self
            .ttft_ms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        ttft.sort_by(f64::total_cmp);
        let disk = |field: fn(&DiskCounters) -> &AtomicU64| {
            self.disk_cache
                .get()
                .map_or(0.0, |d| field(&d.counters).load(Ordering::Relaxed) as f64)
        };
        let slots_total = self
            .cell
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .slots_total;
        Metrics {
            requests_total: count(&c.requests_total),
            requests_completed: count(&c.requests_completed),
            requests_failed: count(&c.requests_failed),
            requests_aborted: count(&c.requests_aborted),
            requests_timed_out: count(&c.requests_timed_out),
            requests_active: count(&c.requests_active),
            requests_queued: self.queued() as f64,
            prompt_tokens_total: count(&c.prompt_tokens_total),
            completion_tokens_total: count(&c.completion_tokens_total),
            cached_tokens_total: count(&c.cached_tokens_total),
            cache_hits: count(&c.cache_hits),
            prompt_tokens_evaluated: count(&c.prompt_tokens_evaluated),
            decode_calls: count(&c.decode_calls),
            prompt_ms_total: get(&c.prompt_us_total) as f64 / 1000.0,
            generate_ms_total: get(&c.generate_us_total) as f64 / 1000.0,
            last_ttft_ms: get(&c.last_ttft_us) as f64 / 1000.0,
            last_tokens_per_second: get(&c.last_tps_milli) as f64 / 1000.0,
            prompt_tokens_per_second: rate(get(&c.prompt_tokens_evaluated), get(&c.prompt_step_us)),
            decode_tokens_per_second: rate(get(&c.decoded_tokens), get(&c.decode_step_us)),
            ttft_p50_ms: percentile(&ttft, 0.50),
            ttft_p95_ms: percentile(&ttft, 0.95),
            ttft_p99_ms: percentile(&ttft, 0.99),
            slots_busy: get(&c.requests_active) as u32,
            slots_total,
            queue_depth: self.queued() as u32,
            uptime_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            prompt_cache_entries: count(&c.prompt_cache_entries),
            prompt_cache_bytes: count(&c.prompt_cache_bytes),
            prompt_cache_limit_bytes: count(&c.prompt_cache_limit_bytes),
            prompt_cache_saves: count(&c.prompt_cache_saves),
            prompt_cache_hits: count(&c.prompt_cache_restores),
            prompt_cache_restored_tokens: count(&c.prompt_cache_restored_tokens),
            prompt_cache_restore_ms_total: get(&c.prompt_cache_restore_us) as f64 / 1000.0,
            prompt_cache_evictions: count(&c.prompt_cache_evictions),
            prompt_cache_restore_failures: count(&c.prompt_cache_restore_failures),
            prompt_cache_swa_fallbacks: count(&c.prompt_cache_swa_fallbacks),
            prompt_cache_disk_entries: disk(|d| &d.entries),
            prompt_cache_disk_bytes: disk(|d| &d.bytes),
            prompt_cache_disk_writes: disk(|d| &d.writes),
            prompt_cache_disk_loads: disk(|d| &d.loads),
            prompt_cache_disk_evictions: disk(|d| &d.evictions),
            prompt_cache_disk_rejected: disk(|d| &d.rejected),
            prompt_cache_disk_dropped: disk(|d| &d.dropped),
        }
    }
}

/// Nearest-rank percentile of sorted values (0 when empty).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn step_time_is_split_by_token_kind() {
        let s = Shared::default();
        s.record_step(300, 100, Duration::from_millis(400));
        let m = s.metrics();
        assert_eq!(m.prompt_tokens_evaluated, 300.0);
        assert!((m.prompt_tokens_per_second - 1000.0).abs() < 1e-6);
        assert!((m.decode_tokens_per_second - 1000.0).abs() < 1e-6);
    }
}
