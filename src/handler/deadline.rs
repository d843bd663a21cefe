//! [`Deadline`]: a time limit on a whole exchange rather than on one read, and
//! [`LimitExceeded`], the error that says which limit ended a wait.
//!
//! A read timeout bounds one `read` call, so a peer that trickles a byte just before each timeout
//! can hold a connection (and the thread serving it) for ever. A deadline bounds the exchange:
//! every blocking read and write waits only for the time left, and once it has passed they fail.

use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::io;
use std::time::{Duration, Instant};

/// A point in time by which a part of an exchange must be done — "this request head must arrive
/// within 10 s" — set on a request with
/// [`StreamRequest::set_deadline`](crate::StreamRequest::set_deadline).
///
/// While it is set, every read or write of the request that has to wait for the peer waits only
/// for the time left; past the deadline it fails with an [`io::ErrorKind::TimedOut`] error
/// carrying a [`LimitExceeded`] that names the deadline. Reads served from data already buffered
/// never wait, so they never fail on a deadline.
///
/// With [`min_rate`](Self::min_rate) the deadline moves out as data arrives (Apache
/// `mod_reqtimeout`'s `MinRate`): a large upload that keeps flowing is given the time it needs,
/// while a peer trickling a byte at a time still meets the deadline.
///
/// ```
/// use std::io::BufRead;
/// use std::time::Duration;
/// use socketserver::{Deadline, StreamRequest};
///
/// fn read_head(req: &mut StreamRequest) -> std::io::Result<Vec<String>> {
///     // The whole head, however it is cut up, within 10 s; 30 s at most for a big one
///     // arriving at 1 KiB/s or faster.
///     req.set_deadline(
///         Deadline::after(Duration::from_secs(10))
///             .min_rate(1024, Duration::from_secs(30))
///             .named("request head"),
///     );
///     let mut lines = Vec::new();
///     loop {
///         let mut line = String::new();
///         if req.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
///             break;
///         }
///         lines.push(line);
///     }
///     req.clear_deadline(); // the body that follows has its own rules
///     Ok(lines)
/// }
/// # let _ = read_head;
/// ```
#[derive(Debug, Clone)]
pub struct Deadline {
    start: Instant,
    budget: Duration,
    rate: Option<MinRate>,
    name: Cow<'static, str>,
}

/// The `min_rate` extension: a second of grace per `bytes_per_sec` bytes, up to `max` in all.
#[derive(Debug, Clone, Copy)]
struct MinRate {
    bytes_per_sec: u64,
    max: Duration,
}

impl Deadline {
    /// A deadline `budget` from now.
    #[must_use]
    pub fn after(budget: Duration) -> Deadline {
        Deadline {
            start: Instant::now(),
            budget,
            rate: None,
            name: Cow::Borrowed("request"),
        }
    }

    /// A deadline at `when` (at once, if `when` has passed).
    #[must_use]
    pub fn at(when: Instant) -> Deadline {
        let now = Instant::now();
        Deadline::after(when.saturating_duration_since(now))
    }

    /// Names what must be done by the deadline, for the error message (`"request head"` gives
    /// "the request head deadline passed …"). Default: `"request"`.
    #[must_use]
    pub fn named(mut self, name: impl Into<Cow<'static, str>>) -> Deadline {
        self.name = name.into();
        self
    }

    /// Moves the deadline out by one second for every `bytes_per_sec` bytes read while it is
    /// set, but never past `max` after it was made: a peer sending at least that fast is never
    /// cut off before `max`. `bytes_per_sec` of 0 turns the extension off.
    #[must_use]
    pub fn min_rate(mut self, bytes_per_sec: u64, max: Duration) -> Deadline {
        self.rate = (bytes_per_sec > 0).then_some(MinRate { bytes_per_sec, max });
        self
    }

    /// What the deadline is for, as given to [`named`](Self::named).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When the deadline passes, given `received` bytes read since it was set. `None`: so far
    /// off that it cannot be represented, which is as good as never.
    pub(crate) fn expiry(&self, received: u64) -> Option<Instant> {
        let mut allowed = self.budget;
        if let Some(rate) = self.rate {
            // Whole seconds, then the remainder in nanoseconds, so no float rounding and no
            // overflow for any byte count.
            let secs = received / rate.bytes_per_sec;
            let nanos = (received % rate.bytes_per_sec) * 1_000_000_000 / rate.bytes_per_sec;
            let earned = Duration::from_secs(secs).saturating_add(Duration::from_nanos(nanos));
            allowed = allowed
                .saturating_add(earned)
                .min(rate.max.max(self.budget));
        }
        self.start.checked_add(allowed)
    }

    /// The error for this deadline having passed with `received` bytes read.
    pub(crate) fn exceeded(&self, received: u64) -> LimitExceeded {
        LimitExceeded {
            limit: Limit::Deadline,
            name: self.name.clone(),
            after: self.start.elapsed(),
            received,
            rate: self.rate.map(|r| r.bytes_per_sec),
        }
    }
}

/// Which limit ended a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// A [`Deadline`] set on the request.
    Deadline,
    /// The server's [`idle_timeout`](crate::Builder::idle_timeout): no byte moved for that long.
    IdleTimeout,
    /// The server's [`max_connection_lifetime`](crate::Builder::max_connection_lifetime).
    Lifetime,
}

