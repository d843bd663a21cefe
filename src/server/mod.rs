//! The server: binding (through [`Builder`]), the serving loop, shutdown and close.

mod builder;
mod failure_log;
pub(crate) mod handle;
pub(crate) mod stop;
pub mod transport;

pub use builder::Builder;
pub use handle::ServerHandle;

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::Socket;

use crate::address::Address;
use crate::failure::Failure;
use crate::handler::{lifecycle, RequestHandler};
use crate::mode::{Mode, Pool, Prefork, Process, Single, Task, Threading};
use crate::process::{self, Handoff, Role};
use crate::socket::bind::context;
use crate::socket::errors::{classify, Backoff, Recovery};
use crate::socket::options::ConnectionOptions;
use crate::socket::poll::{self, Ready};
use crate::socket::unix_path::UnixPathGuard;
use crate::stats::{Ending, Stats};
use crate::throttle::Throttle;

use builder::{BuiltParts, LoopHooks};
use handle::Shared;
use stop::StopSignal;
use transport::sealed::{ReceiveContext, Received};
use transport::{Tcp, Transport, Udp, UnixDatagram, UnixStream};

/// Connections or datagrams taken per wake-up before the loop checks for shutdown and runs
/// `service_actions` again: enough to save `poll` calls under load, few enough to stay responsive.
const RECEIVE_BATCH: usize = 32;

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
///    [`handle`](Self::handle) before moving the server into its thread), or from a handler;
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
                server.adopted = Some(T::adopt(socket, handed, &server.handle, &server.connection));
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
        } = builder.into_parts();
        if let (true, Some(socket)) = (T::STREAM, &socket) {
            // Non-blocking so a connection that vanishes between poll and accept (or that another
            // process sharing the listener took first) cannot block the loop.
            socket.set_nonblocking(true)?;
        }
        let shared = Arc::new(Shared {
            stop: StopSignal::new()?,
            counters: Default::default(),
            local,
            on_error,
            failure_log: failure_log::FailureLog::new(),
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
    /// In the process-based modes: a [`Prefork`] parent supervises its workers here until
    /// shutdown, then stops them. In a child process (see [`is_worker`](crate::is_worker)) this
    /// never returns: a per-request child handles its request and exits; a prefork worker serves
    /// until its lifeline closes, finishes its requests and exits.
    ///
    /// # Errors
    ///
    /// An error waiting on or accepting from the socket that makes it unusable (transient ones are
    /// logged and retried, as said above).
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
            return self.mode.supervise(socket_fd, &self.handle.shared.stop);
        }
        log::info!(
            "serving {} on {} ({} mode)",
            T::NAME,
            self.local_addr(),
            self.mode.name()
        );
        let tick = self
            .hooks
            .service_actions
            .is_some()
            .then_some(self.service_interval);
        while !self.handle.is_shutting_down() {
            match poll::wait(socket_fd, self.stop().pipe_fd(), tick)? {
                Ready::Stop => break,
                Ready::Timeout => {}
                Ready::Socket => {
                    for _ in 0..RECEIVE_BATCH {
                        if self.handle.is_shutting_down() || self.receive_one()?.is_none() {
                            break;
                        }
                        // Checked per request, not per batch: a busy worker must not overshoot.
                        self.check_request_limit();
                    }
                }
            }
            if let Some(hook) = &mut self.hooks.service_actions {
                hook(&self.handle);
            }
        }
        log::info!("stopped serving on {}", self.local_addr());
        if self.worker {
            self.exit_worker();
        }
        Ok(())
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
        let peer = T::peer(&request).clone();
        let code = match lifecycle::run(&mut self.handler, &mut request, T::complete) {
            Ok(()) => 0,
            Err(failure) => {
                self.handle.shared.report(&peer, &failure);
                1
            }
        };
        drop(request);
        std::process::exit(code)
    }

    /// A prefork worker that stopped serving: finishes its running requests within the drain
    /// timeout, then exits, leaving any still running (a client holding an idle connection).
    fn exit_worker(&mut self) -> ! {
        self.release_socket();
        self.mode.stop_intake();
        let drain = self.mode.drain_timeout();
        let counters = &self.handle.shared.counters;
        if counters.wait_idle(drain.map(|t| Instant::now() + t)) {
            self.mode.join();
        } else {
            log::warn!(
                "worker {}: {} request(s) still running after the drain timeout ({:?}); exiting",
                std::process::id(),
                counters.active(),
                drain.unwrap_or_default()
            );
        }
        self.handle.shared.flush_failures();
        log::info!("worker {} stopped", std::process::id());
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
    /// finish on their own threads. A Unix server removes the socket file it created.
    ///
    /// # Errors
    ///
    /// `TimedOut`, saying how many requests were still running, when the
    /// [`close_timeout`](Builder::close_timeout) passed first.
    pub fn server_close(mut self) -> io::Result<()> {
        self.handle.shared.stop.request();
        self.release_socket();
        self.mode.stop_intake();
        self.closed = true;
        let deadline = self.close_timeout.map(|t| Instant::now() + t);
        let counters = &self.handle.shared.counters;
        let idle = counters.wait_idle(deadline);
        self.handle.shared.flush_failures();
        if idle {
            self.mode.join();
            log::info!("closed server on {}", self.local_addr());
            return Ok(());
        }
        let running = counters.active();
        let waited = self.close_timeout.unwrap_or_default();
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
        let peer = T::peer(&request).clone();
        let shared = &self.handle.shared;
        shared.counters.request_started();
        if let Some(verify) = &mut self.hooks.verify_request {
            if !verify(&peer) {
                log::debug!("verify_request refused {peer}; closing");
                drop(request);
                shared.counters.request_ended(Ending::Rejected);
                return Outcome::Rejected;
            }
        }
        log::debug!("request from {peer}");
        let handoff = self.mode.wants_handoff().then(|| {
            let (fd, datagram) = T::handoff_parts(&request);
            Handoff {
                fd,
                local: self.handle.local_addr().clone(),
                peer: peer.clone(),
                datagram,
            }
        });
        let mut handler = self.handler.clone();
        let job_shared = Arc::clone(shared);
        let job_peer = peer.clone();
        let job = Box::new(move || {
            let mut request = request;
            match lifecycle::run(&mut handler, &mut request, T::complete) {
                Ok(()) => Ending::Completed,
                Err(failure) => {
                    job_shared.report(&job_peer, &failure);
                    Ending::Failed
                }
            }
        });
        let mut task = Task::new(peer, Arc::clone(shared), job);
        if let Some(handoff) = handoff {
            task = task.with_handoff(handoff);
        }
        self.mode.dispatch(task, &self.handle.shared.stop);
        Outcome::Handled
    }
}

impl<T: Transport, H, M: Mode> Server<T, H, M> {
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

    /// Closes the socket and, for a Unix server, removes the socket file it created.
    fn release_socket(&mut self) {
        self.socket = None;
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
