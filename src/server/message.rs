//! [`MessageBuilder`] and [`MessageServer`]: a message server's lifecycle, on top of a stream
//! server whose only handler hands each accepted connection to the event loop.
//!
//! Accepting stays with [`Server`]: binding, socket activation, `verify_request`, the PROXY
//! protocol header, signals, systemd readiness and the prefork supervisor all work as they do for
//! stream servers. Its handler ([`Acceptor`]) returns at once, leaving a duplicate of the socket
//! with the loop, so the accepting thread never waits on a peer. With TLS the loop does the
//! handshakes, not the accepting server.

use std::io;
use std::net::{TcpListener, ToSocketAddrs};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::transport::{Tcp, Transport, UnixStream};
use super::{Builder, Server, ServerHandle};
use crate::address::Address;
use crate::handler::{Connection, RequestHandler, StreamRequest};
use crate::message::budget::DEFAULT_MAX_BUFFERED_MEMORY;
use crate::message::event_loop::{EventLoop, Parts, Settings};
use crate::message::framer::Framer;
use crate::message::handler::MessageHandler;
use crate::message::output::DEFAULT_MAX_PENDING_OUTPUT;
use crate::message::sender::Command;
use crate::message::spread::Spread;
use crate::message::timers::DEFAULT_MESSAGE_TIMEOUT;
use crate::mode::sealed::ModeImpl;
use crate::mode::{AnyMode, Mode, Prefork, Single, ThreadSettings, WorkerMode};
use crate::stats::Stats;
use crate::systemd::Select;

/// The message server's own settings, kept on the [`MessageBuilder`].
#[derive(Debug, Clone)]
struct MessageOptions {
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_pending_output: usize,
    pub(crate) max_buffered: usize,
    /// How many event loops; 0: one per CPU.
    pub(crate) loops: usize,
}

impl Default for MessageOptions {
    fn default() -> Self {
        MessageOptions {
            timeout: Some(DEFAULT_MESSAGE_TIMEOUT),
            max_pending_output: DEFAULT_MAX_PENDING_OUTPUT,
            max_buffered: DEFAULT_MAX_BUFFERED_MEMORY,
            loops: 1,
        }
    }
}

/// A [`Builder`] turned towards a message server by [`Builder::messages`]: choose where it
/// listens with one of the `bind_*`, `systemd_*` or `from_*` methods.
#[must_use = "a MessageBuilder does nothing until one of its `bind_*` or `from_*` methods is called"]
pub struct MessageBuilder<F, H> {
    builder: Builder<AnyMode>,
    framer: F,
    handler: H,
    options: MessageOptions,
}

impl<M: Mode + Into<AnyMode>> Builder<M> {
    /// Turns this builder towards a message server (feature `message`): `framer` cuts each
    /// connection's bytes into messages, and a clone of `handler` answers each connection's
    /// messages (see [`crate::message`]). The mode must be [`Single`](crate::Single),
    /// [`Pool`](crate::Pool) or [`Prefork`](crate::Prefork) (checked when binding). The server's
    /// other options (timeouts, the PROXY protocol, signals, …) are set on the `Builder` before
    /// this call; the mode and the message server's own options can also be set after it, on the
    /// [`MessageBuilder`].
    pub fn messages<F: Framer, H: MessageHandler>(
        self,
        framer: F,
        handler: H,
    ) -> MessageBuilder<F, H> {
        MessageBuilder {
            builder: self.map_mode(Into::into),
            framer,
            handler,
            options: MessageOptions::default(),
        }
    }
}

impl<F: Framer, H: MessageHandler> MessageBuilder<F, H> {
    /// Chooses the concurrency mode, as [`Builder::mode`] does before
    /// [`messages`](Builder::messages): [`Single`](crate::Single), [`Pool`](crate::Pool) or
    /// [`Prefork`](crate::Prefork).
    pub fn mode(self, mode: impl Into<AnyMode>) -> Self {
        MessageBuilder {
            builder: self.builder.mode(mode.into()),
            ..self
        }
    }

