//! A minimal HTTP/1.1 server answering `hello` — enough for `wrk`, `curl` and browsers.
//!
//! * `GET /` (and `HEAD /`) answer `200` with the body `hello\n`; other paths `404`; other
//!   methods `405`. Behind a load balancer (`--proxy-protocol`, `--trusted-proxy`) the body
//!   names the client the balancer reported: `hello 203.0.113.9:51000\n`.
//! * Keep-alive: HTTP/1.1 connections stay open unless the request says `Connection: close`;
//!   HTTP/1.0 ones close unless it says `Connection: keep-alive`. Every response carries
//!   `Content-Length`. Pipelined requests are answered in order, one `send` per batch.
//! * Refusals close the connection after the response: `400` for a malformed request line or
//!   header (or HTTP/1.1 without `Host`), `413` for a body over 1 MiB, `431` for a head over
//!   `--max-head` bytes, `501` for `Transfer-Encoding`, `505` for other HTTP versions.
//! * Empty lines before a request line are skipped, counted against `--max-head` (`400` when a
//!   connection sends only those past it).
//! * A request head must arrive within `--header-timeout` seconds: the first one counted from
//!   the connection's start, later ones from their first byte. A connection that misses it is
//!   closed without a reply (as nginx's `client_header_timeout` does).
//! * An idle keep-alive connection is closed after `--idle-timeout` seconds.
//! * `--api message` (with `--mode single`, `pool` or `prefork`) serves the same answers behind
//!   the library's event loop, which buffers each head before the handler runs, as nginx does
//!   (see `message_api.rs`); `--header-timeout` then counts from a head's first byte.
//!
//! ```text
//! cargo run --release --example http_hello -- --addr 127.0.0.1:8000
//! wrk -t2 -c50 -d5s http://127.0.0.1:8000/
//! cargo run --release --example http_hello -- --addr 127.0.0.1:8000 --api message --mode single
//! ```
//!
//! Over TLS (the library's `tls` feature), in every mode and both APIs:
//!
//! ```text
//! cargo run --release --features tls --example http_hello -- --addr 127.0.0.1:8443 \
//!     --tls-cert server.crt --tls-key server.key
//! curl --cacert ca.pem https://localhost:8443/
//! ```

#[path = "../common/mod.rs"]
mod common;
mod head;
#[cfg(feature = "message")]
mod message_api;

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::process::ExitCode;
use std::time::Duration;

use common::{Args, Example, ExtraOption, ModeName, STACK_SIZE};
use head::{Head, HeadScanner, Refusal, Scan};
use socketserver::{Deadline, Limit, LimitExceeded, StreamRequest};

const EXAMPLE: Example = Example {
    name: "http_hello",
    about: "Minimal HTTP/1.1 server answering `hello`, with keep-alive.",
    default_addr: "127.0.0.1:8000",
    default_mode: ModeName::Threading,
    modes: ModeName::ALL,
    options: &[
        common::METRICS,
        MAX_HEAD,
        HEADER_TIMEOUT,
        IDLE_TIMEOUT,
        common::MAX_LIFETIME,
        common::PROXY_PROTOCOL,
        common::TRUSTED_PROXY,
        common::TLS_CERT,
        common::TLS_KEY,
        common::TLS_CLIENT_CA,
        STACK_SIZE,
        common::API,
        common::LOOPS,
    ],
};

const MAX_HEAD: ExtraOption = ExtraOption {
    name: "--max-head",
    value: "BYTES",
    help: "largest request head accepted; bigger ones get 431 (default 8192)",
    check: common::check_positive,
};

const HEADER_TIMEOUT: ExtraOption = ExtraOption {
    name: "--header-timeout",
    value: "SECS",
    help: "close a connection whose request head takes longer to arrive (default 10)",
    check: common::check_positive,
};

const IDLE_TIMEOUT: ExtraOption = ExtraOption {
    name: "--idle-timeout",
    value: "SECS",
    help: "close a connection after this long without a request (default 30)",
    check: common::check_positive,
};

/// Largest request body accepted (and skipped: this server has no use for bodies).
const MAX_BODY: usize = 1024 * 1024;
const BODY: &[u8] = b"hello\n";

