//! Latency percentiles from every sample (no histogram approximation: a bounded run keeps them
//! all).

use std::time::Duration;

/// Sorted latency samples in nanoseconds.
pub struct Latencies {
    sorted: Vec<u64>,
}

impl Latencies {
    /// Sorts the samples.
    pub fn new(mut samples: Vec<u64>) -> Latencies {
        samples.sort_unstable();
        Latencies { sorted: samples }
    }

    /// The sample at quantile `q` (0.0–1.0), by the nearest-rank method; zero with no samples.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = (q * self.sorted.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.sorted.len()) - 1;
        Duration::from_nanos(self.sorted[index])
    }

    /// The largest sample.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.sorted.last().copied().unwrap_or(0))
    }
}

/// Microseconds with one decimal, for reports.
pub fn micros(d: Duration) -> f64 {
    (d.as_nanos() as f64 / 100.0).round() / 10.0
}
