//! Graceful stop on signals (`Builder::stop_on_signals`), in every mode, end to end.
//!
//! A signal goes to a whole process, so the server under test cannot be this test process: this
//! binary is its own server program, run without libtest's harness (`harness = false` in
//! Cargo.toml), as `tests/process_modes.rs` is. Started with `GRACEFUL_SCENARIO=<mode>` in its
//! environment it is a *scenario server*: it serves slow requests in that mode with
//! `stop_on_signals`, prints `listening on <addr>`, and exits 0 if `serve_forever` and
//! `server_close` returned `Ok` (1 with the error otherwise). The children of the process
//! modes re-execute it with the same environment and build the same server. Started without
//! it, it is the *driver*: each test starts a scenario server, puts requests in flight, signals
//! it with `kill(2)` and checks what the clients got and how the process ended.
//!
//! A request is a line; the handler answers `started <pid>` at once, sleeps `GRACEFUL_SLOW_MS`,
//! then answers `done <line>`. Every socket has a timeout and every wait a deadline; a scenario
//! server is killed when its test ends, however it ends.

mod scenario;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use scenario::procs::send_signal;
use scenario::{check, eventually, stat, ScenarioServer, TestFn};

use socketserver::{
    is_worker, AnyMode, Builder, Pool, Prefork, Process, Single, StreamRequest, Threading,
};

const SCENARIO_VAR: &str = "GRACEFUL_SCENARIO";
const SLOW_VAR: &str = "GRACEFUL_SLOW_MS";
const GRACE_VAR: &str = "GRACEFUL_GRACE_MS";
const UNIX_VAR: &str = "GRACEFUL_UNIX_PATH";
/// Set: the handler serves requests on a connection until `wait_for_request` says to stop.
const KEEP_ALIVE_VAR: &str = "GRACEFUL_KEEP_ALIVE";
/// Set: the handler waits for each request with `wait_for_request`, the first one included (as
/// `echo_upper` does), and serves one request per connection unless `KEEP_ALIVE_VAR` is set too.
const WAIT_FIRST_VAR: &str = "GRACEFUL_WAIT_FIRST";
/// Set: the scenario arms and closes a first server before the one it serves, and after that one
/// stops it waits, armed by no server, for a signal to end it.
const AGAIN_VAR: &str = "GRACEFUL_AGAIN";

/// Read and write timeout of every socket, the server's included.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long anything a test waits for may take before the test fails.
const WAIT: Duration = Duration::from_secs(20);
/// The grace period of the tests that expect every request to finish.
const GRACE: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    if let Ok(mode) = std::env::var(SCENARIO_VAR) {
        return scenario_server(&mode);
    }
    scenario::run_tests(TESTS)
}

// =============================================================================================
// The driver

const TESTS: &[(&str, TestFn)] = &[
    ("single_sigterm_serves_the_backlog_and_exits_0", || {
        twenty_in_flight("single", 100)
    }),
    ("threading_sigterm_lets_20_requests_finish", || {
        twenty_in_flight("threading", 300)
    }),
    (
        "pool_sigterm_finishes_running_queued_and_backlog_requests",
        || twenty_in_flight("pool", 300),
    ),
    ("process_sigterm_lets_20_children_finish", || {
        twenty_in_flight("process", 300)
    }),
    ("prefork_sigterm_lets_the_workers_drain", || {
        twenty_in_flight("prefork", 300)
    }),
    (
        "unix_server_removes_its_socket_file_on_sigterm",
        unix_socket_file,
    ),
    ("threading_second_sigint_stops_at_once", || {
        second_signal("threading")
    }),
    ("pool_second_sigint_stops_at_once", || second_signal("pool")),
    ("process_second_sigint_kills_the_children", || {
        second_signal("process")
    }),
    ("prefork_second_sigint_kills_the_workers", || {
        second_signal("prefork")
    }),
    ("sigquit_stops_at_once", sigquit),
    (
        "single_sigterm_while_connections_arrive_answers_or_refuses_each",
        || arrivals("single"),
    ),
    (
        "threading_sigterm_while_connections_arrive_answers_or_refuses_each",
        || arrivals("threading"),
    ),
    (
        "pool_sigterm_while_connections_arrive_answers_or_refuses_each",
        || arrivals("pool"),
    ),
    (
        "process_sigterm_while_connections_arrive_answers_or_refuses_each",
        || arrivals("process"),
    ),
    (
        "prefork_sigterm_while_connections_arrive_answers_or_refuses_each",
        || arrivals("prefork"),
    ),
    ("single_idle_keep_alive_connection_ends_at_the_stop", || {
        idle_keep_alive("single")
    }),
    (
        "threading_idle_keep_alive_connections_end_at_the_stop",
        || idle_keep_alive("threading"),
    ),
    ("process_idle_keep_alive_children_end_at_the_stop", || {
        idle_keep_alive("process")
    }),
    (
        "prefork_idle_keep_alive_connections_end_at_the_stop",
        || idle_keep_alive("prefork"),
    ),
    ("the_grace_period_bounds_the_wait", grace_runs_out),
    (
        "a_second_server_stops_gracefully_and_signals_end_the_process_once_none_is_armed",
        signals_after_the_servers,
    ),
    // In this process: no signal involved.
    (
        "grace_period_alone_makes_shutdown_graceful_and_on_stop_runs_once",
        in_process_graceful_shutdown,
    ),
    (
        "stop_now_cuts_off_and_server_close_does_not_wait",
        in_process_stop_now,
    ),
    (
        "wait_for_request_serves_a_request_on_its_way_at_the_stop_and_times_out_as_a_read",
        in_process_wait_for_request,
    ),
    (
        "wait_for_request_waits_at_the_stop_for_a_new_connections_first_request",
        in_process_first_request,
    ),
    (
        "wait_for_request_for_a_first_request_at_the_stop_times_out_as_a_read",
        in_process_first_request_timeout,
    ),
];

