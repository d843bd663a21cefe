//! The intake: a front stage where accepted connections wait, holding no thread, until they have
//! something to say — their PROXY protocol header whole — before the concurrency mode gives them
//! a thread, a worker or a process.
//!
//! Without it the header was read, blocking, by whatever ran the request: a balancer connection
//! slow to send its header held a pool worker (or, in `Single` mode and in a message server's
//! accepting thread, the whole server) for up to the header timeout. Here one thread waits on all
//! of them at once with the OS's readiness API (epoll, through `mio`), peeks at what has arrived,
//! and hands a connection back to the serving thread only once its header is whole; a
//! connection past its deadline (counted from accept) is closed and reported. What a connection
//! must do before it is served — the PROXY header, the TLS handshake — is the transport's
//! `try_admit`, so the stage itself knows nothing of protocols.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::control::Shared;
use crate::failure::Failure;
use crate::handler::Admission;
use crate::mode::ThreadSettings;
use crate::server::transport::Transport;
use crate::stats::Ending;

const WAKER: Token = Token(0);
/// Slot `n` has token `n + FIRST_SLOT`.
const FIRST_SLOT: usize = 1;

/// A connection whose preamble is done, for the serving thread to dispatch.
pub(crate) type Prepared<T> = (
    <T as crate::server::transport::sealed::TransportImpl>::Request,
    Admission,
);

/// The serving thread's end of the intake.
pub(crate) struct Intake<T: Transport> {
    arrivals: Option<Sender<T::Request>>,
    waker: Arc<Waker>,
    prepared: Receiver<Prepared<T>>,
    bell: Arc<Bell>,
    /// Connections submitted and not yet taken back or ended by the intake.
    held: Arc<AtomicUsize>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Transport> Intake<T> {
    /// Starts the intake's thread; each connection gets `timeout` from its submission (made right
    /// after accept) to finish its preamble, `what` (for the error when it does not; a late one
    /// counts as a failed TLS handshake if `handshakes`).
    pub(crate) fn start(
        shared: Arc<Shared>,
        what: &'static str,
        timeout: Duration,
        handshakes: bool,
        threads: &ThreadSettings,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (arrivals, arriving) = crossbeam_channel::unbounded();
        let (ready, prepared) = crossbeam_channel::unbounded();
        let bell = Arc::new(Bell::new()?);
        let held = Arc::new(AtomicUsize::new(0));
        let stage = Stage::<T> {
            poll,
            arriving,
            ready,
            bell: Arc::clone(&bell),
            held: Arc::clone(&held),
            shared: Arc::clone(&shared),
            what,
            timeout,
            handshakes,
            slots: Vec::new(),
            free: Vec::new(),
            deadlines: VecDeque::new(),
            serial: 0,
        };
        let thread = threads.spawn("intake", move || stage.run()).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot start the intake thread: {e}"))
        })?;
        Ok(Intake {
            arrivals: Some(arrivals),
            waker,
            prepared,
            bell,
            held,
            shared,
            thread: Some(thread),
        })
    }

    /// Hands a just-accepted connection (already counted as a request) to the intake.
    pub(crate) fn submit(&self, request: T::Request) {
        let Some(arrivals) = &self.arrivals else {
            return; // not after `close`: the request ends as it is dropped
        };
        self.held.fetch_add(1, Ordering::AcqRel);
        if arrivals.send(request).is_err() {
            self.held.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        // A failed wake-up leaves the connection to the next one, or to its deadline.
        let _ = self.waker.wake();
    }

    /// Readable when connections are ready to be taken with [`take`](Self::take).
    pub(crate) fn bell_fd(&self) -> RawFd {
        self.bell.reader.as_raw_fd()
    }

    /// Takes the connections whose preamble is done, in the order they finished it.
    pub(crate) fn take(&self) -> Vec<Prepared<T>> {
        self.bell.silence();
        let taken: Vec<_> = self.prepared.try_iter().collect();
        self.held.fetch_sub(taken.len(), Ordering::AcqRel);
        taken
    }

    /// Whether no connection is in the intake or waiting to be taken.
    pub(crate) fn is_empty(&self) -> bool {
        self.held.load(Ordering::Acquire) == 0
    }
}

