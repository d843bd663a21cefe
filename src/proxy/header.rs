//! Reading one PROXY protocol header off a connection, bounded, and what it says.

use std::io::{self, Read};
use std::net::SocketAddr;

use super::{ProxyProtocol, TrustedProxy, MAX_V1_HEADER, MAX_V2_HEADER};
use crate::address::Address;

/// The first 12 bytes of every version 2 header.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2's fixed part: signature, version and command, family, length.
const V2_FIXED: usize = 16;
/// TLV types (the PROXY protocol specification, section 2.2).
const PP2_TYPE_ALPN: u8 = 0x01;
const PP2_TYPE_AUTHORITY: u8 = 0x02;
const PP2_TYPE_SSL: u8 = 0x20;
const PP2_SUBTYPE_SSL_VERSION: u8 = 0x21;
const PP2_SUBTYPE_SSL_CN: u8 = 0x22;
const PP2_SUBTYPE_SSL_CIPHER: u8 = 0x23;
/// `PP2_CLIENT_SSL`: the client connected over TLS.
const PP2_CLIENT_SSL: u8 = 0x01;

/// The PROXY protocol header a connection began with, from
/// [`StreamRequest::proxy_header`](crate::StreamRequest::proxy_header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    version: u8,
    local: bool,
    source: Option<SocketAddr>,
    destination: Option<SocketAddr>,
    tlvs: Vec<Tlv>,
}

impl ProxyHeader {
    /// 1 or 2.
    #[must_use]
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Whether this was a version 2 `LOCAL` header (the balancer's own connection, such as a
    /// health check) rather than a relayed client.
    #[must_use]
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// The client's address, as the balancer saw it. `None` for `PROXY UNKNOWN`, a `LOCAL`
    /// header, or a family other than IPv4/IPv6; the connection's own peer then stands.
    #[must_use]
    pub fn source(&self) -> Option<SocketAddr> {
        self.source
    }

    /// The address the client connected to, on the balancer.
    #[must_use]
    pub fn destination(&self) -> Option<SocketAddr> {
        self.destination
    }

    /// Every version 2 TLV, in the order sent (none for version 1).
    #[must_use]
    pub fn tlvs(&self) -> &[Tlv] {
        &self.tlvs
    }

    /// The value of the first TLV of type `kind`.
    pub fn tlv(&self, kind: u8) -> Option<&[u8]> {
        self.tlvs.iter().find(|t| t.kind == kind).map(Tlv::value)
    }

    /// `PP2_TYPE_AUTHORITY`: the host name the client asked for (TLS SNI, typically).
    #[must_use]
    pub fn authority(&self) -> Option<&str> {
        self.tlv(PP2_TYPE_AUTHORITY)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// `PP2_TYPE_ALPN`: the application protocol the client negotiated (`h2`, `http/1.1`).
    #[must_use]
    pub fn alpn(&self) -> Option<&[u8]> {
        self.tlv(PP2_TYPE_ALPN)
    }

    /// `PP2_TYPE_SSL`: what the balancer knows of the client's TLS connection, if it ended one.
    #[must_use]
    pub fn tls(&self) -> Option<Tls> {
        Tls::parse(self.tlv(PP2_TYPE_SSL)?)
    }
}

/// One version 2 type-length-value field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    kind: u8,
    value: Vec<u8>,
}

impl Tlv {
    /// The type: `0x01` ALPN, `0x02` authority, `0x20` SSL, `0x30` network namespace, `0xE0`
    /// to `0xEF` custom, and so on.
    #[must_use]
    pub fn kind(&self) -> u8 {
        self.kind
    }

    /// The value's bytes.
    #[must_use]
    pub fn value(&self) -> &[u8] {
        &self.value
    }
}

/// The `PP2_TYPE_SSL` TLV: the client's TLS connection, ended at the balancer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    client: u8,
    verify: u32,
    fields: Vec<Tlv>,
}

impl Tls {
    fn parse(value: &[u8]) -> Option<Tls> {
        let (&client, rest) = value.split_first()?;
        let verify = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        Some(Tls {
            client,
            verify,
            fields: parse_tlvs(&rest[4..]).ok()?,
        })
    }

