//! A key-value server speaking the Redis protocol (RESP2), enough for `redis-benchmark` and
//! `redis-cli`: `PING` (inline and multibulk), `SET`, `GET`, `INCR`, `LPUSH`/`RPUSH`,
//! `LPOP`/`RPOP`, `DEL`, `ECHO`, `QUIT`, and Redis's error reply for anything else.
//!
//! Pipelining works: every complete command in the input is answered in order into one buffer,
//! which is sent when no further complete command is waiting — one `send` per batch, not per
//! reply. The store is shared by all connections, spread over 64 locked shards.
//!
//! A hostile client gets no more than its share. Parsing is incremental (a command arriving a
//! byte at a time is examined once, not again on every read). A connection whose replies are not
//! being read stops reading: once 64 KiB of replies wait, it sends them (blocking) before it
//! parses another command, and a large value is sent from the store without a copy. Every
//! connection's buffers come out of one budget, `--max-memory` (default 256 MiB): a connection
//! that would need more is answered `-OOM` and closed, and the others go on. `INFO` reports it.
//!
//! `--api message` (with `--mode single` or `pool`) serves the same commands behind the
//! library's event loop: no thread per connection, and in `single` mode no thread hop per
//! command either (see `message_api.rs`). A command taking longer than `--message-timeout` to
//! arrive closes the connection.
//!
//! ```text
//! cargo run --release --example resp_kv -- --addr 127.0.0.1:6380 --mode threading
//! cargo run --release --example resp_kv -- --addr 127.0.0.1:6380 --api message --mode single
//! redis-benchmark -p 6380 -t ping,set,get -c 50 -P 16 -q
//! redis-cli -p 6380 set greeting hello
//! redis-cli -p 6380 info
//! ```
//!
//! Over TLS (the library's `tls` feature), in both APIs:
//!
//! ```text
//! cargo run --release --features tls --example resp_kv -- --addr 127.0.0.1:6380 \
//!     --tls-cert server.crt --tls-key server.key
//! redis-cli -p 6380 --tls --cacert ca.pem --sni localhost set greeting hello
//! redis-benchmark -p 6380 --tls --cacert ca.pem -t ping,set,get -q
//! ```

mod budget;
mod commands;
#[path = "../common/mod.rs"]
mod common;
#[cfg(feature = "message")]
mod message_api;
mod output;
mod protocol;
mod query;
mod shared;
mod store;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use budget::{Budget, Charge};
use commands::{Argv, Next};
use common::{check_positive, Args, Example, ExtraOption, ModeName, STACK_SIZE};
use output::Output;
use query::{Query, Refused, Step};
use shared::{Shared, Stats};
use socketserver::StreamRequest;
use store::Store;

/// `--max-memory BYTES`: what all connections' buffers may take together.
const MAX_MEMORY: ExtraOption = ExtraOption {
    name: "--max-memory",
    value: "BYTES",
    help: "all connections' buffers together; past it -OOM and close (default 256 MiB)",
    check: check_positive,
};
const DEFAULT_MAX_MEMORY: usize = 256 * 1024 * 1024;

const EXAMPLE: Example = Example {
    name: "resp_kv",
    about: "Key-value server speaking the Redis protocol (RESP2): PING, SET, GET, INCR, LPUSH, \
            LPOP, DEL, INFO; pipelining supported. One store in memory shared between threads, \
            so no process modes.",
    default_addr: "127.0.0.1:6380",
    default_mode: ModeName::Threading,
    modes: ModeName::THREADS,
    options: &[
        common::METRICS,
        STACK_SIZE,
        MAX_MEMORY,
        common::IDLE_TIMEOUT,
        common::MAX_LIFETIME,
        common::PROXY_PROTOCOL,
        common::TRUSTED_PROXY,
        common::TLS_CERT,
        common::TLS_KEY,
        common::TLS_CLIENT_CA,
        common::API,
        common::MESSAGE_TIMEOUT,
        common::LOOPS,
    ],
};

/// The reply to a connection the budget cannot hold, as Redis words its own.
const OOM: &str = "OOM command not allowed when the connections' buffers are over --max-memory";
/// Counters are added to the shared ones after this many bytes or steps, not on every read.
const PUBLISH_EVERY: u64 = 16 * 1024;

/// How a connection ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The client left, or asked to (`QUIT`).
    Done,
    /// An error reply was sent: close without resetting the connection.
    Failed,
}

/// One connection: answers it, then, after an error reply and once its buffers are given back to
/// the budget, [`linger`]s.
fn serve_connection(shared: &Shared, req: &mut StreamRequest) -> io::Result<()> {
    if answer(shared, req)? == End::Failed {
        linger(req);
    }
    Ok(())
}

