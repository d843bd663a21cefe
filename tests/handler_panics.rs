//! `quiet_handler_panics`: a handler's panic reaches `handle_error` (here the default report,
//! throttled, on stderr) and not the panic hook's stderr message, while a panic outside any
//! handler still does. The panic hook belongs to the whole process, so the parent test runs this
//! same binary again as a child, with and without the call, and reads the child's stderr.

mod common;

use std::time::{Duration, Instant};

use common::{Serving, WAIT};
use socketserver::{Builder, StreamRequest, Threading};

/// Set in the child's environment: the child test serves instead of returning at once; `quiet`
/// or `loud` says whether it calls `quiet_handler_panics`.
const CHILD: &str = "SOCKETSERVER_HANDLER_PANICS_CHILD";
const REQUESTS: u64 = 20;

#[test]
fn child_serves_panicking_requests() {
    let Some(how) = std::env::var_os(CHILD) else {
        return;
    };
    if how == "quiet" {
        socketserver::quiet_handler_panics();
    }
    let server = Builder::new()
        .mode(Threading::new())
        .bind_tcp(
            "127.0.0.1:0",
            |_req: &mut StreamRequest| -> std::io::Result<()> { panic!("boom from a handler") },
        )
        .expect("bind");
    let serving = Serving::start(server);
    let addr = common::inet_addr(&serving.handle);
    for _ in 0..REQUESTS {
        let client = common::tcp_client(addr);
        assert!(common::closed_without_reply(&client));
    }
    let deadline = Instant::now() + WAIT;
    while serving.handle.stats().failed < REQUESTS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(serving.handle.stats().failed, REQUESTS);
    serving.finish(WAIT).expect("clean stop");
    // Not a handler's: the hook that was there before still says it.
    let outside = std::thread::spawn(|| panic!("boom outside a handler")).join();
    assert!(outside.is_err());
}

/// The child's stderr, with `how` (`quiet` or `loud`).
fn child_stderr(how: &str) -> String {
    common::child_test_stderr("child_serves_panicking_requests", &[(CHILD, how)])
}

/// How many panic messages the panic hook printed for `message`.
fn hook_messages(stderr: &str, message: &str) -> usize {
    let lines: Vec<&str> = stderr.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0].contains("panicked at") && w[1] == message)
        .count()
}

#[test]
fn quiet_handler_panics_leaves_handler_panics_to_handle_error() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let loud = child_stderr("loud");
    assert_eq!(
        hook_messages(&loud, "boom from a handler"),
        REQUESTS as usize,
        "without it, the hook prints every handler panic:\n{loud}"
    );
    let quiet = child_stderr("quiet");
    assert_eq!(
        hook_messages(&quiet, "boom from a handler"),
        0,
        "handler panics printed by the hook:\n{quiet}"
    );
    assert_eq!(
        hook_messages(&quiet, "boom outside a handler"),
        1,
        "a panic outside a handler must still be printed:\n{quiet}"
    );
    assert!(
        quiet.contains("socketserver: error:") && quiet.contains("boom from a handler"),
        "handle_error's default report says it:\n{quiet}"
    );
}
