//! `--api message`: the same server behind the library's event loop. [`RespFramer`] finds where
//! each command ends (with the stream version's incremental [`Parser`], recording nothing) and
//! charges the connection's buffered input to `--max-memory`; [`KvHandler`] parses the complete
//! command's arguments and runs it against the same store, with the same replies, limits and
//! `INFO` counters as the stream version.
//!
//! A framer cannot answer, so what the stream version refuses with an error reply (bytes that are
//! not RESP, a command over the query limit) the framer hands to the handler as one message of
//! everything buffered. The handler's parser, reading the same bytes, comes to the same verdict
//! (the parser's answer does not depend on how its input was split) and replies
//! `-ERR Protocol error: …`; input past the budget comes as an empty message, answered `-OOM …`.
//! Either way the connection closes after the reply, as in the stream version.

use std::io::{self, Write};

use socketserver::message::{Frame, Framer, MessageHandler, Reply};

use crate::budget::Charge;
use crate::commands::{self, Argv, Next};
use crate::common::{self, Args};
use crate::output::Output;
use crate::protocol::{Parsed, Parser};
use crate::query::{self, Query, INITIAL, MAX_QUERY};
use crate::shared::Shared;
use crate::{Connected, Tally, OOM};

/// Serves `shared` with `--api message`, in `--mode single` (commands run on the loop) or `pool`.
pub fn serve(args: &Args, shared: Shared) -> io::Result<()> {
    // The server runs until the process ends, and the framers and handlers of every connection
    // (on the loop, on workers) hold budget charges that borrow it: so it lives as long.
    let shared: &'static Shared = Box::leak(Box::new(shared));
    let framer = RespFramer::new(shared);
    let handler = KvHandler { shared, conn: None };
    common::serve_messages(args, args.builder(), framer, handler)
}

/// Where one command ends in a connection's input, charging what the input holds to the budget.
pub struct RespFramer {
    shared: &'static Shared,
    /// Finds commands' ends; resumes where it stopped while a command arrives.
    parser: Parser,
    /// What the input holds past the [`INITIAL`] bytes the handler charged when it opened.
    charge: Option<Charge<'static>>,
    /// Input bytes the charges cover.
    covered: usize,
    /// Input bytes already counted in `total_net_input_bytes`.
    seen: usize,
    tally: Tally<'static>,
}

impl RespFramer {
    fn new(shared: &'static Shared) -> RespFramer {
        RespFramer {
            shared,
            parser: Parser::boundaries(),
            charge: None,
            covered: INITIAL,
            seen: 0,
            tally: Tally::new(&shared.stats),
        }
    }

    /// Makes the charges cover `len` buffered bytes, growing as the stream version's query buffer
    /// does (doubling, or to the length of a command whose last argument is arriving): `false` if
    /// the budget cannot hold them.
    fn cover(&mut self, len: usize) -> bool {
        if len <= self.covered {
            return true;
        }
        let mut target = (self.covered * 2).max(len);
        if let Some(needed) = self.parser.needed() {
            target = target.min(needed.max(len));
        }
        let more = target - self.covered;
        let charged = match &mut self.charge {
            Some(charge) => charge.grow(more),
            None => {
                self.charge = Charge::new(&self.shared.budget, more);
                self.charge.is_some()
            }
        };
        if charged {
            self.covered = target;
        }
        charged
    }

    /// Everything buffered, for the handler to find what is wrong with it and refuse it.
    fn refusal(&mut self, len: usize) -> Frame {
        self.parser.reset();
        self.seen = 0;
        Frame::whole(len)
    }
}

/// A fresh framer for a new connection: clones share nothing but the server's state.
impl Clone for RespFramer {
    fn clone(&self) -> Self {
        RespFramer::new(self.shared)
    }
}

