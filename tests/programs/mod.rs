//! Running programs as a user would, for the integration tests: the example binaries (built on
//! demand), found through their `listening on <addr>` line; the seeds' Python clients with
//! scripted input; and interactive children fed line by line.
//!
//! Every child process is killed and reaped by a guard, whatever the test's outcome; every read
//! and every wait has a deadline; servers are found through their `listening on <addr>` line, never
//! at a fixed port.
//!
//! Every test binary uses a different subset of these, hence the module-wide `dead_code` allowance.
#![allow(dead_code)]

pub mod clock;

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// Read and write timeout of every test socket.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to print its `listening on` line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a program that should end by itself (tour, a bad command line, a Python client) may
/// run.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long building the examples may take, when the test has to do it.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

// ---------------------------------------------------------------------------------------------
// The seeds' Python clients

/// Whether `python3` can be run; prints why the test is skipped when it cannot.
pub fn python3_available() -> bool {
    let found = Command::new("python3")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        println!("skipped: python3 is not on PATH, so the seeds' Python clients cannot run");
    }
    found
}

/// Runs a seed client `script` against `port`: `python3 -c script <port> <input...>`. The scripts
/// replace `input()` with one that returns the next of `input`, and ends the program when none
/// are left.
pub fn run_python(script: &str, port: u16, input: &[&str]) -> Run {
    let mut command = Command::new("python3");
    command
        .args(["-c", script, &port.to_string()])
        .args(input)
        .env("PYTHONIOENCODING", "utf-8")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    Run::to_completion(command, RUN_TIMEOUT)
}

/// `python3 -u -c script <args...>` as an [`Interactive`] child: its `input()` should read
/// stdin, so the test can type one line at a time.
pub fn interactive_python(script: &str, args: &[&str]) -> Interactive {
    let mut command = Command::new("python3");
    command
        .args(["-u", "-c", script])
        .args(args)
        .env("PYTHONIOENCODING", "utf-8")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    Interactive::start(command)
}

// ---------------------------------------------------------------------------------------------
// Running the examples

/// An example server running as a child process; killed and reaped when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `name --addr 127.0.0.1:0 <args>` and reads the address from its first stdout line.
    pub fn start(name: &str, args: &[&str]) -> Server {
        Server::start_with_env(name, args, &[])
    }

    /// [`start`](Self::start) with extra environment variables, such as `TZ`.
    pub fn start_with_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(example(name))
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
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
            let mut first = String::new();
            let read = reader.read_line(&mut first).map(|_| first);
            let _ = line_tx.send(read);
            // Keep draining, so the server never blocks on a full pipe.
            let _ = io::copy(&mut reader, &mut io::sink());
        });
        let first = match line_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => panic!("{name}: cannot read stdout: {e}"),
            Err(_) => panic!(
                "{name} printed no line within {STARTUP_TIMEOUT:?}; stderr:\n{}",
                snapshot(&stderr)
            ),
        };
        let Some(line) = first.strip_suffix('\n') else {
            panic!(
                "{name}: expected a `listening on` line, got {first:?}; stderr:\n{}",
                snapshot(&stderr)
            );
        };
        let addr: SocketAddr = line
            .strip_prefix("listening on ")
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("{name}: first stdout line is {line:?}, expected `listening on 127.0.0.1:<port>`"));
        assert_eq!(line, format!("listening on 127.0.0.1:{}", addr.port()));
        assert!(
            addr.ip().is_loopback() && addr.port() != 0,
            "{name}: {line}"
        );
        Server {
            child: guard.0.take().expect("the child"),
            addr,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills and reaps a child unless it was taken out.
pub struct ChildGuard(pub Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
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
    pub fn to_completion(mut command: Command, timeout: Duration) -> Run {
        let what = format!("{command:?}");
        let mut child = command
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        let stdout = drain(child.stdout.take().expect("piped stdout"));
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        let mut guard = ChildGuard(Some(child));
        let status = wait_with_deadline(guard.0.as_mut().expect("the child"), timeout)
            .unwrap_or_else(|| {
                panic!(
                    "{what} still running after {timeout:?}; killed it. stdout:\n{}\nstderr:\n{}",
                    snapshot(&stdout),
                    snapshot(&stderr)
                )
            });
        guard.0 = None;
        Run {
            status,
            // The pipes close when the child exits; the drain threads finish right after.
            stdout: drained(stdout, &what),
            stderr: drained(stderr, &what),
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

/// Polls `child` until it exits or `timeout` passes (`None`).
pub fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) => return None,
            Err(e) => panic!("cannot wait for a child process: {e}"),
        }
    }
}

/// Output collected by a thread reading a pipe to its end.
pub struct Drained {
    text: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

pub fn drain(mut pipe: impl Read + Send + 'static) -> Drained {
    let text = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&text);
    let (done_tx, done) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
        let _ = done_tx.send(());
    });
    Drained { text, done }
}

