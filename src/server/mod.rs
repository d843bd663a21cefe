//! The server: binding (through [`Builder`]), the serving loop, shutdown and close.

mod aliases;
mod assemble;
mod builder;
mod child;
mod intake;
#[cfg(feature = "message")]
pub(crate) mod message;
mod serve;
#[cfg(feature = "signals")]
mod signals;
mod stop;
pub mod transport;

pub use crate::control::ServerHandle;
pub use aliases::*;
pub use builder::{Builder, DEFAULT_GRACE_PERIOD};

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use socket2::Socket;

use crate::address::Address;
use crate::handler::RequestHandler;
use crate::mode::Mode;
use crate::socket::errors::Backoff;
use crate::socket::options::ConnectionOptions;
use crate::socket::unix_path::UnixPathGuard;
use crate::stats::Stats;
use crate::throttle::Throttle;

use crate::control::StopSignal;
use builder::LoopHooks;
use transport::Transport;

/// What one [`Server::handle_request`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// A request was passed to the concurrency mode: in [`Single`](crate::Single) mode it has been handled; in
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

/// A socket server: transport `T` ([`Tcp`](crate::transport::Tcp), [`Udp`](crate::transport::Udp), [`UnixStream`](crate::transport::UnixStream), [`UnixDatagram`](crate::transport::UnixDatagram)), request
/// handler `H`, concurrency mode `M` ([`Single`](crate::Single), [`Threading`](crate::Threading), [`Pool`](crate::Pool), [`Process`](crate::Process),
/// [`Prefork`](crate::Prefork)).
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
///
/// ```
/// use std::io::{Read, Write};
/// use std::net::TcpStream;
/// use socketserver::{stream_handler, TcpServer};
///
/// # fn main() -> std::io::Result<()> {
/// // 1. Bind and listen; port 0 lets the system pick a free port.
/// let mut server = TcpServer::bind(
///     "127.0.0.1:0",
///     stream_handler(|req| {
///         let mut buf = [0u8; 64];
///         let n = req.read(&mut buf)?;
///         req.write_all(&buf[..n].to_ascii_uppercase())
///     }),
/// )?;
/// let addr = server.local_addr().as_inet().expect("a TCP address");
/// let handle = server.handle(); // taken before the server moves to its thread
/// // 2. Serve on a thread of its own; 4. close once serving ends.
/// let serving = std::thread::spawn(move || -> std::io::Result<()> {
///     server.serve_forever()?;
///     server.server_close()
/// });
///
/// let mut client = TcpStream::connect(addr)?;
/// client.write_all(b"hi")?;
/// let mut reply = [0u8; 2];
/// client.read_exact(&mut reply)?;
/// assert_eq!(&reply, b"HI");
///
/// // 3. Stop: `shutdown` returns at once, and `serve_forever` within milliseconds.
/// handle.shutdown();
/// serving.join().expect("serving thread")?;
/// assert_eq!(handle.stats().completed, 1);
/// # Ok(())
/// # }
/// ```
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
    #[cfg(any(feature = "proxy", feature = "tls"))]
    intake: Option<intake::Intake<T>>,
    /// How the intake's thread is named and sized.
    #[cfg(any(feature = "proxy", feature = "tls"))]
    threads: crate::mode::ThreadSettings,
    /// A TCP listener this process bound itself: a graceful stop shuts it to new connections
    /// before its last look at the backlog (see [`crate::socket::gate`]).
    pub(crate) owns_listener: bool,
    /// Whether the stop has shut that listener to new connections.
    door_shut: bool,
    /// Whether `serve_forever` was called (it serves once).
    served: bool,
    /// The admin listener serving the metrics (feature `metrics`), until the server is dropped.
    #[cfg(feature = "metrics")]
    _admin: Option<crate::metrics::admin::Admin>,
    transport: PhantomData<fn() -> T>,
}

impl<T, H, M> Server<T, H, M>
where
    T: Transport,
    H: RequestHandler<T::Request> + Clone,
    M: Mode,
{
    pub(super) fn stop(&self) -> &StopSignal {
        &self.handle.shared.stop
    }

    pub(super) fn socket_fd(&self) -> io::Result<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.socket.as_ref().map(AsRawFd::as_raw_fd).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "the server has been closed")
        })
    }
}

impl<T: Transport, H, M: Mode> Server<T, H, M> {
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

    /// The concurrency mode, e.g. to read [`Threading::tracked_threads`](crate::Threading::tracked_threads).
    pub fn mode(&self) -> &M {
        &self.mode
    }

    /// Changes how long [`handle_request`](Self::handle_request) waits (`None`: forever).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
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
