//! Files as message bodies: safe names, checksums, and uploads that appear only when complete.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::body::copy_exact_inspect;
use super::checksum::{to_hex, Checks};
use super::expected::Expected;
use super::preview::preview;

/// Checks that `name` is a plain file name that stays inside the folder it is joined to, and
/// returns it.
///
/// The Python tutorial's FTP exercise joins the client's name onto the upload folder with
/// `normpath`, which lets `../../etc/passwd` escape it; this is the check it lacks.
///
/// # Errors
///
/// `InvalidInput`, saying why, for the empty name, `.` and `..`, names with a `/` or `\` separator,
/// a NUL, or other control characters, absolute paths, names starting with `.` (hidden files, and
/// the temporary files of [`receive_file`]), and names over 255 bytes.
///
/// ```
/// use socketserver::framing::check_file_name;
///
/// assert_eq!(check_file_name("a.txt").unwrap(), "a.txt");
/// assert_eq!(check_file_name("电影.mp4").unwrap(), "电影.mp4");
/// for bad in ["", "..", "../a.txt", "/etc/passwd", "a/b", "a\\b", "a\0b", ".hidden"] {
///     assert!(check_file_name(bad).is_err(), "{bad:?}");
/// }
/// ```
pub fn check_file_name(name: &str) -> io::Result<&str> {
    let refuse = |why: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("file name {} refused: {why}", preview(name.as_bytes())),
        ))
    };
    if name.is_empty() {
        return refuse("it is empty");
    }
    if name.len() > 255 {
        return refuse("it is longer than 255 bytes");
    }
    if name.contains('/') || name.contains('\\') {
        return refuse("it contains a path separator (only plain file names are allowed)");
    }
    if name.chars().any(char::is_control) {
        return refuse("it contains a NUL or another control character");
    }
    if name.starts_with('.') {
        return refuse("it starts with '.' ('.', '..' and hidden names are not allowed)");
    }
    Ok(name)
}

/// Receives a body of exactly `size` bytes from `reader` into the file `dest`, so that `dest`
/// appears only when the body arrived whole (and matched `expected`).
///
/// The bytes go to a hidden temporary file beside `dest` (`.part-<16 hex digits>`, short
/// whatever the length of `dest`'s name, so every name [`check_file_name`] accepts can be
/// received), which is synced and renamed onto `dest` only after all `size` bytes arrived and the
/// checksums matched.
/// On any failure the temporary file is removed and `dest` is untouched: a cut-off upload never
/// looks like a finished file. An existing `dest` is replaced atomically. Checksums are checked
/// with the `checksum` feature.
///
/// # Errors
///
/// `UnexpectedEof` if the stream ends before `size` bytes; `InvalidData` if a checksum differs;
/// `Unsupported`, before anything is read, if `expected` names a checksum and the `checksum`
/// feature is off; any error reading `reader` (a timeout, say) or creating, writing, syncing or
/// renaming the file (the disk is full, say).
///
/// ```
/// use socketserver::framing::{receive_file, Expected};
///
/// # fn main() -> std::io::Result<()> {
/// let dir = std::env::temp_dir().join(format!("receive-file-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let dest = dir.join("a.txt");
///
/// let mut cut_off = &b"only part"[..];
/// assert!(receive_file(&mut cut_off, &dest, 100, &Expected::default()).is_err());
/// assert!(!dest.exists()); // nothing half-written is left behind
///
/// let mut whole = &b"hello"[..];
/// let md5 = Some("5d41402abc4b2a76b9719d911017c592".to_string());
/// # #[cfg(feature = "checksum")]
/// receive_file(&mut whole, &dest, 5, &Expected { md5, sha256: None })?;
/// # #[cfg(not(feature = "checksum"))]
/// # receive_file(&mut whole, &dest, 5, &Expected::default())?;
/// assert_eq!(std::fs::read(&dest)?, b"hello");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub fn receive_file<R: Read + ?Sized>(
    reader: &mut R,
    dest: &Path,
    size: u64,
    expected: &Expected,
) -> io::Result<()> {
    dest.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", dest.display()),
        )
    })?;
    let dir = match dest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut checks = Checks::new(expected)?;
    let temp = Temporary::create(dir)?;
    copy_exact_inspect(reader, &mut &temp.file, size, |chunk| checks.update(chunk))?;
    checks.verify()?;
    temp.commit(dest)
}

/// 8 bytes that differ for every temporary file of every process: the pid and a counter, hashed
/// with std's randomly keyed `SipHash` so that names are not guessable either — without a
/// dependency on an OS randomness crate (`create_new` refuses a clash all the same).
fn unique_suffix() -> [u8; 8] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish().to_be_bytes()
}

/// A temporary file that is removed when dropped, unless [`commit`](Self::commit)ted.
struct Temporary {
    file: File,
    path: PathBuf,
    committed: bool,
}

