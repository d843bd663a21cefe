//! [`StreamRequest`]: one accepted TCP or Unix stream connection, as a handler sees it.

use std::io::{self, BufRead, IoSlice, Read, Write};
use std::time::{Duration, Instant};

use socket2::SockRef;

use super::connection::Connection;
use super::deadline::Deadline;
use super::limits::Guarded;
use super::read_buffer::ReadBuffer;
use super::send::{send_all, send_all_vectored};
use super::split::{ReadHalf, WriteHalf};
#[cfg(any(feature = "proxy", feature = "tls"))]
use super::Admission;
use crate::address::Address;
use crate::control::ServerHandle;
use crate::control::FIRST_REQUEST_WAIT;
use crate::socket::options::ConnectionOptions;

/// Read buffer size, as in Python's `StreamRequestHandler` (`rbufsize` of `io.DEFAULT_BUFFER_SIZE`).
const READ_BUFFER: usize = 8 * 1024;

/// One connection, handed to [`RequestHandler::handle`](crate::RequestHandler::handle) by TCP and
/// Unix stream servers — Python's `StreamRequestHandler` with `rfile` and `wfile` folded in.
///
/// * Reading is buffered: use [`Read`] (`read`, `read_exact`) and [`BufRead`] (`read_line`,
///   `read_until`, `lines`) directly on the request. A read of 0 bytes means the client closed
///   the connection.
/// * Writing sends everything or fails: [`Write::write`] here behaves like Python's `sendall`, so
///   `write!`, `write` and [`send_all`](Self::send_all) never leave part of a buffer unsent without
///   an error. Writes are not buffered: each one reaches the socket at once.
/// * Timeouts and `TCP_NODELAY` come from the server's configuration and can be changed per
///   connection.
/// * Time limits: a read timeout bounds one wait, so a peer trickling a byte at a time defeats
///   it. A [`Deadline`] ([`set_deadline`](Self::set_deadline)) bounds a whole exchange, and the
///   server's [`idle_timeout`](crate::Builder::idle_timeout) and
///   [`max_connection_lifetime`](crate::Builder::max_connection_lifetime) bound every
///   connection. Whatever waits on the socket through the request — `read`, `read_line`,
///   `write`, the [`framing`](crate::framing) and `auth` helpers — waits only
///   until the nearest of them, then fails with a `TimedOut` error carrying a
///   [`LimitExceeded`](crate::LimitExceeded) that says which one passed.
///
/// To read and write at once — a loop over `lines()` that answers each line — take the two
/// halves with [`split`](Self::split).
#[derive(Debug)]
pub struct StreamRequest {
    buffer: ReadBuffer,
    conn: Guarded,
    peer: Address,
    server: ServerHandle,
    /// Taken over by another part of the server (see [`hand_over`](Self::hand_over)).
    handed_over: bool,
    /// When the connection was accepted: the first request may take [`FIRST_REQUEST_WAIT`] from
    /// here to arrive, even during a stop.
    accepted_at: Instant,
    /// With the PROXY protocol: the settings (until the header is read), then the balancer's
    /// address and the header.
    #[cfg(feature = "proxy")]
    proxy: ProxyState,
    /// With TLS: the handshake still to do (once done, the session is in `conn`).
    #[cfg(feature = "tls")]
    tls: TlsPhase,
}

/// Where a request stands with its TLS handshake.
#[cfg(feature = "tls")]
#[derive(Debug)]
enum TlsPhase {
    /// No TLS here, or the handshake is done.
    Done,
    /// Not begun.
    Expected(crate::tls::Tls),
    /// Begun without waiting (by the intake), not finished; with its time limit.
    Begun(Box<rustls::ServerConnection>, Duration),
}

/// Where a request stands with the PROXY protocol.
#[cfg(feature = "proxy")]
#[derive(Debug)]
enum ProxyState {
    Off,
    Expected(std::sync::Arc<crate::proxy::ProxyConfig>),
    /// The balancer's address, the header it sent and its bytes as sent (kept to hand the
    /// header to a child process; boxed: most requests have none).
    Read(Box<(Address, crate::proxy::ProxyHeader, Vec<u8>)>),
}

impl StreamRequest {
    /// Passes this connection on (a message server's loop takes it over from the accepting
    /// handler): the request stays active in the server's counters until the returned ticket is
    /// dropped, rather than ending when the handler returns.
    #[cfg(feature = "message")]
    pub(crate) fn hand_over(&mut self) -> crate::control::Ticket {
        self.handed_over = true;
        crate::control::Ticket::new(std::sync::Arc::clone(&self.server.shared))
    }

