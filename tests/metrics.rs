//! Feature `metrics`: the admin listener of an in-process server (TCP and Unix, never the
//! served port, not held up by slow scrapers) serves the metrics, as `metrics_text` gives them,
//! and the status page. Prometheus, promtool and Chromium against the examples:
//! `tests/metrics_programs.rs`.
#![cfg(feature = "metrics")]

#[path = "admin_http/mod.rs"]
mod admin_http;
mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use admin_http::get;
use common::{tcp_client, Serving, IO_TIMEOUT, WAIT};
use socketserver::{Builder, StreamRequest, Threading};

/// Answers each line upper-cased; `panic` panics.
fn upper(req: &mut StreamRequest) -> io::Result<()> {
    let mut line = String::new();
    while req.read_line(&mut line)? > 0 {
        if line.trim_end() == "panic" {
            panic!("asked to panic");
        }
        req.write_all(line.to_uppercase().as_bytes())?;
        line.clear();
    }
    Ok(())
}

fn get_tcp(addr: SocketAddr, path: &str) -> (String, String) {
    get(tcp_client(addr), path)
}

/// A line-upper-casing server in threading mode with an admin listener on loopback, and some
/// traffic: `connections` connections of one line each, and one whose handler panics.
fn busy_server(connections: usize) -> (Serving, SocketAddr, SocketAddr) {
    let server = Builder::new()
        .mode(Threading::new())
        .metrics_addr("127.0.0.1:0")
        .bind_tcp("127.0.0.1:0", upper)
        .unwrap();
    let serving = Serving::start(server);
    let addr = common::inet_addr(&serving.handle);
    let admin = serving
        .handle
        .metrics_addr()
        .and_then(socketserver::Address::as_inet)
        .expect("an admin listener on TCP");
    assert_ne!(admin, addr, "the admin listener has its own port");
    for _ in 0..connections {
        let client = tcp_client(addr);
        (&client).write_all(b"hello\n").unwrap();
        let mut line = String::new();
        BufReader::new(&client).read_line(&mut line).unwrap();
        assert_eq!(line, "HELLO\n");
    }
    let mut panicking = tcp_client(addr);
    panicking.write_all(b"panic\n").unwrap();
    assert!(common::closed_without_reply(&mut panicking));
    let deadline = Instant::now() + WAIT;
    while serving.handle.stats().active > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    (serving, addr, admin)
}

/// The value of the sample `sample` (name and labels, as written) in exposition `text`.
fn sample(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn the_admin_listener_serves_the_metrics_and_the_status_page() {
    let (serving, _addr, admin) = busy_server(3);
    let (status, text) = get_tcp(admin, "/metrics");
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert_eq!(
        sample(&text, "socketserver_connections_accepted_total"),
        Some(4.0)
    );
    assert_eq!(
        sample(&text, "socketserver_requests_total{outcome=\"completed\"}"),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, "socketserver_request_panics_total"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "socketserver_received_bytes_total"),
        Some(3.0 * 6.0 + 6.0)
    );
    assert_eq!(
        sample(&text, "socketserver_request_duration_seconds_count"),
        Some(4.0)
    );
    // The same text as the API gives (nothing moved in between).
    assert_eq!(text, serving.handle.metrics_text());
    let (status, page) = get_tcp(admin, "/");
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert!(
        page.contains("accepted</td><td class=\"n\">4</td>"),
        "{page}"
    );
    assert!(
        page.contains("handler panics</td><td class=\"n\">1</td>"),
        "{page}"
    );
    let (status, _) = get_tcp(admin, "/nothing-here");
    assert_eq!(status, "HTTP/1.0 404 Not Found");
    let mut post = tcp_client(admin);
    post.write_all(b"POST /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    post.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.0 405"), "{answer}");
    serving.finish(WAIT).unwrap();
    // Closed with the server.
    assert!(
        TcpStream::connect(admin).is_err(),
        "the admin listener outlived the server"
    );
}

#[test]
fn slow_scrapers_hold_up_neither_other_scrapers_nor_the_server() {
    let (serving, addr, admin) = busy_server(1);
    // Scrapers that connect and send nothing, and one that sends half a request.
    let mut silent: Vec<TcpStream> = (0..3).map(|_| tcp_client(admin)).collect();
    let half = tcp_client(admin);
    (&half).write_all(b"GET /metr").unwrap();
    silent.push(half);
    let began = Instant::now();
    let (status, text) = get_tcp(admin, "/metrics");
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert!(text.contains("socketserver_connections_accepted_total"));
    // The served port answers too, meanwhile.
    let client = tcp_client(addr);
    (&client).write_all(b"still\n").unwrap();
    let mut line = String::new();
    BufReader::new(&client).read_line(&mut line).unwrap();
    assert_eq!(line, "STILL\n");
    // Far below the 5 s the silent ones may take: nobody waited on them. (A bound against a
    // hang, not a performance figure.)
    assert!(
        began.elapsed() < Duration::from_secs(4),
        "{:?}",
        began.elapsed()
    );
    // Many more silent scrapers than may be served at once: the next is answered at once, with
    // the metrics or a 503, never left waiting.
    silent.extend((0..20).map(|_| tcp_client(admin)));
    std::thread::sleep(Duration::from_millis(100));
    let mut late = tcp_client(admin);
    late.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    match late.read_to_string(&mut answer) {
        // Closed before the request was read (it came after the server looked): refused too.
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the scraper over the limit was left waiting: {e}"),
        Ok(_) => assert!(
            answer.starts_with("HTTP/1.0 200 OK") || answer.starts_with("HTTP/1.0 503"),
            "{answer}"
        ),
    }
    drop(silent);
    drop(client);
    serving.finish(WAIT).unwrap();
}

#[test]
fn the_admin_listener_cannot_be_the_served_port_and_can_be_a_unix_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let served = listener.local_addr().unwrap();
    let refused = Builder::new()
        .metrics_addr(served)
        .from_tcp_listener(listener, upper)
        .expect_err("the served address refused as the admin listener's");
    assert_eq!(refused.kind(), io::ErrorKind::InvalidInput, "{refused}");
    assert!(refused.to_string().contains("metrics"), "{refused}");

    let path = common::TempSocketPath::new("metrics-admin");
    let server = Builder::new()
        .mode(Threading::new())
        .metrics_unix(path.path())
        .bind_tcp("127.0.0.1:0", upper)
        .unwrap();
    let serving = Serving::start(server);
    assert_eq!(
        serving.handle.metrics_addr().and_then(|a| a.as_unix_path()),
        Some(path.path())
    );
    let stream = UnixStream::connect(path.path()).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let (status, text) = get(stream, "/metrics");
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert_eq!(
        sample(&text, "socketserver_connections_accepted_total"),
        Some(0.0)
    );
    serving.finish(WAIT).unwrap();
    assert!(
        !path.path().exists(),
        "the socket file is removed with the server"
    );
}
