//! Refuses a KV cache that cannot fit in memory before llama.cpp allocates it.
//!
//! llama.cpp allocates the whole cache up front and then clears it, which touches every page.
//! On Linux the allocation itself succeeds far beyond free memory (overcommit), so a cache
//! between free and total memory is not an error from llama.cpp: the clear makes the kernel's
//! OOM killer end the Node process. We estimate a lower bound of the cache's size and compare
//! it with what the machine (or the container's cgroup) can still give.

use std::path::Path;

use llama_cpp_2::model::LlamaModel;

use crate::engine::error::{EngineError, EngineResult};
use crate::engine::options;

/// llama.cpp's default cache type is F16: two bytes per element.
const BYTES_PER_ELEMENT: u64 = 2;
/// llama.cpp rounds each sequence's share of the context up to a multiple of this.
const CELL_PADDING: u64 = 256;
const GIB: f64 = (1u64 << 30) as f64;

/// The size of the KV cache of `parallel` sequences of `n_ctx_per_seq` tokens, in bytes, for
/// a model whose cache is every layer's keys and values; `None` for the families where it is
/// not, and where counting so would refuse caches that fit: recurrent and hybrid models (only
/// some layers, or none, keep a cache), MLA models (keys only, a compressed size), models that
/// share one layer's cache among several (Gemma 3n and 4).
///
/// Sliding-window layers (Gemma 2/3, Cohere 2, …) count in full: the engine keeps llama.cpp's
/// default `swa_full`, which gives them every cell so that a chat's cached prompt can be
/// reused. The figure is a lower bound: the compute buffers come on top.
pub fn kv_cache_bytes(model: &LlamaModel, n_ctx_per_seq: u32, parallel: u32) -> Option<u64> {
    if model.is_recurrent() || model.is_hybrid() {
        return None;
    }
    let arch = model.meta_val_str("general.architecture").ok()?;
    let meta = |key: &str| model.meta_val_str(&format!("{arch}.{key}")).ok();
    let meta_u64 = |key: &str| meta(key)?.trim().parse::<u64>().ok();
    if arch == "gemma3n"
        || meta("attention.key_length_mla").is_some()
        || meta("attention.shared_kv_layers").is_some()
    {
        return None;
    }
    let n_layer = u64::from(model.n_layer());
    // KV heads summed over the layers: one number for most models, a per-layer array for
    // some (DeciLM/Nemotron-NAS, where layers without attention have 0).
    let kv_heads: u64 = match meta("attention.head_count_kv") {
        Some(v) if v.trim_start().starts_with('[') => sum_of_array(&v)?,
        _ => u64::from(model.n_head_kv()).saturating_mul(n_layer),
    };
    let n_head = u64::from(model.n_head().max(1));
    let head_dim = (model.n_embd().max(0) as u64) / n_head;
    // Sliding-window layers may have smaller heads (Gemma 4): take the smaller size for all.
    let smaller = |full: &str, swa: &str| {
        let full = meta_u64(full).unwrap_or(head_dim);
        meta_u64(swa).map_or(full, |w| w.min(full))
    };
    let key_len = smaller("attention.key_length", "attention.key_length_swa");
    let value_len = smaller("attention.value_length", "attention.value_length_swa");
    let cells = u64::from(n_ctx_per_seq)
        .div_ceil(CELL_PADDING)
        .saturating_mul(CELL_PADDING)
        .saturating_mul(u64::from(parallel));
    Some(
        kv_heads
            .saturating_mul(key_len + value_len)
            .saturating_mul(BYTES_PER_ELEMENT)
            .saturating_mul(cells),
    )
}

/// The sum of a GGUF array as llama.cpp prints it: `[8, 0, 8]`.
fn sum_of_array(text: &str) -> Option<u64> {
    text.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|n| n.trim().parse::<u64>().ok())
        .sum()
}

/// The host-memory prompt cache's size when `promptCacheBytes` is not given: a share of the
/// memory still free once the model and its KV cache are loaded, capped (the cap where the
/// free memory cannot be read).
pub fn default_prompt_cache_bytes() -> u64 {
    let cap = options::DEFAULT_PROMPT_CACHE_MAX_BYTES;
    available_memory().map_or(cap, |free| {
        ((free as f64 * options::DEFAULT_PROMPT_CACHE_SHARE) as u64).min(cap)
    })
}

