//! Closing a listening TCP socket without resetting anyone: first stop new connections from
//! completing, then take what is queued, then close.
//!
//! A listening socket closed with connections in its accept queue makes the kernel reset them:
//! clients whose handshake finished a moment earlier see their connection accepted and then
//! reset. A graceful stop takes the queue first (`drain_backlog`), but a handshake can complete
//! between the last look at the queue and the close. So the stop first attaches a socket filter
//! to the listener (Linux) that drops every segment with the SYN flag: new connection attempts go
//! unanswered, while handshakes already under way complete (their last ACK passes) and join the
//! queue, which the stop then drains; after that it stays empty. A client that tried meanwhile
//! sends its SYN again a second later and finds the port closed (refused) or a restarted server
//! listening: a delay, never an accepted connection that is reset. Accepted connections inherit
//! the filter, which drops nothing they are sent.
//!
//! Only for a socket this process bound and still owns: a socket passed by systemd outlives the
//! service, a binary upgrade hands it to the new program, and a prefork worker shares it with
//! the workers that go on; a filter on any of them would keep turning clients away after the stop.

use socket2::Socket;

/// How long after the door shut a handshake already under way may still complete: a stop keeps
/// looking at the queue until it has been empty this long. Covers the round trip of a local
/// network; a client farther away that was mid-handshake at that instant may still be reset.
pub(crate) const HANDSHAKES_SETTLE: std::time::Duration = std::time::Duration::from_millis(10);

/// Makes `listener` drop new connection attempts (segments with SYN set); handshakes under way
/// complete, and what is queued can still be accepted. Returns whether it did (not where socket
/// filters do not exist).
pub(crate) fn shut_the_door(listener: &Socket) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use socket2::SockFilter;
        // Classic BPF over the TCP header (where a TCP socket's filter starts):
        const LD_B_ABS: u16 = 0x30; // A = the byte at k
        const JSET_K: u16 = 0x45; // if A & k, skip jt instructions, else jf
        const RET_K: u16 = 0x06; // keep k bytes of the segment (0: drop it)
        const TCP_FLAGS: u32 = 13;
        const SYN: u32 = 0x02;
        let refuse_syns = [
            SockFilter::new(LD_B_ABS, 0, 0, TCP_FLAGS),
            SockFilter::new(JSET_K, 0, 1, SYN),
            SockFilter::new(RET_K, 0, 0, 0),
            SockFilter::new(RET_K, 0, 0, u32::MAX),
        ];
        match listener.attach_filter(&refuse_syns) {
            Ok(()) => true,
            Err(e) => {
                // The stop goes on as before: a connection may still be reset at the close.
                log::debug!("cannot stop new connections before closing the listener: {e}");
                false
            }
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = listener;
        false
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::time::Duration;

    #[test]
    fn a_shut_door_turns_new_connections_away_but_keeps_the_queued_ones_working() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let mut queued = TcpStream::connect(addr).unwrap();
        let socket = Socket::from(listener);
        assert!(shut_the_door(&socket));
        // The SYN is dropped: no answer within the timeout (the first retry comes after 1 s).
        let late = TcpStream::connect_timeout(&addr, Duration::from_millis(300));
        assert!(late.is_err(), "a new connection got through");
        let listener = TcpListener::from(socket);
        let (mut accepted, _) = listener.accept().expect("the queued connection");
        assert_eq!(
            accepted.peer_addr().unwrap(),
            queued.local_addr().unwrap(),
            "it is the one queued before the door shut"
        );
        // Its segments pass both ways.
        accepted
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        queued
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        queued.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        accepted.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
        accepted.write_all(b"pong").unwrap();
        queued.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"pong");
    }
}
