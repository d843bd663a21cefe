//! TLS on a message server's connection (feature `tls`): a rustls session the event loop drives
//! without waiting. Ciphertext read off the socket is fed in, and the plaintext it yields goes
//! straight to the connection's input; replies are encrypted into the session's buffer, at most
//! rustls's 64 KiB at a time, and sent from there. The loop's bounds (what one turn reads, what
//! a connection may leave unsent) keep their meaning, in plaintext bytes.

use std::io::{self, BufRead, Write};
use std::time::{Duration, Instant};

use rustls::ServerConnection;

use super::output::Output;
use crate::tls::handshake::tls_error;
use crate::tls::{Tls, TlsInfo};

/// What a session holds besides the buffers counted apart, for the memory budget: rustls's
/// state, keys and the buffer it reads records into (measured with rustls 0.23: 2 KiB for a new
/// session, 6 KiB for an established one).
const SESSION_BYTES: usize = 8 * 1024;
/// The most a handshake buffers, as rustls bounds it (one handshake message of 64 KiB).
const MAX_HANDSHAKE_BUFFER: usize = 64 * 1024;
/// A TLS record's header: type, version, length.
const RECORD_HEADER: usize = 5;

/// A connection's TLS session; see the module's docs.
pub(crate) struct Session {
    conn: ServerConnection,
    timeout: Duration,
    /// When the handshake must be done by, counted from accept (`None`: too far to count).
    deadline: Option<Instant>,
    /// Plaintext handed to the session since its outgoing buffer was last empty: what its unsent
    /// records carry.
    unsent: usize,
    /// Ciphertext fed during the handshake: what the session may hold of it.
    fed: usize,
    records: Records,
    /// The session refused the peer's bytes (its alert is queued): no `close_notify` follows.
    failed: bool,
}

impl Session {
    /// A session with `tls`'s current certificates, for a connection accepted at `accepted_at`.
    pub(crate) fn new(tls: &Tls, accepted_at: Instant) -> io::Result<Session> {
        let timeout = tls.handshake_timeout();
        Ok(Session {
            conn: tls.session()?,
            timeout,
            deadline: accepted_at.checked_add(timeout),
            unsent: 0,
            fed: 0,
            records: Records::default(),
            failed: false,
        })
    }

