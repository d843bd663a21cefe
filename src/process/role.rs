//! Which part this process plays: the program the user started, or a child that a process-based
//! mode started by re-executing it.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// The private environment variable that tells a re-executed program its role. Its value is
/// `request:<parent pid>:<fd>` or `worker:<parent pid>:<fd>:<index>` (the pid is for log lines).
pub(crate) const ROLE_VAR: &str = "SOCKETSERVER_PROCESS_ROLE";

/// Where socket activation puts the first passed socket (`SD_LISTEN_FDS_START`), and so where a
/// binary upgrade passes the listening socket.
pub(super) const FIRST_PASSED_FD: RawFd = 3;

/// The private environment variable that marks a program started by an upgrade. Its value is
/// `<old parent pid>:<fd>` (the pid is for messages; the descriptor is always 3). Set by
/// `upgrade`, read by socket activation (`systemd::listen`).
pub(crate) const UPGRADE_VAR: &str = "SOCKETSERVER_UPGRADE";

/// The value of [`UPGRADE_VAR`] for a new program started by `parent`.
pub(super) fn mark(parent: u32) -> String {
    format!("{parent}:{FIRST_PASSED_FD}")
}

/// Parses a value of [`UPGRADE_VAR`] into the old parent's pid and the inherited descriptor;
/// `None` unless it is well formed.
pub(crate) fn decode_mark(value: &str) -> Option<(u32, RawFd)> {
    let (parent, fd) = value.split_once(':')?;
    let fd: RawFd = fd.parse().ok()?;
    (fd >= 0).then_some((parent.parse().ok()?, fd))
}

/// What a child was started to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// [`Process`](crate::Process) mode: handle the one request whose socket is `fd` (a
    /// connection, or the server's datagram socket), described on stdin; then exit.
    Request { fd: RawFd },
    /// [`Prefork`](crate::Prefork) mode: serve the shared server socket `fd` until stdin (the
    /// lifeline from the parent) reaches end-of-file; then exit.
    Worker { fd: RawFd, index: usize },
}

/// The two process-based modes, as a server's mode declares itself. (Public only inside the
/// crate's sealed traits; not reachable by users.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessKind {
    PerRequest,
    Prefork,
}

/// Whether `fd` is open in this process without close-on-exec, as an inherited socket is.
pub(crate) fn inherited(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags; it fails with EBADF if it is not open.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    flags != -1 && flags & libc::FD_CLOEXEC == 0
}

impl Role {
    fn fd(self) -> RawFd {
        match self {
            Role::Request { fd } | Role::Worker { fd, .. } => fd,
        }
    }

    fn kind(self) -> ProcessKind {
        match self {
            Role::Request { .. } => ProcessKind::PerRequest,
            Role::Worker { .. } => ProcessKind::Prefork,
        }
    }

    pub(crate) fn encode(self, parent: u32) -> String {
        match self {
            Role::Request { fd } => format!("request:{parent}:{fd}"),
            Role::Worker { fd, index } => format!("worker:{parent}:{fd}:{index}"),
        }
    }

    /// Parses a role value; `None` unless it is well formed.
    fn decode(value: &str) -> Option<Role> {
        let mut parts = value.split(':');
        let kind = parts.next()?;
        let _parent: u32 = parts.next()?.parse().ok()?;
        let fd: RawFd = parts.next()?.parse().ok()?;
        if fd < 0 {
            return None;
        }
        let role = match kind {
            "request" => Role::Request { fd },
            "worker" => Role::Worker {
                fd,
                index: parts.next()?.parse().ok()?,
            },
            _ => return None,
        };
        parts.next().is_none().then_some(role)
    }
}

struct Detected {
    role: Role,
    taken: AtomicBool,
}

fn detected() -> Option<&'static Detected> {
    static DETECTED: OnceLock<Option<Detected>> = OnceLock::new();
    DETECTED
        .get_or_init(|| {
            let value = std::env::var(ROLE_VAR).ok()?;
            // The variable alone is not proof: a program a handler runs in turn inherits it too.
            // The inherited socket is: it was opened without close-on-exec for this process only.
            // (Not the parent's pid: a child whose parent died as it started has another parent,
            // and must still know it is a child, not become a server of its own.)
            let role = Role::decode(&value).filter(|role| inherited(role.fd()));
            if role.is_none() {
                log::debug!("ignoring {ROLE_VAR}={value:?}: not addressed to this process");
            }
            role.map(|role| Detected {
                role,
                taken: AtomicBool::new(false),
            })
        })
        .as_ref()
}

/// Whether this process is a child started by a process-based mode ([`Process`](crate::Process)
/// or [`Prefork`](crate::Prefork)) rather than the program the user ran.
///
/// Children re-execute the same program with the same arguments, so everything `main` does
/// before building the server runs again in each child. Use this to skip what only the parent
/// should do: printing the address, writing a pid file, starting other servers.
///
/// ```
/// if !socketserver::is_worker() {
///     println!("this line is printed once, by the parent");
/// }
/// ```
#[must_use]
pub fn is_worker() -> bool {
    detected().is_some()
}

/// The descriptor this child inherited from its parent (`None` in the program the user ran).
pub(crate) fn inherited_fd() -> Option<RawFd> {
    detected().map(|detected| detected.role.fd())
}

/// The role this process must take when a server is built with a mode of `kind` (`None` for the
/// thread-based modes). `Ok(None)`: bind normally. The role is handed out once.
pub(crate) fn claim(kind: Option<ProcessKind>) -> io::Result<Option<Role>> {
    let Some(detected) = detected() else {
        return Ok(None);
    };
    if kind != Some(detected.role.kind()) || detected.taken.swap(true, Ordering::AcqRel) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this process is a child started by socketserver's process-based mode to serve one \
             server's inherited socket, so it must not bind another server; build other servers \
             only when `socketserver::is_worker()` is false",
        ));
    }
    Ok(Some(detected.role))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip() {
        for role in [Role::Request { fd: 7 }, Role::Worker { fd: 4, index: 2 }] {
            assert_eq!(Role::decode(&role.encode(1234)), Some(role));
        }
    }

    #[test]
    fn only_an_open_descriptor_without_close_on_exec_counts_as_inherited() {
        use std::os::fd::AsRawFd;
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let fd = socket.as_raw_fd();
        assert!(!inherited(fd), "std opens sockets close-on-exec");
        // SAFETY: clears the flag on a descriptor this test owns.
        assert_ne!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, -1);
        assert!(inherited(fd));
        drop(socket);
        assert!(!inherited(fd), "a closed descriptor");
    }

    #[test]
    fn malformed_roles_are_ignored() {
        for value in [
            "",
            "request",
            "request:1",
            "request:1:x",
            "request:1:-3",
            "worker:1:3",
            "request:1:3:extra",
            "other:1:3",
        ] {
            assert_eq!(Role::decode(value), None, "{value:?}");
        }
    }

    #[test]
    fn the_test_process_is_not_a_worker() {
        assert!(!is_worker());
        assert!(claim(None).unwrap().is_none());
    }

    #[test]
    fn the_upgrade_mark_round_trips_and_garbage_is_ignored() {
        assert_eq!(decode_mark(&mark(1234)), Some((1234, FIRST_PASSED_FD)));
        for value in [
            "", "1234", "1234:", ":3", "x:3", "1234:-3", "1234:3:4", "1234:x",
        ] {
            assert_eq!(decode_mark(value), None, "{value:?}");
        }
    }
}
