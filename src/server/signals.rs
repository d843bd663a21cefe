//! Stopping on SIGTERM, SIGINT and SIGQUIT ([`Builder::stop_on_signals`](crate::Builder::stop_on_signals)).
//!
//! `signal-hook`'s handlers only write to its self-pipe; a small relay thread reads the signals
//! from there and turns them into the same requests `shutdown` and `stop_now` make, which the
//! serving thread acts on. Keeping the relay separate from the serving loop means a stop still
//! reaches a loop that is blocked waiting for pool or thread capacity. In a
//! [`Prefork`](crate::Prefork) parent it also relays SIGHUP (rolling reload), SIGTTIN / SIGTTOU
//! (one worker more / fewer) and SIGUSR2 (binary upgrade) to the supervisor.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR2};
use signal_hook::iterator::{Handle, Signals};

use crate::control::ServerHandle;

/// The signals a graceful stop listens to.
const STOP_SIGNALS: [i32; 3] = [SIGTERM, SIGINT, SIGQUIT];
/// The signals a prefork parent also listens to.
const PREFORK_SIGNALS: [i32; 4] = [SIGHUP, SIGTTIN, SIGTTOU, SIGUSR2];

/// What SIGHUP reloads: a TLS server's certificates.
#[cfg(feature = "tls")]
pub(crate) type Reload = crate::tls::Tls;
/// What SIGHUP reloads: nothing without TLS.
#[cfg(not(feature = "tls"))]
pub(crate) type Reload = std::convert::Infallible;

fn reload_on_hup(_reload: Option<&Reload>) {
    #[cfg(feature = "tls")]
    if let Some(tls) = _reload {
        log::info!("SIGHUP: reloading the TLS certificates");
        tls.reload_or_log();
    }
}

/// Passes stop signals to one server for as long as it lives.
pub(crate) struct SignalRelay {
    handle: Handle,
}

impl SignalRelay {
    /// Installs the handlers and starts the relay thread for `server`. In a per-request child
    /// (`child`) the signals only tell the handler, through `is_shutting_down`, that the server
    /// is stopping: the parent decides when the request is cut off (a terminal's Ctrl-C and
    /// systemd's stop reach every process of the group, and the parent passes its stop on).
    /// A `prefork_parent` relays [`PREFORK_SIGNALS`] too.
    /// With `reload` (a TLS server's certificates), SIGHUP reloads them.
    pub(crate) fn start(
        server: ServerHandle,
        child: bool,
        prefork_parent: bool,
        reload: Option<Reload>,
    ) -> io::Result<SignalRelay> {
        let extra: &[i32] = if prefork_parent {
            &PREFORK_SIGNALS
        } else if reload.is_some() {
            &[SIGHUP]
        } else {
            &[]
        };
        let mut signals = Signals::new(STOP_SIGNALS.iter().chain(extra)).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot install handlers for the stop (and prefork) signals: {e}"),
            )
        })?;
        let handle = signals.handle();
        Defaults::get().armed();
        let spawned = std::thread::Builder::new()
            .name("socketserver-signals".to_string())
            .spawn(move || {
                let mut stops = 0;
                for signal in signals.forever() {
                    if signal == SIGHUP && !prefork_parent {
                        reload_on_hup(reload.as_ref());
                        continue;
                    }
                    relay(&server, signal, &mut stops, child);
                }
            });
        if let Err(e) = spawned {
            handle.close();
            Defaults::get().disarmed();
            return Err(io::Error::new(
                e.kind(),
                format!("cannot start the thread that relays stop signals: {e}"),
            ));
        }
        Ok(SignalRelay { handle })
    }
}

impl Drop for SignalRelay {
    fn drop(&mut self) {
        self.handle.close();
        Defaults::get().disarmed();
    }
}

/// signal-hook leaves its handler installed once no action remains, which would make the stop
/// signals do nothing at all once every server is gone. So while no server is armed, an action
/// registered once gives them their default effect (ending the process) back.
struct Defaults {
    /// How many servers have their relay running.
    armed: Mutex<usize>,
    /// Whether the signals have their default effect: no server is armed.
    idle: Arc<AtomicBool>,
}

impl Defaults {
    fn get() -> &'static Defaults {
        static DEFAULTS: OnceLock<Defaults> = OnceLock::new();
        DEFAULTS.get_or_init(|| {
            let idle = Arc::new(AtomicBool::new(false));
            for signal in STOP_SIGNALS {
                if let Err(e) =
                    signal_hook::flag::register_conditional_default(signal, idle.clone())
                {
                    log::debug!("cannot keep the default action of {}: {e}", name(signal));
                }
            }
            Defaults {
                armed: Mutex::new(0),
                idle,
            }
        })
    }

    fn armed(&self) {
        let mut armed = self.armed.lock().unwrap_or_else(PoisonError::into_inner);
        *armed += 1;
        self.idle.store(false, Ordering::SeqCst);
    }

    fn disarmed(&self) {
        let mut armed = self.armed.lock().unwrap_or_else(PoisonError::into_inner);
        *armed = armed.saturating_sub(1);
        self.idle.store(*armed == 0, Ordering::SeqCst);
    }
}

/// What one signal does: the first SIGTERM or SIGINT starts a graceful stop, a second one or a
/// SIGQUIT stops at once, and any signal after that ends the process.
fn relay(server: &ServerHandle, signal: i32, stops: &mut u32, child: bool) {
    let shared = &server.shared;
    let name = name(signal);
    if PREFORK_SIGNALS.contains(&signal) {
        let requests = &shared.prefork;
        match signal {
            SIGTTIN => {
                requests.more.fetch_add(1, Ordering::AcqRel);
            }
            SIGTTOU => {
                requests.fewer.fetch_add(1, Ordering::AcqRel);
            }
            SIGHUP => requests.reload.store(true, Ordering::Release),
            _ => requests.upgrade.store(true, Ordering::Release),
        }
        log::info!("{name}: passed to the prefork supervisor");
        return;
    }
    if child {
        log::debug!(
            "{name}: child {} tells its handler the server is stopping",
            std::process::id()
        );
        shared.stop.request();
        return;
    }
    if shared.abort.is_requested() {
        log::error!("{name} while already stopping at once: exiting now");
        std::process::exit(128 + signal);
    }
    *stops += 1;
    // Each line is logged before the request it announces: once the request is made, the
    // serving thread may finish the stop and end the process before this thread logs anything.
    if signal == SIGQUIT || *stops > 1 {
        if !shared.abort.is_requested() {
            log::warn!(
                "{name}: stopping server on {} at once; {} request(s) running",
                shared.local,
                shared.counters.active()
            );
        }
        shared.abort(format!("{name} arrived"));
        return;
    }
    if !shared.stop.is_requested() {
        let grace = shared.grace.map_or("no grace period".to_string(), |g| {
            format!("grace period {g:?}")
        });
        log::info!(
            "{name}: stopping server on {} gracefully ({grace}, {} request(s) running); \
             send SIGINT or SIGTERM again, or SIGQUIT, to stop at once",
            shared.local,
            shared.counters.active()
        );
    }
    shared.stop.request();
}

fn name(signal: i32) -> &'static str {
    match signal {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        SIGQUIT => "SIGQUIT",
        SIGHUP => "SIGHUP",
        SIGTTIN => "SIGTTIN",
        SIGTTOU => "SIGTTOU",
        SIGUSR2 => "SIGUSR2",
        _ => "signal",
    }
}
