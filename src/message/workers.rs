//! Running a connection's handler on its messages: inline on the loop, or on a pool of worker
//! threads that hand the handler and its output back to the loop.

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender as ChannelSender};

use super::handler::MessageHandler;
use super::output::Output;
use super::reply::{ConnectionInfo, Reply};
use super::sender::{ConnectionId, Link};
use crate::failure::Failure;
use crate::mode::ThreadSettings;
use crate::panics::catch_handler_panic;

/// Jobs that may wait for a worker, per worker. Beyond them, connections with messages wait on
/// the loop, their messages still in their input buffers (bounded there), not copied into jobs.
const JOBS_PER_WORKER: usize = 2;

/// Calls `step` with a [`Reply`] into `out`, turning an error or a panic into a [`Failure`].
pub(crate) fn run_step(
    out: &mut Output,
    close: &mut bool,
    info: &ConnectionInfo,
    step: impl FnOnce(&mut Reply<'_>) -> io::Result<()>,
) -> Result<(), Failure> {
    let mut reply = Reply { out, close, info };
    // After a panic the connection is closed and its handler dropped.
    match catch_handler_panic(|| step(&mut reply)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure::Error(e)),
        Err(payload) => Err(Failure::from_panic(payload)),
    }
}

/// Complete messages copied out of a connection's buffer for a worker.
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) bytes: Vec<u8>,
    pub(crate) messages: Vec<Range<usize>>,
}

impl Batch {
    pub(crate) fn push(&mut self, message: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(message);
        self.messages.push(start..self.bytes.len());
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

/// A connection's handler and messages, on their way to a worker.
pub(crate) struct Job<H> {
    pub(crate) handler: H,
    pub(crate) info: Arc<ConnectionInfo>,
    pub(crate) batch: Batch,
}

/// A worker's results, on their way back to the loop.
pub(crate) struct Done<H> {
    pub(crate) id: ConnectionId,
    pub(crate) handler: H,
    pub(crate) out: Output,
    pub(crate) close: bool,
    pub(crate) failure: Option<Failure>,
}

/// Runs a job queued at `queued`, counted as busy for the server's counters.
fn run_queued<H: MessageHandler>(job: Job<H>, queued: Instant) -> Done<H> {
    let counters = &job.info.server.shared.counters;
    counters.queued(false);
    counters.waited(queued.elapsed());
    counters.busy(true);
    let shared = Arc::clone(&job.info.server.shared);
    let done = run_job(job);
    shared.counters.busy(false);
    done
}

/// Runs `job`'s messages in order, stopping at a close or a failure.
fn run_job<H: MessageHandler>(job: Job<H>) -> Done<H> {
    let Job {
        mut handler,
        info,
        batch,
    } = job;
    let mut out = Output::default();
    let mut close = false;
    let mut failure = None;
    for range in batch.messages {
        let message = &batch.bytes[range];
        let began = Instant::now();
        let step = run_step(&mut out, &mut close, &info, |reply| {
            handler.handle(message, reply)
        });
        info.server
            .shared
            .counters
            .message_handled(&step, began.elapsed());
        if let Err(f) = step {
            failure = Some(f);
            break;
        }
        if close {
            break;
        }
    }
    Done {
        id: info.id,
        handler,
        out,
        close,
        failure,
    }
}

/// Worker threads running handlers for the loop ([`Pool`](crate::Pool) mode).
pub(crate) struct Workers<H> {
    /// Each job with when it was queued (for the queue wait histogram).
    jobs: Option<ChannelSender<(Job<H>, Instant)>>,
    threads: Vec<JoinHandle<()>>,
}

impl<H: MessageHandler> Workers<H> {
    /// Starts `count` workers that send their results to `done` and wake the loop through `link`.
    pub(crate) fn start(
        count: usize,
        threads: &ThreadSettings,
        done: &ChannelSender<Done<H>>,
        link: &Arc<Link>,
    ) -> io::Result<Workers<H>> {
        let (jobs, queue) =
            crossbeam_channel::bounded::<(Job<H>, Instant)>(count * JOBS_PER_WORKER);
        let mut workers = Workers {
            jobs: Some(jobs),
            threads: Vec::with_capacity(count),
        };
        for n in 0..count {
            let queue: Receiver<(Job<H>, Instant)> = queue.clone();
            let done = done.clone();
            let link = Arc::clone(link);
            let spawned = threads.spawn(&format!("message-{n}"), move || {
                for (job, queued) in queue {
                    if done.send(run_queued(job, queued)).is_err() {
                        return;
                    }
                    link.wake();
                }
            });
            match spawned {
                Ok(handle) => workers.threads.push(handle),
                Err(e) => {
                    workers.stop();
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot start message worker thread {n}: {e}"),
                    ));
                }
            }
        }
        Ok(workers)
    }

    /// Whether the queue takes another job now. Only the loop submits, so a `true` holds until it
    /// does.
    pub(crate) fn has_room(&self) -> bool {
        self.jobs.as_ref().is_some_and(|jobs| !jobs.is_full())
    }

    /// Hands `job` to a worker (call [`has_room`](Self::has_room) first, or this waits for a
    /// place); gives it back if every worker is gone (they only end at a stop).
    pub(crate) fn submit(&self, job: Job<H>) -> Result<(), Job<H>> {
        let Some(jobs) = &self.jobs else {
            return Err(job);
        };
        // Counted before it is sent: a worker may take it (and count it out) at once.
        let shared = Arc::clone(&job.info.server.shared);
        shared.counters.queued(true);
        jobs.send((job, Instant::now())).map_err(|e| {
            shared.counters.queued(false);
            e.into_inner().0
        })
    }

    /// Lets the workers exit once the queue is empty; `join` then waits for them.
    pub(crate) fn stop(&mut self) {
        self.jobs = None;
    }

    /// Waits for the workers to exit (call `stop` first).
    pub(crate) fn join(&mut self) {
        self.stop();
        for handle in self.threads.drain(..) {
            // A worker only ends by panicking if run_job failed to catch a panic: nothing to add.
            let _ = handle.join();
        }
    }
}
