//! Request counters shared by the serving loop and the threads that run handlers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Instant;

/// A snapshot of a server's counters, from [`ServerHandle::stats`](crate::ServerHandle::stats).
///
/// Every request is counted once in `accepted`, then once in exactly one of `completed`, `failed`
/// or `rejected` when it ends; `active` counts those that have not ended yet.
///
/// For a message server (feature `message`) a request is a connection, for as long as it is open:
/// `active` counts the connections open, `failed` those closed by a handler's error or panic, a
/// malformed message or a socket error, `completed` those that ended otherwise (the peer closed,
/// a limit, the stop), and `messages` and `message_failures` what its handlers did with them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted (stream servers) or datagrams received (datagram servers).
    pub accepted: u64,
    /// Requests accepted and not yet ended: running in a handler or waiting in a pool's queue.
    pub active: u64,
    /// Requests whose `setup`, `handle` and `finish` all returned `Ok`.
    pub completed: u64,
    /// Requests that ended in an error or a panic, and datagrams dropped as truncated.
    pub failed: u64,
    /// Requests closed without running the handler: refused by `verify_request`, turned away by a
    /// full pool queue, or left waiting for capacity when the server shut down.
    pub rejected: u64,
    /// Transient `accept`/`recv` errors the serving loop retried (for example `EMFILE`).
    pub accept_errors: u64,
    /// Messages a message server's handlers handled (`MessageHandler::handle` returned `Ok`);
    /// 0 for a stream or datagram server.
    pub messages: u64,
    /// `MessageHandler::handle` calls that returned an error or panicked (each closes its
    /// connection).
    pub message_failures: u64,
    /// TLS handshakes that failed or were too late (feature `tls`): each is also reported to
    /// `handle_error` and counted in `failed`.
    pub tls_handshake_failures: u64,
}

impl Stats {
    /// Adds `other` to these counters, field by field (a prefork parent summing its workers').
    pub(crate) fn add(&mut self, other: &Stats) {
        self.accepted += other.accepted;
        self.active += other.active;
        self.completed += other.completed;
        self.failed += other.failed;
        self.rejected += other.rejected;
        self.accept_errors += other.accept_errors;
        self.messages += other.messages;
        self.message_failures += other.message_failures;
        self.tls_handshake_failures += other.tls_handshake_failures;
    }
}

/// The live counters. `active` has a condition variable beside it so `server_close` can wait for
/// in-flight requests without polling.
#[derive(Default)]
pub(crate) struct Counters {
    accepted: AtomicU64,
    active: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    rejected: AtomicU64,
    accept_errors: AtomicU64,
    messages: AtomicU64,
    message_failures: AtomicU64,
    tls_handshake_failures: AtomicU64,
    /// Connections a stop closed between two requests (`wait_for_request`), and of those, the
    /// ones closed before their first request arrived: for the log line that ends a stop.
    closed_idle: AtomicU64,
    closed_before_request: AtomicU64,
    /// In a prefork parent: the sum of its workers' counters, as they last reported them.
    reported: Mutex<Stats>,
    idle_lock: Mutex<()>,
    idle: Condvar,
}

