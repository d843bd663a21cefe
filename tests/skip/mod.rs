//! Tests that cannot run on this machine say so where a plain `cargo test` shows it.
//!
//! libtest keeps what a passing test prints (`println!`, `eprintln!`) to itself, so a test that
//! returned early because nginx is missing would show only `ok`. These helpers write one line,
//! `SKIPPED <test>: <why>`, straight to the process's stderr (`io::stderr()`, which libtest does
//! not capture); `<test>` is the name of the thread, which libtest (and the runner of the
//! `harness = false` programs, `tests/scenario`) names after the test.
//!
//! A missing program fails the test instead when [`REQUIRE_ALL`] is set (to anything but `0`),
//! as `.ci/run` does after installing every program the tests use. Other reasons ([`skipped`]: a
//! build without a feature, no IPv6 loopback, no `/proc`) never fail: they describe the build or
//! the machine, not something an install fixes.
//!
//! Every test binary uses a different subset of these, hence the module-wide `dead_code` allowance.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;

/// Set (to anything but `0`), a test that needs a program which is not installed fails instead
/// of skipping.
pub const REQUIRE_ALL: &str = "SOCKETSERVER_TEST_REQUIRE_ALL";

/// The path of `program` (Debian package `package`), from `PATH` or the sbin folders (where
/// Debian puts haproxy and nginx, not on a user's `PATH`); `None`, reported by [`missing`], when
/// it is not installed.
pub fn program(program: &str, package: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file());
    if found.is_none() {
        missing(&format!("`{program}` is not installed"), package);
    }
    found
}

/// The running test cannot run because of `what` (a program or module that is not installed,
/// from the Debian package `package`): a `SKIPPED` line, or a panic when [`REQUIRE_ALL`] is set.
pub fn missing(what: &str, package: &str) {
    match missing_outcome(&current_test(), what, package, require_all()) {
        Ok(line) => write_line(&line),
        Err(failure) => panic!("{failure}"),
    }
}

/// The running test cannot run here, for a reason that installing a program would not change:
/// a `SKIPPED` line, whatever [`REQUIRE_ALL`] says.
pub fn skipped(why: &str) {
    write_line(&format!("SKIPPED {}: {why}", current_test()));
}

/// What [`missing`] does for `test`: `Ok` with the line it writes, or `Err` with the message it
/// panics with when `require_all`.
pub fn missing_outcome(
    test: &str,
    what: &str,
    package: &str,
    require_all: bool,
) -> Result<String, String> {
    if require_all {
        Err(format!(
            "{test}: {what} (Debian package `{package}`), and {REQUIRE_ALL} is set: the test \
             fails instead of skipping"
        ))
    } else {
        Ok(format!(
            "SKIPPED {test}: {what} (install the Debian package `{package}`; with \
             {REQUIRE_ALL}=1 this fails instead)"
        ))
    }
}

/// Whether [`REQUIRE_ALL`] is set to anything but `0` (or nothing).
pub fn require_all() -> bool {
    std::env::var_os(REQUIRE_ALL).is_some_and(|value| !value.is_empty() && value != "0")
}

/// The running test's name: its thread's.
fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string()
}

/// `line` on the process's stderr, in one write, past libtest's capture.
fn write_line(line: &str) {
    let _ = std::io::stderr()
        .lock()
        .write_all(format!("{line}\n").as_bytes());
}
