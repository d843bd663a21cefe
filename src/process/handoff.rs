//! What a per-request child needs besides its inherited socket: the server's and the peer's
//! addresses and, for a datagram server, the datagram. The parent writes it to the child's stdin.
//!
//! Format: three length-prefixed fields (`u32` little-endian length, then the bytes): the server's
//! raw socket address, the peer's raw socket address, the datagram (empty for a connection).

use std::io::{self, Read, Write};
use std::os::fd::RawFd;

use socket2::SockAddr;

use crate::address::Address;

/// A request on its way to a child process.
#[derive(Debug)]
pub(crate) struct Handoff {
    /// The connection, or the server's datagram socket. Owned by the task; valid while it lives.
    pub(crate) fd: RawFd,
    pub(crate) local: Address,
    pub(crate) peer: Address,
    pub(crate) datagram: Vec<u8>,
}

impl Handoff {
    pub(crate) fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut message = Vec::with_capacity(64 + self.datagram.len());
        for field in [
            sockaddr_bytes(self.local.as_sockaddr()),
            sockaddr_bytes(self.peer.as_sockaddr()),
            &self.datagram,
        ] {
            let len = u32::try_from(field.len()).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "datagram too large to hand off",
                )
            })?;
            message.extend_from_slice(&len.to_le_bytes());
            message.extend_from_slice(field);
        }
        out.write_all(&message)?;
        out.flush()
    }
}

/// The child's side: addresses and datagram, read from `input` (stdin).
#[derive(Debug)]
pub struct Received {
    pub(crate) local: Address,
    pub(crate) peer: Address,
    pub(crate) datagram: Vec<u8>,
}

impl Received {
    /// Reads the handoff; `max_datagram` bounds the allocation.
    pub(crate) fn read_from(input: &mut impl Read, max_datagram: usize) -> io::Result<Self> {
        let addr_limit = std::mem::size_of::<libc::sockaddr_storage>();
        let local = read_sockaddr(input, addr_limit)?;
        let peer = read_sockaddr(input, addr_limit)?;
        let datagram = read_field(input, max_datagram)?;
        Ok(Received {
            local,
            peer,
            datagram,
        })
    }
}

fn sockaddr_bytes(addr: &SockAddr) -> &[u8] {
    // SAFETY: `as_ptr` points at storage at least `len()` bytes long, alive as long as `addr`.
    unsafe { std::slice::from_raw_parts(addr.as_ptr().cast::<u8>(), addr.len() as usize) }
}

fn read_field(input: &mut impl Read, limit: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len).map_err(handoff_error)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("request handoff field of {len} bytes exceeds the limit of {limit}"),
        ));
    }
    let mut field = vec![0u8; len];
    input.read_exact(&mut field).map_err(handoff_error)?;
    Ok(field)
}

fn read_sockaddr(input: &mut impl Read, limit: usize) -> io::Result<Address> {
    let bytes = read_field(input, limit)?;
    // SAFETY: `try_init` hands us zeroed storage of `sockaddr_storage` size; we copy at most that
    // many bytes (checked by `read_field`) and report exactly how many.
    let ((), addr) = unsafe {
        SockAddr::try_init(|storage, len| {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), storage.cast::<u8>(), bytes.len());
            *len = bytes.len() as libc::socklen_t;
            Ok(())
        })
    }?;
    Ok(Address::from_sockaddr(addr))
}

fn handoff_error(e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("cannot read the request handed over by the parent process on stdin: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn a_handoff_reads_back_as_written() {
        let local: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let peer: SocketAddr = "[::1]:40000".parse().unwrap();
        let handoff = Handoff {
            fd: 3,
            local: local.into(),
            peer: peer.into(),
            datagram: b"hello".to_vec(),
        };
        let mut wire = Vec::new();
        handoff.write_to(&mut wire).unwrap();
        let got = Received::read_from(&mut wire.as_slice(), 100).unwrap();
        assert_eq!(got.local, Address::from(local));
        assert_eq!(got.peer, Address::from(peer));
        assert_eq!(got.datagram, b"hello");
    }

    #[test]
    fn an_oversized_or_cut_off_handoff_is_an_error() {
        let handoff = Handoff {
            fd: 3,
            local: "127.0.0.1:1".parse::<SocketAddr>().unwrap().into(),
            peer: "127.0.0.1:2".parse::<SocketAddr>().unwrap().into(),
            datagram: vec![7; 50],
        };
        let mut wire = Vec::new();
        handoff.write_to(&mut wire).unwrap();
        let err = Received::read_from(&mut wire.as_slice(), 10).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let err = Received::read_from(&mut &wire[..wire.len() - 1], 100).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
