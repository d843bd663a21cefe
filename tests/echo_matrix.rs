//! CPython's `SocketServerTest` echo tests: every transport (TCP, UDP, Unix stream, Unix datagram)
//! in every mode (single-threaded, threading, threading capped at 2 threads, pool). Each test sends
//! three requests — concurrently where the mode can serve them concurrently — checks the echoes,
//! then shuts the server down and checks its counters.

mod common;

use std::io::{self, BufRead, Write};
use std::path::Path;

use common::{Serving, TempSocketPath, WAIT};
use socketserver::{Builder, DatagramRequest, Mode, Pool, Single, Stats, StreamRequest, Threading};

const CLIENTS: usize = 3;

/// CPython's stream handler: read one line, write it back.
fn echo_line(req: &mut StreamRequest) -> io::Result<()> {
    let mut line = String::new();
    req.read_line(&mut line)?;
    req.write_all(line.as_bytes())
}

/// CPython's `DatagramRequestHandler` echo: the reply goes through `Write` and the server sends it
/// after the handler returns.
fn echo_datagram(req: &mut DatagramRequest) -> io::Result<()> {
    let data = req.data().to_vec();
    req.write_all(&data)
}

fn message(client: usize) -> String {
    format!("hello from client {client}\n")
}

/// Runs `client(0..CLIENTS)`, on concurrent threads when the mode serves requests concurrently.
/// Client sockets carry timeouts, so the scope's implicit joins are bounded.
fn run_clients(concurrent: bool, client: impl Fn(usize) + Sync) {
    if concurrent {
        std::thread::scope(|s| {
            for i in 0..CLIENTS {
                let client = &client;
                s.spawn(move || client(i));
            }
        });
    } else {
        (0..CLIENTS).for_each(client);
    }
}

fn assert_all_served(stats: Stats) {
    let expected = Stats {
        accepted: CLIENTS as u64,
        completed: CLIENTS as u64,
        ..Stats::default()
    };
    // What the requests moved and how long they took vary; the request counts do not.
    let counts = |s: &Stats| Stats {
        bytes_in: 0,
        bytes_out: 0,
        request_time: Default::default(),
        ..*s
    };
    assert_eq!(counts(&stats), expected);
    assert_eq!(stats.request_time.count(), CLIENTS as u64);
}

fn tcp_echo<M: Mode>(mode: M, concurrent: bool) {
    let server = Builder::new()
        .mode(mode)
        .bind_tcp("127.0.0.1:0", echo_line)
        .unwrap();
    let serving = Serving::start(server);
    let addr = common::inet_addr(&serving.handle);
    run_clients(concurrent, |i| {
        let reply = common::exchange(common::tcp_client(addr), message(i).as_bytes());
        assert_eq!(String::from_utf8_lossy(&reply), message(i));
    });
    let handle = serving.handle.clone();
    serving.finish(WAIT).unwrap();
    assert_all_served(handle.stats());
}

fn udp_echo<M: Mode>(mode: M, concurrent: bool) {
    let server = Builder::new()
        .mode(mode)
        .bind_udp("127.0.0.1:0", echo_datagram)
        .unwrap();
    let serving = Serving::start(server);
    let addr = common::inet_addr(&serving.handle);
    run_clients(concurrent, |i| {
        let client = common::udp_client(addr);
        client.send_to(message(i).as_bytes(), addr).unwrap();
        let mut buf = [0u8; 256];
        let (n, from) = client.recv_from(&mut buf).expect("the echo");
        assert_eq!(from, addr, "the reply comes from the server's address");
        assert_eq!(String::from_utf8_lossy(&buf[..n]), message(i));
    });
    let handle = serving.handle.clone();
    serving.finish(WAIT).unwrap();
    assert_all_served(handle.stats());
}

fn unix_stream_echo<M: Mode>(mode: M, concurrent: bool) {
    let path = TempSocketPath::new("stream-echo");
    let server = Builder::new()
        .mode(mode)
        .bind_unix_stream(&path, echo_line)
        .unwrap();
    assert_eq!(server.local_addr().as_unix_path(), Some(path.path()));
    let serving = Serving::start(server);
    run_clients(concurrent, |i| {
        let reply = common::exchange(common::unix_client(&path), message(i).as_bytes());
        assert_eq!(String::from_utf8_lossy(&reply), message(i));
    });
    let handle = serving.handle.clone();
    serving.finish(WAIT).unwrap();
    assert_all_served(handle.stats());
    assert!(!path.exists(), "server_close removes the socket file");
}

fn unix_datagram_echo<M: Mode>(mode: M, concurrent: bool) {
    let path = TempSocketPath::new("dgram-echo");
    let server = Builder::new()
        .mode(mode)
        .bind_unix_datagram(&path, echo_datagram)
        .unwrap();
    let serving = Serving::start(server);
    run_clients(concurrent, |i| {
        let (client, _client_path) = common::unix_datagram_client(&format!("dgram-client{i}"));
        client.send_to(message(i).as_bytes(), &path).unwrap();
        let mut buf = [0u8; 256];
        let (n, from) = client.recv_from(&mut buf).expect("the echo");
        assert_eq!(from.as_pathname(), Some(Path::new(path.path())));
        assert_eq!(String::from_utf8_lossy(&buf[..n]), message(i));
    });
    let handle = serving.handle.clone();
    serving.finish(WAIT).unwrap();
    assert_all_served(handle.stats());
    assert!(!path.exists(), "server_close removes the socket file");
}

fn capped() -> Threading {
    Threading::new().max_threads(2)
}

#[test]
fn tcp_single() {
    tcp_echo(Single, false);
}

#[test]
fn tcp_threading() {
    tcp_echo(Threading::new(), true);
}

#[test]
fn tcp_threading_capped() {
    tcp_echo(capped(), true);
}

#[test]
fn tcp_pool() {
    tcp_echo(Pool::new(2), true);
}

#[test]
fn udp_single() {
    udp_echo(Single, false);
}

#[test]
fn udp_threading() {
    udp_echo(Threading::new(), true);
}

#[test]
fn udp_threading_capped() {
    udp_echo(capped(), true);
}

#[test]
fn udp_pool() {
    udp_echo(Pool::new(2), true);
}

#[test]
fn unix_stream_single() {
    unix_stream_echo(Single, false);
}

#[test]
fn unix_stream_threading() {
    unix_stream_echo(Threading::new(), true);
}

#[test]
fn unix_stream_threading_capped() {
    unix_stream_echo(capped(), true);
}

#[test]
fn unix_stream_pool() {
    unix_stream_echo(Pool::new(2), true);
}

#[test]
fn unix_datagram_single() {
    unix_datagram_echo(Single, false);
}

#[test]
fn unix_datagram_threading() {
    unix_datagram_echo(Threading::new(), true);
}

#[test]
fn unix_datagram_threading_capped() {
    unix_datagram_echo(capped(), true);
}

#[test]
fn unix_datagram_pool() {
    unix_datagram_echo(Pool::new(2), true);
}
