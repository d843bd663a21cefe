//! `tokio_echo`: framed echo on tokio's multi-threaded runtime, the contestant a Rust user would
//! otherwise pick for many connections. Same protocol as `echo_server --proto framed`: a 4-byte
//! big-endian length and that many bytes (at most 16 MiB), echoed back unchanged in one write.
//!
//! ```text
//! cargo run --release -p socketserver-bench --features tokio --bin tokio_echo -- --addr 127.0.0.1:0
//! ```
//!
//! Same command-line convention as the examples: `--addr HOST:PORT`, and the first line on stdout
//! is `listening on <bound address>`. `--threads N` sets the runtime's worker threads (default:
//! one per core, tokio's own default).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "\
usage: tokio_echo [--addr HOST:PORT] [--threads N]

Framed echo (4-byte big-endian length prefix, at most 16 MiB) on tokio, for the benchmarks.

options:
  --addr HOST:PORT   address to listen on (default 127.0.0.1:7000; port 0 picks a free one)
  --threads N        runtime worker threads (default: one per core)
  --help             print this help
";

/// Largest payload accepted, as `echo_server`'s `MAX_FRAME`: bigger is a protocol error.
const MAX_FRAME: u32 = 16 * 1024 * 1024;

fn main() -> ExitCode {
    let (addr, threads) = match parse(std::env::args().skip(1)) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            let _ = write!(io::stderr(), "tokio_echo: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_io().enable_time();
    if let Some(n) = threads {
        runtime.worker_threads(n);
    }
    let result = runtime.build().and_then(|rt| rt.block_on(serve(addr)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(io::stderr(), "error: {e}");
            ExitCode::from(1)
        }
    }
}

/// `Ok(None)` means `--help`.
fn parse(
    args: impl IntoIterator<Item = String>,
) -> Result<Option<(SocketAddr, Option<usize>)>, String> {
    let mut addr: SocketAddr = ([127, 0, 0, 1], 7000).into();
    let mut threads = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        if name == "--help" || name == "-h" {
            return Ok(None);
        }
        let value = inline
            .or_else(|| args.next())
            .ok_or_else(|| format!("{name} needs a value"))?;
        match name.as_str() {
            "--addr" => {
                addr = value
                    .parse()
                    .map_err(|e| format!("invalid value '{value}' for --addr: {e}"))?;
            }
            "--threads" => match value.parse::<usize>() {
                Ok(n) if (1..=1024).contains(&n) => threads = Some(n),
                _ => return Err(format!("invalid value '{value}' for --threads (1 to 1024)")),
            },
            _ => return Err(format!("unknown option '{name}'")),
        }
    }
    Ok(Some((addr, threads)))
}

async fn serve(addr: SocketAddr) -> io::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    let bound = listener.local_addr()?;
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {bound}").and_then(|()| out.flush())?;
    drop(out);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(async move {
                    // A peer that sends a bad frame or resets is dropped; nothing to report.
                    let _ = echo(stream).await;
                });
            }
            // Out of descriptors, say: wait a little rather than spin, then go on accepting.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

/// Echoes frames on one connection until the peer closes it. One buffer holds the header and
/// the payload, read in place and written back in one call; it grows only as bytes arrive, so a
/// length announced but never sent costs nothing.
async fn echo(stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut stream = BufReader::new(stream);
    let mut frame = Vec::new();
    loop {
        let mut header = [0u8; 4];
        match stream.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes(header);
        if len > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame of {len} bytes is over the {MAX_FRAME}-byte limit"),
            ));
        }
        frame.clear();
        frame.extend_from_slice(&header);
        let got = (&mut stream)
            .take(u64::from(len))
            .read_to_end(&mut frame)
            .await?;
        if got < len as usize {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        stream.get_mut().write_all(&frame).await?;
    }
}
