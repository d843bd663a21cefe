//! [`Builder`]: every server option in one place, ending in a call that binds the server.

use std::fmt;
use std::io;
use std::net::{TcpListener, ToSocketAddrs, UdpSocket};
use std::os::unix::net::{UnixDatagram as StdUnixDatagram, UnixListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Socket, Type};

use super::handle::ErrorHook;
use super::transport::{Tcp, Transport, Udp, UnixDatagram, UnixStream};
use super::Server;
use crate::address::Address;
use crate::failure::Failure;
use crate::handler::{DatagramRequest, RequestHandler, StreamRequest};
use crate::mode::{Mode, Single, ThreadSettings};
use crate::process;
use crate::server::handle::ServerHandle;
use crate::socket::bind::{bind_inet, bind_unix};
use crate::socket::options::{BindOptions, ConnectionOptions};
use crate::socket::unix_path::UnixPathGuard;

type VerifyHook = Box<dyn FnMut(&Address) -> bool + Send>;
type LoopHook = Box<dyn FnMut(&ServerHandle) + Send>;

/// The hooks the serving loop calls (Python's overridable server methods).
#[derive(Default)]
pub(crate) struct LoopHooks {
    pub(crate) verify_request: Option<VerifyHook>,
    pub(crate) handle_timeout: Option<LoopHook>,
    pub(crate) service_actions: Option<LoopHook>,
}

/// Configures and binds a server: socket options, timeouts, concurrency mode and hooks.
///
/// ```
/// use std::time::Duration;
/// use socketserver::{Builder, Pool, StreamRequest, WhenFull};
///
/// # fn main() -> std::io::Result<()> {
/// let server = Builder::new()
///     .mode(Pool::new(8).queue(32).when_full(WhenFull::Reject))
///     .read_timeout(Duration::from_secs(30))
///     .verify_request(|peer| peer.as_inet().is_some_and(|a| a.ip().is_loopback()))
///     .bind_tcp("127.0.0.1:0", |req: &mut StreamRequest| {
///         std::io::copy(req, &mut std::io::sink()).map(|_| ())
///     })?;
/// println!("listening on {}", server.local_addr());
/// server.server_close()?;
/// # Ok(())
/// # }
/// ```
///
/// Defaults, and why they differ from Python's where they do:
///
/// | option | default | Python |
/// |---|---|---|
/// | [`reuse_address`](Self::reuse_address) | on for TCP, off for UDP | off (`allow_reuse_address = False`) |
/// | [`backlog`](Self::backlog) | 1024 | 5 |
/// | [`nodelay`](Self::nodelay) | on | off |
/// | [`read_timeout`](Self::read_timeout)/[`write_timeout`](Self::write_timeout) | none | none |
/// | [`idle_timeout`](Self::idle_timeout) | none | none (no such option) |
/// | [`max_connection_lifetime`](Self::max_connection_lifetime) | none | none (no such option) |
/// | [`max_packet_size`](Self::max_packet_size) | 8192 | 8192 |
/// | [`close_timeout`](Self::close_timeout) | none (wait for every request) | `block_on_close = True` |
#[must_use = "a Builder does nothing until one of its `bind_*` or `from_*` methods is called"]
pub struct Builder<M = Single> {
    mode: M,
    bind: BindOptions,
    connection: ConnectionOptions,
    threads: ThreadSettings,
    timeout: Option<Duration>,
    service_interval: Duration,
    close_timeout: Option<Duration>,
    hooks: LoopHooks,
    on_error: Option<ErrorHook>,
}

impl Builder<Single> {
    /// A builder with every default and the [`Single`] mode.
    pub fn new() -> Self {
        Builder {
            mode: Single,
            bind: BindOptions::default(),
            connection: ConnectionOptions::default(),
            threads: ThreadSettings::default(),
            timeout: None,
            service_interval: Duration::from_millis(500),
            close_timeout: None,
            hooks: LoopHooks::default(),
            on_error: None,
        }
    }
}

impl Default for Builder<Single> {
    fn default() -> Self {
        Builder::new()
    }
}

