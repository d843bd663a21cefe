//! The HMAC handshake against a real server: `RequireAuth` around an upper-case echo, clients
//! that know the key, clients that do not, replayed answers, answers of the wrong length, and
//! silence past the deadline. Every refusal must reach `handle_error` with its own error kind and
//! free the handler thread.

#![cfg(feature = "auth")]

mod common;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{failure_channel, inet_addr, recv, tcp_client, Reported, Serving, WAIT};
use crossbeam_channel::Receiver;
use socketserver::auth::{Authenticator, Digest, Secret, CHALLENGE_LEN};
use socketserver::{Builder, StreamRequest, Threading};

const KEY: &str = "linhaifeng bang bang bang";

fn upper_echo(req: &mut StreamRequest) -> io::Result<()> {
    let mut buf = [0u8; 1024];
    loop {
        let n = req.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        req.write_all(&buf[..n].to_ascii_uppercase())?;
    }
}

fn auth(key: &str, digest: Digest) -> Authenticator {
    Authenticator::new(Secret::new(key).unwrap()).digest(digest)
}

/// An authenticated echo server with a short handshake deadline, and its reported failures.
fn start(digest: Digest, deadline: Duration) -> (Serving, Receiver<Reported>) {
    let (hook, failures) = failure_channel();
    let handler = auth(KEY, digest).timeout(deadline).require(upper_echo);
    let server = Builder::new()
        .mode(Threading::new())
        .handle_error(hook)
        .bind_tcp("127.0.0.1:0", handler)
        .unwrap();
    (Serving::start(server), failures)
}

/// Whether the server closed `stream` without sending anything more (EOF or reset).
fn closed_without_reply(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => rest.is_empty(),
        Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
    }
}

fn read_challenge(stream: &mut TcpStream) -> [u8; CHALLENGE_LEN] {
    let mut challenge = [0u8; CHALLENGE_LEN];
    stream.read_exact(&mut challenge).unwrap();
    challenge
}

fn expect_error(failures: &Receiver<Reported>, kind: io::ErrorKind, words: &str) {
    match recv(failures, "the refusal reported to handle_error") {
        Reported::Error(got, message) => {
            assert_eq!(got, kind, "{message}");
            assert!(
                message.contains(words),
                "{message:?} should contain {words:?}"
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn clients_with_the_key_are_served_in_both_digests() {
    for digest in [Digest::Md5, Digest::Sha256] {
        let (serving, failures) = start(digest, WAIT);
        let mut stream = tcp_client(inet_addr(&serving.handle));
        auth(KEY, digest).respond(&mut stream).unwrap();
        stream.write_all(b"hello").unwrap();
        let mut reply = [0u8; 5];
        stream.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"HELLO");
        drop(stream);
        serving.finish(WAIT).unwrap();
        assert!(failures.try_recv().is_err(), "{digest}: unexpected failure");
    }
}

#[test]
fn a_wrong_key_or_digest_is_refused_and_the_connection_closed() {
    let (serving, failures) = start(Digest::Md5, WAIT);
    let addr = inet_addr(&serving.handle);

    let mut stream = tcp_client(addr);
    auth("linhaifeng bang bang bang1111", Digest::Md5)
        .respond(&mut stream)
        .unwrap();
    let _ = stream.write_all(b"hello");
    assert!(closed_without_reply(&mut stream));
    expect_error(&failures, io::ErrorKind::PermissionDenied, "HMAC-MD5");

    // The right key with the wrong digest: 32 bytes where 16 are expected. The first 16 do not
    // match, so it is refused just the same.
    let mut stream = tcp_client(addr);
    auth(KEY, Digest::Sha256).respond(&mut stream).unwrap();
    assert!(closed_without_reply(&mut stream));
    expect_error(
        &failures,
        io::ErrorKind::PermissionDenied,
        "wrong key or digest",
    );
    serving.finish(WAIT).unwrap();
}

#[test]
fn a_recorded_answer_cannot_be_replayed() {
    let (serving, failures) = start(Digest::Sha256, WAIT);
    let addr = inet_addr(&serving.handle);
    // Eavesdrop on a legitimate handshake.
    let mut first = tcp_client(addr);
    let challenge = read_challenge(&mut first);
    let answer = Digest::Sha256.hmac(KEY.as_bytes(), &challenge);
    first.write_all(&answer).unwrap();
    first.write_all(b"ok").unwrap();
    let mut reply = [0u8; 2];
    first.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"OK");

    // Replay it on a new connection: the challenge is fresh, so the answer is wrong.
    let mut second = tcp_client(addr);
    let fresh = read_challenge(&mut second);
    assert_ne!(fresh, challenge, "challenges must not repeat");
    second.write_all(&answer).unwrap();
    assert!(closed_without_reply(&mut second));
    expect_error(
        &failures,
        io::ErrorKind::PermissionDenied,
        "authentication failed",
    );
    drop(first);
    serving.finish(WAIT).unwrap();
}

#[test]
fn a_short_answer_then_close_is_unexpected_eof() {
    let (serving, failures) = start(Digest::Md5, WAIT);
    let mut stream = tcp_client(inet_addr(&serving.handle));
    read_challenge(&mut stream);
    stream.write_all(&[0u8; 5]).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(closed_without_reply(&mut stream));
    expect_error(
        &failures,
        io::ErrorKind::UnexpectedEof,
        "after 5 of the 16 bytes",
    );
    serving.finish(WAIT).unwrap();
}

#[test]
fn silence_or_a_dribble_past_the_deadline_times_out_and_frees_the_thread() {
    let deadline = Duration::from_millis(300);
    let (serving, failures) = start(Digest::Sha256, deadline);
    let addr = inet_addr(&serving.handle);

    // The seeds' client without a handshake: it just sends its message, 5 bytes of 32.
    let mut silent = tcp_client(addr);
    read_challenge(&mut silent);
    silent.write_all(b"hello").unwrap();
    let started = Instant::now();
    let mut dribbler = tcp_client(addr);
    read_challenge(&mut dribbler);
    // One byte every 100 ms would take 3.2 s for 32 bytes; the deadline is for the whole answer.
    for _ in 0..6 {
        if dribbler.write_all(&[1]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..2 {
        expect_error(&failures, io::ErrorKind::TimedOut, "within 300ms");
    }
    assert!(started.elapsed() < WAIT);
    assert!(closed_without_reply(&mut silent));
    assert!(closed_without_reply(&mut dribbler));
    // Both handler threads end (the count drops just after the failure is reported).
    let until = Instant::now() + WAIT;
    while serving.handle.stats().active > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(serving.handle.stats().active, 0);
    serving.finish(WAIT).unwrap();
}
