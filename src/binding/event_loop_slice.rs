//! Keeps the JavaScript thread responsive while inference threads keep every core busy.
//!
//! With `threads` equal to the core count, llama.cpp's threads are always runnable, so when
//! the event loop wakes (a timer, a socket, a streamed token) it waits for the scheduler to
//! give it a turn: about 4.5 ms at p99 on a 2-core machine. Linux 6.12+ (EEVDF) lets a thread
//! ask for a shorter time slice (`sched_setattr` with `sched_runtime` on a SCHED_OTHER
//! thread); a waking thread with a shorter slice preempts the running one at once. A 0.1 ms
//! slice for the event-loop thread brought that p99 down to about 1.8 ms (`npm run bench --
//! --suites eventloop`). The thread's CPU share is unchanged: the slice decides how soon it
//! runs, not how much. The price: it now preempts a compute thread mid-step for every streamed
//! token, which cost ~7% tokens/s on a 135M model (about 180 tokens/s) and nothing measurable
//! on a 270M one. Hence opt-in (`responsiveEventLoop: true`).
//!
//! Older kernels report no slice and are left alone, as is anything other than a plain
//! SCHED_OTHER thread (a real-time or batch policy someone chose on purpose). The short slice
//! is set with SCHED_FLAG_RESET_ON_FORK: threads and processes the event loop starts meanwhile
//! (libuv's pool, workers, child processes, other engines' threads) get the default slice,
//! not this one. When the last engine started from that thread shuts down, the thread's slice
//! and flags are restored, the slice to the kernel default (which is what it was, unless
//! someone had set one).

/// The slice asked for: the kernel's minimum.
#[cfg(target_os = "linux")]
const SHORT_SLICE_NS: u64 = 100_000;

/// Held by an engine started from a JS thread; dropping the last guard for a thread restores
/// that thread's slice.
pub struct ShortSlice {
    #[cfg(target_os = "linux")]
    tid: i32,
}

#[cfg(target_os = "linux")]
mod imp {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::{ShortSlice, SHORT_SLICE_NS};

    /// `struct sched_attr` (include/uapi/linux/sched/types.h), first version plus the
    /// utilization clamps: 56 bytes.
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
        util_min: u32,
        util_max: u32,
    }

    const SCHED_OTHER: u32 = 0;
    /// Children do not inherit the policy, priority or custom slice (sched/types.h).
    const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;

    /// Per thread id: how many engines hold the short slice, and the flags to restore.
    static HELD: Mutex<Option<HashMap<i32, (u32, u64)>>> = Mutex::new(None);

    fn get(tid: i32) -> Option<SchedAttr> {
        let mut attr = SchedAttr::default();
        let size = std::mem::size_of::<SchedAttr>() as u32;
        // SAFETY: the kernel writes at most `size` bytes into `attr`.
        let r = unsafe { libc::syscall(libc::SYS_sched_getattr, tid, &mut attr, size, 0) };
        (r == 0).then_some(attr)
    }

    /// `attr.flags` must hold only RESET_ON_FORK or nothing: other flags (utilization clamps,
    /// keep-policy) would change what the call means.
    fn set(tid: i32, mut attr: SchedAttr) -> bool {
        attr.size = std::mem::size_of::<SchedAttr>() as u32;
        // SAFETY: `attr` is a valid, fully initialised sched_attr of the size it states.
        unsafe { libc::syscall(libc::SYS_sched_setattr, tid, &attr, 0) == 0 }
    }

    pub fn acquire() -> Option<ShortSlice> {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        let held = held.get_or_insert_with(HashMap::new);
        if let Some((count, _)) = held.get_mut(&tid) {
            *count += 1;
            return Some(ShortSlice { tid });
        }
        let attr = get(tid)?;
        if attr.policy != SCHED_OTHER || attr.runtime <= SHORT_SLICE_NS {
            return None;
        }
        let original_flags = attr.flags & SCHED_FLAG_RESET_ON_FORK;
        let short = SchedAttr {
            runtime: SHORT_SLICE_NS,
            flags: SCHED_FLAG_RESET_ON_FORK,
            ..attr
        };
        if !set(tid, short) {
            return None;
        }
        held.insert(tid, (1, original_flags));
        Some(ShortSlice { tid })
    }

    pub fn release(guard: &ShortSlice) {
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        let Some(held) = held.as_mut() else { return };
        let Some((count, original)) = held.get_mut(&guard.tid) else {
            return;
        };
        *count -= 1;
        if *count > 0 {
            return;
        }
        let original_flags = *original;
        held.remove(&guard.tid);
        // The thread may have ended (a worker_thread that exited): then there is nothing to do.
        if let Some(attr) = get(guard.tid) {
            if attr.policy == SCHED_OTHER && attr.runtime == SHORT_SLICE_NS {
                // runtime 0: back to the kernel's default slice.
                let restored = SchedAttr {
                    runtime: 0,
                    flags: original_flags,
                    ..attr
                };
                set(guard.tid, restored);
            }
        }
    }

    #[cfg(test)]
    pub fn current_slice() -> Option<u64> {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
        get(tid).map(|a| a.runtime)
    }
}

impl ShortSlice {
    /// Asks for a short slice for the calling thread; `None` when the platform, the kernel or
    /// the thread's policy does not allow it.
    pub fn acquire() -> Option<Self> {
        #[cfg(target_os = "linux")]
        return imp::acquire();
        #[cfg(not(target_os = "linux"))]
        return None;
    }
}

impl Drop for ShortSlice {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        imp::release(self);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn short_slice_is_held_while_any_guard_lives_and_restored_after() {
        // A fresh thread so no other test's state is involved.
        std::thread::spawn(|| {
            let before = imp::current_slice().expect("sched_getattr works on Linux");
            let Some(first) = ShortSlice::acquire() else {
                // Kernels before 6.12 report no slice (or one already at the minimum): the
                // request is refused, and nothing about the thread changes.
                assert_eq!(
                    imp::current_slice(),
                    Some(before),
                    "a refusal changes nothing"
                );
                return;
            };
            let second = ShortSlice::acquire().expect("a second engine on the same thread");
            let during = imp::current_slice().unwrap();
            if during == SHORT_SLICE_NS {
                drop(first);
                assert_eq!(
                    imp::current_slice(),
                    Some(SHORT_SLICE_NS),
                    "second guard still holds it"
                );
            } else {
                // A kernel that accepts the call but ignores the slice leaves it as it was.
                assert_eq!(during, before, "an ignored request changes nothing");
                drop(first);
            }
            drop(second);
            assert_eq!(imp::current_slice(), Some(before));
        })
        .join()
        .unwrap();
    }
}
