//! The process-based modes, end to end: `Process` (a child per request) and `Prefork` (supervised
//! worker processes).
//!
//! Children re-execute the program that built the server, so this test binary is its own server
//! program: it runs without libtest's harness (`harness = false` in Cargo.toml). Started with
//! `PROCESS_SCENARIO=<name>` in its environment it is a *scenario server* ([`server`]): it builds
//! that scenario's server, prints `listening on <addr>`, and serves until its stdin closes — and
//! its children, started with the same environment and arguments, build the same server and
//! adopt their sockets. Started without it, it is the *driver* (this file): each test starts a
//! scenario server as a child process and talks to it over real sockets.
//!
//! Every socket has a timeout and every wait for a process a deadline; each scenario server is
//! killed when its test ends, however it ends.
//!
//! Many tests make servers fail on purpose (a panicking handler, a killed worker), and the
//! library logs each failure. A scenario server's stderr is therefore captured, not inherited:
//! tests assert on the lines they expect, and the driver prints a test's captured stderr only
//! when that test fails, so a passing run shows none of it.

#[path = "../common/mod.rs"]
mod common;
#[path = "../scenario/mod.rs"]
mod scenario;
mod server;

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{tcp_client, TempSocketPath, IO_TIMEOUT, WAIT};
use scenario::procs::{
    alive, children_of, command_name, live_children, send_signal, wait_with_deadline,
};
use scenario::{check, eventually, stat, ScenarioServer, TestFn};
use server::{SCENARIO_VAR, SOCKET_PATH_VAR};

fn main() -> ExitCode {
    if let Ok(name) = std::env::var(SCENARIO_VAR) {
        return server::scenario_server(&name);
    }
    scenario::run_tests(TESTS)
}

const TESTS: &[(&str, TestFn)] = &[
    ("process_tcp_echo", process_tcp_echo),
    ("process_udp_echo", process_udp_echo),
    ("process_unix_stream_echo", process_unix_stream_echo),
    ("process_unix_datagram_echo", process_unix_datagram_echo),
    (
        "process_child_error_and_panic_leave_the_parent_serving",
        process_child_failures,
    ),
    (
        "process_200_sequential_connections_leave_no_zombie",
        process_no_zombies,
    ),
    (
        "process_unrelated_child_keeps_its_own_exit_code",
        process_unrelated_child,
    ),
    (
        "process_max_children_is_never_exceeded",
        process_max_children,
    ),
    (
        "process_child_inherits_only_its_connection",
        process_no_descriptor_leak,
    ),
    ("prefork_tcp_echo_and_udp_echo", prefork_echo),
    (
        "prefork_killed_worker_is_replaced_and_clients_are_served",
        prefork_replaces_killed_worker,
    ),
    (
        "prefork_max_requests_recycles_workers",
        prefork_recycles_workers,
    ),
    (
        "prefork_drain_timeout_kills_a_stuck_worker",
        prefork_drain_timeout,
    ),
    (
        "orphaned_worker_stops_instead_of_becoming_a_server",
        orphaned_worker_stops,
    ),
    (
        "prefork_graceful_stop_loses_no_accepted_request",
        prefork_graceful_stop,
    ),
    (
        "prefork_workers_exit_when_the_parent_is_killed",
        prefork_parent_killed,
    ),
    (
        "prefork_orphaned_worker_held_by_an_idle_client_exits_after_drain_timeout",
        prefork_orphan_drains,
    ),
    (
        "proxy_protocol_the_real_client_reaches_process_and_prefork_children",
        proxy_in_process_modes,
    ),
    (
        "prefork_message_server_workers_do_the_tls_handshakes",
        prefork_message_tls,
    ),
    (
        "prefork_message_server_workers_run_several_loops",
        prefork_message_loops,
    ),
    (
        "systemd_notify_ready_before_serving_status_watchdog_then_stopping",
        notify_in_threading_mode,
    ),
    (
        "systemd_notify_prefork_only_the_parent_reports",
        notify_in_prefork_mode,
    ),
];

/// This program as the scenario server `scenario`, stopped by closing its stdin.
fn scenario_command(scenario: &str) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let mut command = Command::new(exe);
    command.env(SCENARIO_VAR, scenario).stdin(Stdio::piped());
    Ok(command)
}

/// The scenario server `scenario`, listening on TCP or UDP.
fn start(scenario: &str) -> Result<ScenarioServer, String> {
    start_with_env(scenario, &[])
}

