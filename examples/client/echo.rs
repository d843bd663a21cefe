//! `client echo`: the Python tutorial's TCP echo client, for `echo_upper`.

use std::io::{self, Read, Write};

use crate::{connect, input};

/// Sends each message on one connection and prints the answer.
///
/// Upper-casing keeps the length, so the answer is complete once as many bytes have come back as
/// were sent — however TCP splits them (the tutorial's single `recv(1024)` can print half an
/// answer).
pub fn run(addr: &str, args: &[String]) -> Result<(), String> {
    let mut stream = connect::tcp(addr)?;
    for message in input::messages(args, ">>: ") {
        let message = message?;
        stream
            .write_all(&message)
            .map_err(|e| format!("cannot send to {addr}: {}", connect::describe(&e)))?;
        let mut answer = vec![0u8; message.len()];
        stream.read_exact(&mut answer).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => format!("{addr} closed the connection mid-answer"),
            _ => connect::no_reply(addr, &e),
        })?;
        input::print_line(&answer)?;
    }
    Ok(())
}
