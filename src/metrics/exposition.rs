//! The Prometheus text exposition format (version 0.0.4) of a [`Stats`] snapshot: a `# HELP`
//! and a `# TYPE` line per metric family, then its samples.

use std::fmt::Write;

use crate::stats::{LatencyHistogram, Stats};

/// Writes `stats` in the Prometheus text format.
pub(crate) fn render(stats: &Stats) -> String {
    let mut out = Exposition(String::with_capacity(8 * 1024));
    let s = stats;
    out.single(
        "socketserver_connections_accepted_total",
        "counter",
        "Connections accepted (stream and message servers) or datagrams received (datagram servers).",
        s.accepted,
    );
    out.single(
        "socketserver_active",
        "gauge",
        "Requests accepted and not ended: for stream and message servers, the connections open.",
        s.active,
    );
    out.labelled(
        "socketserver_requests_total",
        "counter",
        "Requests (a message server's connections) by how they ended.",
        "outcome",
        &[
            ("completed", s.completed),
            ("failed", s.failed),
            ("rejected", s.rejected),
        ],
    );
    out.single(
        "socketserver_refused_total",
        "counter",
        "Requests verify_request refused (also counted as rejected).",
        s.refused,
    );
    out.single(
        "socketserver_request_panics_total",
        "counter",
        "Requests whose handler panicked (also counted as failed).",
        s.panics,
    );
    out.single(
        "socketserver_accept_errors_total",
        "counter",
        "Transient accept or receive errors the serving loop retried.",
        s.accept_errors,
    );
    out.labelled(
        "socketserver_messages_total",
        "counter",
        "Messages a message server's handlers handled, by outcome (failed includes panicked).",
        "outcome",
        &[("handled", s.messages), ("failed", s.message_failures)],
    );
    out.single(
        "socketserver_message_panics_total",
        "counter",
        "MessageHandler::handle calls that panicked (also counted as failed messages).",
        s.message_panics,
    );
    out.single(
        "socketserver_received_bytes_total",
        "counter",
        "Bytes stream and message servers read from peers' sockets (encrypted bytes with TLS).",
        s.bytes_in,
    );
    out.single(
        "socketserver_sent_bytes_total",
        "counter",
        "Bytes stream and message servers wrote to peers' sockets (encrypted bytes with TLS).",
        s.bytes_out,
    );
    let c = &s.closed_by;
    out.labelled(
        "socketserver_connections_closed_total",
        "counter",
        "Connections the server closed because a limit passed, by limit.",
        "reason",
        &[
            ("idle", c.idle),
            ("lifetime", c.lifetime),
            ("deadline", c.deadline),
            ("message_timeout", c.message_timeout),
            ("slow_reader", c.slow_reader),
            ("over_budget", c.over_budget),
            ("proxy_header", c.proxy_header),
            ("handshake", c.handshake),
        ],
    );
    out.single(
        "socketserver_tls_handshake_failures_total",
        "counter",
        "TLS handshakes that failed or were too late.",
        s.tls_handshake_failures,
    );
    out.single(
        "socketserver_queue_depth",
        "gauge",
        "Requests or batches of messages waiting in a pool's queue for a worker.",
        s.queue_depth,
    );
    out.single(
        "socketserver_busy_workers",
        "gauge",
        "Handlers running now (a message server's pool workers busy with a batch).",
        s.busy_workers,
    );
    out.single(
        "socketserver_prefork_workers",
        "gauge",
        "Prefork worker processes running.",
        s.workers_alive,
    );
    out.labelled(
        "socketserver_prefork_worker_exits_total",
        "counter",
        "Prefork workers that exited and were replaced: restarted after a failure, or recycled.",
        "reason",
        &[
            ("restarted", s.workers_restarted),
            ("recycled", s.workers_recycled),
        ],
    );
    out.labelled(
        "socketserver_pushes_total",
        "counter",
        "Pushes to message server connections, queued (sent) or dropped.",
        "outcome",
        &[("sent", s.pushes_sent), ("dropped", s.pushes_dropped)],
    );
    out.histogram(
        "socketserver_request_duration_seconds",
        "How long stream and datagram requests took, setup to finish.",
        &s.request_time,
    );
    out.histogram(
        "socketserver_message_duration_seconds",
        "How long MessageHandler::handle took on each message.",
        &s.message_time,
    );
    out.histogram(
        "socketserver_queue_wait_seconds",
        "How long batches of messages waited in a message server's pool queue.",
        &s.queue_wait,
    );
    out.0
}

struct Exposition(String);

impl Exposition {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.head(name, kind, help);
        let _ = writeln!(self.0, "{name} {value}");
    }

    fn labelled(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        label: &str,
        values: &[(&str, u64)],
    ) {
        self.head(name, kind, help);
        for (which, value) in values {
            let _ = writeln!(self.0, "{name}{{{label}=\"{which}\"}} {value}");
        }
    }

    fn histogram(&mut self, name: &str, help: &str, histogram: &LatencyHistogram) {
        self.head(name, "histogram", help);
        let mut cumulative = 0;
        for (bound, count) in LatencyHistogram::BOUNDS_MICROS.iter().zip(histogram.counts) {
            cumulative += count;
            let _ = writeln!(
                self.0,
                "{name}_bucket{{le=\"{}\"}} {cumulative}",
                seconds(*bound)
            );
        }
        let count = histogram.count();
        let _ = writeln!(self.0, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(self.0, "{name}_sum {}", seconds(histogram.sum_micros));
        let _ = writeln!(self.0, "{name}_count {count}");
    }
}

/// Microseconds as seconds, exactly (no float rounding): `2500` is `0.0025`.
pub(crate) fn seconds(micros: u64) -> String {
    let (whole, fraction) = (micros / 1_000_000, micros % 1_000_000);
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_exact() {
        assert_eq!(seconds(50), "0.00005");
        assert_eq!(seconds(2_500), "0.0025");
        assert_eq!(seconds(1_000_000), "1");
        assert_eq!(seconds(2_500_000), "2.5");
        assert_eq!(seconds(0), "0");
    }

    #[test]
    fn every_family_has_help_and_type_and_histograms_are_cumulative() {
        let mut stats = Stats {
            accepted: 3,
            completed: 2,
            ..Stats::default()
        };
        stats.request_time.counts[0] = 2;
        stats.request_time.counts[5] = 1;
        stats.request_time.sum_micros = 2_600;
        let text = render(&stats);
        assert!(text.contains("socketserver_connections_accepted_total 3\n"));
        assert!(text.contains("socketserver_requests_total{outcome=\"completed\"} 2\n"));
        assert!(text.contains("socketserver_request_duration_seconds_bucket{le=\"0.00005\"} 2\n"));
        assert!(text.contains("socketserver_request_duration_seconds_bucket{le=\"0.0025\"} 3\n"));
        assert!(text.contains("socketserver_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("socketserver_request_duration_seconds_sum 0.0026\n"));
        assert!(text.contains("socketserver_request_duration_seconds_count 3\n"));
        // Each sample's family was declared just before it.
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| declared.contains(*f)))
                    .unwrap_or(name);
                assert!(declared.contains(family), "{line}");
            }
        }
    }
}
