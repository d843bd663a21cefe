//! The PROXY protocol (versions 1 and 2, from `HAProxy`; feature `proxy`): the header a load
//! balancer sends at the start of each connection to say who the client really is. Turned on with
//! [`Builder::proxy_protocol`](crate::Builder::proxy_protocol) and
//! [`Builder::trusted_proxies`](crate::Builder::trusted_proxies); parsed with the `ppp` crate.
//!
//! When it is on, each new connection waits for its header in the server's intake, a thread that
//! watches all of them at once, and reaches the concurrency mode (or a message server's loop)
//! only once the header is whole: a balancer slow to send it holds no worker and stalls no one.
//! The header is read before `verify_request` and the handler's `setup`. Then [`StreamRequest::peer_addr`](crate::StreamRequest::peer_addr)
//! is the client's address, [`proxy_addr`](crate::StreamRequest::proxy_addr) the balancer's,
//! and [`proxy_header`](crate::StreamRequest::proxy_header) holds the version 2 TLVs.

mod header;
mod trust;

pub use header::{ProxyHeader, Tls, Tlv};
pub use trust::TrustedProxy;

pub(crate) use header::{check_trusted, parse_header, read_header};

use std::time::Duration;

/// How long a balancer may take to send the header, unless
/// [`Builder::proxy_header_timeout`](crate::Builder::proxy_header_timeout) says otherwise.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest version 2 header accepted: its 16 fixed bytes plus addresses and TLVs. Real
/// balancers send well under 1 KiB; the limit is checked before anything is allocated.
pub const MAX_V2_HEADER: usize = 4096;

/// The longest version 1 header, by the specification: `PROXY TCP6` with two full IPv6
/// addresses and ports, and the CRLF.
pub const MAX_V1_HEADER: usize = 107;

/// Which PROXY protocol versions a server accepts (see
/// [`Builder::proxy_protocol`](crate::Builder::proxy_protocol)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocol {
    /// Version 1, the text header (`PROXY TCP4 …\r\n`): `send-proxy` in `HAProxy`, nginx's
    /// `proxy_protocol on`.
    V1,
    /// Version 2, the binary header with TLVs: `send-proxy-v2` in `HAProxy`, most cloud balancers.
    V2,
    /// Either version, told apart by the first bytes.
    Any,
}

impl ProxyProtocol {
    fn accepts_v1(self) -> bool {
        self != ProxyProtocol::V2
    }

    fn accepts_v2(self) -> bool {
        self != ProxyProtocol::V1
    }
}

impl std::str::FromStr for ProxyProtocol {
    type Err = std::io::Error;

    /// `v1`, `v2` or `any`.
    fn from_str(text: &str) -> std::io::Result<Self> {
        match text {
            "v1" => Ok(ProxyProtocol::V1),
            "v2" => Ok(ProxyProtocol::V2),
            "any" => Ok(ProxyProtocol::Any),
            other => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("PROXY protocol version {other:?}: expected v1, v2 or any"),
            )),
        }
    }
}

/// The server's PROXY protocol settings, shared by every connection.
#[derive(Debug, Clone)]
pub(crate) struct ProxyConfig {
    /// `None`: not turned on (only trusted proxies were given).
    pub(crate) version: Option<ProxyProtocol>,
    pub(crate) trusted: Vec<TrustedProxy>,
    /// Messages for the malformed trusted proxies given, reported when the server binds.
    pub(crate) invalid: Vec<String>,
    pub(crate) timeout: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            version: None,
            trusted: Vec::new(),
            invalid: Vec::new(),
            timeout: DEFAULT_HEADER_TIMEOUT,
        }
    }
}
