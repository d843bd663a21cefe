//! Upper-case echo over UDP, a classic Python socket tutorial's second program, on `socketserver`.
//!
//! One datagram in, its copy with ASCII letters upper-cased back to the sender (other UTF-8
//! bytes pass through unchanged). An empty datagram is a legal request and gets an empty reply.
//!
//! ```text
//! cargo run --example udp_upper                       # 127.0.0.1:9000, single mode
//! cargo run --example udp_upper -- --mode pool --workers 2 --addr 127.0.0.1:0
//! ```
//!
//! The tutorial's Python client works unchanged against it (see the README).

mod common;

use std::io;
use std::process::ExitCode;

use common::preview::preview;
use common::{Example, ModeName};
use socketserver::DatagramRequest;

const EXAMPLE: Example = Example {
    name: "udp_upper",
    about: "UDP upper-case echo: answers every datagram with a copy whose ASCII letters are upper-cased.",
    default_addr: "127.0.0.1:9000",
    default_mode: ModeName::Single,
    modes: ModeName::ALL,
    options: &[common::METRICS],
};

/// The handler: one datagram, one reply, sent from the server's socket to the sender.
fn upper_reply(req: &mut DatagramRequest) -> io::Result<()> {
    // Debug, and only the start: a flood of large datagrams must not become a flood of log.
    log::debug!("{} sent {}", req.peer_addr(), preview(req.data()));
    req.reply(&req.data().to_ascii_uppercase())
}

fn main() -> ExitCode {
    let args = common::parse_args(&EXAMPLE);
    common::init_logging();
    common::exit_status(common::serve_udp(&args, args.builder(), upper_reply))
}