impl Framer for RespFramer {
    fn frame(&mut self, buffered: &[u8]) -> io::Result<Option<Frame>> {
        if buffered.len() > self.seen {
            self.tally.bytes(buffered.len() - self.seen);
            self.seen = buffered.len();
        }
        let parsed = self.parser.parse(buffered);
        self.tally.steps(self.parser.examined());
        let complete = match parsed {
            Parsed::Command(used) | Parsed::Empty(used) => Some(used),
            Parsed::Error(_) => return Ok(Some(self.refusal(buffered.len()))),
            // A parser that records no arguments never runs out of room for them.
            Parsed::Incomplete | Parsed::Full => None,
        };
        let too_big = self.parser.needed().is_some_and(|n| n > MAX_QUERY);
        if complete.is_none() && (too_big || buffered.len() >= MAX_QUERY) {
            return Ok(Some(self.refusal(buffered.len())));
        }
        // What the loop holds is charged, whether it makes a whole command or not.
        if !self.cover(buffered.len()) {
            let mut refusal = self.refusal(buffered.len());
            // No command is empty (a blank line is a byte): the handler knows this one.
            refusal.message = 0..0;
            return Ok(Some(refusal));
        }
        let Some(used) = complete else {
            return Ok(None);
        };
        self.parser.reset();
        self.seen -= used;
        if used == buffered.len() {
            // The loop frees a large input buffer once all of it is handled.
            if let Some(charge) = &mut self.charge {
                charge.shrink(self.covered - INITIAL);
            }
            self.covered = INITIAL;
        }
        Ok(Some(Frame::whole(used)))
    }

    fn limit(&self) -> usize {
        // The framer refuses (with a reply) at MAX_QUERY, before the loop would (without one).
        MAX_QUERY + 1
    }
}

/// Runs a connection's commands. The template given to the server holds no connection; each
/// connection's clone takes its buffers from the budget when it opens.
pub struct KvHandler {
    shared: &'static Shared,
    conn: Option<Conn>,
}

/// A connection's side of the handler: its budget charge, argument table and reply buffer.
struct Conn {
    charge: Charge<'static>,
    parser: Parser,
    output: Output,
    tally: Tally<'static>,
    _connected: Connected<'static>,
}

/// A handler for a new connection: its state is made in `opened`.
impl Clone for KvHandler {
    fn clone(&self) -> Self {
        KvHandler {
            shared: self.shared,
            conn: None,
        }
    }
}

impl MessageHandler for KvHandler {
    fn opened(&mut self, reply: &mut Reply<'_>) -> io::Result<()> {
        let shared = self.shared;
        // What the stream version takes: its query buffer and argument table (here the loop's
        // input buffer, up to INITIAL bytes, and the handler's table), and its reply buffer.
        let initial = Query::INITIAL_MEMORY + Output::INITIAL_MEMORY;
        let Some(charge) = Charge::new(&shared.budget, initial) else {
            log::debug!("{}: over --max-memory; refused", reply.peer_addr());
            reply.write_all(format!("-{OOM}\r\n").as_bytes())?;
            reply.close();
            return Ok(());
        };
        self.conn = Some(Conn {
            charge,
            parser: Parser::new(query::INITIAL_ARGS),
            output: Output::new(),
            tally: Tally::new(&shared.stats),
            _connected: Connected::new(&shared.stats),
        });
        Ok(())
    }

    fn handle(&mut self, message: &[u8], reply: &mut Reply<'_>) -> io::Result<()> {
        let shared = self.shared;
        let Some(conn) = self.conn.as_mut() else {
            // Refused when it opened: nothing more is answered.
            reply.close();
            return Ok(());
        };
        if message.is_empty() {
            // The framer's refusal of input past the budget.
            log::debug!("{}: over --max-memory; closing", reply.peer_addr());
            reply.write_all(format!("-{OOM}\r\n").as_bytes())?;
            reply.close();
            return Ok(());
        }
        let parsed = loop {
            match conn.parser.parse(message) {
                Parsed::Full if query::grow_args(&mut conn.parser, &mut conn.charge) => {}
                Parsed::Full => break None,
                parsed => break Some(parsed),
            }
        };
        conn.tally.steps(conn.parser.examined());
        let refusal = match parsed {
            Some(Parsed::Command(_)) => {
                let argv = Argv {
                    input: message,
                    ranges: conn.parser.args(),
                };
                let next = commands::execute(shared, &argv, &mut conn.output);
                conn.output.send(reply, message)?;
                conn.parser.reset();
                query::relax_args(&mut conn.parser, &mut conn.charge);
                if next == Next::Close {
                    reply.close();
                }
                return Ok(());
            }
            Some(Parsed::Empty(_)) => return Ok(()),
            Some(Parsed::Error(what)) => {
                log::debug!("{}: protocol error ({what}); closing", reply.peer_addr());
                format!("ERR Protocol error: {what}")
            }
            // The framer's refusal of an unfinished command over the query limit.
            Some(Parsed::Incomplete) => "ERR Protocol error: query buffer over limit".to_string(),
            Some(Parsed::Full) | None => {
                log::debug!("{}: over --max-memory; closing", reply.peer_addr());
                OOM.to_string()
            }
        };
        reply.write_all(format!("-{refusal}\r\n").as_bytes())?;
        reply.close();
        Ok(())
    }
}
