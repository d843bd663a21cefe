//! Serving: the loop that waits on the socket (and the intake) and hands each request to the mode,
//! Python's `serve_forever` and `handle_request`.

use std::io;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use super::builder::VerifyHook;
use super::transport::sealed::{ReceiveContext, Received};
use super::transport::Transport;
use super::{Outcome, Server};
use crate::control::{Notifier, Shared};
use crate::failure::Failure;
use crate::handler::{lifecycle, Admission, RequestHandler};
use crate::mode::{Mode, Task};
use crate::process::{self, Handoff};
use crate::socket::bind::context;
use crate::socket::errors::{classify, Recovery};
use crate::socket::poll::{self, Ready};
use crate::stats::Ending;

/// Connections or datagrams taken per wake-up before the loop checks for shutdown and runs
/// `service_actions` again: enough to save `poll` calls under load, few enough to stay responsive.
const RECEIVE_BATCH: usize = 32;

impl<T, H, M> Server<T, H, M>
where
    T: Transport,
    H: RequestHandler<T::Request> + Clone,
    M: Mode,
{
    /// Takes one pending request, if any, and dispatches it. `None` means nothing was taken
    /// (nothing pending, or a transient error that was logged).
    pub(super) fn receive_one(&mut self) -> io::Result<Option<Outcome>> {
        let Some(socket) = &self.socket else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the server has been closed",
            ));
        };
        let mut cx = ReceiveContext {
            socket,
            options: &self.connection,
            server: &self.handle,
            buf: &mut self.recv_buf,
        };
        match T::receive(&mut cx) {
            Ok(Received::Request(request)) => {
                self.backoff.reset();
                Ok(Some(self.dispatch(request)))
            }
            Ok(Received::Truncated(peer)) => {
                let counters = &self.handle.shared.counters;
                counters.request_started();
                counters.request_ended(Ending::Failed);
                let failure = Failure::Truncated {
                    max_packet_size: self.connection.max_packet_size,
                };
                self.handle.shared.report(&peer, &failure);
                Ok(Some(Outcome::Dropped))
            }
            Ok(Received::Lost) => Ok(None),
            Err(e) => self.recover(e).map(|()| None),
        }
    }

    /// Logs and survives a transient receive error; passes on one that makes the socket unusable.
    pub(super) fn recover(&mut self, err: io::Error) -> io::Result<()> {
        let recovery = classify(&err);
        if recovery == Recovery::Idle || err.kind() == io::ErrorKind::Interrupted {
            return Ok(());
        }
        if recovery == Recovery::Fatal {
            return Err(context(
                err,
                format!("{} server on {} cannot receive", T::NAME, self.local_addr()),
            ));
        }
        self.handle.shared.counters.accept_error();
        let pause = (recovery == Recovery::RetryLater).then(|| self.backoff.next_pause());
        if let Some(held_back) = self.error_log.admit() {
            let retry = pause.map_or("retrying".to_string(), |p| format!("retrying in {p:?}"));
            log::warn!(
                "{} server on {}: {err}; {retry} ({held_back} similar errors not logged)",
                T::NAME,
                self.local_addr()
            );
        }
        if let Some(pause) = pause {
            self.stop().sleep(pause);
        }
        Ok(())
    }

    pub(super) fn dispatch(&mut self, request: T::Request) -> Outcome {
        self.handle.shared.counters.request_started();
        #[cfg(any(feature = "proxy", feature = "tls"))]
        if let Some(intake) = &self.intake {
            intake.submit(request);
            return Outcome::Handled;
        }
        // With the PROXY protocol the real client is known only once its header is read, on the
        // request's thread (outside `serve_forever`, which has the intake): verify_request waits
        // for it there.
        let late = T::admits_late(&self.connection);
        self.hand_to_mode(request, late)
    }

    /// Runs or queues a counted request with the mode: after `verify_request`, unless `late` (then
    /// it runs with the handler, after the PROXY header).
    pub(super) fn hand_to_mode(&mut self, request: T::Request, late: bool) -> Outcome {
        let peer = T::peer(&request).clone();
        let shared = &self.handle.shared;
        if let Some(verify) = self.hooks.verify_request.as_ref().filter(|_| !late) {
            if !verify.lock().unwrap_or_else(PoisonError::into_inner)(&peer) {
                log::debug!("verify_request refused {peer}; closing");
                drop(request);
                shared.counters.refused();
                shared.counters.request_ended(Ending::Rejected);
                return Outcome::Rejected;
            }
        }
        log::debug!("request from {peer}");
        let handoff = self.mode.wants_handoff().then(|| {
            let (fd, peer, datagram) = T::handoff_parts(&request);
            Handoff {
                fd,
                local: self.handle.local_addr().clone(),
                peer,
                datagram,
            }
        });
        let mut handler = self.handler.clone();
        let job_shared = Arc::clone(shared);
        let verify = self.hooks.verify_request.clone().filter(|_| late);
        let job = Box::new(move || {
            let mut request = request;
            run_request::<T, H>(&mut handler, &mut request, verify.as_ref(), &job_shared)
        });
        let mut task = Task::new(peer, Arc::clone(shared), job);
        if let Some(handoff) = handoff {
            task = task.with_handoff(handoff);
        }
        // A graceful stop still serves what was accepted: waiting for capacity gives up only
        // when the stop turns immediate.
        let give_up = match shared.grace {
            Some(_) => &shared.abort,
            None => &shared.stop,
        };
        self.mode.dispatch(task, give_up);
        Outcome::Handled
    }
}

