//! The two halves of a [`StreamRequest`](crate::StreamRequest), Python's `rfile` and `wfile`:
//! read lines from one while writing answers to the other.

use std::io::{self, BufRead, IoSlice, Read, Write};

use super::limits::Guarded;
use super::read_buffer::ReadBuffer;
use super::send::{send_all, send_all_vectored};

/// The reading half of a split request: buffered like the request, and sharing its buffer, so
/// nothing read ahead is lost between the request and its halves. See
/// [`StreamRequest::split`](crate::StreamRequest::split).
#[derive(Debug)]
pub struct ReadHalf<'a> {
    pub(crate) buffer: &'a mut ReadBuffer,
    pub(crate) conn: &'a Guarded,
}

/// The writing half of a split request: every write sends all of its bytes or fails, as on the
/// request. It is `Copy`, so several parts of a handler can hold one.
#[derive(Debug, Clone, Copy)]
pub struct WriteHalf<'a> {
    pub(crate) conn: &'a Guarded,
}

impl Read for ReadHalf<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.buffer.read(self.conn, buf)
    }
}

impl BufRead for ReadHalf<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.buffer.fill_buf(self.conn)
    }

    fn consume(&mut self, amt: usize) {
        self.buffer.consume(amt);
    }
}

impl Write for WriteHalf<'_> {
    /// Writes all of `buf` and returns `buf.len()`, or fails.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send_all(self.conn, buf)
    }

    /// Writes all of `bufs` (one `writev`, usually) and returns their total length, or fails.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        send_all_vectored(self.conn, bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
