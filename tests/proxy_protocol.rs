//! The PROXY protocol against hand-made headers from loopback: the handler sees the client the
//! header names and the balancer beside it; untrusted sources, garbled or missing headers and
//! slow ones are refused and reported; a version 2 `LOCAL` health check never reaches the
//! handler; `verify_request` judges the real client. Real `HAProxy` and nginx: tests/balancers.rs.

mod common;

use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::time::Duration;

use common::{recv, Reported, Serving, WAIT};
use socketserver::proxy::ProxyProtocol;
use socketserver::{AnyMode, Builder, Mode, Pool, Single, StreamRequest, Threading};

/// Reads one line, then answers with what it knows of the connection.
fn describe(req: &mut StreamRequest) -> io::Result<()> {
    let mut line = String::new();
    req.read_line(&mut line)?;
    let proxy = req
        .proxy_addr()
        .map_or("-".to_string(), ToString::to_string);
    let authority = req
        .proxy_header()
        .and_then(|h| h.authority())
        .unwrap_or("-")
        .to_string();
    let peer = req.peer_addr().to_string();
    writeln!(
        req,
        "peer={peer} proxy={proxy} authority={authority} line={}",
        line.trim_end()
    )
}

fn start<M: Mode>(
    builder: Builder<M>,
) -> (Serving, SocketAddr, crossbeam_channel::Receiver<Reported>) {
    let (hook, failures) = common::failure_channel();
    let server = builder
        .handle_error(hook)
        .bind_tcp("127.0.0.1:0", describe)
        .expect("bind");
    let serving = Serving::start(server);
    let addr = common::inet_addr(&serving.handle);
    (serving, addr, failures)
}

fn trusting_loopback(version: ProxyProtocol) -> Builder<Threading> {
    Builder::new()
        .mode(Threading::new())
        .proxy_protocol(version)
        .trusted_proxies(["127.0.0.1/32"])
}

/// A version 2 header: PROXY (`command` 1) or LOCAL (0), TCP over IPv4 from `client` to
/// 127.0.0.1:80, then `tlvs`.
fn v2_header(command: u8, client: SocketAddr, tlvs: &[u8]) -> Vec<u8> {
    let SocketAddr::V4(client) = client else {
        panic!("an IPv4 client");
    };
    let mut body = client.ip().octets().to_vec();
    body.extend_from_slice(&[127, 0, 0, 1]);
    body.extend_from_slice(&client.port().to_be_bytes());
    body.extend_from_slice(&80u16.to_be_bytes());
    body.extend_from_slice(tlvs);
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.push(0x20 | command);
    header.push(0x11);
    header.extend_from_slice(&(body.len() as u16).to_be_bytes());
    header.extend_from_slice(&body);
    header
}

