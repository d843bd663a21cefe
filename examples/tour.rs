//! A guided tour of `socketserver`, run with `cargo run --example tour`.
//!
//! It starts an upper-case echo server for every transport (TCP, UDP, Unix stream, Unix datagram)
//! in every concurrency mode (single, threading, pool), on port 0 or a temporary socket file,
//! drives each with a few clients at once, and prints what was sent, what came back and the
//! server's stats. Then a message server: the same echo, line by line, behind an event loop, and
//! behind two event loops on threads of their own.
//! Then it shows the hooks: errors and panics reported through `handle_error`,
//! `verify_request` turning a client away, and a handler shutting its own server down. Last, the
//! process-based modes: the tour starts itself again as a small TCP server (`--process-demo
//! process|prefork`) whose requests are handled in child processes, and drives it the same way;
//! each reply names the process that wrote it. In the prefork demo every client holds its
//! connection until both workers are busy with one, so the transcript shows both at work.
//!
//! Everything is bounded: every client socket has read and write timeouts, and every server must
//! stop within a few seconds of being asked. Any failure ends the tour with `error: …` and exit
//! status 1. Set `RUST_LOG=info` to see the library's own log lines on stderr as well.

mod common;

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[cfg(feature = "message")]
use socketserver::message::{message_handler, Framer, Lines, MessageHandler, MessageServer};
use socketserver::transport::Transport;
use socketserver::{
    Address, Builder, DatagramRequest, Mode, Pool, Prefork, Process, RequestHandler, Server,
    ServerHandle, Stats, StreamRequest, Threading,
};

/// Read and write timeout of every client socket.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a server may take to stop once asked.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the client that `verify_request` refuses waits for the reply that never comes.
const REFUSED_WAIT: Duration = Duration::from_millis(300);
/// Clients started at once against each echo server.
const CLIENTS: usize = 3;
/// Worker processes of the prefork demo server.
const PREFORK_WORKERS: usize = 2;
/// The payload of the panic the tour provokes; the panic hook keeps it off stderr.
const DELIBERATE_PANIC: &str = "deliberate panic, provoked by the tour";

type Result<T = (), E = String> = std::result::Result<T, E>;

/// The usage: the tour takes no options but `--help`.
const USAGE: &str = "usage: tour [--help]

A guided tour of socketserver: an upper-case echo server for every transport in every mode,
driven by concurrent clients, then a message server, the hooks and the process-based modes. Runs by itself and
exits; set RUST_LOG=info to see the library's log lines as well.

options:
  --help  print this help
";

