//! Upper-case echo for authenticated clients only — the Python tutorial's HMAC challenge–response.
//!
//! Every new connection first gets 32 random bytes; the client must answer with
//! `HMAC(secret, challenge)` within the handshake deadline, or the connection is closed. Then the
//! server answers every chunk with its ASCII letters upper-cased, like `echo_upper`.
//!
//! ```text
//! SOCKETSERVER_SECRET='linhaifeng bang bang bang' cargo run --example auth_echo -- --digest md5
//! cargo run --example auth_echo -- --secret-file key.txt           # HMAC-SHA256
//! cargo run --example client -- auth-echo --addr 127.0.0.1:9999 --digest md5   # a client
//! ```
//!
//! The key comes from `SOCKETSERVER_SECRET` or `--secret-file PATH`, never from the command line
//! (where `ps` would show it). `--digest md5` speaks with the tutorial's Python clients, which use
//! `hmac.new(secret_key, msg)` — HMAC-MD5 (Python 3.8 and later need `digestmod='md5'` spelled
//! out). The handshake proves the client knows the key; it does not encrypt the echo that follows
//! (see `socketserver::auth`).

mod common;

use std::io::{self, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use common::{Args, Example, ExtraOption, ModeName};
use socketserver::auth::{Authenticator, Digest, Secret};
use socketserver::StreamRequest;

const EXAMPLE: Example = Example {
    name: "auth_echo",
    about: "TCP upper-case echo that serves only clients passing an HMAC challenge-response handshake, as in the Python tutorial.",
    default_addr: "127.0.0.1:9999",
    default_mode: ModeName::Threading,
    modes: ModeName::ALL,
    options: &[
        common::METRICS,
    ExtraOption {
        name: "--secret-file",
        value: "PATH",
        help: "read the key from this file (default: $SOCKETSERVER_SECRET)",
        check: common::any_value,
    },
    ExtraOption {
        name: "--digest",
        value: "md5|sha256",
        help: "HMAC hash; md5 for the Python tutorial clients (default sha256)",
        check: common::check_parses::<Digest>,
    },
    ExtraOption {
        name: "--handshake-timeout",
        value: "SECS",
        help: "how long a client may take to answer the challenge (default 10)",
        check: common::check_parses::<f64>,
    },
    common::IDLE_TIMEOUT,
    common::MAX_LIFETIME,
    ],
};

/// The echo, once the client is authenticated.
fn upper_echo(req: &mut StreamRequest) -> io::Result<()> {
    let peer = req.peer_addr().clone();
    // Debug, like every per-connection line: connections are cheap to open by the thousand.
    log::debug!("{peer} authenticated");
    let mut buf = [0u8; 1024];
    loop {
        match req.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => req.write_all(&buf[..n].to_ascii_uppercase())?,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    log::debug!("{peer} left");
    Ok(())
}

/// The authenticator configured by the command line and the environment.
fn authenticator(args: &Args) -> io::Result<Authenticator> {
    let file = args.value("--secret-file").map(Path::new);
    let secret = Secret::load(file, "SOCKETSERVER_SECRET")?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "no secret key: set SOCKETSERVER_SECRET or pass --secret-file PATH",
        )
    })?;
    let digest = args.parsed("--digest", Digest::Sha256);
    let secs: f64 = args.parsed("--handshake-timeout", 10.0);
    if !(secs > 0.0 && secs.is_finite()) {
        args.usage_error("--handshake-timeout must be a positive number of seconds");
    }
    Ok(Authenticator::new(secret)
        .digest(digest)
        .timeout(Duration::from_secs_f64(secs)))
}

fn run(args: &Args) -> io::Result<()> {
    let auth = authenticator(args)?;
    log::info!(
        "clients must answer an HMAC-{} challenge",
        auth.digest_in_use()
    );
    let handler = auth.require(upper_echo);
    common::serve_tcp(args, args.builder(), handler)
}

fn main() -> ExitCode {
    let args = common::parse_args(&EXAMPLE);
    common::init_logging();
    common::exit_status(run(&args))
}
