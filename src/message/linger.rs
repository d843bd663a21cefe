//! Lingering close, as nginx does it: when the server closes a connection whose peer may still be
//! sending (pipelined requests behind a `Connection: close`, the rest of a refused upload), it
//! ends its side and drops what still arrives until the peer closes too. Closing at once with
//! bytes unread makes the kernel answer with a reset, which can destroy the last reply before the
//! peer has read it. Only such connections linger (bytes unread, or a message half received,
//! see `Conn::reset_likely`): an idle one is closed at once, so it cannot slow a stop down.
//!
//! The handler has already been told the connection closed and its buffers are gone: a lingering
//! socket costs a few dozen bytes, for at most [`LINGER_TIME`] and [`LINGER_BYTES`].

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use mio::{Interest, Registry, Token};

use super::connection::Stream;

/// How long a closed connection may go on sending before it is dropped anyway (nginx's
/// `lingering_time` is 30 s; this is for peers that close promptly).
pub(crate) const LINGER_TIME: Duration = Duration::from_secs(2);

/// The most a closed connection may send before it is dropped without waiting for its end:
/// enough for requests pipelined behind the last answered one, not for a flood.
pub(crate) const LINGER_BYTES: usize = 256 * 1024;

struct Lingerer {
    stream: Stream,
    until: Instant,
    dropped: usize,
}

/// The lingering sockets of one loop; their tokens are `first_token + index`.
pub(crate) struct Lingering {
    first_token: usize,
    sockets: Vec<Option<Lingerer>>,
    free: Vec<usize>,
    /// In deadline order, since every socket lingers for the same time.
    order: VecDeque<(Instant, usize)>,
}

impl Lingering {
    pub(crate) fn new(first_token: usize) -> Lingering {
        Lingering {
            first_token,
            sockets: Vec::new(),
            free: Vec::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether `token` is a lingering socket's.
    pub(crate) fn owns(&self, token: Token) -> bool {
        token.0 >= self.first_token
    }

    pub(crate) fn len(&self) -> usize {
        self.sockets.len() - self.free.len()
    }

    /// Ends our side of `stream` (already registered under another token) and keeps dropping what
    /// it sends until its peer closes.
    pub(crate) fn start(&mut self, mut stream: Stream, registry: &Registry, scratch: &mut [u8]) {
        stream.shutdown_write();
        if drain(&mut stream, scratch, &mut 0) {
            stream.deregister(registry);
            return;
        }
        let index = self.free.pop().unwrap_or_else(|| {
            self.sockets.push(None);
            self.sockets.len() - 1
        });
        let token = Token(self.first_token + index);
        if stream
            .reregister(registry, token, Interest::READABLE)
            .is_err()
        {
            self.free.push(index);
            return;
        }
        let until = Instant::now() + LINGER_TIME;
        self.sockets[index] = Some(Lingerer {
            stream,
            until,
            dropped: 0,
        });
        self.order.push_back((until, index));
    }

    /// A readiness event for a lingering socket.
    pub(crate) fn ready(&mut self, token: Token, registry: &Registry, scratch: &mut [u8]) {
        let index = token.0 - self.first_token;
        let Some(Some(lingerer)) = self.sockets.get_mut(index) else {
            return;
        };
        if drain(&mut lingerer.stream, scratch, &mut lingerer.dropped) {
            self.drop_socket(index, registry);
        }
    }

    /// Drops the sockets whose time is up.
    pub(crate) fn expire(&mut self, now: Instant, registry: &Registry) {
        while let Some(&(until, index)) = self.order.front() {
            if until > now {
                return;
            }
            self.order.pop_front();
            // The place may hold a later socket by now: only its own deadline counts.
            if self.sockets[index]
                .as_ref()
                .is_some_and(|l| l.until == until)
            {
                self.drop_socket(index, registry);
            }
        }
    }

    /// How long until the next socket's time is up.
    pub(crate) fn next_wait(&self, now: Instant) -> Option<Duration> {
        self.order
            .front()
            .map(|(until, _)| until.saturating_duration_since(now))
    }

    /// Drops every lingering socket (the loop is ending).
    pub(crate) fn clear(&mut self, registry: &Registry) {
        for index in 0..self.sockets.len() {
            self.drop_socket(index, registry);
        }
        self.order.clear();
    }

    fn drop_socket(&mut self, index: usize, registry: &Registry) {
        if let Some(mut lingerer) = self.sockets[index].take() {
            lingerer.stream.deregister(registry);
            self.free.push(index);
        }
    }
}

/// Reads and drops what `stream` has; true once nothing is left to wait for (the peer closed, the
/// connection failed, or it sent more than [`LINGER_BYTES`]).
fn drain(stream: &mut Stream, scratch: &mut [u8], dropped: &mut usize) -> bool {
    // Bounded per turn; LINGER_TIME and LINGER_BYTES bound the whole.
    for _ in 0..16 {
        match stream.read(scratch) {
            Ok(0) => return true,
            Ok(n) => {
                *dropped += n;
                if *dropped > LINGER_BYTES {
                    return true;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
    false
}
