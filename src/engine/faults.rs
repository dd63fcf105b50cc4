//! Fault injection for tests of the recovery paths. Off unless the environment variable
//! `NAPI_LLAMA_FAULTS` is set when an engine starts, or the load options carry the test-only
//! `__faults` field (Jest gives tests a copy of `process.env`, so they use that); not part of
//! the typed public API.
//!
//! `decode:3,panic:5,sink:2` makes the 3rd `decode` call fail, the 5th
//! scheduler step panic, and the 2nd chunk delivery behave as if its listener were gone.
//! Counts start at 1 for each engine; each fault fires once. `memory:N` makes the engine
//! believe N bytes of memory are available when it checks that the KV cache fits.
//! `prompt:MS` makes the prompt thread spend MS milliseconds more on every request, and
//! `step:MS` makes every decode step take MS milliseconds more, so tests can have a slow prompt
//! or a slow reply without depending on how fast the machine is. These two act every time.
//! `rank:1` lets any model load with `pooling: 'rank'`, so the reranking path can be tested
//! end to end on the generation test models (no reranker GGUF is available to the tests); the
//! scores then mean nothing. `batch:N` makes an embedding engine hold its first decode until N
//! requests are queued, so a test can see concurrent calls share a decode without racing the
//! inference thread.

use std::cell::Cell;

pub const ENV: &str = "NAPI_LLAMA_FAULTS";

#[derive(Debug, Default)]
pub struct Faults {
    decode_at: Option<u64>,
    panic_at: Option<u64>,
    sink_at: Option<u64>,
    memory: Option<u64>,
    prompt_delay_ms: Option<u64>,
    step_delay_ms: Option<u64>,
    rank_any_model: bool,
    first_batch_requests: Option<u64>,
    decodes: Cell<u64>,
    steps: Cell<u64>,
    sends: Cell<u64>,
}

impl Faults {
    /// The given spec, else the environment's, else none.
    pub fn new(spec: Option<&str>) -> Self {
        match spec {
            Some(spec) => Self::parse(spec),
            None => std::env::var(ENV)
                .map(|spec| Self::parse(&spec))
                .unwrap_or_default(),
        }
    }

    pub fn parse(spec: &str) -> Self {
        let mut faults = Self::default();
        for part in spec.split(',') {
            let Some((kind, n)) = part.trim().split_once(':') else {
                continue;
            };
            let Ok(n) = n.trim().parse::<u64>() else {
                continue;
            };
            match kind.trim() {
                "decode" => faults.decode_at = Some(n),
                "panic" => faults.panic_at = Some(n),
                "sink" => faults.sink_at = Some(n),
                "memory" => faults.memory = Some(n),
                "prompt" => faults.prompt_delay_ms = Some(n),
                "step" => faults.step_delay_ms = Some(n),
                "rank" => faults.rank_any_model = n > 0,
                "batch" => faults.first_batch_requests = Some(n),
                _ => {}
            }
        }
        let any = [
            faults.decode_at,
            faults.panic_at,
            faults.sink_at,
            faults.memory,
            faults.prompt_delay_ms,
            faults.step_delay_ms,
            faults.first_batch_requests,
        ];
        if any.iter().any(Option::is_some) {
            tracing::warn!(spec, "fault injection is on ({ENV})");
        }
        faults
    }

    fn tick(counter: &Cell<u64>, at: Option<u64>) -> bool {
        let n = counter.get() + 1;
        counter.set(n);
        at == Some(n)
    }

    /// True when this decode call should fail.
    pub fn decode_fails(&self) -> bool {
        Self::tick(&self.decodes, self.decode_at)
    }

    /// Panics when this step should.
    pub fn maybe_panic(&self) {
        if Self::tick(&self.steps, self.panic_at) {
            panic!("injected fault: scheduler step panic ({ENV})");
        }
    }

    /// Whether any model may load as a reranker (`rank:1`).
    pub fn any_model_ranks(&self) -> bool {
        self.rank_any_model
    }

    /// Requests an embedding engine waits for before its first decode (`batch:N`).
    pub fn first_batch_waits_for(&self) -> usize {
        self.first_batch_requests.unwrap_or(0) as usize
    }

    /// The available memory to pretend, in bytes.

    pub fn available_memory(&self) -> Option<u64> {
        self.memory
    }

    /// The extra time the prompt thread spends on every request.
    pub fn prompt_delay(&self) -> Option<std::time::Duration> {
        self.prompt_delay_ms.map(std::time::Duration::from_millis)
    }

    /// Sleeps the extra time every decode step takes.
    pub fn delay_step(&self) {
        if let Some(ms) = self.step_delay_ms {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }

    /// True when this chunk delivery should be treated as undeliverable.
    pub fn sink_lost(&self) -> bool {
        Self::tick(&self.sends, self.sink_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fault_fires_once_at_its_count() {
        let f = Faults::parse("decode:2, panic:1,sink:x,bogus:3");
        assert!(!f.decode_fails());
        assert!(f.decode_fails());
        assert!(!f.decode_fails());
        assert!(
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.maybe_panic())).is_err()
        );
        f.maybe_panic();
        assert!(!f.sink_lost());
        assert_eq!(f.available_memory(), None);
        assert_eq!(Faults::parse("memory:1000").available_memory(), Some(1000));
        assert_eq!(
            Faults::parse("prompt:250").prompt_delay(),
            Some(std::time::Duration::from_millis(250))
        );
    }
}
