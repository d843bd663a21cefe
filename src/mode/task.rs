//! [`Task`]: one accepted request on its way to a handler, whichever mode runs it.

use std::fmt;
use std::sync::Arc;

use crate::address::Address;
use crate::control::Shared;
use crate::failure::Failure;
use crate::process::Handoff;
use crate::stats::Ending;

type Job = Box<dyn FnOnce() -> Ending + Send>;

/// A request the server has accepted and counted as active. However the task ends — run,
/// rejected, or dropped because a thread could not be started — dropping it records the ending
/// exactly once, so `stats().active` always returns to zero.
pub struct Task {
    peer: Address,
    job: Option<Job>,
    ending: Ending,
    shared: Arc<Shared>,
    /// The request's socket and data, for a mode that runs it in a child process.
    handoff: Option<Handoff>,
}

impl Task {
    /// `job` runs the handler and says how the request ended. The caller has already counted the
    /// request as started.
    pub(crate) fn new(peer: Address, shared: Arc<Shared>, job: Job) -> Self {
        Task {
            peer,
            job: Some(job),
            ending: Ending::Rejected,
            shared,
            handoff: None,
        }
    }

    /// Attaches what a child process needs to handle the request instead of `job`.
    pub(crate) fn with_handoff(mut self, handoff: Handoff) -> Self {
        self.handoff = Some(handoff);
        self
    }

    pub(crate) fn take_handoff(&mut self) -> Option<Handoff> {
        self.handoff.take()
    }

    /// Closes this process's copy of the request's socket (a child has its own) while the request
    /// still counts as active.
    pub(crate) fn release(&mut self) {
        self.job = None;
    }

    /// Ends the request with `ending`, decided elsewhere (by a child's exit status).
    pub(crate) fn end(mut self, ending: Ending) {
        self.job = None;
        self.ending = ending;
    }

    /// Passes a failure to the server's `handle_error`.
    pub(crate) fn report(&self, failure: &Failure) {
        self.shared.report(&self.peer, failure);
    }

    pub(crate) fn peer(&self) -> &Address {
        &self.peer
    }

    /// Runs the handler on the current thread. Never panics: the job catches handler panics.
    pub(crate) fn run(mut self) {
        if let Some(job) = self.job.take() {
            self.shared.counters.busy(true);
            self.ending = job();
            self.shared.counters.busy(false);
        }
    }

    /// Counts this request in (`true`) or out of (`false`) the pool queue gauge.
    pub(crate) fn queued(&self, into: bool) {
        self.shared.counters.queued(into);
    }

    /// Closes the request without running the handler (the connection is closed when the job,
    /// which owns it, is dropped).
    pub(crate) fn reject(self) {
        log::debug!("closed request from {} without handling it", self.peer);
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // Drop the job (and the connection it owns) before the request stops counting as active,
        // so "no request active" also means "every connection closed".
        self.job = None;
        self.shared.counters.request_ended(self.ending);
    }
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task").field("peer", &self.peer).finish()
    }
}
