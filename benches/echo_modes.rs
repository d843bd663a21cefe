//! Echo round trips per second in each mode, as a ratio against a plain `std::net`
//! thread-per-connection server measured in the same run (this machine is shared and noisy, so
//! only ratios mean much), plus `shutdown()` latency.
//!
//! `cargo bench --bench echo_modes` — bounded: a few seconds. Knobs: `BENCH_ROUNDTRIPS` (per
//! connection, default 2000), `BENCH_ROUNDS` (default 3; the median is reported).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use socketserver::transport::Tcp;
use socketserver::{Builder, Mode, Pool, Server, ServerHandle, Single, StreamRequest, Threading};

const PAYLOAD: usize = 64;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn echo(req: &mut StreamRequest) -> io::Result<()> {
    let mut buf = [0u8; PAYLOAD];
    loop {
        match req.read_exact(&mut buf) {
            Ok(()) => req.write_all(&buf)?,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// The floor: no framework, a thread per connection, the same echo loop.
fn plain_std_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_nodelay(true);
            thread::spawn(move || {
                let mut buf = [0u8; PAYLOAD];
                while conn.read_exact(&mut buf).is_ok() {
                    if conn.write_all(&buf).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

struct Running {
    addr: SocketAddr,
    handle: ServerHandle,
    thread: thread::JoinHandle<()>,
}

/// The handler type, named so every mode's server has a nameable type.
type Echo = fn(&mut StreamRequest) -> io::Result<()>;

fn run<M: Mode>(mut server: Server<Tcp, Echo, M>) -> Running {
    let handle = server.handle();
    let addr = server.local_addr().as_inet().unwrap();
    let thread = thread::spawn(move || {
        server.serve_forever().unwrap();
        server.server_close().unwrap();
    });
    Running {
        addr,
        handle,
        thread,
    }
}

fn start(mode: &str) -> Running {
    let builder = Builder::new();
    let addr = "127.0.0.1:0";
    let handler: Echo = echo;
    match mode {
        "single" => run(builder.mode(Single).bind_tcp(addr, handler).unwrap()),
        "threading" => run(builder
            .mode(Threading::new())
            .bind_tcp(addr, handler)
            .unwrap()),
        "pool" => run(builder.mode(Pool::new(16)).bind_tcp(addr, handler).unwrap()),
        other => panic!("unknown mode {other}"),
    }
}

/// `conns` clients each doing `roundtrips` exchanges; returns round trips per second.
fn drive(addr: SocketAddr, conns: usize, roundtrips: usize) -> f64 {
    let start = Instant::now();
    let clients: Vec<_> = (0..conns)
        .map(|_| {
            thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let out = [7u8; PAYLOAD];
                let mut back = [0u8; PAYLOAD];
                for _ in 0..roundtrips {
                    s.write_all(&out).unwrap();
                    s.read_exact(&mut back).unwrap();
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    (conns * roundtrips) as f64 / start.elapsed().as_secs_f64()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn shutdown_latency() -> (Duration, Duration) {
    let mut samples = Vec::new();
    for _ in 0..20 {
        let running = start("threading");
        let t = Instant::now();
        running.handle.shutdown();
        running.thread.join().unwrap();
        samples.push(t.elapsed());
    }
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

fn main() {
    let roundtrips = env_or("BENCH_ROUNDTRIPS", 2000);
    let rounds = env_or("BENCH_ROUNDS", 3).max(1);
    let baseline_addr = plain_std_server();
    println!(
        "echo {PAYLOAD} B, {roundtrips} round trips per connection, median of {rounds} rounds"
    );
    println!(
        "{:<22} {:>6} {:>14} {:>10}",
        "server", "conns", "round trips/s", "vs plain"
    );
    for conns in [1, 8] {
        let modes = ["single", "threading", "pool"];
        let servers: Vec<Running> = modes.iter().map(|m| start(m)).collect();
        let mut base = Vec::new();
        let mut ours = vec![Vec::new(); modes.len()];
        // Alternate contestants within each round so drift hits them alike.
        for _ in 0..rounds {
            base.push(drive(baseline_addr, conns, roundtrips));
            for (i, s) in servers.iter().enumerate() {
                ours[i].push(drive(s.addr, conns, roundtrips));
            }
        }
        let base = median(base);
        println!(
            "{:<22} {:>6} {:>14.0} {:>10}",
            "plain std::net", conns, base, "1.00"
        );
        for (i, mode) in modes.iter().enumerate() {
            let rate = median(std::mem::take(&mut ours[i]));
            println!(
                "{:<22} {:>6} {:>14.0} {:>10.2}",
                format!("socketserver {mode}"),
                conns,
                rate,
                rate / base
            );
        }
        for s in servers {
            s.handle.shutdown();
            s.thread.join().unwrap();
        }
    }
    let (median, max) = shutdown_latency();
    println!("shutdown() to serve_forever() returning: median {median:?}, max {max:?} (20 runs)");
}
