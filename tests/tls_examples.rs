//! The examples over TLS (`--tls-cert`, `--tls-key`, `--tls-client-ca`), as users reach them:
//! `openssl s_client` against `echo_upper` in every mode, `curl` against `http_hello`,
//! `redis-cli` and `redis-benchmark` against `resp_kv`, client certificates accepted and refused,
//! plaintext clients closed, `remote_cmd` over mutual TLS, and certificates rotated under a
//! running client loop with SIGHUP (threads, and prefork's rolling reload of its workers).
//!
//! Certificates are made at test time (`tests/common/tls.rs`). A missing program (`openssl`,
//! `curl`, `redis-cli`, `redis-benchmark`) makes its test print a `SKIPPED` line (a failure in
//! CI, which installs them). The message-API cases (`--api message`) are separate tests.
//!
//! Every client has socket timeouts, every program run a deadline, every loop a bound.

mod programs;
// Only the certificates of the library's helpers (`tests/common` would bring a second copy of
// `tests/skip`, which `programs` has); its sockets use the examples' timeout.
#[allow(dead_code)]
#[path = "common/tls.rs"]
mod tls;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use programs::{skip, Interactive, Run, Server, IO_TIMEOUT, RUN_TIMEOUT};
use tls::{Pki, TlsClient};

/// `--tls-cert` and `--tls-key` for `pki`'s server certificate, then `extra`.
fn tls_args(pki: &Pki, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--tls-cert".to_string(),
        path(&pki.cert),
        "--tls-key".to_string(),
        path(&pki.key),
    ];
    args.extend(extra.iter().map(ToString::to_string));
    args
}

/// [`tls_args`] with `--tls-client-ca`: mutual TLS.
fn mtls_args(pki: &Pki, extra: &[&str]) -> Vec<String> {
    let mut args = tls_args(pki, &["--tls-client-ca", &path(&pki.ca_file)]);
    args.extend(extra.iter().map(ToString::to_string));
    args
}

fn path(p: &Path) -> String {
    p.to_str().expect("a UTF-8 path").to_string()
}

/// Starts example `name` with `args`.
fn start(name: &str, args: &[String]) -> Server {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(name, &args)
}

// ---------------------------------------------------------------------------------------------
// openssl s_client and echo_upper

/// `openssl s_client` to `addr` as `localhost`, verifying the server against the test CA (and
/// failing if it does not verify).
fn s_client_to(openssl: &Path, addr: SocketAddr, pki: &Pki) -> Command {
    let mut command = Command::new(openssl);
    let addr = addr.to_string();
    command.args(["s_client", "-connect", &addr, "-servername", "localhost"]);
    command.args(["-CAfile", &path(&pki.ca_file), "-verify_return_error"]);
    command
}

/// [`s_client_to`] with the client certificate `identity` if given; the connection's details go
/// to stderr (`-brief`), the server's bytes to stdout.
fn s_client(
    openssl: &Path,
    addr: SocketAddr,
    pki: &Pki,
    identity: Option<(&Path, &Path)>,
) -> Command {
    let mut command = s_client_to(openssl, addr, pki);
    command.arg("-brief");
    if let Some((cert, key)) = identity {
        command.args(["-cert", &path(cert), "-key", &path(key)]);
    }
    command
}

/// Types a line into `openssl s_client` connected to `echo_upper` at `addr` and reads the answer
/// back, then closes its input (it sends `close_notify` and exits).
fn s_client_echoes(
    openssl: &Path,
    addr: SocketAddr,
    pki: &Pki,
    identity: Option<(&Path, &Path)>,
    what: &str,
) {
    let mut client = Interactive::start(s_client(openssl, addr, pki, identity));
    client.send_line("hello over tls");
    assert_eq!(client.next_line(), "HELLO OVER TLS", "{what}");
    let (status, rest, stderr) = client.finish();
    assert!(status.success(), "{what}: {status}\n{rest:?}\n{stderr}");
    assert!(stderr.contains("Verification: OK"), "{what}: {stderr}");
}

/// The serial number (as a number) of the certificate the server at `addr` presents, as
/// `openssl s_client | openssl x509 -serial` shows it.
fn openssl_serial(openssl: &Path, addr: SocketAddr, pki: &Pki) -> u64 {
    // Without -brief it prints the server's certificate (PEM) on stdout.
    let shown = Run::to_completion(s_client_to(openssl, addr, pki), RUN_TIMEOUT);
    assert!(shown.status.success(), "{shown}");
    let mut command = Command::new(openssl);
    command.args(["x509", "-noout", "-serial"]);
    let serial = Run::with_input(command, shown.stdout.as_bytes(), RUN_TIMEOUT);
    assert!(serial.status.success(), "{serial}");
    let hex = serial
        .stdout
        .trim()
        .strip_prefix("serial=")
        .unwrap_or_else(|| panic!("{serial}"));
    u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("{hex}: {e}"))
}

