//! Prometheus metrics and a status page (feature `metrics`): the server's [`Stats`] in the
//! Prometheus text exposition format, to serve from an endpoint of your own
//! ([`ServerHandle::metrics_text`](crate::ServerHandle::metrics_text), [`text`]), or served by the
//! server itself on an admin listener of its own
//! ([`Builder::metrics_addr`](crate::Builder::metrics_addr),
//! [`Builder::metrics_unix`](crate::Builder::metrics_unix)): `GET /metrics` for Prometheus, and
//! `GET /` for a small HTML status page (the counters, the workers and a latency table; it
//! reloads itself every 2 s, with no script).
//!
//! The admin listener never shares the served socket, its threads or its pool: it runs on a
//! thread of its own, each scraper on a short-lived thread with 5 s read and write timeouts, at
//! most 8 at once (more are answered `503` and closed), so a slow scraper holds up neither
//! another nor the server. A [`Prefork`](crate::Prefork) parent runs it and shows the sum of its
//! workers' counters; the workers run none.
//!
//! The metric families (every name starts with `socketserver_`):
//!
//! | metric | type | [`Stats`] field |
//! |---|---|---|
//! | `connections_accepted_total` | counter | `accepted` |
//! | `active` | gauge | `active` |
//! | `requests_total{outcome="completed\|failed\|rejected"}` | counter | `completed`, `failed`, `rejected` |
//! | `refused_total` | counter | `refused` |
//! | `request_panics_total` | counter | `panics` |
//! | `accept_errors_total` | counter | `accept_errors` |
//! | `messages_total{outcome="handled\|failed"}` | counter | `messages`, `message_failures` |
//! | `message_panics_total` | counter | `message_panics` |
//! | `received_bytes_total`, `sent_bytes_total` | counter | `bytes_in`, `bytes_out` |
//! | `connections_closed_total{reason=…}` | counter | [`ClosedBy`](crate::ClosedBy)'s fields |
//! | `tls_handshake_failures_total` | counter | `tls_handshake_failures` |
//! | `queue_depth`, `busy_workers` | gauge | `queue_depth`, `busy_workers` |
//! | `prefork_workers` | gauge | `workers_alive` |
//! | `prefork_worker_exits_total{reason="restarted\|recycled"}` | counter | `workers_restarted`, `workers_recycled` |
//! | `pushes_total{outcome="sent\|dropped"}` | counter | `pushes_sent`, `pushes_dropped` |
//! | `request_duration_seconds` | histogram | `request_time` |
//! | `message_duration_seconds` | histogram | `message_time` |
//! | `queue_wait_seconds` | histogram | `queue_wait` |
//!
//! The histograms' buckets are [`LatencyHistogram::BOUNDS_MICROS`](crate::LatencyHistogram::BOUNDS_MICROS),
//! 50 µs to 10 s.

pub(crate) mod admin;
mod exposition;
mod page;

use crate::stats::Stats;

/// The `Content-Type` of [`text`]'s output: the Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `stats` in the Prometheus text exposition format (see the [module docs](self) for the
/// metric families), to serve with [`CONTENT_TYPE`].
#[must_use]
pub fn text(stats: &Stats) -> String {
    exposition::render(stats)
}