/// What has been read so far.
pub fn snapshot(drained: &Drained) -> String {
    String::from_utf8_lossy(&drained.text.lock().unwrap()).into_owned()
}

/// Everything, once the pipe has closed.
pub fn drained(drained: Drained, what: &str) -> String {
    if drained.done.recv_timeout(IO_TIMEOUT).is_err() {
        panic!("{what}: its output pipe stayed open after it exited");
    }
    snapshot(&drained)
}

// ---------------------------------------------------------------------------------------------
// Finding the example binaries

/// The path of the compiled example `name`, building the examples first if needed.
///
/// `cargo test` builds the examples next to the test binaries (`target/<profile>/examples/`);
/// `cargo test --test examples_cli` does not, so when a binary is missing, or older than the
/// sources, the first test to notice runs `cargo build --examples` into the same target directory.
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let profile_dir = profile_dir();
    let path = profile_dir.join("examples").join(name);
    if !path.exists() || older_than_sources(&path) {
        if let Err(e) = BUILT.get_or_init(|| build_examples(&profile_dir)) {
            panic!("cannot build example binary {}: {e}", path.display());
        }
    }
    assert!(
        path.exists(),
        "example binary {} is missing even after `cargo build --examples`",
        path.display()
    );
    path
}

/// `target/<profile>`: the test binary lives in its `deps` directory.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe.parent().expect("the test binary's directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("the profile directory").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Whether any file under `src/` or `examples/`, or `Cargo.toml`, changed after `binary` was built.
fn older_than_sources(binary: &Path) -> bool {
    fn newest(path: &Path) -> Option<SystemTime> {
        let meta = fs::metadata(path).ok()?;
        if !meta.is_dir() {
            return meta.modified().ok();
        }
        fs::read_dir(path)
            .ok()?
            .filter_map(|entry| newest(&entry.ok()?.path()))
            .max()
    }
    let Some(built) = fs::metadata(binary).and_then(|m| m.modified()).ok() else {
        return true;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    ["src", "examples", "Cargo.toml"]
        .iter()
        .filter_map(|part| newest(&root.join(part)))
        .any(|changed| changed > built)
}

fn build_examples(profile_dir: &Path) -> Result<(), String> {
    let mut command = Command::new(env!("CARGO"));
    command
        .args(["build", "--examples"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // Build into the target directory this test binary came from, with the same profile.
    if let Some(target_dir) = profile_dir.parent() {
        command.arg("--target-dir").arg(target_dir);
    }
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(profile) => {
            command.args(["--profile", profile]);
        }
    }
    let what = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let mut guard = ChildGuard(Some(child));
    let status = wait_with_deadline(guard.0.as_mut().expect("the child"), BUILD_TIMEOUT)
        .ok_or_else(|| format!("{what} did not finish within {BUILD_TIMEOUT:?}"))?;
    guard.0 = None;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({status}):\n{}",
            drained(stderr, &what)
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Interactive children

/// A child process the test types into line by line and reads line by line, each read with a
/// deadline. Killed and reaped when dropped, unless [`finish`](Self::finish) saw it exit.
pub struct Interactive {
    what: String,
    guard: ChildGuard,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: Drained,
}

impl Interactive {
    /// Starts `command` with piped stdin, stdout and stderr.
    pub fn start(mut command: Command) -> Interactive {
        let what = format!("{command:?}");
        let mut child = command
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        let text = text.strip_suffix('\n').unwrap_or(&text).to_string();
                        if tx.send(text).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Interactive {
            what,
            guard: ChildGuard(Some(child)),
            stdin,
            lines,
            stderr,
        }
    }

    /// Types `line` and a newline.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is still open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: cannot write to stdin: {e}", self.what));
    }

    /// The next line of stdout, waiting at most [`IO_TIMEOUT`].
    pub fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(IO_TIMEOUT) {
            Ok(line) => line,
            Err(_) => panic!(
                "{}: no line on stdout within {IO_TIMEOUT:?} (or it closed); stderr:\n{}",
                self.what,
                snapshot(&self.stderr)
            ),
        }
    }

    /// Closes stdin and waits (at most [`RUN_TIMEOUT`]) for the child to exit; returns its status,
    /// the stdout lines not yet read, and its stderr.
    pub fn finish(mut self) -> (ExitStatus, Vec<String>, String) {
        drop(self.stdin.take());
        let child = self.guard.0.as_mut().expect("the child");
        let status = wait_with_deadline(child, RUN_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "{} still running {RUN_TIMEOUT:?} after its stdin closed; stderr:\n{}",
                self.what,
                snapshot(&self.stderr)
            )
        });
        self.guard.0 = None;
        let mut rest = Vec::new();
        // The pipe closed with the child: the reader thread sends what is left, then hangs up.
        while let Ok(line) = self.lines.recv_timeout(IO_TIMEOUT) {
            rest.push(line);
        }
        (status, rest, snapshot(&self.stderr))
    }
}
