//! The server: binding (through [`Builder`]), the serving loop, shutdown and close.

mod builder;
#[cfg(feature = "proxy")]
mod intake;
#[cfg(feature = "message")]
pub(crate) mod message;
#[cfg(feature = "signals")]
mod signals;
pub mod transport;

pub use crate::control::ServerHandle;
pub use builder::{Builder, DEFAULT_GRACE_PERIOD};

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use socket2::Socket;

use crate::address::Address;
use crate::control::Notifier;
use crate::failure::Failure;
use crate::handler::{lifecycle, Admission, RequestHandler};
use crate::mode::{Mode, Pool, Prefork, Process, Single, Task, Threading};
use crate::process::{self, Handoff, Role};
use crate::socket::bind::context;
use crate::socket::errors::{classify, Backoff, Recovery};
use crate::socket::options::ConnectionOptions;
use crate::socket::poll::{self, Ready};
use crate::socket::unix_path::UnixPathGuard;
use crate::stats::{Ending, Stats};
use crate::throttle::Throttle;

use crate::control::{failure_log, Shared, StopSignal};
use builder::{BuiltParts, LoopHooks, VerifyHook};
use transport::sealed::{ReceiveContext, Received};
use transport::{Tcp, Transport, Udp, UnixDatagram, UnixStream};

/// Connections or datagrams taken per wake-up before the loop checks for shutdown and runs
/// `service_actions` again: enough to save `poll` calls under load, few enough to stay responsive.
const RECEIVE_BATCH: usize = 32;

/// The most requests a graceful stop takes from the socket's queue after it began: what a full
/// listen backlog holds with Linux's default `somaxconn`. Clients that keep connecting during the
/// stop must not keep it from ending.
const MAX_DRAINED: u64 = 4096;

/// How many times a graceful stop's look at the listen backlog may find nothing to take (another
/// prefork worker took it, or accepting failed) before it gives up.
const MAX_DRAIN_MISSES: u32 = 64;

/// What one [`Server::handle_request`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A request was passed to the concurrency mode: in [`Single`] mode it has been handled; in
    /// the others it is running or queued.
    Handled,
    /// `verify_request` refused the peer; the connection was closed.
    Rejected,
    /// A datagram was dropped as larger than `max_packet_size` (and reported to `handle_error`).
    Dropped,
    /// The timeout passed with no request; `handle_timeout` was called.
    TimedOut,
    /// Shutdown was requested; nothing was received.
    ShutDown,
}

/// A socket server: transport `T` ([`Tcp`], [`Udp`], [`UnixStream`], [`UnixDatagram`]), request
/// handler `H`, concurrency mode `M` ([`Single`], [`Threading`], [`Pool`], [`Process`],
/// [`Prefork`]).
///
/// Usually named through an alias — [`TcpServer`], [`ThreadingTcpServer`], [`PoolUdpServer`], … —
/// and created with `bind` or with a [`Builder`]. The lifecycle is Python's:
///
/// 1. bind and listen: [`TcpServer::bind`](Server::bind) or [`Builder`];
/// 2. serve: [`serve_forever`](Self::serve_forever), or [`handle_request`](Self::handle_request)
///    for one request at a time;
/// 3. stop: [`ServerHandle::shutdown`] from any thread (get the handle with
///    [`handle`](Self::handle) before moving the server into its thread), or from a handler; or
///    SIGTERM/SIGINT with [`Builder::stop_on_signals`](crate#stopping-gracefully), which makes
///    the stop graceful;
/// 4. close: [`server_close`](Self::server_close) closes the socket and waits for running
///    requests. Dropping the server closes the socket without waiting.
pub struct Server<T: Transport, H, M: Mode> {
    socket: Option<Arc<Socket>>,
    unix_path: Option<UnixPathGuard>,
    handler: H,
    mode: M,
    handle: ServerHandle,
    hooks: LoopHooks,
    connection: ConnectionOptions,
    timeout: Option<Duration>,
    service_interval: Duration,
    close_timeout: Option<Duration>,
    recv_buf: Vec<u8>,
    backoff: Backoff,
    error_log: Throttle,
    closed: bool,
    /// In a per-request child: the one request to handle, taken over from the parent.
    adopted: Option<T::Request>,
    /// Whether this process is a prefork worker (it exits when it stops serving).
    worker: bool,
    /// In a prefork worker with `max_requests`: how many requests to take before recycling.
    request_limit: Option<u64>,
    /// With `stop_on_signals`: passes SIGTERM, SIGINT and SIGQUIT on while the server lives.
    #[cfg(feature = "signals")]
    _signals: Option<signals::SignalRelay>,
    /// What the "serving" log line says the server is, instead of its mode (a message server).
    served_as: Option<String>,
    /// While `serve_forever` runs a stream server with the PROXY protocol: where connections wait
    /// for their header before the mode gets them.
    #[cfg(feature = "proxy")]
    intake: Option<intake::Intake<T>>,
    /// How the intake's thread is named and sized.
    #[cfg(feature = "proxy")]
    threads: crate::mode::ThreadSettings,
    /// A TCP listener this process bound itself: a graceful stop shuts it to new connections
    /// before its last look at the backlog (see [`crate::socket::gate`]).
    pub(crate) owns_listener: bool,
    /// Whether the stop has shut that listener to new connections.
    door_shut: bool,
    transport: PhantomData<fn() -> T>,
}

