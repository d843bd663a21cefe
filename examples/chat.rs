//! A UDP chat room — the Python socket tutorial's "QQ chat", as a `socketserver` server.
//!
//! In the tutorial a person at the server reads each message and types the answer. Here the server
//! is a room: whoever sends a datagram is in it, and every message is relayed to everyone else
//! in the room as `[ip:port] message`, the tutorial's way of naming a sender.
//!
//! The protocol, every datagram one message:
//!
//! * **Every datagram gets exactly one reply,** so the tutorial's clients, which wait for one
//!   datagram after each send, keep working. A reply never starts with `[`; a relayed message
//!   always does.
//!   * a message: relayed to the others, then `sent as [ip:port] to N other participant(s)`;
//!   * an empty datagram joins (or stays in) the room without saying anything:
//!     `in the room as [ip:port] with N other participant(s)`;
//!   * from a newcomer when the room is full: `error: the room is full (N participants); try
//!     again later` — nothing is relayed.
//! * A participant who sends nothing for `--idle-timeout` seconds leaves the room. UDP has no
//!   "disconnect", so silence is the only sign that a client is gone.
//! * Messages are relayed as UTF-8: invalid bytes become U+FFFD, so one broken client cannot make
//!   the others' `decode('utf-8')` fail.
//!
//! The tutorial's clients show one datagram per message they send, so a relayed message appears the
//! next time that client sends something; `cargo run --example client -- chat` shows everything as
//! it arrives.
//!
//! With `--api message` the same room is served over TCP instead (in `--mode single` or
//! `pool`), each line a message: every line gets exactly one reply line, with the same texts as
//! above, and relayed messages arrive as lines `[ip:port] message` as soon as they are sent. A
//! connection is in the room from the moment it is accepted (a full room answers the newcomer
//! `error: the room is full …` and closes it) until it closes; `--idle-timeout` closes a
//! connection on which nothing moved either way for that long. The server behind it is an event
//! loop, not a thread per participant, and one that does not read what is relayed to it is cut
//! off instead of holding up the others (see `chat/tcp_room.rs`).
//!
//! ```text
//! cargo run --example chat                            # 127.0.0.1:8081, single mode
//! cargo run --example chat -- --idle-timeout 60 --max-participants 10
//! cargo run --example client -- chat --addr 127.0.0.1:8081
//! cargo run --example chat -- --api message --mode pool   # the room over TCP
//! cargo run --example client -- chat-tcp --addr 127.0.0.1:8081
//! ```

mod common;
#[cfg(feature = "message")]
#[path = "chat/tcp_room.rs"]
mod tcp_room;

use std::collections::HashMap;
use std::io;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{Args, Example, ExtraOption, ModeName};
use socketserver::{Address, DatagramRequest};

const EXAMPLE: Example = Example {
    name: "chat",
    about: "UDP chat room: relays every message to the other participants as `[ip:port] message`, and answers each datagram (with --api message: the same room over TCP, a line per message). One room in memory shared between threads, so no process modes.",
    default_addr: "127.0.0.1:8081",
    default_mode: ModeName::Single,
    modes: ModeName::THREADS,
    options: &[
        common::METRICS,
        ExtraOption {
            name: "--idle-timeout",
            value: "SECS",
            help: "a participant silent this long leaves the room; with --api message, a connection idle both ways is closed (default 300)",
            check: common::check_positive,
        },
        ExtraOption {
            name: "--max-participants",
            value: "N",
            help: "most participants at once; newcomers are turned away beyond it (default 64)",
            check: common::check_positive,
        },
        common::API,
        common::MESSAGE_TIMEOUT,
        common::LOOPS,
    ],
};

const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 300;
const DEFAULT_MAX_PARTICIPANTS: usize = 64;

/// Who is in the room, and when each last sent something.
#[derive(Debug)]
struct Room {
    last_seen: HashMap<Address, Instant>,
    max_participants: usize,
    idle_timeout: Duration,
}

/// What to do with one datagram, decided under the room's lock and carried out after it.
struct Plan {
    /// The relayed message and who gets it (empty when nothing is relayed).
    relay: Option<(Vec<u8>, Vec<Address>)>,
    /// The reply to the sender, by how many others actually received the relay.
    reply: Reply,
}

enum Reply {
    Sent,
    InTheRoom { others: usize },
    Full { max: usize },
}

impl Room {
    fn new(max_participants: usize, idle_timeout: Duration) -> Room {
        Room {
            last_seen: HashMap::new(),
            max_participants,
            idle_timeout,
        }
    }

    /// Removes the participants silent for longer than the idle timeout.
    fn expire(&mut self, now: Instant) {
        let idle_timeout = self.idle_timeout;
        self.last_seen.retain(|who, seen| {
            let stays = now.saturating_duration_since(*seen) <= idle_timeout;
            if !stays {
                log::debug!("{who} left the room (silent for {idle_timeout:?})");
            }
            stays
        });
    }