#[test]
fn echo_upper_over_tls_with_openssl_s_client_in_every_mode() {
    let Some(openssl) = skip::program("openssl", "openssl") else {
        return;
    };
    let pki = Pki::new("every-mode");
    for mode in [
        &["--mode", "single"][..],
        &["--mode", "threading"],
        &["--mode", "pool", "--workers", "2"],
        &["--mode", "process"],
        &["--mode", "prefork", "--workers", "2"],
    ] {
        let server = start("echo_upper", &tls_args(&pki, mode));
        // Two connections, one after the other: a single-mode server serves one at a time.
        for _ in 0..2 {
            s_client_echoes(&openssl, server.addr, &pki, None, &format!("{mode:?}"));
        }
        assert_eq!(openssl_serial(&openssl, server.addr, &pki), 1, "{mode:?}");
    }
}

/// Checks that a handshake as `identity` (or none) is refused: the handshake fails, or (TLS 1.3,
/// where the client finishes first) the server's alert comes instead of an answer, and
/// `openssl s_client` exits with an error. Returns its stderr.
fn s_client_refused(
    openssl: &Path,
    addr: SocketAddr,
    pki: &Pki,
    identity: Option<(&Path, &Path)>,
) -> String {
    let mut client = Interactive::start(s_client(openssl, addr, pki, identity));
    client.send_line("hello over tls");
    // Its input stays open: it must be the server that ends it (closing its input first would
    // let it exit before the alert arrives).
    let deadline = Instant::now() + IO_TIMEOUT;
    while !client.has_exited() {
        assert!(
            Instant::now() < deadline,
            "still connected: {}",
            client.stderr_so_far()
        );
        thread::sleep(Duration::from_millis(20));
    }
    let (status, stdout, stderr) = client.finish();
    assert!(
        !stdout.iter().any(|l| l.contains("HELLO")),
        "served: {stdout:?}"
    );
    assert!(!status.success(), "{status}: {stderr}");
    stderr
}

#[test]
fn echo_upper_with_a_client_ca_serves_certified_clients_only() {
    let Some(openssl) = skip::program("openssl", "openssl") else {
        return;
    };
    let pki = Pki::new("mtls-echo");
    for mode in [
        &["--mode", "threading"][..],
        &["--mode", "prefork", "--workers", "2"],
    ] {
        let server = start("echo_upper", &mtls_args(&pki, mode));
        let good = (pki.client_cert.as_path(), pki.client_key.as_path());
        s_client_echoes(
            &openssl,
            server.addr,
            &pki,
            Some(good),
            &format!("{mode:?}"),
        );
        let stderr = s_client_refused(&openssl, server.addr, &pki, None);
        assert!(
            stderr.contains("certificate required"),
            "{mode:?}: {stderr}"
        );
        let stranger = (pki.stranger_cert.as_path(), pki.stranger_key.as_path());
        s_client_refused(&openssl, server.addr, &pki, Some(stranger));
        server.wait_for_log("a client certificate is required");
        // Still serving the certified client after the refusals.
        s_client_echoes(
            &openssl,
            server.addr,
            &pki,
            Some(good),
            &format!("{mode:?}"),
        );
    }
}