/// A TCP server handling one request at a time (Python's `TCPServer`).
pub type TcpServer<H> = Server<Tcp, H, Single>;
/// A TCP server with a thread per connection (Python's `ThreadingTCPServer`).
pub type ThreadingTcpServer<H> = Server<Tcp, H, Threading>;
/// A TCP server with a pool of worker threads.
pub type PoolTcpServer<H> = Server<Tcp, H, Pool>;
/// A UDP server handling one datagram at a time (Python's `UDPServer`).
pub type UdpServer<H> = Server<Udp, H, Single>;
/// A UDP server with a thread per datagram (Python's `ThreadingUDPServer`).
pub type ThreadingUdpServer<H> = Server<Udp, H, Threading>;
/// A UDP server with a pool of worker threads.
pub type PoolUdpServer<H> = Server<Udp, H, Pool>;
/// A Unix stream server handling one connection at a time (Python's `UnixStreamServer`).
pub type UnixStreamServer<H> = Server<UnixStream, H, Single>;
/// A Unix stream server with a thread per connection (Python's `ThreadingUnixStreamServer`).
pub type ThreadingUnixStreamServer<H> = Server<UnixStream, H, Threading>;
/// A Unix stream server with a pool of worker threads.
pub type PoolUnixStreamServer<H> = Server<UnixStream, H, Pool>;
/// A Unix datagram server handling one datagram at a time (Python's `UnixDatagramServer`).
pub type UnixDatagramServer<H> = Server<UnixDatagram, H, Single>;
/// A Unix datagram server with a thread per datagram (Python's `ThreadingUnixDatagramServer`).
pub type ThreadingUnixDatagramServer<H> = Server<UnixDatagram, H, Threading>;
/// A Unix datagram server with a pool of worker threads.
pub type PoolUnixDatagramServer<H> = Server<UnixDatagram, H, Pool>;
/// A TCP server with a child process per connection (Python's `ForkingTCPServer`).
pub type ForkingTcpServer<H> = Server<Tcp, H, Process>;
/// A UDP server with a child process per datagram (Python's `ForkingUDPServer`).
pub type ForkingUdpServer<H> = Server<Udp, H, Process>;
/// A Unix stream server with a child process per connection (Python's `ForkingUnixStreamServer`).
pub type ForkingUnixStreamServer<H> = Server<UnixStream, H, Process>;
/// A Unix datagram server with a child process per datagram (Python's
/// `ForkingUnixDatagramServer`).
pub type ForkingUnixDatagramServer<H> = Server<UnixDatagram, H, Process>;
/// A TCP server with pre-started worker processes.
pub type PreforkTcpServer<H> = Server<Tcp, H, Prefork>;
/// A UDP server with pre-started worker processes.
pub type PreforkUdpServer<H> = Server<Udp, H, Prefork>;

