//! Transports: the four socket kinds a [`Server`](crate::Server) can serve, as type markers.
//!
//! Normally you meet them only through the aliases (`TcpServer`, `UdpServer`, …); name them to
//! write the general form `Server<Tcp, H, Pool>`.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use socket2::{SockAddr, Socket, Type};

use crate::address::Address;
use crate::control::ServerHandle;
use crate::handler::{Admission, Connection, DatagramRequest, DatagramSocket, StreamRequest};
use crate::process::Received as Handed;
use crate::socket::options::ConnectionOptions;

/// A socket kind a server can serve: [`Tcp`], [`Udp`], [`UnixStream`] or [`UnixDatagram`]. Sealed.
pub trait Transport: sealed::TransportImpl {}

/// TCP: connections over IPv4/IPv6; handlers receive a [`StreamRequest`].
#[derive(Debug)]
pub enum Tcp {}
/// UDP: datagrams over IPv4/IPv6; handlers receive a [`DatagramRequest`].
#[derive(Debug)]
pub enum Udp {}
/// Unix-domain stream sockets; handlers receive a [`StreamRequest`].
#[derive(Debug)]
pub enum UnixStream {}
/// Unix-domain datagram sockets; handlers receive a [`DatagramRequest`].
#[derive(Debug)]
pub enum UnixDatagram {}

impl Transport for Tcp {}
impl Transport for Udp {}
impl Transport for UnixStream {}
impl Transport for UnixDatagram {}

pub(crate) mod sealed {
    use super::*;

    /// Everything a transport needs to turn a ready socket into a request.
    pub struct ReceiveContext<'a> {
        pub(crate) socket: &'a Arc<Socket>,
        pub(crate) options: &'a ConnectionOptions,
        pub(crate) server: &'a ServerHandle,
        /// Reused for every datagram: `max_packet_size + 1` bytes, so an oversized one shows.
        pub(crate) buf: &'a mut Vec<u8>,
    }

    /// What one receive produced, when it did not fail.
    pub enum Received<R> {
        /// A request for the handler.
        Request(R),
        /// A datagram from this peer exceeded `max_packet_size`.
        Truncated(Address),
        /// A connection that died before it could be set up (the peer reset it): nothing to do.
        Lost,
    }

    /// What the server asks of a transport. Not public API.
    pub trait TransportImpl: Send + 'static {
        /// [`StreamRequest`] or [`DatagramRequest`].
        type Request: Send + 'static;
        /// For log lines and errors.
        const NAME: &'static str;
        /// Whether this is a connection-oriented (listening) socket.
        const STREAM: bool;
        /// Takes one pending connection or datagram without blocking (`WouldBlock` if none).
        fn receive(cx: &mut ReceiveContext<'_>) -> io::Result<Received<Self::Request>>;
        /// The request's peer, for `verify_request` and error reports.
        fn peer(request: &Self::Request) -> &Address;
        /// On the request's thread, before `verify_request` and `setup`: reads the PROXY protocol
        /// header if the server expects one.
        fn admit(request: &mut Self::Request) -> io::Result<Admission>;
        /// Whether `admit` has work to do, so `verify_request` must wait for it (and a serving
        /// loop passes new connections through the intake).
        fn admits_late(options: &ConnectionOptions) -> bool;
        /// `admit` without waiting, for the intake: `Ok(None)` until the socket has brought
        /// what it needs.
        fn try_admit(request: &mut Self::Request) -> io::Result<Option<Admission>>;
        /// The request's socket, for the intake to wait on.
        fn request_fd(request: &Self::Request) -> RawFd;
        /// The end-of-request step after a successful `finish`.
        fn complete(request: &mut Self::Request) -> io::Result<()>;
        /// Whether the handler passed the request on, to be ended elsewhere.
        fn handed_over(_request: &Self::Request) -> bool {
            false
        }
        /// What a child process needs to handle `request`: the socket to inherit (the connection,
        /// or the server's datagram socket), the peer the socket is connected to, and the data
        /// already read: the datagram, or a connection's PROXY header.
        fn handoff_parts(request: &Self::Request) -> (RawFd, Address, Vec<u8>);
        /// In a child process: the request made of the inherited socket and what the parent sent.
        fn adopt(
            socket: Socket,
            handed: Handed,
            server: &ServerHandle,
            options: &ConnectionOptions,
        ) -> io::Result<Self::Request>;

        /// The socket type this transport serves, to check an inherited socket.
        fn socket_type() -> Type {
            if Self::STREAM {
                Type::STREAM
            } else {
                Type::DGRAM
            }
        }
    }
}

