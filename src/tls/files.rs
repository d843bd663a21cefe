//! Reading certificates, keys, CA bundles and revocation lists from PEM files, with errors that
//! name the file and say what is wrong with it.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};

/// An error about `path`: `kind`, and a message that starts with the file's name.
pub(crate) fn file_error(
    kind: io::ErrorKind,
    path: &Path,
    what: impl std::fmt::Display,
) -> io::Error {
    io::Error::new(kind, format!("{}: {what}", path.display()))
}

/// What went wrong reading a PEM file, as an `io::Error` naming it.
fn pem_error(path: &Path, looking_for: &str, e: pem::Error) -> io::Error {
    match e {
        pem::Error::Io(e) => file_error(e.kind(), path, format_args!("cannot read it: {e}")),
        pem::Error::NoItemsFound => file_error(
            io::ErrorKind::InvalidData,
            path,
            format_args!(
                "no {looking_for} in it (expected a PEM file with a \"-----BEGIN ...\" section)"
            ),
        ),
        other => file_error(
            io::ErrorKind::InvalidData,
            path,
            format_args!("not a valid PEM file ({other})"),
        ),
    }
}

/// The certificates of `path`, leaf first: a chain.
pub(crate) fn certificates(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let iter =
        CertificateDer::pem_file_iter(path).map_err(|e| pem_error(path, "certificate", e))?;
    let chain = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, "certificate", e))?;
    if chain.is_empty() {
        return Err(pem_error(path, "certificate", pem::Error::NoItemsFound));
    }
    Ok(chain)
}

/// The private key of `path`: PKCS#8 (`BEGIN PRIVATE KEY`), PKCS#1 (`BEGIN RSA PRIVATE KEY`) or
/// SEC1 (`BEGIN EC PRIVATE KEY`).
pub(crate) fn private_key(path: &Path) -> io::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        pem_error(
            path,
            "private key (PKCS#8 \"PRIVATE KEY\", PKCS#1 \"RSA PRIVATE KEY\" or SEC1 \"EC PRIVATE KEY\")",
            e,
        )
    })
}

/// The certificate revocation lists of `path`.
pub(crate) fn revocation_lists(
    path: &Path,
) -> io::Result<Vec<CertificateRevocationListDer<'static>>> {
    let iter = CertificateRevocationListDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, "certificate revocation list", e))?;
    let crls = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, "certificate revocation list", e))?;
    if crls.is_empty() {
        return Err(pem_error(
            path,
            "certificate revocation list",
            pem::Error::NoItemsFound,
        ));
    }
    Ok(crls)
}

/// Checks that the leaf certificate of `chain` (read from `path`) is valid now: a server that
/// starts with an expired certificate fails every handshake, so it should not start.
pub(crate) fn check_dates(
    path: &Path,
    chain: &[CertificateDer<'_>],
    now: SystemTime,
) -> io::Result<()> {
    let Some(leaf) = chain.first() else {
        return Ok(());
    };
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).map_err(|e| {
        file_error(
            io::ErrorKind::InvalidData,
            path,
            format_args!("the first certificate cannot be parsed: {e}"),
        )
    })?;
    let now = match now.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(_) => return Ok(()),
    };
    let validity = cert.validity();
    if now > validity.not_after.timestamp() {
        return Err(file_error(
            io::ErrorKind::InvalidData,
            path,
            format_args!(
                "the certificate for {} expired on {}",
                cert.subject(),
                validity.not_after
            ),
        ));
    }
    if now < validity.not_before.timestamp() {
        return Err(file_error(
            io::ErrorKind::InvalidData,
            path,
            format_args!(
                "the certificate for {} is not valid before {} (is the clock right?)",
                cert.subject(),
                validity.not_before
            ),
        ));
    }
    Ok(())
}

/// A certificate file and its key file, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyPair {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}
