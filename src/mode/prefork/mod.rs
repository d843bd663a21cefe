//! [`Prefork`]: a supervised set of long-lived worker processes sharing the server socket. This
//! file is the configuration and the mode; the parent's runtime state and loop are the
//! [`Supervisor`](supervisor::Supervisor)'s, its workers' bookkeeping in `workers`.

mod supervisor;
mod workers;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::sealed::ModeImpl;
use super::{Pool, Single, Task, ThreadSettings, Threading};
use crate::control::ServerHandle;
use crate::control::StopSignal;
use crate::process::{self, ProcessKind};
use supervisor::Supervisor;

/// How each [`Prefork`] worker process serves the connections it accepts.
#[derive(Debug)]
pub enum WorkerMode {
    /// One request at a time per worker (gunicorn's "sync" workers). The default.
    Single(Single),
    /// A thread per request inside each worker.
    Threading(Threading),
    /// A pool of threads inside each worker.
    Pool(Pool),
}

impl From<Single> for WorkerMode {
    fn from(mode: Single) -> Self {
        WorkerMode::Single(mode)
    }
}

impl From<Threading> for WorkerMode {
    fn from(mode: Threading) -> Self {
        WorkerMode::Threading(mode)
    }
}

impl From<Pool> for WorkerMode {
    fn from(mode: Pool) -> Self {
        WorkerMode::Pool(mode)
    }
}