use sealed::{ReceiveContext, Received, TransportImpl};

fn admit_stream(_request: &mut StreamRequest) -> io::Result<Admission> {
    #[cfg(any(feature = "proxy", feature = "tls"))]
    return _request.admit();
    #[cfg(not(any(feature = "proxy", feature = "tls")))]
    Ok(Admission::Client)
}

fn try_admit_stream(_request: &mut StreamRequest) -> io::Result<Option<Admission>> {
    #[cfg(any(feature = "proxy", feature = "tls"))]
    return _request.try_admit();
    #[cfg(not(any(feature = "proxy", feature = "tls")))]
    Ok(Some(Admission::Client))
}

/// The end of a stream request that went well: a TLS stream gets its `close_notify`.
fn complete_stream(_request: &mut StreamRequest) -> io::Result<()> {
    #[cfg(feature = "tls")]
    _request.end_tls();
    Ok(())
}

/// A connection for a child: its socket, its own peer (the balancer, once a PROXY header was
/// read) and the header as sent, which the child parses again.
fn stream_handoff(request: &StreamRequest) -> (RawFd, Address, Vec<u8>) {
    let fd = request.connection().as_raw_fd();
    #[cfg(feature = "proxy")]
    return (
        fd,
        request.connection_peer().clone(),
        request.raw_proxy_header().to_vec(),
    );
    #[cfg(not(feature = "proxy"))]
    (fd, request.peer_addr().clone(), Vec::new())
}

/// The child's side of [`stream_handoff`].
fn adopt_stream(
    connection: Connection,
    handed: Handed,
    server: &ServerHandle,
    options: &ConnectionOptions,
) -> io::Result<StreamRequest> {
    #[cfg_attr(not(feature = "proxy"), allow(unused_mut))]
    let mut request = StreamRequest::new(connection, handed.peer, server.clone(), options);
    #[cfg(feature = "proxy")]
    if !handed.datagram.is_empty() {
        request.adopt_header(&handed.datagram)?;
    }
    Ok(request)
}

/// Whether a stream request has something to do before its handler: a PROXY header to read, a
/// TLS handshake to make.
fn preamble_on(_options: &ConnectionOptions) -> bool {
    #[cfg(feature = "proxy")]
    if _options.proxy.is_some() {
        return true;
    }
    #[cfg(feature = "tls")]
    if _options.tls_here().is_some() {
        return true;
    }
    false
}

fn accept(
    cx: &mut ReceiveContext<'_>,
    tcp: bool,
    wrap: fn(Socket) -> Connection,
) -> io::Result<Received<StreamRequest>> {
    let (socket, peer) = cx.socket.accept()?;
    let o = cx.options;
    // Set explicitly: BSD-derived systems pass the listener's O_NONBLOCK on to accepted sockets,
    // and timeouts must not depend on what the listening socket happened to carry.
    let configure = || -> io::Result<()> {
        socket.set_nonblocking(false)?;
        socket.set_read_timeout(o.read_timeout)?;
        socket.set_write_timeout(o.write_timeout)?;
        if tcp {
            socket.set_tcp_nodelay(o.nodelay)?;
        }
        Ok(())
    };
    let peer = Address::from_sockaddr(peer);
    if let Err(e) = configure() {
        log::debug!("dropped connection from {peer} before handling it: {e}");
        return Ok(Received::Lost);
    }
    Ok(Received::Request(StreamRequest::new(
        wrap(socket),
        peer,
        cx.server.clone(),
        o,
    )))
}

