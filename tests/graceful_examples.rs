//! The examples stop as a service manager expects (issue 10): SIGTERM or SIGINT stops them
//! gracefully within `--grace SECS`, with exit status 0; what a stop cuts off leaves nothing
//! behind — no partial upload in `file_server`'s folder, no process of a `remote_cmd` command.
//!
//! The servers run as child processes through the `programs` module: killed and reaped whatever
//! the test's outcome, every read and every wait with a deadline.
#![cfg(all(
    feature = "signals",
    feature = "json",
    feature = "auth",
    feature = "checksum"
))]

mod programs;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use programs::{connect, example, scratch, Run, Server, RUN_TIMEOUT};
use serde_json::json;
use socketserver::framing::Framing;

/// Every example that serves, as `--help` lists them.
const SERVERS: [&str; 10] = [
    "echo_upper",
    "echo_server",
    "udp_upper",
    "time_server",
    "chat",
    "auth_echo",
    "file_server",
    "remote_cmd",
    "http_hello",
    "resp_kv",
];

/// How long a server may take to exit after the stop, in these tests.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn every_server_example_documents_grace_in_its_help() {
    for name in SERVERS {
        let mut command = Command::new(example(name));
        command.arg("--help");
        let run = Run::to_completion(command, RUN_TIMEOUT);
        assert!(run.status.success(), "{name} --help: {run}");
        assert!(
            run.stdout.contains("--grace SECS") && run.stdout.contains("SIGTERM"),
            "{name} --help does not describe --grace:\n{}",
            run.stdout
        );
    }
}

#[test]
fn a_bad_grace_value_is_a_usage_error() {
    let mut command = Command::new(example("echo_upper"));
    command.args(["--grace", "soon"]);
    let run = Run::to_completion(command, RUN_TIMEOUT);
    assert_eq!(run.status.code(), Some(2), "{run}");
    assert!(run.stderr.contains("--grace"), "{run}");
}

#[test]
fn echo_upper_exits_0_on_sigterm_and_sigint_in_every_mode() {
    for mode in ["single", "threading", "pool", "process", "prefork"] {
        for (signal, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGINT, "SIGINT")] {
            let mut server = Server::start("echo_upper", &["--mode", mode, "--grace", "5"]);
            let mut client = connect(server.addr);
            client.write_all(b"hello").unwrap();
            let mut reply = [0u8; 5];
            client.read_exact(&mut reply).unwrap();
            assert_eq!(&reply, b"HELLO");
            drop(client);
            // The handler sees the client leave; wait for it so the stop finds nothing running.
            thread::sleep(Duration::from_millis(50));
            let signalled = Instant::now();
            server.signal(signal);
            let status = server.wait_exit(EXIT_TIMEOUT);
            println!(
                "echo_upper --mode {mode}: {name} to exit: {:?}",
                signalled.elapsed()
            );
            let log = server.log_so_far();
            let status = status.unwrap_or_else(|| panic!("{mode}: still running:\n{log}"));
            assert!(status.success(), "{mode}: {name}: {status}\n{log}");
            assert!(log.contains("gracefully"), "{mode}: {log}");
        }
    }
}

#[test]
fn an_idle_echo_upper_client_is_closed_at_the_stop_and_does_not_hold_it() {
    let mut server = Server::start("echo_upper", &["--grace", "30"]);
    let mut client = connect(server.addr);
    client.write_all(b"x").unwrap();
    let mut reply = [0u8; 1];
    client.read_exact(&mut reply).unwrap();
    // The client stays connected and silent: its handler waits for the next chunk.
    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(EXIT_TIMEOUT);
    let took = signalled.elapsed();
    println!("echo_upper, one idle client: SIGTERM to exit: {took:?}");
    let log = server.log_so_far();
    let status = status.unwrap_or_else(|| panic!("still running:\n{log}"));
    assert!(status.success(), "{status}\n{log}");
    assert!(
        took < Duration::from_secs(15),
        "the idle client held the stop: {took:?}"
    );
    let mut rest = Vec::new();
    assert_eq!(
        client.read_to_end(&mut rest).unwrap(),
        0,
        "the connection was closed"
    );
}

#[test]
fn an_idle_client_of_an_example_without_wait_for_request_is_cut_off_at_the_grace_period() {
    // resp_kv reads its pipelined commands without wait_for_request.
    let mut server = Server::start("resp_kv", &["--grace", "0.5"]);
    let mut client = connect(server.addr);
    client.write_all(b"PING\r\n").unwrap();
    let mut reply = [0u8; 7];
    client.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+PONG\r\n");
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(EXIT_TIMEOUT);
    let log = server.log_so_far();
    let status = status.unwrap_or_else(|| panic!("still running:\n{log}"));
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("1 request(s) cut off"), "{log}");
}

/// A `put` header and the first `sent` bytes of a `size`-byte body.
fn start_upload(addr: SocketAddr, name: &str, size: usize, sent: usize) -> TcpStream {
    let mut stream = connect(addr);
    let header = json!({"cmd": "put", "filename": name, "filesize": size});
    Framing::python_struct_i()
        .write_header(&mut stream, header.as_object().unwrap())
        .unwrap();
    stream.write_all(&vec![7u8; sent]).unwrap();
    stream
}

