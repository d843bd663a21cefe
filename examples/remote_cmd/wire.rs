//! The framed command request, which `client remote-cmd` sends and `remote_cmd` also accepts.
//!
//! The tutorial's protocol has no framing: a command is whatever one `recv` returns, so a command
//! split in transit, or two merged, cannot be told apart from others. A framed request carries
//! its own length:
//!
//! ```text
//! FF 72 63 31            the magic "\xffrc1"
//! 00 00 00 0a            the command's length, 4 bytes big-endian (at most 65536)
//! echo hello             exactly that many bytes: the command
//! ```
//!
//! The byte 0xFF never occurs in UTF-8 (nor in GBK, the tutorial's other encoding), so a tutorial
//! client's command — `input().strip().encode('utf-8')` — can never start like a framed request.

use socketserver::framing::Framing;

/// The first four bytes of a framed request.
pub const MAGIC: [u8; 4] = [0xff, b'r', b'c', b'1'];

/// The longest command a framed request may carry.
pub const MAX_FRAMED_COMMAND: u64 = 64 * 1024;

/// The length prefix and limit after [`MAGIC`].
pub fn framing() -> Framing {
    Framing::new().max_frame_len(MAX_FRAMED_COMMAND)
}

/// `command` as a framed request, ready for one write.
#[allow(dead_code)] // the client's half: the server only reads requests
pub fn framed_request(command: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut request = MAGIC.to_vec();
    framing().write_frame(&mut request, command)?;
    Ok(request)
}
