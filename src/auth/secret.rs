//! [`Secret`]: the shared key, loaded from the environment or a file, never printed.

use std::fmt;
use std::fs;
use std::io;
use std::path::Path;

/// A shared secret key for HMAC authentication.
///
/// Its `Debug` output shows only its length, so it cannot leak into logs, and its bytes are
/// overwritten when it is dropped. Keys belong in the environment or in a file readable only by
/// the server's user — never on a command line, where `ps` shows them to everyone.
///
/// ```
/// use socketserver::auth::Secret;
///
/// let secret = Secret::new("linhaifeng bang bang bang").unwrap();
/// assert_eq!(format!("{secret:?}"), "Secret(25 bytes, redacted)");
/// assert!(Secret::new("").is_err());
/// ```
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret from raw bytes.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for the empty key: with it, anyone could compute the answers.
    pub fn new(bytes: impl Into<Vec<u8>>) -> io::Result<Secret> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the secret key is empty",
            ));
        }
        Ok(Secret(bytes))
    }

    /// The secret in environment variable `var`, as raw bytes; `Ok(None)` if it is not set.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the variable is set but empty.
    pub fn from_env(var: &str) -> io::Result<Option<Secret>> {
        use std::os::unix::ffi::OsStringExt;
        match std::env::var_os(var) {
            None => Ok(None),
            Some(value) => Secret::new(value.into_vec()).map(Some).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{var} is set but empty"),
                )
            }),
        }
    }

    /// The contents of the file at `path`, less one trailing line break (`\n` or `\r\n`), so a
    /// file written with `echo` works. Logs a warning if other users may read the file.
    ///
    /// # Errors
    ///
    /// The error reading the file, with a message naming it; `InvalidInput` if the file is empty.
    pub fn from_file(path: &Path) -> io::Result<Secret> {
        use std::os::unix::fs::PermissionsExt;
        let mut bytes = fs::read(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot read the secret file {}: {e}", path.display()),
            )
        })?;
        if bytes.ends_with(b"\r\n") {
            bytes.truncate(bytes.len() - 2);
        } else if bytes.ends_with(b"\n") {
            bytes.truncate(bytes.len() - 1);
        }
        if let Ok(meta) = fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                log::warn!(
                    "the secret file {} can be read by other users (chmod 600 it)",
                    path.display()
                );
            }
        }
        Secret::new(bytes).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the secret file {} is empty", path.display()),
            )
        })
    }

    /// The secret from `file` if one is given, else from environment variable `var`;
    /// `Ok(None)` if neither is there.
    ///
    /// # Errors
    ///
    /// Those of [`from_file`](Self::from_file) or [`from_env`](Self::from_env).
    pub fn load(file: Option<&Path>, var: &str) -> io::Result<Option<Secret>> {
        match file {
            Some(path) => Secret::from_file(path).map(Some),
            None => Secret::from_env(var),
        }
    }

    /// The key's bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes, redacted)", self.0.len())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        for byte in self.0.iter_mut() {
            // Volatile, so the compiler cannot drop the wipe of memory about to be freed.
            // SAFETY: `byte` is a valid, exclusive reference to an initialised `u8`.
            unsafe { std::ptr::write_volatile(byte, 0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_lose_one_trailing_line_break() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("socketserver-secret-{}", std::process::id()));
        fs::write(&path, b"key\r\n").unwrap();
        assert_eq!(Secret::from_file(&path).unwrap().as_bytes(), b"key");
        fs::write(&path, b"key \n\n").unwrap();
        assert_eq!(Secret::from_file(&path).unwrap().as_bytes(), b"key \n");
        fs::write(&path, b"\n").unwrap();
        let err = Secret::from_file(&path).unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
        fs::remove_file(&path).unwrap();
        let err = Secret::from_file(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            err.to_string().contains("cannot read the secret file"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_variable_is_none() {
        let var = "SOCKETSERVER_TEST_SECRET_THAT_IS_NEVER_SET";
        assert!(Secret::from_env(var).unwrap().is_none());
        assert!(Secret::load(None, var).unwrap().is_none());
    }
}
