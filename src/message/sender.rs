//! [`Sender`]: bytes queued to a connection from any thread, and the link every thread uses to
//! reach the event loop.

use std::fmt;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender as ChannelSender};

use super::spread::Seat;
use crate::address::Address;
use crate::control::Ticket;
use crate::handler::Connection;

/// Names one connection of a message server, for as long as the server runs: the same number is
/// never given to two connections, so a stale id reaches nothing. With several event loops
/// ([`MessageBuilder::loops`](crate::message::MessageBuilder::loops)) it names the loop too.
///
/// Shown as `#<slot>.<generation>`, followed by `@<loop>` for a connection on a loop other than
/// the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId {
    /// Which of the server's event loops holds the connection.
    pub(crate) event_loop: u32,
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

impl ConnectionId {
    /// The first connection of slot `slot` of the first loop, for unit tests.
    #[cfg(test)]
    pub(crate) fn of_slot(slot: u32) -> ConnectionId {
        ConnectionId {
            event_loop: 0,
            slot,
            generation: 0,
        }
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.slot, self.generation)?;
        match self.event_loop {
            0 => Ok(()),
            n => write!(f, "@{n}"),
        }
    }
}

/// Something for the loop from another thread.
pub(crate) enum Command {
    /// A connection the accepting thread took, the ticket that keeps it counted as active, when
    /// it was accepted, and its seat on the loop.
    Open(Connection, Address, Ticket, Instant, Seat),
    /// Bytes from a [`Sender`](super::Sender).
    Push(ConnectionId, Vec<u8>),
    /// A [`Sender::close`](super::Sender::close).
    Close(ConnectionId),
    /// The accepting thread has stopped: no `Open` follows.
    AcceptingEnded,
}

/// The way to the event loop: a queue of commands and the waker that makes the loop read it,
/// and whether the loop is at work or waiting.
pub(crate) struct Link {
    commands: ChannelSender<Command>,
    waker: mio::Waker,
    /// Set by the first command after the loop last read the queue: the rest skip the wake-up
    /// (a broadcast to a thousand connections costs one system call, not a thousand).
    woken: AtomicBool,
    /// While the loop waits for events (or is about to): only then does queueing need a wake-up;
    /// a loop at work would pay for a readiness event per reply of its pool otherwise.
    sleeping: AtomicBool,
    /// When the loop's current turn began, in milliseconds from `epoch` plus one; 0 while it
    /// waits for events. A turn that lasts is a handler that does not return.
    turn: AtomicU64,
    epoch: Instant,
}

impl Link {
    pub(crate) fn new(waker: mio::Waker) -> (Arc<Link>, Receiver<Command>) {
        let (commands, receiver) = crossbeam_channel::unbounded();
        let link = Link {
            commands,
            waker,
            woken: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            turn: AtomicU64::new(0),
            epoch: Instant::now(),
        };
        (Arc::new(link), receiver)
    }

    /// Queues `command`; false if the loop has ended.
    pub(crate) fn send(&self, command: Command) -> bool {
        if self.commands.send(command).is_err() {
            return false;
        }
        self.wake();
        true
    }

    /// Wakes the loop if it sleeps (after something was queued for it: a command, or a pool
    /// worker's results). A loop that is awake finds the queued thing before it sleeps again.
    pub(crate) fn wake(&self) {
        // Pairs with the fence in `going_to_sleep`: either this sees `sleeping`, or the loop
        // sees what was queued before this call.
        fence(Ordering::SeqCst);
        if !self.sleeping.load(Ordering::SeqCst) {
            return;
        }
        if !self.woken.swap(true, Ordering::AcqRel) {
            // A failed wake-up means the loop's poller is gone: the loop is ending anyway.
            let _ = self.waker.wake();
        }
    }

