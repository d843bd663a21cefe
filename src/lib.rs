//! # socketserver
//!
//! A synchronous, batteries-included socket server framework in the spirit of Python's
//! [`socketserver`](https://docs.python.org/3/library/socketserver.html): implement one method
//! ([`RequestHandler::handle`]), pick a concurrency mode, call [`Server::serve_forever`].
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//! use socketserver::{StreamRequest, ThreadingTcpServer};
//!
//! # fn main() -> std::io::Result<()> {
//! // Upper-case echo: answer every chunk with its ASCII letters upper-cased.
//! let mut server = ThreadingTcpServer::bind("127.0.0.1:0", |req: &mut StreamRequest| {
//!     let mut buf = [0u8; 1024];
//!     loop {
//!         let n = req.read(&mut buf)?;
//!         if n == 0 {
//!             return Ok(()); // the client closed the connection
//!         }
//!         req.write_all(&buf[..n].to_ascii_uppercase())?;
//!     }
//! })?;
//! let addr = server.local_addr().as_inet().expect("a TCP address");
//! let handle = server.handle();
//! let serving = std::thread::spawn(move || -> std::io::Result<()> {
//!     server.serve_forever()?;
//!     server.server_close()
//! });
//!
//! let mut client = TcpStream::connect(addr)?;
//! client.write_all(b"hello")?;
//! let mut reply = [0u8; 5];
//! client.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"HELLO");
//! drop(client);
//!
//! handle.shutdown();
//! serving.join().expect("serving thread")?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Map of the crate
//!
//! * **Servers** — [`Server`]`<Transport, Handler, Mode>` and aliases that read like Python's:
//!   [`TcpServer`], [`UdpServer`], [`UnixStreamServer`], [`UnixDatagramServer`], their
//!   `Threading…`, `Pool…`, `Forking…` and `Prefork…` forms. Options (`SO_REUSEADDR`, `SO_REUSEPORT`, backlog, dual-stack
//!   IPv6, `TCP_NODELAY`, timeouts, `max_packet_size`) and hooks (`verify_request`,
//!   `handle_error`, `handle_timeout`, `service_actions`) are set on a [`Builder`].
//! * **Handlers** — [`RequestHandler`] with `setup`/`handle`/`finish`; closures work too. Stream
//!   servers pass a [`StreamRequest`] (buffered reads, `sendall` writes), datagram servers a
//!   [`DatagramRequest`] (the packet, and replies from the server's socket).
//! * **Modes** — [`Single`], [`Threading`] (optionally capped), [`Pool`] (bounded queue, wait or
//!   reject when full), and two process-based modes started without `fork()`: [`Process`] (a
//!   child per request, Python's `ForkingMixIn`) and [`Prefork`] (supervised worker processes).
//!   See [`mode`], and [`is_worker`] for what re-executing the program means for `main`.
//! * **Message servers** — [`message`]: an event loop waits on every connection at once and
//!   calls a [`message::MessageHandler`] with each whole message
//!   ([`Builder::messages`]), so idle and slow connections cost no thread.
//! * **Control** — [`ServerHandle`]: `shutdown()` from any thread or handler, `stats()`.
//!   [`Builder::stop_on_signals`] makes SIGTERM and SIGINT stop the server gracefully — see
//!   [Stopping gracefully](#stopping-gracefully).
//! * **Services** — [`systemd`]: socket activation (`Builder::systemd_tcp`, …) and readiness
//!   (`READY=1`, `STATUS=`, `WATCHDOG=1`, `STOPPING=1`), automatic when `NOTIFY_SOCKET` is set.
//! * **Protocols** — [`framing`]: length-prefixed frames and JSON header + body messages, the
//!   seeds' cure for TCP's "sticky packets"; [`auth`]: HMAC challenge–response authentication
//!   of clients, as a wrapper around any stream handler.
//!
//! Errors are `std::io::Error`s whose messages say what failed and where; failures inside a
//! handler reach the `handle_error` hook as a [`Failure`] and never stop the server. The library
//! logs through the [`log`](https://docs.rs/log) crate and never prints.
//!
//! ## Features
//!
//! Cargo features, all on by default, add protocol helpers and their dependencies. With
//! `default-features = false` the crate keeps its servers, modes and length-prefixed
//! [`framing::Framing`], and depends only on `crossbeam-channel`, `socket2`, `log` and `libc`.
//! The features are independent: enable any subset. Without a feature its items do not exist, so
//! a build without `signals` reports "no method named `stop_on_signals`": each such item's
//! documentation names its feature in its first sentence, and on docs.rs (built with every
//! feature) it carries a note saying which feature it needs.
//!
//! | Feature | Adds | Pulls in |
//! |---|---|---|
//! | `json` | JSON header + body messages: [`framing::Header`], `Framing::read_header`/`write_header`, `header_u64`/`header_str`/`parse_header`, `Expected::from_header`, and the [`framing::serde_json`] re-export | `serde_json` |
//! | `auth` | the [`auth`] module: HMAC-SHA256/HMAC-MD5 challenge–response | `hmac`, `sha2`, `md-5`, `getrandom` |
//! | `checksum` | [`framing::md5_hex`], `md5_hex_of`, `sha256_hex`, and the checks [`framing::receive_file`] makes (without it, an [`Expected`](framing::Expected) naming a checksum is refused) | `md-5`, `sha2` |
//! | `signals` | [`Builder::stop_on_signals`]: a graceful stop on SIGTERM/SIGINT, an immediate one on SIGQUIT (see [Stopping gracefully](#stopping-gracefully)); `grace_period`, `stop_now` and `wait_for_request` work without it | `signal-hook` |
//! | `proxy` | the PROXY protocol v1/v2 from load balancers: [`Builder::proxy_protocol`], `trusted_proxies`, `proxy_header_timeout`, [`StreamRequest::proxy_addr`]/`proxy_header`, the [`proxy`] module | `ppp`, `mio` |
//! | `message` | message servers: [`Builder::messages`], the [`message`] module | `mio` |
//!
//! ```toml
//! [dependencies]
//! # servers and framing only, e.g. for a plain TCP echo server:
//! socketserver = { version = "0.1", default-features = false }
//! # or with JSON headers only:
//! # socketserver = { version = "0.1", default-features = false, features = ["json"] }
//! ```
//!
// The items of a feature that is off do not exist: their links then lead to the list above.
#![cfg_attr(not(feature = "auth"), doc = "[`auth`]: crate#features")]
#![cfg_attr(
    not(feature = "json"),
    doc = "[`framing::Header`]: crate#features\n[`framing::serde_json`]: crate#features"
)]
#![cfg_attr(
    not(feature = "checksum"),
    doc = "[`framing::md5_hex`]: crate#features"
)]
#![cfg_attr(
    not(feature = "signals"),
    doc = "[`Builder::stop_on_signals`]: crate#features"
)]
#![cfg_attr(
    not(feature = "message"),
    doc = "[`message`]: crate#features\n[`Builder::messages`]: crate#features\n[`message::MessageHandler`]: crate#features"
)]
#![cfg_attr(
    not(feature = "proxy"),
    doc = "[`Builder::proxy_protocol`]: crate#features\n[`StreamRequest::proxy_addr`]: crate#features\n[`proxy`]: crate#features"
)]
//!
//! ## Stopping gracefully
//!
//! Service managers (systemd, Kubernetes, container runtimes) stop a service with SIGTERM and
//! expect it to finish what it accepted. [`Builder::stop_on_signals`] arms that in one call: the
//! first SIGTERM or SIGINT makes [`Server::serve_forever`] stop accepting, serve what was queued
//! in the listen backlog, close the socket and wait for the running requests within the
//! [`grace_period`](Builder::grace_period) (30 s by default), then return `Ok(())` so `main` can
//! clean up and exit 0. A second signal, a SIGQUIT or [`ServerHandle::stop_now`] stops at once,
//! saying how many requests were cut off. Every mode does this, the process-based ones included.
//!
//! Handlers see the stop as it begins: [`ServerHandle::is_shutting_down`] (through
//! [`StreamRequest::server`]) lets a long-lived handler end early, and
//! [`StreamRequest::wait_for_request`] ends an idle keep-alive connection at once instead of
//! letting it hold the stop for the whole grace period (a new connection, which has sent nothing
//! yet, is not idle: its first request is awaited). [`Builder::on_stop`] runs on the serving
//! thread when the stop begins (to tell a supervisor, say).
//!
//! ```
//! use std::io::{BufRead, Write};
//! use std::time::Duration;
//! use socketserver::{Builder, StreamRequest, Threading};
//!
//! # fn main() -> std::io::Result<()> {
//! let mut server = Builder::new()
//!     .mode(Threading::new())
//!     .grace_period(Duration::from_secs(10)) // with the `signals` feature: .stop_on_signals()
//!     .bind_tcp("127.0.0.1:0", |req: &mut StreamRequest| {
//!         let mut line = String::new();
//!         while req.wait_for_request()? {
//!             line.clear();
//!             if req.read_line(&mut line)? == 0 {
//!                 break;
//!             }
//!             req.write_all(line.to_uppercase().as_bytes())?;
//!         }
//!         Ok(()) // the client left, or the server is stopping
//!     })?;
//! let addr = server.local_addr().as_inet().expect("a TCP address");
//! let handle = server.handle();
//! let serving = std::thread::spawn(move || server.serve_forever().and_then(|()| server.server_close()));
//!
//! let mut idle = std::net::TcpStream::connect(addr)?;
//! idle.write_all(b"hi\n")?;
//! let mut reply = String::new();
//! std::io::BufReader::new(&idle).read_line(&mut reply)?;
//! assert_eq!(reply, "HI\n");
//! handle.shutdown(); // what SIGTERM does with stop_on_signals
//! serving.join().expect("serving thread")?; // the idle connection did not hold it
//! # Ok(())
//! # }
//! ```
//!
//! ## Platform
//!
//! Unix-like systems (Linux, macOS, the BSDs): the serving loop waits with `poll(2)` and Unix-domain
//! sockets are first-class.

