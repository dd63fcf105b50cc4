//! The engine's llama.cpp context, with a persistent ggml thread pool attached to it.
//!
//! Without an attached pool, ggml starts and joins its worker threads inside every
//! `llama_decode`: a thread start, a join and cold caches per generated token, a cost that
//! `llama-bench` and `llama-server` (which attach a pool) do not pay. llama.cpp lets a caller
//! attach a pool to a context, but llama-cpp-2 keeps the context pointer private. So on Linux
//! the addon's link step redirects llama-cpp-2's calls to `llama_new_context_with_model` to the
//! wrapper below (the linker's `--wrap`, set in build.rs), which notes the pointer for the thread
//! that made the context. Where the wrapper is not linked in (other systems, the cargo unit
//! tests), contexts keep ggml's per-decode threads.
//!
//! The workers busy-wait `thread_poll` long for the next step, so the steps of a reply follow
//! each other without a wakeup. When the engine has nothing to do it pauses the pool, which puts
//! them to sleep at once instead of spinning on cores the rest of the process needs; the next
//! decode wakes them (ggml resumes a paused pool by itself).

use std::cell::Cell;
use std::ffi::{c_void, CStr};
use std::ptr::null_mut;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_sys_2 as sys;
use tracing::{debug, warn};

thread_local! {
    /// The context the last `llama_new_context_with_model` on this thread returned.
    static LAST_CONTEXT: Cell<*mut sys::llama_context> = const { Cell::new(null_mut()) };
}

#[cfg(all(target_os = "linux", not(test)))]
mod hook {
    use super::{sys, LAST_CONTEXT};

    extern "C" {
        fn __real_llama_new_context_with_model(
            model: *mut sys::llama_model,
            params: sys::llama_context_params,
        ) -> *mut sys::llama_context;
    }

    /// Every `llama_new_context_with_model` call in the addon lands here (see the module comment).
    #[no_mangle]
    pub extern "C" fn __wrap_llama_new_context_with_model(
        model: *mut sys::llama_model,
        params: sys::llama_context_params,
    ) -> *mut sys::llama_context {
        // SAFETY: the call the linker redirected here, with its own arguments.
        let ctx = unsafe { __real_llama_new_context_with_model(model, params) };
        LAST_CONTEXT.with(|c| c.set(ctx));
        ctx
    }
}

/// A llama.cpp context and the thread pool attached to it. The fields drop in order: the
/// context first, then the pool it used.
pub struct EngineContext<'m> {
    ctx: LlamaContext<'m>,
    pool: Option<ThreadPool>,
}

impl<'m> EngineContext<'m> {
    /// Makes a context with `create` (one `LlamaModel::new_context` call) and attaches a pool
    /// of `threads` threads that busy-wait `poll` (0–100) to it. With one thread there are no
    /// workers to keep, so no pool.
    pub fn create<E>(
        threads: i32,
        poll: u32,
        create: impl FnOnce() -> Result<LlamaContext<'m>, E>,
    ) -> Result<Self, E> {
        LAST_CONTEXT.with(|c| c.set(null_mut()));
        let ctx = create()?;
        // The pointer the wrapper noted during `create`, and only then: this very context.
        let raw = LAST_CONTEXT.with(|c| c.replace(null_mut()));
        let pool = if threads < 2 {
            None
        } else if raw.is_null() {
            if cfg!(all(target_os = "linux", not(test))) {
                warn!("llama.cpp's context was made without the addon's wrapper: ggml starts its threads per decode");
            }
            None
        } else {
            ThreadPool::attach(raw, threads, poll)
        };
        Ok(EngineContext { ctx, pool })
    }

    /// Puts the pool's workers to sleep until the next decode (the engine is idle).
    pub fn rest_threads(&self) {
        if let Some(pool) = &self.pool {
            pool.pause();
        }
    }
}

impl<'m> std::ops::Deref for EngineContext<'m> {
    type Target = LlamaContext<'m>;
    fn deref(&self) -> &Self::Target {
        &self.ctx
    }
}

impl std::ops::DerefMut for EngineContext<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.ctx
    }
}

type NewFn = unsafe extern "C" fn(*mut sys::ggml_threadpool_params) -> *mut sys::ggml_threadpool;
type PoolFn = unsafe extern "C" fn(*mut sys::ggml_threadpool);

