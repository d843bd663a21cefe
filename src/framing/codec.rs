//! [`Framing`]: reading and writing length-prefixed frames, exactly.

use std::io::{self, IoSlice, Read, Write};

use super::prefix::{Field, LengthPrefix};
use crate::socket::write::write_all_vectored;

/// The largest frame a [`Framing`] accepts unless told otherwise: 8 MiB.
pub const DEFAULT_MAX_FRAME_LEN: u64 = 8 * 1024 * 1024;

/// Bodies are read in steps of this size, so memory grows with what arrives, not with what the
/// peer announced.
const STEP: usize = 64 * 1024;

/// Frames up to this size are sent with their length field in one write (one TCP segment where
/// possible); larger ones are sent as the field, then the payload, with no copy.
const COALESCE: usize = 16 * 1024;

/// Length-prefixed frames over any [`Read`] or [`Write`]: a [`LengthPrefix`], then exactly that
/// many bytes.
///
/// This is the cure for TCP's "sticky packets" (粘包): a stream has no message boundaries, so
/// one read may return two messages, or half of one. [`read_frame`](Self::read_frame) returns one
/// whole frame however the bytes were split or merged in transit.
///
/// Reading is defensive: the announced length is checked against
/// [`max_frame_len`](Self::max_frame_len) (default [`DEFAULT_MAX_FRAME_LEN`], 8 MiB) *before*
/// anything is allocated, and the buffer then grows only as bytes actually arrive. A negative,
/// oversized or truncated length is an `InvalidData` or `UnexpectedEof` error, never a panic.
///
/// The same value serves both ends of a connection; it is `Copy` and holds no buffers.
///
/// ```
/// use socketserver::framing::Framing;
///
/// # fn main() -> std::io::Result<()> {
/// let framing = Framing::new(); // big-endian u32 lengths, frames of at most 8 MiB
/// let mut wire = Vec::new();
/// framing.write_frame(&mut wire, b"hello")?;
/// framing.write_frame(&mut wire, b"")?;
/// framing.write_frame(&mut wire, b"world")?;
/// assert_eq!(&wire[..9], b"\0\0\0\x05hello");
///
/// // The reader gets the frames back one by one, then `None` at a clean end of stream.
/// let mut reader = &wire[..];
/// assert_eq!(framing.read_frame(&mut reader)?, Some(b"hello".to_vec()));
/// assert_eq!(framing.read_frame(&mut reader)?, Some(Vec::new()));
/// assert_eq!(framing.read_frame(&mut reader)?, Some(b"world".to_vec()));
/// assert_eq!(framing.read_frame(&mut reader)?, None);
///
/// // A length over the limit is refused before anything is allocated.
/// let small = Framing::new().max_frame_len(4);
/// let err = small.read_frame(&mut &wire[..]).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Framing {
    prefix: LengthPrefix,
    max_frame_len: u64,
}

impl Framing {
    /// Big-endian `u32` lengths ([`LengthPrefix::U32_BE`]) and frames of at most 8 MiB.
    #[must_use]
    pub const fn new() -> Self {
        Framing {
            prefix: LengthPrefix::U32_BE,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
        }
    }

    /// The Python tutorial programs' framing: Python's `struct.pack('i', n)` lengths
    /// ([`LengthPrefix::PYTHON_STRUCT_I`]: 4-byte signed, native order), frames of at most 8 MiB.
    #[must_use]
    pub const fn python_struct_i() -> Self {
        Framing::new().prefix(LengthPrefix::PYTHON_STRUCT_I)
    }

    /// Uses `prefix` for the length field.
    #[must_use]
    pub const fn prefix(mut self, prefix: LengthPrefix) -> Self {
        self.prefix = prefix;
        self
    }

    /// Accepts frames of at most `max` bytes, when reading and when writing. The limit is also
    /// capped by what the length field can carry.
    #[must_use]
    pub const fn max_frame_len(mut self, max: u64) -> Self {
        self.max_frame_len = max;
        self
    }

