//! Stopping: the stop sequence (the `on_stop` hook, the grace timer, the listen backlog served,
//! the socket closed), `server_close`, and the one wind-down every ending goes through.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::transport::Transport;
use super::{Server, ServerHandle};
use crate::handler::RequestHandler;
use crate::mode::Mode;
use crate::socket::poll::{self, Ready};

/// The most requests a graceful stop takes from the socket's queue after it began: what a full
/// listen backlog holds with Linux's default `somaxconn`. Clients that keep connecting during the
/// stop must not keep it from ending.
const MAX_DRAINED: u64 = 4096;

/// How many times a graceful stop's look at the listen backlog may find nothing to take (another
/// prefork worker took it, or accepting failed) before it gives up.
const MAX_DRAIN_MISSES: u32 = 64;

impl<T, H, M> Server<T, H, M>
where
    T: Transport,
    H: RequestHandler<T::Request> + Clone,
    M: Mode,
{
    /// The stop has begun: tell the `on_stop` hook, and start counting the time running requests
    /// are given.
    pub(super) fn begin_stop(&mut self) {
        if let Some(hook) = &mut self.hooks.on_stop {
            hook(&self.handle);
        }
        self.mode.pass_stop_on();
        if let Some(deadline) = self.stop_deadline() {
            let left = deadline.saturating_duration_since(Instant::now());
            let shared = &self.handle.shared;
            let reason = match (shared.grace, shared.grace_deadline() == Some(deadline)) {
                (Some(grace), true) => format!("the grace period of {grace:?} ran out"),
                _ => format!(
                    "the drain timeout of {:?} ran out",
                    self.mode.drain_timeout().unwrap_or_default()
                ),
            };
            grace_timer(self.handle.clone(), left, reason);
        }
    }

    /// When running requests must be done: the grace period's end, and in a prefork worker the
    /// drain timeout's, whichever comes first. `None`: no limit.
    pub(super) fn stop_deadline(&self) -> Option<Instant> {
        let shared = &self.handle.shared;
        let began = shared.stop.requested_at().unwrap_or_else(Instant::now);
        let drain = self.mode.drain_timeout().filter(|_| self.worker);
        [shared.grace_deadline(), drain.map(|d| began + d)]
            .into_iter()
            .flatten()
            .min()
    }

    /// A graceful stop, after the loop: serves the backlog, closes the socket (removing a Unix
    /// socket file), and waits for the running requests until they end or the stop turns
    /// immediate.
    pub(super) fn finish_gracefully(&mut self, socket_fd: RawFd) -> io::Result<()> {
        // A prefork worker that recycles leaves the shared queue to the workers that go on.
        let recycling = self
            .request_limit
            .is_some_and(|limit| self.handle.shared.counters.accepted() >= limit);
        let queued = match recycling {
            true => 0,
            false => {
                self.shut_the_door();
                self.drain_backlog(socket_fd)?
            }
        };
        // The socket closes right after the last look at the queue (a connection that arrives
        // in between is reset by the kernel, so nothing else may run there); then connections
        // still sending their PROXY header are served once it is whole.
        let released = |server: &mut Self| {
            if queued > 0 {
                log::info!(
                    "took {queued} request(s) queued on {} when the stop began",
                    server.local_addr()
                );
            }
            server.flush_intake();
        };
        match self.wind_down(released, Some(None)) {
            Settled::Idle => {
                log::info!(
                    "graceful stop of the server on {}: every request finished{}",
                    self.local_addr(),
                    self.handle.shared.counters.closed_at_stop_note()
                );
                Ok(())
            }
            Settled::Running(n) => Err(self.stopped_at_once(&format!("{n} request(s) cut off"))),
        }
    }

    /// Takes what the kernel had queued for the socket when the stop began, so those clients are
    /// served instead of reset when the socket closes: until nothing is pending (for
    /// [`HANDSHAKES_SETTLE`](crate::socket::gate::HANDSHAKES_SETTLE) once the door is shut, so
    /// handshakes under way join the queue first), [`MAX_DRAINED`] were taken, or the stop turns
    /// immediate.
    pub(super) fn drain_backlog(&mut self, socket_fd: RawFd) -> io::Result<u64> {
        let mut taken = 0;
        let mut missed = 0;
        let abort = self.handle.shared.abort.pipe_fd();
        let settle = match self.door_shut {
            true => crate::socket::gate::HANDSHAKES_SETTLE,
            false => Duration::ZERO,
        };
        while taken < MAX_DRAINED && missed < MAX_DRAIN_MISSES {
            if poll::wait(socket_fd, abort, Some(settle))? != Ready::Socket {
                break;
            }
            // Nothing taken: another prefork worker was first, or a transient error was logged
            // (one connection failing must not leave the others behind it to be reset).
            match self.receive_one()? {
                Some(_) => taken += 1,
                None => missed += 1,
            }
        }
        Ok(taken)
    }

    /// Cuts off what is still running (kills the mode's child processes) and logs it; the error
    /// `serve_forever` returns for it.
    pub(super) fn stopped_at_once(&mut self, what: &str) -> io::Error {
        self.mode.cut_off();
        let (kind, reason) = self.handle.shared.abort_reason();
        log::warn!(
            "server on {} stopped at once ({reason}): {what}",
            self.local_addr()
        );
        io::Error::new(
            kind,
            format!(
                "the server on {} stopped at once ({reason}): {what}",
                self.local_addr()
            ),
        )
    }
}

/// What a wind-down found when it stopped waiting.
pub(super) enum Settled {
    /// No request runs any more.
    Idle,
    /// This many requests were still running (or it was not asked to wait).
    Running(u64),
}

