//! Runs the example programs as a user would: `echo_upper` and `udp_upper` on port 0 in every
//! mode, driven over real sockets (and by the seeds' own Python clients when `python3` is
//! installed), `tour` to completion, and the command-line error paths.
//!
//! Every child process is killed and reaped by a guard, whatever the test's outcome; every read
//! and every wait has a deadline; servers are found through their `listening on <addr>` line, never
//! at a fixed port.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// Read and write timeout of every test socket.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to print its `listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a program that should end by itself (tour, a bad command line, a Python client) may
/// run.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long building the examples may take, when the test has to do it.
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

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
/// but for the port, which comes from the command line, and `input()`, which reads the rest of
/// the command line instead of the keyboard.
const SEED_TCP_CLIENT: &str = r#"
import socket, sys
socket.setdefaulttimeout(10)  # added: no call may wait forever
_script = sys.argv[2:]
def input(prompt=''):  # added: scripted input; the seed's loop never ends, the script does
    if not _script:
        raise SystemExit(0)
    return _script.pop(0)

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
socket.setdefaulttimeout(10)  # added: no call may wait forever
_script = sys.argv[2:]
def input(prompt=''):  # added: scripted input; the seed's loop never ends, the script does
    if not _script:
        raise SystemExit(0)
    return _script.pop(0)

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
    for mode in ["single", "threading", "pool"] {
        let server = Server::start("echo_upper", &["--mode", mode]);
        let run = run_python(SEED_TCP_CLIENT, server.addr.port());
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
    for mode in ["single", "threading", "pool"] {
        let server = Server::start("udp_upper", &["--mode", mode]);
        let run = run_python(SEED_UDP_CLIENT, server.addr.port());
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

/// Whether `python3` can be run; prints why the test is skipped when it cannot.
fn python3_available() -> bool {
    let found = Command::new("python3")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        println!("skipped: python3 is not on PATH, so the seeds' Python clients cannot run");
    }
    found
}

fn run_python(script: &str, port: u16) -> Run {
    let mut command = Command::new("python3");
    command
        .args(["-c", script, &port.to_string()])
        .args(SEED_INPUT)
        .env("PYTHONIOENCODING", "utf-8")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    Run::to_completion(command, RUN_TIMEOUT)
}

// ---------------------------------------------------------------------------------------------
// Running the examples

/// An example server running as a child process; killed and reaped when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// Starts `name --addr 127.0.0.1:0 <args>` and reads the address from its first stdout line.
    fn start(name: &str, args: &[&str]) -> Server {
        let mut child = Command::new(example(name))
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        // From here on, the guard kills the child however this function ends.
        let mut guard = ChildGuard(Some(child));

        let (line_tx, line_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut first = String::new();
            let read = reader.read_line(&mut first).map(|_| first);
            let _ = line_tx.send(read);
            // Keep draining, so the server never blocks on a full pipe.
            let _ = io::copy(&mut reader, &mut io::sink());
        });
        let first = match line_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => panic!("{name}: cannot read stdout: {e}"),
            Err(_) => panic!(
                "{name} printed no line within {STARTUP_TIMEOUT:?}; stderr:\n{}",
                snapshot(&stderr)
            ),
        };
        let Some(line) = first.strip_suffix('\n') else {
            panic!(
                "{name}: expected a `listening on` line, got {first:?}; stderr:\n{}",
                snapshot(&stderr)
            );
        };
        let addr: SocketAddr = line
            .strip_prefix("listening on ")
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("{name}: first stdout line is {line:?}, expected `listening on 127.0.0.1:<port>`"));
        assert_eq!(line, format!("listening on 127.0.0.1:{}", addr.port()));
        assert!(
            addr.ip().is_loopback() && addr.port() != 0,
            "{name}: {line}"
        );
        Server {
            child: guard.0.take().expect("the child"),
            addr,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills and reaps a child unless it was taken out.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A program run to its end: exit status and output.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Runs `command` with no input, failing the test (after killing the child) if it is still
    /// running after `timeout`.
    fn to_completion(mut command: Command, timeout: Duration) -> Run {
        let what = format!("{command:?}");
        let mut child = command
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        let stdout = drain(child.stdout.take().expect("piped stdout"));
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        let mut guard = ChildGuard(Some(child));
        let status = wait_with_deadline(guard.0.as_mut().expect("the child"), timeout)
            .unwrap_or_else(|| {
                panic!(
                    "{what} still running after {timeout:?}; killed it. stdout:\n{}\nstderr:\n{}",
                    snapshot(&stdout),
                    snapshot(&stderr)
                )
            });
        guard.0 = None;
        Run {
            status,
            // The pipes close when the child exits; the drain threads finish right after.
            stdout: drained(stdout, &what),
            stderr: drained(stderr, &what),
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout:\n{}--- stderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Polls `child` until it exits or `timeout` passes (`None`).
fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) => return None,
            Err(e) => panic!("cannot wait for a child process: {e}"),
        }
    }
}

