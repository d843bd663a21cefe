//! A [`Prefork`] parent run like gunicorn: its `stats()` sums its workers' counters, SIGTTIN /
//! SIGTTOU add / remove a worker, SIGHUP reloads the workers one by one, SIGUSR2 starts a new
//! copy of the program on the same socket and hands over to it, a storm of SIGHUPs and workers
//! recycled by `max_requests` lose no request.
//!
//! Signals go to a whole process, and workers re-execute the program that built the server, so
//! this binary is its own server program (`harness = false`, as `tests/process_modes.rs`).
//! Started with `PREFORK_SIGNALS_SCENARIO` set it is the *scenario server*: a Prefork server of
//! 2 workers with `stop_on_signals` (with `recycling`: threading workers recycled after every 20
//! requests), answering each line of a connection with `<pid> <LINE>`; it
//! prints `listening on <addr>`, serves until its stdin closes (or a stop signal), then prints
//! `stats accepted=.. completed=.. failed=..`. Started with `LISTEN_FDS` (an upgrade), it serves
//! the passed socket instead of binding. Without the variable it is the *driver*.
//!
//! Every socket has a timeout, every wait a deadline, and every process a test starts is killed
//! when the test ends.

mod scenario;

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use socketserver::{Builder, Prefork, Threading};

const SCENARIO_VAR: &str = "PREFORK_SIGNALS_SCENARIO";
/// The scenario server's usual mode: 2 workers, each serving one connection at a time.
const PLAIN: &str = "plain";
/// `SCENARIO_VAR`'s value for 2 threading workers recycled after every 20 requests.
const RECYCLING: &str = "recycling";
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const WAIT: Duration = Duration::from_secs(10);
/// Requests each client loop makes across a reload or an upgrade.
const LOOP_REQUESTS: usize = 300;

fn main() -> ExitCode {
    if std::env::var_os(SCENARIO_VAR).is_some() {
        return match scenario_server() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("scenario server: {e}");
                ExitCode::FAILURE
            }
        };
    }
    scenario::run_tests(TESTS, || {}, || {})
}

use scenario::TestFn;

const TESTS: &[(&str, TestFn)] = &[
    (
        "prefork_parent_stats_sum_the_workers_counters",
        parent_stats,
    ),
    ("prefork_sigttin_sigttou_change_the_worker_count", ttin_ttou),
    (
        "prefork_sighup_reloads_every_worker_without_a_failed_request",
        sighup_reload,
    ),
    (
        "prefork_sigusr2_upgrades_without_a_failed_request",
        sigusr2_upgrade,
    ),
    ("prefork_sighup_storm_loses_no_request", sighup_storm),
    (
        "prefork_recycling_threading_workers_lose_no_request",
        recycling,
    ),
];

fn check(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(why())
    }
}

/// The scenario server, a child of the driver; killed when dropped. Its stderr (the library's
/// log, with `RUST_LOG`) is inherited.
struct Scenario {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    addr: SocketAddr,
}

impl Scenario {
    fn start() -> Result<Scenario, String> {
        Scenario::start_as(PLAIN)
    }

    /// The scenario server in mode `kind` ([`PLAIN`] or [`RECYCLING`]).
    fn start_as(kind: &str) -> Result<Scenario, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .env(SCENARIO_VAR, kind)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the scenario server: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        read_lines(stdout, Arc::clone(&lines));
        let mut scenario = Scenario {
            child: Some(child),
            stdin,
            lines,
            addr: "127.0.0.1:1".parse().map_err(|_| "addr")?,
        };
        check(eventually(WAIT, || scenario.line_count() >= 1), || {
            "no line from the scenario server".to_string()
        })?;
        let first = scenario.line(0);
        scenario.addr = first
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("the scenario server printed {first:?} first"))?;
        Ok(scenario)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn line_count(&self) -> usize {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn line(&self, n: usize) -> String {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)[n].clone()
    }

    fn signal(&self, signal: i32) -> Result<(), String> {
        send_signal(self.pid(), signal)
    }

    /// Closes stdin (the scenario's cue to stop) and waits for a clean exit.
    fn stop(&mut self) -> Result<(), String> {
        drop(self.stdin.take());
        let mut child = self.child.take().ok_or("already stopped")?;
        let status = wait_with_deadline(&mut child, WAIT).ok_or("the server did not stop")?;
        check(status.success(), || {
            format!("the server exited with {status}")
        })
    }

    /// The number in the last `stats` line's `name=` field.
    fn stat(&self, name: &str) -> Result<u64, String> {
        let lines = self
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let line = lines
            .iter()
            .rev()
            .find(|l| l.starts_with("stats "))
            .ok_or_else(|| format!("no stats line in {lines:?}"))?;
        line.split_whitespace()
            .find_map(|kv| {
                kv.strip_prefix(&format!("{name}="))
                    .and_then(|v| v.parse().ok())
            })
            .ok_or_else(|| format!("no {name} in {line:?}"))
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read_lines(stdout: ChildStdout, lines: Arc<Mutex<Vec<String>>>) {
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            lines
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(line);
        }
    });
}

