//! Running one request through `setup`, `handle` and `finish` with Python's rules, turning errors
//! and panics into a [`Failure`].

use std::io;

use super::RequestHandler;
use crate::failure::Failure;
use crate::panics::catch_handler_panic;

fn guarded(step: impl FnOnce() -> io::Result<()>) -> Result<(), Failure> {
    match catch_handler_panic(step) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Failure::Error(e)),
        Err(payload) => Err(Failure::from_panic(payload)),
    }
}

/// Runs `setup`, then `handle` and `finish` (`finish` even if `handle` failed), then `complete`
/// (the transport's end-of-request step, such as sending a buffered datagram reply) if all went
/// well. Returns the first failure; a second one from `finish` is logged, not lost.
pub(crate) fn run<R, H: RequestHandler<R>>(
    handler: &mut H,
    request: &mut R,
    complete: fn(&mut R) -> io::Result<()>,
) -> Result<(), Failure> {
    guarded(|| handler.setup(request))?;
    let handled = guarded(|| handler.handle(request));
    let finished = guarded(|| handler.finish(request));
    match (handled, finished) {
        (Ok(()), Ok(())) => guarded(|| complete(request)),
        (Err(first), Err(second)) => {
            log::warn!("finish also failed after a failed handle: {second}");
            Err(first)
        }
        (Err(failure), Ok(())) | (Ok(()), Err(failure)) => Err(failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records which steps ran, and fails or panics in the steps it is told to.
    #[derive(Default)]
    struct Script {
        ran: Vec<&'static str>,
        fail: Vec<&'static str>,
        panic: Vec<&'static str>,
    }

    impl Script {
        fn step(&mut self, name: &'static str) -> io::Result<()> {
            self.ran.push(name);
            if self.panic.contains(&name) {
                panic!("{name} panicked");
            }
            if self.fail.contains(&name) {
                return Err(io::Error::other(format!("{name} failed")));
            }
            Ok(())
        }
    }

    struct H;
    impl RequestHandler<Script> for H {
        fn setup(&mut self, s: &mut Script) -> io::Result<()> {
            s.step("setup")
        }
        fn handle(&mut self, s: &mut Script) -> io::Result<()> {
            s.step("handle")
        }
        fn finish(&mut self, s: &mut Script) -> io::Result<()> {
            s.step("finish")
        }
    }

    fn complete(s: &mut Script) -> io::Result<()> {
        s.step("complete")
    }

    fn script(fail: &[&'static str], panic: &[&'static str]) -> Script {
        Script {
            fail: fail.to_vec(),
            panic: panic.to_vec(),
            ..Script::default()
        }
    }

    #[test]
    fn all_steps_run_in_order_when_nothing_fails() {
        let mut s = script(&[], &[]);
        assert!(run(&mut H, &mut s, complete).is_ok());
        assert_eq!(s.ran, ["setup", "handle", "finish", "complete"]);
    }

    #[test]
    fn finish_runs_after_a_failed_handle_but_complete_does_not() {
        let mut s = script(&["handle"], &[]);
        let failure = run(&mut H, &mut s, complete).unwrap_err();
        assert!(failure.to_string().contains("handle failed"));
        assert_eq!(s.ran, ["setup", "handle", "finish"]);
    }

    #[test]
    fn finish_runs_after_a_panicking_handle() {
        let mut s = script(&[], &["handle"]);
        let failure = run(&mut H, &mut s, complete).unwrap_err();
        assert!(matches!(failure, Failure::Panic(ref m) if m == "handle panicked"));
        assert_eq!(s.ran, ["setup", "handle", "finish"]);
    }

    #[test]
    fn nothing_runs_after_a_failed_setup() {
        let mut s = script(&["setup"], &[]);
        assert!(run(&mut H, &mut s, complete).is_err());
        assert_eq!(s.ran, ["setup"]);
    }

    #[test]
    fn the_first_failure_is_reported_when_finish_fails_too() {
        let mut s = script(&["handle", "finish"], &[]);
        let failure = run(&mut H, &mut s, complete).unwrap_err();
        assert!(failure.to_string().contains("handle failed"));
    }

    #[test]
    fn closures_are_handlers() {
        let mut closure = |s: &mut Script| s.step("handle");
        let mut s = script(&[], &[]);
        assert!(run(&mut closure, &mut s, complete).is_ok());
        assert_eq!(s.ran, ["handle", "complete"]);
    }
}
