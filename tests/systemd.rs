//! Socket activation with the real `systemd-socket-activate` (Debian package `systemd`): the
//! examples run under it with `--systemd` serve the socket it passes — TCP in every kind of mode,
//! UDP (`--datagram`) and a Unix stream socket — and print the real address; a socket of the
//! wrong kind is refused with a message that says what was passed and what was needed.
//!
//! The tool binds, waits for the first client, then `exec`s the example, so a client connects
//! (or sends) first and reads the `listening on` line afterwards. A free port is found by binding
//! port 0 and closing it; if another process takes it meanwhile, the tool fails to bind and the
//! test tries another port. Where the tool is missing the tests say `SKIPPED` and pass without
//! running, or fail under `SOCKETSERVER_TEST_REQUIRE_ALL` (which `.ci/run` sets after installing
//! it). Descriptors that are not sockets are passed by a shell instead (`LISTEN_PID=$$` and
//! `exec`, with redirections), which needs no tool.

mod programs;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use programs::{example, scratch, Interactive, Run, IO_TIMEOUT, RUN_TIMEOUT, STARTUP_TIMEOUT};

const TOOL: &str = "systemd-socket-activate";
/// Attempts at a free port before giving up.
const PORT_ATTEMPTS: usize = 5;

/// Whether the tool is installed; when it is not, the test is skipped (or fails under
/// `SOCKETSERVER_TEST_REQUIRE_ALL`, see [`skip`](programs::skip)).
fn tool_available() -> bool {
    programs::skip::program(TOOL, "systemd").is_some()
}

/// A port that was free a moment ago.
fn free_port(udp: bool) -> u16 {
    if udp {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
        socket.local_addr().expect("its address").port()
    } else {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a TCP port");
        listener.local_addr().expect("its address").port()
    }
}

/// `systemd-socket-activate <tool_args> <example> --systemd <args>`.
fn activate(tool_args: &[&str], name: &str, args: &[&str]) -> Interactive {
    let mut command = Command::new(TOOL);
    command
        .args(tool_args)
        .arg(example(name))
        .arg("--systemd")
        .args(args);
    Interactive::start(command)
}

/// Runs `name` under the tool on a free loopback port (`udp`: with `--datagram`), retrying when
/// the port was taken meanwhile; once the tool says it listens, `client` talks to it (`Ok(None)`:
/// no reply yet, try again). Returns the running program, the address and the reply.
fn activate_on_free_port(
    udp: bool,
    name: &str,
    args: &[&str],
    client: impl Fn(SocketAddr) -> Result<Option<Vec<u8>>, String>,
) -> (Interactive, SocketAddr, Vec<u8>) {
    for _ in 0..PORT_ATTEMPTS {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port(udp)).into();
        let listen = addr.to_string();
        let mut tool_args = vec!["-l", listen.as_str(), "--fdname=web"];
        if udp {
            tool_args.push("--datagram");
        }
        let mut program = activate(&tool_args, name, args);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        // Only once the tool has bound the port: before, another process may hold it.
        let bound = format!("Listening on {addr}");
        while Instant::now() < deadline && !program.has_exited() {
            if program.stderr_so_far().contains(&bound) {
                match client(addr) {
                    Ok(Some(reply)) => return (program, addr, reply),
                    Ok(None) => {}
                    Err(why) => panic!(
                        "{name} {args:?} under {TOOL} on {addr}: {why}; stderr:\n{}",
                        program.stderr_so_far()
                    ),
                }
            }
            thread::sleep(Duration::from_millis(20));
        }
        let log = program.stderr_so_far();
        assert!(
            !log.contains(&bound),
            "{name} under {TOOL} on {addr} did not answer within {STARTUP_TIMEOUT:?}; stderr:\n{log}"
        );
    }
    panic!("no free port for {TOOL} after {PORT_ATTEMPTS} attempts");
}

/// One exchange over TCP with a server that listens.
fn tcp_exchange(addr: SocketAddr, request: &[u8], reply_len: usize) -> Result<Vec<u8>, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(request)
        .map_err(|e| format!("send: {e}"))?;
    let mut reply = vec![0u8; reply_len];
    stream
        .read_exact(&mut reply)
        .map_err(|e| format!("no reply to {:?}: {e}", String::from_utf8_lossy(request)))?;
    Ok(reply)
}

