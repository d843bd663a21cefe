//! Message servers (`Builder::messages`) over real sockets: framing, order, per-connection
//! handlers, pushes, the loop's limits, back-pressure, failures and the graceful stop.
#![cfg(feature = "message")]

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::message::{read_lines, threads_named, upper_lines, Room, Running};
use common::{closed_without_reply, failure_channel, recv, tcp_client, Reported, WAIT};
use crossbeam_channel::Sender as ChannelSender;
use socketserver::framing::Framing;
use socketserver::message::{
    message_handler, Closed, ConnectionId, LengthPrefixed, Lines, MessageHandler, Reply, Sender,
};
use socketserver::{Address, AnyMode, Builder, Pool, Single, Threading};

fn pipelined_lines_come_back_in_order(mode: AnyMode) {
    let server = Builder::new()
        .mode(mode)
        .messages(Lines::new(), upper_lines())
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let mut client = tcp_client(running.addr());
    let batch: String = (0..200).map(|i| format!("line {i}\r\n")).collect();
    client.write_all(batch.as_bytes()).unwrap();
    let expected: Vec<String> = (0..200).map(|i| format!("LINE {i}")).collect();
    assert_eq!(read_lines(&client, 200), expected);
    drop(client);
    running.stop().unwrap();
}

#[test]
fn pipelined_lines_come_back_in_order_on_the_loop() {
    pipelined_lines_come_back_in_order(Single.into());
}

#[test]
fn pipelined_lines_come_back_in_order_from_a_pool() {
    pipelined_lines_come_back_in_order(Pool::new(3).into());
}

