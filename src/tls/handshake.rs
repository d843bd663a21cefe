//! Driving a TLS handshake: as far as the socket allows without waiting (the intake and the
//! message loop), or to its end on a blocking socket under a deadline (a worker that was handed
//! the connection).

use std::io::{self, Read, Write};
use std::os::fd::RawFd;

use rustls::ServerConnection;

/// Where a handshake driven without waiting stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// The handshake is over and the server's last flight is sent.
    Done,
    /// Waiting for the peer's next bytes (`write`: for room to send ours).
    Pending { write: bool },
}

/// Moves the handshake on as far as `io` allows. With a blocking `io` whose reads time out, a
/// `Pending` means the wait timed out.
///
/// # Errors
///
/// The peer closing the connection (`UnexpectedEof`), a TLS error (`InvalidData`: the client
/// spoke plaintext, offered nothing in common, sent a bad certificate…; the peer is sent an
/// alert first), or the socket's error.
pub(crate) fn advance(
    conn: &mut ServerConnection,
    io: &mut (impl Read + Write),
) -> io::Result<Progress> {
    loop {
        while conn.wants_write() {
            match conn.write_tls(io) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Progress::Pending { write: true })
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if !conn.is_handshaking() {
            return Ok(Progress::Done);
        }
        match conn.read_tls(io) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection during the TLS handshake",
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Ok(Progress::Pending { write: false })
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if let Err(e) = conn.process_new_packets() {
            // The alert that tells the peer why; it may not get there.
            let _ = conn.write_tls(io);
            return Err(tls_error("the TLS handshake failed", &e));
        }
    }
}

/// A TLS error as an `io::Error` (`InvalidData`), with what was going on.
pub(crate) fn tls_error(doing: &str, e: &rustls::Error) -> io::Error {
    let hint = match e {
        rustls::Error::InvalidMessage(_) => {
            " (not TLS: a plaintext client on a TLS port, or garbage)"
        }
        rustls::Error::NoCertificatesPresented => " (a client certificate is required)",
        _ => "",
    };
    io::Error::new(io::ErrorKind::InvalidData, format!("{doing}: {e}{hint}"))
}

/// A socket's reads and writes that fail with `WouldBlock` instead of waiting, whatever the
/// socket's own mode (the intake's connections stay blocking for the workers they go to).
pub(crate) struct NonBlocking(pub(crate) RawFd);

impl Read for NonBlocking {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call.
        let n = unsafe {
            libc::recv(
                self.0,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        match n {
            n if n < 0 => Err(io::Error::last_os_error()),
            n => Ok(n as usize),
        }
    }
}

impl Write for NonBlocking {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the duration of the call.
        let n = unsafe {
            libc::send(
                self.0,
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        match n {
            n if n < 0 => Err(io::Error::last_os_error()),
            n => Ok(n as usize),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