#[test]
fn tls_options_are_checked_before_serving() {
    let pki = Pki::new("options");
    let (cert, key, ca) = (path(&pki.cert), path(&pki.key), path(&pki.ca_file));
    let missing = path(&pki.dir.join("missing.crt"));
    let dir = path(&pki.dir);
    // Usage errors: status 2, a message naming the problem, the usage.
    let usage: &[(&[&str], &str)] = &[
        (&["--tls-cert", &cert], "--tls-cert needs --tls-key"),
        (&["--tls-key", &key], "--tls-key needs --tls-cert"),
        (
            &["--tls-client-ca", &ca],
            "--tls-client-ca needs --tls-cert and --tls-key",
        ),
        (&["--tls-cert", &missing, "--tls-key", &key], "no such file"),
        (
            &["--tls-cert", &cert, "--tls-key", &dir],
            "a directory, not a file",
        ),
    ];
    // Files that cannot be used: status 1 and an error naming the file, before listening.
    let unusable: &[(&[&str], String)] = &[
        (
            &["--tls-cert", &key, "--tls-key", &key],
            format!("{key}: no certificate in it"),
        ),
        (
            &["--tls-cert", &cert, "--tls-key", &cert],
            format!("{cert}: no private key"),
        ),
        (
            &["--tls-cert", &cert, "--tls-key", &path(&pki.client_key)],
            "does not belong to the certificate".to_string(),
        ),
    ];
    let cases = usage
        .iter()
        .map(|(args, says)| (*args, 2, says.to_string()))
        .chain(unusable.iter().map(|(args, says)| (*args, 1, says.clone())));
    for (args, status, says) in cases {
        let mut command = Command::new(programs::example("echo_upper"));
        command.args(["--addr", "127.0.0.1:0"]).args(args);
        let run = Run::to_completion(command, RUN_TIMEOUT);
        assert_eq!(run.status.code(), Some(status), "{args:?}: {run}");
        assert!(
            run.stderr.contains(&says),
            "{args:?}: should say {says:?}: {run}"
        );
        assert!(run.stdout.is_empty(), "{args:?}: it must not listen: {run}");
    }
}

/// Reads from `stream` until the server closes it, failing on a timeout: what a plaintext client
/// gets is a TLS alert (or nothing) and the end of the connection, never a wait.
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        assert!(
            Instant::now() < deadline,
            "not closed within {IO_TIMEOUT:?}: {got:?}"
        );
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("expected the server to close the connection, got {e} after {got:?}"),
        }
    }
}

#[test]
fn a_plaintext_client_on_a_tls_port_is_closed_not_kept_waiting() {
    let pki = Pki::new("plaintext");
    let server = start(
        "echo_upper",
        &tls_args(&pki, &["--mode", "pool", "--workers", "2"]),
    );
    // A plaintext line: refused at once, with a TLS alert record (type 21) or nothing.
    let mut plain = programs::connect(server.addr);
    plain.write_all(b"hello\n").unwrap();
    let got = read_until_closed(&mut plain);
    assert!(got.is_empty() || got[0] == 21, "{got:?}");
    server.wait_for_log("not TLS");
    // A plaintext client that waits for the server to speak first: closed at the handshake
    // timeout (5 s by default), within the socket timeout.
    let mut silent = programs::connect(server.addr);
    assert_eq!(read_until_closed(&mut silent), b"");
    // TLS clients are still served.
    let config = pki.client_config(None, &[]);
    let mut client = pki.connect(server.addr, &config).unwrap();
    assert_eq!(ask(&mut client, "still here"), "STILL HERE");
}

/// One line to `echo_upper` over `client`, and its answer (without the newline).
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

// ---------------------------------------------------------------------------------------------
// curl and http_hello

/// `curl` fetching `paths` from the server at `addr` as `https://localhost:<port>`, trusting
/// the test CA, with `extra` arguments.
fn curl(curl: &Path, addr: SocketAddr, pki: &Pki, paths: &[&str], extra: &[&str]) -> Run {
    let port = addr.port();
    let mut command = Command::new(curl);
    command.args(["--silent", "--show-error", "--max-time", "20"]);
    command.args(["--resolve", &format!("localhost:{port}:127.0.0.1")]);
    command.args(["--cacert", &path(&pki.ca_file)]);
    command.args(extra);
    command.args(paths.iter().map(|p| format!("https://localhost:{port}{p}")));
    Run::to_completion(command, RUN_TIMEOUT)
}

/// `http_hello` with `api` over TLS, fetched with curl: two requests on one kept-alive
/// connection, and a plaintext `http://` request refused.
fn http_hello_with_curl(curl_path: &Path, api: &[&str]) {
    let pki = Pki::new("curl");
    let server = start("http_hello", &tls_args(&pki, api));
    let run = curl(
        curl_path,
        server.addr,
        &pki,
        &["/", "/nope"],
        &["--verbose"],
    );
    assert!(run.status.success(), "{api:?}: {run}");
    assert_eq!(run.stdout, "hello\nnot found\n", "{api:?}: {run}");
    assert!(
        run.stderr.contains("Re-using existing connection"),
        "{api:?}: {run}"
    );
    // `Connection: close`: the server ends the stream with close_notify (curl says nothing).
    let run = curl(
        curl_path,
        server.addr,
        &pki,
        &["/"],
        &["--header", "Connection: close"],
    );
    assert!(run.status.success(), "{api:?}: {run}");
    assert_eq!(run.stdout, "hello\n", "{api:?}: {run}");
    // Plaintext HTTP to the TLS port: an error, soon.
    let mut command = Command::new(curl_path);
    command.args(["--silent", "--max-time", "20"]);
    command.arg(format!("http://127.0.0.1:{}/", server.addr.port()));
    let plain = Run::to_completion(command, RUN_TIMEOUT);
    assert!(!plain.status.success(), "{api:?}: {plain}");
    assert_ne!(plain.status.code(), Some(28), "{api:?}: timed out: {plain}");
}

