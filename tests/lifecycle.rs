//! The server's life from bind to close: shutdown in every situation, the handler lifecycle and
//! its failures, the hooks, limits and overload behaviour of the modes, datagram edge cases,
//! binding options and socket files. Several tests are ports of CPython's `test_socketserver`.

mod common;

use std::io::{self, BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{recv, Gate, GateWaiter, Reported, Serving, TempSocketPath, WAIT};
use crossbeam_channel::Sender;
use socketserver::{
    Builder, DatagramRequest, Mode, Outcome, Pool, RequestHandler, Single, StreamRequest,
    TcpServer, Threading, ThreadingTcpServer, UnixStreamServer, WhenFull,
};

/// Reads one line and writes it back.
fn echo_line(req: &mut StreamRequest) -> io::Result<()> {
    let mut line = String::new();
    req.read_line(&mut line)?;
    req.write_all(line.as_bytes())
}

/// Sends `line` to a TCP server and returns everything it answers before closing.
fn tcp_exchange(addr: SocketAddr, line: &str) -> String {
    let reply = common::exchange(common::tcp_client(addr), line.as_bytes());
    String::from_utf8(reply).expect("a UTF-8 reply")
}

/// A handler that reads a line, says it started, waits at the gate, then echoes the line.
fn held_echo(
    started: Sender<()>,
    gate: GateWaiter,
) -> impl FnMut(&mut StreamRequest) -> io::Result<()> + Clone + Send + 'static {
    move |req: &mut StreamRequest| {
        let mut line = String::new();
        req.read_line(&mut line)?;
        let _ = started.send(());
        gate.wait()?;
        req.write_all(line.as_bytes())
    }
}

// ---------------------------------------------------------------------------------------------
// Shutdown and close
// ---------------------------------------------------------------------------------------------

/// CPython `test_shutdown`: shutting down right after the serving thread starts never hangs,
/// whether the request lands before or after `serve_forever` starts waiting.
#[test]
fn twenty_servers_shut_down_right_after_starting_without_hanging() {
    for _ in 0..20 {
        let server = ThreadingTcpServer::bind("127.0.0.1:0", echo_line).unwrap();
        let serving = Serving::start(server);
        serving.finish(WAIT).unwrap();
    }
}

/// CPython `test_close_immediately`: a server that never served closes cleanly in every mode
/// (a pool must stop workers that never got a request).
#[test]
fn server_closed_without_serving_closes_cleanly() {
    TcpServer::bind("127.0.0.1:0", echo_line)
        .unwrap()
        .server_close()
        .unwrap();
    ThreadingTcpServer::bind("127.0.0.1:0", echo_line)
        .unwrap()
        .server_close()
        .unwrap();
    Builder::new()
        .mode(Pool::new(3))
        .bind_tcp("127.0.0.1:0", echo_line)
        .unwrap()
        .server_close()
        .unwrap();
    Builder::new()
        .bind_udp("127.0.0.1:0", |_: &mut DatagramRequest| Ok(()))
        .unwrap()
        .server_close()
        .unwrap();
}

#[test]
fn shutdown_before_serve_forever_makes_it_return_at_once() {
    let server = TcpServer::bind("127.0.0.1:0", echo_line).unwrap();
    server.shutdown();
    // If serve_forever ignored the early request it would wait for a client and time out here.
    let mut serving = Serving::start(server);
    serving.wait_loop_exit(WAIT).unwrap();
    serving.finish(WAIT).unwrap();
}

#[test]
fn serve_forever_after_it_returned_is_an_error_not_a_silent_return() {
    let mut server = TcpServer::bind("127.0.0.1:0", echo_line).unwrap();
    server.shutdown();
    server
        .serve_forever()
        .expect("the first call returns at once: a stop was asked");
    // A restart loop calling it again must hear that nothing will be served.
    let err = server
        .serve_forever()
        .expect_err("a stopped server does not serve again");
    assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    assert!(err.to_string().contains("build a new one"), "{err}");
    server.server_close().unwrap();
}

/// A handler asking its own server to stop must not deadlock (it does in Python, whose
/// `shutdown()` waits for the loop the handler is blocking).
fn shutdown_from_handler<M: Mode>(mode: M) {
    let server = Builder::new()
        .mode(mode)
        .bind_tcp("127.0.0.1:0", |req: &mut StreamRequest| {
            // Read the request first: closing with unread data would reset the connection.
            req.read_line(&mut String::new())?;
            req.server().shutdown();
            req.write_all(b"bye\n")
        })
        .unwrap();
    let mut serving = Serving::start(server);
    let addr = common::inet_addr(&serving.handle);
    assert_eq!(tcp_exchange(addr, "stop please\n"), "bye\n");
    serving.wait_loop_exit(WAIT).unwrap();
    assert!(serving.handle.is_shutting_down());
    let handle = serving.handle.clone();
    serving.finish(WAIT).unwrap();
    assert_eq!(handle.stats().completed, 1);
}

#[test]
fn shutdown_from_a_handler_single() {
    shutdown_from_handler(Single);
}

#[test]
fn shutdown_from_a_handler_threading() {
    shutdown_from_handler(Threading::new());
}

#[test]
fn shutdown_from_a_handler_pool() {
    shutdown_from_handler(Pool::new(2));
}

