//! `echo_server --api message`: the echo protocols served by a message server, driven by loadgen
//! in each mode it accepts, stopped by SIGTERM, and refusing what it cannot do.
#![cfg(feature = "message")]

mod programs;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use programs::{connect, example, field, loadgen, Run, Server, RUN_TIMEOUT};

#[test]
fn every_frame_and_line_is_echoed_in_each_mode() {
    let modes: [&[&str]; 5] = [
        &["--mode", "single"],
        &["--mode", "pool", "--workers", "3"],
        &["--mode", "prefork", "--workers", "2"],
        &["--mode", "single", "--loops", "2"],
        &["--mode", "prefork", "--workers", "2", "--loops", "2"],
    ];
    for mode in modes {
        for (proto, workload) in [("framed", "framed"), ("line", "line")] {
            let args = [&["--api", "message", "--proto", proto][..], mode].concat();
            let server = Server::start("echo_server", &args);
            let run = loadgen(
                server.addr,
                &[
                    "--workload",
                    workload,
                    "--conns",
                    "4",
                    "--requests",
                    "50",
                    "--size",
                    "300",
                ],
            );
            let what = format!("echo_server {args:?}");
            assert!(run.status.success(), "{what}: {run}");
            let json = run.stdout.trim();
            assert_eq!(field(json, "ok"), 200.0, "{what}: {json}");
            assert_eq!(field(json, "failed_clients"), 0.0, "{what}: {json}");
        }
    }
}

#[test]
fn idle_connections_do_not_keep_others_from_being_served_and_sigterm_ends_it_cleanly() {
    let mut server = Server::start("echo_server", &["--api", "message", "--mode", "single"]);
    let pid = server.pid().to_string();
    let run = loadgen(
        server.addr,
        &[
            "--workload",
            "framed",
            "--conns",
            "2",
            "--requests",
            "50",
            "--idle",
            "200",
            "--server-pid",
            &pid,
        ],
    );
    assert!(run.status.success(), "{run}");
    assert_eq!(field(run.stdout.trim(), "ok"), 100.0, "{run}");

    // An idle client is closed by the graceful stop, and the server exits 0.
    let mut idle = connect(server.addr);
    let mut framed = connect(server.addr);
    framed.write_all(&[0, 0, 0, 2, b'h', b'i']).unwrap();
    let mut echo = [0u8; 6];
    framed.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, &[0, 0, 0, 2, b'h', b'i']);
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("exited after SIGTERM");
    assert!(status.success(), "{status}: {}", server.log_so_far());
    let mut rest = Vec::new();
    assert_eq!(idle.read_to_end(&mut rest).unwrap_or(0), 0);
}

#[test]
fn a_trickled_frame_is_cut_off_at_the_message_timeout_while_others_are_served() {
    let server = Server::start(
        "echo_server",
        &[
            "--api",
            "message",
            "--mode",
            "single",
            "--message-timeout",
            "1",
        ],
    );
    let mut trickler = connect(server.addr);
    let mut good = connect(server.addr);
    let started = Instant::now();
    let mut cut_off = false;
    // A 100-byte frame, one byte every 100 ms: 10 s to finish, cut off after about 1 s.
    let mut frame = vec![0, 0, 0, 96];
    frame.extend_from_slice(&[b'x'; 96]);
    for byte in frame {
        if trickler.write_all(&[byte]).is_err() {
            cut_off = true;
            break;
        }
        good.write_all(&[0, 0, 0, 1, b'!']).unwrap();
        let mut echo = [0u8; 5];
        good.read_exact(&mut echo).unwrap();
        assert_eq!(echo, [0, 0, 0, 1, b'!']);
        std::thread::sleep(Duration::from_millis(100));
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    if !cut_off {
        let mut buf = [0u8; 8];
        cut_off = matches!(trickler.read(&mut buf), Ok(0) | Err(_));
    }
    assert!(cut_off, "the trickled frame was not cut off");
}

#[test]
fn modes_and_protocols_a_message_server_cannot_serve_are_usage_errors() {
    for args in [
        &["--api", "message", "--mode", "threading"][..],
        &["--api", "message", "--mode", "process"],
        &["--api", "message", "--proto", "udp", "--mode", "single"],
        &["--api", "messages"],
        &["--api", "message", "--mode", "pool", "--loops", "2"],
        &["--api", "message", "--loops", "two"],
    ] {
        let mut command = Command::new(example("echo_server"));
        command.args(["--addr", "127.0.0.1:0"]).args(args);
        let run = Run::to_completion(command, RUN_TIMEOUT);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {run}");
        assert!(
            run.stderr.contains("--api") || run.stderr.contains("message"),
            "{args:?}: {run}"
        );
    }
    let mut command = Command::new(example("echo_server"));
    command.arg("--help");
    let run = Run::to_completion(command, RUN_TIMEOUT);
    assert!(run.stdout.contains("--api stream|message"), "{run}");
    assert!(run.stdout.contains("--message-timeout SECS"), "{run}");
    assert!(run.stdout.contains("--loops N"), "{run}");
}

#[test]
fn prefork_workers_each_run_a_loop_and_stop_on_sigterm() {
    let mut server = Server::start(
        "echo_server",
        &[
            "--api",
            "message",
            "--mode",
            "prefork",
            "--workers",
            "2",
            "--proto",
            "line",
        ],
    );
    // Connections spread over the workers' loops; each is answered by whichever took it.
    let clients: Vec<TcpStream> = (0..6).map(|_| connect(server.addr)).collect();
    for (i, mut client) in clients.iter().enumerate() {
        client.write_all(format!("line {i}\n").as_bytes()).unwrap();
    }
    for (i, mut client) in clients.iter().enumerate() {
        let expected = format!("line {i}\n");
        let mut got = vec![0u8; expected.len()];
        client.read_exact(&mut got).unwrap();
        assert_eq!(got, expected.as_bytes());
    }
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(30))
        .expect("exited after SIGTERM");
    assert!(status.success(), "{status}: {}", server.log_so_far());
    for mut client in clients {
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).unwrap_or(0), 0, "left open");
    }
}

/// The server's resident memory in KiB, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

#[test]
fn memory_that_closed_connections_held_goes_back_to_the_system() {
    let server = Server::start("echo_server", &["--api", "message", "--mode", "single"]);
    let pid = server.pid();
    let start = rss_kib(pid);
    // 1,000 connections each hold 60 KB of an unfinished frame: about 60 MB of buffers.
    let mut partial = 100_000u32.to_be_bytes().to_vec();
    partial.resize(4 + 60_000, b'a');
    let clients: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut client = connect(server.addr);
            client.write_all(&partial).unwrap();
            client
        })
        .collect();
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut peak = 0;
    while peak < start + 40_000 && Instant::now() < deadline {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        peak >= start + 40_000,
        "the buffers never filled: {peak} KiB"
    );
    drop(clients);
    // Freed buffers are handed back (at most a second after the connections closed), not kept
    // by the allocator at the peak.
    let mut now = rss_kib(pid);
    while now > start + 10_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        now = rss_kib(pid);
    }
    assert!(
        now <= start + 10_000,
        "{now} KiB resident after the connections closed (started at {start} KiB, peak {peak} KiB)"
    );
}