#[test]
fn http_hello_over_tls_with_curl() {
    let Some(curl_path) = skip::program("curl", "curl") else {
        return;
    };
    for api in [
        &[][..],
        &["--mode", "process"],
        &["--mode", "prefork", "--workers", "2"],
    ] {
        http_hello_with_curl(&curl_path, api);
    }
}

#[test]
fn http_hello_with_a_client_ca_serves_curl_with_a_certificate_only() {
    let Some(curl_path) = skip::program("curl", "curl") else {
        return;
    };
    let pki = Pki::new("curl-mtls");
    let server = start("http_hello", &mtls_args(&pki, &[]));
    let (cert, key) = (path(&pki.client_cert), path(&pki.client_key));
    let run = curl(
        &curl_path,
        server.addr,
        &pki,
        &["/"],
        &["--cert", &cert, "--key", &key],
    );
    assert!(run.status.success(), "{run}");
    assert_eq!(run.stdout, "hello\n", "{run}");
    let refused = curl(&curl_path, server.addr, &pki, &["/"], &[]);
    assert!(!refused.status.success(), "{refused}");
    assert!(!refused.stdout.contains("hello"), "{refused}");
    let (cert, key) = (path(&pki.stranger_cert), path(&pki.stranger_key));
    let refused = curl(
        &curl_path,
        server.addr,
        &pki,
        &["/"],
        &["--cert", &cert, "--key", &key],
    );
    assert!(!refused.status.success(), "{refused}");
    assert!(!refused.stdout.contains("hello"), "{refused}");
}

/// A rustls client that reads a whole response up to the server's end of the stream: a server
/// that closes without `close_notify` shows as `UnexpectedEof` (a truncation attack, for all the
/// client can tell).
fn read_to_clean_close(client: &mut TlsClient) -> io::Result<String> {
    let mut got = Vec::new();
    client.read_to_end(&mut got)?;
    Ok(String::from_utf8_lossy(&got).into_owned())
}

#[test]
fn http_hello_and_resp_kv_end_closing_connections_with_close_notify() {
    let pki = Pki::new("close-notify");
    let config = pki.client_config(None, &[]);
    let http = start("http_hello", &tls_args(&pki, &[]));
    let mut client = pki.connect(http.addr, &config).unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let response = read_to_clean_close(&mut client).expect("a clean end of the response");
    assert!(response.ends_with("\r\n\r\nhello\n"), "{response}");

    let kv = start("resp_kv", &tls_args(&pki, &[]));
    let mut client = pki.connect(kv.addr, &config).unwrap();
    client.write_all(b"PING\r\n*1\r\n$x\r\n").unwrap();
    let replies = read_to_clean_close(&mut client).expect("a clean end after the error");
    assert_eq!(
        replies,
        "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
    );
}

// ---------------------------------------------------------------------------------------------
// redis-cli, redis-benchmark and resp_kv

/// `redis-cli` over TLS to the server at `addr`, running `command`; its output.
fn redis_cli(addr: SocketAddr, pki: &Pki, command: &[&str]) -> Run {
    let mut cli = Command::new("redis-cli");
    cli.args(["-h", "127.0.0.1", "-p", &addr.port().to_string()]);
    cli.args([
        "--tls",
        "--sni",
        "localhost",
        "--cacert",
        &path(&pki.ca_file),
    ]);
    cli.args(command);
    Run::to_completion(cli, RUN_TIMEOUT)
}

