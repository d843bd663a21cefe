//! One connection as the event loop holds it: its non-blocking socket (and TLS session), the
//! bytes read but not yet handled, the bytes to send, and the times its limits count from.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Interest, Registry, Token};

use super::handler::Closed;
use super::output::Output;
use super::reply::ConnectionInfo;
use super::spread::Seat;
use crate::control::Ticket;
use crate::handler::Connection;

/// Output buffers larger than this are freed once empty, and input buffers once their messages are
/// handled: an idle connection holds no buffer, whatever it once sent or received.
const KEEP_BUFFER: usize = 16 * 1024;

/// A connection's socket, non-blocking.
pub(crate) enum Stream {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
}

impl Stream {
    pub(crate) fn new(connection: Connection) -> io::Result<Stream> {
        Ok(match connection {
            Connection::Tcp(s) => {
                s.set_nonblocking(true)?;
                Stream::Tcp(mio::net::TcpStream::from_std(s))
            }
            Connection::Unix(s) => {
                s.set_nonblocking(true)?;
                Stream::Unix(mio::net::UnixStream::from_std(s))
            }
        })
    }

    fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
        }
    }

    pub(crate) fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(self.source(), token, Interest::READABLE)
    }

    pub(crate) fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        registry.reregister(self.source(), token, interest)
    }

    pub(crate) fn deregister(&mut self, registry: &Registry) {
        // The socket is closed right after; a failure here changes nothing.
        let _ = registry.deregister(self.source());
    }

    /// Sends the peer an end of stream after what was written (a failure means it is gone).
    pub(crate) fn shutdown_write(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        };
    }

    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    /// Whether bytes have arrived that were not read (`FIONREAD`); an error counts as yes.
    pub(crate) fn has_unread(&self) -> bool {
        let fd = match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        };
        let mut waiting: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int through the pointer, which outlives the call.
        let done = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut waiting) };
        done == -1 || waiting > 0
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write_vectored(bufs),
            Stream::Unix(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What one read from the socket gave.
pub(crate) enum Read1 {
    /// Bytes were appended to the input.
    Bytes,
    /// Nothing more to read until the next readiness event.
    Drained,
    /// The peer closed its side.
    Eof,
}

/// A connection of the loop.
pub(crate) struct Conn<H, F> {
    pub(crate) stream: Stream,
    pub(crate) info: Arc<ConnectionInfo>,
    /// Keeps the connection counted as active in the server's stats until it is dropped.
    pub(crate) ticket: Ticket,
    /// Keeps the connection counted on its loop (which new connections avoid) until dropped.
    _seat: Seat,
    /// `None` while a worker runs the handler.
    pub(crate) handler: Option<H>,
    pub(crate) framer: F,
    /// Bytes read and not yet handled, from a message boundary.
    pub(crate) input: Vec<u8>,
    pub(crate) output: Output,
    /// When the connection was accepted: its lifetime, its TLS handshake and, during a stop, the
    /// wait for its first message count from here.
    pub(crate) opened_at: Instant,
    /// The last time a byte moved either way (for the idle timeout).
    pub(crate) last_active: Instant,
    /// When the incomplete message in `input` began (for the message timeout).
    pub(crate) message_since: Option<Instant>,
    /// The earliest time the loop's timers will look at this connection.
    pub(crate) armed: Option<Instant>,
    /// The socket may hold bytes not read yet (readiness is edge-triggered: no new event comes).
    pub(crate) unread: bool,
    /// The readiness API said the peer has shut down its side (`EPOLLRDHUP`): the end of stream
    /// waits behind whatever data is left, so reading goes on until it is read.
    pub(crate) peer_closing: bool,
    /// The peer has shut down its side: no more input.
    pub(crate) peer_done: bool,
    /// Whether the loop waits for the socket to become writable.
    pub(crate) write_interest: bool,
    /// Close once the handler is back and the output is sent, for this reason.
    pub(crate) closing: Option<Closed>,
    /// With `closing`: the latest time to close, sent or not.
    pub(crate) close_by: Option<Instant>,
    /// The input holds at most an incomplete message: the handling after the last read found no
    /// whole one left (so a peer that has closed is done).
    pub(crate) rest_is_partial: bool,
    /// Handling stopped, or did not start, with messages left because the output was over its
    /// limit: they are handled once it is sent.
    pub(crate) held: bool,
    /// Closed while a worker ran its handler: the socket is no longer watched, and the
    /// connection is removed when the handler comes back.
    pub(crate) abandoned: bool,
    /// A byte has arrived since it opened (until then a stop waits a while for its first message).
    pub(crate) received: bool,
    /// The server is stopping: the connection closes once what it has sent is answered.
    pub(crate) draining: bool,
    /// On the loop's list of connections waiting for room in the workers' queue.
    pub(crate) waiting: bool,
    /// The bytes of the messages on their way to (or on) a worker.
    pub(crate) on_worker: usize,
    /// What the memory budget counts against this connection, as of its last turn.
    pub(crate) charge: usize,
    /// The handler's `opened` has run. Until then (during a TLS handshake) no handler runs for
    /// the connection, and if it closes, none hears of it.
    pub(crate) opened: bool,
    /// With TLS: the session every byte goes through.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Box<super::tls::Session>>,
}

impl<H, F> Conn<H, F> {
    pub(crate) fn new(
        stream: Stream,
        info: Arc<ConnectionInfo>,
        handler: H,
        framer: F,
        ticket: Ticket,
        seat: Seat,
        accepted_at: Instant,
    ) -> Self {
        let now = Instant::now();
        Conn {
            stream,
            info,
            ticket,
            _seat: seat,
            handler: Some(handler),
            framer,
            input: Vec::new(),
            output: Output::default(),
            opened_at: accepted_at,
            last_active: now,
            message_since: None,
            armed: None,
            unread: true,
            peer_closing: false,
            peer_done: false,
            write_interest: false,
            closing: None,
            close_by: None,
            abandoned: false,
            held: false,
            rest_is_partial: true,
            received: false,
            draining: false,
            waiting: false,
            on_worker: 0,
            charge: 0,
            opened: false,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Still in its TLS handshake.
    pub(crate) fn handshaking(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.as_ref().is_some_and(|tls| tls.handshaking());
        #[cfg(not(feature = "tls"))]
        false
    }

    /// The bytes this connection holds in its buffers (the budget's measure): input, owned
    /// output, messages on a worker, and roughly what its TLS session holds. Buffers shared with
    /// the application are not counted.
    pub(crate) fn held_bytes(&self) -> usize {
        let held = self.input.capacity() + self.output.retained() + self.on_worker;
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return held + tls.held();
        }
        held
    }

    /// Bytes have arrived that were not handled yet: in the socket, or a TLS record that has
    /// begun to arrive.
    fn arriving(&self) -> bool {
        #[cfg(feature = "tls")]
        if self.tls.as_ref().is_some_and(|tls| tls.mid_record()) {
            return true;
        }
        self.stream.has_unread()
    }

    /// During a stop: whether the connection has nothing left to be answered for — no message
    /// buffered, arriving or on a worker — and is not a new connection whose first message may
    /// still be on its way (it gets until `first_wait` after opening).
    pub(crate) fn drained(&self, now: Instant, first_wait: Duration) -> bool {
        let fresh = !self.received && now < self.opened_at + first_wait;
        let quiet = !self.busy() && !self.waiting && self.input.is_empty() && !fresh;
        // Bytes that arrived before the stop but were not read yet are a message in flight too.
        quiet && !self.arriving()
    }

    /// Closing with the peer perhaps still sending, so that the kernel would answer its next
    /// bytes with a reset: bytes are waiting unread, or a message was only partly received.
    pub(crate) fn reset_likely(&self) -> bool {
        !self.input.is_empty() || self.arriving()
    }

    /// Closes the connection once the handler is back and the output is sent (or `linger` has
    /// passed), unless it is closing already.
    pub(crate) fn close_later(&mut self, reason: Closed, linger: Duration) {
        self.closing.get_or_insert(reason);
        self.close_by.get_or_insert(Instant::now() + linger);
    }

    pub(crate) fn busy(&self) -> bool {
        self.handler.is_none()
    }

    /// The connection is closing: with TLS, a `close_notify` (or a failed handshake's alert)
    /// goes out as far as the socket takes it at once.
    pub(crate) fn goodbye(&mut self) {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut() {
            tls.goodbye(&mut self.stream);
        }
    }

    /// Bytes waiting to be written (with TLS, also those the session has yet to send).
    pub(crate) fn pending(&self) -> usize {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return self.output.len() + tls.unsent();
        }
        self.output.len()
    }

    /// Reads once into `scratch` and appends what came to the input.
    pub(crate) fn read_once(&mut self, scratch: &mut [u8]) -> io::Result<Read1> {
        loop {
            return match self.stream.read(scratch) {
                Ok(0) => {
                    self.peer_done = true;
                    self.unread = false;
                    Ok(Read1::Eof)
                }
                Ok(n) => {
                    self.info.server.shared.counters.moved(n as u64, 0);
                    self.take_in(&scratch[..n])?;
                    self.last_active = Instant::now();
                    // A short read emptied the socket: more bytes bring a new readiness edge, so
                    // the read that would only say "would block" is saved.
                    // Not when the peer's end of stream has arrived: it comes with no new edge.
                    if n < scratch.len() && !self.peer_closing {
                        self.unread = false;
                    }
                    Ok(Read1::Bytes)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.unread = false;
                    Ok(Read1::Drained)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }

    /// Appends bytes read off the socket to the input (through the TLS session, if any).
    fn take_in(&mut self, raw: &[u8]) -> io::Result<()> {
        let before = self.input.len();
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut() {
            if tls.feed(raw, &mut self.input)? {
                // A close_notify: the end of the stream.
                self.peer_done = true;
                self.unread = false;
            }
        } else {
            self.input.extend_from_slice(raw);
        }
        #[cfg(not(feature = "tls"))]
        self.input.extend_from_slice(raw);
        // A handshake, or a record still arriving, adds nothing.
        if self.input.len() > before {
            self.received = true;
            // Not examined yet: it may complete a message.
            self.rest_is_partial = false;
        }
        Ok(())
    }

    /// Drops the first `consumed` input bytes (handled messages), and the buffer if it is empty and
    /// large.
    pub(crate) fn consume_input(&mut self, consumed: usize) {
        if consumed == 0 {
            return;
        }
        if consumed >= self.input.len() {
            self.input.clear();
            if self.input.capacity() > KEEP_BUFFER {
                self.input = Vec::new();
            }
        } else {
            self.input.drain(..consumed);
        }
    }

    /// Appends `bytes` to the output (a handler's replies from a worker).
    pub(crate) fn queue(&mut self, bytes: Output) {
        self.output.append(bytes);
    }

    /// Appends bytes pushed by a [`Sender`](super::Sender).
    pub(crate) fn push(&mut self, bytes: Vec<u8>) {
        self.output.extend(&bytes);
    }

    /// Writes what it can of the output without blocking, and waits for writability while some is
    /// left.
    pub(crate) fn flush(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.as_mut() {
            let sent = tls.send(&mut self.output, &mut self.stream)?;
            if sent > 0 {
                self.last_active = Instant::now();
                self.info.server.shared.counters.moved(0, sent as u64);
            }
            return self.watch_writability(registry, token);
        }
        while !self.output.is_empty() {
            match self.output.write_to(&mut self.stream) {
                Ok(n) => {
                    self.last_active = Instant::now();
                    self.info.server.shared.counters.moved(0, n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.watch_writability(registry, token)
    }

    /// Waits for writability while bytes are left to send, and only then.
    fn watch_writability(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        let want = self.pending() > 0;
        if want != self.write_interest {
            let interest = match want {
                true => Interest::READABLE | Interest::WRITABLE,
                false => Interest::READABLE,
            };
            self.stream.reregister(registry, token, interest)?;
            self.write_interest = want;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Address;
    use crate::message::event_loop::Parts;
    use std::os::unix::net::UnixStream as StdUnix;

    fn conn() -> (Conn<(), ()>, StdUnix, Parts) {
        let (ours, theirs) = StdUnix::pair().unwrap();
        let parts = Parts::new(0).unwrap();
        let server = crate::Builder::new()
            .bind_tcp("127.0.0.1:0", crate::stream_handler(|_req| Ok(())))
            .unwrap()
            .handle();
        // Counted as accepted, as the accepting handler's connections are before a hand-over.
        server.shared.counters.request_started();
        let ticket = Ticket::new(Arc::clone(&server.shared));
        let info = Arc::new(ConnectionInfo {
            id: crate::message::ConnectionId::of_slot(0),
            peer: Address::from_sockaddr(socket2::SockAddr::unix("peer").unwrap()),
            link: Arc::clone(&parts.link),
            server,
            #[cfg(feature = "tls")]
            tls: Default::default(),
        });
        let stream = Stream::new(Connection::Unix(ours)).unwrap();
        (
            Conn::new(
                stream,
                info,
                (),
                (),
                ticket,
                Seat::detached(),
                Instant::now(),
            ),
            theirs,
            parts,
        )
    }

    #[test]
    fn an_idle_connection_keeps_no_large_buffer_after_a_big_exchange() {
        let (mut conn, mut peer, parts) = conn();
        let registry = parts.poll_registry();
        let token = Token(7);
        conn.stream.register(registry, token).unwrap();
        peer.write_all(&vec![1u8; 100_000]).unwrap();
        let mut scratch = vec![0u8; 64 * 1024];
        while conn.input.len() < 100_000 {
            assert!(matches!(
                conn.read_once(&mut scratch).unwrap(),
                Read1::Bytes
            ));
        }
        conn.consume_input(100_000);
        assert_eq!(conn.input.capacity(), 0, "the input buffer was kept");
        conn.push(vec![2u8; 50_000]);
        conn.flush(registry, token).unwrap();
        assert_eq!(conn.pending(), 0);
        assert!(
            conn.output.retained() <= 16 * 1024,
            "the output buffer was kept"
        );
        let mut got = vec![0u8; 50_000];
        peer.read_exact(&mut got).unwrap();
        assert!(got.iter().all(|&b| b == 2));
    }

    #[test]
    fn a_reset_is_likely_only_with_bytes_unread_or_a_message_half_received() {
        let (mut conn, mut peer, _parts) = conn();
        assert!(!conn.reset_likely(), "an idle connection");
        peer.write_all(b"next request").unwrap();
        assert!(conn.reset_likely(), "bytes waiting in the socket");
        let mut scratch = vec![0u8; 64];
        conn.read_once(&mut scratch).unwrap();
        assert!(conn.reset_likely(), "a message half received");
        conn.consume_input(conn.input.len());
        assert!(!conn.reset_likely(), "everything read and handled");
    }

    #[test]
    fn a_new_connection_is_drained_only_once_its_first_wait_is_over() {
        let (mut conn, mut peer, _parts) = conn();
        let wait = Duration::from_secs(5);
        let now = Instant::now();
        assert!(
            !conn.drained(now, wait),
            "its first message may be on its way"
        );
        assert!(conn.drained(now + wait, wait), "idle since it opened");
        peer.write_all(b"x").unwrap();
        assert!(!conn.drained(now + wait, wait), "a byte arrived, unread");
        let mut scratch = vec![0u8; 64];
        conn.read_once(&mut scratch).unwrap();
        assert!(!conn.drained(now, wait), "a message half received");
        conn.consume_input(1);
        assert!(conn.drained(now, wait), "it has spoken: idle now");
    }

    #[test]
    fn queued_bytes_keep_their_order_and_a_full_socket_waits_for_writability() {
        let (mut conn, mut peer, parts) = conn();
        let registry = parts.poll_registry();
        let token = Token(7);
        conn.stream.register(registry, token).unwrap();
        // More than a Unix socket pair buffers: some must wait.
        for byte in 0..40u8 {
            conn.push(vec![byte; 64 * 1024]);
        }
        conn.flush(registry, token).unwrap();
        assert!(conn.pending() > 0 && conn.write_interest);
        let mut got = Vec::new();
        let mut buf = vec![0u8; 256 * 1024];
        while got.len() < 40 * 64 * 1024 {
            let n = peer.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
            conn.flush(registry, token).unwrap();
        }
        assert!(!conn.write_interest);
        for (i, chunk) in got.chunks(64 * 1024).enumerate() {
            assert!(
                chunk.iter().all(|&b| usize::from(b) == i),
                "chunk {i} out of order"
            );
        }
    }
}