fn main() -> ExitCode {
    common::init_logging_at("warn");
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {}
        // The process-mode demo server (and, re-executed with the same arguments, its children):
        // how the tour starts itself again, not an option for users.
        [flag, mode] if flag == "--process-demo" => {
            return common::exit_status(process_demo_server(mode));
        }
        [flag, ..] if flag == "--help" || flag == "-h" => {
            return match common::print_line(USAGE.trim_end()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => common::fail(e),
            };
        }
        [first, ..] => {
            let what = if first.starts_with('-') {
                "unknown option"
            } else {
                "unexpected argument"
            };
            let _ = write!(io::stderr().lock(), "tour: {what} '{first}'\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    silence_deliberate_panic();
    let started = Instant::now();
    match tour() {
        Ok(()) => match common::print_line(format_args!(
            "\ntour finished in {} ms: every server stopped and closed",
            started.elapsed().as_millis()
        )) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => common::fail(e),
        },
        Err(message) => common::fail(message),
    }
}

fn tour() -> Result {
    say("socketserver tour: an upper-case echo server for every transport in every mode,")?;
    say("each driven by a few clients at once; then the hooks.")?;
    let dir = TempDir::create()?;

    tcp_echo("single mode", Builder::new())?;
    tcp_echo("threading mode", Builder::new().mode(Threading::new()))?;
    tcp_echo("pool mode, 2 workers", Builder::new().mode(Pool::new(2)))?;

    udp_echo("single mode", Builder::new())?;
    udp_echo(
        "threading mode, at most 2 threads",
        Builder::new().mode(Threading::new().max_threads(2)),
    )?;
    udp_echo("pool mode, 2 workers", Builder::new().mode(Pool::new(2)))?;

    unix_stream_echo(&dir, "single", Builder::new())?;
    unix_stream_echo(&dir, "threading", Builder::new().mode(Threading::new()))?;
    unix_stream_echo(&dir, "pool", Builder::new().mode(Pool::new(2)))?;

    unix_datagram_echo(&dir, "single", Builder::new())?;
    unix_datagram_echo(&dir, "threading", Builder::new().mode(Threading::new()))?;
    unix_datagram_echo(&dir, "pool", Builder::new().mode(Pool::new(2)))?;

    #[cfg(feature = "message")]
    message_server()?;
    #[cfg(feature = "message")]
    message_loops()?;

    handle_error_hook()?;
    verify_request_hook()?;
    shutdown_from_a_handler()?;
    process_demo(
        "process",
        "TCP, process mode: a child process per connection",
    )?;
    process_demo(
        "prefork",
        &format!("TCP, prefork mode: {PREFORK_WORKERS} worker processes"),
    )?;
    dir.remove()
}

// ---------------------------------------------------------------------------------------------
// The handlers.

/// Stream handler: answer every chunk upper-cased until the client closes the connection.
fn upper_echo(req: &mut StreamRequest) -> io::Result<()> {
    let mut buf = [0u8; 1024];
    loop {
        let n = req.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        req.write_all(&buf[..n].to_ascii_uppercase())?;
    }
}

/// Datagram handler: answer the datagram upper-cased (an empty one gets an empty reply).
fn upper_reply(req: &mut DatagramRequest) -> io::Result<()> {
    req.reply(&req.data().to_ascii_uppercase())
}

// ---------------------------------------------------------------------------------------------
// Every transport in every mode.

fn tcp_echo<M: Mode>(mode: &str, builder: Builder<M>) -> Result {
    let server = builder
        .bind_tcp("127.0.0.1:0", upper_echo)
        .map_err(|e| e.to_string())?;
    let addr = inet_addr(server.local_addr())?;
    demo(&format!("TCP, {mode}"), server, |client| {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream_session(stream, client)
    })
}

fn udp_echo<M: Mode>(mode: &str, builder: Builder<M>) -> Result {
    let server = builder
        .bind_udp("127.0.0.1:0", upper_reply)
        .map_err(|e| e.to_string())?;
    let addr = inet_addr(server.local_addr())?;
    demo(&format!("UDP, {mode}"), server, |client| {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(IO_TIMEOUT))?;
        socket.set_write_timeout(Some(IO_TIMEOUT))?;
        socket.connect(addr)?; // replies from anyone but the server are now filtered out
        datagram_session(|d| socket.send(d), |b| socket.recv(b), client)
    })
}

fn unix_stream_echo<M: Mode>(dir: &TempDir, mode: &str, builder: Builder<M>) -> Result {
    let path = dir.path(&format!("stream-{mode}.sock"));
    let server = builder
        .bind_unix_stream(&path, upper_echo)
        .map_err(|e| e.to_string())?;
    demo(&format!("Unix stream, {mode} mode"), server, |client| {
        let stream = UnixStream::connect(&path)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream_session(stream, client)
    })?;
    socket_file_removed(&path)
}

fn unix_datagram_echo<M: Mode>(dir: &TempDir, mode: &str, builder: Builder<M>) -> Result {
    let path = dir.path(&format!("dgram-{mode}.sock"));
    let server = builder
        .bind_unix_datagram(&path, upper_reply)
        .map_err(|e| e.to_string())?;
    demo(&format!("Unix datagram, {mode} mode"), server, |client| {
        // A Unix datagram client binds a path of its own, or the server has nowhere to reply to.
        let own = SocketFile(dir.path(&format!("client-{mode}-{client}.sock")));
        let socket = UnixDatagram::bind(&own.0)?;
        socket.set_read_timeout(Some(IO_TIMEOUT))?;
        socket.set_write_timeout(Some(IO_TIMEOUT))?;
        socket.connect(&path)?;
        datagram_session(|d| socket.send(d), |b| socket.recv(b), client)
    })?;
    socket_file_removed(&path)
}

