//! The event loop of a message server: waits on every connection at once with the OS's readiness
//! API (epoll, through `mio`), reads what arrives into each connection's buffer, runs the handler
//! when a whole message is there (inline, or on a worker), writes the replies, and enforces the
//! time limits with one timer heap. With TLS it also drives each connection's handshake, which
//! must be done before any handler runs for it.

mod dispatch;
mod limits;

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::budget::{self, Budget};
use super::connection::{Conn, Read1, Stream};
use super::framer::Framer;
use super::handler::{Closed, MessageHandler};
use super::linger::Lingering;
use super::reply::ConnectionInfo;
use super::sender::{Command, ConnectionId, Link};
use super::slots::Slots;
use super::spread::Seat;
use super::timers::Timers;
#[cfg(feature = "tls")]
use super::tls::Session;
use super::workers::{run_step, Batch, Done, Job, Workers};
use crate::address::Address;
use crate::control::ServerHandle;
use crate::control::Ticket;
use crate::failure::Failure;
use crate::handler::Connection;
use crate::mode::ThreadSettings;
use crate::stats::{Ending, Limit};
use crate::throttle::Throttle;

const WAKER: Token = Token(0);
const STOP: Token = Token(1);
const ABORT: Token = Token(2);
/// Connection slot `n` has token `n + FIRST_CONNECTION`.
const FIRST_CONNECTION: usize = 3;
/// Lingering sockets have tokens from here on; connection slots stay below.
const FIRST_LINGERING: usize = 1 << 30;

/// What one read takes from a socket at most; also the loop's one read buffer.
const READ_CHUNK: usize = 64 * 1024;
/// Reads of one connection per wake-up before the loop serves the others (it comes back to it).
const READS_PER_TURN: usize = 16;
/// What one job hands a worker at most: pipelined messages go in batches of this size.
const BATCH_MESSAGES: usize = 256;
const BATCH_BYTES: usize = 256 * 1024;
/// Emptied batches the loop keeps for reuse, and the largest it keeps.
const SPARE_BATCHES: usize = 64;
const SPARE_BATCH_BYTES: usize = 16 * 1024;
/// How long a connection closing with unsent output (the handler closed it, the server stops)
/// waits for the peer to read it.
const LINGER: Duration = Duration::from_secs(5);
/// How long a stop waits for connections when the server has no grace period.
const DRAIN_WITHOUT_GRACE: Duration = Duration::from_secs(30);

/// The limits the loop enforces.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) idle: Option<Duration>,
    pub(crate) message: Option<Duration>,
    pub(crate) lifetime: Option<Duration>,
    pub(crate) max_pending_output: usize,
    /// What all the loop's connections together may hold in their buffers (its share of the
    /// server's budget).
    pub(crate) max_buffered: usize,
    /// During a stop, how long after opening a connection that has sent nothing yet may take to
    /// send its first message.
    pub(crate) first_wait: Duration,
    /// Worker threads for the handlers; 0: run them on the loop.
    pub(crate) workers: usize,
    /// TLS: every connection does its handshake on the loop.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::Tls>,
}

/// What the loop needs that is made before its thread starts (the poller, so that the accepting
/// thread can wake it from the start), and which of the server's loops it is.
pub(crate) struct Parts {
    poll: Poll,
    pub(crate) link: Arc<Link>,
    commands: Receiver<Command>,
    event_loop: u32,
}

impl Parts {
    pub(crate) fn new(event_loop: u32) -> io::Result<Parts> {
        let poll = Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER)?;
        let (link, commands) = Link::new(waker);
        Ok(Parts {
            poll,
            link,
            commands,
            event_loop,
        })
    }

    #[cfg(test)]
    pub(crate) fn poll_registry(&self) -> &mio::Registry {
        self.poll.registry()
    }
}

/// What one readiness event says of a connection.
#[derive(Debug, Clone, Copy)]
struct Ready {
    slot: usize,
    writable: bool,
    read_closed: bool,
}

