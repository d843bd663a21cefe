//! [`ServerHandle`]: the cloneable, thread-safe way to reach a server while it serves.

use std::fmt;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::address::Address;
use crate::control::Notifier;
use crate::failure::Failure;
use crate::stats::{Counters, Stats};

use super::failure_log::FailureLog;
use super::stop::StopSignal;

/// The `handle_error` hook: called from whichever thread ran the request.
pub(crate) type ErrorHook = Arc<dyn Fn(&Address, &Failure) + Send + Sync>;

/// State shared by the server, its handle, and every request in flight.
pub(crate) struct Shared {
    pub(crate) stop: StopSignal,
    /// Stop waiting for running requests: a second signal, `stop_now`, or the grace period over.
    pub(crate) abort: StopSignal,
    /// Why `abort` was requested, for the log line and `serve_forever`'s error.
    pub(crate) abort_reason: OnceLock<(io::ErrorKind, String)>,
    /// With a graceful stop: how long running requests may take to finish once it begins.
    pub(crate) grace: Option<Duration>,
    pub(crate) counters: Counters,
    pub(crate) local: Address,
    pub(crate) on_error: Option<ErrorHook>,
    /// The default report, used when there is no `on_error` hook (and if the hook panics).
    pub(crate) failure_log: FailureLog,
    /// The line to systemd, when `NOTIFY_SOCKET` asked for one (see [`crate::systemd`]).
    pub(crate) notify: Option<Notifier>,
    /// In a prefork parent: what the reload and resize signals asked for.
    pub(crate) prefork: crate::control::PreforkRequests,
    /// Where the admin listener serves the metrics (feature `metrics`).
    #[cfg(feature = "metrics")]
    pub(crate) metrics_addr: Option<Address>,
}

impl Shared {
    /// Passes a failed request to `handle_error`, or logs it (throttled) if there is no hook. A
    /// panicking hook is logged too, so it cannot take a worker thread down.
    pub(crate) fn report(&self, peer: &Address, failure: &Failure) {
        match &self.on_error {
            None => self.failure_log.failed(peer, failure),
            Some(hook) => {
                if catch_unwind(AssertUnwindSafe(|| hook(peer, failure))).is_err() {
                    self.failure_log.hook_panicked(peer, failure);
                }
            }
        }
    }

    /// Requests an immediate stop for `reason`; returns whether this call was the first. Also
    /// requests the ordinary stop, so whatever waits on either wakes.
    pub(crate) fn abort(&self, reason: impl Into<String>) -> bool {
        self.abort_with(io::ErrorKind::Interrupted, reason)
    }

    /// [`abort`](Self::abort), saying which error kind `serve_forever` returns for it.
    pub(crate) fn abort_with(&self, kind: io::ErrorKind, reason: impl Into<String>) -> bool {
        let _ = self.abort_reason.set((kind, reason.into()));
        self.stop.request();
        let first = self.abort.request();
        self.counters.wake();
        first
    }

    /// Why the stop became immediate, and the error kind that reports it.
    pub(crate) fn abort_reason(&self) -> (io::ErrorKind, String) {
        self.abort_reason.get().cloned().unwrap_or((
            io::ErrorKind::Interrupted,
            "stop_now was called".to_string(),
        ))
    }

    /// When a graceful stop's grace period ends: `None` with no grace period, or before the stop.
    pub(crate) fn grace_deadline(&self) -> Option<Instant> {
        let began = self.stop.requested_at()?;
        self.grace.map(|grace| began + grace)
    }

    /// Tells systemd the server is serving (`READY=1`).
    pub(crate) fn notify_ready(&self) {
        if let Some(notify) = &self.notify {
            notify.ready(notify.status(&self.counters.snapshot()));
        }
    }

    /// Tells systemd the server is stopping (`STOPPING=1`), once, from whichever path sees the
    /// stop first: `shutdown`, the serving loop ending, or `server_close`.
    pub(crate) fn notify_stopping(&self) {
        if let Some(notify) = &self.notify {
            notify.stopping(notify.status(&self.counters.snapshot()));
        }
    }

    /// On each wake-up of the serving loop: the watchdog ping and status refresh when due, or
    /// `STOPPING=1` once a stop was requested (however it was).
    pub(crate) fn notify_tick(&self) {
        if self.stop.is_requested() {
            self.notify_stopping();
        } else if let Some(notify) = &self.notify {
            notify.tick(|| notify.status(&self.counters.snapshot()));
        }
    }

    /// Logs how many failures the default report held back since its last line (when the server
    /// closes, since no later line will say it).
    pub(crate) fn flush_failures(&self) {
        self.failure_log.flush(&self.local);
    }
}

/// A handle to a running server: shut it down, read its stats, from any thread.
///
/// Get one from [`Server::handle`](crate::Server::handle) before moving the server into its serving
/// thread, or from [`StreamRequest::server`](crate::StreamRequest::server) /
/// [`DatagramRequest::server`](crate::DatagramRequest::server) inside a handler. It is cheap to
/// clone and `Send + Sync`.
#[derive(Clone)]
pub struct ServerHandle {
    pub(crate) shared: Arc<Shared>,
}

impl ServerHandle {
    /// Asks the server to stop, and returns at once.
    ///
    /// `serve_forever` returns within milliseconds (there is no poll interval to wait out). No new
    /// connection or datagram is taken after this; requests already running finish, and
    /// [`Server::server_close`](crate::Server::server_close) waits for them. Calling it before
    /// `serve_forever` starts makes `serve_forever` return at once; calling it from inside a
    /// handler is safe in every mode, because it never waits.
    ///
    /// Unlike Python's `shutdown()`, this does not block until the loop has exited (which is what
    /// makes Python's deadlock when called from a handler): join the serving thread for that.
    /// Shutdown is final: the server does not serve again.
    pub fn shutdown(&self) {
        if self.shared.stop.request() {
            log::info!("shutdown requested for server on {}", self.shared.local);
            self.shared.notify_stopping();
        }
    }