/// A message server: the library waits on every connection with an event loop (epoll) and calls
/// the handler with each whole line, so an idle or slow client costs no thread.
#[cfg(feature = "message")]
fn message_server() -> Result {
    let shout = message_handler(|line, reply| {
        reply.write_all(&line.to_ascii_uppercase())?;
        reply.write_all(b"\n")
    });
    let server = Builder::new()
        .mode(Pool::new(2))
        .messages(Lines::new(), shout)
        .bind_tcp("127.0.0.1:0")
        .map_err(|e| e.to_string())?;
    let addr = inet_addr(server.local_addr())?;
    let title = "TCP message server, pool mode, 2 workers: the handler gets whole lines";
    say(format!("\n== {title}, on {addr}"))?;
    say(
        "   Choose it over a stream handler when a protocol has clear message boundaries and many",
    )?;
    say("   clients sit idle or send slowly (chat, key-value, RPC): they cost the event loop a")?;
    say("   buffer, not a thread. Each client below sends both its lines in one write.")?;
    run_clients(title, Running::start_messages(server), |client| {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        line_session(stream, client)
    })
}

/// A message server with two event loops, each on a thread of its own: the handlers run on the
/// loops, so non-blocking handlers get more than one core.
#[cfg(feature = "message")]
fn message_loops() -> Result {
    // The loops that handled a line, by their threads' names.
    let loops = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let seen = Arc::clone(&loops);
    let shout = message_handler(move |line, reply| {
        if let Some(name) = thread::current().name() {
            seen.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(name.to_string());
        }
        reply.write_all(&line.to_ascii_uppercase())?;
        reply.write_all(b"\n")
    });
    let server = Builder::new()
        .messages(Lines::new(), shout)
        .loops(2)
        .bind_tcp("127.0.0.1:0")
        .map_err(|e| e.to_string())?;
    let addr = inet_addr(server.local_addr())?;
    let title = "TCP message server, 2 event loops: handlers on the loops";
    say(format!("\n== {title}, on {addr}"))?;
    say("   Each loop has a thread of its own; each new connection goes to the loop with the fewest")?;
    say("   open, and its handler always runs there: more cores for handlers that never block. A")?;
    say("   handler that blocks stalls only its own loop's connections: blocking handlers belong")?;
    say("   on a pool, as above.")?;
    run_clients(title, Running::start_messages(server), |client| {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        line_session(stream, client)
    })?;
    let loops = loops
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let names: Vec<&str> = loops.iter().map(String::as_str).collect();
    say(format!(
        "   lines handled on {} event loops: {}",
        names.len(),
        names.join(", ")
    ))
}

/// One connection: both messages as lines in one write (pipelined), then one answer line each.
#[cfg(feature = "message")]
fn line_session(mut stream: TcpStream, client: usize) -> io::Result<Vec<Exchange>> {
    let sent = messages(client);
    stream.write_all(format!("{}\n{}\n", sent[0], sent[1]).as_bytes())?;
    let mut lines = BufReader::new(stream);
    let mut exchanges = Vec::new();
    for sent in sent {
        let mut reply = String::new();
        lines.read_line(&mut reply).map_err(no_reply)?;
        exchanges.push(check(sent, reply.trim_end_matches('\n').as_bytes())?);
    }
    Ok(exchanges)
}

/// What one client sent and what came back.
struct Exchange {
    sent: String,
    got: String,
}

/// The messages client `client` sends: ASCII letters change, the Chinese characters do not.
fn messages(client: usize) -> [String; 2] {
    [format!("hello 世界 #{client}"), format!("bye #{client}")]
}

/// Runs `server` on its own thread, starts [`CLIENTS`] clients at once, stops the server, and
/// prints the transcript and the stats.
fn demo<T, H, M>(
    title: &str,
    server: Server<T, H, M>,
    client: impl Fn(usize) -> io::Result<Vec<Exchange>> + Sync,
) -> Result
where
    T: Transport,
    H: RequestHandler<T::Request> + Clone,
    M: Mode,
{
    say(format!("\n== {title}, on {}", server.local_addr()))?;
    run_clients(title, Running::start(server), client)
}