/// The scenario server serving in `mode` requests that take `slow`, with `grace` as its grace
/// period, on a Unix socket at `unix` or on TCP.
fn start(
    mode: &str,
    slow: Duration,
    grace: Duration,
    unix: Option<PathBuf>,
) -> Result<ScenarioServer, String> {
    start_with(mode, slow, grace, unix, false)
}

/// [`start`], serving requests on a connection until `wait_for_request` says to stop when
/// `keep_alive`.
fn start_with(
    mode: &str,
    slow: Duration,
    grace: Duration,
    unix: Option<PathBuf>,
    keep_alive: bool,
) -> Result<ScenarioServer, String> {
    start_env(mode, slow, grace, unix, &[(KEEP_ALIVE_VAR, keep_alive)])
}

/// [`start`], with the variables of `flags` that are on set to `1`.
fn start_env(
    mode: &str,
    slow: Duration,
    grace: Duration,
    unix: Option<PathBuf>,
    flags: &[(&str, bool)],
) -> Result<ScenarioServer, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let mut command = Command::new(exe);
    for (var, _) in flags.iter().filter(|(_, on)| *on) {
        command.env(var, "1");
    }
    command
        .env(SCENARIO_VAR, mode)
        .env(SLOW_VAR, slow.as_millis().to_string())
        .env(GRACE_VAR, grace.as_millis().to_string())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    if let Some(path) = &unix {
        command.env(UNIX_VAR, path);
    }
    ScenarioServer::start(mode, command)
}

/// A client connected to `server` (on TCP, or on the Unix socket path it listens on) that has
/// sent request `n`.
fn client(server: &ScenarioServer, n: usize) -> io::Result<Box<dyn ReadWrite>> {
    let mut stream: Box<dyn ReadWrite> = match server.listening.parse::<SocketAddr>() {
        Ok(addr) => {
            let s = TcpStream::connect(addr)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            Box::new(s)
        }
        Err(_) => {
            let s = UnixStream::connect(&server.listening)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            Box::new(s)
        }
    };
    writeln!(stream, "request {n}")?;
    Ok(stream)
}

trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// What happened to one client.
#[derive(Debug)]
enum Event {
    /// Connected and sent its request.
    Sent,
    /// Its handler began, in process `pid`.
    Started(u32),
    /// The whole answer arrived (`Ok`), or what went wrong.
    Ended(Result<(), String>),
}

/// Starts `count` clients at once; each reports its events on the channel.
fn clients(scenario: &ScenarioServer, count: usize) -> mpsc::Receiver<(usize, Event)> {
    let (tx, rx) = mpsc::channel();
    thread::scope(|scope| {
        for n in 0..count {
            let tx = tx.clone();
            scope.spawn(move || match client(scenario, n) {
                Ok(stream) => {
                    let _ = tx.send((n, Event::Sent));
                    thread::spawn(move || {
                        let ended = converse(stream, n, &tx);
                        let _ = tx.send((n, Event::Ended(ended)));
                    });
                }
                Err(e) => {
                    let _ = tx.send((n, Event::Ended(Err(format!("connect: {e}")))));
                }
            });
        }
    });
    rx
}

fn converse(
    stream: Box<dyn ReadWrite>,
    n: usize,
    tx: &mpsc::Sender<(usize, Event)>,
) -> Result<(), String> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("read: {e}"))?;
    let pid = line
        .trim_end()
        .strip_prefix("started ")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("expected `started <pid>`, got {line:?}"))?;
    let _ = tx.send((n, Event::Started(pid)));
    line.clear();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("read: {e}"))?;
    if line != format!("done request {n}\n") {
        return Err(format!("expected `done request {n}`, got {line:?}"));
    }
    Ok(())
}

/// Collects events until `enough` holds for them, or fails after [`WAIT`].
struct Tally {
    sent: usize,
    started: Vec<u32>,
    ended: Vec<(usize, Result<(), String>)>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            sent: 0,
            started: Vec::new(),
            ended: Vec::new(),
        }
    }

    fn until(
        &mut self,
        rx: &mpsc::Receiver<(usize, Event)>,
        what: &str,
        enough: impl Fn(&Tally) -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + WAIT;
        while !enough(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((_, Event::Sent)) => self.sent += 1,
                Ok((_, Event::Started(pid))) => self.started.push(pid),
                Ok((n, Event::Ended(result))) => self.ended.push((n, result)),
                Err(_) => {
                    return Err(format!(
                        "waited {WAIT:?} for {what}: {} sent, {} started, ended: {:?}",
                        self.sent,
                        self.started.len(),
                        self.ended
                    ))
                }
            }
        }
        Ok(())
    }
}

