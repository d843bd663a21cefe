//! TLS for stream and message servers (feature `tls`): [rustls](https://docs.rs/rustls) with the
//! *ring* provider.
//!
//! Load a [`TlsConfig`] into a [`Tls`] and give it to [`Builder::tls`](crate::Builder::tls):
//! handlers then read and write plaintext exactly as before, in every mode and in message
//! servers.
//!
//! ```no_run
//! use std::io::{BufRead, Write};
//! use socketserver::{tls::TlsConfig, Builder, StreamRequest};
//!
//! # fn main() -> std::io::Result<()> {
//! let tls = TlsConfig::new("server.crt", "server.key").load()?;
//! let mut server = Builder::new().tls(tls).bind_tcp("127.0.0.1:8443", |req: &mut StreamRequest| {
//!     let mut line = String::new();
//!     req.read_line(&mut line)?;
//!     req.write_all(line.to_uppercase().as_bytes())
//! })?;
//! server.serve_forever()
//! # }
//! ```
//!
//! * **Handshakes off the accepting thread.** Under `serve_forever` a connection does its
//!   handshake in the server's intake, one thread that waits on every handshaking connection at
//!   once: a connection reaches a worker only once its handshake is done, so a client that
//!   trickles its `ClientHello` (or sends garbage) holds no worker. A message server does the
//!   handshake on its event loop, which drives every connection's session without waiting:
//!   [`MessageHandler::opened`] runs once the handshake is done, and [`Reply::tls`] reads what
//!   it settled (a [`Prefork`](crate::Prefork) worker runs its own loop). A
//!   [`Process`](crate::Process) child does its own, and so does
//!   [`handle_request`](crate::Server::handle_request)'s thread. Every handshake has
//!   [`TlsConfig::handshake_timeout`] from accept; one that fails or is late is reported to
//!   `handle_error` with the reason, and counted in [`Stats::tls_handshake_failures`](crate::Stats::tls_handshake_failures).
//! * **Client certificates** (mutual TLS): [`TlsConfig::client_ca`], optional or required, with
//!   revocation lists; the handler reads the verified identity from [`TlsInfo::peer`].
//! * **SNI and ALPN**: [`TlsConfig::certificate_for`] and [`TlsConfig::alpn`].
//! * **Rotation without a restart**: [`Tls::reload`], or SIGHUP with
//!   [`stop_on_signals`] (a [`Prefork`](crate::Prefork) parent's
//!   SIGHUP starts fresh workers, which read the files as they start). New handshakes use the new
//!   certificates, connections in flight keep theirs, and files that cannot be used leave the old
//!   ones in place.
//!
// Message servers and signals are other features: without them their links lead to the crate's
// feature list.
#![cfg_attr(
    feature = "message",
    doc = "[`MessageHandler::opened`]: crate::message::MessageHandler::opened\n\
           [`Reply::tls`]: crate::message::Reply::tls"
)]
#![cfg_attr(
    not(feature = "message"),
    doc = "[`MessageHandler::opened`]: crate#features\n[`Reply::tls`]: crate#features"
)]
#![cfg_attr(
    feature = "signals",
    doc = "[`stop_on_signals`]: crate::Builder::stop_on_signals"
)]
#![cfg_attr(not(feature = "signals"), doc = "[`stop_on_signals`]: crate#features")]

mod config;
mod files;
pub(crate) mod handshake;
mod info;
mod stream;

pub use config::{ClientAuth, Tls, TlsConfig, DEFAULT_HANDSHAKE_TIMEOUT};
pub use info::{PeerIdentity, TlsInfo};
pub(crate) use stream::TlsStream;
