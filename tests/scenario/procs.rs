//! Processes as the driver sees them: waits with a deadline, signals, and `/proc`.

use std::collections::HashSet;
use std::io;
use std::process::{Child, ExitStatus};
use std::time::Duration;

use super::eventually;

/// `child`'s exit status once it has exited, or `None` if it still runs after `timeout`.
pub fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    eventually(timeout, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    status
}

/// Sends `signal` to `pid`.
pub fn send_signal(pid: u32, signal: i32) -> Result<(), String> {
    // SAFETY: kill(2) on a pid this test started; no memory is involved.
    match unsafe { libc::kill(pid as libc::pid_t, signal) } {
        0 => Ok(()),
        _ => Err(format!("kill {pid}: {}", io::Error::last_os_error())),
    }
}

/// `pid`'s parent and state, from `/proc/<pid>/stat`.
pub fn parent_and_state(pid: u32) -> Option<(u32, char)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let mut fields = stat.get(stat.rfind(')')? + 2..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((fields.next()?.parse().ok()?, state))
}

/// A process's children as (pid, state), zombies (`Z`) included.
pub fn children_of(parent: u32) -> Vec<(u32, char)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let (ppid, state) = parent_and_state(pid)?;
            (ppid == parent).then_some((pid, state))
        })
        .collect()
}

/// The running (not zombie) children of `parent`.
pub fn live_children(parent: u32) -> HashSet<u32> {
    children_of(parent)
        .into_iter()
        .filter(|&(_, state)| state != 'Z')
        .map(|(pid, _)| pid)
        .collect()
}

/// Whether `pid` is a running process (not gone, not a zombie awaiting its new parent's wait).
pub fn alive(pid: u32) -> bool {
    parent_and_state(pid).is_some_and(|(_, state)| state != 'Z' && state != 'X')
}

/// A process's command name, from `/proc/<pid>/comm`.
pub fn command_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|name| name.trim_end().to_string())
}

/// The processes whose environment holds `var=value`.
pub fn with_env(var: &str, value: &str) -> Vec<u32> {
    let wanted = format!("{var}={value}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == wanted.as_bytes()))
        })
        .collect()
}
