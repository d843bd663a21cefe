//! Running under systemd: socket activation and readiness notification.
//!
//! **Socket activation.** A `.socket` unit binds the address (a privileged port, say) and passes
//! the socket to the service in `LISTEN_FDS`; the `Builder` methods
//! [`systemd_tcp`](crate::Builder::systemd_tcp), [`systemd_udp`](crate::Builder::systemd_udp),
//! [`systemd_unix_stream`](crate::Builder::systemd_unix_stream) and
//! [`systemd_unix_datagram`](crate::Builder::systemd_unix_datagram) serve it instead of binding.
//! Each takes a [`Select`]: the socket's position (`0` for the first) or the name the unit gave
//! it (`FileDescriptorName=`). The socket is checked before it is served — its type (stream or
//! datagram), family (IPv4/IPv6 or Unix) and, for a stream socket, that it is listening (a unit
//! with `Accept=yes` passes connections instead) — and a mismatch is an error that says what was
//! passed and what the unit should declare:
//!
//! ```text
//! LISTEN_FDS names 1 socket (web); fd 3 ("web") is a UDP socket but systemd_tcp needs a
//! listening TCP socket (ListenStream=PORT or ADDR:PORT in the .socket unit)
//! ```
//!
//! `LISTEN_PID` must name this process (a wrapper script must `exec` the program). The variables
//! are read once, then removed from the environment, and every passed socket is made
//! close-on-exec, so programs the server runs neither inherit the sockets nor take them for
//! their own. The process modes work as usual: the parent takes the socket, and its
//! [`Process`](crate::Process) children and [`Prefork`](crate::Prefork) workers inherit it from
//! the parent (in a child, these methods adopt the inherited socket, as `bind_tcp` does).
//! A descriptor that is not open, or is a pipe or a file (`ListenFIFO=`, `ListenSpecial=`), is an
//! error naming `LISTEN_FDS`, the descriptor and what it is. A [`Prefork`](crate::Prefork) binary
//! upgrade passes its socket the same way; there any `bind_*` of a Prefork server takes it too.
//!
//! ```no_run
//! use std::io::BufRead;
//! use socketserver::{Builder, Prefork, StreamRequest};
//!
//! fn main() -> std::io::Result<()> {
//!     // echo.socket: `ListenStream=8080` and `FileDescriptorName=web`;
//!     // echo.service: `Type=notify`, `ExecStart=/usr/bin/echo-server`.
//!     let mut server = Builder::new()
//!         .mode(Prefork::new(4))
//!         .systemd_tcp("web", |req: &mut StreamRequest| {
//!             let mut line = String::new();
//!             while req.read_line(&mut line)? > 0 {
//!                 std::io::Write::write_all(req, line.as_bytes())?;
//!                 line.clear();
//!             }
//!             Ok(())
//!         })?;
//!     server.serve_forever()?; // sends READY=1 to systemd, then serves
//!     server.server_close() // STOPPING=1 went out when the stop began
//! }
//! ```
//!
//! **Readiness.** When `NOTIFY_SOCKET` is set (systemd sets it for `Type=notify` services) a
//! server reports to it, following `sd_notify(3)`:
//!
//! | message | when |
//! |---|---|
//! | `READY=1` and `STATUS=…` | [`serve_forever`](crate::Server::serve_forever) starts serving (or, for a prefork parent, supervising) |
//! | `STATUS=…` | the stats changed: at most every 5 s, and with each watchdog ping |
//! | `WATCHDOG=1` | every half `WATCHDOG_USEC` (`WatchdogSec=` in the unit), from the serving loop, so a stuck loop is restarted |
//! | `STOPPING=1` and `STATUS=…` | the stop begins: [`ServerHandle::shutdown`](crate::ServerHandle::shutdown), the serving loop ending, or `server_close` |
//! | `RELOADING=1` | [`ServerHandle::notify_reloading`](crate::ServerHandle::notify_reloading); then [`notify_ready`](crate::ServerHandle::notify_ready) |
//!
//! The status reads like `threading mode on 127.0.0.1:8080: 3 active, 1200 completed, 2 failed,
//! 0 rejected` (what [`Stats`](crate::Stats) counts; `systemctl status` shows it). `NOTIFY_SOCKET`
//! may name a socket file or a Linux abstract socket (`@name`). Sends never block and never fail
//! the server: a lost message is logged. Only the process systemd started notifies: children of
//! the process modes do not (and do not inherit the variables). Turn it off with
//! [`Builder::notify_systemd(false)`](crate::Builder::notify_systemd), for instance when the
//! program sends its own `READY=1` after more start-up work.
//!
//! In [`Single`](crate::Single) mode the loop also runs the handlers, so a request that takes
//! longer than the watchdog interval gets the service restarted: use a thread or process mode
//! with `WatchdogSec=`.
//!
//! Both parts are a few system calls each over what the crate already has (`socket2`, `libc`), so
//! no systemd crate is used: `listenfd` has no `LISTEN_FDNAMES` and no listening check, and
//! `sd-notify` no abstract-namespace `NOTIFY_SOCKET`.

mod listen;
mod upgraded;

use std::io;

pub use listen::Select;
pub(crate) use listen::{take, Want};
pub(crate) use upgraded::{take as take_upgraded, unclaimed as upgrade_unclaimed, Asked};

/// Whether the passed socket `socket` is a Unix-domain socket (rather than TCP or UDP), to choose
/// between [`systemd_tcp`](crate::Builder::systemd_tcp) and
/// [`systemd_unix_stream`](crate::Builder::systemd_unix_stream) when the `.socket` unit decides.
///
/// In a child of a process mode, which does not see the variables, it answers for the socket the
/// child inherited from its parent, so the same code builds the same kind of server in both.
///
/// # Errors
///
/// `NotFound` if systemd passed no sockets to this process or none matches `socket`;
/// `InvalidInput` if the descriptor is not open or not a socket (a pipe, a file), with a message
/// naming `LISTEN_FDS`, the descriptor and what it is.
///
/// ```no_run
/// # fn main() -> std::io::Result<()> {
/// let kind = if socketserver::systemd::is_unix(0)? { "Unix" } else { "TCP" };
/// println!("systemd passed a {kind} socket");
/// # Ok(())
/// # }
/// ```
pub fn is_unix(socket: impl Into<Select>) -> io::Result<bool> {
    if let Some(fd) = crate::process::inherited_fd() {
        return listen::borrowed_shape(fd).map(|shape| shape.unix);
    }
    listen::is_unix(&socket.into())
}