/// The limits on a request head.
#[derive(Debug, Clone, Copy)]
struct HeadLimits {
    max_len: usize,
    timeout: Duration,
}

/// One connection: answer every complete request, send the batch when the input runs dry.
fn serve_connection(req: &mut StreamRequest, limits: HeadLimits) -> io::Result<()> {
    let max_head = limits.max_len;
    let hello = hello_body(req);
    let mut input = vec![0u8; (max_head + 1).max(16 * 1024)];
    let (mut start, mut filled) = (0, 0);
    let mut out = Vec::with_capacity(4096);
    let mut scanner = HeadScanner::new(max_head);
    // Body bytes of the last request still to be read and dropped.
    let mut body_left = 0usize;
    // The head deadline runs from the connection's start for the first request; for later ones
    // from their first byte (until then the connection is idle, and the idle timeout applies).
    let head_deadline = || Deadline::after(limits.timeout).named("request head");
    req.set_deadline(head_deadline());
    let mut timing = true;
    // Whether empty lines before the next request line have been dropped: its head has begun.
    let mut head_begun = false;
    loop {
        loop {
            let dropped = body_left.min(filled - start);
            (start, body_left) = (start + dropped, body_left - dropped);
            if body_left > 0 {
                break;
            }
            // Empty lines before a request line are dropped as they arrive, so the scanner
            // only ever resumes on the head itself.
            let len = match scanner.scan(&input[start..filled]) {
                Scan::More { skip } => {
                    start += skip;
                    head_begun |= skip > 0;
                    break;
                }
                Scan::Head { skip, len } => {
                    start += skip;
                    if timing {
                        req.clear_deadline();
                    }
                    (timing, head_begun) = (false, false);
                    len
                }
                Scan::TooLarge => return refuse(req, &mut out, TOO_LARGE),
                Scan::OnlyEmptyLines => return refuse(req, &mut out, ONLY_EMPTY_LINES),
            };
            let head = match accept(&input[start..start + len]) {
                Ok(head) => head,
                Err(refused) => return refuse(req, &mut out, refused),
            };
            respond(&head, &hello, &mut out);
            if !head.keep_alive {
                req.write_all(&out)?;
                return linger_close(req);
            }
            (start, body_left) = (start + len, head.content_length);
        }
        if !out.is_empty() {
            req.write_all(&out)?;
            out.clear();
        }
        if start == filled {
            (start, filled) = (0, 0);
        } else if filled == input.len() {
            input.copy_within(start..filled, 0);
            (start, filled) = (0, filled - start);
        }
        if !timing && body_left == 0 && (head_begun || filled > start) {
            req.set_deadline(head_deadline());
            timing = true;
        }
        // Idle between requests, a stopping server closes the connection (wait_for_request); a
        // request on its way is still answered.
        let idle = filled == start && body_left == 0 && !head_begun;
        let read = match idle {
            true => req.wait_for_request().and_then(|more| {
                if more {
                    req.read(&mut input[filled..])
                } else {
                    Ok(0)
                }
            }),
            false => req.read(&mut input[filled..]),
        };
        match read {
            Ok(0) => return Ok(()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The head never completed in time: close without a reply, as nginx does.
            Err(e) if LimitExceeded::find(&e).is_some_and(|l| l.limit() == Limit::Deadline) => {
                log::debug!("{}: {e}; closing", req.peer_addr());
                return Ok(());
            }
            // Idle past the timeout, or the client vanished: close quietly, as servers do.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::ConnectionReset
                ) =>
            {
                return Ok(())
            }
            Err(e) => return Err(e),
        }
    }
}

/// The hello page's body: `hello\n`, or with the PROXY protocol `hello <client>\n`, the client
/// the balancer reported (without it the peer is the connection's own, and the page stays the
/// constant benchmarks expect).
fn hello_body(req: &StreamRequest) -> Vec<u8> {
    #[cfg(feature = "proxy")]
    if req.proxy_addr().is_some() {
        return format!("hello {}\n", req.peer_addr()).into_bytes();
    }
    let _ = req;
    BODY.to_vec()
}

