//! Writing large responses on several threads: the host's threads, never our own.
//!
//! A model server sizes its thread pools for the whole process; an op that
//! starts threads of its own fights them. The host hands the encoder a
//! [`Runner`] (in TensorFlow: the device's intra-op pool, through the shim);
//! the encoder splits the records into contiguous shards and writes each shard
//! into its own disjoint part of the output.

use crate::error::{Error, Result};
use std::sync::Mutex;

/// Runs a number of independent tasks, possibly concurrently.
pub trait Runner: Sync {
    /// Threads that may run tasks at once (1: no parallelism).
    fn threads(&self) -> usize;
    /// Calls `task(i)` once for each `i` in `0..tasks` and returns when all
    /// have returned.
    fn run(&self, tasks: usize, task: &(dyn Fn(usize) + Sync));
}

/// Everything on the calling thread.
pub struct Serial;

impl Runner for Serial {
    fn threads(&self) -> usize {
        1
    }
    fn run(&self, tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        (0..tasks).for_each(task);
    }
}

/// `n` threads of the standard library, started per call (one per task) and
/// joined before `run` returns: for a Rust host without a pool of its own,
/// and for tests that need real concurrency. A server should pass its own
/// pool instead (starting threads per call costs tens of microseconds).
pub struct ScopedThreads(pub usize);

impl Runner for ScopedThreads {
    fn threads(&self) -> usize {
        self.0
    }
    fn run(&self, tasks: usize, task: &(dyn Fn(usize) + Sync)) {
        std::thread::scope(|s| {
            for i in 0..tasks {
                s.spawn(move || task(i));
            }
        });
    }
}

/// Below this much output one thread is faster than handing work to the pool.
/// Measured on the 2-core machine (op medians, one-thread pool vs default):
/// 2.2 MB continuous 230-354 us alone vs 322-512 us sharded; 7.2 MB tensor
/// 559-739 vs 427-516 us; 17 MB continuous 1.8-2.8 ms vs 1.5-1.7 ms.
pub const MIN_PARALLEL_BYTES: usize = 4 << 20;
/// Each shard writes at least this much, so waking a thread pays for itself.
const MIN_SHARD_BYTES: usize = 1 << 20;

/// A shard's first record and its bytes, until a task takes them.
type Slot<'b> = Mutex<Option<(usize, &'b mut [u8])>>;

/// Writes `body`, a run of records of `record_len` bytes each, by calling
/// `write(first_record, records_bytes)` on contiguous shards that together
/// cover it, on `runner`'s threads when the body is large enough.
pub(crate) fn sharded(
    body: &mut [u8],
    record_len: usize,
    runner: &dyn Runner,
    write: &(dyn Fn(usize, &mut [u8]) + Sync),
) -> Result<()> {
    let records = body.len().checked_div(record_len).unwrap_or(0);
    let shards = if body.len() < MIN_PARALLEL_BYTES {
        1
    } else {
        runner
            .threads()
            .min(body.len() / MIN_SHARD_BYTES)
            .min(records)
            .max(1)
    };
    if shards <= 1 {
        write(0, body);
        return Ok(());
    }
    let per_shard = records.div_ceil(shards);
    // One slot per shard (a handful: memory does not grow with the batch).
    // Each task takes its own slice out of its slot, so the borrow checker,
    // not a raw pointer, proves the writes disjoint.
    let slots: Vec<Slot<'_>> = body
        .chunks_mut(per_shard * record_len)
        .enumerate()
        .map(|(i, chunk)| Mutex::new(Some((i * per_shard, chunk))))
        .collect();
    runner.run(slots.len(), &|shard| {
        let taken = slots[shard]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((first, chunk)) = taken {
            write(first, chunk);
        }
    });
    let unwritten = slots
        .iter()
        .filter(|s| s.lock().unwrap_or_else(|p| p.into_inner()).is_some())
        .count();
    if unwritten > 0 {
        return Err(Error::internal(format!(
            "the host's thread pool ran {} of {} shards",
            slots.len() - unwritten,
            slots.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::ScopedThreads as Threads;

    /// A broken host pool that skips the last task.
    struct Lossy;
    impl Runner for Lossy {
        fn threads(&self) -> usize {
            4
        }
        fn run(&self, tasks: usize, task: &(dyn Fn(usize) + Sync)) {
            (0..tasks - 1).for_each(task);
        }
    }

    fn fill(body: &mut [u8], runner: &dyn Runner) -> Result<usize> {
        let calls = AtomicUsize::new(0);
        sharded(body, 10, runner, &|first, chunk| {
            calls.fetch_add(1, Ordering::Relaxed);
            for (i, record) in chunk.chunks_exact_mut(10).enumerate() {
                record.fill(((first + i) % 251) as u8);
            }
        })?;
        Ok(calls.into_inner())
    }

    #[test]
    fn every_record_is_written_once_whatever_the_split() {
        for records in [0usize, 1, 7, 300_000, 900_001] {
            for threads in [1, 2, 3, 8] {
                let mut body = vec![255u8; records * 10];
                let calls = fill(&mut body, &Threads(threads)).unwrap();
                let expected_shards = if body.len() < MIN_PARALLEL_BYTES {
                    1
                } else {
                    threads
                };
                assert_eq!(
                    calls, expected_shards,
                    "records {records} threads {threads}"
                );
                for (i, record) in body.chunks_exact(10).enumerate() {
                    assert!(record.iter().all(|&b| b == (i % 251) as u8), "record {i}");
                }
            }
        }
    }

    #[test]
    fn a_pool_that_skips_a_shard_is_an_error_not_missing_bytes() {
        let mut body = vec![0u8; 4 << 20];
        let e = fill(&mut body, &Lossy).unwrap_err();
        assert!(e.message().contains("ran 3 of 4 shards"), "{e}");
    }
}