fn partial_files(root: &std::path::Path) -> Vec<String> {
    fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".part-"))
        .collect()
}

/// Waits (bounded) until an upload's temporary file exists in `root`.
fn wait_for_partial_file(root: &std::path::Path) {
    let deadline = Instant::now() + EXIT_TIMEOUT;
    while partial_files(root).is_empty() {
        assert!(Instant::now() < deadline, "no temporary file appeared");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn file_server_finishes_an_upload_in_progress_on_sigterm() {
    let root = scratch("graceful_file_server_finish").join("root");
    let root_arg = root.to_str().unwrap().to_string();
    let mut server = Server::start("file_server", &["--root", &root_arg, "--grace", "10"]);
    let mut upload = start_upload(server.addr, "whole.bin", 10_000, 4_000);
    wait_for_partial_file(&root);
    server.signal(libc::SIGTERM);
    server.wait_for_log("gracefully");
    // The stop waits for the upload: the rest of it arrives, and is stored.
    upload.write_all(&[7u8; 6_000]).unwrap();
    let status = Framing::python_struct_i()
        .read_header(&mut upload)
        .unwrap()
        .expect("a status reply");
    assert_eq!(status["status"], "ok", "{status:?}");
    drop(upload);
    let exit = server.wait_exit(EXIT_TIMEOUT);
    let log = server.log_so_far();
    assert!(exit.is_some_and(|s| s.success()), "{exit:?}\n{log}");
    assert_eq!(fs::read(root.join("whole.bin")).unwrap(), vec![7u8; 10_000]);
    assert_eq!(partial_files(&root), Vec::<String>::new());
}

#[test]
fn file_server_removes_uploads_cut_off_by_the_grace_period() {
    for mode in ["threading", "process"] {
        let root = scratch(&format!("graceful_file_server_cut_{mode}")).join("root");
        let root_arg = root.to_str().unwrap().to_string();
        let mut server = Server::start(
            "file_server",
            &["--root", &root_arg, "--mode", mode, "--grace", "0.5"],
        );
        let _upload = start_upload(server.addr, "cut.bin", 100_000, 5_000);
        wait_for_partial_file(&root);
        server.signal(libc::SIGTERM);
        let exit = server.wait_exit(EXIT_TIMEOUT);
        let log = server.log_so_far();
        assert_eq!(exit.and_then(|s| s.code()), Some(1), "{mode}: {log}");
        assert!(log.contains("cut off"), "{mode}: {log}");
        assert_eq!(partial_files(&root), Vec::<String>::new(), "{mode}: {log}");
        assert!(!root.join("cut.bin").exists(), "{mode}");
    }
}

/// Processes whose environment holds `MARK=<mark>`, from /proc.
fn marked_processes(mark: &str) -> Vec<u32> {
    let needle = format!("MARK={mark}");
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let environ = fs::read(e.path().join("environ")).ok()?;
            environ
                .split(|&b| b == 0)
                .any(|var| var == needle.as_bytes())
                .then_some(pid)
        })
        .collect()
}

/// The children of `parent`, from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            // pid (comm) state ppid ...: the command may hold spaces, so split after its ')'.
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + EXIT_TIMEOUT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "waited {EXIT_TIMEOUT:?} for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn remote_cmd_stopped_at_once_leaves_no_process_of_its_commands() {
    let mut server = Server::start("remote_cmd", &["--grace", "30", "--timeout", "60"]);
    let mark = format!("remote-cmd-stop-{}", std::process::id());
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(server.addr);
        let command = format!("export MARK={mark}; setsid sleep 60 & sleep 60");
        stream.write_all(command.as_bytes()).unwrap();
        streams.push(stream);
    }
    wait_until("the commands to start", || {
        marked_processes(&mark).len() >= 4
    });
    // A terminal's Ctrl-C reaches the whole process group: the server and the runners (the
    // commands have groups of their own). Twice: a graceful stop, then an immediate one.
    let runners = children_of(server.pid());
    assert!(runners.len() >= 2, "runners: {runners:?}");
    let ctrl_c = |server: &Server| {
        for &runner in &runners {
            // SAFETY: kill(2) on a child of the server; a gone pid only fails.
            unsafe { libc::kill(runner as libc::pid_t, libc::SIGINT) };
        }
        server.signal(libc::SIGINT);
    };
    ctrl_c(&server);
    server.wait_for_log("gracefully");
    assert!(
        server.wait_exit(Duration::from_millis(300)).is_none(),
        "exited at the first Ctrl-C"
    );
    assert_eq!(
        marked_processes(&mark).len(),
        4,
        "the first Ctrl-C ended commands"
    );
    ctrl_c(&server);
    let exit = server.wait_exit(EXIT_TIMEOUT);
    let log = server.log_so_far();
    assert_eq!(exit.and_then(|s| s.code()), Some(1), "{log}");
    assert!(log.contains("2 request(s) cut off"), "{log}");
    wait_until("the commands' processes to end", || {
        marked_processes(&mark).is_empty()
    });
}
