//! Sockets that never wait forever, and errors that say what went wrong in a user's terms.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

/// How long any connect, send or receive may take before the client gives up.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Datagrams up to UDP's limit fit: a reply is never truncated by this client.
const MAX_DATAGRAM: usize = 65_536;

/// The first address `addr` resolves to.
pub fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} resolves to no address"))
}

/// A TCP connection to `addr` with read and write timeouts.
pub fn tcp(addr: &str) -> Result<TcpStream, String> {
    let target = resolve(addr)?;
    let stream = TcpStream::connect_timeout(&target, TIMEOUT)
        .map_err(|e| format!("cannot connect to {addr}: {}", describe(&e)))?;
    set_timeouts(
        &stream,
        std::net::TcpStream::set_read_timeout,
        std::net::TcpStream::set_write_timeout,
    )?;
    Ok(stream)
}

/// A UDP socket connected to `addr`, with read and write timeouts. Connecting means only the
/// server's datagrams are received, and a port nobody listens on is reported (as "refused") on
/// the next receive instead of looking like a slow server.
pub fn udp(addr: &str) -> Result<UdpSocket, String> {
    let target = resolve(addr)?;
    let local: SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(local).map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    socket
        .connect(target)
        .map_err(|e| format!("cannot reach {addr}: {e}"))?;
    set_timeouts(
        &socket,
        std::net::UdpSocket::set_read_timeout,
        std::net::UdpSocket::set_write_timeout,
    )?;
    Ok(socket)
}

fn set_timeouts<S>(
    socket: &S,
    read: impl Fn(&S, Option<Duration>) -> io::Result<()>,
    write: impl Fn(&S, Option<Duration>) -> io::Result<()>,
) -> Result<(), String> {
    read(socket, Some(TIMEOUT))
        .and_then(|()| write(socket, Some(TIMEOUT)))
        .map_err(|e| format!("cannot set socket timeouts: {e}"))
}

/// Sends one datagram.
pub fn send(socket: &UdpSocket, addr: &str, datagram: &[u8]) -> Result<(), String> {
    socket
        .send(datagram)
        .map(drop)
        .map_err(|e| format!("cannot send to {addr}: {}", describe(&e)))
}

/// Receives one datagram, waiting at most [`TIMEOUT`].
pub fn receive(socket: &UdpSocket, addr: &str) -> Result<Vec<u8>, String> {
    recv_datagram(socket).map_err(|e| no_reply(addr, &e))
}

/// Receives one datagram, or the socket's error as it is (a timeout is [`is_timeout`]).
pub fn recv_datagram(socket: &UdpSocket) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let n = socket.recv(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// Whether a receive failed only because nothing arrived within the timeout.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The message for a reply that did not come.
pub fn no_reply(addr: &str, e: &io::Error) -> String {
    if is_timeout(e) {
        format!(
            "no reply from {addr} within {} s (is the server running?)",
            TIMEOUT.as_secs()
        )
    } else {
        format!("no reply from {addr}: {}", describe(e))
    }
}

/// An I/O error, explained where the OS's words are obscure.
pub fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            format!("{e} (nothing is listening there: is the server running?)")
        }
        _ if is_timeout(e) => format!("timed out after {} s", TIMEOUT.as_secs()),
        _ => e.to_string(),
    }
}
