//! Message framing over byte streams: length-prefixed frames, and header + body messages.
//!
//! TCP carries a stream of bytes, not messages: two quick `send`s can arrive as one read, and one
//! `send` can arrive over several (the "sticky packets", 粘包, of Python socket tutorials). The cure
//! they teach is a fixed-size length in front of every message, and reading *exactly* that many
//! bytes. This module does it for any [`Read`](std::io::Read)/[`Write`](std::io::Write) — a
//! [`StreamRequest`](crate::StreamRequest) on the server, a `TcpStream` on the client:
//!
//! * [`Framing`] reads and writes frames: a [`LengthPrefix`] of 1, 2, 4 or 8 bytes, big-, little-
//!   or native-endian, signed or not (big-endian `u32` by default;
//!   [`Framing::python_struct_i`] is Python's `struct.pack('i', n)`). Every length is checked
//!   against a maximum (8 MiB by default) before anything is allocated.
//!   [`Framing::read_frame_into`] and [`Framing::write_frame_vectored`] read into a reused
//!   buffer and write with one vectored write, for a hot path with no allocation per frame.
//! * Header + body messages, as in the Python tutorial's remote-command and upload programs: a
//!   framed JSON [`Header`] ([`Framing::write_header`], [`Framing::read_header`], feature `json`,
//!   on by default) announcing the size of a body that follows unframed, streamed with
//!   [`copy_exact`] so it never has to fit in memory; [`receive_file`] streams one into a file that
//!   appears only when complete and checksummed ([`md5_hex`], [`sha256_hex`]: feature `checksum`,
//!   on by default). [`serde_json`] is re-exported here (feature `json`), to build and read headers
//!   without adding it to your own `Cargo.toml`.
//!
//! ```
//! # #[cfg(feature = "json")]
//! # fn main() -> std::io::Result<()> {
//! use std::io::{BufReader, Write};
//! use std::net::{TcpListener, TcpStream};
//! use socketserver::framing::serde_json::json;
//! use socketserver::framing::{copy_exact, header_u64, Framing};
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! let framing = Framing::python_struct_i(); // what the Python tutorial clients speak
//!
//! // Sender: a header announcing the body, then the body, in as many writes as it likes.
//! let sender = std::thread::spawn(move || -> std::io::Result<()> {
//!     let mut stream = TcpStream::connect(addr)?;
//!     let header = json!({"filename": "a.txt", "total_size": 11});
//!     framing.write_header(&mut stream, header.as_object().unwrap())?;
//!     stream.write_all(b"hello ")?;
//!     stream.write_all(b"world")?;
//!     framing.write_frame(&mut stream, b"next message")
//! });
//!
//! // Receiver: the header, exactly the body it announced, and the next frame intact.
//! let (stream, _) = listener.accept()?;
//! let mut stream = BufReader::new(stream);
//! let header = framing.read_header(&mut stream)?.expect("a header");
//! let size = header_u64(&header, &["total_size", "data_size"])?;
//! let mut body = Vec::new();
//! copy_exact(&mut stream, &mut body, size)?;
//! assert_eq!(body, b"hello world");
//! assert_eq!(framing.read_frame(&mut stream)?, Some(b"next message".to_vec()));
//! sender.join().expect("sender thread")?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "json"))]
//! # fn main() {}
//! ```
//!
//! A server handler uses the same calls on its `&mut StreamRequest`; a frame that announces too
//! much, a header that is not JSON, or a connection cut mid-body is an `io::Error` the handler
//! returns, ending that connection only.
//!
// The items of a feature that is off do not exist: their links then lead to the crate's list of
// features, so the docs build (and say where to look) in every combination of features.
#![cfg_attr(
    not(feature = "json"),
    doc = "[`Header`]: crate#features\n[`Framing::write_header`]: crate#features\n\
           [`Framing::read_header`]: crate#features\n[`serde_json`]: crate#features"
)]
#![cfg_attr(
    not(feature = "checksum"),
    doc = "[`md5_hex`]: crate#features\n[`sha256_hex`]: crate#features"
)]

mod body;
mod checksum;
mod codec;
mod expected;
mod file;
#[cfg(feature = "json")]
mod header;
mod prefix;
mod preview;

pub use body::{copy_exact, copy_exact_inspect};
#[cfg(all(test, feature = "auth"))]
pub(crate) use checksum::to_hex;
#[cfg(feature = "checksum")]
pub use checksum::{md5_hex, md5_hex_of, sha256_hex};
pub use codec::{Framing, DEFAULT_MAX_FRAME_LEN};
pub use expected::Expected;
pub use file::{check_file_name, receive_file};
#[cfg(feature = "json")]
pub use header::{header_str, header_u64, parse_header, Header};
pub use prefix::{ByteOrder, LengthPrefix, Width};
/// The JSON library [`Header`] comes from (feature `json`), re-exported so handlers can build
/// replies with [`json!`](serde_json::json) and read [`Value`](serde_json::Value)s without
/// depending on `serde_json` themselves.
#[cfg(feature = "json")]
pub use serde_json;