    pub(crate) fn handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// While the handshake is on: when it must be done by.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline.filter(|_| self.handshaking())
    }

    /// The error for a handshake past its deadline.
    pub(crate) fn late(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "not done {:?} after accept (TlsConfig::handshake_timeout); closed the connection",
                self.timeout
            ),
        )
    }

    /// What the handshake settled.
    pub(crate) fn info(&self) -> TlsInfo {
        TlsInfo::of(&self.conn)
    }

    /// Hands the session ciphertext read off the socket, and appends the plaintext it yields to
    /// `input`. `Ok(true)` once the peer has ended the stream with a `close_notify` (what came
    /// after it is dropped).
    ///
    /// # Errors
    ///
    /// The peer's bytes are not TLS, or break it (`InvalidData`; the alert that tells the peer
    /// why is queued, for [`goodbye`](Self::goodbye)).
    pub(crate) fn feed(&mut self, mut raw: &[u8], input: &mut Vec<u8>) -> io::Result<bool> {
        if self.handshaking() {
            self.fed = self.fed.saturating_add(raw.len());
        }
        self.records.track(raw);
        while !raw.is_empty() {
            // The plaintext is taken out after every step, so the session's own buffer for it
            // (16 KiB) never fills and refuses ciphertext.
            let taken = self.conn.read_tls(&mut raw)?;
            let state = match self.conn.process_new_packets() {
                Ok(state) => state,
                Err(e) => {
                    self.failed = true;
                    let doing = match self.handshaking() {
                        true => "the TLS handshake failed",
                        false => "TLS",
                    };
                    return Err(tls_error(doing, &e));
                }
            };
            if state.plaintext_bytes_to_read() > 0 {
                input.reserve(state.plaintext_bytes_to_read());
                let mut reader = self.conn.reader();
                while let Ok(chunk) = reader.fill_buf() {
                    if chunk.is_empty() {
                        break;
                    }
                    input.extend_from_slice(chunk);
                    let n = chunk.len();
                    reader.consume(n);
                }
            }
            if state.peer_has_closed() {
                return Ok(true);
            }
            if taken == 0 {
                break;
            }
        }
        if !self.handshaking() {
            self.fed = 0;
        }
        Ok(false)
    }

    /// Sends what the session has encrypted, then encrypts more of `output` and sends it, until
    /// `sink` would block or everything is sent. Returns how many bytes went out.
    ///
    /// # Errors
    ///
    /// The socket's.
    pub(crate) fn send(&mut self, output: &mut Output, sink: &mut impl Write) -> io::Result<usize> {
        let mut sent = 0;
        loop {
            while self.conn.wants_write() {
                match self.conn.write_tls(sink) {
                    Ok(0) => return Ok(sent),
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(sent),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            self.unsent = 0;
            if output.is_empty() || self.handshaking() {
                return Ok(sent);
            }
            // Only into an empty buffer: what waits in the session stays under its limit.
            match output.write_to(&mut self.conn.writer()) {
                Ok(n) => self.unsent = n,
                Err(e) if e.kind() == io::ErrorKind::WriteZero => return Ok(sent),
                Err(e) => return Err(e),
            }
        }
    }

    /// Bytes the session has yet to send, counted in the plaintext they carry (at least 1 while
    /// it has a record of its own to send: a handshake flight, an alert).
    pub(crate) fn unsent(&self) -> usize {
        match self.conn.wants_write() {
            true => self.unsent.max(1),
            false => 0,
        }
    }

    /// Roughly what the session holds, for the memory budget: its state, a record half received,
    /// what a handshake sent so far, and the records not yet sent.
    pub(crate) fn held(&self) -> usize {
        SESSION_BYTES + self.records.partial() + self.fed.min(MAX_HANDSHAKE_BUFFER) + self.unsent()
    }

    /// Whether a record has begun to arrive and not ended: a message is on its way.
    pub(crate) fn mid_record(&self) -> bool {
        self.records.partial() > 0
    }

    /// The connection is closing: a `close_notify` after what is sent (unless the session
    /// failed or never began), and what it still has to send, as far as `sink` takes it without
    /// waiting (a failed handshake's alert).
    pub(crate) fn goodbye(&mut self, sink: &mut impl Write) {
        if !self.failed && !self.handshaking() {
            self.conn.send_close_notify();
        }
        // Bounded: a peer that does not read loses the rest.
        for _ in 0..16 {
            if !self.conn.wants_write() {
                return;
            }
            match self.conn.write_tls(sink) {
                Ok(n) if n > 0 => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                _ => return,
            }
        }
    }
}

/// Where the ciphertext fed so far stands in TLS's record framing: how much of the current record
/// has arrived. rustls keeps a half-received record to itself; this tells the loop one is there.
#[derive(Debug, Default)]
struct Records {
    /// Bytes of the current record seen, header included; 0 between records.
    seen: usize,
    /// Once its header is whole: the record's bytes still to come.
    left: usize,
    /// The high byte of the record's length, until its low byte comes.
    len_high: u8,
}

impl Records {
    fn track(&mut self, mut raw: &[u8]) {
        while let Some((&first, rest)) = raw.split_first() {
            if self.seen < RECORD_HEADER {
                self.seen += 1;
                raw = rest;
                match self.seen {
                    4 => self.len_high = first,
                    RECORD_HEADER => {
                        self.left = usize::from(u16::from_be_bytes([self.len_high, first]));
                    }
                    _ => {}
                }
            } else {
                let n = self.left.min(raw.len());
                self.left -= n;
                self.seen += n;
                raw = &raw[n..];
            }
            if self.seen >= RECORD_HEADER && self.left == 0 {
                self.seen = 0;
            }
        }
    }

    fn partial(&self) -> usize {
        self.seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(len: u16) -> Vec<u8> {
        let mut r = vec![23, 3, 3];
        r.extend_from_slice(&len.to_be_bytes());
        r.extend(vec![0xab; usize::from(len)]);
        r
    }

    #[test]
    fn records_are_followed_across_any_cut() {
        let mut stream = record(300);
        stream.extend(record(0));
        stream.extend(record(17_000));
        for cut in [1, 2, 4, 5, 6, 299, 305, 1000, stream.len()] {
            let mut records = Records::default();
            for piece in stream.chunks(cut) {
                records.track(piece);
            }
            assert_eq!(records.partial(), 0, "cut every {cut}");
        }
        let mut records = Records::default();
        records.track(&stream[..308]);
        assert_eq!(records.partial(), 3, "the second record's header, in part");
        records.track(&stream[308..320]);
        assert_eq!(records.partial(), 10, "the third record begun");
        records.track(&stream[320..]);
        assert_eq!(records.partial(), 0);
    }
}
