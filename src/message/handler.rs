//! [`MessageHandler`]: what a message server calls, and [`Closed`]: why a connection ended.

use std::fmt;
use std::io;

use super::reply::Reply;
use super::sender::ConnectionId;
use crate::address::Address;

/// Answers whole messages for a message server (see [`crate::message`]).
///
/// The server clones the handler it was given for every connection it accepts, so per-connection
/// state is plain fields; state shared by all connections goes behind an `Arc`. A connection's
/// messages reach its handler one at a time and in order, pipelined ones included.
///
/// * [`opened`](Self::opened): the connection was accepted, and with TLS its handshake is done
///   (write a greeting into the reply, keep its [`Sender`](super::Sender) to push messages
///   later);
/// * [`handle`](Self::handle): one complete message, as the [`Framer`](super::Framer) cut it;
///   what is written into the [`Reply`] is sent when the handler returns;
/// * [`closed`](Self::closed): the connection is gone, with the reason.
///
/// `opened` and `closed` run on the server's event loop in every mode: keep them quick (register
/// in a map, log). `handle` runs on the loop in [`Single`](crate::Single) and on a worker thread in
/// [`Pool`](crate::Pool); it may block in a pool, but a blocked handler in `Single` stalls every
/// connection. An error or a panic from `opened` or `handle` goes to the server's `handle_error`
/// and closes the connection (after what the reply already holds is sent).
///
/// Closures `FnMut(&[u8], &mut Reply) -> io::Result<()>` are handlers too; wrap one in
/// [`message_handler`](super::message_handler) so its argument types are inferred.
///
/// A chat room: each connection's [`Sender`](super::Sender) is kept in shared state from `opened`
/// to `closed`, and every line a participant sends is pushed to the others.
///
/// ```
/// use std::collections::HashMap;
/// use std::io::{self, BufRead, BufReader, Write};
/// use std::net::TcpStream;
/// use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
/// use std::time::Duration;
/// use socketserver::message::{Closed, ConnectionId, Lines, MessageHandler, Reply, Sender};
/// use socketserver::{Address, Builder};
///
/// #[derive(Clone, Default)]
/// struct Room {
///     members: Arc<Mutex<HashMap<ConnectionId, Sender>>>,
/// }
///
/// impl Room {
///     fn members(&self) -> MutexGuard<'_, HashMap<ConnectionId, Sender>> {
///         self.members.lock().unwrap_or_else(PoisonError::into_inner)
///     }
/// }
///
/// impl MessageHandler for Room {
///     fn opened(&mut self, reply: &mut Reply<'_>) -> io::Result<()> {
///         self.members().insert(reply.id(), reply.sender());
///         reply.write_all(b"welcome\n")
///     }
///
///     fn handle(&mut self, line: &[u8], reply: &mut Reply<'_>) -> io::Result<()> {
///         let text = format!("[{}] {}\n", reply.peer_addr(), String::from_utf8_lossy(line));
///         for (id, member) in self.members().iter() {
///             if *id != reply.id() {
///                 member.send(text.clone()); // queued; never blocks on a slow reader
///             }
///         }
///         Ok(())
///     }
///
///     fn closed(&mut self, id: ConnectionId, _peer: &Address, _reason: &Closed) {
///         self.members().remove(&id);
///     }
/// }
///
/// # fn main() -> io::Result<()> {
/// let mut server = Builder::new()
///     .messages(Lines::new(), Room::default())
///     .bind_tcp("127.0.0.1:0")?;
/// let addr = server.local_addr().as_inet().expect("a TCP address");
/// let handle = server.handle();
/// let serving = std::thread::spawn(move || -> io::Result<()> {
///     server.serve_forever()?;
///     server.server_close()
/// });
///
/// // The greeting says the room has registered the connection.
/// let join = || -> io::Result<BufReader<TcpStream>> {
///     let stream = TcpStream::connect(addr)?;
///     stream.set_read_timeout(Some(Duration::from_secs(10)))?;
///     let mut participant = BufReader::new(stream);
///     let mut greeting = String::new();
///     participant.read_line(&mut greeting)?;
///     assert_eq!(greeting, "welcome\n");
///     Ok(participant)
/// };
/// let mut alice = join()?;
/// let mut bob = join()?;
/// alice.get_mut().write_all(b"hello, room\n")?;
/// let mut heard = String::new();
/// bob.read_line(&mut heard)?;
/// assert!(heard.ends_with("] hello, room\n"), "{heard}");
///
/// handle.shutdown();
/// serving.join().expect("serving thread")?;
/// # Ok(())
/// # }
/// ```
pub trait MessageHandler: Clone + Send + 'static {
    /// A connection was accepted (with TLS, once its handshake is done: a connection whose
    /// handshake fails reaches neither this nor [`closed`](Self::closed)). By default does
    /// nothing.
    ///
    /// # Errors
    ///
    /// An error closes the connection, reporting it to `handle_error`.
    fn opened(&mut self, reply: &mut Reply<'_>) -> io::Result<()> {
        let _ = reply;
        Ok(())
    }

    /// Answers one complete `message` (without its framing) by writing into `reply`.
    ///
    /// # Errors
    ///
    /// An error closes the connection once what `reply` holds is sent, and is reported to
    /// `handle_error`. To close a connection without an error, call [`Reply::close`].
    fn handle(&mut self, message: &[u8], reply: &mut Reply<'_>) -> io::Result<()>;

    /// The connection `id` with `peer` has closed, for `reason`. By default does nothing.
    fn closed(&mut self, id: ConnectionId, peer: &Address, reason: &Closed) {
        let _ = (id, peer, reason);
    }
}