    /// When the connection was accepted.
    #[cfg(feature = "message")]
    pub(crate) fn accepted_at(&self) -> Instant {
        self.accepted_at
    }

    /// Whether [`hand_over`](Self::hand_over) passed this connection on.
    pub(crate) fn handed_over(&self) -> bool {
        self.handed_over
    }

    pub(crate) fn new(
        connection: Connection,
        peer: Address,
        server: ServerHandle,
        options: &ConnectionOptions,
    ) -> Self {
        StreamRequest {
            buffer: ReadBuffer::new(READ_BUFFER),
            conn: Guarded::new(connection, options),
            peer,
            server,
            handed_over: false,
            accepted_at: Instant::now(),
            #[cfg(feature = "proxy")]
            proxy: match &options.proxy {
                Some(config) => ProxyState::Expected(std::sync::Arc::clone(config)),
                None => ProxyState::Off,
            },
            #[cfg(feature = "tls")]
            tls: match options.tls_here() {
                Some(tls) => TlsPhase::Expected(tls.clone()),
                None => TlsPhase::Done,
            },
        }
    }

    /// What must come before the handler, waiting for it under its deadline: the PROXY protocol
    /// header (from a trusted balancer only, taking the client's address from it), then the TLS
    /// handshake. Does nothing for what is done already.
    #[cfg(any(feature = "proxy", feature = "tls"))]
    pub(crate) fn admit(&mut self) -> io::Result<Admission> {
        #[cfg(feature = "proxy")]
        let admission = self.admit_proxy()?;
        #[cfg(not(feature = "proxy"))]
        let admission = Admission::Client;
        #[cfg(feature = "tls")]
        if admission == Admission::Client {
            self.handshake()?;
        }
        Ok(admission)
    }

    /// [`admit`](Self::admit) without waiting, for the intake: `Ok(None)` until the socket has
    /// brought what it needs (call again when it is readable or writable).
    #[cfg(any(feature = "proxy", feature = "tls"))]
    pub(crate) fn try_admit(&mut self) -> io::Result<Option<Admission>> {
        #[cfg(feature = "proxy")]
        let Some(admission) = self.try_admit_proxy()?
        else {
            return Ok(None);
        };
        #[cfg(not(feature = "proxy"))]
        let admission = Admission::Client;
        #[cfg(feature = "tls")]
        if admission == Admission::Client && !self.try_handshake()? {
            return Ok(None);
        }
        Ok(Some(admission))
    }

