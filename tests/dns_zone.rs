//! The `dns_zone` example queried by `dig` (Debian package `bind9-dnsutils`) in every datagram
//! mode: answers with the AA bit, NXDOMAIN and NODATA with the SOA, REFUSED outside the zone,
//! the TC bit for a large answer without EDNS and none with a 4096-byte EDNS size; FORMERR for a
//! malformed packet sent over a plain socket; a zone file it cannot serve refused at startup with
//! its line; and a flood of random and truncated packets after which it still answers.
//!
//! Without dig the dig tests print `SKIPPED` and pass, or fail under
//! `SOCKETSERVER_TEST_REQUIRE_ALL` (which `.ci/run` sets after installing it).

mod programs;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use programs::{example, scratch, Run, Server, IO_TIMEOUT, RUN_TIMEOUT};

/// The sample zone shipped with the example.
fn zone_file() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/dns_zone/example.zone"
    )
    .to_string()
}

/// The mode arguments of every datagram mode.
const MODES: &[&[&str]] = &[
    &["--mode", "single"],
    &["--mode", "threading"],
    &["--mode", "pool", "--workers", "2"],
    &["--mode", "process"],
    &["--mode", "prefork", "--workers", "2"],
];

fn start(mode: &[&str]) -> Server {
    let zone = zone_file();
    let mut args = vec!["--zone", zone.as_str()];
    args.extend_from_slice(mode);
    Server::start("dns_zone", &args)
}

/// The path of dig, or `None` (after the `SKIPPED` line, or a panic under `REQUIRE_ALL`).
fn dig() -> Option<PathBuf> {
    programs::skip::program("dig", "bind9-dnsutils")
}

/// What dig printed of one answer: status, flags and the records of each section.
#[derive(Debug)]
struct Reply {
    status: String,
    flags: Vec<String>,
    answer: Vec<String>,
    authority: Vec<String>,
    text: String,
}

impl Reply {
    fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

/// `dig @ADDR -p PORT <query> +tries=1 +time=2`, parsed.
fn query(dig: &PathBuf, server: SocketAddr, query: &[&str]) -> Reply {
    let mut command = Command::new(dig);
    command
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string()])
        .args(query)
        .args(["+tries=1", "+time=2", "+norecurse"]);
    let run = Run::to_completion(command, RUN_TIMEOUT);
    assert!(run.status.success(), "dig {query:?} failed: {run}");
    let text = run.stdout;
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("dig {query:?}: no status in\n{text}"))
        .to_string();
    let flags = text
        .split(";; flags: ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("dig {query:?}: no flags in\n{text}"))
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let section = |title: &str| -> Vec<String> {
        text.split(&format!(";; {title} SECTION:\n"))
            .nth(1)
            .map(|rest| {
                rest.lines()
                    .take_while(|line| !line.is_empty())
                    .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
                    .collect()
            })
            .unwrap_or_default()
    };
    Reply {
        status,
        flags,
        answer: section("ANSWER"),
        authority: section("AUTHORITY"),
        text: text.clone(),
    }
}

