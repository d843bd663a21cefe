//! [`Threading`]: a new thread for every request.

use std::io;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Select, Sender};

use super::sealed::ModeImpl;
use super::{Task, ThreadSettings};
use crate::control::StopSignal;

/// Starts a thread for each connection or datagram — Python's `ThreadingMixIn`.
///
/// With [`max_threads`](Self::max_threads), at most that many handlers run at once: at the cap
/// the server stops accepting until one finishes (new connections wait in the listen backlog).
/// Finished threads are joined as new requests arrive, so memory does not grow with the number of
/// past requests. [`Server::server_close`](crate::Server::server_close) waits for running threads,
/// like Python's `block_on_close`.
#[derive(Debug, Default)]
pub struct Threading {
    max_threads: Option<usize>,
    live: Vec<JoinHandle<()>>,
    /// A bounded channel used as a counting semaphore: a thread holds one message while it runs.
    slots: Option<(Sender<()>, Receiver<()>)>,
    threads: ThreadSettings,
    started: u64,
}

impl Threading {
    /// A thread per request, with no cap.
    #[must_use]
    pub fn new() -> Self {
        Threading::default()
    }

    /// Caps the number of handler threads running at once (at least 1).
    #[must_use]
    pub fn max_threads(mut self, max: usize) -> Self {
        self.max_threads = Some(max);
        self
    }

    /// Handler threads started and not yet joined. Finished threads are joined as new requests
    /// arrive, so after a burst this drops back to a handful.
    #[must_use]
    pub fn tracked_threads(&self) -> usize {
        self.live.len()
    }

    fn reap_finished(&mut self) {
        let mut i = 0;
        while i < self.live.len() {
            if self.live[i].is_finished() {
                let handle = self.live.swap_remove(i);
                if handle.join().is_err() {
                    log::error!("a handler thread panicked outside its handler");
                }
            } else {
                i += 1;
            }
        }
    }

    /// Waits for a free slot; `false` if shutdown came first.
    fn acquire_slot(&self, stop: &StopSignal) -> bool {
        let Some((tx, _)) = &self.slots else {
            return true;
        };
        if tx.try_send(()).is_ok() {
            return true;
        }
        log::debug!(
            "all {} handler threads busy: waiting",
            tx.capacity().unwrap_or(0)
        );
        let mut select = Select::new();
        let slot = select.send(tx);
        select.recv(stop.channel());
        let op = select.select();
        if op.index() == slot {
            op.send(tx, ()).is_ok()
        } else {
            let _ = op.recv(stop.channel());
            false
        }
    }
}

impl Threading {
    /// Waits for a slot (when capped), then runs `body(task)` on a new thread named
    /// `<prefix>-<role>-<n>`. Shared with the process mode, whose threads each wait on a child.
    pub(crate) fn run_on_thread(
        &mut self,
        task: Task,
        stop: &StopSignal,
        role: &str,
        body: impl FnOnce(Task) + Send + 'static,
    ) {
        self.reap_finished();
        if !self.acquire_slot(stop) {
            log::info!(
                "closing connection from {}: server shut down while it waited for a {role} slot",
                task.peer()
            );
            task.reject();
            return;
        }
        let release = self.slots.as_ref().map(|(_, rx)| rx.clone());
        let release_on_error = release.clone();
        let peer = task.peer().clone();
        self.started += 1;
        let spawned = self
            .threads
            .spawn(&format!("{role}-{}", self.started), move || {
                body(task);
                if let Some(rx) = release {
                    let _ = rx.try_recv();
                }
            });
        match spawned {
            Ok(handle) => self.live.push(handle),
            Err(e) => {
                // The task was dropped with the closure, which counts it as rejected.
                log::error!("cannot start a thread for the request from {peer}: {e}; closed it");
                if let Some(rx) = release_on_error {
                    let _ = rx.try_recv();
                }
            }
        }
    }
}

impl ModeImpl for Threading {
    fn name(&self) -> &'static str {
        "threading"
    }

    fn start(&mut self, threads: &ThreadSettings) -> io::Result<()> {
        self.threads = threads.clone();
        if let Some(max) = self.max_threads {
            if max == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "Threading::max_threads must be at least 1",
                ));
            }
            self.slots = Some(crossbeam_channel::bounded(max));
        }
        Ok(())
    }

    fn dispatch(&mut self, task: Task, stop: &StopSignal) {
        self.run_on_thread(task, stop, "thread", Task::run);
    }

    fn stop_intake(&mut self) {}

    fn join(&mut self) {
        for handle in self.live.drain(..) {
            if handle.join().is_err() {
                log::error!("a handler thread panicked outside its handler");
            }
        }
    }
}