    /// The TLS handshake, to its end, under its deadline (counted from accept).
    #[cfg(feature = "tls")]
    fn handshake(&mut self) -> io::Result<()> {
        use crate::tls::handshake::{advance, Progress};
        let (mut session, timeout) = match std::mem::replace(&mut self.tls, TlsPhase::Done) {
            TlsPhase::Done => return Ok(()),
            TlsPhase::Expected(tls) => {
                let session = tls.session().map_err(|e| self.tls_failed(e))?;
                (session, tls.handshake_timeout())
            }
            TlsPhase::Begun(session, timeout) => (*session, timeout),
        };
        self.set_deadline(Deadline::at(self.accepted_at + timeout).named("TLS handshake"));
        let result = match advance(&mut session, &mut self.conn.raw()) {
            Ok(Progress::Done) => Ok(()),
            // A blocking read returns `WouldBlock` when its read timeout passes.
            Ok(Progress::Pending { .. }) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the read timeout passed during the TLS handshake",
            )),
            Err(e) => Err(e),
        };
        self.clear_deadline();
        result.map_err(|e| self.tls_failed(e))?;
        self.conn.start_tls(crate::tls::TlsStream::new(session));
        Ok(())
    }

    /// The TLS handshake as far as it goes without waiting: `Ok(true)` once it is done.
    #[cfg(feature = "tls")]
    fn try_handshake(&mut self) -> io::Result<bool> {
        use crate::tls::handshake::{advance, NonBlocking, Progress};
        use std::os::fd::AsRawFd;
        let (mut session, timeout) = match std::mem::replace(&mut self.tls, TlsPhase::Done) {
            TlsPhase::Done => return Ok(true),
            TlsPhase::Expected(tls) => {
                let session = tls.session().map_err(|e| self.tls_failed(e))?;
                (Box::new(session), tls.handshake_timeout())
            }
            TlsPhase::Begun(session, timeout) => (session, timeout),
        };
        let mut io = NonBlocking(self.conn.connection().as_raw_fd());
        match advance(&mut session, &mut io) {
            Ok(Progress::Done) => {
                self.conn.start_tls(crate::tls::TlsStream::new(*session));
                Ok(true)
            }
            Ok(Progress::Pending { .. }) => {
                self.tls = TlsPhase::Begun(session, timeout);
                Ok(false)
            }
            Err(e) => Err(self.tls_failed(e)),
        }
    }

    /// A failed handshake: counted, and named with the peer for `handle_error`.
    #[cfg(feature = "tls")]
    fn tls_failed(&self, e: io::Error) -> io::Error {
        // Counted as the handshake's failure, not as the deadline it ran under.
        self.conn.forget_limit();
        self.server.shared.counters.tls_handshake_failed();
        io::Error::new(e.kind(), format!("TLS handshake with {}: {e}", self.peer))
    }

    /// With TLS ([`Builder::tls`](crate::Builder::tls), feature `tls`): what the handshake
    /// settled — protocol, server name, ALPN protocol, the client's verified certificate.
    /// `None` without TLS.
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<&crate::tls::TlsInfo> {
        self.conn.tls().map(crate::tls::TlsStream::info)
    }

    /// The end of a request that went well: with TLS, a `close_notify` tells the client the
    /// stream ended here rather than being cut (sent only if the socket takes it at once).
    #[cfg(feature = "tls")]
    pub(crate) fn end_tls(&self) {
        self.conn.close_notify_now();
    }

    /// With the PROXY protocol on, reads the connection's header within its deadline, from a
    /// trusted balancer only, and takes the client's address from it. Otherwise (or if the
    /// header was read already) does nothing.
    #[cfg(feature = "proxy")]
    fn admit_proxy(&mut self) -> io::Result<Admission> {
        use crate::proxy;
        let ProxyState::Expected(config) = &self.proxy else {
            return Ok(self.admission());
        };
        let config = std::sync::Arc::clone(config);
        self.proxy_error(proxy::check_trusted(&self.peer, &config.trusted))?;
        self.set_deadline(Deadline::after(config.timeout).named("PROXY protocol header"));
        // Straight from the connection, not through the buffer: not a byte past the header is
        // read, and the buffer is still unallocated for the handler.
        let accept = config.version.unwrap_or(proxy::ProxyProtocol::Any);
        let header = proxy::read_header(&self.conn, accept);
        self.clear_deadline();
        let header = self.proxy_error(header)?;
        Ok(self.take_header(header, Vec::new()))
    }

    /// [`admit_proxy`](Self::admit_proxy) without waiting: `Ok(None)` while the header is
    /// incomplete. The bytes that have arrived are peeked at, and only the header's are taken
    /// off the socket once it is whole, so what the client sent after it stays for the handler.
    #[cfg(feature = "proxy")]
    fn try_admit_proxy(&mut self) -> io::Result<Option<Admission>> {
        use crate::proxy;
        let ProxyState::Expected(config) = &self.proxy else {
            return Ok(Some(self.admission()));
        };
        let config = std::sync::Arc::clone(config);
        self.proxy_error(proxy::check_trusted(&self.peer, &config.trusted))?;
        let accept = config.version.unwrap_or(proxy::ProxyProtocol::Any);
        let mut peeked = [0u8; proxy::MAX_V2_HEADER];
        let arrived = self.proxy_error(self.conn.peek_now(&mut peeked))?;
        let Some(arrived) = arrived else {
            return Ok(None);
        };
        if arrived == 0 {
            return Err(self.proxy_error_of(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the connection before sending a whole PROXY protocol header",
            )));
        }
        let parsed = proxy::parse_header(&peeked[..arrived], accept);
        let Some((header, used)) = self.proxy_error(parsed)? else {
            return Ok(None);
        };
        self.proxy_error(self.conn.discard_now(used))?;
        Ok(Some(self.take_header(header, peeked[..used].to_vec())))
    }

    /// In a [`Process`](crate::Process) child: the header the parent's intake read, as it was
    /// sent (`raw`), with the balancer's address as the connection's peer.
    #[cfg(feature = "proxy")]
    pub(crate) fn adopt_header(&mut self, raw: &[u8]) -> io::Result<()> {
        use crate::proxy;
        let ProxyState::Expected(config) = &self.proxy else {
            return Ok(());
        };
        let accept = config.version.unwrap_or(proxy::ProxyProtocol::Any);
        match proxy::parse_header(raw, accept)? {
            Some((header, used)) if used == raw.len() => {
                self.take_header(header, raw.to_vec());
                Ok(())
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the PROXY protocol header handed over by the parent process is not whole",
            )),
        }
    }

    /// The header as it was sent, to hand to a child process (empty if none was read, or it was
    /// read by blocking [`admit`](Self::admit)).
    #[cfg(feature = "proxy")]
    pub(crate) fn raw_proxy_header(&self) -> &[u8] {
        match &self.proxy {
            ProxyState::Read(read) => &read.2,
            _ => &[],
        }
    }

    /// The connection's own peer: the balancer's address once a PROXY header was read.
    #[cfg(feature = "proxy")]
    pub(crate) fn connection_peer(&self) -> &Address {
        self.proxy_addr().unwrap_or(&self.peer)
    }

    #[cfg(feature = "proxy")]
    fn admission(&self) -> Admission {
        match &self.proxy {
            ProxyState::Read(read) if read.1.is_local() => Admission::HealthCheck,
            _ => Admission::Client,
        }
    }

    #[cfg(feature = "proxy")]
    fn take_header(&mut self, header: crate::proxy::ProxyHeader, raw: Vec<u8>) -> Admission {
        let balancer = match header.source() {
            Some(client) => std::mem::replace(&mut self.peer, Address::from(client)),
            None => self.peer.clone(),
        };
        self.proxy = ProxyState::Read(Box::new((balancer, header, raw)));
        self.admission()
    }

    #[cfg(feature = "proxy")]
    fn proxy_error<V>(&self, result: io::Result<V>) -> io::Result<V> {
        result.map_err(|e| self.proxy_error_of(e))
    }

    #[cfg(feature = "proxy")]
    fn proxy_error_of(&self, e: io::Error) -> io::Error {
        // Counted as the header's failure, not as the deadline it ran under.
        self.conn.forget_limit();
        self.server
            .shared
            .counters
            .closed_by(crate::stats::Limit::ProxyHeader);
        if e.kind() == io::ErrorKind::PermissionDenied {
            return e; // check_trusted's message names the peer already
        }
        io::Error::new(e.kind(), format!("PROXY protocol from {}: {e}", self.peer))
    }

    /// With the PROXY protocol on ([`Builder::proxy_protocol`](crate::Builder::proxy_protocol),
    /// feature `proxy`): the load balancer's address, the connection's real peer. `None` without
    /// it, when [`peer_addr`](Self::peer_addr) is the connection's peer.
    #[cfg(feature = "proxy")]
    pub fn proxy_addr(&self) -> Option<&Address> {
        match &self.proxy {
            ProxyState::Read(read) => Some(&read.0),
            _ => None,
        }
    }

    /// With the PROXY protocol on (feature `proxy`): the header the balancer sent, with the
    /// version 2 TLVs ([`authority`](crate::proxy::ProxyHeader::authority),
    /// [`tls`](crate::proxy::ProxyHeader::tls), …).
    #[cfg(feature = "proxy")]
    pub fn proxy_header(&self) -> Option<&crate::proxy::ProxyHeader> {
        match &self.proxy {
            ProxyState::Read(read) => Some(&read.1),
            _ => None,
        }
    }

    /// The request as a buffered reading half and a writing half that can be used together
    /// (Python's `rfile` and `wfile`); both honour the request's time limits.
    ///
    /// ```
    /// use std::io::{BufRead, Write};
    /// use socketserver::StreamRequest;
    ///
    /// fn shout_each_line(req: &mut StreamRequest) -> std::io::Result<()> {
    ///     let (reader, mut writer) = req.split();
    ///     for line in reader.lines() {
    ///         writeln!(writer, "{}", line?.to_uppercase())?;
    ///     }
    ///     Ok(())
    /// }
    /// # let _ = shout_each_line;
    /// ```
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        (
            ReadHalf {
                buffer: &mut self.buffer,
                conn: &self.conn,
            },
            WriteHalf { conn: &self.conn },
        )
    }

    /// The client's address (Python's `client_address`). For a Unix stream server this is usually
    /// `(unnamed)`, since clients rarely bind their sockets. With the PROXY protocol on
    /// (`Builder::proxy_protocol`, feature `proxy`) it is the client's address the balancer
    /// reported, and `proxy_addr` the balancer's.
    pub fn peer_addr(&self) -> &Address {
        &self.peer
    }

    /// The local end of this connection. For a server bound to `0.0.0.0` or `[::]` this is the
    /// interface address the client actually reached (Python's `request.getsockname()`); looked up
    /// only when asked.
    ///
    /// # Errors
    ///
    /// The socket's error from `getsockname`.
    pub fn local_addr(&self) -> io::Result<Address> {
        let sock = match self.connection() {
            Connection::Tcp(s) => SockRef::from(s),
            Connection::Unix(s) => SockRef::from(s),
        };
        Ok(Address::from_sockaddr(sock.local_addr()?))
    }

    /// The server that accepted this connection (Python's `self.server`): ask it to
    /// [`shutdown`](ServerHandle::shutdown), read its [`stats`](ServerHandle::stats), or check
    /// [`is_shutting_down`](ServerHandle::is_shutting_down) to end a long-lived connection early.
    pub fn server(&self) -> &ServerHandle {
        &self.server
    }

    /// Waits, between two requests on a keep-alive connection, for the next one: `Ok(true)` once
    /// its first bytes are here (read them as usual), `Ok(false)` if the client closed the
    /// connection — or if the server began to stop and nothing of a next request had arrived. So a
    /// graceful stop ends idle connections at once, instead of waiting out its grace period for
    /// clients that keep them open; a request that is already on its way is still served. The wait
    /// honours the request's read timeout and time limits as a read does, and fails as a read
    /// would.
    ///
    /// A connection that has sent nothing yet is not idle: during a stop it still waits, up to
    /// 5 seconds from accept and within the grace period, for its first request (see
    /// [Stopping gracefully](crate#stopping-gracefully) for the rules).
    ///
    /// # Errors
    ///
    /// Those of a read: a timeout or time limit passing (`WouldBlock`/`TimedOut`), the peer
    /// resetting the connection, any error of the socket.
    ///
    /// ```
    /// use std::io::{BufRead, Write};
    /// use socketserver::StreamRequest;
    ///
    /// fn echo_lines(req: &mut StreamRequest) -> std::io::Result<()> {
    ///     let mut line = String::new();
    ///     while req.wait_for_request()? {
    ///         line.clear();
    ///         if req.read_line(&mut line)? == 0 {
    ///             break;
    ///         }
    ///         req.write_all(line.as_bytes())?;
    ///     }
    ///     Ok(()) // closed by the client, or the server is stopping
    /// }
    /// # let _ = echo_lines;
    /// ```
    ///
    /// In a [`Process`](crate::Process) child the stop is seen when its parent passes it on,
    /// which it does with [`stop_on_signals`](crate#stopping-gracefully).
    pub fn wait_for_request(&mut self) -> io::Result<bool> {
        if self.buffer.has_data() {
            return Ok(true);
        }
        // A busy connection has its next request here already: one read that does not wait, as
        // the plain read it replaces would have been. Only an idle one waits on the stop too.
        match self.buffer.fill_buf(self.conn.without_waiting()) {
            Ok(bytes) => return Ok(!bytes.is_empty()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
        // About to wait for the client: what the connection did so far goes to the counters, so
        // a long-lived connection does not show there only when it ends.
        self.tally();
        let shared = &self.server.shared;
        loop {
            // During a stop, a connection still waiting for its first request is woken only by
            // the stop turning immediate, or its time running out.
            let first = self
                .first_request_until()
                .filter(|_| shared.stop.is_requested());
            let woken_by = match first {
                Some(_) => shared.abort.pipe_fd(),
                None => shared.stop.pipe_fd(),
            };
            if self.conn.wait_readable(woken_by, first)? {
                break;
            }
            if first.is_none() && self.first_request_until().is_some() {
                continue; // the stop began during the wait for a first request: wait on
            }
            if self.conn.readable_now()? {
                break;
            }
            let before_first = !self.buffer.has_received();
            shared.counters.closed_at_stop(before_first);
            if before_first {
                log::debug!(
                    "closing the connection from {} at the stop: no request arrived",
                    self.peer
                );
            }
            return Ok(false);
        }
        Ok(!self.fill_buf()?.is_empty())
    }

    /// Until when a connection that has sent nothing may wait for its first request during a
    /// stop: [`FIRST_REQUEST_WAIT`] after it was accepted, within the grace period. `None` once
    /// a byte arrived or that time has passed.
    fn first_request_until(&self) -> Option<Instant> {
        if self.buffer.has_received() {
            return None;
        }
        let mut until = self.accepted_at + FIRST_REQUEST_WAIT;
        if let Some(grace_end) = self.server.shared.grace_deadline() {
            until = until.min(grace_end);
        }
        (until > Instant::now()).then_some(until)
    }

    /// The underlying connection, for what the request does not wrap.
    pub fn connection(&self) -> &Connection {
        self.conn.connection()
    }

    /// Sends all of `data`, like Python's `socket.sendall`: it returns only when every byte has
    /// been handed to the kernel, or with the error that stopped it.
    ///
    /// # Errors
    ///
    /// The error that stopped the write, as `write_all` reports it: `BrokenPipe` or
    /// `ConnectionReset` if the peer is gone, `WouldBlock`/`TimedOut` when a write timeout or
    /// deadline passed, `WriteZero` if the connection accepts no more bytes.
    pub fn send_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.write_all(data)
    }

    /// Sets how long one read may wait for data before failing with `WouldBlock`/`TimedOut`
    /// (`None`: forever). A nearer deadline, idle timeout or lifetime still applies.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero `Duration` (use `None` to wait forever); any error of the socket.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.conn.set_read_timeout(timeout)
    }

    /// The read timeout set by the server or [`set_read_timeout`](Self::set_read_timeout).
    pub fn read_timeout(&self) -> Option<Duration> {
        self.conn.read_timeout()
    }

    /// Sets how long one write may wait for buffer space before failing (`None`: forever). A
    /// nearer deadline, idle timeout or lifetime still applies.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a zero `Duration` (use `None` to wait forever); any error of the socket.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.conn.set_write_timeout(timeout)
    }

    /// Sets the deadline every later read and write that waits on the peer must meet, replacing
    /// any earlier one. Past it they fail with `TimedOut` (see [`Deadline`]) without waiting at
    /// all — writes too, so to send an answer after it passed (HTTP's 408, say), clear it first.
    /// What part of a message arrived before it passed is unknown to the caller, so the connection
    /// is best closed after that answer.
    pub fn set_deadline(&mut self, deadline: Deadline) {
        self.conn.set_deadline(Some(deadline));
    }

    /// Removes the deadline (the server's idle timeout and lifetime still apply).
    pub fn clear_deadline(&mut self) {
        self.conn.set_deadline(None);
    }

    /// When the current deadline passes, counting what its `min_rate` has earned so far; `None`
    /// if there is none.
    pub fn deadline(&self) -> Option<Instant> {
        self.conn.deadline_expiry()
    }

    /// Shuts down the reading side, the writing side or both: to tell the client that nothing
    /// more is coming (it reads an end of stream) while the request goes on reading. With TLS a
    /// `close_notify` goes first, so the client can tell that end from a cut connection.
    ///
    /// # Errors
    ///
    /// The socket's error (`NotConnected` if the peer already closed, on some systems); with TLS,
    /// an error sending the `close_notify`.
    pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if how != std::net::Shutdown::Read {
            self.conn.close_notify()?;
        }
        self.connection().shutdown(how)
    }

    /// Turns Nagle's algorithm off (`true`) or on. Only TCP connections have it.
    ///
    /// # Errors
    ///
    /// `Unsupported` on a Unix connection; any error of the socket.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        match self.connection() {
            Connection::Tcp(s) => s.set_nodelay(nodelay),
            Connection::Unix(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "TCP_NODELAY applies to TCP connections only",
            )),
        }
    }
}

impl StreamRequest {
    /// Adds what the connection did since the last tally to the server's counters.
    fn tally(&self) {
        let tally = self.conn.took_stock();
        let counters = &self.server.shared.counters;
        counters.moved(tally.received, tally.sent);
        if let Some(limit) = tally.limit {
            counters.closed_by(limit);
        }
    }
}

impl Drop for StreamRequest {
    fn drop(&mut self) {
        self.tally();
    }
}

impl Read for StreamRequest {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.buffer.read(&self.conn, buf)
    }
}

impl BufRead for StreamRequest {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.buffer.fill_buf(&self.conn)
    }

    fn consume(&mut self, amt: usize) {
        self.buffer.consume(amt);
    }
}

impl Write for StreamRequest {
    /// Writes all of `buf` (retrying short writes and `EINTR`) and returns `buf.len()`, or fails.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send_all(&self.conn, buf)
    }

    /// Writes all of `bufs` with as few `writev` calls as the socket allows (one, usually), and
    /// returns their total length, or fails — the same all-or-error promise as `write`.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        send_all_vectored(&self.conn, bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
