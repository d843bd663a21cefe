//! The life of a Unix socket file: replacing one a dead server left behind when binding, and
//! removing ours when the server that created it closes.

use std::fs::{self, FileType};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use socket2::{Domain, SockAddr, Socket, Type};

/// Owns the file a Unix server bound. On drop it removes the file, but only if it is still the
/// socket we created (same device and inode): a newer server may have replaced it since.
#[derive(Debug)]
pub(crate) struct UnixPathGuard {
    path: PathBuf,
    identity: Option<(u64, u64)>,
}

impl UnixPathGuard {
    /// Records the identity of the socket file just bound at `path`.
    pub(crate) fn new(path: &Path) -> Self {
        UnixPathGuard {
            path: path.to_path_buf(),
            identity: identity(path),
        }
    }
}

impl UnixPathGuard {
    /// Leaves the file in place when dropped: another program serves the socket now (a binary
    /// upgrade handed it over), so the file is still the way to reach a server.
    pub(crate) fn keep(&mut self) {
        self.identity = None;
    }
}

fn identity(path: &Path) -> Option<(u64, u64)> {
    let meta = fs::symlink_metadata(path).ok()?;
    meta.file_type()
        .is_socket()
        .then(|| (meta.dev(), meta.ino()))
}

impl Drop for UnixPathGuard {
    fn drop(&mut self) {
        if self.identity.is_some() && identity(&self.path) == self.identity {
            if let Err(e) = fs::remove_file(&self.path) {
                log::warn!(
                    "could not remove Unix socket file {}: {e}",
                    self.path.display()
                );
            }
        }
    }
}

/// Called when binding `path` (as `addr`) failed with "address in use": removes the file if it is
/// a socket that nothing answers on (connecting to it is refused), the file of a server that was
/// killed before it could remove it. Anything else is an `AddrInUse` error saying why the path is
/// taken, and the file is left alone: a live server's socket, or a path that is not a socket
/// (a regular file, a directory, a link) — never deleted.
pub(crate) fn remove_stale(path: &Path, addr: &SockAddr, ty: Type) -> io::Result<()> {
    let in_use = |why: String| io::Error::new(io::ErrorKind::AddrInUse, why);
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        // Removed since the bind failed: nothing to replace.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("the path is taken and cannot be examined: {e}"),
            ))
        }
    };
    if !meta.file_type().is_socket() {
        return Err(in_use(format!(
            "the path exists and is {}, not a socket; it was left alone (remove it or choose \
             another path)",
            describe(meta.file_type())
        )));
    }
    match probe(addr, ty) {
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {}
        Ok(()) => {
            return Err(in_use(
                "a server is answering on this socket (stop it, or choose another path)"
                    .to_string(),
            ))
        }
        Err(e) => {
            return Err(in_use(format!(
                "the socket file is in use: connecting to it failed with \"{e}\" rather than \
                 being refused, so a server may be running there; it was left alone"
            )))
        }
    }
    // Remove only the file that was probed: another server may have replaced it meanwhile.
    if identity(path) != Some((meta.dev(), meta.ino())) {
        return Err(in_use(
            "the socket file was replaced while it was being checked".to_string(),
        ));
    }
    fs::remove_file(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot remove the stale socket file there: {e}"),
        )
    })?;
    log::warn!(
        "replaced stale Unix socket file {} (no server answered on it)",
        path.display()
    );
    Ok(())
}

/// Connects to `addr` with a socket of the server's type. Non-blocking, so that a live server
/// whose backlog is full answers `EAGAIN` (in use) instead of holding the bind up.
fn probe(addr: &SockAddr, ty: Type) -> io::Result<()> {
    let socket = Socket::new(Domain::UNIX, ty, None)?;
    socket.set_nonblocking(true)?;
    socket.connect(addr)
}

fn describe(ty: FileType) -> &'static str {
    if ty.is_file() {
        "a regular file"
    } else if ty.is_dir() {
        "a directory"
    } else if ty.is_symlink() {
        "a symbolic link"
    } else if ty.is_fifo() {
        "a FIFO"
    } else if ty.is_block_device() || ty.is_char_device() {
        "a device"
    } else {
        "something else"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::{UnixDatagram, UnixListener};

    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ss-stale-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A socket file with nothing bound to it any more, as a killed server leaves it: bound,
    /// then closed without removing the file.
    fn dead_socket(path: &Path, ty: Type) {
        match ty {
            Type::STREAM => drop(UnixListener::bind(path).unwrap()),
            _ => drop(UnixDatagram::bind(path).unwrap()),
        }
        assert!(path.exists());
    }

    #[test]
    fn a_kept_socket_file_stays_and_a_guarded_one_goes() {
        let dir = scratch("guard");
        let path = dir.join("s.sock");
        let _listener = UnixListener::bind(&path).unwrap();
        let mut guard = UnixPathGuard::new(&path);
        guard.keep();
        drop(guard);
        assert!(path.exists(), "a kept file stays");
        drop(UnixPathGuard::new(&path));
        assert!(
            !path.exists(),
            "the guard removes the socket file it created"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_dead_socket_is_removed_for_either_type() {
        let dir = scratch("dead");
        for (probe_ty, file_ty) in [
            (Type::STREAM, Type::STREAM),
            (Type::DGRAM, Type::DGRAM),
            (Type::DGRAM, Type::STREAM),
        ] {
            let path = dir.join("s.sock");
            dead_socket(&path, file_ty);
            let addr = SockAddr::unix(&path).unwrap();
            remove_stale(&path, &addr, probe_ty).unwrap();
            assert!(!path.exists());
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_live_socket_of_the_other_type_is_left_alone() {
        let dir = scratch("other-type");
        let path = dir.join("s.sock");
        let _live = UnixListener::bind(&path).unwrap();
        let addr = SockAddr::unix(&path).unwrap();
        let err = remove_stale(&path, &addr, Type::DGRAM).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        assert!(path.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_or_a_link_is_not_a_socket() {
        let dir = scratch("not-socket");
        let sub = dir.join("sub");
        fs::create_dir(&sub).unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(dir.join("missing"), &link).unwrap();
        for (path, what) in [(&sub, "a directory"), (&link, "a symbolic link")] {
            let addr = SockAddr::unix(path).unwrap();
            let err = remove_stale(path, &addr, Type::STREAM).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
            assert!(err.to_string().contains(what), "{err}");
            assert!(fs::symlink_metadata(path).is_ok(), "{what} was removed");
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
