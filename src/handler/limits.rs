//! A connection under its request's time limits: the read and write timeouts, the server's idle
//! timeout and connection lifetime, and the handler's [`Deadline`], folded into one socket
//! timeout per wait.
//!
//! The socket timeout is only changed when the one a wait needs differs from the one the socket
//! already has, so a server with no limits set pays nothing, and one with only an idle timeout
//! pays a single `setsockopt` per connection.

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use super::connection::Connection;
use super::deadline::{Deadline, Limit, LimitExceeded};
use crate::socket::options::ConnectionOptions;
use crate::socket::poll::{self, Ready};

/// Which way a wait goes: the socket has a timeout for each.
#[derive(Debug, Clone, Copy)]
enum Direction {
    Read,
    Write,
}

/// What bounds one wait, so a timeout can be reported as the limit that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binding {
    /// The plain read or write timeout: the socket's own error is returned as it is.
    Timeout,
    Idle,
    Lifetime,
    Deadline,
}

/// The connection's lifetime limit: when it ends, and how long it was, for the message.
#[derive(Debug, Clone, Copy)]
struct Lifetime {
    end: Instant,
    length: Duration,
}

/// The connection a [`StreamRequest`](crate::StreamRequest) reads and writes through.
#[derive(Debug)]
pub(crate) struct Guarded {
    conn: Connection,
    /// The timeouts the user asked for: what a wait gets when no limit is nearer.
    base_read: AtomicTimeout,
    base_write: AtomicTimeout,
    /// The timeouts the socket has now.
    applied_read: AtomicTimeout,
    applied_write: AtomicTimeout,
    idle: Option<Duration>,
    lifetime: Option<Lifetime>,
    /// The handler's deadline and the bytes read since it was set (for its `min_rate`).
    deadline: Option<(Deadline, AtomicU64)>,
    /// Once its handshake is done: the TLS session every read and write goes through.
    #[cfg(feature = "tls")]
    tls: Option<Box<crate::tls::TlsStream>>,
    /// Bytes read from and written to the socket, and the first limit that failed a wait (see
    /// [`Guarded::took_stock`]): kept here, per connection, and added to the server's counters
    /// when the request ends or waits for its next one.
    received: AtomicU64,
    sent: AtomicU64,
    limit_hit: AtomicU8,
}

/// What a connection did, for the server's counters: bytes in and out, and the limit that
/// closed it, if one did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) received: u64,
    pub(crate) sent: u64,
    pub(crate) limit: Option<crate::stats::Limit>,
}

impl Guarded {
    /// `conn`, accepted just now, with the server's options already applied to the socket.
    pub(crate) fn new(conn: Connection, options: &ConnectionOptions) -> Guarded {
        let now = Instant::now();
        Guarded {
            conn,
            base_read: AtomicTimeout::new(options.read_timeout),
            base_write: AtomicTimeout::new(options.write_timeout),
            applied_read: AtomicTimeout::new(options.read_timeout),
            applied_write: AtomicTimeout::new(options.write_timeout),
            idle: options.idle_timeout,
            lifetime: options.max_lifetime.and_then(|length| {
                // A lifetime too long to represent is no limit at all.
                now.checked_add(length).map(|end| Lifetime { end, length })
            }),
            deadline: None,
            #[cfg(feature = "tls")]
            tls: None,
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            limit_hit: AtomicU8::new(0),
        }
    }

    /// What the connection did since the last call (each byte and the limit are told once).
    pub(crate) fn took_stock(&self) -> Tally {
        use crate::stats::Limit as Counted;
        Tally {
            received: self.received.swap(0, Ordering::Relaxed),
            sent: self.sent.swap(0, Ordering::Relaxed),
            limit: match self.limit_hit.swap(0, Ordering::Relaxed) {
                1 => Some(Counted::Idle),
                2 => Some(Counted::Lifetime),
                3 => Some(Counted::Deadline),
                _ => None,
            },
        }
    }

    /// Forgets the limit that failed a wait: the failure is counted as something else (the
    /// PROXY header or TLS handshake the deadline was for).
    #[cfg(any(feature = "proxy", feature = "tls"))]
    pub(crate) fn forget_limit(&self) {
        self.limit_hit.store(0, Ordering::Relaxed);
    }