impl<T: Transport, H, M: Mode> Server<T, H, M> {
    /// The one wind-down every ending goes through — a graceful stop, a prefork worker's exit,
    /// `server_close`, `Drop`: releases the socket, runs `released` (a graceful stop serves the
    /// connections still in the intake there), closes the intake, and lets the mode take no more;
    /// then, unless `wait` is `None`, waits until no request runs, its deadline passes or the stop
    /// turns immediate. The caller joins the mode's threads or cuts off what still runs.
    pub(super) fn wind_down(
        &mut self,
        released: impl FnOnce(&mut Self),
        wait: Option<Option<Instant>>,
    ) -> Settled {
        self.release_socket();
        released(self);
        self.close_intake();
        self.mode.stop_intake();
        let shared = Arc::clone(&self.handle.shared);
        let counters = &shared.counters;
        let Some(deadline) = wait else {
            return Settled::Running(counters.active());
        };
        if counters.wait_idle_unless(deadline, || shared.abort.is_requested())
            || counters.active() == 0
        {
            return Settled::Idle;
        }
        Settled::Running(counters.active())
    }

    /// Before the stop's last look at the listen backlog: makes a listener this process owns drop
    /// new connection attempts, so that none completes between that look and the close, to be
    /// reset (see [`crate::socket::gate`]). Not once a binary upgrade handed the socket over.
    pub(super) fn shut_the_door(&mut self) {
        let handed_over = self.handed_over();
        if let Some(socket) = self
            .socket
            .as_ref()
            .filter(|_| self.owns_listener && !handed_over)
        {
            self.door_shut = crate::socket::gate::shut_the_door(socket);
        }
    }

    /// Whether a binary upgrade handed the socket (and a Unix socket's file) to a new program.
    pub(super) fn handed_over(&self) -> bool {
        let prefork = &self.handle.shared.prefork;
        prefork.handed_over.load(Ordering::Acquire)
    }

    /// Closes the socket and, for a Unix server, removes the socket file it created — unless a
    /// binary upgrade handed the socket to a new program, which serves it now.
    pub(super) fn release_socket(&mut self) {
        self.socket = None;
        let handed_over = self.handed_over();
        if let (true, Some(unix_path)) = (handed_over, &mut self.unix_path) {
            unix_path.keep();
        }
        self.unix_path = None;
    }
}

impl<T: Transport, H, M: Mode> Drop for Server<T, H, M> {
    /// Closes the socket and tells running handlers the server is shutting down, without waiting
    /// for them (use [`Server::server_close`] to wait).
    fn drop(&mut self) {
        if !self.closed {
            self.handle.shared.stop.request();
            self.wind_down(|_| {}, None);
            self.handle.shared.flush_failures();
        }
    }
}

/// Turns the stop immediate, for `reason`, once `left` has passed, unless it already is.
fn grace_timer(server: ServerHandle, left: Duration, reason: String) {
    let spawned = std::thread::Builder::new()
        .name("socketserver-grace".to_string())
        .spawn(move || {
            let shared = &server.shared;
            if !shared.abort.sleep(left) {
                shared.abort_with(io::ErrorKind::TimedOut, reason);
            }
        });
    if let Err(e) = spawned {
        log::error!(
            "cannot start the grace period timer: {e}; the stop waits for running requests \
             without a time limit"
        );
    }
}

/// What users call: available on every server type, so that a handler of the wrong kind is
/// reported as such (once, with what a handler must be) rather than as a method that does not
/// exist.
impl<T: Transport, H, M: Mode> Server<T, H, M> {
    /// Closes the socket, then waits for running requests to end (Python's `server_close` with
    /// `block_on_close`). Also requests shutdown, so long-lived handlers that check
    /// [`ServerHandle::is_shutting_down`] can end early.
    ///
    /// With a [`close_timeout`](crate::Builder::close_timeout), it stops waiting when that passes and
    /// returns a `TimedOut` error saying how many requests were still running; they are left to
    /// finish on their own threads. A graceful stop's [`grace_period`](crate::Builder::grace_period)
    /// bounds the wait the same way, counted from the start of the stop, and after an immediate
    /// stop ([`ServerHandle::stop_now`], a second signal) it does not wait at all; then child
    /// processes still handling requests are killed. A Unix server removes the socket file it
    /// created.
    ///
    /// # Errors
    ///
    /// `TimedOut`, saying how many requests were still running, when the
    /// [`close_timeout`](crate::Builder::close_timeout) or the grace period passed first, or after an
    /// immediate stop.
    pub fn server_close(mut self) -> io::Result<()>
    where
        H: RequestHandler<T::Request> + Clone,
    {
        self.handle.shared.stop.request();
        self.handle.shared.notify_stopping();
        self.closed = true;
        let start = Instant::now();
        let shared = Arc::clone(&self.handle.shared);
        let deadline = [
            self.close_timeout.map(|t| start + t),
            shared.grace_deadline(),
        ]
        .into_iter()
        .flatten()
        .min();
        let settled = self.wind_down(|_| {}, Some(deadline));
        shared.flush_failures();
        let Settled::Running(running) = settled else {
            self.mode.join();
            log::info!("closed server on {}", self.local_addr());
            return Ok(());
        };
        let waited = start.elapsed();
        let grace_over = shared.grace_deadline().is_some_and(|d| d <= Instant::now());
        if shared.abort.is_requested() || grace_over {
            self.mode.cut_off();
        }
        log::warn!(
            "server on {}: {running} request(s) still running after {waited:?}; server_close stopped waiting",
            self.local_addr()
        );
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "server_close waited {waited:?} and {running} request(s) were still running; \
                 they were left to finish on their own threads"
            ),
        ))
    }
}
