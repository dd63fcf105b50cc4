//! Refuses a KV cache that cannot fit in memory before llama.cpp allocates it.
//!
//! llama.cpp allocates the whole cache up front and then clears it, which touches every page.
//! On Linux the allocation itself succeeds far beyond free memory (overcommit), so a cache
//! between free and total memory is not an error from llama.cpp: the clear makes the kernel's
//! OOM killer end the Node process. We estimate a lower bound of the cache's size and compare
//! it with what the machine (or the container's cgroup) can still give.

use std::path::Path;

use llama_cpp_2::model::LlamaModel;

use super::error::{EngineError, EngineResult};

/// llama.cpp's default cache type is F16: two bytes per element.
const BYTES_PER_ELEMENT: u64 = 2;
const GIB: f64 = (1u64 << 30) as f64;

/// The size of the KV cache of `parallel` sequences of `n_ctx_per_seq` tokens, in bytes;
/// `None` when the model keeps no per-token cache (recurrent models).
///
/// Every layer counts in full, sliding-window layers (Gemma 2/3, Cohere 2, …) too: the engine
/// keeps llama.cpp's default `swa_full`, which gives them every cell so that a chat's cached
/// prompt can be reused. It is a lower bound: the compute buffers come on top.
pub fn kv_cache_bytes(model: &LlamaModel, n_ctx_per_seq: u32, parallel: u32) -> Option<u64> {
    if model.is_recurrent() {
        return None;
    }
    let arch = model.meta_val_str("general.architecture").ok()?;
    let meta_u64 = |key: &str| -> Option<u64> {
        model
            .meta_val_str(&format!("{arch}.{key}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let n_head = u64::from(model.n_head().max(1));
    let n_head_kv = u64::from(model.n_head_kv());
    let head_dim_default = (model.n_embd().max(0) as u64) / n_head;
    let key_len = meta_u64("attention.key_length").unwrap_or(head_dim_default);
    let value_len = meta_u64("attention.value_length").unwrap_or(head_dim_default);
    let per_cell = (key_len + value_len) * n_head_kv * BYTES_PER_ELEMENT;
    let cells = u64::from(n_ctx_per_seq) * u64::from(parallel);
    Some(u64::from(model.n_layer()) * cells * per_cell)
}

/// Bytes this process can still take before the OOM killer: the kernel's `MemAvailable`,
/// lowered by a cgroup (v2 or v1) limit when the process runs in a container.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let mut available = meminfo_field(&meminfo, "MemAvailable:")?;
    let cgroups = [
        (
            "/sys/fs/cgroup",
            "memory.max",
            "memory.current",
            "inactive_file",
        ),
        (
            "/sys/fs/cgroup/memory",
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
            "total_inactive_file",
        ),
    ];
    for (dir, limit, usage, inactive) in cgroups {
        let read = |file: &str| read_number(&format!("{dir}/{file}"));
        if let (Some(limit), Some(usage)) = (read(limit), read(usage)) {
            // The usage counts page cache, which the kernel reclaims before it kills anything:
            // leave out its inactive part, as the kubelet's "working set" does.
            let stat = std::fs::read_to_string(format!("{dir}/memory.stat")).unwrap_or_default();
            let reclaimable = stat_field(&stat, inactive).unwrap_or(0);
            available = available.min(limit.saturating_sub(usage.saturating_sub(reclaimable)));
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
        "the KV cache for parallel {parallel} × contextSize {n_ctx_per_seq} needs at least {:.1} GiB, and only {:.1} GiB of memory is available: lower contextSize or parallel",
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
    fn refuses_only_what_cannot_fit() {
        assert!(check_fits(Some(10), Some(10), 1024, 1).is_ok());
        assert!(check_fits(None, Some(10), 1024, 1).is_ok());
        assert!(check_fits(Some(10), None, 1024, 1).is_ok());
        let err = check_fits(Some(20 << 30), Some(4 << 30), 8192, 100).unwrap_err();
        assert_eq!(err.code, ErrorCode::ModelLoadFailed);
        assert!(err.message.contains("20.0 GiB"), "{}", err.message);
        assert!(
            err.message.contains("parallel 100 × contextSize 8192"),
            "{}",
            err.message
        );
    }
}
