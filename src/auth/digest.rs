//! [`Digest`]: which hash the HMAC uses, and computing and checking tags.

use std::fmt;
use std::io;
use std::str::FromStr;

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::Sha256;

/// The hash function of the HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Digest {
    /// HMAC-MD5, 16-byte tags: what the Python tutorial clients compute
    /// (`hmac.new(key, msg)` defaulted to MD5 before Python 3.8). MD5 is broken as a hash, but
    /// HMAC-MD5 has no practical attack; prefer SHA-256 for anything new.
    Md5,
    /// HMAC-SHA256, 32-byte tags: the default.
    #[default]
    Sha256,
}

impl Digest {
    /// The length of a tag in bytes: 16 for MD5, 32 for SHA-256.
    #[must_use]
    pub const fn output_len(self) -> usize {
        match self {
            Digest::Md5 => 16,
            Digest::Sha256 => 32,
        }
    }

    /// `"md5"` or `"sha256"`, as Python's `hmac.new(..., digestmod=...)` names them.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Digest::Md5 => "md5",
            Digest::Sha256 => "sha256",
        }
    }

    /// `HMAC(key, message)`.
    ///
    /// ```
    /// use socketserver::auth::Digest;
    ///
    /// // RFC 2104's test vector 2 for HMAC-MD5.
    /// let tag = Digest::Md5.hmac(b"Jefe", b"what do ya want for nothing?");
    /// assert_eq!(tag[..4], [0x75, 0x0c, 0x78, 0x3e]);
    /// assert_eq!(Digest::Sha256.hmac(b"k", b"m").len(), 32);
    /// ```
    #[must_use]
    pub fn hmac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        match self {
            Digest::Md5 => mac::<Hmac<Md5>>(key, message)
                .finalize()
                .into_bytes()
                .to_vec(),
            Digest::Sha256 => mac::<Hmac<Sha256>>(key, message)
                .finalize()
                .into_bytes()
                .to_vec(),
        }
    }

    /// Whether `tag` is `HMAC(key, message)`, compared in constant time (the time taken does not
    /// depend on how many leading bytes are right). A tag of the wrong length is `false`.
    #[must_use]
    pub fn verify(self, key: &[u8], message: &[u8], tag: &[u8]) -> bool {
        match self {
            Digest::Md5 => mac::<Hmac<Md5>>(key, message).verify_slice(tag).is_ok(),
            Digest::Sha256 => mac::<Hmac<Sha256>>(key, message).verify_slice(tag).is_ok(),
        }
    }
}

fn mac<M: Mac + KeyInit>(key: &[u8], message: &[u8]) -> M {
    // HMAC accepts keys of any length (long ones are hashed first), so this cannot fail.
    let mut mac = <M as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(message);
    mac
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Digest {
    type Err = io::Error;

    /// `md5` or `sha256` (any case; `sha-256` too).
    fn from_str(s: &str) -> io::Result<Digest> {
        match s.to_ascii_lowercase().as_str() {
            "md5" => Ok(Digest::Md5),
            "sha256" | "sha-256" => Ok(Digest::Sha256),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown digest '{s}' (expected md5 or sha256)"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::to_hex as hex;

    #[test]
    fn rfc_test_vectors() {
        // RFC 2104 / RFC 2202 test case 2 and RFC 4231 test case 2.
        let msg = b"what do ya want for nothing?";
        assert_eq!(
            hex(&Digest::Md5.hmac(b"Jefe", msg)),
            "750c783e6ab0b503eaa86e310a5db738"
        );
        assert_eq!(
            hex(&Digest::Sha256.hmac(b"Jefe", msg)),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        #[cfg(feature = "checksum")]
        assert_ne!(
            crate::framing::md5_hex(msg),
            hex(&Digest::Md5.hmac(b"Jefe", msg))
        );
    }

    #[test]
    fn verify_accepts_only_the_right_tag() {
        for digest in [Digest::Md5, Digest::Sha256] {
            let tag = digest.hmac(b"key", b"challenge");
            assert_eq!(tag.len(), digest.output_len());
            assert!(digest.verify(b"key", b"challenge", &tag));
            assert!(!digest.verify(b"other key", b"challenge", &tag));
            assert!(!digest.verify(b"key", b"challenge", &tag[..tag.len() - 1]));
            let mut flipped = tag.clone();
            flipped[0] ^= 1;
            assert!(!digest.verify(b"key", b"challenge", &flipped));
        }
    }

    #[test]
    fn parses_names() {
        assert_eq!("MD5".parse::<Digest>().unwrap(), Digest::Md5);
        assert_eq!("sha-256".parse::<Digest>().unwrap(), Digest::Sha256);
        let err = "sha1".parse::<Digest>().unwrap_err();
        assert!(err.to_string().contains("expected md5 or sha256"), "{err}");
        assert_eq!(Digest::default(), Digest::Sha256);
    }
}
