//! The driver's side: a scenario server running as a child process, its output collected.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::procs::{send_signal, wait_with_deadline, with_env};
use super::{check, eventually, lock};

/// How long a scenario server may take to print its `listening on` line.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long [`ScenarioServer::stop`] waits for the server to exit, and
/// [`ScenarioServer::expect_stderr`] for the lines it expects.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Set to a value unique to each scenario server; every process it starts (children, workers,
/// the new program of an upgrade) inherits it, so that the driver can find and end them all.
const TAG_VAR: &str = "SCENARIO_TAG";

/// The stderr of every scenario server the running test started, in start order: printed by the
/// runner if the test fails, so a passing run shows none of it.
static STDERRS: Mutex<Vec<(String, Arc<Output>)>> = Mutex::new(Vec::new());

/// Forgets the stderr of the previous test's scenario servers.
pub(super) fn forget_stderr() {
    lock(&STDERRS).clear();
}

/// Prints what the failed test's scenario servers wrote to stderr, after a short wait for the
/// pipes to be read to their end.
pub(super) fn print_stderr() {
    let outputs = lock(&STDERRS).clone();
    eventually(Duration::from_secs(1), || {
        outputs.iter().all(|(_, output)| output.has_ended())
    });
    for (name, output) in outputs {
        let text = output.text();
        if !text.is_empty() {
            println!("---- stderr of scenario server {name} ----\n{text}");
        }
    }
}

/// What a pipe of a scenario server carried, read into memory by a thread until every process
/// holding it (its children too: they inherit it) has closed it.
struct Output {
    bytes: Mutex<Vec<u8>>,
    ended: AtomicBool,
}

impl Output {
    fn collect(mut pipe: impl Read + Send + 'static) -> Arc<Output> {
        let output = Arc::new(Output {
            bytes: Mutex::new(Vec::new()),
            ended: AtomicBool::new(false),
        });
        let reader = Arc::clone(&output);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                lock(&reader.bytes).extend_from_slice(&buf[..n]);
            }
            reader.ended.store(true, Ordering::SeqCst);
        });
        output
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.bytes)).into_owned()
    }

    /// The whole lines so far, without their line ends.
    fn lines(&self) -> Vec<String> {
        let text = self.text();
        text.rfind('\n').map_or_else(Vec::new, |end| {
            text[..end].split('\n').map(str::to_string).collect()
        })
    }

    /// What follows the first `lines` lines, without a last line end.
    fn after_lines(&self, lines: usize) -> String {
        let text = self.text();
        let mut rest = text.as_str();
        for _ in 0..lines {
            rest = rest.split_once('\n').map_or("", |(_, after)| after);
        }
        rest.trim_end_matches('\n').to_string()
    }

    fn has_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }
}

/// A copy of this program run as a scenario server, a child of the driver: its stdout and stderr
/// collected, its first stdout line `listening on <address>`. Killed when dropped, with every
/// process it started that still runs.
pub struct ScenarioServer {
    name: String,
    child: Option<Child>,
    pid: u32,
    /// The value of [`TAG_VAR`] in its processes.
    tag: String,
    stdin: Option<ChildStdin>,
    stdout: Arc<Output>,
    stderr: Arc<Output>,
    /// How many stdout lines have been read: the `listening on` line, then [`next_line`]'s.
    ///
    /// [`next_line`]: Self::next_line
    read: usize,
    /// What the `listening on` line named.
    pub listening: String,
}

