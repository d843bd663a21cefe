//! Remote command execution with the Python socket tutorial's header + body reply.
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
//! The tutorial's client reads the 4-byte length, the header, then loops until `total_size` bytes
//! have arrived; the extra fields are ours and it ignores them.
//!
//! **Running shell commands for the network is dangerous.** Clients must prove who they are in
//! one of two ways before this server binds anything but a loopback address (`127.0.0.1`, `::1`):
//!
//! * **Mutual TLS** (the library's `tls` feature): `--tls-cert FILE --tls-key FILE` serve TLS,
//!   and `--tls-client-ca FILE` makes every client present a certificate from that CA. The
//!   handshake fails for a client without one, before any command is read; the server logs each
//!   client's certificate (subject and serial) as it connects, and names it in its per-command
//!   debug lines. Commands and output are encrypted. This is the modern form of the HMAC login.
//! * **The HMAC login**: a secret key (`SOCKETSERVER_SECRET` or `--secret-file PATH`, never a
//!   command-line argument); every connection must pass the challenge–response handshake first
//!   (`--digest`, SHA-256 by default). It keeps out clients without the key, but does not
//!   encrypt commands or output: beyond a trusted network, serve it over TLS too.
//!
//! The two combine: with a key configured the HMAC login is still required, over TLS (a client
//! then needs both the certificate and the key); with mutual TLS a key is not required.
//! `--tls-cert` without `--tls-client-ca` encrypts but authenticates no client, so on its own it
//! still allows only loopback addresses.
//!
//! **The tutorial's protocol has no framing**: a command is whatever one `recv` returns, so TCP
//! cutting a command in two, or merging two, makes the server run the wrong commands. This server
//! never runs a fragment it can detect:
//!
//! * an unframed command is gathered until the connection has been quiet for `--quiet-time` seconds
//!   (0.2 by default): the tutorial's client sends one command and then waits for the reply, so
//!   whatever arrives before the reply is one command. Pieces sent further apart than that would
//!   still be taken for two commands — the limit of any unframed protocol;
//! * an unframed command longer than 8192 bytes (one read of the server's buffer) is not run at
//!   all, not even in part: its bytes are dropped until the connection is quiet and the client
//!   gets an error reply;
//! * a framed request — `\xffrc1`, a 4-byte big-endian length, then the command (up to 64 KiB)
//!   — is read exactly, however it is split. `client remote-cmd` sends these. 0xFF never occurs
//!   in UTF-8 or GBK text, so a tutorial client's command cannot be mistaken for one.
//!
//! An error reply has the same form as any other: the header (with an extra `"error"` field,
//! `exit_code` null) and a one-line message as the output, which the tutorial's client prints.
//!
//! Each command runs with no stdin for at most `--timeout` seconds, with at most `--max-output`
//! bytes of output kept (the rest is cut and the command killed); either case is reported in the
//! header and in a note at the end of the output. The limit covers every process the command
//! starts, including those that leave its process group (`setsid`) or double-fork: the command
//! runs under a small runner process that is a Linux child subreaper (see `remote_cmd/runner.rs`),
//! which kills the whole tree at the limit, and also as soon as the shell exits, so nothing the
//! command leaves in the background survives it. At most `--max-commands` commands (8 by
//! default) run at once; past that, a command gets an error reply instead of running. (The count
//! is per server process: in `--mode process`, where each connection is a process of its own,
//! `--max-children` is the cap; in `--mode prefork` each worker counts its own.)
//!
//! ```text
//! cargo run --example remote_cmd                                   # 127.0.0.1:8080
//! cargo run --example client -- remote-cmd --addr 127.0.0.1:8080   # type commands
//! ```
//!
//! Over mutual TLS, reachable from other hosts, any TLS client with a certificate from `ca.pem`
//! (the tutorial's Python client works with its socket wrapped by an `ssl.SSLContext` holding
//! `load_cert_chain("client.crt", "client.key")`):
//!
//! ```text
//! cargo run --features tls --example remote_cmd -- --addr 0.0.0.0:8443 \
//!     --tls-cert server.crt --tls-key server.key --tls-client-ca ca.pem
//! ```