/// [`start`] with `env` added to the scenario server's environment.
fn start_with_env(scenario: &str, env: &[(&str, &str)]) -> Result<ScenarioServer, String> {
    let mut command = scenario_command(scenario)?;
    command.envs(env.iter().copied());
    ScenarioServer::start(scenario, command)
}

/// The scenario server `scenario`, listening on a Unix socket at the path returned with it.
fn start_unix(scenario: &str) -> Result<(ScenarioServer, TempSocketPath), String> {
    let path = TempSocketPath::new(scenario);
    let mut command = scenario_command(scenario)?;
    command.env(SOCKET_PATH_VAR, path.path());
    Ok((ScenarioServer::start(scenario, command)?, path))
}

fn tcp_line(addr: SocketAddr, line: &str) -> Result<String, String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream_line(stream, line)
}

fn stream_line<S: Read + Write>(mut stream: S, line: &str) -> Result<String, String> {
    stream
        .write_all(format!("{line}\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .map_err(|e| format!("no reply to {line:?}: {e}"))?;
    Ok(reply.trim_end().to_string())
}

fn timed_tcp(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

fn udp_exchange(addr: SocketAddr, datagram: &[u8]) -> Result<Vec<u8>, String> {
    let socket = common::udp_client(addr);
    socket
        .connect(addr)
        .map_err(|e| format!("connect {addr}: {e}"))?;
    socket.send(datagram).map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 2048];
    let n = socket
        .recv(&mut buf)
        .map_err(|e| format!("no UDP reply: {e}"))?;
    Ok(buf[..n].to_vec())
}

// ---------------------------------------------------------------------------------------------
// PROXY protocol

/// In both process modes the child reads the header: the handler and `verify_request` there see
/// the client the header names, and the balancer's own address beside it.
#[cfg(feature = "proxy")]
fn proxy_in_process_modes() -> Result<(), String> {
    for scenario in ["process_proxy", "prefork_proxy"] {
        let mut server = start(scenario)?;
        let stream = timed_tcp(server.inet())?;
        let balancer = stream.local_addr().map_err(|e| e.to_string())?;
        let reply = stream_line(&stream, "PROXY TCP4 198.51.100.7 127.0.0.1 4321 80\r\nhi")?;
        let (pid, rest) = reply
            .split_once(' ')
            .ok_or_else(|| format!("{scenario}: reply {reply:?}"))?;
        check(
            rest == format!("peer=198.51.100.7:4321 proxy={balancer}"),
            || format!("{scenario}: got {reply:?}"),
        )?;
        check(pid != server.pid().to_string(), || {
            format!("{scenario}: answered by the parent {pid}, not a child")
        })?;
        let refused = timed_tcp(server.inet())?;
        let answer = stream_line(&refused, "PROXY TCP4 203.0.113.66 127.0.0.1 1 80\r\nhi");
        check(answer.as_deref().map_or(true, str::is_empty), || {
            format!("{scenario}: verify_request let 203.0.113.66 through: {answer:?}")
        })?;
        server.stop()?;
    }
    Ok(())
}

#[cfg(not(feature = "proxy"))]
fn proxy_in_process_modes() -> Result<(), String> {
    common::skip::skipped("built without the proxy feature");
    Ok(())
}

/// A prefork message server over TLS: its workers' loops do the handshakes (the parent only
/// supervises), serve plaintext lines to the handler, and refuse a plaintext client, counted in
/// the stats the parent sums.
#[cfg(all(feature = "tls", feature = "message"))]
fn prefork_message_tls() -> Result<(), String> {
    let pki = common::tls::Pki::new("prefork-message");
    let dir = pki.dir.to_string_lossy().into_owned();
    let mut server = start_with_env("prefork_message_tls", &[(server::TLS_DIR_VAR, &dir)])?;
    let config = pki.client_config(None, &[]);
    let mut pids = HashSet::new();
    for i in 0..4 {
        let client = pki
            .connect(server.inet(), &config)
            .map_err(|e| format!("handshake {i}: {e}"))?;
        let reply = stream_line(client, &format!("hello {i}"))?;
        let (pid, rest) = reply
            .split_once(' ')
            .ok_or_else(|| format!("reply {reply:?}"))?;
        check(rest == format!("HELLO {i} TLSv1.3"), || {
            format!("reply {reply:?}")
        })?;
        pids.insert(pid.to_string());
    }
    check(!pids.contains(&server.pid().to_string()), || {
        format!("the parent {} answered: {pids:?}", server.pid())
    })?;
    let plaintext = timed_tcp(server.inet())?;
    let answer = stream_line(&plaintext, "hello");
    check(
        answer.as_deref().map_or(true, |a| !a.contains("HELLO")),
        || format!("a plaintext client was served: {answer:?}"),
    )?;
    let output = server.stop()?;
    check(stat(&output, "tls_handshake_failures")? == 1, || {
        output.clone()
    })?;
    check(
        output.contains("handle_error in child: TLS handshake with"),
        || output.clone(),
    )
}

#[cfg(not(all(feature = "tls", feature = "message")))]
fn prefork_message_tls() -> Result<(), String> {
    common::skip::skipped("built without the tls and message features");
    Ok(())
}

/// A prefork message server with two event loops per worker: a worker holding several
/// connections spreads them over both its loops.
#[cfg(feature = "message")]
fn prefork_message_loops() -> Result<(), String> {
    let mut server = start("prefork_message_loops")?;
    // Held open together: each worker's connections are open at once, so they are spread.
    let mut clients = Vec::new();
    let mut loops_of: std::collections::HashMap<String, HashSet<String>> = Default::default();
    for i in 0..8 {
        let mut client = timed_tcp(server.inet())?;
        let reply = stream_line(&mut client, &format!("who {i}"))?;
        let (pid, thread) = reply
            .split_once(' ')
            .ok_or_else(|| format!("reply {reply:?}"))?;
        check(thread.contains("message-loop-"), || {
            format!("reply {reply:?}")
        })?;
        loops_of
            .entry(pid.to_string())
            .or_default()
            .insert(thread.to_string());
        clients.push(client);
    }
    check(!loops_of.contains_key(&server.pid().to_string()), || {
        format!("the parent {} answered: {loops_of:?}", server.pid())
    })?;
    // Two workers, eight connections: one worker at least has several, on both its loops.
    check(loops_of.values().any(|loops| loops.len() == 2), || {
        format!("loops per worker: {loops_of:?}")
    })?;
    drop(clients);
    server.stop().map(|_| ())
}

#[cfg(not(feature = "message"))]
fn prefork_message_loops() -> Result<(), String> {
    common::skip::skipped("built without the message feature");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Process per request

/// Three clients at once against a child-per-connection TCP server: each reply names the child
/// that wrote it, and the three children are distinct processes other than the server.
fn process_tcp_echo() -> Result<(), String> {
    let mut server = start("process_tcp")?;
    let addr = server.inet();
    let replies: Vec<Result<String, String>> = thread::scope(|s| {
        let clients: Vec<_> = (0..3)
            .map(|i| s.spawn(move || tcp_line(addr, &format!("hello {i}"))))
            .collect();
        clients
            .into_iter()
            .map(|c| c.join().unwrap_or_else(|_| Err("client panicked".into())))
            .collect()
    });
    let mut pids = HashSet::new();
    for (i, reply) in replies.into_iter().enumerate() {
        let reply = reply?;
        let (pid, text) = reply
            .split_once(' ')
            .ok_or_else(|| format!("reply {reply:?}"))?;
        check(text == format!("HELLO {i}"), || {
            format!("client {i} got {reply:?}")
        })?;
        pids.insert(pid.to_string());
    }
    check(
        pids.len() == 3 && !pids.contains(&server.pid().to_string()),
        || {
            format!(
                "expected three distinct child pids, not the server's {}: {pids:?}",
                server.pid()
            )
        },
    )?;
    let output = server.stop()?;
    check(stat(&output, "completed")? == 3, || output.clone())
}

fn process_udp_echo() -> Result<(), String> {
    let mut server = start("process_udp")?;
    for i in 0..3 {
        let reply = udp_exchange(server.inet(), format!("datagram {i}").as_bytes())?;
        check(reply == format!("DATAGRAM {i}").as_bytes(), || {
            format!("reply {:?}", String::from_utf8_lossy(&reply))
        })?;
    }
    let output = server.stop()?;
    check(stat(&output, "completed")? == 3, || output.clone())
}

fn process_unix_stream_echo() -> Result<(), String> {
    let (mut server, _path) = start_unix("process_unix_stream")?;
    for i in 0..3 {
        let stream = common::unix_client(std::path::Path::new(&server.listening));
        let reply = stream_line(stream, &format!("unix {i}"))?;
        check(reply.ends_with(&format!(" UNIX {i}")), || {
            format!("reply {reply:?}")
        })?;
    }
    let output = server.stop()?;
    check(stat(&output, "completed")? == 3, || output.clone())
}

fn process_unix_datagram_echo() -> Result<(), String> {
    let (mut server, _path) = start_unix("process_unix_datagram")?;
    let (client, _path) = common::unix_datagram_client("process-dgram-client");
    for i in 0..3 {
        client
            .send_to(format!("unix dgram {i}").as_bytes(), &server.listening)
            .map_err(|e| format!("send: {e}"))?;
        let mut buf = [0u8; 256];
        let n = client
            .recv(&mut buf)
            .map_err(|e| format!("no reply: {e}"))?;
        check(&buf[..n] == format!("UNIX DGRAM {i}").as_bytes(), || {
            format!("reply {:?}", String::from_utf8_lossy(&buf[..n]))
        })?;
    }
    let output = server.stop()?;
    check(stat(&output, "completed")? == 3, || output.clone())
}

/// A child whose handler returns an error, and one whose handler panics: each is reported by
/// `handle_error` in the child (which prints it), the client's connection is closed, and the
/// parent goes on serving.
fn process_child_failures() -> Result<(), String> {
    let mut server = start("process_faulty")?;
    for line in ["error", "panic"] {
        let mut stream = timed_tcp(server.inet())?;
        stream
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| e.to_string())?;
        check(common::closed_without_reply(&mut stream), || {
            format!("the {line} child should close the connection without a reply")
        })?;
        let reported = server.next_line(WAIT)?;
        check(
            reported.starts_with(&format!("handle_error in child: {line}")),
            || format!("expected the child's handle_error report for {line}, got {reported:?}"),
        )?;
    }
    let reply = tcp_line(server.inet(), "still there?")?;
    check(reply.ends_with("STILL THERE?"), || {
        format!("reply {reply:?}")
    })?;
    // The parent logs each failed child; the panic hook of the child reports its panic.
    server.expect_stderr("failed (exit status 1)", 2)?;
    server.expect_stderr("panic requested by the client", 1)?;
    let output = server.stop()?;
    check(
        stat(&output, "failed")? == 2 && stat(&output, "completed")? == 1,
        || output.clone(),
    )
}

/// After 200 sequential connections, every child has been reaped: the server has no zombie
/// child (and no child at all) once the last one has exited.
fn process_no_zombies() -> Result<(), String> {
    let mut server = start("process_tcp")?;
    for i in 0..200 {
        let reply = tcp_line(server.inet(), &format!("n{i}"))?;
        check(reply.ends_with(&format!("N{i}")), || {
            format!("reply {i}: {reply:?}")
        })?;
    }
    let pid = server.pid();
    let reaped = eventually(WAIT, || children_of(pid).is_empty());
    let left = children_of(pid);
    check(reaped, || {
        format!("children left after 200 requests: {left:?}")
    })?;
    println!("    200 sequential requests: no child left, zombie or otherwise");
    let output = server.stop()?;
    check(stat(&output, "completed")? == 200, || output.clone())
}

/// The scenario server starts a child of its own (`sh -c 'exit 7'`) before building the server,
/// which exits while requests are being served. The server must not reap it: the program waits
/// for it at the end and gets exit code 7.
fn process_unrelated_child() -> Result<(), String> {
    let mut server = start("process_unrelated_child")?;
    for i in 0..20 {
        tcp_line(server.inet(), &format!("r{i}"))?;
    }
    // Wait for the program's own child (`sh`) to exit while the server runs: it shows as a
    // zombie, and must stay one — the server reaps only its own children — until the program
    // waits for it.
    let pid = server.pid();
    let own_zombie = || {
        children_of(pid)
            .into_iter()
            .find(|&(child, state)| state == 'Z' && command_name(child).as_deref() == Some("sh"))
            .map(|(child, _)| child)
    };
    check(eventually(WAIT, || own_zombie().is_some()), || {
        "the program's own child never exited".to_string()
    })?;
    let zombie = own_zombie();
    for i in 0..5 {
        tcp_line(server.inet(), &format!("s{i}"))?;
    }
    check(own_zombie() == zombie, || {
        "the server reaped a child it did not start".to_string()
    })?;
    let output = server.stop()?;
    check(output.contains("unrelated child: exit status 7"), || {
        format!("the program's own child was not waited for correctly: {output:?}")
    })
}

/// With `max_children(3)`, eight clients at once whose requests each take 300 ms: at most three
/// children are ever alive (sampled from `/proc` throughout), and all eight are served.
fn process_max_children() -> Result<(), String> {
    const CLIENTS: usize = 8;
    let mut server = start("process_capped")?;
    let (addr, pid) = (server.inet(), server.pid());
    let done = std::sync::atomic::AtomicBool::new(false);
    let (most, replies) = thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                most = most.max(live_children(pid).len());
                thread::sleep(Duration::from_millis(2));
            }
            most
        });
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| s.spawn(move || tcp_line(addr, &format!("slow {i}"))))
            .collect();
        let replies: Vec<_> = clients
            .into_iter()
            .map(|c| c.join().unwrap_or_else(|_| Err("client panicked".into())))
            .collect();
        done.store(true, std::sync::atomic::Ordering::Release);
        (sampler.join().unwrap_or(usize::MAX), replies)
    });
    for reply in replies {
        reply?;
    }
    println!("    most children alive at once: {most} (cap 3)");
    check((1..=3).contains(&most), || {
        format!("{most} children were alive at once; the cap is 3")
    })?;
    server.stop().map(|_| ())
}

