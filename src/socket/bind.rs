//! Creating, configuring and binding server sockets through `socket2`.
//!
//! Every function here either returns a ready socket or drops what it created, so a failed bind
//! never leaks a descriptor.

use std::fmt::Display;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

use socket2::{Domain, SockAddr, Socket, Type};

use super::options::BindOptions;
use super::unix_path::remove_stale;

/// Adds what we were doing to an error, keeping its kind so callers can still match on it.
pub(crate) fn context(err: io::Error, what: impl Display) -> io::Error {
    io::Error::new(err.kind(), format!("{what}: {err}"))
}

/// Resolves the addresses to bind a socket of type `ty` to, as `std::net::TcpListener::bind`
/// does.
pub(crate) fn resolve(addrs: impl ToSocketAddrs, ty: Type) -> io::Result<Vec<SocketAddr>> {
    Ok(addrs
        .to_socket_addrs()
        .map_err(|e| {
            context(
                e,
                format!("cannot resolve the {} address to bind", label(ty)),
            )
        })?
        .collect())
}

fn label(ty: Type) -> &'static str {
    if ty == Type::STREAM {
        "TCP"
    } else {
        "UDP"
    }
}

/// Binds the first of `candidates` that works, like `std::net::TcpListener::bind`.
pub(crate) fn bind_inet(
    candidates: &[SocketAddr],
    ty: Type,
    options: &BindOptions,
) -> io::Result<Socket> {
    let label = label(ty);
    let mut last_error = None;
    for &addr in candidates {
        match bind_one(addr, ty, options) {
            Ok(socket) => return Ok(socket),
            Err(e) => {
                last_error = Some(context(e, format!("cannot bind {label} socket to {addr}")));
            }
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("no address to bind the {label} socket to"),
        )
    }))
}

fn bind_one(addr: SocketAddr, ty: Type, options: &BindOptions) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), ty, None)?;
    // Stream servers default to SO_REUSEADDR so a restart is not refused while old connections sit
    // in TIME_WAIT. Datagram servers default to off: on Linux it would let a second server bind the
    // same port and silently split the traffic instead of failing with "address in use".
    let reuse_address = options.reuse_address.unwrap_or(ty == Type::STREAM);
    if reuse_address {
        socket.set_reuse_address(true)?;
    }
    if options.reuse_port {
        set_reuse_port(&socket)?;
    }
    if let (SocketAddr::V6(_), Some(only_v6)) = (addr, options.only_v6) {
        socket.set_only_v6(only_v6)?;
    }
    socket.bind(&SockAddr::from(addr))?;
    if ty == Type::STREAM {
        socket.listen(backlog(options.backlog))?;
    }
    Ok(socket)
}

#[cfg(not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin")))]
fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

#[cfg(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))]
fn set_reuse_port(_socket: &Socket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "SO_REUSEPORT is not available on this platform",
    ))
}

/// Binds a Unix-domain socket at `path`.
pub(crate) fn bind_unix(path: &Path, ty: Type, options: &BindOptions) -> io::Result<Socket> {
    if options.reuse_port {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "reuse_port (SO_REUSEPORT) applies to TCP and UDP sockets only, not Unix sockets",
        ));
    }
    let what = || format!("cannot bind Unix socket to {}", path.display());
    let addr = SockAddr::unix(path).map_err(|e| context(e, what()))?;
    let bind = || -> io::Result<Socket> {
        let socket = Socket::new(Domain::UNIX, ty, None)?;
        socket.bind(&addr)?;
        if ty == Type::STREAM {
            socket.listen(backlog(options.backlog))?;
        }
        Ok(socket)
    };
    match bind() {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
            // A server that was killed leaves its socket file behind: replace it if nothing
            // answers there, refuse if a server does or the path is not a socket at all.
            remove_stale(path, &addr, ty).map_err(|e| context(e, what()))?;
            bind().map_err(|e| context(e, what()))
        }
        bound => bound.map_err(|e| context(e, what())),
    }
}

fn backlog(requested: u32) -> i32 {
    i32::try_from(requested).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind_inet(addrs: impl ToSocketAddrs, ty: Type, options: &BindOptions) -> io::Result<Socket> {
        super::bind_inet(&resolve(addrs, ty)?, ty, options)
    }

    #[test]
    fn port_zero_reports_the_real_port() {
        let socket = bind_inet("127.0.0.1:0", Type::STREAM, &BindOptions::default()).unwrap();
        let port = socket.local_addr().unwrap().as_socket().unwrap().port();
        assert_ne!(port, 0);
    }

    #[test]
    fn a_taken_port_is_an_addr_in_use_error_that_names_the_address() {
        let taken = bind_inet("127.0.0.1:0", Type::STREAM, &BindOptions::default()).unwrap();
        let addr = taken.local_addr().unwrap().as_socket().unwrap();
        let err = bind_inet(addr, Type::STREAM, &BindOptions::default()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }

    #[test]
    fn reuse_port_on_a_unix_socket_is_refused_with_a_reason() {
        let options = BindOptions {
            reuse_port: true,
            ..BindOptions::default()
        };
        let err = bind_unix(Path::new("/nonexistent/x.sock"), Type::STREAM, &options).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("SO_REUSEPORT"));
    }

    #[test]
    fn udp_sockets_do_not_share_a_port_by_default() {
        let first = bind_inet("127.0.0.1:0", Type::DGRAM, &BindOptions::default()).unwrap();
        let addr = first.local_addr().unwrap().as_socket().unwrap();
        let second = bind_inet(addr, Type::DGRAM, &BindOptions::default());
        assert_eq!(second.unwrap_err().kind(), io::ErrorKind::AddrInUse);
    }
}
