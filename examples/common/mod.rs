//! Plumbing shared by the examples (`mod common;`), so each example file shows only its handler
//! and how it builds its server.
//!
//! Every example follows the same conventions:
//!
//! * `--addr HOST:PORT` chooses the address (port 0 lets the system pick a free port);
//!   `--mode single|threading|pool|process|prefork` the concurrency mode, with `--workers N` for
//!   `pool` and `prefork`, `--max-threads N` for `threading` and `--max-children N` for `process`;
//!   `--systemd` serves the socket passed by systemd socket activation (`LISTEN_FDS`; TCP or
//!   Unix stream for stream servers, UDP or Unix datagram for datagram servers) instead of
//!   binding `--addr`, and readiness goes to `NOTIFY_SOCKET` when set (see `deploy/`);
//!   `--grace SECS` how long a stop on SIGTERM or SIGINT lets running requests finish (default
//!   30; a second signal, or SIGQUIT, stops at once); `--help` prints the usage. An example that
//!   cannot run in every mode lists in [`Example::modes`] those it can: its usage offers only
//!   them, and `--mode` refuses the rest.
//! * The first line on stdout is exactly `listening on <bound address>`, so scripts and tests can
//!   read the real port; with `--metrics ADDR` ([`METRICS`]) the second is
//!   `metrics on <bound address>`.
//! * Stream servers that declare them serve TLS with `--tls-cert FILE --tls-key FILE`, and
//!   require client certificates with `--tls-client-ca FILE` ([`TLS_CERT`]; the library's `tls`
//!   feature, off by default: `cargo run --features tls --example ...`).
//! * Log lines go to stderr, at level `info` unless `RUST_LOG` says otherwise. Lines about one
//!   request or connection are at `debug` (`RUST_LOG=debug` shows them), so a flood of requests
//!   is not a flood of log; a line never shows more of a payload than [`preview::preview`]: a
//!   short, escaped prefix.
//! * A bad argument prints a one-line message and the usage to stderr and exits with status 2; a
//!   runtime error prints `error: <message>` to stderr and exits with status 1.
//!
//! An example declares itself in an [`Example`], its own options in [`Example::options`];
//! [`parse_args`] reads the command line (checking every value), [`Args::value`] and
//! [`Args::parsed`] read the example's options, and [`serve_tcp`] or [`serve_udp`] serve its
//! handler in the chosen mode, starting from the [`Builder`] of [`Args::builder`].

// Each example uses a subset of these helpers.
#![allow(dead_code)]

pub mod frame;
pub mod preview;

use std::fmt::Display;
use std::io::{self, Write};
use std::process::{self, ExitCode};
use std::str::FromStr;
use std::time::Duration;

use socketserver::systemd;
use socketserver::transport::Transport;
use socketserver::{
    AnyMode, Builder, DatagramRequest, Mode, Pool, Prefork, Process, RequestHandler, Server,
    Single, StreamRequest, Threading,
};

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
    /// `--mode prefork`: `--workers` worker processes, each with a thread per connection (one
    /// datagram at a time for UDP).
    Prefork,
}

impl ModeName {
    /// Every mode: what [`Example::modes`] holds for an example that runs in any.
    pub const ALL: &'static [ModeName] = &[
        ModeName::Single,
        ModeName::Threading,
        ModeName::Pool,
        ModeName::Process,
        ModeName::Prefork,
    ];

    /// The modes that run every handler in this one process: for an example that keeps state
    /// (a chat room, a store) in memory shared between threads, which separate processes would
    /// each have a copy of. See [`Args::threads_only`].
    pub const THREADS: &'static [ModeName] =
        &[ModeName::Single, ModeName::Threading, ModeName::Pool];

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
    /// The modes `--mode` accepts, [`ModeName::ALL`] for most; the usage and the errors name
    /// only these, and the options of modes not among them (`--workers`, `--max-threads`,
    /// `--max-children`) are neither offered nor accepted.
    pub modes: &'static [ModeName],
    /// The options only this example has, after the common ones in the usage.
    pub options: &'static [ExtraOption],
}

/// An option only some examples have, such as the chat room's `--idle-timeout SECS`. It always
/// takes a value, which `check` validates while the command line is parsed, so a bad value exits
/// with status 2 like any other bad argument. Read it with [`Args::value`] or [`Args::parsed`].
pub struct ExtraOption {
    /// The option, with its dashes: `--idle-timeout`.
    pub name: &'static str,
    /// What the value is, for the usage: `SECS`.
    pub value: &'static str,
    /// One line for the usage, including the default.
    pub help: &'static str,
    /// Validates a value, returning the message for a bad one: [`check_positive`],
    /// [`check_parses`], [`any_value`] or the example's own.
    pub check: fn(&str) -> Result<(), String>,
}

