//! A prefork worker's reports to its parent, over a pipe of its own: `ready` once it serves, then
//! its counters whenever they change, so the parent's `stats()` covers the whole server and a
//! rolling reload knows when a fresh worker has taken over.
//!
//! Lines: `ready`, and the counters twice: `stats <accepted> <active> <completed> <failed>
//! <rejected> <accept_errors> <messages> <message_failures> <tls_handshake_failures>` (what
//! parents of every version read), then `stats2 name=value ...`, every counter by name, a
//! histogram as `name=<bucket>,<bucket>,...,<sum>`. A parent takes the names it knows and skips
//! the others, so either side may be a newer program than the other (a reload from a program file
//! of another version). Both lines go in one `write` (well below `PIPE_BUF`), so lines never
//! interleave.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use super::role::inherited;
use crate::control::ServerHandle;
use crate::stats::{LatencyHistogram, Stats, BUCKETS};

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

/// The counters of a `stats2` line, by name.
fn counters(s: &Stats) -> [(&'static str, u64); 26] {
    let c = &s.closed_by;
    [
        ("accepted", s.accepted),
        ("active", s.active),
        ("completed", s.completed),
        ("failed", s.failed),
        ("rejected", s.rejected),
        ("accept_errors", s.accept_errors),
        ("messages", s.messages),
        ("message_failures", s.message_failures),
        ("tls_handshake_failures", s.tls_handshake_failures),
        ("refused", s.refused),
        ("panics", s.panics),
        ("message_panics", s.message_panics),
        ("bytes_in", s.bytes_in),
        ("bytes_out", s.bytes_out),
        ("closed_idle", c.idle),
        ("closed_lifetime", c.lifetime),
        ("closed_deadline", c.deadline),
        ("closed_message_timeout", c.message_timeout),
        ("closed_slow_reader", c.slow_reader),
        ("closed_over_budget", c.over_budget),
        ("closed_proxy_header", c.proxy_header),
        ("closed_handshake", c.handshake),
        ("queue_depth", s.queue_depth),
        ("busy_workers", s.busy_workers),
        ("pushes_sent", s.pushes_sent),
        ("pushes_dropped", s.pushes_dropped),
    ]
}

/// Sets the counter `name` of a `stats2` line; false for a name this version does not know.
fn set_counter(s: &mut Stats, name: &str, value: u64) -> bool {
    let c = &mut s.closed_by;
    let field = match name {
        "accepted" => &mut s.accepted,
        "active" => &mut s.active,
        "completed" => &mut s.completed,
        "failed" => &mut s.failed,
        "rejected" => &mut s.rejected,
        "accept_errors" => &mut s.accept_errors,
        "messages" => &mut s.messages,
        "message_failures" => &mut s.message_failures,
        "tls_handshake_failures" => &mut s.tls_handshake_failures,
        "refused" => &mut s.refused,
        "panics" => &mut s.panics,
        "message_panics" => &mut s.message_panics,
        "bytes_in" => &mut s.bytes_in,
        "bytes_out" => &mut s.bytes_out,
        "closed_idle" => &mut c.idle,
        "closed_lifetime" => &mut c.lifetime,
        "closed_deadline" => &mut c.deadline,
        "closed_message_timeout" => &mut c.message_timeout,
        "closed_slow_reader" => &mut c.slow_reader,
        "closed_over_budget" => &mut c.over_budget,
        "closed_proxy_header" => &mut c.proxy_header,
        "closed_handshake" => &mut c.handshake,
        "queue_depth" => &mut s.queue_depth,
        "busy_workers" => &mut s.busy_workers,
        "pushes_sent" => &mut s.pushes_sent,
        "pushes_dropped" => &mut s.pushes_dropped,
        _ => return false,
    };
    *field = value;
    true
}

/// The histograms of a `stats2` line, by name.
fn histograms(s: &mut Stats) -> [(&'static str, &mut LatencyHistogram); 3] {
    [
        ("request_time", &mut s.request_time),
        ("message_time", &mut s.message_time),
        ("queue_wait", &mut s.queue_wait),
    ]
}

fn stats_line(s: &Stats) -> String {
    let mut line = v1_line(s);
    line.push_str("stats2");
    for (name, value) in counters(s) {
        line.push_str(&format!(" {name}={value}"));
    }
    let mut copy = *s;
    for (name, histogram) in histograms(&mut copy) {
        line.push_str(&format!(" {name}="));
        for count in histogram.counts {
            line.push_str(&format!("{count},"));
        }
        line.push_str(&histogram.sum_micros.to_string());
    }
    line.push('\n');
    line
}

/// The line parents of earlier versions read.
fn v1_line(s: &Stats) -> String {
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
        } else if let Some(stats) = parse_stats2(line) {
            self.last = stats;
        } else if let Some(stats) = parse_stats(line) {
            self.last = stats;
        } else {
            log::debug!("prefork: ignoring report line {line:?}");
        }
    }
}

