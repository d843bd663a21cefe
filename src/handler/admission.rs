//! [`Admission`]: what a new connection turned out to be once what precedes its handler was read.

/// What a connection turned out to be once what precedes the handler (the PROXY protocol header)
/// was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A client: serve it.
    Client,
    /// A PROXY protocol version 2 `LOCAL` header: the balancer's own connection (a health check),
    /// not a client. Closed without running the handler.
    #[cfg_attr(not(any(feature = "proxy", feature = "tls")), allow(dead_code))]
    HealthCheck,
}
