//! [`Builder`]: every server option in one place, ending in a call that binds the server.

use std::fmt;
use std::io;
use std::net::{TcpListener, ToSocketAddrs, UdpSocket};
use std::os::unix::net::{UnixDatagram as StdUnixDatagram, UnixListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Socket, Type};

use super::transport::{Tcp, Transport, Udp, UnixDatagram, UnixStream};
use super::Server;
use crate::address::Address;
use crate::control::handle::ErrorHook;
use crate::control::ServerHandle;
use crate::failure::Failure;
use crate::handler::{DatagramRequest, RequestHandler, StreamRequest};
use crate::mode::{Mode, Single, ThreadSettings};
use crate::process::{self, ProcessKind};
use crate::socket::bind::{bind_inet, bind_unix, resolve};
use crate::socket::options::{BindOptions, ConnectionOptions};
use crate::socket::unix_path::UnixPathGuard;
use crate::systemd::{self, Asked, Select, Want};

/// Shared and locked, since with the PROXY protocol it runs on the requests' threads.
pub(crate) type VerifyHook = Arc<std::sync::Mutex<dyn FnMut(&Address) -> bool + Send>>;
type LoopHook = Box<dyn FnMut(&ServerHandle) + Send>;

/// The hooks the serving loop calls (Python's overridable server methods).
#[derive(Default)]
pub(crate) struct LoopHooks {
    pub(crate) verify_request: Option<VerifyHook>,
    pub(crate) handle_timeout: Option<LoopHook>,
    pub(crate) service_actions: Option<LoopHook>,
    pub(crate) on_stop: Option<LoopHook>,
}

/// How the server stops: [`Builder::stop_on_signals`](crate#stopping-gracefully) and [`Builder::grace_period`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StopOptions {
    /// Whether SIGTERM, SIGINT and SIGQUIT stop the server.
    #[cfg_attr(not(feature = "signals"), allow(dead_code))]
    pub(crate) signals: bool,
    /// A graceful stop's grace period (`None`: stops are not graceful).
    pub(crate) grace: Option<Duration>,
}