impl ScenarioServer {
    /// Starts `command` (this program, with the environment that makes it the scenario server
    /// `name`; its stdin as the command sets it, piped for a server that stops when its stdin
    /// closes) and waits for its `listening on` line.
    pub fn start(name: &str, mut command: Command) -> Result<ScenarioServer, String> {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let tag = format!(
            "{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        );
        let mut child = command
            .env(TAG_VAR, &tag)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start scenario {name}: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let stderr = Output::collect(stderr);
        lock(&STDERRS).push((name.to_string(), Arc::clone(&stderr)));
        let mut server = ScenarioServer {
            name: name.to_string(),
            pid: child.id(),
            tag,
            child: Some(child),
            stdin,
            stdout: Output::collect(stdout),
            stderr,
            read: 0,
            listening: String::new(),
        };
        let first = server.next_line(START_TIMEOUT)?;
        server.listening = first
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("scenario {name} printed {first:?} first"))?
            .to_string();
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The TCP or UDP address it listens on.
    pub fn inet(&self) -> SocketAddr {
        self.listening.parse().unwrap_or_else(|_| {
            panic!(
                "scenario {}: {:?} is no inet address",
                self.name, self.listening
            )
        })
    }

    pub fn signal(&self, signal: i32) -> Result<(), String> {
        send_signal(self.pid, signal)
    }

    /// Everything the server (and the processes that share its stdout) printed so far.
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// Every whole line the server (and the processes that share its stdout) printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.stdout.lines()
    }

    /// The next stdout line, waiting at most `timeout` for it.
    pub fn next_line(&mut self, timeout: Duration) -> Result<String, String> {
        let mut lines = Vec::new();
        eventually(timeout, || {
            lines = self.stdout.lines();
            lines.len() > self.read || self.stdout.has_ended()
        });
        let Some(line) = lines.get(self.read) else {
            return Err(if self.stdout.has_ended() {
                format!(
                    "scenario {} closed stdout; stderr:\n{}",
                    self.name,
                    self.stderr()
                )
            } else {
                format!(
                    "no line from scenario {} within {timeout:?}; stderr:\n{}",
                    self.name,
                    self.stderr()
                )
            });
        };
        self.read += 1;
        Ok(line.clone())
    }

    /// What the server (and the processes that share its stderr) wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Waits (at most [`STOP_TIMEOUT`]) until `text` has been written `times` times on stderr:
    /// for the failures a test provokes, whose log lines it expects.
    pub fn expect_stderr(&self, text: &str, times: usize) -> Result<(), String> {
        check(
            eventually(STOP_TIMEOUT, || {
                self.stderr().matches(text).count() >= times
            }),
            || {
                format!(
                    "scenario {} should have written {text:?} {times} time(s) on stderr, wrote:\n{}",
                    self.name,
                    self.stderr()
                )
            },
        )
    }

    /// The exit status once the server has exited, or `None` if it still runs after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_with_deadline(self.child.as_mut()?, timeout)
    }

    /// Whether the server has exited (or was stopped or killed).
    pub fn has_exited(&mut self) -> bool {
        self.child.is_none() || self.wait_exit(Duration::ZERO).is_some()
    }

    /// Kills the server (not the processes it started) and reaps it.
    pub fn kill(&mut self) -> Result<(), String> {
        let mut child = self.child.take().ok_or("already stopped")?;
        child
            .kill()
            .map_err(|e| format!("kill scenario {}: {e}", self.name))?;
        let _ = child.wait();
        Ok(())
    }

    /// Closes the server's stdin (its cue to stop), waits for a clean exit, and returns the rest
    /// of its stdout: the lines after those [`next_line`](Self::next_line) returned.
    pub fn stop(&mut self) -> Result<String, String> {
        drop(self.stdin.take());
        let status = self.wait_exit(STOP_TIMEOUT).ok_or_else(|| {
            format!(
                "scenario {} did not exit within {STOP_TIMEOUT:?} of its stdin closing",
                self.name
            )
        })?;
        self.child = None;
        // What it printed last, read once every process sharing the pipe has closed it.
        eventually(Duration::from_secs(2), || self.stdout.has_ended());
        let rest = self.stdout.after_lines(self.read);
        check(status.success(), || {
            format!(
                "scenario {} exited with {status}; output: {rest}",
                self.name
            )
        })?;
        Ok(rest)
    }
}

impl Drop for ScenarioServer {
    /// Kills the server, and whatever it started that still runs: a worker orphaned by a test,
    /// or the new program of an upgrade, which is not the driver's child.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for pid in with_env(TAG_VAR, &self.tag) {
            let _ = send_signal(pid, libc::SIGKILL);
        }
    }
}
