//! [`Prefork`]: a supervised set of long-lived worker processes sharing the server socket.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::process::{Child, ExitStatus};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::sealed::ModeImpl;
use super::{Pool, Single, Task, ThreadSettings, Threading};
use crate::control::StopSignal;
use crate::control::{PreforkRequests, ServerHandle};
use crate::process::{self, ProcessKind, Reports, Role, Upgrade, UpgradeState};
use crate::stats::Stats;

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
///   the kernel queues connections meanwhile: none is refused or reset. Under systemd the parent
///   sends `RELOADING=1` first and `READY=1` once every worker is fresh.
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
    /// The supervisor's worker places.
    slots: Vec<Slot>,
    /// Workers told to stop (by SIGTTOU or a reload), until they exit.
    retiring: Vec<Retiring>,
    /// The final counters of the workers that exited.
    retired: Stats,
    /// Since a reload: start workers from the program file on disk, not the running binary.
    from_disk: bool,
    /// A binary upgrade under way (SIGUSR2): the new program, until it serves.
    upgrade: Option<Box<Upgrade>>,
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
            slots: Vec::new(),
            retiring: Vec::new(),
            retired: Stats::default(),
            from_disk: false,
            upgrade: None,
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
        let shared = &server.shared;
        self.slots = (0..self.workers).map(|_| Slot::new()).collect();
        log::info!("prefork: starting {} worker processes", self.workers);
        let mut reloading = false;
        while !shared.stop.is_requested() {
            self.resize(&shared.prefork);
            if shared.prefork.reload.swap(false, Ordering::AcqRel) {
                reloading = self.begin_reload(server);
            }
            if shared.prefork.upgrade.swap(false, Ordering::AcqRel) {
                self.begin_upgrade(socket);
            }
            self.check_upgrade(server);
            let from_disk = self.from_disk;
            for (index, slot) in self.slots.iter_mut().enumerate() {
                slot.check(index, &mut self.retired);
                slot.start_if_due(index, socket, from_disk);
                slot.start_successor_if_due(index, socket);
                if let Some(old) = slot.promote(index) {
                    self.retiring.push(Retiring::new(old, self.drain_timeout));
                }
            }
            if reloading && self.slots.iter().all(|s| s.successor.is_none()) {
                reloading = false;
                log::info!("prefork: reload done; every worker is fresh");
                server.notify_ready();
            }
            self.reap_retiring();
            shared.counters.set_reported(self.sum());
            tick();
            shared.stop.sleep(SUPERVISE_TICK);
        }
        // The wake-up that saw the stop: reported (STOPPING=1) before the workers drain.
        tick();
        Ok(())
    }

    fn stop_workers(&mut self, server: &ServerHandle) -> usize {
        let mut workers: Vec<(usize, Worker)> = Vec::new();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            workers.extend(slot.worker.take().map(|w| (index, w)));
            workers.extend(slot.successor.take().map(|w| (index, w)));
        }
        workers.extend(self.retiring.drain(..).map(|r| (r.index, r.worker)));
        let killed = drain(&mut workers, self.drain_timeout, &server.shared.abort);
        for (_, mut worker) in workers {
            worker.finish(&mut self.retired);
        }
        server.shared.counters.set_reported(self.retired);
        killed
    }

    fn cut_off(&mut self) {
        if let Part::Worker { .. } = self.part {
            self.worker_mode.inner().cut_off();
        }
    }
}

impl Prefork {
    /// SIGTTIN / SIGTTOU: one worker place more or fewer (never fewer than one).
    fn resize(&mut self, requests: &PreforkRequests) {
        for _ in 0..requests.more.swap(0, Ordering::AcqRel) {
            self.slots.push(Slot::new());
            log::info!("prefork: SIGTTIN: now {} workers", self.slots.len());
        }
        for _ in 0..requests.fewer.swap(0, Ordering::AcqRel) {
            if self.slots.len() <= 1 {
                log::warn!("prefork: SIGTTOU: keeping the last worker");
                break;
            }
            let Some(slot) = self.slots.pop() else { break };
            let index = self.slots.len();
            for worker in [slot.worker, slot.successor].into_iter().flatten() {
                self.retiring
                    .push(Retiring::new((index, worker), self.drain_timeout));
            }
            log::info!("prefork: SIGTTOU: now {} workers", self.slots.len());
        }
    }

