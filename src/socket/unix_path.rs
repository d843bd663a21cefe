//! Removing a Unix socket file when the server that created it closes.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

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