/// `resp_kv` with `api` over TLS: `redis-cli` sets and gets, and a short `redis-benchmark` run
/// sees no error.
fn resp_kv_with_redis_tools(api: &[&str]) {
    let pki = Pki::new("redis");
    let server = start("resp_kv", &tls_args(&pki, api));
    let set = redis_cli(server.addr, &pki, &["set", "greeting", "hello over tls"]);
    assert!(set.status.success(), "{api:?}: {set}");
    assert_eq!(set.stdout.trim(), "OK", "{api:?}: {set}");
    let get = redis_cli(server.addr, &pki, &["get", "greeting"]);
    assert_eq!(get.stdout.trim(), "hello over tls", "{api:?}: {get}");

    let mut bench = Command::new("redis-benchmark");
    bench.args(["-h", "127.0.0.1", "-p", &server.addr.port().to_string()]);
    bench.args([
        "--tls",
        "--sni",
        "localhost",
        "--cacert",
        &path(&pki.ca_file),
    ]);
    bench.args(["-q", "-n", "2000", "-c", "4", "-P", "8", "-t", "set,get"]);
    let run = Run::to_completion(bench, RUN_TIMEOUT);
    assert!(run.status.success(), "{api:?}: {run}");
    let lines = run
        .stdout
        .lines()
        .filter(|l| l.contains("requests per second"))
        .count();
    assert_eq!(lines, 2, "{api:?}: {run}");
    assert!(
        !run.stdout.contains("ERR") && !run.stderr.contains("rror"),
        "{api:?}: {run}"
    );

    // A plaintext redis-cli gets an error, not a wait.
    let mut plain = Command::new("redis-cli");
    plain.args([
        "-h",
        "127.0.0.1",
        "-p",
        &server.addr.port().to_string(),
        "ping",
    ]);
    let plain = Run::to_completion(plain, RUN_TIMEOUT);
    assert!(!plain.stdout.contains("PONG"), "{api:?}: {plain}");
}

fn redis_tools_installed() -> bool {
    skip::program("redis-cli", "redis-tools").is_some()
        && skip::program("redis-benchmark", "redis-tools").is_some()
}

#[test]
fn resp_kv_over_tls_with_redis_cli_and_redis_benchmark() {
    if redis_tools_installed() {
        resp_kv_with_redis_tools(&[]);
    }
}

// ---------------------------------------------------------------------------------------------
// The message API (`--api message`) over TLS

#[cfg(feature = "message")]
mod message_api {
    use super::*;