/// The checks of one server, whatever its mode.
fn check_answers(dig: &PathBuf, addr: SocketAddr, mode: &[&str]) {
    let ask = |q: &[&str]| query(dig, addr, q);
    let soa = "example.org. 300 IN SOA ns1.example.org. hostmaster.example.org. 2026120801 7200 900 1209600 300";

    let r = ask(&["www.example.org", "A"]);
    assert_eq!(r.status, "NOERROR", "{mode:?} {}", r.text);
    assert!(r.has_flag("aa"), "{mode:?} {}", r.text);
    assert_eq!(
        r.answer,
        ["www.example.org. 300 IN A 192.0.2.10"],
        "{mode:?}"
    );

    // Case-insensitive, and the question's case comes back.
    let r = ask(&["WwW.ExAmPlE.oRg", "AAAA"]);
    assert_eq!(
        r.answer,
        ["WwW.ExAmPlE.oRg. 300 IN AAAA 2001:db8::10"],
        "{mode:?}"
    );
    assert!(r.has_flag("aa"), "{mode:?} {}", r.text);

    let r = ask(&["hello.example.org", "TXT"]);
    assert_eq!(
        r.answer,
        ["hello.example.org. 3600 IN TXT \"Hello from socketserver\" \"a second string\""],
        "{mode:?}"
    );

    let r = ask(&["example.org", "NS"]);
    assert!(r.has_flag("aa"), "{mode:?} {}", r.text);
    assert_eq!(
        r.answer,
        [
            "example.org. 3600 IN NS ns1.example.org.",
            "example.org. 3600 IN NS ns2.example.net."
        ],
        "{mode:?}"
    );

    let r = ask(&["example.org", "SOA"]);
    assert!(r.has_flag("aa"), "{mode:?} {}", r.text);
    assert_eq!(r.answer, [soa.replace(" 300 IN", " 3600 IN")], "{mode:?}");

    let r = ask(&["nope.example.org", "A"]);
    assert_eq!(r.status, "NXDOMAIN", "{mode:?} {}", r.text);
    assert!(r.has_flag("aa"), "{mode:?} {}", r.text);
    assert!(r.answer.is_empty(), "{mode:?} {}", r.text);
    assert_eq!(r.authority, [soa], "{mode:?}");

    // NODATA: a name with records, none of the type; a name with only names below it.
    for name in ["mail.example.org", "deep.example.org"] {
        let r = ask(&[name, "AAAA"]);
        assert_eq!(r.status, "NOERROR", "{mode:?} {name} {}", r.text);
        assert!(r.has_flag("aa"), "{mode:?} {}", r.text);
        assert!(r.answer.is_empty(), "{mode:?} {name} {}", r.text);
        assert_eq!(r.authority, [soa], "{mode:?} {name}");
    }

    let r = ask(&["www.example.net", "A"]);
    assert_eq!(r.status, "REFUSED", "{mode:?} {}", r.text);
    assert!(!r.has_flag("aa"), "{mode:?} {}", r.text);

    // Ten 200-byte strings: truncated without EDNS, whole with a 4096-byte EDNS size.
    let r = ask(&["big.example.org", "TXT", "+noedns", "+ignore"]);
    assert!(r.has_flag("tc"), "{mode:?} {}", r.text);
    assert!(r.answer.is_empty(), "{mode:?} {}", r.text);
    let r = ask(&["big.example.org", "TXT", "+bufsize=4096", "+ignore"]);
    assert!(!r.has_flag("tc"), "{mode:?} {}", r.text);
    assert_eq!(r.answer.len(), 10, "{mode:?} {}", r.text);
    assert!(r.text.contains("; EDNS: version: 0"), "{mode:?} {}", r.text);
}

#[test]
fn dig_gets_authoritative_answers_in_every_mode() {
    let Some(dig) = dig() else { return };
    for mode in MODES {
        let server = start(mode);
        check_answers(&dig, server.addr, mode);
    }
}

/// A plain query for `name`, type A, with `id`.
fn raw_query(id: u16, name: &str) -> Vec<u8> {
    let mut p = id.to_be_bytes().to_vec();
    p.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.extend_from_slice(&[0, 0, 1, 0, 1]);
    p
}

/// A client socket with timeouts, connected to the server.
fn client(server: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    socket.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    socket.connect(server).unwrap();
    socket
}

/// Sends `packet` and returns the reply whose id is `id` (earlier replies are skipped), within
/// [`IO_TIMEOUT`].
fn exchange(socket: &UdpSocket, packet: &[u8], id: u16) -> Vec<u8> {
    socket.send(packet).unwrap();
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut buf = [0u8; 4096];
    loop {
        assert!(Instant::now() < deadline, "no reply with id {id}");
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no reply with id {id}: {e}"));
        if n >= 12 && buf[..2] == id.to_be_bytes() {
            return buf[..n].to_vec();
        }
    }
}

