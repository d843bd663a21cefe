//! [`Throttle`]: how the crate keeps a repeated log line (an error storm, a flood of bad requests)
//! from flooding the log, while still saying how many lines it held back.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Lets a repeated line through at most `burst` times per interval and counts what it held back,
/// so an error storm leaves a readable log.
#[derive(Debug)]
pub(crate) struct Throttle {
    interval: Duration,
    burst: u32,
    /// When the current interval started (at the first line let through in it).
    window: Option<Instant>,
    admitted: u32,
    suppressed: u64,
}

impl Throttle {
    /// One line per `interval`.
    pub(crate) fn new(interval: Duration) -> Self {
        Self::with_burst(interval, 1)
    }

    /// Up to `burst` lines per `interval`, so that a few unrelated failures in a row all show.
    pub(crate) fn with_burst(interval: Duration, burst: u32) -> Self {
        Throttle {
            interval,
            burst: burst.max(1),
            window: None,
            admitted: 0,
            suppressed: 0,
        }
    }

    /// `Some(n)` if this occurrence should be logged, with `n` occurrences held back since the
    /// last one that was; `None` if it should be held back.
    pub(crate) fn admit(&mut self) -> Option<u64> {
        let now = Instant::now();
        let in_window = self
            .window
            .is_some_and(|start| now.duration_since(start) < self.interval);
        if !in_window {
            self.window = Some(now);
            self.admitted = 0;
        }
        if self.admitted < self.burst {
            self.admitted += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }

    /// The occurrences held back since the last one let through, which are now forgotten: for a
    /// last summary line when nothing more will come.
    pub(crate) fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

/// A [`Throttle`] that threads share (request failures are reported from worker threads). The
/// lock is taken only for a line that is about to be logged or held back, never on a path that
/// logs nothing.
#[derive(Debug)]
pub(crate) struct SharedThrottle(Mutex<Throttle>);

impl SharedThrottle {
    pub(crate) fn new(throttle: Throttle) -> Self {
        SharedThrottle(Mutex::new(throttle))
    }

    /// [`Throttle::admit`].
    pub(crate) fn admit(&self) -> Option<u64> {
        self.lock().admit()
    }

    /// [`Throttle::take_suppressed`].
    pub(crate) fn take_suppressed(&self) -> u64 {
        self.lock().take_suppressed()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Throttle> {
        // A panic while holding the lock cannot leave the counters inconsistent: keep using them.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_admits_once_per_interval_and_counts_the_rest() {
        let mut t = Throttle::new(Duration::from_secs(3600));
        assert_eq!(t.admit(), Some(0));
        assert_eq!(t.admit(), None);
        assert_eq!(t.admit(), None);
        t.window = None; // the interval is over (`now - 2h` would panic on a machine up < 2h)
        assert_eq!(t.admit(), Some(2));
        assert_eq!(t.admit(), None);
        assert_eq!(t.take_suppressed(), 1);
        assert_eq!(t.take_suppressed(), 0);
    }

    #[test]
    fn a_burst_passes_whole_then_the_rest_is_counted() {
        let mut t = Throttle::with_burst(Duration::from_secs(3600), 3);
        let first: Vec<_> = (0..10).map(|_| t.admit()).collect();
        assert_eq!(&first[..3], &[Some(0); 3]);
        assert!(first[3..].iter().all(Option::is_none), "{first:?}");
        t.window = None; // the interval is over
        assert_eq!(
            t.admit(),
            Some(7),
            "the next interval's first line carries the count"
        );
        assert_eq!(t.admit(), Some(0));
    }

    #[test]
    fn a_shared_throttle_counts_every_thread() {
        let t = std::sync::Arc::new(SharedThrottle::new(Throttle::with_burst(
            Duration::from_secs(3600),
            2,
        )));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let t = std::sync::Arc::clone(&t);
                std::thread::spawn(move || (0..250).filter(|_| t.admit().is_some()).count())
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(admitted, 2);
        assert_eq!(t.take_suppressed(), 998);
    }
}
