//! `loadgen`: a bounded load generator for the benchmark servers, loopback only.
//!
//! N connections (`--conns`) each make up to M requests (`--requests`) of P bytes (`--size`) over
//! one workload — framed echo, line echo, the Redis protocol (`SET`/`GET`) or UDP echo — and every
//! reply is checked. The run also stops after `--duration` seconds, whichever comes first. It
//! prints throughput and p50/p99/p99.9 latency (`--json` for one machine-readable line), and
//! progress every second on runs longer than two seconds.
//!
//! ```text
//! cargo run --release --example echo_server -- --addr 127.0.0.1:7000 &
//! cargo run --release -p socketserver-bench --bin loadgen -- --addr 127.0.0.1:7000 --workload framed --conns 50 --size 64
//! cargo run --release -p socketserver-bench --bin loadgen -- --addr 127.0.0.1:6380 --workload resp --churn
//! cargo run --release -p socketserver-bench --bin loadgen -- --addr 127.0.0.1:7000 --idle 10000 --server-pid PID
//! ```
//!
//! `--churn` opens a new connection for every request. `--idle N` holds N more connections open,
//! silent, for the whole run (spread over the source addresses `--idle-from` lists); with
//! `--server-pid` it waits until the server has taken them and reports the server's memory (RSS)
//! per idle connection and its thread count. `--slowloris N` holds N connections that trickle a
//! request a byte at a time and reconnect when closed, while the clients run.
//!
//! Exit status: 0 when every reply was right, 1 when any was wrong or missing, 2 for bad
//! arguments.

#[path = "../../examples/common/mod.rs"]
mod common;
mod exchange;
mod latency;
mod options;
mod run;
mod slow;

use std::io::{self, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let options = match options::parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            print!("{}", options::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            let _ = write!(io::stderr(), "loadgen: {message}\n{}", options::USAGE);
            return ExitCode::from(2);
        }
    };
    common::init_logging_at("warn");
    match run::run(&options) {
        Ok(report) => {
            let line = if options.json {
                report.json()
            } else {
                report.text()
            };
            if let Err(e) = common::print_line(line) {
                return common::fail(e);
            }
            if report.failed() {
                let _ = writeln!(io::stderr(), "loadgen: {}", report.first_error());
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(e) => common::fail(e),
    }
}
