//! Remote command execution with the seeds' header + body reply (seed 004, and 000/001/002).
//!
//! A client sends a shell command in one `send`; the server runs it with `sh -c` and answers
//! with Python's `struct.pack('i', len(header))`, a UTF-8 JSON header, then the command's stdout
//! followed by its stderr:
//!
//! ```text
//! {"filename": "output.txt", "total_size": N, "md5": "<md5 of the N bytes>",
//!  "stdout_size": S, "exit_code": 0, "timed_out": false, "truncated": false}
//! ```
//!
//! The seeds' client reads the 4-byte length, the header, then loops until `total_size` bytes
//! have arrived; the extra fields are ours and it ignores them.
//!
//! **Running shell commands for the network is dangerous.** Without a secret key this server
//! binds loopback addresses only (`127.0.0.1`, `::1`) and refuses any other `--addr`. With a key
//! (`SOCKETSERVER_SECRET` or `--secret-file PATH`, never a command-line argument) it may bind any
//! address, and every connection must pass the HMAC challenge–response handshake first
//! (`--digest`, SHA-256 by default). The handshake keeps out clients without the key; it does not
//! encrypt commands or output, so beyond a trusted network run it through TLS or SSH.
//!
//! Each command runs with no stdin, in its own process group, for at most `--timeout` seconds
//! (then the whole group is killed) and with at most `--max-output` bytes of output kept (the
//! rest is cut and the command killed). Either case is reported in the header and in a note at
//! the end of the output.
//!
//! ```text
//! cargo run --example remote_cmd                                   # 127.0.0.1:8080
//! cargo run --example client -- remote-cmd --addr 127.0.0.1:8080   # type commands
//! ```

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::preview::preview;
use common::{Args, Example, ExtraOption, ModeName};
use serde_json::json;
use socketserver::auth::{Authenticator, Digest, Secret};
use socketserver::framing::{md5_hex, Framing};
use socketserver::{RequestHandler, StreamRequest};

const EXAMPLE: Example = Example {
    name: "remote_cmd",
    about: "Runs each command a client sends with `sh -c` and answers with a struct 'i' + JSON header (total_size, md5) and the output (seed 004).",
    default_addr: "127.0.0.1:8080",
    default_mode: ModeName::Threading,
    options: &[
        ExtraOption {
            name: "--secret-file",
            value: "PATH",
            help: "require the HMAC handshake with this key (default: $SOCKETSERVER_SECRET if set)",
            check: common::any_value,
        },
        ExtraOption {
            name: "--digest",
            value: "md5|sha256",
            help: "HMAC hash of the handshake (default sha256)",
            check: common::check_parses::<Digest>,
        },
        ExtraOption {
            name: "--timeout",
            value: "SECS",
            help: "time limit per command (default 10)",
            check: common::check_parses::<f64>,
        },
        ExtraOption {
            name: "--max-output",
            value: "BYTES",
            help: "most output kept per command, stdout and stderr together (default 1048576)",
            check: common::check_parses::<usize>,
        },
    ],
};

/// The most a command line may be: one read of this size, as the seeds' `recv(1024)`, larger.
const MAX_COMMAND: usize = 8192;

/// Limits on every command.
#[derive(Clone, Copy)]
struct Limits {
    timeout: Duration,
    max_output: usize,
}

/// What running a command produced.
struct Output {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit_code: Option<i32>,
    timed_out: bool,
    truncated: bool,
}

#[derive(Clone)]
struct RemoteCommand {
    limits: Limits,
}

impl RequestHandler<StreamRequest> for RemoteCommand {
    fn handle(&mut self, req: &mut StreamRequest) -> io::Result<()> {
        let peer = req.peer_addr().clone();
        let framing = Framing::python_struct_i();
        let mut buf = vec![0u8; MAX_COMMAND];
        loop {
            // The seeds' protocol: the command is whatever one read returns.
            let n = match req.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let command = String::from_utf8_lossy(&buf[..n]).into_owned();
            log::debug!("{peer} runs {}", preview(command.as_bytes()));
            let output = run_command(&command, self.limits)?;
            let header = json!({
                "filename": "output.txt",
                "total_size": output.stdout.len() + output.stderr.len(),
                "md5": md5_hex(&[output.stdout.as_slice(), output.stderr.as_slice()].concat()),
                "stdout_size": output.stdout.len(),
                "exit_code": output.exit_code,
                "timed_out": output.timed_out,
                "truncated": output.truncated,
            });
            let header = header.as_object().cloned().unwrap_or_default();
            framing.write_header(req, &header)?;
            req.write_all(&output.stdout)?;
            req.write_all(&output.stderr)?;
        }
    }
}

