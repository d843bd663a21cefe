//! [`Process`]: a child process for every request — Python's `ForkingMixIn`, without `fork()`.

use std::collections::HashMap;
use std::io;
use std::process::{Child, ChildStdin, ExitStatus};
use std::sync::{Arc, Mutex, PoisonError};

use super::sealed::ModeImpl;
use super::{Task, ThreadSettings, Threading};
use crate::control::StopSignal;
use crate::failure::Failure;
use crate::process::{self, Handoff, ProcessKind, Role};
use crate::stats::Ending;

/// Python's `ForkingMixIn` default for `max_children`.
pub const DEFAULT_MAX_CHILDREN: usize = 40;

/// Handles each connection or datagram in a child process of its own — Python's `ForkingMixIn`,
/// done without `fork()`: the child is this program started again (see [`is_worker`]), and it
/// inherits the connection (for a datagram server: the server socket, so its reply leaves from
/// the server's address, plus the datagram on its stdin).
///
/// A request in a child is isolated as it can be: a crash, a leak or a `process::exit` costs only
/// that request. It is also the costliest mode, since every request starts a process (about a
/// millisecond; see the README's measurements).
///
/// * At most [`max_children`](Self::max_children) children run at once (default 40); at the cap
///   the server stops accepting *before* starting another (Python checks only afterwards).
/// * Each child is reaped the moment it exits, by a thread waiting for that child alone, so no
///   zombie outlives its request and a child the program started itself is never reaped by the
///   server.
/// * A child's failure — an error or panic in the handler (reported to `handle_error` in the
///   child), a crash, a non-zero exit — is logged by the parent with the child's pid and the peer,
///   and counted in [`Stats::failed`](crate::Stats::failed). It never affects the parent.
/// * [`Server::server_close`](crate::Server::server_close) waits for the children, with the
///   optional [`close_timeout`](crate::Builder::close_timeout).
/// * A graceful stop ([`stop_on_signals`](crate#stopping-gracefully)) lets the children
///   finish their requests within the grace period, then kills those still running (SIGKILL), as
///   an immediate stop does at once. A child's stdin stays open as a lifeline while it runs:
///   when any stop begins the parent closes it, and
///   [`is_shutting_down`](crate::ServerHandle::is_shutting_down) turns true for the child's
///   handler, so it can end a long-lived connection early. With `stop_on_signals` children do
///   not end on the SIGINT or SIGTERM a terminal or systemd sends the whole process group
///   either: the parent decides when a request is cut off.
///
/// **Everything `main` does before building the server runs again in every child.** The server
/// must be built the same way each run (same mode, same transport); a child must not print the
/// address or bind other servers — check [`is_worker`]. In a child, `serve_forever` handles the
/// one request and ends the process (exit status 0, or 1 if the handler failed).
///
/// ```no_run
/// use std::io::{BufRead, Write};
/// use socketserver::{Builder, Process, StreamRequest};
///
/// fn main() -> std::io::Result<()> {
///     let mut server = Builder::new()
///         .mode(Process::new().max_children(16))
///         .bind_tcp("127.0.0.1:8080", |req: &mut StreamRequest| {
///             let mut line = String::new();
///             req.read_line(&mut line)?;
///             write!(req, "child {} says: {}", std::process::id(), line.to_uppercase())
///         })?;
///     if !socketserver::is_worker() {
///         println!("listening on {}", server.local_addr());
///     }
///     server.serve_forever()
/// }
/// ```
///
/// [`is_worker`]: crate::is_worker
#[derive(Debug)]
pub struct Process {
    max_children: usize,
    waiters: Threading,
    children: Children,
}

impl Process {
    /// A child per request, at most [`DEFAULT_MAX_CHILDREN`] at once.
    #[must_use]
    pub fn new() -> Self {
        Process {
            max_children: DEFAULT_MAX_CHILDREN,
            waiters: Threading::new(),
            children: Children::default(),
        }
    }

    /// Caps the children running at once (at least 1). At the cap the server stops accepting
    /// until one exits; new connections wait in the listen backlog.
    #[must_use]
    pub fn max_children(mut self, max: usize) -> Self {
        self.max_children = max;
        self
    }
}

impl Default for Process {
    fn default() -> Self {
        Process::new()
    }
}

impl ModeImpl for Process {
    fn name(&self) -> &'static str {
        "process per request"
    }

    fn start(&mut self, threads: &ThreadSettings) -> io::Result<()> {
        if self.max_children == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "Process::max_children must be at least 1",
            ));
        }
        // Resolve the executable now, so a problem shows when the server is built.
        process::program()?;
        self.waiters = Threading::new().max_threads(self.max_children);
        self.waiters.start(threads)
    }

    fn dispatch(&mut self, task: Task, stop: &StopSignal) {
        let children = self.children.clone();
        self.waiters
            .run_on_thread(task, stop, "child", move |task| {
                run_in_child(task, &children);
            });
    }

    fn stop_intake(&mut self) {}

    fn cut_off(&mut self) {
        self.children.kill_all();
    }

    fn pass_stop_on(&mut self) {
        self.children.stop();
    }

    fn join(&mut self) {
        self.waiters.join();
    }

    fn process_kind(&self) -> Option<ProcessKind> {
        Some(ProcessKind::PerRequest)
    }

    fn wants_handoff(&self) -> bool {
        true
    }
}