/// Runs one request on its own thread (or child process): what must precede the handler (the
/// PROXY protocol header), then `verify` if it waited for that, then the handler; reports a
/// failure to `handle_error` and says how the request ended.
pub(super) fn run_request<T, H>(
    handler: &mut H,
    request: &mut T::Request,
    verify: Option<&VerifyHook>,
    shared: &Shared,
) -> Ending
where
    T: Transport,
    H: RequestHandler<T::Request>,
{
    match T::admit(request) {
        Ok(Admission::Client) => {}
        Ok(Admission::HealthCheck) => {
            log::debug!(
                "PROXY protocol LOCAL connection (a health check) from {}; closed",
                T::peer(request)
            );
            return Ending::Rejected;
        }
        Err(e) => {
            shared.report(T::peer(request), &Failure::Error(e));
            return Ending::Failed;
        }
    }
    let peer = T::peer(request).clone();
    if let Some(verify) = verify {
        if !verify.lock().unwrap_or_else(PoisonError::into_inner)(&peer) {
            log::debug!("verify_request refused {peer}; closing");
            shared.counters.refused();
            return Ending::Rejected;
        }
    }
    let began = Instant::now();
    let ran = lifecycle::run(handler, request, T::complete);
    // A message server's accepting handler only passes the connection on: not a request's time.
    if !T::handed_over(request) {
        let panicked = matches!(ran, Err(Failure::Panic(_)));
        shared.counters.request_ran(began.elapsed(), panicked);
    }
    match ran {
        Ok(()) if T::handed_over(request) => Ending::HandedOver,
        Ok(()) => Ending::Completed,
        Err(failure) => {
            shared.report(&peer, &failure);
            Ending::Failed
        }
    }
}

