//! Plumbing shared by the examples (`mod common;`), so each example file shows only its handler
//! and how it builds its server.
//!
//! Every example follows the same conventions:
//!
//! * `--addr HOST:PORT` chooses the address (port 0 lets the system pick a free port);
//!   `--mode single|threading|pool|process|prefork` the concurrency mode, with `--workers N` for
//!   `pool` and `prefork`, `--max-threads N` for `threading` and `--max-children N` for `process`;
//!   `--help` prints the usage.
//! * The first line on stdout is exactly `listening on <bound address>`, so scripts and tests can
//!   read the real port.
//! * Log lines go to stderr, at level `info` unless `RUST_LOG` says otherwise.
//! * A bad argument prints a one-line message and the usage to stderr and exits with status 2; a
//!   runtime error prints `error: <message>` to stderr and exits with status 1.

// Each example uses a subset of these helpers.
#![allow(dead_code)]

pub mod frame;

use std::fmt::Display;
use std::io::{self, Write};
use std::process::{self, ExitCode};

use socketserver::transport::Transport;
use socketserver::{Builder, Mode, Pool, Prefork, Process, RequestHandler, Server, Threading};

/// The concurrency mode chosen with `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeName {
    /// `--mode single`: one request at a time, on the serving thread.
    Single,
    /// `--mode threading`: a thread per request, capped by `--max-threads`.
    Threading,
    /// `--mode pool`: `--workers` long-lived worker threads.
    Pool,
    /// `--mode process`: a child process per request, at most `--max-children` at once.
    Process,
    /// `--mode prefork`: `--workers` worker processes, each with a thread per connection.
    Prefork,
}

impl ModeName {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "single" => Some(ModeName::Single),
            "threading" => Some(ModeName::Threading),
            "pool" => Some(ModeName::Pool),
            "process" => Some(ModeName::Process),
            "prefork" => Some(ModeName::Prefork),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            ModeName::Single => "single",
            ModeName::Threading => "threading",
            ModeName::Pool => "pool",
            ModeName::Process => "process",
            ModeName::Prefork => "prefork",
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

/// An option only one example has, such as the chat room's `--idle-timeout SECS`. It always takes
/// a value, which `check` validates while the command line is parsed, so a bad value exits with
/// status 2 like any other bad argument.
pub struct ExtraOption {
    /// The option, with its dashes: `--idle-timeout`.
    pub name: &'static str,
    /// What the value is, for the usage: `SECS`.
    pub value: &'static str,
    /// One line for the usage, including the default.
    pub help: &'static str,
    /// Validates a value, returning the message for a bad one.
    pub check: fn(&str) -> Result<(), String>,
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
    max_children: Option<usize>,
    /// Values of the example's [`ExtraOption`]s that were given, already checked.
    extra: Vec<(&'static str, String)>,
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

    /// The [`Process`] mode as configured by `--max-children` (default 40, as in Python).
    pub fn process(&self) -> Process {
        match self.max_children {
            Some(max) => Process::new().max_children(max),
            None => Process::new(),
        }
    }

    /// The [`Prefork`] mode: `--workers` processes (default: one per CPU core), each serving
    /// with a thread per connection, so long-lived clients do not hold a whole worker.
    pub fn prefork(&self) -> Prefork {
        let workers = self
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        Prefork::new(workers).worker_mode(Threading::new())
    }
}

/// What an example serves, bindable with a [`Builder`] of any mode: examples implement it once
/// and [`launch`] picks the mode from `--mode`.
pub trait Launch {
    /// Binds the example's server with `builder` (adding options of its own if it likes) and
    /// serves it until it is shut down.
    fn launch<M: Mode>(self, builder: Builder<M>) -> io::Result<()>;
}

/// Serves `what` in the mode chosen on the command line.
pub fn launch(args: &Args, what: impl Launch) -> io::Result<()> {
    match args.mode {
        ModeName::Single => what.launch(Builder::new()),
        ModeName::Threading => what.launch(Builder::new().mode(args.threading())),
        ModeName::Pool => what.launch(Builder::new().mode(args.pool())),
        ModeName::Process => what.launch(Builder::new().mode(args.process())),
        ModeName::Prefork => what.launch(Builder::new().mode(args.prefork())),
    }
}

impl Args {
    /// The value given for the extra option `name`, if any (the last one, if given twice).
    pub fn extra(&self, name: &str) -> Option<&str> {
        self.extra
            .iter()
            .rev()
            .find(|(option, _)| *option == name)
            .map(|(_, value)| value.as_str())
    }

