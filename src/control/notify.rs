//! Readiness notification (`sd_notify(3)`): short `KEY=VALUE` datagrams to the Unix socket named in
//! `NOTIFY_SOCKET`, and the watchdog that `WATCHDOG_USEC` / `WATCHDOG_PID` ask for.

use std::io;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::stats::Stats;

/// How often the `STATUS=` line is refreshed (when it changed) between watchdog pings.
const STATUS_INTERVAL: Duration = Duration::from_secs(5);

/// Where `NOTIFY_SOCKET` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotifyAddr {
    /// An absolute path of a socket file.
    Path(PathBuf),
    /// A Linux abstract-namespace name (written `@name`), without the `@`.
    Abstract(Vec<u8>),
}

impl NotifyAddr {
    /// Parses `NOTIFY_SOCKET` as systemd does: an absolute path, or `@` and an abstract name.
    pub(crate) fn parse(value: &str) -> Result<NotifyAddr, String> {
        if let Some(name) = value.strip_prefix('@') {
            if name.is_empty() {
                return Err("NOTIFY_SOCKET is \"@\": an abstract socket needs a name".to_string());
            }
            return Ok(NotifyAddr::Abstract(name.as_bytes().to_vec()));
        }
        if value.starts_with('/') {
            return Ok(NotifyAddr::Path(PathBuf::from(value)));
        }
        Err(format!(
            "NOTIFY_SOCKET is {value:?}: expected an absolute socket path or @abstract-name"
        ))
    }

    fn to_unix_addr(&self) -> io::Result<UnixAddr> {
        match self {
            NotifyAddr::Path(path) => UnixAddr::from_pathname(path),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            NotifyAddr::Abstract(name) => {
                #[cfg(target_os = "android")]
                use std::os::android::net::SocketAddrExt;
                #[cfg(target_os = "linux")]
                use std::os::linux::net::SocketAddrExt;
                UnixAddr::from_abstract_name(name)
            }
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            NotifyAddr::Abstract(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "abstract-namespace sockets (NOTIFY_SOCKET=@name) exist on Linux only",
            )),
        }
    }
}

/// The watchdog interval asked for, if it is meant for process `me` (`sd_watchdog_enabled`):
/// `WATCHDOG_USEC` microseconds, and `WATCHDOG_PID` either unset or `me`.
pub(crate) fn watchdog_interval(
    usec: Option<&str>,
    pid: Option<&str>,
    me: u32,
) -> Result<Option<Duration>, String> {
    let Some(usec) = usec else {
        return Ok(None);
    };
    if let Some(pid) = pid {
        match pid.trim().parse::<u32>() {
            Ok(pid) if pid == me => {}
            Ok(_) => return Ok(None), // for another process (we were started by a wrapper)
            Err(_) => return Err(format!("WATCHDOG_PID is {pid:?}, not a process id")),
        }
    }
    match usec.trim().parse::<u64>() {
        Ok(0) | Err(_) => Err(format!(
            "WATCHDOG_USEC is {usec:?}: expected a positive number of microseconds"
        )),
        Ok(usec) => Ok(Some(Duration::from_micros(usec))),
    }
}

/// What the environment asked for, read once per process.
struct NotifyEnv {
    addr: Option<NotifyAddr>,
    watchdog: Option<Duration>,
}

fn notify_env() -> &'static NotifyEnv {
    static ENV: OnceLock<NotifyEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        let var = |name| std::env::var(name).ok();
        let addr = var("NOTIFY_SOCKET").and_then(|value| {
            NotifyAddr::parse(&value)
                .map_err(|why| log::warn!("{why}; not notifying the service manager"))
                .ok()
        });
        let watchdog = watchdog_interval(
            var("WATCHDOG_USEC").as_deref(),
            var("WATCHDOG_PID").as_deref(),
            std::process::id(),
        )
        .unwrap_or_else(|why| {
            log::warn!("{why}; not sending watchdog pings");
            None
        });
        // Kept here; programs this one starts (handlers' commands, worker processes) must not
        // report to the service manager as if they were the service.
        for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
            std::env::remove_var(name);
        }
        NotifyEnv { addr, watchdog }
    })
}

/// A server's line to the service manager. Every send is non-blocking and best effort: a full or
/// vanished notification socket is logged, never an error for the server.
#[derive(Debug)]
pub(crate) struct Notifier {
    socket: UnixDatagram,
    target: String,
    /// What the status line says the server is: "TCP server on 127.0.0.1:8080 (pool mode)".
    label: String,
    watchdog: Option<Duration>,
    schedule: Mutex<Schedule>,
    stopping: AtomicBool,
    /// Whether `READY=1` must wait, and for which old program (see [`hold_ready_while`]).
    ///
    /// [`hold_ready_while`]: Self::hold_ready_while
    hold_ready: fn() -> Option<u32>,
}

#[derive(Debug)]
struct Schedule {
    last_ping: Instant,
    last_status: Instant,
    status: String,
}

