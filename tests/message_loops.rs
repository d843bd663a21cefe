//! Message servers with several event loops (`MessageBuilder::loops`): connections are spread
//! over the loops, a handler stuck on one loop stalls only that loop's connections, pushes reach
//! connections on every loop, a graceful stop answers what is in flight on all of them, and the
//! PROXY protocol works as with one loop.
#![cfg(feature = "message")]

mod common;

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::message::{read_lines, threads_named, Room, Running};
use common::{closed_without_reply, recv, tcp_client, IO_TIMEOUT, WAIT};
use crossbeam_channel::{Receiver, Sender as ChannelSender};
use socketserver::message::{message_handler, Lines, MessageHandler};
use socketserver::{AnyMode, Builder, Pool, Prefork, Single, Stats};

/// The name of the thread running the handler: `…message-loop-<n>` with several loops.
fn this_thread() -> String {
    std::thread::current().name().unwrap_or("?").to_string()
}

/// Answers `<loop thread> <LINE>`; `block` first tells `started` and waits (boundedly) for
/// `release`.
fn where_handler(started: ChannelSender<()>, release: Receiver<()>) -> impl MessageHandler {
    message_handler(move |line, reply| {
        if line == b"block" {
            let _ = started.send(());
            let _ = release.recv_timeout(WAIT);
        }
        let line = String::from_utf8_lossy(line).to_uppercase();
        writeln!(reply, "{} {line}", this_thread())
    })
}

fn where_server(builder: Builder, loops: usize) -> (Running, ChannelSender<()>, Receiver<()>) {
    let (started_tx, started) = crossbeam_channel::unbounded();
    let (release_tx, release) = crossbeam_channel::unbounded();
    let server = builder
        .messages(Lines::new(), where_handler(started_tx, release))
        .loops(loops)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    (Running::start(server), release_tx, started)
}

/// The loop `client`'s connection is on, as its handler's thread names it.
fn loop_of(client: &mut TcpStream) -> String {
    client.write_all(b"where\n").unwrap();
    let line = read_lines(client, 1).remove(0);
    let (name, said) = line.split_once(' ').expect("`<thread> WHERE`");
    assert_eq!(said, "WHERE");
    name.to_string()
}

fn distinct(names: &[String]) -> BTreeSet<&str> {
    names.iter().map(String::as_str).collect()
}

