//! The `time_server` example: the seeds' own Python clients against it, its answers checked
//! against the test's clock, and hostile requests. The server runs with a fixed, non-UTC `TZ`, so
//! an answer in UTC or in the wrong zone fails.

mod programs;

use std::net::{SocketAddr, UdpSocket};

use programs::clock::{self, TZ, TZ_ZONE_AND_OFFSET};
use programs::python::{python3_available, run_seed_client};
use programs::{example, Interactive, Server, IO_TIMEOUT};

fn start(mode: &str) -> Server {
    Server::start_with_env("time_server", &["--mode", mode], &[("TZ", TZ)])
}

/// The time client of seed 001 (`print('当前日期:', …)`), verbatim but for the port, which comes
/// from the command line. [`run_seed_client`] adds socket timeouts and an `input()` that reads
/// the rest of the command line instead of the keyboard. Unlike the echo clients it sends empty
/// input too: that asks for the default format.
const SEED_001_TIME_CLIENT: &str = r#"
import sys  # added
from socket import *
ip_port=('127.0.0.1',int(sys.argv[1]))
bufsize=1024

tcp_client=socket(AF_INET,SOCK_DGRAM)

while True:
    msg=input('请输入时间格式(例%Y %m %d)>>: ').strip()
    tcp_client.sendto(msg.encode('utf-8'),ip_port)

    data=tcp_client.recv(bufsize)
    print('当前日期:',str(data,encoding='utf-8'))
"#;

/// The time client of seed 002 (`print(data.decode('utf-8'))`), changed the same way.
const SEED_002_TIME_CLIENT: &str = r#"
import sys  # added
from socket import *
ip_port=('127.0.0.1',int(sys.argv[1]))
bufsize=1024
tcp_client=socket(AF_INET,SOCK_DGRAM)
while True:
    msg=input('请输入时间格式(例%Y %m %d)>>: ').strip()
    tcp_client.sendto(msg.encode('utf-8'),ip_port)
    data=tcp_client.recv(bufsize)
    print(data.decode('utf-8'))
tcp_client.close()
"#;

#[test]
fn seed_python_time_clients_get_the_local_time() {
    if !python3_available() {
        return;
    }
    for mode in ["single", "threading", "pool", "process", "prefork"] {
        let server = start(mode);
        let port = server.addr.port();

        let before = clock::now_secs();
        let run = run_seed_client(SEED_001_TIME_CLIENT, port, &["", "%Z %z", "  %H时%M分  "]);
        let after = clock::now_secs();
        assert!(run.status.success(), "seed 001 client, {mode} mode: {run}");
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(lines.len(), 3, "seed 001 client, {mode} mode: {run}");
        let default = lines[0]
            .strip_prefix("当前日期: ")
            .expect("the seed's prefix");
        clock::assert_local_time_between(default, before, after);
        assert_eq!(lines[1], format!("当前日期: {TZ_ZONE_AND_OFFSET}"));
        // The Chinese format comes back whole, its conversions filled in from the same clock:
        // the minute of the default answer, or of a moment before the client ended.
        let custom = lines[2]
            .strip_prefix("当前日期: ")
            .expect("the seed's prefix");
        let shown = clock::parse_local(default).expect("checked above");
        let minutes = [shown, after + 1].map(|secs| {
            let local = secs + clock::TZ_OFFSET_SECS;
            let minute_of_day = local.rem_euclid(86_400) / 60;
            format!("{:02}时{:02}分", minute_of_day / 60, minute_of_day % 60)
        });
        assert!(
            minutes.contains(&custom.to_string()),
            "seed 001 client, {mode} mode: {custom:?}, expected one of {minutes:?}"
        );

        let before = clock::now_secs();
        let run = run_seed_client(SEED_002_TIME_CLIENT, port, &[""]);
        let after = clock::now_secs();
        assert!(run.status.success(), "seed 002 client, {mode} mode: {run}");
        clock::assert_local_time_between(run.stdout.trim_end(), before, after);
    }
}

#[test]
fn hostile_requests_get_clear_replies_and_the_server_goes_on() {
    for mode in ["single", "pool"] {
        let server = start(mode);
        let client = udp_client(server.addr);

        // A 0-byte datagram is legal: it asks for the default format.
        let before = clock::now_secs();
        let reply = exchange(&client, b"");
        clock::assert_local_time_between(&reply, before, clock::now_secs());

        let reply = exchange(&client, b"%Y \xff\xfe invalid UTF-8");
        assert!(
            reply.starts_with("error: ") && reply.contains("not valid UTF-8"),
            "{mode}: {reply:?}"
        );

        let reply = exchange(&client, b"%Y\0%m");
        assert!(
            reply.starts_with("error: ") && reply.contains("NUL"),
            "{mode}: {reply:?}"
        );

        // 4,000 bytes of format, about 48,000 of answer: over the 8,192-byte limit.
        let reply = exchange(&client, "%c".repeat(2000).as_bytes());
        assert!(
            reply.starts_with("error: ") && reply.contains("longer than 8192 bytes"),
            "{mode}: {reply:?}"
        );

        // Just under the limit is answered in full: the buffer grows as needed.
        let reply = exchange(&client, "%c".repeat(300).as_bytes());
        assert_eq!(reply.len(), 24 * 300, "{mode}: 300 × `%c`");

        // Larger than a request may be (max_packet_size): dropped by the library, never answered…
        client.send("%c".repeat(5000).as_bytes()).unwrap();
        // …so the next answer is the next request's, and the server is still serving.
        assert_eq!(exchange(&client, b"%Z %z"), TZ_ZONE_AND_OFFSET, "{mode}");
    }
}

#[test]
fn the_server_sets_so_reuseaddr_like_the_seed() {
    // A socket that allows address reuse holds the port; a server binding it without
    // `SO_REUSEADDR` would fail with "address in use".
    let holder = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    holder.set_reuse_address(true).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    holder.bind(&any.into()).unwrap();
    let port = holder.local_addr().unwrap().as_socket().unwrap().port();
    let addr = format!("127.0.0.1:{port}");

    let mut command = std::process::Command::new(example("time_server"));
    command.args(["--addr", &addr]);
    let mut server = Interactive::start(command);
    assert_eq!(server.next_line(), format!("listening on {addr}"));
}

fn udp_client(server: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    socket.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    socket.connect(server).unwrap();
    socket
}

fn exchange(socket: &UdpSocket, request: &[u8]) -> String {
    socket.send(request).unwrap();
    let mut buf = vec![0u8; 65_536];
    let n = socket
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no reply to a {}-byte request: {e}", request.len()));
    String::from_utf8(buf[..n].to_vec()).expect("a UTF-8 reply")
}
