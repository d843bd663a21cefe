//! [`Framer`]: where one message ends in the bytes a connection has sent, with the built-ins
//! [`Lines`] and [`LengthPrefixed`].

use std::io;
use std::ops::Range;

use crate::framing::Framing;

/// A complete message found at the start of a connection's buffered bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// How many buffered bytes the message takes, framing included: they are dropped from the
    /// buffer once the handler has seen the message.
    pub consumed: usize,
    /// Where the message the handler sees lies in those bytes (a length prefix or a line's end
    /// left out, say). Must lie within `0..consumed`.
    pub message: Range<usize>,
}

impl Frame {
    /// A message of `len` bytes handed to the handler whole, framing and all.
    #[must_use]
    pub fn whole(len: usize) -> Frame {
        Frame {
            consumed: len,
            message: 0..len,
        }
    }
}

/// Decides where a message ends, for a message server (see [`crate::message`]).
///
/// The server calls [`frame`](Self::frame) with the bytes a connection has sent and the handler has
/// not yet seen, starting at a message boundary, after each read. It is cloned for every connection
/// from the one given to the server, so a framer may keep state between calls (how far it has
/// already searched, say), as long as it starts afresh after returning a [`Frame`].
///
/// A framer must look only at the bytes it is given, and must decide early: as soon as the bytes
/// show that a message will be longer than [`limit`](Self::limit) (a length field announcing too
/// much), return an error instead of `Ok(None)`. Independently, the server closes a connection whose
/// buffered bytes reach `limit` without a complete message, so a framer that cannot tell early
/// (a line with no end yet) is still bounded.
///
/// ```
/// use std::io;
/// use socketserver::message::{Frame, Framer};
///
/// /// Messages that end with a NUL byte, which the handler does not see.
/// #[derive(Clone)]
/// struct NulTerminated;
///
/// impl Framer for NulTerminated {
///     fn frame(&mut self, buffered: &[u8]) -> io::Result<Option<Frame>> {
///         Ok(buffered.iter().position(|&b| b == 0).map(|end| Frame {
///             consumed: end + 1,
///             message: 0..end,
///         }))
///     }
///     fn limit(&self) -> usize {
///         4096
///     }
/// }
///
/// let mut framer = NulTerminated;
/// assert_eq!(framer.frame(b"abc").unwrap(), None);
/// assert_eq!(framer.frame(b"abc\0de").unwrap(), Some(Frame { consumed: 4, message: 0..3 }));
/// ```
pub trait Framer: Clone + Send + 'static {
    /// The first complete message in `buffered`, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    ///
    /// The peer broke the protocol (a malformed or over-long message): the server reports the
    /// error to `handle_error` and closes the connection.
    fn frame(&mut self, buffered: &[u8]) -> io::Result<Option<Frame>>;

    /// The most bytes one message may take in the buffer, framing included. The server never
    /// buffers more than this (plus one read) for a message that is not yet complete.
    fn limit(&self) -> usize;
}

/// Lines ending in `\n`; the handler sees each without its `\n` or a `\r` before it.
///
/// A line longer than its limit (64 KiB unless [`max_line_len`](Self::max_line_len) says
/// otherwise) closes the connection. Searching is linear in what arrives: bytes already searched
/// are not searched again, however slowly a line trickles in.
#[derive(Debug, Clone)]
pub struct Lines {
    max_len: usize,
    /// How far the current, incomplete line has been searched.
    searched: usize,
}

impl Lines {
    /// Lines of at most 64 KiB.
    #[must_use]
    pub fn new() -> Lines {
        Lines {
            max_len: 64 * 1024,
            searched: 0,
        }
    }

    /// Accepts lines of at most `bytes`, the `\n` included.
    #[must_use]
    pub fn max_line_len(mut self, bytes: usize) -> Lines {
        self.max_len = bytes.max(1);
        self
    }
}

impl Default for Lines {
    fn default() -> Self {
        Lines::new()
    }
}

