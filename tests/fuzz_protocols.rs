//! Property tests of the library's own parsers against arbitrary and adversarial bytes, in
//! arbitrary chunkings: the framing codec (lengths, frames, JSON headers) and the authentication
//! handshake. No panic, memory bounded by what arrived, and work linear in the input — counted
//! as read calls and bytes handed out by the reader, never timed. (The examples' parsers have
//! their own: `resp_kv_parser`, `http_head`, `fuzz_file_server`.)

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use proptest::prelude::*;
use socketserver::framing::{ByteOrder, Framing, LengthPrefix, Width};

/// A reader over `data` that hands it out in the given chunk sizes (cycled), counting its calls
/// and the bytes it returned.
struct Chunked {
    data: Vec<u8>,
    pos: usize,
    chunks: Vec<usize>,
    next: usize,
    calls: Rc<Cell<usize>>,
}

impl Chunked {
    fn new(data: Vec<u8>, chunks: Vec<usize>) -> (Chunked, Rc<Cell<usize>>) {
        let calls = Rc::new(Cell::new(0));
        let reader = Chunked {
            data,
            pos: 0,
            chunks,
            next: 0,
            calls: Rc::clone(&calls),
        };
        (reader, calls)
    }
}

impl Read for Chunked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls.set(self.calls.get() + 1);
        let chunk = self.chunks[self.next % self.chunks.len()].max(1);
        self.next += 1;
        let n = chunk.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The handshake needs a stream with a read timeout; this one reads from a `Chunked` and
/// swallows what is written.
#[cfg(feature = "auth")]
struct Peer {
    input: Chunked,
    written: usize,
}

#[cfg(feature = "auth")]
impl Read for Peer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

#[cfg(feature = "auth")]
impl std::io::Write for Peer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(feature = "auth")]
impl socketserver::auth::TimedStream for Peer {
    fn read_timeout(&self) -> io::Result<Option<std::time::Duration>> {
        Ok(None)
    }
    fn set_read_timeout(&self, _: Option<std::time::Duration>) -> io::Result<()> {
        Ok(())
    }
}

fn prefixes() -> impl Strategy<Value = LengthPrefix> {
    (
        prop_oneof![
            Just(Width::One),
            Just(Width::Two),
            Just(Width::Four),
            Just(Width::Eight)
        ],
        prop_oneof![
            Just(ByteOrder::Big),
            Just(ByteOrder::Little),
            Just(ByteOrder::Native)
        ],
        any::<bool>(),
    )
        .prop_map(|(width, order, signed)| LengthPrefix::new(width, order, signed))
}

/// Bytes that look like frames: plausible and hostile length fields mixed with payload bytes.
fn frame_like() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(vec![0, 0, 0, 0]),
            Just(vec![0xff, 0xff, 0xff, 0xff]),
            Just(vec![0x7f, 0xff, 0xff, 0xff]),
            Just(vec![0, 0, 0, 3, b'a', b'b', b'c']),
            Just(vec![0, 0x10, 0, 0]),
            prop::collection::vec(any::<u8>(), 0..40),
        ],
        0..30,
    )
    .prop_map(|parts| parts.concat())
}

