//! Which part this process plays: the program the user started, or a child that a process-based
//! mode started by re-executing it.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// The private environment variable that tells a re-executed program its role. Its value is
/// `request:<parent pid>:<fd>` or `worker:<parent pid>:<fd>:<index>`.
pub(crate) const ROLE_VAR: &str = "SOCKETSERVER_PROCESS_ROLE";

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

impl Role {
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

    /// Parses a role value; `None` unless it is well formed and names `parent` as the parent.
    fn decode(value: &str, parent: u32) -> Option<Role> {
        let mut parts = value.split(':');
        let kind = parts.next()?;
        let named_parent: u32 = parts.next()?.parse().ok()?;
        let fd: RawFd = parts.next()?.parse().ok()?;
        if named_parent != parent || fd < 0 {
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
            // SAFETY: getppid has no preconditions and cannot fail.
            let parent = unsafe { libc::getppid() } as u32;
            // The parent's pid must match: a program this child runs in turn (a handler spawning
            // the same binary) inherits the variable but has another parent, so it is not a worker.
            let role = Role::decode(&value, parent);
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
pub fn is_worker() -> bool {
    detected().is_some()
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
    fn roles_round_trip_for_their_own_parent_only() {
        for role in [Role::Request { fd: 7 }, Role::Worker { fd: 4, index: 2 }] {
            let value = role.encode(1234);
            assert_eq!(Role::decode(&value, 1234), Some(role));
            assert_eq!(Role::decode(&value, 999), None, "another parent's child");
        }
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
            assert_eq!(Role::decode(value, 1), None, "{value:?}");
        }
    }

    #[test]
    fn the_test_process_is_not_a_worker() {
        assert!(!is_worker());
        assert!(claim(None).unwrap().is_none());
    }
}