/// How long an idle `serve_forever` takes to notice `shutdown()`. Printed, not asserted: wall-clock
/// limits are flaky on loaded machines. Run with `--nocapture` to see it.
#[test]
fn shutdown_latency_is_measured_and_printed() {
    const RUNS: usize = 20;
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let server = TcpServer::bind("127.0.0.1:0", echo_line).unwrap();
        let mut serving = Serving::start(server);
        // One round trip proves the loop is running, so the sample measures a waiting loop.
        let addr = common::inet_addr(&serving.handle);
        assert_eq!(tcp_exchange(addr, "ping\n"), "ping\n");
        let requested = Instant::now();
        serving.handle.shutdown();
        let returned = serving.wait_loop_exit(WAIT).unwrap();
        samples.push(returned.saturating_duration_since(requested));
        serving.finish(WAIT).unwrap();
    }
    samples.sort();
    println!(
        "shutdown latency: median {} µs, max {} µs over {RUNS} runs",
        samples[RUNS / 2].as_micros(),
        samples[RUNS - 1].as_micros()
    );
}

// ---------------------------------------------------------------------------------------------
// Handler failures and the handler lifecycle
// ---------------------------------------------------------------------------------------------

/// Echoes a line, except "error" (returns an error) and "panic" (panics).
fn faulty(req: &mut StreamRequest) -> io::Result<()> {
    let mut line = String::new();
    req.read_line(&mut line)?;
    match line.trim_end() {
        "error" => Err(io::Error::new(io::ErrorKind::InvalidData, "bad request")),
        "panic" => panic!("handler gave up"),
        _ => req.write_all(line.as_bytes()),
    }
}

/// An error and a panic each reach `handle_error` exactly once, cost only their own request, and
/// are counted as failed.
fn failures_reported_once_and_serving_continues<M: Mode>(mode: M) {
    let (on_error, failures) = common::failure_channel();
    let server = Builder::new()
        .mode(mode)
        .handle_error(on_error)
        .bind_tcp("127.0.0.1:0", faulty)
        .unwrap();
    let serving = Serving::start(server);
    let addr = common::inet_addr(&serving.handle);

    assert_eq!(
        tcp_exchange(addr, "error\n"),
        "",
        "a failed request gets no reply"
    );
    assert_eq!(
        recv(&failures, "the error report"),
        Reported::Error(io::ErrorKind::InvalidData, "bad request".into())
    );
    assert_eq!(tcp_exchange(addr, "next\n"), "next\n");

    assert_eq!(tcp_exchange(addr, "panic\n"), "");
    assert_eq!(
        recv(&failures, "the panic report"),
        Reported::Panic("handler gave up".into())
    );
    assert_eq!(tcp_exchange(addr, "after\n"), "after\n");

    let handle = serving.handle.clone();
    serving.finish(WAIT).unwrap();
    // Every request has ended now, so a duplicate report would already be in the channel.
    assert_eq!(failures.try_recv().ok(), None, "each failure reported once");
    let stats = handle.stats();
    assert_eq!((stats.accepted, stats.completed), (4, 2), "{stats:?}");
    assert_eq!((stats.failed, stats.active), (2, 0), "{stats:?}");
}

#[test]
fn handler_failures_are_reported_once_single() {
    failures_reported_once_and_serving_continues(Single);
}

#[test]
fn handler_failures_are_reported_once_threading() {
    failures_reported_once_and_serving_continues(Threading::new());
}

#[test]
fn handler_failures_are_reported_once_pool() {
    failures_reported_once_and_serving_continues(Pool::new(2));
}

/// Records each lifecycle call, fails in the step it is told to, and keeps a per-request ticket
/// taken in `setup` to show that every request gets its own handler instance.
#[derive(Clone)]
struct Recorder {
    calls: Arc<Mutex<Vec<String>>>,
    next_ticket: Arc<AtomicUsize>,
    fail_in: Option<&'static str>,
    ticket: Option<usize>,
}

impl Recorder {
    fn new(fail_in: Option<&'static str>) -> Recorder {
        Recorder {
            calls: Arc::default(),
            next_ticket: Arc::default(),
            fail_in,
            ticket: None,
        }
    }

