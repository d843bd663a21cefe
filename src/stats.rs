//! Request counters shared by the serving loop and the threads that run handlers, and their
//! snapshot, [`Stats`].
//!
//! Every counter is a relaxed atomic, touched once or twice per request or message, and read
//! only when a snapshot is taken: nothing on a request's path takes a lock. Those touched on
//! every request, message or read are kept per thread ([`shards`]) and summed by the snapshot;
//! a stream connection's bytes and the limit that closed it are kept on the connection and
//! added when it ends.

mod histogram;
mod shards;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use histogram::LatencyHistogram;
pub(crate) use histogram::BUCKETS;
use shards::Shards;

/// A snapshot of a server's counters, from [`ServerHandle::stats`](crate::ServerHandle::stats).
///
/// Every request is counted once in `accepted`, then once in exactly one of `completed`, `failed`
/// or `rejected` when it ends; `active` counts those that have not ended yet.
///
/// For a message server (feature `message`) a request is a connection, for as long as it is open:
/// `active` counts the connections open, `failed` those closed by a handler's error or panic, a
/// malformed message or a socket error, `completed` those that ended otherwise (the peer closed,
/// a limit, the stop), and `messages`, `message_failures` and `message_panics` what its handlers
/// did with the messages.
///
/// A [`Prefork`](crate::Prefork) parent's snapshot is the sum of its workers' (as they last
/// reported them, every 50 ms or so, and the final counts of those that exited), plus the
/// `workers_*` fields it keeps itself. A [`Process`](crate::Process) server counts what its
/// parent sees (each request's acceptance and how its child ended); what happens inside a
/// per-request child (bytes, latencies, panics, limits) is not reported back. Counters
/// (`accepted`, `bytes_in`, …) only grow; the
/// gauges (`active`, `queue_depth`, `busy_workers`, `workers_alive`) say how things are now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted (stream servers) or datagrams received (datagram servers).
    pub accepted: u64,
    /// Requests accepted and not yet ended: running in a handler or waiting in a pool's queue.
    /// For a stream or message server, the connections open.
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
    /// Of `rejected`, the requests `verify_request` refused.
    pub refused: u64,
    /// Of `failed`, the requests whose handler (`setup`, `handle` or `finish`) panicked.
    pub panics: u64,
    /// Of `message_failures`, the `MessageHandler::handle` calls that panicked.
    pub message_panics: u64,
    /// Bytes stream and message servers received from peers, as read from the sockets (with
    /// TLS, the encrypted bytes; not the PROXY protocol header). A stream connection's bytes are
    /// added when it ends, and whenever its handler waits for the next request in
    /// [`wait_for_request`](crate::StreamRequest::wait_for_request); a message server's as
    /// they are read. Datagram servers do not count bytes.
    pub bytes_in: u64,
    /// Bytes stream and message servers sent to peers, as written to the sockets (with TLS, the
    /// encrypted bytes); added as `bytes_in` is.
    pub bytes_out: u64,
    /// Connections closed by each of the server's limits (see [`ClosedBy`]).
    pub closed_by: ClosedBy,
    /// Gauge: requests (a [`Pool`](crate::Pool)'s connections or datagrams, a message server's
    /// batches of messages) waiting in a pool's queue for a worker.
    pub queue_depth: u64,
    /// Gauge: handlers running now (stream and datagram requests, a message server's pool
    /// workers busy with a batch; not a message server's handlers on its event loop).
    pub busy_workers: u64,
    /// Gauge, in a [`Prefork`](crate::Prefork) parent: worker processes running.
    pub workers_alive: u64,
    /// In a prefork parent: workers that exited with a failure (or were killed) and were
    /// replaced.
    pub workers_restarted: u64,
    /// In a prefork parent: workers that exited on their own without a failure (after
    /// [`max_requests`](crate::Prefork::max_requests)) and were replaced. Workers a reload or
    /// a resize retired are not counted.
    pub workers_recycled: u64,
    /// Pushes (a message server's `Sender::send`, feature `message`) queued on their connection.
    pub pushes_sent: u64,
    /// Pushes dropped: their connection had closed (or was closing), or the push took its
    /// unsent bytes over `max_pending_output`, which closes it.
    pub pushes_dropped: u64,
    /// How long stream and datagram requests took, from the handler's `setup` to the end of
    /// `finish` (the whole connection, for a stream server).
    pub request_time: LatencyHistogram,
    /// How long `MessageHandler::handle` took on each message.
    pub message_time: LatencyHistogram,
    /// How long a message server's batches of messages waited in a [`Pool`](crate::Pool)'s
    /// queue before a worker took them.
    pub queue_wait: LatencyHistogram,
}

