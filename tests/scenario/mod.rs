//! The test runner of the `harness = false` scenario programs (`process_modes`, `graceful_stop`,
//! `prefork_signals`): each is its own server program, because the process modes re-execute it,
//! so libtest cannot run it; this runs its tests in order and prints libtest's closing line.

// Each program uses a subset of these helpers.
#![allow(dead_code)]

use std::io::{self, BufRead, Write};
use std::process::ExitCode;
use std::thread;
use std::time::Instant;

use socketserver::transport::Transport;
use socketserver::{is_worker, Mode, RequestHandler, Server, StreamRequest};

/// One scenario: `Ok`, or why it failed.
pub type TestFn = fn() -> Result<(), String>;

/// Runs the `tests` that `cargo test -- <filter>` selects (options, starting with `-`, are
/// ignored), one at a time, each on a thread named after it (as libtest does, so that a test that
/// skips can name itself). `before_each` runs before every test; `on_failure` after a failed one
/// (to print what it captured).
pub fn run_tests(tests: &[(&str, TestFn)], before_each: fn(), on_failure: fn()) -> ExitCode {
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
    for (name, test) in &selected {
        before_each();
        let started = Instant::now();
        let outcome = thread::Builder::new()
            .name(name.to_string())
            .spawn(*test)
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
                on_failure();
                failed.push(*name);
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

/// Serves until this process's stdin closes (parent only: a child's stdin belongs to the mode),
/// then closes the server and prints its stats.
pub fn serve_and_report<T, H, M>(mut server: Server<T, H, M>) -> io::Result<()>
where
    T: Transport,
    H: RequestHandler<T::Request> + Clone,
    M: Mode,
{
    if !is_worker() {
        println!("listening on {}", server.local_addr());
        io::stdout().flush()?;
        let handle = server.handle();
        thread::spawn(move || {
            let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
            handle.shutdown();
        });
    }
    let handle = server.handle();
    server.serve_forever()?;
    server.server_close()?;
    // After server_close, which waited for every request (child process) to end.
    let stats = handle.stats();
    println!(
        "stats accepted={} completed={} failed={}",
        stats.accepted, stats.completed, stats.failed
    );
    Ok(())
}

/// Answers one line with `<pid> <LINE>`: which process served it, and the line upper-cased.
pub fn pid_upper_line(req: &mut StreamRequest) -> io::Result<()> {
    let mut line = String::new();
    req.read_line(&mut line)?;
    writeln!(
        req,
        "{} {}",
        std::process::id(),
        line.trim_end().to_uppercase()
    )
}

/// [`pid_upper_line`] for each line the connection sends, waiting for each with
/// `wait_for_request`, the first one included (as `echo_upper` does): a stop ends the
/// connection between two lines.
pub fn pid_upper_requests(req: &mut StreamRequest) -> io::Result<()> {
    while req.wait_for_request()? {
        pid_upper_line(req)?;
    }
    Ok(())
}
