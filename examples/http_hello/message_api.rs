//! `--api message`: the same server behind the library's event loop, which buffers each request
//! head (as nginx does) and runs the handler only once it is complete. [`HeadFramer`] finds where
//! a head ends with the stream version's [`HeadScanner`] and skips request bodies;
//! [`HelloHandler`] answers with the same bytes. `--header-timeout` becomes the loop's message
//! timeout, `--idle-timeout` its idle timeout.
//!
//! The handler sees a complete head alone (at most `--max-head` bytes). A framer cannot answer,
//! so input the stream version refuses before a head is complete (over `--max-head`, nothing but
//! empty lines) the framer hands to the handler as one message of everything buffered, longer
//! than any head; the handler's scanner, reading the same bytes, comes to the same verdict.

use std::io::{self, Write};
use std::time::Duration;

use socketserver::message::{Frame, Framer, MessageHandler, Reply};

use crate::common::{self, Args};
use crate::head::{HeadScanner, Scan};
use crate::{accept, refusal, respond, HeadLimits, Refused, BODY, ONLY_EMPTY_LINES, TOO_LARGE};

/// Serves `http_hello` with `--api message`.
pub fn serve(args: &Args, limits: HeadLimits, idle: Duration) -> io::Result<()> {
    let framer = HeadFramer::new(limits.max_len);
    let handler = HelloHandler {
        max_head: limits.max_len,
        // Behind a balancer the page names the client; otherwise it is the constant benchmarks
        // expect.
        name_peer: args.value(common::PROXY_PROTOCOL.name).is_some(),
        hello: None,
        out: Vec::new(),
    };
    let builder = args.builder().idle_timeout(idle);
    common::serve_messages_timed(args, builder, framer, handler, Some(limits.timeout))
}

/// Where a request ends: its head, then its body, dropped in pieces as it arrives. Clones keep
/// the state (the server clones the fresh one it was given for each connection).
#[derive(Debug, Clone)]
pub struct HeadFramer {
    max_head: usize,
    scanner: HeadScanner,
    /// Empty lines before the request line the scanner has reported: they stay in the buffer
    /// (a frame drops them with the head), so the scanner resumes after them.
    skipped: usize,
    /// Body bytes of the last request still to drop.
    body_left: usize,
}

impl HeadFramer {
    fn new(max_head: usize) -> HeadFramer {
        HeadFramer {
            max_head,
            scanner: HeadScanner::new(max_head),
            skipped: 0,
            body_left: 0,
        }
    }
}

impl Framer for HeadFramer {
    fn frame(&mut self, buffered: &[u8]) -> io::Result<Option<Frame>> {
        if self.body_left > 0 {
            // A piece of a body: the handler sees an empty message, and ignores it.
            let piece = self.body_left.min(buffered.len());
            self.body_left -= piece;
            return Ok(Some(Frame {
                consumed: piece,
                message: 0..0,
            }));
        }
        match self.scanner.scan(&buffered[self.skipped..]) {
            Scan::More { skip } => {
                self.skipped += skip;
                Ok(None)
            }
            Scan::Head { skip, len } => {
                let start = self.skipped + skip;
                self.skipped = 0;
                let end = start + len;
                // The handler answers the head; a body it accepts follows, to be dropped.
                if let Ok(head) = accept(&buffered[start..end]) {
                    if head.keep_alive {
                        self.body_left = head.content_length;
                    }
                }
                // The handler sees the head alone, at most `max_head` bytes.
                Ok(Some(Frame {
                    consumed: end,
                    message: start..end,
                }))
            }
            Scan::TooLarge | Scan::OnlyEmptyLines => {
                // More than `max_head` bytes: the handler scans them again to say which.
                *self = HeadFramer::new(self.max_head);
                Ok(Some(Frame::whole(buffered.len())))
            }
        }
    }

    fn limit(&self) -> usize {
        // The scanner refuses (with a reply) past `max_head`, before the loop would (without).
        self.max_head + 1
    }
}

/// Answers a connection's requests.
#[derive(Clone)]
pub struct HelloHandler {
    max_head: usize,
    /// Whether the page names the peer (with the PROXY protocol).
    name_peer: bool,
    /// The page naming the peer, made when the connection opens.
    hello: Option<Vec<u8>>,
    /// Where a response is made, reused for every request.
    out: Vec<u8>,
}

impl MessageHandler for HelloHandler {
    fn opened(&mut self, reply: &mut Reply<'_>) -> io::Result<()> {
        if self.name_peer {
            self.hello = Some(format!("hello {}\n", reply.peer_addr()).into_bytes());
        }
        Ok(())
    }

    fn handle(&mut self, message: &[u8], reply: &mut Reply<'_>) -> io::Result<()> {
        if message.is_empty() {
            return Ok(()); // a piece of a request body
        }
        self.out.clear();
        let refused = if message.len() <= self.max_head {
            // A complete head, as the framer found it.
            match accept(message) {
                Ok(head) => {
                    respond(&head, self.hello.as_deref().unwrap_or(BODY), &mut self.out);
                    reply.write_all(&self.out)?;
                    if !head.keep_alive {
                        reply.close();
                    }
                    return Ok(());
                }
                Err(refused) => refused,
            }
        } else {
            // Everything buffered when the framer gave up on finding a head in time.
            match HeadScanner::new(self.max_head).scan(message) {
                Scan::OnlyEmptyLines => ONLY_EMPTY_LINES,
                _ => TOO_LARGE,
            }
        };
        let (status, why): Refused = refused;
        log::debug!("{}: {status} ({why}); closing", reply.peer_addr());
        refusal(&mut self.out, status, why);
        reply.write_all(&self.out)?;
        reply.close();
        Ok(())
    }
}
