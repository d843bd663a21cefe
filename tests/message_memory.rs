//! What peers can make a message server hold: a pool stops reading a connection whose replies
//! pile up unread (as `Single` does), and past the server-wide memory budget the connections
//! holding the most are closed while well-behaved ones go on being served. Over Unix sockets,
//! whose kernel buffers are small and fixed, so what a client manages to send is what the server
//! took.
#![cfg(feature = "message")]

mod common;

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;
use std::time::Duration;

use common::message::Running;
use common::{unix_client, TempSocketPath};
use socketserver::framing::Framing;
use socketserver::message::{
    Closed, ConnectionId, LengthPrefixed, MessageBuilder, MessageHandler, Reply,
};
use socketserver::{Address, AnyMode, Builder, Pool, Single};

const MIB: usize = 1024 * 1024;

fn framing() -> Framing {
    Framing::new().max_frame_len(16 * MIB as u64)
}

/// Echoes each frame and tells the test why its connection closed.
#[derive(Clone)]
struct Echo {
    closed: crossbeam_channel::Sender<Closed>,
}

impl MessageHandler for Echo {
    fn handle(&mut self, payload: &[u8], reply: &mut Reply<'_>) -> io::Result<()> {
        // The attackers' frames take a while, as real work does: their connections are busy on a
        // worker for long stretches, while more of their bytes arrive.
        if payload.starts_with(b"x") {
            std::thread::sleep(Duration::from_millis(1));
        }
        framing().write_frame(reply, payload)
    }
    fn closed(&mut self, _id: ConnectionId, _peer: &Address, reason: &Closed) {
        let _ = self.closed.send(reason.clone());
    }
}

fn echo_server(
    mode: AnyMode,
    options: impl FnOnce(MessageBuilder<LengthPrefixed, Echo>) -> MessageBuilder<LengthPrefixed, Echo>,
    path: &TempSocketPath,
) -> (Running, crossbeam_channel::Receiver<Closed>) {
    let (closed, reasons) = crossbeam_channel::unbounded();
    let builder = Builder::new()
        .mode(mode)
        .messages(LengthPrefixed::new(framing()), Echo { closed });
    let server = options(builder).bind_unix_stream(path).unwrap();
    (Running::start(server), reasons)
}

/// A well-behaved client: a few frames, each answered.
fn exchange(path: &TempSocketPath) {
    let mut client = unix_client(path);
    for i in 0..5 {
        let payload = format!("frame {i}");
        framing()
            .write_frame(&mut client, payload.as_bytes())
            .unwrap();
        let got = framing().read_frame(&mut client).unwrap();
        assert_eq!(got.as_deref(), Some(payload.as_bytes()));
    }
}

#[test]
fn a_pool_stops_reading_a_connection_whose_replies_are_not_read() {
    let path = TempSocketPath::new("unread-replies");
    let (running, _reasons) = echo_server(
        Pool::new(2).into(),
        |b| b.max_pending_output(64 * 1024),
        &path,
    );
    let mut frame = Vec::new();
    framing().write_frame(&mut frame, &[b'x'; 96]).unwrap();
    let burst = frame.repeat(100);
    // Clients that pipeline small frames as fast as they can and never read a reply.
    let hogs: Vec<JoinHandle<(usize, UnixStream)>> = (0..4)
        .map(|_| {
            let client = unix_client(&path);
            let burst = burst.clone();
            std::thread::spawn(move || {
                let mut client = client;
                client
                    .set_write_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                let mut sent = 0;
                while sent < 32 * MIB {
                    match client.write(&burst) {
                        Ok(n) => sent += n,
                        Err(_) => break, // stalled: the server stopped reading
                    }
                }
                (sent, client)
            })
        })
        .collect();
    let mut held = Vec::new();
    for hog in hogs {
        let (sent, client) = hog.join().unwrap();
        // A few hundred KiB in kernel buffers and the next batch; not the 16 MiB frame limit.
        assert!(
            sent < 4 * MIB,
            "a client that never reads got {sent} bytes into the server"
        );
        held.push(client);
    }
    exchange(&path);
    drop(held);
    running.stop().unwrap();
}

#[test]
fn past_the_memory_budget_the_connections_holding_the_most_are_closed() {
    for mode in [AnyMode::from(Single), AnyMode::from(Pool::new(2))] {
        let path = TempSocketPath::new("budget");
        let (running, reasons) = echo_server(mode, |b| b.max_buffered_memory(4 * MIB), &path);
        // Each announces a 16 MiB frame (allowed) and sends 1 MiB of it.
        let attackers: Vec<JoinHandle<UnixStream>> = (0..8)
            .map(|_| {
                let client = unix_client(&path);
                std::thread::spawn(move || {
                    let mut client = client;
                    let mut start = (16 * MIB as u32).to_be_bytes().to_vec();
                    start.resize(4 + MIB, b'a');
                    // A connection closed for the budget fails the write: that is the point.
                    let _ = client.write_all(&start);
                    client
                })
            })
            .collect();
        let attackers: Vec<UnixStream> = attackers.into_iter().map(|a| a.join().unwrap()).collect();
        let mut over_budget = 0;
        while let Ok(reason) = reasons.recv_timeout(Duration::from_millis(500)) {
            assert_eq!(reason, Closed::OverBudget, "only the budget closes them");
            over_budget += 1;
        }
        // 8 MiB and more held against a 4 MiB budget: at least half of them must go.
        assert!(over_budget >= 4, "{over_budget} closed for the budget");
        exchange(&path);
        drop(attackers);
        running.stop().unwrap();
    }
}
