//! Message servers over TLS (features `tls` and `message`): the event loop drives every
//! connection's handshake and records without waiting, handlers see plaintext messages, and
//! back-pressure, pushes, time limits and the graceful stop work as they do in plaintext.
//! Connections that never finish their handshake hold no thread, reach no handler, and are
//! closed at the handshake timeout. Certificates are made at test time (rcgen); clients are
//! rustls.

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::message::{upper_lines, Room, Running};
use common::tls::{client_hello, connect_over, Pki, TlsClient};
use common::{closed_without_reply, failure_channel, recv, tcp_client, Reported, WAIT};
use crossbeam_channel::{Receiver, Sender as ChannelSender};
use socketserver::framing::Framing;
use socketserver::message::{
    message_handler, Closed, ConnectionId, LengthPrefixed, Lines, MessageHandler, Reply, Sender,
};
use socketserver::tls::{Tls, TlsConfig};
use socketserver::{Address, AnyMode, Builder, Pool, Single};

fn modes() -> [AnyMode; 2] {
    [Single.into(), Pool::new(3).into()]
}

fn load(pki: &Pki) -> Tls {
    TlsConfig::new(&pki.cert, &pki.key).load().unwrap()
}

/// One line (without its end), read a byte at a time so nothing after it is taken.
fn read_line(client: &mut impl Read) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        let n = client.read(&mut byte).expect("a line");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&line));
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap().trim_end().to_string()
}

fn read_lines(client: &mut impl Read, n: usize) -> Vec<String> {
    (0..n).map(|_| read_line(client)).collect()
}

/// Upper-cases lines; `who` answers with what the handshake settled, `quit` says bye and closes.
/// Greets with the protocol version, and counts every call, so a test can tell that no handler
/// ran for a connection.
#[derive(Clone)]
struct Probe {
    calls: Arc<AtomicUsize>,
    opened: ChannelSender<()>,
}

impl Probe {
    fn new() -> (Probe, Arc<AtomicUsize>, Receiver<()>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let (opened, opens) = crossbeam_channel::unbounded();
        let probe = Probe {
            calls: Arc::clone(&calls),
            opened,
        };
        (probe, calls, opens)
    }
}

impl MessageHandler for Probe {
    fn opened(&mut self, reply: &mut Reply<'_>) -> io::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let _ = self.opened.send(());
        let version = reply.tls().map_or("plaintext", |tls| tls.version());
        writeln!(reply, "hello over {version}")
    }

    fn handle(&mut self, line: &[u8], reply: &mut Reply<'_>) -> io::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match line {
            b"who" => {
                let tls = reply.tls().expect("a TLS connection").clone();
                let peer = tls.peer().map_or("-".to_string(), |p| {
                    format!("{} {:?}", p.common_name().unwrap_or("?"), p.names())
                });
                let alpn = tls
                    .alpn_protocol()
                    .map_or("-".to_string(), |p| String::from_utf8_lossy(p).into_owned());
                let name = tls.server_name().unwrap_or("-");
                writeln!(reply, "{} {name} {alpn} {peer}", tls.version())
            }
            b"quit" => {
                reply.write_all(b"bye\n")?;
                reply.close();
                Ok(())
            }
            other => {
                reply.write_all(&other.to_ascii_uppercase())?;
                reply.write_all(b"\n")
            }
        }
    }

    fn closed(&mut self, _id: ConnectionId, _peer: &Address, _reason: &Closed) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

