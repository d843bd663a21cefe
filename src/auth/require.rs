//! [`RequireAuth`]: any stream handler, behind the handshake.

use std::io;

use super::handshake::Authenticator;
use crate::handler::{RequestHandler, StreamRequest};

/// A stream handler that serves only clients that pass the [`Authenticator`]'s handshake first.
///
/// The handshake runs in [`setup`](RequestHandler::setup), before the wrapped handler's own
/// `setup`. If it fails — wrong answer, silence past the deadline, a closed connection — the
/// wrapped handler never runs, the connection is closed, and the error (`PermissionDenied`,
/// `TimedOut`, `UnexpectedEof`) reaches the server's `handle_error` hook like any request
/// failure. Made with [`Authenticator::require`].
///
/// ```
/// use std::io::{Read, Write};
/// use std::net::TcpStream;
/// use socketserver::auth::{Authenticator, Secret};
/// use socketserver::{StreamRequest, ThreadingTcpServer};
///
/// # fn main() -> std::io::Result<()> {
/// let auth = Authenticator::new(Secret::new("shared key")?);
/// let echo = |req: &mut StreamRequest| -> std::io::Result<()> {
///     let mut buf = [0u8; 1024];
///     loop {
///         let n = req.read(&mut buf)?;
///         if n == 0 {
///             return Ok(());
///         }
///         req.write_all(&buf[..n].to_ascii_uppercase())?;
///     }
/// };
/// let mut server = ThreadingTcpServer::bind("127.0.0.1:0", auth.clone().require(echo))?;
/// let addr = server.local_addr().as_inet().expect("a TCP address");
/// let handle = server.handle();
/// let serving = std::thread::spawn(move || server.serve_forever());
///
/// let mut client = TcpStream::connect(addr)?;
/// auth.respond(&mut client)?; // the client side, with the same key
/// client.write_all(b"hi")?;
/// let mut reply = [0u8; 2];
/// client.read_exact(&mut reply)?;
/// assert_eq!(&reply, b"HI");
///
/// handle.shutdown();
/// serving.join().expect("serving thread")?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RequireAuth<H> {
    auth: Authenticator,
    inner: H,
}

impl<H> RequireAuth<H> {
    /// `inner`, served only after `auth`'s handshake succeeds.
    pub fn new(auth: Authenticator, inner: H) -> RequireAuth<H> {
        RequireAuth { auth, inner }
    }

    /// The wrapped handler.
    pub fn inner(&self) -> &H {
        &self.inner
    }
}

impl Authenticator {
    /// Wraps `handler` so that every connection must pass this handshake first.
    pub fn require<H>(self, handler: H) -> RequireAuth<H> {
        RequireAuth::new(self, handler)
    }
}

impl<H: RequestHandler<StreamRequest>> RequestHandler<StreamRequest> for RequireAuth<H> {
    fn setup(&mut self, request: &mut StreamRequest) -> io::Result<()> {
        // A refusal is returned, not logged here: the server's `handle_error` hook reports it.
        self.auth.challenge(request)?;
        log::debug!("{} authenticated", request.peer_addr());
        self.inner.setup(request)
    }

    fn handle(&mut self, request: &mut StreamRequest) -> io::Result<()> {
        self.inner.handle(request)
    }

    fn finish(&mut self, request: &mut StreamRequest) -> io::Result<()> {
        self.inner.finish(request)
    }
}