/// An [`ExtraOption::check`] for a whole number of at least 1.
pub fn check_positive(value: &str) -> Result<(), String> {
    match value.parse::<u64>() {
        Ok(n) if n > 0 => Ok(()),
        _ => Err("expected a whole number of at least 1".to_string()),
    }
}

/// An [`ExtraOption::check`] for a value that parses as `T`, such as `check_parses::<f64>`.
pub fn check_parses<T>(value: &str) -> Result<(), String>
where
    T: FromStr,
    T::Err: Display,
{
    value.parse::<T>().map(|_| ()).map_err(|e| e.to_string())
}

/// An [`ExtraOption::check`] that accepts any value, such as a path.
pub fn any_value(_value: &str) -> Result<(), String> {
    Ok(())
}

/// `--stack-size BYTES`: the stack of each handler thread, applied by [`Args::builder`]. Small
/// stacks let a threading server hold many idle connections.
pub const STACK_SIZE: ExtraOption = ExtraOption {
    name: "--stack-size",
    value: "BYTES",
    help: "stack size of each handler thread (default: Rust's 2 MiB)",
    check: check_positive,
};

/// `--idle-timeout SECS` for stream servers: close a connection on which nothing moved for that
/// long (`Builder::idle_timeout`), applied by [`serve_tcp`]. An example may declare its own
/// option of this name (with its own default in the help), as long as it means the same.
pub const IDLE_TIMEOUT: ExtraOption = ExtraOption {
    name: "--idle-timeout",
    value: "SECS",
    help: "close a connection idle for SECS (default: never)",
    check: check_positive,
};

/// `--max-lifetime SECS` for stream servers: close every connection that long after it was
/// accepted (`Builder::max_connection_lifetime`), applied by [`serve_tcp`].
pub const MAX_LIFETIME: ExtraOption = ExtraOption {
    name: "--max-lifetime",
    value: "SECS",
    help: "close every connection SECS after accepting it (default: never)",
    check: check_positive,
};

/// `--proxy-protocol v1|v2|any` for stream servers behind a load balancer: expect a PROXY
/// protocol header on every connection (`Builder::proxy_protocol`), from a [`TRUSTED_PROXY`]
/// only; applied by [`serve_tcp`].
pub const PROXY_PROTOCOL: ExtraOption = ExtraOption {
    name: "--proxy-protocol",
    value: "VERSION",
    help: "behind a load balancer: expect a PROXY protocol header, v1, v2 or any (default: none)",
    check: check_proxy_version,
};

/// `--trusted-proxy CIDR`, repeatable: a load balancer's address or range allowed to send the
/// [`PROXY_PROTOCOL`] header (`Builder::trusted_proxies`).
pub const TRUSTED_PROXY: ExtraOption = ExtraOption {
    name: "--trusted-proxy",
    value: "CIDR",
    help: "a balancer's address or range (10.0.0.0/8) allowed to send it; repeatable",
    check: check_trusted_proxy,
};

#[cfg(feature = "proxy")]
fn check_proxy_version(value: &str) -> Result<(), String> {
    value
        .parse::<socketserver::proxy::ProxyProtocol>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(feature = "proxy")]
fn check_trusted_proxy(value: &str) -> Result<(), String> {
    value
        .parse::<socketserver::proxy::TrustedProxy>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "proxy"))]
fn check_proxy_version(_value: &str) -> Result<(), String> {
    Err("built without the library's `proxy` feature".to_string())
}

#[cfg(not(feature = "proxy"))]
fn check_trusted_proxy(value: &str) -> Result<(), String> {
    check_proxy_version(value)
}

/// `--tls-cert FILE` for stream servers: serve TLS with this certificate (PEM, its chain after
/// it), with [`TLS_KEY`]; applied by [`serve_tcp`] and [`serve_messages`] (`Builder::tls`). The
/// files are read at start (an unusable one is an error naming it) and again on SIGHUP; a
/// `--mode prefork` parent's SIGHUP starts fresh workers, which read them as they start.
pub const TLS_CERT: ExtraOption = ExtraOption {
    name: "--tls-cert",
    value: "FILE",
    help: "serve TLS with this certificate (PEM, chain after it); needs --tls-key",
    check: check_tls_file,
};

/// `--tls-key FILE`: the private key of [`TLS_CERT`]'s certificate (PEM).
pub const TLS_KEY: ExtraOption = ExtraOption {
    name: "--tls-key",
    value: "FILE",
    help: "the certificate's private key (PEM: PKCS#8, RSA or EC)",
    check: check_tls_file,
};