/// Waits (boundedly) until `condition` holds.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn pipelined_lines_are_answered_in_order_over_tls() {
    let pki = Pki::new("msg-lines");
    let configs = [
        ("TLS 1.3", pki.client_config(None, &[])),
        ("TLS 1.2", pki.tls12_client_config()),
    ];
    for mode in modes() {
        let name = format!("{mode:?}");
        let server = Builder::new()
            .mode(mode)
            .tls(load(&pki))
            .messages(Lines::new(), upper_lines())
            .bind_tcp("127.0.0.1:0")
            .unwrap();
        let running = Running::start(server);
        for (version, config) in &configs {
            let mut client = pki.connect(running.addr(), config).unwrap();
            let batch: String = (0..200).map(|i| format!("line {i}\n")).collect();
            client.write_all(batch.as_bytes()).unwrap();
            let expected: Vec<String> = (0..200).map(|i| format!("LINE {i}")).collect();
            assert_eq!(read_lines(&mut client, 200), expected, "{name}, {version}");
        }
        running.stop().unwrap();
    }
}

#[test]
fn a_message_larger_than_a_record_crosses_both_ways() {
    let pki = Pki::new("msg-large");
    let config = pki.client_config(None, &[]);
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    for mode in modes() {
        let name = format!("{mode:?}");
        let echo = message_handler(|payload, reply| Framing::new().write_frame(reply, payload));
        let server = Builder::new()
            .mode(mode)
            .tls(load(&pki))
            .messages(LengthPrefixed::default(), echo)
            .bind_tcp("127.0.0.1:0")
            .unwrap();
        let running = Running::start(server);
        let mut client = pki.connect(running.addr(), &config).unwrap();
        // A small one pipelined behind it: answered after it, in order.
        let mut frames = Vec::new();
        Framing::new().write_frame(&mut frames, &big).unwrap();
        Framing::new().write_frame(&mut frames, b"small").unwrap();
        client.write_all(&frames).unwrap();
        let got = Framing::new().read_frame(&mut client).unwrap();
        assert!(got.as_deref() == Some(&big[..]), "{name}: the 1 MiB echo");
        let got = Framing::new().read_frame(&mut client).unwrap();
        assert_eq!(got.as_deref(), Some(&b"small"[..]), "{name}");
        running.stop().unwrap();
    }
}

/// A TLS client whose receive buffer is small (no autotuning): what the server sends piles up
/// on the server's side after a few hundred KiB.
fn small_window_client(pki: &Pki, addr: SocketAddr) -> TlsClient {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket
        .connect_timeout(&addr.into(), common::IO_TIMEOUT)
        .unwrap();
    connect_over(socket.into(), &pki.client_config(None, &[]), "localhost").unwrap()
}

#[test]
fn a_client_that_does_not_read_stops_being_read_over_tls() {
    let pki = Pki::new("msg-backpressure");
    let handled = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&handled);
    // Each one-byte request asks for 64 KiB.
    let handler = message_handler(move |_line, reply| {
        count.fetch_add(1, Ordering::SeqCst);
        reply.write_all(&[b'z'; 64 * 1024])
    });
    let server = Builder::new()
        .tls(load(&pki))
        .messages(Lines::new(), handler)
        .max_pending_output(128 * 1024)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let mut client = small_window_client(&pki, running.addr());
    let requests = 400; // 25 MiB of answers: far more than the socket buffers hold
    client.write_all(&b"\n".repeat(requests)).unwrap();
    // Wait until the server stops handling: the count holds still across several looks.
    let deadline = Instant::now() + WAIT;
    let mut last = usize::MAX;
    let mut still = 0;
    while still < 5 {
        assert!(Instant::now() < deadline, "the server never stopped");
        std::thread::sleep(Duration::from_millis(100));
        let now = handled.load(Ordering::SeqCst);
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    assert!(
        last < requests,
        "all {requests} were handled though nothing was read"
    );
    // Reading lets it go on, to the end.
    let mut total = 0;
    let mut buf = vec![0; 256 * 1024];
    while total < requests * 64 * 1024 {
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {total} bytes");
        total += n;
    }
    assert_eq!(handled.load(Ordering::SeqCst), requests);
    running.stop().unwrap();
}

