//! The `client` example against the example servers: every subcommand, stdin ending the client
//! cleanly, its command line, and the errors it gives for a server that is not there.

// The `client` example needs these features (its `required-features` in Cargo.toml).
#![cfg(all(feature = "json", feature = "auth", feature = "checksum"))]

mod programs;

use std::io::Write;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::Command;

use programs::clock::{self, TZ, TZ_ZONE_AND_OFFSET};
use programs::{example, Interactive, Run, Server, RUN_TIMEOUT};

fn client(args: &[&str]) -> Command {
    let mut command = Command::new(example("client"));
    command.args(args);
    command
}

/// Runs `client <args>` with no input to its end.
fn run(args: &[&str]) -> Run {
    Run::to_completion(client(args), RUN_TIMEOUT)
}

/// Types `lines` into `client <args>`, closes its stdin, and returns its output once it exits.
fn run_with_input(args: &[&str], lines: &[&str]) -> Vec<String> {
    let mut child = Interactive::start(client(args));
    for line in lines {
        child.send_line(line);
    }
    let (status, stdout, stderr) = child.finish();
    assert!(
        status.success(),
        "client {args:?}: {status}; stderr:\n{stderr}"
    );
    stdout
}

#[test]
fn echo_sends_stdin_lines_to_echo_upper_and_ends_with_stdin() {
    let server = Server::start("echo_upper", &[]);
    let addr = server.addr.to_string();
    let lines = run_with_input(
        &["echo", "--addr", &addr],
        &[
            "hello 世界",
            "",
            "  spaced out  ",
            "x".repeat(5000).as_str(),
        ],
    );
    assert_eq!(lines, ["HELLO 世界", "SPACED OUT", &"X".repeat(5000)]);

    let once = run(&["echo", "--addr", &addr, "two", "words"]);
    assert!(once.status.success(), "{once}");
    assert_eq!(once.stdout, "TWO WORDS\n");
}

#[test]
fn udp_sends_stdin_lines_to_udp_upper() {
    let server = Server::start("udp_upper", &["--mode", "pool", "--workers", "2"]);
    let addr = server.addr.to_string();
    let lines = run_with_input(&["udp", "--addr", &addr], &["hello 世界", "  ", "abc"]);
    assert_eq!(lines, ["HELLO 世界", "ABC"]);
}

#[test]
fn time_asks_time_server() {
    let server = Server::start_with_env("time_server", &[], &[("TZ", TZ)]);
    let addr = server.addr.to_string();

    let before = clock::now_secs();
    let default = run(&["time", "--addr", &addr]);
    let after = clock::now_secs();
    assert!(default.status.success(), "{default}");
    clock::assert_local_time_between(default.stdout.trim_end(), before, after);

    // The words are one format, joined by spaces.
    let custom = run(&["time", &format!("--addr={addr}"), "%Z", "%z"]);
    assert!(custom.status.success(), "{custom}");
    assert_eq!(custom.stdout, format!("{TZ_ZONE_AND_OFFSET}\n"));

    // `--` lets a format start with dashes.
    let dashes = run(&["time", "--addr", &addr, "--", "--%Z--"]);
    assert_eq!(dashes.stdout, "--ABC--\n", "{dashes}");
}

#[test]
fn chat_shows_replies_and_relayed_messages_as_they_come() {
    let server = Server::start("chat", &[]);
    let addr = server.addr.to_string();
    let mut chat = Interactive::start(client(&["chat", "--addr", &addr]));

    // It joins at once, with an empty datagram.
    let joined = chat.next_line();
    let tag = joined
        .strip_prefix("in the room as ")
        .and_then(|rest| rest.strip_suffix(" with 0 other participants"))
        .unwrap_or_else(|| panic!("unexpected first line {joined:?}"))
        .to_string();

    // Someone else's message shows up without the client sending anything.
    let other = UdpSocket::bind("127.0.0.1:0").unwrap();
    other.set_read_timeout(Some(programs::IO_TIMEOUT)).unwrap();
    other.connect(server.addr).unwrap();
    let other_tag = format!("[127.0.0.1:{}]", other.local_addr().unwrap().port());
    other.send("你好, rust".as_bytes()).unwrap();
    assert_eq!(chat.next_line(), format!("{other_tag} 你好, rust"));
    assert_eq!(
        receive(&other),
        format!("sent as {other_tag} to 1 other participant")
    );

    // What the client types reaches the other participant; the client prints the reply.
    chat.send_line("hello from the rust client");
    assert_eq!(receive(&other), format!("{tag} hello from the rust client"));
    assert_eq!(
        chat.next_line(),
        format!("sent as {tag} to 1 other participant")
    );

    let (status, rest, stderr) = chat.finish();
    assert!(status.success(), "{status}; stderr:\n{stderr}");
    assert!(rest.is_empty(), "printed more: {rest:?}");
}