impl<T, H, M> Server<T, H, M>
where
    T: Transport,
    H: RequestHandler<T::Request> + Clone,
    M: Mode,
{
    pub(crate) fn from_parts(
        socket: Socket,
        unix_path: Option<UnixPathGuard>,
        handler: H,
        builder: Builder<M>,
    ) -> io::Result<Self> {
        let local = Address::from_sockaddr(socket.local_addr()?);
        Self::assemble(Some(socket), unix_path, local, handler, builder, None)
    }

    /// Builds the server of a child process started by a process-based mode, around the socket
    /// it inherited, instead of binding.
    pub(crate) fn from_role(role: Role, handler: H, builder: Builder<M>) -> io::Result<Self> {
        match role {
            Role::Request { fd } => {
                let socket = process::adopt_socket(fd, T::socket_type())?;
                let max = builder.packet_limit();
                let handed = process::read_handoff(max)?;
                let local = handed.local.clone();
                let mut server = Self::assemble(None, None, local, handler, builder, Some(role))?;
                let request = T::adopt(socket, handed, &server.handle, &server.connection)?;
                server.adopted = Some(request);
                // Stdin stays open after the handoff: the parent closes it when a stop begins.
                process::lifeline_watch(server.handle(), None)?;
                Ok(server)
            }
            Role::Worker { fd, .. } => {
                let socket = process::adopt_socket(fd, T::socket_type())?;
                let local = Address::from_sockaddr(socket.local_addr()?);
                let server =
                    Self::assemble(Some(socket), None, local, handler, builder, Some(role))?;
                process::lifeline_watch(server.handle(), server.mode.drain_timeout())?;
                Ok(server)
            }
        }
    }

    fn assemble(
        socket: Option<Socket>,
        unix_path: Option<UnixPathGuard>,
        local: Address,
        handler: H,
        builder: Builder<M>,
        role: Option<Role>,
    ) -> io::Result<Self> {
        let BuiltParts {
            mut mode,
            connection,
            threads,
            timeout,
            service_interval,
            close_timeout,
            hooks,
            on_error,
            stopping,
            notify_systemd,
        } = builder.into_parts();
        if let (true, Some(socket)) = (T::STREAM, &socket) {
            // Non-blocking so a connection that vanishes between poll and accept (or that another
            // process sharing the listener took first) cannot block the loop.
            socket.set_nonblocking(true)?;
        }
        // Only the process systemd started reports to it, not the children of a process mode.
        let notify = (notify_systemd && role.is_none())
            .then(Notifier::from_env)
            .flatten()
            .map(|n| {
                n.with_label(format!(
                    "{} server on {local} ({} mode)",
                    T::NAME,
                    mode.name()
                ))
                .hold_ready_while(crate::systemd::upgrade_unclaimed)
            });
        let shared = Arc::new(Shared {
            stop: StopSignal::new()?,
            abort: StopSignal::new()?,
            abort_reason: OnceLock::new(),
            grace: stopping.grace,
            counters: Default::default(),
            local,
            on_error,
            failure_log: failure_log::FailureLog::new(),
            notify,
            prefork: Default::default(),
        });
        let worker = matches!(role, Some(Role::Worker { .. }));
        if let Some(Role::Worker { index, .. }) = role {
            mode.become_worker(index);
        }
        // A per-request child runs its one request inline: no mode machinery to start.
        if !matches!(role, Some(Role::Request { .. })) {
            mode.start(&threads)?;
        }
        let request_limit = mode.worker_request_limit().filter(|_| worker);
        #[cfg(feature = "signals")]
        let signals = match stopping.signals {
            false => None,
            true => {
                let handle = ServerHandle {
                    shared: Arc::clone(&shared),
                };
                let child = matches!(role, Some(Role::Request { .. }));
                Some(signals::SignalRelay::start(
                    handle,
                    child,
                    mode.supervises(),
                )?)
            }
        };
        Ok(Server {
            socket: socket.map(Arc::new),
            unix_path,
            handler,
            mode,
            handle: ServerHandle { shared },
            hooks,
            connection,
            timeout,
            service_interval,
            close_timeout,
            recv_buf: Vec::new(),
            backoff: Backoff::new(),
            error_log: Throttle::new(Duration::from_secs(1)),
            closed: false,
            adopted: None,
            worker,
            request_limit,
            #[cfg(feature = "signals")]
            _signals: signals,
            served_as: None,
            #[cfg(feature = "proxy")]
            intake: None,
            #[cfg(feature = "proxy")]
            threads,
            owns_listener: false,
            door_shut: false,
            transport: PhantomData,
        })
    }

    /// Handles requests until [`ServerHandle::shutdown`] is called, then returns `Ok(())`.
    ///
    /// Shutdown takes effect within milliseconds: the loop waits on the socket and a shutdown pipe
    /// together, with no poll interval. If shutdown was requested before this call, it returns at
    /// once. Transient errors (a connection aborted before `accept`, running out of file
    /// descriptors) are logged and retried with back-off; only an error that makes the socket
    /// unusable ends the loop with `Err`.
    ///
    /// A graceful stop ([`Builder::stop_on_signals`](crate#stopping-gracefully),
    /// [`Builder::grace_period`]) does more before it returns: it serves what was queued in the listen backlog, closes the socket, and waits
    /// for the running requests within the grace period; `Ok(())` then means every request
    /// finished, and an error says how many were cut off by the grace period (`TimedOut`) or by
    /// [`ServerHandle::stop_now`] or a second signal (`Interrupted`).
    ///
    /// In the process-based modes: a [`Prefork`] parent supervises its workers here until
    /// shutdown, then stops them. In a child process (see [`is_worker`](crate::is_worker)) this
    /// never returns: a per-request child handles its request and exits; a prefork worker serves
    /// until its lifeline closes (or a stop signal arrives), finishes its requests and exits.
    ///
    /// # Errors
    ///
    /// An error waiting on or accepting from the socket that makes it unusable (transient ones are
    /// logged and retried, as said above). After a graceful stop (see
    /// [`grace_period`](Builder::grace_period)) that did not end in time, an error saying how many
    /// requests were cut off: `TimedOut` when the grace period ran out, `Interrupted` for an
    /// immediate stop ([`ServerHandle::stop_now`], a second signal).
    pub fn serve_forever(&mut self) -> io::Result<()> {
        if let Some(request) = self.adopted.take() {
            self.serve_adopted(request);
        }
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

    /// The stop has begun: tell the `on_stop` hook, and start counting the time running requests
    /// are given.
    fn begin_stop(&mut self) {
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
    fn stop_deadline(&self) -> Option<Instant> {
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
    fn finish_gracefully(&mut self, socket_fd: RawFd) -> io::Result<()> {
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
        // Closed right after the last look at the queue: a connection that arrives in between
        // is reset by the kernel, so nothing else may run there.
        self.release_socket();
        if queued > 0 {
            log::info!(
                "took {queued} request(s) queued on {} when the stop began",
                self.local_addr()
            );
        }
        // Connections still sending their PROXY header are served once it is whole.
        self.flush_intake();
        self.mode.stop_intake();
        let shared = Arc::clone(&self.handle.shared);
        let counters = &shared.counters;
        if counters.wait_idle_unless(None, || shared.abort.is_requested()) || counters.active() == 0
        {
            log::info!(
                "graceful stop of the server on {}: every request finished{}",
                self.local_addr(),
                counters.closed_at_stop_note()
            );
            return Ok(());
        }
        Err(self.stopped_at_once(&format!("{} request(s) cut off", counters.active())))
    }

    /// Takes what the kernel had queued for the socket when the stop began, so those clients are
    /// served instead of reset when the socket closes: until nothing is pending (for
    /// [`HANDSHAKES_SETTLE`](crate::socket::gate::HANDSHAKES_SETTLE) once the door is shut, so
    /// handshakes under way join the queue first), [`MAX_DRAINED`] were taken, or the stop turns
    /// immediate.
    fn drain_backlog(&mut self, socket_fd: RawFd) -> io::Result<u64> {
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
    fn stopped_at_once(&mut self, what: &str) -> io::Error {
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

    /// A prefork worker that has taken its `max_requests` stops, to be replaced.
    fn check_request_limit(&self) {
        if let Some(limit) = self.request_limit {
            if self.handle.shared.counters.accepted() >= limit && !self.handle.is_shutting_down() {
                log::info!(
                    "worker {} served {limit} requests; recycling",
                    std::process::id()
                );
                self.handle.shutdown();
            }
        }
    }

    /// A per-request child: handles the request it was started for, then ends the process with
    /// status 0, or 1 if the handler failed (the parent logs and counts that).
    fn serve_adopted(&mut self, mut request: T::Request) -> ! {
        // A verify_request that waits for the PROXY header runs here, in the child; one that
        // does not already ran in the parent.
        let verify = self
            .hooks
            .verify_request
            .as_ref()
            .filter(|_| T::admits_late(&self.connection));
        let ending =
            run_request::<T, H>(&mut self.handler, &mut request, verify, &self.handle.shared);
        // The parent counts this child's request as completed: say here if the stop closed its
        // connection before a request arrived.
        if self.handle.shared.counters.closed_at_stop_counts().1 > 0 {
            log::info!(
                "child {}: the stop closed the connection from {} before its first request \
                 arrived",
                std::process::id(),
                T::peer(&request)
            );
        }
        let code = match ending {
            Ending::Failed => 1,
            Ending::Completed | Ending::Rejected => 0,
        };
        drop(request);
        std::process::exit(code)
    }

    /// A prefork worker that stopped serving: finishes its running requests within the drain
    /// timeout, then exits, leaving any still running (a client holding an idle connection).
    fn exit_worker(&mut self) -> ! {
        self.release_socket();
        self.close_intake();
        self.mode.stop_intake();
        let shared = Arc::clone(&self.handle.shared);
        let counters = &shared.counters;
        if counters.wait_idle_unless(self.stop_deadline(), || shared.abort.is_requested()) {
            self.mode.join();
        } else {
            self.mode.cut_off();
            log::warn!(
                "worker {}: {} request(s) still running after the drain timeout ({:?}) or the \
                 grace period, or at an immediate stop; exiting",
                std::process::id(),
                counters.active(),
                self.mode.drain_timeout().unwrap_or_default()
            );
        }
        self.handle.shared.flush_failures();
        process::report_final(&counters.snapshot());
        log::info!(
            "worker {} stopped{}",
            std::process::id(),
            counters.closed_at_stop_note()
        );
        std::process::exit(0)
    }

    /// Waits for one request and handles it (Python's `handle_request`).
    ///
    /// Waits at most the configured [`timeout`](Builder::timeout); if it passes, calls the
    /// `handle_timeout` hook and returns [`Outcome::TimedOut`]. Returns [`Outcome::ShutDown`] at
    /// once if shutdown was requested.
    ///
    /// # Errors
    ///
    /// `Unsupported` in [`Prefork`] mode, where the workers take the requests (call
    /// [`serve_forever`](Self::serve_forever)); otherwise as for `serve_forever`.
    pub fn handle_request(&mut self) -> io::Result<Outcome> {
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

    /// Closes the socket, then waits for running requests to end (Python's `server_close` with
    /// `block_on_close`). Also requests shutdown, so long-lived handlers that check
    /// [`ServerHandle::is_shutting_down`] can end early.
    ///
    /// With a [`close_timeout`](Builder::close_timeout), it stops waiting when that passes and
    /// returns a `TimedOut` error saying how many requests were still running; they are left to
    /// finish on their own threads. A graceful stop's [`grace_period`](Builder::grace_period)
    /// bounds the wait the same way, counted from the start of the stop, and after an immediate
    /// stop ([`ServerHandle::stop_now`], a second signal) it does not wait at all; then child
    /// processes still handling requests are killed. A Unix server removes the socket file it
    /// created.
    ///
    /// # Errors
    ///
    /// `TimedOut`, saying how many requests were still running, when the
    /// [`close_timeout`](Builder::close_timeout) or the grace period passed first, or after an
    /// immediate stop.
    pub fn server_close(mut self) -> io::Result<()> {
        self.handle.shared.stop.request();
        self.handle.shared.notify_stopping();
        self.release_socket();
        self.close_intake();
        self.mode.stop_intake();
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
        let counters = &shared.counters;
        let idle = counters.wait_idle_unless(deadline, || shared.abort.is_requested());
        self.handle.shared.flush_failures();
        if idle {
            self.mode.join();
            log::info!("closed server on {}", self.local_addr());
            return Ok(());
        }
        let running = counters.active();
        if running == 0 {
            return Ok(()); // the last one ended as the wait gave up
        }
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

    fn stop(&self) -> &StopSignal {
        &self.handle.shared.stop
    }

    fn socket_fd(&self) -> io::Result<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.socket.as_ref().map(AsRawFd::as_raw_fd).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "the server has been closed")
        })
    }

    /// Takes one pending request, if any, and dispatches it. `None` means nothing was taken
    /// (nothing pending, or a transient error that was logged).
    fn receive_one(&mut self) -> io::Result<Option<Outcome>> {
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
    fn recover(&mut self, err: io::Error) -> io::Result<()> {
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

    fn dispatch(&mut self, request: T::Request) -> Outcome {
        self.handle.shared.counters.request_started();
        #[cfg(feature = "proxy")]
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
    fn hand_to_mode(&mut self, request: T::Request, late: bool) -> Outcome {
        let peer = T::peer(&request).clone();
        let shared = &self.handle.shared;
        if let Some(verify) = self.hooks.verify_request.as_ref().filter(|_| !late) {
            if !verify.lock().unwrap_or_else(PoisonError::into_inner)(&peer) {
                log::debug!("verify_request refused {peer}; closing");
                drop(request);
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

/// The intake (see [`intake`]): connections wait there, holding no thread, for their PROXY
/// protocol header before the mode gets them. Only `serve_forever` uses it, and only a stream
/// server with the PROXY protocol on that serves itself (not a prefork parent).
impl<T, H, M> Server<T, H, M>
where
    T: Transport,
    H: RequestHandler<T::Request> + Clone,
    M: Mode,
{
    fn open_intake(&mut self) -> io::Result<()> {
        #[cfg(feature = "proxy")]
        if let Some(proxy) = self.connection.proxy.as_ref().filter(|_| T::STREAM) {
            let shared = Arc::clone(&self.handle.shared);
            let what = "PROXY protocol header";
            self.intake = Some(intake::Intake::start(
                shared,
                what,
                proxy.timeout,
                &self.threads,
            )?);
        }
        Ok(())
    }

    fn bell_fd(&self) -> Option<RawFd> {
        #[cfg(feature = "proxy")]
        return self.intake.as_ref().map(intake::Intake::bell_fd);
        #[cfg(not(feature = "proxy"))]
        None
    }

    /// Hands the connections whose header is whole to the mode; a `LOCAL` header (a balancer's
    /// health check) is closed unserved.
    fn take_prepared(&mut self) {
        #[cfg(feature = "proxy")]
        for (request, admission) in self
            .intake
            .as_ref()
            .map(intake::Intake::take)
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
    fn flush_intake(&mut self) {
        #[cfg(feature = "proxy")]
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
    /// Before the stop's last look at the listen backlog: makes a listener this process owns drop
    /// new connection attempts, so that none completes between that look and the close, to be
    /// reset (see [`crate::socket::gate`]). Not once a binary upgrade handed the socket over.
    fn shut_the_door(&mut self) {
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
    fn handed_over(&self) -> bool {
        let prefork = &self.handle.shared.prefork;
        prefork.handed_over.load(Ordering::Acquire)
    }

    /// Closes the intake: connections still in it are closed unserved (counted as rejected).
    fn close_intake(&mut self) {
        #[cfg(feature = "proxy")]
        {
            self.intake = None;
        }
    }

    /// Makes the "serving" log line say `what` the server is instead of naming its mode.
    #[cfg(feature = "message")]
    pub(crate) fn serve_as(&mut self, what: String) {
        self.served_as = Some(what);
    }

    /// The address the server is bound to (Python's `server_address`); with port 0, the port the
    /// system chose.
    pub fn local_addr(&self) -> &Address {
        self.handle.local_addr()
    }

    /// A cloneable, thread-safe handle to shut the server down and read its stats while
    /// `serve_forever` runs elsewhere.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Same as [`ServerHandle::shutdown`].
    pub fn shutdown(&self) {
        self.handle.shutdown();
    }

    /// Same as [`ServerHandle::stats`].
    pub fn stats(&self) -> Stats {
        self.handle.stats()
    }

    /// The concurrency mode, e.g. to read [`Threading::tracked_threads`].
    pub fn mode(&self) -> &M {
        &self.mode
    }

    /// Changes how long [`handle_request`](Self::handle_request) waits (`None`: forever).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Closes the socket and, for a Unix server, removes the socket file it created — unless a
    /// binary upgrade handed the socket to a new program, which serves it now.
    fn release_socket(&mut self) {
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
            self.release_socket();
            self.close_intake();
            self.mode.stop_intake();
            self.handle.shared.flush_failures();
        }
    }
}

impl<T: Transport, H, M: Mode + fmt::Debug> fmt::Debug for Server<T, H, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("transport", &T::NAME)
            .field("local_addr", self.handle.local_addr())
            .field("mode", &self.mode)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Runs one request on its own thread (or child process): what must precede the handler (the
/// PROXY protocol header), then `verify` if it waited for that, then the handler; reports a
/// failure to `handle_error` and says how the request ended.
fn run_request<T, H>(
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
            return Ending::Rejected;
        }
    }
    match lifecycle::run(handler, request, T::complete) {
        Ok(()) => Ending::Completed,
        Err(failure) => {
            shared.report(&peer, &failure);
            Ending::Failed
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
