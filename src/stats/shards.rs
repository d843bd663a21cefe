//! The counters touched on every request, message or read, kept per thread: each thread adds to
//! a shard of its own (picked once, round-robin), on a cache line of its own, so threads do not
//! contend for them; a snapshot sums the shards.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::histogram::{LatencyHistogram, Recorder};

/// How many shards: threads beyond it share them, round-robin.
const SHARDS: usize = 16;

/// One thread's share of the hot counters (its own cache lines: 128-byte aligned, the pair of
/// lines some CPUs prefetch together).
#[derive(Default)]
#[repr(align(128))]
pub(super) struct Shard {
    pub(super) messages: AtomicU64,
    pub(super) message_failures: AtomicU64,
    pub(super) message_panics: AtomicU64,
    pub(super) panics: AtomicU64,
    pub(super) bytes_in: AtomicU64,
    pub(super) bytes_out: AtomicU64,
    /// Gauges: counted up on one thread and down on another, so one shard's value may wrap
    /// below zero; the sum of all of them is right.
    pub(super) queue_depth: AtomicU64,
    pub(super) busy_workers: AtomicU64,
    pub(super) request_time: Recorder,
    pub(super) message_time: Recorder,
    pub(super) queue_wait: Recorder,
}

/// Every shard.
#[derive(Default)]
pub(super) struct Shards([Shard; SHARDS]);

/// The sums of the shards.
#[derive(Default)]
pub(super) struct Sums {
    pub(super) messages: u64,
    pub(super) message_failures: u64,
    pub(super) message_panics: u64,
    pub(super) panics: u64,
    pub(super) bytes_in: u64,
    pub(super) bytes_out: u64,
    pub(super) queue_depth: u64,
    pub(super) busy_workers: u64,
    pub(super) request_time: LatencyHistogram,
    pub(super) message_time: LatencyHistogram,
    pub(super) queue_wait: LatencyHistogram,
}

impl Shards {
    /// The calling thread's shard.
    pub(super) fn mine(&self) -> &Shard {
        &self.0[shard_index()]
    }

    pub(super) fn sum(&self) -> Sums {
        let mut sums = Sums::default();
        let add = |total: &mut u64, counter: &AtomicU64| {
            *total = total.wrapping_add(counter.load(Ordering::Relaxed));
        };
        for shard in &self.0 {
            add(&mut sums.messages, &shard.messages);
            add(&mut sums.message_failures, &shard.message_failures);
            add(&mut sums.message_panics, &shard.message_panics);
            add(&mut sums.panics, &shard.panics);
            add(&mut sums.bytes_in, &shard.bytes_in);
            add(&mut sums.bytes_out, &shard.bytes_out);
            add(&mut sums.queue_depth, &shard.queue_depth);
            add(&mut sums.busy_workers, &shard.busy_workers);
            sums.request_time.add(&shard.request_time.snapshot());
            sums.message_time.add(&shard.message_time.snapshot());
            sums.queue_wait.add(&shard.queue_wait.snapshot());
        }
        sums
    }
}

/// The calling thread's shard number, chosen on its first call.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|index| *index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn threads_add_to_shards_of_their_own_and_gauges_sum_right() {
        let shards = Arc::new(Shards::default());
        let mut threads = Vec::new();
        for _ in 0..(SHARDS + 3) {
            let shards = Arc::clone(&shards);
            threads.push(std::thread::spawn(move || {
                shards.mine().messages.fetch_add(2, Ordering::Relaxed);
                // Up here, down on the main thread: this shard alone wraps below zero.
                shards.mine().busy_workers.fetch_add(1, Ordering::Relaxed);
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
        for _ in 0..(SHARDS + 3) {
            shards.mine().busy_workers.fetch_sub(1, Ordering::Relaxed);
        }
        let sums = shards.sum();
        assert_eq!(sums.messages, 2 * (SHARDS as u64 + 3));
        assert_eq!(sums.busy_workers, 0);
    }
}