/// The error inside the `TimedOut` [`io::Error`] that a request's read or write returns when a
/// [`Deadline`], the idle timeout or the connection lifetime has passed. Find it with
/// [`LimitExceeded::find`].
///
/// ```
/// use std::io;
/// use socketserver::{Limit, LimitExceeded};
///
/// fn log_failure(err: &io::Error) {
///     match LimitExceeded::find(err) {
///         Some(limit) if limit.limit() == Limit::IdleTimeout => { /* an idle client: routine */ }
///         Some(limit) => eprintln!("too slow: {limit}"),
///         None => eprintln!("failed: {err}"),
///     }
/// }
/// # log_failure(&io::Error::other("x"));
/// ```
#[derive(Debug, Clone)]
pub struct LimitExceeded {
    limit: Limit,
    name: Cow<'static, str>,
    after: Duration,
    received: u64,
    rate: Option<u64>,
}

impl LimitExceeded {
    /// The idle timeout passed: nothing moved for `idle`.
    pub(crate) fn idle(idle: Duration) -> LimitExceeded {
        LimitExceeded {
            limit: Limit::IdleTimeout,
            name: Cow::Borrowed("idle timeout"),
            after: idle,
            received: 0,
            rate: None,
        }
    }

    /// The connection reached its maximum lifetime.
    pub(crate) fn lifetime(lifetime: Duration) -> LimitExceeded {
        LimitExceeded {
            limit: Limit::Lifetime,
            name: Cow::Borrowed("connection lifetime"),
            after: lifetime,
            received: 0,
            rate: None,
        }
    }

    /// The `LimitExceeded` inside `err`, if a limit is what made it.
    #[must_use]
    pub fn find(err: &io::Error) -> Option<&LimitExceeded> {
        err.get_ref()?.downcast_ref::<LimitExceeded>()
    }

    /// Which limit passed.
    #[must_use]
    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// The deadline's [name](Deadline::named), or `"idle timeout"` / `"connection lifetime"`.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long the limit allowed (for a deadline: how long after it was set it passed).
    #[must_use]
    pub fn after(&self) -> Duration {
        self.after
    }
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.limit {
            Limit::Deadline => {
                write!(
                    f,
                    "the {} deadline passed after {:.1?} ({} bytes arrived",
                    self.name, self.after, self.received
                )?;
                if let Some(rate) = self.rate {
                    write!(f, "; at least {rate} bytes/s keep it from passing")?;
                }
                f.write_str(")")
            }
            Limit::IdleTimeout => write!(
                f,
                "idle timeout: nothing moved on the connection for {:?}",
                self.after
            ),
            Limit::Lifetime => write!(
                f,
                "the connection reached its maximum lifetime of {:?}",
                self.after
            ),
        }
    }
}

impl Error for LimitExceeded {}

impl From<LimitExceeded> for io::Error {
    fn from(limit: LimitExceeded) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, budget: Duration) -> Deadline {
        Deadline {
            start,
            budget,
            rate: None,
            name: Cow::Borrowed("test"),
        }
    }

    #[test]
    fn a_plain_deadline_ignores_bytes_received() {
        let now = Instant::now();
        let d = at(now, Duration::from_secs(10));
        assert_eq!(d.expiry(0), Some(now + Duration::from_secs(10)));
        assert_eq!(d.expiry(u64::MAX), Some(now + Duration::from_secs(10)));
    }

    #[test]
    fn min_rate_moves_the_deadline_out_up_to_its_maximum() {
        let now = Instant::now();
        let d = at(now, Duration::from_secs(10)).min_rate(500, Duration::from_secs(40));
        assert_eq!(d.expiry(0), Some(now + Duration::from_secs(10)));
        assert_eq!(d.expiry(500), Some(now + Duration::from_secs(11)));
        assert_eq!(d.expiry(750), Some(now + Duration::from_millis(11_500)));
        assert_eq!(d.expiry(1_000_000), Some(now + Duration::from_secs(40)));
        assert_eq!(d.expiry(u64::MAX), Some(now + Duration::from_secs(40)));
    }

    #[test]
    fn a_maximum_below_the_budget_never_shortens_it() {
        let now = Instant::now();
        let d = at(now, Duration::from_secs(10)).min_rate(1, Duration::from_secs(1));
        assert_eq!(d.expiry(5), Some(now + Duration::from_secs(10)));
    }

    #[test]
    fn a_zero_rate_is_no_extension_and_a_huge_budget_is_never() {
        let now = Instant::now();
        let d = at(now, Duration::from_secs(3)).min_rate(0, Duration::from_secs(60));
        assert_eq!(d.expiry(1_000_000), Some(now + Duration::from_secs(3)));
        assert_eq!(at(now, Duration::MAX).expiry(0), None);
    }

    #[test]
    fn the_error_names_the_deadline_and_is_found_inside_an_io_error() {
        let d = Deadline::after(Duration::ZERO)
            .named("request head")
            .min_rate(100, Duration::from_secs(1));
        let err = io::Error::from(d.exceeded(37));
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let found = LimitExceeded::find(&err).expect("a LimitExceeded");
        assert_eq!(found.limit(), Limit::Deadline);
        assert_eq!(found.name(), "request head");
        let text = err.to_string();
        assert!(
            text.starts_with("the request head deadline passed after"),
            "{text}"
        );
        assert!(text.contains("37 bytes arrived"), "{text}");
        assert!(text.contains("100 bytes/s"), "{text}");
        assert!(LimitExceeded::find(&io::Error::other("x")).is_none());
    }

    #[test]
    fn idle_and_lifetime_errors_say_what_passed() {
        let idle = LimitExceeded::idle(Duration::from_secs(30));
        assert_eq!(idle.limit(), Limit::IdleTimeout);
        assert!(idle.to_string().contains("30s"), "{idle}");
        let life = LimitExceeded::lifetime(Duration::from_secs(300));
        assert_eq!(life.limit(), Limit::Lifetime);
        assert!(
            life.to_string().contains("maximum lifetime of 300s"),
            "{life}"
        );
    }
}
