//! The counters of `ServerHandle::stats` against what clients did over real sockets: requests,
//! bytes and latencies in the stream and message APIs, `verify_request` refusals, handler
//! panics, the limits that close connections (a slowloris peer, a missing PROXY header, a
//! message that never completes, a peer that does not read), pool gauges and pushes.

mod common;

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{tcp_client, Serving, WAIT};
use socketserver::{Builder, Pool, Stats, StreamRequest, Threading};

/// The server's stats once `want` holds, bounded by [`WAIT`] (then as they are, for the
/// assertion to show).
fn settled(handle: &socketserver::ServerHandle, want: impl Fn(&Stats) -> bool) -> Stats {
    let deadline = Instant::now() + WAIT;
    loop {
        let stats = handle.stats();
        if want(&stats) || Instant::now() > deadline {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Answers each line upper-cased; `panic` panics, `slow` sleeps a little first.
fn upper(req: &mut StreamRequest) -> io::Result<()> {
    let mut line = String::new();
    while req.read_line(&mut line)? > 0 {
        match line.trim_end() {
            "panic" => panic!("asked to panic"),
            "slow" => std::thread::sleep(Duration::from_millis(30)),
            _ => {}
        }
        req.write_all(line.to_uppercase().as_bytes())?;
        line.clear();
    }
    Ok(())
}

fn ask(stream: &TcpStream, line: &str) -> String {
    (&*stream).write_all(line.as_bytes()).unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    answer
}

#[test]
fn stream_requests_bytes_and_latencies_are_counted_exactly() {
    let server = Builder::new()
        .mode(Pool::new(2))
        .bind_tcp("127.0.0.1:0", upper)
        .unwrap();
    let serving = Serving::start(server);
    let addr = common::inet_addr(&serving.handle);
    const CLIENTS: u64 = 5;
    for _ in 0..CLIENTS {
        let client = tcp_client(addr);
        assert_eq!(ask(&client, "hello\n"), "HELLO\n");
        assert_eq!(ask(&client, "slow\n"), "SLOW\n");
    }
    let stats = settled(&serving.handle, |s| s.completed == CLIENTS);
    assert_eq!(stats.accepted, CLIENTS);
    assert_eq!(stats.completed, CLIENTS);
    assert_eq!(stats.active, 0);
    // "hello\n" and "slow\n" each way, on every connection.
    assert_eq!(stats.bytes_in, CLIENTS * 11, "{stats:?}");
    assert_eq!(stats.bytes_out, CLIENTS * 11, "{stats:?}");
    assert_eq!(stats.request_time.count(), CLIENTS);
    // Each connection slept 30 ms: none fits the buckets up to 25 ms.
    let quick: u64 = stats.request_time.counts[..9].iter().sum();
    assert_eq!(quick, 0, "{:?}", stats.request_time);
    assert!(stats.request_time.sum_micros >= CLIENTS * 30_000);
    assert_eq!((stats.busy_workers, stats.queue_depth), (0, 0));
    assert_eq!((stats.messages, stats.message_time.count()), (0, 0));
    serving.finish(WAIT).unwrap();
}

#[test]
fn refusals_and_panics_move_their_own_counters() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let refuse = Arc::new(AtomicBool::new(true));
    let refusing = Arc::clone(&refuse);
    let server = Builder::new()
        .mode(Threading::new())
        .verify_request(move |_peer| !refusing.load(Ordering::SeqCst))
        .bind_tcp("127.0.0.1:0", upper)
        .unwrap();
    let serving = Serving::start(server);
    let addr = common::inet_addr(&serving.handle);
    const REFUSED: u64 = 3;
    const PANICKED: u64 = 2;
    for _ in 0..REFUSED {
        let mut client = tcp_client(addr);
        assert!(common::closed_without_reply(&mut client));
    }
    refuse.store(false, Ordering::SeqCst);
    for _ in 0..PANICKED {
        let mut client = tcp_client(addr);
        client.write_all(b"panic\n").unwrap();
        assert!(common::closed_without_reply(&mut client));
    }
    let stats = settled(&serving.handle, |s| s.active == 0 && s.panics == PANICKED);
    assert_eq!(stats.refused, REFUSED, "{stats:?}");
    assert_eq!(stats.rejected, REFUSED, "{stats:?}");
    assert_eq!(stats.panics, PANICKED, "{stats:?}");
    assert_eq!(stats.failed, PANICKED, "{stats:?}");
    assert_eq!(stats.request_time.count(), PANICKED, "{stats:?}");
    serving.finish(WAIT).unwrap();
}

#[test]
fn a_slowloris_peer_is_counted_as_closed_by_the_idle_timeout() {
    let server = Builder::new()
        .mode(Threading::new())
        .idle_timeout(Duration::from_millis(200))
        .bind_tcp("127.0.0.1:0", upper)
        .unwrap();
    let serving = Serving::start(server);
    let addr = common::inet_addr(&serving.handle);
    // Part of a line, then silence: the idle timeout ends it.
    let mut client = tcp_client(addr);
    client.write_all(b"GET / HT").unwrap();
    assert!(common::closed_without_reply(&mut client));
    let stats = settled(&serving.handle, |s| s.closed_by.idle == 1 && s.active == 0);
    assert_eq!(stats.closed_by.idle, 1, "{stats:?}");
    assert_eq!(stats.bytes_in, 8, "{stats:?}");
    assert_eq!(stats.closed_by.lifetime + stats.closed_by.deadline, 0);
    serving.finish(WAIT).unwrap();
}

#[cfg(feature = "proxy")]
#[test]
fn a_missing_proxy_header_is_counted_as_such() {
    let server = Builder::new()
        .mode(Threading::new())
        .proxy_protocol(socketserver::proxy::ProxyProtocol::Any)
        .trusted_proxies(["127.0.0.1/32"])
        .proxy_header_timeout(Duration::from_millis(200))
        .bind_tcp("127.0.0.1:0", upper)
        .unwrap();
    let serving = Serving::start(server);
    let addr = common::inet_addr(&serving.handle);
    let mut garbled = tcp_client(addr);
    garbled.write_all(b"hello, no header here\r\n").unwrap();
    assert!(common::closed_without_reply(&mut garbled));
    let mut silent = common::hold_back_proxy_headers(addr, 0, 1).remove(0);
    assert!(common::closed_without_reply(&mut silent));
    let stats = settled(&serving.handle, |s| s.closed_by.proxy_header == 2);
    assert_eq!(stats.closed_by.proxy_header, 2, "{stats:?}");
    // The header's deadline is not counted as a handler's.
    assert_eq!(stats.closed_by.deadline, 0, "{stats:?}");
    serving.finish(WAIT).unwrap();
}

#[cfg(feature = "message")]
mod message {
    use super::*;
    use common::message::{read_lines, Running};
    use common::IO_TIMEOUT;
    use socketserver::message::{message_handler, Lines, MessageHandler};
    use std::io::Read;

    /// Upper-cases each line; `panic` panics; `push` pushes a line through a sender too.
    fn handler() -> impl MessageHandler {
        message_handler(|line, reply| {
            if line == b"panic" {
                panic!("asked to panic");
            }
            if line == b"push" {
                reply.sender().send(b"pushed\n".to_vec());
            }
            reply.write_all(&line.to_ascii_uppercase())?;
            reply.write_all(b"\n")
        })
    }

    fn check_messages(builder: Builder<socketserver::AnyMode>) {
        let server = builder
            .messages(Lines::new(), handler())
            .bind_tcp("127.0.0.1:0")
            .unwrap();
        let running = Running::start(server);
        const CONNECTIONS: u64 = 3;
        const EACH: u64 = 4;
        let clients: Vec<TcpStream> = (0..CONNECTIONS)
            .map(|_| tcp_client(running.addr()))
            .collect();
        for client in &clients {
            for _ in 0..EACH {
                (&*client).write_all(b"abc\n").unwrap();
            }
            assert_eq!(read_lines(client, EACH as usize).len(), EACH as usize);
        }
        // A reply's bytes are counted just after the write, which the client may see first.
        let open = settled(&running.handle, |s| {
            s.messages == CONNECTIONS * EACH && s.bytes_out == CONNECTIONS * EACH * 4
        });
        assert_eq!(open.messages, CONNECTIONS * EACH, "{open:?}");
        assert_eq!(open.active, CONNECTIONS, "a connection is open: {open:?}");
        assert_eq!(open.accepted, CONNECTIONS);
        assert_eq!(open.message_time.count(), CONNECTIONS * EACH);
        assert_eq!(open.bytes_in, CONNECTIONS * EACH * 4);
        assert_eq!(open.bytes_out, CONNECTIONS * EACH * 4);
        // A push, then a panic, on the first connection.
        (&clients[0]).write_all(b"push\n").unwrap();
        let mut lines = read_lines(&clients[0], 2);
        lines.sort();
        assert_eq!(lines, ["PUSH", "pushed"]);
        (&clients[0]).write_all(b"panic\n").unwrap();
        let mut rest = Vec::new();
        let mut first = &clients[0];
        let _ = first.read_to_end(&mut rest);
        drop(clients);
        let stats = settled(&running.handle, |s| s.active == 0 && s.message_panics == 1);
        assert_eq!(stats.active, 0, "{stats:?}");
        assert_eq!(stats.messages, CONNECTIONS * EACH + 1, "{stats:?}");
        assert_eq!(stats.message_failures, 1, "{stats:?}");
        assert_eq!(stats.message_panics, 1, "{stats:?}");
        assert_eq!(stats.pushes_sent, 1, "{stats:?}");
        assert_eq!(stats.completed + stats.failed, CONNECTIONS, "{stats:?}");
        assert_eq!((stats.busy_workers, stats.queue_depth), (0, 0), "{stats:?}");
        // Stream requests' time is not counted for the connections the loop took over.
        assert_eq!(stats.request_time.count(), 0, "{stats:?}");
        running.stop().unwrap();
    }

    #[test]
    fn messages_are_counted_as_messages_on_the_loop() {
        check_messages(Builder::new().mode(socketserver::Single.into()));
    }

    #[test]
    fn messages_are_counted_as_messages_on_a_pool() {
        check_messages(Builder::new().mode(Pool::new(2).into()));
    }

    #[test]
    fn the_pool_records_how_long_batches_waited() {
        let server = Builder::new()
            .mode(Pool::new(1))
            .messages(Lines::new(), handler())
            .bind_tcp("127.0.0.1:0")
            .unwrap();
        let running = Running::start(server);
        let client = tcp_client(running.addr());
        for _ in 0..3 {
            (&client).write_all(b"x\n").unwrap();
            assert_eq!(read_lines(&client, 1), ["X"]);
        }
        let stats = settled(&running.handle, |s| s.messages == 3);
        assert!(stats.queue_wait.count() >= 1, "{stats:?}");
        running.stop().unwrap();
    }

    #[test]
    fn a_trickled_message_is_counted_as_closed_by_the_message_timeout() {
        let server = Builder::new()
            .messages(Lines::new(), handler())
            .message_timeout(Duration::from_millis(200))
            .bind_tcp("127.0.0.1:0")
            .unwrap();
        let running = Running::start(server);
        let mut client = tcp_client(running.addr());
        client.write_all(b"never ends").unwrap();
        assert!(common::closed_without_reply(&mut client));
        let stats = settled(&running.handle, |s| s.closed_by.message_timeout == 1);
        assert_eq!(stats.closed_by.message_timeout, 1, "{stats:?}");
        assert_eq!(stats.bytes_in, 10, "{stats:?}");
        running.stop().unwrap();
    }

    #[test]
    fn a_peer_that_does_not_read_is_counted_as_a_slow_reader() {
        // Each message pushes 64 KiB; the peer never reads.
        let big = message_handler(|_line, reply| {
            reply.sender().send(vec![b'x'; 64 * 1024]);
            Ok(())
        });
        let server = Builder::new()
            .messages(Lines::new(), big)
            .max_pending_output(256 * 1024)
            .bind_tcp("127.0.0.1:0")
            .unwrap();
        let running = Running::start(server);
        let client = tcp_client(running.addr());
        let _ = client.set_write_timeout(Some(IO_TIMEOUT));
        let deadline = Instant::now() + WAIT;
        let mut sent = 0;
        // Enough requests to fill the socket buffers and the pending output; bounded.
        while running.handle.stats().closed_by.slow_reader == 0 && Instant::now() < deadline {
            if (&client)
                .write_all(&[b"go\n".as_slice(); 64].concat())
                .is_err()
            {
                break;
            }
            sent += 1;
            if sent > 10_000 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let stats = settled(&running.handle, |s| s.closed_by.slow_reader == 1);
        assert_eq!(stats.closed_by.slow_reader, 1, "{stats:?}");
        // The push that went over the limit was dropped with its connection.
        assert!(stats.pushes_dropped >= 1, "{stats:?}");
        assert!(stats.pushes_sent >= 1, "{stats:?}");
        running.stop().unwrap();
    }
}