/// Keeps every member's sender from `opened` to `closed`; a line goes to the others.
#[test]
fn senders_push_to_tls_clients() {
    let pki = Pki::new("msg-push");
    let config = pki.client_config(None, &[]);
    for mode in modes() {
        let name = format!("{mode:?}");
        let server = Builder::new()
            .mode(mode)
            .tls(load(&pki))
            .messages(Lines::new(), Room::default())
            .bind_tcp("127.0.0.1:0")
            .unwrap();
        let running = Running::start(server);
        let mut a = pki.connect(running.addr(), &config).unwrap();
        let mut b = pki.connect(running.addr(), &config).unwrap();
        let mut c = pki.connect(running.addr(), &config).unwrap();
        for client in [&mut a, &mut b, &mut c] {
            assert_eq!(read_line(client), "joined");
        }
        a.write_all(b"hi all\n").unwrap();
        assert_eq!(read_line(&mut b), "hi all", "{name}");
        assert_eq!(read_line(&mut c), "hi all", "{name}");
        running.stop().unwrap();
    }
}

#[test]
fn a_tls_client_that_does_not_read_its_pushes_is_closed_as_a_slow_reader() {
    let pki = Pki::new("msg-slow");
    let (closed_tx, closed) = crossbeam_channel::unbounded();
    let (sender_tx, senders) = crossbeam_channel::unbounded();
    #[derive(Clone)]
    struct Subscriber {
        senders: ChannelSender<Sender>,
        closed: ChannelSender<Closed>,
    }
    impl MessageHandler for Subscriber {
        fn opened(&mut self, reply: &mut Reply<'_>) -> io::Result<()> {
            let _ = self.senders.send(reply.sender());
            Ok(())
        }
        fn handle(&mut self, _message: &[u8], _reply: &mut Reply<'_>) -> io::Result<()> {
            Ok(())
        }
        fn closed(&mut self, _id: ConnectionId, _peer: &Address, reason: &Closed) {
            let _ = self.closed.send(reason.clone());
        }
    }
    let handler = Subscriber {
        senders: sender_tx,
        closed: closed_tx,
    };
    let server = Builder::new()
        .tls(load(&pki))
        .messages(Lines::new(), handler)
        .max_pending_output(256 * 1024)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let _deaf = small_window_client(&pki, running.addr());
    let sender = recv(&senders, "the subscriber's sender");
    let deadline = Instant::now() + WAIT;
    while closed.is_empty() {
        assert!(
            Instant::now() < deadline,
            "a client that never reads was kept"
        );
        for _ in 0..16 {
            assert!(sender.send(vec![b'n'; 64 * 1024]), "the loop ended");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(recv(&closed, "the close"), Closed::SlowReader);
    running.stop().unwrap();
}

#[test]
fn opened_runs_once_the_handshake_is_done() {
    let pki = Pki::new("msg-opened");
    let config = pki.client_config(None, &[]);
    let (probe, calls, opens) = Probe::new();
    let server = Builder::new()
        .tls(load(&pki))
        .messages(Lines::new(), probe)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    // Accepted first, and never finishing a handshake: one sends nothing, one half a hello.
    let _silent = tcp_client(running.addr());
    let half = tcp_client(running.addr());
    let hello = client_hello(&config);
    (&half).write_all(&hello[..hello.len() / 2]).unwrap();
    let mut client = pki.connect(running.addr(), &config).unwrap();
    // The greeting is written by `opened`, which sees the handshake's outcome.
    assert_eq!(read_line(&mut client), "hello over TLSv1.3");
    client.write_all(b"ping\n").unwrap();
    assert_eq!(read_line(&mut client), "PING");
    // The loop took the other two before this client: `opened` ran for this one only.
    assert_eq!(
        opens.len(),
        1,
        "opened ran for a connection still handshaking"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2, "opened and one message");
    running.stop().unwrap();
}

#[test]
fn client_certificates_and_alpn_reach_the_handler_and_others_are_refused() {
    let pki = Pki::new("msg-mtls");
    let tls = TlsConfig::new(&pki.cert, &pki.key)
        .client_ca(&pki.ca_file)
        .alpn(["kv/1", "kv/0"])
        .load()
        .unwrap();
    let (on_error, failures) = failure_channel();
    let (probe, calls, _opens) = Probe::new();
    let server = Builder::new()
        .mode(Pool::new(2))
        .tls(tls)
        .handle_error(on_error)
        .messages(Lines::new(), probe)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let addr = running.addr();

    let alice = pki.client_config(Some((&pki.client_cert, &pki.client_key)), &["kv/1"]);
    let mut client = pki.connect(addr, &alice).unwrap();
    assert_eq!(read_line(&mut client), "hello over TLSv1.3");
    client.write_all(b"who\n").unwrap();
    assert_eq!(
        read_line(&mut client),
        "TLSv1.3 localhost kv/1 alice [\"alice@example.com\"]"
    );
    drop(client);
    eventually("alice's connection closed", || {
        calls.load(Ordering::SeqCst) == 3
    });

    for (what, config) in [
        ("no certificate", pki.client_config(None, &["kv/1"])),
        (
            "another CA's certificate",
            pki.client_config(Some((&pki.stranger_cert, &pki.stranger_key)), &["kv/1"]),
        ),
    ] {
        // TLS 1.3: the client finishes first; the refusal comes as an alert on its first read.
        let refused = match pki.connect(addr, &config) {
            Err(_) => true,
            Ok(mut c) => {
                let _ = c.write_all(b"who\n");
                let mut buf = [0u8; 64];
                !matches!(c.read(&mut buf), Ok(n) if n > 0)
            }
        };
        assert!(refused, "{what}: served");
        let failure = recv(&failures, "the refused handshake's report");
        assert!(
            matches!(&failure, Reported::Error(_, m) if m.contains("TLS handshake with 127.0.0.1")),
            "{what}: {failure:?}"
        );
    }
    assert_eq!(running.handle.stats().tls_handshake_failures, 2);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "a handler ran for a refused connection"
    );
    running.stop().unwrap();
}

/// Connections that never finish a handshake: `silent` ones send nothing, `trickling` ones send
/// a `ClientHello` a byte at a time, one byte each per 20 ms, until dropped (or for [`WAIT`]).
struct Stalling {
    connections: Vec<TcpStream>,
    trickler: Option<std::thread::JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Stalling {
    fn start(pki: &Pki, addr: SocketAddr, silent: usize, trickling: usize) -> Stalling {
        let hello = client_hello(&pki.client_config(None, &[]));
        let connections: Vec<TcpStream> =
            (0..silent + trickling).map(|_| tcp_client(addr)).collect();
        let tricklers: Vec<TcpStream> = connections[silent..]
            .iter()
            .map(|c| c.try_clone().unwrap())
            .collect();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let trickler = std::thread::spawn(move || {
            let deadline = Instant::now() + WAIT;
            for byte in hello.iter().cycle() {
                if stopped.load(Ordering::SeqCst) || Instant::now() > deadline {
                    return;
                }
                for mut c in &tricklers {
                    let _ = c.write_all(&[*byte]);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Stalling {
            connections,
            trickler: Some(trickler),
            stop,
        }
    }
}

impl Drop for Stalling {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.trickler.take() {
            let _ = t.join();
        }
    }
}

/// 200 connections that never finish their handshake hold no thread: with a handshake
/// timeout far longer than the test, the clients behind them are served while all 200 are
/// still open.
#[test]
fn handshaking_connections_stall_no_one() {
    let pki = Pki::new("msg-stall");
    let config = pki.client_config(None, &[]);
    for mode in modes() {
        let name = format!("{mode:?}");
        let tls = TlsConfig::new(&pki.cert, &pki.key)
            .handshake_timeout(Duration::from_secs(60))
            .load()
            .unwrap();
        let server = Builder::new()
            .mode(mode)
            .tls(tls)
            .messages(Lines::new(), upper_lines())
            .bind_tcp("127.0.0.1:0")
            .unwrap();
        let running = Running::start(server);
        let stalling = Stalling::start(&pki, running.addr(), 100, 100);
        for i in 0..10 {
            let mut client = pki.connect(running.addr(), &config).unwrap();
            client
                .write_all(format!("client {i}\n").as_bytes())
                .unwrap();
            assert_eq!(read_line(&mut client), format!("CLIENT {i}"), "{name}");
        }
        let stats = running.handle.stats();
        assert_eq!(stats.tls_handshake_failures, 0, "{name}: {stats:?}");
        assert!(stats.active >= 200, "{name}: {stats:?}");
        drop(stalling);
        running.stop().unwrap();
    }
}

#[test]
fn late_handshakes_are_closed_counted_and_reported() {
    let pki = Pki::new("msg-late");
    let tls = TlsConfig::new(&pki.cert, &pki.key)
        .handshake_timeout(Duration::from_millis(500))
        .load()
        .unwrap();
    let (on_error, failures) = failure_channel();
    let (probe, calls, _opens) = Probe::new();
    let server = Builder::new()
        .tls(tls)
        .handle_error(on_error)
        .messages(Lines::new(), probe)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let stalling = Stalling::start(&pki, running.addr(), 20, 20);
    for connection in &stalling.connections {
        assert!(closed_without_reply(connection), "answered, not closed");
    }
    for _ in 0..40 {
        match recv(&failures, "a late handshake's report") {
            Reported::Error(io::ErrorKind::TimedOut, m) => {
                assert!(m.contains("TLS handshake with 127.0.0.1"), "{m}");
                assert!(m.contains("not done 500ms after accept"), "{m}");
            }
            other => panic!("unexpected report {other:?}"),
        }
    }
    drop(stalling);
    eventually("40 failures counted", || {
        let stats = running.handle.stats();
        (stats.tls_handshake_failures, stats.failed, stats.active) == (40, 40, 0)
    });
    assert_eq!(calls.load(Ordering::SeqCst), 0, "a handler ran");
    running.stop().unwrap();
}

#[test]
fn plaintext_and_garbage_are_closed_cleanly() {
    let pki = Pki::new("msg-garbage");
    let (on_error, failures) = failure_channel();
    let (probe, calls, _opens) = Probe::new();
    let server = Builder::new()
        .tls(load(&pki))
        .handle_error(on_error)
        .messages(Lines::new(), probe)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    for (what, bytes) in [
        ("a plaintext client", b"hello server\r\n".to_vec()),
        ("garbage", vec![0xff; 300]),
    ] {
        let mut client = tcp_client(running.addr());
        client.write_all(&bytes).unwrap();
        // An alert record at most, then the end of the stream: not a hang, not a reset.
        let mut reply = Vec::new();
        client
            .read_to_end(&mut reply)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            reply.is_empty() || reply[0] == 0x15,
            "{what}: not an alert: {reply:?}"
        );
        let failure = recv(&failures, "the report");
        assert!(
            matches!(&failure, Reported::Error(io::ErrorKind::InvalidData, m) if m.contains("not TLS")),
            "{what}: {failure:?}"
        );
    }
    assert_eq!(running.handle.stats().tls_handshake_failures, 2);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "a handler ran");
    running.stop().unwrap();
}

#[test]
fn a_close_by_the_handler_ends_the_tls_stream_with_close_notify() {
    let pki = Pki::new("msg-close");
    let config = pki.client_config(None, &[]);
    for mode in modes() {
        let name = format!("{mode:?}");
        let (probe, _calls, _opens) = Probe::new();
        let server = Builder::new()
            .mode(mode)
            .tls(load(&pki))
            .messages(Lines::new(), probe)
            .bind_tcp("127.0.0.1:0")
            .unwrap();
        let running = Running::start(server);
        let mut client = pki.connect(running.addr(), &config).unwrap();
        client.write_all(b"a\nquit\nnever handled\n").unwrap();
        // rustls fails a read that meets the end of the stream without a close_notify.
        let mut reply = String::new();
        client
            .read_to_string(&mut reply)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(reply, "hello over TLSv1.3\nA\nbye\n", "{name}");
        running.stop().unwrap();
    }
}

#[test]
fn a_graceful_stop_closes_connections_still_handshaking() {
    let pki = Pki::new("msg-stop");
    let config = pki.client_config(None, &[]);
    let tls = TlsConfig::new(&pki.cert, &pki.key)
        .handshake_timeout(Duration::from_secs(60))
        .load()
        .unwrap();
    let server = Builder::new()
        .grace_period(Duration::from_secs(60))
        .tls(tls)
        .messages(Lines::new(), upper_lines())
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let stalling = Stalling::start(&pki, running.addr(), 10, 10);
    let mut client = pki.connect(running.addr(), &config).unwrap();
    client.write_all(b"served\n").unwrap();
    assert_eq!(read_line(&mut client), "SERVED");
    // Within the test's wait, not the grace period or the handshake timeout.
    running.stop().unwrap();
    for connection in &stalling.connections {
        assert!(closed_without_reply(connection), "answered, not closed");
    }
    let mut rest = Vec::new();
    client
        .read_to_end(&mut rest)
        .expect("a close_notify, then the end of the stream");
    assert!(rest.is_empty());
}

#[cfg(feature = "proxy")]
#[test]
fn with_the_proxy_protocol_the_header_comes_before_the_handshake() {
    let pki = Pki::new("msg-proxy");
    let config = pki.client_config(None, &[]);
    let handler = message_handler(|_line, reply| {
        let peer = reply.peer_addr().clone();
        let version = reply.tls().map_or("plaintext", |t| t.version());
        writeln!(reply, "{peer} {version}")
    });
    let server = Builder::new()
        .proxy_protocol(socketserver::proxy::ProxyProtocol::V1)
        .trusted_proxies(["127.0.0.1"])
        .tls(load(&pki))
        .messages(Lines::new(), handler)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let mut tcp = TcpStream::connect(running.addr()).unwrap();
    tcp.write_all(b"PROXY TCP4 203.0.113.9 127.0.0.1 40000 443\r\n")
        .unwrap();
    let mut client = connect_over(tcp, &config, "localhost").unwrap();
    client.write_all(b"who am i\n").unwrap();
    assert_eq!(read_line(&mut client), "203.0.113.9:40000 TLSv1.3");
    running.stop().unwrap();
}

/// With several event loops (`MessageBuilder::loops`) each loop does the handshakes of its own
/// connections, and a failed one is counted once.
#[test]
fn every_loop_does_the_handshakes_of_its_connections() {
    let pki = Pki::new("msg-loops");
    let config = pki.client_config(None, &[]);
    let handler = message_handler(|_line, reply| {
        let version = reply.tls().map_or("plaintext", |t| t.version());
        let thread = std::thread::current().name().unwrap_or("?").to_string();
        writeln!(reply, "{thread} {version}")
    });
    let server = Builder::new()
        .tls(load(&pki))
        .messages(Lines::new(), handler)
        .loops(2)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let mut clients: Vec<TlsClient> = (0..4)
        .map(|_| pki.connect(running.addr(), &config).unwrap())
        .collect();
    let mut loops = std::collections::BTreeSet::new();
    for client in &mut clients {
        client.write_all(b"who\n").unwrap();
        let line = read_line(client);
        let (thread, version) = line.split_once(' ').unwrap();
        assert_eq!(version, "TLSv1.3");
        loops.insert(thread.to_string());
    }
    assert_eq!(loops.len(), 2, "{loops:?}");
    let mut plaintext = tcp_client(running.addr());
    plaintext.write_all(b"hello server\r\n").unwrap();
    let mut reply = Vec::new();
    plaintext.read_to_end(&mut reply).unwrap();
    assert!(
        reply.is_empty() || reply[0] == 0x15,
        "not an alert: {reply:?}"
    );
    eventually("the failed handshake counted", || {
        running.handle.stats().tls_handshake_failures == 1
    });
    running.stop().unwrap();
}
