//! The benchmark examples as a client sees them: `resp_kv` answers pipelined RESP in order,
//! `http_hello` keeps connections alive and refuses bad requests, and `loadgen` (a binary of the
//! `socketserver-bench` package in `bench/`, built on demand) drives the echo servers, checks
//! every reply and notices wrong ones. Every run is small and bounded.

mod programs;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use programs::{
    apis, bench_tool, connect, example, field, loadgen, Run, Server, IO_TIMEOUT, RUN_TIMEOUT,
};

/// Reads until `want.len()` bytes have arrived (or the deadline passes) and returns them.
fn read_len(stream: &mut TcpStream, len: usize) -> String {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < len && Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read failed after {:?}: {e}", String::from_utf8_lossy(&got)),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Reads until the server closes the connection.
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    stream
        .read_to_end(&mut got)
        .unwrap_or_else(|e| panic!("expected the server to close: {e}"));
    String::from_utf8_lossy(&got).into_owned()
}

/// `base` followed by `extra`.
fn with(base: &[&'static str], extra: &[&'static str]) -> Vec<&'static str> {
    base.iter().chain(extra).copied().collect()
}

// ---------------------------------------------------------------------------------------------
// resp_kv

#[test]
fn resp_kv_answers_a_pipelined_sequence_in_order() {
    #[allow(unused_mut)]
    let mut runs = vec![
        vec!["--mode", "threading"],
        vec!["--mode", "pool"],
        vec!["--mode", "single"],
    ];
    runs.extend(apis().into_iter().skip(1));
    for mode in runs {
        let server = Server::start("resp_kv", &mode);
        let mut conn = connect(server.addr);
        let pipeline = "PING\r\n\
                        *1\r\n$4\r\nPING\r\n\
                        *3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nva lu\r\n\
                        *2\r\n$3\r\nGET\r\n$1\r\nk\r\n\
                        *2\r\n$4\r\nincr\r\n$1\r\nn\r\n\
                        INCR n\r\n\
                        *4\r\n$5\r\nLPUSH\r\n$1\r\nl\r\n$1\r\na\r\n$1\r\nb\r\n\
                        *2\r\n$4\r\nLPOP\r\n$1\r\nl\r\n\
                        *3\r\n$3\r\nDEL\r\n$1\r\nk\r\n$1\r\nl\r\n\
                        *2\r\n$3\r\nGET\r\n$1\r\nk\r\n\
                        INCR\r\n\
                        *2\r\n$4\r\nINCR\r\n$1\r\nl\r\n\
                        FOO x\r\n";
        let want = "+PONG\r\n+PONG\r\n+OK\r\n$5\r\nva lu\r\n:1\r\n:2\r\n:2\r\n$1\r\nb\r\n:2\r\n\
                    $-1\r\n-ERR wrong number of arguments for 'incr' command\r\n:1\r\n\
                    -ERR unknown command 'FOO', with args beginning with: 'x' \r\n";
        // Split mid-command, so one command arrives in two reads.
        let (first, second) = pipeline.split_at(pipeline.len() / 2);
        conn.write_all(first.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        conn.write_all(second.as_bytes()).unwrap();
        assert_eq!(read_len(&mut conn, want.len()), want, "{mode:?}");
    }
}

#[test]
fn resp_kv_keeps_one_store_across_connections_and_types_its_values() {
    for api in apis() {
        keeps_one_store(&api);
    }
}

fn keeps_one_store(api: &[&str]) {
    let server = Server::start("resp_kv", api);
    let mut a = connect(server.addr);
    a.write_all(b"*3\r\n$5\r\nRPUSH\r\n$4\r\nlist\r\n$1\r\nx\r\nSET s 7\r\n")
        .unwrap();
    assert_eq!(read_len(&mut a, 9), ":1\r\n+OK\r\n");
    let mut b = connect(server.addr);
    b.write_all(b"GET list\r\nINCR s\r\nRPOP list\r\nRPOP list\r\nQUIT\r\n")
        .unwrap();
    let reply = read_to_close(&mut b);
    assert_eq!(
        reply,
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n\
         :8\r\n$1\r\nx\r\n$-1\r\n+OK\r\n",
        "{api:?}"
    );
}

#[test]
fn resp_kv_closes_after_a_protocol_error() {
    for api in apis() {
        let server = Server::start("resp_kv", &api);
        let mut conn = connect(server.addr);
        conn.write_all(b"PING\r\n*x\r\n").unwrap();
        assert_eq!(
            read_to_close(&mut conn),
            "+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n",
            "{api:?}"
        );
        // An argument over the size limit is refused as soon as its length arrives.
        let mut huge = connect(server.addr);
        huge.write_all(b"*2\r\n$3\r\nSET\r\n$40000000\r\n").unwrap();
        assert_eq!(
            read_to_close(&mut huge),
            "-ERR Protocol error: invalid bulk length\r\n",
            "{api:?}"
        );
    }
}

/// Through `redis-benchmark`, when it is installed: a short pipelined run, every reply checked
/// by the tool (it stops at the first error reply).
#[test]
fn resp_kv_serves_redis_benchmark_without_errors() {
    if programs::skip::program("redis-benchmark", "redis-tools").is_none() {
        return;
    }
    for api in apis() {
        let server = Server::start("resp_kv", &api);
        let mut command = Command::new("redis-benchmark");
        command.args(["-h", "127.0.0.1", "-p", &server.addr.port().to_string()]);
        command.args(["-q", "-n", "2000", "-c", "10", "-P", "16", "-t", "set,get"]);
        let run = Run::to_completion(command, RUN_TIMEOUT);
        assert!(run.status.success(), "{api:?}: {run}");
        let lines: Vec<&str> = run
            .stdout
            .lines()
            .filter(|l| l.contains("requests per second"))
            .collect();
        assert_eq!(lines.len(), 2, "{api:?}: {run}");
        assert!(
            !run.stdout.contains("ERR") && !run.stderr.contains("rror"),
            "{api:?}: {run}"
        );
        // The SETs reached the store (redis-benchmark's key and 3-byte value).
        let mut conn = connect(server.addr);
        conn.write_all(b"GET key:__rand_int__\r\n").unwrap();
        let value = read_len(&mut conn, 9);
        assert!(
            value.starts_with("$3\r\n") && value.ends_with("\r\n"),
            "{api:?}: {value:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// http_hello

const GET: &str = "GET / HTTP/1.1\r\nHost: test\r\n\r\n";
const HELLO: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n";

#[test]
fn http_hello_keeps_the_connection_alive_and_answers_pipelined_requests() {
    #[allow(unused_mut)]
    let mut runs = apis();
    #[cfg(feature = "message")]
    runs.push(vec![
        "--api",
        "message",
        "--mode",
        "prefork",
        "--workers",
        "2",
    ]);
    for api in runs {
        keeps_alive(&api);
    }
}

fn keeps_alive(api: &[&str]) {
    let server = Server::start("http_hello", api);
    let mut conn = connect(server.addr);
    conn.write_all(GET.as_bytes()).unwrap();
    assert_eq!(read_len(&mut conn, HELLO.len()), HELLO);
    // Same connection, two requests in one write, one with a body to skip, then a 404.
    conn.write_all(
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcdeGET /nope HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    let want = "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\
                Allow: GET, HEAD\r\n\r\nmethod not allowed\n\
                HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nnot found\n";
    assert_eq!(read_len(&mut conn, want.len()), want, "{api:?}");
    // A body arriving in pieces is skipped piece by piece.
    conn.write_all(b"PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nabc")
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    conn.write_all(format!("def{GET}").as_bytes()).unwrap();
    let want =
        "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\
                Allow: GET, HEAD\r\n\r\nmethod not allowed\n";
    assert_eq!(
        read_len(&mut conn, want.len() + HELLO.len()),
        format!("{want}{HELLO}"),
        "{api:?}"
    );
}

#[test]
fn http_hello_honours_connection_close_and_http_1_0() {
    let mut runs = apis();
    runs[0] = vec!["--mode", "pool", "--workers", "2"];
    for api in runs {
        honours_connection_close(&api);
    }
}

fn honours_connection_close(api: &[&str]) {
    let server = Server::start("http_hello", api);
    let mut conn = connect(server.addr);
    conn.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_to_close(&mut conn),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n"
    );
    let mut old = connect(server.addr);
    old.write_all(b"HEAD / HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(
        read_to_close(&mut old),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\n",
        "{api:?}"
    );
    // HTTP/1.0 asking to be kept alive is, and is told so.
    let mut kept = connect(server.addr);
    kept.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n")
        .unwrap();
    let alive = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\
                 Connection: keep-alive\r\n\r\nhello\n";
    let closed = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\
                  Connection: close\r\n\r\nhello\n";
    assert_eq!(
        read_to_close(&mut kept),
        format!("{alive}{closed}"),
        "{api:?}"
    );
}

#[test]
fn http_hello_refuses_malformed_requests_with_400_and_closes() {
    for api in apis() {
        refuses_malformed_requests(&api);
    }
}

fn refuses_malformed_requests(api: &[&str]) {
    let server = Server::start("http_hello", api);
    for bad in [
        "GARBAGE\r\n\r\n",
        "GET /\r\n\r\n",
        "GET / HTTP/1.1 extra\r\nHost: t\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\nno colon here\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: -3\r\n\r\n",
    ] {
        let mut conn = connect(server.addr);
        conn.write_all(bad.as_bytes()).unwrap();
        let reply = read_to_close(&mut conn);
        assert!(
            reply.starts_with("HTTP/1.1 400 Bad Request\r\n")
                && reply.contains("Connection: close"),
            "{api:?}: {bad:?} got {reply:?}"
        );
    }
    let mut conn = connect(server.addr);
    conn.write_all(b"GET / HTTP/2.0\r\nHost: t\r\n\r\n")
        .unwrap();
    assert!(
        read_to_close(&mut conn).starts_with("HTTP/1.1 505 "),
        "{api:?}"
    );
    // The earlier answers of a pipeline go out before the refusal.
    let mut conn = connect(server.addr);
    conn.write_all(
        format!("{GET}GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: t\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let reply = read_to_close(&mut conn);
    assert!(
        reply.starts_with(&format!("{HELLO}HTTP/1.1 501 Not Implemented\r\n")),
        "{api:?}: {reply:?}"
    );
    let mut conn = connect(server.addr);
    conn.write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n")
        .unwrap();
    assert!(
        read_to_close(&mut conn).starts_with("HTTP/1.1 413 "),
        "{api:?}"
    );
}

#[test]
fn http_hello_limits_the_request_head() {
    for api in apis() {
        limits_the_request_head(&with(&api, &["--max-head", "1024"]));
    }
}

fn limits_the_request_head(args: &[&str]) {
    let server = Server::start("http_hello", args);
    let mut conn = connect(server.addr);
    let big = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(2000)
    );
    conn.write_all(big.as_bytes()).unwrap();
    let reply = read_to_close(&mut conn);
    assert!(
        reply.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{reply:?}"
    );
    // A head that never ends is cut off at the limit too, without waiting for the blank line.
    let mut endless = connect(server.addr);
    endless
        .write_all(format!("GET / HTTP/1.1\r\nX: {}", "b".repeat(1500)).as_bytes())
        .unwrap();
    assert!(read_to_close(&mut endless).starts_with("HTTP/1.1 431 "));
    // Under the limit is fine.
    let mut fine = connect(server.addr);
    fine.write_all(GET.as_bytes()).unwrap();
    assert_eq!(read_len(&mut fine, HELLO.len()), HELLO);
}

#[test]
fn http_hello_drops_empty_lines_before_a_request_and_cuts_off_a_stream_of_them() {
    for api in apis() {
        drops_empty_lines(&with(&api, &["--max-head", "1024"]));
    }
}

fn drops_empty_lines(args: &[&str]) {
    let server = Server::start("http_hello", args);
    // Empty lines before a request line are skipped; they count against the head limit.
    let mut polite = connect(server.addr);
    polite.write_all("\r\n".repeat(400).as_bytes()).unwrap();
    polite.write_all(GET.as_bytes()).unwrap();
    assert_eq!(read_len(&mut polite, HELLO.len()), HELLO);
    // Nothing but empty lines past the limit: refused.
    let mut blank = connect(server.addr);
    blank.write_all(&[b'\n'; 1025]).unwrap();
    let reply = read_to_close(&mut blank);
    assert!(
        reply.starts_with("HTTP/1.1 400 Bad Request\r\n") && reply.contains("only empty lines"),
        "{reply:?}"
    );

    // Connections streaming line feeds as fast as they can are cut off, while others are served.
    const FLOOD_CAP: usize = 64 << 20;
    let flooders: Vec<_> = (0..4)
        .map(|_| {
            let mut conn = connect(server.addr);
            std::thread::spawn(move || {
                let chunk = [b'\n'; 16 * 1024];
                let mut sent = 0;
                while sent < FLOOD_CAP {
                    match conn.write(&chunk) {
                        Ok(n) => sent += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            assert!(
                                !matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ),
                                "the server stopped reading without closing: {e}"
                            );
                            return sent;
                        }
                    }
                }
                sent
            })
        })
        .collect();
    let mut client = connect(server.addr);
    for _ in 0..20 {
        client.write_all(GET.as_bytes()).unwrap();
        assert_eq!(read_len(&mut client, HELLO.len()), HELLO);
    }
    for flooder in flooders {
        let sent = flooder.join().unwrap();
        assert!(sent < FLOOD_CAP, "a stream of line feeds was never cut off");
    }
}

#[test]
fn http_hello_closes_a_connection_whose_head_misses_the_header_timeout() {
    for api in apis() {
        closes_a_late_head(&api);
    }
}

/// With `--api message` the header timeout is the loop's message timeout, which counts from a
/// head's first byte: a connection that sends nothing at all waits for the idle timeout instead.
fn closes_a_late_head(api: &[&'static str]) {
    let server = Server::start("http_hello", &with(api, &["--header-timeout", "1"]));
    let mut normal = connect(server.addr);
    normal.write_all(GET.as_bytes()).unwrap();
    assert_eq!(read_len(&mut normal, HELLO.len()), HELLO);
    let mut silent = connect(server.addr);

    // One byte every 200 ms: the whole head would take 5.8 s.
    let mut trickle = connect(server.addr);
    trickle
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut sent = 0;
    let mut reply = [0u8; 256];
    let closed = loop {
        if sent == GET.len() || trickle.write_all(&GET.as_bytes()[sent..=sent]).is_err() {
            break sent < GET.len();
        }
        sent += 1;
        match trickle.read(&mut reply) {
            Ok(0) => break true,
            Ok(n) => panic!(
                "a reply to a trickled head: {:?}",
                String::from_utf8_lossy(&reply[..n])
            ),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break true,
        }
    };
    assert!(
        closed,
        "{api:?}: the trickled head was read to its end ({sent} bytes)"
    );
    assert!(
        sent < GET.len() / 2,
        "{api:?}: closed only after {sent} bytes"
    );

    // A connection that sends nothing is closed too: its first head was due a second after it
    // opened. One idle between requests is not: the idle timeout (30 s) applies to it.
    if api.is_empty() {
        assert_eq!(read_to_close(&mut silent), "");
    }
    normal.write_all(GET.as_bytes()).unwrap();
    assert_eq!(read_len(&mut normal, HELLO.len()), HELLO);
}

/// Behind a balancer (a PROXY v1 header, sent here by hand) the page names the client the
/// header reports, in either API, on every request of a kept-alive connection.
#[cfg(feature = "proxy")]
#[test]
fn http_hello_behind_a_balancer_names_the_client() {
    for api in apis() {
        let args = with(
            &api,
            &["--proxy-protocol", "v1", "--trusted-proxy", "127.0.0.1"],
        );
        let server = Server::start("http_hello", &args);
        let mut conn = connect(server.addr);
        conn.write_all(b"PROXY TCP4 203.0.113.9 127.0.0.1 51000 8000\r\n")
            .unwrap();
        conn.write_all(format!("{GET}{GET}").as_bytes()).unwrap();
        let body = "hello 203.0.113.9:51000\n";
        let want = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(
            read_len(&mut conn, 2 * want.len()),
            want.repeat(2),
            "{api:?}"
        );
    }
}

#[test]
fn http_hello_help_shows_its_limits() {
    let mut command = Command::new(example("http_hello"));
    command.arg("--help");
    let run = Run::to_completion(command, RUN_TIMEOUT);
    assert!(run.status.success(), "{run}");
    for option in [
        "--max-head BYTES",
        "--header-timeout SECS",
        "--idle-timeout SECS",
    ] {
        assert!(run.stdout.contains(option), "{option} missing: {run}");
    }
}

// ---------------------------------------------------------------------------------------------
// loadgen

#[test]
fn loadgen_drives_each_echo_workload_and_verifies_every_reply() {
    let cases: [(&str, &[&str], &[&str]); 5] = [
        (
            "echo_server",
            &["--mode", "pool", "--workers", "4"],
            &["--workload", "framed"],
        ),
        (
            "echo_server",
            &["--proto", "line"],
            &["--workload", "line", "--size", "100"],
        ),
        (
            "echo_server",
            &["--proto", "udp", "--mode", "single"],
            &["--workload", "udp"],
        ),
        (
            "std_echo",
            &[],
            &["--workload", "framed", "--size", "20000"],
        ),
        ("resp_kv", &[], &["--workload", "resp"]),
    ];
    for (server_name, server_args, load_args) in cases {
        let server = Server::start(server_name, server_args);
        let run = loadgen(
            server.addr,
            &[&["--conns", "3", "--requests", "50"], load_args].concat(),
        );
        let what = format!("{server_name} {server_args:?} {load_args:?}");
        assert!(run.status.success(), "{what}: {run}");
        let json = run.stdout.trim();
        assert_eq!(field(json, "failed_clients"), 0.0, "{what}: {json}");
        // UDP may lose a datagram under load; every other reply must be there and right.
        let answered = field(json, "ok") + field(json, "lost");
        assert_eq!(answered, 150.0, "{what}: {json}");
        assert!(field(json, "p99_us") > 0.0, "{what}: {json}");
    }
}

#[test]
fn loadgen_churns_connections_and_holds_idle_ones() {
    let server = Server::start("echo_server", &[]);
    let pid = server.pid().to_string();
    let run = loadgen(
        server.addr,
        &[
            "--conns",
            "2",
            "--requests",
            "20",
            "--churn",
            "--idle",
            "20",
            "--server-pid",
            &pid,
        ],
    );
    assert!(run.status.success(), "{run}");
    let json = run.stdout.trim();
    assert_eq!(field(json, "ok"), 40.0, "{json}");
    assert!(field(json, "rss_after_kib") > 0.0, "{json}");
}

#[test]
fn loadgen_notices_wrong_replies() {
    // echo_upper upper-cases what it echoes: every line-echo reply differs from the request.
    let server = Server::start("echo_upper", &[]);
    let run = loadgen(
        server.addr,
        &["--workload", "line", "--conns", "1", "--requests", "5"],
    );
    assert_eq!(run.status.code(), Some(1), "{run}");
    assert!(run.stderr.contains("differs from the expected"), "{run}");
}

#[test]
fn loadgen_refuses_addresses_off_this_machine() {
    let mut command = Command::new(bench_tool("loadgen"));
    command.args(["--addr", "192.0.2.1:80"]);
    let run = Run::to_completion(command, RUN_TIMEOUT);
    assert_eq!(run.status.code(), Some(2), "{run}");
    assert!(run.stderr.contains("loopback"), "{run}");
}

/// A bare echo server for loadgen's own options: it records each connection's source address
/// and, with `first_frame_within`, closes a connection whose first framed message does not
/// arrive whole in that time (as a server with a message deadline does to a slowloris). Every
/// connection has a thread; the accept loop ends after 30 s.
fn recording_echo_server(
    first_frame_within: Option<Duration>,
) -> (SocketAddr, std::sync::mpsc::Receiver<std::net::IpAddr>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (sources, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let (mut conn, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            };
            let _ = sources.send(peer.ip());
            std::thread::spawn(move || {
                conn.set_nonblocking(false).unwrap();
                if let Some(wait) = first_frame_within {
                    let mut head = [0u8; 4];
                    conn.set_read_timeout(Some(wait)).unwrap();
                    if conn.read_exact(&mut head).is_err() {
                        return;
                    }
                    let mut frame = vec![0u8; u32::from_be_bytes(head) as usize];
                    if conn.read_exact(&mut frame).is_err() {
                        return;
                    }
                    let _ = conn.write_all(&[&head[..], &frame].concat());
                }
                conn.set_read_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                let mut reader = conn.try_clone().unwrap();
                let _ = std::io::copy(&mut reader, &mut conn);
            });
        }
    });
    (addr, seen)
}

#[test]
fn loadgen_spreads_idle_connections_over_the_source_addresses_given() {
    let (addr, seen) = recording_echo_server(None);
    let run = loadgen(
        addr,
        &[
            "--conns",
            "2",
            "--requests",
            "20",
            "--idle",
            "6",
            "--idle-from",
            "127.0.0.2,127.0.0.3",
        ],
    );
    assert!(run.status.success(), "{run}");
    assert_eq!(field(run.stdout.trim(), "ok"), 40.0, "{run}");
    let mut sources: Vec<String> = seen.try_iter().map(|ip| ip.to_string()).collect();
    sources.sort();
    // The six idle ones in turn from the two addresses; the two clients from the default one.
    assert_eq!(
        sources,
        [
            "127.0.0.1",
            "127.0.0.1",
            "127.0.0.2",
            "127.0.0.2",
            "127.0.0.2",
            "127.0.0.3",
            "127.0.0.3",
            "127.0.0.3"
        ],
        "{run}"
    );
    let mut command = Command::new(bench_tool("loadgen"));
    command.args([
        "--addr",
        &addr.to_string(),
        "--idle",
        "1",
        "--idle-from",
        "10.0.0.1",
    ]);
    let refused = Run::to_completion(command, RUN_TIMEOUT);
    assert_eq!(refused.status.code(), Some(2), "{refused}");
    assert!(refused.stderr.contains("only loopback"), "{refused}");
}

#[test]
fn loadgen_reports_the_threads_and_memory_of_every_server_pid_given() {
    let server = Server::start("echo_server", &["--mode", "threading"]);
    let pid = server.pid().to_string();
    // The same process twice: its threads and RSS count twice, as a prefork parent's and its
    // workers' add up.
    let pids = format!("{pid},{pid}");
    let mut runs = Vec::new();
    for pids in [pid.as_str(), pids.as_str()] {
        let run = loadgen(
            server.addr,
            &[
                "--conns",
                "1",
                "--requests",
                "10",
                "--idle",
                "12",
                "--server-pid",
                pids,
            ],
        );
        assert!(run.status.success(), "{run}");
        runs.push(run.stdout.trim().to_string());
    }
    // Threading mode: one thread per idle connection, held when the status is read.
    let grown = field(&runs[0], "threads_after") - field(&runs[0], "threads_before");
    assert!(grown >= 12.0, "{}", runs[0]);
    assert!(field(&runs[0], "fds_after") >= 12.0, "{}", runs[0]);
    assert!(
        field(&runs[1], "threads_before") >= 2.0 * field(&runs[0], "threads_before"),
        "{runs:?}"
    );
    assert!(
        field(&runs[1], "rss_after_kib") > field(&runs[0], "rss_after_kib"),
        "{runs:?}"
    );
}

#[test]
fn loadgen_slowloris_connections_trickle_and_reconnect_when_closed() {
    // The server closes a connection whose first frame is not whole within 300 ms: each
    // slowloris connection (half a frame, then a byte a second) is closed and opened again.
    let (addr, seen) = recording_echo_server(Some(Duration::from_millis(300)));
    let run = loadgen(
        addr,
        &[
            "--conns",
            "1",
            "--requests",
            "1000000000",
            "--duration",
            "3",
            "--size",
            "16",
            "--slowloris",
            "5",
            "--slow-interval",
            "1",
        ],
    );
    assert!(run.status.success(), "{run}");
    let json = run.stdout.trim();
    assert_eq!(field(json, "failed_clients"), 0.0, "{json}");
    assert!(field(json, "ok") > 0.0, "{json}");
    assert_eq!(field(json, "slowloris"), 5.0, "{json}");
    let closed = field(json, "slow_closed_by_server");
    assert!(closed >= 5.0, "{json}");
    // Every close is followed by a reconnection, but the last ones may fall after the run.
    let opened = field(json, "slow_opened");
    assert!(opened > 5.0 && opened <= 5.0 + closed, "{json}");
    // Half of each 20-byte frame on every connection, then at most a byte per second each.
    assert!(field(json, "slow_bytes") >= 10.0 * opened, "{json}");
    assert_eq!(seen.try_iter().count() as f64, 1.0 + opened, "{json}");
}

#[test]
fn loadgen_drives_several_connections_per_thread_in_lockstep() {
    let server = Server::start("echo_server", &["--mode", "threading"]);
    // 7 connections, 3 per thread: threads of 3, 3 and 1.
    let run = loadgen(
        server.addr,
        &["--conns", "7", "--per-thread", "3", "--requests", "40"],
    );
    assert!(run.status.success(), "{run}");
    let json = run.stdout.trim();
    assert_eq!(field(json, "ok"), 280.0, "{json}");
    assert_eq!(field(json, "failed_clients"), 0.0, "{json}");

    // Wrong replies are still caught, and count every connection of the thread.
    let upper = Server::start("echo_upper", &[]);
    let wrong = loadgen(
        upper.addr,
        &[
            "--workload",
            "line",
            "--conns",
            "2",
            "--per-thread",
            "2",
            "--requests",
            "5",
        ],
    );
    assert_eq!(wrong.status.code(), Some(1), "{wrong}");
    assert!(
        wrong.stderr.contains("differs from the expected"),
        "{wrong}"
    );
    assert_eq!(field(wrong.stdout.trim(), "failed_clients"), 2.0, "{wrong}");

    let mut command = Command::new(bench_tool("loadgen"));
    command.args([
        "--addr",
        &server.addr.to_string(),
        "--workload",
        "resp",
        "--per-thread",
        "2",
    ]);
    let refused = Run::to_completion(command, RUN_TIMEOUT);
    assert_eq!(refused.status.code(), Some(2), "{refused}");
}
