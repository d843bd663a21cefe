//! The intake: where new connections wait, holding no thread, until they have something to say
//! (their PROXY protocol header whole, their TLS handshake done) before the mode gets them. The
//! stage itself, its thread and its readiness loop, is in `stage` (features `proxy` or `tls`);
//! this is the server's side of it, which does nothing without them.

#[cfg(any(feature = "proxy", feature = "tls"))]
mod stage;

#[cfg(any(feature = "proxy", feature = "tls"))]
pub(super) use stage::Intake;

use std::io;
use std::os::fd::RawFd;
#[cfg(any(feature = "proxy", feature = "tls"))]
use std::sync::Arc;
#[cfg(any(feature = "proxy", feature = "tls"))]
use std::time::Duration;

use super::transport::Transport;
use super::Server;
#[cfg(any(feature = "proxy", feature = "tls"))]
use crate::handler::Admission;
use crate::handler::RequestHandler;
use crate::mode::Mode;
#[cfg(any(feature = "proxy", feature = "tls"))]
use crate::socket::poll::{self, Ready};
#[cfg(any(feature = "proxy", feature = "tls"))]
use crate::stats::Ending;

/// The server's side of the intake: connections wait there, holding no thread, for their PROXY
/// protocol header and their TLS handshake before the mode gets them. Only `serve_forever` uses
/// it, and only a stream server with either on that serves itself (not a prefork parent).
impl<T, H, M> Server<T, H, M>
where
    T: Transport,
    H: RequestHandler<T::Request> + Clone,
    M: Mode,
{
    pub(super) fn open_intake(&mut self) -> io::Result<()> {
        #[cfg(any(feature = "proxy", feature = "tls"))]
        if let Some((what, timeout)) = self.preamble().filter(|_| T::STREAM) {
            let shared = Arc::clone(&self.handle.shared);
            let handshakes = what.contains("TLS");
            self.intake = Some(stage::Intake::start(
                shared,
                what,
                timeout,
                handshakes,
                &self.threads,
            )?);
        }
        Ok(())
    }

    /// What connections must do before they are served, for the intake's errors, and the time
    /// they have for it from accept: the TLS handshake's (which covers a PROXY header before it),
    /// or the PROXY header's.
    #[cfg(any(feature = "proxy", feature = "tls"))]
    fn preamble(&self) -> Option<(&'static str, Duration)> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.connection.tls_here() {
            #[cfg(feature = "proxy")]
            if self.connection.proxy.is_some() {
                return Some((
                    "PROXY protocol header and TLS handshake",
                    tls.handshake_timeout(),
                ));
            }
            return Some(("TLS handshake", tls.handshake_timeout()));
        }
        #[cfg(feature = "proxy")]
        if let Some(proxy) = &self.connection.proxy {
            return Some(("PROXY protocol header", proxy.timeout));
        }
        None
    }

    pub(super) fn bell_fd(&self) -> Option<RawFd> {
        #[cfg(any(feature = "proxy", feature = "tls"))]
        return self.intake.as_ref().map(stage::Intake::bell_fd);
        #[cfg(not(any(feature = "proxy", feature = "tls")))]
        None
    }

    /// Hands the connections whose header is whole to the mode; a `LOCAL` header (a balancer's
    /// health check) is closed unserved.
    pub(super) fn take_prepared(&mut self) {
        #[cfg(any(feature = "proxy", feature = "tls"))]
        for (request, admission) in self
            .intake
            .as_ref()
            .map(stage::Intake::take)
            .unwrap_or_default()
        {
            if admission == Admission::HealthCheck {
                log::debug!(
                    "PROXY protocol LOCAL connection (a health check) from {}; closed",
                    T::peer(&request)
                );
                drop(request);
                self.handle.shared.counters.request_ended(Ending::Rejected);
                continue;
            }
            self.hand_to_mode(request, false);
        }
    }

    /// During a graceful stop: serves the connections still in the intake as their headers
    /// complete, until none is left (each has its header timeout) or the stop turns immediate.
    pub(super) fn flush_intake(&mut self) {
        #[cfg(any(feature = "proxy", feature = "tls"))]
        while self.intake.as_ref().is_some_and(|i| !i.is_empty()) {
            let abort = self.handle.shared.abort.pipe_fd();
            let bell = self.bell_fd().unwrap_or(-1);
            // The bell in the socket's place: nothing else is waited for. A connection that
            // fails its header rings no bell: look again after a while.
            match poll::wait(bell, abort, Some(Duration::from_millis(100))) {
                Ok(Ready::Socket) => self.take_prepared(),
                Ok(Ready::Timeout) => {}
                Ok(Ready::Stop) | Err(_) => break,
            }
        }
    }
}

impl<T: Transport, H, M: Mode> Server<T, H, M> {
    /// Closes the intake: connections still in it are closed unserved (counted as rejected).
    pub(super) fn close_intake(&mut self) {
        #[cfg(any(feature = "proxy", feature = "tls"))]
        {
            self.intake = None;
        }
    }
}
