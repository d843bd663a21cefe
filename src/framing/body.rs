//! Streaming a body of announced size: [`copy_exact`], without holding it in memory.

use std::io::{self, Read, Write};

/// Bytes moved per read while streaming a body.
const CHUNK: usize = 64 * 1024;

/// Copies exactly `len` bytes from `reader` to `writer`, in chunks of 64 KiB, so a body of any
/// size streams to or from a file without being held in memory.
///
/// This is the Python tutorials' "loop until `recv_size == total_size`" done right: it never reads
/// past the body (the next message stays in the stream). Does not flush `writer`.
///
/// # Errors
///
/// `UnexpectedEof`, saying how many bytes arrived, if `reader` ends early; any error of `reader` or
/// `writer`.
///
/// ```
/// use socketserver::framing::copy_exact;
///
/// # fn main() -> std::io::Result<()> {
/// let mut stream = &b"0123456789next message"[..];
/// let mut body = Vec::new();
/// copy_exact(&mut stream, &mut body, 10)?;
/// assert_eq!(body, b"0123456789");
/// assert_eq!(stream, b"next message"); // nothing past the body was consumed
///
/// let err = copy_exact(&mut &b"short"[..], &mut Vec::new(), 10).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
/// # Ok(())
/// # }
/// ```
pub fn copy_exact<R, W>(reader: &mut R, writer: &mut W, len: u64) -> io::Result<()>
where
    R: Read + ?Sized,
    W: Write + ?Sized,
{
    copy_exact_inspect(reader, writer, len, |_| {})
}

/// Like [`copy_exact`], and shows every chunk to `inspect` before writing it — to hash a body
/// while it streams, or to count progress.
///
/// # Errors
///
/// Those of [`copy_exact`].
pub fn copy_exact_inspect<R, W, F>(
    reader: &mut R,
    writer: &mut W,
    len: u64,
    mut inspect: F,
) -> io::Result<()>
where
    R: Read + ?Sized,
    W: Write + ?Sized,
    F: FnMut(&[u8]),
{
    let mut buf = vec![0u8; CHUNK.min(len as usize)];
    let mut done: u64 = 0;
    while done < len {
        let want = (len - done).min(CHUNK as u64) as usize;
        let n = match reader.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the body was cut off after {done} of {len} bytes"),
                ))
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        inspect(&buf[..n]);
        writer.write_all(&buf[..n])?;
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_large_bodies_and_shows_every_byte() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut seen = 0usize;
        let mut out = Vec::new();
        copy_exact_inspect(&mut &data[..], &mut out, data.len() as u64, |chunk| {
            seen += chunk.len();
        })
        .unwrap();
        assert_eq!(out, data);
        assert_eq!(seen, data.len());
    }

    #[test]
    fn zero_length_reads_nothing() {
        let mut stream = &b"abc"[..];
        copy_exact(&mut stream, &mut Vec::new(), 0).unwrap();
        assert_eq!(stream, b"abc");
    }

    #[test]
    fn a_short_source_says_how_much_arrived() {
        let err = copy_exact(&mut &[1u8; 100][..], &mut Vec::new(), 1000).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("100 of 1000"), "{err}");
    }
}
