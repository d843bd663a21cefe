//! [`Address`]: one type for every peer and local address the crate reports.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use socket2::SockAddr;

/// A socket address of any family this crate serves: IPv4, IPv6 or Unix.
///
/// It is what [`StreamRequest::peer_addr`](crate::StreamRequest::peer_addr),
/// [`Server::local_addr`](crate::Server::local_addr) and friends return, so one handler can serve TCP
/// and Unix sockets alike. It is `Eq + Hash`, so it can key a map of clients (a chat room, say).
///
/// `Display` prints `127.0.0.1:8080`, `[::1]:8080`, a Unix socket's path, `@name` for a Linux
/// abstract-namespace socket, or `(unnamed)` for an unbound Unix socket (the usual peer of a Unix
/// stream server, and of a Unix datagram server whose client did not bind a path).
///
/// Equality compares the raw socket address, so `127.0.0.1:80` and the IPv4-mapped
/// `[::ffff:127.0.0.1]:80` (what a dual-stack server sees) are different addresses.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Address(SockAddr);

impl Address {
    pub(crate) fn from_sockaddr(addr: SockAddr) -> Self {
        Address(addr)
    }

    pub(crate) fn as_sockaddr(&self) -> &SockAddr {
        &self.0
    }

    /// The IP address and port, for IPv4 and IPv6 sockets.
    #[must_use]
    pub fn as_inet(&self) -> Option<SocketAddr> {
        self.0.as_socket()
    }

    /// The file system path, for a Unix socket bound to a path.
    #[must_use]
    pub fn as_unix_path(&self) -> Option<&Path> {
        self.0.as_pathname()
    }

    /// Whether this is a Unix-domain address (named, abstract or unnamed).
    #[must_use]
    pub fn is_unix(&self) -> bool {
        self.0.is_unix()
    }

    /// Whether this is an unbound Unix socket's address, which nothing can be sent to.
    #[must_use]
    pub fn is_unnamed_unix(&self) -> bool {
        self.0.is_unnamed()
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Self {
        Address(SockAddr::from(addr))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(inet) = self.as_inet() {
            return write!(f, "{inet}");
        }
        if let Some(path) = self.as_unix_path() {
            return write!(f, "{}", path.display());
        }
        if let Some(name) = self.0.as_abstract_namespace() {
            return write!(f, "@{}", String::from_utf8_lossy(name));
        }
        if self.0.is_unnamed() {
            return f.write_str("(unnamed)");
        }
        f.write_str("(unknown address family)")
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_inet_addresses_like_std() {
        let v4: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let v6: SocketAddr = "[::1]:9000".parse().unwrap();
        assert_eq!(Address::from(v4).to_string(), "127.0.0.1:8080");
        assert_eq!(Address::from(v6).to_string(), "[::1]:9000");
        assert_eq!(Address::from(v4).as_inet(), Some(v4));
        assert!(!Address::from(v4).is_unix());
    }

    #[test]
    fn displays_unix_paths_and_unnamed_sockets() {
        let named = Address::from_sockaddr(SockAddr::unix("/tmp/x.sock").unwrap());
        assert_eq!(named.to_string(), "/tmp/x.sock");
        assert_eq!(named.as_unix_path(), Some(Path::new("/tmp/x.sock")));
        assert!(named.is_unix());
        assert_eq!(named.as_inet(), None);
        assert!(!named.is_unnamed_unix());

        let unnamed = Address::from_sockaddr(SockAddr::unix("").unwrap());
        assert_eq!(unnamed.to_string(), "(unnamed)");
        assert!(unnamed.is_unix() && unnamed.is_unnamed_unix());
    }

    #[test]
    fn equal_addresses_hash_alike() {
        use std::collections::HashSet;
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let set: HashSet<Address> = [Address::from(a), Address::from(a)].into_iter().collect();
        assert_eq!(set.len(), 1);
    }
}
