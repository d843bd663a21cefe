//! [`LatencyHistogram`]: how long requests, messages or queue waits took, counted into fixed
//! buckets, and [`Recorder`], the live version: an array of atomic counters, one `fetch_add`
//! per bucket hit and one for the sum, with no lock, so it is always on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How many buckets a [`LatencyHistogram`] has: one per bound of [`LatencyHistogram::BOUNDS`],
/// and one more for what took longer than the last.
pub const BUCKETS: usize = 18;

/// A snapshot of a latency histogram, from [`Stats`](crate::Stats).
///
/// `counts[i]` is how many observations took at most `BOUNDS[i]` and more than
/// `BOUNDS[i - 1]`; the last entry counts those over the last bound (10 s). The buckets are the
/// same for every histogram and every server, so histograms can be added (a prefork parent sums
/// its workers').
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Observations per bucket (not cumulative).
    pub counts: [u64; BUCKETS],
    /// The sum of every observation, in microseconds.
    pub sum_micros: u64,
}

impl LatencyHistogram {
    /// The upper bound of each bucket but the last, in microseconds: 50 µs to 10 s.
    pub const BOUNDS_MICROS: [u64; BUCKETS - 1] = [
        50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
        1_000_000, 2_500_000, 5_000_000, 10_000_000,
    ];

    /// How many observations there are.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds `other`'s observations to these.
    pub fn add(&mut self, other: &LatencyHistogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
        self.sum_micros += other.sum_micros;
    }

    /// The upper bound under which at least `quantile` (0.0 to 1.0) of the observations fall,
    /// in microseconds: a bucket bound, so an estimate from above. `None` with no observation, or
    /// when they fall in the last bucket (over 10 s).
    #[must_use]
    pub fn quantile_bound_micros(&self, quantile: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let wanted = (quantile.clamp(0.0, 1.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                return Self::BOUNDS_MICROS.get(i).copied();
            }
        }
        None
    }
}

/// The live histogram the serving threads record into.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    counts: [AtomicU64; BUCKETS],
    sum_micros: AtomicU64,
}

impl Recorder {
    /// Counts one observation of `took`.
    pub(crate) fn record(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        // Seventeen comparisons at most: cheaper than the clock reads around it.
        let bucket = LatencyHistogram::BOUNDS_MICROS
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(BUCKETS - 1);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> LatencyHistogram {
        LatencyHistogram {
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_observation_lands_in_the_bucket_of_its_bound() {
        let r = Recorder::default();
        r.record(Duration::from_micros(10)); // bucket 0 (<= 50 µs)
        r.record(Duration::from_micros(50)); // bucket 0: bounds are inclusive
        r.record(Duration::from_micros(51)); // bucket 1
        r.record(Duration::from_millis(3)); // bucket 6 (<= 5 ms)
        r.record(Duration::from_secs(60)); // the last bucket
        let h = r.snapshot();
        assert_eq!(h.counts[0], 2);
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[6], 1);
        assert_eq!(h.counts[BUCKETS - 1], 1);
        assert_eq!(h.count(), 5);
        assert_eq!(h.sum_micros, 10 + 50 + 51 + 3_000 + 60_000_000);
    }

    #[test]
    fn quantiles_are_bucket_bounds_and_histograms_add() {
        let r = Recorder::default();
        for _ in 0..9 {
            r.record(Duration::from_micros(80));
        }
        r.record(Duration::from_millis(20));
        let mut h = r.snapshot();
        assert_eq!(h.quantile_bound_micros(0.5), Some(100));
        assert_eq!(h.quantile_bound_micros(0.99), Some(25_000));
        assert_eq!(LatencyHistogram::default().quantile_bound_micros(0.5), None);
        let copy = h;
        h.add(&copy);
        assert_eq!(h.count(), 20);
        assert_eq!(h.sum_micros, 2 * copy.sum_micros);
    }
}