    /// Notes that `limit` failed a wait (the first one counts: the connection ends on it).
    fn hit(&self, limit: LimitExceeded) -> io::Error {
        let code = match limit.limit() {
            Limit::IdleTimeout => 1,
            Limit::Lifetime => 2,
            Limit::Deadline => 3,
        };
        let _ = self
            .limit_hit
            .compare_exchange(0, code, Ordering::Relaxed, Ordering::Relaxed);
        limit.into()
    }

    fn count_in(&self, result: &io::Result<usize>) {
        if let Ok(n) = result {
            self.received.fetch_add(*n as u64, Ordering::Relaxed);
        }
    }

    fn count_out(&self, result: &io::Result<usize>) {
        if let Ok(n) = result {
            self.sent.fetch_add(*n as u64, Ordering::Relaxed);
        }
    }

    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }

    /// From now on, reads and writes go through `session` (its handshake done).
    #[cfg(feature = "tls")]
    pub(crate) fn start_tls(&mut self, session: crate::tls::TlsStream) {
        self.tls = Some(Box::new(session));
    }

    #[cfg(feature = "tls")]
    pub(crate) fn tls(&self) -> Option<&crate::tls::TlsStream> {
        self.tls.as_deref()
    }

    /// Whether decrypted bytes wait in the TLS session (always `false` without one).
    fn has_plaintext(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return tls.has_plaintext();
        }
        false
    }

    /// The socket itself under the limits, below TLS: for the handshake, and for TLS records.
    pub(crate) fn raw(&self) -> Raw<'_> {
        Raw(self)
    }

    /// Sends all of `bytes` on the socket itself (TLS records).
    #[cfg(feature = "tls")]
    fn raw_send_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match self.raw().write(bytes) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// [`close_notify`](Self::close_notify) only as far as the socket takes it without waiting:
    /// at the end of a request, where a peer that stopped reading must not hold the thread.
    #[cfg(feature = "tls")]
    pub(crate) fn close_notify_now(&self) {
        use crate::tls::handshake::NonBlocking;
        if let Some(tls) = &self.tls {
            let mut io = NonBlocking(self.conn.as_raw_fd());
            let _ = tls.close_notify(&mut |bytes| io.write_all(bytes));
        }
    }

    /// Ends the TLS stream with a `close_notify`, if there is one (a failure means the peer is
    /// gone).
    #[cfg(feature = "tls")]
    pub(crate) fn close_notify(&self) -> io::Result<()> {
        match &self.tls {
            Some(tls) => tls.close_notify(&mut |bytes| self.raw_send_all(bytes)),
            None => Ok(()),
        }
    }

    pub(crate) fn read_timeout(&self) -> Option<Duration> {
        self.base_read.get()
    }

    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.conn.set_read_timeout(timeout)?;
        self.base_read.set(timeout);
        self.applied_read.set(timeout);
        Ok(())
    }

    pub(crate) fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.conn.set_write_timeout(timeout)?;
        self.base_write.set(timeout);
        self.applied_write.set(timeout);
        Ok(())
    }

    pub(crate) fn set_deadline(&mut self, deadline: Option<Deadline>) {
        self.deadline = deadline.map(|d| (d, AtomicU64::new(0)));
    }

    pub(crate) fn deadline_expiry(&self) -> Option<Instant> {
        let (deadline, received) = self.deadline.as_ref()?;
        deadline.expiry(received.load(Ordering::Relaxed))
    }

    fn has_limits(&self) -> bool {
        self.idle.is_some() || self.lifetime.is_some() || self.deadline.is_some()
    }

    /// The timeout the next wait gets, and what it stands for; or the limit that has already
    /// passed.
    fn plan(
        &self,
        base: Option<Duration>,
        now: Instant,
    ) -> Result<(Option<Duration>, Binding), LimitExceeded> {
        let mut wait = (base, Binding::Timeout);
        let mut consider = |left: Duration, binding: Binding| {
            if wait.0.is_none_or(|t| left < t) {
                wait = (Some(left), binding);
            }
        };
        if let Some(idle) = self.idle {
            consider(idle, Binding::Idle);
        }
        if let Some(life) = self.lifetime {
            let left = life.end.saturating_duration_since(now);
            if left.is_zero() {
                return Err(LimitExceeded::lifetime(life.length));
            }
            consider(left, Binding::Lifetime);
        }
        if let Some((deadline, received)) = &self.deadline {
            let received = received.load(Ordering::Relaxed);
            if let Some(expiry) = deadline.expiry(received) {
                let left = expiry.saturating_duration_since(now);
                if left.is_zero() {
                    return Err(deadline.exceeded(received));
                }
                consider(left, Binding::Deadline);
            }
        }
        Ok(wait)
    }

    /// Gives the socket the timeout the coming wait needs.
    fn before_wait(&self, direction: Direction) -> io::Result<Binding> {
        let (base, applied) = match direction {
            Direction::Read => (&self.base_read, &self.applied_read),
            Direction::Write => (&self.base_write, &self.applied_write),
        };
        if !self.has_limits() && applied.get() == base.get() {
            return Ok(Binding::Timeout);
        }
        let (timeout, binding) = self
            .plan(base.get(), Instant::now())
            .map_err(|limit| self.hit(limit))?;
        if applied.get() != timeout {
            match direction {
                Direction::Read => self.conn.set_read_timeout(timeout)?,
                Direction::Write => self.conn.set_write_timeout(timeout)?,
            }
            applied.set(timeout);
        }
        Ok(binding)
    }

    /// Reports a wait that timed out as the limit that bounded it.
    fn after_wait<T>(&self, result: io::Result<T>, binding: Binding) -> io::Result<T> {
        match result {
            Err(e)
                if binding != Binding::Timeout
                    && matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
            {
                let limit = match binding {
                    Binding::Idle => LimitExceeded::idle(self.idle.unwrap_or_default()),
                    Binding::Lifetime => {
                        LimitExceeded::lifetime(self.lifetime.map(|l| l.length).unwrap_or_default())
                    }
                    _ => match &self.deadline {
                        Some((deadline, received)) => {
                            deadline.exceeded(received.load(Ordering::Relaxed))
                        }
                        None => return Err(e),
                    },
                };
                Err(self.hit(limit))
            }
            other => other,
        }
    }
}