    /// How many event loops serve the connections, each on a thread of its own: 1 by default,
    /// 0 for one per CPU ([`std::thread::available_parallelism`]). The accepting thread hands
    /// each new connection to the loop with the fewest open, and there it stays: its handler
    /// runs on that loop, and its [`Sender`](crate::message::Sender)s reach it there. With
    /// [`Prefork`] every worker process runs this many loops.
    ///
    /// Several loops put several cores to work on handlers that do not block. A handler that
    /// takes long stalls its own loop only: the other loops' connections are served on, while
    /// the connections of the stalled loop wait — nothing of theirs is read, answered or timed
    /// out until the handler returns, and pushes to them wait in its queue. A loop that has
    /// been in one handler for over 100 ms is given no new connection (unless every loop is),
    /// so newcomers are not stuck behind it. For handlers that may block (on a database, a
    /// file), run them on a [`Pool`](crate::Pool) instead, where a blocked handler holds a
    /// worker, not a loop; several loops with a pool are not supported yet.
    ///
    /// [`max_buffered_memory`](Self::max_buffered_memory) is split evenly between the loops.
    ///
    /// Binding refuses (`InvalidInput`) a count other than 1 with a [`Pool`](crate::Pool), or
    /// with a [`Prefork`] whose workers run a pool.
    pub fn loops(mut self, loops: usize) -> Self {
        self.options.loops = loops;
        self
    }

    /// Serves the metrics and status page on an admin listener at `addr` (feature `metrics`), as
    /// [`Builder::metrics_addr`] does.
    #[cfg(feature = "metrics")]
    pub fn metrics_addr(self, addr: impl ToSocketAddrs) -> Self {
        MessageBuilder {
            builder: self.builder.metrics_addr(addr),
            ..self
        }
    }

    /// [`metrics_addr`](Self::metrics_addr) on a Unix stream socket, as
    /// [`Builder::metrics_unix`] does.
    #[cfg(feature = "metrics")]
    pub fn metrics_unix(self, path: impl AsRef<Path>) -> Self {
        MessageBuilder {
            builder: self.builder.metrics_unix(path),
            ..self
        }
    }

    /// The longest a message may take to arrive, from its first byte to its last
    /// ([`DEFAULT_MESSAGE_TIMEOUT`], 30 s, by default). A connection over it is closed
    /// ([`Closed::MessageTimeout`](crate::message::Closed::MessageTimeout)) without its handler
    /// seeing the message: the cure for peers trickling requests a byte at a time.
    pub fn message_timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// No limit on how long a message may take to arrive.
    pub fn no_message_timeout(mut self) -> Self {
        self.options.timeout = None;
        self
    }

    /// How many unsent bytes a connection may hold ([`DEFAULT_MAX_PENDING_OUTPUT`], 1 MiB, by
    /// default). Past it, the server reads no more messages from the connection until its peer
    /// has read, and a push closes it
    /// ([`Closed::SlowReader`](crate::message::Closed::SlowReader)).
    pub fn max_pending_output(mut self, bytes: usize) -> Self {
        self.options.max_pending_output = bytes.max(1);
        self
    }

    /// The most memory all connections together may hold in their buffers — input not yet
    /// handled, output not yet sent, messages on their way to a worker
    /// ([`DEFAULT_MAX_BUFFERED_MEMORY`], 256 MiB, by default; per process, so per
    /// [`Prefork`](crate::Prefork) worker). Past it, the connections holding the most are closed
    /// ([`Closed::OverBudget`](crate::message::Closed::OverBudget)) until they hold under seven
    /// eighths of it, and a warning is logged (at most once a second). Buffers shared with the
    /// application ([`Reply::write_shared`](crate::message::Reply::write_shared)) are not
    /// counted. With several [`loops`](Self::loops) it is split evenly between them, each loop
    /// closing its own connections past its share. Keep the budget (each loop's share) well
    /// above the framer's [`limit`](Framer::limit), or a single large message can be cut off.
    pub fn max_buffered_memory(mut self, bytes: usize) -> Self {
        self.options.max_buffered = bytes.max(1);
        self
    }

    /// Binds a TCP message server to the first address of `addr` that works and starts listening.
    ///
    /// # Errors
    ///
    /// Those of [`Builder::bind_tcp`], and `InvalidInput` for a mode a message server cannot run
    /// in ([`Threading`](crate::Threading), [`Process`](crate::Process), or a
    /// [`Prefork`] whose workers use threads per connection) or [`loops`](Self::loops) other
    /// than 1 with a pool.
    pub fn bind_tcp(self, addr: impl ToSocketAddrs) -> io::Result<MessageServer<Tcp, H, F>> {
        self.build(|b, a| b.bind_tcp(addr, a))
    }