/// How many requests the mode runs at once (the rest wait in a queue or the listen backlog).
fn concurrency(mode: &str) -> usize {
    match mode {
        "single" => 1,
        "pool" => 4,
        _ => 20,
    }
}

/// Whether every process in `pids` has ended within [`WAIT`] (a child killed or exited, then
/// reaped by init): signal 0, which only checks that a process exists, fails for each.
fn all_gone(pids: &[u32]) -> bool {
    eventually(WAIT, || {
        pids.iter().all(|&pid| send_signal(pid, 0).is_err())
    })
}

/// 20 slow requests in flight, SIGTERM: every one completes, the server exits 0 within the
/// grace period, and no process it started is left.
fn twenty_in_flight(mode: &str, slow_ms: u64) -> Result<(), String> {
    let mut server = start(mode, Duration::from_millis(slow_ms), GRACE, None)?;
    run_twenty(&mut server, mode)
}

fn run_twenty(server: &mut ScenarioServer, mode: &str) -> Result<(), String> {
    const CLIENTS: usize = 20;
    let events = clients(server, CLIENTS);
    let mut tally = Tally::new();
    let running = concurrency(mode);
    tally.until(&events, "the requests to be in flight", |t| {
        t.sent + t.ended.len() >= CLIENTS && t.started.len() >= running
    })?;
    let started_before = tally.started.len();
    let signalled = Instant::now();
    server.signal(libc::SIGTERM)?;
    let status = server.wait_exit(GRACE + WAIT);
    let took = signalled.elapsed();
    tally.until(&events, "every client to finish", |t| {
        t.ended.len() >= CLIENTS
    })?;
    println!(
        "  {mode}: {started_before} of {CLIENTS} running at SIGTERM, the rest queued; \
         SIGTERM to exit: {took:.2?}"
    );
    let log = server.stderr();
    let status =
        status.ok_or_else(|| format!("still running {:?} after SIGTERM:\n{log}", GRACE + WAIT))?;
    let failed: Vec<_> = tally.ended.iter().filter(|(_, r)| r.is_err()).collect();
    check(failed.is_empty(), || {
        format!(
            "{} of {CLIENTS} requests failed: {failed:?}\n{log}",
            failed.len()
        )
    })?;
    check(status.success(), || {
        format!("exit status {status}, expected 0:\n{log}")
    })?;
    check(took < GRACE, || {
        format!("took {took:?}, longer than the grace period:\n{log}")
    })?;
    check(all_gone(&tally.started), || {
        format!(
            "processes that served requests outlived the server: {:?}",
            tally.started
        )
    })
}

