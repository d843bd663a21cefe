//! The supervisor's view of its worker processes: a running worker and its report pipe, a place
//! that keeps one running (restarting a failing one with a growing pause), a worker retiring, and
//! the drain at the end.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use crate::control::StopSignal;
use crate::process::{self, Reports, Role};
use crate::stats::Stats;

/// First pause before replacing a worker that failed; doubles on each failure in a row.
const MIN_RESTART_DELAY: Duration = Duration::from_millis(100);
/// Longest pause before replacing a failing worker: a worker that crashes at once cannot turn the
/// supervisor into a fork bomb.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(10);
/// A worker that ran this long before failing starts the back-off afresh.
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// One running worker process and its report pipe.
#[derive(Debug)]
pub(super) struct Worker {
    pub(super) child: Child,
    pub(super) started: Instant,
    pub(super) reports: Reports,
}

impl Worker {
    pub(super) fn start(index: usize, socket: RawFd, from_disk: bool) -> io::Result<Worker> {
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
    pub(super) fn finish(&mut self, retired: &mut Stats) {
        self.reports.read();
        let mut last = self.reports.last;
        last.failed += last.active;
        // Gauges: what it was doing is over.
        last.active = 0;
        last.queue_depth = 0;
        last.busy_workers = 0;
        retired.add(&last);
        self.reports.last = Stats::default();
    }
}

/// A worker told to stop: its lifeline is closed, and it is killed if still running at
/// `deadline`.
#[derive(Debug)]
pub(super) struct Retiring {
    pub(super) index: usize,
    pub(super) worker: Worker,
    pub(super) deadline: Instant,
}

impl Retiring {
    pub(super) fn new((index, mut worker): (usize, Worker), drain_timeout: Duration) -> Retiring {
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
pub(super) struct Slot {
    pub(super) worker: Option<Worker>,
    pub(super) start_at: Option<Instant>,
    pub(super) delay: Duration,
    /// A reload asked for a successor that is not started yet.
    pub(super) reload: bool,
    pub(super) successor: Option<Worker>,
}

impl Slot {
    pub(super) fn new() -> Self {
        Slot {
            worker: None,
            start_at: Some(Instant::now()),
            delay: MIN_RESTART_DELAY,
            reload: false,
            successor: None,
        }
    }

    /// Reaps the worker if it exited, and schedules its replacement; gives up a successor that
    /// exited before it served, returning `true` then (the old worker goes on).
    pub(super) fn check(&mut self, index: usize, retired: &mut Stats) -> bool {
        let mut successor_failed = false;
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
                successor_failed = true;
            }
        }
        let Some(worker) = &mut self.worker else {
            return successor_failed;
        };
        worker.reports.read();
        let status = match worker.child.try_wait() {
            Ok(None) => return successor_failed,
            Ok(Some(status)) => status,
            Err(e) => {
                log::error!(
                    "prefork: cannot check worker {index} (pid {}): {e}",
                    worker.child.id()
                );
                return successor_failed;
            }
        };
        let (pid, lived) = (worker.child.id(), worker.started.elapsed());
        worker.finish(retired);
        self.worker = None;
        match status.success() {
            true => retired.workers_recycled += 1,
            false => retired.workers_restarted += 1,
        }
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
        successor_failed
    }

    pub(super) fn start_if_due(&mut self, index: usize, socket: RawFd, from_disk: bool) {
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

    /// Starts the successor a reload asked for; `false` if it cannot be started (the old worker
    /// goes on).
    pub(super) fn start_successor_if_due(&mut self, index: usize, socket: RawFd) -> bool {
        if !self.reload || self.successor.is_some() {
            return true;
        }
        self.reload = false;
        if self.worker.is_none() {
            return true; // Its next worker starts from disk anyway.
        }
        match Worker::start(index, socket, true) {
            Ok(worker) => {
                self.successor = Some(worker);
                true
            }
            Err(e) => {
                log::error!(
                    "prefork: cannot start a fresh worker {index}: {e}; the old one goes on"
                );
                false
            }
        }
    }

    /// Once the successor serves: it becomes the worker, and the old one is returned to retire.
    pub(super) fn promote(&mut self, index: usize) -> Option<(usize, Worker)> {
        if !self.successor.as_ref()?.reports.ready {
            return None;
        }
        let old = std::mem::replace(&mut self.worker, self.successor.take())?;
        Some((index, old))
    }

    pub(super) fn schedule_retry(&mut self) {
        self.start_at = Some(Instant::now() + self.delay);
        self.delay = (self.delay * 2).min(MAX_RESTART_DELAY);
    }
}

pub(super) fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => format!("ended abnormally ({status})"),
    }
}

/// Closes every lifeline, waits for the workers to finish their requests and exit, and kills
/// those still running when `timeout` passes or `abort` is requested. Returns how many it killed.
pub(super) fn drain(
    workers: &mut [(usize, Worker)],
    timeout: Duration,
    abort: &StopSignal,
) -> usize {
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
