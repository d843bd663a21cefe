//! The echo servers the benchmarks drive: framed echo, line echo or UDP echo, in any mode.
//!
//! * `--proto framed` (default): each message is a 4-byte big-endian length and that many bytes
//!   (at most 16 MiB); every frame comes back unchanged, header and payload in one write. Frames
//!   are read with the crate's `framing` into one buffer per connection that grows only as bytes
//!   arrive: a length announced but never sent costs 64 KiB, not the frame.
//! * `--proto line`: every `\n`-terminated line comes back unchanged.
//! * `--proto udp`: every datagram comes back unchanged (up to 65507 bytes).
//!
//! With `--api message` (framed and line only; `--mode single`, `pool` or `prefork`) the same
//! protocols are served by a message server: the library's event loop waits on every connection,
//! and the handler is called with each whole frame or line, so idle connections cost no thread.
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
        common::METRICS,
        PROTO,
        STACK_SIZE,
        common::IDLE_TIMEOUT,
        common::MAX_LIFETIME,
        common::API,
        common::MESSAGE_TIMEOUT,
        common::LOOPS,
        common::PROXY_PROTOCOL,
        common::TRUSTED_PROXY,
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
    #[cfg(feature = "message")]
    if args.message_api() {
        return messages::serve(args, builder);
    }
    match args.value(PROTO.name).unwrap_or("framed") {
        "udp" => common::serve_udp(args, builder.max_packet_size(MAX_DATAGRAM), datagram),
        "line" => common::serve_tcp(args, builder, lines),
        _ => common::serve_tcp(args, builder, framed),
    }
}

/// The same echoes as a message server: the loop cuts frames or lines, the handler echoes each.
#[cfg(feature = "message")]
mod messages {
    use std::io::{self, Write};

    use socketserver::framing::Framing;
    use socketserver::message::{message_handler, Frame, Framer, LengthPrefixed, Lines};
    use socketserver::Builder;

    use super::common::frame::PROTO;
    use super::common::{self, Args};

    /// The 16 MiB frames of the stream version.
    const MAX_FRAME: u64 = 16 * 1024 * 1024;

    pub fn serve(args: &Args, builder: Builder) -> io::Result<()> {
        match args.value(PROTO.name).unwrap_or("framed") {
            "udp" => args.usage_error("--api message serves framed or line, not udp"),
            "line" => {
                let echo = message_handler(|line, reply| reply.write_all(line));
                common::serve_messages(args, builder, WholeLines(Lines::new()), echo)
            }
            _ => {
                let framing = Framing::new().max_frame_len(MAX_FRAME);
                let echo =
                    message_handler(move |payload, reply| framing.write_frame(reply, payload));
                common::serve_messages(args, builder, LengthPrefixed::new(framing), echo)
            }
        }
    }

    /// Lines handed over with their `\n` (and any `\r`), so they come back byte for byte.
    #[derive(Clone)]
    struct WholeLines(Lines);

    impl Framer for WholeLines {
        fn frame(&mut self, buffered: &[u8]) -> io::Result<Option<Frame>> {
            Ok(self.0.frame(buffered)?.map(|f| Frame::whole(f.consumed)))
        }
        fn limit(&self) -> usize {
            self.0.limit()
        }
    }
}

fn main() -> ExitCode {
    let args = common::parse_args(&EXAMPLE);
    common::init_logging_at("warn");
    common::exit_status(run(&args))
}
