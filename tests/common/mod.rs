//! Helpers shared by the integration tests: a server serving on its own thread, clients that never
//! wait forever, channels waited on with a deadline, and throwaway Unix socket paths.
//!
//! Every test binary uses a different subset of these, hence the module-wide `dead_code` allowance.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

#[cfg(feature = "message")]
pub mod message;
#[path = "../skip/mod.rs"]
pub mod skip;
#[cfg(feature = "tls")]
pub mod tls;
use socketserver::transport::Transport;
use socketserver::{Address, Failure, Mode, RequestHandler, Server, ServerHandle};

/// Read/write timeout on every client socket: a server that never answers fails the test instead
/// of hanging it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Upper bound for every wait on a channel or on a server thread. Generous, because the suite
/// must pass on a loaded 2-core machine; it is only ever reached when something is broken.
pub const WAIT: Duration = Duration::from_secs(10);

/// Receives from `rx`, panicking with `what` if nothing arrives within [`WAIT`].
pub fn recv<T>(rx: &Receiver<T>, what: &str) -> T {
    match rx.recv_timeout(WAIT) {
        Ok(value) => value,
        Err(RecvTimeoutError::Timeout) => panic!("timed out after {WAIT:?} waiting for {what}"),
        Err(RecvTimeoutError::Disconnected) => {
            panic!("channel closed (a thread died?) while waiting for {what}")
        }
    }
}

/// A server running `serve_forever()` then `server_close()` on its own thread, reporting each
/// result over a channel so the test can wait for them with a deadline.
pub struct Serving {
    pub handle: ServerHandle,
    loop_exit: Receiver<(io::Result<()>, Instant)>,
    closed: Receiver<io::Result<()>>,
    loop_exited: bool,
}

impl Serving {
    pub fn start<T, H, M>(mut server: Server<T, H, M>) -> Serving
    where
        T: Transport,
        H: RequestHandler<T::Request> + Clone,
        M: Mode,
    {
        let handle = server.handle();
        let (loop_tx, loop_exit) = crossbeam_channel::bounded(1);
        let (closed_tx, closed) = crossbeam_channel::bounded(1);
        std::thread::Builder::new()
            .name("test-serving".into())
            .spawn(move || {
                let served = server.serve_forever();
                let _ = loop_tx.send((served, Instant::now()));
                let _ = closed_tx.send(server.server_close());
            })
            .expect("spawn the serving thread");
        Serving {
            handle,
            loop_exit,
            closed,
            loop_exited: false,
        }
    }

    /// Waits until `serve_forever` has returned (without requesting shutdown); returns its result
    /// and the moment it returned.
    pub fn wait_loop_exit(&mut self, timeout: Duration) -> io::Result<Instant> {
        assert!(!self.loop_exited, "wait_loop_exit called twice");
        let (served, at) = match self.loop_exit.recv_timeout(timeout) {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) => {
                panic!("serve_forever did not return within {timeout:?}")
            }
            Err(RecvTimeoutError::Disconnected) => panic!("the serving thread panicked"),
        };
        self.loop_exited = true;
        served.map(|()| at)
    }

    /// Requests shutdown, then waits for `serve_forever` and `server_close` to return; the first
    /// error of the two wins.
    pub fn finish(mut self, timeout: Duration) -> io::Result<()> {
        self.handle.shutdown();
        if !self.loop_exited {
            self.wait_loop_exit(timeout)?;
        }
        match self.closed.recv_timeout(timeout) {
            Ok(closed) => closed,
            Err(RecvTimeoutError::Timeout) => {
                panic!("server_close did not return within {timeout:?}")
            }
            Err(RecvTimeoutError::Disconnected) => panic!("the serving thread panicked"),
        }
    }
}

impl Drop for Serving {
    /// A test that fails half-way still stops its server.
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// A gate that handlers wait at until the test releases them: one at a time with
/// [`release_one`](Self::release_one), or all at once with [`open`](Self::open) (or by dropping
/// it, so a failing test never leaves handlers stuck).
pub struct Gate {
    tokens: Option<Sender<()>>,
}

/// The handlers' side of a [`Gate`]. Cheap to clone into handler closures.
#[derive(Clone)]
pub struct GateWaiter {
    tokens: Receiver<()>,
}

impl Gate {
    pub fn new() -> (Gate, GateWaiter) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (Gate { tokens: Some(tx) }, GateWaiter { tokens: rx })
    }

    /// Lets exactly one waiting (or future) handler through.
    pub fn release_one(&self) {
        let tokens = self.tokens.as_ref().expect("gate still closed");
        tokens.send(()).expect("a handler holds the waiter");
    }

    /// Lets every handler through, now and later.
    pub fn open(mut self) {
        self.tokens = None;
    }
}