/// Connections the server closed because one of its limits passed, by limit; the request or
/// connection is also counted in `failed` or `completed` as it ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClosedBy {
    /// Nothing moved for the idle timeout ([`Builder::idle_timeout`](crate::Builder::idle_timeout)).
    pub idle: u64,
    /// The connection reached its [maximum lifetime](crate::Builder::max_connection_lifetime).
    pub lifetime: u64,
    /// A stream handler's [`Deadline`](crate::Deadline) passed, or its peer sent slower than its
    /// minimum rate.
    pub deadline: u64,
    /// A message server's message did not arrive whole within the message timeout.
    pub message_timeout: u64,
    /// A message server's peer did not read what was sent to it (`max_pending_output`).
    pub slow_reader: u64,
    /// A message server went over its buffered memory budget and closed the connection holding
    /// the most.
    pub over_budget: u64,
    /// The PROXY protocol header was missing, malformed, from an untrusted peer or too late
    /// (feature `proxy`).
    pub proxy_header: u64,
    /// The TLS handshake failed or was too late: the same count as
    /// [`Stats::tls_handshake_failures`].
    pub handshake: u64,
}

impl ClosedBy {
    fn add(&mut self, o: &ClosedBy) {
        self.idle += o.idle;
        self.lifetime += o.lifetime;
        self.deadline += o.deadline;
        self.message_timeout += o.message_timeout;
        self.slow_reader += o.slow_reader;
        self.over_budget += o.over_budget;
        self.proxy_header += o.proxy_header;
        self.handshake += o.handshake;
    }
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
        self.refused += other.refused;
        self.panics += other.panics;
        self.message_panics += other.message_panics;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.closed_by.add(&other.closed_by);
        self.queue_depth += other.queue_depth;
        self.busy_workers += other.busy_workers;
        self.workers_alive += other.workers_alive;
        self.workers_restarted += other.workers_restarted;
        self.workers_recycled += other.workers_recycled;
        self.pushes_sent += other.pushes_sent;
        self.pushes_dropped += other.pushes_dropped;
        self.request_time.add(&other.request_time);
        self.message_time.add(&other.message_time);
        self.queue_wait.add(&other.queue_wait);
    }
}

/// Which limit closed a connection, for [`Counters::closed_by`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    Idle,
    Lifetime,
    Deadline,
    #[cfg_attr(not(feature = "message"), allow(dead_code))]
    MessageTimeout,
    #[cfg_attr(not(feature = "message"), allow(dead_code))]
    SlowReader,
    #[cfg_attr(not(feature = "message"), allow(dead_code))]
    OverBudget,
    #[cfg_attr(not(feature = "proxy"), allow(dead_code))]
    ProxyHeader,
}

