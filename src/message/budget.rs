//! The message server's memory budget: one bound, for the whole loop, on the bytes its connections
//! hold in buffered input, unsent output and messages on their way to a worker.
//!
//! Per-connection limits (a framer's `limit`, `max_pending_output`) bound what one peer holds, not
//! what many hold together: a thousand connections each announcing a 16 MiB frame and sending a
//! megabyte of it hold a gigabyte. Past the budget the loop closes the connections that hold the
//! most until it is back under seven eighths of it: an attacker's connections, by construction
//! the big ones, go first, and well-behaved ones (a request or two buffered) are left alone.
//! Buffers shared with the application ([`Reply::write_shared`](super::Reply::write_shared)) are
//! not counted: the application holds them anyway.
//!
//! The budget also tells when to hand freed memory back to the system. Connection buffers are
//! freed when connections close, but glibc's allocator keeps freed memory below the top of its
//! heaps: after a thousand connections holding 60 KB each had closed, the process stayed at its
//! peak (60 MB) in some runs. Once the buffers hold [`TRIM_STEP`] less than their high-water
//! mark, the loop asks the allocator to release what it can (`malloc_trim`), at most once a
//! second.

use std::time::{Duration, Instant};

use super::sender::ConnectionId;

/// How far what the buffers hold must fall below its high-water mark before freed memory is handed
/// back to the system.
const TRIM_STEP: usize = 16 * 1024 * 1024;
/// The least time between two such hand-backs (`malloc_trim` walks the allocator's heaps).
const TRIM_INTERVAL: Duration = Duration::from_secs(1);

/// The memory all of a message server's connections may hold together in buffered input and
/// pending output, unless [`MessageBuilder::max_buffered_memory`](crate::message::MessageBuilder::max_buffered_memory)
/// says otherwise. Per process: each [`Prefork`](crate::Prefork) worker has its own, split
/// evenly between its event loops.
pub const DEFAULT_MAX_BUFFERED_MEMORY: usize = 256 * 1024 * 1024;

/// The loop's account of the bytes its connections hold.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    used: usize,
    /// The most `used` has been since memory was last handed back.
    high: usize,
    last_trim: Option<Instant>,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Budget {
        Budget {
            limit,
            used: 0,
            high: 0,
            last_trim: None,
        }
    }

    /// A connection that was charged `old` bytes now holds `new`.
    pub(crate) fn recharge(&mut self, old: usize, new: usize) {
        self.used = self.used.saturating_sub(old).saturating_add(new);
        self.high = self.high.max(self.used);
    }

    /// Whether enough buffer memory was freed since the last hand-back to make another worth
    /// its cost; if so, counts it as done.
    pub(crate) fn trim_due(&mut self, now: Instant) -> bool {
        if self.trim_wait(now) != Some(Duration::ZERO) {
            return false;
        }
        self.high = self.used;
        self.last_trim = Some(now);
        true
    }

    /// With a hand-back worth making: how long until it may be made (the loop must wake then,
    /// even with nothing else to do, or the memory stays with the process).
    pub(crate) fn trim_wait(&self, now: Instant) -> Option<Duration> {
        if self.high.saturating_sub(self.used) < TRIM_STEP {
            return None;
        }
        let next = self.last_trim.map_or(now, |last| last + TRIM_INTERVAL);
        Some(next.saturating_duration_since(now))
    }

    pub(crate) fn used(&self) -> usize {
        self.used
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    pub(crate) fn is_over(&self) -> bool {
        self.used > self.limit
    }

    /// Which of `holders` (each connection and what it holds) to close to get back under seven
    /// eighths of the limit: the largest first. Taking more than the excess leaves room, so an
    /// attack must buffer another eighth of the budget before the loop looks again.
    pub(crate) fn victims(&self, holders: &mut [(ConnectionId, usize)]) -> Vec<ConnectionId> {
        let target = self.limit - self.limit / 8;
        let mut excess = self.used.saturating_sub(target);
        holders.sort_unstable_by_key(|h| std::cmp::Reverse(h.1));
        let mut chosen = Vec::new();
        for &(id, held) in holders.iter() {
            if excess == 0 || held == 0 {
                break;
            }
            chosen.push(id);
            excess = excess.saturating_sub(held);
        }
        chosen
    }
}

/// Asks the allocator to hand freed memory back to the system, where it can (glibc's
/// `malloc_trim`; other allocators return memory on their own).
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it takes no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(slot: u32) -> ConnectionId {
        ConnectionId::of_slot(slot)
    }

    #[test]
    fn recharging_tracks_what_connections_hold() {
        let mut budget = Budget::new(100);
        budget.recharge(0, 60);
        budget.recharge(0, 30);
        assert!(!budget.is_over());
        budget.recharge(30, 50);
        assert_eq!(budget.used(), 110);
        assert!(budget.is_over());
        budget.recharge(60, 0);
        assert_eq!(budget.used(), 50);
    }

    #[test]
    fn the_largest_holders_go_first_until_under_seven_eighths() {
        let mut budget = Budget::new(800);
        // Well-behaved connections hold little; three attackers hold a lot.
        let mut holders = vec![
            (id(0), 10),
            (id(1), 300),
            (id(2), 5),
            (id(3), 400),
            (id(4), 290),
        ];
        budget.recharge(0, holders.iter().map(|h| h.1).sum());
        assert_eq!(budget.used(), 1005);
        // 1005 - 700 = 305 too much: the 400-byte holder is enough.
        assert_eq!(budget.victims(&mut holders), [id(3)]);
        budget.recharge(0, 300);
        // 1305 - 700 = 605: 400, then 300 (not the well-behaved ones).
        assert_eq!(budget.victims(&mut holders), [id(3), id(1)]);
    }

    #[test]
    fn memory_is_handed_back_after_a_large_fall_at_most_once_a_second() {
        let mut budget = Budget::new(usize::MAX);
        let now = Instant::now();
        budget.recharge(0, 40 * 1024 * 1024);
        assert!(!budget.trim_due(now), "nothing freed yet");
        budget.recharge(40 * 1024 * 1024, 30 * 1024 * 1024);
        assert!(!budget.trim_due(now), "10 MiB freed: not worth it");
        budget.recharge(30 * 1024 * 1024, 0);
        assert!(budget.trim_due(now), "40 MiB freed");
        budget.recharge(0, 20 * 1024 * 1024);
        budget.recharge(20 * 1024 * 1024, 0);
        assert!(!budget.trim_due(now), "again, but within the second");
        assert!(budget.trim_due(now + TRIM_INTERVAL));
        release_freed_memory();
    }

    #[test]
    fn nothing_is_chosen_under_the_target_or_among_empty_connections() {
        let mut budget = Budget::new(800);
        let mut holders = vec![(id(0), 0), (id(1), 0)];
        budget.recharge(0, 650);
        assert!(budget.victims(&mut holders).is_empty());
        budget.recharge(0, 1000);
        assert!(budget.victims(&mut holders).is_empty(), "they hold nothing");
    }
}