#![deny(missing_docs)]
// docs.rs documents the crate with every feature, on nightly, with `--cfg docsrs` (see
// `[package.metadata.docs.rs]` in Cargo.toml): `doc_cfg` then notes on each item the feature it
// needs (since Rust 1.92 it includes what `doc_auto_cfg` did). Stable builds never set `docsrs`.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(not(unix), allow(unused))]

#[cfg(not(unix))]
compile_error!("socketserver currently supports Unix-like systems only (Linux, macOS, the BSDs)");

mod address;
#[cfg(feature = "auth")]
pub mod auth;
mod control;
mod failure;
pub mod framing;
mod handler;
#[cfg(feature = "message")]
pub mod message;
pub mod mode;
mod panics;
mod process;
#[cfg(feature = "proxy")]
pub mod proxy;
mod server;
mod socket;
mod stats;
pub mod systemd;
mod throttle;

pub use address::Address;
pub use failure::Failure;
pub use handler::{
    datagram_handler, stream_handler, Connection, DatagramRequest, DatagramSocket, Deadline, Limit,
    LimitExceeded, ReadHalf, RequestHandler, StreamRequest, WriteHalf,
};
pub use mode::{AnyMode, Mode, Pool, Prefork, Process, Single, Threading, WhenFull, WorkerMode};
pub use panics::quiet_handler_panics;
pub use process::is_worker;
pub use server::transport;
pub use server::{
    Builder, ForkingTcpServer, ForkingUdpServer, ForkingUnixDatagramServer,
    ForkingUnixStreamServer, Outcome, PoolTcpServer, PoolUdpServer, PoolUnixDatagramServer,
    PoolUnixStreamServer, PreforkTcpServer, PreforkUdpServer, Server, ServerHandle, TcpServer,
    ThreadingTcpServer, ThreadingUdpServer, ThreadingUnixDatagramServer, ThreadingUnixStreamServer,
    UdpServer, UnixDatagramServer, UnixStreamServer, DEFAULT_GRACE_PERIOD,
};
pub use socket::options::{DEFAULT_BACKLOG, DEFAULT_MAX_PACKET_SIZE};
pub use stats::Stats;
