//! One request and the check of its reply, for each workload. Every payload carries the request's
//! sequence number, so a reply to another request (or a stale datagram) is caught, not counted.

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use crate::common::frame::FRAMING;

/// What is sent and how the reply is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// 4-byte big-endian length, then the payload; echoed back.
    Framed,
    /// The payload as one `\n`-terminated line; echoed back.
    Line,
    /// Redis protocol: `SET` then `GET` of a key per connection, alternating.
    Resp,
    /// One datagram; echoed back.
    Udp,
}

impl Workload {
    pub fn parse(name: &str) -> Option<Workload> {
        match name {
            "framed" => Some(Workload::Framed),
            "line" => Some(Workload::Line),
            "resp" => Some(Workload::Resp),
            "udp" => Some(Workload::Udp),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Workload::Framed => "framed",
            Workload::Line => "line",
            Workload::Resp => "resp",
            Workload::Udp => "udp",
        }
    }
}

/// A failed check: the reply was not the one expected.
pub fn mismatch(what: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, what)
}

/// Fills `payload` (of its current length) for request `seq` of client `client`: the sequence
/// number in the first bytes, printable filler after, and `\n` last for the line workload.
pub fn fill(payload: &mut [u8], client: usize, seq: u64, workload: Workload) {
    let stamp = format!("{client:x}.{seq:x}.");
    for (i, b) in payload.iter_mut().enumerate() {
        *b = b'a' + (i % 26) as u8;
    }
    let n = stamp.len().min(payload.len());
    payload[..n].copy_from_slice(&stamp.as_bytes()[..n]);
    if workload == Workload::Line {
        if let Some(last) = payload.last_mut() {
            *last = b'\n';
        }
    }
}

/// A TCP client connection with buffered reads and reused buffers.
pub struct Stream {
    reader: BufReader<TcpStream>,
    out: Vec<u8>,
    reply: Vec<u8>,
}

impl Stream {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Stream> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Stream {
            reader: BufReader::with_capacity(64 * 1024, stream),
            out: Vec::new(),
            reply: Vec::new(),
        })
    }

    /// Sends request `seq` carrying `payload` and checks the reply. `stored` is what the client's
    /// last `SET` stored (resp workload), kept by the caller so it outlives a churned connection.
    pub fn exchange(
        &mut self,
        workload: Workload,
        client: usize,
        seq: u64,
        payload: &[u8],
        stored: &mut Vec<u8>,
    ) -> io::Result<()> {
        match workload {
            Workload::Framed | Workload::Line => {
                self.send(workload, payload)?;
                self.receive(workload, payload)
            }
            Workload::Resp if seq.is_multiple_of(2) => {
                self.out.clear();
                let key = format!("loadgen:{client}");
                write!(
                    self.out,
                    "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n",
                    key.len(),
                    payload.len()
                )?;
                self.out.extend_from_slice(payload);
                self.out.extend_from_slice(b"\r\n");
                self.reader.get_mut().write_all(&self.out)?;
                self.read_resp_line()?;
                expect_same(&self.reply, b"+OK\r\n")?;
                stored.clear();
                stored.extend_from_slice(payload);
                Ok(())
            }
            Workload::Resp => {
                let key = format!("loadgen:{client}");
                let command = format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len());
                self.reader.get_mut().write_all(command.as_bytes())?;
                self.read_resp_line()?;
                let header = format!("${}\r\n", stored.len());
                expect_same(&self.reply, header.as_bytes())?;
                self.reply.resize(stored.len() + 2, 0);
                self.reader.read_exact(&mut self.reply)?;
                expect_same(&self.reply[..stored.len()], stored)?;
                expect_same(&self.reply[stored.len()..], b"\r\n")
            }
            Workload::Udp => Err(io::Error::new(
                ErrorKind::InvalidInput,
                "the udp workload has no stream client",
            )),
        }
    }

    /// Sends one framed or line echo request carrying `payload`, without waiting for its reply.
    pub fn send(&mut self, workload: Workload, payload: &[u8]) -> io::Result<()> {
        match workload {
            Workload::Framed => FRAMING.write_frame_vectored(self.reader.get_mut(), payload),
            Workload::Line => self.reader.get_mut().write_all(payload),
            _ => Err(io::Error::new(
                ErrorKind::InvalidInput,
                "only the framed and line workloads send without waiting",
            )),
        }
    }

    /// Reads the echo of the request [`Stream::send`] sent with `payload`, and checks it.
    pub fn receive(&mut self, workload: Workload, payload: &[u8]) -> io::Result<()> {
        match workload {
            // The reply's memory grows only as it arrives: a server announcing 16 MiB and
            // sending nothing cannot make the client reserve it.
            Workload::Framed => {
                if !FRAMING.read_frame_into(&mut self.reader, &mut self.reply)? {
                    return Err(closed());
                }
            }
            Workload::Line => {
                self.reply.clear();
                if self.reader.read_until(b'\n', &mut self.reply)? == 0 {
                    return Err(closed());
                }
            }
            _ => {
                return Err(io::Error::new(
                    ErrorKind::InvalidInput,
                    "only the framed and line workloads receive apart",
                ))
            }
        }
        expect_same(&self.reply, payload)
    }

    fn read_resp_line(&mut self) -> io::Result<()> {
        self.reply.clear();
        if self.reader.read_until(b'\n', &mut self.reply)? == 0 {
            return Err(closed());
        }
        Ok(())
    }
}

/// A UDP client socket connected to the server.
pub struct Datagrams {
    socket: UdpSocket,
    reply: Vec<u8>,
}

/// What one UDP exchange came to.
pub enum UdpOutcome {
    /// The right reply came back.
    Answered,
    /// No reply within the wait: lost on the way (UDP does not retransmit).
    Lost,
}

impl Datagrams {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Datagrams> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.connect(addr)?;
        // Shorter than the stream timeout: a lost datagram should cost little.
        socket.set_read_timeout(Some(timeout.min(Duration::from_secs(1))))?;
        Ok(Datagrams {
            socket,
            reply: vec![0u8; 65_536],
        })
    }

    /// Sends `payload` and waits for its echo, skipping late replies to earlier (lost) requests.
    pub fn exchange(&mut self, payload: &[u8]) -> io::Result<UdpOutcome> {
        self.socket.send(payload)?;
        loop {
            let n = match self.socket.recv(&mut self.reply) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(UdpOutcome::Lost)
                }
                Err(e) => return Err(e),
            };
            let reply = &self.reply[..n];
            if reply == payload {
                return Ok(UdpOutcome::Answered);
            }
            // A reply to an earlier request that was given up on: its stamp differs.
            if n == payload.len() && stamp(reply) != stamp(payload) {
                continue;
            }
            return Err(mismatch(format!(
                "udp reply of {n} bytes does not match the {}-byte request",
                payload.len()
            )));
        }
    }
}

/// The `client.seq.` stamp at the front of a payload.
fn stamp(payload: &[u8]) -> &[u8] {
    let end = payload
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'.')
        .nth(1)
        .map_or(payload.len(), |(i, _)| i);
    &payload[..end]
}

fn expect_same(got: &[u8], want: &[u8]) -> io::Result<()> {
    if got == want {
        return Ok(());
    }
    let show = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(40)]).into_owned();
    Err(mismatch(format!(
        "reply of {} bytes {:?}… differs from the expected {} bytes {:?}…",
        got.len(),
        show(got),
        want.len(),
        show(want)
    )))
}

fn closed() -> io::Error {
    io::Error::new(ErrorKind::UnexpectedEof, "the server closed the connection")
}
