//! A program started by a binary upgrade (SIGUSR2 to a [`Prefork`](crate::Prefork) parent). The
//! old program passed its listening socket by the socket-activation convention, marked with a
//! private variable (`process::UPGRADE_VAR`). Whatever the new program's command line asks to
//! bind, its Prefork server serves that socket, so the upgrade keeps the address; a Prefork server
//! of another kind is an error, so the new program fails and the old one goes on serving. Until
//! the socket is taken, the program does not report `READY=1`, which is what lets the old program
//! stop.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;

use socket2::{SockAddr, Socket};

use super::listen::{self, Shape, Want};

/// What a `bind_*` method was asked to bind.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Asked<'a> {
    /// The addresses `bind_tcp`/`bind_udp` resolved.
    Inet(&'a [SocketAddr]),
    /// The path of `bind_unix_stream`/`bind_unix_datagram`.
    Unix(&'a Path),
}

impl Asked<'_> {
    /// Whether the inherited socket's address is one of those asked for.
    fn is(&self, addr: &SockAddr) -> bool {
        match self {
            Asked::Inet(addrs) => addr.as_socket().is_some_and(|a| addrs.contains(&a)),
            Asked::Unix(path) => addr.as_pathname() == Some(*path),
        }
    }
}

impl fmt::Display for Asked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Asked::Inet([]) => f.write_str("no address"),
            Asked::Inet(addrs) => {
                let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                f.write_str(&addrs.join(" or "))
            }
            Asked::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// In a program started by a binary upgrade, for a Prefork server of kind `want` asked to bind
/// `asked`: the inherited socket, to serve instead (once: a later server binds as usual).
/// `Ok(None)` when the program was not started by an upgrade or the socket is taken already.
///
/// # Errors
///
/// `InvalidInput` when the inherited socket is not of kind `want` (a UDP server where the old
/// program served TCP, say), naming both: binding elsewhere would let the old program hand over
/// to a server nobody reaches.
pub(crate) fn take(want: Want, asked: &Asked<'_>) -> io::Result<Option<Socket>> {
    let mut taken = None;
    let socket = listen::take_upgraded(|upgraded, socket| {
        let inherited = describe_inherited(socket);
        if !Shape::of(socket).is_ok_and(|shape| shape.fits(want)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "this program was started by a binary upgrade (SIGUSR2 to process {}) to \
                     serve the socket it inherited, {inherited}, but its Prefork server asks for \
                     {} on {asked}: the new program must build the same kind of server as the \
                     one it replaces; the upgrade fails, and the old program goes on serving",
                    upgraded.parent,
                    want.noun(),
                ),
            ));
        }
        let same = socket.local_addr().is_ok_and(|local| asked.is(&local));
        taken = Some((upgraded.parent, inherited, same));
        Ok(())
    })?;
    if let Some((parent, inherited, same)) = taken {
        let instead = match same {
            true => String::new(),
            false => format!(" instead of binding {asked}"),
        };
        log::info!(
            "serving {inherited}, inherited from the program this one upgrades (pid {parent}){instead}"
        );
    }
    Ok(socket)
}

/// Whether this program was started by a binary upgrade and has not yet built the server that
/// serves the inherited socket: then it must not report `READY=1`, or the old program would
/// stop with nobody serving its address. Returns the old program's pid.
pub(crate) fn unclaimed() -> Option<u32> {
    listen::upgrade_unclaimed().map(|upgraded| upgraded.parent)
}

/// "a listening TCP socket on 127.0.0.1:8080".
fn describe_inherited(socket: &Socket) -> String {
    let what = Shape::of(socket).map_or_else(|_| "a socket".to_string(), Shape::describe);
    match socket.local_addr() {
        Ok(addr) => format!("{what} on {}", show(&addr)),
        Err(_) => what,
    }
}

/// A socket address as the `listening on` lines print it.
fn show(addr: &SockAddr) -> String {
    if let Some(addr) = addr.as_socket() {
        return addr.to_string();
    }
    match addr.as_pathname() {
        Some(path) => path.display().to_string(),
        None => "an unnamed Unix socket".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asked_addresses_are_shown_and_compared() {
        let addrs: Vec<SocketAddr> = vec![
            "127.0.0.1:0".parse().unwrap(),
            "[::1]:8080".parse().unwrap(),
        ];
        let asked = Asked::Inet(&addrs);
        assert_eq!(asked.to_string(), "127.0.0.1:0 or [::1]:8080");
        assert!(asked.is(&SockAddr::from(addrs[1])));
        let other: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(!asked.is(&SockAddr::from(other)));
        let path = Path::new("/run/app.sock");
        let asked = Asked::Unix(path);
        assert_eq!(asked.to_string(), "/run/app.sock");
        assert!(asked.is(&SockAddr::unix(path).unwrap()));
        assert!(!asked.is(&SockAddr::unix("/run/other.sock").unwrap()));
    }

    #[test]
    fn an_inherited_socket_is_described_with_its_address() {
        let tcp = Socket::from(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = tcp.local_addr().unwrap().as_socket().unwrap();
        assert_eq!(
            describe_inherited(&tcp),
            format!("a listening TCP socket on {addr}")
        );
    }

    #[test]
    fn the_test_process_was_not_upgraded() {
        assert_eq!(unclaimed(), None);
        assert!(take(Want::Tcp, &Asked::Inet(&[])).unwrap().is_none());
    }
}
