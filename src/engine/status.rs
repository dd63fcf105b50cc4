//! Health and counters shared between the inference thread (writer) and callers (readers).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineStatus {
    Loading,
    Ok,
    Unloaded,
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

#[derive(Debug, Clone)]
pub struct Health {
    pub status: EngineStatus,
    pub model_name: Option<String>,
    pub context_size: u32,
    pub uptime_ms: f64,
    pub last_error: Option<String>,
    pub slots_busy: u32,
    pub slots_total: u32,
    pub queue_depth: u32,
}

#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub requests_total: u64,
    pub requests_completed: u64,
    pub requests_failed: u64,
    pub requests_aborted: u64,
    pub requests_timed_out: u64,
    pub requests_active: u64,
    pub requests_queued: u64,
    pub prompt_tokens_total: u64,
    pub completion_tokens_total: u64,
    pub cached_tokens_total: u64,
    pub decode_calls: u64,
    pub prompt_ms_total: f64,
    pub generate_ms_total: f64,
    pub last_ttft_ms: f64,
    pub last_tokens_per_second: f64,
    pub uptime_ms: f64,
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
    pub prompt_tokens_total: AtomicU64,
    pub completion_tokens_total: AtomicU64,
    pub cached_tokens_total: AtomicU64,
    pub decode_calls: AtomicU64,
    /// Microseconds, to keep integer atomics.
    pub prompt_us_total: AtomicU64,
    pub generate_us_total: AtomicU64,
    pub last_ttft_us: AtomicU64,
    /// tokens/s × 1000.
    pub last_tps_milli: AtomicU64,
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn set(counter: &AtomicU64, n: u64) {
    counter.store(n, Ordering::Relaxed);
}

pub struct StatusCell {
    pub status: EngineStatus,
    pub model_name: Option<String>,
    pub context_size: u32,
    pub slots_total: u32,
    pub last_error: Option<String>,
}

/// Everything callers may read while the inference thread runs.
pub struct Shared {
    pub started: Instant,
    pub counters: Counters,
    pub cell: Mutex<StatusCell>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            counters: Counters::default(),
            cell: Mutex::new(StatusCell {
                status: EngineStatus::Loading,
                model_name: None,
                context_size: 0,
                slots_total: 0,
                last_error: None,
            }),
        }
    }
}

impl Shared {
    pub fn update(&self, f: impl FnOnce(&mut StatusCell)) {
        let mut cell = self.cell.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut cell);
    }

    pub fn status(&self) -> EngineStatus {
        self.cell.lock().unwrap_or_else(|p| p.into_inner()).status
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
            slots_busy: c.requests_active.load(Ordering::Relaxed) as u32,
            slots_total: cell.slots_total,
            queue_depth: c.requests_queued.load(Ordering::Relaxed) as u32,
        }
    }

    pub fn metrics(&self) -> Metrics {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Metrics {
            requests_total: get(&c.requests_total),
            requests_completed: get(&c.requests_completed),
            requests_failed: get(&c.requests_failed),
            requests_aborted: get(&c.requests_aborted),
            requests_timed_out: get(&c.requests_timed_out),
            requests_active: get(&c.requests_active),
            requests_queued: get(&c.requests_queued),
            prompt_tokens_total: get(&c.prompt_tokens_total),
            completion_tokens_total: get(&c.completion_tokens_total),
            cached_tokens_total: get(&c.cached_tokens_total),
            decode_calls: get(&c.decode_calls),
            prompt_ms_total: get(&c.prompt_us_total) as f64 / 1000.0,
            generate_ms_total: get(&c.generate_us_total) as f64 / 1000.0,
            last_ttft_ms: get(&c.last_ttft_us) as f64 / 1000.0,
            last_tokens_per_second: get(&c.last_tps_milli) as f64 / 1000.0,
            uptime_ms: self.started.elapsed().as_secs_f64() * 1000.0,
        }
    }
}
