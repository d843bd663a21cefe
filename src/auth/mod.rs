//! Client authentication by HMAC challenge–response (feature `auth`), as Python socket
//! tutorials teach it with `hmac` and `os.urandom`.
//!
//! A server that should talk only to clients holding a shared secret sends each new connection
//! 32 random bytes; the client answers with `HMAC(secret, challenge)`; the server checks the
//! answer in constant time and closes the connection if it is wrong, late or missing.
//!
//! * [`Secret`] — the key, from an environment variable or a file ([`Secret::load`]).
//! * [`Authenticator`] — both ends of the handshake: [`challenge`](Authenticator::challenge) on
//!   the server, [`respond`](Authenticator::respond) on the client, with [`Digest::Sha256`] by
//!   default or [`Digest::Md5`] for the Python tutorial clients, and a deadline.
//! * [`RequireAuth`] — wraps any stream handler so it runs only for authenticated clients:
//!   `auth.require(handler)`.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//! use std::time::Duration;
//! use socketserver::auth::{Authenticator, Digest, Secret};
//! use socketserver::{StreamRequest, ThreadingTcpServer};
//!
//! # fn main() -> std::io::Result<()> {
//! let server_auth = Authenticator::new(Secret::new("linhaifeng bang bang bang")?)
//!     .digest(Digest::Md5)
//!     .timeout(Duration::from_secs(5));
//! let greet = |req: &mut StreamRequest| req.write_all(b"welcome");
//! let mut server = ThreadingTcpServer::bind("127.0.0.1:0", server_auth.require(greet))?;
//! let addr = server.local_addr().as_inet().expect("a TCP address");
//! let handle = server.handle();
//! let serving = std::thread::spawn(move || server.serve_forever());
//!
//! // A client with the right key is served.
//! let good = Authenticator::new(Secret::new("linhaifeng bang bang bang")?).digest(Digest::Md5);
//! let mut stream = TcpStream::connect(addr)?;
//! good.respond(&mut stream)?;
//! let mut reply = String::new();
//! stream.read_to_string(&mut reply)?;
//! assert_eq!(reply, "welcome");
//!
//! // A client with the wrong key is cut off without a word.
//! let bad = Authenticator::new(Secret::new("linhaifeng bang bang bang1111")?).digest(Digest::Md5);
//! let mut stream = TcpStream::connect(addr)?;
//! stream.set_read_timeout(Some(Duration::from_secs(5)))?;
//! bad.respond(&mut stream)?;
//! let mut reply = Vec::new();
//! let _ = stream.read_to_end(&mut reply); // EOF, or a reset
//! assert!(reply.is_empty());
//!
//! handle.shutdown();
//! serving.join().expect("serving thread")?;
//! # Ok(())
//! # }
//! ```
//!
//! ## What it protects against, and what it does not
//!
//! It keeps out **clients that do not know the secret**: they cannot compute the answer. It
//! defeats **replay**: every connection gets a fresh random challenge, so an answer recorded from
//! an earlier connection is useless. Answers are compared in constant time, so timing does not
//! leak how close a guess was.
//!
//! It does **not** encrypt anything: after the handshake, everything travels in clear text and
//! anyone on the path can read it. It does **not** protect against an **on-path attacker**, who
//! can let the handshake succeed and then read, alter or inject traffic on the authenticated
//! connection (or relay a challenge to a real client). The server does not prove itself to the
//! client either. Where that matters — anywhere beyond a trusted network or loopback — use TLS
//! (with client certificates, or this handshake inside it) or an SSH tunnel. Keep the secret long
//! and random, out of command lines, in a file only the server's user can read.

mod digest;
mod handshake;
mod require;
mod secret;

pub use digest::Digest;
pub use handshake::{Authenticator, TimedStream, CHALLENGE_LEN, DEFAULT_HANDSHAKE_TIMEOUT};
pub use require::RequireAuth;
pub use secret::Secret;
