//! TCP's "sticky packets" (粘包), shown live — and cured by `socketserver::framing`.
//!
//! Runs by itself and exits: a server on `--addr` (default `127.0.0.1:0`) and a client in the
//! same process replay the Python socket tutorial's two demonstrations, then the same traffic
//! with length-prefixed frames:
//!
//! 1. **Two quick small sends merge.** The client sends `b'hello'` twice; the server's single
//!    `recv(1024)` returns `b'hellohello'`.
//! 2. **A short read leaves the rest behind.** The client sends `b'hello!'` and
//!    `b'today is a good weather!'`; `recv(3)` returns `b'hel'`, and the next `recv(1024)` returns
//!    the leftover glued to the second message: `b'lo!today is a good weather!'`.
//! 3. **Framing.** The same four messages, written in one burst, and one more dribbled a byte at
//!    a time: `Framing::read_frame` returns them one by one, exactly as sent.
//!
//! To make the demonstration reliable rather than lucky, the server reads only once the client's
//! bytes are all waiting in its receive buffer — which is exactly when sticky packets happen.
//!
//! ```text
//! cargo run --example sticky_packets
//! ```

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Args, Example, ModeName};
use crossbeam_channel::{Receiver, Sender};
use socketserver::framing::Framing;
use socketserver::StreamRequest;

const EXAMPLE: Example = Example {
    name: "sticky_packets",
    about: "Demonstrates TCP sticky packets (two sends merged, a short read leaving a remainder), then the same traffic with framing. Runs by itself and exits.",
    default_addr: "127.0.0.1:0",
    default_mode: ModeName::Single,
    modes: &[ModeName::Single],
    options: &[common::METRICS],
};

/// The bound on every wait, so the demonstration ends even if something is broken.
const WAIT: Duration = Duration::from_secs(10);

const CASE_2: [&[u8]; 2] = [b"hello!", b"today is a good weather!"];
const FRAMED: [&[u8]; 4] = [b"hello", b"hello", b"hello!", b"today is a good weather!"];
const DRIBBLED: &[u8] = b"one frame, sent a byte at a time";

/// Writes `data` the way Python prints a `bytes` value: `b'hel\x00lo'`.
fn py_bytes(data: &[u8]) -> String {
    let mut out = String::from("b'");
    for &b in data {
        match b {
            b'\'' => out.push_str("\\'"),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('\'');
    out
}

/// The server side of each case, chosen by the order connections arrive in.
#[derive(Clone)]
struct Demo {
    connections: Arc<AtomicUsize>,
    /// "The client has sent everything": the server may read now.
    sent: Receiver<()>,
    /// Lines for the main thread to print, in order.
    report: Sender<String>,
}

impl Demo {
    fn handle(&mut self, req: &mut StreamRequest) -> io::Result<()> {
        let case = self.connections.fetch_add(1, Ordering::SeqCst) + 1;
        if case <= 2 {
            self.sent.recv_timeout(WAIT).map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, "the client never said it had sent")
            })?;
            wait_until_buffered(req, if case == 1 { 10 } else { 30 })?;
        }
        match case {
            1 => {
                let mut buf = [0u8; 1024];
                for i in 1..=2 {
                    let n = req.read(&mut buf)?;
                    self.say(format!("  server recv(1024) #{i}: {}", py_bytes(&buf[..n])));
                }
            }
            2 => {
                let mut buf = [0u8; 1024];
                let n = req.read(&mut buf[..3])?;
                self.say(format!("  server recv(3):    {}", py_bytes(&buf[..n])));
                let n = req.read(&mut buf)?;
                self.say(format!("  server recv(1024): {}", py_bytes(&buf[..n])));
            }
            _ => {
                let framing = Framing::new();
                let mut i = 0;
                while let Some(frame) = framing.read_frame(req)? {
                    i += 1;
                    self.say(format!("  server read_frame #{i}: {}", py_bytes(&frame)));
                }
                self.say("  server read_frame: None (the client closed the connection)".into());
            }
        }
        self.say(String::new());
        Ok(())
    }

    fn say(&self, line: String) {
        let _ = self.report.send(line);
    }
}

/// Waits (bounded) until `want` bytes wait in the connection's receive buffer: then one read
/// sees everything the client sent, as on a busy server.
fn wait_until_buffered(req: &StreamRequest, want: usize) -> io::Result<()> {
    let Some(stream) = req.connection().as_tcp() else {
        return Ok(());
    };
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 64];
    while stream.peek(&mut buf)? < want && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn client(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(WAIT))?;
    stream.set_write_timeout(Some(WAIT))?;
    Ok(stream)
}

fn run(args: &Args) -> io::Result<()> {
    let (sent_tx, sent) = crossbeam_channel::unbounded();
    let (report, lines) = crossbeam_channel::unbounded();
    let demo = Demo {
        connections: Arc::new(AtomicUsize::new(0)),
        sent,
        report,
    };
    // Single mode always: the cases must run one after another, in order.
    let mut server = args
        .builder()
        .bind_tcp(args.addr.as_str(), move |req: &mut StreamRequest| {
            demo.clone().handle(req)
        })?;
    common::announce(server.local_addr())?;
    common::announce_metrics(&server.handle())?;
    let addr = server
        .local_addr()
        .as_inet()
        .ok_or_else(|| io::Error::other("not a TCP address"))?;
    let handle = server.handle();
    let serving = thread::spawn(move || -> io::Result<()> {
        server.serve_forever()?;
        server.server_close()
    });
    let print_until_blank = || -> io::Result<()> {
        loop {
            let line = lines.recv_timeout(WAIT).map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, "the server stopped reporting")
            })?;
            common::print_line(&line)?;
            if line.is_empty() {
                return Ok(());
            }
        }
    };

    common::print_line(
        "case 1: two quick small sends arrive as one (the client sends b'hello' twice)",
    )?;
    let mut stream = client(addr)?;
    stream.write_all(b"hello")?;
    stream.write_all(b"hello")?;
    drop(stream);
    let _ = sent_tx.send(());
    print_until_blank()?;

    common::print_line(format_args!(
        "case 2: a short read leaves the rest for the next one (the client sends {} and {})",
        py_bytes(CASE_2[0]),
        py_bytes(CASE_2[1])
    ))?;
    let mut stream = client(addr)?;
    stream.write_all(CASE_2[0])?;
    stream.write_all(CASE_2[1])?;
    let _ = sent_tx.send(());
    print_until_blank()?;
    drop(stream);

    common::print_line(
        "with framing: the same four messages in one burst, then one dribbled a byte at a time",
    )?;
    let framing = Framing::new();
    let mut burst = Vec::new();
    for message in FRAMED {
        framing.write_frame(&mut burst, message)?;
    }
    let mut stream = client(addr)?;
    stream.write_all(&burst)?;
    let mut dribble = Vec::new();
    framing.write_frame(&mut dribble, DRIBBLED)?;
    for byte in dribble {
        stream.write_all(&[byte])?;
        thread::sleep(Duration::from_millis(1));
    }
    stream.shutdown(Shutdown::Write)?;
    print_until_blank()?;

    handle.shutdown();
    serving
        .join()
        .map_err(|_| io::Error::other("the serving thread panicked"))?
}

fn main() -> ExitCode {
    // `modes` offers single only: the cases must run one after another, in order.
    let args = common::parse_args(&EXAMPLE);
    common::init_logging_at("warn");
    if args.systemd {
        args.usage_error(
            "sticky_packets is a demo that connects to its own server; --systemd is not offered",
        );
    }
    common::exit_status(run(&args))
}
