//! [`DatagramRequest`]: one received datagram, as a handler sees it.

use std::io::{self, Read, Write};
use std::sync::Arc;

use socket2::Socket;

use crate::address::Address;
use crate::control::ServerHandle;

/// The server's datagram socket, shared with handlers so replies leave from the server's address.
#[derive(Debug, Clone)]
pub struct DatagramSocket {
    socket: Arc<Socket>,
    local: Address,
}

impl DatagramSocket {
    pub(crate) fn new(socket: Arc<Socket>, local: Address) -> Self {
        DatagramSocket { socket, local }
    }

    /// Sends `data` as one datagram to `to`. A datagram is sent whole or not at all.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an unbound Unix client (peer `(unnamed)`), which has no address to reply
    /// to; `WriteZero` if the datagram was not sent whole; any error of the socket (`EMSGSIZE` for
    /// a datagram too large for it, say).
    pub fn send_to(&self, data: &[u8], to: &Address) -> io::Result<()> {
        if to.is_unnamed_unix() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot send to an unnamed Unix socket: the client did not bind its socket to a \
                 path, so it has no address to reply to",
            ));
        }
        let sent = self.socket.send_to(data, to.as_sockaddr())?;
        if sent == data.len() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!(
                    "sent only {sent} of {} bytes of a datagram to {to}",
                    data.len()
                ),
            ))
        }
    }

    pub(crate) fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.socket.as_raw_fd()
    }

    /// The server's own address.
    #[must_use]
    pub fn local_addr(&self) -> &Address {
        &self.local
    }
}

/// One datagram, handed to [`RequestHandler::handle`](crate::RequestHandler::handle) by UDP and
/// Unix datagram servers — Python's `DatagramRequestHandler`, whose `self.request` is
/// `(data, socket)`.
///
/// * [`data`](Self::data) is the datagram; [`Read`] reads through it (Python's `rfile`).
/// * [`reply`](Self::reply) sends a datagram back to the sender at once, from the server's socket.
/// * [`Write`] collects a reply (Python's `wfile`); it is sent as one datagram when the handler
///   calls `flush`, or after `finish` if the request succeeded and something is left unsent.
/// * [`socket`](Self::socket) sends to anyone else (a chat server relaying a message, say).
///
/// An empty datagram is a legal request and arrives with empty `data`.
///
/// An upper-case echo over UDP:
///
/// ```
/// use std::net::UdpSocket;
/// use std::time::Duration;
/// use socketserver::{datagram_handler, UdpServer};
///
/// # fn main() -> std::io::Result<()> {
/// let mut server = UdpServer::bind(
///     "127.0.0.1:0",
///     datagram_handler(|req| {
///         let upper = req.data().to_ascii_uppercase();
///         req.reply(&upper) // at once; or `req.write_all(&upper)`, sent when `handle` returns
///     }),
/// )?;
/// let addr = server.local_addr().as_inet().expect("a UDP address");
/// let handle = server.handle();
/// let serving =
///     std::thread::spawn(move || server.serve_forever().and_then(|()| server.server_close()));
///
/// let client = UdpSocket::bind("127.0.0.1:0")?;
/// client.set_read_timeout(Some(Duration::from_secs(10)))?;
/// client.send_to(b"hello", addr)?;
/// let mut buf = [0u8; 64];
/// let (n, from) = client.recv_from(&mut buf)?;
/// assert_eq!((&buf[..n], from), (&b"HELLO"[..], addr)); // from the server's own address
///
/// handle.shutdown();
/// serving.join().expect("serving thread")?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DatagramRequest {
    data: Vec<u8>,
    read_pos: usize,
    reply: Vec<u8>,
    peer: Address,
    socket: DatagramSocket,
    server: ServerHandle,
}

impl DatagramRequest {
    pub(crate) fn new(
        data: Vec<u8>,
        peer: Address,
        socket: DatagramSocket,
        server: ServerHandle,
    ) -> Self {
        DatagramRequest {
            data,
            read_pos: 0,
            reply: Vec::new(),
            peer,
            socket,
            server,
        }
    }

    /// The datagram's bytes.
    #[must_use]
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The sender's address (Python's `client_address`). A Unix datagram client must bind its
    /// socket to a path to be able to receive a reply.
    #[must_use]
    pub fn peer_addr(&self) -> &Address {
        &self.peer
    }

    /// The server's address the datagram arrived on.
    #[must_use]
    pub fn local_addr(&self) -> &Address {
        self.socket.local_addr()
    }

    /// The server that received this datagram (Python's `self.server`).
    #[must_use]
    pub fn server(&self) -> &ServerHandle {
        &self.server
    }

    /// The server's socket, to send datagrams to other addresses.
    #[must_use]
    pub fn socket(&self) -> &DatagramSocket {
        &self.socket
    }

    /// Sends `data` to the sender as one datagram, now.
    ///
    /// # Errors
    ///
    /// Those of [`DatagramSocket::send_to`].
    pub fn reply(&self, data: &[u8]) -> io::Result<()> {
        self.socket.send_to(data, &self.peer)
    }

    /// Sends what was written with [`Write`] but not yet sent. Called by the server after `finish`.
    pub(crate) fn send_pending_reply(&mut self) -> io::Result<()> {
        if self.reply.is_empty() {
            return Ok(());
        }
        let reply = std::mem::take(&mut self.reply);
        self.reply(&reply)
    }
}

impl Read for DatagramRequest {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut rest = &self.data[self.read_pos..];
        let n = rest.read(buf)?;
        self.read_pos += n;
        Ok(n)
    }
}

impl Write for DatagramRequest {
    /// Appends to the pending reply; nothing is sent until `flush` or the end of the request.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.reply.extend_from_slice(buf);
        Ok(buf.len())
    }

    /// Sends the pending reply, if any, as one datagram.
    fn flush(&mut self) -> io::Result<()> {
        self.send_pending_reply()
    }
}