#[test]
fn length_prefixed_frames_arriving_a_byte_at_a_time_are_handled_whole() {
    let echo = message_handler(|payload, reply| Framing::new().write_frame(reply, payload));
    let server = Builder::new()
        .messages(LengthPrefixed::default(), echo)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let mut client = tcp_client(running.addr());
    client.set_nodelay(true).unwrap();
    let mut frame = Vec::new();
    Framing::new()
        .write_frame(&mut frame, b"sticky packets")
        .unwrap();
    for byte in &frame {
        client.write_all(&[*byte]).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let got = Framing::new().read_frame(&mut client).unwrap();
    assert_eq!(got.as_deref(), Some(&b"sticky packets"[..]));
    running.stop().unwrap();
}

/// Counts its connection's messages: a plain field, because each connection has its own clone.
#[derive(Clone, Default)]
struct Counter {
    seen: usize,
}

impl MessageHandler for Counter {
    fn handle(&mut self, _message: &[u8], reply: &mut Reply<'_>) -> io::Result<()> {
        self.seen += 1;
        writeln!(reply, "{}", self.seen)
    }
}

#[test]
fn every_connection_has_its_own_handler() {
    let server = Builder::new()
        .mode(Pool::new(2))
        .messages(Lines::new(), Counter::default())
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let mut a = tcp_client(running.addr());
    let mut b = tcp_client(running.addr());
    for _ in 0..3 {
        a.write_all(b"x\n").unwrap();
    }
    b.write_all(b"y\n").unwrap();
    assert_eq!(read_lines(&a, 3), ["1", "2", "3"]);
    assert_eq!(read_lines(&b, 1), ["1"]);
    running.stop().unwrap();
}

/// Greets, answers, and tells the test why its connection closed.
#[derive(Clone)]
struct Lifecycle {
    closed: ChannelSender<Closed>,
}

impl MessageHandler for Lifecycle {
    fn opened(&mut self, reply: &mut Reply<'_>) -> io::Result<()> {
        let peer = reply.peer_addr().clone();
        writeln!(reply, "hello {peer}")
    }
    fn handle(&mut self, message: &[u8], reply: &mut Reply<'_>) -> io::Result<()> {
        match message {
            b"quit" => {
                reply.write_all(b"bye\n")?;
                reply.close();
                Ok(())
            }
            b"fail" => Err(io::Error::other("asked to fail")),
            b"panic" => panic!("asked to panic"),
            other => {
                reply.write_all(other)?;
                reply.write_all(b"\n")
            }
        }
    }
    fn closed(&mut self, _id: ConnectionId, _peer: &Address, reason: &Closed) {
        let _ = self.closed.send(reason.clone());
    }
}

fn lifecycle_server<M: socketserver::Mode + Into<AnyMode>>(
    builder: Builder<M>,
) -> (Running, crossbeam_channel::Receiver<Closed>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let server = builder
        .messages(Lines::new(), Lifecycle { closed: tx })
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    (Running::start(server), rx)
}

#[test]
fn opened_greets_and_closed_hears_why() {
    let (running, closed) = lifecycle_server(Builder::new());
    let mut client = tcp_client(running.addr());
    let local = client.local_addr().unwrap();
    client.write_all(b"ping\n").unwrap();
    assert_eq!(
        read_lines(&client, 2),
        [format!("hello {local}"), "ping".to_string()]
    );
    drop(client);
    assert_eq!(recv(&closed, "the close"), Closed::ByPeer);

    let mut client = tcp_client(running.addr());
    client.write_all(b"quit\nnever handled\n").unwrap();
    let mut reply = String::new();
    client.read_to_string(&mut reply).unwrap();
    assert!(reply.ends_with("bye\n"), "{reply:?}");
    assert_eq!(recv(&closed, "the close"), Closed::ByHandler);
    running.stop().unwrap();
}

#[test]
fn a_failing_or_panicking_handler_is_reported_and_closes_only_its_connection() {
    for mode in [AnyMode::from(Single), Pool::new(2).into()] {
        let (hook, failures) = failure_channel();
        let (running, closed) = lifecycle_server(Builder::new().mode(mode).handle_error(hook));
        for (ask, report) in [("fail", "asked to fail"), ("panic", "asked to panic")] {
            let mut client = tcp_client(running.addr());
            client
                .write_all(format!("before\n{ask}\nafter\n").as_bytes())
                .unwrap();
            let mut reply = String::new();
            client.read_to_string(&mut reply).unwrap();
            assert!(reply.ends_with("before\n"), "{reply:?}");
            assert_eq!(recv(&closed, "the close"), Closed::HandlerFailed);
            match recv(&failures, "the report") {
                Reported::Error(_, message) | Reported::Panic(message) => {
                    assert!(message.contains(report), "{message}");
                }
                other => panic!("unexpected report {other:?}"),
            }
        }
        // The server lives on.
        let mut client = tcp_client(running.addr());
        client.write_all(b"still\n").unwrap();
        assert_eq!(read_lines(&client, 2)[1], "still");
        running.stop().unwrap();
    }
}

#[test]
fn a_trickled_message_is_closed_at_its_deadline_and_never_handled() {
    let handled = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&handled);
    let handler = message_handler(move |line, reply| {
        count.fetch_add(1, Ordering::SeqCst);
        reply.write_all(line)?;
        reply.write_all(b"\n")
    });
    let server = Builder::new()
        .messages(Lines::new(), handler)
        .message_timeout(Duration::from_millis(400))
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let mut trickler = tcp_client(running.addr());
    let mut good = tcp_client(running.addr());
    let started = Instant::now();
    let mut closed_after = None;
    // One byte every 50 ms, never a line end: closed by the deadline, well before 40 bytes.
    for _ in 0..40 {
        if trickler.write_all(b"x").is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        good.write_all(b"ok\n").unwrap();
        assert_eq!(read_lines(&good, 1), ["ok"]);
        std::thread::sleep(Duration::from_millis(50));
    }
    let closed = closed_after.is_some() || closed_without_reply(&trickler);
    assert!(closed, "the trickler was never cut off");
    // Every handled message was the good client's: the trickler's never reached the handler.
    let good_messages = handled.load(Ordering::SeqCst);
    good.write_all(b"ok\n").unwrap();
    assert_eq!(read_lines(&good, 1), ["ok"]);
    assert_eq!(handled.load(Ordering::SeqCst), good_messages + 1);
    running.stop().unwrap();
}

