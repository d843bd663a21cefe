//! [`Expected`]: the checksums a received body must match.

#[cfg(feature = "json")]
use std::io;

/// Hex checksums a received body must match (lower- or upper-case hex). Checking them needs the
/// `checksum` feature (on by default); without it [`receive_file`](super::receive_file) refuses an `Expected` that
/// names one (`Unsupported`) instead of leaving it unchecked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// The MD5 of the body, 32 hex digits.
    pub md5: Option<String>,
    /// The SHA-256 of the body, 64 hex digits.
    pub sha256: Option<String>,
}

impl Expected {
    /// The optional `"md5"` and `"sha256"` fields of a header (feature `json`).
    ///
    /// # Errors
    ///
    /// `InvalidData` if one is present but is not a string of hex digits of the right length.
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
