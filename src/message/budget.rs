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

use super::sender::ConnectionId;

/// The memory all of a message server's connections may hold together in buffered input and
/// pending output, unless [`Builder::max_buffered_memory`](crate::Builder::max_buffered_memory)
/// says otherwise. Per process: each [`Prefork`](crate::Prefork) worker has its own.
pub const DEFAULT_MAX_BUFFERED_MEMORY: usize = 256 * 1024 * 1024;

/// The loop's account of the bytes its connections hold.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    used: usize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Budget {
        Budget { limit, used: 0 }
    }

    /// A connection that was charged `old` bytes now holds `new`.
    pub(crate) fn recharge(&mut self, old: usize, new: usize) {
        self.used = self.used.saturating_sub(old).saturating_add(new);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn id(slot: u32) -> ConnectionId {
        ConnectionId {
            slot,
            generation: 0,
        }
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
    fn nothing_is_chosen_under_the_target_or_among_empty_connections() {
        let mut budget = Budget::new(800);
        let mut holders = vec![(id(0), 0), (id(1), 0)];
        budget.recharge(0, 650);
        assert!(budget.victims(&mut holders).is_empty());
        budget.recharge(0, 1000);
        assert!(budget.victims(&mut holders).is_empty(), "they hold nothing");
    }
}
