//! The command line.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::exchange::Workload;

pub const USAGE: &str = "\
usage: loadgen --addr HOST:PORT [--workload framed|line|resp|udp] [--conns N] [--requests M]
               [--size BYTES] [--duration SECS] [--timeout SECS] [--churn] [--idle N]
               [--idle-from IP,...] [--server-pid PID,...] [--slowloris N]
               [--slow-interval SECS] [--per-thread K] [--json]

Bounded load generator for the benchmark servers; loopback addresses only.

options:
  --addr HOST:PORT   the server (127.0.0.0/8 or ::1)
  --workload W       framed (default), line, resp or udp
  --conns N          concurrent clients (default 10, at most 5000)
  --requests M       requests per client (default 1000)
  --size BYTES       payload size (default 64; at least 16, at most 16 MiB, 65507 for udp)
  --duration SECS    stop after this long even if requests remain (default 10, at most 600)
  --timeout SECS     longest wait for one connect, send or reply (default 10)
  --churn            a new connection for every request (not with udp)
  --idle N           also hold N silent connections open during the run (at most 30000)
  --idle-from IP,... loopback source addresses for the idle connections, taken in turn (one
                     address has ~28k ephemeral ports; default: the kernel's choice)
  --server-pid PID,...  with --idle: wait for the server to take them, report its RSS and
                     threads (summed over the pids given: a prefork parent and its workers)
  --slowloris N      also hold N slowloris connections during the run: each sends half a
                     request, then one byte every --slow-interval, and reconnects when closed
                     (at most 5000; stream workloads)
  --slow-interval SECS  seconds between a slowloris connection's bytes (default 2)
  --per-thread K     one client thread drives K connections in lockstep (a request on each,
                     then each reply), for many connections at little client CPU (default 1;
                     framed and line, not with --churn)
  --json             print one JSON line instead of the text report
  --help             print this help
";

/// The parsed command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub addr: SocketAddr,
    pub workload: Workload,
    pub conns: usize,
    pub requests: u64,
    pub size: usize,
    pub duration: Duration,
    pub timeout: Duration,
    pub churn: bool,
    pub idle: usize,
    pub idle_from: Vec<IpAddr>,
    pub server_pids: Vec<u32>,
    pub slowloris: usize,
    pub slow_interval: Duration,
    pub per_thread: usize,
    pub json: bool,
}

/// `Ok(None)` means `--help`.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Option<Options>, String> {
    let mut addr = None;
    let mut o = Options {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        workload: Workload::Framed,
        conns: 10,
        requests: 1000,
        size: 64,
        duration: Duration::from_secs(10),
        timeout: Duration::from_secs(10),
        churn: false,
        idle: 0,
        idle_from: Vec::new(),
        server_pids: Vec::new(),
        slowloris: 0,
        slow_interval: Duration::from_secs(2),
        per_thread: 1,
        json: false,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        match name.as_str() {
            "--help" | "-h" => return Ok(None),
            "--churn" => {
                o.churn = true;
                continue;
            }
            "--json" => {
                o.json = true;
                continue;
            }
            _ => {}
        }
        let value = inline
            .or_else(|| args.next())
            .ok_or_else(|| format!("{name} needs a value"))?;
        match name.as_str() {
            "--addr" => addr = Some(loopback(&value)?),
            "--workload" => {
                o.workload = Workload::parse(&value).ok_or_else(|| {
                    format!(
                    "invalid value '{value}' for --workload (expected framed, line, resp or udp)"
                )
                })?;
            }
            "--conns" => o.conns = number(&name, &value, 1, 5000)? as usize,
            "--requests" => o.requests = number(&name, &value, 1, u64::MAX / 2)?,
            "--size" => o.size = number(&name, &value, 16, 16 * 1024 * 1024)? as usize,
            "--duration" => o.duration = Duration::from_secs(number(&name, &value, 1, 600)?),
            "--timeout" => o.timeout = Duration::from_secs(number(&name, &value, 1, 600)?),
            "--idle" => o.idle = number(&name, &value, 0, 30_000)? as usize,
            "--idle-from" => {
                o.idle_from = value
                    .split(',')
                    .map(source_address)
                    .collect::<Result<_, _>>()?;
            }
            "--server-pid" => {
                o.server_pids = value
                    .split(',')
                    .map(|pid| number(&name, pid, 1, u32::MAX as u64).map(|n| n as u32))
                    .collect::<Result<_, _>>()?;
            }
            "--slowloris" => o.slowloris = number(&name, &value, 0, 5000)? as usize,
            "--slow-interval" => {
                o.slow_interval = Duration::from_secs(number(&name, &value, 1, 60)?);
            }
            "--per-thread" => o.per_thread = number(&name, &value, 1, 5000)? as usize,
            _ if name.starts_with('-') => return Err(format!("unknown option '{name}'")),
            _ => return Err(format!("unexpected argument '{arg}'")),
        }
    }
    o.addr = addr.ok_or("--addr is required")?;
    if o.workload == Workload::Udp && o.size > 65_507 {
        return Err("--size is at most 65507 for udp".to_string());
    }
    if o.workload == Workload::Udp && (o.churn || o.idle > 0 || o.slowloris > 0) {
        return Err("--churn, --idle and --slowloris need a stream workload, not udp".to_string());
    }
    if o.per_thread > 1 && (o.churn || !matches!(o.workload, Workload::Framed | Workload::Line)) {
        return Err("--per-thread needs the framed or line workload, without --churn".to_string());
    }
    if let Some(ip) = o
        .idle_from
        .iter()
        .find(|ip| ip.is_ipv4() != o.addr.is_ipv4())
    {
        return Err(format!(
            "--idle-from {ip} is not of the same address family as --addr {}",
            o.addr
        ));
    }
    Ok(Some(o))
}

fn number(name: &str, value: &str, min: u64, max: u64) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid value '{value}' for {name} (expected a whole number from {min} to {max})"
        )),
    }
}

/// A loopback IP address to bind a connection to.
fn source_address(value: &str) -> Result<IpAddr, String> {
    match value.trim().parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => Ok(ip),
        Ok(_) => Err(format!(
            "--idle-from {value}: only loopback source addresses (127.0.0.0/8 or ::1)"
        )),
        Err(e) => Err(format!("invalid value '{value}' for --idle-from: {e}")),
    }
}

/// Resolves `value`, refusing anything but loopback: load is only ever sent to this machine.
fn loopback(value: &str) -> Result<SocketAddr, String> {
    let addr = value
        .to_socket_addrs()
        .map_err(|e| format!("invalid value '{value}' for --addr: {e}"))?
        .next()
        .ok_or_else(|| format!("--addr {value} resolves to no address"))?;
    if !addr.ip().is_loopback() || addr.port() == 0 {
        return Err(format!(
            "--addr {value}: loadgen only targets a loopback address with a port (127.0.0.1:PORT or [::1]:PORT)"
        ));
    }
    Ok(addr)
}
