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
    let mut header = [0u8; 4];
    // A clean close shows as end of stream before the first header byte.
    if reader.fill_buf()?.is_empty() {
        return Ok(false);
    }
    reader.read_exact(&mut header)?;
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            ErrorKind::InvalidData,
            format!("frame of {len} bytes is over the {MAX_FRAME}-byte limit"),
        ));
    }
    buf.clear();
    buf.resize(len, 0);
    reader.read_exact(buf)?;
    Ok(true)
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
pub fn echo_frames<S: BufRead + Write>(stream: &mut S) -> io::Result<()> {
    let mut payload = Vec::new();
    let mut scratch = Vec::new();
    while read_frame(stream, &mut payload)? {
        write_frame(stream, &payload, &mut scratch)?;
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