    /// Whether the client connected over TLS (`PP2_CLIENT_SSL`).
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.client & PP2_CLIENT_SSL != 0
    }

    /// Whether the client presented a certificate and it was verified (`verify` is 0 and a
    /// certificate was sent, `PP2_CLIENT_CERT_CONN` or `PP2_CLIENT_CERT_SESS`).
    #[must_use]
    pub fn client_verified(&self) -> bool {
        self.verify == 0 && self.client & 0x06 != 0
    }

    /// The TLS version, such as `TLSv1.3`.
    #[must_use]
    pub fn version(&self) -> Option<&str> {
        self.field(PP2_SUBTYPE_SSL_VERSION)
    }

    /// The cipher, such as `TLS_AES_256_GCM_SHA384`.
    #[must_use]
    pub fn cipher(&self) -> Option<&str> {
        self.field(PP2_SUBTYPE_SSL_CIPHER)
    }

    /// The common name of the client certificate's subject.
    #[must_use]
    pub fn common_name(&self) -> Option<&str> {
        self.field(PP2_SUBTYPE_SSL_CN)
    }

    fn field(&self, kind: u8) -> Option<&str> {
        let tlv = self.fields.iter().find(|t| t.kind == kind)?;
        std::str::from_utf8(&tlv.value).ok()
    }
}

/// Type (1 byte), length (2 bytes, big-endian), value — repeated to the end of `bytes`.
fn parse_tlvs(mut bytes: &[u8]) -> Result<Vec<Tlv>, String> {
    let mut tlvs = Vec::new();
    while !bytes.is_empty() {
        let [kind, hi, lo, rest @ ..] = bytes else {
            return Err(format!("{} stray bytes after the last TLV", bytes.len()));
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let value = rest
            .get(..len)
            .ok_or_else(|| format!("TLV {kind:#04x} claims {len} bytes; {} left", rest.len()))?;
        tlvs.push(Tlv {
            kind: *kind,
            value: value.to_vec(),
        });
        bytes = &rest[len..];
    }
    Ok(tlvs)
}

fn garbled(why: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("bad PROXY protocol header: {why}; closed the connection"),
    )
}

/// Refuses a connection whose peer is not a trusted proxy. Unix-socket peers are trusted: only
/// processes allowed to open the socket file can connect, which is the access control there.
pub(crate) fn check_trusted(peer: &Address, trusted: &[TrustedProxy]) -> io::Result<()> {
    let Some(addr) = peer.as_inet() else {
        return Ok(());
    };
    if trusted.iter().any(|t| t.contains(addr.ip())) {
        return Ok(());
    }
    let listed = if trusted.is_empty() {
        "none are configured (Builder::trusted_proxies)".to_string()
    } else {
        trusted
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "PROXY protocol: {addr} is not a trusted proxy (trusted: {listed}); closed the \
             connection without reading it"
        ),
    ))
}

/// Reads exactly one header from `source` — never a byte past it, so what the client sent
/// after it is left for the handler — and parses it with `ppp`. Bounded: at most
/// [`MAX_V1_HEADER`] or [`MAX_V2_HEADER`] bytes are read or allocated.
pub(crate) fn read_header(mut source: impl Read, accept: ProxyProtocol) -> io::Result<ProxyHeader> {
    let mut start = [0u8; 5];
    read_exact(&mut source, &mut start)?;
    check_start(&start, accept)?;
    if start[..] == b"PROXY"[..] {
        let mut line = [0u8; MAX_V1_HEADER];
        line[..5].copy_from_slice(&start);
        let mut len = 5;
        // A byte at a time: the header's end is only known when its CRLF arrives, and the bytes
        // after it belong to the client.
        while !line[..len].ends_with(b"\r\n") {
            if len == MAX_V1_HEADER {
                return Err(v1_too_long());
            }
            read_exact(&mut source, &mut line[len..=len])?;
            len += 1;
        }
        return decode_v1(&line[..len]);
    }
    let mut fixed = [0u8; V2_FIXED];
    fixed[..5].copy_from_slice(&start);
    read_exact(&mut source, &mut fixed[5..])?;
    let total = v2_length(&fixed)?;
    let mut bytes = vec![0u8; total];
    bytes[..V2_FIXED].copy_from_slice(&fixed);
    read_exact(&mut source, &mut bytes[V2_FIXED..])?;
    decode_v2(&bytes)
}