impl Guarded {
    /// Waits, as long as a read would, until the connection is readable (`Ok(true)`: data, end
    /// of file or an error for the read to report) or `stop`, a pipe's read end, is (`Ok(false)`);
    /// also `Ok(false)` once `until` passes, if that comes before the read's own limits. A wait
    /// that times out fails as a read would.
    pub(crate) fn wait_readable(&self, stop: RawFd, until: Option<Instant>) -> io::Result<bool> {
        if self.has_plaintext() {
            return Ok(true);
        }
        let binding = self.before_wait(Direction::Read)?;
        let timeout = self.applied_read.get();
        let cap = until.map(|until| until.saturating_duration_since(Instant::now()));
        let capped = cap.is_some_and(|cap| timeout.is_none_or(|t| cap < t));
        let wait = if capped { cap } else { timeout };
        match poll::wait(self.conn.as_raw_fd(), stop, wait)? {
            Ready::Socket => Ok(true),
            Ready::Stop => Ok(false),
            Ready::Timeout if capped => Ok(false),
            Ready::Timeout => {
                // What a read with the same socket timeout returns.
                let timed_out = io::Error::from_raw_os_error(libc::EAGAIN);
                self.after_wait(Err(timed_out), binding)
            }
        }
    }

    /// Whether the connection is readable now, without waiting.
    pub(crate) fn readable_now(&self) -> io::Result<bool> {
        if self.has_plaintext() {
            return Ok(true);
        }
        poll::readable_now(self.conn.as_raw_fd())
    }

