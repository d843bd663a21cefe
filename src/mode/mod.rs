//! Concurrency modes, Python's mixins: where a request's handler runs.
//!
//! | mode | Python | runs each request |
//! |---|---|---|
//! | [`Single`] | plain `TCPServer` | inline, one at a time, on the serving thread |
//! | [`Threading`] | `ThreadingMixIn` | on a new thread, optionally capped |
//! | [`Pool`] | — | on one of N long-lived worker threads, fed by a bounded queue |
//! | [`Process`] | `ForkingMixIn` | in a child process of its own |
//! | [`Prefork`] | — (gunicorn, `Net::Server::PreFork`) | in one of N long-lived worker processes, each serving with a thread mode |
//!
//! A mode is chosen with [`Builder::mode`](crate::Builder::mode) or by the server alias
//! (`ThreadingTcpServer`, `PoolUdpServer`, `ForkingTcpServer`, …); to choose it at run time
//! (from a flag, say), use [`AnyMode`]. The [`Mode`] trait is sealed: the
//! crate keeps the freedom to extend it as new modes arrive.
//!
//! The process-based modes start children by re-executing the program (no `fork()` of a running
//! Rust program): read [`Process`] and [`is_worker`](crate::is_worker) before using them.
//!
//! ## Slow peers
//!
//! Every mode gives a connection a thread or a process for as long as it lasts, so what a slow
//! peer can hold is: the whole server in [`Single`]; one thread in [`Threading`] (cap them with
//! `max_threads`); one worker in [`Pool`], with every newcomer queued behind the workers it holds
//! (as many slow connections as workers starve it); one child in [`Process`], up to
//! `max_children`. A read timeout does not help against a peer trickling a byte at a time. Bound
//! the time instead: a per-message [`Deadline`](crate::Deadline) in the handler, and the
//! server's [`idle_timeout`](crate::Builder::idle_timeout) and
//! [`max_connection_lifetime`](crate::Builder::max_connection_lifetime), which every read and
//! write through the request honours.

mod any;
mod pool;
mod prefork;
mod process;
mod single;
mod task;
mod threading;
mod threads;

pub use any::AnyMode;
pub use pool::{Pool, WhenFull};
pub use prefork::{Prefork, WorkerMode};
pub use process::{Process, DEFAULT_MAX_CHILDREN};
pub use single::Single;
pub use threading::Threading;

pub(crate) use task::Task;
pub(crate) use threads::ThreadSettings;

/// A concurrency mode: [`Single`], [`Threading`], [`Pool`], [`Process`] or [`Prefork`]. Sealed.
pub trait Mode: sealed::ModeImpl {}

impl Mode for Single {}
impl Mode for Threading {}
impl Mode for Pool {}
impl Mode for Process {}
impl Mode for Prefork {}

pub(crate) mod sealed {
    use std::io;
    use std::os::fd::RawFd;

    use super::{Task, ThreadSettings};
    use crate::control::StopSignal;
    use crate::process::ProcessKind;

    /// What the server asks of a mode. Not public API. [`AnyMode`](super::AnyMode) delegates
    /// every method, the defaulted ones included: a method added here must be added there.
    pub trait ModeImpl: Send + 'static {
        /// A short name for log lines.
        fn name(&self) -> &'static str;
        /// Called once when the server is built (a pool starts its workers here).
        fn start(&mut self, threads: &ThreadSettings) -> io::Result<()>;
        /// Runs, queues or rejects `task`. May block while the mode is at capacity, but must give
        /// up (rejecting the task) once `stop` is requested.
        fn dispatch(&mut self, task: Task, stop: &StopSignal);
        /// No more tasks will come: let workers finish what they hold and exit. Must not block.
        fn stop_intake(&mut self);
        /// Joins the mode's threads. Called once every request has ended.
        fn join(&mut self);

        /// For the process-based modes: which kind of child this mode starts.
        fn process_kind(&self) -> Option<ProcessKind> {
            None
        }
        /// Whether tasks must carry a [`Handoff`](crate::process::Handoff) (the request's socket
        /// and data) because the handler runs in another process.
        fn wants_handoff(&self) -> bool {
            false
        }
        /// Called in a prefork worker process, before `start`: serve with the inner mode.
        fn become_worker(&mut self, _index: usize) {}
        /// Requests a worker process serves before it exits to be replaced.
        fn worker_request_limit(&self) -> Option<u64> {
            None
        }
        /// In a prefork worker: how long a worker that stops may take to finish its requests
        /// before it exits anyway.
        fn drain_timeout(&self) -> Option<std::time::Duration> {
            None
        }
        /// Whether this process supervises workers instead of serving (a prefork parent).
        fn supervises(&self) -> bool {
            false
        }
        /// Runs the supervisor until `server` is stopped, calling `tick` on each of its wake-ups (the systemd
        /// watchdog), the one that sees the stop included. Only called if `supervises`; the
        /// workers are stopped afterwards, by `stop_workers`.
        fn supervise(
            &mut self,
            _socket: RawFd,
            _server: &crate::control::ServerHandle,
            _tick: &mut dyn FnMut(),
        ) -> io::Result<()> {
            Ok(())
        }
        /// After `supervise`: tells the workers to stop and waits for them within the drain
        /// timeout, killing those still running then or once the stop turns immediate. Returns
        /// how many it killed.
        fn stop_workers(&mut self, _server: &crate::control::ServerHandle) -> usize {
            0
        }
        /// The stop has begun: tell running children, so their handlers see
        /// `is_shutting_down`. Must not block.
        fn pass_stop_on(&mut self) {}
        /// The stop turned immediate: end what the mode can of the requests still running (kill
        /// child processes, close connections still queued). Must not block.
        fn cut_off(&mut self) {}
    }
}
