//! `--api message`: the same room over TCP, one line per message, behind the library's event
//! loop. A connection is a participant from the moment it is accepted until it closes; a
//! participant that only listens costs the server a few hundred bytes and no thread.
//!
//! The handler sees each line whole (the [`Lines`] framer cut it); its reply is the line the
//! UDP room would send as a datagram. The others hear the message through their [`Sender`]s,
//! which the room keeps from [`opened`](MessageHandler::opened) to
//! [`closed`](MessageHandler::closed). A participant that does not read what is relayed to it is
//! closed by the library once its unsent bytes pass the server's limit
//! ([`Closed::SlowReader`]), and `closed` takes it out of the room like any other leaver: nobody
//! else waits for it.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use socketserver::message::{Closed, ConnectionId, Lines, MessageHandler, Reply, Sender};
use socketserver::Address;

use super::{in_the_room, relayed, room_full, sent_as, tag};
use crate::common::{self, Args};

/// The longest line, `\n` included: about what one UDP datagram holds.
const MAX_LINE: usize = 64 * 1024;

/// Serves the room over TCP at `--addr`, in `--mode single` or `pool`.
pub fn serve(args: &Args, idle_timeout: Duration, max_participants: usize) -> io::Result<()> {
    let handler = Participant {
        room: Arc::new(Mutex::new(Members {
            senders: HashMap::new(),
            max: max_participants,
        })),
        tag: String::new(),
    };
    // TCP tells the server when a participant leaves; the idle timeout closes connections on
    // which nothing moved either way (a listener hearing the others is not idle).
    let builder = args.builder().idle_timeout(idle_timeout);
    let lines = Lines::new().max_line_len(MAX_LINE);
    common::serve_messages(args, builder, lines, handler)
}

/// Who is in the room: a [`Sender`] for each participant's connection.
struct Members {
    senders: HashMap<ConnectionId, Sender>,
    max: usize,
}

/// Locks the room. Every change is one `insert` or `remove`, so a handler that panicked while
/// holding the lock cannot have left it half-updated: a poisoned lock is used as is.
fn lock(room: &Mutex<Members>) -> MutexGuard<'_, Members> {
    room.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One participant's handler: the server clones it for every connection it accepts.
#[derive(Clone)]
struct Participant {
    room: Arc<Mutex<Members>>,
    /// `[ip:port]`, set when the connection opens.
    tag: String,
}

impl MessageHandler for Participant {
    fn opened(&mut self, reply: &mut Reply<'_>) -> io::Result<()> {
        let mut room = lock(&self.room);
        if room.senders.len() >= room.max {
            log::debug!("{} turned away: the room is full", reply.peer_addr());
            writeln!(reply, "{}", room_full(room.max))?;
            reply.close();
            return Ok(());
        }
        self.tag = tag(reply.peer_addr());
        room.senders.insert(reply.id(), reply.sender());
        log::debug!(
            "{} joined the room ({} participants)",
            self.tag,
            room.senders.len()
        );
        Ok(())
    }

    fn handle(&mut self, line: &[u8], reply: &mut Reply<'_>) -> io::Result<()> {
        let room = lock(&self.room);
        let me = reply.id();
        if line.is_empty() {
            let others = room.senders.len().saturating_sub(1);
            return writeln!(reply, "{}", in_the_room(&self.tag, others));
        }
        let mut message = relayed(&self.tag, line).into_bytes();
        message.push(b'\n');
        // Sending under the lock gives every participant the messages in the same order; a send
        // only queues the bytes for the event loop, so it never waits for a slow reader.
        let delivered = room
            .senders
            .iter()
            .filter(|(id, _)| **id != me)
            .filter(|(_, sender)| sender.send(message.clone()))
            .count();
        writeln!(reply, "{}", sent_as(&self.tag, delivered))
    }

    fn closed(&mut self, id: ConnectionId, peer: &Address, reason: &Closed) {
        // A participant turned away at the door was never in the room: removing is a no-op.
        if lock(&self.room).senders.remove(&id).is_some() {
            log::debug!("{} left the room ({reason})", tag(peer));
        }
    }
}