impl Notifier {
    /// The notifier the environment asks for, or `None` when `NOTIFY_SOCKET` is not set (or its
    /// socket cannot be reached, which is logged).
    pub(crate) fn from_env() -> Option<Notifier> {
        let env = notify_env();
        let addr = env.addr.as_ref()?;
        Notifier::connect(addr, env.watchdog)
            .map_err(|e| log::warn!("cannot reach NOTIFY_SOCKET: {e}; not notifying"))
            .ok()
    }

    pub(crate) fn connect(addr: &NotifyAddr, watchdog: Option<Duration>) -> io::Result<Notifier> {
        let target = match addr {
            NotifyAddr::Path(path) => path.display().to_string(),
            NotifyAddr::Abstract(name) => format!("@{}", String::from_utf8_lossy(name)),
        };
        let socket = UnixDatagram::unbound()?;
        socket.connect_addr(&addr.to_unix_addr()?)?;
        // The serving loop must never wait for the service manager.
        socket.set_nonblocking(true)?;
        let now = Instant::now();
        Ok(Notifier {
            socket,
            target,
            label: String::new(),
            watchdog,
            schedule: Mutex::new(Schedule {
                last_ping: now,
                last_status: now,
                status: String::new(),
            }),
            stopping: AtomicBool::new(false),
            hold_ready: || None,
        })
    }

    /// Holds `READY=1` back while `waiting` names a program: the old program of a binary upgrade
    /// (its pid), which stops as soon as this one reports ready, so this one must not before it
    /// serves the socket it inherited.
    pub(crate) fn hold_ready_while(mut self, waiting: fn() -> Option<u32>) -> Notifier {
        self.hold_ready = waiting;
        self
    }

    /// Names the server in status lines.
    pub(crate) fn with_label(mut self, label: String) -> Notifier {
        self.label = label;
        self
    }

    /// The `STATUS=` text for `stats`.
    pub(crate) fn status(&self, stats: &Stats) -> String {
        format!(
            "{}: {} active, {} completed, {} failed, {} rejected",
            self.label, stats.active, stats.completed, stats.failed, stats.rejected
        )
    }

    /// How long the serving loop may sleep between [`tick`](Self::tick)s: half the watchdog
    /// interval (as `sd_watchdog_enabled(3)` advises), or the status refresh interval.
    pub(crate) fn interval(&self) -> Duration {
        self.watchdog
            .map_or(STATUS_INTERVAL, |w| (w / 2).min(STATUS_INTERVAL))
            .max(Duration::from_millis(1))
    }

    /// Sends one message of `KEY=VALUE` lines.
    pub(crate) fn send(&self, lines: &[String]) {
        let message = lines.join("\n");
        match self.socket.send(message.as_bytes()) {
            Ok(_) => log::debug!("notified {}: {}", self.target, message.replace('\n', " ")),
            Err(e) => log::warn!(
                "cannot notify the service manager at {} ({}): {e}",
                self.target,
                message.replace('\n', " ")
            ),
        }
    }

    /// `READY=1`, with the status — except in a program started by a binary upgrade that has not
    /// yet built the server for the socket it inherited: there `READY=1` is what stops the old
    /// program, which must go on serving until this one serves its socket.
    pub(crate) fn ready(&self, status: String) {
        if let Some(parent) = (self.hold_ready)() {
            log::warn!(
                "not reporting READY=1 yet: this program was started by a binary upgrade (SIGUSR2 \
                 to process {parent}), and no Prefork server serves the socket it inherited (a \
                 server in another mode binds an address of its own); the old program goes on \
                 serving, and gives the upgrade up if none does"
            );
            return;
        }
        let mut schedule = self.lock();
        let now = Instant::now();
        schedule.last_ping = now;
        schedule.last_status = now;
        let mut lines = vec!["READY=1".to_string(), format!("STATUS={status}")];
        if self.watchdog.is_some() {
            lines.push("WATCHDOG=1".to_string());
        }
        schedule.status = status;
        self.send(&lines);
    }

    /// `STOPPING=1`, with the final status; sent once however many paths report the stop.
    pub(crate) fn stopping(&self, status: String) {
        if self.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        self.send(&["STOPPING=1".to_string(), format!("STATUS={status}")]);
    }

    /// `RELOADING=1` with the `MONOTONIC_USEC=` that systemd 253+ requires beside it.
    pub(crate) fn reloading(&self) {
        let mut lines = vec!["RELOADING=1".to_string()];
        if let Some(usec) = monotonic_usec() {
            lines.push(format!("MONOTONIC_USEC={usec}"));
        }
        self.send(&lines);
    }

