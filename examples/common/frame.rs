//! The echo protocols of the benchmarks. Framed echo: each message is a 4-byte big-endian
//! length, then that many bytes, read and written with the crate's [`Framing`].
//!
//! Shared by `echo_server`, `std_echo` and `loadgen` so every contestant parses frames the same
//! way.

use std::io::{self, BufRead, ErrorKind, Read, Write};

use socketserver::framing::Framing;

use super::ExtraOption;

/// `--proto framed|line|udp`: which echo `echo_server` and `std_echo` speak.
pub const PROTO: ExtraOption = ExtraOption {
    name: "--proto",
    value: "PROTO",
    help: "framed, line or udp (default framed)",
    check: check_proto,
};

fn check_proto(value: &str) -> Result<(), String> {
    match value {
        "framed" | "line" | "udp" => Ok(()),
        _ => Err("expected framed, line or udp".to_string()),
    }
}

/// Largest payload accepted: bigger frames are a protocol error, so a bad peer cannot make the
/// server allocate without bound.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// The benchmarks' framing: 4-byte big-endian lengths, payloads of at most [`MAX_FRAME`] bytes.
/// Memory for a frame grows only as its bytes arrive, so announcing 16 MiB and sending nothing
/// costs a connection one 64 KiB step, not 16 MiB.
pub const FRAMING: Framing = Framing::new().max_frame_len(MAX_FRAME as u64);

/// Serves framed echo on one connection until the peer closes it: every frame comes back as is.
///
/// One buffer per connection, reused for every frame, and each reply is the length field and
/// that buffer in one vectored write: no allocation and no copy per frame. (A copy of the
/// payload into an output buffer once made 16 KiB echo 10-30 % costlier in one server than in
/// another running the same code: when the two heap blocks sat so that the destination was 20
/// bytes past the source modulo 4 KiB, glibc's `rep movsb` stalled on 4K aliasing, measured on
/// AMD EPYC with glibc 2.36.)
pub fn echo_frames<S: Read + Write>(stream: &mut S) -> io::Result<()> {
    let mut frame = Vec::new();
    while FRAMING.read_frame_into(stream, &mut frame)? {
        FRAMING.write_frame_vectored(stream, &frame)?;
    }
    Ok(())
}

/// Serves line echo on one connection until the peer closes it: every `\n`-terminated line comes
/// back as is (a last line without `\n` too).
pub fn echo_lines<S: BufRead + Write>(stream: &mut S) -> io::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        // Bounded like a frame: a peer that never sends `\n` cannot grow the buffer forever.
        let n = io::Read::take(&mut *stream, MAX_FRAME as u64).read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        if n == MAX_FRAME && line.last() != Some(&b'\n') {
            return Err(io::Error::new(
                ErrorKind::InvalidData,
                format!("line longer than {MAX_FRAME} bytes"),
            ));
        }
        stream.write_all(&line)?;
    }
}
