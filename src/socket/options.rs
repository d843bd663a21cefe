//! Socket options chosen by the user (through [`Builder`](crate::Builder)), with their defaults.

use std::time::Duration;

/// Listen backlog used unless [`Builder::backlog`](crate::Builder::backlog) says otherwise.
///
/// Python's `request_queue_size` of 5 drops connections in any burst; 1024 absorbs bursts of a
/// busy threaded server, and the kernel caps it at `net.core.somaxconn` anyway.
pub const DEFAULT_BACKLOG: u32 = 1024;

/// Largest datagram handed to a handler unless [`Builder::max_packet_size`](crate::Builder::max_packet_size)
/// says otherwise (Python's `DatagramRequestHandler` default).
pub const DEFAULT_MAX_PACKET_SIZE: usize = 8192;

/// Options applied when a socket is created and bound.
#[derive(Debug, Clone)]
pub(crate) struct BindOptions {
    /// `None`: the transport's default (on for stream sockets, off for datagram sockets).
    pub reuse_address: Option<bool>,
    pub reuse_port: bool,
    pub backlog: u32,
    /// `None`: leave `IPV6_V6ONLY` at the operating system's default.
    pub only_v6: Option<bool>,
}

impl Default for BindOptions {
    fn default() -> Self {
        BindOptions {
            reuse_address: None,
            reuse_port: false,
            backlog: DEFAULT_BACKLOG,
            only_v6: None,
        }
    }
}

/// Options applied to every accepted connection, explicitly, so nothing is inherited by accident
/// from the listening socket.
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    pub nodelay: bool,
    pub read_timeout: Option<Duration>,
    pub write_timeout: Option<Duration>,
    /// Longest a stream connection may go with no byte moving either way.
    pub idle_timeout: Option<Duration>,
    /// Longest a stream connection may last, from accept.
    pub max_lifetime: Option<Duration>,
    pub max_packet_size: usize,
    /// The PROXY protocol settings, when the server expects a header on each connection.
    #[cfg(feature = "proxy")]
    pub(crate) proxy: Option<std::sync::Arc<crate::proxy::ProxyConfig>>,
    /// TLS, and who does each connection's handshake.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<TlsOptions>,
}

/// A server's TLS: the certificates, and where handshakes happen.
#[cfg(feature = "tls")]
#[derive(Debug, Clone)]
pub(crate) struct TlsOptions {
    pub(crate) tls: crate::tls::Tls,
    pub(crate) handshake: HandshakeBy,
}

/// Who does a connection's TLS handshake.
#[cfg(feature = "tls")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeBy {
    /// This process: the intake, or the thread that runs the request.
    Server,
    /// The child process the connection is handed to (a `Process` parent only passes it on).
    Child,
    /// A message server's event loop (its accepting server only passes connections on).
    #[cfg_attr(not(feature = "message"), allow(dead_code))]
    MessageLoop,
}

impl ConnectionOptions {
    /// The TLS this process's requests do their handshake with, if any.
    #[cfg(feature = "tls")]
    pub(crate) fn tls_here(&self) -> Option<&crate::tls::Tls> {
        self.tls
            .as_ref()
            .filter(|t| t.handshake == HandshakeBy::Server)
            .map(|t| &t.tls)
    }
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            nodelay: true,
            read_timeout: None,
            write_timeout: None,
            idle_timeout: None,
            max_lifetime: None,
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            #[cfg(feature = "proxy")]
            proxy: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}
