//! Runs the example programs as a user would: `echo_upper` and `udp_upper` on port 0 in every
//! mode, driven over real sockets (and by the seeds' own Python clients when `python3` is
//! installed), `tour` to completion, and the command-line error paths.
//!
//! The child processes are run by the `programs` module: killed and reaped whatever the test's
//! outcome, every read and every wait with a deadline.

mod programs;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;

use programs::python::{python3_available, run_seed_client};
use programs::{example, Run, Server, IO_TIMEOUT, RUN_TIMEOUT};

// ---------------------------------------------------------------------------------------------
// echo_upper

#[test]
fn echo_upper_single_mode_serves_one_client_after_another() {
    let server = Server::start("echo_upper", &["--mode", "single"]);
    let mut first = tcp_client(server.addr);
    assert_eq!(tcp_exchange(&mut first, "hello 世界"), "HELLO 世界");
    assert_eq!(tcp_exchange(&mut first, "abc xyz"), "ABC XYZ");
    drop(first); // the server reads 0 bytes, ends this connection, and serves the next
    let mut second = tcp_client(server.addr);
    assert_eq!(tcp_exchange(&mut second, "hello 世界"), "HELLO 世界");
}

#[test]
fn echo_upper_threading_mode_serves_two_clients_at_once() {
    let server = Server::start("echo_upper", &["--mode", "threading", "--max-threads", "4"]);
    two_tcp_clients_at_once(server.addr);
}

#[test]
fn echo_upper_pool_mode_serves_two_clients_at_once() {
    let server = Server::start("echo_upper", &["--mode", "pool", "--workers", "2"]);
    two_tcp_clients_at_once(server.addr);
}

#[test]
fn echo_upper_process_mode_serves_two_clients_at_once() {
    let server = Server::start("echo_upper", &["--mode", "process", "--max-children", "4"]);
    two_tcp_clients_at_once(server.addr);
}

#[test]
fn echo_upper_prefork_mode_serves_two_clients_at_once() {
    let server = Server::start("echo_upper", &["--mode", "prefork", "--workers", "2"]);
    two_tcp_clients_at_once(server.addr);
}

#[test]
fn echo_upper_defaults_to_threading_mode() {
    let server = Server::start("echo_upper", &[]);
    two_tcp_clients_at_once(server.addr);
}

/// Both connections stay open while both are served: only a concurrent mode can do this.
fn two_tcp_clients_at_once(addr: SocketAddr) {
    let mut a = tcp_client(addr);
    let mut b = tcp_client(addr);
    assert_eq!(tcp_exchange(&mut a, "hello 世界"), "HELLO 世界");
    assert_eq!(tcp_exchange(&mut b, "hello from b"), "HELLO FROM B");
    assert_eq!(tcp_exchange(&mut a, "still here, a"), "STILL HERE, A");
    drop(a);
    assert_eq!(tcp_exchange(&mut b, "b again"), "B AGAIN");
}

