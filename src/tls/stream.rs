//! [`TlsStream`]: an established TLS session on a blocking connection, shared by a request's
//! read half and write half.
//!
//! rustls needs `&mut` for both directions, while a split request reads and writes at once. So
//! the session sits behind a lock held only while bytes are encrypted or decrypted, never while
//! the socket waits: a read takes ciphertext off the socket unlocked, then feeds it in; a write
//! encrypts under the lock and sends unlocked. Records must reach the socket in the order they
//! were made, so the encrypted bytes go through a second lock, taken before the first is let go.

use std::io::{self, IoSlice, Read, Write};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rustls::ServerConnection;

use super::handshake::tls_error;
use super::TlsInfo;

/// Ciphertext taken off the socket per read: one TLS record at most, so its plaintext always
/// fits the session's receive buffer.
const READ_CHUNK: usize = 16 * 1024;
/// An outgoing buffer larger than this is freed once sent.
const KEEP_OUT: usize = 64 * 1024;

/// An established session; see the module's docs.
pub(crate) struct TlsStream {
    conn: Mutex<ServerConnection>,
    /// Encrypted bytes on their way to the socket.
    out: Mutex<Vec<u8>>,
    /// Ciphertext read from the socket (only the reading side uses it: never contended).
    inbuf: Mutex<Vec<u8>>,
    info: TlsInfo,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding it leaves a session no worse than the error that caused it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TlsStream {
    /// `conn`, its handshake done.
    pub(crate) fn new(conn: ServerConnection) -> TlsStream {
        let info = TlsInfo::of(&conn);
        TlsStream {
            conn: Mutex::new(conn),
            out: Mutex::new(Vec::new()),
            inbuf: Mutex::new(Vec::new()),
            info,
        }
    }

    pub(crate) fn info(&self) -> &TlsInfo {
        &self.info
    }

    /// Whether decrypted bytes wait to be read, so a read would not touch the socket.
    pub(crate) fn has_plaintext(&self) -> bool {
        let mut conn = lock(&self.conn);
        conn.process_new_packets()
            .is_ok_and(|state| state.plaintext_bytes_to_read() > 0 || state.peer_has_closed())
    }

    /// Reads plaintext into `buf`: what is decrypted already, else ciphertext from `fill` (a
    /// read of the socket: blocking, or failing with `WouldBlock`) until a record brings some.
    /// `Ok(0)` once the peer has closed (with or without a `close_notify`). `send` sends what
    /// the session answers on its own (an alert, a key update).
    pub(crate) fn read(
        &self,
        buf: &mut [u8],
        fill: &mut dyn FnMut(&mut [u8]) -> io::Result<usize>,
        send: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            {
                let mut conn = lock(&self.conn);
                match conn.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // The peer closed without a close_notify: an end of stream all the same
                    // (no protocol here relies on TLS to tell a truncation).
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
            }
            let mut inbuf = lock(&self.inbuf);
            if inbuf.is_empty() {
                inbuf.resize(READ_CHUNK, 0);
            }
            let n = fill(&mut inbuf)?;
            self.feed(&inbuf[..n], send)?;
        }
    }

    /// Hands ciphertext (`raw`; empty: the peer closed) to the session and sends what it
    /// answers.
    fn feed(&self, raw: &[u8], send: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        let mut conn = lock(&self.conn);
        let mut rest = raw;
        let mut failed = None;
        loop {
            if let Err(e) = conn.read_tls(&mut rest) {
                failed = Some(e);
                break;
            }
            if let Err(e) = conn.process_new_packets() {
                failed = Some(tls_error("TLS", &e));
                break;
            }
            if rest.is_empty() {
                break;
            }
        }
        let sent = self.flush_locked(conn, send);
        match failed {
            Some(e) => Err(e),
            None => sent,
        }
    }

    /// Encrypts as much of `bufs` as the session takes and sends it; returns the plaintext
    /// bytes taken.
    pub(crate) fn write(
        &self,
        bufs: &[IoSlice<'_>],
        send: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<usize> {
        let mut conn = lock(&self.conn);
        let n = conn.writer().write_vectored(bufs)?;
        self.flush_locked(conn, send)?;
        Ok(n)
    }

    /// Sends a `close_notify`: the peer learns the stream ended here, not that it was cut.
    pub(crate) fn close_notify(
        &self,
        send: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut conn = lock(&self.conn);
        conn.send_close_notify();
        self.flush_locked(conn, send)
    }

    /// Takes what the session has to send, lets the session go (so the other direction can
    /// proceed) and sends it, in order with anything taken before.
    fn flush_locked(
        &self,
        mut conn: MutexGuard<'_, ServerConnection>,
        send: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        if !conn.wants_write() {
            return Ok(());
        }
        let mut out = lock(&self.out);
        while conn.wants_write() {
            conn.write_tls(&mut *out)?;
        }
        drop(conn);
        let sent = send(&out);
        out.clear();
        if out.capacity() > KEEP_OUT {
            *out = Vec::new();
        }
        sent
    }
}