/// Parses the header at the start of `bytes`, what a connection has sent so far: the header and
/// how many bytes it took, or `None` while it is incomplete. A start that cannot become a header
/// is refused as soon as it shows (a client connecting directly sends `GET` or the like at once).
/// Bounded like [`read_header`]: past [`MAX_V1_HEADER`] or [`MAX_V2_HEADER`] it is an error.
pub(crate) fn parse_header(
    bytes: &[u8],
    accept: ProxyProtocol,
) -> io::Result<Option<(ProxyHeader, usize)>> {
    let start = &bytes[..bytes.len().min(5)];
    check_start(start, accept)?;
    if start.len() < 5 {
        return Ok(None);
    }
    if start == b"PROXY" {
        let window = &bytes[..bytes.len().min(MAX_V1_HEADER)];
        return match window.windows(2).position(|w| w == b"\r\n") {
            Some(at) => Ok(Some((decode_v1(&window[..at + 2])?, at + 2))),
            None if window.len() == MAX_V1_HEADER => Err(v1_too_long()),
            None => Ok(None),
        };
    }
    let Some(fixed) = bytes.get(..V2_FIXED) else {
        // The signature so far must still match.
        let have = bytes.len().min(V2_SIGNATURE.len());
        if bytes[..have] != V2_SIGNATURE[..have] {
            return Err(garbled("version 2 signature incomplete"));
        }
        return Ok(None);
    };
    let total = v2_length(fixed)?;
    match bytes.get(..total) {
        Some(header) => Ok(Some((decode_v2(header)?, total))),
        None => Ok(None),
    }
}

/// Refuses a connection whose first bytes (up to 5) cannot begin a header of a version `accept`
/// takes.
fn check_start(start: &[u8], accept: ProxyProtocol) -> io::Result<()> {
    let v1 = accept.accepts_v1() && b"PROXY".starts_with(start);
    let v2 = accept.accepts_v2() && V2_SIGNATURE.starts_with(start);
    if v1 || v2 {
        return Ok(());
    }
    let expected = match accept {
        ProxyProtocol::V1 => "a version 1 header (\"PROXY ...\")",
        ProxyProtocol::V2 => "a version 2 header",
        ProxyProtocol::Any => "a PROXY protocol header",
    };
    Err(garbled(format!(
        "expected {expected}, the connection began with {:?} (a client connecting directly \
         instead of through the load balancer?)",
        String::from_utf8_lossy(start)
    )))
}

fn v1_too_long() -> io::Error {
    garbled(format!(
        "version 1 header longer than {MAX_V1_HEADER} bytes"
    ))
}

/// The whole length of the version 2 header whose fixed part is `fixed`, checked against the
/// limit before anything is allocated.
fn v2_length(fixed: &[u8]) -> io::Result<usize> {
    if fixed[..12] != V2_SIGNATURE[..] {
        return Err(garbled("version 2 signature incomplete"));
    }
    let total = V2_FIXED + usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if total > MAX_V2_HEADER {
        return Err(garbled(format!(
            "version 2 header of {total} bytes, more than the {MAX_V2_HEADER} accepted"
        )));
    }
    Ok(total)
}

fn read_exact(source: &mut impl Read, buf: &mut [u8]) -> io::Result<()> {
    source.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the connection before sending a whole PROXY protocol header",
            )
        } else {
            e
        }
    })
}

/// A whole version 1 line, CRLF included.
fn decode_v1(line: &[u8]) -> io::Result<ProxyHeader> {
    let header = ppp::v1::Header::try_from(line).map_err(garbled)?;
    let (source, destination) = match header.addresses {
        ppp::v1::Addresses::Tcp4(a) => (
            Some(SocketAddr::from((a.source_address, a.source_port))),
            Some(SocketAddr::from((
                a.destination_address,
                a.destination_port,
            ))),
        ),
        ppp::v1::Addresses::Tcp6(a) => (
            Some(SocketAddr::from((a.source_address, a.source_port))),
            Some(SocketAddr::from((
                a.destination_address,
                a.destination_port,
            ))),
        ),
        ppp::v1::Addresses::Unknown => (None, None),
    };
    Ok(ProxyHeader {
        version: 1,
        local: false,
        source,
        destination,
        tlvs: Vec::new(),
    })
}