#[test]
fn the_idle_timeout_closes_a_silent_connection() {
    let (running, closed) =
        lifecycle_server(Builder::new().idle_timeout(Duration::from_millis(300)));
    let client = tcp_client(running.addr());
    assert_eq!(read_lines(&client, 1).len(), 1); // the greeting
    assert!(closed_without_reply(&client));
    assert_eq!(recv(&closed, "the close"), Closed::IdleTimeout);
    running.stop().unwrap();
}

#[test]
fn an_over_long_message_closes_the_connection_and_is_reported() {
    let (hook, failures) = failure_channel();
    let server = Builder::new()
        .handle_error(hook)
        .messages(Lines::new().max_line_len(16), upper_lines())
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let mut client = tcp_client(running.addr());
    client.write_all(&[b'a'; 100]).unwrap();
    assert!(closed_without_reply(&client));
    match recv(&failures, "the report") {
        Reported::Error(kind, message) => {
            assert_eq!(kind, io::ErrorKind::InvalidData);
            assert!(message.contains("limit"), "{message}");
        }
        other => panic!("unexpected report {other:?}"),
    }
    // A length field announcing too much is refused before its payload.
    let server = Builder::new()
        .messages(
            LengthPrefixed::new(Framing::new().max_frame_len(8)),
            upper_lines(),
        )
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let framed = Running::start(server);
    let mut client = tcp_client(framed.addr());
    client.write_all(&[0, 0, 0, 9]).unwrap();
    assert!(closed_without_reply(&client));
    running.stop().unwrap();
    framed.stop().unwrap();
}

#[test]
fn senders_push_to_other_connections() {
    let room = Room::default();
    let members = Arc::clone(&room.members);
    let server = Builder::new()
        .mode(Pool::new(2))
        .messages(Lines::new(), room)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let mut a = tcp_client(running.addr());
    let b = tcp_client(running.addr());
    let c = tcp_client(running.addr());
    for client in [&a, &b, &c] {
        assert_eq!(read_lines(client, 1), ["joined"]);
    }
    a.write_all(b"hi all\n").unwrap();
    assert_eq!(read_lines(&b, 1), ["hi all"]);
    assert_eq!(read_lines(&c, 1), ["hi all"]);
    drop(c);
    let deadline = Instant::now() + WAIT;
    while members.lock().unwrap().len() != 2 {
        assert!(Instant::now() < deadline, "closed never removed the member");
        std::thread::sleep(Duration::from_millis(10));
    }
    running.stop().unwrap();
}

#[test]
fn a_peer_that_does_not_read_stops_being_read() {
    let handled = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&handled);
    // Each one-byte request asks for 64 KiB.
    let handler = message_handler(move |_line, reply| {
        count.fetch_add(1, Ordering::SeqCst);
        reply.write_all(&[b'z'; 64 * 1024])
    });
    let server = Builder::new()
        .messages(Lines::new(), handler)
        .max_pending_output(128 * 1024)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let mut client = tcp_client(running.addr());
    let requests = 2000; // 125 MiB of answers: far more than socket buffers hold
    client.write_all(&b"\n".repeat(requests)).unwrap();
    // Wait until the server stops handling: the count holds still across several looks.
    let deadline = Instant::now() + WAIT;
    let mut last = usize::MAX;
    let mut still = 0;
    while still < 5 {
        assert!(
            Instant::now() < deadline,
            "the server never stopped reading"
        );
        std::thread::sleep(Duration::from_millis(100));
        let now = handled.load(Ordering::SeqCst);
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    assert!(
        last < requests,
        "all {requests} were handled though nothing was read"
    );
    // Reading lets it go on, to the end.
    let mut total = 0;
    let mut buf = vec![0; 256 * 1024];
    while total < requests * 64 * 1024 {
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {total} bytes");
        total += n;
    }
    assert_eq!(handled.load(Ordering::SeqCst), requests);
    running.stop().unwrap();
}