/// Starts [`CLIENTS`] clients at once against a running server, stops it, and prints the
/// transcript and the stats.
fn run_clients(
    title: &str,
    running: Running,
    client: impl Fn(usize) -> io::Result<Vec<Exchange>> + Sync,
) -> Result {
    let client = &client;
    let sessions: Vec<_> = thread::scope(|scope| {
        let clients: Vec<_> = (1..=CLIENTS)
            .map(|i| scope.spawn(move || client(i)))
            .collect();
        clients
            .into_iter()
            .map(std::thread::ScopedJoinHandle::join)
            .collect()
    });
    // Stop the server before looking at the results, so that a failed client cannot leave it
    // running.
    let stats = running.stop(title)?;
    for (i, session) in sessions.into_iter().enumerate() {
        let exchanges = match session {
            Ok(Ok(exchanges)) => exchanges,
            Ok(Err(e)) => return Err(format!("{title}: client {}: {e}", i + 1)),
            Err(_) => return Err(format!("{title}: client {} panicked", i + 1)),
        };
        let shown: Vec<String> = exchanges
            .iter()
            .map(|x| format!("{:?} -> {:?}", x.sent, x.got))
            .collect();
        say(format!("   client {}: {}", i + 1, shown.join(", ")))?;
    }
    say(format!("   stats: {}", show_stats(&stats)))
}

/// One connection: send each message, read back as many bytes, check they are upper-cased.
fn stream_session(mut stream: impl Read + Write, client: usize) -> io::Result<Vec<Exchange>> {
    let mut exchanges = Vec::new();
    for sent in messages(client) {
        stream.write_all(sent.as_bytes())?;
        let mut reply = vec![0u8; sent.len()];
        stream.read_exact(&mut reply).map_err(no_reply)?;
        exchanges.push(check(sent, &reply)?);
    }
    Ok(exchanges)
}

/// One datagram per message (client 1 also sends an empty one), one reply for each.
fn datagram_session(
    send: impl Fn(&[u8]) -> io::Result<usize>,
    recv: impl Fn(&mut [u8]) -> io::Result<usize>,
    client: usize,
) -> io::Result<Vec<Exchange>> {
    let mut to_send = messages(client).to_vec();
    if client == 1 {
        to_send.push(String::new());
    }
    let mut exchanges = Vec::new();
    for sent in to_send {
        send(sent.as_bytes())?;
        let mut reply = [0u8; 1024];
        let n = recv(&mut reply).map_err(no_reply)?;
        exchanges.push(check(sent, &reply[..n])?);
    }
    Ok(exchanges)
}

fn check(sent: String, reply: &[u8]) -> io::Result<Exchange> {
    let want = sent.to_ascii_uppercase();
    if reply != want.as_bytes() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "sent {sent:?}, expected {want:?}, got {:?}",
                String::from_utf8_lossy(reply)
            ),
        ));
    }
    Ok(Exchange { sent, got: want })
}

// ---------------------------------------------------------------------------------------------
// The hooks.

/// `handle_error` receives the peer and the failure when a handler returns an error or panics;
/// the server goes on serving.
fn handle_error_hook() -> Result {
    fn picky(req: &mut StreamRequest) -> io::Result<()> {
        let mut buf = [0u8; 64];
        let n = req.read(&mut buf)?;
        match &buf[..n] {
            b"fail" => Err(io::Error::other("the client asked for an error")),
            b"panic" => std::panic::panic_any(DELIBERATE_PANIC),
            chunk => req.write_all(&chunk.to_ascii_uppercase()),
        }
    }

    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&reports);
    let server = Builder::new()
        .mode(Threading::new())
        .handle_error(move |peer, failure| {
            if let Ok(mut reports) = sink.lock() {
                reports.push(format!("{peer}: {failure}"));
            }
        })
        .bind_tcp("127.0.0.1:0", picky)
        .map_err(|e| e.to_string())?;
    let addr = inet_addr(server.local_addr())?;
    let title = "handle_error: a handler that fails on \"fail\" and panics on \"panic\"";
    say(format!("\n== {title}, TCP on {addr}"))?;
    let running = Running::start(server);
    // One client after the other, each waiting until the server has closed its connection, so
    // the reports arrive in order.
    let mut transcript = Vec::new();
    let mut outcome = Ok(());
    for message in ["hello", "fail", "panic"] {
        match one_shot_tcp(addr, message) {
            Ok(reply) => transcript.push(format!("   sent {message:?} -> {reply}")),
            Err(e) => {
                outcome = Err(format!(
                    "handle_error demo: client sending {message:?}: {e}"
                ));
                break;
            }
        }
    }
    let stats = running.stop("handle_error demo")?;
    outcome?;
    for line in transcript {
        say(line)?;
    }
    let reports = reports.lock().map_err(|_| "the report list is poisoned")?;
    if reports.len() != 2 {
        return Err(format!(
            "expected 2 reports from handle_error, got {reports:?}"
        ));
    }
    for report in reports.iter() {
        say(format!("   handle_error got  {report}"))?;
    }
    say(format!("   stats: {}", show_stats(&stats)))
}

