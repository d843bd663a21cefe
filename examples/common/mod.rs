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

// Each example uses a subset of these helpers.
#![allow(dead_code)]

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
}

impl Args {
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
    parse_args_with(example, &[]).0
}

/// An option of one example's own, beside the shared ones: `--name VALUE` (or `--name=VALUE`).
pub struct ExtraOption {
    /// The option, with its dashes: `"--root"`.
    pub name: &'static str,
    /// What the value is, for the usage: `"DIR"`.
    pub value: &'static str,
    /// One line of help, including the default if there is one.
    pub help: &'static str,
}

/// The values given for an example's [`ExtraOption`]s.
#[derive(Debug, Clone, Default)]
pub struct Extras(Vec<(&'static str, String)>);

impl Extras {
    /// The value given for `name`, if any (the last one, if given twice).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name` parsed as `T`, or `default` when absent; a bad value exits with
    /// status 2 like any bad argument.
    pub fn parse_or<T: std::str::FromStr>(
        &self,
        example: &Example,
        extra: &[ExtraOption],
        name: &str,
        default: T,
    ) -> T
    where
        T::Err: Display,
    {
        match self.get(name) {
            None => default,
            Some(value) => value.parse().unwrap_or_else(|e| {
                usage_error(
                    example,
                    extra,
                    &format!("invalid value '{value}' for {name} ({e})"),
                )
            }),
        }
    }
}

/// Like [`parse_args`], also accepting the example's own options `extra`.
pub fn parse_args_with(example: &Example, extra: &[ExtraOption]) -> (Args, Extras) {
    let mut shared = Vec::new();
    let mut extras = Extras::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline_value) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => {
                (name.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        let Some(option) = extra.iter().find(|o| o.name == name) else {
            shared.push(arg);
            continue;
        };
        match inline_value.or_else(|| args.next()) {
            Some(value) => extras.0.push((option.name, value)),
            None => usage_error(example, extra, &format!("{name} needs a value")),
        }
    }
    match parse(example, shared) {
        Ok(Some(args)) => (args, extras),
        Ok(None) => {
            let mut out = io::stdout().lock();
            let _ = out.write_all(usage_with(example, extra).as_bytes());
            let _ = out.flush();
            process::exit(0);
        }
        Err(message) => usage_error(example, extra, &message),
    }
}

/// Prints `<example>: <message>` and the usage to stderr, and exits with status 2.
pub fn usage_error(example: &Example, extra: &[ExtraOption], message: &str) -> ! {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{}: {message}", example.name);
    let _ = err.write_all(usage_with(example, extra).as_bytes());
    process::exit(2);
}

/// The usage text with the example's own options listed after the shared ones.
fn usage_with(example: &Example, extra: &[ExtraOption]) -> String {
    let mut text = usage(example);
    if !extra.is_empty() {
        text.push_str(
            "\n{name} options:\n"
                .replace("{name}", example.name)
                .as_str(),
        );
        for option in extra {
            let left = format!("{} {}", option.name, option.value);
            text.push_str(&format!("  {left:<24} {}\n", option.help));
        }
    }
    text
}

/// The usage text, ending in a newline.
pub fn usage(example: &Example) -> String {
    format!(
        "usage: {name} [--addr HOST:PORT] [--mode single|threading|pool] [--workers N] [--max-threads N]\n\
         \n\
         {about}\n\
         \n\
         options:\n\
         \x20 --addr HOST:PORT  address to listen on (default {addr}; port 0 picks a free port)\n\
         \x20 --mode MODE       single, threading or pool (default {mode})\n\
         \x20 --workers N       worker threads with --mode pool (default: 4 per CPU core)\n\
         \x20 --max-threads N   most handler threads at once with --mode threading (default: no cap)\n\
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
    args: impl IntoIterator<Item = String>,
) -> Result<Option<Args>, String> {
    let mut addr = example.default_addr.to_string();
    let mut mode = example.default_mode;
    let mut workers = None;
    let mut max_threads = None;

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
        if !matches!(
            name.as_str(),
            "--addr" | "--mode" | "--workers" | "--max-threads"
        ) {
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
    }))
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

/// Binds a TCP server for `handler` from `builder` in the `--mode` of `args`, and [`serve`]s it.
pub fn serve_tcp<H>(args: &Args, builder: Builder, handler: H) -> io::Result<()>
where
    H: RequestHandler<socketserver::StreamRequest> + Clone,
{
    let addr = args.addr.as_str();
    match args.mode {
        ModeName::Single => serve(builder.bind_tcp(addr, handler)?),
        ModeName::Threading => serve(builder.mode(args.threading()).bind_tcp(addr, handler)?),
        ModeName::Pool => serve(builder.mode(args.pool()).bind_tcp(addr, handler)?),
    }
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
