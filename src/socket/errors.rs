//! Which `accept`/`recv` errors the serving loop survives, and how it backs off from them.

use std::io;
use std::time::Duration;

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
}
