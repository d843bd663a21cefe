//! TLS on stream servers (feature `tls`): handshakes in every thread mode, plaintext for the
//! handler, client certificates, SNI and ALPN, certificate errors that name the file, rotation,
//! and handshakes that hold no worker. Certificates are made at test time (rcgen); clients are
//! rustls.

mod common;

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::tls::{connect_as, server_serial, Pki, TlsClient};
use common::{failure_channel, inet_addr, Serving, WAIT};
use socketserver::tls::{ClientAuth, TlsConfig};
use socketserver::{AnyMode, Builder, Pool, Single, StreamRequest, Threading};

/// Upper-cases each line, and answers `who` with what the handshake settled.
fn shout(req: &mut StreamRequest) -> std::io::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if req.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line.trim() == "who" {
            let tls = req.tls().expect("a TLS request").clone();
            let peer = tls.peer().map_or("-".to_string(), |p| {
                format!("{} {:?}", p.common_name().unwrap_or("?"), p.names())
            });
            let alpn = tls
                .alpn_protocol()
                .map_or("-".to_string(), |p| String::from_utf8_lossy(p).into_owned());
            let name = tls.server_name().unwrap_or("-");
            writeln!(req, "{} {name} {alpn} {peer}", tls.version())?;
        } else {
            req.write_all(line.to_uppercase().as_bytes())?;
        }
    }
}

fn modes() -> Vec<(&'static str, AnyMode)> {
    vec![
        ("single", Single.into()),
        ("threading", Threading::new().into()),
        ("pool", Pool::new(2).into()),
    ]
}

fn ask(client: &mut TlsClient, line: &str) -> String {
    client.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\n") {
        let n = client.read(&mut byte).expect("an answer");
        assert!(n > 0, "closed before answering {line:?}");
        answer.push(byte[0]);
    }
    String::from_utf8(answer).unwrap().trim_end().to_string()
}

#[test]
fn every_thread_mode_serves_plaintext_to_its_handler_over_tls() {
    let pki = Pki::new("modes");
    for (name, mode) in modes() {
        let tls = TlsConfig::new(&pki.cert, &pki.key).load().unwrap();
        let server = Builder::new()
            .mode(mode)
            .tls(tls)
            .bind_tcp("127.0.0.1:0", shout)
            .unwrap();
        let serving = Serving::start(server);
        let addr = inet_addr(&serving.handle);
        let config = pki.client_config(None, &[]);
        // One after another: a Single server serves one connection at a time.
        for i in 0..3 {
            let mut client = pki.connect(addr, &config).unwrap();
            assert_eq!(
                ask(&mut client, &format!("hello {i}")),
                format!("HELLO {i}"),
                "{name}"
            );
            assert_eq!(ask(&mut client, "who"), "TLSv1.3 localhost - -", "{name}");
        }
        serving.finish(WAIT).unwrap();
    }
}

#[test]
fn client_certificates_from_the_ca_are_accepted_and_others_refused() {
    let pki = Pki::new("mtls");
    let tls = TlsConfig::new(&pki.cert, &pki.key)
        .client_ca(&pki.ca_file)
        .load()
        .unwrap();
    let (on_error, failures) = failure_channel();
    let server = Builder::new()
        .mode(Pool::new(2))
        .tls(tls)
        .handle_error(on_error)
        .bind_tcp("127.0.0.1:0", shout)
        .unwrap();
    let serving = Serving::start(server);
    let addr = inet_addr(&serving.handle);

    let good = pki.client_config(Some((&pki.client_cert, &pki.client_key)), &[]);
    let mut client = pki.connect(addr, &good).unwrap();
    assert_eq!(
        ask(&mut client, "who"),
        "TLSv1.3 localhost - alice [\"alice@example.com\"]"
    );

    for (what, config) in [
        ("no certificate", pki.client_config(None, &[])),
        (
            "another CA's certificate",
            pki.client_config(Some((&pki.stranger_cert, &pki.stranger_key)), &[]),
        ),
    ] {
        // TLS 1.3: the client finishes first; the refusal comes as an alert on its first read.
        let refused = match pki.connect(addr, &config) {
            Err(_) => true,
            Ok(mut c) => {
                let _ = c.write_all(b"who\n");
                let mut buf = [0u8; 64];
                !matches!(c.read(&mut buf), Ok(n) if n > 0)
            }
        };
        assert!(refused, "{what}: served");
        let failure = common::recv(&failures, "the refused handshake's report");
        assert!(
            matches!(&failure, common::Reported::Error(_, m) if m.contains("TLS handshake")),
            "{what}: {failure:?}"
        );
    }
    assert_eq!(serving.handle.stats().tls_handshake_failures, 2);
    drop(client);
    serving.finish(WAIT).unwrap();
}

