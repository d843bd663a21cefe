//! Starting a child that re-executes this program and inherits one socket — without `fork()`ing
//! a multi-threaded process into running Rust code: the child `exec`s at once.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use super::report::REPORT_VAR;
use super::role::{Role, ROLE_VAR, UPGRADE_VAR};
use std::os::fd::RawFd;

/// Socket-activation, upgrade and notification variables meant for the parent; a child must not
/// act on them again (the parent reports to systemd for the whole service).
const ACTIVATION_VARS: [&str; 7] = [
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    UPGRADE_VAR,
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
];

/// This program, as it was started.
#[derive(Debug)]
pub(crate) struct Program {
    pub(super) path: PathBuf,
    /// The program file on disk (what `current_exe` said at start-up): a rolling reload starts
    /// its fresh workers from it, so a rebuilt binary takes effect.
    pub(super) on_disk: Option<PathBuf>,
    arg0: OsString,
    pub(super) args: Vec<OsString>,
}

/// Resolves this program once. On Linux `/proc/self/exe` names the running binary even if its
/// file was replaced or deleted since (a deployment), so children run the same code as the parent.
pub(crate) fn program() -> io::Result<&'static Program> {
    static PROGRAM: OnceLock<Result<Program, String>> = OnceLock::new();
    PROGRAM
        .get_or_init(|| {
            let proc_exe = PathBuf::from("/proc/self/exe");
            // Resolved now, before a deployment can replace the file (after that the link
            // reads "<path> (deleted)").
            let on_disk = std::env::current_exe().ok();
            let path = if cfg!(target_os = "linux") && proc_exe.exists() {
                proc_exe
            } else {
                std::env::current_exe().map_err(|e| {
                    format!("cannot find this program's executable to start child processes: {e}")
                })?
            };
            let mut args = std::env::args_os();
            let arg0 = args.next().unwrap_or_else(|| path.clone().into_os_string());
            Ok(Program {
                path,
                on_disk,
                arg0,
                args: args.collect(),
            })
        })
        .as_ref()
        .map_err(|message| io::Error::new(io::ErrorKind::NotFound, message.clone()))
}

/// Starts this program again as a child playing `role`, with the role's socket inherited (under
/// the same descriptor number) and stdin a pipe the parent writes to. Stdout and stderr are
/// shared with the parent.
pub(crate) fn spawn_child(role: Role) -> io::Result<Child> {
    spawn(role, None, false)
}

/// [`spawn_child`] for a prefork worker, which also inherits `report`, the write end of its
/// report pipe. `from_disk`: start the program file on disk (a reload) rather than the running
/// binary.
pub(crate) fn spawn_worker(role: Role, report: RawFd, from_disk: bool) -> io::Result<Child> {
    spawn(role, Some(report), from_disk)
}

fn spawn(role: Role, report: Option<RawFd>, from_disk: bool) -> io::Result<Child> {
    let program = program()?;
    let fd = match role {
        Role::Request { fd } | Role::Worker { fd, .. } => fd,
    };
    let path = match (&program.on_disk, from_disk) {
        (Some(on_disk), true) => on_disk,
        _ => &program.path,
    };
    let mut command = Command::new(path);
    command
        .arg0(&program.arg0)
        .args(&program.args)
        .env(ROLE_VAR, role.encode(std::process::id()))
        .stdin(Stdio::piped());
    match report {
        Some(report) => command.env(REPORT_VAR, report.to_string()),
        None => command.env_remove(REPORT_VAR),
    };
    for var in ACTIVATION_VARS {
        command.env_remove(var);
    }
    // SAFETY: the closure runs in the child between fork and exec, where only async-signal-safe
    // calls are allowed: it makes fcntl calls, and neither allocates nor locks nor logs.
    // Clearing FD_CLOEXEC there (not in the parent) keeps the descriptors from leaking into
    // children that other threads start at the same time; every other one stays close-on-exec.
    unsafe {
        command.pre_exec(move || {
            for fd in std::iter::once(fd).chain(report) {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    command.spawn().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot start child process {}: {e}", path.display()),
        )
    })
}