/// Eight clients at once, so children are spawned concurrently by several threads: each child
/// must hold exactly one socket, its own connection — not the listener, not another child's
/// connection.
fn process_no_descriptor_leak() -> Result<(), String> {
    // The scenario server gets socket-activation variables; its children must not.
    let mut server = start_with_env(
        "process_sockets",
        &[("LISTEN_FDS", "1"), ("LISTEN_PID", "1")],
    )?;
    let addr = server.inet();
    let replies: Vec<Result<String, String>> = thread::scope(|s| {
        let clients: Vec<_> = (0..8)
            .map(|i| s.spawn(move || tcp_line(addr, &format!("client {i}"))))
            .collect();
        clients
            .into_iter()
            .map(|c| c.join().unwrap_or_else(|_| Err("client panicked".into())))
            .collect()
    });
    for reply in replies {
        let reply = reply?;
        check(reply.starts_with("sockets: 1 "), || {
            format!("a child held other sockets than its connection: {reply:?}")
        })?;
        check(reply.ends_with("activation vars: 0"), || {
            format!("LISTEN_FDS/LISTEN_PID reached a child: {reply:?}")
        })?;
    }
    server.stop().map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// Prefork

fn prefork_echo() -> Result<(), String> {
    let mut tcp = start("prefork_tcp")?;
    let mut pids = HashSet::new();
    for i in 0..10 {
        let reply = tcp_line(tcp.inet(), &format!("p{i}"))?;
        let (pid, text) = reply
            .split_once(' ')
            .ok_or_else(|| format!("reply {reply:?}"))?;
        check(text == format!("P{i}"), || format!("reply {reply:?}"))?;
        pids.insert(pid.parse::<u32>().map_err(|e| e.to_string())?);
    }
    let workers: HashSet<u32> = live_children(tcp.pid()).into_iter().collect();
    check(pids.is_subset(&workers), || {
        format!("replies from {pids:?}, workers are {workers:?}")
    })?;
    tcp.stop()?;

    let mut udp = start("prefork_udp")?;
    for i in 0..10 {
        let reply = udp_exchange(udp.inet(), format!("u{i}").as_bytes())?;
        check(reply == format!("U{i}").as_bytes(), || {
            format!("reply {reply:?}")
        })?;
    }
    udp.stop().map(|_| ())
}

fn prefork_replaces_killed_worker() -> Result<(), String> {
    let mut server = start("prefork_tcp")?;
    let pid = server.pid();
    check(eventually(WAIT, || live_children(pid).len() == 2), || {
        format!("expected 2 workers, found {:?}", live_children(pid))
    })?;
    let before = live_children(pid);
    let victim = *before.iter().next().ok_or("no worker")?;
    send_signal(victim, libc::SIGKILL)?;
    let replaced_at = Instant::now();
    let replaced = eventually(WAIT, || {
        let now = live_children(pid);
        now.len() == 2 && !now.contains(&victim)
    });
    check(replaced, || {
        format!("worker {victim} was not replaced: {:?}", live_children(pid))
    })?;
    println!(
        "    killed worker replaced within {:?}",
        replaced_at.elapsed()
    );
    server.expect_stderr(&format!("(pid {victim}) was killed by signal 9"), 1)?;
    for i in 0..20 {
        let reply = tcp_line(server.inet(), &format!("after {i}"))?;
        check(reply.ends_with(&format!("AFTER {i}")), || {
            format!("reply {reply:?}")
        })?;
    }
    server.stop().map(|_| ())
}

/// Ten clients each get an `accepted` line the moment a worker takes their connection, and the
/// real reply 300 ms later. Once all ten are accepted the server is told to stop: every one of
/// them still gets its reply.
fn prefork_graceful_stop() -> Result<(), String> {
    const CLIENTS: usize = 10;
    let mut server = start("prefork_slow")?;
    let addr = server.inet();
    let accepted = Arc::new(Barrier::new(CLIENTS + 1));
    let results = thread::scope(|s| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let accepted = Arc::clone(&accepted);
                s.spawn(move || -> Result<String, String> {
                    let mut reader = BufReader::new(timed_tcp(addr)?);
                    reader
                        .get_mut()
                        .write_all(format!("late {i}\n").as_bytes())
                        .map_err(|e| e.to_string())?;
                    let mut line = String::new();
                    let first = reader.read_line(&mut line);
                    accepted.wait();
                    first.map_err(|e| format!("client {i}: no accepted line: {e}"))?;
                    line.clear();
                    reader
                        .read_line(&mut line)
                        .map_err(|e| format!("client {i}: no reply after shutdown: {e}"))?;
                    Ok(line.trim_end().to_string())
                })
            })
            .collect();
        accepted.wait();
        let stopped = server.stop();
        let replies: Vec<_> = clients
            .into_iter()
            .map(|c| c.join().unwrap_or_else(|_| Err("client panicked".into())))
            .collect();
        (stopped, replies)
    });
    let (stopped, replies) = results;
    for (i, reply) in replies.into_iter().enumerate() {
        let reply = reply?;
        check(reply.ends_with(&format!("LATE {i}")), || {
            format!("client {i} got {reply:?}")
        })?;
    }
    stopped.map(|_| ())
}