/// The error `load` gives for `config`, as text.
fn load_error(config: TlsConfig) -> std::io::Error {
    config
        .load()
        .expect_err("the configuration should not load")
}

#[test]
fn certificate_problems_are_refused_with_the_file_named() {
    let pki = Pki::new("errors");
    let missing = pki.dir.join("missing.pem");
    let e = load_error(TlsConfig::new(&missing, &pki.key));
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    assert!(e.to_string().contains("missing.pem"), "{e}");

    // A key file given as the certificate: no certificate in it.
    let e = load_error(TlsConfig::new(&pki.key, &pki.key));
    assert!(
        e.to_string().contains("server.key") && e.to_string().contains("no certificate"),
        "{e}"
    );

    // Another pair's key.
    let e = load_error(TlsConfig::new(&pki.cert, &pki.client_key));
    assert!(
        e.to_string().contains("client.key") && e.to_string().contains("does not belong"),
        "{e}"
    );

    let expired = pki.dir.join("expired.crt");
    let expired_key = pki.dir.join("expired.key");
    pki.write_dated_cert(&expired, &expired_key, (2000, 2001));
    let e = load_error(TlsConfig::new(&expired, &expired_key));
    assert!(
        e.to_string().contains("expired.crt") && e.to_string().contains("expired on"),
        "{e}"
    );

    let future = pki.dir.join("future.crt");
    let future_key = pki.dir.join("future.key");
    pki.write_dated_cert(&future, &future_key, (2999, 3000));
    let e = load_error(TlsConfig::new(&future, &future_key));
    assert!(e.to_string().contains("not valid before"), "{e}");

    let e = load_error(TlsConfig::new(&pki.cert, &pki.key).client_auth(ClientAuth::Required));
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");

    let e = load_error(
        TlsConfig::new(&pki.cert, &pki.key)
            .client_ca(&pki.ca_file)
            .revocation_list(&pki.ca_file),
    );
    assert!(
        e.to_string().contains("ca.pem") && e.to_string().contains("revocation"),
        "{e}"
    );
}

#[test]
fn the_certificate_is_chosen_by_server_name_and_alpn_is_visible() {
    let pki = Pki::new("sni");
    let api_cert = pki.dir.join("api.crt");
    let api_key = pki.dir.join("api.key");
    pki.write_named_cert(&["api.test"], &api_cert, &api_key);
    let tls = TlsConfig::new(&pki.cert, &pki.key)
        .certificate_for("*.test", &api_cert, &api_key)
        .alpn(["h2", "http/1.1"])
        .load()
        .unwrap();
    let server = Builder::new()
        .mode(Pool::new(2))
        .tls(tls)
        .bind_tcp("127.0.0.1:0", shout)
        .unwrap();
    let serving = Serving::start(server);
    let addr = inet_addr(&serving.handle);
    // rustls clients check the name: a certificate for the wrong name would fail the handshake.
    let config = pki.client_config(None, &["http/1.1"]);
    let mut client = connect_as(addr, &config, "api.test").unwrap();
    assert_eq!(ask(&mut client, "who"), "TLSv1.3 api.test http/1.1 -");
    drop(client);
    let mut client = pki.connect(addr, &config).unwrap();
    assert_eq!(ask(&mut client, "who"), "TLSv1.3 localhost http/1.1 -");
    drop(client);
    // A client offering only a protocol the server does not speak is refused.
    let other = pki.client_config(None, &["spdy/3"]);
    assert!(pki.connect(addr, &other).is_err());
    serving.finish(WAIT).unwrap();
}

#[test]
fn a_reload_serves_new_handshakes_with_the_new_certificate_and_a_broken_file_changes_nothing() {
    let mut pki = Pki::new("reload");
    let tls = TlsConfig::new(&pki.cert, &pki.key).load().unwrap();
    let server = Builder::new()
        .mode(Threading::new())
        .tls(tls.clone())
        .bind_tcp("127.0.0.1:0", shout)
        .unwrap();
    let serving = Serving::start(server);
    let addr = inet_addr(&serving.handle);
    let config = pki.client_config(None, &[]);
    let mut before = pki.connect(addr, &config).unwrap();
    assert_eq!(server_serial(&before), "01");

    let (cert, key) = (pki.cert.clone(), pki.key.clone());
    pki.write_server_cert(2, &cert, &key);
    tls.reload().unwrap();
    let mut after = pki.connect(addr, &config).unwrap();
    assert_eq!(server_serial(&after), "02");
    // The connection made before goes on with its session.
    assert_eq!(ask(&mut before, "still here"), "STILL HERE");
    assert_eq!(ask(&mut after, "new"), "NEW");

    std::fs::write(&pki.key, b"not a key").unwrap();
    let e = tls.reload().expect_err("a broken key file");
    assert!(e.to_string().contains("server.key"), "{e}");
    let mut later = pki.connect(addr, &config).unwrap();
    assert_eq!(server_serial(&later), "02", "the old certificate stays");
    assert_eq!(ask(&mut later, "ok"), "OK");
    drop((before, after, later));
    serving.finish(WAIT).unwrap();
}