    /// Stops at once: like [`shutdown`](Self::shutdown), and in a graceful stop also stops waiting
    /// for the requests still running — what a second SIGINT or SIGTERM, or a SIGQUIT, does.
    /// `serve_forever` returns within milliseconds with an `Interrupted` error saying how many
    /// requests were cut off (`Ok` if none were); what else an immediate stop does is in
    /// [Stopping gracefully](crate#stopping-gracefully).
    pub fn stop_now(&self) {
        // Logged first: once asked, the serving thread may end the process before this logs.
        if !self.shared.abort.is_requested() {
            log::warn!(
                "stopping server on {} at once; {} request(s) running",
                self.shared.local,
                self.shared.counters.active()
            );
        }
        self.shared.abort("stop_now was called");
    }

    /// Whether the server is stopping: [`shutdown`](Self::shutdown) or
    /// [`stop_now`](Self::stop_now) was called, or a signal armed by
    /// [`Builder::stop_on_signals`](crate#stopping-gracefully) arrived. Long-lived
    /// handlers (a chat session, a long computation) check it to end early, as soon as the stop
    /// begins rather than when the grace period runs out. Between two requests of a keep-alive
    /// connection, [`StreamRequest::wait_for_request`](crate::StreamRequest::wait_for_request)
    /// does it for you, ending an idle connection at once; a handler with its own read loop can
    /// wake now and then to look:
    ///
    /// ```
    /// use std::io::{self, BufRead, Write};
    /// use std::time::Duration;
    /// use socketserver::StreamRequest;
    ///
    /// /// Answers lines until the client leaves or the server stops.
    /// fn keep_alive(req: &mut StreamRequest) -> io::Result<()> {
    ///     // Wake every second while idle, to look at the server's state.
    ///     req.set_read_timeout(Some(Duration::from_secs(1)))?;
    ///     let mut line = String::new();
    ///     loop {
    ///         if req.server().is_shutting_down() {
    ///             return Ok(()); // between requests: end the connection now
    ///         }
    ///         match req.read_line(&mut line) {
    ///             Ok(0) => return Ok(()), // the client closed
    ///             Ok(_) => {
    ///                 req.write_all(line.to_uppercase().as_bytes())?;
    ///                 line.clear();
    ///             }
    ///             // Idle for a second: loop round to check for a stop. (What part of a line
    ///             // arrived stays in `line`.)
    ///             Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
    ///             Err(e) => return Err(e),
    ///         }
    ///     }
    /// }
    /// # let _ = keep_alive;
    /// ```
    /// Tells systemd the server is reloading its configuration (`RELOADING=1`, with the
    /// `MONOTONIC_USEC=` that `Type=notify-reload` requires); call
    /// [`notify_ready`](Self::notify_ready) when done. Does nothing unless the server notifies
    /// systemd (see [`systemd`](crate::systemd)).
    pub fn notify_reloading(&self) {
        if let Some(notify) = &self.shared.notify {
            notify.reloading();
        }
    }

    /// Tells systemd the server is ready (`READY=1`, with the current status) — again, after
    /// [`notify_reloading`](Self::notify_reloading). `serve_forever` sends the first one itself; a
    /// program serving with `handle_request` calls this once it is ready. Does nothing unless
    /// the server notifies systemd.
    pub fn notify_ready(&self) {
        self.shared.notify_ready();
    }

    /// Whether this server reports to systemd: `NOTIFY_SOCKET` was set,
    /// [`Builder::notify_systemd`](crate::Builder::notify_systemd) was left on, and this is the
    /// process systemd started (not a child of a process mode).
    #[must_use]
    pub fn notifies_systemd(&self) -> bool {
        self.shared.notify.is_some()
    }

    /// Whether [`shutdown`](Self::shutdown) has been called. Long-lived handlers (a chat session,
    /// say) can check it to end early.
    #[must_use]
    pub fn is_shutting_down(&self) -> bool {
        self.shared.stop.is_requested()
    }

    /// A snapshot of the server's counters.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// The server's counters in the Prometheus text exposition format (feature `metrics`), to
    /// serve from an endpoint of your own with the `Content-Type`
    /// [`metrics::CONTENT_TYPE`](crate::metrics::CONTENT_TYPE); the metric families are listed
    /// in [`crate::metrics`].
    #[cfg(feature = "metrics")]
    #[must_use]
    pub fn metrics_text(&self) -> String {
        crate::metrics::text(&self.stats())
    }

    /// Where the admin listener of [`Builder::metrics_addr`](crate::Builder::metrics_addr)
    /// serves the metrics and status page (feature `metrics`): `None` without one, and in the
    /// children of a process mode (their parent serves it).
    #[cfg(feature = "metrics")]
    #[must_use]
    pub fn metrics_addr(&self) -> Option<&Address> {
        self.shared.metrics_addr.as_ref()
    }

    /// The address the server is bound to (Python's `server_address`).
    #[must_use]
    pub fn local_addr(&self) -> &Address {
        &self.shared.local
    }
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.shared.local)
            .field("shutting_down", &self.is_shutting_down())
            .field("stopping_at_once", &self.shared.abort.is_requested())
            .finish()
    }
}
