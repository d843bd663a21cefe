//! The admin listener's status page: the counters, the workers and a latency table, as plain
//! HTML that refreshes itself every few seconds (no script).

use std::fmt::Write;

use super::exposition::seconds;
use crate::stats::{LatencyHistogram, Stats};

/// The page for a server described as `title` (its address and kind) with counters `stats`.
pub(crate) fn render(title: &str, stats: &Stats) -> String {
    let s = stats;
    let c = &s.closed_by;
    let mut page = String::with_capacity(8 * 1024);
    let title = escape(title);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"2\">\
         <title>socketserver: {title}</title>\n<style>\
         body{{font-family:sans-serif;margin:1.5em;color:#222}}\
         h1{{font-size:1.3em}} h2{{font-size:1.05em;margin-top:1.4em}}\
         table{{border-collapse:collapse}} td,th{{border:1px solid #bbb;padding:.25em .7em}}\
         td.n{{text-align:right;font-family:monospace}} th{{background:#eee;text-align:left}}\
         .grid{{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}}\
         </style></head><body>\n<h1>{title}</h1>\n\
         <p>Counters since the server started; this page reloads every 2 s. \
         Prometheus metrics: <a href=\"/metrics\">/metrics</a>.</p>\n<div class=\"grid\">\n"
    );
    table(
        &mut page,
        "Connections and requests",
        &[
            ("accepted", s.accepted),
            ("active (open)", s.active),
            ("completed", s.completed),
            ("failed", s.failed),
            ("rejected", s.rejected),
            ("refused by verify_request", s.refused),
            ("handler panics", s.panics),
            ("accept errors", s.accept_errors),
            ("bytes in", s.bytes_in),
            ("bytes out", s.bytes_out),
        ],
    );
    table(
        &mut page,
        "Messages",
        &[
            ("handled", s.messages),
            ("failed", s.message_failures),
            ("panicked", s.message_panics),
            ("pushes sent", s.pushes_sent),
            ("pushes dropped", s.pushes_dropped),
        ],
    );
    table(
        &mut page,
        "Workers",
        &[
            ("busy", s.busy_workers),
            ("queue depth", s.queue_depth),
            ("prefork workers alive", s.workers_alive),
            ("prefork workers restarted", s.workers_restarted),
            ("prefork workers recycled", s.workers_recycled),
        ],
    );
    table(
        &mut page,
        "Closed by a limit",
        &[
            ("idle timeout", c.idle),
            ("lifetime", c.lifetime),
            ("deadline / min rate", c.deadline),
            ("message timeout", c.message_timeout),
            ("slow reader", c.slow_reader),
            ("over budget", c.over_budget),
            ("PROXY header", c.proxy_header),
            ("TLS handshake", c.handshake),
        ],
    );
    page.push_str(
        "</div>\n<h2>Latency</h2>\n<table id=\"latency\"><tr><th></th><th>count</th>\
                   <th>mean</th><th>p50 ≤</th><th>p90 ≤</th><th>p99 ≤</th></tr>\n",
    );
    for (name, histogram) in [
        ("request", &s.request_time),
        ("message", &s.message_time),
        ("queue wait", &s.queue_wait),
    ] {
        latency_row(&mut page, name, histogram);
    }
    page.push_str("</table>\n</body></html>\n");
    page
}

fn table(page: &mut String, caption: &str, rows: &[(&str, u64)]) {
    let _ = writeln!(page, "<table><tr><th colspan=\"2\">{caption}</th></tr>");
    for (name, value) in rows {
        let _ = writeln!(page, "<tr><td>{name}</td><td class=\"n\">{value}</td></tr>");
    }
    page.push_str("</table>\n");
}

fn latency_row(page: &mut String, name: &str, h: &LatencyHistogram) {
    let count = h.count();
    let mean = match count {
        0 => "-".to_string(),
        n => format!("{} s", seconds(h.sum_micros / n)),
    };
    let bound = |q| match h.quantile_bound_micros(q) {
        Some(micros) => format!("{} s", seconds(micros)),
        None if count == 0 => "-".to_string(),
        None => "&gt; 10 s".to_string(),
    };
    let _ = writeln!(
        page,
        "<tr><td>{name}</td><td class=\"n\">{count}</td><td class=\"n\">{mean}</td>\
         <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
        bound(0.5),
        bound(0.9),
        bound(0.99)
    );
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_shows_the_counters_and_escapes_the_title() {
        let stats = Stats {
            accepted: 12_345,
            messages: 678,
            ..Stats::default()
        };
        let page = render("TCP server on <x>", &stats);
        assert!(page.contains("<td class=\"n\">12345</td>"));
        assert!(page.contains("<td class=\"n\">678</td>"));
        assert!(page.contains("TCP server on &lt;x&gt;"));
        assert!(!page.contains("<script"));
    }
}
