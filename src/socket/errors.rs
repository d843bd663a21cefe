//! Which `accept`/`recv` errors the serving loop survives, and how it backs off and logs them.

use std::io;
use std::time::{Duration, Instant};

/// What the serving loop does about an error from `accept` or `recv_from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// Nothing was actually pending (`EAGAIN`/`EWOULDBLOCK`): go back to waiting.
    Idle,
    /// One connection or datagram was lost (`ECONNABORTED`, `EINTR`, `EPROTO`, a network error the
    /// kernel passes on from the new socket): retry at once.
    RetryNow,
    /// The process or system is short of a resource (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`):
    /// retry after a growing pause, since retrying at once would only spin.
    RetryLater,
    /// Anything else means the socket itself is unusable: stop serving with the error.
    Fatal,
}

pub(crate) fn classify(err: &io::Error) -> Recovery {
    if err.kind() == io::ErrorKind::WouldBlock {
        return Recovery::Idle;
    }
    match err.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => Recovery::RetryLater,
        Some(
            libc::EINTR
            | libc::ECONNABORTED
            | libc::ECONNRESET
            | libc::EPROTO
            | libc::EPERM
            | libc::ENETDOWN
            | libc::ENETUNREACH
            | libc::EHOSTUNREACH
            | libc::EHOSTDOWN
            | libc::ENOPROTOOPT
            | libc::EOPNOTSUPP
            | libc::ETIMEDOUT
            | libc::ECONNREFUSED,
        ) => Recovery::RetryNow,
        _ => Recovery::Fatal,
    }
}

/// A pause that doubles on each consecutive resource error, from 5 ms up to about a second.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(5);
    const CAP: Duration = Duration::from_millis(1000);

    pub(crate) fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    /// The pause to take now; the next one will be twice as long, up to the cap.
    pub(crate) fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(Self::CAP);
        pause
    }

    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// Lets a repeated warning through at most once per interval and counts what it held back, so an
/// error storm leaves a readable log.
#[derive(Debug)]
pub(crate) struct Throttle {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    pub(crate) fn new(interval: Duration) -> Self {
        Throttle {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` if this occurrence should be logged, with `n` occurrences held back since the
    /// last one that was; `None` if it should be held back.
    pub(crate) fn admit(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn resource_errors_back_off_and_lost_connections_retry_at_once() {
        for code in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert_eq!(classify(&os(code)), Recovery::RetryLater, "errno {code}");
        }
        for code in [libc::ECONNABORTED, libc::EINTR, libc::EPROTO] {
            assert_eq!(classify(&os(code)), Recovery::RetryNow, "errno {code}");
        }
        assert_eq!(classify(&os(libc::EAGAIN)), Recovery::Idle);
        assert_eq!(classify(&os(libc::EBADF)), Recovery::Fatal);
        assert_eq!(classify(&os(libc::EINVAL)), Recovery::Fatal);
    }

    #[test]
    fn backoff_doubles_up_to_about_a_second_and_resets() {
        let mut b = Backoff::new();
        let pauses: Vec<u128> = (0..12).map(|_| b.next_pause().as_millis()).collect();
        assert_eq!(&pauses[..4], &[5, 10, 20, 40]);
        assert_eq!(*pauses.last().unwrap(), 1000);
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]));
        b.reset();
        assert_eq!(b.next_pause().as_millis(), 5);
    }

    #[test]
    fn throttle_admits_once_per_interval_and_counts_the_rest() {
        let mut t = Throttle::new(Duration::from_secs(3600));
        assert_eq!(t.admit(), Some(0));
        assert_eq!(t.admit(), None);
        assert_eq!(t.admit(), None);
        t.last = Some(Instant::now() - Duration::from_secs(7200));
        assert_eq!(t.admit(), Some(2));
    }
}
