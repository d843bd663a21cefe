//! Reading one command from a connection: a framed request (see `wire.rs`), or the tutorial's
//! unframed command, gathered until the connection is quiet.
//!
//! The tutorial's client sends its command with one `send` and then waits for the reply, so every
//! byte that arrives before the server answers belongs to that one command. TCP may still
//! deliver it in several pieces (a large command, a slow network); the server therefore keeps
//! reading until no byte has arrived for the quiet time (`--quiet-time`, 0.2 s by default), and
//! runs what it gathered as one command. Pieces further apart than that would still be taken
//! for two commands: that is the price of a protocol without framing, and why our own client
//! sends framed requests, which are never cut or merged. A command longer than [`MAX_COMMAND`]
//! is never run, not even in part: the rest is read and dropped, and the client gets an error.

use std::io::{self, BufRead, Read};
use std::time::{Duration, Instant};

use socketserver::StreamRequest;

use crate::wire;

/// The longest unframed command: one read of the server's buffer (the tutorial uses `recv(1024)`).
pub const MAX_COMMAND: usize = 8192;

/// The longest a command may take to arrive once its first byte is here. Past it the client gets
/// an error and the connection is closed: a trickle must not hold a thread for ever.
pub const ARRIVAL_LIMIT: Duration = Duration::from_secs(10);

/// What the client sent.
pub enum Request {
    /// One whole command.
    Command(Vec<u8>),
    /// Something that is not run: answer `message`, then close the connection if `close` (the
    /// server is no longer in step with the client).
    Refused { message: String, close: bool },
    /// The client closed the connection.
    End,
}

/// Reads the next request. Waits for its first byte as long as the client likes (the tutorial's
/// server does too), then at most [`ARRIVAL_LIMIT`] for the rest.
pub fn read_request(req: &mut StreamRequest, quiet: Duration) -> io::Result<Request> {
    req.set_read_timeout(None)?;
    // Between requests, a stopping server ends the connection; a request on its way is served.
    match req.wait_for_request() {
        Ok(true) => {}
        Ok(false) => return Ok(Request::End),
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(Request::End),
        Err(e) => return Err(e),
    }
    let first = loop {
        match req.fill_buf() {
            Ok([]) => return Ok(Request::End),
            Ok(bytes) => break bytes[0],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(Request::End),
            Err(e) => return Err(e),
        }
    };
    let deadline = Instant::now() + ARRIVAL_LIMIT;
    let request = if first == wire::MAGIC[0] {
        read_framed(req, deadline)
    } else {
        read_unframed(req, quiet, deadline)
    };
    req.set_read_timeout(None)?;
    request
}

fn read_framed(req: &mut StreamRequest, deadline: Instant) -> io::Result<Request> {
    let refused = |message: String| {
        Ok(Request::Refused {
            message,
            close: true,
        })
    };
    let mut reader = Deadline { req, deadline };
    let mut magic = [0u8; 4];
    let read = reader.read_exact(&mut magic).and_then(|()| {
        if magic == wire::MAGIC {
            wire::framing().read_frame(&mut reader)
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "it starts with byte 0xFF but not with the framed request's \"\\xffrc1\"",
            ))
        }
    });
    match read {
        Ok(Some(command)) => Ok(Request::Command(command)),
        Ok(None) => Ok(Request::End),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Request::End),
        Err(e) if timed_out(&e) => refused(format!(
            "the framed command did not arrive within {ARRIVAL_LIMIT:?}"
        )),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            refused(format!("not a valid framed command: {e}"))
        }
        Err(e) => Err(e),
    }
}

fn read_unframed(
    req: &mut StreamRequest,
    quiet: Duration,
    deadline: Instant,
) -> io::Result<Request> {
    let mut command = Vec::with_capacity(MAX_COMMAND);
    let mut chunk = [0u8; MAX_COMMAND];
    let mut total = 0usize;
    loop {
        let n = match req.read(&mut chunk) {
            Ok(0) => break, // the client shut down its side after the command: still answer
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if timed_out(&e) => break, // quiet: the command is complete
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(Request::End),
            Err(e) => return Err(e),
        };
        total = total.saturating_add(n);
        if total <= MAX_COMMAND {
            command.extend_from_slice(&chunk[..n]);
        }
        // Bytes keep coming: wait for them to stop, but not past the deadline.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Request::Refused {
                message: format!("the command was still arriving after {ARRIVAL_LIMIT:?}"),
                close: true,
            });
        }
        req.set_read_timeout(Some(quiet.min(left)))?;
    }
    if total > MAX_COMMAND {
        return Ok(Request::Refused {
            message: format!(
                "the command is {total} bytes, more than the {MAX_COMMAND} one read takes; it was not run (the Python tutorial's protocol has no framing, so a longer command would run in pieces: `client remote-cmd` sends framed commands of up to {} bytes)",
                wire::MAX_FRAMED_COMMAND
            ),
            close: false,
        });
    }
    Ok(Request::Command(command))
}

/// Whether `e` is a read timing out (`WouldBlock` on Unix, `TimedOut` elsewhere).
fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Reads from the request with a read timeout of the time left before `deadline`.
struct Deadline<'a> {
    req: &'a mut StreamRequest,
    deadline: Instant,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        self.req.set_read_timeout(Some(left))?;
        self.req.read(buf)
    }
}
