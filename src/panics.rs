//! Handler panics: caught where the handler runs (the request or connection ends, the server goes
//! on, `handle_error` hears of it), marked as a handler's, so that [`quiet_handler_panics`] can
//! keep them off stderr.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Whether this thread is running a handler's code right now.
    static IN_HANDLER: Cell<bool> = const { Cell::new(false) };
}

/// Runs `step`, a handler's code, catching a panic; while it runs, a panic is known to be a
/// handler's.
pub(crate) fn catch_handler_panic<T>(step: impl FnOnce() -> T) -> std::thread::Result<T> {
    let outer = IN_HANDLER.replace(true);
    // AssertUnwindSafe: after a panic the request or connection is only finished and dropped,
    // never handled again.
    let result = catch_unwind(AssertUnwindSafe(step));
    IN_HANDLER.set(outer);
    result
}

/// Keeps handler panics off stderr: they reach only the server's
/// [`handle_error`](crate::Builder::handle_error) (which by default logs them, throttled).
///
/// A handler that panics costs only its own request or connection, and the server reports the
/// panic to `handle_error` with its message ([`Failure::Panic`](crate::Failure::Panic)). But Rust's
/// panic hook prints every panic to stderr first (with a backtrace under `RUST_BACKTRACE=1`),
/// outside the server's throttling: a peer that can make a handler panic can flood the log. This
/// installs, once per process, a panic hook that says nothing for panics raised in a handler's
/// code (`setup`, `handle`, `finish`, and a message handler's `opened`, `handle` and `closed`) and
/// passes every other panic to the hook that was there before. Call it early in `main`, before
/// any server serves; the examples do.
///
/// ```
/// socketserver::quiet_handler_panics();
/// // A panic outside a handler still reaches the previous hook (and stderr).
/// ```
pub fn quiet_handler_panics() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_HANDLER.get() {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_a_handler_is_caught_and_the_mark_is_lifted_after() {
        assert!(!IN_HANDLER.get());
        let caught = catch_handler_panic(|| -> u32 {
            assert!(IN_HANDLER.get(), "marked while the handler runs");
            panic!("in a handler")
        });
        assert!(caught.is_err());
        assert!(!IN_HANDLER.get(), "the mark is lifted after a panic");
        assert_eq!(catch_handler_panic(|| 7).ok(), Some(7));
        // Nested (a handler's `closed` run from inside another's step) keeps the outer mark.
        let outer = catch_handler_panic(|| {
            let _ = catch_handler_panic(|| ());
            IN_HANDLER.get()
        });
        assert_eq!(outer.ok(), Some(true));
    }
}
