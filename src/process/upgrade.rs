//! A binary upgrade (SIGUSR2 to a [`Prefork`](crate::Prefork) parent): a new copy of the program,
//! started from the file on disk, takes the listening socket by the socket-activation convention
//! (`LISTEN_FDS=1`, the socket as descriptor 3, `LISTEN_PID` its own pid) and reports `READY=1`
//! on a notification socket of the parent's, as it would to systemd. The old parent then stops.
//!
//! A private variable, `UPGRADE_VAR` (see `role`), tells the new program that it was started by an upgrade,
//! so that its Prefork server serves the inherited socket whatever its command line says (see
//! `systemd::upgraded`) instead of binding an address of its own.

use std::io;
use std::os::fd::RawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::report::REPORT_VAR;
use super::role::{mark, FIRST_PASSED_FD, ROLE_VAR, UPGRADE_VAR};
use super::spawn::program;

/// How long the new program may take to report that it serves before the upgrade is given up.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Sets `LISTEN_PID` to the shell's own pid, which `exec` hands on to the program: the parent
/// cannot know the child's pid before it runs, and must not allocate between fork and exec.
const SET_LISTEN_PID: &str = "LISTEN_PID=$$; export LISTEN_PID; exec \"$0\" \"$@\"";

/// The new program, until it reports that it serves.
#[derive(Debug)]
pub(crate) struct Upgrade {
    child: Child,
    notify: UnixDatagram,
    notify_path: PathBuf,
    started: Instant,
}

/// What became of an upgrade since the last look.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum UpgradeState {
    Pending,
    /// The new program serves (it sent `READY=1`).
    Ready,
    /// It exited, or did not report in time (and was killed).
    Failed(String),
}

impl Upgrade {
    /// Starts the new program on `socket`, the listening socket, which it inherits as
    /// descriptor 3.
    pub(crate) fn start(socket: RawFd) -> io::Result<Upgrade> {
        let program = program()?;
        let path = program.on_disk.as_ref().unwrap_or(&program.path);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let notify_path = std::env::temp_dir().join(format!(
            "socketserver-upgrade-{}-{nanos}.sock",
            std::process::id()
        ));
        let notify = UnixDatagram::bind(&notify_path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot create the upgrade's notification socket {}: {e}",
                    notify_path.display()
                ),
            )
        })?;
        let upgrade = |child| Upgrade {
            child,
            notify,
            notify_path: notify_path.clone(),
            started: Instant::now(),
        };
        let mut command = Command::new("/bin/sh");
        command
            .args(["-c", SET_LISTEN_PID])
            .arg(path)
            .args(&program.args)
            .env("LISTEN_FDS", "1")
            .env(UPGRADE_VAR, mark(std::process::id()))
            .env("NOTIFY_SOCKET", &notify_path);
        for var in [
            "LISTEN_PID",
            "LISTEN_FDNAMES",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
            ROLE_VAR,
            REPORT_VAR,
        ] {
            command.env_remove(var);
        }
        // SAFETY: runs between fork and exec; dup2 and fcntl are async-signal-safe, and nothing
        // here allocates, locks or logs. The copy dup2 makes has no close-on-exec flag.
        unsafe {
            command.pre_exec(move || {
                let done = match socket == FIRST_PASSED_FD {
                    true => libc::fcntl(socket, libc::F_SETFD, 0),
                    false => libc::dup2(socket, FIRST_PASSED_FD),
                };
                if done == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_file(&notify_path);
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot start the new program {}: {e}", path.display()),
                ));
            }
        };
        let upgrade = upgrade(child);
        upgrade.notify.set_nonblocking(true)?;
        log::info!(
            "prefork: SIGUSR2: started the new program {} (pid {}) on the listening socket",
            path.display(),
            upgrade.child.id()
        );
        Ok(upgrade)
    }

    /// Looks, without blocking, whether the new program serves, failed, or is still starting.
    pub(crate) fn poll(&mut self) -> UpgradeState {
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.notify.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]);
            if message.lines().any(|line| line == "READY=1") {
                return UpgradeState::Ready;
            }
        }
        let pid = self.child.id();
        match self.child.try_wait() {
            Ok(Some(status)) => {
                return UpgradeState::Failed(format!(
                    "the new program (pid {pid}) exited ({status}) before it served (its error, \
                     if it printed one, is on stderr)"
                ))
            }
            Ok(None) => {}
            Err(e) => return UpgradeState::Failed(format!("cannot check the new program: {e}")),
        }
        if self.started.elapsed() >= READY_TIMEOUT {
            let _ = self.child.kill();
            let _ = self.child.wait();
            return UpgradeState::Failed(format!(
                "the new program (pid {pid}) did not report READY=1 within {READY_TIMEOUT:?}; \
                 killed it"
            ));
        }
        UpgradeState::Pending
    }

    /// The new program's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Upgrade {
    fn drop(&mut self) {
        // The new program goes on (it is not waited for: it outlives this process); only the
        // notification socket's file goes.
        let _ = std::fs::remove_file(&self.notify_path);
    }
}
