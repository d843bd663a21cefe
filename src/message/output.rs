//! A connection's unsent bytes: what handlers wrote, in order, plus large buffers shared with the
//! application (a stored value) that are sent from where they are instead of being copied.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

/// Unsent bytes a connection may hold before the server stops reading its messages (and before a
/// push closes it), unless
/// [`MessageBuilder::max_pending_output`](super::MessageBuilder::max_pending_output) says
/// otherwise.
pub const DEFAULT_MAX_PENDING_OUTPUT: usize = 1024 * 1024;

/// Bytes shared with the application: sent without a copy, kept alive until sent.
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Shared buffers smaller than this are copied: an iovec entry costs more than the copy.
const SHARE_MIN: usize = 4096;
/// A buffer kept for the next replies once everything is sent, if it is no larger than this: an
/// idle connection keeps no large buffer, a busy one does not allocate per reply.
const KEEP_BUFFER: usize = 16 * 1024;
/// The most pieces one `writev` takes.
const MAX_SLICES: usize = 64;

enum Chunk {
    Owned(Vec<u8>),
    Shared(SharedBytes),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(s) => (**s).as_ref(),
        }
    }
}

/// Unsent bytes, in order.
#[derive(Default)]
pub(crate) struct Output {
    chunks: VecDeque<Chunk>,
    /// How much of the front chunk is sent.
    sent: usize,
    /// Unsent bytes in all.
    len: usize,
}

impl Output {
    /// Unsent bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a copy of `bytes`.
    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match self.chunks.back_mut() {
            Some(Chunk::Owned(v)) => v.extend_from_slice(bytes),
            _ => self.chunks.push_back(Chunk::Owned(bytes.to_vec())),
        }
        self.len += bytes.len();
    }

    /// Appends `bytes` without copying them (small ones are copied anyway).
    pub(crate) fn push_shared(&mut self, bytes: SharedBytes) {
        let n = (*bytes).as_ref().len();
        if n < SHARE_MIN {
            self.extend((*bytes).as_ref());
            return;
        }
        self.chunks.push_back(Chunk::Shared(bytes));
        self.len += n;
    }

    /// Moves everything in `other` behind what is here.
    pub(crate) fn append(&mut self, other: Output) {
        if self.is_empty() {
            *self = other;
            return;
        }
        let mut other = other;
        // The part of other's front chunk already sent cannot be: other was never written.
        debug_assert_eq!(other.sent, 0);
        while let Some(chunk) = other.chunks.pop_front() {
            match chunk {
                Chunk::Owned(v) => self.extend(&v),
                Chunk::Shared(s) => {
                    self.len += (*s).as_ref().len();
                    self.chunks.push_back(Chunk::Shared(s));
                }
            }
        }
    }

    /// Drops everything unsent.
    pub(crate) fn clear(&mut self) {
        *self = Output::default();
    }

    /// Writes what `sink` takes in one vectored write; `Ok(0)` only when nothing is left.
    pub(crate) fn write_to(&mut self, sink: &mut impl Write) -> io::Result<usize> {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let mut count = 0;
        for (i, chunk) in self.chunks.iter().enumerate().take(MAX_SLICES) {
            let bytes = chunk.bytes();
            let bytes = if i == 0 { &bytes[self.sent..] } else { bytes };
            if !bytes.is_empty() {
                slices[count] = IoSlice::new(bytes);
                count += 1;
            }
        }
        if count == 0 {
            return Ok(0);
        }
        let n = sink.write_vectored(&slices[..count])?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        self.advance(n);
        Ok(n)
    }

    fn advance(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                return;
            };
            let left = front.bytes().len() - self.sent;
            if n < left {
                self.sent += n;
                return;
            }
            n -= left;
            self.sent = 0;
            self.pop_front();
        }
        // Sent chunks in front (empty ones) go too, except a buffer worth keeping.
        while self
            .chunks
            .front()
            .is_some_and(|c| c.bytes().is_empty() && self.chunks.len() > 1)
        {
            self.chunks.pop_front();
        }
    }

    /// Drops the fully sent front chunk, keeping a small owned buffer when it was the last.
    fn pop_front(&mut self) {
        if self.chunks.len() == 1 {
            if let Some(Chunk::Owned(v)) = self.chunks.front_mut() {
                if v.capacity() <= KEEP_BUFFER {
                    v.clear();
                    return;
                }
            }
        }
        self.chunks.pop_front();
        if self.chunks.is_empty() && self.chunks.capacity() > 8 {
            self.chunks = VecDeque::new();
        }
    }

    /// The capacity of the owned buffers held (the memory budget's measure; shared buffers are
    /// the application's).
    pub(crate) fn retained(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| match c {
                Chunk::Owned(v) => v.capacity(),
                Chunk::Shared(_) => 0,
            })
            .sum()
    }

    /// The bytes of every chunk, for tests.
    #[cfg(test)]
    fn unsent(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for (i, chunk) in self.chunks.iter().enumerate() {
            let bytes = chunk.bytes();
            all.extend_from_slice(if i == 0 { &bytes[self.sent..] } else { bytes });
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink taking at most `max` bytes per write.
    struct Trickle {
        got: Vec<u8>,
        max: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.max);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(self.max - n);
                self.got.extend_from_slice(&buf[..take]);
                n += take;
                if n == self.max {
                    break;
                }
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn copied_and_shared_bytes_leave_in_order_through_partial_writes() {
        let big: SharedBytes = Arc::new(vec![7u8; 10_000]);
        let mut out = Output::default();
        out.extend(b"head:");
        out.push_shared(Arc::clone(&big));
        out.extend(b":tail");
        out.push_shared(Arc::new(b"small".to_vec())); // copied
        let mut expected = b"head:".to_vec();
        expected.extend_from_slice(&[7u8; 10_000]);
        expected.extend_from_slice(b":tailsmall");
        assert_eq!(out.len(), expected.len());
        assert_eq!(out.unsent(), expected);
        assert_eq!(Arc::strong_count(&big), 2, "shared, not copied");
        let mut sink = Trickle {
            got: Vec::new(),
            max: 777,
        };
        while out.write_to(&mut sink).unwrap() > 0 {}
        assert_eq!(sink.got, expected);
        assert!(out.is_empty());
        assert_eq!(Arc::strong_count(&big), 1, "released once sent");
    }

    #[test]
    fn append_keeps_the_order_and_a_small_buffer_is_kept_for_reuse() {
        let mut out = Output::default();
        out.extend(b"one ");
        let mut more = Output::default();
        more.extend(b"two ");
        more.push_shared(Arc::new(vec![b'3'; 5000]));
        out.append(more);
        assert_eq!(out.unsent().len(), 8 + 5000);
        let mut sink = Trickle {
            got: Vec::new(),
            max: usize::MAX,
        };
        out.write_to(&mut sink).unwrap();
        assert!(out.is_empty());
        assert!(sink.got.starts_with(b"one two 333"));
        // A big owned buffer is not kept once sent.
        out.extend(&vec![1u8; 100_000]);
        out.write_to(&mut sink).unwrap();
        assert!(out
            .chunks
            .iter()
            .all(|c| matches!(c, Chunk::Owned(v) if v.capacity() <= KEEP_BUFFER)));
    }
}
