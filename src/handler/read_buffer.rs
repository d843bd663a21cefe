//! The request's read buffer, kept apart from the connection so that the read half and the write
//! half of a [split](crate::StreamRequest::split) request can be borrowed at the same time.

use std::fmt;
use std::io::{self, Read};

/// A `BufReader` whose source is passed to each call instead of owned.
pub(crate) struct ReadBuffer {
    /// Allocated on the first read, so a connection handed to a child process, or closed unread,
    /// never pays for it.
    buf: Box<[u8]>,
    pos: usize,
    filled: usize,
    capacity: usize,
    /// Whether a byte ever came in through the buffer: a connection's first request has begun.
    received: bool,
}

impl ReadBuffer {
    pub(crate) fn new(capacity: usize) -> ReadBuffer {
        ReadBuffer {
            buf: Box::default(),
            pos: 0,
            filled: 0,
            capacity: capacity.max(1),
            received: false,
        }
    }

    /// What is buffered, reading once from `source` if nothing is (`BufRead::fill_buf`).
    pub(crate) fn fill_buf(&mut self, mut source: impl Read) -> io::Result<&[u8]> {
        if self.pos >= self.filled {
            if self.buf.is_empty() {
                self.buf = vec![0; self.capacity].into_boxed_slice();
            }
            let n = source.read(&mut self.buf)?;
            self.pos = 0;
            self.filled = n;
            self.received |= n > 0;
        }
        Ok(&self.buf[self.pos..self.filled])
    }

    /// Whether bytes are buffered, so a read would not wait.
    pub(crate) fn has_data(&self) -> bool {
        self.pos < self.filled
    }

    /// Whether any byte was ever read through the buffer.
    pub(crate) fn has_received(&self) -> bool {
        self.received
    }

    pub(crate) fn consume(&mut self, amt: usize) {
        self.pos = self.pos.saturating_add(amt).min(self.filled);
    }

    /// `Read::read` through the buffer.
    pub(crate) fn read(&mut self, mut source: impl Read, out: &mut [u8]) -> io::Result<usize> {
        // As std's BufReader does: a read at least as large as the buffer, with nothing buffered,
        // goes straight to the source and skips a copy.
        if self.pos >= self.filled && out.len() >= self.capacity {
            let n = source.read(out)?;
            self.received |= n > 0;
            return Ok(n);
        }
        let available = self.fill_buf(source)?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl fmt::Debug for ReadBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadBuffer")
            .field("buffered", &(self.filled - self.pos))
            .field("capacity", &self.capacity)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_reads_are_served_from_one_fill_and_large_ones_bypass_it() {
        let data: Vec<u8> = (0..=255).collect();
        let mut source = &data[..];
        let mut buffer = ReadBuffer::new(16);
        let mut out = [0u8; 4];
        assert_eq!(buffer.read(&mut source, &mut out).unwrap(), 4);
        assert_eq!(out, [0, 1, 2, 3]);
        assert_eq!(source.len(), 256 - 16, "one fill of the whole buffer");
        assert_eq!(buffer.fill_buf(&mut source).unwrap(), &data[4..16]);
        buffer.consume(100);
        let mut big = [0u8; 32];
        assert_eq!(buffer.read(&mut source, &mut big).unwrap(), 32);
        assert_eq!(&big[..], &data[16..48]);
        assert_eq!(source.len(), 256 - 48, "read straight from the source");
    }

    #[test]
    fn received_turns_true_with_the_first_byte_by_either_path() {
        let mut buffer = ReadBuffer::new(16);
        assert!(!buffer.has_received());
        assert_eq!(buffer.fill_buf(&b""[..]).unwrap(), b"", "end of file");
        assert!(!buffer.has_received(), "an end of file brings nothing");
        let mut big = [0u8; 32];
        assert_eq!(buffer.read(&b"ab"[..], &mut big).unwrap(), 2);
        assert!(
            buffer.has_received(),
            "a read that bypasses the buffer counts"
        );
        let mut buffer = ReadBuffer::new(16);
        assert_eq!(buffer.fill_buf(&b"x"[..]).unwrap(), b"x");
        assert!(buffer.has_received());
    }

    #[test]
    fn nothing_is_allocated_until_the_first_read() {
        let buffer = ReadBuffer::new(8192);
        assert!(buffer.buf.is_empty());
        assert!(format!("{buffer:?}").contains("buffered: 0"));
    }
}
