//! The serving loop survives running out of file descriptors: `accept` fails with `EMFILE`, the
//! loop backs off instead of spinning, and serves the waiting clients once descriptors are free.
//! This file holds a single test because it lowers the process-wide descriptor limit.

mod skip;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use socketserver::{StreamRequest, TcpServer};

fn echo_upper(req: &mut StreamRequest) -> io::Result<()> {
    let mut buf = [0u8; 64];
    loop {
        let n = req.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        req.write_all(&buf[..n].to_ascii_uppercase())?;
    }
}

/// Lowers the descriptor limit a little above what is open, then opens `/dev/null` until the
/// process is out of descriptors. Dropping the returned files frees them again.
fn exhaust_descriptors() -> (Vec<std::fs::File>, libc::rlim_t) {
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as libc::rlim_t;
    let original = set_soft_limit(open + 16);
    let mut filler = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => filler.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                return (filler, original);
            }
        }
    }
}

fn set_soft_limit(limit: libc::rlim_t) -> libc::rlim_t {
    let mut current = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit calls on a valid, initialised struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut current), 0);
        let old = current.rlim_cur;
        current.rlim_cur = limit;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &current), 0);
        old
    }
}

/// Waits (bounded) until `check` holds, re-checking every few milliseconds.
fn wait_until(what: &str, deadline: Duration, mut check: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !check() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn emfile_backs_off_then_recovers() {
    if !std::path::Path::new("/proc/self/fd").exists() {
        skip::skipped("needs /proc/self/fd");
        return;
    }
    let mut server = TcpServer::bind("127.0.0.1:0", echo_upper).unwrap();
    let addr: SocketAddr = server.local_addr().as_inet().unwrap();
    let handle = server.handle();
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let serving = std::thread::spawn(move || {
        let result = server.serve_forever().and_then(|()| server.server_close());
        let _ = done_tx.send(result);
    });

    // Client sockets are created while descriptors are still available; they connect later.
    let clients: Vec<Socket> = (0..3)
        .map(|_| Socket::new(Domain::IPV4, Type::STREAM, None).unwrap())
        .collect();
    for c in &clients {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    }

    let (filler, original) = exhaust_descriptors();
    for c in &clients {
        c.connect(&addr.into()).unwrap(); // completes in the kernel; waits in the backlog
    }
    wait_until(
        "accept has failed a few times",
        Duration::from_secs(10),
        || handle.stats().accept_errors >= 3,
    );
    // With back-off the retries thin out (5, 10, 20, 40 ms, …); a busy loop would retry
    // hundreds of thousands of times in this window.
    let at_start = handle.stats().accept_errors;
    std::thread::sleep(Duration::from_millis(300));
    let retries = handle.stats().accept_errors - at_start;
    drop(filler);
    set_soft_limit(original);
    println!("accept retries during 300 ms of EMFILE: {retries}");
    assert!(
        retries < 50,
        "{retries} accept retries in 300 ms: not backing off"
    );

    for (i, mut c) in clients.into_iter().enumerate() {
        let msg = format!("client {i}");
        c.write_all(msg.as_bytes()).unwrap();
        let mut reply = vec![0u8; msg.len()];
        c.read_exact(&mut reply).unwrap();
        assert_eq!(reply, msg.to_uppercase().as_bytes());
    }
    handle.shutdown();
    done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("serve_forever returned after shutdown")
        .unwrap();
    serving.join().unwrap();
    let stats = handle.stats();
    assert_eq!(stats.completed, 3, "{stats:?}");
}
