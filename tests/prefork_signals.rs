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
//! `stats accepted=.. completed=.. failed=..`. The variable's value says how it builds its server
//! (see [`scenario_server`]): `systemd` takes the socket from `LISTEN_FDS` when set (an upgrade)
//! with `systemd_tcp`, as a program written for socket activation does; `bind` always binds
//! `127.0.0.1:0`, `unix:<path>` always binds that Unix socket path, and `udp-after-upgrade`
//! builds a UDP server once upgraded (a new version of the program that changed the server's
//! kind). Without the variable it is the *driver*.
//!
//! Every socket has a timeout, every wait a deadline, and every process a test starts is killed
//! when the test ends.

mod scenario;

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use scenario::procs::{live_children, parent_and_state, send_signal};
use scenario::{check, eventually, stat, ScenarioServer, TestFn};
use socketserver::{Builder, DatagramRequest, Prefork, Threading};

const SCENARIO_VAR: &str = "PREFORK_SIGNALS_SCENARIO";
/// `SCENARIO_VAR`'s value for the scenario server's usual build (see [`scenario_server`]): 2
/// workers, each serving one connection at a time, on `systemd_tcp` when `LISTEN_FDS` is set.
const PLAIN: &str = "systemd";
/// `SCENARIO_VAR`'s value for 2 threading workers recycled after every 20 requests.
const RECYCLING: &str = "recycling";
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const WAIT: Duration = Duration::from_secs(10);
/// Requests each client loop makes across a reload or an upgrade.
const LOOP_REQUESTS: usize = 300;

fn main() -> ExitCode {
    if let Some(variant) = std::env::var_os(SCENARIO_VAR) {
        return match scenario_server(&variant.to_string_lossy()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("scenario server: {e}");
                ExitCode::FAILURE
            }
        };
    }
    scenario::run_tests(TESTS)
}

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
    (
        "prefork_sigusr2_new_program_serves_the_inherited_socket_though_it_asks_for_port_0",
        sigusr2_without_systemd_tcp,
    ),
    (
        "prefork_sigusr2_twice_20ms_apart_starts_one_new_program_on_the_same_socket",
        sigusr2_twice,
    ),
    (
        "prefork_sigusr2_to_a_program_that_now_builds_a_udp_server_fails_and_the_old_one_serves",
        sigusr2_mismatch,
    ),
    (
        "prefork_sigusr2_on_a_unix_socket_keeps_its_path_and_file",
        sigusr2_unix,
    ),
    ("prefork_sighup_storm_loses_no_request", sighup_storm),
    (
        "prefork_recycling_threading_workers_lose_no_request",
        recycling,
    ),
];

/// The scenario server of the tests that take their socket from `LISTEN_FDS` on an upgrade.
fn start() -> Result<ScenarioServer, String> {
    start_as(PLAIN)
}

/// The scenario server building its server as `variant` says (see [`scenario_server`]).
fn start_as(variant: &str) -> Result<ScenarioServer, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut command = Command::new(exe);
    command.env(SCENARIO_VAR, variant).stdin(Stdio::piped());
    ScenarioServer::start(variant, command)
}

/// The `listening on` lines printed so far (the new program of an upgrade prints one too).
fn announcements(server: &ScenarioServer) -> Vec<String> {
    server
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("listening on "))
        .collect()
}

/// Waits for the scenario server (not the new program of an upgrade), which the test stopped by
/// a signal, to exit 0.
fn exited_cleanly(server: &mut ScenarioServer, what: &str) -> Result<(), String> {
    let status = server
        .wait_exit(WAIT)
        .ok_or_else(|| format!("{what} did not exit"))?;
    check(status.success(), || format!("{what} exited with {status}"))
}

/// Stops the new program of an upgrade (not the driver's child) by SIGTERM, or SIGKILL if it is
/// still running after `WAIT`.
fn stop_by_signal(pid: u32) {
    let _ = send_signal(pid, libc::SIGTERM);
    if !eventually(WAIT, || parent_and_state(pid).is_none_or(|(_, s)| s == 'Z')) {
        let _ = send_signal(pid, libc::SIGKILL);
    }
}