    /// Reads that fail with `WouldBlock` instead of waiting (`MSG_DONTWAIT`), counted for the
    /// deadline like any other.
    pub(crate) fn without_waiting(&self) -> WithoutWaiting<'_> {
        WithoutWaiting(self)
    }

    /// Copies what has arrived (up to `buf.len()` bytes) without taking it off the socket and
    /// without waiting: `Ok(None)` if nothing has, `Ok(Some(0))` at end of file.
    #[cfg(feature = "proxy")]
    pub(crate) fn peek_now(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            return match recv_now(self.conn.as_raw_fd(), buf, libc::MSG_PEEK) {
                Ok(n) => Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }

    /// Takes `len` bytes that [`peek_now`](Self::peek_now) saw off the socket (they are there:
    /// this does not wait).
    #[cfg(feature = "proxy")]
    pub(crate) fn discard_now(&self, mut len: usize) -> io::Result<()> {
        let mut sink = [0u8; 512];
        while len > 0 {
            let chunk = len.min(sink.len());
            match recv_now(self.conn.as_raw_fd(), &mut sink[..chunk], 0) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection ended inside bytes already received",
                    ))
                }
                Ok(n) => len -= n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// One `recv` with `MSG_DONTWAIT` and `flags`.
fn recv_now(fd: RawFd, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call.
    let n = unsafe {
        libc::recv(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            flags | libc::MSG_DONTWAIT,
        )
    };
    match n {
        n if n < 0 => Err(io::Error::last_os_error()),
        n => Ok(n as usize),
    }
}

/// See [`Guarded::without_waiting`].
pub(crate) struct WithoutWaiting<'a>(&'a Guarded);

impl WithoutWaiting<'_> {
    /// One `recv` of the socket itself that does not wait.
    fn read_raw(&self, buf: &mut [u8]) -> io::Result<usize> {
        // A limit that has passed fails this read as it fails any other.
        self.0.before_wait(Direction::Read)?;
        let n = recv_now(self.0.conn.as_raw_fd(), buf, 0)?;
        self.0.received.fetch_add(n as u64, Ordering::Relaxed);
        if let Some((_, received)) = &self.0.deadline {
            received.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }
}

impl Read for WithoutWaiting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.0.tls {
            let guarded = self.0;
            return tls.read(buf, &mut |raw| self.read_raw(raw), &mut |bytes| {
                guarded.raw_send_all(bytes)
            });
        }
        self.read_raw(buf)
    }
}

/// See [`Guarded::raw`].
pub(crate) struct Raw<'a>(&'a Guarded);

impl Read for Raw<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let g = self.0;
        let binding = g.before_wait(Direction::Read)?;
        let result = (&g.conn).read(buf);
        g.count_in(&result);
        if let (Ok(n), Some((_, received))) = (&result, &g.deadline) {
            received.fetch_add(*n as u64, Ordering::Relaxed);
        }
        g.after_wait(result, binding)
    }
}

impl Write for Raw<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let g = self.0;
        let binding = g.before_wait(Direction::Write)?;
        let result = (&g.conn).write(buf);
        g.count_out(&result);
        g.after_wait(result, binding)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let g = self.0;
        let binding = g.before_wait(Direction::Write)?;
        let result = (&g.conn).write_vectored(bufs);
        g.count_out(&result);
        g.after_wait(result, binding)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// Reads and writes go through `&Guarded`, so a request's read half and write half can be used
// at the same time. With TLS they go through its session.
impl Read for &Guarded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            let g: &Guarded = self;
            return tls.read(buf, &mut |raw| g.raw().read(raw), &mut |bytes| {
                g.raw_send_all(bytes)
            });
        }
        self.raw().read(buf)
    }
}

impl Write for &Guarded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return self.write_vectored(&[IoSlice::new(buf)]);
        }
        self.raw().write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            let g: &Guarded = self;
            return tls.write(bufs, &mut |bytes| g.raw_send_all(bytes));
        }
        self.raw().write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An `Option<Duration>` that can be changed through `&self`, so the request's timeout setters
/// keep their `&self` signatures (and the request stays `Sync`).
#[derive(Debug)]
struct AtomicTimeout(AtomicU64);

impl AtomicTimeout {
    const NONE: u64 = u64::MAX;

    fn new(timeout: Option<Duration>) -> AtomicTimeout {
        let t = AtomicTimeout(AtomicU64::new(Self::NONE));
        t.set(timeout);
        t
    }