impl<M: Mode> Builder<M> {
    /// Chooses the concurrency mode: [`Single`], [`Threading`](crate::Threading),
    /// [`Pool`](crate::Pool), [`Process`](crate::Process) or [`Prefork`](crate::Prefork).
    pub fn mode<M2: Mode>(self, mode: M2) -> Builder<M2> {
        Builder {
            mode,
            bind: self.bind,
            connection: self.connection,
            threads: self.threads,
            timeout: self.timeout,
            service_interval: self.service_interval,
            close_timeout: self.close_timeout,
            hooks: self.hooks,
            on_error: self.on_error,
        }
    }

    /// `SO_REUSEADDR`. On by default for TCP, so a restarted server can bind its port while
    /// connections of the previous run sit in `TIME_WAIT` (Python's `http.server` turns it on for the
    /// same reason). Off by default for UDP, where on Linux it would let a second server bind the
    /// same port and silently split the traffic.
    pub fn reuse_address(mut self, on: bool) -> Self {
        self.bind.reuse_address = Some(on);
        self
    }

    /// `SO_REUSEPORT` (off by default): lets several sockets, in one process or several, bind the
    /// same TCP or UDP port, with the kernel spreading connections among them. Binding a Unix socket
    /// with it set is an error.
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.bind.reuse_port = on;
        self
    }

    /// The listen backlog: connections the kernel completes and queues before the server accepts
    /// them. Default 1024 (Python's 5 drops connections in any burst); the kernel caps it at
    /// `net.core.somaxconn`.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.bind.backlog = backlog;
        self
    }

    /// `IPV6_V6ONLY` for servers bound to an IPv6 address. `false` makes a server on `[::]` accept
    /// IPv4 clients too (dual stack); `true` keeps it to IPv6. Unset, the system default applies
    /// (dual stack on Linux).
    pub fn only_v6(mut self, only_v6: bool) -> Self {
        self.bind.only_v6 = Some(only_v6);
        self
    }

    /// `TCP_NODELAY` on accepted TCP connections. On by default: request/response protocols that
    /// write a reply in several pieces otherwise meet Nagle's algorithm and delayed ACKs, and stall
    /// for tens of milliseconds per exchange.
    pub fn nodelay(mut self, on: bool) -> Self {
        self.connection.nodelay = on;
        self
    }

    /// How long a read on an accepted connection may wait before failing (default: forever, as in
    /// Python). Set it for servers facing untrusted clients, so an idle or stalled client cannot
    /// hold a thread for ever.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.connection.read_timeout = Some(timeout);
        self
    }

    /// How long a write on an accepted connection may wait before failing (default: forever).
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.connection.write_timeout = Some(timeout);
        self
    }

    /// Closes a stream connection on which no byte has moved, either way, for `timeout`
    /// (default: never, as in Python). Unlike [`read_timeout`](Self::read_timeout), which a
    /// handler may change, it applies to every wait of every connection. A peer trickling a byte
    /// at a time is not idle: bound it with a [`Deadline`](crate::Deadline) or
    /// [`max_connection_lifetime`](Self::max_connection_lifetime). A wait it ends fails with
    /// `TimedOut` and a [`LimitExceeded`](crate::LimitExceeded) of
    /// [`Limit::IdleTimeout`](crate::Limit::IdleTimeout). Zero is taken as one millisecond.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.connection.idle_timeout = Some(timeout.max(Duration::from_millis(1)));
        self
    }

    /// Ends every stream connection `lifetime` after it was accepted, however busy (default:
    /// never). Waits past it fail with `TimedOut` and a
    /// [`LimitExceeded`](crate::LimitExceeded) of [`Limit::Lifetime`](crate::Limit::Lifetime), so
    /// no connection can hold a thread or a pool worker for longer. The time a connection spends
    /// queued for a [`Pool`](crate::Pool) worker counts. Zero is taken as one millisecond.
    pub fn max_connection_lifetime(mut self, lifetime: Duration) -> Self {
        self.connection.max_lifetime = Some(lifetime.max(Duration::from_millis(1)));
        self
    }

    /// The largest datagram a datagram server hands to its handler (default 8192 bytes). A larger
    /// one is dropped and reported to `handle_error` as [`Failure::Truncated`], never passed on cut
    /// short.
    pub fn max_packet_size(mut self, bytes: usize) -> Self {
        self.connection.max_packet_size = bytes;
        self
    }

    /// How long [`Server::handle_request`] waits for a request before calling the
    /// [`handle_timeout`](Self::handle_timeout) hook (Python's `timeout` attribute). Default:
    /// forever.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long [`Server::server_close`] waits for running requests before it gives up and
    /// returns a `TimedOut` error. Default: as long as they take (Python's `block_on_close`).
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = Some(timeout);
        self
    }

    /// Prefix for the names of the threads the mode starts (default `socketserver`, giving
    /// `socketserver-pool-0`, `socketserver-thread-17`, …).
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.threads.prefix = prefix.into();
        self
    }

    /// Stack size of the threads the mode starts (default: the Rust default, 2 MiB). Smaller
    /// stacks let a threading server hold more idle connections.
    pub fn thread_stack_size(mut self, bytes: usize) -> Self {
        self.threads.stack_size = Some(bytes);
        self
    }

    /// Decides, before the handler runs, whether to serve a peer (Python's `verify_request`).
    /// Returning `false` closes the connection (or drops the datagram) and counts it in
    /// [`Stats::rejected`](crate::Stats::rejected). Runs on the serving thread.
    pub fn verify_request(mut self, hook: impl FnMut(&Address) -> bool + Send + 'static) -> Self {
        self.hooks.verify_request = Some(Box::new(hook));
        self
    }

    /// Called with the peer and the [`Failure`] when a request's handler returns an error or
    /// panics, or a datagram is truncated (Python's `handle_error`). Runs on the thread that ran
    /// the request. The default logs the failure with `log::error!`, throttled: at most 5 lines a
    /// second, the next line (or the server's close) saying how many similar failures were not
    /// logged, so a flood of bad requests cannot flood the log. With no logger installed (or one
    /// that drops ERROR lines from this crate) the same throttled lines go to stderr, as Python's
    /// default prints there; a hook — `handle_error(|_, _| {})` to stay silent — replaces both.
    /// A hook gets every failure.
    pub fn handle_error(
        mut self,
        hook: impl Fn(&Address, &Failure) + Send + Sync + 'static,
    ) -> Self {
        self.on_error = Some(Arc::new(hook));
        self
    }

    /// Called by [`Server::handle_request`] when its [`timeout`](Self::timeout) passes with no
    /// request (Python's `handle_timeout`).
    pub fn handle_timeout(mut self, hook: impl FnMut(&ServerHandle) + Send + 'static) -> Self {
        self.hooks.handle_timeout = Some(Box::new(hook));
        self
    }

    /// Called by [`Server::serve_forever`] after every batch of requests, and at least every
    /// [`service_interval`](Self::service_interval) when idle (Python's `service_actions`): the
    /// place for periodic housekeeping, such as expiring idle chat participants.
    pub fn service_actions(mut self, hook: impl FnMut(&ServerHandle) + Send + 'static) -> Self {
        self.hooks.service_actions = Some(Box::new(hook));
        self
    }

    /// How often an idle [`Server::serve_forever`] wakes to run
    /// [`service_actions`](Self::service_actions) (default 500 ms). Without that hook an idle
    /// server does not wake at all; shutdown never depends on this interval.
    pub fn service_interval(mut self, interval: Duration) -> Self {
        self.service_interval = interval;
        self
    }

    /// Binds a TCP server to the first address of `addr` that works and starts listening.
    ///
    /// # Errors
    ///
    /// The error resolving `addr`, or binding or listening on the last of its addresses tried, with
    /// a message naming it (`AddrInUse` if another socket holds the port, `PermissionDenied` for a
    /// privileged port); an error starting the mode (a [`Pool`](crate::Pool)'s threads, say); and
    /// `Unsupported` when a child process of a process-based mode (see
    /// [`is_worker`](crate::is_worker)) builds a server other than the one it was started to serve.
    pub fn bind_tcp<H>(self, addr: impl ToSocketAddrs, handler: H) -> io::Result<Server<Tcp, H, M>>
    where
        H: RequestHandler<StreamRequest> + Clone,
    {
        self.serve(handler, |bind| {
            Ok((bind_inet(addr, Type::STREAM, bind)?, None))
        })
    }

    /// Binds a UDP server to the first address of `addr` that works.
    ///
    /// # Errors
    ///
    /// As for [`bind_tcp`](Self::bind_tcp), without the listening.
    pub fn bind_udp<H>(self, addr: impl ToSocketAddrs, handler: H) -> io::Result<Server<Udp, H, M>>
    where
        H: RequestHandler<DatagramRequest> + Clone,
    {
        self.serve(handler, |bind| {
            Ok((bind_inet(addr, Type::DGRAM, bind)?, None))
        })
    }

    /// Binds a Unix stream server to the socket file `path` and starts listening. The file is
    /// removed when the server closes. A socket file left there by a server that is gone
    /// (connecting to it is refused) is replaced; if a server answers on it, or `path` is not a
    /// socket, binding fails with `AddrInUse` and the file is left alone.
    ///
    /// # Errors
    ///
    /// `AddrInUse` as said above; the error binding or listening on `path` (a missing folder, no
    /// permission, a path too long for a socket address), with a message naming it; and the mode
    /// and process errors of [`bind_tcp`](Self::bind_tcp).
    pub fn bind_unix_stream<H>(
        self,
        path: impl AsRef<Path>,
        handler: H,
    ) -> io::Result<Server<UnixStream, H, M>>
    where
        H: RequestHandler<StreamRequest> + Clone,
    {
        let path = path.as_ref();
        self.serve(handler, |bind| {
            let socket = bind_unix(path, Type::STREAM, bind)?;
            Ok((socket, Some(UnixPathGuard::new(path))))
        })
    }

    /// Binds a Unix datagram server to the socket file `path`. The file is removed when the server
    /// closes. A stale socket file is replaced, as for
    /// [`bind_unix_stream`](Self::bind_unix_stream).
    ///
    /// # Errors
    ///
    /// As for [`bind_unix_stream`](Self::bind_unix_stream), without the listening.
    pub fn bind_unix_datagram<H>(
        self,
        path: impl AsRef<Path>,
        handler: H,
    ) -> io::Result<Server<UnixDatagram, H, M>>
    where
        H: RequestHandler<DatagramRequest> + Clone,
    {
        let path = path.as_ref();
        self.serve(handler, |bind| {
            let socket = bind_unix(path, Type::DGRAM, bind)?;
            Ok((socket, Some(UnixPathGuard::new(path))))
        })
    }

    /// Serves an already bound and listening TCP socket (Python's `bind_and_activate=False`; also
    /// how an inherited or socket-activated listener is served). Bind options do not apply; the
    /// listener is switched to non-blocking mode.
    ///
    /// # Errors
    ///
    /// The error reading the socket's address or switching it to non-blocking mode; and the mode
    /// and process errors of [`bind_tcp`](Self::bind_tcp).
    pub fn from_tcp_listener<H>(
        self,
        listener: TcpListener,
        handler: H,
    ) -> io::Result<Server<Tcp, H, M>>
    where
        H: RequestHandler<StreamRequest> + Clone,
    {
        self.serve(handler, |_| Ok((Socket::from(listener), None)))
    }

    /// Serves an already bound UDP socket. Bind options do not apply.
    ///
    /// # Errors
    ///
    /// The error reading the socket's address or switching it to non-blocking mode; and the mode
    /// and process errors of [`bind_tcp`](Self::bind_tcp).
    pub fn from_udp_socket<H>(self, socket: UdpSocket, handler: H) -> io::Result<Server<Udp, H, M>>
    where
        H: RequestHandler<DatagramRequest> + Clone,
    {
        self.serve(handler, |_| Ok((Socket::from(socket), None)))
    }

    /// Serves an already bound and listening Unix stream socket. Its file is left in place on close,
    /// since this server did not create it.
    ///
    /// # Errors
    ///
    /// The error reading the socket's address or switching it to non-blocking mode; and the mode
    /// and process errors of [`bind_tcp`](Self::bind_tcp).
    pub fn from_unix_listener<H>(
        self,
        listener: UnixListener,
        handler: H,
    ) -> io::Result<Server<UnixStream, H, M>>
    where
        H: RequestHandler<StreamRequest> + Clone,
    {
        self.serve(handler, |_| Ok((Socket::from(listener), None)))
    }

    /// Serves an already bound Unix datagram socket. Its file is left in place on close.
    ///
    /// # Errors
    ///
    /// The error reading the socket's address or switching it to non-blocking mode; and the mode
    /// and process errors of [`bind_tcp`](Self::bind_tcp).
    pub fn from_unix_datagram<H>(
        self,
        socket: StdUnixDatagram,
        handler: H,
    ) -> io::Result<Server<UnixDatagram, H, M>>
    where
        H: RequestHandler<DatagramRequest> + Clone,
    {
        self.serve(handler, |_| Ok((Socket::from(socket), None)))
    }

    /// Binds with `bind` and builds the server — or, in a child started by a process-based mode,
    /// takes over the inherited socket instead (a child never binds the address itself).
    fn serve<T, H>(
        self,
        handler: H,
        bind: impl FnOnce(&BindOptions) -> io::Result<(Socket, Option<UnixPathGuard>)>,
    ) -> io::Result<Server<T, H, M>>
    where
        T: Transport,
        H: RequestHandler<T::Request> + Clone,
    {
        if let Some(role) = process::claim(self.mode.process_kind())? {
            return Server::from_role(role, handler, self);
        }
        let (socket, unix_path) = bind(&self.bind)?;
        Server::from_parts(socket, unix_path, handler, self)
    }

    /// The datagram size limit, which also bounds what a per-request child reads from its parent.
    pub(crate) fn packet_limit(&self) -> usize {
        self.connection.max_packet_size
    }

    pub(crate) fn into_parts(self) -> BuiltParts<M> {
        BuiltParts {
            mode: self.mode,
            connection: self.connection,
            threads: self.threads,
            timeout: self.timeout,
            service_interval: self.service_interval,
            close_timeout: self.close_timeout,
            hooks: self.hooks,
            on_error: self.on_error,
        }
    }
}

