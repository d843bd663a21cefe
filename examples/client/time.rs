//! `client time`: asks `time_server` for the time.

use crate::{connect, input};

/// Sends the words as one `strftime` format (none: an empty datagram, which the server answers in
/// `%Y-%m-%d %X`) and prints the answer.
pub fn run(addr: &str, args: &[String]) -> Result<(), String> {
    let socket = connect::udp(addr)?;
    connect::send(&socket, addr, args.join(" ").as_bytes())?;
    input::print_line(&connect::receive(&socket, addr)?)
}
