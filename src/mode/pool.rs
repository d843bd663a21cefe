//! [`Pool`]: a fixed set of worker threads fed through a bounded queue.

use std::io;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Select, Sender, TrySendError};

use super::sealed::ModeImpl;
use super::{Task, ThreadSettings};
use crate::control::StopSignal;
use crate::throttle::Throttle;

/// What a [`Pool`] does with a new request when its queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Stop accepting until a worker frees a place (new connections wait in the listen backlog).
    #[default]
    Wait,
    /// Close the new connection (or drop the datagram) at once, log it, and count it in
    /// [`Stats::rejected`](crate::Stats::rejected).
    Reject,
}

/// N long-lived worker threads taking requests from a bounded `crossbeam-channel` queue.
///
/// Unlike [`Threading`](super::Threading) it starts no thread per request, and it bounds both the
/// handlers running (`workers`) and the requests waiting (`queue`). On
/// [`Server::server_close`](crate::Server::server_close) the workers finish the queue, then exit.
///
/// One worker and one place in the queue: while the worker serves a connection, the next one
/// waits in the queue, and with [`WhenFull::Reject`] the one after is closed at once.
///
/// ```
/// use std::io::{self, BufRead, BufReader, Read, Write};
/// use std::net::TcpStream;
/// use std::time::Duration;
/// use socketserver::{stream_handler, Builder, Pool, WhenFull};
///
/// # fn main() -> io::Result<()> {
/// let mut server = Builder::new()
///     .mode(Pool::new(1).queue(1).when_full(WhenFull::Reject))
///     .bind_tcp(
///         "127.0.0.1:0",
///         stream_handler(|req| {
///             let mut line = String::new();
///             while req.read_line(&mut line)? > 0 {
///                 req.write_all(line.to_uppercase().as_bytes())?;
///                 line.clear();
///             }
///             Ok(())
///         }),
///     )?;
/// let addr = server.local_addr().as_inet().expect("a TCP address");
/// let handle = server.handle();
/// let serving =
///     std::thread::spawn(move || server.serve_forever().and_then(|()| server.server_close()));
///
/// let connect = || -> io::Result<TcpStream> {
///     let stream = TcpStream::connect(addr)?;
///     stream.set_read_timeout(Some(Duration::from_secs(10)))?;
///     Ok(stream)
/// };
/// let ask = |mut stream: &TcpStream, line: &str| -> io::Result<String> {
///     stream.write_all(line.as_bytes())?;
///     let mut answer = String::new();
///     BufReader::new(stream).read_line(&mut answer)?;
///     Ok(answer)
/// };
/// let first = connect()?;
/// assert_eq!(ask(&first, "one\n")?, "ONE\n"); // the worker serves it
/// let second = connect()?; // waits in the queue
/// let mut third = connect()?; // the queue is full: closed at once
/// assert_eq!(third.read(&mut [0u8; 1])?, 0);
/// drop(first); // the worker is free: it takes the queued connection
/// assert_eq!(ask(&second, "two\n")?, "TWO\n");
/// drop(second); // else `server_close` would wait for its handler
///
/// handle.shutdown();
/// serving.join().expect("serving thread")?;
/// assert_eq!(handle.stats().rejected, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Pool {
    workers: usize,
    queue: usize,
    when_full: WhenFull,
    sender: Option<Sender<Task>>,
    /// The queue's other end, to empty it when the stop turns immediate.
    queued: Option<Receiver<Task>>,
    handles: Vec<JoinHandle<()>>,
    rejections: Throttle,
}

impl Pool {
    /// A pool of `workers` threads with a queue of `4 × workers` places and [`WhenFull::Wait`].
    #[must_use]
    pub fn new(workers: usize) -> Self {
        Pool {
            workers,
            queue: workers.saturating_mul(4),
            when_full: WhenFull::Wait,
            sender: None,
            queued: None,
            handles: Vec::new(),
            rejections: Throttle::new(std::time::Duration::from_secs(1)),
        }
    }

    /// How many accepted requests may wait for a worker. 0 hands each request straight to an idle
    /// worker.
    #[must_use]
    pub fn queue(mut self, places: usize) -> Self {
        self.queue = places;
        self
    }

    /// What to do with a request when the queue is full.
    #[must_use]
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// The number of worker threads.
    #[must_use]
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Closes `task`, which was counted in the queue gauge, unserved.
    fn reject(&mut self, task: Task, why: &str) {
        task.queued(false);
        if let Some(held_back) = self.rejections.admit() {
            let more = if held_back > 0 {
                format!(" ({held_back} more since the last report)")
            } else {
                String::new()
            };
            log::warn!("closing connection from {}: {why}{more}", task.peer());
        }
        task.reject();
    }
}

impl Default for Pool {
    /// Four workers per available core: handlers usually block on I/O, not on the CPU.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Pool::new(cores * 4)
    }
}

impl ModeImpl for Pool {
    fn name(&self) -> &'static str {
        "pool"
    }

    fn start(&mut self, threads: &ThreadSettings) -> io::Result<()> {
        if self.workers == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a Pool needs at least 1 worker",
            ));
        }
        let (sender, receiver) = crossbeam_channel::bounded::<Task>(self.queue);
        for i in 0..self.workers {
            let receiver = receiver.clone();
            let spawned = threads.spawn(&format!("pool-{i}"), move || {
                // Ends when the server drops the sender and the queue is empty.
                for task in receiver.iter() {
                    task.queued(false);
                    task.run();
                }
            });
            match spawned {
                Ok(handle) => self.handles.push(handle),
                Err(e) => {
                    drop(sender);
                    self.join();
                    return Err(io::Error::new(
                        e.kind(),
                        format!("cannot start pool worker {i} of {}: {e}", self.workers),
                    ));
                }
            }
        }
        self.sender = Some(sender);
        self.queued = Some(receiver);
        Ok(())
    }

    fn dispatch(&mut self, task: Task, stop: &StopSignal) {
        // Counted before it is sent: a worker may take it (and count it out) at once.
        task.queued(true);
        let Some(sender) = self.sender.clone() else {
            return self.reject(task, "the pool is stopped");
        };
        let task = match sender.try_send(task) {
            Ok(()) => return,
            Err(TrySendError::Disconnected(task)) => {
                return self.reject(task, "the pool is stopped")
            }
            Err(TrySendError::Full(task)) => task,
        };
        if self.when_full == WhenFull::Reject {
            let why = format!("pool queue is full ({} waiting)", self.queue);
            return self.reject(task, &why);
        }
        let mut select = Select::new();
        let place = select.send(&sender);
        let stopped = select.recv(stop.channel());
        let op = select.select();
        if op.index() == place {
            if let Err(e) = op.send(&sender, task) {
                self.reject(e.into_inner(), "the pool is stopped");
            }
        } else {
            debug_assert_eq!(op.index(), stopped);
            let _ = op.recv(stop.channel());
            self.reject(task, "server shut down while it waited for a worker");
        }
    }

    fn stop_intake(&mut self) {
        self.sender = None;
    }

    fn cut_off(&mut self) {
        let Some(queued) = &self.queued else {
            return;
        };
        let mut closed = 0;
        while let Ok(task) = queued.try_recv() {
            task.queued(false);
            task.reject();
            closed += 1;
        }
        if closed > 0 {
            log::warn!("closed {closed} connection(s) still waiting in the pool queue");
        }
    }

    fn join(&mut self) {
        for handle in self.handles.drain(..) {
            if handle.join().is_err() {
                log::error!("a pool worker panicked outside its handler");
            }
        }
    }
}