impl<F> MessageHandler for F
where
    F: FnMut(&[u8], &mut Reply<'_>) -> io::Result<()> + Clone + Send + 'static,
{
    fn handle(&mut self, message: &[u8], reply: &mut Reply<'_>) -> io::Result<()> {
        self(message, reply)
    }
}

/// Why a message server closed a connection, as [`MessageHandler::closed`] hears it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Closed {
    /// The peer closed the connection (after its last complete message was answered).
    ByPeer,
    /// The handler asked for it with [`Reply::close`] or a [`Sender::close`](super::Sender::close).
    ByHandler,
    /// The handler returned an error or panicked (reported to `handle_error`).
    HandlerFailed,
    /// The peer broke the protocol: the framer refused its bytes, or a message outgrew the
    /// framer's limit (reported to `handle_error`).
    BadMessage,
    /// Nothing arrived or left for the server's [`idle_timeout`](crate::Builder::idle_timeout).
    IdleTimeout,
    /// A message was not complete within [`message_timeout`](crate::message::MessageBuilder::message_timeout) of
    /// its first byte.
    MessageTimeout,
    /// The connection reached [`max_connection_lifetime`](crate::Builder::max_connection_lifetime).
    Lifetime,
    /// Messages pushed to the connection piled up past
    /// [`max_pending_output`](crate::message::MessageBuilder::max_pending_output): the peer does not read.
    SlowReader,
    /// The server's connections together held more than
    /// [`max_buffered_memory`](crate::message::MessageBuilder::max_buffered_memory) in their buffers, and this
    /// one was among those holding the most.
    OverBudget,
    /// Reading or writing failed (the peer reset the connection, say).
    Error(io::ErrorKind),
    /// The server stopped.
    ServerStopped,
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Closed::ByPeer => f.write_str("closed by the peer"),
            Closed::ByHandler => f.write_str("closed by the handler"),
            Closed::HandlerFailed => f.write_str("the handler failed"),
            Closed::BadMessage => f.write_str("a malformed or over-long message"),
            Closed::IdleTimeout => f.write_str("the idle timeout passed"),
            Closed::MessageTimeout => f.write_str("a message was not complete in time"),
            Closed::Lifetime => f.write_str("the maximum connection lifetime passed"),
            Closed::SlowReader => f.write_str("the peer did not read what was sent to it"),
            Closed::OverBudget => {
                f.write_str("the server's buffers were over their budget, and it held the most")
            }
            Closed::Error(kind) => write!(f, "the connection failed ({kind})"),
            Closed::ServerStopped => f.write_str("the server stopped"),
        }
    }
}

/// Returns `handler` unchanged: a closure passed through it has its argument types inferred, which
/// a closure passed straight to [`Builder::messages`](crate::Builder::messages) does not
/// (Rust infers closure signatures only from a function's own bounds).
///
/// ```
/// use socketserver::message::message_handler;
/// use std::io::Write;
///
/// let shout = message_handler(|message, reply| {
///     reply.write_all(&message.to_ascii_uppercase())?;
///     reply.write_all(b"\n")
/// });
/// # let _ = shout;
/// ```
pub fn message_handler<F>(handler: F) -> F
where
    F: FnMut(&[u8], &mut Reply<'_>) -> io::Result<()> + Clone + Send + 'static,
{
    handler
}
