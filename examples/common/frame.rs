//! The framed-echo wire format of the benchmarks: each message is a 4-byte big-endian length,
//! then that many bytes.
//!
//! Shared by `echo_server`, `std_echo` and `loadgen` so every contestant parses frames the same
//! way. Once the crate's `framing` module lands, these should switch to it.

use std::io::{self, BufRead, ErrorKind, Write};

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

/// Reads one frame's payload into `buf` (replacing its contents). `Ok(false)` means the peer
/// closed the connection cleanly between frames.
pub fn read_frame(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<bool> {
    let Some((_, len)) = read_header(reader)? else {
        return Ok(false);
    };
    set_len(buf, len);
    reader.read_exact(buf)?;
    Ok(true)
}

/// Reads one whole frame, length field and payload, into `buf` (replacing its contents), ready
/// to be sent back as it is. `Ok(false)` means the peer closed the connection cleanly.
pub fn read_whole_frame(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<bool> {
    let Some((header, len)) = read_header(reader)? else {
        return Ok(false);
    };
    set_len(buf, header.len() + len);
    buf[..header.len()].copy_from_slice(&header);
    reader.read_exact(&mut buf[header.len()..])?;
    Ok(true)
}

/// Reads a length field: the field and the payload length it announces, or `None` at a clean
/// close (end of stream before the first byte).
fn read_header(reader: &mut impl BufRead) -> io::Result<Option<([u8; 4], usize)>> {
    if reader.fill_buf()?.is_empty() {
        return Ok(None);
    }
    let mut header = [0u8; 4];
    reader.read_exact(&mut header)?;
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            ErrorKind::InvalidData,
            format!("frame of {len} bytes is over the {MAX_FRAME}-byte limit"),
        ));
    }
    Ok(Some((header, len)))
}

/// Makes `buf` exactly `len` bytes long, to be overwritten by a read. Zero-fills only the part
/// that grows: a buffer reused for frames of one size is not cleared again for every frame.
fn set_len(buf: &mut Vec<u8>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0);
    } else {
        buf.truncate(len);
    }
}

/// Writes `payload` as one frame with a single write, through `scratch` (reused between calls):
/// header and payload in one `send` keeps a reply to one segment and one syscall.
pub fn write_frame(
    writer: &mut impl Write,
    payload: &[u8],
    scratch: &mut Vec<u8>,
) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&n| n as usize <= MAX_FRAME)
        .ok_or_else(|| {
            io::Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "payload of {} bytes is too big for one frame",
                    payload.len()
                ),
            )
        })?;
    scratch.clear();
    scratch.extend_from_slice(&len.to_be_bytes());
    scratch.extend_from_slice(payload);
    writer.write_all(scratch)
}

/// Serves framed echo on one connection until the peer closes it: every frame comes back as is.
///
/// Each frame is read, length field and payload, into one buffer and sent back from it in one
/// write, with no copy in between. The copy this replaces (payload into an output buffer) made
/// 16 KiB echo 10-30 % costlier in one server than in another running the same code: when the
/// two heap blocks sat so that the destination was 20 bytes past the source modulo 4 KiB,
/// glibc's `rep movsb` stalled on 4K aliasing (measured on AMD EPYC, glibc 2.36), and where the
/// blocks land is an accident of each program's heap.
pub fn echo_frames<S: BufRead + Write>(stream: &mut S) -> io::Result<()> {
    let mut frame = Vec::new();
    while read_whole_frame(stream, &mut frame)? {
        stream.write_all(&frame)?;
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
