//! [`Reply`]: where a message handler writes its answer, and what it knows of the connection.

use std::io::{self, IoSlice, Write};
use std::sync::Arc;

use super::output::{Output, SharedBytes};
use super::sender::{ConnectionId, Link, Sender};
use crate::address::Address;
use crate::control::ServerHandle;

/// What a connection's handler may know of it; shared between the loop and a pool worker.
pub(crate) struct ConnectionInfo {
    pub(crate) id: ConnectionId,
    pub(crate) peer: Address,
    pub(crate) link: Arc<Link>,
    pub(crate) server: ServerHandle,
    /// With TLS: what the handshake settled, set once it is done (before `opened` runs).
    #[cfg(feature = "tls")]
    pub(crate) tls: std::sync::OnceLock<crate::tls::TlsInfo>,
}

/// The answer to a message: bytes written here are sent to the peer when the handler returns, in
/// one write together with the answers to the other messages handled in the same wake-up.
///
/// Writing never blocks and never fails: the bytes wait in the connection's output buffer. While
/// that buffer holds more than [`max_pending_output`](crate::message::MessageBuilder::max_pending_output), the
/// server reads no more messages from the connection until the peer has read enough (so a client
/// pipelining requests without reading answers holds a bounded amount of memory).
pub struct Reply<'a> {
    pub(crate) out: &'a mut Output,
    pub(crate) close: &'a mut bool,
    pub(crate) info: &'a ConnectionInfo,
}

impl Reply<'_> {
    /// The peer's address (the client's, with the PROXY protocol).
    #[must_use]
    pub fn peer_addr(&self) -> &Address {
        &self.info.peer
    }

    /// With TLS ([`Builder::tls`](crate::Builder::tls), feature `tls`): what the connection's
    /// handshake settled — protocol, the server name the client asked for (SNI), the
    /// application protocol chosen (ALPN), the client's verified certificate (mutual TLS). The
    /// handshake is done before [`opened`](super::MessageHandler::opened) runs, so every
    /// handler call of a TLS connection sees it. `None` without TLS.
    ///
    /// ```
    /// use std::io::Write;
    /// use socketserver::message::message_handler;
    ///
    /// // Answers with the name on the client's certificate.
    /// let whoami = message_handler(|_line, reply| {
    ///     let name = reply
    ///         .tls()
    ///         .and_then(|tls| tls.peer())
    ///         .and_then(|peer| peer.common_name())
    ///         .unwrap_or("anonymous")
    ///         .to_string();
    ///     writeln!(reply, "{name}")
    /// });
    /// # let _ = whoami;
    /// ```
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(&self) -> Option<&crate::tls::TlsInfo> {
        self.info.tls.get()
    }

    /// The connection's id, the same for all its messages.
    #[must_use]
    pub fn id(&self) -> ConnectionId {
        self.info.id
    }

    /// A [`Sender`] to push bytes to this connection later, from any thread.
    #[must_use]
    pub fn sender(&self) -> Sender {
        Sender {
            id: self.info.id,
            link: Arc::clone(&self.info.link),
        }
    }

    /// The server, to shut it down or read its stats.
    #[must_use]
    pub fn server(&self) -> &ServerHandle {
        &self.info.server
    }

    /// Closes the connection once what the reply holds is sent: no further message of it is
    /// handled ([`Closed::ByHandler`](super::Closed::ByHandler)).
    pub fn close(&mut self) {
        *self.close = true;
    }

    /// Bytes waiting in this reply's buffer (in [`Single`](crate::Single) mode, the connection's
    /// output buffer, with earlier replies not yet sent).
    #[must_use]
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Queues `bytes` without copying them: a large buffer the application keeps anyway (a
    /// stored value) is sent from where it is, and released once sent. Small ones are copied.
    /// Shared bytes count towards [`max_pending_output`](crate::message::MessageBuilder::max_pending_output)
    /// like the rest, so a peer that does not read holds a reference, not a copy.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use socketserver::message::{message_handler, SharedBytes};
    ///
    /// let page: SharedBytes = Arc::new(vec![b'x'; 1 << 20]); // one copy for every connection
    /// let serve_page = message_handler(move |_request, reply| {
    ///     reply.write_shared(Arc::clone(&page));
    ///     Ok(())
    /// });
    /// # let _ = serve_page;
    /// ```
    pub fn write_shared(&mut self, bytes: SharedBytes) {
        self.out.push_shared(bytes);
    }

    /// Whether nothing is waiting to be sent.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }
}

impl Write for Reply<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.extend(buf);
        Ok(buf.len())
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut n = 0;
        for buf in bufs {
            self.out.extend(buf);
            n += buf.len();
        }
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out.extend(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for Reply<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("id", &self.info.id)
            .field("peer", &self.info.peer)
            .field("len", &self.out.len())
            .field("close", &*self.close)
            .finish()
    }
}
