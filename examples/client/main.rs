//! A command-line client for the examples, so each can be driven without Python.
//!
//! ```text
//! client remote-cmd --addr HOST:PORT [--secret-file PATH] [--digest md5|sha256]
//! client file       --addr HOST:PORT [put PATH | get NAME [DEST] | list]
//! client auth-echo  --addr HOST:PORT [--secret-file PATH] [--digest md5|sha256]
//! ```
//!
//! Interactive subcommands read one line per request from stdin, like the seeds' clients, and
//! stop at EOF or `quit`. Keys come from `SOCKETSERVER_SECRET` or `--secret-file PATH`.
//!
//! (This dispatcher covers the issue-4 subcommands; it is merged with the other subcommands'.)

mod auth_echo;
mod file;
mod remote_cmd;

use std::io::Write;
use std::process::ExitCode;

const USAGE: &str = "usage: client SUBCOMMAND --addr HOST:PORT [ARGS...]\n\
\n\
subcommands:\n\
\x20 remote-cmd  send command lines from stdin to remote_cmd, print the output\n\
\x20 file        put PATH | get NAME [DEST] | list — or those commands as lines on stdin (file_server)\n\
\x20 auth-echo   HMAC handshake, then lines from stdin to auth_echo\n";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return if args.is_empty() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let subcommand = args.remove(0);
    let addr = match take_addr(&mut args) {
        Ok(addr) => addr,
        Err(message) => return usage_error(&message),
    };
    let run = match subcommand.as_str() {
        "remote-cmd" => remote_cmd::run,
        "file" => file::run,
        "auth-echo" => auth_echo::run,
        other => return usage_error(&format!("unknown subcommand '{other}'")),
    };
    match run(&addr, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "error: {message}");
            ExitCode::from(1)
        }
    }
}

/// Removes `--addr HOST:PORT` (or `--addr=HOST:PORT`) from `args` and returns the address.
fn take_addr(args: &mut Vec<String>) -> Result<String, String> {
    let Some(at) = args
        .iter()
        .position(|a| a == "--addr" || a.starts_with("--addr="))
    else {
        return Err("--addr HOST:PORT is required".to_string());
    };
    let arg = args.remove(at);
    match arg.strip_prefix("--addr=") {
        Some(value) => Ok(value.to_string()),
        None if at < args.len() => Ok(args.remove(at)),
        None => Err("--addr needs a value".to_string()),
    }
}

fn usage_error(message: &str) -> ExitCode {
    let _ = write!(std::io::stderr(), "client: {message}\n{USAGE}");
    ExitCode::from(2)
}