/// The children handling requests, by pid, each with its stdin: the lifeline whose closing tells
/// the child the server is stopping. A pid stays here until its child has exited but *before* it
/// is reaped, so a kill never reaches a pid the system has handed to another process.
#[derive(Debug, Clone, Default)]
struct Children(Arc<Mutex<Running>>);

#[derive(Debug, Default)]
struct Running {
    children: HashMap<u32, Option<ChildStdin>>,
    /// The stop has begun: a child registered from now on gets its lifeline closed at once.
    stopping: bool,
}

impl Children {
    fn lock(&self) -> std::sync::MutexGuard<'_, Running> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for `child` to exit, holding its lifeline `stdin` meanwhile, and reaps it once it no
    /// longer counts as running.
    fn wait(&self, child: &mut Child, stdin: Option<ChildStdin>) -> io::Result<ExitStatus> {
        let pid = child.id();
        {
            let mut running = self.lock();
            let stdin = stdin.filter(|_| !running.stopping);
            running.children.insert(pid, stdin);
        }
        let exited = wait_exited(pid);
        self.lock().children.remove(&pid);
        exited?;
        child.wait()
    }

    /// Closes every child's lifeline, and those of children still to come.
    fn stop(&self) {
        let mut running = self.lock();
        running.stopping = true;
        for stdin in running.children.values_mut() {
            drop(stdin.take());
        }
    }

    fn kill_all(&self) {
        let running = self.lock();
        for &pid in running.children.keys() {
            log::warn!("killing child {pid}: the stop cut its request off");
            // SAFETY: plain kill(2) on a pid that is our own unreaped child (see above).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// Waits until child `pid` has exited, leaving it unreaped (`WNOWAIT`).
fn wait_exited(pid: u32) -> io::Result<()> {
    loop {
        // SAFETY: `info` is a zeroed siginfo_t the call fills in; it outlives the call.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Runs on a waiter thread: starts the child, hands it the request, waits for it to exit.
fn run_in_child(mut task: Task, children: &Children) {
    let Some(handoff) = task.take_handoff() else {
        log::error!(
            "request from {} reached the process mode without its socket; closed it",
            task.peer()
        );
        return;
    };
    let mut child = match process::spawn_child(Role::Request { fd: handoff.fd }) {
        Ok(child) => child,
        Err(e) => {
            task.report(&Failure::Error(e));
            return task.end(Ending::Failed);
        }
    };
    // The child holds its own copy of the socket now; closing ours means the peer sees the
    // connection end when the child ends it.
    task.release();
    let pid = child.id();
    log::debug!("child {pid} handling request from {}", task.peer());
    let lifeline = hand_over(&mut child, &handoff);
    let ending = match children.wait(&mut child, lifeline) {
        Ok(status) => judge(status, pid, &handoff),
        Err(e) => {
            log::error!("cannot wait for child {pid} handling {}: {e}", handoff.peer);
            Ending::Failed
        }
    };
    task.end(ending);
}

/// Writes the request description to the child's stdin, and returns stdin, now the child's
/// lifeline. A child that died first shows in its exit status, so a failed write is only logged.
fn hand_over(child: &mut Child, handoff: &Handoff) -> Option<ChildStdin> {
    let mut stdin = child.stdin.take()?;
    if let Err(e) = handoff.write_to(&mut stdin) {
        log::debug!(
            "cannot hand the request from {} to child {}: {e}",
            handoff.peer,
            child.id()
        );
        return None;
    }
    Some(stdin)
}

fn judge(status: ExitStatus, pid: u32, handoff: &Handoff) -> Ending {
    use std::os::unix::process::ExitStatusExt;
    let peer = &handoff.peer;
    match (status.code(), status.signal()) {
        (Some(0), _) => Ending::Completed,
        (Some(1), _) => {
            // The child reported the failure to its own handle_error already.
            log::warn!("child {pid} handling {peer} failed (exit status 1)");
            Ending::Failed
        }
        (Some(code), _) => {
            log::error!("child {pid} handling {peer} exited with status {code}");
            Ending::Failed
        }
        (None, Some(signal)) => {
            log::error!("child {pid} handling {peer} was killed by signal {signal}");
            Ending::Failed
        }
        (None, None) => {
            log::error!("child {pid} handling {peer} ended abnormally: {status}");
            Ending::Failed
        }
    }
}