#[test]
fn tcp_socket_activation_serves_in_threading_prefork_and_process_modes() {
    if !tool_available() {
        return;
    }
    for mode in ["threading", "prefork", "process"] {
        let mut args = vec!["--mode", mode];
        if mode == "prefork" {
            args.extend(["--workers", "2"]);
        }
        let (mut server, addr, reply) = activate_on_free_port(false, "echo_upper", &args, |a| {
            tcp_exchange(a, b"hello\n", 6).map(Some)
        });
        assert_eq!(reply, b"HELLO\n", "--mode {mode}");
        assert_eq!(
            server.next_line(),
            format!("listening on {addr}"),
            "--mode {mode}: the line names the passed socket's address"
        );
        // Later connections too: in prefork and process mode they reach the children, which
        // inherited the socket from the parent rather than from systemd.
        for i in 0..4 {
            let request = format!("again {i}\n");
            let reply = tcp_exchange(addr, request.as_bytes(), request.len()).unwrap_or_else(|e| {
                panic!(
                    "--mode {mode}: connection {i}: {e}; stderr:\n{}",
                    server.stderr_so_far()
                )
            });
            assert_eq!(reply, request.to_uppercase().as_bytes(), "--mode {mode}");
        }
        let log = server.stderr_so_far();
        assert!(!log.contains("ERROR"), "--mode {mode}: {log}");
    }
}

/// A message server with two event loops serves the passed socket: connections held open
/// together (spread over both loops) are each answered.
#[cfg(feature = "message")]
#[test]
fn tcp_socket_activation_serves_a_message_server_with_two_loops() {
    if !tool_available() {
        return;
    }
    let args = [
        "--api", "message", "--mode", "single", "--proto", "line", "--loops", "2",
    ];
    let (mut server, addr, reply) = activate_on_free_port(false, "echo_server", &args, |a| {
        tcp_exchange(a, b"hello\n", 6).map(Some)
    });
    assert_eq!(reply, b"hello\n");
    assert_eq!(server.next_line(), format!("listening on {addr}"));
    let mut held = Vec::new();
    for i in 0..4 {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let line = format!("line {i}\n");
        stream.write_all(line.as_bytes()).unwrap();
        let mut echoed = vec![0u8; line.len()];
        stream
            .read_exact(&mut echoed)
            .unwrap_or_else(|e| panic!("connection {i}: {e}; stderr:\n{}", server.stderr_so_far()));
        assert_eq!(echoed, line.as_bytes());
        held.push(stream);
    }
    let log = server.stderr_so_far();
    assert!(!log.contains("ERROR"), "{log}");
}

#[test]
fn udp_socket_activation_with_datagram_serves_udp_upper() {
    if !tool_available() {
        return;
    }
    let client = UdpSocket::bind("127.0.0.1:0").expect("client socket");
    client
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let (mut server, addr, reply) = activate_on_free_port(true, "udp_upper", &[], |addr| {
        client
            .send_to(b"hello", addr)
            .map_err(|e| format!("send: {e}"))?;
        let mut buf = [0u8; 64];
        // The datagram waits in the socket while the tool starts the program; this closure is
        // called again (a resend) until a reply comes.
        Ok(client
            .recv_from(&mut buf)
            .ok()
            .map(|(n, _)| buf[..n].to_vec()))
    });
    assert_eq!(reply, b"HELLO");
    assert_eq!(server.next_line(), format!("listening on {addr}"));
}