/// Connections that never finish their handshake: `silent` send nothing, `trickling` send the
/// first bytes of a TLS record and stop, `garbage` send bytes that are not TLS.
fn hostile_handshakes(
    addr: std::net::SocketAddr,
    silent: usize,
    trickling: usize,
) -> Vec<TcpStream> {
    (0..silent + trickling)
        .map(|i| {
            let stream = common::tcp_client(addr);
            if i >= silent {
                // A handshake record header announcing 512 bytes, and 3 of them.
                (&stream)
                    .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01])
                    .unwrap();
            }
            stream
        })
        .collect()
}

#[test]
fn connections_in_their_handshake_hold_no_worker_and_are_closed_at_the_deadline() {
    let pki = Pki::new("hostile");
    for (name, mode) in [
        ("pool", AnyMode::from(Pool::new(2))),
        ("single", Single.into()),
    ] {
        let tls = TlsConfig::new(&pki.cert, &pki.key)
            .handshake_timeout(Duration::from_millis(800))
            .load()
            .unwrap();
        let server = Builder::new()
            .mode(mode)
            .tls(tls)
            .bind_tcp("127.0.0.1:0", shout)
            .unwrap();
        let serving = Serving::start(server);
        let addr = inet_addr(&serving.handle);
        let held = hostile_handshakes(addr, 100, 100);
        let config = pki.client_config(None, &[]);
        for i in 0..5 {
            // Sequential: a Single server serves one at a time.
            let mut good = pki.connect(addr, &config).unwrap();
            assert_eq!(
                ask(&mut good, &format!("good {i}")),
                format!("GOOD {i}"),
                "{name}"
            );
        }
        // At the deadline each held connection is closed: its read sees the end (or a reset).
        for mut stream in held {
            let mut buf = [0u8; 64];
            let closed = loop {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break true,
                    Ok(_) => {} // an alert
                }
            };
            assert!(closed, "{name}");
        }
        let stats = serving.handle.stats();
        assert_eq!(stats.tls_handshake_failures, 200, "{name}: {stats:?}");
        assert_eq!(stats.completed, 5, "{name}: {stats:?}");
        serving.finish(WAIT).unwrap();
    }
}

#[test]
fn a_plaintext_client_or_garbage_gets_a_clean_close_not_a_hang() {
    let pki = Pki::new("plaintext");
    let tls = TlsConfig::new(&pki.cert, &pki.key).load().unwrap();
    let (on_error, failures) = failure_channel();
    let server = Builder::new()
        .mode(Threading::new())
        .tls(tls)
        .handle_error(on_error)
        .bind_tcp("127.0.0.1:0", shout)
        .unwrap();
    let serving = Serving::start(server);
    let addr = inet_addr(&serving.handle);
    for request in [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], &[0xff; 600][..]] {
        let mut stream = common::tcp_client(addr);
        stream.write_all(request).unwrap();
        let mut answer = Vec::new();
        // The client's read timeout would fail this on a hang; an alert then the end is clean.
        let read = stream.read_to_end(&mut answer);
        assert!(read.is_ok(), "{read:?}");
        assert!(
            answer.len() < 16 && answer.first() == Some(&0x15),
            "an alert: {answer:?}"
        );
        let failure = common::recv(&failures, "the report");
        assert!(
            matches!(&failure, common::Reported::Error(_, m) if m.contains("not TLS")),
            "{failure:?}"
        );
    }
    assert_eq!(serving.handle.stats().tls_handshake_failures, 2);
    serving.finish(WAIT).unwrap();
}

