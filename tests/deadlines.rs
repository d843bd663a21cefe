//! Time limits that bound a whole exchange, not one read: a request's `Deadline` (with and without
//! a minimum rate), the server's idle timeout and connection lifetime, and the framing and auth
//! helpers honouring them — so a peer trickling a byte at a time cannot hold a thread or a pool
//! worker for ever.

mod common;

use std::io::{self, BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{recv, Reported, Serving, WAIT};
#[cfg(feature = "auth")]
use socketserver::auth::{Authenticator, Secret};
use socketserver::framing::{copy_exact, Framing};
use socketserver::{
    Builder, Deadline, Limit, LimitExceeded, Mode, Pool, Single, StreamRequest, Threading,
};

/// Answers `OK <bytes>` for a line read whole, or `ERR <error>` for a read that failed. The
/// deadline is cleared first: it bounds writes too, and it has passed when the read failed.
fn answer(req: &mut StreamRequest, read: io::Result<usize>) -> io::Result<()> {
    req.clear_deadline();
    match read {
        Ok(n) => writeln!(req, "OK {n}"),
        Err(e) => writeln!(req, "ERR {e}"),
    }
}

/// A client that sends `byte` every `every` until `count` are sent or the server stops taking
/// them; returns how many it sent.
fn trickle(addr: SocketAddr, every: Duration, count: usize) -> (TcpStream, JoinHandle<usize>) {
    let stream = common::tcp_client(addr);
    let mut writer = stream.try_clone().expect("clone the client socket");
    let sender = std::thread::spawn(move || {
        let mut sent = 0;
        while sent < count && writer.write_all(b"x").is_ok() {
            sent += 1;
            std::thread::sleep(every);
        }
        sent
    });
    (stream, sender)
}

fn read_reply(stream: &TcpStream) -> String {
    let mut line = String::new();
    io::BufReader::new(stream)
        .read_line(&mut line)
        .expect("a reply line before the client's read timeout");
    line
}

fn threading_server(
    builder: Builder,
    handler: impl FnMut(&mut StreamRequest) -> io::Result<()> + Clone + Send + 'static,
) -> (Serving, SocketAddr) {
    let server = builder
        .mode(Threading::new())
        .bind_tcp("127.0.0.1:0", handler)
        .expect("bind");
    let serving = Serving::start(server);
    let addr = common::inet_addr(&serving.handle);
    (serving, addr)
}

#[test]
fn a_trickled_line_meets_the_deadline_and_the_error_names_it() {
    let (serving, addr) = threading_server(Builder::new(), |req: &mut StreamRequest| {
        req.set_deadline(Deadline::after(Duration::from_millis(300)).named("greeting"));
        let mut line = String::new();
        let read = req.read_line(&mut line);
        answer(req, read)
    });
    // 100 bytes at one per 50 ms would take 5 s; every single read is quick, so only a
    // deadline on the whole line can stop it.
    let (stream, sender) = trickle(addr, Duration::from_millis(50), 100);
    let reply = read_reply(&stream);
    assert!(
        reply.starts_with("ERR the greeting deadline passed after"),
        "{reply}"
    );
    assert!(reply.contains("bytes arrived"), "{reply}");
    drop(stream);
    let sent = sender.join().expect("trickler");
    assert!(sent < 100, "the server kept reading all {sent} bytes");
    serving.finish(WAIT).expect("clean stop");
}

#[test]
fn min_rate_gives_a_steady_sender_time_and_still_stops_a_trickler() {
    let (serving, addr) = threading_server(Builder::new(), |req: &mut StreamRequest| {
        req.set_deadline(
            Deadline::after(Duration::from_secs(1))
                .min_rate(100, Duration::from_secs(20))
                .named("upload"),
        );
        let mut line = Vec::new();
        let read = req.read_until(b'\n', &mut line);
        answer(req, read)
    });

    // 400 bytes/s, four times the minimum, for two seconds: twice the base deadline.
    let mut steady = common::tcp_client(addr);
    for _ in 0..40 {
        steady.write_all(&[b'a'; 20]).expect("send a chunk");
        std::thread::sleep(Duration::from_millis(50));
    }
    steady.write_all(b"\n").expect("end the line");
    assert_eq!(read_reply(&steady), "OK 801\n");

    // 20 bytes/s: a fifth of the minimum.
    let (slow, sender) = trickle(addr, Duration::from_millis(50), 100);
    let reply = read_reply(&slow);
    assert!(
        reply.starts_with("ERR the upload deadline passed"),
        "{reply}"
    );
    assert!(reply.contains("at least 100 bytes/s"), "{reply}");
    drop(slow);
    sender.join().expect("trickler");
    serving.finish(WAIT).expect("clean stop");
}

#[test]
fn a_cleared_deadline_no_longer_limits_later_reads() {
    let (serving, addr) = threading_server(Builder::new(), |req: &mut StreamRequest| {
        req.set_deadline(Deadline::after(Duration::from_millis(200)));
        let mut first = String::new();
        req.read_line(&mut first)?;
        assert!(req.deadline().is_some());
        req.clear_deadline();
        assert!(req.deadline().is_none());
        let mut second = String::new();
        let read = req.read_line(&mut second);
        answer(req, read)
    });
    let mut client = common::tcp_client(addr);
    client.write_all(b"first\n").expect("send");
    std::thread::sleep(Duration::from_millis(500));
    client.write_all(b"second\n").expect("send");
    assert_eq!(read_reply(&client), "OK 7\n");
    serving.finish(WAIT).expect("clean stop");
}

#[test]
fn a_write_to_a_peer_that_does_not_read_meets_the_deadline() {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let (serving, addr) = threading_server(Builder::new(), move |req: &mut StreamRequest| {
        req.set_deadline(Deadline::after(Duration::from_millis(300)).named("reply"));
        let chunk = vec![0u8; 1 << 20];
        // Far more than any socket buffer holds: the peer never reads, so a write must wait.
        let result = (0..256).try_for_each(|_| req.write_all(&chunk));
        let _ = tx.send(result.map_err(|e| {
            let limit = LimitExceeded::find(&e).map(|l| (l.limit(), l.name().to_string()));
            (e.kind(), limit)
        }));
        Ok(())
    });
    let client = common::tcp_client(addr);
    let outcome = recv(&rx, "the writing handler to give up");
    assert_eq!(
        outcome,
        Err((
            io::ErrorKind::TimedOut,
            Some((Limit::Deadline, "reply".to_string()))
        ))
    );
    drop(client);
    serving.finish(WAIT).expect("clean stop");
}

/// Echoes lines until the client closes; failures go to the test's `handle_error` channel.
fn echo_lines(req: &mut StreamRequest) -> io::Result<()> {
    let mut line = String::new();
    while req.read_line(&mut line)? > 0 {
        req.write_all(line.as_bytes())?;
        line.clear();
    }
    Ok(())
}

fn limit_of(reported: &Reported) -> Option<&'static str> {
    match reported {
        Reported::Error(io::ErrorKind::TimedOut, text) if text.starts_with("idle timeout") => {
            Some("idle")
        }
        Reported::Error(io::ErrorKind::TimedOut, text) if text.contains("maximum lifetime") => {
            Some("lifetime")
        }
        _ => None,
    }
}

