//! Running the example programs from integration tests: start a server on port 0 and read its
//! `listening on` line, run a program to completion with a deadline, find (and if needed build)
//! the example binaries. Every child is killed and reaped by a guard, whatever the test's outcome.
//!
//! Every test binary uses a different subset of these, hence the module-wide `dead_code` allowance.
#![allow(dead_code)]

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
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
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

// ---------------------------------------------------------------------------------------------
// Running the examples

/// An example server running as a child process; killed and reaped when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `name --addr 127.0.0.1:0 <args>` and reads the address from its first stdout line.
    pub fn start(name: &str, args: &[&str]) -> Server {
        let mut child = Command::new(example(name))
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
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
struct ChildGuard(Option<Child>);

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
fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
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
struct Drained {
    text: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

fn drain(mut pipe: impl Read + Send + 'static) -> Drained {
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
fn snapshot(drained: &Drained) -> String {
    String::from_utf8_lossy(&drained.text.lock().unwrap()).into_owned()
}

/// Everything, once the pipe has closed.
fn drained(drained: Drained, what: &str) -> String {
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
