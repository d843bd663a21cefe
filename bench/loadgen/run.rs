//! Running the clients, and what a run reports.

use std::fs;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::exchange::{fill, Datagrams, Stream, UdpOutcome, Workload};
use crate::latency::{micros, Latencies};
use crate::options::Options;
use crate::slow::{SlowStats, Slowloris};

/// Runs longer than this show progress on stderr.
const QUIET_FOR: Duration = Duration::from_secs(2);
/// Samples kept per client: bounds memory on long runs (later requests still count, unsampled).
const MAX_SAMPLES: usize = 2_000_000;

/// What one client did.
#[derive(Default)]
struct ClientResult {
    /// Connections this thread drove.
    clients: usize,
    ok: u64,
    lost: u64,
    error: Option<String>,
    samples: Vec<u64>,
}

/// What the whole run did.
pub struct Report {
    options: Options,
    ok: u64,
    lost: u64,
    failed_clients: usize,
    first_error: Option<String>,
    elapsed: Duration,
    latencies: Latencies,
    held: Option<Held>,
    slow: Option<SlowStats>,
}

pub fn run(o: &Options) -> io::Result<Report> {
    let (idle, held) = open_idle(o)?;
    // After the idle ones, before the clients: a server that gives each a worker is busy with
    // them by the time the well-behaved clients connect.
    let slow = if o.slowloris > 0 {
        Some(Slowloris::start(o)?)
    } else {
        None
    };
    let done = Arc::new(AtomicU64::new(0));
    // Every client connects first; the clock starts when all are ready.
    // A thread per connection, or with `--per-thread K` a thread per K connections.
    let threads = o.conns.div_ceil(o.per_thread);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let mut clients = Vec::with_capacity(threads);
    for t in 0..threads {
        let (options, done, ready) = (o.clone(), Arc::clone(&done), Arc::clone(&barrier));
        let spawned = thread::Builder::new()
            .name(format!("client-{t}"))
            .stack_size(256 * 1024)
            .spawn(move || client_main(&options, t, &done, &ready));
        match spawned {
            Ok(handle) => clients.push(handle),
            Err(e) => {
                // The started clients wait at the barrier; stand in for the missing ones.
                for _ in t..threads {
                    barrier.wait();
                }
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot start client thread {t}: {e}"),
                ));
            }
        }
    }
    barrier.wait();
    let start = Instant::now();
    let mut last_progress = start;
    while !clients.iter().all(std::thread::JoinHandle::is_finished) {
        thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        if now.duration_since(start) >= QUIET_FOR
            && now.duration_since(last_progress) >= Duration::from_secs(1)
        {
            last_progress = now;
            let secs = now.duration_since(start).as_secs_f64();
            let n = done.load(Ordering::Relaxed);
            eprintln!(
                "loadgen: {secs:.0} s, {n} requests, {:.0} req/s",
                n as f64 / secs
            );
        }
    }
    let elapsed = start.elapsed();
    drop(idle);
    let slow = slow.map(Slowloris::finish);

    let mut results = Vec::with_capacity(clients.len());
    for handle in clients {
        results.push(handle.join().unwrap_or_else(|_| ClientResult {
            error: Some("a client thread panicked".to_string()),
            ..ClientResult::default()
        }));
    }
    let mut samples = Vec::new();
    let (mut ok, mut lost, mut failed_clients, mut first_error) = (0, 0, 0, None);
    for r in results {
        ok += r.ok;
        lost += r.lost;
        samples.extend(r.samples);
        if let Some(e) = r.error {
            failed_clients += r.clients;
            first_error.get_or_insert(e);
        }
    }
    Ok(Report {
        options: o.clone(),
        ok,
        lost,
        failed_clients,
        first_error,
        elapsed,
        latencies: Latencies::new(samples),
        held,
        slow,
    })
}

fn client_main(o: &Options, thread: usize, done: &AtomicU64, barrier: &Barrier) -> ClientResult {
    let first = thread * o.per_thread;
    let clients = o.per_thread.min(o.conns - first);
    let mut result = ClientResult {
        clients,
        samples: Vec::with_capacity((o.requests as usize).min(MAX_SAMPLES).min(1 << 16)),
        ..ClientResult::default()
    };
    let driven = if o.per_thread > 1 {
        drive_lockstep(o, first..first + clients, done, barrier, &mut result)
    } else {
        drive(o, thread, done, barrier, &mut result)
    };
    if let Err(e) = driven {
        let client = if clients > 1 {
            format!("clients {first}-{}", first + clients - 1)
        } else {
            format!("client {first}")
        };
        let e = match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                format!("no reply within {:?} ({e})", o.timeout)
            }
            _ => e.to_string(),
        };
        result.error = Some(format!("{client}: {e}"));
    }
    result
}