#[test]
fn the_idle_timeout_closes_a_silent_connection_but_not_a_busy_one() {
    let (hook, failures) = common::failure_channel();
    let builder = Builder::new()
        .idle_timeout(Duration::from_millis(700))
        .handle_error(hook);
    let (serving, addr) = threading_server(builder, echo_lines);

    // Busy: a line every 100 ms for two seconds, about three times the idle timeout in all.
    let mut busy = common::tcp_client(addr);
    let mut reader = io::BufReader::new(busy.try_clone().expect("clone"));
    for i in 0..20 {
        writeln!(busy, "line {i}").expect("send");
        let mut echoed = String::new();
        reader.read_line(&mut echoed).expect("echo");
        assert_eq!(echoed, format!("line {i}\n"));
        std::thread::sleep(Duration::from_millis(100));
    }
    drop((busy, reader));

    // Silent: closed by the server, which reports the idle timeout.
    let silent = common::tcp_client(addr);
    assert!(common::closed_without_reply(&silent));
    let reported = recv(&failures, "the idle connection's failure");
    assert_eq!(limit_of(&reported), Some("idle"), "{reported:?}");
    serving.finish(WAIT).expect("clean stop");
}

#[test]
fn the_lifetime_ends_even_a_busy_connection() {
    let (hook, failures) = common::failure_channel();
    let builder = Builder::new()
        .max_connection_lifetime(Duration::from_millis(500))
        .handle_error(hook);
    let (serving, addr) = threading_server(builder, echo_lines);
    let mut client = common::tcp_client(addr);
    let mut reader = io::BufReader::new(client.try_clone().expect("clone"));
    let started = Instant::now();
    let mut echoed = 0;
    // A line every 50 ms for up to 5 s: the server must cut it off long before.
    while started.elapsed() < Duration::from_secs(5) {
        if writeln!(client, "ping").is_err() {
            break;
        }
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(n) if n > 0 => echoed += 1,
            _ => break,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(echoed > 0, "nothing was echoed before the lifetime");
    assert!(echoed < 100, "the connection outlived its lifetime");
    let reported = recv(&failures, "the lifetime failure");
    assert_eq!(limit_of(&reported), Some("lifetime"), "{reported:?}");
    serving.finish(WAIT).expect("clean stop");
}

/// Many connections trickling a byte every 100 ms, never finishing a line, against a mode with
/// fewer workers than tricklers: a newcomer is served only because the lifetime frees the
/// workers (without it, every worker would be held for as long as the tricklers like).
fn tricklers_do_not_starve_newcomers<M: Mode>(mode: M) {
    let server = Builder::new()
        .mode(mode)
        .max_connection_lifetime(Duration::from_millis(400))
        .handle_error(|_, _| {})
        .bind_tcp("127.0.0.1:0", echo_lines)
        .expect("bind");
    let serving = Serving::start(server);
    let addr = common::inet_addr(&serving.handle);
    let stop = Arc::new(AtomicBool::new(false));
    let tricklers: Vec<_> = (0..6)
        .map(|_| {
            let stop = Arc::clone(&stop);
            let mut stream = common::tcp_client(addr);
            std::thread::spawn(move || {
                for _ in 0..100 {
                    if stop.load(Ordering::Relaxed) || stream.write_all(b"x").is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut newcomer = common::tcp_client(addr);
    newcomer.write_all(b"hello\n").expect("send");
    let reply = read_reply(&newcomer);
    stop.store(true, Ordering::Relaxed);
    assert_eq!(reply, "hello\n");
    for t in tricklers {
        t.join().expect("trickler");
    }
    serving.finish(WAIT).expect("clean stop");
}

#[test]
fn tricklers_do_not_starve_a_pool() {
    tricklers_do_not_starve_newcomers(Pool::new(2).queue(16));
}

#[test]
fn tricklers_do_not_starve_a_single_threaded_server() {
    tricklers_do_not_starve_newcomers(Single);
}

/// Runs `read` on a request under a 300 ms deadline against a client that sends `prefix` at once
/// and then trickles; returns the error the read ended with.
fn trickled_under_deadline(
    prefix: &'static [u8],
    read: impl Fn(&mut StreamRequest) -> io::Result<()> + Clone + Send + 'static,
) -> io::Error {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let (serving, addr) = threading_server(Builder::new(), move |req: &mut StreamRequest| {
        req.set_deadline(Deadline::after(Duration::from_millis(300)).named("frame"));
        let _ = tx.send(read(req));
        Ok(())
    });
    let mut client = common::tcp_client(addr);
    client.write_all(prefix).expect("send the prefix");
    let mut writer = client.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        for _ in 0..100 {
            if writer.write_all(b"x").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let result = recv(&rx, "the handler's read to end");
    drop(client);
    serving.finish(WAIT).expect("clean stop");
    let _ = sender.join();
    result.expect_err("the trickled read should not complete")
}

fn assert_deadline(err: &io::Error) {
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    let limit = LimitExceeded::find(err).unwrap_or_else(|| panic!("no LimitExceeded in {err}"));
    assert_eq!((limit.limit(), limit.name()), (Limit::Deadline, "frame"));
}

#[test]
fn framing_reads_honour_the_request_deadline() {
    // A frame announcing 1000 bytes, whose payload trickles.
    let err = trickled_under_deadline(&[0, 0, 3, 232], |req| {
        Framing::default().read_frame(req).map(|_| ())
    });
    assert_deadline(&err);

    // A body streamed with copy_exact.
    let err = trickled_under_deadline(b"", |req| copy_exact(req, &mut io::sink(), 1000));
    assert_deadline(&err);

    // A file received into a temporary directory: nothing is left behind.
    let dir = std::env::temp_dir().join(format!("deadline-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let dest = dir.join("upload.bin");
    let target = dest.clone();
    let err = trickled_under_deadline(b"", move |req| {
        socketserver::framing::receive_file(req, &target, 1000, &Default::default())
    });
    assert_deadline(&err);
    let left: Vec<_> = std::fs::read_dir(&dir).expect("list").collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[cfg(feature = "auth")]
#[test]
fn the_auth_handshake_honours_the_request_deadline() {
    let auth = Authenticator::new(Secret::new("key").expect("secret")).timeout(WAIT);
    // The client reads the challenge and then dribbles its answer.
    let err = trickled_under_deadline(b"", move |req| auth.challenge(req));
    assert_deadline(&err);
}

#[test]
fn a_silent_client_of_a_read_timeout_server_still_gets_the_plain_timeout_error() {
    // No limits configured: the read timeout alone applies, with the socket's own error kind.
    let (tx, rx) = crossbeam_channel::bounded(1);
    let builder = Builder::new().read_timeout(Duration::from_millis(200));
    let (serving, addr) = threading_server(builder, move |req: &mut StreamRequest| {
        let mut buf = [0u8; 8];
        let err = req.read(&mut buf).expect_err("the client is silent");
        let _ = tx.send((err.kind(), LimitExceeded::find(&err).is_none()));
        Ok(())
    });
    let client = common::tcp_client(addr);
    let (kind, plain) = recv(&rx, "the read timeout");
    assert!(
        matches!(kind, io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut),
        "{kind:?}"
    );
    assert!(plain, "a plain read timeout is not a LimitExceeded");
    drop(client);
    serving.finish(WAIT).expect("clean stop");
}