fn unix_socket_file() -> Result<(), String> {
    let path =
        std::env::temp_dir().join(format!("socketserver-graceful-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut server = start(
        "threading",
        Duration::from_millis(300),
        GRACE,
        Some(path.clone()),
    )?;
    check(path.exists(), || {
        "the socket file was not created".to_string()
    })?;
    let result = run_twenty(&mut server, "threading");
    let left = path.exists();
    let _ = std::fs::remove_file(&path);
    result?;
    check(!left, || format!("{} was left behind", path.display()))
}

/// Requests that would take a minute, a graceful stop with a long grace period, then a second
/// signal: the server exits at once with status 1, saying what it cut off, and no process it
/// started is left.
fn second_signal(mode: &str) -> Result<(), String> {
    const CLIENTS: usize = 3;
    let mut server = start(mode, Duration::from_secs(60), Duration::from_secs(60), None)?;
    let events = clients(&server, CLIENTS);
    let mut tally = Tally::new();
    tally.until(&events, "the requests to start", |t| {
        t.started.len() >= CLIENTS
    })?;
    server.signal(libc::SIGTERM)?;
    server_log_says(&server, "gracefully")?;
    check(
        server.wait_exit(Duration::from_millis(300)).is_none(),
        || {
            format!(
                "exited on the first signal, with requests running:\n{}",
                server.stderr()
            )
        },
    )?;
    let signalled = Instant::now();
    server.signal(libc::SIGINT)?;
    let status = server.wait_exit(WAIT);
    let took = signalled.elapsed();
    println!("  {mode}: second signal to exit: {took:.2?}");
    let log = server.stderr();
    let status = status.ok_or_else(|| format!("still running {WAIT:?} after SIGINT:\n{log}"))?;
    check(status.code() == Some(1), || {
        format!("exit status {status}, expected 1:\n{log}")
    })?;
    let cut = match mode {
        "prefork" => "worker process(es) killed",
        _ => "3 request(s) cut off",
    };
    check(log.contains(cut), || {
        format!("the log does not say {cut:?}:\n{log}")
    })?;
    tally.until(&events, "every client to end", |t| t.ended.len() >= CLIENTS)?;
    check(tally.ended.iter().all(|(_, r)| r.is_err()), || {
        format!(
            "a request finished although it was cut off: {:?}",
            tally.ended
        )
    })?;
    check(all_gone(&tally.started), || {
        format!(
            "processes that served requests outlived the server: {:?}",
            tally.started
        )
    })
}

fn server_log_says(server: &ScenarioServer, text: &str) -> Result<(), String> {
    check(eventually(WAIT, || server.stderr().contains(text)), || {
        format!("the log never said {text:?}:\n{}", server.stderr())
    })
}

fn sigquit() -> Result<(), String> {
    let mut server = start(
        "threading",
        Duration::from_secs(60),
        Duration::from_secs(60),
        None,
    )?;
    let events = clients(&server, 2);
    let mut tally = Tally::new();
    tally.until(&events, "the requests to start", |t| t.started.len() >= 2)?;
    let signalled = Instant::now();
    server.signal(libc::SIGQUIT)?;
    let status = server.wait_exit(WAIT);
    println!("  SIGQUIT to exit: {:.2?}", signalled.elapsed());
    let log = server.stderr();
    let status = status.ok_or_else(|| format!("still running after SIGQUIT:\n{log}"))?;
    check(status.code() == Some(1), || {
        format!("exit status {status}, expected 1:\n{log}")
    })?;
    check(
        log.contains("SIGQUIT") && log.contains("2 request(s) cut off"),
        || format!("the log does not say what SIGQUIT cut off:\n{log}"),
    )
}

/// Clients that had their answer and hold their connection open, idle: a graceful stop ends
/// their connections at once (`wait_for_request`), so the server exits 0 long before the grace
/// period, and each client sees the connection closed.
fn idle_keep_alive(mode: &str) -> Result<(), String> {
    let clients = if mode == "single" { 1 } else { 3 };
    let grace = Duration::from_secs(30);
    let mut server = start_with(mode, Duration::from_millis(10), grace, None, true)?;
    let (tx, rx) = mpsc::channel();
    for n in 0..clients {
        let mut stream = client(&server, n).map_err(|e| format!("connect: {e}"))?;
        let tx = tx.clone();
        thread::spawn(move || {
            let mut answer = [0u8; 256];
            let mut got = Vec::new();
            // The two answer lines, then the end of the connection.
            let ended = loop {
                match stream.read(&mut answer) {
                    Ok(0) => break Ok(String::from_utf8_lossy(&got).into_owned()),
                    Ok(k) => {
                        got.extend_from_slice(&answer[..k]);
                        if got.ends_with(format!("done request {n}\n").as_bytes()) {
                            let _ = tx.send((n, None));
                        }
                    }
                    Err(e) => break Err(format!("read: {e}")),
                }
            };
            let _ = tx.send((n, Some(ended)));
        });
    }
    let deadline = Instant::now() + WAIT;
    let mut answered = 0;
    while answered < clients {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((_, None)) => answered += 1,
            Ok((n, Some(ended))) => return Err(format!("client {n} ended early: {ended:?}")),
            Err(_) => return Err(format!("no answer within {WAIT:?}:\n{}", server.stderr())),
        }
    }
    let signalled = Instant::now();
    server.signal(libc::SIGTERM)?;
    let status = server.wait_exit(WAIT);
    let took = signalled.elapsed();
    println!("  {mode}: {clients} idle keep-alive connection(s): SIGTERM to exit: {took:.2?}");
    let log = server.stderr();
    let status = status.ok_or_else(|| format!("still running {WAIT:?} after SIGTERM:\n{log}"))?;
    check(status.success(), || {
        format!("exit status {status}, expected 0:\n{log}")
    })?;
    for _ in 0..clients {
        match rx.recv_timeout(WAIT) {
            Ok((_, Some(Ok(_)))) => {}
            other => {
                return Err(format!(
                    "a client did not see its connection closed: {other:?}"
                ))
            }
        }
    }
    check(took < grace / 2, || {
        format!("took {took:?}: the idle connections held the stop:\n{log}")
    })
}

/// What one client of [`arrivals`] saw.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Seen {
    /// Both lines of the answer.
    Answered,
    /// `ECONNREFUSED`: the server had closed its socket.
    Refused,
    /// A reset before any byte of an answer: left in the listen backlog when the socket closed
    /// (the server's count of accepted connections tells it from one it accepted).
    Reset,
    /// The end of the connection before any byte of an answer: accepted, then dropped.
    Empty,
    /// Anything else (part of an answer, a timeout, another error).
    Other(String),
}

/// One client of [`arrivals`]: connects (counted in `connected`), sends its request a few
/// milliseconds later (so that the server may accept it before the bytes arrive), and reads the
/// answer.
fn arriving_client(addr: &str, n: usize, connected: &std::sync::atomic::AtomicUsize) -> Seen {
    use io::ErrorKind::{BrokenPipe, ConnectionRefused, ConnectionReset};
    let stream = TcpStream::connect(addr);
    connected.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let stream = match stream {
        Ok(stream) => stream,
        Err(e) if e.kind() == ConnectionRefused => return Seen::Refused,
        Err(e) if e.kind() == ConnectionReset => return Seen::Reset,
        Err(e) => return Seen::Other(format!("connect: {e}")),
    };
    let timeouts = stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)));
    if let Err(e) = timeouts {
        return Seen::Other(e.to_string());
    }
    thread::sleep(Duration::from_millis(n as u64 % 8));
    if let Err(e) = (&stream).write_all(format!("request {n}\n").as_bytes()) {
        return match e.kind() {
            ConnectionReset | BrokenPipe => Seen::Reset,
            _ => Seen::Other(format!("send: {e}")),
        };
    }
    let mut answer = Vec::new();
    let expected = format!("done request {n}\n");
    let ended = loop {
        let mut buf = [0u8; 256];
        match (&stream).read(&mut buf) {
            Ok(0) => break None,
            Ok(k) => {
                answer.extend_from_slice(&buf[..k]);
                if answer.ends_with(expected.as_bytes()) {
                    return Seen::Answered;
                }
            }
            Err(e) => break Some(e),
        }
    };
    match (answer.is_empty(), ended) {
        (true, None) => Seen::Empty,
        (true, Some(e)) if e.kind() == ConnectionReset => Seen::Reset,
        (_, ended) => Seen::Other(format!(
            "got {:?}, then {ended:?}",
            String::from_utf8_lossy(&answer)
        )),
    }
}