/// How a request ended, for [`Counters::request_ended`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Completed,
    Failed,
    Rejected,
    /// The handler passed the request on (a message server's accepting handler hands each
    /// connection to its loop): it is still active, and ends when the [`Ticket`] it holds does.
    ///
    /// [`Ticket`]: crate::control::Ticket
    #[cfg_attr(not(feature = "message"), allow(dead_code))]
    HandedOver,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        let reported = *self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stats = Stats {
            accepted: self.accepted.load(Ordering::Relaxed),
            active: self.active.load(Ordering::Relaxed),
            completed: self.completed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            accept_errors: self.accept_errors.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
            message_failures: self.message_failures.load(Ordering::Relaxed),
            tls_handshake_failures: self.tls_handshake_failures.load(Ordering::Relaxed),
        };
        stats.add(&reported);
        stats
    }

    /// A prefork parent's view of its workers' counters, added to its own in every snapshot.
    pub(crate) fn set_reported(&self, stats: Stats) {
        *self.reported.lock().unwrap_or_else(PoisonError::into_inner) = stats;
    }

    /// A request arrived and will be ended by exactly one `request_ended` call.
    pub(crate) fn request_started(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn request_ended(&self, ending: Ending) {
        let counter = match ending {
            Ending::Completed => &self.completed,
            Ending::Failed => &self.failed,
            Ending::Rejected => &self.rejected,
            // The request goes on elsewhere, which ends it (see `Ticket`).
            Ending::HandedOver => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if self.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Taking the lock orders this notify after a waiter's check-then-wait, so no wake-up is lost.
            let _guard = self
                .idle_lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.idle.notify_all();
        }
    }

    /// A stop closed a connection waiting for its next request (`first`: for its first one).
    pub(crate) fn closed_at_stop(&self, first: bool) {
        self.closed_idle.fetch_add(1, Ordering::Relaxed);
        if first {
            self.closed_before_request.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What [`closed_at_stop`](Self::closed_at_stop) counted: the connections closed, and of
    /// those, the ones closed before their first request.
    pub(crate) fn closed_at_stop_counts(&self) -> (u64, u64) {
        (
            self.closed_idle.load(Ordering::Relaxed),
            self.closed_before_request.load(Ordering::Relaxed),
        )
    }

    /// What [`closed_at_stop`](Self::closed_at_stop) counted, for a log line: empty if nothing,
    /// else `"; N connection(s) …"`.
    pub(crate) fn closed_at_stop_note(&self) -> String {
        let (idle, before) = self.closed_at_stop_counts();
        match (idle, before) {
            (0, _) => String::new(),
            (_, 0) => format!("; {idle} idle connection(s) closed between requests"),
            _ => format!(
                "; {idle} idle connection(s) closed between requests, {before} of them before \
                 their first request arrived"
            ),
        }
    }

    /// A message server's handler handled a message (`ok`), or failed on it.
    #[cfg(feature = "message")]
    pub(crate) fn message_handled(&self, ok: bool) {
        match ok {
            true => self.messages.fetch_add(1, Ordering::Relaxed),
            false => self.message_failures.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// A TLS handshake failed or was too late.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn accept_error(&self) {
        self.accept_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    pub(crate) fn active(&self) -> u64 {
        self.active.load(Ordering::Acquire)
    }

    /// Waits until no request is active (`true`), `deadline` passes or `given_up()` holds
    /// (`false`); whoever makes `given_up` hold calls [`wake`](Self::wake) after.
    pub(crate) fn wait_idle_unless(
        &self,
        deadline: Option<Instant>,
        given_up: impl Fn() -> bool,
    ) -> bool {
        let mut guard = self
            .idle_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while self.active() > 0 {
            if given_up() {
                return false;
            }
            match deadline {
                None => {
                    guard = self
                        .idle
                        .wait(guard)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    guard = self
                        .idle
                        .wait_timeout(guard, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        true
    }

    /// Wakes every `wait_idle_unless` to look at its condition again.
    pub(crate) fn wake(&self) {
        // Under the lock, so a waiter between its check and its wait cannot miss it.
        let _guard = self
            .idle_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.idle.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn each_request_ends_in_exactly_one_bucket() {
        let c = Counters::default();
        for _ in 0..3 {
            c.request_started();
        }
        c.request_ended(Ending::Completed);
        c.request_ended(Ending::Failed);
        assert_eq!(c.snapshot().active, 1);
        c.request_ended(Ending::Rejected);
        let s = c.snapshot();
        assert_eq!(
            (s.accepted, s.active, s.completed, s.failed, s.rejected),
            (3, 0, 1, 1, 1)
        );
    }

    #[test]
    fn the_stop_note_says_what_was_closed_and_nothing_when_nothing_was() {
        let c = Counters::default();
        assert_eq!(c.closed_at_stop_note(), "");
        c.closed_at_stop(false);
        assert_eq!(
            c.closed_at_stop_note(),
            "; 1 idle connection(s) closed between requests"
        );
        c.closed_at_stop(true);
        assert_eq!(
            c.closed_at_stop_note(),
            "; 2 idle connection(s) closed between requests, 1 of them before their first \
             request arrived"
        );
    }

    #[test]
    fn wait_idle_times_out_while_busy_and_wakes_when_idle() {
        let c = Arc::new(Counters::default());
        c.request_started();
        let never = || false;
        assert!(!c.wait_idle_unless(Some(Instant::now() + Duration::from_millis(20)), never));
        let c2 = Arc::clone(&c);
        let t = std::thread::spawn(move || c2.request_ended(Ending::Completed));
        assert!(c.wait_idle_unless(Some(Instant::now() + Duration::from_secs(10)), never));
        t.join().unwrap();
    }

    #[test]
    fn wait_idle_unless_gives_up_when_woken_with_its_condition_met() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let c = Arc::new(Counters::default());
        let given_up = Arc::new(AtomicBool::new(false));
        c.request_started();
        let (c2, g2) = (Arc::clone(&c), Arc::clone(&given_up));
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            g2.store(true, Ordering::SeqCst);
            c2.wake();
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        assert!(!c.wait_idle_unless(Some(deadline), || given_up.load(Ordering::SeqCst)));
        assert!(Instant::now() < deadline, "woken, not timed out");
        t.join().unwrap();
    }
}