/// `--tls-client-ca FILE` with [`TLS_CERT`]: mutual TLS, every client must present a
/// certificate from a CA in this bundle (PEM); the handler reads its identity from
/// `StreamRequest::tls`.
pub const TLS_CLIENT_CA: ExtraOption = ExtraOption {
    name: "--tls-client-ca",
    value: "FILE",
    help: "require a client certificate from this CA bundle (mutual TLS)",
    check: check_tls_file,
};

/// A TLS file must exist when the command line is read: a typo is a usage error, not a server
/// that starts and fails every handshake. (Whether it holds what it should is found out when it
/// is loaded.)
#[cfg(feature = "tls")]
fn check_tls_file(value: &str) -> Result<(), String> {
    match std::fs::metadata(value) {
        Ok(meta) if meta.is_dir() => Err("a directory, not a file".to_string()),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err("no such file".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(not(feature = "tls"))]
fn check_tls_file(_value: &str) -> Result<(), String> {
    Err("built without the library's `tls` feature".to_string())
}

/// `--api stream|message` for the examples that can be written either way: `stream` (the default)
/// serves a `RequestHandler` that reads and writes its connection; `message` serves a
/// `MessageHandler` behind the library's event loop (`Builder::messages`), in `--mode single`,
/// `pool` or `prefork`. See [`Args::message_api`] and [`serve_messages`].
pub const API: ExtraOption = ExtraOption {
    name: "--api",
    value: "stream|message",
    help: "stream: a thread per connection; message: an event loop, whole messages to the handler (default: stream)",
    check: check_api,
};

/// `--message-timeout SECS` with `--api message`: close a connection whose message is not complete
/// that long after its first byte (`MessageBuilder::message_timeout`), applied by [`serve_messages`].
pub const MESSAGE_TIMEOUT: ExtraOption = ExtraOption {
    name: "--message-timeout",
    value: "SECS",
    help:
        "with --api message: close a connection whose message takes longer to arrive (default: 30)",
    check: check_positive,
};

/// `--loops N` with `--api message`: how many event loops serve the connections, each on a thread
/// of its own (`MessageBuilder::loops`; 0: one per CPU), in `--mode single` or in each
/// `prefork` worker; applied by [`serve_messages`].
pub const LOOPS: ExtraOption = ExtraOption {
    name: "--loops",
    value: "N",
    help: "with --api message: event loops, each on its own thread (default 1; 0: one per CPU)",
    check: check_parses::<usize>,
};

/// `--metrics ADDR`: serve Prometheus metrics (`GET /metrics`) and a status page (`GET /`) on
/// an admin listener of their own, at `HOST:PORT` or, for a value with a `/`, a Unix socket path
/// (`Builder::metrics_addr` / `metrics_unix`; the library's `metrics` feature, off by default:
/// `cargo run --features metrics --example ...`); applied by [`Args::builder`]. The second line
/// on stdout is then `metrics on <bound address>`.
pub const METRICS: ExtraOption = ExtraOption {
    name: "--metrics",
    value: "ADDR",
    help: "serve Prometheus metrics and a status page at HOST:PORT or a Unix socket path",
    check: check_metrics,
};

#[cfg(feature = "metrics")]
fn check_metrics(value: &str) -> Result<(), String> {
    match value.contains('/') {
        true => Ok(()),
        false => check_addr(value).map(|_| ()).map_err(|_| {
            "expected HOST:PORT (e.g. 127.0.0.1:9100) or a Unix socket path".to_string()
        }),
    }
}

#[cfg(not(feature = "metrics"))]
fn check_metrics(_value: &str) -> Result<(), String> {
    Err("built without the library's `metrics` feature".to_string())
}

/// `builder` with the admin listener of [`METRICS`], where given.
#[cfg(feature = "metrics")]
fn metrics(args: &Args, builder: Builder) -> Builder {
    match args.value(METRICS.name) {
        Some(path) if path.contains('/') => builder.metrics_unix(path),
        Some(addr) => builder.metrics_addr(addr),
        None => builder,
    }
}

/// Without the `metrics` feature [`METRICS`]'s check refuses every value.
#[cfg(not(feature = "metrics"))]
fn metrics(_args: &Args, builder: Builder) -> Builder {
    builder
}

/// Prints `metrics on <address>` when the server has an admin listener ([`METRICS`]): the line
/// after `listening on`.
pub fn announce_metrics(handle: &socketserver::ServerHandle) -> io::Result<()> {
    #[cfg(feature = "metrics")]
    if let Some(addr) = handle.metrics_addr() {
        return print_line(format_args!("metrics on {addr}"));
    }
    let _ = handle;
    Ok(())
}

fn check_api(value: &str) -> Result<(), String> {
    match value {
        "stream" => Ok(()),
        "message" if cfg!(feature = "message") => Ok(()),
        "message" => Err("built without the library's `message` feature".to_string()),
        _ => Err("expected stream or message".to_string()),
    }
}

/// The parsed command line.
pub struct Args {
    /// `--addr HOST:PORT`, checked for shape; resolved when the server binds.
    pub addr: String,
    /// `--mode`.
    pub mode: ModeName,
    /// `--systemd`: serve the first socket systemd passed instead of binding `addr`.
    pub systemd: bool,
    example: &'static Example,
    workers: Option<usize>,
    max_threads: Option<usize>,
    max_children: Option<usize>,
    /// `--grace SECS`, if given: how long a graceful stop waits for running requests.
    pub grace: Option<Duration>,
    /// Values of the example's [`ExtraOption`]s that were given, already checked.
    extra: Vec<(&'static str, String)>,
}

impl Args {
    /// The value given for the extra option `name`, if any (the last one, if given twice).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.extra
            .iter()
            .rev()
            .find(|(option, _)| *option == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value given for the extra option `name`, in order (for a repeatable option such as
    /// [`TRUSTED_PROXY`]).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.extra
            .iter()
            .filter(move |(option, _)| *option == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of the extra option `name` parsed as `T`, or `default` when it was not given.
    /// Its `check` has accepted the value; one that still does not parse as `T` is a usage error.
    pub fn parsed<T>(&self, name: &str, default: T) -> T
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.value(name) {
            None => default,
            Some(value) => value.parse().unwrap_or_else(|e| {
                self.usage_error(&format!("invalid value '{value}' for {name} ({e})"))
            }),
        }
    }

    /// Prints `<example>: <message>` and the usage to stderr, and exits with status 2: for a
    /// command line that parses but cannot work, such as a missing required option.
    pub fn usage_error(&self, message: &str) -> ! {
        exit_with_usage_error(self.example, message)
    }

    /// A [`Builder`] with what the common options configure: a graceful stop on SIGTERM and
    /// SIGINT with the `--grace` period, the admin listener of [`METRICS`], and `--stack-size`
    /// when the example declares [`STACK_SIZE`] and it is given. The mode is set by
    /// [`serve_tcp`] / [`serve_udp`].
    pub fn builder(&self) -> Builder {
        let grace = self.grace.unwrap_or(socketserver::DEFAULT_GRACE_PERIOD);
        let builder = metrics(self, stop_on_signals(Builder::new()).grace_period(grace));
        match self.value(STACK_SIZE.name).and_then(|v| v.parse().ok()) {
            Some(bytes) => builder.thread_stack_size(bytes),
            None => builder,
        }
    }

    /// `builder` with the connection limits of [`IDLE_TIMEOUT`] and [`MAX_LIFETIME`], the
    /// PROXY protocol and TLS, where the example declares them and they were given.
    ///
    /// # Errors
    ///
    /// TLS files that cannot be used: the error names the file and says why.
    fn stream_limits(&self, mut builder: Builder) -> io::Result<Builder> {
        let secs = |name| self.value(name).and_then(|v| v.parse::<u64>().ok());
        if let Some(idle) = secs(IDLE_TIMEOUT.name) {
            builder = builder.idle_timeout(Duration::from_secs(idle));
        }
        if let Some(lifetime) = secs(MAX_LIFETIME.name) {
            builder = builder.max_connection_lifetime(Duration::from_secs(lifetime));
        }
        self.tls(self.proxy_protocol(builder))
    }

    /// Whether the server serves TLS ([`TLS_CERT`] and [`TLS_KEY`] given).
    pub fn tls_on(&self) -> bool {
        self.value(TLS_CERT.name).is_some() && self.value(TLS_KEY.name).is_some()
    }

    /// Whether clients must present a certificate ([`TLS_CLIENT_CA`] given, with TLS on).
    pub fn mutual_tls(&self) -> bool {
        self.tls_on() && self.value(TLS_CLIENT_CA.name).is_some()
    }

    /// `builder` serving TLS with [`TLS_CERT`], [`TLS_KEY`] and [`TLS_CLIENT_CA`], where given.
    /// One of the certificate and key without the other, or a client CA without them, is a usage
    /// error; files that cannot be loaded are an error naming the file.
    #[cfg(feature = "tls")]
    fn tls(&self, builder: Builder) -> io::Result<Builder> {
        let (cert, key) = (self.value(TLS_CERT.name), self.value(TLS_KEY.name));
        let ca = self.value(TLS_CLIENT_CA.name);
        let (cert, key) = match (cert, key) {
            (Some(cert), Some(key)) => (cert, key),
            (Some(_), None) => self.usage_error("--tls-cert needs --tls-key (its private key)"),
            (None, Some(_)) => self.usage_error("--tls-key needs --tls-cert (its certificate)"),
            (None, None) if ca.is_some() => {
                self.usage_error("--tls-client-ca needs --tls-cert and --tls-key")
            }
            (None, None) => return Ok(builder),
        };
        let mut config = socketserver::tls::TlsConfig::new(cert, key);
        if let Some(ca) = ca {
            config = config.client_ca(ca);
        }
        let tls = config
            .load()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot load the TLS files: {e}")))?;
        // Said once, by the process that announces the address (a process or prefork child
        // loads the files again as it starts).
        if !socketserver::is_worker() {
            let clients = ca.map_or(String::new(), |ca| {
                format!("; clients must present a certificate from {ca}")
            });
            let reload = if cfg!(feature = "signals") {
                "; SIGHUP reloads the files"
            } else {
                ""
            };
            log::info!("TLS with {cert}{clients}{reload}");
        }
        Ok(builder.tls(tls))
    }

    /// Without the `tls` feature [`TLS_CERT`]'s check refuses every value.
    #[cfg(not(feature = "tls"))]
    fn tls(&self, builder: Builder) -> io::Result<Builder> {
        Ok(builder)
    }

    /// `builder` with [`PROXY_PROTOCOL`] and its [`TRUSTED_PROXY`]s, where given; one without
    /// the other is a usage error (no balancer could be trusted, or none would be asked for).
    #[cfg(feature = "proxy")]
    fn proxy_protocol(&self, builder: Builder) -> Builder {
        let trusted: Vec<&str> = self.values(TRUSTED_PROXY.name).collect();
        let version = self.value(PROXY_PROTOCOL.name);
        match (version, trusted.is_empty()) {
            (None, true) => builder,
            (None, false) => self.usage_error("--trusted-proxy needs --proxy-protocol"),
            (Some(_), true) => self.usage_error(
                "--proxy-protocol needs at least one --trusted-proxy (your load balancer's address)",
            ),
            (Some(_), false) => builder
                .proxy_protocol(self.parsed(PROXY_PROTOCOL.name, socketserver::proxy::ProxyProtocol::Any))
                .trusted_proxies(trusted),
        }
    }

    /// Without the `proxy` feature [`PROXY_PROTOCOL`]'s check refuses every value.
    #[cfg(not(feature = "proxy"))]
    fn proxy_protocol(&self, builder: Builder) -> Builder {
        builder
    }

    /// An error for `--mode process` or `prefork` in an example that keeps `state` (such as "its
    /// store") in memory shared between threads: separate processes would each have their own
    /// copy, and what one connection changed would be lost on the next. Such an example offers
    /// only [`ModeName::THREADS`], so `--mode` already refuses these; this check keeps the reason
    /// next to the state it protects.
    pub fn threads_only(&self, state: &str) -> io::Result<()> {
        if matches!(self.mode, ModeName::Process | ModeName::Prefork) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} keeps {state} in memory shared between threads, so it cannot run in the \
                     process or prefork mode; use single, threading or pool",
                    self.example.name
                ),
            ));
        }
        Ok(())
    }

    /// Whether `--api message` was given (see [`API`]).
    pub fn message_api(&self) -> bool {
        self.value(API.name) == Some("message")
    }

    /// The `--mode` chosen, configured by its options, for a stream server or a datagram
    /// server (they differ in prefork: see [`prefork`](Self::prefork)).
    fn any_mode(&self, stream: bool) -> AnyMode {
        match self.mode {
            ModeName::Single => Single.into(),
            ModeName::Threading => self.threading().into(),
            ModeName::Pool => self.pool().into(),
            ModeName::Process => self.process().into(),
            ModeName::Prefork => self.prefork(stream).into(),
        }
    }

    /// The [`Threading`] mode as configured by `--max-threads` (no cap when absent).
    fn threading(&self) -> Threading {
        match self.max_threads {
            Some(max) => Threading::new().max_threads(max),
            None => Threading::new(),
        }
    }

    /// The [`Pool`] mode as configured by `--workers` (the library's default size when absent:
    /// four workers per CPU core).
    fn pool(&self) -> Pool {
        match self.workers {
            Some(workers) => Pool::new(workers),
            None => Pool::default(),
        }
    }

    /// The [`Process`] mode as configured by `--max-children` (default 40, as in Python).
    fn process(&self) -> Process {
        match self.max_children {
            Some(max) => Process::new().max_children(max),
            None => Process::new(),
        }
    }

    /// The [`Prefork`] mode: `--workers` processes (default: one per CPU core). For a stream
    /// server each worker starts a thread per connection, so long-lived clients do not hold a
    /// whole worker; for a datagram server each handles one datagram at a time, since a thread
    /// per datagram would cost more than the request.
    fn prefork(&self, stream: bool) -> Prefork {
        let workers = self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
        });
        let prefork = Prefork::new(workers);
        if stream {
            prefork.worker_mode(Threading::new())
        } else {
            prefork
        }
    }
}