/// A `stats2` line: the names this version knows (others are skipped); `None` if a value does not
/// parse.
fn parse_stats2(line: &str) -> Option<Stats> {
    let mut stats = Stats::default();
    for field in line.strip_prefix("stats2 ")?.split(' ') {
        let (name, value) = field.split_once('=')?;
        if !value.contains(',') {
            // Unknown names are a newer worker's counters: skipped.
            set_counter(&mut stats, name, value.parse().ok()?);
            continue;
        }
        let numbers: Vec<u64> = value
            .split(',')
            .map(|n| n.parse().ok())
            .collect::<Option<_>>()?;
        let Some((sum, counts)) = numbers.split_last() else {
            continue;
        };
        if let Some((_, histogram)) = histograms(&mut stats).into_iter().find(|(n, _)| *n == name) {
            // A histogram with other buckets cannot be added to these: skipped.
            if let Ok(counts) = <[u64; BUCKETS]>::try_from(counts) {
                *histogram = LatencyHistogram {
                    counts,
                    sum_micros: *sum,
                };
            }
        }
    }
    Some(stats)
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
        ..Stats::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_read_back_as_written_even_split_across_reads() {
        let (mut reports, writer) = Reports::pipe().unwrap();
        let mut writer = File::from(writer);
        let stats = every_field_set(1);
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

    /// Stats whose every counter and bucket holds a different value, from `base` up.
    fn every_field_set(base: u64) -> Stats {
        let mut stats = Stats::default();
        let mut next = base;
        for (name, _) in counters(&Stats::default()) {
            assert!(set_counter(&mut stats, name, next), "{name}");
            next += 1;
        }
        for (_, histogram) in histograms(&mut stats) {
            for count in &mut histogram.counts {
                *count = next;
                next += 1;
            }
            histogram.sum_micros = next;
            next += 1;
        }
        stats
    }

    #[test]
    fn every_counter_goes_through_and_the_line_fits_one_atomic_write() {
        let stats = every_field_set(1);
        let line = stats_line(&stats);
        let v2 = line.lines().nth(1).unwrap();
        assert_eq!(parse_stats2(v2), Some(stats));
        let max = every_field_set(u64::MAX / 2);
        assert!(stats_line(&max).len() < 4096, "{}", stats_line(&max).len());
    }

    #[test]
    fn older_and_newer_workers_are_understood() {
        // An older worker: the first line only.
        let old = parse_stats("stats 1 2 3 4 5 6 7 8 9").unwrap();
        assert_eq!((old.accepted, old.tls_handshake_failures), (1, 9));
        // A newer one: names and a histogram this version does not know are skipped.
        let new = parse_stats2("stats2 accepted=5 surprise=9 odd_time=1,2,3 bytes_in=7").unwrap();
        assert_eq!((new.accepted, new.bytes_in), (5, 7));
        // A histogram of other buckets is skipped too.
        let other = parse_stats2("stats2 request_time=1,2,3 refused=2").unwrap();
        assert_eq!((other.request_time.count(), other.refused), (0, 2));
    }

    #[test]
    fn malformed_lines_are_ignored() {
        for line in [
            "stats 1 2 3",
            "stats 1 2 3 4 5 6 7",
            "stats a 2 3 4 5 6",
            "stats2 accepted=x",
            "stats2 accepted",
            "hello",
        ] {
            assert_eq!(
                parse_stats(line).or_else(|| parse_stats2(line)),
                None,
                "{line:?}"
            );
        }
    }
}