fn send_signal(pid: u32, signal: i32) -> Result<(), String> {
    // SAFETY: kill(2) on a pid this test started; no memory is involved.
    match unsafe { libc::kill(pid as i32, signal) } {
        0 => Ok(()),
        _ => Err(format!("kill {pid}: {}", io::Error::last_os_error())),
    }
}

fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// `pid`'s parent and state, from `/proc/<pid>/stat`.
fn parent_and_state(pid: u32) -> Option<(u32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((fields.next()?.parse().ok()?, state))
}

/// The running (not zombie) children of `parent`.
fn live_children(parent: u32) -> HashSet<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashSet::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            parent_and_state(pid).is_some_and(|(ppid, state)| ppid == parent && state != 'Z')
        })
        .collect()
}

fn wait_for_workers(parent: u32, count: usize) -> Result<HashSet<u32>, String> {
    let mut workers = HashSet::new();
    let settled = eventually(WAIT, || {
        workers = live_children(parent);
        workers.len() == count
    });
    check(settled, || {
        format!("expected {count} workers of {parent}, found {workers:?}")
    })?;
    Ok(workers)
}

/// One request on a connection of its own: the pid of the worker that answered.
fn request(addr: SocketAddr, n: usize) -> Result<u32, String> {
    request_after(addr, n, Duration::ZERO)
}

/// [`request`], sent `pause` after connecting.
fn request_after(addr: SocketAddr, n: usize, pause: Duration) -> Result<u32, String> {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .map_err(|e| format!("request {n}: connect: {e}"))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    thread::sleep(pause);
    let mut reader = BufReader::new(stream);
    reader
        .get_mut()
        .write_all(format!("r{n}\n").as_bytes())
        .map_err(|e| format!("request {n}: send: {e}"))?;
    let mut reply = String::new();
    reader
        .read_line(&mut reply)
        .map_err(|e| format!("request {n}: no reply: {e}"))?;
    let (pid, text) = reply
        .trim_end()
        .split_once(' ')
        .ok_or_else(|| format!("request {n}: reply {reply:?}"))?;
    check(text == format!("R{n}"), || {
        format!("request {n}: reply {reply:?}")
    })?;
    pid.parse()
        .map_err(|e| format!("request {n}: pid in {reply:?}: {e}"))
}

/// Runs `LOOP_REQUESTS` requests one after another, calling `midway` after the 50th; returns
/// the answering pids in order, or the first failure.
fn client_loop(
    addr: SocketAddr,
    midway: impl FnOnce() -> Result<(), String>,
) -> Result<Vec<u32>, String> {
    let mut pids = Vec::new();
    let mut midway = Some(midway);
    for n in 0..LOOP_REQUESTS {
        pids.push(request(addr, n)?);
        if n == 50 {
            if let Some(midway) = midway.take() {
                midway()?;
            }
        }
        // Spread the loop over the reload or upgrade (about 1.5 s in all).
        thread::sleep(Duration::from_millis(5));
    }
    Ok(pids)
}

// ---------------------------------------------------------------------------------------------
// The tests

/// 12 requests served by the workers: the parent, which serves none itself, counts all 12.
fn parent_stats() -> Result<(), String> {
    let mut server = Scenario::start()?;
    wait_for_workers(server.pid(), 2)?;
    for n in 0..12 {
        request(server.addr, n)?;
    }
    server.stop()?;
    let (accepted, completed) = (server.stat("accepted")?, server.stat("completed")?);
    check(accepted == 12 && completed == 12, || {
        format!("the parent counted accepted={accepted} completed={completed}, expected 12 and 12")
    })
}