/// 200 clients connect within 100 ms and SIGTERM arrives once a fifth of them have; each
/// sends its request a few milliseconds after connecting, and the handler waits for every
/// request with `wait_for_request`, the first one included. Every client must be answered, or
/// refused (or reset, never having been accepted): none may be accepted and then closed with
/// no answer. The server's count of accepted connections is the count of answered clients, and
/// it exits 0.
fn arrivals(mode: &str) -> Result<(), String> {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;
    const CLIENTS: usize = 200;
    let mut server = start_env(
        mode,
        Duration::from_millis(5),
        GRACE,
        None,
        &[(WAIT_FIRST_VAR, true)],
    )?;
    let addr = server.listening.clone();
    let barrier = Arc::new(Barrier::new(CLIENTS + 1));
    let connected = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let (addr, barrier, connected) =
                (addr.clone(), Arc::clone(&barrier), Arc::clone(&connected));
            thread::spawn(move || {
                barrier.wait();
                // Spread over 100 ms, so that some arrive after the stop closed the socket.
                thread::sleep(Duration::from_micros(n as u64 * 500));
                arriving_client(&addr, n, &connected)
            })
        })
        .collect();
    barrier.wait();
    let deadline = Instant::now() + WAIT;
    while connected.load(Ordering::SeqCst) < CLIENTS / 5 && Instant::now() < deadline {
        thread::sleep(Duration::from_micros(200));
    }
    server.signal(libc::SIGTERM)?;
    let status = server.wait_exit(GRACE + WAIT);
    let mut tally: BTreeMap<Seen, usize> = BTreeMap::new();
    for client in clients {
        let seen = client.join().map_err(|_| "a client thread panicked")?;
        *tally.entry(seen).or_default() += 1;
    }
    let log = server.stderr();
    println!("  {mode}: {CLIENTS} clients arriving around SIGTERM: {tally:?}");
    let status = status.ok_or_else(|| format!("still running after SIGTERM:\n{log}"))?;
    check(status.success(), || {
        format!("exit status {status}, expected 0:\n{log}")
    })?;
    let count = |seen: &Seen| tally.get(seen).copied().unwrap_or(0);
    let unexpected: Vec<_> = tally
        .iter()
        .filter(|(seen, _)| matches!(seen, Seen::Empty | Seen::Other(_)))
        .collect();
    check(unexpected.is_empty(), || {
        format!("clients accepted and not answered: {unexpected:?}\n{log}")
    })?;
    let (accepted, completed) = (stat(&log, "accepted")?, stat(&log, "completed")?);
    check(
        accepted == count(&Seen::Answered) as u64 && completed == accepted,
        || {
            format!(
                "the server accepted {accepted} and completed {completed} connections; {} \
                 clients were answered:\n{log}",
                count(&Seen::Answered)
            )
        },
    )?;
    check(!log.contains("before their first request arrived"), || {
        format!("the server closed connections before their request:\n{log}")
    })
}

/// A server armed and closed, then another that serves: SIGTERM stops the second gracefully (the
/// first left nothing that ends the process). Once it is gone too, SIGTERM has its default
/// effect again.
fn signals_after_the_servers() -> Result<(), String> {
    use std::os::unix::process::ExitStatusExt;
    let mut server = start_env(
        "threading",
        Duration::from_millis(300),
        GRACE,
        None,
        &[(AGAIN_VAR, true)],
    )?;
    let events = clients(&server, 3);
    let mut tally = Tally::new();
    tally.until(&events, "the requests to start", |t| t.started.len() >= 3)?;
    server.signal(libc::SIGTERM)?;
    tally.until(&events, "every client to finish", |t| t.ended.len() >= 3)?;
    check(tally.ended.iter().all(|(_, r)| r.is_ok()), || {
        format!("{:?}\n{}", tally.ended, server.stderr())
    })?;
    server_log_says(&server, "scenario: no server armed")?;
    check(
        server.wait_exit(Duration::from_millis(100)).is_none(),
        || format!("exited before the second signal:\n{}", server.stderr()),
    )?;
    server.signal(libc::SIGTERM)?;
    let status = server
        .wait_exit(WAIT)
        .ok_or("a SIGTERM with no server armed did nothing")?;
    check(status.signal() == Some(libc::SIGTERM), || {
        format!(
            "exit status {status}, expected death by SIGTERM:\n{}",
            server.stderr()
        )
    })
}