/// The live [`ClosedBy`].
#[derive(Default)]
struct ClosedByCounters([AtomicU64; 7]);

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
    tls_handshake_failures: AtomicU64,
    refused: AtomicU64,
    closed_by: ClosedByCounters,
    pushes_sent: AtomicU64,
    pushes_dropped: AtomicU64,
    /// Messages, panics, bytes, the pool gauges and the latencies, per thread.
    hot: Shards,
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
        // How requests ended first, acquiring what each ended request did before (its bytes, its
        // time, its worker going idle): a snapshot that counts a request as ended has its figures.
        let ended = [&self.completed, &self.failed, &self.rejected]
            .map(|counter| counter.load(Ordering::Acquire));
        let (accepted, active) = (
            self.accepted.load(Ordering::Relaxed),
            self.active.load(Ordering::Acquire),
        );
        let hot = self.hot.sum();
        let mut stats = Stats {
            accepted,
            active,
            completed: ended[0],
            failed: ended[1],
            rejected: ended[2],
            accept_errors: self.accept_errors.load(Ordering::Relaxed),
            messages: hot.messages,
            message_failures: hot.message_failures,
            tls_handshake_failures: self.tls_handshake_failures.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            panics: hot.panics,
            message_panics: hot.message_panics,
            bytes_in: hot.bytes_in,
            bytes_out: hot.bytes_out,
            closed_by: self.closed_by.snapshot(),
            queue_depth: hot.queue_depth,
            busy_workers: hot.busy_workers,
            workers_alive: 0,
            workers_restarted: 0,
            workers_recycled: 0,
            pushes_sent: self.pushes_sent.load(Ordering::Relaxed),
            pushes_dropped: self.pushes_dropped.load(Ordering::Relaxed),
            request_time: hot.request_time,
            message_time: hot.message_time,
            queue_wait: hot.queue_wait,
        };
        // The TLS handshakes are one count under two names.
        stats.closed_by.handshake = stats.tls_handshake_failures;
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
        // Released: a snapshot that sees this request ended sees what it did (see `snapshot`).
        counter.fetch_add(1, Ordering::Release);
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

    /// A message server's handler handled a message (`step`: how it went), taking `took`.
    #[cfg(feature = "message")]
    pub(crate) fn message_handled(&self, step: &Result<(), crate::Failure>, took: Duration) {
        let hot = self.hot.mine();
        hot.message_time.record(took);
        match step {
            Ok(()) => hot.messages.fetch_add(1, Ordering::Relaxed),
            Err(failure) => {
                if matches!(failure, crate::Failure::Panic(_)) {
                    hot.message_panics.fetch_add(1, Ordering::Relaxed);
                }
                hot.message_failures.fetch_add(1, Ordering::Relaxed)
            }
        };
    }

    /// `verify_request` refused a request (which is then ended as rejected).
    pub(crate) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A stream or datagram request's handler ran for `took`; `panicked`: it panicked.
    pub(crate) fn request_ran(&self, took: Duration, panicked: bool) {
        let hot = self.hot.mine();
        hot.request_time.record(took);
        if panicked {
            hot.panics.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Bytes a connection received and sent (added when a stream request ends, or as a message
    /// server reads and writes them).
    pub(crate) fn moved(&self, bytes_in: u64, bytes_out: u64) {
        let hot = self.hot.mine();
        if bytes_in > 0 {
            hot.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        }
        if bytes_out > 0 {
            hot.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        }
    }

    /// `limit` closed a connection.
    pub(crate) fn closed_by(&self, limit: Limit) {
        self.closed_by.0[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A handler started running (`true`) or returned (`false`): the busy workers gauge.
    pub(crate) fn busy(&self, started: bool) {
        match started {
            true => self.hot.mine().busy_workers.fetch_add(1, Ordering::Relaxed),
            false => self.hot.mine().busy_workers.fetch_sub(1, Ordering::Relaxed),
        };
    }

    /// A request went into a pool's queue (`true`) or out of it (`false`).
    pub(crate) fn queued(&self, into: bool) {
        match into {
            true => self.hot.mine().queue_depth.fetch_add(1, Ordering::Relaxed),
            false => self.hot.mine().queue_depth.fetch_sub(1, Ordering::Relaxed),
        };
    }

    /// A batch of messages waited `waited` in a pool's queue.
    #[cfg(feature = "message")]
    pub(crate) fn waited(&self, waited: Duration) {
        self.hot.mine().queue_wait.record(waited);
    }

    /// A push was queued on its connection (`true`) or dropped.
    #[cfg(feature = "message")]
    pub(crate) fn pushed(&self, sent: bool) {
        match sent {
            true => self.pushes_sent.fetch_add(1, Ordering::Relaxed),
            false => self.pushes_dropped.fetch_add(1, Ordering::Relaxed),
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

impl ClosedByCounters {
    fn snapshot(&self) -> ClosedBy {
        let n = |limit: Limit| self.0[limit as usize].load(Ordering::Relaxed);
        ClosedBy {
            idle: n(Limit::Idle),
            lifetime: n(Limit::Lifetime),
            deadline: n(Limit::Deadline),
            message_timeout: n(Limit::MessageTimeout),
            slow_reader: n(Limit::SlowReader),
            over_budget: n(Limit::OverBudget),
            proxy_header: n(Limit::ProxyHeader),
            handshake: 0,
        }
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
