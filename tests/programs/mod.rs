//! Running programs as a user would, for the integration tests: the example binaries (built on
//! demand), servers found through their `listening on <addr>` line, programs run to completion
//! with or without input, interactive children fed line by line, and the seeds' Python clients
//! with scripted input.
//!
//! Every child process is killed and reaped by a guard, whatever the test's outcome; every read
//! and every wait has a deadline; servers listen on `127.0.0.1:0`, never at a fixed port.
//!
//! Every test binary uses a different subset of these, hence the module-wide `dead_code` allowance.
#![allow(dead_code)]

mod binaries;
pub mod clock;
mod interactive;
mod pipes;
pub mod python;
#[path = "../skip/mod.rs"]
pub mod skip;

use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

// Only the tests of the benchmark tools (`loadgen`, below) use it.
#[allow(unused_imports)]
pub use binaries::bench_tool;
pub use binaries::example;
pub use interactive::Interactive;
use pipes::{drain, wait_with_deadline, ChildGuard, Drained};

/// Read and write timeout of every test socket.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to print its `listening on` line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a program that should end by itself (tour, a bad command line, a client) may run.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server may take to log what a test waits for.
pub const LOG_TIMEOUT: Duration = Duration::from_secs(20);

/// The arguments that choose each API of an example written both ways (`resp_kv`,
/// `http_hello`): none for the stream API (in the example's default mode) and, with the
/// `message` feature, `--api message` in single mode (one event loop, and two), and in pool mode,
/// so a test run against each shows they answer the same.
pub fn apis() -> Vec<Vec<&'static str>> {
    #[allow(unused_mut)]
    let mut apis = vec![vec![]];
    #[cfg(feature = "message")]
    apis.extend([
        vec!["--api", "message", "--mode", "single"],
        vec!["--api", "message", "--mode", "pool", "--workers", "2"],
        vec!["--api", "message", "--mode", "single", "--loops", "2"],
    ]);
    apis
}

/// A client connection to `addr`, with [`IO_TIMEOUT`] on every read and write so a server that
/// never answers fails the test instead of hanging it.
pub fn connect(addr: SocketAddr) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Runs `loadgen --addr ADDR --duration 30 --json ARGS` to completion (its JSON line on stdout).
pub fn loadgen(addr: SocketAddr, args: &[&str]) -> Run {
    let mut command = Command::new(bench_tool("loadgen"));
    command
        .args(["--addr", &addr.to_string(), "--duration", "30", "--json"])
        .args(args);
    Run::to_completion(command, RUN_TIMEOUT)
}

/// The value of a numeric field in loadgen's JSON line.
pub fn field(json: &str, name: &str) -> f64 {
    let key = format!("\"{name}\":");
    let at = json
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {json}"));
    let rest = &json[at + key.len()..];
    let end = rest.find([',', '}']).unwrap();
    rest[..end].parse().unwrap()
}

/// An example server running as a child process; killed and reaped when dropped.
pub struct Server {
    child: Child,
    stderr: Drained,
    /// The address from its `listening on` line.
    pub addr: SocketAddr,
    /// With `--metrics ADDR`: the admin listener's address, from its `metrics on` line.
    pub metrics: Option<SocketAddr>,
}

impl Server {
    /// Starts `name --addr 127.0.0.1:0 <args>` and reads the address from its first stdout line.
    pub fn start(name: &str, args: &[&str]) -> Server {
        Server::start_with_env(name, args, &[])
    }

    /// [`start`](Self::start) with extra environment variables, such as `TZ`. `RUST_LOG` and
    /// `SOCKETSERVER_SECRET` are not passed on from the test's environment.
    pub fn start_with_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(example(name))
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("SOCKETSERVER_SECRET")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        // From here on, the guard kills the child however this function ends.
        let mut guard = ChildGuard(Some(child));

