//! Feature `metrics` against the example servers, as an operator would run them: `promtool
//! check metrics` accepts their exposition, their status page renders in headless Chromium with
//! the counters in it, and a real Prometheus scraping them (stream and message APIs, threads,
//! pool and prefork) reads back, through its query API, what the clients did. Each program that
//! is missing skips its test visibly (or fails it with `SOCKETSERVER_TEST_REQUIRE_ALL`).
#![cfg(feature = "metrics")]

#[path = "admin_http/mod.rs"]
mod admin_http;
mod programs;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use admin_http::get;
use programs::{skip, IO_TIMEOUT};
use socketserver::framing::serde_json::{self, Value};

/// How long Prometheus may take to start and to scrape what the clients did.
const PROMETHEUS_WAIT: Duration = Duration::from_secs(90);

/// An `echo_server --proto line` with `--metrics` on loopback and `args`, that served `connections`
/// clients of `lines` lines each; and its metrics address.
fn busy_echo(args: &[&str], connections: usize, lines: usize) -> (programs::Server, SocketAddr) {
    let mut all = vec!["--proto", "line", "--metrics", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let server = programs::Server::start("echo_server", &all);
    drive(server.addr, connections, lines);
    let metrics = server.metrics.expect("a `metrics on` line");
    assert_ne!(metrics, server.addr, "the admin listener has its own port");
    (server, metrics)
}

#[test]
fn promtool_accepts_the_exposition() {
    let Some(promtool) = skip::program("promtool", "prometheus") else {
        return;
    };
    for args in [
        &["--mode", "threading"][..],
        &["--api", "message", "--mode", "pool"],
    ] {
        let (_server, metrics) = busy_echo(args, 3, 2);
        let (status, text) = get(programs::connect(metrics), "/metrics");
        assert_eq!(status, "HTTP/1.0 200 OK");
        let mut child = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start promtool");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let (ok, out) = wait_output(child, Duration::from_secs(30));
        assert!(ok, "promtool check metrics failed:\n{out}\n{text}");
    }
}

/// Waits (boundedly) for `child`: whether it succeeded, and what it printed.
fn wait_output(mut child: Child, timeout: Duration) -> (bool, String) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            if let Some(mut s) = child.stdout.take() {
                let _ = s.read_to_string(&mut out);
            }
            if let Some(mut s) = child.stderr.take() {
                let _ = s.read_to_string(&mut out);
            }
            return (status.success(), out);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{child:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_status_page_shows_the_counters_in_headless_chromium() {
    let Some(chromium) = skip::program("chromium", "chromium") else {
        return;
    };
    let (_server, metrics) = busy_echo(&["--mode", "threading"], 7, 3);
    // Counted once each connection's handler has returned, just after it closed.
    let deadline = Instant::now() + PROMETHEUS_WAIT;
    while !get(programs::connect(metrics), "/metrics")
        .1
        .contains("socketserver_requests_total{outcome=\"completed\"} 7\n")
    {
        assert!(
            Instant::now() < deadline,
            "the 7 connections were not counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let dir = programs::scratch("status_page_chromium");
    let url = format!("http://{metrics}/");
    let chrome = |extra: &[&str]| {
        let child = Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", dir.join("profile").display()))
            .args(extra)
            .arg(&url)
            .env("HOME", &dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        wait_output(child, Duration::from_secs(90))
    };
    let (ok, dom) = chrome(&["--dump-dom"]);
    assert!(ok, "chromium --dump-dom failed:\n{dom}");
    // The DOM as the browser built it: 7 connections, 21 lines of 5 bytes each way.
    for row in [
        "accepted</td><td class=\"n\">7</td>",
        "completed</td><td class=\"n\">7</td>",
        "bytes in</td><td class=\"n\">105</td>",
        "bytes out</td><td class=\"n\">105</td>",
    ] {
        assert!(dom.contains(row), "{row} not in:\n{dom}");
    }
    assert!(dom.contains("id=\"latency\""), "{dom}");
    let png = dir.join("status.png");
    let (ok, out) = chrome(&[
        &format!("--screenshot={}", png.display()),
        "--window-size=1000,900",
    ]);
    assert!(ok, "chromium --screenshot failed:\n{out}");
    let bytes = std::fs::read(&png).expect("the screenshot");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // A blank page of that size compresses to a few KiB; tables of text do not.
    assert!(
        bytes.len() > 20_000,
        "a near-empty screenshot: {} bytes",
        bytes.len()
    );
}

// ------------------------------------------------------------------------------------------
// A real Prometheus

/// A Prometheus server on loopback scraping `targets` every second; killed when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
}

impl Prometheus {
    /// Starts `program` and waits (boundedly) until it is ready.
    fn start(program: &Path, test: &str, jobs: &[(&str, SocketAddr)]) -> Prometheus {
        let dir = programs::scratch(test);
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        for (job, target) in jobs {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
            ));
        }
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        // A free port on loopback, read back from a socket closed just before Prometheus binds it.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(program)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let prometheus = Prometheus { child, addr };
        let deadline = Instant::now() + PROMETHEUS_WAIT;
        loop {
            if let Ok(stream) = TcpStream::connect(addr) {
                stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                if get(stream, "/-/ready").0.contains("200") {
                    return prometheus;
                }
            }
            let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "prometheus not ready:\n{log}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The value of the instant vector `query`, if it has exactly one sample.
    fn query(&self, query: &str) -> Option<f64> {
        let stream = TcpStream::connect(self.addr).ok()?;
        stream.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
        let (status, body) = get(stream, &format!("/api/v1/query?query={}", encode(query)));
        assert!(status.contains("200"), "{status}: {body}");
        let json: Value = serde_json::from_str(&body).expect("JSON from Prometheus");
        let result = json["data"]["result"].as_array()?;
        match &result[..] {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query for a URL.
fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `connections` clients of `lines` lines each to an `echo_server --proto line`, each closed
/// once its answers are back.
fn drive(addr: SocketAddr, connections: usize, lines: usize) {
    for c in 0..connections {
        let client = programs::connect(addr);
        let mut reader = BufReader::new(client.try_clone().unwrap());
        for l in 0..lines {
            (&client)
                .write_all(format!("c{c}l{l}\n").as_bytes())
                .unwrap();
            let mut answer = String::new();
            reader.read_line(&mut answer).unwrap();
            assert_eq!(answer, format!("c{c}l{l}\n"));
        }
    }
}

/// The bytes `drive` sends: `c<c>l<l>\n` per line.
fn driven_bytes(connections: usize, lines: usize) -> f64 {
    let mut total = 0;
    for c in 0..connections {
        for l in 0..lines {
            total += format!("c{c}l{l}\n").len();
        }
    }
    total as f64
}

#[test]
fn prometheus_reads_back_what_the_clients_did_in_both_apis_and_in_prefork() {
    let Some(program) = skip::program("prometheus", "prometheus") else {
        return;
    };
    const CONNECTIONS: usize = 6;
    const LINES: usize = 5;
    let line = ["--proto", "line", "--metrics", "127.0.0.1:0"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        line.iter().chain(extra).copied().collect()
    };
    let servers = [
        ("stream_threading", with(&["--mode", "threading"])),
        (
            "stream_prefork",
            with(&["--mode", "prefork", "--workers", "4"]),
        ),
        (
            "message_single",
            with(&["--api", "message", "--mode", "single"]),
        ),
        (
            "message_pool",
            with(&["--api", "message", "--mode", "pool", "--workers", "2"]),
        ),
        (
            "message_prefork",
            with(&["--api", "message", "--mode", "prefork", "--workers", "2"]),
        ),
    ];
    let running: Vec<(&str, programs::Server)> = servers
        .iter()
        .map(|(job, args)| (*job, programs::Server::start("echo_server", args)))
        .collect();
    let jobs: Vec<(&str, SocketAddr)> = running
        .iter()
        .map(|(job, server)| (*job, server.metrics.expect("a metrics line")))
        .collect();
    let prometheus = Prometheus::start(&program, "prometheus_scrapes_examples", &jobs);
    for (_, server) in &running {
        drive(server.addr, CONNECTIONS, LINES);
    }
    let (connections, messages) = (CONNECTIONS as f64, (CONNECTIONS * LINES) as f64);
    let bytes = driven_bytes(CONNECTIONS, LINES);
    for (job, _) in &running {
        let mut want = vec![
            ("socketserver_connections_accepted_total", connections),
            (
                "socketserver_requests_total{outcome=\"completed\"}",
                connections,
            ),
            ("socketserver_active", 0.0),
            ("socketserver_received_bytes_total", bytes),
            ("socketserver_sent_bytes_total", bytes),
        ];
        if job.starts_with("stream") {
            want.push(("socketserver_request_duration_seconds_count", connections));
        } else {
            want.push(("socketserver_messages_total{outcome=\"handled\"}", messages));
            want.push(("socketserver_message_duration_seconds_count", messages));
        }
        if job.ends_with("prefork") {
            let workers = if job.starts_with("stream") { 4.0 } else { 2.0 };
            want.push(("socketserver_prefork_workers", workers));
        }
        for (metric, value) in want {
            let query = match metric.split_once('{') {
                Some((name, labels)) => format!("{name}{{job=\"{job}\",{labels}"),
                None => format!("{metric}{{job=\"{job}\"}}"),
            };
            let deadline = Instant::now() + PROMETHEUS_WAIT;
            let mut got = prometheus.query(&query);
            while got != Some(value) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(250));
                got = prometheus.query(&query);
            }
            assert_eq!(got, Some(value), "{query}");
        }
    }
}