fn ttin_ttou() -> Result<(), String> {
    let mut server = Scenario::start()?;
    let pid = server.pid();
    wait_for_workers(pid, 2)?;
    server.signal(libc::SIGTTIN)?;
    wait_for_workers(pid, 3)?;
    server.signal(libc::SIGTTOU)?;
    wait_for_workers(pid, 2)?;
    server.signal(libc::SIGTTOU)?;
    let last = wait_for_workers(pid, 1)?;
    // A SIGTTOU with one worker left keeps it.
    server.signal(libc::SIGTTOU)?;
    thread::sleep(Duration::from_millis(200));
    check(live_children(pid) == last, || {
        format!("the last worker must stay: {:?}", live_children(pid))
    })?;
    for n in 0..5 {
        let served_by = request(server.addr, n)?;
        check(last.contains(&served_by), || {
            format!("served by {served_by}, the one worker is {last:?}")
        })?;
    }
    server.stop()
}

fn sighup_reload() -> Result<(), String> {
    let mut server = Scenario::start()?;
    let pid = server.pid();
    let old = wait_for_workers(pid, 2)?;
    let pids = client_loop(server.addr, || server.signal(libc::SIGHUP))?;
    let mut now = HashSet::new();
    let replaced = eventually(WAIT, || {
        now = live_children(pid);
        now.len() == 2 && now.is_disjoint(&old)
    });
    check(replaced, || {
        format!("after SIGHUP the workers are {now:?}; before, {old:?}")
    })?;
    let last = request(server.addr, LOOP_REQUESTS)?;
    check(now.contains(&last), || {
        format!("served by {last}, not by a fresh worker {now:?}")
    })?;
    let served_by_new = pids.iter().filter(|p| !old.contains(p)).count();
    println!("    {served_by_new} of {LOOP_REQUESTS} requests served by fresh workers");
    check(served_by_new > 0, || {
        "no request reached a fresh worker".to_string()
    })?;
    server.stop()
}

/// Requests from 4 clients, each on a connection of its own sent a millisecond after
/// connecting (so that a worker may accept it before the line arrives, and be told to stop in
/// between), until `go_on` turns false or each client has made `per_client`: how many were
/// answered, and what went wrong with the others.
fn fresh_connections(
    addr: SocketAddr,
    per_client: usize,
    go_on: &Arc<AtomicBool>,
) -> Result<(u64, Vec<String>), String> {
    const CLIENTS: usize = 4;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let go_on = Arc::clone(go_on);
            thread::spawn(move || {
                let (mut answered, mut lost) = (0u64, Vec::new());
                let deadline = Instant::now() + WAIT * 3;
                for n in (c * per_client..).take(per_client) {
                    if !go_on.load(Ordering::SeqCst) || Instant::now() >= deadline {
                        break;
                    }
                    match request_after(addr, n, Duration::from_millis(1)) {
                        Ok(_) => answered += 1,
                        Err(e) => lost.push(e),
                    }
                }
                (answered, lost)
            })
        })
        .collect();
    let (mut answered, mut lost) = (0, Vec::new());
    for client in clients {
        let (a, l) = client.join().map_err(|_| "a client thread panicked")?;
        answered += a;
        lost.extend(l);
    }
    Ok((answered, lost))
}

/// No request of [`fresh_connections`] lost; then, once the server stopped, its counts of
/// accepted and completed requests are the answers the clients saw.
fn none_lost(
    mut server: Scenario,
    what: &str,
    (answered, lost): (u64, Vec<String>),
) -> Result<(), String> {
    let total = answered + lost.len() as u64;
    println!("    {what}: {total} requests, {} lost", lost.len());
    check(lost.is_empty(), || {
        format!(
            "{what}: {} of {total} requests lost, the first: {:?}",
            lost.len(),
            &lost[..lost.len().min(3)]
        )
    })?;
    server.stop()?;
    let (accepted, completed) = (server.stat("accepted")?, server.stat("completed")?);
    check(accepted == answered && completed == answered, || {
        format!(
            "the server counted accepted={accepted} completed={completed}; the clients saw \
             {answered} answers"
        )
    })
}