    /// SIGHUP: every worker place gets a successor started from the program file on disk; each
    /// old worker retires once its successor reports that it serves. Returns whether a reload
    /// began.
    fn begin_reload(&mut self, server: &ServerHandle) -> bool {
        server.notify_reloading();
        self.from_disk = true;
        log::info!(
            "prefork: SIGHUP: reloading {} workers from the program file on disk",
            self.slots.len()
        );
        for slot in &mut self.slots {
            slot.reload = true;
        }
        true
    }

    /// SIGUSR2: starts the new program on the listening socket (one upgrade at a time).
    fn begin_upgrade(&mut self, socket: RawFd) {
        if let Some(upgrade) = &self.upgrade {
            log::warn!(
                "prefork: SIGUSR2 ignored: the new program (pid {}) is still starting",
                upgrade.pid()
            );
            return;
        }
        match Upgrade::start(socket) {
            Ok(upgrade) => self.upgrade = Some(Box::new(upgrade)),
            Err(e) => log::error!("prefork: SIGUSR2: {e}; this program goes on serving"),
        }
    }

    /// Once the new program serves, this one stops gracefully: its workers drain while the new
    /// program's accept from the same socket.
    fn check_upgrade(&mut self, server: &ServerHandle) {
        let Some(upgrade) = &mut self.upgrade else {
            return;
        };
        match upgrade.poll() {
            UpgradeState::Pending => return,
            UpgradeState::Ready => {
                log::info!(
                    "prefork: SIGUSR2: the new program (pid {}) serves; this one stops",
                    upgrade.pid()
                );
                // The socket and its file (a Unix server's) are the new program's now.
                server
                    .shared
                    .prefork
                    .handed_over
                    .store(true, Ordering::Release);
                server.shared.stop.request();
            }
            UpgradeState::Failed(why) => {
                log::error!("prefork: SIGUSR2: {why}; this program goes on serving");
            }
        }
        self.upgrade = None;
    }

    /// Reaps the retiring workers that exited, and kills those past their drain timeout.
    fn reap_retiring(&mut self) {
        let now = Instant::now();
        let retired = &mut self.retired;
        self.retiring.retain_mut(|r| {
            r.worker.reports.read();
            match r.worker.child.try_wait() {
                Ok(None) if now < r.deadline => return true,
                Ok(None) => {
                    log::warn!(
                        "prefork: retiring worker {} (pid {}) still running after the drain \
                         timeout; killing it",
                        r.index,
                        r.worker.child.id()
                    );
                    let _ = r.worker.child.kill();
                    let _ = r.worker.child.wait();
                }
                Ok(Some(status)) if !status.success() => log::warn!(
                    "prefork: retiring worker {} (pid {}) {}",
                    r.index,
                    r.worker.child.id(),
                    describe(status)
                ),
                Ok(Some(_)) => log::info!(
                    "prefork: worker {} (pid {}) retired",
                    r.index,
                    r.worker.child.id()
                ),
                Err(e) => log::error!("prefork: cannot check retiring worker {}: {e}", r.index),
            }
            r.worker.finish(retired);
            false
        });
    }

    /// The whole server's counters: the exited workers' and the running ones' last reports.
    fn sum(&self) -> Stats {
        let mut sum = self.retired;
        let running = self
            .slots
            .iter()
            .flat_map(|s| s.worker.iter().chain(&s.successor))
            .chain(self.retiring.iter().map(|r| &r.worker));
        for worker in running {
            sum.add(&worker.reports.last);
        }
        sum
    }
}

/// One running worker process and its report pipe.
#[derive(Debug)]
struct Worker {
    child: Child,
    started: Instant,
    reports: Reports,
}

impl Worker {
    fn start(index: usize, socket: RawFd, from_disk: bool) -> io::Result<Worker> {
        let (reports, writer) = Reports::pipe()?;
        let role = Role::Worker { fd: socket, index };
        // `writer` closes here once spawned: only the worker holds the write end.
        let child = process::spawn_worker(role, writer.as_raw_fd(), from_disk)?;
        log::info!("prefork: worker {index} started (pid {})", child.id());
        Ok(Worker {
            child,
            started: Instant::now(),
            reports,
        })
    }

    /// After the worker exited (or was killed): its last counters go to `retired`, with the
    /// requests it still had running counted as failed.
    fn finish(&mut self, retired: &mut Stats) {
        self.reports.read();
        let mut last = self.reports.last;
        last.failed += last.active;
        last.active = 0;
        retired.add(&last);
        self.reports.last = Stats::default();
    }
}

/// A worker told to stop: its lifeline is closed, and it is killed if still running at
/// `deadline`.
#[derive(Debug)]
struct Retiring {
    index: usize,
    worker: Worker,
    deadline: Instant,
}

