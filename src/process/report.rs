//! A prefork worker's reports to its parent, over a pipe of its own: `ready` once it serves, then
//! its counters whenever they change, so the parent's `stats()` covers the whole server and a
//! rolling reload knows when a fresh worker has taken over.
//!
//! Lines: `ready`, and `stats <accepted> <active> <completed> <failed> <rejected> <accept_errors>`.
//! Each is written whole in one `write` (far below `PIPE_BUF`), so lines never interleave.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use super::role::inherited;
use crate::control::ServerHandle;
use crate::stats::Stats;

/// The private environment variable naming the write end of the report pipe in a worker.
pub(crate) const REPORT_VAR: &str = "SOCKETSERVER_PROCESS_REPORT";
/// How often a worker looks whether its counters changed.
const REPORT_INTERVAL: Duration = Duration::from_millis(50);

// ------------------------------------------------------------------------------------------
// The worker's side

/// The inherited write end, when this process is a worker that was given one.
fn channel() -> Option<&'static Mutex<File>> {
    static CHANNEL: OnceLock<Option<Mutex<File>>> = OnceLock::new();
    CHANNEL
        .get_or_init(|| {
            let fd: RawFd = std::env::var(REPORT_VAR).ok()?.parse().ok()?;
            // Inherited means addressed to this process (see `role::detected`).
            if fd < 0 || !inherited(fd) {
                return None;
            }
            // SAFETY: `fd` is open without close-on-exec, the mark of a descriptor the parent
            // passed to this process alone, and nothing else here owns it.
            let file = unsafe { File::from_raw_fd(fd) };
            // Programs a handler runs must not hold the parent's pipe open.
            // SAFETY: F_SETFD on a descriptor this process owns.
            unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
            Some(Mutex::new(file))
        })
        .as_ref()
}

fn send(line: &str) {
    if let Some(channel) = channel() {
        let mut file = channel.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = file.write_all(line.as_bytes()) {
            log::debug!("cannot report to the prefork parent: {e}");
        }
    }
}

fn stats_line(s: &Stats) -> String {
    format!(
        "stats {} {} {} {} {} {} {} {} {}\n",
        s.accepted,
        s.active,
        s.completed,
        s.failed,
        s.rejected,
        s.accept_errors,
        s.messages,
        s.message_failures,
        s.tls_handshake_failures
    )
}

/// In a worker about to serve: tells the parent, and starts reporting `server`'s counters.
pub(crate) fn start_reporting(server: ServerHandle) {
    if channel().is_none() {
        return;
    }
    send("ready\n");
    let spawned = std::thread::Builder::new()
        .name("socketserver-report".to_string())
        .spawn(move || {
            let mut last = Stats::default();
            loop {
                let now = server.stats();
                if now != last {
                    send(&stats_line(&now));
                    last = now;
                }
                std::thread::sleep(REPORT_INTERVAL);
            }
        });
    if let Err(e) = spawned {
        log::warn!("cannot start the thread that reports this worker's counters: {e}");
    }
}

/// In a worker about to exit: its final counters.
pub(crate) fn report_final(stats: &Stats) {
    send(&stats_line(stats));
}

// ------------------------------------------------------------------------------------------
// The parent's side

/// The read end of one worker's report pipe, and what it said last.
#[derive(Debug)]
pub(crate) struct Reports {
    reader: File,
    pending: Vec<u8>,
    /// The worker's latest counters.
    pub(crate) last: Stats,
    /// Whether the worker said it serves.
    pub(crate) ready: bool,
}

impl Reports {
    /// A new pipe: the parent's reading side, and the write end to pass to the worker (both
    /// close-on-exec; the spawn clears the flag in the child only).
    pub(crate) fn pipe() -> io::Result<(Reports, OwnedFd)> {
        let (reader, writer) = io::pipe()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot create a report pipe: {e}")))?;
        let reader = File::from(OwnedFd::from(reader));
        // SAFETY: F_SETFL on a descriptor we own; the supervisor must never block on it.
        if unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } == -1 {
            return Err(io::Error::last_os_error());
        }
        let reports = Reports {
            reader,
            pending: Vec::new(),
            last: Stats::default(),
            ready: false,
        };
        Ok((reports, OwnedFd::from(writer)))
    }

    /// Reads whatever the worker wrote since the last call, without blocking.
    pub(crate) fn read(&mut self) {
        let mut buf = [0u8; 1024];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break, // WouldBlock: nothing more for now.
            }
        }
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.apply(String::from_utf8_lossy(&line).trim_end());
        }
    }

    fn apply(&mut self, line: &str) {
        if line == "ready" {
            self.ready = true;
        } else if let Some(stats) = parse_stats(line) {
            self.last = stats;
        } else {
            log::debug!("prefork: ignoring report line {line:?}");
        }
    }
}

fn parse_stats(line: &str) -> Option<Stats> {
    let fields: Vec<u64> = line
        .strip_prefix("stats ")?
        .split(' ')
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // Six fields from a worker built before message counters existed (a reload from a program
    // file of an older version), eight before TLS, nine from this one.
    let (base, messages, message_failures, tls) = match fields[..] {
        [a, b, c, d, e, f] => ([a, b, c, d, e, f], 0, 0, 0),
        [a, b, c, d, e, f, g, h] => ([a, b, c, d, e, f], g, h, 0),
        [a, b, c, d, e, f, g, h, i, ..] => ([a, b, c, d, e, f], g, h, i),
        _ => return None,
    };
    let [accepted, active, completed, failed, rejected, accept_errors] = base;
    Some(Stats {
        accepted,
        active,
        completed,
        failed,
        rejected,
        accept_errors,
        messages,
        message_failures,
        tls_handshake_failures: tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_read_back_as_written_even_split_across_reads() {
        let (mut reports, writer) = Reports::pipe().unwrap();
        let mut writer = File::from(writer);
        let stats = Stats {
            accepted: 7,
            active: 1,
            completed: 5,
            failed: 1,
            rejected: 0,
            accept_errors: 2,
            messages: 40,
            message_failures: 3,
            tls_handshake_failures: 4,
        };
        let line = stats_line(&stats);
        writer.write_all(b"ready\n").unwrap();
        writer.write_all(&line.as_bytes()[..5]).unwrap();
        reports.read();
        assert!(reports.ready);
        assert_eq!(reports.last, Stats::default(), "half a line is not applied");
        writer.write_all(&line.as_bytes()[5..]).unwrap();
        reports.read();
        assert_eq!(reports.last, stats);
    }

    #[test]
    fn malformed_lines_are_ignored() {
        for line in [
            "stats 1 2 3",
            "stats 1 2 3 4 5 6 7",
            "stats a 2 3 4 5 6",
            "hello",
        ] {
            assert_eq!(parse_stats(line), None, "{line:?}");
        }
    }
}