/// One worker recycled after every 4 requests (no jitter): 12 sequential requests are all
/// served, by at least three different worker processes in turn.
fn prefork_recycles_workers() -> Result<(), String> {
    let mut server = start("prefork_recycling")?;
    // (worker pid, requests it served in a row)
    let mut runs: Vec<(String, usize)> = Vec::new();
    for i in 0..12 {
        let reply = tcp_line(server.inet(), &format!("r{i}"))?;
        let (pid, text) = reply
            .split_once(' ')
            .ok_or_else(|| format!("reply {reply:?}"))?;
        check(text == format!("R{i}"), || format!("reply {reply:?}"))?;
        match runs.last_mut() {
            Some((last, served)) if last.as_str() == pid => *served += 1,
            _ => runs.push((pid.to_string(), 1)),
        }
    }
    println!("    workers in turn (pid, requests): {runs:?}");
    check(runs.len() >= 3, || {
        format!("expected at least 3 workers in turn, saw {runs:?}")
    })?;
    check(runs.iter().all(|(_, served)| *served <= 4), || {
        format!("a worker served more than its max_requests of 4: {runs:?}")
    })?;
    let output = server.stop()?;
    // Each worker but the last exited on its own and was replaced: recycled, not restarted.
    let recycled = stat(&output, "workers_recycled")?;
    check(recycled as usize == runs.len() - 1, || {
        format!("{recycled} workers counted as recycled, {runs:?} served: {output}")
    })?;
    check(stat(&output, "workers_restarted")? == 0, || output.clone())?;
    check(stat(&output, "accepted")? == 12, || output.clone())
}

