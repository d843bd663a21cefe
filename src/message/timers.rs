//! The loop's timers: one heap for every connection's idle, message and lifetime limits, instead of
//! a thread (or a socket timeout) per connection.
//!
//! Entries are never removed early. A connection's limits move all the time (every byte read
//! pushes its idle limit back), so the heap holds a wake-up time per connection, and when one comes
//! the loop looks at the connection afresh: if nothing has expired yet, it re-arms the
//! connection's next limit. A stale entry (for a closed connection, or a limit pushed back) costs
//! one pop. A connection gets a new entry only when its next limit comes *earlier* than the one
//! already armed (a message starting with the idle limit far away), so the heap stays at about one
//! entry per connection.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::sender::ConnectionId;

/// How long a message may take to arrive, from its first byte, unless
/// [`MessageBuilder::message_timeout`](super::MessageBuilder::message_timeout) says otherwise.
pub const DEFAULT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, ConnectionId)>>,
}

impl Timers {
    /// Wakes the loop for `id` at `at`.
    pub(crate) fn arm(&mut self, at: Instant, id: ConnectionId) {
        self.heap.push(Reverse((at, id)));
    }

    /// The connection of the earliest entry due by `now`, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<ConnectionId> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse((_, id))| id),
            _ => None,
        }
    }

    /// How long the loop may sleep before the next entry is due (`None`: no entry).
    pub(crate) fn next_wait(&self, now: Instant) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse((at, _))| at.saturating_duration_since(now))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(slot: u32) -> ConnectionId {
        ConnectionId::of_slot(slot)
    }

    #[test]
    fn entries_come_due_in_time_order() {
        let now = Instant::now();
        let mut timers = Timers::default();
        timers.arm(now + Duration::from_secs(3), id(3));
        timers.arm(now + Duration::from_secs(1), id(1));
        timers.arm(now + Duration::from_secs(2), id(2));
        assert_eq!(timers.next_wait(now), Some(Duration::from_secs(1)));
        assert_eq!(timers.pop_due(now), None);
        let later = now + Duration::from_secs(2);
        assert_eq!(timers.pop_due(later), Some(id(1)));
        assert_eq!(timers.pop_due(later), Some(id(2)));
        assert_eq!(timers.pop_due(later), None);
        assert_eq!(timers.len(), 1);
        assert_eq!(
            timers.next_wait(later + Duration::from_secs(5)),
            Some(Duration::ZERO)
        );
    }
}
