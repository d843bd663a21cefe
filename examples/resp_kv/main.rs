//! A key-value server speaking the Redis protocol (RESP2), enough for `redis-benchmark` and
//! `redis-cli`: `PING` (inline and multibulk), `SET`, `GET`, `INCR`, `LPUSH`/`RPUSH`,
//! `LPOP`/`RPOP`, `DEL`, `ECHO`, `QUIT`, and Redis's error reply for anything else.
//!
//! Pipelining works: every complete command in the input is answered in order into one buffer,
//! which is sent when no further complete command is waiting — one `send` per batch, not per
//! reply. The store is shared by all connections, spread over 64 locked shards.
//!
//! ```text
//! cargo run --release --example resp_kv -- --addr 127.0.0.1:6380 --mode threading
//! redis-benchmark -p 6380 -t ping,set,get -c 50 -P 16 -q
//! redis-cli -p 6380 set greeting hello
//! ```

mod commands;
#[path = "../common/mod.rs"]
mod common;
mod protocol;
mod store;

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::sync::Arc;

use commands::{Argv, Next};
use common::{Args, Example, ModeName, STACK_SIZE};
use protocol::Parsed;
use socketserver::StreamRequest;
use store::Store;

const EXAMPLE: Example = Example {
    name: "resp_kv",
    about: "Key-value server speaking the Redis protocol (RESP2): PING, SET, GET, INCR, LPUSH, \
            LPOP, DEL; pipelining supported.",
    default_addr: "127.0.0.1:6380",
    default_mode: ModeName::Threading,
    options: &[STACK_SIZE],
};

/// Initial input buffer; reads go straight into it when at least `READ_CHUNK` bytes are free.
const INITIAL_BUFFER: usize = 16 * 1024;
/// Free space wanted before a read: at least the `StreamRequest`'s own buffer, so the read skips
/// that buffer and lands here directly.
const READ_CHUNK: usize = 8 * 1024;
/// Most input one connection may hold unanswered (a command still arriving): beyond it the
/// connection is closed with an error, so a bad peer cannot exhaust memory.
const MAX_QUERY: usize = 2 * protocol::MAX_BULK + 64 * 1024;
/// Replies are sent early once this much has piled up, even mid-batch.
const MAX_PENDING_OUTPUT: usize = 64 * 1024;

/// One connection: parse every complete command, answer into `out`, send when the input runs dry.
fn serve_connection(store: &Store, req: &mut StreamRequest) -> io::Result<()> {
    let mut input = vec![0u8; INITIAL_BUFFER];
    let (mut start, mut filled) = (0, 0);
    let mut out = Vec::with_capacity(INITIAL_BUFFER);
    let mut ranges = Vec::new();
    loop {
        loop {
            let pending = &input[start..filled];
            match protocol::parse(pending, &mut ranges) {
                Parsed::Command(used) => {
                    let argv = Argv {
                        input: pending,
                        ranges: &ranges,
                    };
                    let next = commands::execute(store, &argv, &mut out);
                    start += used;
                    if next == Next::Close {
                        return req.write_all(&out);
                    }
                    if out.len() >= MAX_PENDING_OUTPUT {
                        req.write_all(&out)?;
                        out.clear();
                    }
                }
                Parsed::Empty(used) => start += used,
                Parsed::Incomplete => break,
                Parsed::Error(what) => {
                    protocol::error(&mut out, &format!("ERR Protocol error: {what}"));
                    log::debug!("{}: protocol error ({what}); closing", req.peer_addr());
                    return req.write_all(&out);
                }
            }
        }
        // No complete command left: this batch is answered.
        if !out.is_empty() {
            req.write_all(&out)?;
            out.clear();
        }
        if start == filled {
            (start, filled) = (0, 0);
        }
        if input.len() - filled < READ_CHUNK {
            input.copy_within(start..filled, 0);
            (start, filled) = (0, filled - start);
        }
        if input.len() - filled < READ_CHUNK {
            if input.len() >= MAX_QUERY {
                protocol::error(&mut out, "ERR Protocol error: query buffer over limit");
                return req.write_all(&out);
            }
            input.resize(input.len() * 2, 0);
        }
        match req.read(&mut input[filled..]) {
            Ok(0) => return Ok(()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A client that drops the connection has simply left.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

fn run(args: &Args) -> io::Result<()> {
    // In separate processes a SET in one connection would not be seen by the next.
    args.threads_only("its store")?;
    let store = Arc::new(Store::new());
    let handler = move |req: &mut StreamRequest| serve_connection(&store, req);
    common::serve_tcp(args, args.builder(), handler)
}

fn main() -> ExitCode {
    let args = common::parse_args(&EXAMPLE);
    common::init_logging_at("warn");
    common::exit_status(run(&args))
}
