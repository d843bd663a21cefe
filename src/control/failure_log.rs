//! The default `handle_error`: failed requests logged through `log`, throttled, so that a flood of
//! bad requests (oversized datagrams, say) costs a few lines a second instead of one per request.
//!
//! With no logger listening, the lines go to stderr instead, as Python's default `handle_error`
//! prints its traceback there: a first server whose handler fails must not fail silently. This is
//! the only place the library writes to stderr.

use std::fmt;
use std::time::Duration;

use crate::address::Address;
use crate::failure::Failure;
use crate::throttle::{SharedThrottle, Throttle};

/// Lines let through per [`INTERVAL`]: enough for a few unrelated failures in a row to all show.
const BURST: u32 = 5;
const INTERVAL: Duration = Duration::from_secs(1);

/// Where the server's own reports of failed requests go. A user's `handle_error` hook is not
/// throttled: it gets every failure.
#[derive(Debug)]
pub(crate) struct FailureLog {
    throttle: SharedThrottle,
}

impl FailureLog {
    pub(crate) fn new() -> Self {
        FailureLog {
            throttle: SharedThrottle::new(Throttle::with_burst(INTERVAL, BURST)),
        }
    }

    /// Reports a failed request (there is no `handle_error` hook).
    pub(crate) fn failed(&self, peer: &Address, failure: &Failure) {
        if let Some(held_back) = self.throttle.admit() {
            self.emit(format_args!(
                "request from {peer} failed: {failure}{}",
                Summary(held_back)
            ));
        }
    }

    /// Reports that the `handle_error` hook itself panicked on a failed request.
    pub(crate) fn hook_panicked(&self, peer: &Address, failure: &Failure) {
        if let Some(held_back) = self.throttle.admit() {
            self.emit(format_args!(
                "handle_error hook panicked on request from {peer}: {failure}{}",
                Summary(held_back)
            ));
        }
    }

    /// When the server closes: says how many failures were held back since the last line, which
    /// no later line will carry.
    pub(crate) fn flush(&self, local: &Address) {
        let held_back = self.throttle.take_suppressed();
        if held_back > 0 {
            self.emit(format_args!(
                "server on {local}: {held_back} similar failures not logged"
            ));
        }
    }

    /// The one place these lines leave the crate.
    fn emit(&self, line: fmt::Arguments<'_>) {
        if logger_listens() {
            log::error!("{line}");
        } else {
            // `eprintln!` rather than a write to `io::stderr()`, so a test harness capturing
            // output captures this too; it panics if stderr is broken, and nothing useful can be
            // done then, so that panic is swallowed.
            let _ = std::panic::catch_unwind(|| eprintln!("socketserver: error: {line}"));
        }
    }
}

/// Whether an ERROR line from this module would reach a logger: `false` when no logger was
/// installed (`log`'s default maximum level is `Off`) or the installed one drops it.
fn logger_listens() -> bool {
    log::max_level() >= log::LevelFilter::Error
        && log::logger().enabled(
            &log::Metadata::builder()
                .level(log::Level::Error)
                .target(module_path!())
                .build(),
        )
}

/// `" (N similar failures not logged)"` after a line that follows held-back ones; nothing otherwise.
struct Summary(u64);

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => Ok(()),
            n => write!(f, " ({n} similar failures not logged)"),
        }
    }
}