/// Connects, sends `message`, and reads until the server closes the connection.
fn one_shot_tcp(addr: SocketAddr, message: &str) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(message.as_bytes())?;
    let mut reply = Vec::new();
    match stream.read_to_end(&mut reply) {
        Ok(_) => {}
        // A connection closed with unread data in its buffers may be reset rather than closed.
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => return Err(no_reply(e)),
    }
    Ok(if reply.is_empty() {
        "connection closed, no reply".to_string()
    } else {
        format!(
            "{:?}, then the connection closed",
            String::from_utf8_lossy(&reply)
        )
    })
}

/// `verify_request` decides, before any handler runs, whether to serve a peer: here a UDP server
/// answers only clients on its allow-list.
fn verify_request_hook() -> Result {
    let io = |e: io::Error| e.to_string();
    let allowed: Arc<Mutex<HashSet<Address>>> = Arc::default();
    let list = Arc::clone(&allowed);
    let server = Builder::new()
        .verify_request(move |peer| list.lock().is_ok_and(|list| list.contains(peer)))
        .bind_udp("127.0.0.1:0", upper_reply)
        .map_err(io)?;
    let addr = inet_addr(server.local_addr())?;
    say(format!(
        "\n== verify_request: a UDP server that answers only the clients on its allow-list, on {addr}"
    ))?;
    let running = Running::start(server);

    let outcome = (|| -> io::Result<(String, String)> {
        let member = UdpSocket::bind("127.0.0.1:0")?;
        let stranger = UdpSocket::bind("127.0.0.1:0")?;
        for socket in [&member, &stranger] {
            socket.set_write_timeout(Some(IO_TIMEOUT))?;
            socket.connect(addr)?;
        }
        member.set_read_timeout(Some(IO_TIMEOUT))?;
        stranger.set_read_timeout(Some(REFUSED_WAIT))?;
        if let Ok(mut list) = allowed.lock() {
            list.insert(Address::from(member.local_addr()?));
        }

        let mut buf = [0u8; 64];
        stranger.send(b"hello?")?;
        let stranger_got = match stranger.recv(&mut buf) {
            Ok(n) => {
                let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
                return Err(io::Error::other(format!(
                    "the refused client got a reply: {reply:?}"
                )));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                format!("no reply within {} ms: refused", REFUSED_WAIT.as_millis())
            }
            Err(e) => return Err(e),
        };
        member.send(b"hello")?;
        let n = member.recv(&mut buf).map_err(no_reply)?;
        let member_got = format!("{:?}", String::from_utf8_lossy(&buf[..n]));
        Ok((stranger_got, member_got))
    })();
    let stats = running.stop("verify_request demo")?;
    let (stranger_got, member_got) = outcome.map_err(|e| format!("verify_request demo: {e}"))?;
    say(format!(
        "   client not on the list: sent \"hello?\" -> {stranger_got}"
    ))?;
    say(format!(
        "   client on the list:     sent \"hello\"  -> {member_got}"
    ))?;
    say(format!("   stats: {}", show_stats(&stats)))
}

