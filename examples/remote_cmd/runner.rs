//! The runner: a small process between the server and `sh -c COMMAND`, so that the time limit
//! reaches every process a command starts — including one that escapes its process group with
//! `setsid`, or double-forks so its parent is gone.
//!
//! A process whose parent exits is re-parented to its nearest ancestor that is a *child
//! subreaper* (Linux `prctl(PR_SET_CHILD_SUBREAPER)`), or to init if there is none. The runner
//! makes itself a subreaper and then starts the shell, so everything the command starts stays
//! in the runner's tree, whatever it does with sessions and groups: walking `/proc` for the
//! runner's descendants finds them all. One runner per command keeps commands apart; making the
//! server itself the subreaper would gather the orphans of every command (and of every
//! connection) under one parent, with nothing to tell whose they are, and the server would have
//! to reap them all, racing the waits of its own children.
//!
//! The runner ends the command's whole tree (SIGKILL to every descendant, until none is left)
//! when the shell exits — nothing a command leaves in the background outlives it — or when its
//! stdin, a pipe from the server, closes: the server closes it at the time limit or when the
//! output overflows, and the kernel closes it if the server dies. The runner then exits with the
//! shell's exit status (128 + the signal's number if the shell was killed).
//!
//! The server starts the runner by executing its own program again with [`RUNNER_VAR`] set and
//! the command as the only argument; `main` checks for it before anything else.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

/// Set (to `1`) in the runner's environment, and in no one else's.
pub const RUNNER_VAR: &str = "SOCKETSERVER_REMOTE_CMD_RUNNER";

/// The program to execute as the runner: this one. `/proc/self/exe` still works when the file
/// was replaced or deleted after the server started (a rebuild while it runs).
pub fn program() -> io::Result<std::path::PathBuf> {
    let proc_exe = std::path::Path::new("/proc/self/exe");
    if cfg!(target_os = "linux") && proc_exe.exists() {
        Ok(proc_exe.to_path_buf())
    } else {
        std::env::current_exe()
    }
}

/// If this process was started as a runner, runs the command and exits; otherwise returns.
pub fn run_if_runner() {
    if std::env::var_os(RUNNER_VAR).is_none() {
        return;
    }
    let code = match std::env::args_os().nth(1) {
        Some(command) => run(command),
        None => {
            let _ = writeln!(io::stderr(), "remote_cmd runner: no command given");
            127
        }
    };
    std::process::exit(code);
}

/// Serialises the two ways the runner ends (the shell exits, the lifeline closes).
static ENDING: Mutex<()> = Mutex::new(());

fn run(command: OsString) -> i32 {
    shield_from_stop_signals();
    become_subreaper();
    let shell = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .env_remove(RUNNER_VAR)
        // Its own process group: killing the group is all that is left where there is no
        // subreaper and no `/proc` (not Linux).
        .process_group(0)
        .spawn();
    let shell = match shell {
        Ok(child) => child.id() as libc::pid_t,
        Err(e) => {
            let _ = writeln!(io::stderr(), "remote_cmd: cannot start /bin/sh: {e}");
            return 127;
        }
    };
    // The lifeline: stdin reaches its end when the server closes it, or dies.
    thread::spawn(move || {
        let mut sink = [0u8; 64];
        loop {
            match io::stdin().read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ending = ENDING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        end_command(shell);
        std::process::exit(128 + libc::SIGKILL);
    });
    let code = wait_for(shell);
    let _ending = ENDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    end_command(shell);
    code
}

/// Kills the shell's process group, then every descendant of the runner still alive.
fn end_command(shell: libc::pid_t) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved. The
    // group is the shell's own (`process_group(0)`).
    unsafe {
        libc::kill(-shell, libc::SIGKILL);
    }
    kill_descendants(std::process::id() as libc::pid_t);
}

/// A stop signal sent to the whole process group (a terminal's Ctrl-C, systemd stopping the
/// service) must not end the runner before the command: the command's tree would escape. The
/// runner ends with its lifeline instead — when the server finishes the request, is cut off or
/// dies. A handler that does nothing, unlike ignoring, is reset by `exec`, so the shell and the
/// command keep the default actions.
fn shield_from_stop_signals() {
    extern "C" fn noticed(_signal: libc::c_int) {}
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT] {
        // SAFETY: installs a handler that touches nothing, which is async-signal-safe.
        unsafe {
            libc::signal(
                signal,
                noticed as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
    }
}

#[cfg(target_os = "linux")]
fn become_subreaper() {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag and touches no memory.
    let done = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if done != 0 {
        let _ = writeln!(
            io::stderr(),
            "remote_cmd: cannot become a child subreaper ({}): background processes that leave the process tree may survive the time limit",
            io::Error::last_os_error()
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn become_subreaper() {
    // No subreapers here: the shell's process group is still killed, but a process that
    // leaves it (setsid) escapes the time limit.
}

/// Waits for `pid` to exit; its exit status as a shell reports it.
fn wait_for(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes the status into the local integer it is given.
        let got = unsafe { libc::waitpid(pid, &mut status, 0) };
        if got == pid {
            return shell_status(status);
        }
        if got < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return 128 + libc::SIGKILL; // reaped elsewhere: the lifeline is ending everything
        }
    }
}

fn shell_status(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        128 + libc::SIGKILL
    }
}

/// SIGKILLs every descendant of `root`, round after round until none is alive (a process may
/// fork between two rounds; its child is found in the next), and reaps those that were
/// re-parented to this process. Bounded: it gives up after a few seconds of rounds.
pub fn kill_descendants(root: libc::pid_t) {
    let me = std::process::id() as libc::pid_t;
    for _ in 0..2000 {
        let alive = descendants(root);
        if alive.is_empty() {
            break;
        }
        for pid in alive {
            // SAFETY: kill(2) sends a signal; no memory is involved.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        if root == me {
            reap_children();
        }
        thread::sleep(Duration::from_millis(1));
    }
    if root == me {
        reap_children();
    }
}

/// Reaps every child of this process that has exited, without waiting.
fn reap_children() {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into the local integer it is given.
        if unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } <= 0 {
            return;
        }
    }
}

/// The live (not zombie) descendants of `root`, from `/proc`. Empty where there is no `/proc`.
pub fn descendants(root: libc::pid_t) -> Vec<libc::pid_t> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    // (pid, parent, alive) for every process.
    let table: Vec<(libc::pid_t, libc::pid_t, bool)> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (parent, state) = parent_and_state(&stat)?;
            Some((pid, parent, state != 'Z' && state != 'X'))
        })
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid, alive) in &table {
            // A tree: every process has one parent, so nothing is found twice.
            if ppid == parent && pid != root {
                found.push((pid, alive));
                frontier.push(pid);
            }
        }
    }
    found
        .into_iter()
        .filter_map(|(pid, alive)| alive.then_some(pid))
        .collect()
}

/// The parent pid and state letter from a `/proc/<pid>/stat` line: `pid (comm) S ppid …`, where
/// `comm` may itself contain spaces and parentheses.
fn parent_and_state(stat: &str) -> Option<(libc::pid_t, char)> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((parent, state))
}
