//! MD5 and SHA-256 checksums of bodies (feature `checksum`), and the checks [`receive_file`]
//! makes with them.
//!
//! [`receive_file`]: super::receive_file

use std::io;
#[cfg(feature = "checksum")]
use std::io::Read;

#[cfg(feature = "checksum")]
use md5::{Digest, Md5};
#[cfg(feature = "checksum")]
use sha2::Sha256;

use super::expected::Expected;

/// Lower-case hex digits of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// The MD5 of `data`, as 32 lower-case hex digits (feature `checksum`): Python's
/// `hashlib.md5(data).hexdigest()`.
#[cfg(feature = "checksum")]
#[must_use]
pub fn md5_hex(data: &[u8]) -> String {
    to_hex(&Md5::digest(data))
}

/// The SHA-256 of `data`, as 64 lower-case hex digits (feature `checksum`).
#[cfg(feature = "checksum")]
#[must_use]
pub fn sha256_hex(data: &[u8]) -> String {
    to_hex(&Sha256::digest(data))
}

/// The MD5 of everything `reader` yields, as 32 lower-case hex digits, read in chunks, for files
/// (feature `checksum`).
///
/// # Errors
///
/// Any error of `reader`.
#[cfg(feature = "checksum")]
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

/// The digests of a body being received, for the checksums `expected` names.
#[cfg(feature = "checksum")]
pub(super) struct Checks<'a> {
    expected: &'a Expected,
    md5: Option<Md5>,
    sha256: Option<Sha256>,
}

#[cfg(feature = "checksum")]
impl<'a> Checks<'a> {
    pub(super) fn new(expected: &'a Expected) -> io::Result<Checks<'a>> {
        Ok(Checks {
            expected,
            md5: expected.md5.as_ref().map(|_| Md5::new()),
            sha256: expected.sha256.as_ref().map(|_| Sha256::new()),
        })
    }

    pub(super) fn update(&mut self, chunk: &[u8]) {
        if let Some(h) = &mut self.md5 {
            h.update(chunk);
        }
        if let Some(h) = &mut self.sha256 {
            h.update(chunk);
        }
    }

    /// `InvalidData` if a checksum differs from the expected one.
    pub(super) fn verify(self) -> io::Result<()> {
        if let (Some(want), Some(h)) = (&self.expected.md5, self.md5) {
            check_digest("MD5", want, &to_hex(&h.finalize()))?;
        }
        if let (Some(want), Some(h)) = (&self.expected.sha256, self.sha256) {
            check_digest("SHA-256", want, &to_hex(&h.finalize()))?;
        }
        Ok(())
    }
}

#[cfg(feature = "checksum")]
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

/// Without the `checksum` feature nothing can be checked: a checksum the caller expects is
/// refused before anything is received, rather than silently left unchecked.
#[cfg(not(feature = "checksum"))]
pub(super) struct Checks;

#[cfg(not(feature = "checksum"))]
impl Checks {
    pub(super) fn new(expected: &Expected) -> io::Result<Checks> {
        let named = [("MD5", &expected.md5), ("SHA-256", &expected.sha256)];
        match named.iter().find(|(_, want)| want.is_some()) {
            Some((algorithm, _)) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "cannot check the expected {algorithm} of the body: socketserver was built \
                     without its `checksum` feature (enable it in Cargo.toml)"
                ),
            )),
            None => Ok(Checks),
        }
    }

    pub(super) fn update(&mut self, _chunk: &[u8]) {}

    pub(super) fn verify(self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "checksum")]
    #[test]
    fn known_digests() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(md5_hex_of(&mut &b"hello"[..]).unwrap(), md5_hex(b"hello"));
    }

    #[cfg(feature = "checksum")]
    #[test]
    fn only_matching_checksums_verify() {
        let check = |md5: &str, sha256: &str| {
            let expected = Expected {
                md5: Some(md5.to_string()),
                sha256: Some(sha256.to_string()),
            };
            let mut checks = Checks::new(&expected).unwrap();
            checks.update(b"ab");
            checks.update(b"c");
            checks.verify()
        };
        let (md5, sha256) = (md5_hex(b"abc"), sha256_hex(b"abc"));
        check(&md5, &sha256).unwrap();
        check(&md5.to_ascii_uppercase(), &sha256).unwrap();
        let err = check(&md5, &sha256_hex(b"abd")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("SHA-256"), "{err}");
        let err = check(&md5_hex(b"abd"), &sha256).unwrap_err();
        assert!(err.to_string().contains("MD5"), "{err}");
    }

    #[cfg(not(feature = "checksum"))]
    #[test]
    fn without_the_feature_an_expected_checksum_is_refused() {
        assert!(Checks::new(&Expected::default()).is_ok());
        let expected = Expected {
            md5: None,
            sha256: Some("00".repeat(32)),
        };
        let err = Checks::new(&expected).err().expect("refused");
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(err.to_string().contains("`checksum` feature"), "{err}");
    }
}
