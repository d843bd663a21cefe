//! How a test that cannot run here says so (`tests/skip`): two ignored probes, one missing a
//! program and one skipping for another reason, are run as child processes the way `cargo test`
//! runs a test binary (output captured, no `--nocapture`), with and without
//! `SOCKETSERVER_TEST_REQUIRE_ALL`. The variable is set only in the children's environment, so
//! these tests pass whatever this process's says.

mod programs;

use std::process::Command;

use programs::skip::{self, REQUIRE_ALL};
use programs::{Run, RUN_TIMEOUT};

const MISSING: &str = "socketserver-test-no-such-program";

#[test]
#[ignore = "a probe, run by the tests below as a child process"]
fn probe_missing_program() {
    if skip::program(MISSING, "no-such-package").is_none() {
        return;
    }
    panic!("{MISSING} was found");
}

#[test]
#[ignore = "a probe, run by the tests below as a child process"]
fn probe_other_reason() {
    skip::skipped("no such thing on this machine");
}

/// This test binary running only the ignored test `probe`, with `REQUIRE_ALL` set to `require`.
fn run_probe(probe: &str, require: Option<&str>) -> Run {
    let exe = std::env::current_exe().expect("this test binary");
    let mut command = Command::new(exe);
    command.args([probe, "--exact", "--ignored", "--test-threads", "1"]);
    match require {
        Some(value) => command.env(REQUIRE_ALL, value),
        None => command.env_remove(REQUIRE_ALL),
    };
    Run::to_completion(command, RUN_TIMEOUT)
}

#[test]
fn a_missing_program_shows_a_skipped_line_in_a_captured_run() {
    let line = format!(
        "SKIPPED probe_missing_program: `{MISSING}` is not installed (install the Debian \
         package `no-such-package`; with {REQUIRE_ALL}=1 this fails instead)\n"
    );
    for require in [None, Some(""), Some("0")] {
        let run = run_probe("probe_missing_program", require);
        assert!(run.status.success(), "{require:?}: {run}");
        assert!(run.stdout.contains("1 passed"), "{require:?}: {run}");
        assert!(run.stderr.contains(&line), "{require:?}: {run}");
    }
}

#[test]
fn a_missing_program_fails_the_test_under_require_all() {
    let run = run_probe("probe_missing_program", Some("1"));
    assert!(!run.status.success(), "{run}");
    assert!(run.stdout.contains("1 failed"), "{run}");
    let failure = format!(
        "probe_missing_program: `{MISSING}` is not installed (Debian package `no-such-package`), \
         and {REQUIRE_ALL} is set: the test fails instead of skipping"
    );
    assert!(run.stdout.contains(&failure), "{run}");
    assert!(!run.stderr.contains("SKIPPED"), "{run}");
}

#[test]
fn another_reason_shows_a_skipped_line_and_never_fails() {
    let line = "SKIPPED probe_other_reason: no such thing on this machine\n";
    for require in [None, Some("1")] {
        let run = run_probe("probe_other_reason", require);
        assert!(run.status.success(), "{require:?}: {run}");
        assert!(run.stderr.contains(line), "{require:?}: {run}");
    }
}
