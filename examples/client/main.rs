//! One client for every example, so each can be driven without Python:
//!
//! ```text
//! cargo run --example client -- --help
//! cargo run --example client -- echo --addr 127.0.0.1:8080        # lines from stdin
//! cargo run --example client -- udp --addr 127.0.0.1:9000 hello   # one message
//! cargo run --example client -- time --addr 127.0.0.1:9000 '%H:%M:%S'
//! cargo run --example client -- chat --addr 127.0.0.1:8081
//! cargo run --example client -- chat-tcp --addr 127.0.0.1:8081  # chat --api message
//! ```
//!
//! Every subcommand is a module with `pub fn run(addr: &str, args: &[String]) -> Result<(), String>`
//! and one entry in [`SUBCOMMANDS`]. Every socket has a read timeout, so a server that is gone
//! gives an error instead of a hang; stdin ending (Ctrl-D, or the end of a pipe) ends the client
//! with status 0. A bad command line exits with status 2, a failure with `error: …` and status 1.

mod auth_echo;
// For `check_addr`: `--addr` is checked the same way as the servers check theirs.
mod chat;
#[path = "../common/mod.rs"]
mod common;
mod connect;
mod echo;
mod file;
mod input;
mod remote_cmd;
// The framed request `remote-cmd` sends, shared with the server.
#[path = "../remote_cmd/wire.rs"]
mod remote_cmd_wire;
mod time;
mod udp;

use std::io::{self, Write};
use std::process::ExitCode;

use common::check_addr;

/// A subcommand: its name, the address it talks to by default (the tutorial's), what it takes after
/// the options, what it does, and the function that runs it.
struct Subcommand {
    name: &'static str,
    default_addr: &'static str,
    arguments: &'static str,
    about: &'static str,
    run: fn(&str, &[String]) -> Result<(), String>,
}

/// Every subcommand. Adding one is a module and a line here.
#[rustfmt::skip]
const SUBCOMMANDS: &[Subcommand] = &[
    sub("echo", "127.0.0.1:8080", "[MESSAGE...]", "TCP upper-case echo (echo_upper): each stdin line, or MESSAGE, and its answer", echo::run),
    sub("udp", "127.0.0.1:9000", "[MESSAGE...]", "UDP upper-case echo (udp_upper): each stdin line, or MESSAGE, as a datagram", udp::run),
    sub("time", "127.0.0.1:9000", "[FORMAT...]", "UDP time server (time_server): the time in FORMAT (default %Y-%m-%d %X)", time::run),
    sub("chat", "127.0.0.1:8081", "[MESSAGE...]", "UDP chat room (chat): joins, sends stdin lines, shows replies and others' messages", chat::run),
    sub("chat-tcp", "127.0.0.1:8081", "[MESSAGE...]", "the chat room over TCP (chat --api message): the same, a line per message", chat::run_tcp),
    sub("remote-cmd", "127.0.0.1:8080", "[--secret-file PATH] [--digest md5|sha256]", "remote command (remote_cmd): each stdin line is run by the server; prints its output", remote_cmd::run),
    sub("file", "127.0.0.1:8080", "[--secret-file PATH] [put PATH | get NAME [DEST] | list]", "file server (file_server): one command, or commands as stdin lines", file::run),
    sub("auth-echo", "127.0.0.1:9999", "[--secret-file PATH] [--digest md5|sha256]", "HMAC handshake, then upper-case echo of stdin lines (auth_echo)", auth_echo::run),
];

const fn sub(
    name: &'static str,
    default_addr: &'static str,
    arguments: &'static str,
    about: &'static str,
    run: fn(&str, &[String]) -> Result<(), String>,
) -> Subcommand {
    Subcommand {
        name,
        default_addr,
        arguments,
        about,
        run,
    }
}

/// What the command line asks for.
enum Request<'a> {
    Help(String),
    Run {
        subcommand: &'a Subcommand,
        addr: String,
        args: Vec<String>,
    },
}

fn usage() -> String {
    let mut text = String::from(
        "usage: client <SUBCOMMAND> [--addr HOST:PORT] [ARGS...]\n\
         \n\
         Talks to the socketserver examples. Reads stdin line by line where a subcommand takes\n\
         lines, and ends at the end of stdin.\n\
         \n\
         subcommands:\n",
    );
    for s in SUBCOMMANDS {
        text.push_str(&format!("  {:<11} {}\n", s.name, s.about));
    }
    text.push_str(
        "\n`client <SUBCOMMAND> --help` shows a subcommand's arguments and default address.\n",
    );
    text
}

fn subcommand_usage(s: &Subcommand) -> String {
    format!(
        "usage: client {name} [--addr HOST:PORT] {arguments}\n\
         \n\
         {about}.\n\
         \n\
         options:\n\
         \x20 --addr HOST:PORT  the server's address (default {addr})\n\
         \x20 --help            print this help\n\
         \x20 --                end of options: what follows is {arguments}\n",
        name = s.name,
        arguments = s.arguments,
        about = s.about,
        addr = s.default_addr,
    )
}

/// Options passed on to the subcommands that authenticate (they parse them themselves).
const AUTH_OPTIONS: [&str; 2] = ["--secret-file", "--digest"];
const AUTH_SUBCOMMANDS: [&str; 3] = ["remote-cmd", "file", "auth-echo"];

fn parse(args: &[String]) -> Result<Request<'static>, String> {
    let Some((name, rest)) = args.split_first() else {
        return Err("a subcommand is needed".to_string());
    };
    if name == "--help" || name == "-h" || name == "help" {
        return Ok(Request::Help(usage()));
    }
    let subcommand = SUBCOMMANDS
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| format!("unknown subcommand '{name}'"))?;
    let mut addr = subcommand.default_addr.to_string();
    let mut words = Vec::new();
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--help" | "-h" => return Ok(Request::Help(subcommand_usage(subcommand))),
            "--" => {
                words.extend(rest.by_ref().cloned());
                break;
            }
            "--addr" => {
                let value = rest.next().ok_or("--addr needs a value")?;
                addr = check_addr(value)?;
            }
            _ if arg.starts_with("--addr=") => addr = check_addr(&arg["--addr=".len()..])?,
            // The authenticated subcommands read their key and digest options themselves.
            _ if AUTH_OPTIONS
                .iter()
                .any(|o| arg == o || arg.starts_with(&format!("{o}=")))
                && AUTH_SUBCOMMANDS.contains(&subcommand.name) =>
            {
                words.push(arg.clone());
                if !arg.contains('=') {
                    words.push(rest.next().ok_or(format!("{arg} needs a value"))?.clone());
                }
            }
            _ if arg.starts_with("--") => return Err(format!("unknown option '{arg}'")),
            _ => words.push(arg.clone()),
        }
    }
    Ok(Request::Run {
        subcommand,
        addr,
        args: words,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args) {
        Ok(Request::Help(text)) => {
            let _ = io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Ok(Request::Run {
            subcommand,
            addr,
            args,
        }) => match (subcommand.run)(&addr, &args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                let _ = writeln!(io::stderr().lock(), "error: {message}");
                ExitCode::from(1)
            }
        },
        Err(message) => {
            let mut err = io::stderr().lock();
            let _ = writeln!(err, "client: {message}");
            let _ = err.write_all(usage().as_bytes());
            ExitCode::from(2)
        }
    }
}