/// Arms the graceful stop on signals; without the library's `signals` feature the examples stop
/// as signals' default effect has them.
#[cfg(feature = "signals")]
fn stop_on_signals(builder: Builder) -> Builder {
    builder.stop_on_signals()
}

#[cfg(not(feature = "signals"))]
fn stop_on_signals(builder: Builder) -> Builder {
    builder
}

/// Parses the process's arguments. Prints the usage and exits 0 on `--help`; prints a one-line
/// message and the usage to stderr and exits 2 on a bad argument.
pub fn parse_args(example: &'static Example) -> Args {
    match parse(example, std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            let mut out = io::stdout().lock();
            let _ = out.write_all(usage(example).as_bytes());
            let _ = out.flush();
            process::exit(0);
        }
        Err(message) => exit_with_usage_error(example, &message),
    }
}

fn exit_with_usage_error(example: &Example, message: &str) -> ! {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{}: {message}", example.name);
    let _ = err.write_all(usage(example).as_bytes());
    process::exit(2);
}

/// The usage text, ending in a newline.
fn usage(example: &Example) -> String {
    let synopsis: String = example
        .options
        .iter()
        .map(|option| format!(" [{} {}]", option.name, option.value))
        .collect();
    let options: String = example
        .options
        .iter()
        .map(|option| {
            let flag = format!("{} {}", option.name, option.value);
            format!("  {flag:<17} {}\n", option.help)
        })
        .collect();
    let (mode_synopsis, mode_options) = mode_usage(example);
    format!(
        "usage: {name} [--addr HOST:PORT] [--systemd] [--mode MODE]{mode_synopsis} [--grace SECS]{synopsis}\n\
         \n\
         {about}\n\
         \n\
         options:\n\
         \x20 --addr HOST:PORT  address to listen on (default {addr}; port 0 picks a free port)\n\
         \x20 --systemd         serve the socket systemd passed (socket activation, LISTEN_FDS)\n\
         \x20                   instead of binding --addr\n\
         {mode_options}\
         \x20 --grace SECS      on SIGTERM or SIGINT, stop taking requests and let running ones\n\
         \x20                   finish for up to SECS seconds, then exit (default 30); a second\n\
         \x20                   signal, or SIGQUIT, stops at once\n\
         {options}\
         \x20 --help            print this help\n",
        name = example.name,
        about = example.about,
        addr = example.default_addr,
    )
}