    /// The extra option `name` as a number, or `default` when it was not given. Its `check`
    /// should be [`check_positive`], so parsing cannot fail here; if it does, `default` is used.
    pub fn extra_number(&self, name: &str, default: u64) -> u64 {
        self.extra(name)
            .and_then(|value| value.parse().ok())
            .unwrap_or(default)
    }
}

/// An [`ExtraOption::check`] for a whole number of at least 1.
pub fn check_positive(value: &str) -> Result<(), String> {
    match value.parse::<u64>() {
        Ok(n) if n > 0 => Ok(()),
        _ => Err("expected a whole number of at least 1".to_string()),
    }
}

/// Parses the process's arguments. Prints the usage and exits 0 on `--help`; prints a one-line
/// message and the usage to stderr and exits 2 on a bad argument.
pub fn parse_args(example: &Example) -> Args {
    parse_args_with(example, &[])
}

/// [`parse_args`] for an example that also takes the options in `extra`.
pub fn parse_args_with(example: &Example, extra: &[ExtraOption]) -> Args {
    match parse(example, extra, std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            let mut out = io::stdout().lock();
            let _ = out.write_all(usage_with(example, extra).as_bytes());
            let _ = out.flush();
            process::exit(0);
        }
        Err(message) => {
            let mut err = io::stderr().lock();
            let _ = writeln!(err, "{}: {message}", example.name);
            let _ = err.write_all(usage_with(example, extra).as_bytes());
            process::exit(2);
        }
    }
}

/// The usage text, ending in a newline.
pub fn usage(example: &Example) -> String {
    usage_with(example, &[])
}

/// The usage text of an example with extra options, ending in a newline.
pub fn usage_with(example: &Example, extra: &[ExtraOption]) -> String {
    let synopsis: String = extra
        .iter()
        .map(|option| format!(" [{} {}]", option.name, option.value))
        .collect();
    let options: String = extra
        .iter()
        .map(|option| {
            let flag = format!("{} {}", option.name, option.value);
            format!("  {flag:<17} {}\n", option.help)
        })
        .collect();
    format!(
        "usage: {name} [--addr HOST:PORT] [--mode MODE] [--workers N] [--max-threads N] [--max-children N]{synopsis}\n\
         \n\
         {about}\n\
         \n\
         options:\n\
         \x20 --addr HOST:PORT  address to listen on (default {addr}; port 0 picks a free port)\n\
         \x20 --mode MODE       single, threading, pool, process or prefork (default {mode})\n\
         \x20 --workers N       worker threads with --mode pool (default: 4 per CPU core), or\n\
         \x20                   worker processes with --mode prefork (default: 1 per CPU core)\n\
         \x20 --max-threads N   most handler threads at once with --mode threading (default: no cap)\n\
         \x20 --max-children N  most child processes at once with --mode process (default 40)\n\
         {options}\
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
    extra: &[ExtraOption],
    args: impl IntoIterator<Item = String>,
) -> Result<Option<Args>, String> {
    let mut addr = example.default_addr.to_string();
    let mut mode = example.default_mode;
    let mut workers = None;
    let mut max_threads = None;
    let mut max_children = None;
    let mut extra_values = Vec::new();

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
        let extra_option = extra.iter().find(|option| option.name == name);
        if extra_option.is_none()
            && !matches!(
                name.as_str(),
                "--addr" | "--mode" | "--workers" | "--max-threads" | "--max-children"
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
        if let Some(option) = extra_option {
            (option.check)(&value)
                .map_err(|why| format!("invalid value '{value}' for {name} ({why})"))?;
            extra_values.push((option.name, value));
            continue;
        }
        match name.as_str() {
            "--addr" => addr = check_addr(&value)?,
            "--mode" => {
                mode = ModeName::parse(&value).ok_or_else(|| {
                    format!(
                        "invalid value '{value}' for --mode (expected single, threading, pool, \
                         process or prefork)"
                    )
                })?
            }
            "--workers" => workers = Some(positive(&name, &value)?),
            "--max-children" => max_children = Some(positive(&name, &value)?),
            _ => max_threads = Some(positive(&name, &value)?),
        }
    }

    if workers.is_some() && !matches!(mode, ModeName::Pool | ModeName::Prefork) {
        return Err(format!(
            "--workers applies to --mode pool and prefork only (the mode is {})",
            mode.as_str()
        ));
    }
    if max_threads.is_some() && mode != ModeName::Threading {
        return Err(format!(
            "--max-threads applies to --mode threading only (the mode is {})",
            mode.as_str()
        ));
    }
    if max_children.is_some() && mode != ModeName::Process {
        return Err(format!(
            "--max-children applies to --mode process only (the mode is {})",
            mode.as_str()
        ));
    }
    Ok(Some(Args {
        addr,
        mode,
        workers,
        max_threads,
        max_children,
        extra: extra_values,
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
///
/// In a child process of the `process` and `prefork` modes (which run `main` again) the address is
/// not announced: the parent did that, and the child shares its stdout.
pub fn serve<T, H, M>(mut server: Server<T, H, M>) -> io::Result<()>
where
    T: Transport,
    H: RequestHandler<T::Request> + Clone,
    M: Mode,
{
    if !socketserver::is_worker() {
        announce(server.local_addr())?;
    }
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

/// An [`ExtraOption::check`] that accepts any value (the example checks it when it uses it).
pub fn any_value(_value: &str) -> Result<(), String> {
    Ok(())
}

/// Prints `<example>: <message>` and the usage to stderr, and exits with status 2.
pub fn usage_error(example: &Example, extra: &[ExtraOption], message: &str) -> ! {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{}: {message}", example.name);
    let _ = err.write_all(usage_with(example, extra).as_bytes());
    process::exit(2);
}

impl Args {
    /// The value of the extra option `name` parsed as `T`, or `default` when absent; a bad value
    /// exits with status 2 like any bad argument.
    pub fn extra_parsed<T: std::str::FromStr>(
        &self,
        example: &Example,
        extra: &[ExtraOption],
        name: &str,
        default: T,
    ) -> T
    where
        T::Err: Display,
    {
        match self.extra(name) {
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

/// Serves a TCP `handler` in the mode chosen on the command line, keeping the options already set
/// on `builder`.
pub fn serve_tcp<H>(args: &Args, builder: Builder, handler: H) -> io::Result<()>
where
    H: RequestHandler<socketserver::StreamRequest> + Clone,
{
    let addr = args.addr.as_str();
    match args.mode {
        ModeName::Single => serve(builder.bind_tcp(addr, handler)?),
        ModeName::Threading => serve(builder.mode(args.threading()).bind_tcp(addr, handler)?),
        ModeName::Pool => serve(builder.mode(args.pool()).bind_tcp(addr, handler)?),
        ModeName::Process => serve(builder.mode(args.process()).bind_tcp(addr, handler)?),
        ModeName::Prefork => serve(builder.mode(args.prefork()).bind_tcp(addr, handler)?),
    }
}

/// `--stack-size BYTES`: the stack of each handler thread, applied by [`Args::builder`]. Small
/// stacks let a threading server hold many idle connections.
pub const STACK_SIZE: ExtraOption = ExtraOption {
    name: "--stack-size",
    value: "BYTES",
    help: "stack size of each handler thread (default: Rust's 2 MiB)",
    check: check_positive,
};

impl Args {
    /// A [`Builder`] with what the common options configure (`--stack-size`, when declared and
    /// given).
    pub fn builder(&self) -> Builder {
        match self.extra(STACK_SIZE.name).and_then(|v| v.parse().ok()) {
            Some(bytes) => Builder::new().thread_stack_size(bytes),
            None => Builder::new(),
        }
    }
}