    /// Admits `sender` (or refreshes it) and decides who gets `message`.
    fn receive(&mut self, sender: &Address, message: &[u8], now: Instant) -> Plan {
        self.expire(now);
        let newcomer = !self.last_seen.contains_key(sender);
        if newcomer && self.last_seen.len() >= self.max_participants {
            // Debug, like every per-datagram line: newcomers cost a datagram each.
            log::debug!("{sender} turned away: the room is full");
            return Plan {
                relay: None,
                reply: Reply::Full {
                    max: self.max_participants,
                },
            };
        }
        if newcomer {
            log::debug!(
                "{sender} joined the room ({} participants)",
                self.last_seen.len() + 1
            );
        }
        self.last_seen.insert(sender.clone(), now);
        let others: Vec<Address> = self
            .last_seen
            .keys()
            .filter(|who| *who != sender)
            .cloned()
            .collect();
        if message.is_empty() {
            return Plan {
                relay: None,
                reply: Reply::InTheRoom {
                    others: others.len(),
                },
            };
        }
        Plan {
            relay: Some((relayed(&tag(sender), message).into_bytes(), others)),
            reply: Reply::Sent,
        }
    }
}

/// `[ip:port]`, as the tutorial prints a sender (`'[%s:%s]' % (addr[0], addr[1])`: no brackets
/// around an IPv6 address).
fn tag(who: &Address) -> String {
    match who.as_inet() {
        Some(inet) => format!("[{}:{}]", inet.ip(), inet.port()),
        None => format!("[{who}]"),
    }
}

/// "1 other participant", "2 other participants".
fn others(n: usize) -> String {
    let plural = if n == 1 { "" } else { "s" };
    format!("{n} other participant{plural}")
}

// The protocol's texts, shared by the UDP room and the TCP one of `--api message`.

/// A relayed message: the sender's tag, then the message as UTF-8 (invalid bytes as U+FFFD).
fn relayed(sender: &str, message: &[u8]) -> String {
    format!("{sender} {}", String::from_utf8_lossy(message))
}

/// The reply to a message, once it has been relayed to `delivered` others.
fn sent_as(sender: &str, delivered: usize) -> String {
    format!("sent as {sender} to {}", others(delivered))
}

/// The reply to an empty message.
fn in_the_room(sender: &str, n: usize) -> String {
    format!("in the room as {sender} with {}", others(n))
}

/// What a newcomer hears when the room is full.
fn room_full(max: usize) -> String {
    format!("error: the room is full ({max} participants); try again later")
}

/// Locks the room. A handler that panicked while holding the lock cannot have left the map
/// half-updated (every change is one `insert` or `retain`), so a poisoned lock is used as is.
fn lock(room: &Mutex<Room>) -> MutexGuard<'_, Room> {
    room.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The handler: admit the sender, relay the message, answer the sender.
fn chat(room: &Mutex<Room>, req: &mut DatagramRequest) -> io::Result<()> {
    let sender = req.peer_addr().clone();
    // Decide under the lock; send after it, so a slow send never holds up the other handlers.
    let plan = lock(room).receive(&sender, req.data(), Instant::now());
    let mut delivered = 0;
    if let Some((message, recipients)) = &plan.relay {
        for to in recipients {
            match req.socket().send_to(message, to) {
                Ok(()) => delivered += 1,
                // One unreachable participant must not cost the others their message.
                Err(e) => log::warn!("cannot relay a message from {sender} to {to}: {e}"),
            }
        }
    }
    let reply = match plan.reply {
        Reply::Sent => sent_as(&tag(&sender), delivered),
        Reply::InTheRoom { others } => in_the_room(&tag(&sender), others),
        Reply::Full { max } => room_full(max),
    };
    // Replying after relaying makes the reply true when it arrives: the relays have left.
    req.reply(reply.as_bytes())
}

/// Binds the server in the chosen mode and serves until the process is stopped.
fn run(args: &Args) -> io::Result<()> {
    // In separate processes every child would have a room of its own and nobody would hear
    // anybody.
    args.threads_only("its room")?;
    let idle = args.parsed("--idle-timeout", DEFAULT_IDLE_TIMEOUT_SECS);
    let max = args.parsed("--max-participants", DEFAULT_MAX_PARTICIPANTS);
    // `--api message` is refused while parsing when the library's `message` feature is off.
    #[cfg(feature = "message")]
    if args.message_api() {
        return tcp_room::serve(args, Duration::from_secs(idle), max);
    }
    let room = Arc::new(Mutex::new(Room::new(max, Duration::from_secs(idle))));
    // Each handler clones the closure, and with it the `Arc`: one room for every thread.
    let handler = move |req: &mut DatagramRequest| chat(&room, req);
    common::serve_udp(args, args.builder(), handler)
}

fn main() -> ExitCode {
    let args = common::parse_args(&EXAMPLE);
    common::init_logging();
    common::exit_status(run(&args))
}