impl Framer for Lines {
    fn frame(&mut self, buffered: &[u8]) -> io::Result<Option<Frame>> {
        let from = self.searched.min(buffered.len());
        let Some(at) = buffered[from..].iter().position(|&b| b == b'\n') else {
            self.searched = buffered.len();
            return Ok(None);
        };
        self.searched = 0;
        let end = from + at;
        if end + 1 > self.max_len {
            return Err(too_long("line", end + 1, self.max_len));
        }
        let text_end = if end > 0 && buffered[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        Ok(Some(Frame {
            consumed: end + 1,
            message: 0..text_end,
        }))
    }

    fn limit(&self) -> usize {
        self.max_len
    }
}

/// Length-prefixed frames as [`Framing`] writes them (a 4-byte big-endian length by default,
/// Python's `struct.pack('i', n)` with [`Framing::python_struct_i`]); the handler sees the payload.
///
/// A length over the framing's limit closes the connection as soon as the length field arrives,
/// before a byte of the payload is buffered. Answer with
/// [`Framing::write_frame`](crate::framing::Framing::write_frame) into the [`Reply`](super::Reply).
#[derive(Debug, Clone)]
pub struct LengthPrefixed {
    framing: Framing,
}

impl LengthPrefixed {
    /// Frames as `framing` reads them.
    #[must_use]
    pub fn new(framing: Framing) -> LengthPrefixed {
        LengthPrefixed { framing }
    }

    /// The framing in use, for writing replies.
    #[must_use]
    pub fn framing(&self) -> Framing {
        self.framing
    }

    fn max_payload(&self) -> usize {
        usize::try_from(self.framing.frame_len_limit()).unwrap_or(usize::MAX)
    }
}

impl Default for LengthPrefixed {
    /// [`Framing::new`]'s frames: 4-byte big-endian lengths, at most 8 MiB.
    fn default() -> Self {
        LengthPrefixed::new(Framing::new())
    }
}

impl Framer for LengthPrefixed {
    fn frame(&mut self, buffered: &[u8]) -> io::Result<Option<Frame>> {
        let prefix = self.framing.length_prefix();
        let width = prefix.width().bytes();
        let Some(field) = buffered.get(..width) else {
            return Ok(None);
        };
        let len = prefix.decode(field)?;
        let max = self.max_payload();
        let len = match usize::try_from(len) {
            Ok(len) if len <= max => len,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("frame of {len} bytes is over the limit of {max}"),
                ))
            }
        };
        let total = width + len;
        Ok((buffered.len() >= total).then_some(Frame {
            consumed: total,
            message: width..total,
        }))
    }

    fn limit(&self) -> usize {
        self.framing
            .length_prefix()
            .width()
            .bytes()
            .saturating_add(self.max_payload())
    }
}

fn too_long(what: &str, len: usize, max: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{what} of {len} bytes is over the limit of {max}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_strip_their_end_and_resume_the_search_where_it_stopped() {
        let mut lines = Lines::new();
        assert_eq!(lines.frame(b"hel").unwrap(), None);
        assert_eq!(lines.searched, 3);
        let frame = lines.frame(b"hello\r\nnext").unwrap().unwrap();
        assert_eq!(
            frame,
            Frame {
                consumed: 7,
                message: 0..5
            }
        );
        assert_eq!(lines.searched, 0);
        assert_eq!(
            lines.frame(b"\n").unwrap(),
            Some(Frame {
                consumed: 1,
                message: 0..0
            })
        );
    }

    #[test]
    fn an_over_long_line_is_an_error() {
        let mut lines = Lines::new().max_line_len(4);
        assert_eq!(lines.limit(), 4);
        assert!(lines.frame(b"abc\n").unwrap().is_some());
        let err = lines.frame(b"abcd\n").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("over the limit of 4"), "{err}");
    }

    #[test]
    fn length_prefixed_frames_wait_for_the_whole_payload() {
        let mut framer = LengthPrefixed::default();
        assert_eq!(framer.frame(&[0, 0]).unwrap(), None);
        assert_eq!(framer.frame(&[0, 0, 0, 3, b'a']).unwrap(), None);
        let frame = framer
            .frame(&[0, 0, 0, 3, b'a', b'b', b'c', 9])
            .unwrap()
            .unwrap();
        assert_eq!(
            frame,
            Frame {
                consumed: 7,
                message: 4..7
            }
        );
        assert_eq!(
            framer.frame(&[0, 0, 0, 0]).unwrap(),
            Some(Frame {
                consumed: 4,
                message: 4..4
            })
        );
    }

    #[test]
    fn an_over_long_length_is_refused_before_its_payload() {
        let mut framer = LengthPrefixed::new(Framing::new().max_frame_len(10));
        assert_eq!(framer.limit(), 14);
        let err = framer.frame(&[0, 0, 0, 11]).unwrap_err();
        assert!(err.to_string().contains("over the limit of 10"), "{err}");
        let negative = LengthPrefixed::new(Framing::python_struct_i()).frame(&[0xff; 4]);
        assert_eq!(negative.unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