/// A handler may call `shutdown()` on its own server, in any mode: it only asks, never waits. In
/// single mode this is the call that deadlocks in Python.
fn shutdown_from_a_handler() -> Result {
    fn echo_until_shutdown(req: &mut StreamRequest) -> io::Result<()> {
        let mut buf = [0u8; 64];
        loop {
            let n = req.read(&mut buf)?;
            match &buf[..n] {
                [] => return Ok(()),
                b"shutdown" => {
                    req.server().shutdown();
                    req.write_all(b"bye")?;
                }
                chunk => req.write_all(&chunk.to_ascii_uppercase())?,
            }
        }
    }

    let server = Builder::new()
        .bind_tcp("127.0.0.1:0", echo_until_shutdown)
        .map_err(|e| e.to_string())?;
    let addr = inet_addr(server.local_addr())?;
    say(format!(
        "\n== shutdown from inside a handler: TCP, single mode, on {addr}"
    ))?;
    let running = Running::start(server);
    let session = (|| -> io::Result<Vec<String>> {
        let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut lines = Vec::new();
        for (sent, want) in [("hello", "HELLO"), ("shutdown", "bye")] {
            stream.write_all(sent.as_bytes())?;
            let mut reply = vec![0u8; want.len()];
            stream.read_exact(&mut reply).map_err(no_reply)?;
            lines.push(format!(
                "   sent {sent:?} -> {:?}",
                String::from_utf8_lossy(&reply)
            ));
        }
        Ok(lines)
    })();
    let session = match session {
        Ok(lines) => lines,
        Err(e) => {
            // Make sure the server stops even though the handler never got to shut it down.
            let _ = running.stop("shutdown demo");
            return Err(format!("shutdown demo: {e}"));
        }
    };
    // Nobody outside the handler calls shutdown(): serve_forever returns on its own.
    let stats = running.wait("shutdown demo")?;
    for line in session {
        say(line)?;
    }
    say("   serve_forever returned on its own, and server_close waited for the handler")?;
    say(format!("   stats: {}", show_stats(&stats)))
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// A server serving on a thread of its own.
struct Running {
    handle: ServerHandle,
    done: mpsc::Receiver<io::Result<()>>,
}

impl Running {
    fn start<T, H, M>(mut server: Server<T, H, M>) -> Running
    where
        T: Transport,
        H: RequestHandler<T::Request> + Clone,
        M: Mode,
    {
        let handle = server.handle();
        Running::spawn(handle, move || {
            server.serve_forever()?;
            server.server_close()
        })
    }

    /// [`start`](Self::start) for a message server.
    #[cfg(feature = "message")]
    fn start_messages<T, H, F>(mut server: MessageServer<T, H, F>) -> Running
    where
        T: Transport<Request = StreamRequest>,
        H: MessageHandler,
        F: Framer,
    {
        let handle = server.handle();
        Running::spawn(handle, move || {
            server.serve_forever()?;
            server.server_close()
        })
    }

    /// Runs `serve` (`serve_forever`, then `server_close`) on a thread of its own.
    fn spawn(
        handle: ServerHandle,
        serve: impl FnOnce() -> io::Result<()> + Send + 'static,
    ) -> Running {
        let (done_tx, done) = mpsc::channel();
        thread::spawn(move || {
            let _ = done_tx.send(serve());
        });
        Running { handle, done }
    }

    /// Asks the server to shut down, then waits for it.
    fn stop(self, what: &str) -> Result<Stats> {
        self.handle.shutdown();
        self.wait(what)
    }

    /// Waits (bounded) until `serve_forever` and `server_close` have returned; the final stats.
    fn wait(self, what: &str) -> Result<Stats> {
        match self.done.recv_timeout(STOP_TIMEOUT) {
            Ok(Ok(())) => Ok(self.handle.stats()),
            Ok(Err(e)) => Err(format!("{what}: the server failed: {e}")),
            Err(_) => Err(format!(
                "{what}: the server did not stop within {STOP_TIMEOUT:?}"
            )),
        }
    }
}

fn show_stats(s: &Stats) -> String {
    format!(
        "accepted {}, completed {}, failed {}, rejected {}, active {}",
        s.accepted, s.completed, s.failed, s.rejected, s.active
    )
}

fn inet_addr(addr: &Address) -> Result<SocketAddr> {
    addr.as_inet()
        .ok_or_else(|| format!("expected an IP address, got {addr}"))
}

/// Turns a read timeout's `WouldBlock`/`TimedOut` into a message that says what happened.
fn no_reply(e: io::Error) -> io::Error {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no reply within {IO_TIMEOUT:?}"),
        )
    } else {
        e
    }
}

