//! [`ServerHandle`]: the cloneable, thread-safe way to reach a server while it serves.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::address::Address;
use crate::failure::Failure;
use crate::stats::{Counters, Stats};

use super::failure_log::FailureLog;
use super::stop::StopSignal;

/// The `handle_error` hook: called from whichever thread ran the request.
pub(crate) type ErrorHook = Arc<dyn Fn(&Address, &Failure) + Send + Sync>;

/// State shared by the server, its handle, and every request in flight.
pub(crate) struct Shared {
    pub(crate) stop: StopSignal,
    pub(crate) counters: Counters,
    pub(crate) local: Address,
    pub(crate) on_error: Option<ErrorHook>,
    /// The default report, used when there is no `on_error` hook (and if the hook panics).
    pub(crate) failure_log: FailureLog,
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
        }
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
            .finish()
    }
}
