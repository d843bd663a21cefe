//! Python's `sendall` on a request's guarded connection: every byte handed to the kernel, or an
//! error.

use std::io::{self, IoSlice, Write};

use super::limits::Guarded;
use crate::socket::write::write_all_vectored;

/// Python's `sendall`: all of `buf`, or an error.
pub(crate) fn send_all(mut conn: &Guarded, buf: &[u8]) -> io::Result<usize> {
    conn.write_all(buf)?;
    Ok(buf.len())
}

/// `sendall` for several buffers, with as few `writev` calls as the socket allows.
pub(crate) fn send_all_vectored(mut conn: &Guarded, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let total = bufs.iter().map(|b| b.len()).sum();
    // Usually one writev takes everything; only a short write pays for a copy of the slices
    // (`advance_slices` needs them mutable).
    let sent = loop {
        match conn.write_vectored(bufs) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => break other?,
        }
    };
    if sent < total {
        let mut left: Vec<IoSlice<'_>> = bufs.to_vec();
        let mut left = left.as_mut_slice();
        IoSlice::advance_slices(&mut left, sent);
        write_all_vectored(&mut conn, left)?;
    }
    Ok(total)
}