fn say(line: impl std::fmt::Display) -> Result {
    common::print_line(line).map_err(|e| e.to_string())
}

/// Checks that the server removed its socket file when it closed.
fn socket_file_removed(path: &Path) -> Result {
    if path.exists() {
        return Err(format!(
            "the server left its socket file {} behind",
            path.display()
        ));
    }
    say(format!(
        "   socket file {} removed on close",
        path.file_name().unwrap_or_default().to_string_lossy()
    ))
}

/// A socket file a client bound; removed when dropped (std does not remove it).
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// A private directory for the tour's Unix socket files, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn create() -> Result<TempDir> {
        let path = std::env::temp_dir().join(format!("socketserver-tour-{}", std::process::id()));
        fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create the directory {}: {e}", path.display()))?;
        Ok(TempDir(path))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Removes the directory, which must be empty by now: servers remove their own socket files.
    fn remove(self) -> Result {
        let result = fs::remove_dir(&self.0).map_err(|e| {
            format!(
                "cannot remove the directory {} (left behind: files the servers should have removed?): {e}",
                self.0.display()
            )
        });
        std::mem::forget(self);
        result
    }
}

impl Drop for TempDir {
    /// On an early return, clears up whatever is left.
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Keeps the deliberate panic of the `handle_error` demo off stderr; other panics are reported as
/// usual.
fn silence_deliberate_panic() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let deliberate = info
            .payload()
            .downcast_ref::<&str>()
            .is_some_and(|message| *message == DELIBERATE_PANIC);
        if !deliberate {
            default_hook(info);
        }
    }));
}

// ---------------------------------------------------------------------------------------------
// The process-based modes.

/// The demo server the tour starts as a separate program: TCP on port 0, answering one line per
/// connection with the pid of the process that handled it. Its children run this same code and
/// take over their sockets instead of binding. It stops when its stdin closes.
fn process_demo_server(mode: &str) -> io::Result<()> {
    let builder = Builder::new().read_timeout(IO_TIMEOUT);
    let pid_echo: PidEcho = pid_echo;
    match mode {
        "process" => serve_until_stdin_closes(
            builder
                .mode(Process::new().max_children(4))
                .bind_tcp("127.0.0.1:0", pid_echo)?,
        ),
        "prefork" => serve_until_stdin_closes(
            builder
                .mode(Prefork::new(PREFORK_WORKERS))
                .bind_tcp("127.0.0.1:0", pid_echo)?,
        ),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("--process-demo takes process or prefork, not {other:?}"),
        )),
    }
}

/// Reads one line, answers `pid <n>: <LINE>`, and keeps the connection until the client closes
/// it (or the read timeout passes), so a prefork worker, serving one connection at a time, is
/// busy while the client holds on.
fn pid_echo(req: &mut StreamRequest) -> io::Result<()> {
    let mut line = String::new();
    req.read_line(&mut line)?;
    writeln!(
        req,
        "pid {}: {}",
        std::process::id(),
        line.trim_end().to_uppercase()
    )?;
    io::copy(req, &mut io::sink()).map(|_| ())
}

type PidEcho = fn(&mut StreamRequest) -> io::Result<()>;

fn serve_until_stdin_closes<M: Mode>(
    mut server: Server<socketserver::transport::Tcp, PidEcho, M>,
) -> io::Result<()> {
    // Children re-run main: only the parent announces itself and watches stdin (in a child,
    // stdin belongs to the mode).
    if !socketserver::is_worker() {
        common::announce(server.local_addr())?;
        let handle = server.handle();
        thread::spawn(move || {
            let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
            handle.shutdown();
        });
    }
    let handle = server.handle();
    server.serve_forever()?;
    server.server_close()?;
    common::print_line(format_args!(
        "pid {}: {}",
        std::process::id(),
        show_stats(&handle.stats())
    ))
}