const LIMIT: u64 = 64 * 1024;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Reading frames until the stream ends or a frame is refused: never a panic, never more
    /// memory than what arrived (plus one growth step), one read call per byte at worst.
    #[test]
    fn frames_from_any_bytes_in_any_chunking_stay_bounded_and_linear(
        prefix in prefixes(),
        data in prop_oneof![frame_like(), prop::collection::vec(any::<u8>(), 0..2048)],
        chunks in prop::collection::vec(1usize..64, 1..8),
    ) {
        let framing = Framing::new().prefix(prefix).max_frame_len(LIMIT);
        let len = data.len();
        let (mut reader, calls) = Chunked::new(data, chunks);
        let mut buf = Vec::new();
        let mut frames = 0usize;
        loop {
            match framing.read_frame_into(&mut reader, &mut buf) {
                Ok(true) => {
                    frames += 1;
                    prop_assert!(buf.len() as u64 <= LIMIT);
                }
                Ok(false) => break,
                Err(e) => {
                    prop_assert!(matches!(
                        e.kind(),
                        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                    ), "{e}");
                    break;
                }
            }
            // Memory grows only as bytes arrive: never more than the input plus one step.
            prop_assert!(buf.capacity() <= len + 64 * 1024, "capacity {}", buf.capacity());
        }
        // Every call but the last returned at least one byte; empty frames cost one call each
        // for their length field.
        prop_assert!(calls.get() <= len + frames + 2, "{} calls for {len} bytes", calls.get());
    }

    /// A JSON header from any bytes: an error or a header, never a panic, and at most the
    /// announced (bounded) length read.
    #[cfg(feature = "json")]
    #[test]
    fn headers_from_any_bytes_never_panic(
        data in prop_oneof![
            frame_like(),
            prop::collection::vec(any::<u8>(), 0..512),
            "\\PC{0,200}".prop_map(|s| {
                let mut v = (s.len() as u32).to_be_bytes().to_vec();
                v.extend_from_slice(s.as_bytes());
                v
            }),
        ],
        chunks in prop::collection::vec(1usize..32, 1..6),
    ) {
        let framing = Framing::new().max_frame_len(LIMIT);
        let len = data.len();
        let (mut reader, calls) = Chunked::new(data, chunks);
        let _ = framing.read_header(&mut reader);
        prop_assert!(calls.get() <= len + 2);
    }
}

#[cfg(feature = "auth")]
mod handshake {
    use super::*;
    use socketserver::auth::{Authenticator, Digest, Secret};

    fn authenticator(digest: Digest) -> Authenticator {
        Authenticator::new(Secret::new("fuzzing key").expect("a key")).digest(digest)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// The server side against any answer: refused (a random answer never matches), never
        /// a panic, and it reads no more than one answer's length.
        #[test]
        fn any_answer_is_refused_without_reading_past_it(
            sha256 in any::<bool>(),
            answer in prop::collection::vec(any::<u8>(), 0..200),
            chunks in prop::collection::vec(1usize..16, 1..6),
        ) {
            let digest = if sha256 { Digest::Sha256 } else { Digest::Md5 };
            let want = digest.output_len();
            let len = answer.len();
            let (input, calls) = Chunked::new(answer, chunks);
            let mut peer = Peer { input, written: 0 };
            let result = authenticator(digest).challenge(&mut peer);
            let err = result.expect_err("a random answer is never the HMAC");
            prop_assert!(matches!(
                err.kind(),
                io::ErrorKind::PermissionDenied | io::ErrorKind::UnexpectedEof
            ), "{err}");
            prop_assert_eq!(peer.written, 32, "one challenge sent");
            prop_assert!(peer.input.pos <= want, "read {} of a {want}-byte answer", peer.input.pos);
            prop_assert!(calls.get() <= want.min(len) + 1);
        }

        /// The client side against any challenge: it answers a whole one and refuses a short
        /// one, reading no more than the challenge.
        #[test]
        fn any_challenge_is_answered_or_refused_without_reading_past_it(
            challenge in prop::collection::vec(any::<u8>(), 0..100),
            chunks in prop::collection::vec(1usize..16, 1..6),
        ) {
            let len = challenge.len();
            let (input, calls) = Chunked::new(challenge, chunks);
            let mut peer = Peer { input, written: 0 };
            let result = authenticator(Digest::Sha256).respond(&mut peer);
            if len >= 32 {
                prop_assert!(result.is_ok());
                prop_assert_eq!(peer.written, 32);
            } else {
                prop_assert_eq!(result.map_err(|e| e.kind()), Err(io::ErrorKind::UnexpectedEof));
                prop_assert_eq!(peer.written, 0);
            }
            prop_assert!(peer.input.pos <= 32);
            prop_assert!(calls.get() <= 33);
        }
    }
}