/// Connects (before the barrier, so connection set-up is not timed except with `--churn`), then
/// makes requests until they are done or the time is up.
fn drive(
    o: &Options,
    client: usize,
    done: &AtomicU64,
    barrier: &Barrier,
    result: &mut ClientResult,
) -> io::Result<()> {
    let connected = match o.workload {
        Workload::Udp => Datagrams::connect(o.addr, o.timeout).map(Client::Udp),
        _ if o.churn => Ok(Client::Churn),
        _ => Stream::connect(o.addr, o.timeout).map(|s| Client::Stream(Box::new(s))),
    };
    barrier.wait();
    let mut client_conn = connected?;
    let deadline = Instant::now() + o.duration;
    let mut payload = vec![0u8; o.size];
    let mut stored = Vec::new();
    for seq in 0..o.requests {
        let begin = Instant::now();
        if begin >= deadline {
            break;
        }
        fill(&mut payload, client, seq, o.workload);
        match &mut client_conn {
            Client::Stream(stream) => {
                stream.exchange(o.workload, client, seq, &payload, &mut stored)?;
            }
            Client::Churn => Stream::connect(o.addr, o.timeout)?.exchange(
                o.workload,
                client,
                seq,
                &payload,
                &mut stored,
            )?,
            Client::Udp(socket) => match socket.exchange(&payload)? {
                UdpOutcome::Answered => {}
                UdpOutcome::Lost => {
                    result.lost += 1;
                    continue;
                }
            },
        }
        if result.samples.len() < MAX_SAMPLES {
            result.samples.push(begin.elapsed().as_nanos() as u64);
        }
        result.ok += 1;
        done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// `--per-thread K`: drives the connections of `clients` in lockstep, each with one request in
/// flight as a lone client has: a request on every one, then every reply read and checked in
/// turn. A request's latency runs from its own send to its reply, so it includes the wait for
/// the replies read before it.
fn drive_lockstep(
    o: &Options,
    clients: std::ops::Range<usize>,
    done: &AtomicU64,
    barrier: &Barrier,
    result: &mut ClientResult,
) -> io::Result<()> {
    let connected: io::Result<Vec<Stream>> = clients
        .clone()
        .map(|_| Stream::connect(o.addr, o.timeout))
        .collect();
    barrier.wait();
    let mut streams = connected?;
    let deadline = Instant::now() + o.duration;
    let mut payloads = vec![vec![0u8; o.size]; streams.len()];
    let mut sent = vec![Instant::now(); streams.len()];
    for seq in 0..o.requests {
        if Instant::now() >= deadline {
            break;
        }
        for (j, stream) in streams.iter_mut().enumerate() {
            fill(&mut payloads[j], clients.start + j, seq, o.workload);
            sent[j] = Instant::now();
            stream.send(o.workload, &payloads[j])?;
        }
        for (j, stream) in streams.iter_mut().enumerate() {
            stream.receive(o.workload, &payloads[j])?;
            if result.samples.len() < MAX_SAMPLES {
                result.samples.push(sent[j].elapsed().as_nanos() as u64);
            }
            result.ok += 1;
        }
        done.fetch_add(streams.len() as u64, Ordering::Relaxed);
    }
    Ok(())
}

/// A client's connection, by workload.
enum Client {
    Stream(Box<Stream>),
    /// `--churn`: a new connection per request.
    Churn,
    Udp(Datagrams),
}

/// What the server processes (`--server-pid`) held before the idle connections and once they had
/// taken them all.
#[derive(Clone, Copy)]
struct Held {
    before: ProcStatus,
    after: ProcStatus,
}

/// Opens the `--idle` connections (from the `--idle-from` addresses in turn) and, with
/// `--server-pid`, waits until the server holds them, reading its status before and after.
fn open_idle(o: &Options) -> io::Result<(Vec<TcpStream>, Option<Held>)> {
    if o.idle == 0 {
        return Ok((Vec::new(), None));
    }
    let before = server_status(&o.server_pids)?;
    let mut idle = Vec::with_capacity(o.idle);
    for i in 0..o.idle {
        let source = (!o.idle_from.is_empty()).then(|| o.idle_from[i % o.idle_from.len()]);
        let stream = connect_from(o.addr, source, o.timeout).map_err(|e| {
            let from = source.map(|ip| format!(" from {ip}")).unwrap_or_default();
            io::Error::new(
                e.kind(),
                format!(
                    "idle connection {i} of {}{from}: {e} (is `ulimit -n` high enough? \
                     one source address has ~28k ports: see --idle-from)",
                    o.idle
                ),
            )
        })?;
        idle.push(stream);
    }
    let Some(before) = before else {
        return Ok((idle, None));
    };
    // The server has taken them all when it holds a descriptor for each (whatever its mode: a
    // thread per connection or one loop for all); one that never gets there is given until the
    // timeout, then measured as it is.
    let deadline = Instant::now() + o.timeout;
    let mut status = before;
    while status.fds < before.fds + o.idle as u64 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        status = server_status(&o.server_pids)?.unwrap_or(status);
    }
    thread::sleep(Duration::from_millis(200));
    let after = server_status(&o.server_pids)?.unwrap_or(status);
    Ok((idle, Some(Held { before, after })))
}

/// A connection to `addr`, bound first to `source` (any free port) if one is given.
fn connect_from(
    addr: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
) -> io::Result<TcpStream> {
    let Some(ip) = source else {
        return TcpStream::connect_timeout(&addr, timeout);
    };
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if ip.is_ipv4() {
        // The port is picked at connect(), for this destination, rather than at bind(): ports
        // are then shared across destinations and reusable from TIME_WAIT, as without bind().
        let on: libc::c_int = 1;
        // SAFETY: a valid socket and a c_int option of the size given.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                std::ptr::from_ref(&on).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    socket.bind(&SocketAddr::new(ip, 0).into())?;
    socket.connect_timeout(&addr.into(), timeout)?;
    Ok(socket.into())
}

#[derive(Clone, Copy, Default)]
struct ProcStatus {
    rss_kib: u64,
    threads: u64,
    fds: u64,
}

/// `VmRSS` and `Threads` from `/proc/<pid>/status`, and the count of `/proc/<pid>/fd`, summed
/// over `pids` (Linux); `None` with no pids.
fn server_status(pids: &[u32]) -> io::Result<Option<ProcStatus>> {
    let mut total: Option<ProcStatus> = None;
    for &pid in pids {
        let path = format!("/proc/{pid}/status");
        let text = fs::read_to_string(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot read {path}: {e}")))?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| io::Error::other(format!("no {name} field in {path}")))
        };
        let fd_dir = format!("/proc/{pid}/fd");
        let fds = fs::read_dir(&fd_dir)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot read {fd_dir}: {e}")))?
            .count() as u64;
        let sum = total.get_or_insert_with(ProcStatus::default);
        sum.rss_kib += field("VmRSS:")?;
        sum.threads += field("Threads:")?;
        sum.fds += fds;
    }
    Ok(total)
}

impl Report {
    pub fn failed(&self) -> bool {
        self.failed_clients > 0
    }

    pub fn first_error(&self) -> &str {
        self.first_error.as_deref().unwrap_or("no error")
    }

    fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn text(&self) -> String {
        let o = &self.options;
        let l = &self.latencies;
        let mut text = format!(
            "{}{} {} B, {} conns: {} requests verified in {:.2} s = {:.0} req/s; \
             latency p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
            o.workload.name(),
            if o.churn { " (churn)" } else { "" },
            o.size,
            o.conns,
            self.ok,
            self.elapsed.as_secs_f64(),
            self.rate(),
            micros(l.quantile(0.5)),
            micros(l.quantile(0.99)),
            micros(l.quantile(0.999)),
            micros(l.max()),
        );
        if self.lost > 0 {
            text += &format!("; {} datagrams lost", self.lost);
        }
        if let Some(Held { before, after }) = self.held {
            text += &format!(
                "; server RSS {} KiB -> {} KiB with {} idle connections ({:.1} KiB each), \
                 threads {} -> {}",
                before.rss_kib,
                after.rss_kib,
                o.idle,
                self.rss_per_idle(before.rss_kib, after.rss_kib),
                before.threads,
                after.threads
            );
        }
        if let Some(slow) = self.slow {
            text += &format!(
                "; {} slowloris connections: {} opened, {} closed by the server, {} bytes sent",
                o.slowloris, slow.opened, slow.closed_by_server, slow.bytes
            );
        }
        if self.failed_clients > 0 {
            text += &format!("; {} clients FAILED", self.failed_clients);
        }
        text
    }

    fn rss_per_idle(&self, before: u64, after: u64) -> f64 {
        after.saturating_sub(before) as f64 / self.options.idle.max(1) as f64
    }

    pub fn json(&self) -> String {
        let o = &self.options;
        let l = &self.latencies;
        let held = self.held.unwrap_or(Held {
            before: ProcStatus::default(),
            after: ProcStatus::default(),
        });
        let slow = self.slow.unwrap_or_default();
        format!(
            "{{\"workload\":\"{}\",\"churn\":{},\"size\":{},\"conns\":{},\"idle\":{},\
             \"ok\":{},\"lost\":{},\"failed_clients\":{},\"secs\":{:.4},\"rps\":{:.1},\
             \"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\
             \"rss_before_kib\":{},\"rss_after_kib\":{},\
             \"threads_before\":{},\"threads_after\":{},\"fds_after\":{},\
             \"slowloris\":{},\"slow_opened\":{},\"slow_closed_by_server\":{},\
             \"slow_connect_failed\":{},\"slow_bytes\":{}}}",
            o.workload.name(),
            o.churn,
            o.size,
            o.conns,
            o.idle,
            self.ok,
            self.lost,
            self.failed_clients,
            self.elapsed.as_secs_f64(),
            self.rate(),
            micros(l.quantile(0.5)),
            micros(l.quantile(0.99)),
            micros(l.quantile(0.999)),
            micros(l.max()),
            held.before.rss_kib,
            held.after.rss_kib,
            held.before.threads,
            held.after.threads,
            held.after.fds,
            o.slowloris,
            slow.opened,
            slow.closed_by_server,
            slow.connect_failed,
            slow.bytes,
        )
    }
}