fn tcp_client(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Sends `message` and reads back as many bytes (upper-casing keeps the length).
fn tcp_exchange(stream: &mut TcpStream, message: &str) -> String {
    stream.write_all(message.as_bytes()).unwrap();
    let mut reply = vec![0u8; message.len()];
    stream
        .read_exact(&mut reply)
        .unwrap_or_else(|e| panic!("no reply to {message:?}: {e}"));
    String::from_utf8(reply).expect("a UTF-8 reply")
}

// ---------------------------------------------------------------------------------------------
// udp_upper

#[test]
fn udp_upper_single_mode() {
    udp_round_trips(&Server::start("udp_upper", &["--mode", "single"]));
}

#[test]
fn udp_upper_threading_mode() {
    udp_round_trips(&Server::start(
        "udp_upper",
        &["--mode", "threading", "--max-threads", "2"],
    ));
}

#[test]
fn udp_upper_pool_mode() {
    udp_round_trips(&Server::start(
        "udp_upper",
        &["--mode", "pool", "--workers", "2"],
    ));
}

#[test]
fn udp_upper_process_mode() {
    udp_round_trips(&Server::start("udp_upper", &["--mode", "process"]));
}

#[test]
fn udp_upper_prefork_mode() {
    udp_round_trips(&Server::start(
        "udp_upper",
        &["--mode", "prefork", "--workers", "2"],
    ));
}

#[test]
fn udp_upper_defaults_to_single_mode() {
    udp_round_trips(&Server::start("udp_upper", &[]));
}

fn udp_round_trips(server: &Server) {
    let a = udp_client(server.addr);
    let b = udp_client(server.addr);
    assert_eq!(
        udp_exchange(&a, b"hello \xe4\xb8\x96\xe7\x95\x8c"),
        "HELLO 世界".as_bytes()
    );
    assert_eq!(
        udp_exchange(&a, b""),
        b"",
        "an empty datagram gets an empty reply"
    );
    // Two clients with a datagram in flight each: each gets its own answer.
    a.send(b"from a").unwrap();
    b.send(b"from b").unwrap();
    assert_eq!(udp_receive(&b), b"FROM B");
    assert_eq!(udp_receive(&a), b"FROM A");
}

fn udp_client(server: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    socket.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    socket.connect(server).unwrap(); // only the server's datagrams are received
    socket
}

fn udp_exchange(socket: &UdpSocket, datagram: &[u8]) -> Vec<u8> {
    socket.send(datagram).unwrap();
    udp_receive(socket)
}

fn udp_receive(socket: &UdpSocket) -> Vec<u8> {
    let mut buf = [0u8; 2048];
    let n = socket
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no reply datagram: {e}"));
    buf[..n].to_vec()
}

// ---------------------------------------------------------------------------------------------
// tour and the command line

#[test]
fn tour_runs_to_completion() {
    let run = Run::to_completion(Command::new(example("tour")), RUN_TIMEOUT);
    assert!(run.status.success(), "tour failed: {run}");
    assert!(
        run.stdout.contains("tour finished"),
        "tour did not finish its transcript: {run}"
    );
    // The prefork section announces 2 workers: the clients' replies must come from both.
    let prefork: Vec<&str> = run
        .stdout
        .lines()
        .skip_while(|line| !line.starts_with("== TCP, prefork mode"))
        .take_while(|line| !line.is_empty())
        .collect();
    let pids: HashSet<&str> = prefork
        .iter()
        .filter_map(|line| line.trim_start().strip_prefix("client "))
        .filter_map(|rest| rest.split(": ").nth(1))
        .collect();
    assert!(
        pids.len() > 1,
        "the prefork clients were all served by {pids:?}:\n{}",
        prefork.join("\n")
    );
    #[cfg(feature = "message")]
    tour_shows_a_message_server(&run.stdout);
    #[cfg(feature = "message")]
    tour_shows_message_loops(&run.stdout);
}

/// The message-server stop: every client's pipelined lines answered, in order, and the server's
/// stats counting the three connections.
#[cfg(feature = "message")]
fn tour_shows_a_message_server(stdout: &str) {
    let stop: Vec<&str> = stdout
        .lines()
        .skip_while(|line| !line.starts_with("== TCP message server, pool mode"))
        .take_while(|line| !line.is_empty())
        .collect();
    let text = stop.join("\n");
    assert!(
        text.contains("Choose it over a stream handler"),
        "the tour has no message-server stop, or it does not say when to choose one:\n{stdout}"
    );
    for client in 1..=3 {
        let line = format!(
            "   client {client}: \"hello 世界 #{client}\" -> \"HELLO 世界 #{client}\", \"bye #{client}\" -> \"BYE #{client}\""
        );
        assert!(stop.contains(&line.as_str()), "no {line:?} in:\n{text}");
    }
    assert!(
        stop.contains(&"   stats: accepted 3, completed 3, failed 0, rejected 0, active 0"),
        "{text}"
    );
}

/// The stop with two event loops: every client answered, and the lines handled on both loops.
#[cfg(feature = "message")]
fn tour_shows_message_loops(stdout: &str) {
    let stop: Vec<&str> = stdout
        .lines()
        .skip_while(|line| !line.starts_with("== TCP message server, 2 event loops"))
        .take_while(|line| !line.is_empty())
        .collect();
    let text = stop.join("\n");
    assert!(
        text.contains("blocking handlers belong"),
        "the tour has no stop with several loops, or it does not say when to choose a pool:\n{stdout}"
    );
    for client in 1..=3 {
        let answered =
            format!("   client {client}: \"hello 世界 #{client}\" -> \"HELLO 世界 #{client}\"");
        assert!(
            stop.iter().any(|line| line.starts_with(&answered)),
            "no {answered:?} in:\n{text}"
        );
    }
    let loops = stop
        .iter()
        .find(|line| line.starts_with("   lines handled on "))
        .unwrap_or_else(|| panic!("no line naming the loops in:\n{text}"));
    assert!(
        loops.starts_with("   lines handled on 2 event loops:")
            && loops.contains("message-loop-0")
            && loops.contains("message-loop-1"),
        "{loops}"
    );
}

#[test]
fn tour_help_prints_the_usage_without_touring() {
    let mut command = Command::new(example("tour"));
    command.arg("--help");
    let run = Run::to_completion(command, RUN_TIMEOUT);
    assert!(run.status.success(), "tour --help: {run}");
    assert!(run.stdout.starts_with("usage: tour"), "tour --help: {run}");
    assert!(
        !run.stdout.contains("=="),
        "tour --help ran the tour: {run}"
    );

    let mut command = Command::new(example("tour"));
    command.arg("--frobnicate");
    let run = Run::to_completion(command, RUN_TIMEOUT);
    assert_eq!(run.status.code(), Some(2), "tour --frobnicate: {run}");
    let first_line = run.stderr.lines().next().unwrap_or_default();
    assert!(
        first_line.contains("--frobnicate"),
        "tour --frobnicate: {run}"
    );
    assert!(
        run.stdout.is_empty(),
        "tour --frobnicate ran the tour: {run}"
    );
}

#[test]
fn bad_arguments_exit_with_status_2_and_a_message() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("echo_upper", &["--mode", "bogus"], "bogus"),
        ("udp_upper", &["--mode", "bogus"], "bogus"),
        ("echo_upper", &["--frobnicate"], "--frobnicate"),
        ("echo_upper", &["--addr", "nonsense"], "nonsense"),
        ("echo_upper", &["--addr"], "--addr"),
        (
            "udp_upper",
            &["--mode", "pool", "--workers", "0"],
            "--workers",
        ),
        ("udp_upper", &["--workers", "2"], "--workers"),
        (
            "echo_upper",
            &["--mode", "pool", "--max-threads", "2"],
            "--max-threads",
        ),
        ("echo_upper", &["stray"], "stray"),
    ];
    for (name, args, mentions) in cases {
        let mut command = Command::new(example(name));
        command.args(*args);
        let run = Run::to_completion(command, RUN_TIMEOUT);
        let what = format!("{name} {}", args.join(" "));
        assert_eq!(run.status.code(), Some(2), "{what}: {run}");
        let first_line = run.stderr.lines().next().unwrap_or_default();
        assert!(
            first_line.contains(mentions),
            "{what}: the first stderr line should mention {mentions:?}: {run}"
        );
        assert!(run.stderr.contains("usage:"), "{what}: no usage: {run}");
        assert!(run.stdout.is_empty(), "{what}: wrote to stdout: {run}");
    }
}

