//! `client chat`: a participant in the `chat` room.
//!
//! Joins with an empty datagram, then sends each message and waits for the server's reply to it,
//! while a second thread prints everything that arrives: the replies, and the other participants'
//! messages as soon as they are relayed. The server's protocol tells them apart: a relayed message
//! starts with `[ip:port]`, a reply never starts with `[`.

use std::net::UdpSocket;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;

use crate::{connect, input};

/// Joins, sends every message (the words given, or the lines of stdin), and returns once the last
/// one is answered. A full room, or a server that stops answering, is an error.
pub fn run(addr: &str, args: &[String]) -> Result<(), String> {
    let socket = connect::udp(addr)?;
    let listener = socket
        .try_clone()
        .map_err(|e| format!("cannot share the socket with the listening thread: {e}"))?;
    let (replies_tx, replies) = mpsc::channel();
    let target = addr.to_string();
    // Not joined: it blocks in `recv` until the process ends, which is what ends it.
    thread::spawn(move || listen(&listener, &target, &replies_tx));

    connect::send(&socket, addr, b"")?;
    wait_for_reply(&replies, addr)?;
    for message in input::messages(args, "") {
        connect::send(&socket, addr, &message?)?;
        wait_for_reply(&replies, addr)?;
    }
    Ok(())
}

/// Prints every datagram; tells the main thread about each reply (or why none can come).
fn listen(socket: &UdpSocket, addr: &str, replies: &Sender<Result<(), String>>) {
    loop {
        match connect::recv_datagram(socket) {
            Ok(datagram) => {
                let printed = input::print_line(&datagram);
                if let Err(e) = printed {
                    let _ = replies.send(Err(e));
                    return;
                }
                if datagram.starts_with(b"[") {
                    continue; // someone else's message
                }
                let reply = if datagram.starts_with(b"error: ") {
                    Err(format!(
                        "{addr} answered: {}",
                        String::from_utf8_lossy(&datagram)
                    ))
                } else {
                    Ok(())
                };
                if replies.send(reply).is_err() {
                    return; // the main thread is done
                }
            }
            // A quiet room is normal: the main thread times out the replies it waits for.
            Err(e) if connect::is_timeout(&e) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = replies.send(Err(connect::no_reply(addr, &e)));
                return;
            }
        }
    }
}

/// Waits for the reply to the datagram just sent.
fn wait_for_reply(replies: &Receiver<Result<(), String>>, addr: &str) -> Result<(), String> {
    match replies.recv_timeout(connect::TIMEOUT) {
        Ok(reply) => reply,
        Err(RecvTimeoutError::Timeout) => Err(format!(
            "no reply from {addr} within {} s (is the server running?)",
            connect::TIMEOUT.as_secs()
        )),
        Err(RecvTimeoutError::Disconnected) => {
            Err(format!("stopped listening to {addr} (see above)"))
        }
    }
}
