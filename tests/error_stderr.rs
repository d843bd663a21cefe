//! With no logger installed, the default `handle_error` still says something: one line per
//! failure on stderr (throttled), as Python's default prints its traceback there. A test binary of
//! its own, since no test in it may install a logger. The parent test runs this same binary again
//! as a child, serving one failing request, and reads the child's stderr.

mod common;

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use common::{Serving, WAIT};
use socketserver::{Builder, StreamRequest, Threading};

/// Set in the child's environment: the child test serves instead of returning at once.
const CHILD: &str = "SOCKETSERVER_ERROR_STDERR_CHILD";

/// The child's part: a server whose handler fails (and whose second handler panics on request
/// three), with no logger and no `handle_error` hook.
#[test]
fn child_serves_failing_requests() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let server = Builder::new()
        .mode(Threading::new())
        .bind_tcp("127.0.0.1:0", |req: &mut StreamRequest| -> io::Result<()> {
            let mut buf = [0u8; 16];
            let n = req.read(&mut buf)?;
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not UTF-8: {:?}", &buf[..n]),
            ))
        })
        .expect("bind");
    let serving = Serving::start(server);
    let addr = common::inet_addr(&serving.handle);
    for _ in 0..3 {
        let mut client = common::tcp_client(addr);
        client.write_all(&[0xff, 0xfe]).expect("send");
        assert!(common::closed_without_reply(&client));
    }
    // Failures are reported after the connection closes: wait until all three are counted.
    let deadline = Instant::now() + WAIT;
    while serving.handle.stats().failed < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    serving.finish(WAIT).expect("clean stop");
}

#[test]
fn without_a_logger_failures_are_reported_on_stderr() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let stderr = common::child_test_stderr("child_serves_failing_requests", &[(CHILD, "1")]);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("socketserver: error: request from 127.0.0.1:"))
        .collect();
    assert_eq!(lines.len(), 3, "stderr was:\n{stderr}");
    assert!(
        lines.iter().all(|l| l.contains("not UTF-8: [255, 254]")),
        "{lines:?}"
    );
}