/// Runs `command` with `sh -c` under `limits`.
fn run_command(command: &str, limits: Limits) -> io::Result<Output> {
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a time limit kills whatever the command started as well.
        .process_group(0)
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start /bin/sh: {e}")))?;
    let group = child.id() as i32;
    let (tx, rx) = mpsc::channel();
    let stdout = child
        .stdout
        .take()
        .map(|pipe| collect(pipe, limits.max_output, 0, tx.clone()));
    let stderr = child
        .stderr
        .take()
        .map(|pipe| collect(pipe, limits.max_output, 1, tx.clone()));
    drop(tx);

    let deadline = Instant::now() + limits.timeout;
    let mut pieces: [Option<(Vec<u8>, bool)>; 2] = [None, None];
    let mut timed_out = false;
    let mut over_limit = false;
    // Wait for both pipes to close (or to overflow), or for the time limit.
    while pieces.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((index, data, overflowed)) => {
                if overflowed && !over_limit {
                    over_limit = true;
                    kill_group(group);
                }
                pieces[index] = Some((data, overflowed));
            }
            Err(mpsc::RecvTimeoutError::Timeout) if !timed_out => {
                timed_out = true;
                kill_group(group);
                // Killed processes close their pipes at once; give the readers a moment.
                let grace = Instant::now() + Duration::from_secs(1);
                while pieces.iter().any(Option::is_none) {
                    match rx.recv_timeout(grace.saturating_duration_since(Instant::now())) {
                        Ok((index, data, overflowed)) => pieces[index] = Some((data, overflowed)),
                        Err(_) => break,
                    }
                }
                break;
            }
            Err(_) => break,
        }
    }
    let exit_code = wait_bounded(&mut child, group)?;
    kill_group(group); // anything the command left running in the background
    drop((stdout, stderr));

    let [out, err] = pieces;
    let (mut stdout, cut_out) = out.unwrap_or_default();
    let (mut stderr, cut_err) = err.unwrap_or_default();
    let mut truncated = cut_out || cut_err;
    if stdout.len() + stderr.len() > limits.max_output {
        truncated = true;
        stdout.truncate(limits.max_output);
        stderr.truncate(limits.max_output - stdout.len());
    }
    if truncated {
        stderr.extend_from_slice(
            format!(
                "\n[remote_cmd: output cut at {} bytes]\n",
                limits.max_output
            )
            .as_bytes(),
        );
    }
    if timed_out {
        stderr.extend_from_slice(
            format!("\n[remote_cmd: killed after {:?}]\n", limits.timeout).as_bytes(),
        );
    }
    Ok(Output {
        stdout,
        stderr,
        exit_code: if timed_out || over_limit {
            None
        } else {
            exit_code
        },
        timed_out,
        truncated,
    })
}

/// Reads `pipe` on a thread, keeping at most `limit` bytes; reports `(index, bytes, overflowed)`
/// when the pipe closes or as soon as it overflows.
fn collect(
    mut pipe: impl Read + Send + 'static,
    limit: usize,
    index: usize,
    done: mpsc::Sender<(usize, Vec<u8>, bool)>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut data = Vec::new();
        let mut buf = [0u8; 8192];
        let overflowed = loop {
            match pipe.read(&mut buf) {
                Ok(0) => break false,
                Ok(n) => {
                    data.extend_from_slice(&buf[..n]);
                    if data.len() > limit {
                        data.truncate(limit);
                        break true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        let _ = done.send((index, data, overflowed));
    })
}

/// Reaps the shell, killing its group if it does not exit promptly; its exit code, if it had one.
fn wait_bounded(child: &mut Child, group: i32) -> io::Result<Option<i32>> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.code());
        }
        if Instant::now() >= deadline {
            kill_group(group);
            return child.wait().map(|status| status.code());
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn kill_group(group: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved. The
    // group is the shell's own (process_group(0)), so only the command's processes are hit.
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
}

/// Whether every address `addr` resolves to is a loopback address.
fn loopback_only(addr: &str) -> io::Result<bool> {
    let resolved: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot resolve {addr}: {e}")))?
        .collect();
    Ok(!resolved.is_empty() && resolved.iter().all(|a| a.ip().is_loopback()))
}

fn run(args: &Args) -> io::Result<()> {
    let limits = Limits {
        timeout: Duration::from_secs_f64(args.parsed("--timeout", 10.0f64).clamp(0.001, 86_400.0)),
        max_output: args.parsed("--max-output", 1024 * 1024),
    };
    let file = args.value("--secret-file").map(Path::new);
    let secret = Secret::load(file, "SOCKETSERVER_SECRET")?;
    let digest = args.parsed("--digest", Digest::Sha256);
    let handler = RemoteCommand { limits };
    match secret {
        Some(secret) => {
            let auth = Authenticator::new(secret).digest(digest);
            log::info!("every connection must pass an HMAC-{digest} handshake");
            common::serve_tcp(args, args.builder(), auth.require(handler))
        }
        None => {
            if !loopback_only(&args.addr)? {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "refusing to run shell commands for {} without a secret key: bind a loopback address (127.0.0.1, ::1) or set SOCKETSERVER_SECRET / --secret-file so clients must authenticate",
                        args.addr
                    ),
                ));
            }
            log::warn!("no secret key: any local user can run commands as this user");
            common::serve_tcp(args, args.builder(), handler)
        }
    }
}

fn main() -> ExitCode {
    let args = common::parse_args(&EXAMPLE);
    common::init_logging();
    common::exit_status(run(&args))
}