fn receive_datagram(cx: &mut ReceiveContext<'_>) -> io::Result<Received<DatagramRequest>> {
    let limit = cx.options.max_packet_size;
    cx.buf.resize(limit.saturating_add(1), 0);
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and `recv_from_with_flags` only writes
    // initialised bytes into the buffer, so the `u8` view stays valid.
    let uninit = unsafe { &mut *(cx.buf.as_mut_slice() as *mut [u8] as *mut [MaybeUninit<u8>]) };
    // MSG_DONTWAIT rather than O_NONBLOCK: the socket is shared with handlers sending replies, which
    // should block as usual.
    let (n, peer) = cx.socket.recv_from_with_flags(uninit, libc::MSG_DONTWAIT)?;
    let peer = normalise_peer(peer, cx.server.local_addr())?;
    if n > limit {
        return Ok(Received::Truncated(peer));
    }
    let local = cx.server.local_addr().clone();
    let socket = DatagramSocket::new(Arc::clone(cx.socket), local);
    Ok(Received::Request(DatagramRequest::new(
        cx.buf[..n].to_vec(),
        peer,
        socket,
        cx.server.clone(),
    )))
}

/// A datagram for a child: the server's socket, the sender and the datagram.
fn datagram_handoff(request: &DatagramRequest) -> (RawFd, Address, Vec<u8>) {
    (
        request.socket().as_raw_fd(),
        request.peer_addr().clone(),
        request.data().to_vec(),
    )
}

fn adopt_datagram(socket: Socket, handed: Handed, server: &ServerHandle) -> DatagramRequest {
    let socket = DatagramSocket::new(Arc::new(socket), handed.local);
    DatagramRequest::new(handed.datagram, handed.peer, socket, server.clone())
}

/// For an unbound Unix datagram sender the kernel reports a zero-length address (no family at
/// all); report it as the unnamed Unix address it is, as a Unix stream server's peer reads.
fn normalise_peer(peer: SockAddr, local: &Address) -> io::Result<Address> {
    if peer.len() == 0 && local.is_unix() {
        return Ok(Address::from_sockaddr(SockAddr::unix("")?));
    }
    Ok(Address::from_sockaddr(peer))
}

impl TransportImpl for Tcp {
    type Request = StreamRequest;
    const NAME: &'static str = "TCP";
    const STREAM: bool = true;

    fn receive(cx: &mut ReceiveContext<'_>) -> io::Result<Received<StreamRequest>> {
        accept(cx, true, |s| Connection::Tcp(s.into()))
    }

    fn peer(request: &StreamRequest) -> &Address {
        request.peer_addr()
    }

    fn admit(request: &mut StreamRequest) -> io::Result<Admission> {
        admit_stream(request)
    }

    fn admits_late(options: &ConnectionOptions) -> bool {
        preamble_on(options)
    }

    fn complete(request: &mut StreamRequest) -> io::Result<()> {
        complete_stream(request)
    }

    fn handed_over(request: &StreamRequest) -> bool {
        request.handed_over()
    }

    fn try_admit(request: &mut StreamRequest) -> io::Result<Option<Admission>> {
        try_admit_stream(request)
    }

    fn request_fd(request: &StreamRequest) -> RawFd {
        request.connection().as_raw_fd()
    }

    fn handoff_parts(request: &StreamRequest) -> (RawFd, Address, Vec<u8>) {
        stream_handoff(request)
    }

    fn adopt(
        socket: Socket,
        handed: Handed,
        server: &ServerHandle,
        options: &ConnectionOptions,
    ) -> io::Result<StreamRequest> {
        adopt_stream(Connection::Tcp(socket.into()), handed, server, options)
    }
}

impl TransportImpl for UnixStream {
    type Request = StreamRequest;
    const NAME: &'static str = "Unix stream";
    const STREAM: bool = true;