/// Parses every complete command, answers into `output`, sends when the input runs dry.
fn answer(shared: &Shared, req: &mut StreamRequest) -> io::Result<End> {
    let initial = Query::INITIAL_MEMORY + Output::INITIAL_MEMORY;
    let Some(mut charge) = Charge::new(&shared.budget, initial) else {
        log::debug!("{}: over --max-memory; refused", req.peer_addr());
        req.write_all(format!("-{OOM}\r\n").as_bytes())?;
        return Ok(End::Failed);
    };
    let mut query = Query::new();
    let mut output = Output::new();
    let _connected = Connected::new(&shared.stats);
    let mut tally = Tally::new(&shared.stats);
    loop {
        loop {
            match query.next(&mut charge) {
                Step::Command => {
                    output.make_room(req, &mut charge)?;
                    let (input, ranges) = query.command();
                    let argv = Argv { input, ranges };
                    let next = commands::execute(shared, &argv, &mut output);
                    if output.has_large() {
                        output.send(req, input)?;
                    }
                    query.consume();
                    if next == Next::Close {
                        output.send(req, &[])?;
                        return Ok(End::Done);
                    }
                }
                Step::Incomplete => break,
                Step::Error(what) => {
                    log::debug!("{}: protocol error ({what}); closing", req.peer_addr());
                    return fail(req, &mut output, &format!("ERR Protocol error: {what}"));
                }
                Step::OutOfMemory => return refuse(req, &mut output),
            }
        }
        // No complete command left: this batch is answered.
        output.send(req, &[])?;
        output.relax(&mut charge);
        query.relax(&mut charge);
        debug_assert_eq!(charge.held(), query.memory() + output.memory());
        tally.steps(query.steps());
        let room = match query.room(&mut charge) {
            Ok(room) => room,
            Err(Refused::TooBig) => {
                return fail(
                    req,
                    &mut output,
                    "ERR Protocol error: query buffer over limit",
                )
            }
            Err(Refused::OutOfMemory) => return refuse(req, &mut output),
        };
        match req.read(room) {
            Ok(0) => return Ok(End::Done),
            Ok(n) => {
                query.filled(n);
                tally.bytes(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A client that drops the connection has simply left.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(End::Done),
            Err(e) => return Err(e),
        }
    }
}

/// Sends the replies so far, then the error `message`, before the connection closes.
fn fail(req: &mut StreamRequest, output: &mut Output, message: &str) -> io::Result<End> {
    output.send(req, &[])?;
    req.write_all(format!("-{message}\r\n").as_bytes())?;
    Ok(End::Failed)
}

/// How long, and how much, a failed connection's input is read and dropped before it closes.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// Closing a socket with unread input makes the kernel reset the connection, and the client may
/// never see the error just sent. So: end the sending side (with TLS, after a `close_notify`), then read and drop what the client
/// is still sending (into a small buffer, for a bounded time and amount) until it closes too.
fn linger(req: &mut StreamRequest) {
    let _ = req.shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER;
    let mut scratch = [0u8; 8192];
    let mut dropped = 0;
    while dropped < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || req.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match req.read(&mut scratch) {
            Ok(0) | Err(_) => return,
            Ok(n) => dropped += n,
        }
    }
}

/// [`fail`] for a connection that would take the buffers over the budget.
fn refuse(req: &mut StreamRequest, output: &mut Output) -> io::Result<End> {
    log::debug!("{}: over --max-memory; closing", req.peer_addr());
    fail(req, output, OOM)
}

/// Counts one open connection in the [`Stats`] while it lives.
struct Connected<'a>(&'a Stats);

impl<'a> Connected<'a> {
    fn new(stats: &'a Stats) -> Connected<'a> {
        stats.connections.fetch_add(1, Ordering::Relaxed);
        Connected(stats)
    }
}

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One connection's bytes and parser steps, added to the [`Stats`] now and then (and at the
/// end), not on every read.
struct Tally<'a> {
    stats: &'a Stats,
    bytes: u64,
    steps: u64,
    published_steps: u64,
}

impl<'a> Tally<'a> {
    fn new(stats: &'a Stats) -> Tally<'a> {
        Tally {
            stats,
            bytes: 0,
            steps: 0,
            published_steps: 0,
        }
    }

    fn bytes(&mut self, n: usize) {
        self.bytes += n as u64;
        if self.bytes >= PUBLISH_EVERY {
            self.publish();
        }
    }

    /// Records the query's total steps so far.
    fn steps(&mut self, total: u64) {
        self.steps = total;
        if self.steps - self.published_steps >= PUBLISH_EVERY {
            self.publish();
        }
    }

    fn publish(&mut self) {
        let stats = self.stats;
        stats.input_bytes.fetch_add(self.bytes, Ordering::Relaxed);
        let steps = self.steps - self.published_steps;
        stats.parser_steps.fetch_add(steps, Ordering::Relaxed);
        self.bytes = 0;
        self.published_steps = self.steps;
    }
}

impl Drop for Tally<'_> {
    fn drop(&mut self) {
        self.publish();
    }
}

fn run(args: &Args) -> io::Result<()> {
    // In separate processes a SET in one connection would not be seen by the next.
    args.threads_only("its store")?;
    let shared = Shared {
        store: Store::new(),
        budget: Budget::new(args.parsed(MAX_MEMORY.name, DEFAULT_MAX_MEMORY)),
        stats: Stats::default(),
    };
    #[cfg(feature = "message")]
    if args.message_api() {
        return message_api::serve(args, shared);
    }
    let shared = Arc::new(shared);
    let handler = move |req: &mut StreamRequest| serve_connection(&shared, req);
    common::serve_tcp(args, args.builder(), handler)
}

fn main() -> ExitCode {
    let args = common::parse_args(&EXAMPLE);
    common::init_logging_at("warn");
    common::exit_status(run(&args))
}