/// The server's stats once `want` holds (or, after [`WAIT`], as they are).
fn settled(running: &Running, want: impl Fn(&Stats) -> bool) -> Stats {
    let deadline = Instant::now() + WAIT;
    loop {
        let stats = running.handle.stats();
        if want(&stats) || Instant::now() > deadline {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn connections_are_spread_evenly_over_the_loops_and_counted_once() {
    let (running, _release, _started) = where_server(Builder::new(), 2);
    let mut clients: Vec<TcpStream> = (0..6).map(|_| tcp_client(running.addr())).collect();
    let names: Vec<String> = clients.iter_mut().map(loop_of).collect();
    let loops = distinct(&names);
    assert_eq!(loops.len(), 2, "{names:?}");
    for name in &loops {
        assert!(name.contains("message-loop-"), "{name}");
        // All six are open: each new one went to the loop with fewer.
        let on_it = names.iter().filter(|n| n == name).count();
        assert_eq!(on_it, 3, "{names:?}");
    }
    let stats = settled(&running, |s| s.messages == 6);
    assert_eq!((stats.accepted, stats.active, stats.messages), (6, 6, 6));
    drop(clients);
    let stats = settled(&running, |s| s.active == 0);
    assert_eq!((stats.active, stats.completed, stats.failed), (0, 6, 0));
    running.stop().unwrap();
}

/// A handler that does not return stalls its own loop's connections, not the other loop's, and
/// new connections are handed to the other loop meanwhile.
#[test]
fn a_handler_stuck_on_one_loop_stalls_only_that_loops_connections() {
    let (running, release, started) = where_server(Builder::new(), 2);
    let mut clients: Vec<TcpStream> = (0..4).map(|_| tcp_client(running.addr())).collect();
    let names: Vec<String> = clients.iter_mut().map(loop_of).collect();
    let stuck = names[0].clone();
    let neighbour = (1..4)
        .find(|&i| names[i] == stuck)
        .expect("two on each loop");
    let others: Vec<usize> = (1..4).filter(|&i| names[i] != stuck).collect();
    assert_eq!(others.len(), 2, "{names:?}");

    clients[0].write_all(b"block\n").unwrap();
    recv(&started, "the handler to block its loop");
    clients[neighbour].write_all(b"after\n").unwrap();
    // The other loop's connections are served while the handler is stuck.
    for &i in &others {
        for _ in 0..3 {
            assert_eq!(loop_of(&mut clients[i]), names[i]);
        }
    }
    // Its neighbour on the stuck loop waits.
    clients[neighbour]
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    let waited = clients[neighbour].read(&mut byte);
    assert!(
        matches!(&waited, Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)),
        "answered while its loop was stuck: {waited:?}"
    );
    clients[neighbour]
        .set_read_timeout(Some(IO_TIMEOUT))
        .unwrap();
    // New connections go to the loop that is not stuck, though both hold two.
    let other = names[others[0]].clone();
    for _ in 0..4 {
        let mut newcomer = tcp_client(running.addr());
        assert_eq!(loop_of(&mut newcomer), other);
        clients.push(newcomer);
    }
    // Once the handler returns, both are answered.
    release.send(()).unwrap();
    assert_eq!(read_lines(&clients[0], 1), [format!("{stuck} BLOCK")]);
    assert_eq!(
        read_lines(&clients[neighbour], 1),
        [format!("{stuck} AFTER")]
    );
    running.stop().unwrap();
}

#[test]
fn pushes_reach_connections_on_every_loop() {
    let room = Room::greeting(this_thread);
    let members = Arc::clone(&room.members);
    let server = Builder::new()
        .messages(Lines::new(), room)
        .loops(2)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let mut clients: Vec<TcpStream> = (0..4).map(|_| tcp_client(running.addr())).collect();
    let names: Vec<String> = clients.iter().map(|c| read_lines(c, 1).remove(0)).collect();
    assert_eq!(distinct(&names).len(), 2, "{names:?}");
    // The same slot on two loops is two connections: each has an id of its own.
    assert_eq!(members.lock().unwrap().len(), 4);
    for from in 0..2 {
        let said = format!("from {from}");
        writeln!(clients[from], "{said}").unwrap();
        for (i, client) in clients.iter().enumerate().filter(|(i, _)| *i != from) {
            assert_eq!(read_lines(client, 1), [said.as_str()], "client {i}");
        }
    }
    running.stop().unwrap();
}

#[test]
fn a_graceful_stop_answers_messages_in_flight_on_every_loop() {
    // Longer than the test waits: the stop must end because every loop is done, not at the
    // end of the grace period.
    let builder = Builder::new().grace_period(Duration::from_secs(60));
    let (running, _release, _started) = where_server(builder, 2);
    let mut clients: Vec<TcpStream> = (0..10).map(|_| tcp_client(running.addr())).collect();
    let names: Vec<String> = clients.iter_mut().map(loop_of).collect();
    assert_eq!(distinct(&names).len(), 2, "{names:?}");
    for client in &mut clients {
        client.write_all(b"half").unwrap();
    }
    running.handle.shutdown();
    // The rest of each line comes after the stop has begun.
    std::thread::sleep(Duration::from_millis(300));
    for client in &mut clients {
        client.write_all(b"-way\n").unwrap();
    }
    for (i, client) in clients.iter().enumerate() {
        assert_eq!(read_lines(client, 1), [format!("{} HALF-WAY", names[i])]);
        assert!(
            closed_without_reply(client),
            "client {i}: closed once answered"
        );
    }
    running.stop().unwrap();
}

#[cfg(feature = "proxy")]
#[test]
fn with_the_proxy_protocol_every_loop_sees_the_client() {
    let peer = message_handler(|_line, reply| {
        let peer = reply.peer_addr().clone();
        writeln!(reply, "{} {peer}", this_thread())
    });
    let server = Builder::new()
        .proxy_protocol(socketserver::proxy::ProxyProtocol::V1)
        .trusted_proxies(["127.0.0.1"])
        .messages(Lines::new(), peer)
        .loops(2)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let mut clients: Vec<TcpStream> = (0..4).map(|_| tcp_client(running.addr())).collect();
    let mut loops = BTreeSet::new();
    for (i, client) in clients.iter_mut().enumerate() {
        write!(
            client,
            "PROXY TCP4 203.0.113.{i} 127.0.0.1 4000{i} 80\r\nwho\n"
        )
        .unwrap();
        let line = read_lines(client, 1).remove(0);
        let (thread, seen) = line.split_once(' ').unwrap();
        assert_eq!(seen, format!("203.0.113.{i}:4000{i}"));
        loops.insert(thread.to_string());
    }
    assert_eq!(loops.len(), 2, "{loops:?}");
    running.stop().unwrap();
}

#[test]
fn zero_loops_means_one_per_cpu() {
    let server = Builder::new()
        .thread_name("percpu")
        .messages(Lines::new(), where_handler_unused())
        .loops(0)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut client = tcp_client(running.addr());
    loop_of(&mut client);
    // Each loop names its thread as it starts: wait for the last (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    while threads_named("percpu-message") < cpus && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(threads_named("percpu-message"), cpus);
    running.stop().unwrap();
}

fn where_handler_unused() -> impl MessageHandler {
    let (started, _) = crossbeam_channel::unbounded();
    let (_, release) = crossbeam_channel::unbounded();
    where_handler(started, release)
}

#[test]
fn several_loops_with_a_pool_are_refused() {
    let pooled_workers = Prefork::new(2).worker_mode(Pool::new(2));
    let cases: [(AnyMode, usize); 3] = [
        (Pool::new(2).into(), 2),
        (Pool::new(2).into(), 0),
        (pooled_workers.into(), 2),
    ];
    for (mode, loops) in cases {
        let name = format!("{mode:?}, loops({loops})");
        let err = Builder::new()
            .mode(mode)
            .messages(Lines::new(), where_handler_unused())
            .loops(loops)
            .bind_tcp("127.0.0.1:0")
            .expect_err(&name);
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name}");
        assert!(err.to_string().contains("loops"), "{name}: {err}");
    }
    // One loop with a pool, and several on their own, are fine.
    for (mode, loops) in [(AnyMode::from(Pool::new(2)), 1), (Single.into(), 3)] {
        let server = Builder::new()
            .mode(mode)
            .messages(Lines::new(), where_handler_unused())
            .loops(loops)
            .bind_tcp("127.0.0.1:0");
        assert!(server.is_ok(), "loops({loops})");
    }
}
