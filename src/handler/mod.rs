//! What users implement: [`RequestHandler`], and the two request types a handler receives —
//! [`StreamRequest`] for TCP and Unix stream servers, [`DatagramRequest`] for UDP and Unix datagram
//! servers.

mod datagram;
mod deadline;
pub(crate) mod lifecycle;
mod limits;
mod stream;

pub use datagram::{DatagramRequest, DatagramSocket};
pub use deadline::{Deadline, Limit, LimitExceeded};
pub(crate) use stream::write_all_vectored;
pub use stream::{Connection, StreamRequest};

use std::io;

/// Handles one request: a connection (for stream servers) or a datagram (for datagram servers).
///
/// This is Python's `BaseRequestHandler`. The server clones its handler for every request, so each
/// request gets its own instance, as in Python: fields set in [`setup`](Self::setup) are there in
/// [`handle`](Self::handle) and [`finish`](Self::finish). State shared between requests goes behind
/// an `Arc` inside the handler.
///
/// `R` is [`StreamRequest`] or [`DatagramRequest`]. A closure `FnMut(&mut R) -> io::Result<()>`
/// (which is `Clone` when what it captures is) is a handler too.
///
/// Order of calls, as in Python: `setup`; if it succeeded, `handle`, then `finish` — which runs
/// even if `handle` failed or panicked. An error or panic in any of them is passed to the server's
/// `handle_error` hook and ends only this request.
///
/// ```
/// use std::io::{self, BufRead, Write};
/// use socketserver::{RequestHandler, StreamRequest};
///
/// #[derive(Clone)]
/// struct Greeter {
///     greeting: &'static str,
///     lines: usize,
/// }
///
/// impl RequestHandler<StreamRequest> for Greeter {
///     fn handle(&mut self, req: &mut StreamRequest) -> io::Result<()> {
///         let mut line = String::new();
///         while req.read_line(&mut line)? > 0 {
///             self.lines += 1;
///             write!(req, "{} {}", self.greeting, line)?;
///             line.clear();
///         }
///         Ok(())
///     }
///
///     fn finish(&mut self, req: &mut StreamRequest) -> io::Result<()> {
///         log::info!("{} sent {} lines", req.peer_addr(), self.lines);
///         Ok(())
///     }
/// }
/// ```
pub trait RequestHandler<R>: Send + 'static {
    /// Runs before [`handle`](Self::handle). If it fails, neither `handle` nor `finish` runs.
    fn setup(&mut self, request: &mut R) -> io::Result<()> {
        let _ = request;
        Ok(())
    }

    /// Serves the request. For a stream server this usually loops until the client closes the
    /// connection (a read returning 0 bytes).
    fn handle(&mut self, request: &mut R) -> io::Result<()>;

    /// Runs after [`handle`](Self::handle), whether it succeeded, failed or panicked.
    fn finish(&mut self, request: &mut R) -> io::Result<()> {
        let _ = request;
        Ok(())
    }
}

impl<R, F> RequestHandler<R> for F
where
    F: FnMut(&mut R) -> io::Result<()> + Send + 'static,
{
    fn handle(&mut self, request: &mut R) -> io::Result<()> {
        self(request)
    }
}