/// The grace period [`Builder::stop_on_signals`](crate#stopping-gracefully) gives running requests unless told otherwise:
/// what systemd (`TimeoutStopSec`) and Kubernetes (`terminationGracePeriodSeconds`) allow by
/// default, too.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(30);

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
/// | [`stop_on_signals`](crate#stopping-gracefully) | off: signals have their default effect | same |
/// | [`grace_period`](Self::grace_period) | 30 s once a stop is graceful | no graceful stop |
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
    stopping: StopOptions,
    notify_systemd: bool,
    /// Where the admin listener serves the metrics and status page (feature `metrics`).
    #[cfg(feature = "metrics")]
    metrics: Option<crate::metrics::admin::AdminAddr>,
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
            stopping: StopOptions::default(),
            notify_systemd: true,
            #[cfg(feature = "metrics")]
            metrics: None,
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
        self.map_mode(|_| mode)
    }

    /// The builder with its mode replaced by what `f` makes of it.
    pub(crate) fn map_mode<M2: Mode>(self, f: impl FnOnce(M) -> M2) -> Builder<M2> {
        Builder {
            mode: f(self.mode),
            bind: self.bind,
            connection: self.connection,
            threads: self.threads,
            timeout: self.timeout,
            service_interval: self.service_interval,
            close_timeout: self.close_timeout,
            hooks: self.hooks,
            on_error: self.on_error,
            stopping: self.stopping,
            notify_systemd: self.notify_systemd,
            #[cfg(feature = "metrics")]
            metrics: self.metrics,
        }
    }

    /// Serves the server's metrics and status page on an admin listener at `addr` (feature
    /// `metrics`), a TCP address of its own: `GET /metrics` answers the Prometheus text format,
    /// `GET /` a small HTML status page (see [`crate::metrics`]). It is bound with the server
    /// (an address that does not resolve or bind is the `bind_*` call's error, as is the served
    /// address itself), serves from then on, on a thread of its own, and closes with the server.
    /// In a [`Prefork`](crate::Prefork) or [`Process`](crate::Process) server the parent serves
    /// it, with the whole server's counters; the children do not. Read the bound address (port
    /// 0 picks a free one) with [`ServerHandle::metrics_addr`].
    ///
    /// Keep it off the public network: it tells how the server is doing to whoever asks.
    #[cfg(feature = "metrics")]
    pub fn metrics_addr(mut self, addr: impl ToSocketAddrs) -> Self {
        let resolved = addr
            .to_socket_addrs()
            .map(Iterator::collect)
            .map_err(|e| format!("cannot resolve the metrics listener's address: {e}"));
        self.metrics = Some(crate::metrics::admin::AdminAddr::Tcp(resolved));
        self
    }

    /// [`metrics_addr`](Self::metrics_addr) on a Unix stream socket at `path` (a stale socket
    /// file is replaced; the file is removed when the server closes).
    #[cfg(feature = "metrics")]
    pub fn metrics_unix(mut self, path: impl AsRef<Path>) -> Self {
        self.metrics = Some(crate::metrics::admin::AdminAddr::Unix(
            path.as_ref().to_path_buf(),
        ));
        self
    }

    /// The options for accepted connections (a message server's loop enforces their limits).
    #[cfg(feature = "message")]
    pub(crate) fn connection_options(&self) -> &ConnectionOptions {
        &self.connection
    }

    /// How the mode's threads are named and sized (a message server's loop and workers too).
    #[cfg(feature = "message")]
    pub(crate) fn thread_settings(&self) -> &ThreadSettings {
        &self.threads
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
    /// [`Stats::rejected`](crate::Stats::rejected). Runs on the serving thread. With the PROXY
    /// protocol on (`proxy_protocol`, feature `proxy`) it runs once the header is read, so it
    /// sees the real client's address: on the serving thread under
    /// [`serve_forever`](crate::Server::serve_forever), on the request's thread (in a
    /// [`Process`](crate::Process) mode, in the child) under
    /// [`handle_request`](crate::Server::handle_request). Calls from several threads take turns.
    pub fn verify_request(mut self, hook: impl FnMut(&Address) -> bool + Send + 'static) -> Self {
        self.hooks.verify_request = Some(Arc::new(std::sync::Mutex::new(hook)));
        self
    }

    /// Expects a PROXY protocol header (`send-proxy`/`send-proxy-v2` in `HAProxy`, nginx's
    /// `proxy_protocol on`, most cloud TCP balancers) at the start of every TCP or Unix stream
    /// connection, of the given version (feature `proxy`). Off by default. Only peers listed in
    /// [`trusted_proxies`](Self::trusted_proxies) may send one: a connection from anywhere else,
    /// one without a well-formed header, or one whose header does not arrive within
    /// [`proxy_header_timeout`](Self::proxy_header_timeout) (5 s) is closed before the handler
    /// runs and reported to [`handle_error`](Self::handle_error) (counted as failed).
    ///
    /// Under [`serve_forever`](crate::Server::serve_forever) a new connection waits for its
    /// header in the *intake*: one thread that watches every such connection at once (epoll) and
    /// hands a connection to the mode only once its header is whole. So a connection that holds
    /// back its header (a slow or broken balancer, a lost packet) holds no thread, worker or
    /// child process, and stalls no one, in any mode and in message servers; the timeout counts
    /// from accept. ([`handle_request`](crate::Server::handle_request) reads the header on the
    /// request's thread instead.) The header is bounded (107 bytes for version 1, 4 KiB for
    /// version 2) before anything is allocated, and nothing past it is taken from the socket.
    /// Then [`StreamRequest::peer_addr`] is the client's address, [`StreamRequest::proxy_addr`]
    /// the balancer's, and [`StreamRequest::proxy_header`] has the version 2 TLVs (a
    /// [`Process`](crate::Process) child gets them from its parent). A version 2 `LOCAL` header
    /// (the balancer's health check) is closed without running the handler and counted as
    /// [`rejected`](crate::Stats::rejected). `verify_request` runs after the header (see
    /// [`verify_request`](Self::verify_request)).
    ///
    /// ```
    /// use socketserver::proxy::ProxyProtocol;
    /// use socketserver::{Builder, StreamRequest};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let server = Builder::new()
    ///     .proxy_protocol(ProxyProtocol::Any)
    ///     .trusted_proxies(["10.0.0.0/8", "127.0.0.1"])
    ///     .bind_tcp("127.0.0.1:0", |req: &mut StreamRequest| {
    ///         let client = req.peer_addr().to_string(); // the client, not the balancer
    ///         writeln!(req, "hello {client}")
    ///     })?;
    /// # use std::io::Write;
    /// # server.server_close()?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "proxy")]
    pub fn proxy_protocol(mut self, version: crate::proxy::ProxyProtocol) -> Self {
        self.proxy_config().version = Some(version);
        self
    }

    /// The balancers allowed to send PROXY protocol headers (feature `proxy`): IP addresses
    /// (`"10.0.0.7"`) and CIDR ranges (`"10.0.0.0/8"`, `"fd00::/8"`), added to any given before.
    /// Trust only your balancers' addresses: whoever may send a header can claim to be any client.
    /// A malformed entry makes binding fail with `InvalidInput`. With none, every TCP peer is
    /// refused; peers on a Unix stream socket are always trusted (the socket file's permissions
    /// decide who may connect).
    #[cfg(feature = "proxy")]
    pub fn trusted_proxies<S: AsRef<str>>(mut self, proxies: impl IntoIterator<Item = S>) -> Self {
        let config = self.proxy_config();
        for text in proxies {
            match text.as_ref().parse() {
                Ok(range) => config.trusted.push(range),
                Err(e) => config.invalid.push(e.to_string()),
            }
        }
        self
    }

    /// How long a balancer may take to send a connection's PROXY protocol header (feature
    /// `proxy`; default 5 s, [`DEFAULT_HEADER_TIMEOUT`](crate::proxy::DEFAULT_HEADER_TIMEOUT)).
    #[cfg(feature = "proxy")]
    pub fn proxy_header_timeout(mut self, timeout: Duration) -> Self {
        self.proxy_config().timeout = timeout;
        self
    }

    /// Serves TLS (feature `tls`): every connection does its handshake with `tls`'s certificates
    /// before its handler runs, and the handler reads and writes plaintext as before (see
    /// [`tls`](crate::tls) for where handshakes run and how long they may take). Stream servers
    /// and message servers (set it before `messages`) only: binding a datagram server with it
    /// fails with `InvalidInput`.
    ///
    /// Keep a clone of `tls` to [`reload`](crate::tls::Tls::reload) its files while the server
    /// runs; with [`stop_on_signals`], SIGHUP reloads them.
    ///
    /// ```no_run
    /// use std::io::Write;
    /// use socketserver::{tls::TlsConfig, Builder, StreamRequest};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let tls = TlsConfig::new("server.crt", "server.key").load()?;
    /// let mut server = Builder::new()
    ///     .tls(tls)
    ///     .bind_tcp("127.0.0.1:8443", |req: &mut StreamRequest| {
    ///         let version = req.tls().map_or("none", |t| t.version());
    ///         writeln!(req, "hello over {version}")
    ///     })?;
    /// server.serve_forever()
    /// # }
    /// ```
    ///
    #[cfg_attr(
        feature = "signals",
        doc = "[`stop_on_signals`]: Self::stop_on_signals"
    )]
    #[cfg_attr(not(feature = "signals"), doc = "[`stop_on_signals`]: crate#features")]
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::tls::Tls) -> Self {
        self.connection.tls = Some(crate::socket::options::TlsOptions {
            tls,
            handshake: crate::socket::options::HandshakeBy::Server,
        });
        self
    }

    /// A message server's TLS, taken over by its event loop, which does the handshakes: the
    /// accepting server only passes connections on (after their PROXY header, if any).
    #[cfg(all(feature = "tls", feature = "message"))]
    pub(crate) fn tls_for_message_loop(&mut self) -> Option<crate::tls::Tls> {
        let tls = self.connection.tls.as_mut()?;
        tls.handshake = crate::socket::options::HandshakeBy::MessageLoop;
        Some(tls.tls.clone())
    }

    #[cfg(feature = "proxy")]
    fn proxy_config(&mut self) -> &mut crate::proxy::ProxyConfig {
        let config = self.connection.proxy.get_or_insert_with(Default::default);
        Arc::make_mut(config)
    }

    /// Refuses PROXY protocol settings with a malformed trusted proxy, and TLS on a datagram
    /// server.
    fn check_options(&self, _stream: bool) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if self.connection.tls.is_some() && !_stream {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Builder::tls is for stream servers (TCP, Unix stream): a datagram server would \
                 need DTLS, which this crate does not offer",
            ));
        }
        #[cfg(feature = "proxy")]
        if let Some(bad) = self
            .connection
            .proxy
            .as_ref()
            .and_then(|c| c.invalid.first())
        {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, bad.clone()));
        }
        Ok(())
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

    /// Stops the server gracefully on SIGTERM or SIGINT (feature `signals`) — what systemd,
    /// Kubernetes, container runtimes and a terminal's Ctrl-C send — and at once on a second one,
    /// or on SIGQUIT. One call arms it, in every mode; the grace period is 30 s unless
    /// [`grace_period`](Self::grace_period) says otherwise. What the stop does (the listen backlog
    /// served, running requests given the grace period, idle connections closed at once, the
    /// error and exit status when requests are cut off) is told in full in
    /// [Stopping gracefully](crate#stopping-gracefully).
    ///
    /// ```no_run
    /// use std::io::BufRead;
    /// use std::time::Duration;
    /// use socketserver::{Builder, StreamRequest, Threading};
    ///
    /// fn main() -> std::io::Result<()> {
    ///     let mut server = Builder::new()
    ///         .mode(Threading::new())
    ///         .stop_on_signals()
    ///         .grace_period(Duration::from_secs(10))
    ///         .bind_tcp("127.0.0.1:8080", |req: &mut StreamRequest| {
    ///             let mut line = String::new();
    ///             req.read_line(&mut line).map(|_| ())
    ///         })?;
    ///     server.serve_forever()?; // returns after SIGTERM, once the requests are done
    ///     server.server_close()?;
    ///     // … clean up …
    ///     Ok(()) // exit status 0
    /// }
    /// ```
    #[cfg(feature = "signals")]
    pub fn stop_on_signals(mut self) -> Self {
        self.stopping.signals = true;
        self.stopping.grace.get_or_insert(DEFAULT_GRACE_PERIOD);
        self
    }

    /// How long a graceful stop lets running requests finish (30 s by default) before it cuts
    /// them off; it bounds [`server_close`](Server::server_close)'s wait too, whatever the
    /// [`close_timeout`](Self::close_timeout). Set on its own, without `stop_on_signals`, it makes
    /// [`ServerHandle::shutdown`] a graceful stop, for a program that handles signals itself:
    /// `shutdown` acts as SIGTERM does, [`ServerHandle::stop_now`] as a second one. See
    /// [Stopping gracefully](crate#stopping-gracefully).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.stopping.grace = Some(grace);
        self
    }

    /// Called once, on the serving thread, when [`serve_forever`](Server::serve_forever) begins
    /// to stop — on [`ServerHandle::shutdown`] or a signal — before it drains: the place to tell
    /// a supervisor the service is stopping, or to stop feeding work to it. Prefork workers run
    /// the program's `main` too, so it is also called in each worker as it stops: check
    /// [`is_worker`](crate::is_worker) for what only the parent should do.
    pub fn on_stop(mut self, hook: impl FnMut(&ServerHandle) + Send + 'static) -> Self {
        self.hooks.on_stop = Some(Box::new(hook));
        self
    }

    /// Whether the server reports to systemd when `NOTIFY_SOCKET` is set (default: on):
    /// `READY=1` once serving, `STATUS=` lines with the stats, `WATCHDOG=1` pings when
    /// `WATCHDOG_USEC` asks for them, `STOPPING=1` when stopping. See [`systemd`](crate::systemd).
    /// Turn it off when the program reports to systemd itself.
    pub fn notify_systemd(mut self, on: bool) -> Self {
        self.notify_systemd = on;
        self
    }

    /// Serves a listening TCP socket passed by systemd socket activation (`ListenStream=` in a
    /// `.socket` unit), instead of binding: `socket` is its position (`0`: the first) or its
    /// `FileDescriptorName=`. Fails, saying what was passed, if there is no such socket or it is
    /// not a listening TCP socket. Bind options do not apply. See [`systemd`](crate::systemd).
    ///
    /// # Errors
    ///
    /// `NotFound` if systemd passed no sockets to this process or none matches `socket`;
    /// `InvalidInput` if it is not a listening TCP socket (the message says what was passed);
    /// `AddrInUse` if another server already serves it; and the mode and process errors of
    /// [`bind_tcp`](Self::bind_tcp).
    pub fn systemd_tcp<H>(
        self,
        socket: impl Into<Select>,
        handler: H,
    ) -> io::Result<Server<Tcp, H, M>>
    where
        H: RequestHandler<StreamRequest> + Clone,
    {
        let select = socket.into();
        self.serve(handler, |_| Ok((systemd::take(&select, Want::Tcp)?, None)))
    }

    /// Serves a UDP socket passed by systemd socket activation (`ListenDatagram=`), as
    /// [`systemd_tcp`](Self::systemd_tcp) does for TCP.
    ///
    /// # Errors
    ///
    /// As for [`systemd_tcp`](Self::systemd_tcp), for a UDP socket.
    pub fn systemd_udp<H>(
        self,
        socket: impl Into<Select>,
        handler: H,
    ) -> io::Result<Server<Udp, H, M>>
    where
        H: RequestHandler<DatagramRequest> + Clone,
    {
        let select = socket.into();
        self.serve(handler, |_| Ok((systemd::take(&select, Want::Udp)?, None)))
    }

    /// Serves a listening Unix stream socket passed by systemd socket activation
    /// (`ListenStream=/path`). The socket file belongs to systemd and is left in place on close.
    ///
    /// # Errors
    ///
    /// As for [`systemd_tcp`](Self::systemd_tcp), for a listening Unix stream socket.
    pub fn systemd_unix_stream<H>(
        self,
        socket: impl Into<Select>,
        handler: H,
    ) -> io::Result<Server<UnixStream, H, M>>
    where
        H: RequestHandler<StreamRequest> + Clone,
    {
        let select = socket.into();
        self.serve(handler, |_| {
            Ok((systemd::take(&select, Want::UnixStream)?, None))
        })
    }

    /// Serves a Unix datagram socket passed by systemd socket activation
    /// (`ListenDatagram=/path`). The socket file is left in place on close.
    ///
    /// # Errors
    ///
    /// As for [`systemd_tcp`](Self::systemd_tcp), for a Unix datagram socket.
    pub fn systemd_unix_datagram<H>(
        self,
        socket: impl Into<Select>,
        handler: H,
    ) -> io::Result<Server<UnixDatagram, H, M>>
    where
        H: RequestHandler<DatagramRequest> + Clone,
    {
        let select = socket.into();
        self.serve(handler, |_| {
            Ok((systemd::take(&select, Want::UnixDatagram)?, None))
        })
    }

    /// Binds a TCP server to the first address of `addr` that works and starts listening.
    ///
    /// In a program started by a [`Prefork`](crate::Prefork) binary upgrade (SIGUSR2), the first
    /// Prefork server built serves the listening socket inherited from the old program instead
    /// of binding `addr` (so the upgrade keeps the address); this holds for every `bind_*` method.
    ///
    /// # Errors
    ///
    /// The error resolving `addr`, or binding or listening on the last of its addresses tried, with
    /// a message naming it (`AddrInUse` if another socket holds the port, `PermissionDenied` for a
    /// privileged port); an error starting the mode (a [`Pool`](crate::Pool)'s threads, say);
    /// `Unsupported` when a child process of a process-based mode (see
    /// [`is_worker`](crate::is_worker)) builds a server other than the one it was started to serve;
    /// and `InvalidInput` when a program started by a binary upgrade builds a Prefork server of
    /// another kind than the socket it inherited (a UDP server where TCP was served), so that the
    /// upgrade fails and the old program goes on serving.
    pub fn bind_tcp<H>(self, addr: impl ToSocketAddrs, handler: H) -> io::Result<Server<Tcp, H, M>>
    where
        H: RequestHandler<StreamRequest> + Clone,
    {
        self.serve(handler, |binding| {
            let addrs = resolve(addr, Type::STREAM)?;
            let socket = match binding.inherited(Want::Tcp, Asked::Inet(&addrs))? {
                Some(socket) => socket,
                None => {
                    binding.owned.set(true);
                    bind_inet(&addrs, Type::STREAM, binding.options)?
                }
            };
            Ok((socket, None))
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
        self.serve(handler, |binding| {
            let addrs = resolve(addr, Type::DGRAM)?;
            let socket = match binding.inherited(Want::Udp, Asked::Inet(&addrs))? {
                Some(socket) => socket,
                None => bind_inet(&addrs, Type::DGRAM, binding.options)?,
            };
            Ok((socket, None))
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
        self.serve(handler, |binding| {
            if let Some(socket) = binding.inherited(Want::UnixStream, Asked::Unix(path))? {
                return Ok((socket, None));
            }
            let socket = bind_unix(path, Type::STREAM, binding.options)?;
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
        self.serve(handler, |binding| {
            if let Some(socket) = binding.inherited(Want::UnixDatagram, Asked::Unix(path))? {
                return Ok((socket, None));
            }
            let socket = bind_unix(path, Type::DGRAM, binding.options)?;
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
        bind: impl FnOnce(&Binding<'_>) -> io::Result<(Socket, Option<UnixPathGuard>)>,
    ) -> io::Result<Server<T, H, M>>
    where
        T: Transport,
        H: RequestHandler<T::Request> + Clone,
    {
        self.check_options(T::STREAM)?;
        let kind = self.mode.process_kind();
        if let Some(role) = process::claim(kind)? {
            return Server::from_role(role, handler, self);
        }
        let binding = Binding {
            options: &self.bind,
            upgrade: kind == Some(ProcessKind::Prefork),
            owned: std::cell::Cell::new(false),
        };
        let (socket, unix_path) = bind(&binding)?;
        let owned = binding.owned.get();
        let mut server = Server::from_parts(socket, unix_path, handler, self)?;
        server.owns_listener = owned;
        Ok(server)
    }

    /// The datagram size limit, which also bounds what a per-request child reads from its parent.
    pub(crate) fn packet_limit(&self) -> usize {
        self.connection.max_packet_size
    }

    pub(crate) fn into_parts(self) -> BuiltParts<M> {
        #[allow(unused_mut)]
        let mut connection = self.connection;
        // Trusted proxies alone do not turn the PROXY protocol on.
        #[cfg(feature = "proxy")]
        {
            connection.proxy = connection.proxy.filter(|c| c.version.is_some());
        }
        BuiltParts {
            mode: self.mode,
            connection,
            threads: self.threads,
            timeout: self.timeout,
            service_interval: self.service_interval,
            close_timeout: self.close_timeout,
            hooks: self.hooks,
            on_error: self.on_error,
            stopping: self.stopping,
            notify_systemd: self.notify_systemd,
            #[cfg(feature = "metrics")]
            metrics: self.metrics,
        }
    }
}

/// What the `bind` step of a `bind_*` method is given.
struct Binding<'a> {
    options: &'a BindOptions,
    /// Set by `bind_tcp` when it bound a listener of its own (not one passed to the program): only
    /// such a socket may be shut to new connections when the server stops (see
    /// `socket::gate`).
    owned: std::cell::Cell<bool>,
    /// Whether the server may take the socket a binary upgrade passed: a [`Prefork`] server's,
    /// since only a Prefork parent upgrades (another mode's server binds its own address).
    ///
    /// [`Prefork`]: crate::Prefork
    upgrade: bool,
}

impl Binding<'_> {
    /// In a program started by a binary upgrade (SIGUSR2 to a Prefork parent): the listening
    /// socket it inherited, which its Prefork server serves instead of binding `asked`, whatever
    /// the command line says (once; `Err` if it is not of kind `want`). Its Unix socket file, if
    /// any, is left in place: the old program serves it until the new one is ready, and goes on
    /// serving it if the new one fails.
    fn inherited(&self, want: Want, asked: Asked<'_>) -> io::Result<Option<Socket>> {
        match self.upgrade {
            true => systemd::take_upgraded(want, &asked),
            false => Ok(None),
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
    pub(crate) stopping: StopOptions,
    pub(crate) notify_systemd: bool,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<crate::metrics::admin::AdminAddr>,
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
            .field("stopping", &self.stopping)
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
