//! The challenge–response handshake itself, server and client side, with a deadline.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::digest::Digest;
use super::secret::Secret;
use crate::handler::{LimitExceeded, StreamRequest};

/// Bytes in a challenge, as in the Python tutorial's `os.urandom(32)`.
pub const CHALLENGE_LEN: usize = 32;

/// How long a handshake may take unless told otherwise: 10 seconds.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A stream whose reads can be given a timeout, so a handshake can have a deadline of its own:
/// `TcpStream`, `UnixStream` and the server's [`StreamRequest`].
pub trait TimedStream: Read + Write {
    /// The read timeout now in force (`None`: reads wait forever).
    ///
    /// # Errors
    ///
    /// The stream's error, if it cannot report its timeout.
    fn read_timeout(&self) -> io::Result<Option<Duration>>;
    /// Sets the read timeout (`None`: reads wait forever).
    ///
    /// # Errors
    ///
    /// The stream's error; a zero `Duration` is refused with `InvalidInput`, as
    /// `TcpStream::set_read_timeout` does.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl TimedStream for TcpStream {
    fn read_timeout(&self) -> io::Result<Option<Duration>> {
        TcpStream::read_timeout(self)
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

impl TimedStream for UnixStream {
    fn read_timeout(&self) -> io::Result<Option<Duration>> {
        UnixStream::read_timeout(self)
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
}

/// On a request, the handshake's deadline and the request's own limits (its
/// [`Deadline`](crate::Deadline), the server's idle timeout and lifetime) all apply: whichever is
/// nearest ends the handshake.
impl TimedStream for StreamRequest {
    fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(StreamRequest::read_timeout(self))
    }
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        StreamRequest::set_read_timeout(self, timeout)
    }
}

/// HMAC challenge–response authentication of a connection, both ends.
///
/// 1. The server sends [`CHALLENGE_LEN`] (32) bytes from the operating system's random source.
/// 2. The client answers `HMAC(secret, challenge)` — 16 bytes with [`Digest::Md5`], 32 with
///    [`Digest::Sha256`] (the default).
/// 3. The server compares the answer with its own in constant time. On a mismatch, a short
///    answer, silence or a closed connection it returns an error, and the caller drops the
///    connection. The whole exchange has one deadline ([`timeout`](Self::timeout), 10 s by
///    default), however the client dribbles its bytes.
///
/// The protocol sends no verdict back: a refused client sees its connection closed. See the
/// [module docs](crate::auth) for what this does and does not protect against.
///
/// ```
/// use std::net::{TcpListener, TcpStream};
/// use socketserver::auth::{Authenticator, Digest, Secret};
///
/// # fn main() -> std::io::Result<()> {
/// let server_side = Authenticator::new(Secret::new("shared key")?).digest(Digest::Md5);
/// let client_side = Authenticator::new(Secret::new("shared key")?).digest(Digest::Md5);
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let client = std::thread::spawn(move || -> std::io::Result<()> {
///     let mut stream = TcpStream::connect(addr)?;
///     client_side.respond(&mut stream)
/// });
/// let (mut conn, _) = listener.accept()?;
/// server_side.challenge(&mut conn)?; // Ok: the client knows the key
/// client.join().expect("client thread")?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Authenticator {
    secret: Arc<Secret>,
    digest: Digest,
    timeout: Duration,
}

impl Authenticator {
    /// Authentication with `secret`, HMAC-SHA256 and a 10-second deadline.
    #[must_use]
    pub fn new(secret: Secret) -> Authenticator {
        Authenticator {
            secret: Arc::new(secret),
            digest: Digest::default(),
            timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Uses `digest` for the HMAC. Both ends must agree.
    #[must_use]
    pub fn digest(mut self, digest: Digest) -> Authenticator {
        self.digest = digest;
        self
    }

    /// Gives the whole handshake at most `timeout` (for the server: to receive the answer; for
    /// the client: to receive the challenge). Zero is taken as one millisecond.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Authenticator {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The digest in use.
    #[must_use]
    pub fn digest_in_use(&self) -> Digest {
        self.digest
    }

    /// Server side: sends a fresh random challenge and checks the client's answer.
    ///
    /// `Ok(())` means the client proved it knows the secret. The stream's previous read timeout
    /// is restored afterwards, whatever the outcome.
    ///
    /// # Errors
    ///
    /// `PermissionDenied` for a wrong answer; `TimedOut` if the answer did not arrive whole before
    /// the deadline; `UnexpectedEof` if the client closed the connection first (after a short
    /// answer, say — a client using the wrong digest); an error of the OS's random source; any I/O
    /// error of the stream.
    pub fn challenge<S: TimedStream + ?Sized>(&self, stream: &mut S) -> io::Result<()> {
        let mut challenge = [0u8; CHALLENGE_LEN];
        getrandom::fill(&mut challenge).map_err(|e| {
            io::Error::other(format!(
                "authentication: cannot get random bytes for a challenge ({e})"
            ))
        })?;
        stream.write_all(&challenge)?;
        stream.flush()?;
        let mut answer = vec![0u8; self.digest.output_len()];
        with_deadline(stream, self.timeout, "answer", |stream, deadline| {
            read_exact_by(stream, &mut answer, deadline, self.timeout, "answer")
        })?;
        if self
            .digest
            .verify(self.secret.as_bytes(), &challenge, &answer)
        {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "authentication failed: the answer is not the HMAC-{} of the challenge (wrong key or digest)",
                    self.digest.name().to_ascii_uppercase()
                ),
            ))
        }
    }

    /// Client side: reads the server's challenge and sends `HMAC(secret, challenge)`.
    ///
    /// The server says nothing on success or failure; a wrong key shows as the server closing
    /// the connection.
    ///
    /// # Errors
    ///
    /// `TimedOut` if no whole challenge arrived within the deadline; `UnexpectedEof` if the server
    /// closed the connection first; any I/O error of the stream.
    pub fn respond<S: TimedStream + ?Sized>(&self, stream: &mut S) -> io::Result<()> {
        let mut challenge = [0u8; CHALLENGE_LEN];
        with_deadline(stream, self.timeout, "challenge", |stream, deadline| {
            read_exact_by(stream, &mut challenge, deadline, self.timeout, "challenge")
        })?;
        let answer = self.digest.hmac(self.secret.as_bytes(), &challenge);
        stream.write_all(&answer)?;
        stream.flush()
    }
}

/// Runs `step` with a deadline `timeout` from now, then restores the stream's read timeout.
fn with_deadline<S: TimedStream + ?Sized>(
    stream: &mut S,
    timeout: Duration,
    what: &str,
    step: impl FnOnce(&mut S, Instant) -> io::Result<()>,
) -> io::Result<()> {
    let before = stream.read_timeout()?;
    let result = step(stream, Instant::now() + timeout);
    let restored = stream.set_read_timeout(before);
    result?;
    restored.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("authentication: cannot restore the read timeout after the {what}: {e}"),
        )
    })
}

/// Fills `buf` before `deadline`, or says how far it got.
fn read_exact_by<S: TimedStream + ?Sized>(
    stream: &mut S,
    buf: &mut [u8],
    deadline: Instant,
    timeout: Duration,
    what: &str,
) -> io::Result<()> {
    let total = buf.len();
    let timed_out = |filled: usize| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "authentication: no complete {what} within {timeout:?} ({filled} of {total} bytes arrived)"
            ),
        )
    };
    let mut filled = 0;
    while filled < total {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out(filled));
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "authentication: the peer closed the connection after {filled} of the {total} bytes of the {what}"
                    ),
                ))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The request's own limit passed first: say which, rather than the handshake's.
            Err(e) if LimitExceeded::find(&e).is_some() => return Err(e),
            Err(e)
                if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
            {
                return Err(timed_out(filled))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
