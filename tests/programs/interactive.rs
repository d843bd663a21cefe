//! Children the test types into line by line.

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;

use super::pipes::{drain, wait_with_deadline, ChildGuard, Drained};
use super::{IO_TIMEOUT, RUN_TIMEOUT};

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

    /// Whether the child has already exited (without reaping it from the guard's care).
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.guard.child().try_wait(), Ok(None))
    }

    /// Everything the child wrote to stderr so far.
    pub fn stderr_so_far(&self) -> String {
        self.stderr.snapshot()
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
                self.stderr.snapshot()
            ),
        }
    }

    /// Closes stdin and waits (at most [`RUN_TIMEOUT`]) for the child to exit; returns its status,
    /// the stdout lines not yet read, and its stderr.
    pub fn finish(mut self) -> (ExitStatus, Vec<String>, String) {
        drop(self.stdin.take());
        let status = wait_with_deadline(self.guard.child(), RUN_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "{} still running {RUN_TIMEOUT:?} after its stdin closed; stderr:\n{}",
                self.what,
                self.stderr.snapshot()
            )
        });
        self.guard.0 = None;
        let mut rest = Vec::new();
        // The pipe closed with the child: the reader thread sends what is left, then hangs up.
        while let Ok(line) = self.lines.recv_timeout(IO_TIMEOUT) {
            rest.push(line);
        }
        // All of stderr, not a snapshot: its reader thread may still hold the last bytes.
        let stderr = self.stderr.all(&self.what);
        (status, rest, stderr)
    }
}