mod common;
#[path = "remote_cmd/request.rs"]
mod request;
#[path = "remote_cmd/runner.rs"]
mod runner;
#[path = "remote_cmd/wire.rs"]
mod wire;

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::preview::preview;
use common::{Args, Example, ExtraOption, ModeName};
use request::{read_request, Request};
use serde_json::{json, Value};
use socketserver::auth::{Authenticator, Digest, Secret};
use socketserver::framing::{md5_hex, Framing};
use socketserver::{RequestHandler, StreamRequest};

const EXAMPLE: Example = Example {
    name: "remote_cmd",
    about: "Runs each command a client sends with `sh -c` and answers with a struct 'i' + JSON header (total_size, md5) and the output, as the Python tutorial's remote-command server does.",
    default_addr: "127.0.0.1:8080",
    default_mode: ModeName::Threading,
    modes: ModeName::ALL,
    options: &[
        common::METRICS,
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
        ExtraOption {
            name: "--max-commands",
            value: "N",
            help: "most commands running at once; past it, an error reply (default 8)",
            check: common::check_positive,
        },
        ExtraOption {
            name: "--quiet-time",
            value: "SECS",
            help: "an unframed command (the Python tutorial client's) is complete once no byte came for this long (default 0.2)",
            check: check_quiet_time,
        },
        common::IDLE_TIMEOUT,
        common::MAX_LIFETIME,
        common::TLS_CERT,
        common::TLS_KEY,
        common::TLS_CLIENT_CA,
    ],
};

fn check_quiet_time(value: &str) -> Result<(), String> {
    match value.parse::<f64>() {
        Ok(secs) if (0.001..=10.0).contains(&secs) => Ok(()),
        _ => Err("expected seconds between 0.001 and 10".to_string()),
    }
}

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
    quiet: Duration,
    /// The program that runs a command: this one, as its runner (see `runner.rs`).
    runner: Arc<PathBuf>,
    slots: Slots,
}

impl RequestHandler<StreamRequest> for RemoteCommand {
    fn handle(&mut self, req: &mut StreamRequest) -> io::Result<()> {
        let peer = client_name(req);
        loop {
            let command = match read_request(req, self.quiet)? {
                Request::End => return Ok(()),
                Request::Refused { message, close } => {
                    // Per request, so DEBUG: a flood of bad requests must not flood the log.
                    log::debug!("{peer}: {message}");
                    reply_error(req, &message)?;
                    if close {
                        return Ok(());
                    }
                    continue;
                }
                Request::Command(command) => command,
            };
            if command.contains(&0) {
                reply_error(
                    req,
                    "the command contains a NUL byte, which no shell command can",
                )?;
                continue;
            }
            let Some(_slot) = self.slots.take() else {
                let message = format!(
                    "busy: {} command(s) are running, the most --max-commands allows; try again later",
                    self.slots.max
                );
                log::debug!("{peer}: {message}");
                reply_error(req, &message)?;
                continue;
            };
            log::debug!("{peer} runs {}", preview(&command));
            let output = run_command(&self.runner, OsStr::from_bytes(&command), self.limits)?;
            let header = json!({
                "filename": "output.txt",
                "total_size": output.stdout.len() + output.stderr.len(),
                "md5": md5_hex(&[output.stdout.as_slice(), output.stderr.as_slice()].concat()),
                "stdout_size": output.stdout.len(),
                "exit_code": output.exit_code,
                "timed_out": output.timed_out,
                "truncated": output.truncated,
            });
            send_reply(req, header, &output.stdout, &output.stderr)?;
        }
    }
}

/// Who the connection is from, for the log: its address and, over mutual TLS, the subject of its
/// verified certificate. A certified client's connection is logged at `info`: an audit trail of
/// who may run commands (only holders of a certificate from the CA get this far, so it cannot
/// be flooded by strangers).
fn client_name(req: &StreamRequest) -> String {
    #[cfg(feature = "tls")]
    if let Some(cert) = req.tls().and_then(|tls| tls.peer()) {
        let who = cert.common_name().unwrap_or(cert.subject());
        log::info!(
            "{}: client certificate {} (serial {})",
            req.peer_addr(),
            cert.subject(),
            cert.serial()
        );
        return format!("{} ({who})", req.peer_addr());
    }
    req.peer_addr().to_string()
}

/// The tutorial's reply: `struct 'i'` length, JSON header, then the output.
fn send_reply(
    req: &mut StreamRequest,
    header: Value,
    stdout: &[u8],
    stderr: &[u8],
) -> io::Result<()> {
    let header = header.as_object().cloned().unwrap_or_default();
    Framing::python_struct_i().write_header(req, &header)?;
    req.write_all(stdout)?;
    req.write_all(stderr)
}

