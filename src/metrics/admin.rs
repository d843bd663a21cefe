//! The admin listener: a small blocking HTTP/1.0 responder on a socket of its own (never the
//! served one) that answers `GET /metrics` with the Prometheus text and `GET /` with the status
//! page. Each scraper gets a short-lived thread with read and write timeouts, and only a few run
//! at once, so a slow scraper holds up neither another scraper nor the server.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Socket, Type};

use crate::address::Address;
use crate::control::{Shared, StopSignal};
use crate::socket::bind::{bind_inet, bind_unix};
use crate::socket::options::BindOptions;
use crate::socket::poll::{self, Ready};
use crate::socket::unix_path::UnixPathGuard;

/// How long a scraper may take to send its request head, and to read the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// The most bytes of request head read; a longer one is refused.
const MAX_HEAD: usize = 8 * 1024;
/// Scrapers served at once; more are answered 503 at once and closed.
const MAX_SCRAPERS: usize = 8;

/// Where the admin listener listens, as the builder was told.
#[derive(Debug, Clone)]
pub(crate) enum AdminAddr {
    /// The addresses `metrics_addr` resolved to, or why it could not resolve.
    Tcp(Result<Vec<SocketAddr>, String>),
    Unix(PathBuf),
}

/// A bound admin socket, not serving yet.
pub(crate) struct Bound {
    socket: Socket,
    pub(crate) local: Address,
    unix_path: Option<UnixPathGuard>,
}

/// Binds the admin listener, refusing the address the server itself is bound to.
pub(crate) fn bind(addr: &AdminAddr, served: &Address) -> io::Result<Bound> {
    let refuse_served = |local: &Address| {
        if local == served {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the metrics listener must have an address of its own, not the served \
                     {served}"
                ),
            ));
        }
        Ok(())
    };
    let (socket, unix_path) = match addr {
        AdminAddr::Tcp(Err(why)) => {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, why.clone()))
        }
        AdminAddr::Tcp(Ok(candidates)) => {
            if served.as_inet().is_some_and(|s| candidates.contains(&s)) {
                refuse_served(served)?;
            }
            let socket = bind_inet(candidates, Type::STREAM, &BindOptions::default())
                .map_err(|e| io::Error::new(e.kind(), format!("metrics listener: {e}")))?;
            (socket, None)
        }
        AdminAddr::Unix(path) => {
            if served.as_unix_path() == Some(path.as_path()) {
                refuse_served(served)?;
            }
            let socket = bind_unix(path, Type::STREAM, &BindOptions::default())
                .map_err(|e| io::Error::new(e.kind(), format!("metrics listener: {e}")))?;
            (socket, Some(UnixPathGuard::new(path)))
        }
    };
    let local = Address::from_sockaddr(socket.local_addr()?);
    refuse_served(&local)?;
    socket.set_nonblocking(true)?;
    Ok(Bound {
        socket,
        local,
        unix_path,
    })
}

/// The admin listener serving: stopped and joined when dropped (with the server).
pub(crate) struct Admin {
    stop: Arc<StopSignal>,
    thread: Option<JoinHandle<()>>,
    _unix_path: Option<UnixPathGuard>,
}

impl Admin {
    /// Serves `bound` on a thread of its own, the counters of `shared`, until dropped.
    pub(crate) fn start(bound: Bound, shared: Arc<Shared>, title: String) -> io::Result<Admin> {
        let stop = Arc::new(StopSignal::new()?);
        let Bound {
            socket,
            local,
            unix_path,
        } = bound;
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("metrics".to_string())
            .spawn(move || {
                let page = Page { shared, title };
                accept_loop(&socket, &stopping, &Arc::new(page));
            })
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot start the metrics listener: {e}"))
            })?;
        log::info!("metrics on {local} (GET /metrics, status page at /)");
        Ok(Admin {
            stop,
            thread: Some(thread),
            _unix_path: unix_path,
        })
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.stop.request();
        if let Some(thread) = self.thread.take() {
            // The accept loop catches nothing and panics on nothing it can meet.
            let _ = thread.join();
        }
    }
}

/// What the admin listener shows.
struct Page {
    shared: Arc<Shared>,
    title: String,
}

