//! Running the clients, and what a run reports.

use std::fs;
use std::io;
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::exchange::{fill, Datagrams, Stream, UdpOutcome, Workload};
use crate::latency::{micros, Latencies};
use crate::options::Options;

/// Runs longer than this show progress on stderr.
const QUIET_FOR: Duration = Duration::from_secs(2);
/// Samples kept per client: bounds memory on long runs (later requests still count, unsampled).
const MAX_SAMPLES: usize = 2_000_000;

/// What one client did.
#[derive(Default)]
struct ClientResult {
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
    rss: RssKib,
}

pub fn run(o: &Options) -> io::Result<Report> {
    let (idle, rss) = open_idle(o)?;
    let done = Arc::new(AtomicU64::new(0));
    // Every client connects first; the clock starts when all are ready.
    let barrier = Arc::new(Barrier::new(o.conns + 1));
    let mut clients = Vec::with_capacity(o.conns);
    for client in 0..o.conns {
        let (options, done, ready) = (o.clone(), Arc::clone(&done), Arc::clone(&barrier));
        let spawned = thread::Builder::new()
            .name(format!("client-{client}"))
            .stack_size(256 * 1024)
            .spawn(move || client_main(&options, client, &done, &ready));
        match spawned {
            Ok(handle) => clients.push(handle),
            Err(e) => {
                // The started clients wait at the barrier; stand in for the missing ones.
                for _ in client..o.conns {
                    barrier.wait();
                }
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot start client thread {client}: {e}"),
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
            failed_clients += 1;
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
        rss,
    })
}

fn client_main(o: &Options, client: usize, done: &AtomicU64, barrier: &Barrier) -> ClientResult {
    let mut result = ClientResult {
        samples: Vec::with_capacity((o.requests as usize).min(MAX_SAMPLES).min(1 << 16)),
        ..ClientResult::default()
    };
    if let Err(e) = drive(o, client, done, barrier, &mut result) {
        let e = match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                format!("no reply within {:?} ({e})", o.timeout)
            }
            _ => e.to_string(),
        };
        result.error = Some(format!("client {client}: {e}"));
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

/// A client's connection, by workload.
enum Client {
    Stream(Box<Stream>),
    /// `--churn`: a new connection per request.
    Churn,
    Udp(Datagrams),
}

/// Opens the `--idle` connections and, with `--server-pid`, waits until the server holds them,
/// measuring its RSS before and after.
/// Server RSS in KiB before and after the idle connections were taken.
type RssKib = Option<(u64, u64)>;

fn open_idle(o: &Options) -> io::Result<(Vec<TcpStream>, RssKib)> {
    if o.idle == 0 {
        return Ok((Vec::new(), None));
    }
    let before = o.server_pid.map(server_status).transpose()?;
    let mut idle = Vec::with_capacity(o.idle);
    for i in 0..o.idle {
        let stream = TcpStream::connect_timeout(&o.addr, o.timeout).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "idle connection {i} of {}: {e} (is `ulimit -n` high enough?)",
                    o.idle
                ),
            )
        })?;
        idle.push(stream);
    }
    let (Some(pid), Some(before)) = (o.server_pid, before) else {
        return Ok((idle, None));
    };
    // A threading server has taken them all when it runs a thread per connection; others (or a
    // server that never gets there) are given until the timeout, then measured as they are.
    let deadline = Instant::now() + o.timeout;
    let mut status = server_status(pid)?;
    while status.threads < before.threads + o.idle as u64 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        status = server_status(pid)?;
    }
    thread::sleep(Duration::from_millis(200));
    let after = server_status(pid)?;
    Ok((idle, Some((before.rss_kib, after.rss_kib))))
}

struct ProcStatus {
    rss_kib: u64,
    threads: u64,
}

/// Reads `VmRSS` and `Threads` from `/proc/<pid>/status` (Linux).
fn server_status(pid: u32) -> io::Result<ProcStatus> {
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
    Ok(ProcStatus {
        rss_kib: field("VmRSS:")?,
        threads: field("Threads:")?,
    })
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
        if let Some((before, after)) = self.rss {
            text += &format!(
                "; server RSS {before} KiB -> {after} KiB with {} idle connections ({:.1} KiB each)",
                o.idle,
                self.rss_per_idle(before, after)
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
        let (rss_before, rss_after) = self.rss.unwrap_or((0, 0));
        format!(
            "{{\"workload\":\"{}\",\"churn\":{},\"size\":{},\"conns\":{},\"idle\":{},\
             \"ok\":{},\"lost\":{},\"failed_clients\":{},\"secs\":{:.4},\"rps\":{:.1},\
             \"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\
             \"rss_before_kib\":{rss_before},\"rss_after_kib\":{rss_after}}}",
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
        )
    }
}