pub(crate) struct EventLoop<H, F> {
    poll: Poll,
    events: Events,
    link: Arc<Link>,
    commands: Receiver<Command>,
    workers: Option<Workers<H>>,
    /// The workers' results of one turn (kept to reuse its allocation)...
    done: Vec<Done<H>>,
    /// ...and emptied batches, to fill again without allocating.
    spare_batches: Vec<Batch>,
    slots: Slots<H, F>,
    timers: Timers,
    scratch: Vec<u8>,
    handler: H,
    framer: F,
    settings: Settings,
    server: ServerHandle,
    /// Connections with bytes still unread after their turn, to serve again without an event.
    again: Vec<ConnectionId>,
    /// The connections of one wake-up's events (kept to reuse its allocation).
    ready: Vec<Ready>,
    /// Once a stop began: when the loop gives up on the connections still open.
    drain_until: Option<Instant>,
    /// Sockets closed by the server, dropping what their peers still send.
    lingering: Lingering,
    /// Until the accepting thread says it has stopped: connections from the listen backlog may
    /// still come during a stop.
    accepting: bool,
    /// What the connections' buffers hold, against `settings.max_buffered`.
    budget: Budget,
    /// Connections with messages for the workers, waiting for room in their queue (in order).
    waitlist: VecDeque<ConnectionId>,
    /// Connections closed for the budget: in all, and since the last log line.
    shed: u64,
    shed_log: Throttle,
}

impl<H: MessageHandler, F: Framer> EventLoop<H, F> {
    pub(crate) fn new(
        parts: Parts,
        handler: H,
        framer: F,
        settings: Settings,
        server: ServerHandle,
        threads: &ThreadSettings,
    ) -> io::Result<Self> {
        let Parts {
            poll,
            link,
            commands,
            event_loop,
        } = parts;
        let registry = poll.registry();
        let stop: RawFd = server.shared.stop.pipe_fd();
        let abort: RawFd = server.shared.abort.pipe_fd();
        registry.register(&mut SourceFd(&stop), STOP, Interest::READABLE)?;
        registry.register(&mut SourceFd(&abort), ABORT, Interest::READABLE)?;
        let workers = match settings.workers {
            0 => None,
            n => Some(Workers::start(n, threads, &link)?),
        };
        Ok(EventLoop {
            poll,
            events: Events::with_capacity(1024),
            link,
            commands,
            workers,
            done: Vec::new(),
            spare_batches: Vec::new(),
            slots: Slots::new(FIRST_LINGERING - FIRST_CONNECTION, event_loop),
            timers: Timers::default(),
            scratch: vec![0; READ_CHUNK],
            handler,
            framer,
            server,
            again: Vec::new(),
            ready: Vec::new(),
            drain_until: None,
            lingering: Lingering::new(FIRST_LINGERING),
            accepting: true,
            budget: Budget::new(settings.max_buffered),
            waitlist: VecDeque::new(),
            shed: 0,
            shed_log: Throttle::new(Duration::from_secs(1)),
            settings,
        })
    }

