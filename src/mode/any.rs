//! [`AnyMode`]: a concurrency mode chosen at run time, from a flag or a configuration file.

use std::io;
use std::os::fd::RawFd;
use std::str::FromStr;

use super::sealed::ModeImpl;
use super::{Mode, Pool, Prefork, Process, Single, Task, ThreadSettings, Threading};
use crate::control::StopSignal;
use crate::process::ProcessKind;

/// Any of the five modes, chosen at run time.
///
/// `Builder::mode` fixes the mode in the server's type, so `if flag { b.mode(Pool::new(8)) } else
/// { b.mode(Single) }` does not compile: the two branches are different types. Wrap the choice in
/// an `AnyMode` instead (every mode converts into one with `into()`), or parse it from a name:
/// `"single"`, `"threading"`, `"pool"` ([`Pool::default`]), `"process"` or `"prefork"` (a worker
/// per core).
///
/// ```
/// use socketserver::{AnyMode, Builder, Pool, StreamRequest};
///
/// # fn main() -> std::io::Result<()> {
/// let flag = std::env::var("MODE").unwrap_or_else(|_| "threading".to_string());
/// let mode: AnyMode = match flag.as_str() {
///     "small-pool" => Pool::new(2).into(),
///     other => other.parse()?, // "single", "threading", "pool", "process", "prefork"
/// };
/// let server = Builder::new()
///     .mode(mode)
///     .bind_tcp("127.0.0.1:0", |req: &mut StreamRequest| {
///         std::io::copy(req, &mut std::io::sink()).map(|_| ())
///     })?;
/// server.server_close()?;
/// # Ok(())
/// # }
/// ```
///
/// The dispatch costs one `match` per request over naming the mode's type directly.
#[derive(Debug)]
pub enum AnyMode {
    /// [`Single`].
    Single(Single),
    /// [`Threading`].
    Threading(Threading),
    /// [`Pool`].
    Pool(Pool),
    /// [`Process`].
    Process(Process),
    /// [`Prefork`].
    Prefork(Prefork),
}

impl AnyMode {
    /// The names [`FromStr`] accepts, for usage messages.
    pub const NAMES: [&'static str; 5] = ["single", "threading", "pool", "process", "prefork"];

    fn inner(&self) -> &dyn ModeImpl {
        match self {
            AnyMode::Single(m) => m,
            AnyMode::Threading(m) => m,
            AnyMode::Pool(m) => m,
            AnyMode::Process(m) => m,
            AnyMode::Prefork(m) => m,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn ModeImpl {
        match self {
            AnyMode::Single(m) => m,
            AnyMode::Threading(m) => m,
            AnyMode::Pool(m) => m,
            AnyMode::Process(m) => m,
            AnyMode::Prefork(m) => m,
        }
    }
}

impl Default for AnyMode {
    /// [`Single`], as for a plain `Builder`.
    fn default() -> Self {
        AnyMode::Single(Single)
    }
}

impl FromStr for AnyMode {
    type Err = io::Error;

    /// A mode with its defaults, by name; an `InvalidInput` error naming the choices otherwise.
    fn from_str(name: &str) -> io::Result<AnyMode> {
        Ok(match name {
            "single" => AnyMode::Single(Single),
            "threading" => AnyMode::Threading(Threading::new()),
            "pool" => AnyMode::Pool(Pool::default()),
            "process" => AnyMode::Process(Process::new()),
            "prefork" => {
                let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
                AnyMode::Prefork(Prefork::new(cores))
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "unknown concurrency mode {other:?}: expected one of {}",
                        AnyMode::NAMES.join(", ")
                    ),
                ))
            }
        })
    }
}

impl From<Single> for AnyMode {
    fn from(mode: Single) -> Self {
        AnyMode::Single(mode)
    }
}

impl From<Threading> for AnyMode {
    fn from(mode: Threading) -> Self {
        AnyMode::Threading(mode)
    }
}

impl From<Pool> for AnyMode {
    fn from(mode: Pool) -> Self {
        AnyMode::Pool(mode)
    }
}

impl From<Process> for AnyMode {
    fn from(mode: Process) -> Self {
        AnyMode::Process(mode)
    }
}

impl From<Prefork> for AnyMode {
    fn from(mode: Prefork) -> Self {
        AnyMode::Prefork(mode)
    }
}

impl Mode for AnyMode {}

impl ModeImpl for AnyMode {
    fn name(&self) -> &'static str {
        self.inner().name()
    }
    fn start(&mut self, threads: &ThreadSettings) -> io::Result<()> {
        self.inner_mut().start(threads)
    }
    fn dispatch(&mut self, task: Task, stop: &StopSignal) {
        self.inner_mut().dispatch(task, stop);
    }
    fn stop_intake(&mut self) {
        self.inner_mut().stop_intake();
    }
    fn join(&mut self) {
        self.inner_mut().join();
    }
    fn process_kind(&self) -> Option<ProcessKind> {
        self.inner().process_kind()
    }
    fn wants_handoff(&self) -> bool {
        self.inner().wants_handoff()
    }
    fn become_worker(&mut self, index: usize) {
        self.inner_mut().become_worker(index);
    }
    fn worker_request_limit(&self) -> Option<u64> {
        self.inner().worker_request_limit()
    }
    fn drain_timeout(&self) -> Option<std::time::Duration> {
        self.inner().drain_timeout()
    }
    fn supervises(&self) -> bool {
        self.inner().supervises()
    }
    fn supervise(
        &mut self,
        socket: RawFd,
        server: &crate::control::ServerHandle,
        tick: &mut dyn FnMut(),
    ) -> io::Result<()> {
        self.inner_mut().supervise(socket, server, tick)
    }
    fn stop_workers(&mut self, server: &crate::control::ServerHandle) -> usize {
        self.inner_mut().stop_workers(server)
    }
    fn cut_off(&mut self) {
        self.inner_mut().cut_off();
    }
    fn pass_stop_on(&mut self) {
        self.inner_mut().pass_stop_on();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_to_its_mode_and_others_are_refused() {
        for name in AnyMode::NAMES {
            let mode: AnyMode = name.parse().expect(name);
            let expected = match name {
                "single" => "single-threaded",
                "threading" => "threading",
                "pool" => "pool",
                "process" => "process per request",
                _ => "prefork supervisor",
            };
            assert_eq!(mode.name(), expected);
        }
        let err = "forking".parse::<AnyMode>().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("single, threading, pool"), "{err}");
        assert_eq!(AnyMode::default().name(), "single-threaded");
        assert!(AnyMode::from(Process::new()).process_kind().is_some());
        assert!(AnyMode::from(Pool::new(2)).process_kind().is_none());
        let prefork =
            AnyMode::from(Prefork::new(2).drain_timeout(std::time::Duration::from_secs(7)));
        assert_eq!(
            prefork.drain_timeout(),
            Some(std::time::Duration::from_secs(7))
        );
    }
}