#[test]
fn help_prints_the_usage_and_exits_0() {
    for name in ["echo_upper", "udp_upper"] {
        let mut command = Command::new(example(name));
        command.arg("--help");
        let run = Run::to_completion(command, RUN_TIMEOUT);
        assert!(run.status.success(), "{name} --help: {run}");
        assert!(run.stdout.starts_with("usage: "), "{name} --help: {run}");
        assert!(
            run.stdout.contains("--addr HOST:PORT"),
            "{name} --help: {run}"
        );
    }
}

/// An example that runs in some modes only offers just those in its usage, and refuses the
/// others with a message naming what it accepts.
#[test]
fn help_offers_only_the_modes_an_example_accepts() {
    // (example, the modes it accepts as the usage lists them, the modes it refuses, options of
    // modes it does not have)
    let cases: &[(&str, &str, &[&str], &[&str])] = &[
        (
            "sticky_packets",
            "single only",
            &["threading", "pool", "process", "prefork"],
            &["--workers", "--max-threads", "--max-children"],
        ),
        (
            "std_echo",
            "threading only",
            &["single", "pool", "process", "prefork"],
            &["--workers", "--max-children"],
        ),
        (
            "chat",
            "single, threading or pool (default",
            &["process", "prefork"],
            &["--max-children"],
        ),
        (
            "resp_kv",
            "single, threading or pool (default",
            &["process", "prefork"],
            &["--max-children"],
        ),
        (
            "echo_upper",
            "single, threading, pool, process or prefork (default",
            &[],
            &[],
        ),
    ];
    for (name, accepted, refused, absent_options) in cases {
        let mut command = Command::new(example(name));
        command.arg("--help");
        let help = Run::to_completion(command, RUN_TIMEOUT);
        assert!(help.status.success(), "{name} --help: {help}");
        let offered = help
            .stdout
            .lines()
            .find(|line| line.trim_start().starts_with("--mode MODE"))
            .unwrap_or_else(|| panic!("{name} --help has no --mode line: {help}"));
        assert!(
            offered.contains(accepted),
            "{name} --help offers {offered:?}, expected {accepted:?}"
        );
        let accepted = accepted
            .trim_end_matches(" (default")
            .trim_end_matches(" only");
        for mode in *refused {
            assert!(
                !offered.contains(mode),
                "{name} --help offers {mode}: {help}"
            );
            let mut command = Command::new(example(name));
            command.args(["--mode", mode]);
            let run = Run::to_completion(command, RUN_TIMEOUT);
            assert_eq!(run.status.code(), Some(2), "{name} --mode {mode}: {run}");
            let first_line = run.stderr.lines().next().unwrap_or_default();
            assert!(
                first_line.contains(&format!("'{mode}'")) && first_line.contains(accepted),
                "{name} --mode {mode}: the message should name the mode and those accepted: {run}"
            );
        }
        for option in *absent_options {
            assert!(
                !help.stdout.contains(option),
                "{name} --help offers {option}, an option of a mode it does not have: {help}"
            );
        }
    }
}

