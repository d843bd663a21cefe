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
//! * **TLS** — [`tls`] (feature `tls`): [`Builder::tls`] serves TLS in every mode and in
//!   message servers, with handshakes that hold no worker, client certificates, SNI, ALPN and
//!   certificates reloaded without a restart.
//! * **Protocols** — [`framing`]: length-prefixed frames and JSON header + body messages, the
//!   cure for TCP's "sticky packets" that Python socket tutorials teach; [`auth`]: HMAC
//!   challenge–response authentication of clients, as a wrapper around any stream handler.
//!
//! Errors are `std::io::Error`s whose messages say what failed and where; failures inside a
//! handler reach the `handle_error` hook as a [`Failure`] and never stop the server. The library
//! logs through the [`log`](https://docs.rs/log) crate and never prints.
//!
//! ## Features
//!
//! Cargo features add protocol helpers and their dependencies; all but `tls` are on by default. With
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
//! | `tls` (off by default) | TLS for stream and message servers: [`Builder::tls`], [`StreamRequest::tls`], the [`tls`] module | `rustls` (ring), `rustls-pki-types`, `x509-parser`, `mio` |
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
    not(feature = "tls"),
    doc = "[`tls`]: crate#features\n[`Builder::tls`]: crate#features\n[`StreamRequest::tls`]: crate#features"
)]
#![cfg_attr(
    not(feature = "proxy"),
    doc = "[`Builder::proxy_protocol`]: crate#features\n[`StreamRequest::proxy_addr`]: crate#features\n[`proxy`]: crate#features"
)]
//!
//! ## Stopping gracefully
//!
//! Service managers (systemd, Kubernetes, supervisord, container runtimes) stop a service with
//! SIGTERM and expect it to finish what it accepted. This section holds every rule of a stop; the
//! items that take part ([`Builder::stop_on_signals`], [`Builder::grace_period`],
//! [`Server::serve_forever`], [`StreamRequest::wait_for_request`], the [`message`] servers) link
//! here.
//!
//! **Starting a stop.** [`Builder::stop_on_signals`] (feature `signals`) arms it in one call: the
//! first SIGTERM or SIGINT starts a graceful stop, a second one or a SIGQUIT makes it immediate,
//! and one more signal after that ends the process at once (exit status 128 + the signal number).
//! The signal handlers only pass the signal on (through the `signal-hook` crate); the serving
//! thread does the stopping. The grace period is [`DEFAULT_GRACE_PERIOD`] (30 s) unless
//! [`Builder::grace_period`] says otherwise. A program that handles signals itself sets
//! `grace_period` alone: [`ServerHandle::shutdown`] is then a graceful stop, as SIGTERM is, and
//! [`ServerHandle::stop_now`] an immediate one, as a second signal is. (Without a grace period,
//! `shutdown` only ends the serving loop: nothing more is accepted, and [`Server::server_close`]
//! waits for the running requests.)
//!
//! **A graceful stop**, once [`Server::serve_forever`] sees it:
//!
//! 1. calls the [`Builder::on_stop`] hook on the serving thread (to tell a supervisor, say) and
//!    stops accepting; [`ServerHandle::is_shutting_down`] (through [`StreamRequest::server`])
//!    turns true, so a long-lived handler can end early;
//! 2. serves the connections (or datagrams) the kernel had already queued in the listen backlog,
//!    so a client that connected just before the stop is served, not reset;
//! 3. closes the socket (a Unix server removes its socket file);
//! 4. lets the running requests, and those waiting in a [`Pool`]'s queue, finish within the grace
//!    period;
//! 5. returns `Ok(())`, so `main` can call [`Server::server_close`], clean up and exit with
//!    status 0. The grace period bounds `server_close`'s wait too, whatever the
//!    [`close_timeout`](Builder::close_timeout).
//!
//! **An immediate stop** — the grace period running out, a second SIGTERM or SIGINT, a SIGQUIT,
//! or [`ServerHandle::stop_now`] — stops waiting: the log and `serve_forever`'s error (`TimedOut`
//! when the grace period ran out, `Interrupted` otherwise; `Ok(())` if nothing was cut off) say
//! how many requests were cut off, child processes still serving are killed, and `server_close`
//! does not wait for handler threads. Threads cannot be killed: a handler still running is left to
//! the end of the process. In [`Single`] mode the handler runs on the serving thread, so an
//! immediate stop takes effect when the request it is handling ends: bound requests with
//! [`idle_timeout`](Builder::idle_timeout) or a [`Deadline`].
//!
//! **Idle and new connections.** Between two requests of a keep-alive connection,
//! [`StreamRequest::wait_for_request`] waits for the next request *or* the stop, so an idle
//! connection ends at once instead of holding the stop for its whole grace period; a request
//! already on its way is still served. A connection that has sent nothing yet is not idle: its
//! client connected to send a request, which may still be on its way when the stop begins (the
//! stop has just taken it from the listen backlog, say). It is given 5 seconds from when it was
//! accepted (as Go's `http.Server` does), within the grace period, for that first request to
//! arrive and be served; only an immediate stop ends that wait early. Once a byte has been read
//! through the request, the idle rule applies. The log line that ends the stop says how many
//! connections were closed idle, and how many of those before their first request arrived.
//!
//! **No accepted connection is dropped.** Within the grace period a client that sends its request
//! is either answered or, once the socket is closed, refused (`ECONNREFUSED`); it is never
//! accepted and then dropped unanswered. Closing a listening socket makes the kernel reset the
//! connections still queued on it, and a handshake can complete between the stop's last look at
//! the queue and the close. So on Linux, before that last look, the stop shuts the door: it
//! attaches a socket filter to a listener it bound itself that drops new connection attempts
//! (SYNs), lets handshakes already under way complete, and takes the queue until it has stayed
//! empty for 10 ms. A client that tried meanwhile sends its SYN again a second later, and finds
//! the port refused or a restarted server listening. A socket systemd passed, or one given to
//! [`from_tcp_listener`](Builder::from_tcp_listener), is not filtered (it may outlive the server),
//! and neither is any socket off Linux: there a connection can still be reset in the instant
//! before the socket closes.
//!
//! **Every mode** stops this way. [`Process`] children finish their requests and are killed if the
//! grace period runs out; with `stop_on_signals` they do not end on the SIGINT or SIGTERM a
//! terminal or systemd sends the whole process group: the parent decides when a request is cut off.
//! A [`Prefork`] parent passes the stop to its workers, which drain the same way. Children are
//! re-executions of the program, so they arm `stop_on_signals` too, and `on_stop` also runs in each
//! prefork worker as it stops.
//!
//! **Message servers** ([`Builder::messages`]) stop connection by connection: each closes once
//! what its peer has sent is answered, within the grace period. A message whose first byte had
//! arrived is received, handled and answered; whole messages already buffered are answered; a
//! connection accepted less than 5 s before (or during) the stop that has sent nothing yet gets
//! its first message answered; an idle connection closes at once. Without a grace period, running
//! handlers finish, their replies are sent, and every connection closes. Only where a reset is
//! likely — bytes unread, or a message half received — is a connection closed with a lingering
//! close: its peer's late bytes are dropped for up to 2 s, so they cannot turn into a reset that
//! destroys the last reply. An idle client does not slow the stop down.
//!
//! A line server that stops within 10 s, its idle connections at once:
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
#[cfg(feature = "metrics")]
pub mod metrics;
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
#[cfg(feature = "tls")]
pub mod tls;

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
pub use stats::{ClosedBy, LatencyHistogram, Stats};
