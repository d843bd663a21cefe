//! `client chat`: a participant in the `chat` room; `client chat-tcp`: the same in the room that
//! `chat --api message` serves over TCP, a line per message.
//!
//! Joins with an empty message, then sends each message and waits for the server's reply to it,
//! while a second thread prints everything that arrives: the replies, and the other participants'
//! messages as soon as they are relayed. The server's protocol tells them apart: a relayed message
//! starts with `[ip:port]`, a reply never starts with `[`.

use std::io::{self, BufRead, BufReader, Write};
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
    let receive = move || connect::recv_datagram(&listener).map(Some);
    converse(addr, args, receive, |message| {
        connect::send(&socket, addr, message)
    })
}

/// [`run`] over TCP: every message a line, every datagram of the UDP room a line back.
pub fn run_tcp(addr: &str, args: &[String]) -> Result<(), String> {
    let mut stream = connect::tcp(addr)?;
    let listener = stream
        .try_clone()
        .map_err(|e| format!("cannot share the connection with the listening thread: {e}"))?;
    let mut lines = BufReader::new(listener);
    // What arrived of a line before a read timed out: the next read goes on from there.
    let mut partial = Vec::new();
    let receive = move || next_line(&mut lines, &mut partial);
    converse(addr, args, receive, |message| {
        stream
            .write_all(&[message, b"\n"].concat())
            .map_err(|e| format!("cannot send to {addr}: {}", connect::describe(&e)))
    })
}

/// The next line (without its end), `None` once the server has closed the connection.
fn next_line(lines: &mut impl BufRead, partial: &mut Vec<u8>) -> io::Result<Option<Vec<u8>>> {
    if lines.read_until(b'\n', partial)? == 0 && partial.is_empty() {
        return Ok(None);
    }
    let mut line = std::mem::take(partial);
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(Some(line))
}

/// Sends the empty message that joins, then every message, each once the one before is answered;
/// `receive` gives what arrives, on a thread of its own.
fn converse(
    addr: &str,
    args: &[String],
    receive: impl FnMut() -> io::Result<Option<Vec<u8>>> + Send + 'static,
    mut send: impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<(), String> {
    let (replies_tx, replies) = mpsc::channel();
    let target = addr.to_string();
    // Not joined: it blocks in `receive` until the process ends, which is what ends it.
    thread::spawn(move || listen(receive, &target, &replies_tx));

    send(b"")?;
    wait_for_reply(&replies, addr)?;
    for message in input::messages(args, "") {
        send(&message?)?;
        wait_for_reply(&replies, addr)?;
    }
    Ok(())
}

/// Prints every message; tells the main thread about each reply (or why none can come).
fn listen(
    mut receive: impl FnMut() -> io::Result<Option<Vec<u8>>>,
    addr: &str,
    replies: &Sender<Result<(), String>>,
) {
    loop {
        match receive() {
            Ok(None) => {
                let _ = replies.send(Err(format!("{addr} closed the connection")));
                return;
            }
            Ok(Some(message)) => {
                let printed = input::print_line(&message);
                if let Err(e) = printed {
                    let _ = replies.send(Err(e));
                    return;
                }
                if message.starts_with(b"[") {
                    continue; // someone else's message
                }
                let reply = if message.starts_with(b"error: ") {
                    Err(format!(
                        "{addr} answered: {}",
                        String::from_utf8_lossy(&message)
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

/// Waits for the reply to the message just sent.
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
