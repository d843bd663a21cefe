//! [`Single`]: every request handled inline on the serving thread.

use std::io;

use super::sealed::ModeImpl;
use super::{Task, ThreadSettings};
use crate::control::StopSignal;

/// Handles one request at a time on the serving thread — Python's plain `TCPServer`/`UDPServer`.
///
/// Simplest and cheapest per request; a slow client holds up everyone behind it, so it suits
/// datagram servers and short request/response exchanges.
#[derive(Debug, Default, Clone, Copy)]
pub struct Single;

impl ModeImpl for Single {
    fn name(&self) -> &'static str {
        "single-threaded"
    }

    fn start(&mut self, _threads: &ThreadSettings) -> io::Result<()> {
        Ok(())
    }

    fn dispatch(&mut self, task: Task, _stop: &StopSignal) {
        task.run();
    }

    fn stop_intake(&mut self) {}

    fn join(&mut self) {}
}