fn respond(head: &Head<'_>, hello: &[u8], out: &mut Vec<u8>) {
    let get = head.method == b"GET";
    let (status, body): (&str, &[u8]) = if !get && head.method != b"HEAD" {
        ("405 Method Not Allowed", b"method not allowed\n")
    } else if head.target != b"/" {
        ("404 Not Found", b"not found\n")
    } else {
        ("200 OK", hello)
    };
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: text/plain\r\nContent-Length: ");
    push_decimal(out, body.len());
    if status.starts_with("405") {
        out.extend_from_slice(b"\r\nAllow: GET, HEAD");
    }
    if !head.keep_alive {
        out.extend_from_slice(b"\r\nConnection: close");
    } else if head.http10 {
        out.extend_from_slice(b"\r\nConnection: keep-alive");
    }
    out.extend_from_slice(b"\r\n\r\n");
    if head.method != b"HEAD" {
        out.extend_from_slice(body);
    }
}

/// A refused request: the status to answer with, and why.
type Refused = (u16, &'static str);
const TOO_LARGE: Refused = (431, "request head too large");
const ONLY_EMPTY_LINES: Refused = (400, "only empty lines, no request line");

/// Parses a complete head, as [`HeadScanner`] found it, or says why it is refused.
fn accept(head: &[u8]) -> Result<Head<'_>, Refused> {
    let head = head::parse(head).map_err(|refusal| match refusal {
        Refusal::BadRequest(why) => (400, why),
        Refusal::NotImplemented => (501, "Transfer-Encoding is not supported"),
        Refusal::VersionNotSupported => (505, "only HTTP/1.0 and 1.1 are supported"),
    })?;
    if head.content_length > MAX_BODY {
        return Err((413, "request body too large"));
    }
    Ok(head)
}

/// Appends `n` in decimal, without the allocation of `to_string` (this runs for every response).
fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Sends the earlier responses and an error response, then closes.
fn refuse(req: &mut StreamRequest, out: &mut Vec<u8>, (status, why): Refused) -> io::Result<()> {
    log::debug!("{}: {status} ({why}); closing", req.peer_addr());
    // The answer and the lingering close have their own bounds, not what is left of the head's.
    req.clear_deadline();
    refusal(out, status, why);
    req.write_all(out)?;
    linger_close(req)
}

/// Appends the error response `status`, saying `why`, that ends a connection.
fn refusal(out: &mut Vec<u8>, status: u16, why: &str) {
    let reason = match status {
        400 => "Bad Request",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        _ => "HTTP Version Not Supported",
    };
    let body = format!("{why}\n");
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body.as_bytes());
}

/// Closes gracefully: closing a socket with unread input makes the kernel send a reset, which can
/// destroy the response before the client reads it. So send FIN (after a TLS `close_notify`,
/// which tells a TLS client the response ended here rather than being cut), then read and drop what the
/// client still sends, for a short, bounded while (nginx's "lingering close").
fn linger_close(req: &mut StreamRequest) -> io::Result<()> {
    req.shutdown(Shutdown::Write)?;
    req.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut sink = [0u8; 4096];
    let mut left: usize = 64 * 1024;
    while left > 0 {
        match req.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
    Ok(())
}

fn run(args: &Args) -> io::Result<()> {
    let limits = HeadLimits {
        max_len: args.parsed(MAX_HEAD.name, 8192),
        timeout: Duration::from_secs(args.parsed(HEADER_TIMEOUT.name, 10)),
    };
    let idle = args.parsed(IDLE_TIMEOUT.name, 30);
    #[cfg(feature = "message")]
    if args.message_api() {
        return message_api::serve(args, limits, Duration::from_secs(idle));
    }
    let handler = move |req: &mut StreamRequest| serve_connection(req, limits);
    let builder = args.builder().read_timeout(Duration::from_secs(idle));
    common::serve_tcp(args, builder, handler)
}

fn main() -> ExitCode {
    let args = common::parse_args(&EXAMPLE);
    common::init_logging_at("warn");
    common::exit_status(run(&args))
}