    /// The length field in use.
    #[must_use]
    pub const fn length_prefix(&self) -> LengthPrefix {
        self.prefix
    }

    /// The largest frame accepted: the configured maximum, or less if the field cannot carry it.
    #[must_use]
    pub const fn frame_len_limit(&self) -> u64 {
        let field = self.prefix.max_len();
        if self.max_frame_len < field {
            self.max_frame_len
        } else {
            field
        }
    }

    /// Reads one length field. `Ok(None)` means the stream ended cleanly before it — the peer
    /// closed the connection between frames.
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` for a field cut short; `InvalidData` for a negative length, or one over the
    /// limit; any error of `reader`.
    pub fn read_len<R: Read + ?Sized>(&self, reader: &mut R) -> io::Result<Option<u64>> {
        let width = self.prefix.width().bytes();
        let mut field = [0u8; 8];
        let got = read_full(reader, &mut field[..width])?;
        if got == 0 {
            return Ok(None);
        }
        if got < width {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the stream ended in the middle of a frame's length field ({got} of {width} bytes)"
                ),
            ));
        }
        let len = self.prefix.decode(&field[..width])?;
        if len > self.frame_len_limit() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "malformed or hostile frame: it announces {len} bytes, more than the limit of {}",
                    self.frame_len_limit()
                ),
            ));
        }
        Ok(Some(len))
    }

    /// Reads one whole frame. `Ok(None)` means the stream ended cleanly between frames. See the
    /// type's docs for the limits.
    ///
    /// Each frame is a new `Vec`; [`read_frame_into`](Self::read_frame_into) reuses one instead.
    ///
    /// # Errors
    ///
    /// Those of [`read_len`](Self::read_len), and `UnexpectedEof` for a stream that ends inside a
    /// frame.
    pub fn read_frame<R: Read + ?Sized>(&self, reader: &mut R) -> io::Result<Option<Vec<u8>>> {
        let Some(len) = self.read_len(reader)? else {
            return Ok(None);
        };
        let mut frame = Vec::new();
        read_exactly(reader, &mut frame, len)?;
        Ok(Some(frame))
    }

    /// Reads one whole frame into `buf`, replacing what it held and reusing its memory: the way
    /// to read frame after frame on a connection without allocating for each. `Ok(true)`: `buf`
    /// is the frame's payload; `Ok(false)`: the stream ended cleanly between frames. On
    /// `Ok(false)` or an error, `buf` is left empty.
    ///
    /// The defences are [`read_frame`](Self::read_frame)'s: the announced length is checked
    /// against the limit before anything is allocated, and `buf` grows past the bytes it already
    /// held only as bytes arrive (64 KiB at a time), so a peer that announces a large frame and
    /// sends nothing costs one step, not the frame. The bytes `buf` held are overwritten in
    /// place, and its capacity is never shrunk: a frame no longer than an earlier one costs no
    /// allocation and no clearing. (So a connection that once received a large frame keeps that
    /// memory until `buf` is dropped or shrunk with [`Vec::shrink_to`].)
    ///
    /// # Errors
    ///
    /// Those of [`read_frame`](Self::read_frame).
    ///
    /// ```
    /// use socketserver::framing::Framing;
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let framing = Framing::new();
    /// let mut wire = Vec::new();
    /// framing.write_frame(&mut wire, b"hello")?;
    /// framing.write_frame(&mut wire, b"world")?;
    ///
    /// let mut reader = &wire[..];
    /// let mut frame = Vec::new();
    /// assert!(framing.read_frame_into(&mut reader, &mut frame)?);
    /// assert_eq!(frame, b"hello");
    /// let memory = frame.as_ptr();
    /// assert!(framing.read_frame_into(&mut reader, &mut frame)?);
    /// assert_eq!(frame, b"world");
    /// assert_eq!(frame.as_ptr(), memory); // the same buffer, not a new one
    /// assert!(!framing.read_frame_into(&mut reader, &mut frame)?);
    /// assert!(frame.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_frame_into<R: Read + ?Sized>(
        &self,
        reader: &mut R,
        buf: &mut Vec<u8>,
    ) -> io::Result<bool> {
        let result = self.read_len(reader).and_then(|len| match len {
            Some(len) => read_exactly(reader, buf, len).map(|()| true),
            None => Ok(false),
        });
        if !matches!(result, Ok(true)) {
            buf.clear();
        }
        result
    }

    /// Writes the length field for a frame of `len` bytes, for a caller that then streams the
    /// payload itself (from a file, say, with [`copy_exact`](super::copy_exact)).
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `len` is over the limit (nothing is written); any error of `writer`.
    pub fn write_len<W: Write + ?Sized>(&self, writer: &mut W, len: u64) -> io::Result<()> {
        let field = self.encode_len(len)?;
        writer.write_all(field.as_bytes())
    }

    /// Writes one frame: the length field, then `payload`. Does not flush.
    ///
    /// A small frame is copied into one buffer behind its length field, so that even a writer
    /// without real vectored writes sends it in one write (one segment where possible); that
    /// costs an allocation per frame. [`write_frame_vectored`](Self::write_frame_vectored)
    /// costs none.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a payload over the limit (nothing is written); any error of `writer`.
    pub fn write_frame<W: Write + ?Sized>(&self, writer: &mut W, payload: &[u8]) -> io::Result<()> {
        if payload.len() > COALESCE {
            return self.write_frame_vectored(writer, payload);
        }
        let field = self.encode_len(payload.len() as u64)?;
        let field = field.as_bytes();
        // One buffer, allocated once: one write, and one segment where possible.
        let mut frame = Vec::with_capacity(field.len() + payload.len());
        frame.extend_from_slice(field);
        frame.extend_from_slice(payload);
        writer.write_all(&frame)
    }

    /// Writes one frame, the length field then `payload`, with vectored writes and no allocation
    /// or copy, whatever its size. Does not flush.
    ///
    /// On a socket, a [`StreamRequest`](crate::StreamRequest), a `BufWriter` or a `Vec` this is
    /// one `writev` (one segment where possible): the choice for a hot path, such as an echo
    /// that sends back each frame read with [`read_frame_into`](Self::read_frame_into). A writer
    /// whose `write_vectored` is the default (it writes only the first slice) gets the field
    /// and the payload in two writes; for such a writer [`write_frame`](Self::write_frame) is
    /// better.
    ///
    /// # Errors
    ///
    /// Those of [`write_frame`](Self::write_frame).
    ///
    /// ```
    /// use socketserver::framing::Framing;
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let framing = Framing::new();
    /// let mut wire = Vec::new();
    /// framing.write_frame_vectored(&mut wire, b"hello")?;
    /// assert_eq!(wire, b"\0\0\0\x05hello");
    /// # Ok(())
    /// # }
    /// ```
    pub fn write_frame_vectored<W: Write + ?Sized>(
        &self,
        writer: &mut W,
        payload: &[u8],
    ) -> io::Result<()> {
        let field = self.encode_len(payload.len() as u64)?;
        // Length and payload in one vectored write (one `writev` on a socket): no copy of the
        // payload, and no separate small segment for the length.
        write_all_vectored(
            writer,
            &mut [IoSlice::new(field.as_bytes()), IoSlice::new(payload)],
        )
    }

    fn encode_len(&self, len: u64) -> io::Result<Field> {
        if len > self.max_frame_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a frame of {len} bytes is over the limit of {} bytes",
                    self.max_frame_len
                ),
            ));
        }
        self.prefix.field(len)
    }
}