fn accept_loop(socket: &Socket, stop: &StopSignal, page: &Arc<Page>) {
    let busy = Arc::new(AtomicUsize::new(0));
    let fd: RawFd = socket.as_raw_fd();
    loop {
        match poll::wait(fd, stop.pipe_fd(), None) {
            Ok(Ready::Stop) => return,
            Ok(_) => {}
            Err(e) => {
                log::error!("metrics listener: {e}; it stops");
                return;
            }
        }
        // Everything pending, then back to waiting.
        loop {
            let conn = match socket.accept() {
                Ok((conn, _)) => conn,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and the like: the server's trouble too; try again later.
                    log::debug!("metrics listener: accept: {e}");
                    stop.sleep(Duration::from_millis(100));
                    break;
                }
            };
            let stream = Scraper::from(conn);
            if busy.fetch_add(1, Ordering::AcqRel) >= MAX_SCRAPERS {
                busy.fetch_sub(1, Ordering::AcqRel);
                stream.refuse();
                continue;
            }
            let (page, done) = (Arc::clone(page), Arc::clone(&busy));
            let spawned = std::thread::Builder::new()
                .name("metrics-http".to_string())
                .spawn(move || {
                    stream.answer(&page);
                    done.fetch_sub(1, Ordering::AcqRel);
                });
            if let Err(e) = spawned {
                log::debug!("metrics listener: cannot start a thread: {e}");
                busy.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// One scraper's connection.
enum Scraper {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl From<Socket> for Scraper {
    fn from(socket: Socket) -> Self {
        let is_unix = socket.local_addr().is_ok_and(|a| a.is_unix());
        match is_unix {
            true => Scraper::Unix(UnixStream::from(std::os::fd::OwnedFd::from(socket))),
            false => Scraper::Tcp(TcpStream::from(socket)),
        }
    }
}

impl Scraper {
    fn io(&mut self) -> &mut dyn ReadWrite {
        match self {
            Scraper::Tcp(s) => s,
            Scraper::Unix(s) => s,
        }
    }

    fn set_timeouts(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Scraper::Tcp(s) => {
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))
            }
            Scraper::Unix(s) => {
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))
            }
        }
    }

    /// Too many scrapers at once: a 503 if the socket takes it now, and closed, without waiting
    /// on the scraper (this runs on the accepting thread). What request has arrived is read
    /// first, so the close does not reset the connection before the answer is read.
    fn refuse(mut self) {
        let nonblocking = match &self {
            Scraper::Tcp(s) => s.set_nonblocking(true),
            Scraper::Unix(s) => s.set_nonblocking(true),
        };
        if nonblocking.is_err() {
            return;
        }
        let io = self.io();
        let _ = io.read(&mut [0u8; 1024]);
        let _ = respond(
            io,
            "503 Service Unavailable",
            "text/plain",
            b"busy\n",
            false,
        );
    }

    fn answer(mut self, page: &Page) {
        if let Err(e) = self.set_timeouts(IO_TIMEOUT) {
            log::debug!("metrics listener: {e}");
            return;
        }
        let io = self.io();
        let head = match read_head(io, Instant::now() + IO_TIMEOUT) {
            Ok(head) => head,
            Err(e) => {
                log::debug!("metrics listener: reading a request: {e}");
                let _ = respond(io, "400 Bad Request", "text/plain", b"bad request\n", false);
                return;
            }
        };
        let mut words = head.split_whitespace();
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let path = target.split('?').next().unwrap_or("");
        let head_only = method == "HEAD";
        if method != "GET" && !head_only {
            let _ = respond(
                io,
                "405 Method Not Allowed",
                "text/plain",
                b"GET only\n",
                false,
            );
            return;
        }
        let stats = page.shared.counters.snapshot();
        let sent = match path {
            "/metrics" => respond(
                io,
                "200 OK",
                super::CONTENT_TYPE,
                super::exposition::render(&stats).as_bytes(),
                head_only,
            ),
            "/" => respond(
                io,
                "200 OK",
                "text/html; charset=utf-8",
                super::page::render(&page.title, &stats).as_bytes(),
                head_only,
            ),
            _ => respond(io, "404 Not Found", "text/plain", b"not found\n", head_only),
        };
        if let Err(e) = sent {
            log::debug!("metrics listener: answering: {e}");
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// Reads up to the blank line that ends a request head (within `MAX_HEAD` bytes, by `deadline`),
/// and returns its first line.
fn read_head(io: &mut dyn ReadWrite, deadline: Instant) -> io::Result<String> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.ends_with(b"\r\n\r\n") && !head.ends_with(b"\n\n") {
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request head too slow",
            ));
        }
        let n = io.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed inside the request head",
            ));
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too long",
            ));
        }
    }
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(String::from_utf8_lossy(first).trim_end().to_string())
}

fn respond(
    io: &mut dyn ReadWrite,
    status: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    io.write_all(head.as_bytes())?;
    if !head_only {
        io.write_all(body)?;
    }
    io.flush()
}