impl<T: Transport> Drop for Intake<T> {
    /// Closes the connections still in the intake (counted as rejected) and ends its thread.
    fn drop(&mut self) {
        self.arrivals = None;
        let _ = self.waker.wake();
        if let Some(thread) = self.thread.take() {
            // The stage catches nothing: a panic there is a bug, already reported by the hook.
            let _ = thread.join();
        }
        // Ready, but never taken: closed unserved like the rest.
        for (request, _) in self.prepared.try_iter() {
            drop(request);
            self.shared.counters.request_ended(Ending::Rejected);
            self.held.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Wakes the serving thread: a non-blocking socket pair (std sets its flags, unlike a pipe's)
/// rung once per batch of ready connections.
struct Bell {
    reader: UnixStream,
    writer: UnixStream,
    rung: AtomicBool,
}

impl Bell {
    fn new() -> io::Result<Bell> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok(Bell {
            reader,
            writer,
            rung: AtomicBool::new(false),
        })
    }

    fn ring(&self) {
        if !self.rung.swap(true, Ordering::AcqRel) {
            // Full means rung already; the byte only wakes a poll.
            let _ = (&self.writer).write(&[1]);
        }
    }

    /// Before taking what is ready: a later `ring` rings again.
    fn silence(&self) {
        let mut buf = [0u8; 64];
        while matches!((&self.reader).read(&mut buf), Ok(n) if n > 0) {}
        self.rung.store(false, Ordering::Release);
    }
}

/// A connection in the intake.
struct Entry<R> {
    request: R,
    serial: u64,
}

/// The intake's thread.
struct Stage<T: Transport> {
    poll: Poll,
    arriving: Receiver<T::Request>,
    ready: Sender<Prepared<T>>,
    bell: Arc<Bell>,
    held: Arc<AtomicUsize>,
    shared: Arc<Shared>,
    /// What the connections must send, for the error when they do not.
    what: &'static str,
    timeout: Duration,
    /// Whether the preamble includes a TLS handshake.
    handshakes: bool,
    slots: Vec<Option<Entry<T::Request>>>,
    free: Vec<usize>,
    /// Every connection gets the same time, so arrival order is deadline order: a queue, not a
    /// heap. Entries of connections that already left are skipped by their serial.
    deadlines: VecDeque<(Instant, usize, u64)>,
    serial: u64,
}

impl<T: Transport> Stage<T> {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            let wait = self
                .deadlines
                .front()
                .map(|(at, _, _)| at.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, wait) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!(
                        "intake: waiting for readiness failed: {e}; closing its connections"
                    );
                    break;
                }
            }
            for event in &events {
                if event.token() != WAKER {
                    let closed = event.is_read_closed() || event.is_error();
                    self.step(event.token().0 - FIRST_SLOT, closed);
                }
            }
            if !self.take_arrivals() {
                break;
            }
            self.expire(Instant::now());
        }
        self.close_all();
    }

    /// Takes new connections; `false` once the serving thread closed the intake.
    fn take_arrivals(&mut self) -> bool {
        loop {
            match self.arriving.try_recv() {
                Ok(request) => self.add(request),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn add(&mut self, mut request: T::Request) {
        // Often the header came with the connection: no need to wait for readiness.
        match T::try_admit(&mut request) {
            Ok(Some(admission)) => return self.hand_on(request, admission),
            Ok(None) => {}
            Err(e) => return self.fail(&request, e),
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        let fd = T::request_fd(&request);
        let token = Token(slot + FIRST_SLOT);
        // Writable too for a TLS handshake, which may wait for room to send its flight.
        let interest = match self.handshakes {
            true => Interest::READABLE | Interest::WRITABLE,
            false => Interest::READABLE,
        };
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut SourceFd(&fd), token, interest)
        {
            self.free.push(slot);
            let e = io::Error::new(e.kind(), format!("cannot watch the connection: {e}"));
            return self.fail(&request, e);
        }
        self.serial += 1;
        let deadline = Instant::now() + self.timeout;
        self.deadlines.push_back((deadline, slot, self.serial));
        self.slots[slot] = Some(Entry {
            request,
            serial: self.serial,
        });
    }

    /// The connection in `slot` is readable (or its peer has `closed` its side): is its preamble
    /// done?
    fn step(&mut self, slot: usize, closed: bool) {
        let Some(entry) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let step = T::try_admit(&mut entry.request);
        match step {
            // What arrived is only looked at, not taken, so a peer that left after part of it
            // shows as its end of stream alone.
            Ok(None) if closed => {
                if let Some(request) = self.remove(slot) {
                    let e = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{}: the peer closed the connection before sending a whole {}",
                            T::peer(&request),
                            self.what
                        ),
                    );
                    if !self.handshakes {
                        self.shared
                            .counters
                            .closed_by(crate::stats::Limit::ProxyHeader);
                    }
                    self.fail(&request, e);
                }
            }
            Ok(None) => {}
            Ok(Some(admission)) => {
                if let Some(request) = self.remove(slot) {
                    self.hand_on(request, admission);
                }
            }
            Err(e) => {
                if let Some(request) = self.remove(slot) {
                    self.fail(&request, e);
                }
            }
        }
    }

    /// Takes the connection in `slot` out of the intake.
    fn remove(&mut self, slot: usize) -> Option<T::Request> {
        let entry = self.slots.get_mut(slot)?.take()?;
        self.free.push(slot);
        let fd = T::request_fd(&entry.request);
        // It is closed or served right after; a failure here changes nothing.
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        Some(entry.request)
    }

    fn hand_on(&mut self, request: T::Request, admission: Admission) {
        if self.ready.send((request, admission)).is_ok() {
            self.bell.ring();
        }
    }

    /// Ends a connection whose preamble failed: reported to `handle_error`, counted as failed.
    fn fail(&mut self, request: &T::Request, e: io::Error) {
        self.shared.report(T::peer(request), &Failure::Error(e));
        self.shared.counters.request_ended(Ending::Failed);
        self.held.fetch_sub(1, Ordering::AcqRel);
    }

    /// Closes the connections whose deadline has passed.
    fn expire(&mut self, now: Instant) {
        while let Some(&(at, slot, serial)) = self.deadlines.front() {
            if at > now {
                return;
            }
            self.deadlines.pop_front();
            let current = self.slots.get(slot).and_then(Option::as_ref);
            if current.is_none_or(|entry| entry.serial != serial) {
                continue; // that connection left the intake already
            }
            let Some(request) = self.remove(slot) else {
                continue;
            };
            let e = io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{}: {} deadline passed: not done {:?} after connecting; closed the \
                     connection",
                    T::peer(&request),
                    self.what,
                    self.timeout
                ),
            );
            if self.handshakes {
                self.shared.counters.tls_handshake_failed();
            } else {
                self.shared
                    .counters
                    .closed_by(crate::stats::Limit::ProxyHeader);
            }
            self.fail(&request, e);
        }
    }

    /// The server closed the intake: the connections still in it are closed unserved.
    fn close_all(&mut self) {
        let mut closed = 0;
        for slot in 0..self.slots.len() {
            if let Some(request) = self.remove(slot) {
                drop(request);
                self.shared.counters.request_ended(Ending::Rejected);
                self.held.fetch_sub(1, Ordering::AcqRel);
                closed += 1;
            }
        }
        for request in self.arriving.try_iter() {
            drop(request);
            self.shared.counters.request_ended(Ending::Rejected);
            self.held.fetch_sub(1, Ordering::AcqRel);
            closed += 1;
        }
        if closed > 0 {
            log::info!(
                "closed {closed} connection(s) that had not sent a whole {} when the server \
                 stopped",
                self.what
            );
        }
    }
}
