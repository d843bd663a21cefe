//! `resp_kv` against hostile clients, as the attacks were run: a command trickled after a
//! burst costs parser steps linear in its bytes (counted by the server's `INFO`, not timed);
//! clients that never read their large `GET` replies do not grow its memory; and past
//! `--max-memory` a connection is refused with `-OOM` while the others are served.

mod programs;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use programs::{apis, connect, Server, IO_TIMEOUT};

/// Reads exactly `len` bytes.
fn read_exact(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut got = vec![0; len];
    stream
        .read_exact(&mut got)
        .unwrap_or_else(|e| panic!("expected {len} bytes: {e}"));
    got
}

/// Reads until the server closes the connection.
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    stream
        .read_to_end(&mut got)
        .unwrap_or_else(|e| panic!("expected the server to close: {e}"));
    String::from_utf8_lossy(&got).into_owned()
}

/// Sends `command` and returns the one-line reply.
fn ask(stream: &mut TcpStream, command: &str) -> String {
    stream.write_all(command.as_bytes()).unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8];
    while !line.ends_with(b"\r\n") {
        stream.read_exact(&mut byte).expect("a reply line");
        line.push(byte[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// The value of `field` in the server's `INFO`.
fn info(stream: &mut TcpStream, field: &str) -> u64 {
    let header = ask(stream, "INFO\r\n");
    let len: usize = header[1..header.len() - 2].parse().expect("a bulk length");
    let body = read_exact(stream, len + 2);
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO: {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Polls `INFO` (for at most [`IO_TIMEOUT`]) until `field` reaches `at_least`.
fn wait_for_info(stream: &mut TcpStream, field: &str, at_least: u64) -> u64 {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let value = info(stream, field);
        if value >= at_least {
            return value;
        }
        assert!(Instant::now() < deadline, "{field} stayed at {value}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// The server's resident memory, in bytes.
fn rss(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kib * 1024
}

fn set_command(key: &str, len: usize) -> Vec<u8> {
    format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${len}\r\n", key.len()).into_bytes()
}

#[test]
fn resp_kv_parses_a_trickled_command_in_steps_linear_in_its_bytes() {
    for api in apis() {
        trickled_command(&api);
    }
}

fn trickled_command(api: &[&str]) {
    let server = Server::start("resp_kv", api);
    let mut attacker = connect(server.addr);
    let mut observer = connect(server.addr);
    const ARG: &[u8] = b"$1\r\nx\r\n";
    let (burst, trickle, per_write) = (30_000, 300, 5);
    let count = burst + trickle * per_write;
    attacker
        .write_all(format!("*{count}\r\n").as_bytes())
        .unwrap();
    attacker.write_all(&ARG.repeat(burst)).unwrap();
    let mut sent = 10 + ARG.len() * burst;
    // Then a few arguments per write, each in a read of its own: before, every read parsed the
    // whole command again (some 300 x 210 KB examined).
    for _ in 0..trickle - 1 {
        attacker.write_all(&ARG.repeat(per_write)).unwrap();
        sent += ARG.len() * per_write;
        thread::sleep(Duration::from_millis(1));
    }
    // The counters are published every 16 KiB of input; all but the last write have been read.
    let received = wait_for_info(&mut observer, "total_net_input_bytes", sent as u64 - 16_384);
    let steps = info(&mut observer, "parser_steps");
    assert!(
        steps <= 3 * received + 65_536,
        "{steps} parser steps for {received} bytes received"
    );
    // The command is whole once its last arguments arrive, and answered.
    attacker.write_all(&ARG.repeat(per_write)).unwrap();
    let reply = ask(&mut attacker, "");
    assert!(reply.starts_with("-ERR unknown command 'x'"), "{reply}");
    assert_eq!(ask(&mut attacker, "PING\r\n"), "+PONG\r\n");
}

#[test]
fn resp_kv_clients_that_never_read_a_large_value_do_not_grow_its_memory() {
    // With `--api message` the value is queued shared with the store (`Reply::write_shared`).
    for api in apis() {
        never_read_large_values(&api);
    }
}

fn never_read_large_values(api: &[&str]) {
    let budget = 8 << 20;
    let budget_arg = budget.to_string();
    let server = Server::start("resp_kv", &[api, &["--max-memory", &budget_arg]].concat());
    let mut client = connect(server.addr);
    let value_len = 4 << 20;
    let value: Vec<u8> = (0..value_len).map(|i| (i % 251) as u8).collect();
    client.write_all(&set_command("big", value_len)).unwrap();
    client.write_all(&value).unwrap();
    assert_eq!(ask(&mut client, "\r\n"), "+OK\r\n", "{api:?}");
    assert_eq!(ask(&mut client, "SET small v\r\n"), "+OK\r\n");
    let before = rss(&server);

    // Twenty clients each ask for the value three times, and read nothing. Before, each reply
    // was copied into the connection's buffer: 20 x 3 x 4 MiB.
    let readers: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut reader = connect(server.addr);
            reader.write_all(&b"GET big\r\n".repeat(3)).unwrap();
            reader
        })
        .collect();
    wait_for_info(&mut client, "connected_clients", 21);
    thread::sleep(Duration::from_millis(300));
    let after = rss(&server);
    assert!(
        after < before + budget,
        "{api:?}: RSS grew from {before} to {after} bytes"
    );
    assert!(info(&mut client, "connection_buffers_bytes") <= budget);
    // Everyone else is served meanwhile.
    assert_eq!(ask(&mut client, "PING\r\n"), "+PONG\r\n");
    assert_eq!(ask(&mut client, "GET small\r\n"), "$1\r\n");
    assert_eq!(read_exact(&mut client, 3), b"v\r\n");
    // And a reader that starts reading gets its values whole.
    let mut reader = readers.into_iter().next().unwrap();
    for _ in 0..3 {
        assert_eq!(ask(&mut reader, ""), format!("${value_len}\r\n"));
        let got = read_exact(&mut reader, value_len + 2);
        assert!(got[..value_len] == value[..] && got.ends_with(b"\r\n"));
    }
}

#[test]
fn resp_kv_refuses_past_max_memory_with_oom_and_serves_the_others() {
    for api in apis() {
        refuses_past_max_memory(&api);
    }
}

fn refuses_past_max_memory(api: &[&str]) {
    let args: Vec<&str> = api
        .iter()
        .copied()
        .chain(["--max-memory", "1048576"])
        .collect();
    let server = Server::start("resp_kv", &args);
    let mut observer = connect(server.addr);
    // One client sends most of a 700 KB value: its buffer holds it.
    let value_len = 700_000;
    let mut first = connect(server.addr);
    first.write_all(&set_command("a", value_len)).unwrap();
    first.write_all(&vec![b'a'; 600_000]).unwrap();
    wait_for_info(&mut observer, "connection_buffers_bytes", 600_000);
    // A second one would take the buffers over the budget: refused, and closed.
    let mut second = connect(server.addr);
    second.write_all(&set_command("b", value_len)).unwrap();
    second.write_all(&vec![b'b'; 600_000]).unwrap_or(());
    let refusal = read_to_close(&mut second);
    assert!(refusal.starts_with("-OOM "), "{api:?}: {refusal:?}");
    assert!(info(&mut observer, "oom_refusals") >= 1);
    // The others go on: a new client, and the first one finishing its value.
    let mut third = connect(server.addr);
    assert_eq!(ask(&mut third, "PING\r\n"), "+PONG\r\n");
    first.write_all(&vec![b'a'; value_len - 600_000]).unwrap();
    assert_eq!(ask(&mut first, "\r\n"), "+OK\r\n");
    assert_eq!(ask(&mut third, "GET a\r\n"), format!("${value_len}\r\n"));
    assert_eq!(read_exact(&mut third, value_len + 2).len(), value_len + 2);
    // The budget is back to what the open connections need at rest.
    drop(first);
    let deadline = Instant::now() + IO_TIMEOUT;
    while info(&mut observer, "connection_buffers_bytes") > 200_000 {
        assert!(Instant::now() < deadline, "the buffers were not given back");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn resp_kv_refuses_a_connection_the_budget_cannot_hold() {
    for api in apis() {
        // Room for one connection's initial buffers (about 32 KiB), not two.
        let args: Vec<&str> = api
            .iter()
            .copied()
            .chain(["--max-memory", "40000"])
            .collect();
        let server = Server::start("resp_kv", &args);
        let mut first = connect(server.addr);
        assert_eq!(ask(&mut first, "PING\r\n"), "+PONG\r\n");
        let mut second = connect(server.addr);
        let refusal = read_to_close(&mut second);
        assert!(refusal.starts_with("-OOM "), "{api:?}: {refusal:?}");
        assert_eq!(ask(&mut first, "PING\r\n"), "+PONG\r\n");
        // A value that would take the first one's buffer past the budget: refused, and closed.
        let mut value = set_command("v", 30_000);
        value.resize(value.len() + 30_000, b'v');
        value.extend_from_slice(b"\r\n");
        first.write_all(&value).unwrap();
        let refusal = read_to_close(&mut first);
        assert!(refusal.starts_with("-OOM "), "{api:?}: {refusal:?}");
        let mut third = connect(server.addr);
        assert_eq!(ask(&mut third, "PING\r\n"), "+PONG\r\n", "{api:?}");
    }
}

/// With `--api message`, a command trickled slower than `--message-timeout` is cut off by the
/// loop before any handler sees it, while a connection that sends whole commands is served.
#[cfg(feature = "message")]
#[test]
fn resp_kv_message_api_closes_a_command_trickled_past_the_message_timeout() {
    for mode in ["single", "pool"] {
        let args = ["--api", "message", "--mode", mode, "--message-timeout", "1"];
        let server = Server::start("resp_kv", &args);
        let mut normal = connect(server.addr);
        assert_eq!(ask(&mut normal, "SET k v\r\n"), "+OK\r\n");
        let mut slow = connect(server.addr);
        slow.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let command = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\nslow\r\n";
        let mut sent = 0;
        let mut byte = [0u8; 64];
        let closed = loop {
            if sent == command.len() || slow.write_all(&command[sent..=sent]).is_err() {
                break sent < command.len();
            }
            sent += 1;
            match slow.read(&mut byte) {
                Ok(0) => break true,
                Ok(n) => panic!("{mode}: a reply to a trickled command: {:?}", &byte[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break true,
            }
        };
        assert!(
            closed && sent < command.len() / 2,
            "{mode}: closed after {sent} bytes"
        );
        // The command never ran; the other connection is served on.
        assert_eq!(ask(&mut normal, "GET k\r\n"), "$1\r\n", "{mode}");
        assert_eq!(read_exact(&mut normal, 3), b"v\r\n");
    }
}
