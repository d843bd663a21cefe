//! [`TlsInfo`]: what a finished handshake settled, as a handler reads it.

use rustls::pki_types::CertificateDer;
use rustls::ServerConnection;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// What a connection's TLS handshake settled: the protocol, the server name the client asked
/// for, the application protocol chosen, and the client's verified certificate, if it sent one.
/// Read it with [`StreamRequest::tls`](crate::StreamRequest::tls) or, in a message server, with
/// [`Reply::tls`].
///
#[cfg_attr(
    feature = "message",
    doc = "[`Reply::tls`]: crate::message::Reply::tls"
)]
#[cfg_attr(not(feature = "message"), doc = "[`Reply::tls`]: crate#features")]
#[derive(Debug, Clone)]
pub struct TlsInfo {
    version: &'static str,
    cipher_suite: String,
    server_name: Option<String>,
    alpn: Option<Vec<u8>>,
    peer: Option<PeerIdentity>,
}

/// A client's certificate, verified against the server's CA bundle (mutual TLS).
#[derive(Debug, Clone)]
pub struct PeerIdentity {
    subject: String,
    common_name: Option<String>,
    names: Vec<String>,
    serial: String,
    der: CertificateDer<'static>,
}

impl TlsInfo {
    /// What `conn`, its handshake done, settled.
    pub(crate) fn of(conn: &ServerConnection) -> TlsInfo {
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLS",
        };
        let cipher_suite = conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("unknown")
            .to_string();
        let peer = conn
            .peer_certificates()
            .and_then(<[CertificateDer<'static>]>::first)
            .map(PeerIdentity::of);
        TlsInfo {
            version,
            cipher_suite,
            server_name: conn.server_name().map(str::to_string),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            peer,
        }
    }

    /// The protocol version: `"TLSv1.3"` or `"TLSv1.2"`.
    #[must_use]
    pub fn version(&self) -> &'static str {
        self.version
    }

    /// The cipher suite, by its IANA name (`TLS13_AES_256_GCM_SHA384`, …).
    #[must_use]
    pub fn cipher_suite(&self) -> &str {
        &self.cipher_suite
    }

    /// The server name the client asked for (SNI), if it sent one.
    #[must_use]
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// The application protocol both sides agreed on (ALPN), if the server offers any and the
    /// client asked.
    #[must_use]
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.alpn.as_deref()
    }

    /// The client's verified certificate, with mutual TLS
    /// ([`TlsConfig::client_ca`](super::TlsConfig::client_ca)); `None` if it sent none.
    #[must_use]
    pub fn peer(&self) -> Option<&PeerIdentity> {
        self.peer.as_ref()
    }
}

impl PeerIdentity {
    fn of(der: &CertificateDer<'static>) -> PeerIdentity {
        let mut identity = PeerIdentity {
            subject: String::new(),
            common_name: None,
            names: Vec::new(),
            serial: String::new(),
            der: der.clone(),
        };
        // The verifier accepted it, so it parses; if this parser disagrees, the names stay empty.
        let Ok((_, cert)) = X509Certificate::from_der(der.as_ref()) else {
            return identity;
        };
        identity.subject = cert.subject().to_string();
        identity.common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        identity.serial = cert.raw_serial_as_string().replace(':', "");
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) | GeneralName::RFC822Name(n) | GeneralName::URI(n) => {
                        identity.names.push((*n).to_string());
                    }
                    GeneralName::IPAddress(bytes) => {
                        let ip = match bytes.len() {
                            4 => <[u8; 4]>::try_from(*bytes)
                                .ok()
                                .map(|b| std::net::IpAddr::from(b).to_string()),
                            16 => <[u8; 16]>::try_from(*bytes)
                                .ok()
                                .map(|b| std::net::IpAddr::from(b).to_string()),
                            _ => None,
                        };
                        identity.names.extend(ip);
                    }
                    _ => {}
                }
            }
        }
        identity
    }

    /// The certificate's subject, as `CN=alice, O=Example` (RFC 4514 order reversed, as OpenSSL
    /// prints it).
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The subject's common name (`CN`), if it has one.
    #[must_use]
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The subject alternative names: DNS names, e-mail addresses, URIs and IP addresses.
    #[must_use]
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The certificate's serial number, in lower-case hexadecimal.
    #[must_use]
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// The certificate as the client sent it (DER).
    #[must_use]
    pub fn der(&self) -> &[u8] {
        self.der.as_ref()
    }
}