/// What users call: available on every server type, so that a handler of the wrong kind is
/// reported as such (once, with what a handler must be) rather than as a method that does not
/// exist.
impl<T: Transport, H, M: Mode> Server<T, H, M> {
    /// Handles requests until [`ServerHandle::shutdown`](crate::ServerHandle::shutdown) is called, then returns `Ok(())`.
    ///
    /// Shutdown takes effect within milliseconds: the loop waits on the socket and a shutdown pipe
    /// together, with no poll interval. If shutdown was requested before this call, it returns at
    /// once. Transient errors (a connection aborted before `accept`, running out of file
    /// descriptors) are logged and retried with back-off; only an error that makes the socket
    /// unusable ends the loop with `Err`.
    ///
    /// A graceful stop (SIGTERM with `stop_on_signals`, or `shutdown` with a
    /// [`grace_period`](crate::Builder::grace_period)) does more before it returns — serves the
    /// listen backlog, closes the socket, waits for the running requests — as
    /// [Stopping gracefully](crate#stopping-gracefully) tells; `Ok(())` then means every request
    /// finished.
    ///
    /// In the process-based modes: a [`Prefork`](crate::Prefork) parent supervises its workers here until
    /// shutdown, then stops them. In a child process (see [`is_worker`](crate::is_worker)) this
    /// never returns: a per-request child handles its request and exits; a prefork worker serves
    /// until its lifeline closes (or a stop signal arrives), finishes its requests and exits.
    ///
    /// # Errors
    ///
    /// An error waiting on or accepting from the socket that makes it unusable (transient ones are
    /// logged and retried, as said above). After a graceful stop (see
    /// [`grace_period`](crate::Builder::grace_period)) that did not end in time, an error saying how many
    /// requests were cut off: `TimedOut` when the grace period ran out, `Interrupted` for an
    /// immediate stop ([`ServerHandle::stop_now`](crate::ServerHandle::stop_now), a second signal). `Unsupported` once
    /// `serve_forever` has returned: a stopped server does not serve again (build a new one), and
    /// a restart loop calling it again must not spin on an `Ok` that does nothing.
    pub fn serve_forever(&mut self) -> io::Result<()>
    where
        H: RequestHandler<T::Request> + Clone,
    {
        if let Some(request) = self.adopted.take() {
            self.serve_adopted(request);
        }
        if self.served {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "serve_forever already returned on {}: the server was stopped (shutdown, a \
                     signal or a failure), and a stopped server does not serve again; build a \
                     new one",
                    self.local_addr()
                ),
            ));
        }
        self.served = true;
        let socket_fd = self.socket_fd()?;
        if self.mode.supervises() {
            log::info!(
                "serving {} on {} ({} mode: worker processes accept)",
                T::NAME,
                self.local_addr(),
                self.mode.name()
            );
            let shared = Arc::clone(&self.handle.shared);
            shared.notify_ready();
            let handle = self.handle.clone();
            self.mode
                .supervise(socket_fd, &handle, &mut || shared.notify_tick())?;
            shared.notify_stopping();
            self.begin_stop();
            // The workers drain the listen backlog and close their copies: the last to close
            // closes the socket, so connections that come after are refused, not left queued
            // for no one to accept (and reset).
            self.shut_the_door();
            self.release_socket();
            let killed = self.mode.stop_workers(&handle);
            return match killed {
                0 => Ok(()),
                n => Err(self.stopped_at_once(&format!("{n} worker process(es) killed"))),
            };
        }
        match &self.served_as {
            Some(what) => log::info!("serving {} on {} ({what})", T::NAME, self.local_addr()),
            None => log::info!(
                "serving {} on {} ({} mode)",
                T::NAME,
                self.local_addr(),
                self.mode.name()
            ),
        }
        let hook_tick = self
            .hooks
            .service_actions
            .is_some()
            .then_some(self.service_interval);
        let notify_tick = self.handle.shared.notify.as_ref().map(Notifier::interval);
        let tick = match (hook_tick, notify_tick) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.open_intake()?;
        self.handle.shared.notify_ready();
        if self.worker {
            process::start_reporting(self.handle.clone());
        }
        while !self.handle.is_shutting_down() {
            let woken = poll::wait_serving(socket_fd, self.stop().pipe_fd(), self.bell_fd(), tick)?;
            if woken.stop {
                break;
            }
            if woken.bell {
                self.take_prepared();
            }
            if woken.socket {
                for _ in 0..RECEIVE_BATCH {
                    if self.handle.is_shutting_down() || self.receive_one()?.is_none() {
                        break;
                    }
                    // Checked per request, not per batch: a busy worker must not overshoot.
                    self.check_request_limit();
                }
            }
            if let Some(hook) = &mut self.hooks.service_actions {
                hook(&self.handle);
            }
            self.handle.shared.notify_tick();
        }
        // Where every stop is observed (a `shutdown` call, a signal): tell systemd at once.
        self.handle.shared.notify_stopping();
        log::info!("stopped serving on {}", self.local_addr());
        self.begin_stop();
        let finished = match self.handle.shared.grace {
            Some(_) => self.finish_gracefully(socket_fd),
            None => Ok(()),
        };
        self.close_intake();
        if self.worker {
            self.exit_worker();
        }
        finished
    }

    /// Waits for one request and handles it (Python's `handle_request`).
    ///
    /// Waits at most the configured [`timeout`](crate::Builder::timeout); if it passes, calls the
    /// `handle_timeout` hook and returns [`Outcome::TimedOut`]. Returns [`Outcome::ShutDown`] at
    /// once if shutdown was requested.
    ///
    /// # Errors
    ///
    /// `Unsupported` in [`Prefork`](crate::Prefork) mode, where the workers take the requests (call
    /// [`serve_forever`](Self::serve_forever)); otherwise as for `serve_forever`.
    pub fn handle_request(&mut self) -> io::Result<Outcome>
    where
        H: RequestHandler<T::Request> + Clone,
    {
        if let Some(request) = self.adopted.take() {
            self.serve_adopted(request);
        }
        if self.mode.supervises() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "handle_request is not available in prefork mode: the worker processes take the \
                 requests; call serve_forever to supervise them",
            ));
        }
        let socket_fd = self.socket_fd()?;
        let deadline = self.timeout.map(|t| Instant::now() + t);
        loop {
            if self.handle.is_shutting_down() {
                return Ok(Outcome::ShutDown);
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match poll::wait(socket_fd, self.stop().pipe_fd(), left)? {
                Ready::Stop => return Ok(Outcome::ShutDown),
                Ready::Timeout => {
                    if let Some(hook) = &mut self.hooks.handle_timeout {
                        hook(&self.handle);
                    }
                    return Ok(Outcome::TimedOut);
                }
                Ready::Socket => {
                    if let Some(outcome) = self.receive_one()? {
                        return Ok(outcome);
                    }
                }
            }
        }
    }
}