/// A builder's settings once the socket exists.
pub(crate) struct BuiltParts<M> {
    pub(crate) mode: M,
    pub(crate) connection: ConnectionOptions,
    pub(crate) threads: ThreadSettings,
    pub(crate) timeout: Option<Duration>,
    pub(crate) service_interval: Duration,
    pub(crate) close_timeout: Option<Duration>,
    pub(crate) hooks: LoopHooks,
    pub(crate) on_error: Option<ErrorHook>,
}

impl<M: fmt::Debug> fmt::Debug for Builder<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("mode", &self.mode)
            .field("bind", &self.bind)
            .field("connection", &self.connection)
            .field("threads", &self.threads)
            .field("timeout", &self.timeout)
            .field("close_timeout", &self.close_timeout)
            .finish_non_exhaustive()
    }
}

impl<H, M> Server<Tcp, H, M>
where
    H: RequestHandler<StreamRequest> + Clone,
    M: Mode + Default,
{
    /// Binds a TCP server with default options (Python's `TCPServer(addr, Handler)`).
    ///
    /// # Errors
    ///
    /// As for [`Builder::bind_tcp`].
    pub fn bind(addr: impl ToSocketAddrs, handler: H) -> io::Result<Self> {
        Builder::new().mode(M::default()).bind_tcp(addr, handler)
    }
}