    fn step(&mut self, name: &'static str) -> io::Result<()> {
        let entry = format!("{name} ticket={:?}", self.ticket);
        self.calls.lock().unwrap().push(entry);
        if self.fail_in == Some(name) {
            return Err(io::Error::other(format!("{name} failed")));
        }
        Ok(())
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl RequestHandler<StreamRequest> for Recorder {
    fn setup(&mut self, _req: &mut StreamRequest) -> io::Result<()> {
        let fresh = self.ticket.is_none();
        self.calls.lock().unwrap().push(format!("fresh={fresh}"));
        self.ticket = Some(self.next_ticket.fetch_add(1, Ordering::SeqCst));
        self.step("setup")
    }

    fn handle(&mut self, _req: &mut StreamRequest) -> io::Result<()> {
        self.step("handle")
    }

    fn finish(&mut self, _req: &mut StreamRequest) -> io::Result<()> {
        self.step("finish")
    }
}

/// Serves `requests` connections with `handler` on a single-threaded server driven from the test
/// thread, and returns the server's failure reports.
fn serve_recorded(handler: Recorder, requests: usize) -> Vec<Reported> {
    let (on_error, failures) = common::failure_channel();
    let mut server = Builder::new()
        .handle_error(on_error)
        .bind_tcp("127.0.0.1:0", handler)
        .unwrap();
    let addr = common::inet_addr(&server.handle());
    for _ in 0..requests {
        // The connection completes in the listen backlog, so handle_request finds it waiting.
        let client = common::tcp_client(addr);
        assert_eq!(server.handle_request().unwrap(), Outcome::Handled);
        assert!(common::closed_without_reply(client));
    }
    server.server_close().unwrap();
    failures.try_iter().collect()
}

#[test]
fn failed_setup_skips_handle_and_finish() {
    let recorder = Recorder::new(Some("setup"));
    let failures = serve_recorded(recorder.clone(), 1);
    assert_eq!(recorder.calls(), ["fresh=true", "setup ticket=Some(0)"]);
    assert_eq!(
        failures,
        [Reported::Error(io::ErrorKind::Other, "setup failed".into())]
    );
}

#[test]
fn failed_handle_still_runs_finish() {
    let recorder = Recorder::new(Some("handle"));
    let failures = serve_recorded(recorder.clone(), 1);
    assert_eq!(
        recorder.calls(),
        [
            "fresh=true",
            "setup ticket=Some(0)",
            "handle ticket=Some(0)",
            "finish ticket=Some(0)"
        ]
    );
    assert_eq!(
        failures,
        [Reported::Error(
            io::ErrorKind::Other,
            "handle failed".into()
        )]
    );
}

#[test]
fn each_request_gets_its_own_handler_instance() {
    let recorder = Recorder::new(None);
    let failures = serve_recorded(recorder.clone(), 2);
    assert!(failures.is_empty(), "{failures:?}");
    // The ticket set in setup is seen by handle and finish of the same request, and the second
    // request starts from a fresh clone, not from the first request's instance.
    assert_eq!(
        recorder.calls(),
        [
            "fresh=true",
            "setup ticket=Some(0)",
            "handle ticket=Some(0)",
            "finish ticket=Some(0)",
            "fresh=true",
            "setup ticket=Some(1)",
            "handle ticket=Some(1)",
            "finish ticket=Some(1)",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// verify_request, thread reaping, large replies
// ---------------------------------------------------------------------------------------------

/// CPython `test_shutdown_request_called_if_verify_request_false`: a refused connection is closed
/// (not leaked) and never reaches the handler.
#[test]
fn refused_connection_is_closed_without_running_the_handler() {
    let handled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&handled);
    let mut server = Builder::new()
        .verify_request(|peer| {
            assert!(peer.as_inet().is_some_and(|a| a.ip().is_loopback()));
            false
        })
        .bind_tcp("127.0.0.1:0", move |_: &mut StreamRequest| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
    let addr = common::inet_addr(&server.handle());
    let client = common::tcp_client(addr);
    assert_eq!(server.handle_request().unwrap(), Outcome::Rejected);
    assert!(common::closed_without_reply(client));
    assert_eq!(handled.load(Ordering::SeqCst), 0, "handler must not run");
    let stats = server.stats();
    assert_eq!((stats.accepted, stats.rejected, stats.active), (1, 1, 0));
    server.server_close().unwrap();
}

/// CPython `test_threads_reaped`: finished handler threads are joined as new requests arrive,
/// so a threading server does not keep one thread handle per past request.
#[test]
fn threading_server_reaps_finished_threads() {
    let mut server =
        ThreadingTcpServer::bind("127.0.0.1:0", |_: &mut StreamRequest| Ok(())).unwrap();
    let addr = common::inet_addr(&server.handle());
    for _ in 0..10 {
        let client = common::tcp_client(addr);
        assert_eq!(server.handle_request().unwrap(), Outcome::Handled);
        // End-of-file means the handler is done, so its thread is about to finish.
        assert!(common::closed_without_reply(client));
    }
    let tracked = server.mode().tracked_threads();
    assert!(
        tracked < 10,
        "{tracked} threads still tracked after 10 requests"
    );
    server.server_close().unwrap();
}

#[test]
fn eight_mib_reply_arrives_whole() {
    const SIZE: usize = 8 * 1024 * 1024;
    fn pattern() -> Vec<u8> {
        (0..SIZE).map(|i| (i % 251) as u8).collect()
    }
    let server = ThreadingTcpServer::bind("127.0.0.1:0", |req: &mut StreamRequest| {
        req.write_all(&pattern())
    })
    .unwrap();
    let serving = Serving::start(server);
    let mut client = common::tcp_client(common::inet_addr(&serving.handle));
    let mut reply = vec![0u8; SIZE];
    client.read_exact(&mut reply).expect("8 MiB of reply");
    assert!(reply == pattern(), "the 8 MiB reply was corrupted");
    assert_eq!(client.read(&mut [0u8; 16]).unwrap(), 0, "nothing after it");
    serving.finish(WAIT).unwrap();
}

/// A vectored write of several buffers, 4 MiB in all (more than one `writev` can place in the
/// socket buffer), arrives whole and in order, and reports the full length.
#[test]
fn vectored_write_sends_every_buffer() {
    const BIG: usize = 4 * 1024 * 1024;
    fn parts() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        (
            b"head:".to_vec(),
            (0..BIG).map(|i| (i % 253) as u8).collect(),
            b":tail".to_vec(),
        )
    }
    let (written_tx, written) = crossbeam_channel::unbounded();
    let server = ThreadingTcpServer::bind("127.0.0.1:0", move |req: &mut StreamRequest| {
        let (a, b, c) = parts();
        let bufs = [
            io::IoSlice::new(&a),
            io::IoSlice::new(&b),
            io::IoSlice::new(&c),
        ];
        let n = req.write_vectored(&bufs)?;
        let _ = written_tx.send(n);
        Ok(())
    })
    .unwrap();
    let serving = Serving::start(server);
    let mut client = common::tcp_client(common::inet_addr(&serving.handle));
    let (a, b, c) = parts();
    let mut reply = vec![0u8; a.len() + b.len() + c.len()];
    client
        .read_exact(&mut reply)
        .expect("the whole vectored reply");
    assert!(
        reply == [a, b, c].concat(),
        "the vectored reply was corrupted"
    );
    assert_eq!(recv(&written, "the handler's write"), BIG + 10);
    serving.finish(WAIT).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Datagram edge cases
// ---------------------------------------------------------------------------------------------

/// A datagram above `max_packet_size` is dropped and reported, never handed over cut short; one of
/// exactly `max_packet_size` bytes is served whole.
#[test]
fn oversized_datagram_is_reported_and_dropped() {
    let (on_error, failures) = common::failure_channel();
    let (seen_tx, seen) = crossbeam_channel::unbounded();
    let mut server = Builder::new()
        .max_packet_size(100)
        .handle_error(on_error)
        .bind_udp("127.0.0.1:0", move |req: &mut DatagramRequest| {
            let _ = seen_tx.send(req.data().len());
            req.reply(req.data())
        })
        .unwrap();
    let addr = common::inet_addr(&server.handle());
    let client = common::udp_client(addr);
    let mut buf = [0u8; 512];

    client.send_to(&[b'x'; 200], addr).unwrap();
    assert_eq!(server.handle_request().unwrap(), Outcome::Dropped);
    assert_eq!(
        recv(&failures, "the truncation report"),
        Reported::Truncated(100)
    );
    assert!(seen.try_recv().is_err(), "the handler must not see it");

    client.send_to(b"small", addr).unwrap();
    assert_eq!(server.handle_request().unwrap(), Outcome::Handled);
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"small");

    let exact: Vec<u8> = (0..100u8).collect();
    client.send_to(&exact, addr).unwrap();
    assert_eq!(server.handle_request().unwrap(), Outcome::Handled);
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], &exact[..]);
    assert_eq!(seen.try_iter().collect::<Vec<_>>(), [5, 100]);

    let stats = server.stats();
    assert_eq!((stats.accepted, stats.failed, stats.completed), (3, 1, 2));
    assert_eq!(
        failures.try_recv().ok(),
        None,
        "only the oversized one failed"
    );
    server.server_close().unwrap();
}

/// An empty datagram is a request like any other. The echo uses `reply`: an empty reply written
/// through `Write` is indistinguishable from no reply and is not sent (unlike Python's
/// `DatagramRequestHandler`, which always sends `wfile`'s contents).
#[test]
fn empty_datagram_gets_an_empty_reply() {
    let mut server = Builder::new()
        .bind_udp("127.0.0.1:0", |req: &mut DatagramRequest| {
            req.reply(req.data())
        })
        .unwrap();
    let addr = common::inet_addr(&server.handle());
    let client = common::udp_client(addr);
    client.send_to(b"", addr).unwrap();
    assert_eq!(server.handle_request().unwrap(), Outcome::Handled);
    let mut buf = [0u8; 16];
    let (n, from) = client.recv_from(&mut buf).expect("an empty reply");
    assert_eq!((n, from), (0, addr));
    server.server_close().unwrap();
}

/// A reply written with `Write` and never flushed is held until the handler returns, then sent.
#[test]
fn reply_written_without_flush_is_sent_after_the_handler_returns() {
    let (written_tx, written) = crossbeam_channel::unbounded();
    let (gate, waiter) = Gate::new();
    let server = Builder::new()
        .bind_udp("127.0.0.1:0", move |req: &mut DatagramRequest| {
            req.write_all(b"held ")?;
            write!(req, "reply")?;
            let _ = written_tx.send(());
            waiter.wait()
        })
        .unwrap();
    let serving = Serving::start(server);
    let addr = common::inet_addr(&serving.handle);
    let client = common::udp_client(addr);
    client.send_to(b"request", addr).unwrap();
    recv(&written, "the handler to write its reply");
    // Loopback delivery is synchronous, so a reply sent at write time would be queued already.
    client.set_nonblocking(true).unwrap();
    let early = client.recv(&mut [0u8; 64]);
    assert_eq!(
        early.map_err(|e| e.kind()).err(),
        Some(io::ErrorKind::WouldBlock),
        "nothing is sent while the handler runs"
    );
    client.set_nonblocking(false).unwrap();
    gate.open();
    let mut buf = [0u8; 64];
    let n = client
        .recv(&mut buf)
        .expect("the reply after the handler returned");
    assert_eq!(&buf[..n], b"held reply");
    serving.finish(WAIT).unwrap();
}

/// An unbound Unix datagram client cannot be replied to, but it is still a Unix-domain peer and
/// reads as one: `(unnamed)`, as the unbound client of a Unix stream server does. Replying to it
/// is an `InvalidInput` error that says why, not a confusing errno.
#[test]
fn unbound_unix_datagram_client_reads_as_an_unnamed_unix_peer() {
    let path = TempSocketPath::new("unbound-peer");
    let (peers_tx, peers) = crossbeam_channel::unbounded();
    let mut server = Builder::new()
        .bind_unix_datagram(&path, move |req: &mut DatagramRequest| {
            let peer = req.peer_addr();
            let reply = req
                .reply(b"anyone there?")
                .map_err(|e| (e.kind(), e.to_string()));
            let _ = peers_tx.send((peer.is_unix(), peer.to_string(), reply));
            Ok(())
        })
        .unwrap();
    let client = UnixDatagram::unbound().unwrap();
    client.set_write_timeout(Some(common::IO_TIMEOUT)).unwrap();
    client.send_to(b"no return address", &path).unwrap();
    assert_eq!(server.handle_request().unwrap(), Outcome::Handled);
    let (is_unix, shown, reply) = recv(&peers, "the handler's view of the peer");
    server.server_close().unwrap();
    assert_eq!((is_unix, shown.as_str()), (true, "(unnamed)"));
    let (kind, message) = reply.expect_err("replying to an unbound client must fail");
    assert_eq!(kind, io::ErrorKind::InvalidInput);
    assert!(message.contains("no address to reply to"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// Mode limits and overload
// ---------------------------------------------------------------------------------------------

/// With one worker and one queue place, a third and fourth client are turned away at once, while
/// the running and the queued request are served once the handler is released.
#[test]
fn full_pool_rejects_extra_connections() {
    let (started_tx, started) = crossbeam_channel::unbounded();
    let (gate, waiter) = Gate::new();
    let server = Builder::new()
        .mode(Pool::new(1).queue(1).when_full(WhenFull::Reject))
        .bind_tcp("127.0.0.1:0", held_echo(started_tx, waiter))
        .unwrap();
    let serving = Serving::start(server);
    let addr = common::inet_addr(&serving.handle);

    let mut running = common::tcp_client(addr);
    running.write_all(b"running\n").unwrap();
    // Only once the worker holds the first request is the queue's single place free.
    recv(&started, "the first request to start");
    let mut queued = common::tcp_client(addr);
    queued.write_all(b"queued\n").unwrap();
    // The server accepts in connection order, so these come after `queued` has taken the place.
    let extra: Vec<TcpStream> = (0..2).map(|_| common::tcp_client(addr)).collect();
    for client in extra {
        assert!(common::closed_without_reply(client), "extra client served");
    }

    gate.open();
    for (client, line) in [(&mut running, "running\n"), (&mut queued, "queued\n")] {
        let mut reply = String::new();
        client.read_to_string(&mut reply).unwrap();
        assert_eq!(reply, line);
    }
    let handle = serving.handle.clone();
    serving.finish(WAIT).unwrap();
    let stats = handle.stats();
    assert_eq!((stats.accepted, stats.rejected), (4, 2), "{stats:?}");
    assert_eq!((stats.completed, stats.active), (2, 0), "{stats:?}");
}

/// `max_threads(2)` keeps at most two handlers running at once, and everyone is served in turn.
#[test]
fn threading_cap_limits_concurrent_handlers() {
    const CLIENTS: usize = 6;
    let running = Arc::new(AtomicUsize::new(0));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let (started_tx, started) = crossbeam_channel::unbounded();
    let (gate, waiter) = Gate::new();
    let (now, max) = (Arc::clone(&running), Arc::clone(&max_seen));
    let handler = move |req: &mut StreamRequest| {
        let mut line = String::new();
        req.read_line(&mut line)?;
        let count = now.fetch_add(1, Ordering::SeqCst) + 1;
        max.fetch_max(count, Ordering::SeqCst);
        let _ = started_tx.send(());
        let waited = waiter.wait();
        now.fetch_sub(1, Ordering::SeqCst);
        waited?;
        req.write_all(line.as_bytes())
    };
    let server = Builder::new()
        .mode(Threading::new().max_threads(2))
        .bind_tcp("127.0.0.1:0", handler)
        .unwrap();
    let serving = Serving::start(server);
    let addr = common::inet_addr(&serving.handle);

    std::thread::scope(|s| {
        for i in 0..CLIENTS {
            s.spawn(move || {
                let line = format!("client {i}\n");
                assert_eq!(tcp_exchange(addr, &line), line);
            });
        }
        // Two handlers start and then block; the other clients must wait for a free thread.
        recv(&started, "the first handler");
        recv(&started, "the second handler");
        assert_eq!(running.load(Ordering::SeqCst), 2);
        // Release one handler at a time; each release lets exactly one more start.
        for _ in 2..CLIENTS {
            gate.release_one();
            recv(&started, "a waiting client's handler");
        }
        gate.open();
    });

    let handle = serving.handle.clone();
    serving.finish(WAIT).unwrap();
    assert_eq!(
        max_seen.load(Ordering::SeqCst),
        2,
        "at most 2 handlers at once"
    );
    assert_eq!(handle.stats().completed, CLIENTS as u64);
}

/// A serving loop blocked waiting for capacity (a pool place, a thread slot) still notices
/// `shutdown()`: the waiting connection is closed and counted as rejected, the loop returns, and
/// the running request completes.
fn shutdown_while_waiting_for_capacity<M: Mode>(mode: M) {
    let (started_tx, started) = crossbeam_channel::unbounded();
    let (verified_tx, verified) = crossbeam_channel::unbounded();
    let (gate, waiter) = Gate::new();
    let server = Builder::new()
        .mode(mode)
        // Runs on the serving thread right before the mode is asked to take the request.
        .verify_request(move |_| verified_tx.send(()).is_ok())
        .bind_tcp("127.0.0.1:0", held_echo(started_tx, waiter))
        .unwrap();
    let mut serving = Serving::start(server);
    let handle = serving.handle.clone();
    let addr = common::inet_addr(&handle);

    let mut running = common::tcp_client(addr);
    running.write_all(b"running\n").unwrap();
    recv(&verified, "the first request to be verified");
    recv(&started, "the first request to start");
    let waiting = common::tcp_client(addr);
    recv(&verified, "the second request to be verified");
    // The loop is now (or is about to be) blocked for capacity; shutdown must wake it either way.
    handle.shutdown();
    serving.wait_loop_exit(WAIT).unwrap();
    assert!(common::closed_without_reply(waiting));

    gate.open();
    let mut reply = String::new();
    running.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "running\n");
    serving.finish(WAIT).unwrap();
    let stats = handle.stats();
    assert_eq!((stats.accepted, stats.completed), (2, 1), "{stats:?}");
    assert_eq!((stats.rejected, stats.active), (1, 0), "{stats:?}");
}

#[test]
fn shutdown_while_waiting_for_a_pool_place() {
    shutdown_while_waiting_for_capacity(Pool::new(1).queue(0).when_full(WhenFull::Wait));
}

#[test]
fn shutdown_while_waiting_for_a_thread_slot() {
    shutdown_while_waiting_for_capacity(Threading::new().max_threads(1));
}

/// Graceful shutdown: requests already running when `shutdown()` is called complete, and
/// `server_close` waits for them; no new connection is served afterwards.
#[test]
fn shutdown_lets_twenty_running_requests_finish() {
    const CLIENTS: usize = 20;
    let (started_tx, started) = crossbeam_channel::unbounded();
    let (gate, waiter) = Gate::new();
    let server = ThreadingTcpServer::bind("127.0.0.1:0", held_echo(started_tx, waiter)).unwrap();
    let mut serving = Serving::start(server);
    let handle = serving.handle.clone();
    let addr = common::inet_addr(&handle);

    std::thread::scope(|s| {
        for i in 0..CLIENTS {
            s.spawn(move || {
                let line = format!("request {i}\n");
                assert_eq!(tcp_exchange(addr, &line), line, "a complete reply");
            });
        }
        for _ in 0..CLIENTS {
            recv(&started, "all 20 requests to start");
        }
        handle.shutdown();
        // The loop stops while all 20 handlers are still held at the gate.
        serving.wait_loop_exit(WAIT).unwrap();
        assert_eq!(handle.stats().active, CLIENTS as u64);
        gate.open();
    });
    serving.finish(WAIT).unwrap();
    let stats = handle.stats();
    assert_eq!((stats.completed, stats.active), (CLIENTS as u64, 0));

    // The listener is closed: refused, or (if the port was reused) never answered by us.
    match TcpStream::connect_timeout(&addr, common::IO_TIMEOUT) {
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}"),
        Ok(late) => {
            late.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
            assert!(common::closed_without_reply(late));
        }
    }
}

#[test]
fn close_timeout_gives_up_on_a_blocked_handler() {
    let (started_tx, started) = crossbeam_channel::unbounded();
    let (gate, waiter) = Gate::new();
    let server = Builder::new()
        .mode(Threading::new())
        .close_timeout(Duration::from_millis(100))
        .bind_tcp("127.0.0.1:0", held_echo(started_tx, waiter))
        .unwrap();
    let serving = Serving::start(server);
    let handle = serving.handle.clone();
    let mut client = common::tcp_client(common::inet_addr(&handle));
    client.write_all(b"slow\n").unwrap();
    recv(&started, "the handler to start");

    let err = serving.finish(WAIT).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("1 request(s) were still running"),
        "{message}"
    );

    // The abandoned request still finishes on its own thread once released.
    gate.open();
    let mut reply = String::new();
    client.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "slow\n");
}

// ---------------------------------------------------------------------------------------------
// Hooks: handle_timeout, service_actions
// ---------------------------------------------------------------------------------------------

#[test]
fn handle_request_times_out_then_reports_shutdown() {
    let (timeouts_tx, timeouts) = crossbeam_channel::unbounded();
    let mut server = Builder::new()
        .timeout(Duration::from_millis(50))
        .handle_timeout(move |_| {
            let _ = timeouts_tx.send(());
        })
        .bind_tcp("127.0.0.1:0", echo_line)
        .unwrap();
    assert_eq!(server.handle_request().unwrap(), Outcome::TimedOut);
    assert_eq!(timeouts.try_iter().count(), 1, "handle_timeout called once");

    server.shutdown();
    assert_eq!(server.handle_request().unwrap(), Outcome::ShutDown);
    assert_eq!(timeouts.try_iter().count(), 0, "not called on shutdown");
    server.server_close().unwrap();
}

#[test]
fn service_actions_run_periodically_while_idle() {
    let (ticks_tx, ticks) = crossbeam_channel::unbounded();
    let server = Builder::new()
        .service_interval(Duration::from_millis(10))
        .service_actions(move |_| {
            let _ = ticks_tx.send(());
        })
        .bind_tcp("127.0.0.1:0", echo_line)
        .unwrap();
    let serving = Serving::start(server);
    // No client ever connects: only the idle wake-ups can produce these.
    for _ in 0..3 {
        recv(&ticks, "a service_actions call");
    }
    serving.finish(WAIT).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Binding
// ---------------------------------------------------------------------------------------------

#[test]
fn port_zero_reports_the_port_clients_reach() {
    let server = TcpServer::bind("127.0.0.1:0", echo_line).unwrap();
    let addr = server.local_addr().as_inet().unwrap();
    assert_ne!(addr.port(), 0);
    let serving = Serving::start(server);
    let client = common::tcp_client(addr);
    assert_eq!(client.peer_addr().unwrap(), addr);
    assert_eq!(common::exchange(client, b"port\n"), b"port\n");
    serving.finish(WAIT).unwrap();

    let udp = Builder::new()
        .bind_udp("127.0.0.1:0", |_: &mut DatagramRequest| Ok(()))
        .unwrap();
    assert_ne!(udp.local_addr().as_inet().unwrap().port(), 0);
    udp.server_close().unwrap();
}

#[test]
fn binds_ipv6_loopback() {
    let server = match TcpServer::bind("[::1]:0", echo_line) {
        Ok(server) => server,
        Err(e) => {
            common::skip::skipped(&format!("no IPv6 loopback on this machine ({e})"));
            return;
        }
    };
    let addr = server.local_addr().as_inet().unwrap();
    assert!(addr.is_ipv6() && addr.port() != 0, "{addr}");
    let serving = Serving::start(server);
    assert_eq!(tcp_exchange(addr, "six\n"), "six\n");
    serving.finish(WAIT).unwrap();
}

#[test]
fn dual_stack_server_accepts_ipv4_clients() {
    let bound = Builder::new().only_v6(false).bind_tcp("[::]:0", echo_line);
    let server = match bound {
        Ok(server) => server,
        Err(e) => {
            common::skip::skipped(&format!("cannot bind a dual-stack [::] socket here ({e})"));
            return;
        }
    };
    let port = server.local_addr().as_inet().unwrap().port();
    let serving = Serving::start(server);
    let v4 = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(tcp_exchange(v4, "four\n"), "four\n");
    serving.finish(WAIT).unwrap();
}

/// Python's `bind_and_activate=False`: serving sockets bound by someone else.
#[test]
fn serves_existing_std_sockets() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Builder::new()
        .from_tcp_listener(listener, echo_line)
        .unwrap();
    assert_eq!(server.local_addr().as_inet(), Some(addr));
    let serving = Serving::start(server);
    assert_eq!(tcp_exchange(addr, "inherited\n"), "inherited\n");
    serving.finish(WAIT).unwrap();

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let server = Builder::new()
        .from_udp_socket(socket, |req: &mut DatagramRequest| req.reply(req.data()))
        .unwrap();
    let serving = Serving::start(server);
    let client = common::udp_client(addr);
    client.send_to(b"inherited", addr).unwrap();
    let mut buf = [0u8; 64];
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"inherited");
    serving.finish(WAIT).unwrap();
}

