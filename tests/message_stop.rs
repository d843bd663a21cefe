//! A message server's graceful stop against clients caught in the middle of it: a message in
//! flight when the stop begins is received, handled and answered; whole messages already
//! buffered are answered; a connection accepted just before (or during) the stop has its first
//! message waited for; idle connections close at once, and the stop does not linger over them.
#![cfg(feature = "message")]

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::message::{read_lines, upper_lines, Running};
use common::{closed_without_reply, recv, tcp_client, WAIT};
use socketserver::message::{message_handler, Lines};
use socketserver::{AnyMode, Builder, Pool, Single};

const GRACE: Duration = Duration::from_secs(10);

fn modes() -> [(&'static str, AnyMode); 2] {
    [("single", Single.into()), ("pool", Pool::new(2).into())]
}

fn upper_server(mode: AnyMode) -> Running {
    let server = Builder::new()
        .mode(mode)
        .grace_period(GRACE)
        .messages(Lines::new(), upper_lines())
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    Running::start(server)
}

/// A client that has had one exchange, so the server counts it as idle, not new.
fn used_client(running: &Running) -> TcpStream {
    let mut client = tcp_client(running.addr());
    client.write_all(b"hi\n").unwrap();
    assert_eq!(read_lines(&client, 1), ["HI"]);
    client
}

#[test]
fn a_message_in_flight_when_the_stop_begins_is_answered() {
    for (name, mode) in modes() {
        let running = upper_server(mode);
        let mut clients: Vec<TcpStream> = (0..20).map(|_| used_client(&running)).collect();
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
            assert_eq!(read_lines(client, 1), ["HALF-WAY"], "{name}: client {i}");
            assert!(closed_without_reply(client), "{name}: closed once answered");
        }
        running.stop().unwrap();
    }
}

#[test]
fn whole_messages_buffered_behind_a_running_handler_are_answered() {
    let (started_tx, started) = crossbeam_channel::unbounded();
    let (release_tx, release) = crossbeam_channel::unbounded::<()>();
    let handler = message_handler(move |line, reply| {
        if line == b"slow" {
            let _ = started_tx.send(());
            let _ = release.recv_timeout(WAIT);
        }
        reply.write_all(&line.to_ascii_uppercase())?;
        reply.write_all(b"\n")
    });
    let server = Builder::new()
        .mode(Pool::new(2))
        .grace_period(GRACE)
        .messages(Lines::new(), handler)
        .bind_tcp("127.0.0.1:0")
        .unwrap();
    let running = Running::start(server);
    let mut client = tcp_client(running.addr());
    client.write_all(b"slow\n").unwrap();
    recv(&started, "the slow handler to start");
    // Pipelined behind the running handler: buffered by the loop when the stop begins.
    client.write_all(b"one\ntwo\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    running.handle.shutdown();
    release_tx.send(()).unwrap();
    assert_eq!(read_lines(&client, 3), ["SLOW", "ONE", "TWO"]);
    assert!(closed_without_reply(&client));
    running.stop().unwrap();
}

#[test]
fn a_new_connection_has_its_first_message_answered_during_the_stop() {
    for (name, mode) in modes() {
        let running = upper_server(mode);
        // Accepted, but nothing sent yet when the stop begins: not idle, only early.
        let mut clients: Vec<TcpStream> = (0..10).map(|_| tcp_client(running.addr())).collect();
        std::thread::sleep(Duration::from_millis(100));
        running.handle.shutdown();
        std::thread::sleep(Duration::from_millis(200));
        for (i, client) in clients.iter_mut().enumerate() {
            writeln!(client, "first {i}").unwrap();
        }
        for (i, client) in clients.iter().enumerate() {
            assert_eq!(read_lines(client, 1), [format!("FIRST {i}")], "{name}");
            assert!(closed_without_reply(client), "{name}: closed once answered");
        }
        running.stop().unwrap();
    }
}

#[test]
fn idle_connections_close_at_once_without_lingering() {
    for (name, mode) in modes() {
        let running = upper_server(mode);
        let clients: Vec<TcpStream> = (0..5).map(|_| used_client(&running)).collect();
        let began = Instant::now();
        running.handle.shutdown();
        for client in &clients {
            assert!(
                closed_without_reply(client),
                "{name}: an idle client is closed"
            );
        }
        running.stop().unwrap();
        // Lingering over a connection takes up to 2 s, the grace period 10 s: an idle client
        // must cost neither.
        let took = began.elapsed();
        assert!(
            took < Duration::from_millis(1500),
            "{name}: the stop took {took:?}"
        );
    }
}