#[test]
fn an_address_in_use_is_a_runtime_error_with_status_1() {
    let taken_tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let cases = [
        ("echo_upper", taken_tcp.local_addr().unwrap()),
        ("udp_upper", taken_udp.local_addr().unwrap()),
    ];
    for (name, addr) in cases {
        let mut command = Command::new(example(name));
        command.args(["--addr", &addr.to_string()]);
        let run = Run::to_completion(command, RUN_TIMEOUT);
        assert_eq!(run.status.code(), Some(1), "{name} on a taken port: {run}");
        assert!(
            run.stderr.contains("error: cannot bind") && run.stderr.contains(&addr.to_string()),
            "{name}: the error should say what could not be bound: {run}"
        );
        assert!(run.stdout.is_empty(), "{name}: wrote to stdout: {run}");
    }
}

// ---------------------------------------------------------------------------------------------
// The seeds' own Python clients

/// The TCP client of the seeds' upper-case echo (000 and 002, "加上链接循环与通信循环"), verbatim
/// but for the port, which comes from the command line. [`run_seed_client`] adds socket timeouts
/// and an `input()` that reads the rest of the command line instead of the keyboard.
const SEED_TCP_CLIENT: &str = r#"
import socket, sys

ip_port=('127.0.0.1',int(sys.argv[1]))
BUFSIZE=1024
s=socket.socket(socket.AF_INET,socket.SOCK_STREAM)
s.connect_ex(ip_port)           #拨电话
while True:                             #新增通信循环,客户端可以不断发收消息
    msg=input('>>: ').strip()
    if len(msg) == 0:continue
    s.send(msg.encode('utf-8'))         #发消息,说话(只能发送字节类型)
    feedback=s.recv(BUFSIZE)                           #收消息,听话
    print(feedback.decode('utf-8'))
s.close()                                       #挂电话
"#;

/// The UDP client of the seeds' upper-case echo (000 and 002), changed the same way.
const SEED_UDP_CLIENT: &str = r#"
import socket, sys

ip_port=('127.0.0.1',int(sys.argv[1]))
BUFSIZE=1024
udp_server_client=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
while True:
    msg=input('>>: ').strip()
    if not msg:continue
    udp_server_client.sendto(msg.encode('utf-8'),ip_port)
    back_msg,addr=udp_server_client.recvfrom(BUFSIZE)
    print(back_msg.decode('utf-8'),addr)
"#;

/// What the scripted user types; the empty line is skipped by the clients, as in the seeds.
const SEED_INPUT: [&str; 4] = ["hello 世界", "", "  socketserver 和 Python  ", "quit"];

#[test]
fn seed_python_tcp_client_talks_to_echo_upper() {
    if !python3_available() {
        return;
    }
    for mode in ["single", "threading", "pool", "process", "prefork"] {
        let server = Server::start("echo_upper", &["--mode", mode]);
        let run = run_seed_client(SEED_TCP_CLIENT, server.addr.port(), &SEED_INPUT);
        assert!(run.status.success(), "seed TCP client, {mode} mode: {run}");
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(
            lines,
            ["HELLO 世界", "SOCKETSERVER 和 PYTHON", "QUIT"],
            "seed TCP client, {mode} mode: {run}"
        );
    }
}

#[test]
fn seed_python_udp_client_talks_to_udp_upper() {
    if !python3_available() {
        return;
    }
    for mode in ["single", "threading", "pool", "process", "prefork"] {
        let server = Server::start("udp_upper", &["--mode", mode]);
        let run = run_seed_client(SEED_UDP_CLIENT, server.addr.port(), &SEED_INPUT);
        assert!(run.status.success(), "seed UDP client, {mode} mode: {run}");
        let from = format!("('127.0.0.1', {})", server.addr.port());
        let want = [
            format!("HELLO 世界 {from}"),
            format!("SOCKETSERVER 和 PYTHON {from}"),
            format!("QUIT {from}"),
        ];
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(lines, want, "seed UDP client, {mode} mode: {run}");
    }
}

/// A default build has no TLS (the library's `tls` feature is off by default): the examples
/// refuse its options rather than serve plaintext where TLS was asked for.
#[cfg(not(feature = "tls"))]
#[test]
fn tls_options_are_refused_without_the_tls_feature() {
    let mut command = Command::new(example("echo_upper"));
    command.args(["--tls-cert", "server.crt", "--tls-key", "server.key"]);
    let run = Run::to_completion(command, RUN_TIMEOUT);
    assert_eq!(run.status.code(), Some(2), "{run}");
    assert!(
        run.stderr
            .contains("built without the library's `tls` feature"),
        "{run}"
    );
    assert!(run.stdout.is_empty(), "{run}");
}