impl GateWaiter {
    /// Waits (at most [`WAIT`]) until the gate lets this handler through.
    pub fn wait(&self) -> io::Result<()> {
        match self.tokens.recv_timeout(WAIT) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => Ok(()),
            Err(RecvTimeoutError::Timeout) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the test never opened the gate",
            )),
        }
    }
}

/// A [`Failure`] reduced to comparable, sendable data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reported {
    Error(io::ErrorKind, String),
    Panic(String),
    Truncated(usize),
    Other(String),
}

impl From<&Failure> for Reported {
    fn from(failure: &Failure) -> Self {
        match failure {
            Failure::Error(e) => Reported::Error(e.kind(), e.to_string()),
            Failure::Panic(message) => Reported::Panic(message.clone()),
            Failure::Truncated { max_packet_size } => Reported::Truncated(*max_packet_size),
            other => Reported::Other(other.to_string()),
        }
    }
}

/// A `handle_error` hook that forwards every failure, and the receiving end to read them from.
pub fn failure_channel() -> (
    impl Fn(&Address, &Failure) + Send + Sync + 'static,
    Receiver<Reported>,
) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let hook = move |_peer: &Address, failure: &Failure| {
        let _ = tx.send(Reported::from(failure));
    };
    (hook, rx)
}

/// The TCP/UDP address of a server bound to an IP address.
pub fn inet_addr(handle: &ServerHandle) -> SocketAddr {
    handle
        .local_addr()
        .as_inet()
        .expect("the server is bound to an IP address")
}

pub fn tcp_client(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Connections that hold back their PROXY protocol header, as a slow or broken balancer's do:
/// `silent` send nothing, `partial` send the first bytes of a version 1 header. Kept open until
/// the returned streams are dropped.
pub fn hold_back_proxy_headers(addr: SocketAddr, silent: usize, partial: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(silent + partial);
    for i in 0..silent + partial {
        let stream = tcp_client(addr);
        if i >= silent {
            (&stream)
                .write_all(b"PROXY TCP4 203.0")
                .expect("send part of a header");
        }
        held.push(stream);
    }
    held
}

/// Runs this test binary again as a child, running only the test `test` with `env` set (the
/// child's part of a test that must own its process: a panic hook, no logger), and returns its
/// stderr once it has exited successfully, within three times [`WAIT`].
pub fn child_test_stderr(test: &str, env: &[(&str, &str)]) -> String {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = std::process::Command::new(exe);
    command
        .args([test, "--exact", "--nocapture"])
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("run the child test");
    let mut pipe = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut stderr = String::new();
        let _ = pipe.read_to_string(&mut stderr);
        stderr
    });
    let deadline = Instant::now() + WAIT * 3;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the child test did not finish within {:?}", WAIT * 3);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = reader.join().expect("stderr reader");
    assert!(status.success(), "child failed: {status}\n{stderr}");
    stderr
}

/// A UDP socket on the loopback address of `server`'s family.
pub fn udp_client(server: SocketAddr) -> UdpSocket {
    let local: SocketAddr = if server.is_ipv4() {
        "127.0.0.1:0".parse().unwrap()
    } else {
        "[::1]:0".parse().unwrap()
    };
    let socket = UdpSocket::bind(local).unwrap();
    socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    socket.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    socket
}

pub fn unix_client(path: &Path) -> UnixStream {
    let stream =
        UnixStream::connect(path).unwrap_or_else(|e| panic!("connect to {}: {e}", path.display()));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// A Unix datagram client bound to its own temporary path: an unbound client has no address the
/// server could reply to.
pub fn unix_datagram_client(name: &str) -> (UnixDatagram, TempSocketPath) {
    let path = TempSocketPath::new(name);
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    socket.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    (socket, path)
}

/// A stream client's half of a one-request exchange: sends `request`, then reads until the server
/// closes the connection.
pub fn exchange<S>(mut stream: S, request: &[u8]) -> Vec<u8>
where
    S: Read + Write,
{
    stream.write_all(request).expect("send the request");
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).expect("read the reply");
    reply
}

/// Whether the server closed `stream` without sending anything: a read returns end-of-file or a
/// reset. Panics if the connection stays open until the read timeout.
pub fn closed_without_reply(mut stream: impl Read) -> bool {
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
            ) =>
        {
            true
        }
        Err(e) => panic!("expected the server to close the connection, but the read failed: {e}"),
    }
}

/// A unique path for a Unix socket in the temporary directory (process id + counter + name), short
/// enough for `sun_path`. The file is removed on drop if something left it there.
#[derive(Debug)]
pub struct TempSocketPath(PathBuf);

impl TempSocketPath {
    pub fn new(name: &str) -> TempSocketPath {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let file = format!("ss-{}-{n}-{name}.sock", std::process::id());
        let path = std::env::temp_dir().join(file);
        let _ = std::fs::remove_file(&path); // stale, from a previous process with our pid
        TempSocketPath(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempSocketPath {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl std::ops::Deref for TempSocketPath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempSocketPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
