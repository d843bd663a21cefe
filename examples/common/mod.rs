//! Plumbing shared by the examples (`mod common;`), so each example file shows only its handler
//! and how it builds its server.
//!
//! Every example follows the same conventions:
//!
//! * `--addr HOST:PORT` chooses the address (port 0 lets the system pick a free port);
//!   `--mode single|threading|pool` the concurrency mode, with `--workers N` for `pool` and
//!   `--max-threads N` for `threading`; `--help` prints the usage.
//! * The first line on stdout is exactly `listening on <bound address>`, so scripts and tests can
//!   read the real port.
//! * Log lines go to stderr, at level `info` unless `RUST_LOG` says otherwise.
//! * A bad argument prints a one-line message and the usage to stderr and exits with status 2; a
//!   runtime error prints `error: <message>` to stderr and exits with status 1.
//! * Options of one example only (`--proto`, `--stack-size`, …) are declared as [`Extra`]s and
//!   parsed by [`parse_args_with`], with the same error handling.

// Each example uses a subset of these helpers.
#![allow(dead_code)]

pub mod frame;

use std::fmt::Display;
use std::io::{self, Write};
use std::process::{self, ExitCode};

use socketserver::transport::Transport;
use socketserver::{Builder, Mode, Pool, RequestHandler, Server, Threading};

/// The concurrency mode chosen with `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeName {
    /// `--mode single`: one request at a time, on the serving thread.
    Single,
    /// `--mode threading`: a thread per request, capped by `--max-threads`.
    Threading,
    /// `--mode pool`: `--workers` long-lived worker threads.
    Pool,
}

impl ModeName {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "single" => Some(ModeName::Single),
            "threading" => Some(ModeName::Threading),
            "pool" => Some(ModeName::Pool),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            ModeName::Single => "single",
            ModeName::Threading => "threading",
            ModeName::Pool => "pool",
        }
    }
}

/// What an example tells the argument parser about itself.
pub struct Example {
    /// The example's name, as in `cargo run --example <name>`.
    pub name: &'static str,
    /// One line saying what it does.
    pub about: &'static str,
    /// `--addr` when none is given.
    pub default_addr: &'static str,
    /// `--mode` when none is given.
    pub default_mode: ModeName,
}

/// The parsed command line.
#[derive(Debug, Clone)]
pub struct Args {
    /// `--addr HOST:PORT`, checked for shape; resolved when the server binds.
    pub addr: String,
    /// `--mode`.
    pub mode: ModeName,
    workers: Option<usize>,
    max_threads: Option<usize>,
    /// Values of the example's own options, defaults filled in, in declaration order.
    extras: Vec<(&'static str, String)>,
}

/// An option of one example only, such as `--proto`.
#[derive(Debug, Clone, Copy)]
pub struct Extra {
    /// The option, with its dashes: `--proto`.
    pub name: &'static str,
    /// What the value looks like in the usage: `PROTO`, `N`.
    pub metavar: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// The value when the option is absent.
    pub default: &'static str,
    /// Which values are accepted.
    pub kind: ExtraKind,
}

/// What values an [`Extra`] accepts.
#[derive(Debug, Clone, Copy)]
pub enum ExtraKind {
    /// A whole number of at least 1.
    Positive,
    /// One of these words.
    OneOf(&'static [&'static str]),
}

/// `--stack-size BYTES`: the stack of each handler thread, applied by [`Args::builder`]. Small
/// stacks let a threading server hold many idle connections.
pub const STACK_SIZE: Extra = Extra {
    name: "--stack-size",
    metavar: "BYTES",
    help: "stack size of each handler thread (default: Rust's 2 MiB)",
    default: "",
    kind: ExtraKind::Positive,
};