impl Temporary {
    /// Creates a new file in `dir` whose name does not depend on the final one: a name near the
    /// 255-byte limit must not become too long for its temporary file.
    fn create(dir: &Path) -> io::Result<Temporary> {
        let path = dir.join(format!(".part-{}", to_hex(&unique_suffix())));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot create temporary file {}: {e}", path.display()),
                )
            })?;
        Ok(Temporary {
            file,
            path,
            committed: false,
        })
    }

    fn commit(mut self, dest: &Path) -> io::Result<()> {
        self.file.flush()?;
        self.file.sync_all()?;
        fs::rename(&self.path, dest).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot move the received file into place at {}: {e}",
                    dest.display()
                ),
            )
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if !self.committed {
            if let Err(e) = fs::remove_file(&self.path) {
                log::warn!("cannot remove temporary file {}: {e}", self.path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(test: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("socketserver-file-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[cfg(feature = "checksum")]
    #[test]
    fn a_checksum_mismatch_leaves_nothing() {
        let dir = scratch("mismatch");
        let dest = dir.join("x.bin");
        let expected = Expected {
            md5: None,
            sha256: Some(crate::framing::sha256_hex(b"other")),
        };
        let err = receive_file(&mut &b"hello"[..], &dest, 5, &expected).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        assert!(entries(&dir).is_empty(), "{:?}", entries(&dir));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_cut_off_body_keeps_the_old_file() {
        let dir = scratch("cut");
        let dest = dir.join("x.bin");
        fs::write(&dest, b"old").unwrap();
        let err = receive_file(
            &mut &b"new but short"[..],
            &dest,
            1000,
            &Expected::default(),
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(fs::read(&dest).unwrap(), b"old");
        assert_eq!(entries(&dir), ["x.bin"]);
        receive_file(&mut &b"new"[..], &dest, 3, &Expected::default()).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new");
        assert_eq!(entries(&dir), ["x.bin"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Issue 9: names of 233 to 255 bytes passed the check, then failed with "File name too
    /// long" because the temporary name added 23 bytes to them.
    #[test]
    fn every_accepted_name_length_can_be_received_and_a_failure_leaves_nothing() {
        let dir = scratch("long");
        for len in [1, 232, 233, 254, 255] {
            let name = "n".repeat(len);
            let dest = dir.join(check_file_name(&name).unwrap());
            let err = receive_file(&mut &b"cut"[..], &dest, 10, &Expected::default()).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{len}: {err}");
            assert!(entries(&dir).is_empty(), "{len}: {:?}", entries(&dir));
            receive_file(&mut &b"whole"[..], &dest, 5, &Expected::default()).unwrap();
            assert_eq!(fs::read(&dest).unwrap(), b"whole", "{len}");
            assert_eq!(entries(&dir), [name], "{len}");
            fs::remove_file(&dest).unwrap();
        }
        // A multi-byte name at the limit: 85 three-byte characters.
        let name = "数".repeat(85);
        assert_eq!(name.len(), 255);
        receive_file(&mut &b"x"[..], &dir.join(&name), 1, &Expected::default()).unwrap();
        assert_eq!(entries(&dir), [name]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temporary_names_do_not_repeat() {
        let names: std::collections::HashSet<[u8; 8]> =
            (0..1000).map(|_| unique_suffix()).collect();
        assert_eq!(names.len(), 1000);
    }

    #[test]
    fn names_are_checked() {
        for good in ["a.txt", "a b", "x..y", "数据.bin"] {
            assert!(check_file_name(good).is_ok(), "{good}");
        }
        for bad in [
            ".",
            "..",
            "./a",
            "a/..",
            "/abs",
            "C:\\x",
            "tab\tname",
            &"n".repeat(256),
        ] {
            let err = check_file_name(bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn a_refused_name_appears_in_the_error_short_and_escaped() {
        let err = check_file_name("../a.txt").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("file name \"../a.txt\" refused"),
            "{err}"
        );
        // The error is logged and sent back: a megabyte-long name with newlines is neither.
        let hostile = format!("{}\nforged log line", "n".repeat(1 << 20));
        let err = check_file_name(&hostile).unwrap_err().to_string();
        assert!(err.len() < 200 && !err.contains('\n'), "{err}");
        assert!(
            err.contains(&format!("… ({} bytes)", hostile.len())),
            "{err}"
        );
    }

    #[cfg(feature = "json")]
    #[test]
    fn expected_checksums_come_from_the_header() {
        let header = crate::framing::parse_header(
            br#"{"md5": "8F6FBF8347FAA4924A76856701EDB0F3", "filesize": 1}"#,
        )
        .unwrap();
        let expected = Expected::from_header(&header).unwrap();
        assert_eq!(
            expected.md5.as_deref(),
            Some("8f6fbf8347faa4924a76856701edb0f3")
        );
        assert_eq!(expected.sha256, None);
        let bad = crate::framing::parse_header(br#"{"md5": "xxxxxxxx"}"#).unwrap();
        let err = Expected::from_header(&bad).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().ends_with(r#"got "xxxxxxxx""#), "{err}");
        // A huge value is cut short in the message, which is logged and sent back.
        let huge = format!(r#"{{"sha256": "{}"}}"#, "f".repeat(100_000));
        let bad = crate::framing::parse_header(huge.as_bytes()).unwrap();
        let err = Expected::from_header(&bad).unwrap_err().to_string();
        assert!(
            err.len() < 200 && err.ends_with("… (100002 bytes)"),
            "{err}"
        );
    }
}