#[test]
fn chat_in_a_full_room_is_an_error() {
    let server = Server::start("chat", &["--max-participants", "1"]);
    let addr = server.addr.to_string();
    let first = run(&["chat", "--addr", &addr, "I was here first"]);
    assert!(first.status.success(), "{first}");
    let second = run(&["chat", "--addr", &addr]);
    assert_eq!(second.status.code(), Some(1), "{second}");
    assert!(second.stderr.contains("the room is full"), "{second}");
}

/// `chat-tcp` in the room `chat --api message` serves: the same lines as `chat` prints.
#[cfg(feature = "message")]
#[test]
fn chat_tcp_shows_replies_and_relayed_messages_as_they_come() {
    let server = Server::start("chat", &["--api", "message", "--mode", "pool"]);
    let addr = server.addr.to_string();
    let mut chat = Interactive::start(client(&["chat-tcp", "--addr", &addr]));
    let joined = chat.next_line();
    let tag = joined
        .strip_prefix("in the room as ")
        .and_then(|rest| rest.strip_suffix(" with 0 other participants"))
        .unwrap_or_else(|| panic!("unexpected first line {joined:?}"))
        .to_string();

    let (mut other, other_tag) = tcp_participant(server.addr);
    other.send("你好, rust");
    assert_eq!(
        other.line(),
        format!("sent as {other_tag} to 1 other participant")
    );
    assert_eq!(chat.next_line(), format!("{other_tag} 你好, rust"));

    chat.send_line("hello from the rust client");
    assert_eq!(other.line(), format!("{tag} hello from the rust client"));
    assert_eq!(
        chat.next_line(),
        format!("sent as {tag} to 1 other participant")
    );

    let (status, rest, stderr) = chat.finish();
    assert!(status.success(), "{status}; stderr:\n{stderr}");
    assert!(rest.is_empty(), "printed more: {rest:?}");
}

#[cfg(feature = "message")]
#[test]
fn chat_tcp_in_a_full_room_is_an_error() {
    let server = Server::start("chat", &["--api", "message", "--max-participants", "1"]);
    let (mut first, first_tag) = tcp_participant(server.addr);
    first.send("");
    assert_eq!(
        first.line(),
        format!("in the room as {first_tag} with 0 other participants")
    );
    let second = run(&["chat-tcp", "--addr", &server.addr.to_string()]);
    assert_eq!(second.status.code(), Some(1), "{second}");
    assert!(second.stderr.contains("the room is full"), "{second}");
}

/// A line-by-line participant of `chat --api message`, and its `[127.0.0.1:port]` tag.
#[cfg(feature = "message")]
fn tcp_participant(server: std::net::SocketAddr) -> (LineClient, String) {
    let stream = TcpStream::connect(server).unwrap();
    stream.set_read_timeout(Some(programs::IO_TIMEOUT)).unwrap();
    let tag = format!("[127.0.0.1:{}]", stream.local_addr().unwrap().port());
    let lines = std::io::BufReader::new(stream.try_clone().unwrap());
    (LineClient { stream, lines }, tag)
}

#[cfg(feature = "message")]
struct LineClient {
    stream: TcpStream,
    lines: std::io::BufReader<TcpStream>,
}

#[cfg(feature = "message")]
impl LineClient {
    fn send(&mut self, message: &str) {
        writeln!(self.stream, "{message}").unwrap();
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut self.lines, &mut line)
            .unwrap_or_else(|e| panic!("no line from the chat server: {e}"));
        line.trim_end_matches('\n').to_string()
    }
}