impl WorkerMode {
    fn inner(&mut self) -> &mut dyn ModeImpl {
        match self {
            WorkerMode::Single(m) => m,
            WorkerMode::Threading(m) => m,
            WorkerMode::Pool(m) => m,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Supervisor,
    Worker { index: usize },
}

/// N long-lived worker processes that all accept on the one server socket, each serving with a
/// thread mode of its own, under a supervising parent — the model of gunicorn and Perl's
/// `Net::Server::PreFork`. Not in Python's `socketserver`.
///
/// The parent binds the socket, then starts the workers by re-executing the program (see
/// [`Process`](crate::Process) for what that means for `main`, and [`is_worker`]); each inherits
/// the socket. The kernel hands every connection (or datagram) to one worker. The parent's
/// `serve_forever` supervises:
///
/// * a worker that exits is replaced; one that failed (non-zero exit, killed by a signal) is
///   replaced after a pause that doubles with each failure in a row, up to 10 s;
/// * with [`max_requests`](Self::max_requests), a worker exits after about that many requests
///   (plus a random jitter, so workers do not all recycle at once) and is replaced at once — a
///   cure for slow leaks;
/// * each worker's stdin is a *lifeline* pipe from the parent: at end-of-file the worker stops
///   accepting, lets its running requests finish within [`drain_timeout`](Self::drain_timeout)
///   and exits, cutting off any still running (a client holding an idle connection, say).
///   Shutdown closes the lifelines and kills the workers still running after `drain_timeout`
///   (or, in a graceful stop, once its grace period runs out or the stop turns immediate);
///   and if the parent dies, the lifelines close by themselves, so workers never outlive it by
///   more than `drain_timeout`. With [`stop_on_signals`](crate#stopping-gracefully) a
///   worker that is sent SIGTERM or SIGINT itself (systemd signals every process of the
///   service) drains the same way.
///
/// The socket is shared, and so is its `O_NONBLOCK` flag: every worker is woken for a new
/// connection and all but one find nothing to accept, which the serving loop treats as normal.
/// Counters ([`stats`](crate::Server::stats)): each worker reports its own to the parent over a
/// pipe of its own (when they change, at most every 50 ms, and once more as it exits), so the
/// parent's `stats()` — and its systemd `STATUS=` line — sums the whole server's requests. A
/// worker's own `stats()`, in a handler, counts only its requests. A request still running in a
/// worker that was killed counts as failed.
///
/// # Signals
///
/// With [`stop_on_signals`](crate#stopping-gracefully), the parent also takes gunicorn's
/// signals (send them to the parent alone: `kill -HUP <pid>`, or systemd's `ExecReload=kill -HUP
/// $MAINPID`):
///
/// * **SIGTTIN** / **SIGTTOU**: one worker more / fewer (never fewer than one). A removed worker
///   drains within `drain_timeout`, as at a stop.
/// * **SIGHUP**: a rolling reload. For each worker a fresh one is started from the program file
///   on disk (the path the program was started from, so a rebuilt binary takes effect; later
///   replacements start from it too); once the fresh one reports that it serves, the old one
///   drains within `drain_timeout`. The listening socket stays open in the parent all along, so
///   the kernel queues connections meanwhile: none is refused or reset. A fresh worker that
///   exits before it serves (a broken program, or files it cannot load, such as a TLS
///   certificate) leaves the old one serving as before; the log says how many were kept. Under
///   systemd the parent sends `RELOADING=1` first and `READY=1` once every worker is fresh or
///   kept.
/// * **SIGUSR2**: a binary upgrade. A new copy of the program, from the file on disk and with the
///   same arguments, inherits the listening socket by the socket-activation convention
///   (`LISTEN_FDS=1`, descriptor 3, `LISTEN_PID` its pid) with a private mark that says it was
///   started by an upgrade, and reports `READY=1` on a private `NOTIFY_SOCKET`. Its Prefork
///   server serves the inherited socket whatever its `bind_*` call asks for (an
///   `--addr 127.0.0.1:0` on the command line, say; the log says so), and
///   [`Builder::systemd_tcp`](crate::Builder::systemd_tcp) and the like take it too (servers in
///   other modes bind as usual). A Prefork
///   server of another kind (UDP where TCP was served) fails to build, with an error naming both;
///   and the new program reports `READY=1` only once its Prefork server holds the socket. Then
///   this parent stops gracefully: its workers drain while the new program's accept from the same
///   socket, and `serve_forever` returns `Ok`. A Unix socket file stays where it is: this parent
///   leaves it to the new program, which does not remove it either when it stops (the next
///   `bind_unix_stream` replaces it). If the new program exits or is not ready within 30 s, the
///   upgrade is given up and this one goes on serving. One upgrade at a time: a SIGUSR2 while the
///   new program is starting is ignored. The new program shares stdin, stdout and stderr, and
///   outlives its parent; under systemd, whose main pid would change, use SIGHUP instead.
///
/// Workers share the parent's socket rather than each binding its own with `SO_REUSEPORT`. With
/// per-worker sockets the kernel would spread connections without waking every worker, but the
/// parent's own socket would join the group and take a share nobody accepts (or, not listening,
/// leave the port refusing connections until the workers are up, after `listening on` was
/// printed), and a worker that exits for recycling would reset the connections queued on its
/// socket. Sharing one socket has neither problem.
///
/// ```no_run
/// use std::io::{BufRead, Write};
/// use socketserver::{Builder, Prefork, StreamRequest, Threading};
///
/// fn main() -> std::io::Result<()> {
///     let mode = Prefork::new(4)
///         .worker_mode(Threading::new().max_threads(64))
///         .max_requests(10_000);
///     let mut server = Builder::new()
///         .mode(mode)
///         .bind_tcp("127.0.0.1:8080", |req: &mut StreamRequest| {
///             let mut line = String::new();
///             while req.read_line(&mut line)? > 0 {
///                 req.write_all(line.as_bytes())?;
///                 line.clear();
///             }
///             Ok(())
///         })?;
///     if !socketserver::is_worker() {
///         println!("listening on {}", server.local_addr());
///     }
///     server.serve_forever()?; // the parent supervises; a worker serves, then exits
///     server.server_close()
/// }
/// ```
///
/// [`is_worker`]: crate::is_worker
#[derive(Debug)]
pub struct Prefork {
    workers: usize,
    worker_mode: WorkerMode,
    max_requests: Option<u64>,
    jitter: u64,
    drain_timeout: Duration,
    part: Part,
    /// The parent's runtime state, while it supervises.
    /// (Boxed: it is large, and `AnyMode` holds a `Prefork` by value.)
    supervisor: Option<Box<Supervisor>>,
}

impl Prefork {
    /// How each worker serves (a message server runs its handlers accordingly).
    #[cfg(feature = "message")]
    pub(crate) fn inner_mode(&self) -> &WorkerMode {
        &self.worker_mode
    }

    /// `workers` worker processes, each serving one request at a time ([`Single`]), never
    /// recycled, with a 30 s drain timeout.
    #[must_use]
    pub fn new(workers: usize) -> Self {
        Prefork {
            workers,
            worker_mode: WorkerMode::Single(Single),
            max_requests: None,
            jitter: 0,
            drain_timeout: Duration::from_secs(30),
            part: Part::Supervisor,
            supervisor: None,
        }
    }

    /// How each worker serves: [`Single`] (the default), [`Threading`] or [`Pool`].
    #[must_use]
    pub fn worker_mode(mut self, mode: impl Into<WorkerMode>) -> Self {
        self.worker_mode = mode.into();
        self
    }

    /// Recycles each worker after `requests` requests, plus a random jitter of up to a tenth of
    /// that (change it with [`max_requests_jitter`](Self::max_requests_jitter)).
    #[must_use]
    pub fn max_requests(mut self, requests: u64) -> Self {
        self.max_requests = Some(requests.max(1));
        self.jitter = requests / 10;
        self
    }

    /// The most extra requests a worker may serve beyond `max_requests`, chosen at random per
    /// worker so that workers started together do not all restart together.
    #[must_use]
    pub fn max_requests_jitter(mut self, jitter: u64) -> Self {
        self.jitter = jitter;
        self
    }

    /// How long a stopping worker may take to finish its requests (30 s by default). Shutdown
    /// kills the workers still running after it; a worker that stops on its own — its parent
    /// died, or it recycles after [`max_requests`](Self::max_requests) — exits after it, even if
    /// requests are still running.
    #[must_use]
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// The number of worker processes.
    #[must_use]
    pub fn workers(&self) -> usize {
        self.workers
    }
}

impl ModeImpl for Prefork {
    fn name(&self) -> &'static str {
        match self.part {
            Part::Supervisor => "prefork supervisor",
            Part::Worker { .. } => "prefork worker",
        }
    }

    fn start(&mut self, threads: &ThreadSettings) -> io::Result<()> {
        match self.part {
            Part::Supervisor => {
                if self.workers == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a Prefork mode needs at least 1 worker",
                    ));
                }
                process::program().map(|_| ())
            }
            Part::Worker { .. } => self.worker_mode.inner().start(threads),
        }
    }

    fn dispatch(&mut self, task: Task, stop: &StopSignal) {
        match self.part {
            Part::Worker { .. } => self.worker_mode.inner().dispatch(task, stop),
            // The supervisor never receives requests; if one arrives, close it.
            Part::Supervisor => task.reject(),
        }
    }

    fn stop_intake(&mut self) {
        if let Part::Worker { .. } = self.part {
            self.worker_mode.inner().stop_intake();
        }
    }

    fn join(&mut self) {
        if let Part::Worker { .. } = self.part {
            self.worker_mode.inner().join();
        }
    }

    fn process_kind(&self) -> Option<ProcessKind> {
        Some(ProcessKind::Prefork)
    }

    fn become_worker(&mut self, index: usize) {
        self.part = Part::Worker { index };
    }

    fn worker_request_limit(&self) -> Option<u64> {
        let limit = self.max_requests?;
        let jitter = match self.jitter {
            0 => 0,
            // RandomState is seeded randomly per process: enough to spread restarts.
            j => RandomState::new().hash_one(std::process::id()) % (j + 1),
        };
        Some(limit.saturating_add(jitter))
    }

    fn drain_timeout(&self) -> Option<Duration> {
        Some(self.drain_timeout)
    }

    fn supervises(&self) -> bool {
        self.part == Part::Supervisor
    }

    fn supervise(
        &mut self,
        socket: RawFd,
        server: &ServerHandle,
        tick: &mut dyn FnMut(),
    ) -> io::Result<()> {
        let supervisor = Supervisor::new(self.workers, self.drain_timeout);
        self.supervisor
            .insert(Box::new(supervisor))
            .run(socket, server, tick);
        Ok(())
    }

    fn stop_workers(&mut self, server: &ServerHandle) -> usize {
        self.supervisor
            .as_mut()
            .map_or(0, |supervisor| supervisor.stop_workers(server))
    }

    fn cut_off(&mut self) {
        if let Part::Worker { .. } = self.part {
            self.worker_mode.inner().cut_off();
        }
    }
}
