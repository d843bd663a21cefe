//! The no-framework floor for the benchmarks: `echo_server`'s protocols served with plain
//! `std::net`, a thread per connection (or one loop for UDP), and nothing else.
//!
//! It reads through the same 8 KiB `BufReader`, writes the same way (one `write` or `writev`
//! straight to the socket) and answers through the same frame and line codecs as `echo_server`
//! (frames with the crate's `framing`, a codec over any `Read`/`Write`, not the server
//! framework), so the difference between the two is what the framework costs.
//!
//! ```text
//! cargo run --release --example std_echo -- --addr 127.0.0.1:0 --proto framed
//! ```

mod common;

use std::io::{self, BufRead, BufReader, IoSlice, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::thread;

use common::frame::{echo_frames, echo_lines, PROTO};
use common::{Args, Example, ModeName};

const EXAMPLE: Example = Example {
    name: "std_echo",
    about: "Plain std::net echo server, a thread per connection: the baseline for echo_server. \
            Only --mode threading is offered.",
    default_addr: "127.0.0.1:7001",
    default_mode: ModeName::Threading,
    modes: &[ModeName::Threading],
    options: &[PROTO],
};

/// A connection with buffered reads and direct writes, like `StreamRequest`.
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl BufRead for Conn {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.reader.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.reader.consume(amt);
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.reader.get_mut().write(buf)
    }
    // One `writev` for a frame's length and payload, as `StreamRequest` does.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.reader.get_mut().write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn serve_tcp(listener: TcpListener, line: bool) -> io::Result<()> {
    loop {
        let (stream, _) = match listener.accept() {
            Ok(pair) => pair,
            // Out of descriptors or an aborted connection: keep serving the others.
            Err(e) => {
                log::warn!("accept failed: {e}");
                thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let mut conn = Conn {
            reader: BufReader::with_capacity(8 * 1024, stream),
        };
        let spawned = thread::Builder::new().spawn(move || {
            let result = if line {
                echo_lines(&mut conn)
            } else {
                echo_frames(&mut conn)
            };
            if let Err(e) = result {
                log::debug!("connection ended: {e}");
            }
        });
        if let Err(e) = spawned {
            log::warn!("cannot start a thread: {e}");
        }
    }
}

fn serve_udp(socket: UdpSocket) -> io::Result<()> {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, peer) = socket.recv_from(&mut buf)?;
        socket.send_to(&buf[..n], peer)?;
    }
}

fn run(args: &Args) -> io::Result<()> {
    let proto = args.value(PROTO.name).unwrap_or("framed");
    let bind_error =
        |e: io::Error| io::Error::new(e.kind(), format!("cannot bind {}: {e}", args.addr));
    if proto == "udp" {
        let socket = UdpSocket::bind(&args.addr).map_err(bind_error)?;
        common::announce(socket.local_addr()?)?;
        return serve_udp(socket);
    }
    let listener = TcpListener::bind(&args.addr).map_err(bind_error)?;
    common::announce(listener.local_addr()?)?;
    serve_tcp(listener, proto == "line")
}

fn main() -> ExitCode {
    // `modes` offers threading only: the one way this file serves.
    let args = common::parse_args(&EXAMPLE);
    if args.systemd {
        args.usage_error("std_echo binds with plain std::net only; --systemd is not offered");
    }
    if args.grace.is_some() {
        args.usage_error(
            "std_echo serves with plain std::net only, which has no graceful stop (SIGTERM ends \
             it at once); --grace is not offered",
        );
    }
    common::init_logging_at("warn");
    common::exit_status(run(&args))
}