#[test]
fn a_graceful_stop_lets_a_running_handler_answer() {
    let (started_tx, started) = crossbeam_channel::bounded(1);
    let (release_tx, release) = crossbeam_channel::bounded::<()>(1);
    let saw_the_stop = Arc::new(AtomicUsize::new(0));
    let saw = Arc::clone(&saw_the_stop);
    // The handler runs until the test has begun the stop, then answers.
    let handler = message_handler(move |line, reply| {
        let _ = started_tx.try_send(());
        let _ = release.recv_timeout(WAIT);
        if reply.server().is_shutting_down() {
            saw.fetch_add(1, Ordering::SeqCst);
        }
        reply.write_all(line)?;
        reply.write_all(b"\n")
    });
    let server = Builder::new()
        .mode(Pool::new(2))
        .grace_period(Duration::from_secs(5))
        .messages(Lines::new(), handler)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let mut busy = tcp_client(running.addr());
    // Idle after an exchange (a new connection that sent nothing yet would be waited for).
    let mut idle = tcp_client(running.addr());
    idle.write_all(b"hi\n").unwrap();
    recv(&started, "the idle one's exchange to start");
    release_tx.send(()).unwrap();
    assert_eq!(read_lines(&idle, 1), ["hi"]);
    busy.write_all(b"slow\n").unwrap();
    recv(&started, "the handler to start");
    running.handle.shutdown();
    release_tx.send(()).unwrap();
    let stopping = std::thread::spawn(move || running.stop());
    assert_eq!(read_lines(&busy, 1), ["slow"]);
    assert!(closed_without_reply(&busy));
    assert!(closed_without_reply(&idle));
    stopping.join().unwrap().unwrap();
    assert_eq!(
        saw_the_stop.load(Ordering::SeqCst),
        1,
        "the handler ran across the stop"
    );
}

