//! Slowloris connections held during a run (`--slowloris N`): each sends the first half of a
//! request of the run's workload, then one more byte every `--slow-interval`, never the last;
//! one the server has closed is noticed and opened again when its next byte is due. All of them
//! on one thread, with non-blocking sockets: bounded in count, and in time by the run.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::common::frame::FRAMING;
use crate::exchange::{fill, Workload};
use crate::options::Options;

/// How often the thread looks for connections whose byte is due.
const TICK: Duration = Duration::from_millis(20);
/// Longest wait for a reconnection: a server that stopped accepting must not stall the others.
const RECONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// What the slowloris connections came to.
#[derive(Debug, Default, Clone, Copy)]
pub struct SlowStats {
    /// Connections opened, the first ones and the reconnections.
    pub opened: u64,
    /// Times the server closed (or reset) one.
    pub closed_by_server: u64,
    /// Reconnections that failed (refused, or not accepted within 500 ms).
    pub connect_failed: u64,
    /// Bytes sent, all connections together.
    pub bytes: u64,
}

/// The running slowloris thread.
pub struct Slowloris {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<SlowStats>,
}

impl Slowloris {
    /// Opens `o.slowloris` connections (each has sent its first half request when this returns),
    /// then trickles on a thread until [`Slowloris::finish`] or twice the run's duration.
    pub fn start(o: &Options) -> io::Result<Slowloris> {
        let request = partial_request(o);
        let mut stats = SlowStats::default();
        let start = Instant::now();
        let mut conns = Vec::with_capacity(o.slowloris);
        for i in 0..o.slowloris {
            let conn = Conn::open(o.addr, o.timeout, &request, &mut stats).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("slowloris connection {i} of {}: {e}", o.slowloris),
                )
            })?;
            // Spread the bytes over the interval rather than sending them all at once.
            let offset = o.slow_interval.mul_f64(i as f64 / o.slowloris as f64);
            conns.push((Some(conn), start + offset + o.slow_interval));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (addr, interval) = (o.addr, o.slow_interval);
        let give_up = start + 2 * o.duration + o.timeout;
        let flag = Arc::clone(&stop);
        let handle = thread::Builder::new()
            .name("slowloris".to_string())
            .spawn(move || {
                trickle(addr, &request, interval, conns, &flag, give_up, &mut stats);
                stats
            })?;
        Ok(Slowloris { stop, handle })
    }

    /// Stops the thread, closes the connections and returns what they came to.
    pub fn finish(self) -> SlowStats {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// One slowloris connection and how much of the request it has sent.
struct Conn {
    stream: TcpStream,
    sent: usize,
}

impl Conn {
    fn open(
        addr: SocketAddr,
        timeout: Duration,
        request: &[u8],
        stats: &mut SlowStats,
    ) -> io::Result<Conn> {
        let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stats.opened += 1;
        let half = request.len() / 2;
        stream.write_all(&request[..half])?;
        stats.bytes += half as u64;
        stream.set_nonblocking(true)?;
        Ok(Conn { stream, sent: half })
    }

    /// False once the server has closed it (end of stream or an error); replies are dropped.
    fn alive(&mut self) -> bool {
        let mut buf = [0u8; 512];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Sends the next byte, short of the request's last; false if the server has closed it.
    fn send_byte(&mut self, request: &[u8], stats: &mut SlowStats) -> bool {
        if self.sent + 1 >= request.len() {
            return true;
        }
        match self.stream.write(&request[self.sent..=self.sent]) {
            Ok(n) => {
                self.sent += n;
                stats.bytes += n as u64;
                true
            }
            Err(e) => matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn trickle(
    addr: SocketAddr,
    request: &[u8],
    interval: Duration,
    mut conns: Vec<(Option<Conn>, Instant)>,
    stop: &AtomicBool,
    give_up: Instant,
    stats: &mut SlowStats,
) {
    while !stop.load(Ordering::Relaxed) && Instant::now() < give_up {
        let now = Instant::now();
        for (slot, due) in &mut conns {
            // A connection is looked at only when its byte is due: reading every one every tick
            // would cost the client more CPU than the attack costs the server.
            if now < *due {
                continue;
            }
            *due += interval;
            if let Some(conn) = slot {
                if !conn.alive() {
                    stats.closed_by_server += 1;
                    *slot = None;
                }
            }
            match slot {
                Some(conn) => {
                    if !conn.send_byte(request, stats) {
                        stats.closed_by_server += 1;
                        *slot = None;
                    }
                }
                // Closed since its last byte (or just now): open it again, at most once per interval.
                None => match Conn::open(addr, RECONNECT_TIMEOUT, request, stats) {
                    Ok(conn) => *slot = Some(conn),
                    Err(_) => stats.connect_failed += 1,
                },
            }
        }
        thread::sleep(TICK);
    }
}

/// The bytes of one whole request of the run's workload; the connections send all but the last.
fn partial_request(o: &Options) -> Vec<u8> {
    let mut payload = vec![0u8; o.size];
    fill(&mut payload, usize::MAX, 0, o.workload);
    let mut request = Vec::with_capacity(o.size + 64);
    match o.workload {
        // A whole frame: the 4-byte length, then the payload.
        Workload::Framed | Workload::Udp => {
            // Writing to a Vec cannot fail.
            let _ = FRAMING.write_frame_vectored(&mut request, &payload);
        }
        Workload::Line => request.extend_from_slice(&payload),
        Workload::Resp => {
            let head = format!(
                "*3\r\n$3\r\nSET\r\n$13\r\nloadgen:slow0\r\n${}\r\n",
                payload.len()
            );
            request.extend_from_slice(head.as_bytes());
            request.extend_from_slice(&payload);
            request.extend_from_slice(b"\r\n");
        }
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::parse;

    fn options(workload: &str) -> Options {
        let args = [
            "--addr",
            "127.0.0.1:9",
            "--workload",
            workload,
            "--size",
            "20",
        ];
        parse(args.iter().map(ToString::to_string))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn the_partial_request_is_a_whole_request_of_the_workload() {
        let framed = partial_request(&options("framed"));
        assert_eq!(framed.len(), 24);
        assert_eq!(&framed[..4], &[0, 0, 0, 20]);
        let line = partial_request(&options("line"));
        assert_eq!(line.len(), 20);
        assert_eq!(line.last(), Some(&b'\n'));
        let resp = partial_request(&options("resp"));
        assert!(resp.starts_with(b"*3\r\n$3\r\nSET\r\n$13\r\nloadgen:slow0\r\n$20\r\n"));
        assert!(resp.ends_with(b"\r\n"));
    }
}
