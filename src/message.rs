//! Message servers (feature `message`): an event loop waits on every connection at once and calls
//! a blocking, easy-to-write handler with each complete message, so idle and slow connections cost
//! no thread.
//!
//! A stream server ([`RequestHandler`](crate::RequestHandler) with a
//! [`StreamRequest`](crate::StreamRequest)) gives each connection a thread or a process for as
//! long as it lasts, and the handler reads at its own pace. A message server turns this around,
//! as redis, nginx and memcached do: the server does all the waiting, on every connection at once,
//! with the OS's readiness API (epoll); it reads what arrives into a buffer per connection; a
//! [`Framer`] says where a message ends; and only then the [`MessageHandler`] runs, with the whole
//! message and a [`Reply`] to write the answer into. A connection that sends nothing, or trickles a
//! message a byte at a time, holds a few hundred bytes and no thread, and the loop closes it at the
//! [`message_timeout`](crate::message::MessageBuilder::message_timeout) before any handler sees it.
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::net::TcpStream;
//! use socketserver::message::{message_handler, Lines};
//! use socketserver::{Builder, Pool};
//!
//! # fn main() -> std::io::Result<()> {
//! // Upper-case every line; each connection's lines are answered in order.
//! let shout = message_handler(|line, reply| {
//!     reply.write_all(&line.to_ascii_uppercase())?;
//!     reply.write_all(b"\n")
//! });
//! let mut server = Builder::new()
//!     .mode(Pool::new(4)) // handlers on 4 workers; `Single` runs them on the loop
//!     .messages(Lines::new(), shout)
//!     .bind_tcp("127.0.0.1:0")?;
//! let addr = server.local_addr().as_inet().expect("a TCP address");
//! let handle = server.handle();
//! let serving = std::thread::spawn(move || -> std::io::Result<()> {
//!     server.serve_forever()?;
//!     server.server_close()
//! });
//!
//! let mut client = TcpStream::connect(addr)?;
//! client.write_all(b"hello\nworld\n")?; // pipelined: both answered, in order
//! let mut lines = BufReader::new(client).lines();
//! assert_eq!(lines.next().transpose()?.as_deref(), Some("HELLO"));
//! assert_eq!(lines.next().transpose()?.as_deref(), Some("WORLD"));
//!
//! handle.shutdown();
//! serving.join().expect("serving thread")?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Which to choose
//!
//! | | stream server | message server |
//! |---|---|---|
//! | the handler | reads and writes the connection itself, blocking | is called with a whole message, writes into a buffer |
//! | an idle or slow connection costs | a thread (or a process) | a few hundred bytes, no thread |
//! | slowloris (many slow peers) | starves `Single`, `Pool` and `Process` | costs the server next to nothing |
//! | fits | long exchanges the handler drives: file transfer, a handshake then a stream, remote shells | request/response and push protocols with a clear message boundary: key-value stores, HTTP heads, chat, RPC |
//! | modes | all five | [`Single`](crate::Single) (handlers on the loop, or on [several loops](#several-event-loops)), [`Pool`](crate::Pool) (handlers on workers), [`Prefork`](crate::Prefork) (loops in every worker process) |
//!
//! In [`Single`](crate::Single) mode the handler runs on the loop: no thread hop, the fastest for
//! handlers that do not block (an in-memory store). In [`Pool`](crate::Pool) it runs on a worker, so it
//! may block (on a database, a file) without stalling other connections. Either way a
//! connection's messages are handled one at a time and in order, pipelined ones included, and the
//! replies of one wake-up go out in one write. [`Prefork`](crate::Prefork) runs a loop in every
//! worker process, as nginx does. [`Threading`](crate::Threading) and [`Process`](crate::Process)
//! are refused: they give every connection its own thread or process.
//!
//! ## Several event loops
//!
//! [`MessageBuilder::loops`](crate::message::MessageBuilder::loops) runs several loops in one
//! process, each on a thread of its own (`loops(0)`: one per CPU), with the handlers on the
//! loops. The accepting thread hands each new connection to the loop with the fewest open, and
//! there it stays: its messages are handled on that loop, in order, and its [`Sender`]s reach it
//! there; a [`ConnectionId`] names the loop too, so ids stay unique across the server. Pushes,
//! the limits below, the PROXY protocol, TLS and the graceful stop work as with one loop; the
//! memory budget is split evenly between the loops.
//!
//! A handler that takes long stalls its own loop only. The other loops serve their connections
//! on; the connections of the stalled loop wait — nothing of theirs is read, answered or timed
//! out, and pushes to them stay queued, until the handler returns. A loop that has been in one
//! handler for over 100 ms is given no new connection (unless every loop is). So choose:
//!
//! * **loops** when handlers never block (an in-memory store, a protocol translation): no thread
//!   hop per message, and every core at work;
//! * **a [`Pool`](crate::Pool)** when a handler may block (a database, a file, a lock held long):
//!   a blocked handler holds a worker thread, and no other connection waits for it. Loops and a
//!   pool together are not supported yet.
//!
//! ## Limits
//!
//! * A message longer than the framer's [`limit`](Framer::limit) closes the connection as soon
//!   as that many bytes are buffered (or as soon as a length field announces it).
//! * [`message_timeout`](crate::message::MessageBuilder::message_timeout) (30 s by default) bounds the time from a
//!   message's first byte to its last; [`idle_timeout`](crate::Builder::idle_timeout) and
//!   [`max_connection_lifetime`](crate::Builder::max_connection_lifetime) apply as they do to
//!   stream servers. The loop enforces them with one timer heap, not a thread per connection.
//! * Replies wait in a per-connection buffer. Past
//!   [`max_pending_output`](crate::message::MessageBuilder::max_pending_output) (1 MiB by default) the server
//!   reads no more messages from that connection until its peer reads (back-pressure, in every
//!   mode: replies made on a pool's workers count as soon as they are back), and bytes pushed by
//!   a [`Sender`] close it ([`Closed::SlowReader`]).
//! * In [`Pool`](crate::Pool) mode, while a connection's messages are on a worker (or wait for
//!   room in the workers' queue, two jobs per worker) it is read only as far as its next batch
//!   needs (256 KiB): the rest stays in the socket, and its peer must wait.
//! * [`max_buffered_memory`](crate::message::MessageBuilder::max_buffered_memory) bounds what all connections
//!   hold together in their buffers ([`DEFAULT_MAX_BUFFERED_MEMORY`], 256 MiB): past it the
//!   connections holding the most are closed ([`Closed::OverBudget`]), so a thousand peers each
//!   sending the first megabyte of a huge message cannot take the server's memory.
//!
//! ## Pushing
//!
//! [`Reply::sender`] gives a [`Sender`]: cloneable, usable from any thread, it queues bytes to the
//! connection (a chat room's broadcast). Keep it in shared state from
//! [`MessageHandler::opened`] and drop it in [`MessageHandler::closed`], as the chat room in
//! [`MessageHandler`]'s documentation does. This is also the way to broadcast for a program
//! whose stream handlers would otherwise have to share their connections' writing halves.
//!
//! ## TLS
//!
//! With [`Builder::tls`] (feature `tls`) the loop also drives every
//! connection's TLS session without waiting: a connection in its handshake holds no thread, only
//! a few KiB, and reaches no handler until the handshake is done. Then
//! [`MessageHandler::opened`] runs, and [`Reply::tls`] tells the protocol, the server name and
//! application protocol the client asked for, and its verified certificate (mutual TLS).
//! Handlers read and write plaintext messages, and the limits above count plaintext bytes. A
//! handshake that fails or is not done within
//! [`TlsConfig::handshake_timeout`] of accept closes
//! the connection, is reported to `handle_error` and is counted in
//! [`Stats::tls_handshake_failures`](crate::Stats::tls_handshake_failures). A connection the
//! server closes is sent a `close_notify`.
//!
//! ## Stopping
//!
//! A graceful stop closes each connection once what its peer has sent is answered, within the
//! grace period; an idle one closes at once. The rules (messages in flight, new connections,
//! lingering closes) are in [Stopping gracefully](crate#stopping-gracefully).
//!
// TLS is another feature: without it its links lead to the crate's feature list.
#![cfg_attr(
    feature = "tls",
    doc = "[`Builder::tls`]: crate::Builder::tls\n\
           [`Reply::tls`]: Reply::tls\n\
           [`TlsConfig::handshake_timeout`]: crate::tls::TlsConfig::handshake_timeout"
)]
#![cfg_attr(
    not(feature = "tls"),
    doc = "[`Builder::tls`]: crate#features\n[`Reply::tls`]: crate#features\n\
           [`TlsConfig::handshake_timeout`]: crate#features"
)]

pub(crate) mod budget;
mod connection;
pub(crate) mod event_loop;
pub(crate) mod framer;
pub(crate) mod handler;
mod job_queue;
mod linger;
pub(crate) mod output;
mod reply;
pub(crate) mod sender;
mod slots;
pub(crate) mod spread;
pub(crate) mod timers;
#[cfg(feature = "tls")]
mod tls;
mod workers;

pub use budget::DEFAULT_MAX_BUFFERED_MEMORY;
pub use framer::{Frame, Framer, LengthPrefixed, Lines};
pub use handler::{message_handler, Closed, MessageHandler};
pub use output::SharedBytes;
pub use reply::Reply;
pub use sender::{ConnectionId, Sender};
// The message server itself is built in `server/` on top of a stream server; the folder
// `message/` holds the loop's parts, which import nothing from `server/`.
pub use crate::server::message::{MessageBuilder, MessageServer};
pub use output::DEFAULT_MAX_PENDING_OUTPUT;
pub use timers::DEFAULT_MESSAGE_TIMEOUT;
