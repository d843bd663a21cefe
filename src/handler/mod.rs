//! What users implement: [`RequestHandler`], and the two request types a handler receives —
//! [`StreamRequest`] for TCP and Unix stream servers, [`DatagramRequest`] for UDP and Unix datagram
//! servers.

mod admission;
mod connection;
mod datagram;
mod deadline;
pub(crate) mod lifecycle;
mod limits;
mod read_buffer;
mod send;
mod split;
mod stream;

pub(crate) use admission::Admission;
pub use connection::Connection;
pub use datagram::{DatagramRequest, DatagramSocket};
pub use deadline::{Deadline, Limit, LimitExceeded};
pub use split::{ReadHalf, WriteHalf};
pub use stream::StreamRequest;

use std::io;

/// Handles one request: a connection (for stream servers) or a datagram (for datagram servers).
///
/// This is Python's `BaseRequestHandler`. The server clones its handler for every request, so each
/// request gets its own instance, as in Python: fields set in [`setup`](Self::setup) are there in
/// [`handle`](Self::handle) and [`finish`](Self::finish). State shared between requests goes behind
/// an `Arc` inside the handler.
///
/// `R` is [`StreamRequest`] or [`DatagramRequest`]. A closure `FnMut(&mut R) -> io::Result<()>`
/// (which is `Clone` when what it captures is) is a handler too. Rust cannot infer a closure's
/// argument type from this trait, so name it — `|req: &mut StreamRequest| { … }` — or wrap the
/// closure in [`stream_handler`] or [`datagram_handler`], which name it for you; without either,
/// rustc stops with E0282, "type annotations needed".
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
///
/// A closure of the wrong shape (here it returns `()`) is reported where it is written, at the
/// `bind_*` call and again at `serve_forever`, both times saying what it should return:
///
/// ```compile_fail
/// use socketserver::{StreamRequest, TcpServer};
///
/// let mut server = TcpServer::bind("127.0.0.1:0", |req: &mut StreamRequest| {
///     let _ = req; // no `Ok(())`: not a handler
/// })?;
/// server.serve_forever()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a handler of `{R}` requests",
    label = "not a `RequestHandler<{R}>`",
    note = "a handler implements `RequestHandler<{R}>`, or is a closure `|req: &mut {R}| -> std::io::Result<()>` that is `Clone + Send + 'static`",
    note = "stream servers (TCP, Unix stream) take `StreamRequest`, datagram servers (UDP, Unix datagram) take `DatagramRequest`"
)]
pub trait RequestHandler<R>: Send + 'static {
    /// Runs before [`handle`](Self::handle).
    ///
    /// # Errors
    ///
    /// An error (or a panic) ends the request: neither `handle` nor `finish` runs, and the server's
    /// `handle_error` hook gets it as a [`Failure`](crate::Failure). The server goes on serving.
    fn setup(&mut self, request: &mut R) -> io::Result<()> {
        let _ = request;
        Ok(())
    }

    /// Serves the request. For a stream server this usually loops until the client closes the
    /// connection (a read returning 0 bytes).
    ///
    /// # Errors
    ///
    /// An error (or a panic) ends the request: `finish` still runs, and the server's `handle_error`
    /// hook gets it as a [`Failure`](crate::Failure). The server goes on serving.
    fn handle(&mut self, request: &mut R) -> io::Result<()>;

    /// Runs after [`handle`](Self::handle), whether it succeeded, failed or panicked.
    ///
    /// # Errors
    ///
    /// Reported like one from `handle`; if `handle` failed too, its failure is the one reported and
    /// this one is logged.
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

/// Returns the closure `handler` as it is, telling the compiler that it handles a
/// [`StreamRequest`], so its argument type need not be written out.
///
/// ```
/// use std::io::{BufRead, Write};
/// use socketserver::{stream_handler, ThreadingTcpServer};
///
/// # fn main() -> std::io::Result<()> {
/// let server = ThreadingTcpServer::bind(
///     "127.0.0.1:0",
///     stream_handler(|req| {
///         let mut line = String::new();
///         req.read_line(&mut line)?;
///         req.write_all(line.to_uppercase().as_bytes())
///     }),
/// )?;
/// server.server_close()?;
/// # Ok(())
/// # }
/// ```
pub fn stream_handler<F>(handler: F) -> F
where
    F: FnMut(&mut StreamRequest) -> io::Result<()> + Clone + Send + 'static,
{
    handler
}

/// Returns the closure `handler` as it is, telling the compiler that it handles a
/// [`DatagramRequest`], so its argument type need not be written out.
///
/// ```
/// use socketserver::{datagram_handler, UdpServer};
///
/// # fn main() -> std::io::Result<()> {
/// let server = UdpServer::bind(
///     "127.0.0.1:0",
///     datagram_handler(|req| {
///         let upper = req.data().to_ascii_uppercase();
///         req.reply(&upper)
///     }),
/// )?;
/// server.server_close()?;
/// # Ok(())
/// # }
/// ```
pub fn datagram_handler<F>(handler: F) -> F
where
    F: FnMut(&mut DatagramRequest) -> io::Result<()> + Clone + Send + 'static,
{
    handler
}
