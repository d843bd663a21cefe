//! The queue between a message loop and its pool workers.
//!
//! What a crossing costs is mostly waking threads, not moving jobs, so the queue decides who wakes:
//! the loop queues a whole turn's jobs without waking anybody, then [`kick`](JobQueue::kick)s once;
//! a worker takes job after job without sleeping while there are any; and another worker is woken
//! only when the queued work would keep the awake ones busy for longer than [`SHARE`] (estimated
//! from how long jobs have been taking), so fast handlers run back to back on one thread while
//! slow (blocking) ones still spread over every worker. No thread spins or yields waiting.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Queued work an awake worker may be left with before another one is woken to share it.
const SHARE: Duration = Duration::from_micros(50);
/// How long jobs may sit in the queue without any being taken while a worker sleeps, before the
/// loop wakes one whatever the estimate says (the awake workers may be stuck in handlers that
/// wait for one of those very jobs).
pub(crate) const STUCK_AFTER: Duration = Duration::from_millis(1);

pub(crate) struct JobQueue<J> {
    state: Mutex<State<J>>,
    wake: Condvar,
    /// Jobs the queue holds at most (the loop checks [`has_room`](Self::has_room) first).
    capacity: usize,
    workers: usize,
    /// A moving average of how long a job runs, in nanoseconds.
    job_nanos: AtomicU64,
}

struct State<J> {
    jobs: VecDeque<J>,
    /// Workers waiting for a job...
    idle: usize,
    /// ...of which these were woken and have not taken the lock yet (one wake-up per need).
    waking: usize,
    open: bool,
    /// Jobs taken since the start, and when the loop last saw that number move: how it tells a
    /// queue that moves slowly from one that does not move at all.
    taken: u64,
    seen_taken: u64,
    seen_at: Option<Instant>,
}

impl<J> State<J> {
    /// Whether the queued jobs need one more awake worker: nobody awake would take them, or the
    /// awake workers would each have more than `SHARE` of them.
    fn needs_worker(&self, workers: usize, job_nanos: u64) -> bool {
        if self.jobs.is_empty() || self.idle <= self.waking {
            return false;
        }
        let awake = workers - self.idle + self.waking;
        let queued = (self.jobs.len() as u64).saturating_mul(job_nanos);
        awake == 0 || queued > (awake as u64).saturating_mul(SHARE.as_nanos() as u64)
    }

    fn wake_one(&mut self, wake: &Condvar) {
        self.waking += 1;
        wake.notify_one();
    }
}