fn grace_runs_out() -> Result<(), String> {
    let grace = Duration::from_millis(500);
    let mut server = start("pool", Duration::from_secs(60), grace, None)?;
    let events = clients(&server, 6);
    let mut tally = Tally::new();
    tally.until(&events, "the requests to be in flight", |t| {
        t.sent >= 6 && t.started.len() >= 4
    })?;
    let signalled = Instant::now();
    server.signal(libc::SIGTERM)?;
    let status = server.wait_exit(WAIT);
    let took = signalled.elapsed();
    println!("  grace {grace:?}: SIGTERM to exit: {took:.2?}");
    let log = server.stderr();
    let status = status.ok_or_else(|| format!("still running after the grace period:\n{log}"))?;
    check(status.code() == Some(1), || {
        format!("exit status {status}, expected 1:\n{log}")
    })?;
    check(took >= grace, || {
        format!("exited after {took:?}, before the grace period:\n{log}")
    })?;
    // 4 running, 2 queued for the pool's workers: all cut off.
    check(log.contains("6 request(s) cut off"), || {
        format!("the log does not say 6 requests were cut off:\n{log}")
    })
}

// =============================================================================================
// The scenario server

fn scenario_server(mode: &str) -> ExitCode {
    scenario::init_logger("info");
    match serve(mode) {
        Ok(()) => {
            if !is_worker() {
                eprintln!("scenario: serve_forever and server_close returned Ok");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("scenario {mode}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn millis(var: &str) -> io::Result<Duration> {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .ok_or_else(|| io::Error::other(format!("{var} is not set to a number of milliseconds")))
}

fn serve(mode: &str) -> io::Result<()> {
    let slow = millis(SLOW_VAR)?;
    let grace = millis(GRACE_VAR)?;
    let mode: AnyMode = match mode {
        "single" => Single.into(),
        "threading" => Threading::new().into(),
        "pool" => Pool::new(4).queue(4).into(),
        "process" => Process::new().into(),
        "prefork" => Prefork::new(2).worker_mode(Threading::new()).into(),
        other => return Err(io::Error::other(format!("no scenario named {other}"))),
    };
    let keep_alive = std::env::var_os(KEEP_ALIVE_VAR).is_some();
    let wait_first = std::env::var_os(WAIT_FIRST_VAR).is_some();
    let handler = move |req: &mut StreamRequest| -> io::Result<()> {
        let mut line = String::new();
        if wait_first && !req.wait_for_request()? {
            return Ok(());
        }
        loop {
            line.clear();
            if req.read_line(&mut line)? == 0 {
                return Ok(());
            }
            writeln!(req, "started {}", std::process::id())?;
            thread::sleep(slow);
            write!(req, "done {line}")?;
            if !keep_alive || !req.wait_for_request()? {
                return Ok(());
            }
        }
    };
    let builder = Builder::new()
        .mode(mode)
        .read_timeout(IO_TIMEOUT)
        .write_timeout(IO_TIMEOUT)
        .stop_on_signals()
        .grace_period(grace);
    let again = std::env::var_os(AGAIN_VAR).is_some();
    if again {
        Builder::new()
            .stop_on_signals()
            .bind_tcp("127.0.0.1:0", |_: &mut StreamRequest| Ok(()))?
            .server_close()?;
    }
    match std::env::var_os(UNIX_VAR) {
        Some(path) => run(builder.bind_unix_stream(path, handler)?),
        None => run(builder.bind_tcp("127.0.0.1:0", handler)?),
    }?;
    if again {
        eprintln!("scenario: no server armed");
        thread::sleep(WAIT);
    }
    Ok(())
}

fn run<T, H>(mut server: socketserver::Server<T, H, AnyMode>) -> io::Result<()>
where
    T: socketserver::transport::Transport,
    H: socketserver::RequestHandler<T::Request> + Clone,
{
    if !is_worker() {
        println!("listening on {}", server.local_addr());
        io::stdout().flush()?;
    }
    let handle = server.handle();
    let result = match server.serve_forever() {
        Ok(()) => server.server_close(),
        Err(e) => Err(e),
    };
    // After the stop, which waited for every request (child process, worker) to end.
    let stats = handle.stats();
    eprintln!(
        "stats accepted={} completed={} failed={} rejected={}",
        stats.accepted, stats.completed, stats.failed, stats.rejected
    );
    result
}

// =============================================================================================
// In the driver's own process, without signals: `grace_period` alone, `shutdown`, `stop_now`.

fn in_process_graceful_shutdown() -> Result<(), String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let on_thread = Arc::new(Mutex::new(None));
    let (calls2, on_thread2) = (Arc::clone(&calls), Arc::clone(&on_thread));
    let mut server = Builder::new()
        .mode(Threading::new())
        .grace_period(GRACE)
        .read_timeout(IO_TIMEOUT)
        .on_stop(move |_| {
            calls2.fetch_add(1, Ordering::SeqCst);
            *on_thread2.lock().unwrap() = Some(thread::current().id());
        })
        .bind_tcp("127.0.0.1:0", |req: &mut StreamRequest| {
            let mut line = String::new();
            req.read_line(&mut line)?;
            writeln!(req, "started {}", std::process::id())?;
            thread::sleep(Duration::from_millis(200));
            write!(req, "done {line}")
        })
        .map_err(|e| e.to_string())?;
    let addr = server.local_addr().to_string();
    let handle = server.handle();
    let serving = thread::spawn(move || {
        let id = thread::current().id();
        (server.serve_forever().map(|()| server), id)
    });
    let mut streams = Vec::new();
    for n in 0..3 {
        let mut stream = TcpStream::connect(&addr).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.to_string())?;
        writeln!(stream, "request {n}").map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        streams.push(reader);
    }
    handle.shutdown();
    let (served, serving_id) = serving.join().map_err(|_| "the serving thread panicked")?;
    let server = served.map_err(|e| format!("serve_forever: {e}"))?;
    // serve_forever returned only once every request had finished.
    let stats = handle.stats();
    check(stats.completed == 3 && stats.active == 0, || {
        format!("{stats:?}")
    })?;
    for (n, reader) in streams.iter_mut().enumerate() {
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        check(line == format!("done request {n}\n"), || {
            format!("{line:?}")
        })?;
    }
    check(calls.load(Ordering::SeqCst) == 1, || {
        "on_stop not called once".to_string()
    })?;
    check(*on_thread.lock().unwrap() == Some(serving_id), || {
        "on_stop did not run on the serving thread".to_string()
    })?;
    server.server_close().map_err(|e| e.to_string())
}

fn in_process_stop_now() -> Result<(), String> {
    let mut server = Builder::new()
        .mode(Threading::new())
        .grace_period(Duration::from_secs(60))
        .bind_tcp("127.0.0.1:0", |req: &mut StreamRequest| {
            // Reads until the client leaves: only the client (or the process) ends it.
            io::copy(req, &mut io::sink()).map(|_| ())
        })
        .map_err(|e| e.to_string())?;
    let addr = server.local_addr().to_string();
    let handle = server.handle();
    let serving = thread::spawn(move || (server.serve_forever(), server));
    let idle = TcpStream::connect(&addr).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + WAIT;
    while handle.stats().active < 1 {
        check(Instant::now() < deadline, || {
            "the request never started".to_string()
        })?;
        thread::sleep(Duration::from_millis(5));
    }
    handle.shutdown();
    thread::sleep(Duration::from_millis(100));
    check(!serving.is_finished(), || {
        "serve_forever returned with a request running".to_string()
    })?;
    let stopped = Instant::now();
    handle.stop_now();
    let (served, server) = serving.join().map_err(|_| "the serving thread panicked")?;
    let err = served
        .err()
        .ok_or("serve_forever returned Ok after cutting a request off")?;
    check(err.kind() == io::ErrorKind::Interrupted, || {
        format!("{err}")
    })?;
    check(err.to_string().contains("1 request(s) cut off"), || {
        format!("{err}")
    })?;
    let closed = server.server_close();
    let took = stopped.elapsed();
    println!("  stop_now to serve_forever's and server_close's return: {took:.2?}");
    check(
        closed.is_err_and(|e| e.kind() == io::ErrorKind::TimedOut),
        || "server_close did not report the request it left running".to_string(),
    )?;
    check(took < Duration::from_secs(5), || format!("took {took:?}"))?;
    drop(idle); // ends the handler left running
    Ok(())
}

fn in_process_wait_for_request() -> Result<(), String> {
    let (seen_tx, seen) = mpsc::channel();
    let seen_tx = Arc::new(Mutex::new(seen_tx));
    let mut server = Builder::new()
        .mode(Threading::new())
        .grace_period(GRACE)
        .read_timeout(Duration::from_millis(200))
        .bind_tcp("127.0.0.1:0", move |req: &mut StreamRequest| {
            let report = |what: String| {
                let _ = seen_tx.lock().unwrap().send(what);
            };
            let mut line = String::new();
            req.read_line(&mut line)?;
            if line == "time out\n" {
                // Nothing more comes and nothing stops: the wait fails as a read would.
                report(format!(
                    "{:?}",
                    req.wait_for_request().map_err(|e| e.kind())
                ));
                return Ok(());
            }
            report(format!("read {}", line.trim_end()));
            // The next request is already in the socket when the stop begins.
            let deadline = Instant::now() + WAIT;
            while !req.server().is_shutting_down() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            let more = req.wait_for_request()?;
            report(format!("{more}"));
            line.clear();
            req.read_line(&mut line)?;
            write!(req, "served {line}")
        })
        .map_err(|e| e.to_string())?;
    let addr = server.local_addr().to_string();
    let handle = server.handle();
    let serving =
        thread::spawn(move || server.serve_forever().and_then(|()| server.server_close()));

    let mut timing_out = TcpStream::connect(&addr).map_err(|e| e.to_string())?;
    timing_out
        .write_all(b"time out\n")
        .map_err(|e| e.to_string())?;
    let got = seen
        .recv_timeout(WAIT)
        .map_err(|_| "no report from the handler")?;
    check(got == "Err(WouldBlock)", || {
        format!("an idle wait ended with {got}")
    })?;

    let mut stream = TcpStream::connect(&addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream.write_all(b"first\n").map_err(|e| e.to_string())?;
    let got = seen
        .recv_timeout(WAIT)
        .map_err(|_| "no report from the handler")?;
    check(got == "read first", || got.clone())?;
    // In the socket, not in the request's buffer, when the stop begins.
    stream.write_all(b"second\n").map_err(|e| e.to_string())?;
    thread::sleep(Duration::from_millis(50));
    handle.shutdown();
    let got = seen
        .recv_timeout(WAIT)
        .map_err(|_| "no report from the handler")?;
    check(got == "true", || {
        format!("the request on its way was dropped: {got}")
    })?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(|e| e.to_string())?;
    check(answer == "served second\n", || format!("{answer:?}"))?;
    drop(timing_out);
    serving
        .join()
        .map_err(|_| "the serving thread panicked")?
        .map_err(|e| e.to_string())
}

/// A threading server with a grace period whose handler waits for every request with
/// `wait_for_request` (the first included), answers `served <line>`, and reports what each wait
/// returned.
struct FirstRequestServer {
    addr: String,
    handle: socketserver::ServerHandle,
    /// What each `wait_for_request` returned, in order.
    seen: mpsc::Receiver<String>,
    serving: thread::JoinHandle<io::Result<()>>,
}

fn first_request_server(read_timeout: Duration) -> Result<FirstRequestServer, String> {
    let (seen_tx, seen) = mpsc::channel();
    let seen_tx = Arc::new(Mutex::new(seen_tx));
    let mut server = Builder::new()
        .mode(Threading::new())
        .grace_period(GRACE)
        .read_timeout(read_timeout)
        .bind_tcp("127.0.0.1:0", move |req: &mut StreamRequest| {
            let report = |what: String| {
                let _ = seen_tx.lock().unwrap().send(what);
            };
            loop {
                let more = req.wait_for_request().map_err(|e| e.kind());
                report(format!("{more:?}"));
                if more != Ok(true) {
                    return Ok(());
                }
                let mut line = String::new();
                req.read_line(&mut line)?;
                write!(req, "served {line}")?;
            }
        })
        .map_err(|e| e.to_string())?;
    let addr = server.local_addr().to_string();
    let handle = server.handle();
    let serving =
        thread::spawn(move || server.serve_forever().and_then(|()| server.server_close()));
    Ok(FirstRequestServer {
        addr,
        handle,
        seen,
        serving,
    })
}

/// Connects and waits until the server runs a handler for the connection.
fn connect_silent(addr: &str, handle: &socketserver::ServerHandle) -> Result<TcpStream, String> {
    let before = handle.stats().accepted;
    let stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + WAIT;
    while handle.stats().accepted == before {
        check(Instant::now() < deadline, || {
            "the connection was not accepted".to_string()
        })?;
        thread::sleep(Duration::from_millis(5));
    }
    Ok(stream)
}

/// A connection accepted before the stop that has sent nothing yet is not idle: its first
/// request, sent after the stop began, is served; then, idle, it is closed at once. A silent one
/// waits until the stop turns immediate.
fn in_process_first_request() -> Result<(), String> {
    let FirstRequestServer {
        addr,
        handle,
        seen,
        serving,
    } = first_request_server(IO_TIMEOUT)?;
    let mut late = connect_silent(&addr, &handle)?;
    let silent = connect_silent(&addr, &handle)?;
    handle.shutdown();
    thread::sleep(Duration::from_millis(200));
    late.write_all(b"late\n").map_err(|e| e.to_string())?;
    let got = seen
        .recv_timeout(WAIT)
        .map_err(|_| "no report from the handler")?;
    check(got == "Ok(true)", || {
        format!("the first request sent after the stop began was not awaited: {got}")
    })?;
    let mut reader = BufReader::new(&late);
    let mut answer = String::new();
    reader.read_line(&mut answer).map_err(|e| e.to_string())?;
    check(answer == "served late\n", || format!("{answer:?}"))?;
    // Idle now: the next wait ends at once, and the client sees the connection close.
    let got = seen
        .recv_timeout(WAIT)
        .map_err(|_| "no report from the handler")?;
    check(got == "Ok(false)", || {
        format!("the idle wait ended with {got}")
    })?;
    answer.clear();
    check(
        reader.read_line(&mut answer).map_err(|e| e.to_string())? == 0,
        || format!("expected the end of the connection, got {answer:?}"),
    )?;
    // The silent one is still waiting for its first request, until the stop turns immediate.
    check(
        seen.recv_timeout(Duration::from_millis(300)).is_err(),
        || "the silent connection's wait ended before the stop turned immediate".to_string(),
    )?;
    let stopped = Instant::now();
    handle.stop_now();
    let got = seen
        .recv_timeout(WAIT)
        .map_err(|_| "no report from the handler")?;
    check(got == "Ok(false)", || {
        format!("the silent connection's wait ended with {got}")
    })?;
    let mut rest = Vec::new();
    (&silent)
        .read_to_end(&mut rest)
        .map_err(|e| e.to_string())?;
    check(stopped.elapsed() < Duration::from_secs(5), || {
        format!("stop_now took {:?} to end the wait", stopped.elapsed())
    })?;
    let _ = serving.join().map_err(|_| "the serving thread panicked")?;
    Ok(())
}

/// The wait for a first request during a stop still honours the read timeout.
fn in_process_first_request_timeout() -> Result<(), String> {
    let FirstRequestServer {
        addr,
        handle,
        seen,
        serving,
    } = first_request_server(Duration::from_millis(300))?;
    let _silent = connect_silent(&addr, &handle)?;
    handle.shutdown();
    let got = seen
        .recv_timeout(WAIT)
        .map_err(|_| "no report from the handler")?;
    check(got == "Err(WouldBlock)", || {
        format!("the wait for a first request at the stop ended with {got}")
    })?;
    serving
        .join()
        .map_err(|_| "the serving thread panicked")?
        .map_err(|e| e.to_string())
}