impl Args {
    /// The value of the example's own option `name` (its default when absent).
    ///
    /// # Panics
    ///
    /// If `name` was not declared in the [`Extra`]s given to [`parse_args_with`]: a bug in the
    /// example, not a user error.
    pub fn extra(&self, name: &str) -> &str {
        self.extras
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("option {name} was not declared"))
    }

    /// [`extra`](Self::extra) for an [`ExtraKind::Positive`] option, already checked by the parser.
    /// `None` when the option is absent and has no default.
    pub fn extra_number(&self, name: &str) -> Option<usize> {
        self.extra(name).parse().ok()
    }

    /// A [`Builder`] with what the common options configure (`--stack-size`, when declared).
    pub fn builder(&self) -> Builder {
        let stack = self
            .extras
            .iter()
            .find(|(n, _)| *n == STACK_SIZE.name)
            .and_then(|(_, v)| v.parse().ok());
        match stack {
            Some(bytes) => Builder::new().thread_stack_size(bytes),
            None => Builder::new(),
        }
    }

    /// The [`Threading`] mode as configured by `--max-threads` (no cap when absent).
    pub fn threading(&self) -> Threading {
        match self.max_threads {
            Some(max) => Threading::new().max_threads(max),
            None => Threading::new(),
        }
    }

    /// The [`Pool`] mode as configured by `--workers` (the library's default size when absent:
    /// four workers per CPU core).
    pub fn pool(&self) -> Pool {
        match self.workers {
            Some(workers) => Pool::new(workers),
            None => Pool::default(),
        }
    }
}

/// Parses the process's arguments. Prints the usage and exits 0 on `--help`; prints a one-line
/// message and the usage to stderr and exits 2 on a bad argument.
pub fn parse_args(example: &Example) -> Args {
    parse_args_with(example, &[])
}

/// [`parse_args`] for an example with options of its own.
pub fn parse_args_with(example: &Example, extras: &[Extra]) -> Args {
    match parse(example, extras, std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            let mut out = io::stdout().lock();
            let _ = out.write_all(usage(example, extras).as_bytes());
            let _ = out.flush();
            process::exit(0);
        }
        Err(message) => {
            let mut err = io::stderr().lock();
            let _ = writeln!(err, "{}: {message}", example.name);
            let _ = err.write_all(usage(example, extras).as_bytes());
            process::exit(2);
        }
    }
}

/// The usage text, ending in a newline.
pub fn usage(example: &Example, extras: &[Extra]) -> String {
    let synopsis: String = extras
        .iter()
        .map(|e| format!(" [{} {}]", e.name, e.metavar))
        .collect();
    let help: String = extras
        .iter()
        .map(|e| {
            let option = format!("{} {}", e.name, e.metavar);
            let default = match e.default {
                "" => String::new(),
                d => format!(" (default {d})"),
            };
            format!("  {option:<17} {}{default}\n", e.help)
        })
        .collect();
    format!(
        "usage: {name} [--addr HOST:PORT] [--mode single|threading|pool] [--workers N] [--max-threads N]{synopsis}\n\
         \n\
         {about}\n\
         \n\
         options:\n\
         \x20 --addr HOST:PORT  address to listen on (default {addr}; port 0 picks a free port)\n\
         \x20 --mode MODE       single, threading or pool (default {mode})\n\
         \x20 --workers N       worker threads with --mode pool (default: 4 per CPU core)\n\
         \x20 --max-threads N   most handler threads at once with --mode threading (default: no cap)\n\
         {help}\
         \x20 --help            print this help\n",
        name = example.name,
        about = example.about,
        addr = example.default_addr,
        mode = example.default_mode.as_str(),
    )
}

