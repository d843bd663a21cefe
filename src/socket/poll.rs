//! Waiting for a server socket or the shutdown pipe to become readable, with `poll(2)`.
//!
//! This is what lets `shutdown()` take effect at once instead of after a poll interval.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// What woke the serving loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ready {
    /// The server socket has a connection or a datagram (or an error) waiting.
    Socket,
    /// Shutdown was requested.
    Stop,
    /// The timeout passed first.
    Timeout,
}

/// Waits until `socket` or `stop` is readable, or `timeout` passes (`None`: no time limit).
/// A pending stop wins over a pending request.
pub(crate) fn wait(socket: RawFd, stop: RawFd, timeout: Option<Duration>) -> io::Result<Ready> {
    let woken = wait_serving(socket, stop, None, timeout)?;
    Ok(match woken {
        Woken { stop: true, .. } => Ready::Stop,
        Woken { socket: true, .. } => Ready::Socket,
        _ => Ready::Timeout,
    })
}

/// What woke a serving loop that may also wait on the intake's bell. Nothing set: the timeout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Woken {
    pub(crate) stop: bool,
    pub(crate) socket: bool,
    pub(crate) bell: bool,
}

/// Waits until `socket`, `stop` or `bell` is readable, or `timeout` passes (`None`: no time
/// limit), and says which are.
pub(crate) fn wait_serving(
    socket: RawFd,
    stop: RawFd,
    bell: Option<RawFd>,
    timeout: Option<Duration>,
) -> io::Result<Woken> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let pollfd = |fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // A negative descriptor is skipped by poll(2).
        let mut fds = [pollfd(stop), pollfd(socket), pollfd(bell.unwrap_or(-1))];
        let timeout_ms = match deadline {
            None => -1,
            Some(deadline) => millis_until(deadline),
        };
        // SAFETY: `fds` is a valid array of initialised pollfd structs that outlives the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if fds[0].revents == 0 && fds[1].revents & libc::POLLNVAL != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the server socket is no longer open",
            ));
        }
        let woken = Woken {
            stop: fds[0].revents != 0,
            socket: fds[1].revents != 0,
            bell: fds[2].revents != 0,
        };
        if woken != Woken::default() {
            return Ok(woken);
        }
        if n == 0 && deadline.is_none_or(|d| Instant::now() >= d) {
            return Ok(woken);
        }
    }
}

/// Whether `fd` is readable now (data, end of file or an error waiting), without waiting.
pub(crate) fn readable_now(fd: RawFd) -> io::Result<bool> {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one initialised pollfd that outlives the call.
        let n = unsafe { libc::poll(&mut pollfd, 1, 0) };
        if n >= 0 {
            return Ok(n > 0);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Milliseconds until `deadline`, rounded up so a sub-millisecond remainder does not become a
/// zero-timeout busy loop.
fn millis_until(deadline: Instant) -> i32 {
    let left = deadline.saturating_duration_since(Instant::now());
    let ms = left.as_nanos().div_ceil(1_000_000);
    i32::try_from(ms).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn times_out_when_nothing_is_ready() {
        let (stop_r, _stop_w) = std::io::pipe().unwrap();
        let (sock_r, _sock_w) = std::io::pipe().unwrap();
        let ready = wait(
            sock_r.as_raw_fd(),
            stop_r.as_raw_fd(),
            Some(Duration::from_millis(5)),
        );
        assert_eq!(ready.unwrap(), Ready::Timeout);
    }

    #[test]
    fn stop_wins_over_a_ready_socket() {
        let (stop_r, stop_w) = std::io::pipe().unwrap();
        let (sock_r, mut sock_w) = std::io::pipe().unwrap();
        sock_w.write_all(b"x").unwrap();
        assert_eq!(
            wait(sock_r.as_raw_fd(), stop_r.as_raw_fd(), None).unwrap(),
            Ready::Socket
        );
        drop(stop_w); // the writer closing is how shutdown signals
        assert_eq!(
            wait(sock_r.as_raw_fd(), stop_r.as_raw_fd(), None).unwrap(),
            Ready::Stop
        );
    }

    #[test]
    fn the_bell_wakes_a_serving_loop_beside_its_socket() {
        let (stop_r, _stop_w) = std::io::pipe().unwrap();
        let (sock_r, mut sock_w) = std::io::pipe().unwrap();
        let (bell_r, mut bell_w) = std::io::pipe().unwrap();
        let fds = (sock_r.as_raw_fd(), stop_r.as_raw_fd(), bell_r.as_raw_fd());
        let short = Some(Duration::from_millis(5));
        let woken = wait_serving(fds.0, fds.1, Some(fds.2), short).unwrap();
        assert_eq!(woken, Woken::default(), "the timeout");
        bell_w.write_all(b"x").unwrap();
        let woken = wait_serving(fds.0, fds.1, Some(fds.2), None).unwrap();
        assert!(woken.bell && !woken.socket && !woken.stop, "{woken:?}");
        sock_w.write_all(b"x").unwrap();
        let woken = wait_serving(fds.0, fds.1, Some(fds.2), None).unwrap();
        assert!(woken.bell && woken.socket, "both at once: {woken:?}");
        let woken = wait_serving(fds.0, fds.1, None, None).unwrap();
        assert!(woken.socket && !woken.bell, "no bell: {woken:?}");
    }

    #[test]
    fn readable_now_does_not_wait() {
        let (r, mut w) = std::io::pipe().unwrap();
        assert!(!readable_now(r.as_raw_fd()).unwrap());
        w.write_all(b"x").unwrap();
        assert!(readable_now(r.as_raw_fd()).unwrap());
    }

    #[test]
    fn rounds_sub_millisecond_waits_up() {
        assert_eq!(millis_until(Instant::now() + Duration::from_micros(10)), 1);
        // A deadline already passed (`now - 1s` would panic on a machine up for less than 1 s).
        let passed = Instant::now();
        assert_eq!(millis_until(passed), 0);
    }
}