    /// Binds a Unix stream message server to `path` (a stale socket file is replaced).
    ///
    /// # Errors
    ///
    /// As for [`Builder::bind_unix_stream`], and the mode errors of [`bind_tcp`](Self::bind_tcp).
    pub fn bind_unix_stream(
        self,
        path: impl AsRef<Path>,
    ) -> io::Result<MessageServer<UnixStream, H, F>> {
        self.build(|b, a| b.bind_unix_stream(path, a))
    }

    /// Serves a listening TCP socket passed by systemd socket activation.
    ///
    /// # Errors
    ///
    /// As for [`Builder::systemd_tcp`], and the mode errors of [`bind_tcp`](Self::bind_tcp).
    pub fn systemd_tcp(self, socket: impl Into<Select>) -> io::Result<MessageServer<Tcp, H, F>> {
        self.build(|b, a| b.systemd_tcp(socket, a))
    }

    /// Serves a listening Unix stream socket passed by systemd socket activation.
    ///
    /// # Errors
    ///
    /// As for [`Builder::systemd_unix_stream`], and the mode errors of
    /// [`bind_tcp`](Self::bind_tcp).
    pub fn systemd_unix_stream(
        self,
        socket: impl Into<Select>,
    ) -> io::Result<MessageServer<UnixStream, H, F>> {
        self.build(|b, a| b.systemd_unix_stream(socket, a))
    }

    /// Serves an already bound and listening TCP socket.
    ///
    /// # Errors
    ///
    /// As for [`Builder::from_tcp_listener`], and the mode errors of [`bind_tcp`](Self::bind_tcp).
    pub fn from_tcp_listener(self, listener: TcpListener) -> io::Result<MessageServer<Tcp, H, F>> {
        self.build(|b, a| b.from_tcp_listener(listener, a))
    }

    /// Serves an already bound and listening Unix stream socket.
    ///
    /// # Errors
    ///
    /// As for [`Builder::from_unix_listener`], and the mode errors of
    /// [`bind_tcp`](Self::bind_tcp).
    pub fn from_unix_listener(
        self,
        listener: UnixListener,
    ) -> io::Result<MessageServer<UnixStream, H, F>> {
        self.build(|b, a| b.from_unix_listener(listener, a))
    }

    fn build<T: Transport<Request = StreamRequest>>(
        self,
        bind: impl FnOnce(Builder<AnyMode>, Acceptor) -> io::Result<Server<T, Acceptor, AnyMode>>,
    ) -> io::Result<MessageServer<T, H, F>> {
        let MessageBuilder {
            builder,
            framer,
            handler,
            options,
        } = self;
        let mut chosen = None;
        #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
        let mut builder = builder.map_mode(|mode| {
            chosen = Some(mode);
            Single
        });
        let (accepting, workers) = plan(chosen.unwrap_or_default())?;
        let loops = loop_count(options.loops, workers)?;
        #[cfg(feature = "tls")]
        let tls = builder.tls_for_message_loop();
        let connection = builder.connection_options();
        let settings = Settings {
            idle: connection.idle_timeout,
            message: options.timeout,
            lifetime: connection.max_lifetime,
            max_pending_output: options.max_pending_output,
            // Each loop keeps its own account.
            max_buffered: (options.max_buffered / loops).max(1),
            first_wait: crate::control::FIRST_REQUEST_WAIT,
            workers,
            #[cfg(feature = "tls")]
            tls,
        };
        let threads = builder.thread_settings().clone();
        let parts = (0..loops)
            .map(|n| Parts::new(u32::try_from(n).unwrap_or(u32::MAX)))
            .collect::<io::Result<Vec<Parts>>>()?;
        let links = parts.iter().map(|p| Arc::clone(&p.link)).collect();
        let spread = Arc::new(Spread::new(links));
        let acceptor = Acceptor {
            spread: Arc::clone(&spread),
        };
        let inner = bind(builder.mode(accepting), acceptor)?;
        Ok(MessageServer {
            inner,
            start: Some(Start {
                parts,
                spread,
                handler,
                framer,
                settings,
                threads,
            }),
        })
    }
}

