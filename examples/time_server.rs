//! A UDP time server — the Python socket tutorial's "NTP example", as a `socketserver` server.
//!
//! Every datagram is a `strftime` format; the reply is the server's *local* time in that format.
//! An empty datagram means `%Y-%m-%d %X`. As in the tutorial, the server sets `SO_REUSEADDR`.
//!
//! ```text
//! cargo run --example time_server                     # 127.0.0.1:9000, single mode
//! cargo run --example client -- time --addr 127.0.0.1:9000 '%H:%M:%S'
//! ```
//!
//! Requests the tutorial's server would crash on, or answer with something unusable, get a
//! one-datagram reply starting with `error: ` instead, and the server goes on:
//!
//! * a format that is not UTF-8 (the tutorial's `msg.decode('utf-8')` raises), or contains a NUL
//!   byte (C's `strftime` would stop there);
//! * a format whose result would be longer than [`MAX_REPLY`] bytes (`%c` repeated a thousand
//!   times, say): UDP cannot carry an unbounded reply, and the tutorial's clients read 1024 bytes;
//! * a format whose result is empty, which an empty datagram would report as nothing at all.
//!
//! The time is formatted by the C library (`localtime_r` + `strftime`), as Python's
//! `time.strftime` does, so every conversion Python accepts on this system works here, with the
//! same output: neither program calls `setlocale` for `LC_TIME`, so both use the "C" locale's
//! names (`Mon`, `Jan`, `AM`).

mod common;

use std::ffi::CString;
use std::io;
use std::process::ExitCode;

use common::preview::preview;
use common::{Args, Example, ModeName};
use socketserver::DatagramRequest;

const EXAMPLE: Example = Example {
    name: "time_server",
    about: "UDP time server: answers every datagram, a strftime format (empty: %Y-%m-%d %X), with the local time in that format.",
    default_addr: "127.0.0.1:9000",
    default_mode: ModeName::Single,
    modes: ModeName::ALL,
    options: &[common::METRICS],
};

/// The format used for an empty datagram, as in the tutorial.
const DEFAULT_FORMAT: &str = "%Y-%m-%d %X";

/// The longest reply, in bytes. Well under UDP's 65,507-byte limit, and as large as a request may
/// be (the default `max_packet_size`), so an ordinary format never comes near it.
const MAX_REPLY: usize = 8192;

/// The first output buffer tried; it grows by doubling up to `MAX_REPLY`, so the usual 20-byte
/// answer costs one small allocation.
const FIRST_BUFFER: usize = 256;

/// The handler: one format in, one reply out.
fn time_reply(req: &mut DatagramRequest) -> io::Result<()> {
    let reply = match reply_for(req.data()) {
        Ok(time) => time.into_bytes(),
        Err(why) => {
            log::debug!("{}: {why}", req.peer_addr());
            format!("error: {why}").into_bytes()
        }
    };
    // Debug: a line per request would let a flood of requests flood the log.
    log::debug!(
        "{} asked {}, answered {} bytes",
        req.peer_addr(),
        preview(req.data()),
        reply.len()
    );
    req.reply(&reply)
}

/// The local time formatted as the request asks, or why it cannot be.
fn reply_for(request: &[u8]) -> Result<String, String> {
    let format = match std::str::from_utf8(request) {
        Ok("") => DEFAULT_FORMAT,
        Ok(format) => format,
        Err(e) => {
            return Err(format!(
                "the format is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ))
        }
    };
    let now = local_now()?;
    let formatted = strftime(format, &now)?;
    if formatted.is_empty() {
        return Err(format!(
            "the format {} produces an empty time string",
            preview(format.as_bytes())
        ));
    }
    Ok(formatted)
}

/// The current time, broken down in the server's time zone (`TZ`, or the system's).
fn local_now() -> Result<libc::tm, String> {
    // SAFETY: `time` with a null pointer only returns the time.
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    // SAFETY: `tm` is plain data; an all-zero value is valid (its pointer field is null).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // `localtime_r`, not `localtime`: the re-entrant form writes into our `tm` instead of a static
    // buffer, so handlers on several threads (`--mode threading|pool`) cannot overwrite each
    // other's result. SAFETY: both pointers are valid for the call.
    let result = unsafe { libc::localtime_r(&now, &mut tm) };
    if result.is_null() {
        return Err(format!(
            "cannot convert the time to local time: {}",
            io::Error::last_os_error()
        ));
    }
    Ok(tm)
}

/// `strftime(format, tm)`, with an output buffer that grows up to [`MAX_REPLY`] bytes.
fn strftime(format: &str, tm: &libc::tm) -> Result<String, String> {
    // C's `strftime` returns 0 both when the result is empty and when it did not fit, so it cannot
    // tell "grow the buffer" from "done". Appending one space to the format makes every result at
    // least one byte long: 0 then always means "did not fit". The space is removed afterwards.
    let with_sentinel = CString::new(format!("{format} "))
        .map_err(|_| "the format contains a NUL byte, which strftime cannot accept".to_string())?;
    let mut size = FIRST_BUFFER;
    loop {
        let mut buf = vec![0u8; size];
        // SAFETY: `buf` is writable for `buf.len()` bytes, the format is NUL-terminated, and `tm`
        // came from `localtime_r`. `strftime` writes at most `buf.len()` bytes, terminator
        // included, and returns how many it wrote before the terminator (0 if they did not fit).
        let written = unsafe {
            libc::strftime(
                buf.as_mut_ptr().cast(),
                buf.len(),
                with_sentinel.as_ptr(),
                tm,
            )
        };
        if written > 0 {
            buf.truncate(written - 1); // drop the sentinel space
                                       // The "C" locale's names are ASCII and the format is UTF-8 with `%` conversions
                                       // replaced whole, so the result is UTF-8; a lossy conversion guards against a C library
                                       // that thinks otherwise rather than trusting it.
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
        if size >= MAX_REPLY + 2 {
            return Err(format!(
                "the formatted time would be longer than {MAX_REPLY} bytes; send a shorter format"
            ));
        }
        // The last size tried holds the longest reply, the sentinel space and the NUL terminator.
        size = (size * 2).min(MAX_REPLY + 2);
    }
}

/// Binds the server in the chosen mode, with `SO_REUSEADDR` as in the tutorial, and serves until
/// the process is stopped.
fn run(args: &Args) -> io::Result<()> {
    common::serve_udp(args, args.builder().reuse_address(true), time_reply)
}

extern "C" {
    /// POSIX `tzset`, which the `libc` crate does not declare for every Unix.
    fn tzset();
}

fn main() -> ExitCode {
    let args = common::parse_args(&EXAMPLE);
    common::init_logging();
    // Read `TZ` and the zone files once, before any handler thread exists: POSIX does not promise
    // that `localtime_r` does it, and `tzset` is not safe to run concurrently with itself.
    // SAFETY: no other thread is running yet.
    unsafe { tzset() };
    common::exit_status(run(&args))
}
