//! Socket activation: the sockets a service manager passed in `LISTEN_FDS`, `LISTEN_PID` and
//! `LISTEN_FDNAMES` (`sd_listen_fds(3)`), checked against the server being built.

use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, RawFd};
use std::sync::{Mutex, OnceLock, PoisonError};

use socket2::{Domain, Socket, Type};

use crate::process::{decode_mark, inherited, UPGRADE_VAR};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`): after stdin, stdout and stderr.
const FIRST_FD: RawFd = 3;
/// More sockets than any unit passes; a larger `LISTEN_FDS` is a garbled variable.
const MAX_FDS: u32 = 4096;
const VARS: [&str; 3] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];

/// Which of the passed sockets to serve: by position (`0` is the first, descriptor 3) or by the
/// name the `.socket` unit gave it (`FileDescriptorName=`; `--fdname=` for
/// `systemd-socket-activate`). Written as a plain `0` or `"web"` wherever a `Select` is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    /// The socket at this position in `LISTEN_FDS` (`0`: descriptor 3).
    Index(usize),
    /// The socket of this name in `LISTEN_FDNAMES`.
    Name(String),
}

impl From<usize> for Select {
    fn from(index: usize) -> Self {
        Select::Index(index)
    }
}

impl From<&str> for Select {
    fn from(name: &str) -> Self {
        Select::Name(name.to_string())
    }
}

impl From<String> for Select {
    fn from(name: String) -> Self {
        Select::Name(name)
    }
}

impl fmt::Display for Select {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Select::Index(i) => write!(f, "socket #{i}"),
            Select::Name(name) => write!(f, "socket named {name:?}"),
        }
    }
}

/// The socket a server kind needs, for checking a passed one and for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    Tcp,
    Udp,
    UnixStream,
    UnixDatagram,
}

impl Want {
    fn ty(self) -> Type {
        match self {
            Want::Tcp | Want::UnixStream => Type::STREAM,
            Want::Udp | Want::UnixDatagram => Type::DGRAM,
        }
    }

    fn unix(self) -> bool {
        matches!(self, Want::UnixStream | Want::UnixDatagram)
    }

    fn method(self) -> &'static str {
        match self {
            Want::Tcp => "systemd_tcp",
            Want::Udp => "systemd_udp",
            Want::UnixStream => "systemd_unix_stream",
            Want::UnixDatagram => "systemd_unix_datagram",
        }
    }

    /// "a listening TCP socket", …: what a server of this kind serves.
    pub(super) fn noun(self) -> &'static str {
        match self {
            Want::Tcp => "a listening TCP socket",
            Want::Udp => "a UDP socket",
            Want::UnixStream => "a listening Unix stream socket",
            Want::UnixDatagram => "a Unix datagram socket",
        }
    }

    fn needs(self) -> &'static str {
        match self {
            Want::Tcp => {
                "a listening TCP socket (ListenStream=PORT or ADDR:PORT in the .socket unit)"
            }
            Want::Udp => "a UDP socket (ListenDatagram=PORT in the .socket unit)",
            Want::UnixStream => {
                "a listening Unix stream socket (ListenStream=/path in the .socket unit)"
            }
            Want::UnixDatagram => {
                "a Unix datagram socket (ListenDatagram=/path in the .socket unit)"
            }
        }
    }
}

/// One passed descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Passed {
    pub(crate) fd: RawFd,
    pub(crate) name: Option<String>,
}

/// Reads the three variables as `sd_listen_fds` does; `me` is this process's id. Pure, so it is
/// tested without touching the environment.
pub(crate) fn parse(
    pid: Option<&str>,
    fds: Option<&str>,
    names: Option<&str>,
    me: u32,
) -> Result<Vec<Passed>, String> {
    let Some(fds) = fds else {
        return Err(
            "this process was not socket-activated: LISTEN_FDS is not set (start it \
                    from a systemd .socket unit, or with `systemd-socket-activate -l ADDR \
                    PROGRAM`)"
                .to_string(),
        );
    };
    let Some(pid) = pid else {
        return Err(
            "LISTEN_FDS is set but LISTEN_PID is not, so the sockets cannot be known \
                    to be meant for this process"
                .to_string(),
        );
    };
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_PID is {pid:?}, not a process id"))?;
    if pid != me {
        return Err(format!(
            "LISTEN_PID is {pid} but this process is {me}: the sockets were passed to another \
             process (a wrapper script that starts this program without `exec`?)"
        ));
    }
    let count: u32 = fds
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_FDS is {fds:?}, not a number of sockets"))?;
    if count == 0 {
        return Err("LISTEN_FDS is 0: the service manager passed no socket".to_string());
    }
    if count > MAX_FDS {
        return Err(format!(
            "LISTEN_FDS is {count}, more sockets than any unit passes (at most {MAX_FDS})"
        ));
    }
    let names: Vec<Option<String>> = match names {
        None => vec![None; count as usize],
        Some(names) => {
            let names: Vec<Option<String>> = names
                .split(':')
                .map(|n| (!n.is_empty()).then(|| n.to_string()))
                .collect();
            if names.len() != count as usize {
                return Err(format!(
                    "LISTEN_FDNAMES names {} socket(s) but LISTEN_FDS is {count}",
                    names.len()
                ));
            }
            names
        }
    };
    Ok(names
        .into_iter()
        .zip(FIRST_FD..)
        .map(|(name, fd)| Passed { fd, name })
        .collect())
}

/// Finds the selected socket among `passed`; `Err` says which sockets there are.
pub(crate) fn find<'a>(passed: &'a [Passed], select: &Select) -> Result<&'a Passed, String> {
    let found = match select {
        Select::Index(i) => passed.get(*i),
        Select::Name(name) => passed.iter().find(|p| p.name.as_deref() == Some(name)),
    };
    found.ok_or_else(|| format!("{}, but there is no {select}", summary(passed)))
}

/// "`LISTEN_FDS` names 2 sockets (web, admin)".
fn summary(passed: &[Passed]) -> String {
    let names: Vec<&str> = passed
        .iter()
        .map(|p| p.name.as_deref().unwrap_or("unnamed"))
        .collect();
    let plural = if passed.len() == 1 { "" } else { "s" };
    format!(
        "LISTEN_FDS names {} socket{plural} ({})",
        passed.len(),
        names.join(", ")
    )
}

/// What a passed socket is, as far as choosing a server kind goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) ty: Type,
    pub(crate) unix: bool,
    pub(crate) inet: bool,
    pub(crate) listening: bool,
}

impl Shape {
    pub(crate) fn of(socket: &Socket) -> io::Result<Shape> {
        let ty = socket.r#type()?;
        let domain = socket.local_addr()?.domain();
        Ok(Shape {
            ty,
            unix: domain == Domain::UNIX,
            inet: domain == Domain::IPV4 || domain == Domain::IPV6,
            listening: ty == Type::STREAM && listening(socket)?,
        })
    }

    pub(super) fn fits(self, want: Want) -> bool {
        let family = if want.unix() { self.unix } else { self.inet };
        family && self.ty == want.ty() && (self.ty != Type::STREAM || self.listening)
    }

    /// "a UDP socket", "a connected TCP socket", …
    pub(super) fn describe(self) -> String {
        let family = match (self.unix, self.inet) {
            (true, _) => "Unix",
            (_, true) => "",
            _ => "non-IP, non-Unix",
        };
        let kind = match (self.ty, self.inet) {
            (Type::STREAM, true) => "TCP".to_string(),
            (Type::DGRAM, true) => "UDP".to_string(),
            (Type::STREAM, false) => format!("{family} stream"),
            (Type::DGRAM, false) => format!("{family} datagram"),
            (Type::SEQPACKET, _) => format!("{family} seqpacket").trim().to_string(),
            (other, _) => format!("{family} {other:?}").trim().to_string(),
        };
        let state = match (self.ty == Type::STREAM, self.listening) {
            (true, true) => "listening ",
            // `Accept=yes` passes one connection per service instance: not what a server serves.
            (true, false) => "connected (not listening; Accept=yes in the .socket unit?) ",
            (false, _) => "",
        };
        format!("a {state}{kind} socket")
    }
}

fn listening(socket: &Socket) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: reads one int-sized option into `value`, whose size `len` states.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(value != 0)
}

/// A program started by a binary upgrade (SIGUSR2 to a Prefork parent): which process started it,
/// and the listening socket it inherited (the one passed socket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Upgraded {
    pub(crate) parent: u32,
    pub(crate) fd: RawFd,
}

/// The passed sockets of this process, read from the environment once.
struct Activation {
    passed: Result<Vec<Passed>, String>,
    taken: Vec<RawFd>,
    upgraded: Option<Upgraded>,
}

static ACTIVATION: OnceLock<Mutex<Activation>> = OnceLock::new();

fn activation() -> &'static Mutex<Activation> {
    ACTIVATION.get_or_init(|| {
        let var = |name| std::env::var(name).ok();
        let passed = parse(
            var("LISTEN_PID").as_deref(),
            var("LISTEN_FDS").as_deref(),
            var("LISTEN_FDNAMES").as_deref(),
            std::process::id(),
        );
        // Before the descriptors are made close-on-exec below: inherited means not yet.
        let upgraded = var(UPGRADE_VAR).and_then(|value| {
            let upgraded = upgrade_mark(&value, &passed, inherited);
            if upgraded.is_none() {
                log::debug!("ignoring {UPGRADE_VAR}={value:?}: not addressed to this process");
            }
            upgraded
        });
        if let Ok(passed) = &passed {
            for p in passed {
                // Close-on-exec at once, taken or not, so no program this one runs inherits them.
                // SAFETY: F_SETFD only changes the descriptor's flags (EBADF if it is not open,
                // which `take` reports).
                unsafe { libc::fcntl(p.fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
            // Read once and kept here; a program this one starts must not take them as its own.
            // (This runs while the first server is built, normally before `main` starts threads.)
            for name in VARS.into_iter().chain([UPGRADE_VAR]) {
                std::env::remove_var(name);
            }
        }
        Mutex::new(Activation {
            passed,
            taken: Vec::new(),
            upgraded,
        })
    })
}

/// The upgrade mark `value`, if it is addressed to this process: well formed, and naming the one
/// passed socket (so `LISTEN_PID` is this process), which this process inherited (open without
/// close-on-exec, as `is_inherited` says) rather than opened itself.
fn upgrade_mark(
    value: &str,
    passed: &Result<Vec<Passed>, String>,
    is_inherited: impl Fn(RawFd) -> bool,
) -> Option<Upgraded> {
    let (parent, fd) = decode_mark(value)?;
    match passed.as_deref() {
        Ok([only]) if only.fd == fd && is_inherited(fd) => Some(Upgraded { parent, fd }),
        _ => None,
    }
}

/// The socket a binary upgrade passed this program, while no server has taken it. Reads the
/// environment only if it holds the upgrade mark (or was read already), so a program that was
/// not upgraded keeps its `LISTEN_*` variables until it asks for them.
pub(super) fn upgrade_unclaimed() -> Option<Upgraded> {
    if ACTIVATION.get().is_none() && std::env::var_os(UPGRADE_VAR).is_none() {
        return None;
    }
    let activation = activation().lock().unwrap_or_else(PoisonError::into_inner);
    activation
        .upgraded
        .filter(|upgraded| !activation.taken.contains(&upgraded.fd))
}

/// Takes the socket a binary upgrade passed this program, if no server has yet, once `check`
/// accepts it; `check`'s error leaves it untaken.
pub(super) fn take_upgraded(
    check: impl FnOnce(Upgraded, &Socket) -> io::Result<()>,
) -> io::Result<Option<Socket>> {
    let Some(upgraded) = upgrade_unclaimed() else {
        return Ok(None);
    };
    let mut activation = activation().lock().unwrap_or_else(PoisonError::into_inner);
    if activation.taken.contains(&upgraded.fd) {
        return Ok(None); // another thread's server took it meanwhile
    }
    // SAFETY: the descriptor was inherited for serving (the mark was checked against LISTEN_PID
    // and close-on-exec), and is handed out once (`taken`); `ManuallyDrop` keeps it open if
    // `check` refuses it.
    let socket = ManuallyDrop::new(unsafe { Socket::from_raw_fd(upgraded.fd) });
    check(upgraded, &socket)?;
    activation.taken.push(upgraded.fd);
    Ok(Some(ManuallyDrop::into_inner(socket)))
}

/// Takes the selected passed socket for a server of kind `want`, checking it fits.
pub(crate) fn take(select: &Select, want: Want) -> io::Result<Socket> {
    let mut activation = activation().lock().unwrap_or_else(PoisonError::into_inner);
    let method = want.method();
    let passed = activation
        .passed
        .as_ref()
        .map_err(|why| io::Error::new(io::ErrorKind::NotFound, format!("{method}: {why}")))?;
    let found = find(passed, select)
        .map_err(|why| io::Error::new(io::ErrorKind::NotFound, format!("{method}: {why}")))?;
    let fd = found.fd;
    let label = match &found.name {
        Some(name) => format!("fd {fd} ({name:?})"),
        None => format!("fd {fd}"),
    };
    let context = summary(passed);
    if activation.taken.contains(&fd) {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{method}: {context}; {label} is already served by another server"),
        ));
    }
    let needs = format!("{method} needs {}", want.needs());
    let shape = examine(passed, fd, &needs)
        .map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
    if !shape.fits(want) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{context}; {label} is {} but {method} needs {}",
                shape.describe(),
                want.needs()
            ),
        ));
    }
    activation.taken.push(fd);
    // SAFETY: `fd` was passed to this process for serving (LISTEN_PID matched), is an open
    // socket (checked above), and is handed out once (`taken`).
    Ok(unsafe { Socket::from_raw_fd(fd) })
}

/// The shape of the passed descriptor `fd`, one of `passed`; `Err` says, naming `LISTEN_FDS` and
/// the descriptor, why it is not a socket to serve: it is not open, or it is a pipe or a file
/// rather than a socket. `needs` says what was expected instead (`"systemd_tcp needs …"`).
fn examine(passed: &[Passed], fd: RawFd, needs: &str) -> Result<Shape, String> {
    let count = passed.len();
    let sent = match (passed.first(), passed.last()) {
        (Some(first), Some(last)) if count > 1 => {
            format!(
                "LISTEN_FDS={count} says descriptors {} to {} were passed",
                first.fd, last.fd
            )
        }
        _ => format!("LISTEN_FDS={count} says descriptor {fd} was passed"),
    };
    let kind = match file_kind(fd) {
        Ok(kind) => kind,
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => {
            return Err(format!(
                "{sent}, but descriptor {fd} is not open: whatever started this program set \
                 LISTEN_FDS without passing the sockets (a service manager passes them open; \
                 check for a wrapper that closes descriptors, or LISTEN_FDS set by hand)"
            ))
        }
        Err(e) => {
            return Err(format!(
                "{sent}, but descriptor {fd} cannot be examined: {e}"
            ))
        }
    };
    if kind != libc::S_IFSOCK {
        return Err(format!(
            "descriptor {fd} (from LISTEN_FDS) is {}, not a socket, but {needs}; ListenFIFO= \
             and ListenSpecial= pass pipes and files, which no server can serve",
            describe_file(kind)
        ));
    }
    borrowed_shape(fd)
        .map_err(|e| format!("descriptor {fd} (from LISTEN_FDS) is a socket, but {e}"))
}

/// The file type bits (`S_IFMT`) of the open descriptor `fd`.
fn file_kind(fd: RawFd) -> io::Result<libc::mode_t> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a whole `stat` into the buffer given, or fails (EBADF if `fd` is not
    // open) and writes nothing, which is then not read.
    if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded, so it filled the struct.
    Ok(unsafe { stat.assume_init() }.st_mode & libc::S_IFMT)
}

/// "a pipe (or FIFO)", "a regular file", …: what a descriptor that is not a socket is.
fn describe_file(kind: libc::mode_t) -> &'static str {
    match kind {
        libc::S_IFIFO => "a pipe (or FIFO)",
        libc::S_IFREG => "a regular file",
        libc::S_IFCHR => "a character device (such as /dev/null or a terminal)",
        libc::S_IFDIR => "a directory",
        libc::S_IFBLK => "a block device",
        libc::S_IFLNK => "a symbolic link",
        _ => "something other than a socket",
    }
}

/// The shape of a descriptor this process does not own (yet).
pub(super) fn borrowed_shape(fd: RawFd) -> io::Result<Shape> {
    // SAFETY: borrowed for the check only: `forget` below keeps the descriptor open.
    let socket = unsafe { Socket::from_raw_fd(fd) };
    let shape = Shape::of(&socket);
    std::mem::forget(socket);
    shape
}

/// Whether the selected passed socket is a Unix-domain one; see [`super::is_unix`].
pub(crate) fn is_unix(select: &Select) -> io::Result<bool> {
    let activation = activation().lock().unwrap_or_else(PoisonError::into_inner);
    let passed = activation
        .passed
        .as_ref()
        .map_err(|why| io::Error::new(io::ErrorKind::NotFound, why.clone()))?;
    let found = find(passed, select).map_err(|why| io::Error::new(io::ErrorKind::NotFound, why))?;
    let needs = "a server needs a socket (ListenStream= or ListenDatagram= in the .socket unit)";
    let shape = examine(passed, found.fd, needs)
        .map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
    Ok(shape.unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fds(passed: &[Passed]) -> Vec<(RawFd, Option<&str>)> {
        passed.iter().map(|p| (p.fd, p.name.as_deref())).collect()
    }

    #[test]
    fn sockets_are_numbered_from_3_and_named_in_order() {
        let passed = parse(Some("42"), Some("2"), Some("web:admin"), 42).unwrap();
        assert_eq!(fds(&passed), [(3, Some("web")), (4, Some("admin"))]);
        let passed = parse(Some("42"), Some("1"), None, 42).unwrap();
        assert_eq!(fds(&passed), [(3, None)]);
        let passed = parse(Some("42"), Some("3"), Some("a::c"), 42).unwrap();
        assert_eq!(fds(&passed), [(3, Some("a")), (4, None), (5, Some("c"))]);
    }

    #[test]
    fn variables_for_another_process_or_garbled_are_refused_with_the_reason() {
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>, &'a str);
        let cases: &[Case] = &[
            (None, None, None, "LISTEN_FDS is not set"),
            (None, Some("1"), None, "LISTEN_PID is not"),
            (
                Some("41"),
                Some("1"),
                None,
                "LISTEN_PID is 41 but this process is 42",
            ),
            (Some("x"), Some("1"), None, "not a process id"),
            (Some("42"), Some("two"), None, "not a number of sockets"),
            (Some("42"), Some("0"), None, "passed no socket"),
            (Some("42"), Some("-1"), None, "not a number of sockets"),
            (Some("42"), Some("99999"), None, "more sockets"),
            (
                Some("42"),
                Some("2"),
                Some("web"),
                "names 1 socket(s) but LISTEN_FDS is 2",
            ),
        ];
        for (pid, count, names, expected) in cases {
            let err = parse(*pid, *count, *names, 42).unwrap_err();
            assert!(err.contains(expected), "{pid:?} {count:?} {names:?}: {err}");
        }
    }

    #[test]
    fn a_socket_is_found_by_index_or_name_and_a_miss_lists_what_there_is() {
        let passed = parse(Some("1"), Some("2"), Some("web:admin"), 1).unwrap();
        assert_eq!(find(&passed, &0.into()).unwrap().fd, 3);
        assert_eq!(find(&passed, &"admin".into()).unwrap().fd, 4);
        let err = find(&passed, &"api".into()).unwrap_err();
        assert_eq!(
            err,
            "LISTEN_FDS names 2 sockets (web, admin), but there is no socket named \"api\""
        );
        let err = find(&passed, &Select::Index(2)).unwrap_err();
        assert!(err.ends_with("there is no socket #2"), "{err}");
    }

    #[test]
    fn the_shape_of_a_socket_decides_which_server_may_serve_it() {
        let tcp = Socket::from(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        let udp = Socket::from(std::net::UdpSocket::bind("[::1]:0").unwrap());
        let shape = Shape::of(&tcp).unwrap();
        assert!(shape.fits(Want::Tcp));
        assert!(!shape.fits(Want::Udp) && !shape.fits(Want::UnixStream));
        assert_eq!(shape.describe(), "a listening TCP socket");
        let shape = Shape::of(&udp).unwrap();
        assert!(shape.fits(Want::Udp), "IPv6 is as good as IPv4");
        assert!(!shape.fits(Want::Tcp));
        assert_eq!(shape.describe(), "a UDP socket");

        let connected = Socket::from(
            std::net::TcpStream::connect(tcp.local_addr().unwrap().as_socket().unwrap()).unwrap(),
        );
        let shape = Shape::of(&connected).unwrap();
        assert!(!shape.fits(Want::Tcp), "a connection is not a listener");
        assert!(
            shape.describe().contains("Accept=yes"),
            "{}",
            shape.describe()
        );

        let (a, _b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let shape = Shape::of(&Socket::from(a)).unwrap();
        assert!(shape.fits(Want::UnixDatagram) && !shape.fits(Want::Udp));
        assert_eq!(shape.describe(), "a Unix datagram socket");
        assert!(Want::Tcp.needs().contains("ListenStream="));
    }

    fn passed(fds: std::ops::Range<RawFd>) -> Vec<Passed> {
        fds.map(|fd| Passed { fd, name: None }).collect()
    }

    /// A descriptor number no file is open on (far above what the tests open).
    fn closed_fd() -> RawFd {
        // SAFETY: F_GETFD only reads a descriptor's flags, failing with EBADF if it is not open.
        (4000..)
            .find(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1)
            .unwrap()
    }

    #[test]
    fn a_passed_descriptor_that_is_not_open_is_named_with_what_listen_fds_said() {
        use std::os::fd::AsRawFd;
        let fd = closed_fd();
        let err = examine(&passed(fd..fd + 5), fd, "systemd_tcp needs …").unwrap_err();
        assert!(
            err.starts_with(&format!(
                "LISTEN_FDS=5 says descriptors {fd} to {} were passed, but descriptor {fd} is not \
                 open: whatever started this program set LISTEN_FDS without passing the sockets",
                fd + 4
            )),
            "{err}"
        );
        // One socket passed: the message speaks of that one descriptor.
        let err = examine(&passed(fd..fd + 1), fd, "").unwrap_err();
        assert!(
            err.starts_with(&format!(
                "LISTEN_FDS=1 says descriptor {fd} was passed, but descriptor {fd} is not open"
            )),
            "{err}"
        );
        // A socket passes, whatever else is true of it.
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = tcp.as_raw_fd();
        assert!(examine(&passed(fd..fd + 1), fd, "").unwrap().listening);
    }

    #[test]
    fn a_pipe_a_file_or_a_device_is_not_taken_for_a_socket() {
        use std::os::fd::AsRawFd;
        let (reader, _writer) = std::io::pipe().unwrap();
        let file =
            std::fs::File::open(env!("CARGO_MANIFEST_DIR").to_string() + "/Cargo.toml").unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        let needs = format!("systemd_tcp needs {}", Want::Tcp.needs());
        for (fd, what) in [
            (reader.as_raw_fd(), "a pipe (or FIFO)"),
            (file.as_raw_fd(), "a regular file"),
            (null.as_raw_fd(), "a character device"),
        ] {
            let err = examine(&passed(fd..fd + 1), fd, &needs).unwrap_err();
            assert!(
                err.starts_with(&format!("descriptor {fd} (from LISTEN_FDS) is {what}")),
                "{err}"
            );
            assert!(
                err.contains(
                    ", not a socket, but systemd_tcp needs a listening TCP socket (ListenStream="
                ) && err.contains("ListenFIFO= and ListenSpecial= pass pipes and files"),
                "{err}"
            );
        }
    }

    #[test]
    fn the_upgrade_mark_counts_only_for_the_one_inherited_socket_passed_to_this_process() {
        let one = || parse(Some("7"), Some("1"), None, 7);
        let yes = |_| true;
        assert_eq!(
            upgrade_mark("1234:3", &one(), yes),
            Some(Upgraded {
                parent: 1234,
                fd: 3
            })
        );
        // Not inherited: opened by this program (close-on-exec) or not open at all.
        assert_eq!(upgrade_mark("1234:3", &one(), |_| false), None);
        // Another descriptor than the one passed; garbled; or LISTEN_PID another process's.
        assert_eq!(upgrade_mark("1234:4", &one(), yes), None);
        assert_eq!(upgrade_mark("x:3", &one(), yes), None);
        let other = parse(Some("8"), Some("1"), None, 7);
        assert_eq!(upgrade_mark("1234:3", &other, yes), None);
        // An upgrade passes exactly one socket.
        let two = parse(Some("7"), Some("2"), None, 7);
        assert_eq!(upgrade_mark("1234:3", &two, yes), None);
    }
}