impl Retiring {
    fn new((index, mut worker): (usize, Worker), drain_timeout: Duration) -> Retiring {
        drop(worker.child.stdin.take());
        Retiring {
            index,
            worker,
            // The worker ends itself at its drain timeout; the margin lets it do so first.
            deadline: Instant::now() + drain_timeout + Duration::from_millis(500),
        }
    }
}

/// One worker place: the running worker, or when to start the next one; during a reload, the
/// fresh worker that will take over.
#[derive(Debug)]
struct Slot {
    worker: Option<Worker>,
    start_at: Option<Instant>,
    delay: Duration,
    /// A reload asked for a successor that is not started yet.
    reload: bool,
    successor: Option<Worker>,
}

impl Slot {
    fn new() -> Self {
        Slot {
            worker: None,
            start_at: Some(Instant::now()),
            delay: MIN_RESTART_DELAY,
            reload: false,
            successor: None,
        }
    }

    /// Reaps the worker if it exited, and schedules its replacement; gives up a successor that
    /// exited before it served.
    fn check(&mut self, index: usize, retired: &mut Stats) {
        if let Some(successor) = &mut self.successor {
            successor.reports.read();
            if let Ok(Some(status)) = successor.child.try_wait() {
                log::error!(
                    "prefork: fresh worker {index} (pid {}) {} before serving; the old one \
                     goes on",
                    successor.child.id(),
                    describe(status)
                );
                successor.finish(retired);
                self.successor = None;
            }
        }
        let Some(worker) = &mut self.worker else {
            return;
        };
        worker.reports.read();
        let status = match worker.child.try_wait() {
            Ok(None) => return,
            Ok(Some(status)) => status,
            Err(e) => {
                log::error!(
                    "prefork: cannot check worker {index} (pid {}): {e}",
                    worker.child.id()
                );
                return;
            }
        };
        let (pid, lived) = (worker.child.id(), worker.started.elapsed());
        worker.finish(retired);
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

    fn start_if_due(&mut self, index: usize, socket: RawFd, from_disk: bool) {
        let due = self.start_at.is_some_and(|at| at <= Instant::now());
        if self.worker.is_some() || self.successor.is_some() || !due {
            return;
        }
        match Worker::start(index, socket, from_disk) {
            Ok(worker) => {
                self.worker = Some(worker);
                self.start_at = None;
                // A worker started since the reload began is fresh already.
                self.reload = !from_disk && self.reload;
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

    fn start_successor_if_due(&mut self, index: usize, socket: RawFd) {
        if !self.reload || self.successor.is_some() {
            return;
        }
        self.reload = false;
        if self.worker.is_none() {
            return; // Its next worker starts from disk anyway.
        }
        match Worker::start(index, socket, true) {
            Ok(worker) => self.successor = Some(worker),
            Err(e) => log::error!("prefork: cannot start a fresh worker {index}: {e}"),
        }
    }

    /// Once the successor serves: it becomes the worker, and the old one is returned to retire.
    fn promote(&mut self, index: usize) -> Option<(usize, Worker)> {
        if !self.successor.as_ref()?.reports.ready {
            return None;
        }
        let old = std::mem::replace(&mut self.worker, self.successor.take())?;
        Some((index, old))
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
fn drain(workers: &mut [(usize, Worker)], timeout: Duration, abort: &StopSignal) -> usize {
    for (_, worker) in workers.iter_mut() {
        drop(worker.child.stdin.take());
    }
    let deadline = Instant::now() + timeout;
    let mut exited = vec![false; workers.len()];
    loop {
        let mut running = 0;
        for ((index, worker), exited) in workers.iter_mut().zip(exited.iter_mut()) {
            if *exited {
                continue;
            }
            worker.reports.read();
            match worker.child.try_wait() {
                Ok(Some(status)) => {
                    if !status.success() {
                        log::warn!(
                            "prefork: worker {index} (pid {}) {} while stopping",
                            worker.child.id(),
                            describe(status)
                        );
                    }
                    *exited = true;
                }
                Ok(None) => running += 1,
                Err(e) => {
                    log::error!("prefork: cannot check worker {index}: {e}");
                    *exited = true;
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
    for ((index, worker), _) in workers.iter_mut().zip(exited).filter(|(_, e)| !e) {
        log::warn!(
            "prefork: worker {index} (pid {}) still running {why}; killing it",
            worker.child.id()
        );
        let _ = worker.child.kill();
        let _ = worker.child.wait();
        killed += 1;
    }
    killed
}