/// Output collected by a thread reading a pipe to its end.
struct Drained {
    text: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

fn drain(mut pipe: impl Read + Send + 'static) -> Drained {
    let text = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&text);
    let (done_tx, done) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
        let _ = done_tx.send(());
    });
    Drained { text, done }
}

/// What has been read so far.
fn snapshot(drained: &Drained) -> String {
    String::from_utf8_lossy(&drained.text.lock().unwrap()).into_owned()
}

/// Everything, once the pipe has closed.
fn drained(drained: Drained, what: &str) -> String {
    if drained.done.recv_timeout(IO_TIMEOUT).is_err() {
        panic!("{what}: its output pipe stayed open after it exited");
    }
    snapshot(&drained)
}

// ---------------------------------------------------------------------------------------------
// Finding the example binaries

/// The path of the compiled example `name`, building the examples first if needed.
///
/// `cargo test` builds the examples next to the test binaries (`target/<profile>/examples/`);
/// `cargo test --test examples_cli` does not, so when a binary is missing, or older than the
/// sources, the first test to notice runs `cargo build --examples` into the same target directory.
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let profile_dir = profile_dir();
    let path = profile_dir.join("examples").join(name);
    if !path.exists() || older_than_sources(&path) {
        if let Err(e) = BUILT.get_or_init(|| build_examples(&profile_dir)) {
            panic!("cannot build example binary {}: {e}", path.display());
        }
    }
    assert!(
        path.exists(),
        "example binary {} is missing even after `cargo build --examples`",
        path.display()
    );
    path
}

/// `target/<profile>`: the test binary lives in its `deps` directory.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe.parent().expect("the test binary's directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("the profile directory").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Whether any file under `src/` or `examples/`, or `Cargo.toml`, changed after `binary` was built.
fn older_than_sources(binary: &Path) -> bool {
    fn newest(path: &Path) -> Option<SystemTime> {
        let meta = fs::metadata(path).ok()?;
        if !meta.is_dir() {
            return meta.modified().ok();
        }
        fs::read_dir(path)
            .ok()?
            .filter_map(|entry| newest(&entry.ok()?.path()))
            .max()
    }
    let Some(built) = fs::metadata(binary).and_then(|m| m.modified()).ok() else {
        return true;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    ["src", "examples", "Cargo.toml"]
        .iter()
        .filter_map(|part| newest(&root.join(part)))
        .any(|changed| changed > built)
}

fn build_examples(profile_dir: &Path) -> Result<(), String> {
    let mut command = Command::new(env!("CARGO"));
    command
        .args(["build", "--examples"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // Build into the target directory this test binary came from, with the same profile.
    if let Some(target_dir) = profile_dir.parent() {
        command.arg("--target-dir").arg(target_dir);
    }
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(profile) => {
            command.args(["--profile", profile]);
        }
    }
    let what = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let mut guard = ChildGuard(Some(child));
    let status = wait_with_deadline(guard.0.as_mut().expect("the child"), BUILD_TIMEOUT)
        .ok_or_else(|| format!("{what} did not finish within {BUILD_TIMEOUT:?}"))?;
    guard.0 = None;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({status}):\n{}",
            drained(stderr, &what)
        ))
    }
}