    /// The `--api message` runs of [`programs::apis`] (single and pool mode), and prefork.
    fn message_apis() -> Vec<Vec<&'static str>> {
        let mut apis: Vec<Vec<&str>> = programs::apis()
            .into_iter()
            .filter(|api| !api.is_empty())
            .collect();
        apis.push(vec![
            "--api",
            "message",
            "--mode",
            "prefork",
            "--workers",
            "2",
        ]);
        apis
    }

    #[test]
    fn message_api_http_hello_over_tls_with_curl() {
        let Some(curl_path) = skip::program("curl", "curl") else {
            return;
        };
        for api in message_apis() {
            http_hello_with_curl(&curl_path, &api);
        }
    }

    #[test]
    fn message_api_resp_kv_over_tls_with_redis_cli_and_redis_benchmark() {
        if !redis_tools_installed() {
            return;
        }
        // resp_kv keeps its store in one process: no prefork.
        for api in message_apis()
            .into_iter()
            .filter(|a| !a.contains(&"prefork"))
        {
            resp_kv_with_redis_tools(&api);
        }
    }

    #[test]
    fn message_api_http_hello_with_a_client_ca_serves_certified_clients_only() {
        let pki = Pki::new("message-mtls");
        for api in message_apis() {
            let server = start("http_hello", &mtls_args(&pki, &api));
            let good = pki.client_config(Some((&pki.client_cert, &pki.client_key)), &[]);
            let mut client = pki.connect(server.addr, &good).unwrap();
            client
                .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .unwrap();
            // The response, then a clean end (close_notify).
            let response = read_to_clean_close(&mut client).expect("a clean end of the response");
            assert!(response.ends_with("\r\n\r\nhello\n"), "{api:?}: {response}");
            let stranger = pki.client_config(Some((&pki.stranger_cert, &pki.stranger_key)), &[]);
            for config in [pki.client_config(None, &[]), stranger] {
                let served = pki.connect(server.addr, &config).is_ok_and(|mut c| {
                    c.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                        .is_ok()
                        && matches!(c.read(&mut [0u8; 64]), Ok(n) if n > 0)
                });
                assert!(!served, "{api:?}: served without a good certificate");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// remote_cmd over mutual TLS

#[cfg(all(feature = "json", feature = "auth", feature = "checksum"))]
mod remote_cmd {
    use super::*;
    use rustls::ClientConfig;
    use socketserver::auth::{Authenticator, Secret, TimedStream};
    use socketserver::framing::Framing;
    use std::sync::Arc;

    /// A TLS client the HMAC login can time: its socket's timeouts.
    struct Timed(TlsClient);

    impl Read for Timed {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl Write for Timed {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.0.flush()
        }
    }

    impl TimedStream for Timed {
        fn read_timeout(&self) -> io::Result<Option<Duration>> {
            self.0.sock.read_timeout()
        }
        fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
            self.0.sock.set_read_timeout(timeout)
        }
    }

    /// Runs `command` as a framed request (`client remote-cmd`'s form) and returns its output.
    fn run(client: &mut impl ReadWrite, command: &str) -> io::Result<String> {
        let mut request = b"\xffrc1".to_vec();
        request.extend_from_slice(&(command.len() as u32).to_be_bytes());
        request.extend_from_slice(command.as_bytes());
        client.write_all(&request)?;
        let header = Framing::python_struct_i()
            .read_header(client)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no reply"))?;
        let size = header["total_size"].as_u64().expect("total_size") as usize;
        let mut output = vec![0u8; size];
        client.read_exact(&mut output)?;
        Ok(String::from_utf8_lossy(&output).into_owned())
    }

    trait ReadWrite: Read + Write {}
    impl<T: Read + Write> ReadWrite for T {}

    /// A client's attempt that must fail: the handshake, or the first exchange after it.
    fn refused(pki: &Pki, addr: SocketAddr, config: &Arc<ClientConfig>, marker: &Path) {
        if let Ok(mut client) = pki.connect(addr, config) {
            let touch = format!("touch {}", marker.display());
            assert!(run(&mut client, &touch).is_err(), "served");
        }
        assert!(!marker.exists(), "a command ran for a refused client");
    }

    #[test]
    fn remote_cmd_over_mutual_tls_runs_commands_for_certified_clients_only() {
        let pki = Pki::new("remote-cmd");
        let server = start("remote_cmd", &mtls_args(&pki, &[]));
        let log = server.wait_for_log("every connection must present a client certificate");
        assert!(!log.contains("no secret key"), "{log}");
        let good = pki.client_config(Some((&pki.client_cert, &pki.client_key)), &[]);
        let mut client = pki.connect(server.addr, &good).unwrap();
        assert_eq!(run(&mut client, "echo certified").unwrap(), "certified\n");
        assert_eq!(run(&mut client, "echo again").unwrap(), "again\n");
        server.wait_for_log("client certificate CN=alice");

        let marker = pki.dir.join("ran");
        refused(&pki, server.addr, &pki.client_config(None, &[]), &marker);
        let stranger = pki.client_config(Some((&pki.stranger_cert, &pki.stranger_key)), &[]);
        refused(&pki, server.addr, &stranger, &marker);
        server.wait_for_log("a client certificate is required");
    }

    #[test]
    fn remote_cmd_with_mutual_tls_and_a_secret_asks_for_both() {
        let pki = Pki::new("remote-cmd-both");
        let key_file = pki.dir.join("secret");
        std::fs::write(&key_file, "s3cret key\n").unwrap();
        let server = start(
            "remote_cmd",
            &mtls_args(&pki, &["--secret-file", &path(&key_file)]),
        );
        server.wait_for_log("client certificate, then pass an HMAC-sha256 handshake");
        let good = pki.client_config(Some((&pki.client_cert, &pki.client_key)), &[]);
        let auth = Authenticator::new(Secret::new("s3cret key").unwrap());

        let mut client = Timed(pki.connect(server.addr, &good).unwrap());
        auth.respond(&mut client).unwrap();
        assert_eq!(run(&mut client, "echo both").unwrap(), "both\n");

        // The certificate alone: the server's challenge comes where the reply was expected,
        // and nothing runs.
        let marker = pki.dir.join("ran");
        let mut client = pki.connect(server.addr, &good).unwrap();
        let touch = format!("touch {}", marker.display());
        let _ = run(&mut client, &touch);
        server.wait_for_log("authentication failed");
        assert!(!marker.exists(), "a command ran without the HMAC login");
        // The key alone (no certificate): the handshake is refused.
        let no_cert = pki.client_config(None, &[]);
        refused(&pki, server.addr, &no_cert, &marker);
    }

    #[test]
    fn remote_cmd_with_tls_but_no_client_ca_still_refuses_non_loopback_addresses() {
        let pki = Pki::new("remote-cmd-addr");
        let mut command = Command::new(programs::example("remote_cmd"));
        command
            .args(["--addr", "0.0.0.0:0"])
            .args(tls_args(&pki, &[]))
            .env_remove("SOCKETSERVER_SECRET");
        let run = Run::to_completion(command, RUN_TIMEOUT);
        assert_eq!(run.status.code(), Some(1), "{run}");
        assert!(
            run.stderr.contains("refusing to run shell commands"),
            "{run}"
        );
        assert!(run.stderr.contains("--tls-client-ca"), "{run}");
        assert!(run.stdout.is_empty(), "it must not even listen: {run}");
    }
}

// ---------------------------------------------------------------------------------------------
// Certificate rotation with SIGHUP

// SIGHUP reloads with `stop_on_signals` (feature `signals`); without it, it ends the server.
#[cfg(feature = "signals")]
mod rotation {
    use super::*;
    use crate::tls::{server_serial, write_atomically};
    use programs::LOG_TIMEOUT;
    use rustls::ClientConfig;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A client loop: up to `max` connections one after another, each a TLS handshake and one line
    /// answered, until told to stop (after at least `min`). Counts them, keeps the failures, and
    /// notes each server certificate serial it saw.
    struct ClientLoop {
        done: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
        thread: thread::JoinHandle<(usize, Vec<String>, Vec<u64>)>,
    }

    impl ClientLoop {
        fn start(pki: &Pki, addr: SocketAddr, min: usize, max: usize) -> ClientLoop {
            let config = full_handshakes(pki);
            let done = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let (counter, stopping) = (Arc::clone(&done), Arc::clone(&stop));
            let thread = thread::spawn(move || {
                let (mut failures, mut serials) = (Vec::new(), Vec::new());
                let mut n = 0;
                while n < max && (n < min || !stopping.load(Ordering::Acquire)) {
                    match exchange(addr, &config, n) {
                        Ok(serial) => {
                            if serials.last() != Some(&serial) {
                                serials.push(serial);
                            }
                        }
                        Err(e) => failures.push(format!("request {n}: {e}")),
                    }
                    n += 1;
                    counter.store(n, Ordering::Release);
                }
                (n, failures, serials)
            });
            ClientLoop { done, stop, thread }
        }

        /// Waits until the loop has made `n` requests in all.
        fn wait_for(&self, n: usize) {
            let deadline = Instant::now() + LOG_TIMEOUT;
            while self.done.load(Ordering::Acquire) < n {
                assert!(!self.thread.is_finished(), "the client loop ended early");
                assert!(Instant::now() < deadline, "the client loop is stuck");
                thread::sleep(Duration::from_millis(5));
            }
        }

        /// Stops the loop: how many requests it made, the failures, the serials seen in order.
        fn finish(self) -> (usize, Vec<String>, Vec<u64>) {
            self.stop.store(true, Ordering::Release);
            self.thread.join().expect("the client loop panicked")
        }
    }

    /// One connection: handshake, one line answered; the serial of the server's certificate.
    fn exchange(addr: SocketAddr, config: &Arc<ClientConfig>, n: usize) -> io::Result<u64> {
        let mut client = tls::connect_as(addr, config, "localhost")?;
        let line = format!("request {n}\n");
        client.write_all(line.as_bytes())?;
        let mut answer = vec![0u8; line.len()];
        client.read_exact(&mut answer)?;
        if answer != line.to_uppercase().as_bytes() {
            return Err(io::Error::other(format!("wrong answer {answer:?}")));
        }
        Ok(serial(&client))
    }

    /// A client configuration that resumes no session: a resumed handshake presents no
    /// certificate (rustls reports the one of the original session), and each must show the one the
    /// server presents now.
    fn full_handshakes(pki: &Pki) -> Arc<ClientConfig> {
        let mut config = (*pki.client_config(None, &[])).clone();
        config.resumption = rustls::client::Resumption::disabled();
        Arc::new(config)
    }

    fn serial(client: &TlsClient) -> u64 {
        u64::from_str_radix(&server_serial(client), 16).expect("a hexadecimal serial")
    }

    /// The serial the server at `addr` presents to a new handshake.
    fn serial_now(pki: &Pki, addr: SocketAddr) -> u64 {
        exchange(addr, &full_handshakes(pki), 0).expect("a TLS exchange")
    }

    /// Replaces the certificate file with one that holds no certificate.
    fn break_certificate(pki: &Pki) {
        write_atomically(&pki.cert, b"not a certificate\n");
    }

    #[test]
    fn echo_upper_reloads_its_certificate_on_sighup_without_failing_a_request() {
        for mode in [
            &["--mode", "threading"][..],
            &["--mode", "pool", "--workers", "2"],
        ] {
            let mut pki = Pki::new("rotate");
            let server = start("echo_upper", &tls_args(&pki, mode));
            assert_eq!(serial_now(&pki, server.addr), 1, "{mode:?}");
            // A connection open across the reload keeps its session.
            let config = pki.client_config(None, &[]);
            let mut open = pki.connect(server.addr, &config).unwrap();
            assert_eq!(ask(&mut open, "before"), "BEFORE");

            let clients = ClientLoop::start(&pki, server.addr, 60, 400);
            clients.wait_for(20);
            let (cert, key) = (pki.cert.clone(), pki.key.clone());
            pki.write_server_cert(2, &cert, &key);
            server.signal(libc::SIGHUP);
            server.wait_for_log("reloaded the certificates");
            let at_reload = clients.done.load(Ordering::Acquire);
            clients.wait_for(at_reload + 20);
            let (made, failures, serials) = clients.finish();
            assert!(
                failures.is_empty(),
                "{mode:?}: {} of {made} failed: {failures:?}",
                failures.len()
            );
            assert_eq!(serials, [1, 2], "{mode:?}: serials seen in order");
            assert_eq!(serial_now(&pki, server.addr), 2, "{mode:?}");
            assert_eq!(ask(&mut open, "after"), "AFTER", "{mode:?}");
            assert_eq!(serial(&open), 1, "{mode:?}");

            // A broken file: the reload fails, says why, and the certificate in use stays.
            let clients = ClientLoop::start(&pki, server.addr, 40, 400);
            clients.wait_for(10);
            break_certificate(&pki);
            server.signal(libc::SIGHUP);
            let log = server.wait_for_log("reload failed, still serving the previous certificates");
            assert!(
                log.contains(&format!("{}: no certificate", pki.cert.display())),
                "{log}"
            );
            let (made, failures, serials) = clients.finish();
            assert!(
                failures.is_empty(),
                "{mode:?}: {} of {made} failed: {failures:?}",
                failures.len()
            );
            assert_eq!(serials, [2], "{mode:?}");
            assert_eq!(serial_now(&pki, server.addr), 2, "{mode:?}");
        }
    }

    #[test]
    fn prefork_sighup_moves_workers_to_the_new_certificate_and_a_broken_one_keeps_the_old() {
        const WORKERS: usize = 2;
        let mut pki = Pki::new("rotate-prefork");
        let server = start(
            "echo_upper",
            &tls_args(&pki, &["--mode", "prefork", "--workers", "2"]),
        );
        server.wait_for_log_count("started (pid", WORKERS);
        assert_eq!(serial_now(&pki, server.addr), 1);

        let clients = ClientLoop::start(&pki, server.addr, 60, 600);
        clients.wait_for(20);
        let (cert, key) = (pki.cert.clone(), pki.key.clone());
        pki.write_server_cert(2, &cert, &key);
        server.signal(libc::SIGHUP);
        server.wait_for_log("prefork: reload done");
        // Once the old workers are gone, every handshake is a fresh worker's.
        server.wait_for_log_count("retired", WORKERS);
        let at_reload = clients.done.load(Ordering::Acquire);
        clients.wait_for(at_reload + 20);
        let (made, failures, serials) = clients.finish();
        assert!(
            failures.is_empty(),
            "{} of {made} failed: {failures:?}",
            failures.len()
        );
        assert_eq!(serials.first(), Some(&1), "{serials:?}");
        assert_eq!(serials.last(), Some(&2), "{serials:?}");
        for _ in 0..10 {
            assert_eq!(serial_now(&pki, server.addr), 2);
        }

        // A broken file: the fresh workers cannot start; the old ones go on with the certificate
        // they have, and the log says why.
        let clients = ClientLoop::start(&pki, server.addr, 40, 600);
        clients.wait_for(10);
        break_certificate(&pki);
        server.signal(libc::SIGHUP);
        let log = server.wait_for_log_count("before serving; the old one goes on", WORKERS);
        assert!(
            log.contains(&format!("{}: no certificate", pki.cert.display())),
            "{log}"
        );
        let log = server.wait_for_log_count("prefork: reload done", 2);
        assert!(log.contains("could not be replaced"), "{log}");
        let (made, failures, serials) = clients.finish();
        assert!(
            failures.is_empty(),
            "{} of {made} failed: {failures:?}",
            failures.len()
        );
        assert_eq!(serials, [2]);
        for _ in 0..10 {
            assert_eq!(serial_now(&pki, server.addr), 2);
        }
    }
}