    fn receive(cx: &mut ReceiveContext<'_>) -> io::Result<Received<StreamRequest>> {
        accept(cx, false, |s| Connection::Unix(s.into()))
    }

    fn peer(request: &StreamRequest) -> &Address {
        request.peer_addr()
    }

    fn admit(request: &mut StreamRequest) -> io::Result<Admission> {
        admit_stream(request)
    }

    fn admits_late(options: &ConnectionOptions) -> bool {
        preamble_on(options)
    }

    fn complete(request: &mut StreamRequest) -> io::Result<()> {
        complete_stream(request)
    }

    fn handed_over(request: &StreamRequest) -> bool {
        request.handed_over()
    }

    fn try_admit(request: &mut StreamRequest) -> io::Result<Option<Admission>> {
        try_admit_stream(request)
    }

    fn request_fd(request: &StreamRequest) -> RawFd {
        request.connection().as_raw_fd()
    }

    fn handoff_parts(request: &StreamRequest) -> (RawFd, Address, Vec<u8>) {
        stream_handoff(request)
    }

    fn adopt(
        socket: Socket,
        handed: Handed,
        server: &ServerHandle,
        options: &ConnectionOptions,
    ) -> io::Result<StreamRequest> {
        adopt_stream(Connection::Unix(socket.into()), handed, server, options)
    }
}

impl TransportImpl for Udp {
    type Request = DatagramRequest;
    const NAME: &'static str = "UDP";
    const STREAM: bool = false;

    fn receive(cx: &mut ReceiveContext<'_>) -> io::Result<Received<DatagramRequest>> {
        receive_datagram(cx)
    }

    fn peer(request: &DatagramRequest) -> &Address {
        request.peer_addr()
    }

    fn admit(_request: &mut DatagramRequest) -> io::Result<Admission> {
        Ok(Admission::Client)
    }

    fn admits_late(_options: &ConnectionOptions) -> bool {
        false
    }

    fn complete(request: &mut DatagramRequest) -> io::Result<()> {
        request.send_pending_reply()
    }

    fn try_admit(_request: &mut DatagramRequest) -> io::Result<Option<Admission>> {
        Ok(Some(Admission::Client))
    }

    fn request_fd(request: &DatagramRequest) -> RawFd {
        request.socket().as_raw_fd()
    }

    fn handoff_parts(request: &DatagramRequest) -> (RawFd, Address, Vec<u8>) {
        datagram_handoff(request)
    }

    fn adopt(
        socket: Socket,
        handed: Handed,
        server: &ServerHandle,
        _options: &ConnectionOptions,
    ) -> io::Result<DatagramRequest> {
        Ok(adopt_datagram(socket, handed, server))
    }
}

impl TransportImpl for UnixDatagram {
    type Request = DatagramRequest;
    const NAME: &'static str = "Unix datagram";
    const STREAM: bool = false;

    fn receive(cx: &mut ReceiveContext<'_>) -> io::Result<Received<DatagramRequest>> {
        receive_datagram(cx)
    }

    fn peer(request: &DatagramRequest) -> &Address {
        request.peer_addr()
    }

    fn admit(_request: &mut DatagramRequest) -> io::Result<Admission> {
        Ok(Admission::Client)
    }

    fn admits_late(_options: &ConnectionOptions) -> bool {
        false
    }

    fn complete(request: &mut DatagramRequest) -> io::Result<()> {
        request.send_pending_reply()
    }

    fn try_admit(_request: &mut DatagramRequest) -> io::Result<Option<Admission>> {
        Ok(Some(Admission::Client))
    }

    fn request_fd(request: &DatagramRequest) -> RawFd {
        request.socket().as_raw_fd()
    }

    fn handoff_parts(request: &DatagramRequest) -> (RawFd, Address, Vec<u8>) {
        datagram_handoff(request)
    }

    fn adopt(
        socket: Socket,
        handed: Handed,
        server: &ServerHandle,
        _options: &ConnectionOptions,
    ) -> io::Result<DatagramRequest> {
        Ok(adopt_datagram(socket, handed, server))
    }
}