    /// Serves until the server stops and its connections are done (or the drain time is over).
    pub(crate) fn run(mut self) {
        loop {
            let now = Instant::now();
            let mut wait = self.timers.next_wait(now);
            if let Some(linger) = self.lingering.next_wait(now) {
                wait = Some(wait.map_or(linger, |w| w.min(linger)));
            }
            if let Some(until) = self.drain_until {
                let left = until.saturating_duration_since(now);
                wait = Some(wait.map_or(left, |w| w.min(left)));
            }
            if let Some(trim) = self.budget.trim_wait(now) {
                wait = Some(wait.map_or(trim, |w| w.min(trim)));
            }
            if let Some(again) = self.workers.as_ref().and_then(|w| w.kick(now)) {
                wait = Some(wait.map_or(again, |w| w.min(again)));
            }
            self.link.going_to_sleep();
            let queued =
                self.link.has_commands() || self.workers.as_ref().is_some_and(Workers::has_done);
            if !self.again.is_empty() || queued {
                wait = Some(Duration::ZERO);
            }
            self.link.turn_ends();
            let polled = self.poll.poll(&mut self.events, wait);
            self.link.awake();
            self.link.turn_begins();
            if let Err(e) = polled {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("message loop: waiting for readiness failed: {e}; stopping");
                    self.server
                        .shared
                        .abort(format!("the message loop failed: {e}"));
                    break;
                }
            }
            let mut ready = std::mem::take(&mut self.ready);
            ready.clear();
            let mut stop = false;
            let mut abort = false;
            for event in &self.events {
                match event.token() {
                    WAKER => {}
                    STOP => stop = true,
                    ABORT => abort = true,
                    token if self.lingering.owns(token) => {
                        self.lingering
                            .ready(token, self.poll.registry(), &mut self.scratch);
                    }
                    Token(t) => ready.push(Ready {
                        slot: t - FIRST_CONNECTION,
                        writable: event.is_writable(),
                        read_closed: event.is_read_closed(),
                    }),
                }
            }
            if abort || self.server.shared.abort.is_requested() {
                break;
            }
            for &event in &ready {
                if let Some(id) = self.slots.id_of(event.slot) {
                    self.on_ready(id, event);
                }
                // After each connection's turn (at most a megabyte read), not once per wake-up:
                // a thousand connections reading in one wake-up would overshoot by a gigabyte.
                if self.budget.is_over() {
                    self.shed();
                }
            }
            self.ready = ready;
            self.link.rearm();
            self.take_results();
            self.take_commands();
            for id in std::mem::take(&mut self.again) {
                self.service(id);
            }
            let now = Instant::now();
            self.expire(now);
            self.lingering.expire(now, self.poll.registry());
            if self.budget.is_over() {
                self.shed();
            }
            if self.budget.trim_due(now) {
                budget::release_freed_memory();
            }
            if (stop || self.server.shared.stop.is_requested()) && self.drain_until.is_none() {
                self.begin_drain();
            }
            if let Some(until) = self.drain_until {
                let done = self.slots.open() == 0 && !self.accepting && self.lingering.len() == 0;
                if done || Instant::now() >= until {
                    break;
                }
            }
        }
        self.close_all();
    }

    fn conn(&mut self, id: ConnectionId) -> Option<&mut Conn<H, F>> {
        self.slots.get_mut(id)
    }

    fn token(id: ConnectionId) -> Token {
        Token(id.slot as usize + FIRST_CONNECTION)
    }

    fn on_ready(&mut self, id: ConnectionId, event: Ready) {
        let registry = self.poll.registry();
        let Some(conn) = self.slots.get_mut(id) else {
            return;
        };
        // Readiness is edge-triggered: any event may mean bytes to read (or the peer gone).
        conn.unread = true;
        // The peer's end of stream is here, perhaps behind data: it must be read, and no later
        // event will say so.
        conn.peer_closing |= event.read_closed;
        if event.writable {
            if let Err(e) = conn.flush(registry, Self::token(id)) {
                self.fail(id, e);
                return;
            }
        }
        self.service(id);
    }

    /// Moves a connection on as far as it can go without waiting: handles the complete messages
    /// buffered, reads more, writes the replies, closes it when it is done.
    fn service(&mut self, id: ConnectionId) {
        let mut reads = 0;
        loop {
            let max_pending = self.settings.max_pending_output;
            let Some(conn) = self.conn(id) else { return };
            let paused = conn.pending() > max_pending;
            let ready = conn.opened && !conn.busy() && conn.closing.is_none();
            if ready && !conn.input.is_empty() {
                if paused {
                    // Behind an answer over the limit (a worker's, or pushed): handled once it
                    // is sent, even if the socket takes it all at once and no event comes.
                    conn.held = true;
                } else if let Err(closed) = self.handle_buffered(id) {
                    self.close(id, closed);
                    return;
                }
            }
            let Some(conn) = self.conn(id) else { return };
            // While its messages wait for a worker, a connection is read only as far as the next
            // batch needs: the rest waits in the socket (and the peer's), not in our memory.
            let bound = match conn.busy() || conn.waiting {
                true => BATCH_BYTES,
                false => conn.framer.limit().saturating_add(READ_CHUNK),
            };
            let room = conn.input.len() < bound;
            let may_read = conn.unread
                && !conn.peer_done
                && conn.closing.is_none()
                && conn.pending() <= max_pending
                && room;
            if !may_read {
                break;
            }
            if reads == READS_PER_TURN {
                // Others wait: come back to this one after them.
                self.again.push(id);
                break;
            }
            reads += 1;
            let mut scratch = std::mem::take(&mut self.scratch);
            let Some(conn) = self.conn(id) else { return };
            let read = conn.read_once(&mut scratch);
            self.scratch = scratch;
            match read {
                Ok(Read1::Bytes | Read1::Drained | Read1::Eof) => {}
                Err(e) => {
                    self.fail(id, e);
                    return;
                }
            }
            #[cfg(feature = "tls")]
            self.after_handshake(id);
        }
        self.settle(id);
    }

    /// After a turn: writes the output, closes the connection if it is done, re-arms its timers.
    fn settle(&mut self, id: ConnectionId) {
        let registry = self.poll.registry();
        let Some(conn) = self.slots.get_mut(id) else {
            return;
        };
        if conn.pending() > 0 {
            if let Err(e) = conn.flush(registry, Self::token(id)) {
                self.fail(id, e);
                return;
            }
        }
        if conn.peer_done && !conn.opened {
            let e = io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the connection during the TLS handshake",
            );
            self.refuse(id, e);
            return;
        }
        let held = conn.held_bytes();
        self.budget.recharge(conn.charge, held);
        conn.charge = held;
        if conn.draining && conn.drained(Instant::now(), self.settings.first_wait) {
            conn.close_later(Closed::ServerStopped, LINGER);
        }
        if conn.held && conn.pending() <= self.settings.max_pending_output {
            // Its output went out at once: handle the messages it held back, on the next turn.
            conn.held = false;
            self.again.push(id);
        }
        let quiet = !conn.busy() && conn.pending() == 0;
        if quiet {
            if let Some(reason) = conn.closing.clone() {
                // Lingering costs a stop up to its time: only where a reset is likely.
                match !conn.peer_done && conn.reset_likely() {
                    true => self.finish_lingering(id, reason),
                    false => self.finish(id, reason),
                }
                return;
            }
            // The peer is gone and every message it sent is answered (a partial one is dropped).
            if conn.peer_done && (conn.input.is_empty() || conn.rest_is_partial) {
                self.finish(id, Closed::ByPeer);
                return;
            }
        }
        self.arm(id);
    }

    /// Takes a new connection: registers it, runs `opened` (with TLS, once the handshake is
    /// done), reads what it already sent.
    fn open(
        &mut self,
        connection: Connection,
        peer: Address,
        mut ticket: Ticket,
        accepted: Instant,
        seat: Seat,
    ) {
        let stream = match Stream::new(connection) {
            Ok(stream) => stream,
            Err(e) => {
                log::warn!("{peer}: cannot make the connection non-blocking: {e}; closed");
                ticket.end(Ending::Failed);
                return;
            }
        };
        let Some(id) = self.slots.reserve() else {
            log::error!("{peer}: too many connections for one message loop; closed");
            return;
        };
        let info = Arc::new(ConnectionInfo {
            id,
            peer,
            link: Arc::clone(&self.link),
            server: self.server.clone(),
            #[cfg(feature = "tls")]
            tls: Default::default(),
        });
        ticket.end(Ending::Completed);
        let handler = self.handler.clone();
        let framer = self.framer.clone();
        let mut conn = Conn::new(stream, info, handler, framer, ticket, seat, accepted);
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.settings.tls {
            match Session::new(tls, conn.opened_at) {
                Ok(session) => conn.tls = Some(Box::new(session)),
                Err(e) => {
                    self.server.shared.counters.tls_handshake_failed();
                    let peer = &conn.info.peer;
                    let e = io::Error::new(e.kind(), format!("TLS handshake with {peer}: {e}"));
                    self.server.shared.report(peer, &Failure::Error(e));
                    conn.ticket.end(Ending::Failed);
                    self.slots.unreserve(id);
                    return;
                }
            }
        }
        if let Err(e) = conn.stream.register(self.poll.registry(), Self::token(id)) {
            log::warn!(
                "{}: cannot watch the connection: {e}; closed",
                conn.info.peer
            );
            conn.ticket.end(Ending::Failed);
            self.slots.unreserve(id);
            return;
        }
        let handshake = conn.handshaking();
        self.slots.fill(id, conn);
        if !handshake {
            self.greet(id);
        }
        // Accepted during a stop (from the listen backlog): with a grace period its first message
        // is answered, then it closes.
        if self.drain_until.is_some() {
            self.wind_down(id);
        } else {
            self.service(id);
        }
    }

    /// Runs the handler's `opened`: as the connection is taken, or once its TLS handshake is
    /// done.
    fn greet(&mut self, id: ConnectionId) {
        let Some(conn) = self.slots.get_mut(id) else {
            return;
        };
        conn.opened = true;
        let mut close = false;
        let opened = match conn.handler.as_mut() {
            Some(h) => run_step(&mut conn.output, &mut close, &conn.info, |reply| {
                h.opened(reply)
            }),
            None => Ok(()),
        };
        if close {
            conn.close_later(Closed::ByHandler, LINGER);
        }
        if let Err(failure) = opened {
            self.server.shared.report(&conn.info.peer, &failure);
            conn.close_later(Closed::HandlerFailed, LINGER);
        }
    }

    /// After a read: a TLS handshake that has just finished opens the connection to its handler
    /// (a server's handshake ends with the client's last flight, so always on a read).
    #[cfg(feature = "tls")]
    fn after_handshake(&mut self, id: ConnectionId) {
        let Some(conn) = self.slots.get(id) else {
            return;
        };
        let Some(tls) = conn.tls.as_ref().filter(|_| !conn.opened) else {
            return;
        };
        if tls.handshaking() {
            return;
        }
        let info = tls.info();
        log::debug!(
            "{}: connection {id}: TLS handshake done ({}, {})",
            conn.info.peer,
            info.version(),
            info.cipher_suite()
        );
        let _ = conn.info.tls.set(info);
        self.greet(id);
    }

    /// Reading or writing `id` failed: during its TLS handshake, the handshake failed;
    /// otherwise the connection is closed for the error.
    fn fail(&mut self, id: ConnectionId, e: io::Error) {
        match self.conn(id) {
            Some(conn) if !conn.opened => self.refuse(id, e),
            Some(_) => self.close(id, Closed::Error(e.kind())),
            None => {}
        }
    }

    /// A TLS handshake failed or was too late: counted, reported to `handle_error`, and the
    /// connection closed without a handler hearing of it.
    fn refuse(&mut self, id: ConnectionId, e: io::Error) {
        let Some(conn) = self.slots.get(id) else {
            return;
        };
        let peer = &conn.info.peer;
        self.server.shared.counters.tls_handshake_failed();
        let error = io::Error::new(e.kind(), format!("TLS handshake with {peer}: {e}"));
        self.server.shared.report(peer, &Failure::Error(error));
        self.finish(id, Closed::Error(e.kind()));
    }

    /// The server is stopping: with a grace period, the connection closes once what it has sent
    /// is answered; without one, once its running handler is back and its replies are sent.
    fn wind_down(&mut self, id: ConnectionId) {
        let graceful = self.server.shared.grace.is_some();
        let Some(conn) = self.conn(id) else { return };
        if !conn.opened {
            // Still in its TLS handshake: it has sent no message to answer.
            self.finish(id, Closed::ServerStopped);
            return;
        }
        match graceful {
            true => conn.draining = true,
            false => conn.close_later(Closed::ServerStopped, LINGER),
        }
        self.service(id);
    }

    /// Closes `id` now, or as soon as its handler returns from a worker.
    fn close(&mut self, id: ConnectionId, reason: Closed) {
        let registry = self.poll.registry();
        let Some(conn) = self.slots.get_mut(id) else {
            return;
        };
        if conn.busy() {
            // Nothing more is read or written; the handler's results are dropped when they come.
            conn.stream.deregister(registry);
            conn.output.clear();
            conn.input = Vec::new();
            self.budget.recharge(conn.charge, conn.on_worker);
            conn.charge = conn.on_worker;
            conn.peer_done = true;
            conn.abandoned = true;
            conn.closing = Some(reason);
            conn.close_by = None;
            return;
        }
        self.finish(id, reason);
    }

    /// Removes a connection whose handler is home: tells the handler, closes the socket.
    fn finish(&mut self, id: ConnectionId, reason: Closed) {
        if let Some(stream) = self.remove(id, reason) {
            let mut stream = stream;
            stream.deregister(self.poll.registry());
        }
    }

    /// [`finish`](Self::finish) for a connection the server closes while its peer may still be
    /// sending: the socket lingers (see [`super::linger`]).
    fn finish_lingering(&mut self, id: ConnectionId, reason: Closed) {
        if let Some(stream) = self.remove(id, reason) {
            self.lingering
                .start(stream, self.poll.registry(), &mut self.scratch);
        }
    }

    /// Takes a connection whose handler is home out of its slot and tells the handler it closed
    /// (if it was opened); returns its socket, still registered, its TLS session ended.
    fn remove(&mut self, id: ConnectionId, reason: Closed) -> Option<Stream> {
        let mut conn = self.slots.take(id)?;
        // The connection is over for the server's counters when `conn` is dropped, below.
        conn.ticket.end(match reason {
            Closed::HandlerFailed | Closed::BadMessage | Closed::Error(_) => Ending::Failed,
            _ => Ending::Completed,
        });
        let limit = match reason {
            Closed::IdleTimeout => Some(Limit::Idle),
            Closed::Lifetime => Some(Limit::Lifetime),
            Closed::MessageTimeout => Some(Limit::MessageTimeout),
            Closed::SlowReader => Some(Limit::SlowReader),
            Closed::OverBudget => Some(Limit::OverBudget),
            _ => None,
        };
        if let Some(limit) = limit {
            self.server.shared.counters.closed_by(limit);
        }
        self.budget.recharge(conn.charge, 0);
        log::debug!("{}: connection {id} closed: {reason}", conn.info.peer);
        conn.goodbye();
        if let Some(mut handler) = conn.handler.take().filter(|_| conn.opened) {
            let peer = conn.info.peer.clone();
            let told = crate::panics::catch_handler_panic(|| handler.closed(id, &peer, &reason));
            if let Err(payload) = told {
                self.server
                    .shared
                    .report(&peer, &Failure::from_panic(payload));
            }
        }
        Some(conn.stream)
    }

    /// The stop began: no new message is handled; connections close once their running handler
    /// is back and their replies are sent, within the grace period.
    fn begin_drain(&mut self) {
        let now = Instant::now();
        let until = self
            .server
            .shared
            .grace_deadline()
            .unwrap_or(now + DRAIN_WITHOUT_GRACE);
        self.drain_until = Some(until);
        log::debug!(
            "message loop: stopping, {} connections open",
            self.slots.open()
        );
        // The workers go on: messages already on their way are still handled.
        for id in self.slots.ids() {
            self.wind_down(id);
        }
    }

    /// The end: every connection still open is closed, the workers are let go.
    fn close_all(&mut self) {
        let mut stuck = self.server.shared.abort.is_requested();
        for id in self.slots.ids() {
            self.close(id, Closed::ServerStopped);
            // A connection still on a worker: its handler is not coming back in time.
            if self.conn(id).is_some_and(|conn| conn.busy()) {
                stuck = true;
                if let Some(mut conn) = self.slots.take(id) {
                    conn.ticket.end(Ending::Failed); // cut off
                }
            }
        }
        self.lingering.clear(self.poll.registry());
        if let Some(mut workers) = self.workers.take() {
            workers.stop();
            // A handler past the grace period may never return: its worker is left behind.
            if !stuck {
                workers.join();
            }
        }
    }
}