/// 20 SIGHUPs 150 ms apart under [`fresh_connections`]: every request is answered.
fn sighup_storm() -> Result<(), String> {
    const HUPS: usize = 20;
    let server = Scenario::start()?;
    wait_for_workers(server.pid(), 2)?;
    let storming = Arc::new(AtomicBool::new(true));
    let load = {
        let (addr, storming) = (server.addr, Arc::clone(&storming));
        // A bound on each client's loop far above what the storm lasts for.
        thread::spawn(move || fresh_connections(addr, 20_000, &storming))
    };
    let mut signalled = Ok(());
    for _ in 0..HUPS {
        thread::sleep(Duration::from_millis(150));
        signalled = signalled.and(server.signal(libc::SIGHUP));
    }
    // Past the last reload: its old workers retire while the clients go on.
    thread::sleep(Duration::from_millis(500));
    storming.store(false, Ordering::SeqCst);
    let seen = load.join().map_err(|_| "the load thread panicked")??;
    signalled?;
    none_lost(server, &format!("{HUPS} SIGHUPs"), seen)
}

/// Threading workers recycled after every 20 requests, under [`fresh_connections`] (1,000
/// requests, 50 recycles): every request is answered, the last one a worker takes before it
/// stops included.
fn recycling() -> Result<(), String> {
    let server = Scenario::start_as(RECYCLING)?;
    wait_for_workers(server.pid(), 2)?;
    let seen = fresh_connections(server.addr, 250, &Arc::new(AtomicBool::new(true)))?;
    none_lost(server, "workers recycled every 20 requests", seen)
}

fn sigusr2_upgrade() -> Result<(), String> {
    let mut server = Scenario::start()?;
    let old_parent = server.pid();
    let old_workers = wait_for_workers(old_parent, 2)?;
    let mut new_parent = None;
    let outcome = (|| {
        let pids = client_loop(server.addr, || server.signal(libc::SIGUSR2))?;
        // The old program hands over and exits 0.
        let mut child = server.child.take().ok_or("no child")?;
        let status = wait_with_deadline(&mut child, WAIT).ok_or("the old program did not exit")?;
        check(status.success(), || {
            format!("the old program exited with {status}")
        })?;
        // The new program says where it listens: on the very same address.
        check(eventually(WAIT, || server.line_count() >= 2), || {
            "the new program printed nothing".to_string()
        })?;
        let second = server.line(1);
        check(second == format!("listening on {}", server.addr), || {
            format!("the new program printed {second:?}")
        })?;
        let served_by = request(server.addr, LOOP_REQUESTS)?;
        let parent = parent_and_state(served_by).map(|(ppid, _)| ppid);
        new_parent = parent;
        check(
            !old_workers.contains(&served_by) && parent.is_some_and(|p| p != old_parent),
            || format!("served by {served_by} (parent {parent:?}), not by the new program"),
        )?;
        let by_new = pids.iter().filter(|p| !old_workers.contains(p)).count();
        println!("    {by_new} of {LOOP_REQUESTS} requests in the loop served by the new program");
        Ok(())
    })();
    // The new program is not the driver's child: stop it by signal, bounded.
    if let Some(parent) = new_parent {
        let _ = send_signal(parent, libc::SIGTERM);
        if !eventually(WAIT, || {
            parent_and_state(parent).is_none_or(|(_, s)| s == 'Z')
        }) {
            let _ = send_signal(parent, libc::SIGKILL);
        }
    }
    outcome
}

// ---------------------------------------------------------------------------------------------
// The scenario server

fn scenario_server() -> io::Result<()> {
    let mode = Prefork::new(2).drain_timeout(Duration::from_secs(2));
    let mode = match std::env::var(SCENARIO_VAR).as_deref() {
        Ok(RECYCLING) => mode
            .worker_mode(Threading::new())
            .max_requests(20)
            .max_requests_jitter(0),
        _ => mode,
    };
    let builder = Builder::new()
        .read_timeout(IO_TIMEOUT)
        .write_timeout(IO_TIMEOUT)
        .stop_on_signals()
        .grace_period(Duration::from_secs(5))
        .mode(mode);
    let server = match std::env::var_os("LISTEN_FDS") {
        Some(_) => builder.systemd_tcp(0, scenario::pid_upper_requests)?,
        None => builder.bind_tcp("127.0.0.1:0", scenario::pid_upper_requests)?,
    };
    scenario::serve_and_report(server)
}
