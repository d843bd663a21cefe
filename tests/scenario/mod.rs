//! What the `harness = false` scenario programs (`process_modes`, `graceful_stop`,
//! `prefork_signals`) share. Each is its own server program, because the process modes
//! re-execute it (and a signal goes to a whole process), so libtest cannot run it. Started with
//! its scenario variable set, such a program is a *scenario server* ([`serve`]); without it, the
//! *driver*: [`run_tests`] runs its tests in order and prints libtest's closing line, each test
//! starting scenario servers as children ([`ScenarioServer`]) and watching their processes
//! ([`procs`]).

// Each program uses a subset of these helpers.
#![allow(dead_code)]

mod child;
pub mod procs;
mod serve;

use std::process::ExitCode;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

// Each program uses a subset of these.
#[allow(unused_imports)]
pub use child::{ScenarioServer, START_TIMEOUT, STOP_TIMEOUT};
#[allow(unused_imports)]
pub use serve::{init_logger, pid_upper_line, pid_upper_requests, serve_and_report};

/// One scenario: `Ok`, or why it failed.
pub type TestFn = fn() -> Result<(), String>;

/// Runs the `tests` that `cargo test -- <filter>` selects (options, starting with `-`, are
/// ignored), one at a time, each on a thread named after it (as libtest does, so a test that
/// skips can name itself). After a failed test it prints what the test's scenario servers wrote
/// to stderr.
pub fn run_tests(tests: &[(&str, TestFn)]) -> ExitCode {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected: Vec<_> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", selected.len());
    let mut failed = Vec::new();
    for &&(name, test) in &selected {
        child::forget_stderr();
        let started = Instant::now();
        let outcome = thread::Builder::new()
            .name(name.to_string())
            .spawn(test)
            .map_err(|e| format!("cannot start the test's thread: {e}"))
            .and_then(|running| {
                running.join().unwrap_or_else(|panic| {
                    Err(panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(ToString::to_string))
                        .unwrap_or_else(|| "panicked".to_string()))
                })
            });
        match outcome {
            Ok(()) => println!("test {name} ... ok ({:.1?})", started.elapsed()),
            Err(why) => {
                println!(
                    "test {name} ... FAILED ({:.1?})\n    {why}",
                    started.elapsed()
                );
                child::print_stderr();
                failed.push(name);
            }
        }
    }
    let passed = selected.len() - failed.len();
    if failed.is_empty() {
        println!("\ntest result: ok. {passed} passed; 0 failed\n");
        ExitCode::SUCCESS
    } else {
        println!(
            "\ntest result: FAILED. {passed} passed; {} failed: {failed:?}\n",
            failed.len()
        );
        ExitCode::FAILURE
    }
}

/// `Ok` if `ok`, else `Err` with `why()`.
pub fn check(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(why())
    }
}

/// Polls `condition` every 5 ms until it holds (`true`) or `timeout` passes (`false`).
pub fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// A lock that a panicking test cannot poison for the tests after it.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The number in the `name=` field of the last `stats accepted=.. completed=..` line of
/// `output`, which a scenario server prints once its server is closed.
pub fn stat(output: &str, name: &str) -> Result<u64, String> {
    let line = output
        .lines()
        .rev()
        .find(|l| l.starts_with("stats "))
        .ok_or_else(|| format!("no stats line in {output:?}"))?;
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}="))?.parse().ok())
        .ok_or_else(|| format!("no {name} in {line:?}"))
}