#[test]
fn unix_path_in_use_is_addr_in_use_naming_the_path() {
    let path = TempSocketPath::new("taken");
    let _holder = UnixListener::bind(&path).unwrap();
    let err = UnixStreamServer::bind(&path, echo_line).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "{message:?} should name {}",
        path.display()
    );
    assert!(
        path.exists(),
        "a failed bind must not remove someone else's socket"
    );
}

#[test]
fn closing_a_unix_server_removes_its_socket_file() {
    let path = TempSocketPath::new("removed");
    let server = UnixStreamServer::bind(&path, echo_line).unwrap();
    assert!(path.exists());
    let serving = Serving::start(server);
    let reply = common::exchange(common::unix_client(&path), b"unix\n");
    assert_eq!(reply, b"unix\n");
    serving.finish(WAIT).unwrap();
    assert!(!path.exists(), "socket file left behind");
}

/// A server only removes the socket file it created: if its file was replaced by a newer server's,
/// closing the old server leaves the new one reachable.
#[test]
fn closing_an_old_unix_server_leaves_a_newer_servers_file() {
    let path = TempSocketPath::new("replaced");
    let old = UnixStreamServer::bind(&path, echo_line).unwrap();
    std::fs::remove_file(&path).unwrap();
    let new = UnixStreamServer::bind(&path, echo_line).unwrap();
    old.server_close().unwrap();
    assert!(path.exists(), "the newer server's socket file was removed");
    let serving = Serving::start(new);
    let reply = common::exchange(common::unix_client(&path), b"still here\n");
    assert_eq!(reply, b"still here\n");
    serving.finish(WAIT).unwrap();
    assert!(!path.exists());
}

