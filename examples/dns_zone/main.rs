//! An authoritative DNS server over UDP for one zone, read from a master file: the realistic
//! datagram workload for this crate's UDP servers, and checked with `dig`.
//!
//! It serves the subset of a master file NSD reads that most small zones use — `$ORIGIN`,
//! `$TTL`, and SOA, NS, A, AAAA and TXT records of class IN (see `zone.rs`) — and answers with
//! the AA bit; NXDOMAIN (or, for a name that exists without the type asked, NODATA) with the SOA
//! in the authority section; REFUSED for names outside the zone; FORMERR for malformed queries.
//! Without EDNS an answer larger than 512 bytes is sent empty with the TC bit (the client retries
//! over TCP, which this example does not serve); a query with an EDNS record gets answers up to
//! the size it offers (at most 4096 bytes) and an OPT record back. Names compare
//! case-insensitively, and the question comes back in the client's case.
//!
//! A bad datagram costs one answer or nothing: it never ends the server.
//!
//! ```text
//! cargo run --example dns_zone -- --addr 127.0.0.1:5353 --zone examples/dns_zone/example.zone
//! dig @127.0.0.1 -p 5353 www.example.org A
//! cargo run --example dns_zone -- --addr 127.0.0.1:5353 --zone examples/dns_zone/example.zone --mode pool --workers 2
//! ```

mod answer;
#[path = "../common/mod.rs"]
mod common;
mod wire;
mod zone;

use std::io;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use common::preview::preview;
use common::{Example, ExtraOption, ModeName};
use socketserver::DatagramRequest;
use zone::Zone;

/// `--zone FILE`: the zone to serve (required).
const ZONE: ExtraOption = ExtraOption {
    name: "--zone",
    value: "FILE",
    help: "the zone's master file (required)",
    check: common::any_value,
};

const EXAMPLE: Example = Example {
    name: "dns_zone",
    about:
        "Authoritative DNS over UDP for one zone read from a master file (SOA, NS, A, AAAA, TXT).",
    default_addr: "127.0.0.1:5353",
    default_mode: ModeName::Single,
    modes: ModeName::ALL,
    options: &[ZONE, common::METRICS],
};

fn main() -> ExitCode {
    let args = common::parse_args(&EXAMPLE);
    common::init_logging();
    let Some(path) = args.value(ZONE.name) else {
        args.usage_error("--zone FILE is required");
    };
    // Read before binding, so a bad zone stops the server with the file's line, not a warning.
    let zone = match Zone::load(Path::new(path)) {
        Ok(zone) => Arc::new(zone),
        Err(e) => return common::fail(e),
    };
    if !socketserver::is_worker() {
        log::info!("serving zone {} from {path}", zone.origin);
    }
    let handler = move |req: &mut DatagramRequest| -> io::Result<()> {
        match answer::respond(&zone, req.data()) {
            Some(reply) => req.reply(&reply),
            None => {
                // Debug, and only the start: a flood of junk must not become a flood of log.
                log::debug!(
                    "{} sent a non-query {}",
                    req.peer_addr(),
                    preview(req.data())
                );
                Ok(())
            }
        }
    };
    common::exit_status(common::serve_udp(&args, args.builder(), handler))
}
