//! The scenario servers of `process_modes`: this program, started with [`SCENARIO_VAR`] naming
//! a scenario, builds that scenario's server, prints `listening on <addr>` and serves until its
//! stdin closes; the children of its process modes re-execute it with the same environment and
//! build the same server.

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::thread;
use std::time::Duration;

use socketserver::{
    is_worker, Builder, DatagramRequest, Failure, Mode, Prefork, Process, StreamRequest, Threading,
};

use crate::common::IO_TIMEOUT;
use crate::scenario::{self, pid_upper_line};

/// Names the scenario to serve; unset, the program is the driver.
pub const SCENARIO_VAR: &str = "PROCESS_SCENARIO";
/// The socket path of the Unix stream and datagram scenarios.
pub const SOCKET_PATH_VAR: &str = "PROCESS_SOCKET_PATH";
/// The folder of the TLS scenario's certificate and key (`server.crt`, `server.key`).
#[cfg(all(feature = "tls", feature = "message"))]
pub const TLS_DIR_VAR: &str = "PROCESS_TLS_DIR";

/// Builds and serves the scenario `name` (in the scenario server and, re-executed, in its
/// children).
pub fn scenario_server(name: &str) -> ExitCode {
    scenario::init_logger("warn");
    // The faulty scenario panics on purpose: one line instead of a backtrace in the test output.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("scenario server (expected): {info}");
    }));
    let result = match name {
        "process_tcp" => serve_tcp(Process::new(), pid_upper_line),
        "process_faulty" => serve_tcp(Process::new(), faulty_line),
        "process_capped" => serve_tcp(Process::new().max_children(3), slow_upper_line),
        "process_unrelated_child" => unrelated_child_scenario(),
        "process_sockets" => serve_tcp(Process::new(), count_sockets),
        "process_udp" => serve_udp(Process::new()),
        "process_unix_stream" => serve_unix_stream(Process::new()),
        "process_unix_datagram" => serve_unix_datagram(Process::new()),
        "prefork_tcp" => serve_tcp(Prefork::new(2), pid_upper_line),
        "threading_tcp" => serve_tcp(Threading::new(), pid_upper_line),
        "prefork_slow" => serve_tcp(
            Prefork::new(2).worker_mode(Threading::new()),
            accepted_then_slow_line,
        ),
        "prefork_udp" => serve_udp(Prefork::new(2)),
        "prefork_recycling" => serve_tcp(
            Prefork::new(1).max_requests(4).max_requests_jitter(0),
            pid_upper_line,
        ),
        "prefork_stuck" => serve_tcp(
            Prefork::new(1).drain_timeout(Duration::from_millis(200)),
            accepted_then_stuck,
        ),
        "prefork_idle_client" => reporting_builder()
            // Longer than the test waits: only the drain can end the idle connection.
            .read_timeout(Duration::from_secs(60))
            .mode(Prefork::new(1).drain_timeout(Duration::from_millis(600)))
            .bind_tcp("127.0.0.1:0", pid_upper_lines)
            .and_then(scenario::serve_and_report),
        #[cfg(feature = "proxy")]
        "process_proxy" => serve_proxy(Process::new()),
        #[cfg(feature = "proxy")]
        "prefork_proxy" => serve_proxy(Prefork::new(2)),
        #[cfg(all(feature = "tls", feature = "message"))]
        "prefork_message_tls" => serve_message_tls(),
        #[cfg(feature = "message")]
        "prefork_message_loops" => serve_message_loops(),
        other => Err(io::Error::other(format!("no scenario named {other}"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scenario {name}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn reporting_builder() -> Builder {
    Builder::new()
        .read_timeout(IO_TIMEOUT)
        .write_timeout(IO_TIMEOUT)
        .handle_error(|_peer, failure: &Failure| {
            // Printed by the child that failed; the driver reads it from the shared stdout.
            let what = match failure {
                Failure::Error(e) => e.to_string(),
                Failure::Panic(message) => message.clone(),
                other => other.to_string(),
            };
            println!("handle_error in child: {what}");
            let _ = io::stdout().flush();
        })
}

fn serve_tcp<M: Mode>(
    mode: M,
    handler: fn(&mut StreamRequest) -> io::Result<()>,
) -> io::Result<()> {
    scenario::serve_and_report(
        reporting_builder()
            .mode(mode)
            .bind_tcp("127.0.0.1:0", handler)?,
    )
}

/// A PROXY protocol server trusting loopback whose children answer with the peer they saw.
#[cfg(feature = "proxy")]
fn serve_proxy<M: Mode>(mode: M) -> io::Result<()> {
    scenario::serve_and_report(
        reporting_builder()
            .mode(mode)
            .proxy_protocol(socketserver::proxy::ProxyProtocol::Any)
            .trusted_proxies(["127.0.0.1"])
            // Sees the real client, in the child: 203.0.113.66 is refused.
            .verify_request(|peer| !peer.to_string().starts_with("203.0.113.66:"))
            .bind_tcp("127.0.0.1:0", |req: &mut StreamRequest| {
                let mut line = String::new();
                req.read_line(&mut line)?;
                let proxy = req.proxy_addr().map(ToString::to_string);
                let peer = req.peer_addr().to_string();
                writeln!(
                    req,
                    "{} peer={peer} proxy={}",
                    std::process::id(),
                    proxy.unwrap_or_default()
                )
            })?,
    )
}

fn serve_udp<M: Mode>(mode: M) -> io::Result<()> {
    scenario::serve_and_report(
        reporting_builder()
            .mode(mode)
            .bind_udp("127.0.0.1:0", upper_datagram)?,
    )
}

fn socket_path() -> io::Result<PathBuf> {
    std::env::var_os(SOCKET_PATH_VAR)
        .map(PathBuf::from)
        .ok_or_else(|| io::Error::other(format!("{SOCKET_PATH_VAR} is not set")))
}

fn serve_unix_stream<M: Mode>(mode: M) -> io::Result<()> {
    let path = socket_path()?;
    scenario::serve_and_report(
        reporting_builder()
            .mode(mode)
            .bind_unix_stream(path, pid_upper_line)?,
    )
}

fn serve_unix_datagram<M: Mode>(mode: M) -> io::Result<()> {
    let path = socket_path()?;
    scenario::serve_and_report(
        reporting_builder()
            .mode(mode)
            .bind_unix_datagram(path, upper_datagram)?,
    )
}

fn unrelated_child_scenario() -> io::Result<()> {
    // Started before the server, by the parent only (a child re-running main must not).
    let own_child = if is_worker() {
        None
    } else {
        Some(
            Command::new("sh")
                .args(["-c", "sleep 0.1; exit 7"])
                .spawn()?,
        )
    };
    let result = serve_tcp(Process::new(), pid_upper_line);
    if let Some(mut child) = own_child {
        let status = child.wait()?;
        println!(
            "unrelated child: exit status {}",
            status.code().unwrap_or(-1)
        );
    }
    result
}

/// Answers every line with `<pid> <LINE>` until the client closes; `slow` is answered after
/// 100 ms.
fn pid_upper_lines(req: &mut StreamRequest) -> io::Result<()> {
    let mut line = String::new();
    while req.read_line(&mut line)? > 0 {
        let text = line.trim_end().to_uppercase();
        if text == "SLOW" {
            thread::sleep(Duration::from_millis(100));
        }
        writeln!(req, "{} {text}", std::process::id())?;
        line.clear();
    }
    Ok(())
}

fn slow_upper_line(req: &mut StreamRequest) -> io::Result<()> {
    let mut line = String::new();
    req.read_line(&mut line)?;
    thread::sleep(Duration::from_millis(300));
    writeln!(
        req,
        "{} {}",
        std::process::id(),
        line.trim_end().to_uppercase()
    )
}

fn accepted_then_stuck(req: &mut StreamRequest) -> io::Result<()> {
    writeln!(req, "accepted")?;
    // Longer than any test waits: only the drain timeout's kill ends it.
    thread::sleep(Duration::from_secs(60));
    Ok(())
}

fn accepted_then_slow_line(req: &mut StreamRequest) -> io::Result<()> {
    writeln!(req, "accepted")?;
    slow_upper_line(req)
}

/// Answers `sockets: <n> <descriptors>`: the sockets this process holds, from `/proc/self/fd`.
fn count_sockets(req: &mut StreamRequest) -> io::Result<()> {
    let mut line = String::new();
    req.read_line(&mut line)?;
    let mut sockets = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        if let Ok(target) = std::fs::read_link(entry.path()) {
            if target.to_string_lossy().starts_with("socket:") {
                sockets.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    let activation = ["LISTEN_FDS", "LISTEN_PID"]
        .iter()
        .filter(|v| std::env::var_os(v).is_some())
        .count();
    writeln!(
        req,
        "sockets: {} {} activation vars: {activation}",
        sockets.len(),
        sockets.join(",")
    )
}

fn faulty_line(req: &mut StreamRequest) -> io::Result<()> {
    let mut line = String::new();
    req.read_line(&mut line)?;
    match line.trim_end() {
        "error" => Err(io::Error::other("error requested by the client")),
        "panic" => panic!("panic requested by the client"),
        other => writeln!(req, "{} {}", std::process::id(), other.to_uppercase()),
    }
}

fn upper_datagram(req: &mut DatagramRequest) -> io::Result<()> {
    req.reply(&req.data().to_ascii_uppercase())
}

/// A prefork message server over TLS: each worker's loop does its connections' handshakes, and
/// answers a line with `<pid> <LINE> <TLS version>`.
#[cfg(all(feature = "tls", feature = "message"))]
fn serve_message_tls() -> io::Result<()> {
    use socketserver::message::{message_handler, Lines};
    let dir = PathBuf::from(
        std::env::var_os(TLS_DIR_VAR).ok_or_else(|| io::Error::other("no PROCESS_TLS_DIR"))?,
    );
    let tls =
        socketserver::tls::TlsConfig::new(dir.join("server.crt"), dir.join("server.key")).load()?;
    let answer = message_handler(|line, reply| {
        let version = reply.tls().map_or("plaintext", |t| t.version());
        let line = String::from_utf8_lossy(line).to_uppercase();
        writeln!(reply, "{} {line} {version}", std::process::id())
    });
    let server = reporting_builder()
        .mode(Prefork::new(2))
        .tls(tls)
        .messages(Lines::new(), answer)
        .bind_tcp("127.0.0.1:0")?;
    serve_messages(server)
}

/// A prefork message server whose workers run two event loops each, and answer a line with
/// `<pid> <thread name>`: which worker, and which of its loops.
#[cfg(feature = "message")]
fn serve_message_loops() -> io::Result<()> {
    use socketserver::message::{message_handler, Lines};
    let answer = message_handler(|_line, reply| {
        let thread = thread::current().name().unwrap_or("?").to_string();
        writeln!(reply, "{} {thread}", std::process::id())
    });
    let server = reporting_builder()
        .mode(Prefork::new(2))
        .messages(Lines::new(), answer)
        .loops(2)
        .bind_tcp("127.0.0.1:0")?;
    serve_messages(server)
}

/// [`scenario::serve_and_report`] for a message server: its stats line also counts failed TLS
/// handshakes.
#[cfg(feature = "message")]
fn serve_messages<H, F>(
    mut server: socketserver::message::MessageServer<socketserver::transport::Tcp, H, F>,
) -> io::Result<()>
where
    H: socketserver::message::MessageHandler,
    F: socketserver::message::Framer,
{
    let handle = server.handle();
    if !is_worker() {
        println!("listening on {}", server.local_addr());
        io::stdout().flush()?;
        let handle = handle.clone();
        thread::spawn(move || {
            let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
            handle.shutdown();
        });
    }
    server.serve_forever()?;
    server.server_close()?;
    let stats = handle.stats();
    println!(
        "stats accepted={} completed={} failed={} tls_handshake_failures={}",
        stats.accepted, stats.completed, stats.failed, stats.tls_handshake_failures
    );
    Ok(())
}