/// The TCP ports on which the processes `pids` hold a listening socket, from `/proc/<pid>/fd`
/// and `/proc/net/tcp{,6}`.
fn listening_ports(pids: &HashSet<u32>) -> HashSet<u16> {
    let mut inodes = HashSet::new();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let link = link.to_string_lossy().into_owned();
            if let Some(inode) = link
                .strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inode| inode.parse::<u64>().ok())
            {
                inodes.insert(inode);
            }
        }
    }
    let mut ports = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            // "sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ..."
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(&"0A"), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let port = local
                .rsplit_once(':')
                .and_then(|(_, port)| u16::from_str_radix(port, 16).ok());
            if let (Some(port), Ok(inode)) = (port, inode.parse::<u64>()) {
                if inodes.contains(&inode) {
                    ports.insert(port);
                }
            }
        }
    }
    ports
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
    exchange(stream, n)
}

/// [`request`] to a Unix stream server at `path`.
fn request_unix(path: &Path, n: usize) -> Result<u32, String> {
    let stream = UnixStream::connect(path).map_err(|e| format!("request {n}: connect: {e}"))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    exchange(stream, n)
}

/// Sends request `n` on `stream` and reads the answer: the pid of the worker that answered.
fn exchange(stream: impl Read + Write, n: usize) -> Result<u32, String> {
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
    let mut server = start()?;
    wait_for_workers(server.pid(), 2)?;
    for n in 0..12 {
        request(server.inet(), n)?;
    }
    server.stop()?;
    let (accepted, completed) = (
        stat(&server.stdout(), "accepted")?,
        stat(&server.stdout(), "completed")?,
    );
    check(accepted == 12 && completed == 12, || {
        format!("the parent counted accepted={accepted} completed={completed}, expected 12 and 12")
    })
}

fn ttin_ttou() -> Result<(), String> {
    let mut server = start()?;
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
        let served_by = request(server.inet(), n)?;
        check(last.contains(&served_by), || {
            format!("served by {served_by}, the one worker is {last:?}")
        })?;
    }
    server.stop().map(|_| ())
}