/// The usage of `--mode` and of the options of the modes the example offers: the synopsis part
/// after `[--mode MODE]`, and the lines for the options list.
fn mode_usage(example: &Example) -> (String, String) {
    let offers = |mode| example.modes.contains(&mode);
    let mut synopsis = String::new();
    let mut lines = if example.modes.len() == 1 {
        format!(
            "  --mode MODE       {} only: the one mode it has\n",
            example.default_mode.as_str()
        )
    } else {
        format!(
            "  --mode MODE       {} (default {})\n",
            mode_list(example.modes, "or"),
            example.default_mode.as_str()
        )
    };
    let pool = "worker threads with --mode pool (default: 4 per CPU core)";
    let prefork = "worker processes with --mode prefork (default: 1 per CPU core)";
    match (offers(ModeName::Pool), offers(ModeName::Prefork)) {
        (true, true) => lines.push_str(&format!(
            "  --workers N       {pool}, or\n                    {prefork}\n"
        )),
        (true, false) => lines.push_str(&format!("  --workers N       {pool}\n")),
        (false, true) => lines.push_str(&format!("  --workers N       {prefork}\n")),
        (false, false) => {}
    }
    if offers(ModeName::Pool) || offers(ModeName::Prefork) {
        synopsis.push_str(" [--workers N]");
    }
    if offers(ModeName::Threading) {
        synopsis.push_str(" [--max-threads N]");
        lines.push_str(
            "  --max-threads N   most handler threads at once with --mode threading (default: no cap)\n",
        );
    }
    if offers(ModeName::Process) {
        synopsis.push_str(" [--max-children N]");
        lines.push_str(
            "  --max-children N  most child processes at once with --mode process (default 40)\n",
        );
    }
    (synopsis, lines)
}