impl Default for Framing {
    /// [`Framing::new`].
    fn default() -> Self {
        Framing::new()
    }
}

/// Fills `buf` until it is full or the stream ends; returns how many bytes were read.
fn read_full<R: Read + ?Sized>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Makes `buf` exactly the next `len` bytes from `reader`. The bytes `buf` already holds are
/// overwritten in place, not cleared first (a buffer reused for frames of one size costs only
/// the read); past them it grows step by step, as bytes arrive. On an error its contents are
/// unspecified.
fn read_exactly<R: Read + ?Sized>(reader: &mut R, buf: &mut Vec<u8>, len: u64) -> io::Result<()> {
    buf.truncate(usize::try_from(len).unwrap_or(usize::MAX));
    let mut got: u64 = 0;
    while got < len {
        let at = got as usize;
        let end = if at < buf.len() {
            buf.len()
        } else {
            let step = (len - got).min(STEP as u64) as usize;
            buf.resize(at + step, 0);
            at + step
        };
        let n = read_full(reader, &mut buf[at..end])?;
        got += n as u64;
        if at + n < end {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the stream ended in the middle of a frame ({got} of {len} bytes)"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::{ByteOrder, Width};

    /// A writer that takes at most 7 bytes per call, vectored or not, like a congested socket.
    struct Trickle(Vec<u8>);

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(7);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_large_frame_survives_short_vectored_writes() {
        let framing = Framing::new();
        let payload: Vec<u8> = (0..COALESCE + 1000).map(|i| (i % 249) as u8).collect();
        let mut out = Trickle(Vec::new());
        framing.write_frame(&mut out, &payload).unwrap();
        let mut reader = &out.0[..];
        assert_eq!(framing.read_frame(&mut reader).unwrap(), Some(payload));
        assert!(reader.is_empty());
    }

    /// A reader that hands out its bytes in the given chunk sizes (cycling), like a socket whose
    /// segments were split and merged in transit.
    struct Chunked<'a> {
        data: &'a [u8],
        sizes: Vec<usize>,
        next: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let size = self.sizes[self.next % self.sizes.len()].max(1);
            self.next += 1;
            let n = size.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn wire(framing: Framing, frames: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for frame in frames {
            framing.write_frame(&mut out, frame).unwrap();
        }
        out
    }

    fn layouts() -> Vec<LengthPrefix> {
        let mut all = Vec::new();
        for width in [Width::One, Width::Two, Width::Four, Width::Eight] {
            for order in [ByteOrder::Big, ByteOrder::Little, ByteOrder::Native] {
                for signed in [false, true] {
                    all.push(LengthPrefix::new(width, order, signed));
                }
            }
        }
        all
    }

    #[test]
    fn frames_survive_one_byte_reads_in_every_layout() {
        let frames = vec![b"hello".to_vec(), Vec::new(), vec![7u8; 100]];
        for prefix in layouts() {
            let framing = Framing::new().prefix(prefix);
            let data = wire(framing, &frames);
            let mut reader = Chunked {
                data: &data,
                sizes: vec![1],
                next: 0,
            };
            for frame in &frames {
                assert_eq!(
                    framing.read_frame(&mut reader).unwrap().as_ref(),
                    Some(frame)
                );
            }
            assert_eq!(framing.read_frame(&mut reader).unwrap(), None);
        }
    }

    #[test]
    fn the_python_tutorial_layout_is_struct_i() {
        let mut out = Vec::new();
        Framing::python_struct_i()
            .write_frame(&mut out, b"abc")
            .unwrap();
        let mut want = 3i32.to_ne_bytes().to_vec();
        want.extend_from_slice(b"abc");
        assert_eq!(out, want);
    }

    #[test]
    fn truncated_field_and_body_are_unexpected_eof() {
        let framing = Framing::new();
        let err = framing.read_frame(&mut &[0u8, 0][..]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("2 of 4 bytes"), "{err}");
        let err = framing
            .read_frame(&mut &b"\0\0\0\x0ahello"[..])
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("5 of 10 bytes"), "{err}");
    }

    #[test]
    fn oversized_and_negative_lengths_are_invalid_data() {
        let framing = Framing::python_struct_i();
        let huge = i32::MAX.to_ne_bytes();
        let err = framing.read_frame(&mut &huge[..]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("2147483647"), "{err}");
        let negative = (-5i32).to_ne_bytes();
        let err = framing.read_frame(&mut &negative[..]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // u64::MAX in an 8-byte field: over any limit, and no attempt to allocate it.
        let eight = Framing::new().prefix(LengthPrefix::new(Width::Eight, ByteOrder::Big, false));
        let err = eight.read_frame(&mut &[0xffu8; 8][..]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn the_limit_is_capped_by_the_field() {
        let one = Framing::new().prefix(LengthPrefix::new(Width::One, ByteOrder::Big, true));
        assert_eq!(one.frame_len_limit(), 127);
        assert_eq!(Framing::new().frame_len_limit(), DEFAULT_MAX_FRAME_LEN);
    }

    #[test]
    fn writing_over_the_limit_writes_nothing() {
        let framing = Framing::new().max_frame_len(3);
        let mut out = Vec::new();
        let err = framing.write_frame(&mut out, b"four").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(out.is_empty());
    }

    #[test]
    fn large_frames_are_written_without_coalescing_and_read_back() {
        let framing = Framing::new();
        let big = (0..200_000u32).map(|i| i as u8).collect::<Vec<_>>();
        let data = wire(framing, std::slice::from_ref(&big));
        let mut reader = Chunked {
            data: &data,
            sizes: vec![4096, 1, 70_000],
            next: 0,
        };
        assert_eq!(framing.read_frame(&mut reader).unwrap(), Some(big));
    }

    #[test]
    fn read_frame_into_reuses_one_buffer_for_frames_of_one_size() {
        let framing = Framing::new();
        let frames: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1000]).collect();
        let data = wire(framing, &frames);
        let mut reader = Chunked {
            data: &data,
            sizes: vec![3, 700, 1],
            next: 0,
        };
        let mut buf = Vec::new();
        assert!(framing.read_frame_into(&mut reader, &mut buf).unwrap());
        let (memory, capacity) = (buf.as_ptr(), buf.capacity());
        assert_eq!(buf, frames[0]);
        for frame in &frames[1..] {
            assert!(framing.read_frame_into(&mut reader, &mut buf).unwrap());
            assert_eq!(&buf, frame);
            assert_eq!((buf.as_ptr(), buf.capacity()), (memory, capacity));
        }
        assert!(!framing.read_frame_into(&mut reader, &mut buf).unwrap());
        assert!(buf.is_empty());
        assert_eq!(buf.capacity(), capacity, "a clean end keeps the memory");
    }

    #[test]
    fn read_frame_into_never_shrinks_and_reads_smaller_frames_in_place() {
        let framing = Framing::new();
        let big = vec![9u8; 3 * STEP + 17];
        let frames = [big.clone(), b"small".to_vec(), Vec::new(), big];
        let data = wire(framing, &frames);
        let mut reader = &data[..];
        let mut buf = Vec::new();
        assert!(framing.read_frame_into(&mut reader, &mut buf).unwrap());
        let (memory, capacity) = (buf.as_ptr(), buf.capacity());
        for frame in &frames[1..] {
            assert!(framing.read_frame_into(&mut reader, &mut buf).unwrap());
            assert_eq!(&buf, frame);
            assert_eq!((buf.as_ptr(), buf.capacity()), (memory, capacity));
        }
    }

    #[test]
    fn read_frame_into_grows_only_as_bytes_arrive() {
        // 8 MiB announced, 100 bytes sent: one step of memory, not the frame.
        let mut data = (8u32 * 1024 * 1024).to_be_bytes().to_vec();
        data.extend_from_slice(&[7u8; 100]);
        let mut buf = Vec::new();
        let err = Framing::new()
            .read_frame_into(&mut &data[..], &mut buf)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("100 of 8388608"), "{err}");
        assert!(buf.is_empty());
        assert!(buf.capacity() <= STEP, "{}", buf.capacity());

        // A buffer already holding 1000 bytes fills those first, and grows one step past them.
        let mut buf = vec![1u8; 1000];
        let mut data = (8u32 * 1024 * 1024).to_be_bytes().to_vec();
        data.extend_from_slice(&[7u8; 2000]);
        let err = Framing::new()
            .read_frame_into(&mut &data[..], &mut buf)
            .unwrap_err();
        assert!(err.to_string().contains("2000 of 8388608"), "{err}");
        assert!(buf.capacity() <= 2 * (1000 + STEP), "{}", buf.capacity());
    }

    #[test]
    fn read_frame_into_refuses_a_length_over_the_limit_before_touching_the_buffer() {
        let framing = Framing::new().max_frame_len(10);
        let mut buf = Vec::with_capacity(4);
        buf.extend_from_slice(b"old");
        let err = framing
            .read_frame_into(&mut &[0u8, 0, 0, 11, 1, 2][..], &mut buf)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(buf.is_empty());
        assert_eq!(buf.capacity(), 4);
    }

    #[test]
    fn write_frame_vectored_writes_what_write_frame_writes() {
        let framing = Framing::python_struct_i();
        for size in [0, 1, 100, COALESCE, COALESCE + 1, 3 * STEP] {
            let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let mut plain = Vec::new();
            framing.write_frame(&mut plain, &payload).unwrap();
            // A writer without real vectored writes, taking 7 bytes at a time, gets it all too.
            let mut short = Trickle(Vec::new());
            framing.write_frame_vectored(&mut short, &payload).unwrap();
            assert_eq!(short.0, plain, "{size} bytes");
        }
        let err = Framing::new()
            .max_frame_len(3)
            .write_frame_vectored(&mut Vec::new(), b"four")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn prefix_strategy() -> impl Strategy<Value = LengthPrefix> {
            (0usize..4, 0usize..3, any::<bool>()).prop_map(|(w, o, signed)| {
                let width = [Width::One, Width::Two, Width::Four, Width::Eight][w];
                let order = [ByteOrder::Big, ByteOrder::Little, ByteOrder::Native][o];
                LengthPrefix::new(width, order, signed)
            })
        }

        proptest! {
            /// Any sequence of frames, split into any chunking, decodes to the same frames.
            #[test]
            fn any_frames_in_any_chunking_round_trip(
                prefix in prefix_strategy(),
                frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..127), 0..12),
                sizes in proptest::collection::vec(1usize..64, 1..16),
            ) {
                let framing = Framing::new().prefix(prefix);
                let data = wire(framing, &frames);
                let mut reader = Chunked { data: &data, sizes, next: 0 };
                let mut decoded = Vec::new();
                while let Some(frame) = framing.read_frame(&mut reader).unwrap() {
                    decoded.push(frame);
                }
                prop_assert_eq!(decoded, frames);
            }

            /// `read_frame_into` with one buffer reused throughout decodes what `read_frame`
            /// decodes, in any chunking, and the buffer's capacity never goes down.
            #[test]
            fn read_frame_into_round_trips_any_frames_in_one_buffer(
                prefix in prefix_strategy(),
                frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..127), 0..12),
                sizes in proptest::collection::vec(1usize..64, 1..16),
                start in proptest::collection::vec(any::<u8>(), 0..200),
            ) {
                let framing = Framing::new().prefix(prefix);
                let data = wire(framing, &frames);
                let mut reader = Chunked { data: &data, sizes, next: 0 };
                let mut buf = start;
                let mut capacity = buf.capacity();
                let mut decoded = Vec::new();
                while framing.read_frame_into(&mut reader, &mut buf).unwrap() {
                    prop_assert!(buf.capacity() >= capacity);
                    capacity = buf.capacity();
                    decoded.push(buf.clone());
                }
                prop_assert!(buf.is_empty());
                prop_assert_eq!(decoded, frames);
            }

            /// A frame cut anywhere, read into a buffer that held anything, is `UnexpectedEof`
            /// (or a clean end at offset 0) and leaves the buffer empty; growth stays within a
            /// step of what the buffer held or what arrived.
            #[test]
            fn read_frame_into_handles_any_truncation(
                prefix in prefix_strategy(),
                frame in proptest::collection::vec(any::<u8>(), 1..127),
                cut_at in 0usize..256,
                start in proptest::collection::vec(any::<u8>(), 0..200),
            ) {
                let framing = Framing::new().prefix(prefix);
                let data = wire(framing, std::slice::from_ref(&frame));
                let cut = cut_at % data.len();
                let mut buf = start;
                let result = framing.read_frame_into(&mut &data[..cut], &mut buf);
                if cut == 0 {
                    prop_assert!(!result.unwrap());
                } else {
                    prop_assert_eq!(result.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
                }
                prop_assert!(buf.is_empty());
                prop_assert!(buf.capacity() <= 2 * (200 + STEP));
            }

            /// Random bytes into a reused buffer never panic, and never grow it past a step
            /// beyond the input.
            #[test]
            fn read_frame_into_survives_garbage(
                prefix in prefix_strategy(),
                data in proptest::collection::vec(any::<u8>(), 0..64),
            ) {
                let framing = Framing::new().prefix(prefix).max_frame_len(u64::MAX);
                let mut reader = &data[..];
                let mut buf = Vec::new();
                while let Ok(true) = framing.read_frame_into(&mut reader, &mut buf) {
                    prop_assert!(buf.len() <= data.len());
                }
                prop_assert!(buf.capacity() <= STEP);
            }

            /// `write_frame_vectored` puts the same bytes on the wire as `write_frame`.
            #[test]
            fn write_frame_vectored_matches_write_frame(
                prefix in prefix_strategy(),
                payload in proptest::collection::vec(any::<u8>(), 0..127),
            ) {
                let framing = Framing::new().prefix(prefix);
                let mut plain = Vec::new();
                let mut vectored = Trickle(Vec::new());
                let a = framing.write_frame(&mut plain, &payload).map_err(|e| e.kind());
                let b = framing.write_frame_vectored(&mut vectored, &payload).map_err(|e| e.kind());
                prop_assert_eq!(a, b);
                prop_assert_eq!(plain, vectored.0);
            }

            /// Every length over the limit is refused, whatever follows it, and nothing of the
            /// announced size is allocated (the frame buffer is never created).
            #[test]
            fn lengths_over_the_limit_are_rejected(
                prefix in prefix_strategy(),
                limit in 0u64..1024,
                excess in 1u64..u64::MAX / 2,
                tail in proptest::collection::vec(any::<u8>(), 0..32),
            ) {
                let framing = Framing::new().prefix(prefix).max_frame_len(limit);
                let announced = limit.saturating_add(excess).min(prefix.max_len());
                prop_assume!(announced > framing.frame_len_limit());
                let mut data = prefix.encode(announced).unwrap();
                data.extend_from_slice(&tail);
                let err = framing.read_frame(&mut &data[..]).unwrap_err();
                prop_assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            }

            /// Any frame cut anywhere is `UnexpectedEof` (or a clean `None` at offset 0).
            #[test]
            fn any_truncation_is_unexpected_eof(
                prefix in prefix_strategy(),
                frame in proptest::collection::vec(any::<u8>(), 1..127),
                cut_at in 0usize..256,
            ) {
                let framing = Framing::new().prefix(prefix);
                let data = wire(framing, std::slice::from_ref(&frame));
                let cut = cut_at % data.len();
                let result = framing.read_frame(&mut &data[..cut]);
                if cut == 0 {
                    prop_assert_eq!(result.unwrap(), None);
                } else {
                    prop_assert_eq!(result.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
                }
            }

            /// Random bytes never panic the reader: each read is a frame, a clean end, or an error.
            #[test]
            fn garbage_never_panics(
                prefix in prefix_strategy(),
                data in proptest::collection::vec(any::<u8>(), 0..64),
            ) {
                let framing = Framing::new().prefix(prefix).max_frame_len(32);
                let mut reader = &data[..];
                while let Ok(Some(frame)) = framing.read_frame(&mut reader) {
                    prop_assert!(frame.len() <= 32);
                }
            }
        }
    }
}
