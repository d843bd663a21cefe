//! Files as message bodies: safe names, checksums, and uploads that appear only when complete.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use sha2::Sha256;

use super::body::copy_exact_inspect;
use super::preview::preview;

/// Checks that `name` is a plain file name that stays inside the folder it is joined to, and
/// returns it. Refused, with an `InvalidInput` error saying why: the empty name, `.` and `..`,
/// names with a `/` or `\` separator, a NUL, or other control characters, absolute paths, names
/// starting with `.` (hidden files, and the temporary files of [`receive_file`]), and names over
/// 255 bytes.
///
/// The seeds join the client's name onto the upload folder with `normpath`, which lets
/// `../../etc/passwd` escape it; this is the check they lack.
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

/// Hex checksums a received body must match (lower- or upper-case hex).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// The MD5 of the body, 32 hex digits.
    pub md5: Option<String>,
    /// The SHA-256 of the body, 64 hex digits.
    pub sha256: Option<String>,
}

impl Expected {
    /// The optional `"md5"` and `"sha256"` fields of a header. `InvalidData` if one is present
    /// but is not a string of hex digits of the right length.
    #[cfg(feature = "json")]
    pub fn from_header(header: &super::Header) -> io::Result<Expected> {
        let field = |name: &str, digits: usize| -> io::Result<Option<String>> {
            let Some(value) = header.get(name) else {
                return Ok(None);
            };
            match value.as_str() {
                Some(hex) if hex.len() == digits && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    Ok(Some(hex.to_ascii_lowercase()))
                }
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "header field \"{name}\" must be {digits} hex digits, got {}",
                        super::preview::shown(value)
                    ),
                )),
            }
        };
        Ok(Expected {
            md5: field("md5", 32)?,
            sha256: field("sha256", 64)?,
        })
    }
}

/// Receives a body of exactly `size` bytes from `reader` into the file `dest`, so that `dest`
/// appears only when the body arrived whole (and matched `expected`).
///
/// The bytes go to a hidden temporary file beside `dest` (`.<name>.<random>.part`), which is
/// synced and renamed onto `dest` only after all `size` bytes arrived and the checksums matched.
/// On any failure — the stream ends early (`UnexpectedEof`), a read times out, a checksum differs
/// (`InvalidData`), the disk is full — the temporary file is removed and `dest` is untouched: a
/// cut-off upload never looks like a finished file. An existing `dest` is replaced atomically.
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
/// receive_file(&mut whole, &dest, 5, &Expected { md5, sha256: None })?;
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
    let name = dest.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", dest.display()),
        )
    })?;
    let dir = match dest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let temp = Temporary::create(dir, &name.to_string_lossy())?;
    let mut md5 = expected.md5.as_ref().map(|_| Md5::new());
    let mut sha256 = expected.sha256.as_ref().map(|_| Sha256::new());
    copy_exact_inspect(reader, &mut &temp.file, size, |chunk| {
        if let Some(h) = &mut md5 {
            h.update(chunk);
        }
        if let Some(h) = &mut sha256 {
            h.update(chunk);
        }
    })?;
    if let (Some(want), Some(h)) = (&expected.md5, md5) {
        check_digest("MD5", want, &to_hex(&h.finalize()))?;
    }
    if let (Some(want), Some(h)) = (&expected.sha256, sha256) {
        check_digest("SHA-256", want, &to_hex(&h.finalize()))?;
    }
    temp.commit(dest)
}

fn check_digest(algorithm: &str, want: &str, got: &str) -> io::Result<()> {
    if want.eq_ignore_ascii_case(got) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("checksum mismatch: the {algorithm} of the received bytes is {got}, the header announced {want}"),
        ))
    }
}

/// The MD5 of `data`, as 32 lower-case hex digits (Python's `hashlib.md5(data).hexdigest()`).
pub fn md5_hex(data: &[u8]) -> String {
    to_hex(&Md5::digest(data))
}

/// The SHA-256 of `data`, as 64 lower-case hex digits.
pub fn sha256_hex(data: &[u8]) -> String {
    to_hex(&Sha256::digest(data))
}

/// The MD5 of everything `reader` yields, as 32 lower-case hex digits, read in chunks (for files).
pub fn md5_hex_of<R: Read + ?Sized>(reader: &mut R) -> io::Result<String> {
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(to_hex(&hasher.finalize())),
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// A temporary file that is removed when dropped, unless [`commit`](Self::commit)ted.
struct Temporary {
    file: File,
    path: PathBuf,
    committed: bool,
}

impl Temporary {
    fn create(dir: &Path, name: &str) -> io::Result<Temporary> {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| {
            io::Error::other(format!(
                "cannot name a temporary file: no OS randomness ({e})"
            ))
        })?;
        let path = dir.join(format!(".{name}.{}.part", to_hex(&random)));
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

    #[test]
    fn known_digests() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(md5_hex_of(&mut &b"hello"[..]).unwrap(), md5_hex(b"hello"));
    }

    #[test]
    fn a_checksum_mismatch_leaves_nothing() {
        let dir = scratch("mismatch");
        let dest = dir.join("x.bin");
        let expected = Expected {
            md5: None,
            sha256: Some(sha256_hex(b"other")),
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
