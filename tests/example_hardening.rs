//! The examples against hostile peers (issue 9): `echo_server` does not reserve what a frame's
//! length announces, and the servers do not write a log line per request, nor more than a short
//! prefix of a payload, at their default log level. Every run is small and bounded.

mod programs;

// The examples' payload helper, with its unit tests, compiled into this test binary.
#[path = "../examples/common/preview.rs"]
mod preview;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::thread;
use std::time::Duration;

use programs::{connect, Server, IO_TIMEOUT};

/// The resident memory of process `pid`, in KiB (`VmRSS` in `/proc/<pid>/status`).
fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read the status of process {pid}: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in the status of process {pid}:\n{status}"))
}

/// Sends `payload` as one frame of `echo_server`'s framing and checks that it comes back.
fn echo_frame(stream: &mut TcpStream, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    stream.write_all(&[&len[..], payload].concat()).unwrap();
    let mut reply = vec![0u8; 4 + payload.len()];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(reply[..4], len);
    assert!(
        reply[4..] == *payload,
        "the echo differs from the frame sent"
    );
}

// ---------------------------------------------------------------------------------------------
// echo_server: memory grows with the bytes that arrive, not with the lengths announced

#[test]
fn echo_server_does_not_reserve_announced_frames() {
    const ATTACKERS: usize = 20;
    const ANNOUNCED: u32 = 16 * 1024 * 1024; // the largest frame it accepts
    let server = Server::start("echo_server", &[]);
    // The first connection's costs (a thread, its buffers) are part of the baseline.
    let mut client = connect(server.addr);
    echo_frame(&mut client, b"warm-up");
    let before = rss_kib(server.pid());

    let mut attackers = Vec::new();
    for _ in 0..ATTACKERS {
        let mut stream = connect(server.addr);
        stream.write_all(&ANNOUNCED.to_be_bytes()).unwrap();
        attackers.push(stream);
    }
    // Reserving the frames (what this guards against) takes the handlers a few milliseconds;
    // watch for a second, keeping the peak.
    let mut peak = before;
    for _ in 0..20 {
        thread::sleep(Duration::from_millis(50));
        peak = peak.max(rss_kib(server.pid()));
    }

    // A well-behaved client is still served, a small frame and a large one.
    let mut fresh = connect(server.addr);
    echo_frame(&mut fresh, b"hello");
    let large: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    echo_frame(&mut fresh, &large);
    echo_frame(&mut client, b"still here");
    peak = peak.max(rss_kib(server.pid()));

    let grown_mib = peak.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 64,
        "{ATTACKERS} connections announcing {ANNOUNCED} bytes each grew the server from {before} \
         KiB to {peak} KiB"
    );
    drop(attackers);
}

// ---------------------------------------------------------------------------------------------
// Log floods: nothing per request at the default level; short previews at debug

const DATAGRAMS: usize = 200;
const DATAGRAM_SIZE: usize = 8 * 1024;

/// Sends `DATAGRAMS` datagrams of 8 KiB to `addr`, each after the reply to the one before.
fn udp_flood(addr: SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    socket.connect(addr).unwrap();
    let mut reply = vec![0u8; 65_536];
    for i in 0..DATAGRAMS {
        let datagram = vec![b'a' + (i % 26) as u8; DATAGRAM_SIZE];
        socket.send(&datagram).unwrap();
        let n = socket
            .recv(&mut reply)
            .unwrap_or_else(|e| panic!("no reply to datagram {i}: {e}"));
        assert_eq!(n, DATAGRAM_SIZE, "reply to datagram {i}");
    }
}

/// Opens `DATAGRAMS` connections one after another, each echoing 8 KiB.
fn tcp_flood(addr: SocketAddr) {
    for i in 0..DATAGRAMS {
        let mut stream = connect(addr);
        let chunk = vec![b'a' + (i % 26) as u8; DATAGRAM_SIZE];
        stream.write_all(&chunk).unwrap();
        let mut reply = vec![0u8; DATAGRAM_SIZE];
        stream.read_exact(&mut reply).unwrap();
    }
}

/// The log after a flood, once the lines written while serving it have reached the pipe.
fn log_after(server: &Server, flood: fn(SocketAddr)) -> String {
    flood(server.addr);
    thread::sleep(Duration::from_millis(300));
    server.log_so_far()
}

#[test]
fn a_flood_of_requests_writes_no_log_line_per_request_at_the_default_level() {
    for (name, flood) in [
        ("udp_upper", udp_flood as fn(SocketAddr)),
        ("echo_upper", tcp_flood),
    ] {
        let server = Server::start(name, &[]);
        let log = log_after(&server, flood);
        // A few lines about starting up, at most; nothing that grows with the requests.
        assert!(
            log.lines().count() < 10 && log.len() < 2048,
            "{name} wrote {} lines ({} bytes) of log for {DATAGRAMS} requests:\n{}",
            log.lines().count(),
            log.len(),
            &log[..log.len().min(2048)]
        );
    }
}

#[test]
fn at_debug_a_request_is_one_short_line_with_a_preview() {
    // echo_upper reads (and logs) at most 1024 bytes at a time.
    for (name, flood, shown_of) in [
        ("udp_upper", udp_flood as fn(SocketAddr), DATAGRAM_SIZE),
        ("echo_upper", tcp_flood, 1024),
    ] {
        let server = Server::start_with_env(name, &[], &[("RUST_LOG", "debug")]);
        let log = log_after(&server, flood);
        let sent: Vec<&str> = log.lines().filter(|l| l.contains(" sent \"")).collect();
        // echo_upper reads a request in several chunks: at least one line per request.
        assert!(
            sent.len() >= DATAGRAMS,
            "{name}: {} lines:\n{log}",
            sent.len()
        );
        for line in sent {
            assert!(
                line.len() < 300,
                "{name}: a {}-byte line: {line}",
                line.len()
            );
            assert!(
                line.contains(&"a".repeat(preview::SHOWN)) || line.contains("… ("),
                "{line}"
            );
        }
        assert!(
            log.contains(&format!("… ({shown_of} bytes)")),
            "{name}:\n{log}"
        );
    }
}

/// Slow connections that hold every pool worker: with `--max-lifetime`, each is cut off after a
/// second, so a well-behaved client is served; the connections keep sending a byte every 100 ms
/// (an echo server answers each, so they are never idle).
#[test]
fn max_lifetime_frees_pool_workers_held_by_slow_connections() {
    let server = Server::start(
        "echo_upper",
        &["--mode", "pool", "--workers", "2", "--max-lifetime", "1"],
    );
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let mut stream = connect(server.addr);
            thread::spawn(move || {
                let mut buf = [0u8; 16];
                for _ in 0..60 {
                    if stream.write_all(b"x").is_err()
                        || !matches!(stream.read(&mut buf), Ok(n) if n > 0)
                    {
                        return true; // cut off by the server
                    }
                    thread::sleep(Duration::from_millis(100));
                }
                false
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    let mut good = connect(server.addr);
    good.write_all(b"hello").unwrap();
    let mut reply = [0u8; 5];
    good.read_exact(&mut reply)
        .expect("served once the slow connections' lifetime ended");
    assert_eq!(&reply, b"HELLO");
    for t in slow {
        assert!(
            t.join().unwrap(),
            "a slow connection outlived --max-lifetime"
        );
    }
}
