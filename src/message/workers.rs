//! Running a connection's handler on its messages: inline on the loop, or on a pool of worker
//! threads that hand the handler and its output back to the loop.

use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::handler::MessageHandler;
use super::job_queue::JobQueue;
use super::output::Output;
use super::reply::{ConnectionInfo, Reply};
use super::sender::{ConnectionId, Link};
use crate::failure::Failure;
use crate::mode::ThreadSettings;
use crate::panics::catch_handler_panic;

/// Jobs that may wait for a worker, per worker. Beyond them, connections with messages wait on
/// the loop, their messages still in their input buffers (bounded there), not copied into jobs.
/// Enough for a worker to run several connections' messages back to back.
const JOBS_PER_WORKER: usize = 8;

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

    /// Empties it, keeping its buffers for the next job.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.messages.clear();
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
    /// The job's batch, emptied, for the loop to fill again.
    pub(crate) batch: Batch,
}

/// Runs a job queued at `queued`, counted as busy for the server's counters.
fn run_queued<H: MessageHandler>(job: Job<H>, queued: Instant) -> Done<H> {
    let shared = Arc::clone(&job.info.server.shared);
    shared.counters.queued(false);
    shared.counters.waited(queued.elapsed());
    shared.counters.busy(true);
    let done = run_job(job);
    shared.counters.busy(false);
    done
}

/// Runs `job`'s messages in order, stopping at a close or a failure.
fn run_job<H: MessageHandler>(job: Job<H>) -> Done<H> {
    let Job {
        mut handler,
        info,
        mut batch,
    } = job;
    let mut out = Output::default();
    let mut close = false;
    let mut failure = None;
    for range in &batch.messages {
        let message = &batch.bytes[range.clone()];
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
    batch.clear();
    Done {
        id: info.id,
        handler,
        out,
        close,
        failure,
        batch,
    }
}

/// Results a worker hands back at once at most...
const RESULTS_PER_POST: usize = 64;
/// ...and how long its first result may wait for the others: a worker running handlers back to
/// back posts their results in batches, one wake-up of the loop each, not one per connection.
const POST_AFTER: Duration = Duration::from_micros(200);

/// The workers' results, collected by the loop once per turn.
struct Results<H> {
    done: Mutex<Vec<Done<H>>>,
    /// Whether `done` holds any: the loop looks before every wait, without taking the lock.
    posted: AtomicBool,
}

impl<H> Results<H> {
    fn lock(&self) -> MutexGuard<'_, Vec<Done<H>>> {
        // Nothing panics while holding it: a poisoned lock still holds whole results.
        self.done.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Worker threads running handlers for the loop ([`Pool`](crate::Pool) mode).
pub(crate) struct Workers<H> {
    /// Each job with when it was queued (for the queue wait histogram).
    queue: Arc<JobQueue<(Job<H>, Instant)>>,
    results: Arc<Results<H>>,
    threads: Vec<JoinHandle<()>>,
}

impl<H: MessageHandler> Workers<H> {
    /// Starts `count` workers that hand their results back and wake the loop through `link`.
    pub(crate) fn start(
        count: usize,
        threads: &ThreadSettings,
        link: &Arc<Link>,
    ) -> io::Result<Workers<H>> {
        let mut workers = Workers {
            queue: Arc::new(JobQueue::new(count, count * JOBS_PER_WORKER)),
            results: Arc::new(Results {
                done: Mutex::new(Vec::new()),
                posted: AtomicBool::new(false),
            }),
            threads: Vec::with_capacity(count),
        };
        for n in 0..count {
            let queue = Arc::clone(&workers.queue);
            let results = Arc::clone(&workers.results);
            let link = Arc::clone(link);
            let spawned = threads.spawn(&format!("message-{n}"), move || {
                work(&queue, &results, &link);
            });
            match spawned {
                Ok(handle) => workers.threads.push(handle),
                Err(e) => {
                    workers.join();
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
        self.queue.has_room()
    }

    /// Queues `job` for a worker (call [`has_room`](Self::has_room) first), to be started by the
    /// next [`kick`](Self::kick); gives it back once the workers are stopping.
    pub(crate) fn submit(&self, job: Job<H>) -> Result<(), Job<H>> {
        // Counted before it is queued: a worker may take it (and count it out) at once.
        let shared = Arc::clone(&job.info.server.shared);
        shared.counters.queued(true);
        self.queue.push((job, Instant::now())).map_err(|(job, _)| {
            shared.counters.queued(false);
            job
        })
    }

    /// Wakes the workers the queued jobs need (the loop, at the end of each turn); returns how
    /// soon the loop should look again.
    pub(crate) fn kick(&self, now: Instant) -> Option<Duration> {
        self.queue.kick(now)
    }

    /// Moves the results handed back so far into `into`.
    pub(crate) fn take_done(&self, into: &mut Vec<Done<H>>) {
        if !self.results.posted.load(Ordering::Acquire) {
            return;
        }
        let mut done = self.results.lock();
        self.results.posted.store(false, Ordering::Relaxed);
        std::mem::swap(&mut *done, into);
    }

    /// Whether results are waiting (the loop, before it sleeps).
    pub(crate) fn has_done(&self) -> bool {
        // SeqCst: pairs with the loop's `going_to_sleep` (see `Link::wake`).
        self.results.posted.load(Ordering::SeqCst)
    }

    /// Lets the workers exit once the queue is empty; `join` then waits for them.
    pub(crate) fn stop(&mut self) {
        self.queue.close();
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

/// A worker: takes jobs back to back while there are any, and hands their results back in
/// batches, the last one before it sleeps.
fn work<H: MessageHandler>(queue: &JobQueue<(Job<H>, Instant)>, results: &Results<H>, link: &Link) {
    let mut done: Vec<Done<H>> = Vec::new();
    let mut first_done: Option<Instant> = None;
    loop {
        let (job, queued) = match queue.try_take() {
            Some(job) => job,
            None => {
                post(&mut done, results, link);
                first_done = None;
                match queue.take() {
                    Some(job) => job,
                    None => return,
                }
            }
        };
        let started = Instant::now();
        done.push(run_queued(job, queued));
        let now = Instant::now();
        queue.ran(now.saturating_duration_since(started));
        let first = *first_done.get_or_insert(started);
        if done.len() >= RESULTS_PER_POST || now.saturating_duration_since(first) >= POST_AFTER {
            post(&mut done, results, link);
            first_done = None;
        }
    }
}

/// Hands `done` to the loop and wakes it (a system call only when it sleeps).
fn post<H>(done: &mut Vec<Done<H>>, results: &Results<H>, link: &Link) {
    if done.is_empty() {
        return;
    }
    {
        let mut posted = results.lock();
        if posted.is_empty() {
            std::mem::swap(&mut *posted, done);
        } else {
            posted.append(done);
        }
        results.posted.store(true, Ordering::SeqCst);
    }
    link.wake();
}