impl<J> JobQueue<J> {
    /// A queue for `workers` workers holding at most `capacity` jobs.
    pub(crate) fn new(workers: usize, capacity: usize) -> JobQueue<J> {
        JobQueue {
            state: Mutex::new(State {
                jobs: VecDeque::with_capacity(capacity),
                idle: 0,
                waking: 0,
                open: true,
                taken: 0,
                seen_taken: 0,
                seen_at: None,
            }),
            wake: Condvar::new(),
            capacity,
            workers,
            job_nanos: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<J>> {
        // No code panics while holding the lock; a poisoned lock still holds a consistent queue.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether another job fits.
    pub(crate) fn has_room(&self) -> bool {
        self.lock().jobs.len() < self.capacity
    }

    /// Queues `job` without waking anybody (the loop calls [`kick`](Self::kick) at the end of its
    /// turn); gives it back once the queue is closed.
    pub(crate) fn push(&self, job: J) -> Result<(), J> {
        let mut state = self.lock();
        if !state.open {
            return Err(job);
        }
        state.jobs.push_back(job);
        Ok(())
    }

    /// Wakes the workers the queued jobs need. Returns how soon to look again: while jobs wait
    /// and a worker sleeps, in case the awake workers are stuck.
    pub(crate) fn kick(&self, now: Instant) -> Option<Duration> {
        let mut state = self.lock();
        if state.jobs.is_empty() {
            state.seen_at = None;
            return None;
        }
        if state.taken != state.seen_taken || state.seen_at.is_none() {
            state.seen_taken = state.taken;
            state.seen_at = Some(now);
        }
        let job_nanos = self.job_nanos.load(Ordering::Relaxed);
        let stuck = state
            .seen_at
            .is_some_and(|at| now.saturating_duration_since(at) >= STUCK_AFTER);
        if state.needs_worker(self.workers, job_nanos) || (stuck && state.idle > state.waking) {
            state.wake_one(&self.wake);
            state.seen_at = Some(now);
        }
        (state.idle > state.waking).then_some(STUCK_AFTER)
    }

    /// The next job, if one is queued (a worker between two jobs).
    pub(crate) fn try_take(&self) -> Option<J> {
        let mut state = self.lock();
        self.take_front(&mut state)
    }

    /// The next job, waiting for one; `None` once the queue is closed and empty.
    pub(crate) fn take(&self) -> Option<J> {
        let mut state = self.lock();
        loop {
            if let Some(job) = self.take_front(&mut state) {
                return Some(job);
            }
            if !state.open {
                return None;
            }
            state.idle += 1;
            state = self
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.idle -= 1;
            state.waking = state.waking.saturating_sub(1);
        }
    }

    fn take_front(&self, state: &mut State<J>) -> Option<J> {
        let job = state.jobs.pop_front()?;
        state.taken += 1;
        if state.needs_worker(self.workers, self.job_nanos.load(Ordering::Relaxed)) {
            state.wake_one(&self.wake);
        }
        Some(job)
    }

    /// Counts a job's run time into the average the wake-ups go by.
    pub(crate) fn ran(&self, took: Duration) {
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let old = self.job_nanos.load(Ordering::Relaxed);
        // Races between workers lose a sample now and then: an estimate needs no more.
        let new = if old == 0 {
            took
        } else {
            old - old / 8 + took / 8
        };
        self.job_nanos.store(new, Ordering::Relaxed);
    }

    /// Takes no more jobs; the workers finish the queued ones and then get `None`.
    pub(crate) fn close(&self) {
        self.lock().open = false;
        self.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn jobs_come_out_in_order_and_a_closed_queue_refuses_more() {
        let queue = JobQueue::new(1, 4);
        for n in 0..4 {
            assert!(queue.push(n).is_ok());
        }
        assert!(!queue.has_room());
        assert_eq!(queue.try_take(), Some(0));
        assert!(queue.has_room());
        queue.close();
        assert_eq!(queue.push(9), Err(9));
        assert_eq!(
            (queue.take(), queue.take(), queue.take(), queue.take()),
            (Some(1), Some(2), Some(3), None)
        );
    }

    /// Starts `n` workers that report each job's number and wait on `gate` inside the job.
    fn workers(
        queue: &Arc<JobQueue<u32>>,
        n: usize,
        gate: &Arc<Mutex<()>>,
    ) -> (
        Vec<thread::JoinHandle<()>>,
        crossbeam_channel::Receiver<u32>,
    ) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let handles = (0..n)
            .map(|_| {
                let (queue, gate, tx) = (Arc::clone(queue), Arc::clone(gate), tx.clone());
                thread::spawn(move || {
                    while let Some(job) = queue.take() {
                        let started = Instant::now();
                        tx.send(job).unwrap();
                        drop(gate.lock().unwrap());
                        queue.ran(started.elapsed());
                    }
                })
            })
            .collect();
        (handles, rx)
    }

    fn wait_idle(queue: &JobQueue<u32>, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while queue.lock().idle < n {
            assert!(Instant::now() < deadline, "the workers never went idle");
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_kick_wakes_a_worker_and_slow_jobs_spread_over_the_others() {
        let queue = Arc::new(JobQueue::new(3, 8));
        let gate = Arc::new(Mutex::new(()));
        let (handles, started) = workers(&queue, 3, &gate);
        wait_idle(&queue, 3);
        // Jobs are known to be slow: each holds its worker until the gate opens.
        queue.ran(Duration::from_millis(10));
        let closed = gate.lock().unwrap();
        for n in 0..3 {
            queue.push(n).unwrap();
        }
        assert_eq!(queue.lock().idle, 3, "queueing wakes nobody");
        queue.kick(Instant::now());
        let mut got: Vec<u32> = (0..3)
            .map(|_| started.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        got.sort_unstable();
        // All three run at once: each was woken while the others held the gate.
        assert_eq!(got, [0, 1, 2]);
        drop(closed);
        queue.close();
        for h in handles {
            h.join().unwrap();
        }
    }

    #[test]
    fn fast_jobs_stay_on_one_worker_until_it_is_stuck() {
        let queue = Arc::new(JobQueue::new(2, 8));
        let gate = Arc::new(Mutex::new(()));
        let (handles, started) = workers(&queue, 2, &gate);
        wait_idle(&queue, 2);
        queue.ran(Duration::from_nanos(100));
        let closed = gate.lock().unwrap();
        queue.push(1).unwrap();
        queue.push(2).unwrap();
        let t0 = Instant::now();
        assert_eq!(queue.kick(t0), Some(STUCK_AFTER));
        // One worker takes job 1 and blocks on the gate; job 2 is not worth a second wake-up...
        assert_eq!(started.recv_timeout(Duration::from_secs(10)).unwrap(), 1);
        assert!(started.recv_timeout(Duration::from_millis(50)).is_err());
        // ...until the loop sees the queue has not moved for STUCK_AFTER.
        let t1 = Instant::now();
        assert_eq!(queue.kick(t1), Some(STUCK_AFTER));
        assert!(started.recv_timeout(Duration::from_millis(50)).is_err());
        queue.kick(t1 + STUCK_AFTER);
        assert_eq!(started.recv_timeout(Duration::from_secs(10)).unwrap(), 2);
        drop(closed);
        queue.close();
        for h in handles {
            h.join().unwrap();
        }
    }
}