/// `single, threading or pool`, with `last` ("or", "and") before the last mode.
fn mode_list(modes: &[ModeName], last: &str) -> String {
    let names: Vec<&str> = modes.iter().map(|mode| mode.as_str()).collect();
    match names.split_last() {
        Some((final_name, [])) => final_name.to_string(),
        Some((final_name, rest)) => format!("{} {last} {final_name}", rest.join(", ")),
        None => String::new(),
    }
}

/// The modes an option of some modes only applies to (`--workers`: pool and prefork), or `None`
/// for an option that is not such.
fn modes_of_option(name: &str) -> Option<&'static [ModeName]> {
    match name {
        "--workers" => Some(&[ModeName::Pool, ModeName::Prefork]),
        "--max-threads" => Some(&[ModeName::Threading]),
        "--max-children" => Some(&[ModeName::Process]),
        _ => None,
    }
}

/// `Ok(None)` means `--help`.
fn parse(
    example: &'static Example,
    args: impl IntoIterator<Item = String>,
) -> Result<Option<Args>, String> {
    debug_assert!(
        example.modes.contains(&example.default_mode),
        "{}: the default mode is not among its modes",
        example.name
    );
    let mut addr = example.default_addr.to_string();
    let mut mode = example.default_mode;
    let mut systemd = false;
    let mut workers = None;
    let mut max_threads = None;
    let mut max_children = None;
    let mut grace = None;
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
        if arg == "--systemd" {
            systemd = true;
            continue;
        }
        let extra_option = example.options.iter().find(|option| option.name == name);
        // `--workers` and the like exist only where one of their modes is offered.
        let common_option = match modes_of_option(&name) {
            Some(modes) => modes.iter().any(|mode| example.modes.contains(mode)),
            None => matches!(name.as_str(), "--addr" | "--mode" | "--grace"),
        };
        if extra_option.is_none() && !common_option {
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
                mode = match ModeName::parse(&value) {
                    Some(mode) if example.modes.contains(&mode) => mode,
                    Some(_) => {
                        return Err(format!(
                            "invalid value '{value}' for --mode ({} runs in {} mode only)",
                            example.name,
                            mode_list(example.modes, "or")
                        ))
                    }
                    None => {
                        return Err(format!(
                            "invalid value '{value}' for --mode (expected {})",
                            mode_list(example.modes, "or")
                        ))
                    }
                }
            }
            "--workers" => workers = Some(positive(&name, &value)?),
            "--max-children" => max_children = Some(positive(&name, &value)?),
            "--grace" => grace = Some(seconds(&name, &value)?),
            _ => max_threads = Some(positive(&name, &value)?),
        }
    }

    for (name, given) in [
        ("--workers", workers.is_some()),
        ("--max-threads", max_threads.is_some()),
        ("--max-children", max_children.is_some()),
    ] {
        let applies_to = modes_of_option(name).unwrap_or_default();
        if given && !applies_to.contains(&mode) {
            let offered: Vec<ModeName> = applies_to
                .iter()
                .copied()
                .filter(|m| example.modes.contains(m))
                .collect();
            return Err(format!(
                "{name} applies to --mode {} only (the mode is {})",
                mode_list(&offered, "and"),
                mode.as_str()
            ));
        }
    }
    Ok(Some(Args {
        addr,
        mode,
        systemd,
        example,
        workers,
        max_threads,
        max_children,
        grace,
        extra: extra_values,
    }))
}