impl<F, H> std::fmt::Debug for MessageBuilder<F, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageBuilder")
            .field("builder", &self.builder)
            .finish_non_exhaustive()
    }
}

/// Where handlers run for `mode`: the mode the accepting server runs in, and how many worker
/// threads the loop starts (0: handlers run on the loop).
fn plan(mode: AnyMode) -> io::Result<(AnyMode, usize)> {
    let refuse = |name: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a message server runs handlers on its event loop (Single), on a Pool, or in \
                 Prefork workers doing either; {name} gives every connection its own thread or \
                 process, which is what a message server exists to avoid"
            ),
        ))
    };
    match mode {
        AnyMode::Single(_) => Ok((AnyMode::Single(Single), 0)),
        AnyMode::Pool(pool) => Ok((AnyMode::Single(Single), pool.workers())),
        AnyMode::Prefork(prefork) => {
            let workers = match prefork.inner_mode() {
                WorkerMode::Single(_) => 0,
                WorkerMode::Pool(pool) => pool.workers(),
                WorkerMode::Threading(_) => return refuse("Prefork with Threading workers"),
            };
            let prefork: Prefork = prefork.worker_mode(Single);
            Ok((AnyMode::Prefork(prefork), workers))
        }
        AnyMode::Threading(_) => refuse("Threading"),
        AnyMode::Process(_) => refuse("Process"),
    }
}

/// How many event loops to start for `asked` ([`MessageBuilder::loops`]) with `workers` pool
/// threads.
fn loop_count(asked: usize, workers: usize) -> io::Result<usize> {
    if asked != 1 && workers > 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a message server runs its handlers on a pool or on several event loops, not \
                 both yet: loops({asked}) needs Single mode (or Prefork with Single workers); \
                 with a Pool, leave loops at 1"
            ),
        ));
    }
    let loops = match asked {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        n => n,
    };
    if u32::try_from(loops).is_err() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("loops({loops}): too many event loops"),
        ));
    }
    Ok(loops)
}

/// The accepting server's handler: hands the connection to a loop and returns.
#[derive(Clone)]
pub(crate) struct Acceptor {
    spread: Arc<Spread>,
}

impl RequestHandler<StreamRequest> for Acceptor {
    fn handle(&mut self, request: &mut StreamRequest) -> io::Result<()> {
        // A duplicate descriptor: the request's own is closed when the request ends.
        let connection = match request.connection() {
            Connection::Tcp(s) => Connection::Tcp(s.try_clone()?),
            Connection::Unix(s) => Connection::Unix(s.try_clone()?),
        };
        let peer = request.peer_addr().clone();
        let Some((link, seat)) = self.spread.pick() else {
            return Ok(()); // no loop: cannot happen, a server has at least one
        };
        // Counted as active until the loop closes it (or, if the loop has ended because the
        // server is stopping, at once, as rejected).
        let ticket = request.hand_over();
        let opening = Command::Open(connection, peer, ticket, request.accepted_at(), seat);
        let _ = link.send(opening);
        Ok(())
    }
}

/// What starts the loops, kept until `serve_forever`.
struct Start<H, F> {
    parts: Vec<Parts>,
    /// The loops as the accepting thread reaches them.
    spread: Arc<Spread>,
    handler: H,
    framer: F,
    settings: Settings,
    threads: ThreadSettings,
}

/// A message server: an event loop (or [several](MessageBuilder::loops)) that waits on every
/// connection at once and calls a [`MessageHandler`] with each complete message (see
/// [`crate::message`]). Made by [`Builder::messages`].
///
/// The lifecycle is a stream server's: [`serve_forever`](Self::serve_forever) until
/// [`ServerHandle::shutdown`] (or SIGTERM with [`Builder::stop_on_signals`](crate#stopping-gracefully)), then
/// [`server_close`](Self::server_close).
pub struct MessageServer<T: Transport, H, F> {
    inner: Server<T, Acceptor, AnyMode>,
    start: Option<Start<H, F>>,
}