/// A ggml thread pool attached to one context, freed after it (see EngineContext).
struct ThreadPool {
    pool: *mut sys::ggml_threadpool,
    free: PoolFn,
    pause: Option<PoolFn>,
}

impl ThreadPool {
    fn attach(ctx: *mut sys::llama_context, threads: i32, poll: u32) -> Option<ThreadPool> {
        // The CPU backend hands out its pool functions through the backend registry, which
        // works for the static build and for the portable one (CPU backends loaded at run time).
        let new = cpu_backend_fn(c"ggml_threadpool_new")?;
        let free = cpu_backend_fn(c"ggml_threadpool_free")?;
        // SAFETY: these names are the CPU backend's exports of exactly these signatures.
        let (new, free) = unsafe {
            (
                std::mem::transmute::<*mut c_void, NewFn>(new),
                std::mem::transmute::<*mut c_void, PoolFn>(free),
            )
        };
        // SAFETY: plain ggml and llama.cpp calls on the context this thread just made.
        let pool = unsafe {
            let mut params = sys::ggml_threadpool_params_default(threads);
            params.poll = poll;
            // Asleep until the first decode: the rest of the load needs no spinning worker.
            params.paused = true;
            new(&mut params)
        };
        if pool.is_null() {
            debug!("ggml could not make a thread pool: it starts its threads per decode");
            return None;
        }
        // SAFETY: as above; the same pool serves single tokens and prompt batches, as the
        // engine uses the same thread count for both.
        unsafe { sys::llama_attach_threadpool(ctx, pool, pool) };
        let pause = pause_fn(new as *const c_void);
        debug!(
            threads,
            poll,
            sleeps_when_idle = pause.is_some(),
            "attached a persistent thread pool"
        );
        Some(ThreadPool { pool, free, pause })
    }

    fn pause(&self) {
        if let Some(pause) = self.pause {
            // SAFETY: a live pool of this backend; pausing twice is harmless.
            unsafe { pause(self.pool) }
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        // SAFETY: made by ggml_threadpool_new, freed once, after its context.
        unsafe { (self.free)(self.pool) }
    }
}

/// The CPU backend's export `name`, found through the backend registry.
fn cpu_backend_fn(name: &CStr) -> Option<*mut c_void> {
    // SAFETY: registry lookups; every null is checked.
    unsafe {
        let dev = sys::ggml_backend_dev_by_type(sys::GGML_BACKEND_DEVICE_TYPE_CPU);
        if dev.is_null() {
            return None;
        }
        let reg = sys::ggml_backend_dev_backend_reg(dev);
        if reg.is_null() {
            return None;
        }
        let f = sys::ggml_backend_reg_get_proc_address(reg, name.as_ptr());
        (!f.is_null()).then_some(f)
    }
}

/// `ggml_threadpool_pause`, which the registry does not hand out. The static build links it.
#[cfg(not(feature = "dynamic-backends"))]
fn pause_fn(_pool_new: *const c_void) -> Option<PoolFn> {
    Some(sys::ggml_threadpool_pause)
}

/// `ggml_threadpool_pause`, which the registry does not hand out: looked up in the CPU backend
/// library that `ggml_threadpool_new` came from (the variant loaded for this CPU).
#[cfg(all(feature = "dynamic-backends", unix))]
fn pause_fn(pool_new: *const c_void) -> Option<PoolFn> {
    // SAFETY: dladdr/dlopen/dlsym on a library that is loaded; RTLD_NOLOAD never loads one, and
    // the handle's reference is dropped at once (the backend stays loaded by ggml).
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(pool_new, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        let handle = libc::dlopen(info.dli_fname, libc::RTLD_NOW | libc::RTLD_NOLOAD);
        if handle.is_null() {
            return None;
        }
        let f = libc::dlsym(handle, c"ggml_threadpool_pause".as_ptr());
        libc::dlclose(handle);
        (!f.is_null()).then(|| std::mem::transmute::<*mut c_void, PoolFn>(f))
    }
}

#[cfg(all(feature = "dynamic-backends", not(unix)))]
fn pause_fn(_pool_new: *const c_void) -> Option<PoolFn> {
    None
}
