//! `handle_error`'s default report under a flood (issue 9: 2,000 oversized datagrams a second
//! wrote one ERROR line each). The default logs a few lines per interval and says how many it held
//! back; a user's `handle_error` hook still gets every failure. A test binary of its own, because
//! it installs a logger that captures records, and there is one logger per process.

mod common;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use common::{Serving, WAIT};
use socketserver::{Builder, DatagramRequest, Pool, ServerHandle};

/// Every record logged in this process, as (level, message).
struct Capture(Mutex<Vec<(log::Level, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = record.args().to_string();
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((record.level(), line));
    }

    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

fn install_capture() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&CAPTURE).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

/// The ERROR records that mention `text`.
fn errors_mentioning(text: &str) -> Vec<String> {
    CAPTURE
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .filter(|(level, line)| *level == log::Level::Error && line.contains(text))
        .map(|(_, line)| line.clone())
        .collect()
}

/// The `N` of "N similar failures not logged" in `line`, or 0.
fn held_back(line: &str) -> u64 {
    let Some(end) = line.find(" similar failures not logged") else {
        return 0;
    };
    let start = line[..end].rfind([' ', '(']).map_or(0, |i| i + 1);
    line[start..end]
        .parse()
        .unwrap_or_else(|_| panic!("count in {line:?}"))
}

/// A pool server answering nothing: datagrams over 16 bytes are dropped as truncated (reported
/// from the serving thread), shorter ones fail in the handler (reported from the pool's threads).
fn failing_udp_server(builder: Builder) -> Serving {
    let server = builder
        .mode(Pool::new(4))
        .max_packet_size(16)
        .bind_udp("127.0.0.1:0", |_req: &mut DatagramRequest| {
            Err(io::Error::other("refused on purpose"))
        })
        .unwrap();
    Serving::start(server)
}

/// Sends `count` datagrams, alternately oversized and small, in batches that the server is given
/// time to take (UDP drops what a full receive buffer cannot hold); returns once it counted every
/// one as failed.
fn flood(client: &UdpSocket, server: SocketAddr, handle: &ServerHandle, count: u64) {
    let oversized = [b'x'; 100];
    let before = handle.stats().failed;
    for sent in 1..=count {
        let datagram: &[u8] = if sent % 2 == 0 { &oversized } else { b"small" };
        client.send_to(datagram, server).unwrap();
        if sent % 100 == 0 || sent == count {
            let deadline = Instant::now() + WAIT;
            while handle.stats().failed - before < sent {
                assert!(
                    Instant::now() < deadline,
                    "the server counted {} of {sent} failures within {WAIT:?}",
                    handle.stats().failed - before
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

#[test]
fn a_flood_of_failing_datagrams_logs_a_few_lines_and_counts_the_rest() {
    install_capture();
    const DATAGRAMS: u64 = 2_000;
    let serving = failing_udp_server(Builder::new());
    let server = common::inet_addr(&serving.handle);
    let client = common::udp_client(server);
    let peer = client.local_addr().unwrap().to_string();
    let started = Instant::now();
    flood(&client, server, &serving.handle, DATAGRAMS);
    let elapsed = started.elapsed();
    let flood_lines = errors_mentioning(&format!("request from {peer} failed"));
    // The next failure after the interval (1 s) is logged with the count held back until then.
    std::thread::sleep(Duration::from_millis(1100));
    flood(&client, server, &serving.handle, 1);
    // Then a last few that closing the server sums up.
    std::thread::sleep(Duration::from_millis(1100));
    flood(&client, server, &serving.handle, 20);
    let total = DATAGRAMS + 1 + 20;
    assert_eq!(serving.handle.stats().failed, total);
    serving.finish(WAIT).unwrap();

    let per_request = errors_mentioning(&format!("request from {peer} failed"));
    let summary = errors_mentioning(&format!("server on {server}: "));
    let logged = per_request.len() as u64;
    let not_logged: u64 = per_request
        .iter()
        .chain(&summary)
        .map(|l| held_back(l))
        .sum();
    println!(
        "{total} failures ({DATAGRAMS} in {elapsed:?}): {logged} logged, {not_logged} counted; {:?}",
        per_request.iter().chain(&summary).collect::<Vec<_>>()
    );
    assert_eq!(
        logged + not_logged,
        total,
        "every failure is either logged or counted: {per_request:?} {summary:?}"
    );
    // At most 5 lines per second of flood.
    let flood_logged = flood_lines.len() as u64;
    assert!(
        flood_logged <= 5 * (elapsed.as_secs() + 1),
        "{flood_logged} lines in {elapsed:?}"
    );
    // (A flood slower than 1 s spans intervals: their first lines carry counts too.)
    let carried_in_flood: u64 = flood_lines.iter().map(|l| held_back(l)).sum();
    let carried = held_back(&per_request[flood_lines.len()]);
    assert!(
        carried > 0 && carried_in_flood + carried == DATAGRAMS - flood_logged,
        "the first line after the flood says how many were held back: {per_request:?}"
    );
    assert_eq!(logged, flood_logged + 1 + 5, "{per_request:?}");
    assert_eq!(summary.len(), 1, "{summary:?}");
    assert_eq!(held_back(&summary[0]), 20 - 5, "{summary:?}");
}

#[test]
fn a_handle_error_hook_gets_every_failure_unthrottled() {
    install_capture();
    const DATAGRAMS: u64 = 2_000;
    let calls = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&calls);
    let serving = failing_udp_server(Builder::new().handle_error(move |_, _| {
        counted.fetch_add(1, Ordering::Relaxed);
    }));
    let server = common::inet_addr(&serving.handle);
    let client = common::udp_client(server);
    let peer = client.local_addr().unwrap().to_string();
    flood(&client, server, &serving.handle, DATAGRAMS);
    serving.finish(WAIT).unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), DATAGRAMS);
    assert_eq!(errors_mentioning(&peer), Vec::<String>::new());
}
