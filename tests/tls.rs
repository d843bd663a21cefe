//! TLS on stream servers (feature `tls`): handshakes in every thread mode, plaintext for the
//! handler, client certificates, SNI and ALPN, certificate errors that name the file, rotation,
//! and handshakes that hold no worker. Certificates are made at test time (rcgen); clients are
//! rustls.

mod common;

use std::io::{BufRead, Read, Write};

use common::tls::{Pki, TlsClient};
use common::{failure_channel, inet_addr, Serving, WAIT};
use socketserver::tls::TlsConfig;
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
