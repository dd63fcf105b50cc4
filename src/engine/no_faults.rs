//! Fault injection as the release build has it: none. Every hook is a no-op the compiler
//! removes; `faults.rs` is compiled instead with the cargo feature `fault-injection`.

#[derive(Debug, Default)]
pub struct Faults;

impl Faults {
    #[inline(always)]
    pub fn decode_fails(&self) -> bool {
        false
    }

    #[inline(always)]
    pub fn maybe_panic(&self) {}

    #[inline(always)]
    pub fn any_model_ranks(&self) -> bool {
        false
    }

    #[inline(always)]
    pub fn first_batch_waits_for(&self) -> usize {
        0
    }

    #[inline(always)]
    pub fn available_memory(&self) -> Option<u64> {
        None
    }

    #[inline(always)]
    pub fn prompt_delay(&self) -> Option<std::time::Duration> {
        None
    }

    #[inline(always)]
    pub fn delay_step(&self) {}

    #[inline(always)]
    pub fn sink_lost(&self) -> bool {
        false
    }
}