/// [`exchange`] as a resolver does it: the query sent again each second without a reply, for
/// up to [`IO_TIMEOUT`] in all.
fn retried_exchange(socket: &UdpSocket, packet: &[u8], id: u16) -> Vec<u8> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut buf = [0u8; 4096];
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    while Instant::now() < deadline {
        socket.send(packet).unwrap();
        let try_until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < try_until {
            match socket.recv(&mut buf) {
                Ok(n) if n >= 12 && buf[..2] == id.to_be_bytes() => {
                    socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                    return buf[..n].to_vec();
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    panic!("no reply with id {id} to a query sent every second for {IO_TIMEOUT:?}");
}

#[test]
fn malformed_queries_get_formerr_in_every_mode() {
    for mode in MODES {
        let server = start(mode);
        let socket = client(server.addr);
        let good = raw_query(0x4242, "www.example.org");
        // The question cut short: the name's last label runs past the end.
        let reply = exchange(&socket, &good[..good.len() - 8], 0x4242);
        assert_eq!(reply.len(), 12, "{mode:?}: a header only: {reply:?}");
        assert_eq!(reply[2] & 0x80, 0x80, "{mode:?}: QR");
        assert_eq!(reply[3] & 0x0F, 1, "{mode:?}: FORMERR: {reply:?}");
        // Two questions claimed, one sent.
        let mut two = raw_query(0x4343, "www.example.org");
        two[5] = 2;
        let reply = exchange(&socket, &two, 0x4343);
        assert_eq!(reply[3] & 0x0F, 1, "{mode:?}: FORMERR: {reply:?}");
        // And the server still answers a good one, authoritatively.
        let reply = exchange(&socket, &good, 0x4242);
        assert_eq!(reply[2] & 0x84, 0x84, "{mode:?}: QR and AA: {reply:?}");
        assert_eq!(reply[3] & 0x0F, 0, "{mode:?}: NOERROR: {reply:?}");
        assert_eq!(&reply[reply.len() - 4..], &[192, 0, 2, 10], "{mode:?}");
    }
}

/// xorshift64: deterministic junk, so a failure can be replayed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn random_and_truncated_packets_never_kill_the_server() {
    // Fewer packets where each costs a process.
    let cases: &[(&[&str], usize)] = &[
        (&["--mode", "single"], 3000),
        (&["--mode", "pool", "--workers", "2"], 3000),
        (&["--mode", "prefork", "--workers", "2"], 3000),
        (&["--mode", "process"], 200),
    ];
    for &(mode, count) in cases {
        let mut server = start(mode);
        let socket = client(server.addr);
        let mut state = 0x1234_5678_9ABC_DEF1u64;
        let base = raw_query(7, "www.example.org");
        let deadline = Instant::now() + Duration::from_secs(60);
        for i in 0..count {
            assert!(Instant::now() < deadline, "{mode:?}: flood took too long");
            let r = next(&mut state);
            let packet: Vec<u8> = match i % 3 {
                // A valid query cut anywhere.
                0 => base[..(r as usize) % base.len()].to_vec(),
                // A valid query with a few bytes changed (header bits, lengths, counts).
                1 => {
                    let mut p = base.clone();
                    for k in 0..3 {
                        let at = ((r >> (8 * k)) as usize) % p.len();
                        p[at] = (r >> (32 + 8 * k)) as u8;
                    }
                    p
                }
                // Random bytes of a random length up to 600.
                _ => (0..(r % 600)).map(|_| next(&mut state) as u8).collect(),
            };
            socket.send(&packet).unwrap();
            if i % 64 == 63 {
                // Let the server keep up: the socket's buffer is not the thing under test.
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        // A resolver retries a lost query, and so does this: a pool's full queue drops the
        // datagrams it cannot take while it works through the flood (by design, bounded).
        let reply = retried_exchange(&socket, &raw_query(0x7777, "www.example.org"), 0x7777);
        assert_eq!(reply[3] & 0x0F, 0, "{mode:?}: NOERROR after the flood");
        assert!(
            server.wait_exit(Duration::from_millis(10)).is_none(),
            "{mode:?}: the server exited"
        );
        let log = server.log_so_far();
        assert!(!log.contains("panicked"), "{mode:?}: {log}");
    }
}

#[test]
fn a_zone_it_cannot_serve_is_refused_at_startup() {
    let dir = scratch("dns_zone_bad");
    let path = dir.join("bad.zone");
    std::fs::write(
        &path,
        "$ORIGIN example.org.\n$TTL 60\n@ SOA ns1 hostmaster 1 2 3 4 5\nmx MX 10 mail\n",
    )
    .unwrap();
    let mut command = Command::new(example("dns_zone"));
    command.args(["--addr", "127.0.0.1:0", "--zone", path.to_str().unwrap()]);
    let run = Run::to_completion(command, RUN_TIMEOUT);
    assert_eq!(run.status.code(), Some(1), "{run}");
    assert!(run.stdout.is_empty(), "{run}");
    assert!(
        run.stderr
            .contains("bad.zone:4: record type MX is not supported"),
        "{run}"
    );

    let mut command = Command::new(example("dns_zone"));
    command.args(["--addr", "127.0.0.1:0"]);
    let run = Run::to_completion(command, RUN_TIMEOUT);
    assert_eq!(run.status.code(), Some(2), "{run}");
    assert!(run.stderr.contains("--zone FILE is required"), "{run}");
}
