//! The prefork supervisor: the parent's runtime state (worker places, retiring workers, an
//! upgrade under way) and its loop, apart from [`Prefork`](super::Prefork), the configuration.

use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::workers::{describe, drain, Retiring, Slot, Worker};
use crate::control::{PreforkRequests, ServerHandle};
use crate::process::{Upgrade, UpgradeState};
use crate::stats::Stats;

/// How often the supervisor looks for exited workers (waitpid on each of its own children).
const SUPERVISE_TICK: Duration = Duration::from_millis(25);

/// A prefork parent's state while it supervises.
#[derive(Debug)]
pub(super) struct Supervisor {
    /// How long a stopping worker may take to finish its requests.
    drain_timeout: Duration,
    /// The worker places.
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

impl Supervisor {
    /// A supervisor for `workers` places, none started yet.
    pub(super) fn new(workers: usize, drain_timeout: Duration) -> Supervisor {
        Supervisor {
            drain_timeout,
            slots: (0..workers).map(|_| Slot::new()).collect(),
            retiring: Vec::new(),
            retired: Stats::default(),
            from_disk: false,
            upgrade: None,
        }
    }

    /// Runs the supervisor until `server` is stopped (see [`ModeImpl::supervise`]).
    ///
    /// [`ModeImpl::supervise`]: crate::mode::sealed::ModeImpl::supervise
    pub(super) fn run(&mut self, socket: RawFd, server: &ServerHandle, tick: &mut dyn FnMut()) {
        let shared = &server.shared;
        log::info!("prefork: starting {} worker processes", self.slots.len());
        let mut reloading = false;
        // Worker places whose fresh worker failed during this reload: their old ones go on.
        let mut kept_old = 0;
        while !shared.stop.is_requested() {
            self.resize(&shared.prefork);
            if shared.prefork.reload.swap(false, Ordering::AcqRel) {
                reloading = self.begin_reload(server);
                kept_old = 0;
            }
            if shared.prefork.upgrade.swap(false, Ordering::AcqRel) {
                self.begin_upgrade(socket);
            }
            self.check_upgrade(server);
            let from_disk = self.from_disk;
            for (index, slot) in self.slots.iter_mut().enumerate() {
                kept_old += usize::from(slot.check(index, &mut self.retired));
                slot.start_if_due(index, socket, from_disk);
                kept_old += usize::from(!slot.start_successor_if_due(index, socket));
                if let Some(old) = slot.promote(index) {
                    self.retiring.push(Retiring::new(old, self.drain_timeout));
                }
            }
            if reloading && self.slots.iter().all(|s| s.successor.is_none()) {
                reloading = false;
                if kept_old == 0 {
                    log::info!("prefork: reload done; every worker is fresh");
                } else {
                    // Such as a program or its files (a TLS certificate) that cannot be used:
                    // the old workers serve on as before, and the errors above say why.
                    log::warn!(
                        "prefork: reload done; {kept_old} worker(s) could not be replaced and go \
                         on with the old program"
                    );
                }
                server.notify_ready();
            }
            self.reap_retiring();
            shared.counters.set_reported(self.sum());
            tick();
            shared.stop.sleep(SUPERVISE_TICK);
        }
        // The wake-up that saw the stop: reported (STOPPING=1) before the workers drain.
        tick();
    }

    /// Tells the workers to stop and waits for them (see [`ModeImpl::stop_workers`]).
    ///
    /// [`ModeImpl::stop_workers`]: crate::mode::sealed::ModeImpl::stop_workers
    pub(super) fn stop_workers(&mut self, server: &ServerHandle) -> usize {
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
            sum.workers_alive += 1;
        }
        sum
    }
}