/// A fresh directory for one test's socket files, removed when dropped.
struct SocketDir(std::path::PathBuf);

impl SocketDir {
    fn new(test: &str) -> SocketDir {
        let dir = std::env::temp_dir().join(format!("ss-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        SocketDir(dir)
    }

    fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Issue 9: a server killed before it could remove its socket file left it behind, and the next
/// start failed with "address in use". Now a socket file nobody answers on is replaced.
#[test]
fn a_stale_unix_socket_file_is_replaced_for_stream_and_datagram_servers() {
    let dir = SocketDir::new("stale");
    // What a SIGKILLed server leaves: the file of a socket that is no longer bound.
    let stream_path = dir.join("stream.sock");
    drop(UnixListener::bind(&stream_path).unwrap());
    assert!(stream_path.exists());
    let server = UnixStreamServer::bind(&stream_path, echo_line).unwrap();
    let serving = Serving::start(server);
    let reply = common::exchange(common::unix_client(&stream_path), b"after a crash\n");
    assert_eq!(reply, b"after a crash\n");
    serving.finish(WAIT).unwrap();

    let datagram_path = dir.join("datagram.sock");
    drop(UnixDatagram::bind(&datagram_path).unwrap());
    assert!(datagram_path.exists());
    let server = Builder::new()
        .bind_unix_datagram(&datagram_path, |req: &mut DatagramRequest| {
            req.reply(req.data())
        })
        .unwrap();
    let serving = Serving::start(server);
    let (client, _client_path) = common::unix_datagram_client("stale-client");
    client.send_to(b"datagram", &datagram_path).unwrap();
    let mut buf = [0u8; 64];
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"datagram");
    serving.finish(WAIT).unwrap();
}

/// A socket file a live server answers on is never taken over, whichever type either side is.
#[test]
fn a_unix_socket_a_live_server_answers_on_is_refused_and_kept() {
    let dir = SocketDir::new("live");
    let stream_path = dir.join("stream.sock");
    let live_stream = UnixListener::bind(&stream_path).unwrap();
    let datagram_path = dir.join("datagram.sock");
    let live_datagram = UnixDatagram::bind(&datagram_path).unwrap();
    let datagram_handler = |req: &mut DatagramRequest| req.reply(req.data());
    let refusals = [
        (
            UnixStreamServer::bind(&stream_path, echo_line).map(drop),
            &stream_path,
        ),
        (
            Builder::new()
                .bind_unix_datagram(&datagram_path, datagram_handler)
                .map(drop),
            &datagram_path,
        ),
        (
            Builder::new()
                .bind_unix_datagram(&stream_path, datagram_handler)
                .map(drop),
            &stream_path,
        ),
        (
            UnixStreamServer::bind(&datagram_path, echo_line).map(drop),
            &datagram_path,
        ),
    ];
    for (refused, path) in refusals {
        let err = refused.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
    let answering = UnixStreamServer::bind(&stream_path, echo_line).unwrap_err();
    assert!(
        answering.to_string().contains("a server is answering"),
        "{answering}"
    );
    // Both servers still own their files and are reachable.
    assert!(stream_path.exists() && datagram_path.exists());
    let client = common::unix_client(&stream_path);
    drop(client);
    let sender = UnixDatagram::unbound().unwrap();
    sender.send_to(b"still yours", &datagram_path).unwrap();
    let mut buf = [0u8; 64];
    live_datagram
        .set_read_timeout(Some(common::IO_TIMEOUT))
        .unwrap();
    let n = live_datagram.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"still yours");
    drop(live_stream);
}

/// A path that exists but is not a socket is never deleted to make room.
#[test]
fn a_unix_path_that_is_not_a_socket_is_refused_and_never_deleted() {
    let dir = SocketDir::new("not-socket");
    let file = dir.join("precious.txt");
    std::fs::write(&file, b"keep me").unwrap();
    let stream = UnixStreamServer::bind(&file, echo_line).unwrap_err();
    let datagram = Builder::new()
        .bind_unix_datagram(&file, |req: &mut DatagramRequest| req.reply(req.data()))
        .unwrap_err();
    for err in [stream, datagram] {
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        let message = err.to_string();
        assert!(message.contains("precious.txt"), "{message}");
        assert!(message.contains("not a socket"), "{message}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}

// ---------------------------------------------------------------------------------------------
// Threads
// ---------------------------------------------------------------------------------------------

/// Handler threads carry the configured name prefix, which shows in panics and debuggers.
fn handler_thread_name<M: Mode>(mode: M) -> String {
    let (names_tx, names) = crossbeam_channel::unbounded();
    let server = Builder::new()
        .mode(mode)
        .thread_name("mysrv")
        .bind_tcp("127.0.0.1:0", move |_: &mut StreamRequest| {
            let name = std::thread::current().name().map(str::to_owned);
            let _ = names_tx.send(name);
            Ok(())
        })
        .unwrap();
    let serving = Serving::start(server);
    let client = common::tcp_client(common::inet_addr(&serving.handle));
    let name = recv(&names, "the handler's thread name");
    drop(client);
    serving.finish(WAIT).unwrap();
    name.expect("handler threads are named")
}

#[test]
fn pool_threads_are_named_with_the_prefix() {
    let name = handler_thread_name(Pool::new(2));
    assert!(name.starts_with("mysrv-pool-"), "{name}");
}

#[test]
fn threading_threads_are_named_with_the_prefix() {
    let name = handler_thread_name(Threading::new());
    assert!(name.starts_with("mysrv-thread-"), "{name}");
}
