//! `client udp`: the Python tutorial's UDP echo client, for `udp_upper`.

use crate::{connect, input};

/// Sends each message as one datagram and prints the datagram that answers it.
pub fn run(addr: &str, args: &[String]) -> Result<(), String> {
    let socket = connect::udp(addr)?;
    for message in input::messages(args, ">>: ") {
        connect::send(&socket, addr, &message?)?;
        input::print_line(&connect::receive(&socket, addr)?)?;
    }
    Ok(())
}
