//! The server-wide memory budget (`--max-memory`): one atomic count of the bytes every
//! connection holds in its buffers, checked before any of them grows, so all connections together
//! never allocate past the limit.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Bytes reserved by all connections, against a fixed limit.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
    refusals: AtomicU64,
}

impl Budget {
    /// A budget of `limit` bytes, none of them used.
    pub fn new(limit: usize) -> Budget {
        Budget {
            limit,
            used: AtomicUsize::new(0),
            refusals: AtomicU64::new(0),
        }
    }

    /// The limit, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// How many reservations were refused since the start.
    pub fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }

    /// Reserves `bytes` if they fit under the limit; `false` (and nothing reserved) if not.
    fn reserve(&self, bytes: usize) -> bool {
        let fits = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok();
        if !fits {
            self.refusals.fetch_add(1, Ordering::Relaxed);
        }
        fits
    }

    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// What one connection has reserved from the [`Budget`]; given back when it is dropped, however
/// the connection ends.
#[derive(Debug)]
pub struct Charge<'a> {
    budget: &'a Budget,
    held: usize,
}

impl<'a> Charge<'a> {
    /// A connection's first reservation of `bytes`, or `None` if the budget cannot hold them.
    pub fn new(budget: &'a Budget, bytes: usize) -> Option<Charge<'a>> {
        // Not `then_some`: a `Charge` made and dropped for nothing would give back `bytes`.
        if budget.reserve(bytes) {
            Some(Charge {
                budget,
                held: bytes,
            })
        } else {
            None
        }
    }

    /// Reserves `bytes` more; `false` if the budget cannot hold them.
    pub fn grow(&mut self, bytes: usize) -> bool {
        let fits = self.budget.reserve(bytes);
        if fits {
            self.held += bytes;
        }
        fits
    }

    /// Records `bytes` already allocated, even past the limit: for an allocation that came out
    /// larger than the reservation made for it, so the count stays true.
    pub fn force(&mut self, bytes: usize) {
        self.budget.used.fetch_add(bytes, Ordering::Relaxed);
        self.held += bytes;
    }

    /// Gives back `bytes` of what this connection holds.
    pub fn shrink(&mut self, bytes: usize) {
        let bytes = bytes.min(self.held);
        self.held -= bytes;
        self.budget.release(bytes);
    }

    /// Bytes this connection holds.
    pub fn held(&self) -> usize {
        self.held
    }
}

impl Drop for Charge<'_> {
    fn drop(&mut self) {
        self.budget.release(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_limit_and_come_back_when_dropped() {
        let budget = Budget::new(100);
        let mut a = Charge::new(&budget, 60).unwrap();
        assert!(Charge::new(&budget, 50).is_none());
        assert!(!a.grow(41));
        assert!(a.grow(40));
        assert_eq!((budget.used(), a.held()), (100, 100));
        a.shrink(30);
        assert_eq!(budget.used(), 70);
        let b = Charge::new(&budget, 30).unwrap();
        drop(a);
        assert_eq!(budget.used(), 30);
        drop(b);
        assert_eq!((budget.used(), budget.refusals()), (0, 2));
    }
}