#[test]
fn handle_request_does_the_handshake_on_its_own_thread_within_the_deadline() {
    let pki = Pki::new("handle-request");
    let tls = TlsConfig::new(&pki.cert, &pki.key)
        .handshake_timeout(Duration::from_millis(500))
        .load()
        .unwrap();
    let (on_error, failures) = failure_channel();
    let mut server = Builder::new()
        .tls(tls)
        .handle_error(on_error)
        .bind_tcp("127.0.0.1:0", shout)
        .unwrap();
    let addr = server.local_addr().as_inet().unwrap();
    let held = hostile_handshakes(addr, 0, 1);
    let started = Instant::now();
    server.handle_request().unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "the deadline was not waited for"
    );
    let failure = common::recv(&failures, "the late handshake's report");
    assert!(
        matches!(&failure, common::Reported::Error(std::io::ErrorKind::TimedOut, m) if m.contains("TLS handshake")),
        "{failure:?}"
    );
    drop(held);
    let config = pki.client_config(None, &[]);
    let client = std::thread::spawn(move || {
        let mut c = connect_as(addr, &config, "localhost").unwrap();
        ask(&mut c, "one")
    });
    server.handle_request().unwrap();
    assert_eq!(client.join().unwrap(), "ONE");
    server.server_close().unwrap();
}

#[test]
fn split_halves_read_and_write_at_once_over_tls() {
    let pki = Pki::new("split");
    let tls = TlsConfig::new(&pki.cert, &pki.key).load().unwrap();
    // Echoes everything back from another thread while this one reads: big transfers in both
    // directions at once, so records from both halves interleave on the socket.
    let server = Builder::new()
        .mode(Threading::new())
        .tls(tls)
        .bind_tcp("127.0.0.1:0", |req: &mut StreamRequest| {
            let (mut reader, writer) = req.split();
            let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(4);
            std::thread::scope(|s| {
                s.spawn(move || {
                    let mut writer = writer;
                    for chunk in rx {
                        writer.write_all(&chunk)?;
                    }
                    Ok::<_, std::io::Error>(())
                });
                let tx = tx; // dropped when reading ends, which ends the writer
                let mut buf = vec![0u8; 40_000];
                loop {
                    let n = reader.read(&mut buf)?;
                    if n == 0 {
                        return Ok(());
                    }
                    let _ = tx.send(buf[..n].to_vec());
                }
            })
        })
        .unwrap();
    let serving = Serving::start(server);
    let addr = inet_addr(&serving.handle);
    let config = pki.client_config(None, &[]);
    let client = pki.connect(addr, &config).unwrap();
    let data: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let (mut conn, mut sock) = (client.conn, client.sock);
    // The client side with one thread: write and read alternately without blocking too long.
    sock.set_nonblocking(true).unwrap();
    let mut sent = 0;
    let mut got = Vec::with_capacity(data.len());
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < data.len() {
        assert!(
            Instant::now() < deadline,
            "the transfer stalled at {}",
            got.len()
        );
        if sent < data.len() && !conn.wants_write() {
            sent += conn
                .writer()
                .write(&data[sent..(sent + 65536).min(data.len())])
                .unwrap();
        }
        while conn.wants_write() {
            match conn.write_tls(&mut sock) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        match conn.read_tls(&mut sock) {
            Ok(0) => panic!("closed early"),
            Ok(_) => {
                conn.process_new_packets().unwrap();
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = conn.reader().read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(got == data, "the echo differs from what was sent");
    drop((conn, sock));
    serving.finish(WAIT).unwrap();
}

#[cfg(feature = "proxy")]
#[test]
fn a_proxy_header_comes_before_the_handshake_and_names_the_client() {
    let pki = Pki::new("proxy");
    let tls = TlsConfig::new(&pki.cert, &pki.key).load().unwrap();
    let server = Builder::new()
        .mode(Pool::new(1))
        .proxy_protocol(socketserver::proxy::ProxyProtocol::V1)
        .trusted_proxies(["127.0.0.1"])
        .tls(tls)
        .bind_tcp("127.0.0.1:0", |req: &mut StreamRequest| {
            let client = req.peer_addr().to_string();
            writeln!(req, "{client} {}", req.tls().is_some())
        })
        .unwrap();
    let serving = Serving::start(server);
    let addr = inet_addr(&serving.handle);
    // Held-back headers hold no worker either (a pool of one).
    let held = common::hold_back_proxy_headers(addr, 20, 20);
    let config = pki.client_config(None, &[]);
    let tcp = common::tcp_client(addr);
    (&tcp)
        .write_all(b"PROXY TCP4 203.0.113.7 127.0.0.1 4242 443\r\n")
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut client = rustls::StreamOwned::new(conn, tcp);
    let mut line = String::new();
    std::io::BufReader::new(&mut client)
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "203.0.113.7:4242 true\n");
    drop((held, client));
    serving.finish(WAIT).unwrap();
}