#[test]
fn unix_socket_activation_serves_echo_upper_on_the_passed_path() {
    if !tool_available() {
        return;
    }
    // Per process: two runs of this test binary at once must not share the socket file.
    let dir = scratch(&format!("systemd-unix-activation-{}", std::process::id()));
    let path = dir.join("echo.sock");
    let listen = path.to_str().expect("a UTF-8 path").to_string();
    let mut server = activate(&["-l", &listen, "--fdname=web"], "echo_upper", &[]);
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let mut stream = loop {
        if let Ok(stream) = UnixStream::connect(&path) {
            break stream;
        }
        assert!(
            Instant::now() < deadline && !server.has_exited(),
            "{TOOL} never listened on {listen}; stderr:\n{}",
            server.stderr_so_far()
        );
        thread::sleep(Duration::from_millis(50));
    };
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.write_all(b"unix\n").expect("send");
    let mut reply = [0u8; 5];
    stream.read_exact(&mut reply).expect("reply");
    assert_eq!(&reply, b"UNIX\n");
    assert_eq!(server.next_line(), format!("listening on {listen}"));
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_socket_of_the_wrong_kind_is_refused_with_what_was_passed_and_needed() {
    if !tool_available() {
        return;
    }
    // udp_upper wants a UDP socket; give it a TCP listener. The tool starts it on the first
    // connection, which the program then cannot serve. The connection stays open until then.
    let held = std::cell::RefCell::new(Vec::new());
    let (server, _addr, _) = activate_on_free_port(false, "udp_upper", &[], |addr| {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        held.borrow_mut().push(stream);
        Ok(Some(Vec::new()))
    });
    let (status, stdout, stderr) = server.finish();
    drop(held);
    assert_eq!(
        status.code(),
        Some(1),
        "stdout: {stdout:?}\nstderr:\n{stderr}"
    );
    assert!(stdout.is_empty(), "nothing announced: {stdout:?}");
    assert!(
        stderr.contains(
            "LISTEN_FDS names 1 socket (web); fd 3 (\"web\") is a listening TCP socket but \
             systemd_udp needs a UDP socket (ListenDatagram="
        ),
        "{stderr}"
    );
}

#[test]
fn listen_fds_over_descriptors_that_are_not_sockets_names_the_descriptor_and_what_it_is() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let regular_file = format!("3<'{manifest}'");
    // LISTEN_FDS, the redirections that give the program its descriptors, and what it must say.
    let cases = [
        (
            "5",
            "3<&- 4<&- 5<&- 6<&- 7<&-",
            "LISTEN_FDS=5 says descriptors 3 to 7 were passed, but descriptor 3 is not open",
        ),
        (
            "1",
            "3</dev/null",
            "descriptor 3 (from LISTEN_FDS) is a character device",
        ),
        (
            "1",
            "3<&0",
            "descriptor 3 (from LISTEN_FDS) is a pipe (or FIFO), not a socket, but a server needs a \
             socket (ListenStream= or ListenDatagram= in the .socket unit)",
        ),
        (
            "1",
            regular_file.as_str(),
            "descriptor 3 (from LISTEN_FDS) is a regular file, not a socket",
        ),
    ];
    for name in ["echo_upper", "udp_upper"] {
        for (count, redirections, expected) in cases {
            // The variables name the shell, which `exec` turns into the example.
            let script = format!(
                "LISTEN_PID=$$; LISTEN_FDS={count}; export LISTEN_PID LISTEN_FDS; \
                 exec \"$0\" --systemd {redirections}"
            );
            let mut command = Command::new("/bin/sh");
            command.arg("-c").arg(&script).arg(example(name));
            // Stdin is a pipe: `3<&0` passes it.
            let run = Run::with_input(command, b"", RUN_TIMEOUT);
            assert_eq!(run.status.code(), Some(1), "{name}: {script}: {run}");
            assert!(run.stderr.contains(expected), "{name}: {script}: {run}");
            assert!(run.stdout.is_empty(), "{name}: {script}: {run}");
        }
    }
}

/// The `ExecStart=` of a unit in `deploy/`, as the program's name and its arguments.
fn exec_start(unit: &str) -> (String, Vec<String>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(unit);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    for key in [
        "Type=notify",
        "Restart=",
        "TimeoutStopSec=",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(key)),
            "{unit} has no {key}"
        );
    }
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("{unit} has no ExecStart="));
    let mut words = line.split_whitespace().map(str::to_string);
    let program = words.next().expect("a program");
    let name = program.rsplit('/').next().expect("a file name").to_string();
    (name, words.collect())
}

#[test]
fn the_deploy_units_command_lines_serve_under_socket_activation() {
    if !tool_available() {
        return;
    }
    let cases: [(&str, &[u8], &[u8]); 2] = [
        ("echo_upper.service", b"units\n", b"UNITS\n"),
        ("resp_kv.service", b"PING\r\n", b"+PONG\r\n"),
    ];
    for (unit, request, expected) in cases {
        let (name, args) = exec_start(unit);
        assert_eq!(
            args.first().map(String::as_str),
            Some("--systemd"),
            "{unit}"
        );
        // `activate` adds `--systemd` itself.
        let args: Vec<&str> = args[1..].iter().map(String::as_str).collect();
        let (mut server, addr, reply) = activate_on_free_port(false, &name, &args, |addr| {
            tcp_exchange(addr, request, expected.len()).map(Some)
        });
        assert_eq!(reply, expected, "{unit}");
        assert_eq!(server.next_line(), format!("listening on {addr}"), "{unit}");
    }
}