/// Starts the demo server, sends it [`CLIENTS`] clients at once, stops it, prints the transcript.
fn process_demo(mode: &str, title: &str) -> Result {
    let exe = std::env::current_exe().map_err(|e| format!("{title}: own executable: {e}"))?;
    let child = Command::new(exe)
        .args(["--process-demo", mode])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{title}: cannot start the demo server: {e}"))?;
    let mut demo = DemoServer::new(child);
    let first = demo.line(title)?;
    let addr: SocketAddr = first
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("{title}: the demo server printed {first:?}"))?;
    say(format!(
        "\n== {title}, on {addr} (server pid {})",
        demo.pid()
    ))?;
    let answered = Answered::default();
    let answered = &answered;
    let replies: Vec<io::Result<String>> = thread::scope(|scope| {
        let clients: Vec<_> = (1..=CLIENTS)
            .map(|i| scope.spawn(move || pid_echo_client(addr, i, answered)))
            .collect();
        clients
            .into_iter()
            .map(|c| {
                c.join()
                    .unwrap_or_else(|_| Err(io::Error::other("client panicked")))
            })
            .collect()
    });
    let stats = demo.stop(title)?;
    let mut pids = HashSet::new();
    for (i, reply) in replies.into_iter().enumerate() {
        let reply = reply.map_err(|e| format!("{title}: client {}: {e}", i + 1))?;
        say(format!("   client {}: {reply}", i + 1))?;
        pids.extend(reply.split(':').next().map(str::to_string));
    }
    say(format!("   stats of the server process ({stats})"))?;
    if mode == "prefork" {
        say("   (a prefork supervisor takes no requests itself: each worker counts its own)")?;
        let workers = match pids.len() {
            1 => "1 worker".to_string(),
            n => format!("{n} workers"),
        };
        say(format!(
            "   {workers} served the {CLIENTS} clients. A worker serves one connection at a time, and each"
        ))?;
        say(format!(
            "   client held its connection open until {PREFORK_WORKERS} clients had answers, so \
             the second went to"
        ))?;
        say("   another worker. (Short connections one after another may all go to one worker:")?;
        say("   Linux wakes the worker that waited last.)")?;
    }
    Ok(())
}

/// How many demo clients have their answer: each holds its connection open until
/// [`PREFORK_WORKERS`] have, so that every prefork worker is busy with one of them at once.
#[derive(Default)]
struct Answered {
    count: Mutex<usize>,
    changed: Condvar,
}

impl Answered {
    /// Counts one more answer, then waits (at most [`IO_TIMEOUT`]) until `enough` have come.
    fn add_and_wait_for(&self, enough: usize) {
        let deadline = Instant::now() + IO_TIMEOUT;
        let mut count = self
            .count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *count += 1;
        self.changed.notify_all();
        while *count < enough {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            count = match self.changed.wait_timeout(count, left) {
                Ok((count, _)) => count,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

fn pid_echo_client(addr: SocketAddr, client: usize, answered: &Answered) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    writeln!(stream, "hello from client {client}")?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply)?;
    let expected = format!("HELLO FROM CLIENT {client}");
    if !reply.trim_end().ends_with(&expected) {
        return Err(io::Error::other(format!("unexpected reply {reply:?}")));
    }
    // Dropping the stream afterwards closes the connection and frees the worker.
    answered.add_and_wait_for(PREFORK_WORKERS);
    Ok(reply.trim_end().to_string())
}

/// The demo server process: its stdout lines arrive through a channel so every read has a
/// deadline, and it is killed if the tour leaves early.
struct DemoServer {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
}

impl DemoServer {
    fn new(mut child: Child) -> Self {
        let (tx, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        DemoServer {
            child: Some(child),
            lines,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn line(&self, title: &str) -> Result<String> {
        self.lines
            .recv_timeout(STOP_TIMEOUT)
            .map_err(|_| format!("{title}: no output from the demo server within {STOP_TIMEOUT:?}"))
    }

    /// Closes the server's stdin, waits for it to exit, and returns its last line (its stats).
    fn stop(&mut self, title: &str) -> Result<String> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| format!("{title}: already stopped"))?;
        drop(child.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{title}: the demo server did not stop within {STOP_TIMEOUT:?}"
                    ));
                }
            }
        };
        if !status.success() {
            return Err(format!("{title}: the demo server exited with {status}"));
        }
        let stats = self.line(title)?;
        Ok(stats)
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
