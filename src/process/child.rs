//! The child's side: taking over the inherited socket, and hearing from the parent on stdin.

use std::io::{self, Read};
use std::os::fd::{FromRawFd, RawFd};
use std::time::Duration;

use socket2::{Socket, Type};

use super::handoff::Received;
use crate::control::ServerHandle;

/// Takes ownership of the inherited descriptor `fd`, checking that it is a socket of type `ty`.
pub(crate) fn adopt_socket(fd: RawFd, ty: Type) -> io::Result<Socket> {
    let not_inherited = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("descriptor {fd} handed over by the parent process {why}"),
        )
    };
    // SAFETY: the role that names `fd` is only accepted when `fd` is open without close-on-exec
    // (`role::inherited`), it was inherited for this purpose, and nothing else in this process owns
    // it (the role is handed out once).
    let socket = unsafe { Socket::from_raw_fd(fd) };
    match socket.r#type() {
        Ok(actual) if actual == ty => {}
        Ok(actual) => {
            std::mem::forget(socket);
            return Err(not_inherited(format!(
                "is a socket of type {actual:?}, not {ty:?}"
            )));
        }
        Err(e) => {
            std::mem::forget(socket);
            return Err(not_inherited(format!("is not a socket: {e}")));
        }
    }
    // Close-on-exec again, so programs a handler runs do not inherit the connection.
    socket.set_cloexec(true)?;
    Ok(socket)
}

/// Reads what the parent wrote on stdin for a per-request child.
pub(crate) fn read_handoff(max_datagram: usize) -> io::Result<Received> {
    Received::read_from(&mut io::stdin().lock(), max_datagram)
}

/// Shuts `server` down when stdin — the lifeline pipe from the parent — reaches end-of-file: the
/// parent closed it to stop this worker (or, for a per-request child, because the server is
/// stopping), or the parent died. Then, `drain_timeout` later, ends the
/// process if it is still running: the serving thread may be held in a handler (a `Single` worker
/// whose client holds an idle connection) and never get back to see the shutdown.
pub(crate) fn lifeline_watch(
    server: ServerHandle,
    drain_timeout: Option<Duration>,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("socketserver-lifeline".to_string())
        .spawn(move || {
            let mut stdin = io::stdin().lock();
            let mut buf = [0u8; 64];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        log::warn!("lifeline from the parent process failed: {e}; stopping");
                        break;
                    }
                }
            }
            log::debug!("lifeline closed: process {} stopping", std::process::id());
            match drain_timeout {
                Some(_) => server.shutdown(),
                // A per-request child: only its handler is told, quietly (there may be many).
                None => {
                    server.shared.stop.request();
                }
            }
            if let Some(timeout) = drain_timeout {
                std::thread::sleep(timeout);
                log::warn!(
                    "worker {}: {} request(s) still running {timeout:?} after its lifeline \
                     closed (the drain timeout); exiting",
                    std::process::id(),
                    server.stats().active
                );
                server.shared.flush_failures();
                std::process::exit(0);
            }
        })
        .map(|_| ())
}