fn sighup_reload() -> Result<(), String> {
    let mut server = start()?;
    let pid = server.pid();
    let old = wait_for_workers(pid, 2)?;
    let pids = client_loop(server.inet(), || server.signal(libc::SIGHUP))?;
    let mut now = HashSet::new();
    let replaced = eventually(WAIT, || {
        now = live_children(pid);
        now.len() == 2 && now.is_disjoint(&old)
    });
    check(replaced, || {
        format!("after SIGHUP the workers are {now:?}; before, {old:?}")
    })?;
    let last = request(server.inet(), LOOP_REQUESTS)?;
    check(now.contains(&last), || {
        format!("served by {last}, not by a fresh worker {now:?}")
    })?;
    let served_by_new = pids.iter().filter(|p| !old.contains(p)).count();
    println!("    {served_by_new} of {LOOP_REQUESTS} requests served by fresh workers");
    check(served_by_new > 0, || {
        "no request reached a fresh worker".to_string()
    })?;
    server.stop().map(|_| ())
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
    mut server: ScenarioServer,
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
    let (accepted, completed) = (
        stat(&server.stdout(), "accepted")?,
        stat(&server.stdout(), "completed")?,
    );
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
    let server = start()?;
    wait_for_workers(server.pid(), 2)?;
    let storming = Arc::new(AtomicBool::new(true));
    let load = {
        let (addr, storming) = (server.inet(), Arc::clone(&storming));
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
    let server = start_as(RECYCLING)?;
    wait_for_workers(server.pid(), 2)?;
    let seen = fresh_connections(server.inet(), 250, &Arc::new(AtomicBool::new(true)))?;
    none_lost(server, "workers recycled every 20 requests", seen)
}

fn sigusr2_upgrade() -> Result<(), String> {
    let mut server = start()?;
    let old_parent = server.pid();
    let old_workers = wait_for_workers(old_parent, 2)?;
    let mut new_parent = None;
    let outcome = (|| {
        let pids = client_loop(server.inet(), || server.signal(libc::SIGUSR2))?;
        // The old program hands over and exits 0.
        exited_cleanly(&mut server, "the old program")?;
        // The new program says where it listens: on the very same address.
        check(eventually(WAIT, || server.lines().len() >= 2), || {
            "the new program printed nothing".to_string()
        })?;
        let second = server.lines()[1].clone();
        check(second == format!("listening on {}", server.inet()), || {
            format!("the new program printed {second:?}")
        })?;
        let served_by = request(server.inet(), LOOP_REQUESTS)?;
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
        stop_by_signal(parent);
    }
    outcome
}

/// Requests `0..10` with `send`, each on a connection of its own: the pids that answered, or
/// how many were served before the first failure (which stops the count: a socket nobody serves
/// fails each request only after the read timeout).
fn ten_requests(send: impl Fn(usize) -> Result<u32, String>) -> Result<Vec<u32>, String> {
    let mut served = Vec::new();
    for n in 0..10 {
        match send(n) {
            Ok(pid) => served.push(pid),
            Err(why) => return Err(format!("{} of 10 served, then {why}", served.len())),
        }
    }
    Ok(served)
}

/// The one process that started all of `workers` (the new program of an upgrade), checking it
/// is not `old_parent` and none of them is one of `old_workers`.
fn new_program(
    workers: &[u32],
    old_parent: u32,
    old_workers: &HashSet<u32>,
) -> Result<u32, String> {
    let parents: HashSet<u32> = workers
        .iter()
        .filter_map(|&pid| parent_and_state(pid).map(|(ppid, _)| ppid))
        .collect();
    match parents.iter().next() {
        Some(&parent)
            if parents.len() == 1
                && parent != old_parent
                && workers.iter().all(|pid| !old_workers.contains(pid)) =>
        {
            Ok(parent)
        }
        _ => Err(format!(
            "served by {workers:?} (parents {parents:?}), not by the workers of one new program \
             (the old parent was {old_parent}, its workers {old_workers:?})"
        )),
    }
}

/// SIGUSR2 `signals` times, 20 ms apart, to a scenario server that binds `127.0.0.1:0` whatever
/// its environment says (it never calls `systemd_tcp`): the new program must serve the socket it
/// inherited, on the original address, and listen nowhere else.
fn upgrade_in_place(signals: usize) -> Result<(), String> {
    let mut server = start_as("bind")?;
    let old_parent = server.pid();
    let old_workers = wait_for_workers(old_parent, 2)?;
    let mut new_parent = None;
    let outcome = (|| {
        for n in 0..signals {
            if n > 0 {
                thread::sleep(Duration::from_millis(20));
            }
            server.signal(libc::SIGUSR2)?;
        }
        exited_cleanly(&mut server, "the old program")?;
        check(
            eventually(WAIT, || announcements(&server).len() >= 2),
            || "the new program printed nothing".to_string(),
        )?;
        let addr = server.inet();
        let served = ten_requests(|n| request(addr, n))
            .map_err(|why| format!("the original address {addr} after the upgrade: {why}"))?;
        let parent = new_program(&served, old_parent, &old_workers)?;
        new_parent = Some(parent);
        let mut processes = live_children(parent);
        processes.insert(parent);
        let ports = listening_ports(&processes);
        check(ports == HashSet::from([addr.port()]), || {
            format!(
                "the new program {parent} and its workers listen on ports {ports:?}, expected \
                 only {}",
                addr.port()
            )
        })?;
        // One new program, started once: a second one would print a line of its own.
        thread::sleep(Duration::from_millis(300));
        let announced = announcements(&server);
        check(announced == vec![format!("listening on {addr}"); 2], || {
            format!("expected the old and the new program on {addr}, got {announced:?}")
        })
    })();
    if let Some(parent) = new_parent {
        stop_by_signal(parent);
    }
    outcome
}

fn sigusr2_without_systemd_tcp() -> Result<(), String> {
    upgrade_in_place(1)
}

fn sigusr2_twice() -> Result<(), String> {
    upgrade_in_place(2)
}

/// The new program builds a UDP Prefork server where the old one served TCP: it must fail (not
/// bind a UDP port and report ready), and the old program must go on serving.
fn sigusr2_mismatch() -> Result<(), String> {
    let mut server = start_as("udp-after-upgrade")?;
    let old_parent = server.pid();
    let old_workers = wait_for_workers(old_parent, 2)?;
    server.signal(libc::SIGUSR2)?;
    let addr = server.inet();
    let refusal = format!(
        "to serve the socket it inherited, a listening TCP socket on {addr}, but its Prefork \
         server asks for a UDP socket on 127.0.0.1:0"
    );
    let settled = eventually(WAIT, || {
        server.stderr().contains("before it served") || server.has_exited()
    });
    check(settled && !server.has_exited(), || {
        format!(
            "the old program must give the upgrade up and go on: exited {}; announced {:?}",
            server.has_exited(),
            announcements(&server)
        )
    })?;
    let log = server.stderr();
    check(log.contains(&refusal), || {
        format!("the new program's error does not say {refusal:?}:\n{log}")
    })?;
    check(announcements(&server).len() == 1, || {
        format!("the new program announced: {:?}", announcements(&server))
    })?;
    check(wait_for_workers(old_parent, 2)? == old_workers, || {
        "the old workers were replaced".to_string()
    })?;
    let served = ten_requests(|n| request(addr, n))
        .map_err(|why| format!("the old program after the failed upgrade: {why}"))?;
    check(served.iter().all(|pid| old_workers.contains(pid)), || {
        format!("served by {served:?}, not by the old workers {old_workers:?}")
    })?;
    server.stop().map(|_| ())
}

/// The (device, inode) of the file at `path`.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|meta| (meta.dev(), meta.ino()))
}

/// An upgrade of a Unix stream server: the new program serves the very socket file (neither
/// removed nor replaced), and the old one leaves it in place when it exits.
fn sigusr2_unix() -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("prefork-signals-unix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path: PathBuf = dir.join("s.sock");
    let outcome = (|| {
        let mut server = start_as(&format!("unix:{}", path.display()))?;
        let old_parent = server.pid();
        let old_workers = wait_for_workers(old_parent, 2)?;
        let before = file_identity(&path).ok_or("no socket file")?;
        server.signal(libc::SIGUSR2)?;
        exited_cleanly(&mut server, "the old program")?;
        check(file_identity(&path) == Some(before), || {
            format!(
                "the socket file was {} by the upgrade",
                if path.exists() { "replaced" } else { "removed" }
            )
        })?;
        let served = ten_requests(|n| request_unix(&path, n))
            .map_err(|why| format!("{} after the upgrade: {why}", path.display()))?;
        let parent = new_program(&served, old_parent, &old_workers)?;
        let announced = announcements(&server);
        let expected = format!("listening on {}", path.display());
        let result = check(announced == [expected.clone(), expected], || {
            format!("announced {announced:?}")
        });
        stop_by_signal(parent);
        result
    })();
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

// ---------------------------------------------------------------------------------------------
// The scenario server

/// The scenario server, built as `variant` says: `systemd` (`systemd_tcp` when `LISTEN_FDS` is
/// set, else `bind_tcp`), `recycling` (the same, with 2 threading workers recycled after every 20
/// requests), `bind` (`bind_tcp("127.0.0.1:0")` always), `unix:<path>`
/// (`bind_unix_stream(path)` always) or `udp-after-upgrade` (`bind_tcp`, but `bind_udp` when
/// started by an upgrade).
fn scenario_server(variant: &str) -> io::Result<()> {
    scenario::init_logger("warn");
    // Read before the server is built, which takes the variables an upgrade set.
    let upgraded = std::env::var_os("LISTEN_FDS").is_some();
    let mode = Prefork::new(2).drain_timeout(Duration::from_secs(2));
    let mode = match variant {
        RECYCLING => mode
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
    let handler = scenario::pid_upper_requests;
    if let Some(path) = variant.strip_prefix("unix:") {
        return scenario::serve_and_report(builder.bind_unix_stream(path, handler)?);
    }
    match (variant, upgraded) {
        (PLAIN | RECYCLING, true) => scenario::serve_and_report(builder.systemd_tcp(0, handler)?),
        ("udp-after-upgrade", true) => {
            let server = builder.bind_udp("127.0.0.1:0", |_: &mut DatagramRequest| Ok(()))?;
            scenario::serve_and_report(server)
        }
        _ => scenario::serve_and_report(builder.bind_tcp("127.0.0.1:0", handler)?),
    }
}