    /// Called on every wake-up of the serving loop: the watchdog ping when half its interval has
    /// passed, and the status when it changed and is due (or rides along with a ping).
    pub(crate) fn tick(&self, status: impl FnOnce() -> String) {
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        let mut schedule = self.lock();
        let now = Instant::now();
        let ping = self
            .watchdog
            .is_some_and(|w| now.duration_since(schedule.last_ping) >= w / 2);
        let status_due = ping || now.duration_since(schedule.last_status) >= STATUS_INTERVAL;
        let mut lines = Vec::new();
        if ping {
            schedule.last_ping = now;
            lines.push("WATCHDOG=1".to_string());
        }
        if status_due {
            let status = status();
            schedule.last_status = now;
            if status != schedule.status {
                lines.push(format!("STATUS={status}"));
                schedule.status = status;
            }
        }
        if !lines.is_empty() {
            self.send(&lines);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares `MONOTONIC_USEC` with.
fn monotonic_usec() -> Option<u64> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the current time into `now`.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0 {
        return None;
    }
    let secs = u64::try_from(now.tv_sec).ok()?;
    let micros = u64::try_from(now.tv_nsec).ok()? / 1_000;
    Some(secs.saturating_mul(1_000_000).saturating_add(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_socket_is_a_path_or_an_abstract_name() {
        assert_eq!(
            NotifyAddr::parse("/run/systemd/notify"),
            Ok(NotifyAddr::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            NotifyAddr::parse("@/org/freedesktop/systemd1/notify/123"),
            Ok(NotifyAddr::Abstract(
                b"/org/freedesktop/systemd1/notify/123".to_vec()
            ))
        );
        for bad in ["", "@", "relative/notify", "vsock:2:1234"] {
            assert!(NotifyAddr::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_watchdog_applies_to_this_process_only() {
        let ms = |n| Ok(Some(Duration::from_millis(n)));
        assert_eq!(watchdog_interval(Some("30000000"), None, 7), ms(30_000));
        assert_eq!(watchdog_interval(Some("200000"), Some("7"), 7), ms(200));
        assert_eq!(watchdog_interval(Some("200000"), Some("8"), 7), Ok(None));
        assert_eq!(watchdog_interval(None, Some("7"), 7), Ok(None));
        assert!(watchdog_interval(Some("0"), None, 7).is_err());
        assert!(watchdog_interval(Some("soon"), None, 7).is_err());
        assert!(watchdog_interval(Some("1"), Some("me"), 7).is_err());
    }

    fn listener(dir: &str) -> (UnixDatagram, PathBuf) {
        let dir = std::env::temp_dir().join(format!("{dir}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (socket, path)
    }

    fn next(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn messages_arrive_in_order_and_stopping_is_sent_once() {
        let (manager, path) = listener("socketserver-notify-order");
        let notifier = Notifier::connect(&NotifyAddr::Path(path.clone()), None).unwrap();
        let stats = Stats {
            completed: 2,
            ..Stats::default()
        };
        let notifier = notifier.with_label("TCP server on 127.0.0.1:1 (pool mode)".to_string());
        assert_eq!(
            notifier.status(&stats),
            "TCP server on 127.0.0.1:1 (pool mode): 0 active, 2 completed, 0 failed, 0 rejected"
        );
        notifier.ready("idle".to_string());
        notifier.reloading();
        notifier.stopping("done".to_string());
        notifier.stopping("again".to_string());
        notifier.tick(|| "after stopping".to_string());
        assert_eq!(next(&manager), "READY=1\nSTATUS=idle");
        let reloading = next(&manager);
        assert!(
            reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
            "{reloading}"
        );
        assert_eq!(next(&manager), "STOPPING=1\nSTATUS=done");
        manager.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        assert!(manager.recv(&mut buf).is_err(), "nothing after STOPPING");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn watchdog_pings_come_at_half_the_interval_with_changed_status() {
        let (manager, path) = listener("socketserver-notify-watchdog");
        let watchdog = Duration::from_millis(400);
        let notifier = Notifier::connect(&NotifyAddr::Path(path.clone()), Some(watchdog)).unwrap();
        assert_eq!(notifier.interval(), Duration::from_millis(200));
        notifier.ready("0 served".to_string());
        assert_eq!(next(&manager), "READY=1\nSTATUS=0 served\nWATCHDOG=1");
        notifier.tick(|| unreachable!("nothing is due yet"));
        std::thread::sleep(Duration::from_millis(210));
        notifier.tick(|| "0 served".to_string());
        assert_eq!(
            next(&manager),
            "WATCHDOG=1",
            "an unchanged status is not resent"
        );
        std::thread::sleep(Duration::from_millis(210));
        notifier.tick(|| "1 served".to_string());
        assert_eq!(next(&manager), "WATCHDOG=1\nSTATUS=1 served");
        let _ = std::fs::remove_file(path);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_abstract_notify_socket_is_reached() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("socketserver-notify-test-{}", std::process::id());
        let manager =
            UnixDatagram::bind_addr(&UnixAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        manager
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let addr = NotifyAddr::parse(&format!("@{name}")).unwrap();
        let notifier = Notifier::connect(&addr, None).unwrap();
        notifier.stopping("bye".to_string());
        assert_eq!(next(&manager), "STOPPING=1\nSTATUS=bye");
    }
}