/// A worker stuck in a request longer than the drain timeout (200 ms) is killed: the server
/// stops within the timeout plus a little, and the stuck client sees its connection end.
fn prefork_drain_timeout() -> Result<(), String> {
    let mut server = start("prefork_stuck")?;
    let mut stuck = timed_tcp(server.inet())?;
    stuck.write_all(b"hold\n").map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stuck.try_clone().map_err(|e| e.to_string())?);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("no accepted line: {e}"))?;
    let started = Instant::now();
    server.stop()?;
    println!(
        "    server with a stuck worker stopped after {:?}",
        started.elapsed()
    );
    line.clear();
    let rest = reader.read_line(&mut line);
    check(matches!(rest, Ok(0)) || rest.is_err(), || {
        format!("the stuck request should have been cut off, got {line:?}")
    })
}

/// A worker whose parent died while it started (so its parent pid is no longer the one in its
/// role) must still act as a worker: adopt the inherited socket, find its lifeline closed, and
/// exit — never bind and serve as a new server of its own. Simulated by starting the scenario
/// program as a worker of a parent that does not exist, with a listener it inherits.
fn orphaned_worker_stops() -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let fd = listener.as_raw_fd();
    // SAFETY: clears close-on-exec on a descriptor this test owns, so the child inherits it (the
    // driver runs one test at a time, so no other spawn picks it up).
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
        return Err(format!("fcntl: {}", io::Error::last_os_error()));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new(exe)
        .env(SCENARIO_VAR, "prefork_tcp")
        .env(
            "SOCKETSERVER_PROCESS_ROLE",
            format!("worker:999999999:{fd}:0"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut child = output;
    let status = wait_with_deadline(&mut child, WAIT);
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    let _ = child.kill();
    let _ = child.wait();
    let status = status.ok_or("the orphaned worker did not exit")?;
    check(status.success() && !stdout.contains("listening on"), || {
        format!("orphaned worker: {status}, stdout {stdout:?}")
    })
}

fn prefork_parent_killed() -> Result<(), String> {
    let mut server = start("prefork_tcp")?;
    let pid = server.pid();
    check(eventually(WAIT, || live_children(pid).len() == 2), || {
        format!("expected 2 workers, found {:?}", live_children(pid))
    })?;
    let workers = live_children(pid);
    server.kill()?;
    let killed_at = Instant::now();
    let gone = eventually(WAIT, || workers.iter().all(|&w| !alive(w)));
    check(gone, || {
        format!("workers {workers:?} outlived their killed parent")
    })?;
    println!(
        "    workers exited {:?} after the parent was killed",
        killed_at.elapsed()
    );
    Ok(())
}

/// Issue 9: with its parent killed by `SIGKILL`, a worker held by a client on an idle connection
/// went on serving (alive 45 s later). Its lifeline closing must start the same bounded drain as a
/// shutdown: the request running when the parent dies (a `slow` line, 100 ms) still gets its
/// reply, then the worker exits within about its drain timeout (600 ms) — long before the
/// handler's 60 s read timeout would have freed it.
fn prefork_orphan_drains() -> Result<(), String> {
    let mut server = start("prefork_idle_client")?;
    let mut reader = BufReader::new(timed_tcp(server.inet())?);
    let mut exchange = |line: &str| -> Result<String, String> {
        reader
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| format!("send {line:?}: {e}"))?;
        let mut reply = String::new();
        reader
            .read_line(&mut reply)
            .map_err(|e| format!("no reply to {line:?}: {e}"))?;
        Ok(reply.trim_end().to_string())
    };
    let reply = exchange("hello")?;
    let (pid, text) = reply
        .split_once(' ')
        .ok_or_else(|| format!("reply {reply:?}"))?;
    check(text == "HELLO", || format!("reply {reply:?}"))?;
    let worker: u32 = pid.parse().map_err(|e| format!("pid in {reply:?}: {e}"))?;
    check(live_children(server.pid()).contains(&worker), || {
        format!("{worker} is not a worker of {}", server.pid())
    })?;

    reader
        .get_mut()
        .write_all(b"slow\n")
        .map_err(|e| format!("send slow: {e}"))?;
    server.kill()?;
    let killed_at = Instant::now();
    let mut reply = String::new();
    reader
        .read_line(&mut reply)
        .map_err(|e| format!("the running request got no reply: {e}"))?;
    check(reply.trim_end() == format!("{worker} SLOW"), || {
        format!("the running request got {reply:?}")
    })?;

    let gone = eventually(WAIT, || !alive(worker));
    let waited = killed_at.elapsed();
    if !gone {
        let _ = send_signal(worker, libc::SIGKILL);
        return Err(format!(
            "the orphaned worker {worker} held by an idle client was still alive {waited:?} after \
             its parent was killed"
        ));
    }
    println!("    orphaned worker exited {waited:?} after its parent was killed");
    reply.clear();
    let rest = reader.read_line(&mut reply);
    check(matches!(rest, Ok(0)) || rest.is_err(), || {
        format!("the idle connection should have ended with the worker, got {reply:?}")
    })
}