impl<H, M> Server<Udp, H, M>
where
    H: RequestHandler<DatagramRequest> + Clone,
    M: Mode + Default,
{
    /// Binds a UDP server with default options (Python's `UDPServer(addr, Handler)`).
    ///
    /// # Errors
    ///
    /// As for [`Builder::bind_udp`].
    pub fn bind(addr: impl ToSocketAddrs, handler: H) -> io::Result<Self> {
        Builder::new().mode(M::default()).bind_udp(addr, handler)
    }
}

impl<H, M> Server<UnixStream, H, M>
where
    H: RequestHandler<StreamRequest> + Clone,
    M: Mode + Default,
{
    /// Binds a Unix stream server at `path` with default options (Python's `UnixStreamServer`).
    ///
    /// # Errors
    ///
    /// As for [`Builder::bind_unix_stream`].
    pub fn bind(path: impl AsRef<Path>, handler: H) -> io::Result<Self> {
        Builder::new()
            .mode(M::default())
            .bind_unix_stream(path, handler)
    }
}

impl<H, M> Server<UnixDatagram, H, M>
where
    H: RequestHandler<DatagramRequest> + Clone,
    M: Mode + Default,
{
    /// Binds a Unix datagram server at `path` with default options (Python's
    /// `UnixDatagramServer`).
    ///
    /// # Errors
    ///
    /// As for [`Builder::bind_unix_datagram`].
    pub fn bind(path: impl AsRef<Path>, handler: H) -> io::Result<Self> {
        Builder::new()
            .mode(M::default())
            .bind_unix_datagram(path, handler)
    }
}