/// The server's stats once no request is active (a request is counted just after its
/// connection closes); bounded by [`WAIT`].
fn settled(serving: &Serving) -> socketserver::Stats {
    let give_up = std::time::Instant::now() + WAIT;
    loop {
        let stats = serving.handle.stats();
        if stats.active == 0 || std::time::Instant::now() > give_up {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ask(addr: SocketAddr, bytes: &[u8]) -> (String, SocketAddr) {
    let stream = common::tcp_client(addr);
    let local = stream.local_addr().expect("client address");
    (&stream).write_all(bytes).expect("send");
    let mut reply = String::new();
    io::BufReader::new(&stream)
        .read_line(&mut reply)
        .expect("a reply");
    (reply, local)
}

#[test]
fn v1_header_gives_the_client_and_the_balancer() {
    let (serving, addr, _failures) = start(trusting_loopback(ProxyProtocol::V1));
    let (reply, balancer) = ask(
        addr,
        b"PROXY TCP4 203.0.113.9 127.0.0.1 40000 80\r\nhello\n",
    );
    assert_eq!(
        reply,
        format!("peer=203.0.113.9:40000 proxy={balancer} authority=- line=hello\n")
    );
    serving.finish(WAIT).expect("clean stop");
}

#[test]
fn v2_header_gives_the_client_and_its_tlvs_in_a_pool() {
    let builder = Builder::new()
        .mode(Pool::new(2))
        .proxy_protocol(ProxyProtocol::Any)
        .trusted_proxies(["10.0.0.0/8", "127.0.0.0/8"]);
    let (serving, addr, _failures) = start(builder);
    let mut tlvs = vec![0x02, 0, 11];
    tlvs.extend_from_slice(b"example.com");
    let mut bytes = v2_header(1, "198.51.100.4:51000".parse().unwrap(), &tlvs);
    bytes.extend_from_slice(b"hi\n");
    let (reply, balancer) = ask(addr, &bytes);
    assert_eq!(
        reply,
        format!("peer=198.51.100.4:51000 proxy={balancer} authority=example.com line=hi\n")
    );
    serving.finish(WAIT).expect("clean stop");
}

/// Sends `bytes` (then keeps the connection open) and expects it closed without a reply, and
/// this failure reported.
fn refused(
    addr: SocketAddr,
    bytes: &[u8],
    failures: &crossbeam_channel::Receiver<Reported>,
) -> (io::ErrorKind, String) {
    let stream = common::tcp_client(addr);
    (&stream).write_all(bytes).expect("send");
    assert!(
        common::closed_without_reply(&stream),
        "closed without a reply"
    );
    match recv(failures, "the refusal, reported to handle_error") {
        Reported::Error(kind, message) => (kind, message),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn an_untrusted_source_is_refused_before_its_header_is_read() {
    let builder = Builder::new()
        .mode(Threading::new())
        .proxy_protocol(ProxyProtocol::Any)
        .trusted_proxies(["10.0.0.0/8"]);
    let (serving, addr, failures) = start(builder);
    let (kind, message) = refused(
        addr,
        b"PROXY TCP4 203.0.113.9 127.0.0.1 40000 80\r\nhello\n",
        &failures,
    );
    assert_eq!(kind, io::ErrorKind::PermissionDenied);
    assert!(message.contains("is not a trusted proxy"), "{message}");
    assert!(message.contains("10.0.0.0/8"), "{message}");
    let stats = settled(&serving);
    assert_eq!((stats.failed, stats.completed), (1, 0));
    serving.finish(WAIT).expect("clean stop");
}

#[test]
fn missing_and_garbled_headers_are_refused() {
    let (serving, addr, failures) = start(trusting_loopback(ProxyProtocol::Any));
    let (kind, message) = refused(addr, b"GET / HTTP/1.0\r\n\r\n", &failures);
    assert_eq!(kind, io::ErrorKind::InvalidData);
    assert!(message.contains("began with \"GET /\""), "{message}");
    let (kind, message) = refused(addr, b"PROXY TCP4 not-an-address\r\n", &failures);
    assert_eq!(kind, io::ErrorKind::InvalidData);
    assert!(message.contains("bad PROXY protocol header"), "{message}");
    let mut long = b"PROXY TCP4 ".to_vec();
    long.resize(500, b'1');
    let (_, message) = refused(addr, &long, &failures);
    assert!(message.contains("longer than 107 bytes"), "{message}");
    // Only version 2 wanted: a version 1 header is as good as none.
    drop(serving);
    let (serving, addr, failures) = start(trusting_loopback(ProxyProtocol::V2));
    let (_, message) = refused(addr, b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", &failures);
    assert!(message.contains("expected a version 2 header"), "{message}");
    serving.finish(WAIT).expect("clean stop");
}

#[test]
fn a_header_slower_than_its_deadline_is_refused() {
    let builder =
        trusting_loopback(ProxyProtocol::Any).proxy_header_timeout(Duration::from_millis(300));
    let (serving, addr, failures) = start(builder);
    let (kind, message) = refused(addr, b"PROXY TCP4 203.0", &failures);
    assert_eq!(kind, io::ErrorKind::TimedOut);
    assert!(
        message.contains("PROXY protocol header deadline passed"),
        "{message}"
    );
    serving.finish(WAIT).expect("clean stop");
}

/// Balancer connections that hold back their header (sending nothing, or part of it) wait in the
/// intake, where they hold no thread: in every thread mode the clients behind them are served at
/// once, not after the header timeout (a minute here, far past the clients' 5 s timeouts).
#[test]
fn connections_holding_back_their_header_hold_no_worker() {
    let modes: [(&str, AnyMode); 3] = [
        ("single", Single.into()),
        ("pool of 2", Pool::new(2).into()),
        (
            "threading capped at 2",
            Threading::new().max_threads(2).into(),
        ),
    ];
    for (name, mode) in modes {
        let builder = Builder::new()
            .mode(mode)
            .proxy_protocol(ProxyProtocol::Any)
            .trusted_proxies(["127.0.0.1/32"])
            .proxy_header_timeout(Duration::from_secs(60));
        let (serving, addr, _failures) = start(builder);
        let held = common::hold_back_proxy_headers(addr, 20, 5);
        for i in 0..10 {
            let (reply, _) = ask(
                addr,
                format!("PROXY TCP4 203.0.113.9 127.0.0.1 40000 80\r\nclient {i}\n").as_bytes(),
            );
            assert!(
                reply.ends_with(&format!("line=client {i}\n")),
                "{name}: {reply}"
            );
        }
        drop(held);
        let stats = settled(&serving);
        assert_eq!(
            (stats.completed, stats.failed),
            (10, 25),
            "{name}: the held-back connections fail their header when they close"
        );
        serving.finish(WAIT).expect("clean stop");
    }
}

#[test]
fn a_local_health_check_never_reaches_the_handler() {
    let (serving, addr, failures) = start(trusting_loopback(ProxyProtocol::V2));
    let mut local = v2_header(0, "127.0.0.1:1".parse().unwrap(), &[]);
    local.extend_from_slice(b"not for the handler\n");
    let stream = common::tcp_client(addr);
    (&stream).write_all(&local).expect("send");
    assert!(common::closed_without_reply(&stream));
    let mut client = v2_header(1, "192.0.2.1:7".parse().unwrap(), b"");
    client.extend_from_slice(b"x\n");
    let (reply, _) = ask(addr, &client);
    assert!(reply.starts_with("peer=192.0.2.1:7 "), "{reply}");
    let stats = settled(&serving);
    assert_eq!(
        (stats.rejected, stats.failed, stats.completed),
        (1, 0, 1),
        "{stats:?}"
    );
    assert!(failures.try_recv().is_err(), "a health check is no failure");
    serving.finish(WAIT).expect("clean stop");
}

#[test]
fn verify_request_sees_the_client_the_header_names() {
    let builder = trusting_loopback(ProxyProtocol::V1)
        .verify_request(|peer| peer.to_string() != "203.0.113.66:1000");
    let (serving, addr, _failures) = start(builder);
    let stream = common::tcp_client(addr);
    (&stream)
        .write_all(b"PROXY TCP4 203.0.113.66 127.0.0.1 1000 80\r\nhello\n")
        .expect("send");
    assert!(
        common::closed_without_reply(&stream),
        "the refused client is closed"
    );
    let (reply, _) = ask(addr, b"PROXY TCP4 203.0.113.67 127.0.0.1 1000 80\r\nhi\n");
    assert!(reply.starts_with("peer=203.0.113.67:1000 "), "{reply}");
    assert_eq!(settled(&serving).rejected, 1);
    serving.finish(WAIT).expect("clean stop");
}

#[test]
fn a_malformed_trusted_proxy_fails_the_bind() {
    let err = Builder::new()
        .proxy_protocol(ProxyProtocol::V1)
        .trusted_proxies(["10.0.0.0/40"])
        .bind_tcp("127.0.0.1:0", describe)
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("10.0.0.0/40"), "{err}");
}