/// `stats()` counts connections as requests, active while open, and the messages handled and
/// failed, in both modes.
#[test]
fn stats_count_open_connections_and_messages() {
    for mode in [AnyMode::from(Single), AnyMode::from(Pool::new(2))] {
        let (running, closed) = lifecycle_server(Builder::new().mode(mode));
        let settled = |want: &dyn Fn(&socketserver::Stats) -> bool| {
            let deadline = Instant::now() + WAIT;
            loop {
                let stats = running.handle.stats();
                if want(&stats) || Instant::now() > deadline {
                    return stats;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        let mut a = tcp_client(running.addr());
        let mut b = tcp_client(running.addr());
        a.write_all(b"one\ntwo\nthree\n").unwrap();
        b.write_all(b"four\n").unwrap();
        assert_eq!(read_lines(&a, 4).len(), 4, "the greeting and three answers");
        assert_eq!(read_lines(&b, 2).len(), 2);
        let stats = settled(&|s| s.messages == 4);
        assert_eq!(
            (stats.accepted, stats.active, stats.messages),
            (2, 2, 4),
            "both connections open, four messages: {stats:?}"
        );
        // A failing handler: one failure, and its connection ends as failed.
        b.write_all(b"fail\n").unwrap();
        assert_eq!(
            recv(&closed, "the failing connection's close"),
            Closed::HandlerFailed
        );
        drop(a);
        assert_eq!(recv(&closed, "the other's close"), Closed::ByPeer);
        let stats = settled(&|s| s.active == 0);
        assert_eq!(
            (
                stats.active,
                stats.completed,
                stats.failed,
                stats.message_failures
            ),
            (0, 1, 1, 1),
            "{stats:?}"
        );
        running.stop().unwrap();
    }
}

#[test]
fn modes_with_a_thread_per_connection_are_refused() {
    for mode in [AnyMode::from(Threading::new()), "process".parse().unwrap()] {
        let err = Builder::new()
            .mode(mode)
            .messages(Lines::new(), upper_lines())
            .bind_tcp("127.0.0.1:0")
            .expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("message server"), "{err}");
    }
}

#[test]
fn unix_stream_message_servers_work_too() {
    let path = common::TempSocketPath::new("message");
    let server = Builder::new()
        .messages(Lines::new(), upper_lines())
        .bind_unix_stream(&path)
        .unwrap();
    let running = Running::start(server);
    let mut client = common::unix_client(path.path());
    client.write_all(b"unix\n").unwrap();
    let mut line = String::new();
    BufReader::new(client).read_line(&mut line).unwrap();
    assert_eq!(line, "UNIX\n");
    running.stop().unwrap();
}

#[test]
fn many_idle_connections_hold_no_thread() {
    let server = Builder::new()
        .mode(Pool::new(2))
        .thread_name("idle300")
        .messages(Lines::new(), upper_lines())
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let idle: Vec<TcpStream> = (0..300).map(|_| tcp_client(running.addr())).collect();
    let mut client = tcp_client(running.addr());
    client.write_all(b"still served\n").unwrap();
    assert_eq!(read_lines(&client, 1), ["STILL SERVED"]);
    // The loop and the two workers, however many connections are open.
    assert_eq!(threads_named("idle300"), 3);
    drop(idle);
    running.stop().unwrap();
}

#[test]
fn a_connection_that_does_not_read_its_pushes_is_closed_as_a_slow_reader() {
    let (closed_tx, closed) = crossbeam_channel::unbounded();
    let (sender_tx, senders) = crossbeam_channel::unbounded();
    #[derive(Clone)]
    struct Subscriber {
        senders: ChannelSender<Sender>,
        closed: ChannelSender<Closed>,
    }
    impl MessageHandler for Subscriber {
        fn opened(&mut self, reply: &mut Reply<'_>) -> io::Result<()> {
            let _ = self.senders.send(reply.sender());
            Ok(())
        }
        fn handle(&mut self, _message: &[u8], _reply: &mut Reply<'_>) -> io::Result<()> {
            Ok(())
        }
        fn closed(&mut self, _id: ConnectionId, _peer: &Address, reason: &Closed) {
            let _ = self.closed.send(reason.clone());
        }
    }
    let handler = Subscriber {
        senders: sender_tx,
        closed: closed_tx,
    };
    let server = Builder::new()
        .messages(Lines::new(), handler)
        .max_pending_output(256 * 1024)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let _deaf = tcp_client(running.addr());
    let sender = recv(&senders, "the subscriber's sender");
    // Far more than the kernel's socket buffers and the limit hold: at some point it is cut off.
    let deadline = Instant::now() + WAIT;
    while closed.is_empty() {
        assert!(
            Instant::now() < deadline,
            "a reader that never reads was kept"
        );
        for _ in 0..64 {
            assert!(sender.send(vec![b'n'; 64 * 1024]), "the loop ended");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(recv(&closed, "the close"), Closed::SlowReader);
    // Pushing to a closed connection is harmless.
    assert!(sender.send(b"late".to_vec()));
    running.stop().unwrap();
}

#[cfg(feature = "proxy")]
#[test]
fn with_the_proxy_protocol_the_handler_sees_the_client() {
    let peer = message_handler(|_line, reply| {
        let peer = reply.peer_addr().clone();
        writeln!(reply, "{peer}")
    });
    let server = Builder::new()
        .proxy_protocol(socketserver::proxy::ProxyProtocol::V1)
        .trusted_proxies(["127.0.0.1"])
        .messages(Lines::new(), peer)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let mut client = tcp_client(running.addr());
    client
        .write_all(b"PROXY TCP4 203.0.113.9 127.0.0.1 40000 80\r\nwho am i\n")
        .unwrap();
    assert_eq!(read_lines(&client, 1), ["203.0.113.9:40000"]);
    running.stop().unwrap();
}

/// Balancer connections that hold back their header stall no one: they wait in the intake, and
/// the clients behind them are answered at once, not after the header timeout (a minute here).
#[cfg(feature = "proxy")]
#[test]
fn connections_holding_back_their_proxy_header_stall_no_one() {
    for mode in [AnyMode::from(Single), AnyMode::from(Pool::new(2))] {
        let server = Builder::new()
            .mode(mode)
            .proxy_protocol(socketserver::proxy::ProxyProtocol::V1)
            .trusted_proxies(["127.0.0.1"])
            .proxy_header_timeout(Duration::from_secs(60))
            .messages(Lines::new(), upper_lines())
            .bind_tcp("127.0.0.1:0")
            .unwrap();
        let running = Running::start(server);
        let held = common::hold_back_proxy_headers(running.addr(), 20, 5);
        for i in 0..10 {
            let mut client = tcp_client(running.addr());
            write!(
                client,
                "PROXY TCP4 203.0.113.9 127.0.0.1 40000 80\r\nclient {i}\n"
            )
            .unwrap();
            assert_eq!(read_lines(&client, 1), [format!("CLIENT {i}")]);
        }
        drop(held);
        running.stop().unwrap();
    }
}

#[test]
fn verify_request_refuses_before_the_loop_sees_the_connection() {
    let (closed_tx, closed) = crossbeam_channel::unbounded();
    let server = Builder::new()
        .verify_request(|_peer| false)
        .messages(Lines::new(), Lifecycle { closed: closed_tx })
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let client = tcp_client(running.addr());
    assert!(closed_without_reply(&client), "greeted though refused");
    assert!(
        closed.is_empty(),
        "the handler heard of a refused connection"
    );
    running.stop().unwrap();
}

#[test]
fn a_close_with_requests_still_arriving_lingers_instead_of_resetting() {
    let (running, closed) = lifecycle_server(Builder::new());
    for _ in 0..5 {
        let mut client = tcp_client(running.addr());
        // The greeting, then "quit" with 100 KB pipelined behind it, which the server never
        // handles: closing with them unread would answer with a reset.
        let mut batch = b"quit\n".to_vec();
        batch.extend_from_slice(&b"never handled\n".repeat(7000));
        client.write_all(&batch).unwrap();
        let mut reply = String::new();
        client
            .read_to_string(&mut reply)
            .expect("the replies, then an end of file, not a reset");
        assert!(reply.ends_with("bye\n"), "{reply:?}");
        assert_eq!(recv(&closed, "the close"), Closed::ByHandler);
    }
    running.stop().unwrap();
}

#[test]
fn messages_held_back_by_an_unread_output_are_not_timed_out() {
    // Each request asks for 64 KiB; the client pipelines 100 and reads nothing for a while,
    // well past the message timeout: what it sent was whole, it is only slow to read.
    let handler = message_handler(|_line, reply| reply.write_all(&[b'z'; 64 * 1024]));
    let server = Builder::new()
        .messages(Lines::new(), handler)
        .message_timeout(Duration::from_millis(200))
        .max_pending_output(64 * 1024)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let mut client = tcp_client(running.addr());
    client.write_all(&b"\n".repeat(100)).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let mut total = 0;
    let mut buf = vec![0; 256 * 1024];
    while total < 100 * 64 * 1024 {
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {total} bytes");
        total += n;
    }
    running.stop().unwrap();
}

#[test]
fn a_peer_that_closes_after_pipelining_gets_every_whole_message_answered() {
    for mode in [AnyMode::from(Single), Pool::new(2).into()] {
        let name = format!("{mode:?}");
        let (running, closed) = lifecycle_server(Builder::new().mode(mode));
        let mut client = tcp_client(running.addr());
        // Whole messages, then half of one, then the end of the stream.
        let mut batch: Vec<u8> = (0..300)
            .flat_map(|i| format!("m{i}\n").into_bytes())
            .collect();
        batch.extend_from_slice(b"half");
        client.write_all(&batch).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut reply = String::new();
        client.read_to_string(&mut reply).unwrap();
        let lines: Vec<&str> = reply.lines().collect();
        assert_eq!(lines.len(), 301, "{name}: the greeting and 300 answers");
        assert_eq!(lines[300], "m299");
        assert_eq!(recv(&closed, "the close"), Closed::ByPeer);
        running.stop().unwrap();
    }
}

#[test]
fn messages_held_back_by_a_full_output_are_answered_after_the_peer_closes_its_side() {
    // 64 KiB answers and a 64 KiB output limit: handling stops after each answer until it is
    // sent, while the end of the stream has already arrived.
    let handler = message_handler(|_line, reply| reply.write_all(&[b'z'; 64 * 1024]));
    let server = Builder::new()
        .messages(Lines::new(), handler)
        .max_pending_output(64 * 1024)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let mut client = tcp_client(running.addr());
    client.write_all(&b"\n".repeat(50)).unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).unwrap();
    assert_eq!(reply.len(), 50 * 64 * 1024);
    running.stop().unwrap();
}

#[test]
fn a_message_behind_an_answer_larger_than_the_output_limit_is_answered_too() {
    // The first answer alone is over max_pending_output: handling pauses behind it, and must
    // resume once it is sent, even when the socket takes all of it at once.
    for mode in [AnyMode::from(Single), Pool::new(2).into()] {
        let name = format!("{mode:?}");
        let echo = message_handler(|payload, reply| Framing::new().write_frame(reply, payload));
        let server = Builder::new()
            .mode(mode)
            .messages(LengthPrefixed::default(), echo)
            .max_pending_output(64 * 1024)
            .bind_tcp("127.0.0.1:0")
            .unwrap();
        let running = Running::start(server);
        let mut client = tcp_client(running.addr());
        // Over a worker batch (256 KiB): the small one waits for the next batch.
        let big = vec![7u8; 300 * 1024];
        let mut frames = Vec::new();
        Framing::new().write_frame(&mut frames, &big).unwrap();
        Framing::new().write_frame(&mut frames, b"small").unwrap();
        client.write_all(&frames).unwrap();
        let got = Framing::new().read_frame(&mut client).unwrap();
        assert_eq!(got.map(|g| g.len()), Some(big.len()), "{name}");
        let got = Framing::new().read_frame(&mut client).unwrap();
        assert_eq!(got.as_deref(), Some(&b"small"[..]), "{name}");
        running.stop().unwrap();
    }
}

/// A pool runs quick handlers back to back on one worker, but a handler that blocks must not
/// hold up the messages queued behind it while other workers sleep: here the blocked handler
/// waits for the very message queued behind it.
#[test]
fn a_pool_handler_that_blocks_does_not_hold_up_the_queue_behind_it() {
    let (go_tx, go) = crossbeam_channel::bounded::<()>(1);
    let handler = message_handler(move |line, reply| match line {
        b"wait" => {
            let answer: &[u8] = match go.recv_timeout(WAIT) {
                Ok(()) => b"released\n",
                Err(_) => b"nobody ran the next message\n",
            };
            reply.write_all(answer)
        }
        b"go" => {
            let _ = go_tx.try_send(());
            reply.write_all(b"sent\n")
        }
        _ => reply.write_all(b"ok\n"),
    });
    let server = Builder::new()
        .mode(Pool::new(3))
        .messages(Lines::new(), handler)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let mut waiter = tcp_client(running.addr());
    let mut other = tcp_client(running.addr());
    // Quick messages first: the pool learns that its jobs take microseconds.
    for _ in 0..200 {
        waiter.write_all(b"quick\n").unwrap();
        assert_eq!(read_lines(&waiter, 1), ["ok"]);
    }
    // Both in one turn of the loop, as far as the timing allows: the second is queued behind
    // the first, which waits for it.
    waiter.write_all(b"wait\n").unwrap();
    other.write_all(b"go\n").unwrap();
    assert_eq!(read_lines(&other, 1), ["sent"]);
    assert_eq!(read_lines(&waiter, 1), ["released"]);
    drop((waiter, other));
    running.stop().unwrap();
}
