//! Upper-case echo over TCP, a classic Python socket tutorial's first program, on `socketserver`.
//!
//! Each connection is served by a loop that reads up to 1024 bytes and answers them with their
//! ASCII letters upper-cased (other UTF-8 bytes pass through unchanged, as with Python's
//! `bytes.upper()`). A read of 0 bytes means the client left: that connection ends and the server
//! goes on serving the others. On SIGTERM or SIGINT the server stops gracefully: idle connections
//! end at once (`wait_for_request`), a chunk on its way is still answered, and it exits 0.
//!
//! ```text
//! cargo run --example echo_upper                      # 127.0.0.1:8080, threading mode
//! cargo run --example echo_upper -- --mode single     # one client at a time, like the tutorial
//! cargo run --example echo_upper -- --mode pool --workers 4 --addr 127.0.0.1:0
//! cargo run --example echo_upper -- --mode process     # a child process per connection
//! cargo run --example echo_upper -- --mode prefork --workers 4
//! ```
//!
//! Over TLS (the library's `tls` feature), in any mode; SIGHUP reloads the certificate files:
//!
//! ```text
//! cargo run --features tls --example echo_upper -- --tls-cert server.crt --tls-key server.key
//! openssl s_client -connect 127.0.0.1:8080 -CAfile ca.pem -quiet     # type lines
//! ```
//!
//! The tutorial's Python client works unchanged against it (see the README). Stripped of the
//! command line, the whole server is:
//!
//! ```text
//! ThreadingTcpServer::bind("127.0.0.1:8080", upper_echo)?.serve_forever()
//! ```

mod common;

use std::io::{self, Read, Write};
use std::process::ExitCode;

use common::preview::preview;
use common::{Example, ModeName};
use socketserver::StreamRequest;

const EXAMPLE: Example = Example {
    name: "echo_upper",
    about: "TCP upper-case echo: answers every chunk a client sends with its ASCII letters upper-cased.",
    default_addr: "127.0.0.1:8080",
    default_mode: ModeName::Threading,
    modes: ModeName::ALL,
    options: &[
        common::METRICS,
        common::IDLE_TIMEOUT,
        common::MAX_LIFETIME,
        common::PROXY_PROTOCOL,
        common::TRUSTED_PROXY,
        common::TLS_CERT,
        common::TLS_KEY,
        common::TLS_CLIENT_CA,
    ],
};

/// The handler: the tutorial's "communication loop" for one connection.
fn upper_echo(req: &mut StreamRequest) -> io::Result<()> {
    let peer = req.peer_addr().clone();
    // Debug, like every per-request line: connections are cheap to open by the thousand.
    log::debug!("connection from {peer}");
    let mut buf = [0u8; 1024];
    loop {
        // Between two chunks the connection is idle: a server that is stopping ends it here, so
        // an idle client cannot hold the stop (a chunk already on its way is still answered).
        match req.wait_for_request() {
            Ok(true) => {}
            Ok(false) => break, // the client closed the connection, or the server is stopping
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        }
        let n = match req.read(&mut buf) {
            Ok(0) => break, // the client closed the connection
            Ok(n) => n,
            // The client vanished without closing cleanly: for this server, the same as leaving.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        log::debug!("{peer} sent {}", preview(&buf[..n]));
        req.write_all(&buf[..n].to_ascii_uppercase())?;
    }
    log::debug!("{peer} left");
    Ok(())
}

fn main() -> ExitCode {
    let args = common::parse_args(&EXAMPLE);
    common::init_logging();
    common::exit_status(common::serve_tcp(&args, args.builder(), upper_echo))
}