// ---------------------------------------------------------------------------------------------
// systemd readiness: the server reports to the Unix datagram socket named in NOTIFY_SOCKET.

/// The service manager's end of `NOTIFY_SOCKET`: every message the server sends, in order.
struct NotifyListener {
    socket: UnixDatagram,
    path: TempSocketPath,
    messages: Vec<String>,
}

impl NotifyListener {
    fn new(name: &str) -> Result<NotifyListener, String> {
        let path = TempSocketPath::new(name);
        let socket = UnixDatagram::bind(path.path()).map_err(|e| format!("bind notify: {e}"))?;
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        Ok(NotifyListener {
            socket,
            path,
            messages: Vec::new(),
        })
    }

    fn env(&self) -> String {
        self.path.path().display().to_string()
    }

    /// Receives until `done(messages so far)`, for at most [`WAIT`].
    fn collect_until(
        &mut self,
        what: &str,
        done: impl Fn(&[String]) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 4096];
        while !done(&self.messages) {
            if Instant::now() >= deadline {
                return Err(format!(
                    "no {what} within {WAIT:?}; messages: {:?}",
                    self.messages
                ));
            }
            if let Ok(n) = self.socket.recv(&mut buf) {
                self.messages
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        Ok(())
    }

    fn count(&self, line: &str) -> usize {
        self.messages
            .iter()
            .filter(|m| m.lines().any(|l| l == line))
            .count()
    }
}

/// Checks the messages of one serving run: READY=1 first, its status counting no request yet
/// (so it went out before the request the driver sent at once was served), once only, and
/// STOPPING=1 last, once, with the final count.
fn check_notify_run(
    manager: &NotifyListener,
    mode: &str,
    completed_at_stop: &str,
) -> Result<(), String> {
    let all = &manager.messages;
    let first = all.first().ok_or("no message")?;
    check(
        first.starts_with("READY=1\nSTATUS=TCP server on 127.0.0.1:")
            && first.contains(&format!("({mode} mode): 0 active, 0 completed")),
        || format!("first message {first:?}; all: {all:?}"),
    )?;
    check(manager.count("READY=1") == 1, || {
        format!("READY=1 once, from the process systemd started: {all:?}")
    })?;
    let last = all.last().ok_or("no message")?;
    check(
        last.starts_with("STOPPING=1\nSTATUS=") && last.contains(completed_at_stop),
        || format!("last message {last:?}; all: {all:?}"),
    )?;
    check(manager.count("STOPPING=1") == 1, || format!("{all:?}"))
}

fn notify_in_threading_mode() -> Result<(), String> {
    let mut manager = NotifyListener::new("notify-threading")?;
    let notify = manager.env();
    let mut server = start_with_env(
        "threading_tcp",
        &[("NOTIFY_SOCKET", &notify), ("WATCHDOG_USEC", "200000")],
    )?;
    // At once, before looking at any message: it can only be served after READY=1 went out.
    let reply = stream_line(tcp_client(server.inet()), "n1")?;
    check(reply.ends_with(" N1"), || format!("reply {reply:?}"))?;
    manager.collect_until(
        "three watchdog pings and a status counting the request",
        |all| {
            let pings = all.iter().filter(|m| m.contains("WATCHDOG=1")).count();
            pings >= 3
                && all
                    .iter()
                    .any(|m| m.contains("STATUS=") && m.contains("0 active, 1 completed"))
        },
    )?;
    server.stop()?;
    manager.collect_until("STOPPING=1", |all| {
        all.iter().any(|m| m.starts_with("STOPPING=1"))
    })?;
    check_notify_run(&manager, "threading", "1 completed")
}

fn notify_in_prefork_mode() -> Result<(), String> {
    let mut manager = NotifyListener::new("notify-prefork")?;
    let notify = manager.env();
    let mut server = start_with_env(
        "prefork_tcp",
        &[("NOTIFY_SOCKET", &notify), ("WATCHDOG_USEC", "200000")],
    )?;
    for i in 0..4 {
        let reply = stream_line(tcp_client(server.inet()), &format!("p{i}"))?;
        check(reply.ends_with(&format!(" P{i}")), || {
            format!("reply {reply:?}")
        })?;
    }
    // The supervisor's loop pings; the workers, which served the requests, say nothing.
    manager.collect_until("three watchdog pings from the supervisor", |all| {
        all.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 3
    })?;
    server.stop()?;
    manager.collect_until("STOPPING=1", |all| {
        all.iter().any(|m| m.starts_with("STOPPING=1"))
    })?;
    // The parent serves no request itself, but its STATUS sums what its workers reported.
    check_notify_run(&manager, "prefork supervisor", "4 completed")
}