/// Checks that `value` looks like `HOST:PORT` (`[::1]:8080` for IPv6). Whether the host resolves
/// is found out when the address is used. Also the `client` example's check of its `--addr`.
pub fn check_addr(value: &str) -> Result<String, String> {
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

/// A number of seconds, whole or not, at least 0.
fn seconds(name: &str, value: &str) -> Result<Duration, String> {
    value
        .parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| {
            format!("invalid value '{value}' for {name} (expected a number of seconds, such as 30)")
        })
}

/// Sends log lines to stderr, at level `info` unless `RUST_LOG` says otherwise.
pub fn init_logging() {
    init_logging_at("info");
}

/// Sends log lines to stderr, at `default_level` unless `RUST_LOG` says otherwise, and keeps
/// handler panics off stderr but for the server's throttled report of them (a peer that makes a
/// handler panic must not flood the log). rustls logs only its errors by default: it warns, once
/// per handshake and unthrottled, of a `ClientHello` naming an IP address (wrk does), which a
/// peer could use to flood the log; the server reports failed handshakes itself.
pub fn init_logging_at(default_level: &str) {
    let filter = format!("{default_level},rustls=error");
    let env = env_logger::Env::default().default_filter_or(filter);
    // `try_init` rather than `init`: it fails instead of panicking if a logger is already set.
    let _ = env_logger::Builder::from_env(env)
        .target(env_logger::Target::Stderr)
        .try_init();
    socketserver::quiet_handler_panics();
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

/// Serves the TCP `handler` at `--addr` in the `--mode` chosen, with the options already set on
/// `builder` (start from [`Args::builder`]), until the server is shut down. With `--systemd`, the
/// first socket systemd passed is served instead: TCP or Unix stream, as the `.socket` unit says.
pub fn serve_tcp<H>(args: &Args, builder: Builder, handler: H) -> io::Result<()>
where
    H: RequestHandler<StreamRequest> + Clone,
{
    let builder = args.stream_limits(builder)?.mode(args.any_mode(true));
    if !args.systemd {
        return serve(builder.bind_tcp(args.addr.as_str(), handler)?);
    }
    if systemd::is_unix(0)? {
        serve(builder.systemd_unix_stream(0, handler)?)
    } else {
        serve(builder.systemd_tcp(0, handler)?)
    }
}

/// [`serve_tcp`] for a UDP `handler`; with `--systemd`, UDP or Unix datagram.
pub fn serve_udp<H>(args: &Args, builder: Builder, handler: H) -> io::Result<()>
where
    H: RequestHandler<DatagramRequest> + Clone,
{
    let builder = builder.mode(args.any_mode(false));
    if !args.systemd {
        return serve(builder.bind_udp(args.addr.as_str(), handler)?);
    }
    if systemd::is_unix(0)? {
        serve(builder.systemd_unix_datagram(0, handler)?)
    } else {
        serve(builder.systemd_udp(0, handler)?)
    }
}

/// Serves a message server (`--api message`): `framer` cuts each connection's bytes into messages
/// and clones of `handler` answer them, behind the library's event loop, at `--addr` (or with
/// `--systemd`, on the socket systemd passed), in `--mode single` (handlers on the loop), `pool`
/// (on `--workers` threads) or `prefork` (`--workers` processes, each with its own loop), with the
/// stream limits, [`MESSAGE_TIMEOUT`] and [`LOOPS`] event loops.
#[cfg(feature = "message")]
pub fn serve_messages<F, H>(args: &Args, builder: Builder, framer: F, handler: H) -> io::Result<()>
where
    F: socketserver::message::Framer,
    H: socketserver::message::MessageHandler,
{
    serve_messages_timed(args, builder, framer, handler, None)
}

/// [`serve_messages`] with a message timeout of the example's own (`--message-timeout` still
/// overrides it); `None`: the library's default.
#[cfg(feature = "message")]
pub fn serve_messages_timed<F, H>(
    args: &Args,
    builder: Builder,
    framer: F,
    handler: H,
    timeout: Option<Duration>,
) -> io::Result<()>
where
    F: socketserver::message::Framer,
    H: socketserver::message::MessageHandler,
{
    let builder = args.stream_limits(builder)?;
    let timeout = args
        .value(MESSAGE_TIMEOUT.name)
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs)
        .or(timeout);
    let mode = match args.mode {
        // Each worker process runs its own loop, its handlers on it.
        ModeName::Prefork => Prefork::new(args.prefork(false).workers()).into(),
        ModeName::Single | ModeName::Pool => args.any_mode(true),
        ModeName::Threading | ModeName::Process => args.usage_error(
            "--api message runs in --mode single, pool or prefork (an event loop instead of a thread or process per connection)",
        ),
    };
    let loops = args.parsed(LOOPS.name, 1);
    if loops != 1 && args.mode == ModeName::Pool {
        args.usage_error(
            "--loops runs the handlers on several event loops: with --mode single or prefork, not pool",
        );
    }
    let mut messages = builder.mode(mode).messages(framer, handler).loops(loops);
    if let Some(timeout) = timeout {
        messages = messages.message_timeout(timeout);
    }
    if !args.systemd {
        return serve_message_server(messages.bind_tcp(args.addr.as_str())?);
    }
    if systemd::is_unix(0)? {
        serve_message_server(messages.systemd_unix_stream(0)?)
    } else {
        serve_message_server(messages.systemd_tcp(0)?)
    }
}

#[cfg(feature = "message")]
fn serve_message_server<T, H, F>(
    mut server: socketserver::message::MessageServer<T, H, F>,
) -> io::Result<()>
where
    T: Transport<Request = StreamRequest>,
    H: socketserver::message::MessageHandler,
    F: socketserver::message::Framer,
{
    if !socketserver::is_worker() {
        announce(server.local_addr())?;
        announce_metrics(&server.handle())?;
    }
    server.serve_forever()?;
    server.server_close()
}

/// Announces the server's address, serves until shut down, then closes the server.
///
/// In a child process of the `process` and `prefork` modes (which run `main` again) the address is
/// not announced: the parent did that, and the child shares its stdout.
fn serve<T, H, M>(mut server: Server<T, H, M>) -> io::Result<()>
where
    T: Transport,
    H: RequestHandler<T::Request> + Clone,
    M: Mode,
{
    if !socketserver::is_worker() {
        announce(server.local_addr())?;
        announce_metrics(&server.handle())?;
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
