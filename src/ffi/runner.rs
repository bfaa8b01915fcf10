//! The host's thread pool as a [`Runner`]: the writers shard large responses
//! over TensorFlow's intra-op pool through the `bpr_runner` callbacks.

use bpr_protocol::{Runner, Serial};
use std::any::Any;
use std::ffi::c_void;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;

use super::sys::bpr_runner;

/// The host's thread pool as a [`Runner`].
struct HostRunner<'a>(&'a bpr_runner);

// SAFETY: the pool is the host's thread pool, made to be called from any thread.
unsafe impl Sync for HostRunner<'_> {}

/// What a pool thread needs to run tasks, and the first panic it caught.
struct PoolTask<'t> {
    task: &'t (dyn Fn(usize) + Sync),
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

/// Runs tasks `begin..end` on a pool thread. A panic must not unwind into
/// the host's pool (that aborts the process): it is kept and re-raised on
/// the calling thread, inside `guarded`.
extern "C" fn run_tasks(context: *mut c_void, begin: i64, end: i64) {
    // SAFETY: `context` is the PoolTask that `HostRunner::run` passed to
    // parallel_for, alive until parallel_for returns.
    let pool_task = unsafe { &*(context as *const PoolTask<'_>) };
    for i in begin.max(0)..end {
        if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| (pool_task.task)(i as usize))) {
            let mut first = pool_task.panic.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert(p);
        }
    }
}

impl Runner for HostRunner<'_> {
    fn threads(&self) -> usize {
        match self.0.parallel_for {
            Some(_) if !self.0.pool.is_null() => self.0.threads.max(1) as usize,
            _ => 1,
        }
    }

    fn run(&self, tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        let Some(parallel_for) = self.0.parallel_for.filter(|_| !self.0.pool.is_null()) else {
            return Serial.run(tasks, task);
        };
        let pool_task = PoolTask {
            task,
            panic: Mutex::new(None),
        };
        // Tasks are shards of at least 256 KiB of writes: "expensive" enough
        // in TensorFlow's cost model to get one thread each.
        const COST_PER_TASK: i64 = 1 << 20;
        // SAFETY: the host's parallel_for calls run_tasks with our context
        // and returns only when every call has returned, so `pool_task`
        // outlives every use of the pointer.
        unsafe {
            parallel_for(
                self.0.pool,
                tasks as i64,
                COST_PER_TASK,
                Some(run_tasks),
                &pool_task as *const PoolTask<'_> as *mut c_void,
            )
        };
        if let Some(p) = pool_task
            .panic
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
        {
            panic::resume_unwind(p);
        }
    }
}

/// Calls `f` with the runner a write uses: the host's pool, or the calling thread.
///
/// # Safety
/// `runner` is NULL or points to a valid `bpr_runner` for the call.
pub(super) unsafe fn with_runner<T>(
    runner: *const bpr_runner,
    f: impl FnOnce(&dyn Runner) -> T,
) -> T {
    if runner.is_null() {
        f(&Serial)
    } else {
        // SAFETY: non-null and valid per the contract.
        f(&HostRunner(unsafe { &*runner }))
    }
}
