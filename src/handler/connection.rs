//! [`Connection`]: the socket of an accepted stream connection, TCP or Unix.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// An accepted connection: a TCP stream or a Unix stream.
#[derive(Debug)]
pub enum Connection {
    /// A connection accepted by a TCP server.
    Tcp(TcpStream),
    /// A connection accepted by a Unix stream server.
    Unix(UnixStream),
}

impl AsRawFd for Connection {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            Connection::Tcp(s) => s.as_raw_fd(),
            Connection::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl Connection {
    /// Shuts down the read half, the write half, or both (for example to send EOF to the peer
    /// while still reading its answer).
    ///
    /// # Errors
    ///
    /// The socket's error, as from `TcpStream::shutdown` (`NotConnected` if the peer already closed
    /// the connection, on some systems).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Connection::Tcp(s) => s.shutdown(how),
            Connection::Unix(s) => s.shutdown(how),
        }
    }

    /// The TCP stream, if this is a TCP connection.
    #[must_use]
    pub fn as_tcp(&self) -> Option<&TcpStream> {
        match self {
            Connection::Tcp(s) => Some(s),
            Connection::Unix(_) => None,
        }
    }

    /// The Unix stream, if this is a Unix-socket connection.
    #[must_use]
    pub fn as_unix(&self) -> Option<&UnixStream> {
        match self {
            Connection::Unix(s) => Some(s),
            Connection::Tcp(_) => None,
        }
    }

    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Connection::Tcp(s) => s.set_read_timeout(timeout),
            Connection::Unix(s) => s.set_read_timeout(timeout),
        }
    }

    pub(crate) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Connection::Tcp(s) => s.set_write_timeout(timeout),
            Connection::Unix(s) => s.set_write_timeout(timeout),
        }
    }
}

impl Read for &Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Connection::Tcp(s) => (&*s).read(buf),
            Connection::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Connection::Tcp(s) => (&*s).write(buf),
            Connection::Unix(s) => (&*s).write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Connection::Tcp(s) => (&*s).write_vectored(bufs),
            Connection::Unix(s) => (&*s).write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}
