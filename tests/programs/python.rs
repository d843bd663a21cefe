//! Python programs: the seeds' own clients, which read their input from the test instead of the
//! keyboard, and helper scripts.

use std::process::Command;

use super::{Interactive, Run, RUN_TIMEOUT};

/// Put before a seed client run by [`seed_client`]: no socket call may wait forever, and
/// `input()` returns the next argument after the port, ending the program when none are left.
const SCRIPTED_INPUT: &str = r#"
import socket as _socket, sys as _sys
_socket.setdefaulttimeout(10)
_script = _sys.argv[2:]
def input(prompt=''):
    if not _script:
        raise SystemExit(0)
    return _script.pop(0)
"#;

/// Put before a seed client run by [`interactive_seed_client`]: no socket call may wait
/// forever, and `input()` reads a line of stdin, ending the program at the end of stdin.
const TYPED_INPUT: &str = r#"
import socket as _socket, sys as _sys
_socket.setdefaulttimeout(10)
def input(prompt=''):
    line = _sys.stdin.readline()
    if not line:
        raise SystemExit(0)
    return line.rstrip('\n')
"#;

/// Whether `python3` is installed; when it is not, the test is skipped, or fails under
/// `SOCKETSERVER_TEST_REQUIRE_ALL` (see [`skip`](super::skip)).
pub fn python3_available() -> bool {
    super::skip::program("python3", "python3").is_some()
}

/// `python3 -u -c script <args...>`, with UTF-8 output and no bytecode files written.
pub fn python(script: &str, args: &[&str]) -> Command {
    let mut command = Command::new("python3");
    command
        .args(["-u", "-c", script])
        .args(args)
        .env("PYTHONIOENCODING", "utf-8")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    command
}

/// A seed client `script` against the server at `port`: `python3 -c script <port> <input...>`,
/// its `input()` returning the next of `input` (see [`SCRIPTED_INPUT`]).
pub fn seed_client(script: &str, port: u16, input: &[&str]) -> Command {
    let mut command = python(&format!("{SCRIPTED_INPUT}{script}"), &[&port.to_string()]);
    command.args(input);
    command
}

/// Runs [`seed_client`] to its end, within [`RUN_TIMEOUT`].
pub fn run_seed_client(script: &str, port: u16, input: &[&str]) -> Run {
    Run::to_completion(seed_client(script, port, input), RUN_TIMEOUT)
}

/// A seed client `script` against the server at `port` as an [`Interactive`] child: its
/// `input()` reads stdin (see [`TYPED_INPUT`]), so the test can type one line at a time.
pub fn interactive_seed_client(script: &str, port: u16) -> Interactive {
    Interactive::start(python(
        &format!("{TYPED_INPUT}{script}"),
        &[&port.to_string()],
    ))
}