/// A whole version 2 header.
fn decode_v2(bytes: &[u8]) -> io::Result<ProxyHeader> {
    let header = ppp::v2::Header::try_from(bytes).map_err(garbled)?;
    let (source, destination) = match header.addresses {
        ppp::v2::Addresses::IPv4(a) => (
            Some(SocketAddr::from((a.source_address, a.source_port))),
            Some(SocketAddr::from((
                a.destination_address,
                a.destination_port,
            ))),
        ),
        ppp::v2::Addresses::IPv6(a) => (
            Some(SocketAddr::from((a.source_address, a.source_port))),
            Some(SocketAddr::from((
                a.destination_address,
                a.destination_port,
            ))),
        ),
        ppp::v2::Addresses::Unspecified | ppp::v2::Addresses::Unix(_) => (None, None),
    };
    let local = header.command == ppp::v2::Command::Local;
    Ok(ProxyHeader {
        version: 2,
        local,
        source: source.filter(|_| !local),
        destination: destination.filter(|_| !local),
        tlvs: parse_tlvs(header.tlv_bytes()).map_err(garbled)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut bytes = V2_SIGNATURE.to_vec();
        bytes.push(0x20 | command);
        bytes.push(family);
        bytes.extend_from_slice(&(body.len() as u16).to_be_bytes());
        bytes.extend_from_slice(body);
        bytes
    }

    /// An IPv4 PROXY header from 203.0.113.7:50000 to 10.0.0.1:443, then `tlvs`.
    fn v2_ipv4(tlvs: &[u8]) -> Vec<u8> {
        let mut body = vec![203, 0, 113, 7, 10, 0, 0, 1];
        body.extend_from_slice(&50000u16.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        body.extend_from_slice(tlvs);
        v2(0x1, 0x11, &body)
    }

    #[test]
    fn v1_gives_the_client_and_leaves_what_follows() {
        let input = b"PROXY TCP4 192.0.2.1 10.0.0.1 56324 443\r\nGET / HTTP/1.0\r\n";
        let mut source = &input[..];
        let h = read_header(&mut source, ProxyProtocol::V1).unwrap();
        assert_eq!(h.version(), 1);
        assert_eq!(h.source(), Some("192.0.2.1:56324".parse().unwrap()));
        assert_eq!(h.destination(), Some("10.0.0.1:443".parse().unwrap()));
        assert_eq!(
            source, b"GET / HTTP/1.0\r\n",
            "nothing past the header was read"
        );
        let six = b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n";
        let h = read_header(&six[..], ProxyProtocol::Any).unwrap();
        assert_eq!(h.source(), Some("[2001:db8::1]:1".parse().unwrap()));
        let unknown = read_header(&b"PROXY UNKNOWN\r\n"[..], ProxyProtocol::Any).unwrap();
        assert_eq!(unknown.source(), None);
    }

    #[test]
    fn v1_longer_than_the_limit_is_refused_after_reading_the_limit() {
        let mut input = b"PROXY TCP4 ".to_vec();
        input.resize(1000, b'1');
        let mut source = &input[..];
        let err = read_header(&mut source, ProxyProtocol::V1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("longer than 107"), "{err}");
        assert_eq!(source.len(), 1000 - MAX_V1_HEADER);
    }

    #[test]
    fn v2_gives_the_client_and_its_tlvs() {
        // authority "example.com", then SSL: client TLS + cert, verified, version TLSv1.3.
        let mut tlvs = vec![PP2_TYPE_AUTHORITY, 0, 11];
        tlvs.extend_from_slice(b"example.com");
        let mut ssl = vec![0x03, 0, 0, 0, 0, PP2_SUBTYPE_SSL_VERSION, 0, 7];
        ssl.extend_from_slice(b"TLSv1.3");
        tlvs.push(PP2_TYPE_SSL);
        tlvs.extend_from_slice(&(ssl.len() as u16).to_be_bytes());
        tlvs.extend_from_slice(&ssl);
        let mut input = v2_ipv4(&tlvs);
        input.extend_from_slice(b"after");
        let mut source = &input[..];
        let h = read_header(&mut source, ProxyProtocol::V2).unwrap();
        assert_eq!(source, b"after");
        assert_eq!(h.version(), 2);
        assert!(!h.is_local());
        assert_eq!(h.source(), Some("203.0.113.7:50000".parse().unwrap()));
        assert_eq!(h.destination(), Some("10.0.0.1:443".parse().unwrap()));
        assert_eq!(h.authority(), Some("example.com"));
        assert_eq!(h.tlvs().len(), 2);
        let tls = h.tls().expect("the SSL TLV");
        assert!(tls.is_tls() && tls.client_verified());
        assert_eq!(tls.version(), Some("TLSv1.3"));
        assert_eq!(tls.cipher(), None);
    }

    #[test]
    fn v2_local_is_a_health_check_without_addresses() {
        let h = read_header(&v2(0x0, 0x00, &[])[..], ProxyProtocol::Any).unwrap();
        assert!(h.is_local());
        assert_eq!(h.source(), None);
    }

    #[test]
    fn v2_length_is_bounded_before_allocating() {
        let mut input = V2_SIGNATURE.to_vec();
        input.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        let err = read_header(&input[..], ProxyProtocol::V2).unwrap_err();
        assert!(err.to_string().contains("more than the 4096"), "{err}");
    }

    #[test]
    fn garbled_and_unwanted_headers_are_refused() {
        let cases: [(&[u8], ProxyProtocol, &str); 6] = [
            (
                b"GET / HTTP/1.1\r\n",
                ProxyProtocol::Any,
                "began with \"GET /\"",
            ),
            (b"PROXY TCP4 nonsense\r\n", ProxyProtocol::V1, "bad PROXY"),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
                ProxyProtocol::V2,
                "version 2",
            ),
            (&v2_ipv4(&[]), ProxyProtocol::V1, "version 1"),
            (&v2(0x1, 0x11, &[1, 2, 3]), ProxyProtocol::V2, "bad PROXY"),
            (
                &v2_ipv4(&[PP2_TYPE_AUTHORITY, 0, 9, b'x']),
                ProxyProtocol::V2,
                "bad PROXY",
            ),
        ];
        for (input, accept, says) in cases {
            let err = read_header(input, accept).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
            assert!(err.to_string().contains(says), "{err} should say {says}");
        }
    }

    #[test]
    fn a_short_header_is_an_unexpected_eof() {
        let err = read_header(&b"PROXY TCP4 1.2"[..], ProxyProtocol::Any).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("whole PROXY"), "{err}");
    }

    #[test]
    fn parsing_what_has_arrived_agrees_with_reading_at_every_length() {
        let mut tlvs = vec![PP2_TYPE_AUTHORITY, 0, 11];
        tlvs.extend_from_slice(b"example.com");
        let headers: [&[u8]; 3] = [
            b"PROXY TCP4 192.0.2.1 10.0.0.1 56324 443\r\n",
            b"PROXY UNKNOWN\r\n",
            &v2_ipv4(&tlvs),
        ];
        for header in headers {
            let mut input = header.to_vec();
            input.extend_from_slice(b"GET / HTTP/1.0\r\n");
            let read = read_header(&input[..], ProxyProtocol::Any).unwrap();
            for cut in 0..header.len() {
                assert!(
                    parse_header(&input[..cut], ProxyProtocol::Any)
                        .unwrap()
                        .is_none(),
                    "{cut} bytes of {} are not a header yet",
                    header.len()
                );
            }
            for end in header.len()..=input.len() {
                let (parsed, used) = parse_header(&input[..end], ProxyProtocol::Any)
                    .unwrap()
                    .expect("a whole header");
                assert_eq!(parsed, read);
                assert_eq!(used, header.len(), "nothing past the header is taken");
            }
        }
    }

    #[test]
    fn parsing_refuses_a_wrong_start_at_its_first_byte_and_bounds_both_versions() {
        let err = parse_header(b"G", ProxyProtocol::Any).unwrap_err();
        assert!(err.to_string().contains("began with \"G\""), "{err}");
        let err = parse_header(b"\r\n\r\n\0\r", ProxyProtocol::V1).unwrap_err();
        assert!(err.to_string().contains("version 1"), "{err}");
        let err = parse_header(b"\r\n\r\n\0\r\nQUIX", ProxyProtocol::V2).unwrap_err();
        assert!(err.to_string().contains("signature"), "{err}");
        let mut long = b"PROXY TCP4 ".to_vec();
        long.resize(MAX_V1_HEADER + 10, b'1');
        let err = parse_header(&long, ProxyProtocol::Any).unwrap_err();
        assert!(err.to_string().contains("longer than 107"), "{err}");
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        let err = parse_header(&huge, ProxyProtocol::Any).unwrap_err();
        assert!(err.to_string().contains("more than the 4096"), "{err}");
    }

    #[test]
    fn only_trusted_ip_peers_may_send_headers() {
        let trusted: Vec<TrustedProxy> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer = |ip: &str| Address::from(SocketAddr::new(ip.parse::<IpAddr>().unwrap(), 9));
        assert!(check_trusted(&peer("10.1.2.3"), &trusted).is_ok());
        let err = check_trusted(&peer("127.0.0.1"), &trusted).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            err.to_string()
                .contains("127.0.0.1:9 is not a trusted proxy"),
            "{err}"
        );
        assert!(err.to_string().contains("10.0.0.0/8"), "{err}");
        let none = check_trusted(&peer("10.1.2.3"), &[]).unwrap_err();
        assert!(none.to_string().contains("none are configured"), "{none}");
    }
}
