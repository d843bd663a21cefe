//! The shutdown signal: a flag plus two ways to wake whoever is waiting.

use std::io::{PipeReader, PipeWriter};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

/// How long after it was accepted a connection that has sent nothing yet is waiting for its
/// first request rather than idle. A stop ends idle connections at once, but one accepted just
/// before (or, draining the listen backlog, during) the stop has had no time to send anything:
/// it is given this long, within the grace period, for its first request to arrive and be
/// served. Go's `http.Server` treats its new connections alike, for the same 5 s.
pub(crate) const FIRST_REQUEST_WAIT: Duration = Duration::from_secs(5);

/// Shutdown is signalled by *dropping* two things: the write end of a pipe, whose read end the
/// serving loop polls beside the server socket, and a channel sender, which wakes mode code blocked
/// in a channel `select` (waiting for a pool slot, say). Dropping cannot block or fill a buffer,
/// so `request` is safe from any thread, a handler included, any number of times.
#[derive(Debug)]
pub struct StopSignal {
    requested: AtomicBool,
    /// When the first request came: a graceful stop's grace period counts from here.
    requested_at: OnceLock<Instant>,
    triggers: Mutex<Option<(PipeWriter, Sender<()>)>>,
    pipe: PipeReader,
    channel: Receiver<()>,
}

impl StopSignal {
    pub(crate) fn new() -> std::io::Result<Self> {
        let (pipe, writer) = std::io::pipe()?;
        let (sender, channel) = crossbeam_channel::bounded(0);
        Ok(StopSignal {
            requested: AtomicBool::new(false),
            requested_at: OnceLock::new(),
            triggers: Mutex::new(Some((writer, sender))),
            pipe,
            channel,
        })
    }

    /// Requests shutdown; returns whether this call was the first to do so.
    pub(crate) fn request(&self) -> bool {
        if self.requested.swap(true, Ordering::AcqRel) {
            return false;
        }
        let _ = self.requested_at.set(Instant::now());
        let triggers = self
            .triggers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(triggers);
        true
    }

    pub(crate) fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }

    /// When the stop was first requested (`None` if it was not).
    pub(crate) fn requested_at(&self) -> Option<Instant> {
        self.requested_at.get().copied()
    }

    /// Readable (at end-of-file) once shutdown was requested.
    pub(crate) fn pipe_fd(&self) -> RawFd {
        self.pipe.as_raw_fd()
    }

    /// Disconnected once shutdown was requested: usable in a `crossbeam_channel::Select`.
    pub(crate) fn channel(&self) -> &Receiver<()> {
        &self.channel
    }

    /// Sleeps for `pause`, or less if shutdown is requested meanwhile. Returns whether it was.
    pub(crate) fn sleep(&self, pause: Duration) -> bool {
        match self.channel.recv_timeout(pause) {
            Err(RecvTimeoutError::Timeout) => self.is_requested(),
            Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn only_the_first_request_counts_and_every_waiter_wakes() {
        let stop = StopSignal::new().unwrap();
        assert!(!stop.is_requested());
        assert!(stop.requested_at().is_none());
        assert!(stop.request());
        let at = stop.requested_at().expect("the time of the first request");
        assert!(!stop.request());
        assert_eq!(
            stop.requested_at(),
            Some(at),
            "later requests keep the first time"
        );
        assert!(stop.is_requested());
        assert!(stop.channel().recv().is_err(), "channel is disconnected");
        let start = Instant::now();
        assert!(stop.sleep(Duration::from_secs(30)));
        assert!(start.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn sleep_runs_its_course_without_a_request() {
        let stop = StopSignal::new().unwrap();
        assert!(!stop.sleep(Duration::from_millis(1)));
    }
}
