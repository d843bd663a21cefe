//! Concurrency modes, Python's mixins: where a request's handler runs.
//!
//! | mode | Python | runs each request |
//! |---|---|---|
//! | [`Single`] | plain `TCPServer` | inline, one at a time, on the serving thread |
//! | [`Threading`] | `ThreadingMixIn` | on a new thread, optionally capped |
//! | [`Pool`] | — | on one of N long-lived worker threads, fed by a bounded queue |
//!
//! A mode is chosen with [`Builder::mode`](crate::Builder::mode) or by the server alias
//! (`ThreadingTcpServer`, `PoolUdpServer`, …). The [`Mode`] trait is sealed: the crate keeps the
//! freedom to extend it as new modes (process-based ones) arrive.

mod pool;
mod single;
mod task;
mod threading;
mod threads;

pub use pool::{Pool, WhenFull};
pub use single::Single;
pub use threading::Threading;

pub(crate) use task::Task;
pub(crate) use threads::ThreadSettings;

/// A concurrency mode: [`Single`], [`Threading`] or [`Pool`]. Sealed.
pub trait Mode: sealed::ModeImpl {}

impl Mode for Single {}
impl Mode for Threading {}
impl Mode for Pool {}

pub(crate) mod sealed {
    use std::io;

    use super::{Task, ThreadSettings};
    use crate::server::stop::StopSignal;

    /// What the server asks of a mode. Not public API.
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
    }
}