/// An error in the tutorial's reply format: the header says `total_size`, `md5` and `"error"`, and
/// the output is one line the tutorial's client prints.
fn reply_error(req: &mut StreamRequest, message: &str) -> io::Result<()> {
    let text = format!("[remote_cmd: {message}]\n");
    let header = json!({
        "filename": "output.txt",
        "total_size": text.len(),
        "md5": md5_hex(text.as_bytes()),
        "stdout_size": 0,
        "exit_code": null,
        "timed_out": false,
        "truncated": false,
        "error": message,
    });
    send_reply(req, header, b"", text.as_bytes())
}

/// Counts the commands running, up to `max`.
#[derive(Clone)]
struct Slots {
    running: Arc<AtomicUsize>,
    max: usize,
}

/// One running command; its slot is free again when this is dropped.
struct Slot(Arc<AtomicUsize>);

impl Slots {
    fn take(&self) -> Option<Slot> {
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(Arc::clone(&self.running)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs `command` with `sh -c`, under a runner (see `runner.rs`), within `limits`.
fn run_command(runner: &Path, command: &OsStr, limits: Limits) -> io::Result<Output> {
    let mut child = Command::new(runner)
        .arg0("remote_cmd-runner") // what `ps` shows, with the command
        .arg(command)
        .env(runner::RUNNER_VAR, "1")
        // Out of the server's process group, so a Ctrl-C meant for the server does not kill the
        // runner before it has ended the command (the server's exit closes the lifeline).
        .process_group(0)
        // The lifeline: closing it (or the server dying) ends the command's whole tree.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot start the command runner {}: {e}", runner.display()),
            )
        })?;
    let mut lifeline = child.stdin.take();
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
                    drop(lifeline.take());
                }
                pieces[index] = Some((data, overflowed));
            }
            Err(mpsc::RecvTimeoutError::Timeout) if !timed_out => {
                timed_out = true;
                drop(lifeline.take());
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
    drop(lifeline);
    let exit_code = wait_bounded(&mut child)?;
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

/// Reaps the runner, which exits once the command's tree is gone. One that does not within 2 s
/// is killed, its descendants first (they would escape to init once it is gone).
fn wait_bounded(child: &mut Child) -> io::Result<Option<i32>> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.code());
        }
        if Instant::now() >= deadline {
            let pid = child.id() as libc::pid_t;
            runner::kill_descendants(pid);
            let _ = child.kill();
            return child.wait().map(|status| status.code());
        }
        thread::sleep(Duration::from_millis(5));
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
    let handler = RemoteCommand {
        limits,
        quiet: Duration::from_secs_f64(args.parsed("--quiet-time", 0.2)),
        runner: Arc::new(runner::program()?),
        slots: Slots {
            running: Arc::new(AtomicUsize::new(0)),
            max: args.parsed("--max-commands", 8),
        },
    };
    // Mutual TLS authenticates every client by its certificate; the HMAC login, if a key is
    // configured, is still asked for after it.
    let certified = args.mutual_tls();
    match secret {
        Some(secret) => {
            let auth = Authenticator::new(secret).digest(digest);
            if certified {
                log::info!("every connection must present a client certificate, then pass an HMAC-{digest} handshake");
            } else {
                log::info!("every connection must pass an HMAC-{digest} handshake");
            }
            common::serve_tcp(args, args.builder(), auth.require(handler))
        }
        None => {
            if certified {
                log::info!("every connection must present a client certificate (mutual TLS)");
            } else if !loopback_only(&args.addr)? {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "refusing to run shell commands for {} without authenticating clients: bind a loopback address (127.0.0.1, ::1), require client certificates (--tls-cert, --tls-key and --tls-client-ca), or set SOCKETSERVER_SECRET / --secret-file for the HMAC login",
                        args.addr
                    ),
                ));
            } else {
                log::warn!("no secret key: any local user can run commands as this user");
            }
            common::serve_tcp(args, args.builder(), handler)
        }
    }
}

fn main() -> ExitCode {
    // Started by the server to run one command? Then only that (see `runner.rs`).
    runner::run_if_runner();
    let args = common::parse_args(&EXAMPLE);
    common::init_logging();
    common::exit_status(run(&args))
}