/// Bytes this process can still take before the OOM killer: the kernel's `MemAvailable` plus
/// free swap, lowered by a cgroup (v2 or v1) limit when the process runs in a container.
/// `None` off Linux, where the check is skipped.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let mut available = meminfo_field(&meminfo, "MemAvailable:")?
        .saturating_add(meminfo_field(&meminfo, "SwapFree:").unwrap_or(0));
    let cgroups = [
        (
            "/sys/fs/cgroup",
            "memory.max",
            "memory.current",
            ["active_file", "inactive_file"],
        ),
        (
            "/sys/fs/cgroup/memory",
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
            ["total_active_file", "total_inactive_file"],
        ),
    ];
    for (dir, limit, usage, page_cache) in cgroups {
        let read = |file: &str| read_number(&format!("{dir}/{file}"));
        if let (Some(limit), Some(usage)) = (read(limit), read(usage)) {
            // The usage counts page cache (a loaded model's file among it), which the kernel
            // reclaims before it kills anything: count it as available, as MemAvailable does.
            let stat = std::fs::read_to_string(format!("{dir}/memory.stat")).unwrap_or_default();
            let cache: u64 = page_cache
                .iter()
                .filter_map(|field| stat_field(&stat, field))
                .sum();
            available = available.min(limit.saturating_sub(usage.saturating_sub(cache)));
        }
    }
    Some(available)
}

fn stat_field(stat: &str, field: &str) -> Option<u64> {
    stat.lines().find_map(|line| {
        let (name, value) = line.split_once(' ')?;
        (name == field).then(|| value.trim().parse().ok())?
    })
}

fn meminfo_field(meminfo: &str, field: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// A number in a file; `max` (cgroup v2's "no limit") and unreadable files give `None`.
fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(Path::new(path))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `MODEL_LOAD_FAILED` when the cache cannot fit in `available` bytes.
pub fn check_fits(
    model_path: &Path,
    needed: Option<u64>,
    available: Option<u64>,
    n_ctx_per_seq: u32,
    parallel: u32,
) -> EngineResult<()> {
    let (Some(needed), Some(available)) = (needed, available) else {
        return Ok(());
    };
    if needed <= available {
        return Ok(());
    }
    Err(EngineError::load_failed(format!(
        "the KV cache of {} for parallel {parallel} × contextSize {n_ctx_per_seq} needs at least {:.1} GiB, and only {:.1} GiB of memory is available: lower contextSize or parallel",
        model_path.display(),
        needed as f64 / GIB,
        available as f64 / GIB
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::error::ErrorCode;

    #[test]
    fn reads_meminfo() {
        let text = "MemTotal:       24000000 kB\nMemAvailable:   1000 kB\n";
        assert_eq!(meminfo_field(text, "MemAvailable:"), Some(1_024_000));
        assert_eq!(meminfo_field(text, "SwapFree:"), None);
        assert!(available_memory().is_some_and(|b| b > 0));
        let stat = "active_file 5\ninactive_file 42\ntotal_inactive_file 7\n";
        assert_eq!(stat_field(stat, "inactive_file"), Some(42));
        assert_eq!(stat_field(stat, "total_inactive_file"), Some(7));
        assert_eq!(stat_field(stat, "file"), None);
    }

    #[test]
    fn sums_per_layer_arrays() {
        assert_eq!(sum_of_array("[8, 0, 8]"), Some(16));
        assert_eq!(sum_of_array("[4]"), Some(4));
        assert_eq!(sum_of_array("[8, x]"), None);
    }

    #[test]
    fn refuses_only_what_cannot_fit() {
        let path = Path::new("m.gguf");
        assert!(check_fits(path, Some(10), Some(10), 1024, 1).is_ok());
        assert!(check_fits(path, None, Some(10), 1024, 1).is_ok());
        assert!(check_fits(path, Some(10), None, 1024, 1).is_ok());
        let err = check_fits(path, Some(20 << 30), Some(4 << 30), 8192, 100).unwrap_err();
        assert!(err.message.contains("m.gguf"), "{}", err.message);
        assert_eq!(err.code, ErrorCode::ModelLoadFailed);
        assert!(err.message.contains("20.0 GiB"), "{}", err.message);
        assert!(
            err.message.contains("parallel 100 × contextSize 8192"),
            "{}",
            err.message
        );
    }
}