    /// Called by the loop before it checks its queues one last time and waits for events: from
    /// here on, whatever is queued wakes it.
    pub(crate) fn going_to_sleep(&self) {
        self.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Called by the loop when its wait ends: until it sleeps again, nothing needs to wake it.
    pub(crate) fn awake(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// Whether commands are queued (the loop, after `going_to_sleep`).
    pub(crate) fn has_commands(&self) -> bool {
        !self.commands.is_empty()
    }

    /// Called by the loop before it reads the queues: the next command wakes it again.
    pub(crate) fn rearm(&self) {
        self.woken.store(false, Ordering::Release);
    }

    /// Called by the loop when it has events to handle.
    pub(crate) fn turn_begins(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.turn.store(now.saturating_add(1), Ordering::Relaxed);
    }

    /// Called by the loop before it waits for events.
    pub(crate) fn turn_ends(&self) {
        self.turn.store(0, Ordering::Relaxed);
    }

    /// Whether the loop's current turn has lasted longer than `limit`: a handler on it has not
    /// returned for that long.
    pub(crate) fn stalled(&self, limit: Duration) -> bool {
        let began = self.turn.load(Ordering::Relaxed);
        if began == 0 {
            return false;
        }
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let limit = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        now.saturating_add(1).saturating_sub(began) > limit
    }
}

/// Queues bytes to one connection of a message server from any thread — a chat room's broadcast,
/// a notification, a reply computed elsewhere. Cheap to clone; `Send + Sync`.
///
/// Get one from [`Reply::sender`](super::Reply::sender). Bytes are sent in the order they were
/// queued, after any reply already queued; they are written without blocking anyone. A connection
/// that does not read what is pushed to it is closed once its unsent bytes exceed
/// [`max_pending_output`](crate::message::MessageBuilder::max_pending_output) ([`Closed::SlowReader`](super::Closed::SlowReader)).
/// Bytes queued to a connection that has closed are dropped.
///
/// A ticker: a client that sends `subscribe` gets three ticks pushed from another thread, then
/// the connection is closed.
///
/// ```
/// use std::io::{Read, Write};
/// use std::net::TcpStream;
/// use std::time::Duration;
/// use socketserver::message::{message_handler, Lines};
/// use socketserver::Builder;
///
/// # fn main() -> std::io::Result<()> {
/// let ticker = message_handler(|line, reply| {
///     if line == b"subscribe" {
///         let sender = reply.sender();
///         std::thread::spawn(move || {
///             for i in 1..=3 {
///                 sender.send(format!("tick {i}\n"));
///             }
///             sender.close(); // once the ticks are sent
///         });
///     }
///     Ok(())
/// });
/// let mut server = Builder::new().messages(Lines::new(), ticker).bind_tcp("127.0.0.1:0")?;
/// let addr = server.local_addr().as_inet().expect("a TCP address");
/// let handle = server.handle();
/// let serving =
///     std::thread::spawn(move || server.serve_forever().and_then(|()| server.server_close()));
///
/// let mut client = TcpStream::connect(addr)?;
/// client.set_read_timeout(Some(Duration::from_secs(10)))?;
/// client.write_all(b"subscribe\n")?;
/// let mut ticks = String::new();
/// client.read_to_string(&mut ticks)?; // until the server closes the connection
/// assert_eq!(ticks, "tick 1\ntick 2\ntick 3\n");
///
/// handle.shutdown();
/// serving.join().expect("serving thread")?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Sender {
    pub(crate) id: ConnectionId,
    pub(crate) link: Arc<Link>,
}

impl Sender {
    /// The connection this sender reaches.
    #[must_use]
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// Queues `bytes` to the connection. Returns false if the server's loop has ended (the bytes
    /// are dropped); true does not mean the connection is still open.
    pub fn send(&self, bytes: impl Into<Vec<u8>>) -> bool {
        self.link.send(Command::Push(self.id, bytes.into()))
    }

    /// Closes the connection once what was queued to it before is sent
    /// ([`Closed::ByHandler`](super::Closed::ByHandler)). Returns false if the loop has ended.
    // Advisory, like `send`'s: most callers have nothing to do when the loop has ended.
    #[allow(clippy::must_use_candidate)]
    pub fn close(&self) -> bool {
        self.link.send(Command::Close(self.id))
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").field("id", &self.id).finish()
    }
}
