//! The echo servers the benchmarks drive: framed echo, line echo or UDP echo, in any mode.
//!
//! * `--proto framed` (default): each message is a 4-byte big-endian length and that many bytes
//!   (at most 16 MiB); every frame comes back unchanged, header and payload in one write. Frames
//!   are read with the crate's `framing` into one buffer per connection that grows only as bytes
//!   arrive: a length announced but never sent costs 64 KiB, not the frame.
//! * `--proto line`: every `\n`-terminated line comes back unchanged.
//! * `--proto udp`: every datagram comes back unchanged (up to 65507 bytes).
//!
//! ```text
//! cargo run --release --example echo_server -- --addr 127.0.0.1:0 --mode pool --workers 8
//! cargo run --release -p socketserver-bench --bin loadgen -- --addr 127.0.0.1:PORT --workload framed --conns 50
//! ```
//!
//! `std_echo` serves the same protocols with no framework, as the floor to compare against.

mod common;

use std::io;
use std::process::ExitCode;

use common::frame::{echo_frames, echo_lines, PROTO};
use common::{Args, Example, ModeName, STACK_SIZE};
use socketserver::{DatagramRequest, StreamRequest};

const EXAMPLE: Example = Example {
    name: "echo_server",
    about:
        "Echo server for benchmarks: framed (4-byte big-endian length prefix), line or UDP echo.",
    default_addr: "127.0.0.1:7000",
    default_mode: ModeName::Threading,
    modes: ModeName::ALL,
    options: &[
        PROTO,
        STACK_SIZE,
        common::IDLE_TIMEOUT,
        common::MAX_LIFETIME,
    ],
};

/// The largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;

fn framed(req: &mut StreamRequest) -> io::Result<()> {
    ended_by_peer(echo_frames(req))
}

fn lines(req: &mut StreamRequest) -> io::Result<()> {
    ended_by_peer(echo_lines(req))
}

fn datagram(req: &mut DatagramRequest) -> io::Result<()> {
    req.reply(req.data())
}

/// A peer that resets the connection has merely left: not worth an error report per connection
/// when a load generator closes hundreds of them.
fn ended_by_peer(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(()),
        other => other,
    }
}

fn run(args: &Args) -> io::Result<()> {
    let builder = args.builder();
    match args.value(PROTO.name).unwrap_or("framed") {
        "udp" => common::serve_udp(args, builder.max_packet_size(MAX_DATAGRAM), datagram),
        "line" => common::serve_tcp(args, builder, lines),
        _ => common::serve_tcp(args, builder, framed),
    }
}

fn main() -> ExitCode {
    let args = common::parse_args(&EXAMPLE);
    common::init_logging_at("warn");
    common::exit_status(run(&args))
}