        let (line_tx, line_rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            // The `listening on` line, and the `metrics on` line that may follow.
            for _ in 0..2 {
                let mut line = String::new();
                let read = reader.read_line(&mut line).map(|_| line);
                let _ = line_tx.send(read);
            }
            // Keep draining, so the server never blocks on a full pipe.
            let _ = io::copy(&mut reader, &mut io::sink());
        });
        let first = match line_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => panic!("{name}: cannot read stdout: {e}"),
            Err(_) => panic!(
                "{name} printed no line within {STARTUP_TIMEOUT:?}; stderr:\n{}",
                stderr.snapshot()
            ),
        };
        let Some(line) = first.strip_suffix('\n') else {
            panic!(
                "{name}: expected a `listening on` line, got {first:?}; stderr:\n{}",
                stderr.snapshot()
            );
        };
        let addr: SocketAddr = line
            .strip_prefix("listening on ")
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("{name}: first stdout line is {line:?}, expected `listening on 127.0.0.1:<port>`; stderr:\n{}", stderr.snapshot()));
        assert_eq!(line, format!("listening on 127.0.0.1:{}", addr.port()));
        assert!(
            addr.ip().is_loopback() && addr.port() != 0,
            "{name}: {line}"
        );
        let metrics = args.contains(&"--metrics").then(|| {
            let line = match line_rx.recv_timeout(STARTUP_TIMEOUT) {
                Ok(Ok(line)) => line,
                other => panic!(
                    "{name}: no `metrics on` line ({other:?}); stderr:\n{}",
                    stderr.snapshot()
                ),
            };
            line.trim_end()
                .strip_prefix("metrics on ")
                .and_then(|addr| addr.parse().ok())
                .unwrap_or_else(|| panic!("{name}: second stdout line is {line:?}, expected `metrics on 127.0.0.1:<port>`"))
        });
        Server {
            child: guard.0.take().expect("the child"),
            stderr,
            addr,
            metrics,
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the server process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child, which is reaped only by `wait_exit` or on drop.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill: {}", io::Error::last_os_error());
    }

    /// The server's exit status once it has exited, or `None` if it still runs after `timeout`.
    /// Once it has exited, what it wrote to stderr last has been read too (so
    /// [`log_so_far`](Self::log_so_far) has its final lines).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = wait_with_deadline(&mut self.child, timeout)?;
        self.stderr.wait_closed(Duration::from_secs(2));
        Some(status)
    }

    /// Everything the server wrote to stderr so far.
    pub fn log_so_far(&self) -> String {
        self.stderr.snapshot()
    }

    /// Waits (at most [`LOG_TIMEOUT`]) until the server's stderr contains `text`; returns all of
    /// it so far.
    pub fn wait_for_log(&self, text: &str) -> String {
        self.wait_for_log_count(text, 1)
    }

    /// [`wait_for_log`](Self::wait_for_log) until `text` is there `times` times (one line per
    /// worker, say).
    pub fn wait_for_log_count(&self, text: &str, times: usize) -> String {
        let deadline = Instant::now() + LOG_TIMEOUT;
        loop {
            let log = self.stderr.snapshot();
            if log.matches(text).count() >= times {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "server log never said {text:?} {times} time(s):\n{log}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A program run to its end: exit status and output.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Runs `command` with no input, failing the test (after killing the child) if it is still
    /// running after `timeout`.
    pub fn to_completion(command: Command, timeout: Duration) -> Run {
        Run::start(command, None, timeout)
    }

    /// [`to_completion`](Self::to_completion) with `input` on stdin, then the end of stdin.
    pub fn with_input(command: Command, input: &[u8], timeout: Duration) -> Run {
        Run::start(command, Some(input), timeout)
    }

    fn start(mut command: Command, input: Option<&[u8]>, timeout: Duration) -> Run {
        let what = format!("{command:?}");
        let mut child = command
            .env_remove("RUST_LOG")
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        let stdout = drain(child.stdout.take().expect("piped stdout"));
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            let input = input.to_vec();
            // A thread, so a child that stops reading cannot block the test; dropping `stdin`
            // at its end closes it.
            thread::spawn(move || {
                let _ = stdin.write_all(&input);
            });
        }
        let mut guard = ChildGuard(Some(child));
        let status = wait_with_deadline(guard.child(), timeout).unwrap_or_else(|| {
            panic!(
                "{what} still running after {timeout:?}; killed it. stdout:\n{}\nstderr:\n{}",
                stdout.snapshot(),
                stderr.snapshot()
            )
        });
        guard.0 = None;
        Run {
            status,
            stdout: stdout.all(&what),
            stderr: stderr.all(&what),
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout:\n{}--- stderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// A fresh, empty scratch folder for the test `test`.
pub fn scratch(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
