//! [`Prefork`]: a supervised set of long-lived worker processes sharing the server socket.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::os::fd::RawFd;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use super::sealed::ModeImpl;
use super::{Pool, Single, Task, ThreadSettings, Threading};
use crate::process::{self, ProcessKind, Role};
use crate::server::stop::StopSignal;

/// How often the supervisor looks for exited workers (waitpid on each of its own children).
const SUPERVISE_TICK: Duration = Duration::from_millis(25);
/// First pause before replacing a worker that failed; doubles on each failure in a row.
const MIN_RESTART_DELAY: Duration = Duration::from_millis(100);
/// Longest pause before replacing a failing worker: a worker that crashes at once cannot turn the
/// supervisor into a fork bomb.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(10);
/// A worker that ran this long before failing starts the back-off afresh.
const STABLE_AFTER: Duration = Duration::from_secs(10);

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
/// Counters ([`stats`](crate::Server::stats)) are per process: the parent counts nothing, each
/// worker counts its own requests.
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
    /// The supervisor's worker places.
    slots: Vec<Slot>,
}

impl Prefork {
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
            slots: Vec::new(),
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
        stop: &StopSignal,
        tick: &mut dyn FnMut(),
    ) -> io::Result<()> {
        self.slots = (0..self.workers).map(|_| Slot::new()).collect();
        log::info!("prefork: starting {} worker processes", self.workers);
        while !stop.is_requested() {
            for (index, slot) in self.slots.iter_mut().enumerate() {
                slot.check(index);
                slot.start_if_due(index, socket);
            }
            tick();
            stop.sleep(SUPERVISE_TICK);
        }
        // The wake-up that saw the stop: reported (STOPPING=1) before the workers drain.
        tick();
        Ok(())
    }

    fn stop_workers(&mut self, abort: &StopSignal) -> usize {
        drain(&mut self.slots, self.drain_timeout, abort)
    }

    fn cut_off(&mut self) {
        if let Part::Worker { .. } = self.part {
            self.worker_mode.inner().cut_off();
        }
    }
}

/// One worker place: the running worker, or when to start the next one.
#[derive(Debug)]
struct Slot {
    worker: Option<(Child, Instant)>,
    start_at: Option<Instant>,
    delay: Duration,
}

impl Slot {
    fn new() -> Self {
        Slot {
            worker: None,
            start_at: Some(Instant::now()),
            delay: MIN_RESTART_DELAY,
        }
    }

    /// Reaps the worker if it exited, and schedules its replacement.
    fn check(&mut self, index: usize) {
        let Some((child, started)) = &mut self.worker else {
            return;
        };
        let status = match child.try_wait() {
            Ok(None) => return,
            Ok(Some(status)) => status,
            Err(e) => {
                log::error!(
                    "prefork: cannot check worker {index} (pid {}): {e}",
                    child.id()
                );
                return;
            }
        };
        let (pid, lived) = (child.id(), started.elapsed());
        self.worker = None;
        if status.success() {
            log::info!("prefork: worker {index} (pid {pid}) exited after {lived:?}; replacing it");
            self.delay = MIN_RESTART_DELAY;
            self.start_at = Some(Instant::now());
        } else {
            if lived >= STABLE_AFTER {
                self.delay = MIN_RESTART_DELAY;
            }
            log::error!(
                "prefork: worker {index} (pid {pid}) {} after {lived:?}; replacing it in {:?}",
                describe(status),
                self.delay
            );
            self.schedule_retry();
        }
    }

    fn start_if_due(&mut self, index: usize, socket: RawFd) {
        if self.worker.is_some() || self.start_at.is_none_or(|at| at > Instant::now()) {
            return;
        }
        match process::spawn_child(Role::Worker { fd: socket, index }) {
            Ok(child) => {
                log::info!("prefork: worker {index} started (pid {})", child.id());
                self.worker = Some((child, Instant::now()));
                self.start_at = None;
            }
            Err(e) => {
                log::error!(
                    "prefork: cannot start worker {index}: {e}; retrying in {:?}",
                    self.delay
                );
                self.schedule_retry();
            }
        }
    }

    fn schedule_retry(&mut self) {
        self.start_at = Some(Instant::now() + self.delay);
        self.delay = (self.delay * 2).min(MAX_RESTART_DELAY);
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => format!("ended abnormally ({status})"),
    }
}

/// Closes every lifeline, waits for the workers to finish their requests and exit, and kills
/// those still running when `timeout` passes or `abort` is requested. Returns how many it killed.
fn drain(slots: &mut [Slot], timeout: Duration, abort: &StopSignal) -> usize {
    for (child, _) in slots.iter_mut().filter_map(|s| s.worker.as_mut()) {
        drop(child.stdin.take());
    }
    let deadline = Instant::now() + timeout;
    loop {
        let mut running = 0;
        for (index, slot) in slots.iter_mut().enumerate() {
            let Some((child, _)) = &mut slot.worker else {
                continue;
            };
            match child.try_wait() {
                Ok(Some(status)) => {
                    if !status.success() {
                        log::warn!(
                            "prefork: worker {index} (pid {}) {} while stopping",
                            child.id(),
                            describe(status)
                        );
                    }
                    slot.worker = None;
                }
                Ok(None) => running += 1,
                Err(e) => {
                    log::error!("prefork: cannot check worker {index}: {e}");
                    slot.worker = None;
                }
            }
        }
        if running == 0 {
            log::info!("prefork: all workers stopped");
            return 0;
        }
        if Instant::now() >= deadline || abort.sleep(Duration::from_millis(10)) {
            break;
        }
    }
    let why = match abort.is_requested() {
        true => "at an immediate stop".to_string(),
        false => format!("after {timeout:?}"),
    };
    let mut killed = 0;
    for (index, slot) in slots.iter_mut().enumerate() {
        if let Some((mut child, _)) = slot.worker.take() {
            log::warn!(
                "prefork: worker {index} (pid {}) still running {why}; killing it",
                child.id()
            );
            let _ = child.kill();
            let _ = child.wait();
            killed += 1;
        }
    }
    killed
}