/// `Ok(None)` means `--help`.
fn parse(
    example: &Example,
    extras: &[Extra],
    args: impl IntoIterator<Item = String>,
) -> Result<Option<Args>, String> {
    let mut addr = example.default_addr.to_string();
    let mut mode = example.default_mode;
    let mut workers = None;
    let mut max_threads = None;
    let mut extra_values: Vec<(&'static str, String)> = extras
        .iter()
        .map(|e| (e.name, e.default.to_string()))
        .collect();

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // Accept both `--name value` and `--name=value`.
        let (name, inline_value) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        if name == "--help" || name == "-h" {
            return Ok(None);
        }
        let extra = extras.iter().position(|e| e.name == name);
        if extra.is_none()
            && !matches!(
                name.as_str(),
                "--addr" | "--mode" | "--workers" | "--max-threads"
            )
        {
            return Err(if name.starts_with('-') {
                format!("unknown option '{name}'")
            } else {
                format!("unexpected argument '{arg}'")
            });
        }
        let value = match inline_value.or_else(|| args.next()) {
            Some(value) => value,
            None => return Err(format!("{name} needs a value")),
        };
        if let Some(i) = extra {
            check_extra(&extras[i], &value)?;
            extra_values[i].1 = value;
            continue;
        }
        match name.as_str() {
            "--addr" => addr = check_addr(&value)?,
            "--mode" => {
                mode = ModeName::parse(&value).ok_or_else(|| {
                    format!(
                        "invalid value '{value}' for --mode (expected single, threading or pool)"
                    )
                })?
            }
            "--workers" => workers = Some(positive(&name, &value)?),
            _ => max_threads = Some(positive(&name, &value)?),
        }
    }

    if workers.is_some() && mode != ModeName::Pool {
        return Err(format!(
            "--workers applies to --mode pool only (the mode is {})",
            mode.as_str()
        ));
    }
    if max_threads.is_some() && mode != ModeName::Threading {
        return Err(format!(
            "--max-threads applies to --mode threading only (the mode is {})",
            mode.as_str()
        ));
    }
    Ok(Some(Args {
        addr,
        mode,
        workers,
        max_threads,
        extras: extra_values,
    }))
}

fn check_extra(extra: &Extra, value: &str) -> Result<(), String> {
    match extra.kind {
        ExtraKind::Positive => positive(extra.name, value).map(drop),
        ExtraKind::OneOf(words) if words.contains(&value) => Ok(()),
        ExtraKind::OneOf(words) => Err(format!(
            "invalid value '{value}' for {} (expected one of: {})",
            extra.name,
            words.join(", ")
        )),
    }
}

/// Checks that `value` looks like `HOST:PORT` (`[::1]:8080` for IPv6). Whether the host resolves
/// is found out when the server binds.
fn check_addr(value: &str) -> Result<String, String> {
    let ok = value
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if ok {
        Ok(value.to_string())
    } else {
        Err(format!(
            "invalid value '{value}' for --addr (expected HOST:PORT, e.g. 127.0.0.1:8080)"
        ))
    }
}

fn positive(name: &str, value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "invalid value '{value}' for {name} (expected a whole number of at least 1)"
        )),
    }
}

/// Sends log lines to stderr, at level `info` unless `RUST_LOG` says otherwise.
pub fn init_logging() {
    init_logging_at("info");
}

/// Sends log lines to stderr, at `default_level` unless `RUST_LOG` says otherwise.
pub fn init_logging_at(default_level: &str) {
    let env = env_logger::Env::default().default_filter_or(default_level);
    // `try_init` rather than `init`: it fails instead of panicking if a logger is already set.
    let _ = env_logger::Builder::from_env(env)
        .target(env_logger::Target::Stderr)
        .try_init();
}

/// Writes one line to stdout and flushes it, returning an error (rather than panicking as
/// `println!` does) if stdout is closed.
pub fn print_line(line: impl Display) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot write to stdout: {e}")))
}

/// Prints `listening on <addr>`: the first line every example writes on stdout.
pub fn announce(addr: impl Display) -> io::Result<()> {
    print_line(format_args!("listening on {addr}"))
}

/// Announces the server's address, serves until shut down, then closes the server.
pub fn serve<T, H, M>(mut server: Server<T, H, M>) -> io::Result<()>
where
    T: Transport,
    H: RequestHandler<T::Request> + Clone,
    M: Mode,
{
    announce(server.local_addr())?;
    server.serve_forever()?;
    server.server_close()
}

/// Prints `error: <message>` to stderr and returns exit status 1.
pub fn fail(message: impl Display) -> ExitCode {
    let _ = writeln!(io::stderr().lock(), "error: {message}");
    ExitCode::from(1)
}

/// The exit status for what `main` did: 0, or 1 after printing the error.
pub fn exit_status(result: io::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}