impl<T, H, F> MessageServer<T, H, F>
where
    T: Transport<Request = StreamRequest>,
    H: MessageHandler,
    F: Framer,
{
    /// Serves until the server is shut down: accepts on this thread, runs each event loop on a
    /// thread of its own (and the handlers on the loops, or on the pool's workers). A graceful
    /// stop answers what each connection has sent, within the grace period, on every loop, then
    /// returns (see [Stopping gracefully](crate#stopping-gracefully)).
    ///
    /// # Errors
    ///
    /// Those of [`Server::serve_forever`]; an error starting the loop or its workers; and
    /// `Unsupported` if called a second time.
    pub fn serve_forever(&mut self) -> io::Result<()> {
        let Some(start) = self.start.take() else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "serve_forever was already called on this message server",
            ));
        };
        if self.inner.mode().supervises() {
            // A prefork parent: its workers run the loops.
            return self.inner.serve_forever();
        }
        let Start {
            parts,
            spread,
            handler,
            framer,
            settings,
            threads,
        } = start;
        let count = parts.len();
        self.inner.serve_as(match (count, settings.workers) {
            (1, 0) => "message server, handlers on the event loop".to_string(),
            (1, n) => format!("message server, handlers on {n} pool workers"),
            (n, _) => format!("message server, {n} event loops"),
        });
        let server = self.inner.handle();
        let mut looping = Vec::with_capacity(count);
        let mut started = Ok(());
        for (n, parts) in parts.into_iter().enumerate() {
            let name = match count {
                1 => "message-loop".to_string(),
                _ => format!("message-loop-{n}"),
            };
            let event_loop = EventLoop::new(
                parts,
                handler.clone(),
                framer.clone(),
                settings.clone(),
                server.clone(),
                &threads,
            );
            match event_loop.and_then(|l| start_loop(l, &name, &server, &threads)) {
                Ok(handle) => looping.push(handle),
                Err(e) => {
                    started = Err(e);
                    break;
                }
            }
        }
        // A loop that cannot start stops those already started, before anything is accepted.
        let served = started.and_then(|()| self.inner.serve_forever());
        // However accepting ended, the loops must stop too.
        self.inner.handle().shutdown();
        for link in spread.links() {
            link.send(Command::AcceptingEnded);
        }
        // Each loop catches its own panics: joining cannot fail.
        for handle in looping {
            let _ = handle.join();
        }
        served
    }

    /// Closes the listening socket (and, in a prefork parent, stops the workers).
    ///
    /// # Errors
    ///
    /// As for [`Server::server_close`].
    pub fn server_close(self) -> io::Result<()> {
        self.inner.server_close()
    }

    /// The address the server is bound to.
    #[must_use]
    pub fn local_addr(&self) -> &Address {
        self.inner.local_addr()
    }

    /// A handle to shut the server down from any thread.
    #[must_use]
    pub fn handle(&self) -> ServerHandle {
        self.inner.handle()
    }

    /// Asks the server to stop (as [`ServerHandle::shutdown`]).
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }

    /// The server's counters: a request is a connection, active while it is open, and
    /// [`messages`](Stats::messages) and [`message_failures`](Stats::message_failures) count what
    /// the handlers did (see [`Stats`]).
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }
}

/// Runs `event_loop` on a thread named `name`.
fn start_loop<H: MessageHandler, F: Framer>(
    event_loop: EventLoop<H, F>,
    name: &str,
    server: &ServerHandle,
    threads: &ThreadSettings,
) -> io::Result<JoinHandle<()>> {
    let shared = Arc::clone(&server.shared);
    let named = name.to_string();
    threads
        .spawn(name, move || {
            // A bug in a loop must stop the server, not leave it accepting for nobody.
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| event_loop.run()));
            if ran.is_err() {
                log::error!("the message loop ({named}) panicked; stopping the server");
                shared.abort_with(io::ErrorKind::Other, "the message loop panicked");
            }
        })
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start the message loop: {e}")))
}

impl<T: Transport, H, F> std::fmt::Debug for MessageServer<T, H, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let start = self.start.as_ref();
        f.debug_struct("MessageServer")
            .field("local_addr", self.inner.local_addr())
            .field("loops", &start.map(|s| s.parts.len()))
            .field("workers", &start.map(|s| s.settings.workers))
            .finish_non_exhaustive()
    }
}
