//! One connection's replies waiting to be sent.
//!
//! Small replies are appended to one buffer, sent when the input runs dry (one `send` per batch)
//! or once [`MAX_PENDING`] bytes have piled up. A bulk value too large for the buffer's free space
//! is not copied: its header goes into the buffer and the value itself is written straight from
//! where it is (the store, or the command's argument) with one vectored write. The buffer never
//! grows while a command runs: [`Output::make_room`] guarantees [`MAX_SMALL_REPLY`] bytes of free
//! space first, growing within the budget or sending what is pending. So a client that does not
//! read its replies holds at most the buffer, and stops the connection from reading more.

use std::io::{self, IoSlice, Write};
use std::ops::Range;
use std::sync::Arc;

use crate::budget::Charge;
use crate::protocol::{self, BULK_OVERHEAD};

/// Initial size of the buffer.
pub const INITIAL: usize = 16 * 1024;
/// Replies are sent early once this much has piled up, even mid-batch.
pub const MAX_PENDING: usize = 64 * 1024;
/// Most bytes any reply appends to the buffer, bulk values too large for it aside (the longest is
/// the unknown-command error, under 11 KiB).
pub const MAX_SMALL_REPLY: usize = 12 * 1024;
/// A buffer larger than this goes back to [`INITIAL`] once sent.
const SHRINK_ABOVE: usize = MAX_PENDING;

/// A bulk value sent from where it is rather than copied into the buffer.
#[derive(Debug)]
pub enum Large {
    /// This byte range of the command being answered (an `ECHO`ed argument).
    Arg(Range<usize>),
    /// A value shared with the store, or taken out of it.
    Value(Arc<Vec<u8>>),
}

/// Replies not yet sent.
#[derive(Debug)]
pub struct Output {
    buf: Vec<u8>,
    /// The data of the last reply in `buf`, whose header ends it.
    large: Option<Large>,
}

impl Output {
    /// What a new output takes: reserve it before [`new`](Self::new).
    pub const INITIAL_MEMORY: usize = INITIAL;

    /// An empty output of [`INITIAL_MEMORY`](Self::INITIAL_MEMORY) bytes.
    pub fn new() -> Output {
        Output {
            buf: Vec::with_capacity(INITIAL),
            large: None,
        }
    }

    /// Bytes the buffer takes.
    pub fn memory(&self) -> usize {
        self.buf.capacity()
    }

    /// The buffer, for the reply helpers of [`protocol`]. A command appends at most
    /// [`MAX_SMALL_REPLY`] bytes to it; [`bulk`](Self::bulk) and [`bulk_owned`](Self::bulk_owned)
    /// for values that may be larger.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Makes sure the next command's reply fits in the buffer's free space: grows it within the
    /// budget, or sends what is pending (blocking, with the connection's write timeout) when
    /// [`MAX_PENDING`] bytes wait or the budget is spent.
    pub fn make_room<W: Write>(&mut self, writer: &mut W, charge: &mut Charge) -> io::Result<()> {
        if self.buf.capacity() - self.buf.len() >= MAX_SMALL_REPLY {
            return Ok(());
        }
        if self.buf.len() < MAX_PENDING {
            let before = self.buf.capacity();
            let wanted = (self.buf.len() + MAX_SMALL_REPLY).next_power_of_two();
            if charge.grow(wanted - before) {
                self.buf.reserve_exact(wanted - self.buf.len());
                if self.buf.capacity() > wanted {
                    charge.force(self.buf.capacity() - wanted);
                }
                return Ok(());
            }
        }
        self.send(writer, &[])
    }

    /// Appends a bulk reply of `data`: copied when it fits in the free space, otherwise only its
    /// header, the data to be sent from where it is, as `large()` says.
    pub fn bulk(&mut self, data: &[u8], large: impl FnOnce() -> Large) {
        if self.fits(data.len()) {
            protocol::bulk(&mut self.buf, data);
        } else {
            protocol::bulk_header(&mut self.buf, data.len());
            self.large = Some(large());
        }
    }

    /// [`bulk`](Self::bulk) for a value the caller owns: moved rather than copied when large.
    pub fn bulk_owned(&mut self, data: Vec<u8>) {
        if self.fits(data.len()) {
            protocol::bulk(&mut self.buf, &data);
        } else {
            protocol::bulk_header(&mut self.buf, data.len());
            self.large = Some(Large::Value(Arc::new(data)));
        }
    }

    fn fits(&self, len: usize) -> bool {
        debug_assert!(self.large.is_none(), "one large value per command");
        len + BULK_OVERHEAD <= self.buf.capacity() - self.buf.len()
    }

    /// Whether the last reply's data is waiting to be sent from where it is: then call
    /// [`send`](Self::send) with the command's bytes before the next command.
    pub fn has_large(&self) -> bool {
        self.large.is_some()
    }

    /// Sends everything pending, `input` being the bytes of the command just answered (for an
    /// [`Large::Arg`]), and gives back memory a large batch left behind.
    pub fn send<W: Write>(&mut self, writer: &mut W, input: &[u8]) -> io::Result<()> {
        match self.large.take() {
            None => writer.write_all(&self.buf)?,
            Some(large) => {
                let data = match &large {
                    Large::Arg(range) => &input[range.clone()],
                    Large::Value(value) => value.as_slice(),
                };
                let mut parts = [
                    IoSlice::new(&self.buf),
                    IoSlice::new(data),
                    IoSlice::new(b"\r\n"),
                ];
                write_all_vectored(writer, &mut parts)?;
            }
        }
        self.buf.clear();
        Ok(())
    }

    /// [`send`](Self::send) into a message server's reply: a value shared with the store is
    /// queued without a copy (`Reply::write_shared`), so clients that do not read large values
    /// hold references to them, not copies.
    #[cfg(feature = "message")]
    pub fn send_to_reply(
        &mut self,
        reply: &mut socketserver::message::Reply<'_>,
        input: &[u8],
    ) -> io::Result<()> {
        reply.write_all(&self.buf)?;
        match self.large.take() {
            None => {}
            Some(Large::Arg(range)) => {
                reply.write_all(&input[range])?;
                reply.write_all(b"\r\n")?;
            }
            Some(Large::Value(value)) => {
                reply.write_shared(value);
                reply.write_all(b"\r\n")?;
            }
        }
        self.buf.clear();
        Ok(())
    }

    /// Gives back what a large batch left behind: call it once everything has been sent.
    pub fn relax(&mut self, charge: &mut Charge) {
        if self.buf.is_empty() && self.buf.capacity() > SHRINK_ABOVE {
            let before = self.buf.capacity();
            self.buf = Vec::with_capacity(INITIAL);
            charge.shrink(before - self.buf.capacity());
        }
    }
}

/// `Write::write_all_vectored`, which is not stable yet. On a `StreamRequest` the first
/// `write_vectored` sends everything (one `writev`, usually).
fn write_all_vectored<W: Write>(writer: &mut W, mut parts: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut parts, 0);
    while !parts.is_empty() {
        match writer.write_vectored(parts) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the connection accepted no more bytes",
                ))
            }
            Ok(n) => IoSlice::advance_slices(&mut parts, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
