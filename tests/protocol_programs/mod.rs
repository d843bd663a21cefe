//! Running example binaries and Python scripts from tests: servers found through their
//! `listening on <addr>` line, programs run to completion with scripted stdin, everything killed
//! and reaped by guards and bounded by deadlines.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to print its `listening on` line.
pub const STARTUP: Duration = Duration::from_secs(30);
/// How long a client program may run.
pub const RUN: Duration = Duration::from_secs(60);

/// The compiled example `name`. The first call per test binary runs `cargo build --examples`
/// (quick when nothing changed), so the binaries are never stale.
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut profile = exe.parent().expect("deps").to_path_buf();
    if profile.ends_with("deps") {
        profile.pop();
    }
    let built = BUILT.get_or_init(|| {
        let mut command = Command::new(env!("CARGO"));
        command
            .args(["build", "--examples", "--quiet"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if let Some(target) = profile.parent() {
            command.arg("--target-dir").arg(target);
        }
        if profile.ends_with("release") {
            command.arg("--release");
        }
        let run = Run::start(command, b"", Duration::from_secs(600));
        if run.status.success() {
            Ok(())
        } else {
            Err(run.to_string())
        }
    });
    if let Err(e) = built {
        panic!("cannot build the examples: {e}");
    }
    profile.join("examples").join(name)
}

/// Output gathered by a thread reading a pipe to its end.
#[derive(Clone, Default)]
pub struct Collected(Arc<Mutex<Vec<u8>>>);

impl Collected {
    fn from(mut pipe: impl Read + Send + 'static) -> (Collected, mpsc::Receiver<()>) {
        let collected = Collected::default();
        let sink = collected.clone();
        let (done, finished) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.0.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            let _ = done.send(());
        });
        (collected, finished)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Kills and reaps its child when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An example server running as a child process.
pub struct Server {
    pub addr: SocketAddr,
    pub stderr: Collected,
    _child: Guard,
}

impl Server {
    /// Starts `name --addr 127.0.0.1:0 <args>` with `env` added to its environment.
    pub fn start(name: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(example(name));
        command
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .env_remove("SOCKETSERVER_SECRET")
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = Guard(
            command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {name}: {e}")),
        );
        let stdout = child.0.stdout.take().expect("piped stdout");
        let (stderr, _) = Collected::from(child.0.stderr.take().expect("piped stderr"));
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = match rx.recv_timeout(STARTUP) {
            Ok(Ok(line)) => line,
            _ => panic!("{name} printed no first line; stderr:\n{}", stderr.text()),
        };
        let addr = line
            .trim_end()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{name}: first line {line:?}; stderr:\n{}", stderr.text()));
        Server {
            addr,
            stderr,
            _child: child,
        }
    }

    /// Waits (bounded) until the server's stderr contains `text`.
    pub fn wait_for_log(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.stderr.text();
            if log.contains(text) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "server log never said {text:?}:\n{log}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A program run to its end.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Runs `command` with `stdin` as its input, killing it (and failing) after `timeout`.
    pub fn start(mut command: Command, stdin: &[u8], timeout: Duration) -> Run {
        let what = format!("{command:?}");
        let mut child = Guard(
            command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {what}: {e}")),
        );
        let (stdout, out_done) = Collected::from(child.0.stdout.take().expect("stdout"));
        let (stderr, err_done) = Collected::from(child.0.stderr.take().expect("stderr"));
        let mut input = child.0.stdin.take().expect("stdin");
        let stdin = stdin.to_vec();
        thread::spawn(move || {
            let _ = input.write_all(&stdin);
        }); // dropping `input` then sends EOF
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.0.try_wait().expect("wait for a child") {
                break status;
            }
            if Instant::now() > deadline {
                panic!(
                    "{what} still running after {timeout:?}; stdout:\n{}\nstderr:\n{}",
                    stdout.text(),
                    stderr.text()
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        let _ = out_done.recv_timeout(Duration::from_secs(10));
        let _ = err_done.recv_timeout(Duration::from_secs(10));
        Run {
            status,
            stdout: stdout.text(),
            stderr: stderr.text(),
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

/// Runs the Rust `client` example: `client <subcommand> --addr <addr> <args>` with `stdin`.
pub fn client(
    subcommand: &str,
    addr: SocketAddr,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
) -> Run {
    let mut command = Command::new(example("client"));
    command
        .arg(subcommand)
        .args(["--addr", &addr.to_string()])
        .args(args)
        .env_remove("SOCKETSERVER_SECRET")
        .envs(env.iter().copied());
    Run::start(command, stdin.as_bytes(), RUN)
}

/// Whether `python3` runs; prints why the test is skipped when it does not.
pub fn python3_available() -> bool {
    let found = Command::new("python3")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        println!("skipped: python3 is not on PATH, so the seeds' Python clients cannot run");
    }
    found
}

/// Runs a Python script with `args`, in `dir`.
pub fn python(script: &str, args: &[&str], dir: &std::path::Path) -> Run {
    let mut command = Command::new("python3");
    command
        .args(["-c", script])
        .args(args)
        .current_dir(dir)
        .env("PYTHONIOENCODING", "utf-8")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    Run::start(command, b"", RUN)
}

/// A fresh, empty scratch folder for one test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