    fn get(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            Self::NONE => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    fn set(&self, timeout: Option<Duration>) {
        // 584 years and more is stored as a little less, which no wait will notice.
        let nanos = timeout.map_or(Self::NONE, |t| {
            u64::try_from(t.as_nanos()).map_or(Self::NONE - 1, |n| n.min(Self::NONE - 1))
        });
        self.0.store(nanos, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn guarded(options: &ConnectionOptions) -> (Guarded, UnixStream) {
        let (a, b) = UnixStream::pair().expect("socket pair");
        (Guarded::new(Connection::Unix(a), options), b)
    }

    #[test]
    fn the_nearest_limit_bounds_a_wait() {
        let options = ConnectionOptions {
            read_timeout: Some(Duration::from_secs(60)),
            idle_timeout: Some(Duration::from_secs(30)),
            max_lifetime: Some(Duration::from_secs(3600)),
            ..ConnectionOptions::default()
        };
        let (mut g, _peer) = guarded(&options);
        let now = Instant::now();
        let base = Some(Duration::from_secs(60));
        assert_eq!(
            g.plan(base, now).unwrap(),
            (Some(Duration::from_secs(30)), Binding::Idle)
        );
        g.set_deadline(Some(Deadline::after(Duration::from_secs(5))));
        let (t, binding) = g.plan(base, Instant::now()).unwrap();
        assert_eq!(binding, Binding::Deadline);
        assert!(t.unwrap() <= Duration::from_secs(5));
        let late = now + Duration::from_secs(3599);
        g.set_deadline(None);
        let (t, binding) = g.plan(base, late).unwrap();
        assert_eq!(binding, Binding::Lifetime);
        assert!(t.unwrap() <= Duration::from_secs(1));
        let dead = now + Duration::from_secs(7200);
        assert_eq!(
            g.plan(base, dead).unwrap_err().limit(),
            crate::Limit::Lifetime
        );
    }

    #[test]
    fn without_limits_the_plain_timeout_is_kept() {
        let (g, _peer) = guarded(&ConnectionOptions::default());
        assert_eq!(
            g.plan(None, Instant::now()).unwrap(),
            (None, Binding::Timeout)
        );
        assert_eq!(g.before_wait(Direction::Read).unwrap(), Binding::Timeout);
    }

    #[test]
    fn a_passed_deadline_fails_before_waiting_and_a_cleared_one_restores_the_timeout() {
        let (mut g, mut peer) = guarded(&ConnectionOptions::default());
        g.set_deadline(Some(
            Deadline::after(Duration::from_millis(50)).named("test"),
        ));
        let mut buf = [0u8; 4];
        let err = (&g).read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(LimitExceeded::find(&err).unwrap().name(), "test");
        // The socket now carries the deadline's short timeout; clearing must undo it.
        g.set_deadline(None);
        assert!(g.applied_read.get().is_some());
        peer.write_all(b"ok").unwrap();
        assert_eq!((&g).read(&mut buf).unwrap(), 2);
        assert_eq!(g.applied_read.get(), None);
        assert_eq!(
            g.connection().as_unix().unwrap().read_timeout().unwrap(),
            None
        );
    }

    #[test]
    fn bytes_read_count_towards_the_min_rate() {
        let (mut g, mut peer) = guarded(&ConnectionOptions::default());
        g.set_deadline(Some(
            Deadline::after(Duration::from_secs(1)).min_rate(10, Duration::from_secs(100)),
        ));
        let before = g.deadline_expiry().unwrap();
        peer.write_all(&[7u8; 50]).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!((&g).read(&mut buf).unwrap(), 50);
        assert_eq!(
            g.deadline_expiry().unwrap(),
            before + Duration::from_secs(5)
        );
    }

    #[test]
    fn atomic_timeouts_round_trip() {
        for t in [
            None,
            Some(Duration::from_millis(1)),
            Some(Duration::from_secs(90)),
        ] {
            assert_eq!(AtomicTimeout::new(t).get(), t);
        }
        assert!(AtomicTimeout::new(Some(Duration::MAX)).get().is_some());
    }
}