#[test]
fn remote_cmd_sends_framed_commands_that_arrive_whole() {
    let server = Server::start_with_env("remote_cmd", &[], &[("RUST_LOG", "debug")]);
    let addr = server.addr.to_string();
    // 10,000 bytes: more than the server takes as an unframed command, so only a framed one runs.
    let long = format!("echo {}", "x".repeat(9_995));
    let lines = run_with_input(
        &["remote-cmd", "--addr", &addr],
        &[&long, "echo two; echo lines"],
    );
    assert_eq!(lines, ["x".repeat(9_995).as_str(), "two", "lines"]);
    let log = server.wait_for_log("runs \"echo two");
    assert_eq!(log.matches(" runs ").count(), 2, "{log}");
}

#[test]
fn remote_cmd_prints_a_refusal_on_stderr_and_fails() {
    let server = Server::start_with_env(
        "remote_cmd",
        &["--max-commands", "1"],
        &[("RUST_LOG", "debug")],
    );
    let addr = server.addr.to_string();
    let mut busy = TcpStream::connect(server.addr).unwrap();
    busy.write_all(b"sleep 3").unwrap();
    server.wait_for_log("runs \"sleep 3\"");
    let refused = Run::with_input(
        client(&["remote-cmd", "--addr", &addr]),
        b"echo hi\n",
        RUN_TIMEOUT,
    );
    assert_eq!(refused.status.code(), Some(1), "{refused}");
    assert!(refused.stdout.is_empty(), "{refused}");
    assert!(
        refused.stderr.contains("busy: 1 command(s) are running"),
        "{refused}"
    );
    assert!(
        refused.stderr.contains("the server refused 1 command(s)"),
        "{refused}"
    );
}

#[test]
fn help_lists_every_subcommand() {
    let help = run(&["--help"]);
    assert!(help.status.success(), "{help}");
    for name in ["echo", "udp", "time", "chat", "chat-tcp"] {
        assert!(
            help.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(name)),
            "{name} missing: {help}"
        );
    }
    let sub = run(&["time", "--help"]);
    assert!(sub.status.success(), "{sub}");
    assert!(sub.stdout.contains("127.0.0.1:9000"), "{sub}");
}

#[test]
fn bad_command_lines_exit_with_status_2() {
    for args in [
        &[][..],
        &["bogus"],
        &["echo", "--addr"],
        &["echo", "--addr", "nonsense"],
        &["udp", "--frobnicate"],
    ] {
        let run = run(args);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {run}");
        assert!(run.stderr.contains("usage:"), "{args:?}: {run}");
        assert!(run.stdout.is_empty(), "{args:?}: {run}");
    }
}

#[test]
fn a_server_that_is_not_there_is_an_error_not_a_hang() {
    // Nothing listens on a port just freed: TCP is refused, and so is a connected UDP socket's
    // datagram (the ICMP "port unreachable" comes back as an error on the next receive).
    let free_tcp = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let free_udp = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for (args, mentions) in [
        (
            vec!["echo", "--addr", &free_tcp.to_string(), "hi"],
            "cannot connect",
        ),
        (
            vec!["udp", "--addr", &free_udp.to_string(), "hi"],
            "refused",
        ),
        (vec!["time", "--addr", &free_udp.to_string()], "refused"),
        (vec!["chat", "--addr", &free_udp.to_string()], "refused"),
    ] {
        let run = run(&args);
        assert_eq!(run.status.code(), Some(1), "{args:?}: {run}");
        assert!(
            run.stderr.starts_with("error: ") && run.stderr.contains(mentions),
            "{args:?}: {run}"
        );
    }

    // A server that receives but never answers: the read timeout ends the wait.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    for subcommand in ["time", "chat"] {
        let run = run(&[subcommand, "--addr", &addr]);
        assert_eq!(run.status.code(), Some(1), "{subcommand}: {run}");
        assert!(run.stderr.contains("no reply from"), "{subcommand}: {run}");
    }
}

fn receive(socket: &UdpSocket) -> String {
    let mut buf = vec![0u8; 65_536];
    let n = socket
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no datagram from the chat server: {e}"));
    String::from_utf8(buf[..n].to_vec()).expect("the server sends UTF-8")
}
