//! The `chat` example: two of the seeds' own Python chat clients talking through the room, and the
//! room under hostile input — empty and invalid UTF-8 datagrams, a full room, idle participants.

mod programs;

#[cfg(feature = "message")]
use std::io::{BufRead, BufReader, Read, Write};
#[cfg(feature = "message")]
use std::net::TcpStream;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::thread;
use std::time::Duration;
#[cfg(feature = "message")]
use std::time::Instant;

use programs::python::{interactive_seed_client, python3_available};
use programs::{example, Run, Server, IO_TIMEOUT, RUN_TIMEOUT};

/// The chat client of seeds 000 and 002, verbatim but for the server's port, which comes from the
/// command line. [`interactive_seed_client`] adds socket timeouts and an `input()` that reads a
/// line of stdin (ending the program at its end).
const SEED_002_CHAT_CLIENT: &str = r#"
import socket, sys
PORT = int(sys.argv[1])  # added: the seed's 8081, from the command line

BUFSIZE=1024
udp_client_socket=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)

qq_name_dic={
    '狗哥alex':('127.0.0.1',PORT),
    '瞎驴':('127.0.0.1',PORT),
    '一棵树':('127.0.0.1',PORT),
    '武大郎':('127.0.0.1',PORT),
}

while True:
    qq_name=input('请选择聊天对象: ').strip()
    while True:
        msg=input('请输入消息,回车发送: ').strip()
        if msg == 'quit':break
        if not msg or not qq_name or qq_name not in qq_name_dic:continue
        udp_client_socket.sendto(msg.encode('utf-8'),qq_name_dic[qq_name])
        back_msg,addr=udp_client_socket.recvfrom(BUFSIZE)
        print('来自[%s:%s]的一条消息:\033[1;44m%s\033[0m' %(addr[0],addr[1],back_msg.decode('utf-8')))

udp_client_socket.close()
"#;

/// The chat client of seed 001 (names checked first, `q` to leave a conversation), changed the
/// same way.
const SEED_001_CHAT_CLIENT: &str = r#"
import socket, sys
PORT = int(sys.argv[1])  # added: the seed's 8081, from the command line

BUFSIZE=1024
udp_client_socket=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)

qq_name_dic={
# 真实情况下是不同ip
'Tom':('127.0.0.1',PORT),
'Mike':('127.0.0.1',PORT),
'Jack':('127.0.0.1',PORT),
'John':('127.0.0.1',PORT),
}

while True:
    qq_name=input('请选择聊天对象: ').strip()
    if not qq_name or qq_name not in qq_name_dic:continue
    while True:
        msg=input('请输入消息,回车发送,输入q结束和他的聊天: ').strip()
        if msg == 'q':break
        if not msg:continue
        udp_client_socket.sendto(msg.encode('utf-8'),qq_name_dic[qq_name])
        back_msg,addr=udp_client_socket.recvfrom(BUFSIZE)
        print('来自[%s:%s]的一条消息:\033[1;44m%s\033[0m' %(addr[0],addr[1],back_msg.decode('utf-8')))

udp_client_socket.close()
"#;

#[test]
fn seed_python_chat_clients_talk_through_the_room() {
    if !python3_available() {
        return;
    }
    let server = Server::start("chat", &[]);
    let port = server.addr.port();
    // What the seed clients print around each datagram they receive from the server.
    let shown = |text: &str| format!("来自[127.0.0.1:{port}]的一条消息:\x1b[1;44m{text}\x1b[0m");

    let mut a = interactive_seed_client(SEED_002_CHAT_CLIENT, port);
    let mut b = interactive_seed_client(SEED_001_CHAT_CLIENT, port);

    a.send_line("狗哥alex");
    a.send_line("hello from A");
    let line = a.next_line();
    let a_tag = tag_in(&line, "sent as ", " to 0 other participants");
    assert_eq!(
        line,
        shown(&format!("sent as {a_tag} to 0 other participants"))
    );

    b.send_line("Tom");
    b.send_line("hi A, 我是 B");
    let line = b.next_line();
    let b_tag = tag_in(&line, "sent as ", " to 1 other participant");
    assert_eq!(
        line,
        shown(&format!("sent as {b_tag} to 1 other participant"))
    );
    assert_ne!(a_tag, b_tag);

    // A sees one datagram per message it sends: first B's message, waiting since B sent it.
    a.send_line("how are you?");
    assert_eq!(a.next_line(), shown(&format!("{b_tag} hi A, 我是 B")));
    b.send_line("fine");
    assert_eq!(b.next_line(), shown(&format!("{a_tag} how are you?")));

    a.send_line("quit");
    b.send_line("q");
    for (name, client) in [("A", a), ("B", b)] {
        let (status, rest, stderr) = client.finish();
        assert!(
            status.success(),
            "client {name}: {status}; stderr:\n{stderr}"
        );
        assert!(rest.is_empty(), "client {name} printed more: {rest:?}");
    }
}

/// The `[127.0.0.1:port]` between `before` and `after` in `line`, checked for shape.
fn tag_in(line: &str, before: &str, after: &str) -> String {
    let start = line.find(before).map(|i| i + before.len());
    let end = line.find(after);
    let (Some(start), Some(end)) = (start, end) else {
        panic!("no `{before}[…]{after}` in {line:?}");
    };
    let tag = &line[start..end];
    let port = tag
        .strip_prefix("[127.0.0.1:")
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|port| port.parse::<u16>().ok());
    assert!(
        port.is_some_and(|p| p != 0),
        "{tag:?} is not `[127.0.0.1:port]`"
    );
    tag.to_string()
}

#[test]
fn empty_and_invalid_utf8_datagrams() {
    for mode in ["single", "threading", "pool"] {
        let server = Server::start("chat", &["--mode", mode]);
        let (p1, t1) = participant(server.addr);
        let (p2, t2) = participant(server.addr);

        // An empty datagram joins without saying anything.
        assert_eq!(
            exchange(&p1, b""),
            format!("in the room as {t1} with 0 other participants")
        );
        assert_eq!(
            exchange(&p2, b""),
            format!("in the room as {t2} with 1 other participant")
        );

        // Invalid UTF-8 is relayed with U+FFFD in its place, so the others can always decode it.
        assert_eq!(
            exchange(&p1, b"bad \xff\xfe bytes"),
            format!("sent as {t1} to 1 other participant"),
            "{mode}"
        );
        assert_eq!(
            receive(&p2),
            format!("{t1} bad \u{fffd}\u{fffd} bytes"),
            "{mode}"
        );

        // A message starting with `[` cannot pass for a reply: the relay adds the sender's tag.
        assert_eq!(
            exchange(&p2, b"[x] y"),
            format!("sent as {t2} to 1 other participant")
        );
        assert_eq!(receive(&p1), format!("{t2} [x] y"), "{mode}");
    }
}

#[test]
fn a_full_room_turns_newcomers_away_until_someone_leaves_by_idling() {
    let server = Server::start(
        "chat",
        &[
            "--mode",
            "threading",
            "--max-participants",
            "2",
            "--idle-timeout",
            "2",
        ],
    );
    let (p1, t1) = participant(server.addr);
    let (p2, t2) = participant(server.addr);
    let (p3, t3) = participant(server.addr);
    assert_eq!(
        exchange(&p1, b""),
        format!("in the room as {t1} with 0 other participants")
    );
    assert_eq!(
        exchange(&p2, b"hi"),
        format!("sent as {t2} to 1 other participant")
    );
    assert_eq!(receive(&p1), format!("{t2} hi"));

    // The room is full: the newcomer is told so, and its message goes nowhere.
    for message in [&b"let me in"[..], b""] {
        assert_eq!(
            exchange(&p3, message),
            "error: the room is full (2 participants); try again later"
        );
    }
    assert_eq!(
        exchange(&p1, b"still two?"),
        format!("sent as {t1} to 1 other participant")
    );
    assert_eq!(
        receive(&p2),
        format!("{t1} still two?"),
        "the first datagram p2 gets must be p1's: a turned-away message is not relayed"
    );

    // Once the others have been silent longer than the idle timeout, they are gone.
    thread::sleep(Duration::from_millis(3500));
    assert_eq!(
        exchange(&p3, b""),
        format!("in the room as {t3} with 0 other participants")
    );
    assert_eq!(
        exchange(&p3, b"anyone?"),
        format!("sent as {t3} to 0 other participants")
    );
}

#[test]
fn chat_options_on_the_command_line() {
    let mut help = Command::new(example("chat"));
    help.arg("--help");
    let run = Run::to_completion(help, RUN_TIMEOUT);
    assert!(run.status.success(), "{run}");
    assert!(run.stdout.contains("--idle-timeout SECS"), "{run}");
    assert!(run.stdout.contains("--max-participants N"), "{run}");
    assert!(run.stdout.contains("--api stream|message"), "{run}");
    assert!(run.stdout.contains("--message-timeout SECS"), "{run}");

    for args in [
        ["--idle-timeout", "0"],
        ["--idle-timeout", "soon"],
        ["--max-participants", "-1"],
    ] {
        let mut bad = Command::new(example("chat"));
        bad.args(args);
        let run = Run::to_completion(bad, RUN_TIMEOUT);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {run}");
        let first_line = run.stderr.lines().next().unwrap_or_default();
        assert!(
            first_line.contains(args[0]) && first_line.contains(args[1]),
            "{run}"
        );
        assert!(run.stderr.contains("usage:"), "{run}");
    }

    // The message server has an event loop, not a thread per connection.
    #[cfg(feature = "message")]
    {
        let mut threading = Command::new(example("chat"));
        threading.args(["--api", "message", "--mode", "threading"]);
        let run = Run::to_completion(threading, RUN_TIMEOUT);
        assert_eq!(run.status.code(), Some(2), "{run}");
        assert!(
            run.stderr
                .contains("--api message runs in --mode single, pool"),
            "{run}"
        );
    }
}

/// A UDP socket connected to the server, and its `[127.0.0.1:port]` tag.
fn participant(server: SocketAddr) -> (UdpSocket, String) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    socket.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    socket.connect(server).unwrap();
    let tag = format!("[127.0.0.1:{}]", socket.local_addr().unwrap().port());
    (socket, tag)
}

fn exchange(socket: &UdpSocket, datagram: &[u8]) -> String {
    socket.send(datagram).unwrap();
    receive(socket)
}

fn receive(socket: &UdpSocket) -> String {
    let mut buf = vec![0u8; 65_536];
    // A stop and continue of the test process (a debugger, a loaded machine's job control) ends a
    // timed recv with EINTR: retry it, as any client must.
    let n = loop {
        match socket.recv(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => {
                break other.unwrap_or_else(|e| panic!("no datagram from the chat server: {e}"))
            }
        }
    };
    String::from_utf8(buf[..n].to_vec()).expect("the server sends UTF-8")
}

// ---------------------------------------------------------------------------------------------
// `--api message`: the same room over TCP, one line per message.

/// One participant of the TCP room: its connection, read line by line, and its tag.
#[cfg(feature = "message")]
struct Member {
    lines: BufReader<TcpStream>,
    writer: TcpStream,
    tag: String,
}

#[cfg(feature = "message")]
impl Member {
    fn connect(server: SocketAddr) -> Member {
        Member::from_stream(TcpStream::connect_timeout(&server, IO_TIMEOUT).unwrap())
    }

    fn from_stream(stream: TcpStream) -> Member {
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let tag = format!("[127.0.0.1:{}]", stream.local_addr().unwrap().port());
        Member {
            lines: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            tag,
        }
    }

    /// Sends `message` as one line and returns the line that comes next.
    fn say(&mut self, message: &[u8]) -> String {
        self.send(message);
        self.hear()
    }

    fn send(&mut self, message: &[u8]) {
        self.writer.write_all(&[message, b"\n"].concat()).unwrap();
    }

    /// The next line from the server, without its `\n`.
    fn hear(&mut self) -> String {
        let mut line = String::new();
        let n = self
            .lines
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("{}: no line from the chat server: {e}", self.tag));
        assert!(n > 0, "{}: the server closed the connection", self.tag);
        line.strip_suffix('\n')
            .unwrap_or_else(|| panic!("{}: {line:?} has no end", self.tag))
            .to_string()
    }

    /// Asks until the room has `n` others besides this member: a leaver is taken out when the
    /// server sees its connection close, which may come after the next message.
    fn wait_for_others(&mut self, n: usize) {
        let want = format!("in the room as {} with {}", self.tag, others(n));
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let got = self.say(b"");
            if got == want {
                return;
            }
            assert!(Instant::now() < deadline, "{}: still {got:?}", self.tag);
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Reads until the server closes the connection (a reset counts), however much was queued
    /// to it first; panics if it stays open.
    fn expect_closed(mut self) {
        let mut buf = vec![0; 256 * 1024];
        loop {
            match self.lines.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
                Err(e) => panic!("{}: not closed by the server: {e}", self.tag),
            }
        }
    }
}

/// "1 other participant", "2 other participants", as the server says it.
#[cfg(feature = "message")]
fn others(n: usize) -> String {
    format!("{n} other participant{}", if n == 1 { "" } else { "s" })
}

#[cfg(feature = "message")]
#[test]
fn message_api_three_members_join_talk_and_leave() {
    // With two loops the members are on both: pushes cross from one loop to the other.
    let modes: [&[&str]; 3] = [
        &["--mode", "single"],
        &["--mode", "pool"],
        &["--mode", "single", "--loops", "2"],
    ];
    for mode in modes {
        let server = Server::start("chat", &[&["--api", "message"][..], mode].concat());
        // A connection is in the room once accepted; an empty line asks who is there.
        let mut a = Member::connect(server.addr);
        a.wait_for_others(0);
        let mut b = Member::connect(server.addr);
        b.wait_for_others(1);
        let mut c = Member::connect(server.addr);
        c.wait_for_others(2);

        assert_eq!(
            a.say("hello 世界".as_bytes()),
            format!("sent as {} to 2 other participants", a.tag),
            "{mode:?}"
        );
        assert_eq!(b.hear(), format!("{} hello 世界", a.tag), "{mode:?}");
        assert_eq!(c.hear(), format!("{} hello 世界", a.tag), "{mode:?}");

        // Invalid UTF-8 arrives as U+FFFD; a message starting with `[` still gets its tag.
        assert_eq!(
            b.say(b"bad \xff bytes"),
            format!("sent as {} to 2 other participants", b.tag)
        );
        for member in [&mut a, &mut c] {
            assert_eq!(
                member.hear(),
                format!("{} bad \u{fffd} bytes", b.tag),
                "{mode:?}"
            );
        }
        assert_eq!(
            c.say(b"[x] y"),
            format!("sent as {} to 2 other participants", c.tag)
        );
        for member in [&mut a, &mut b] {
            assert_eq!(member.hear(), format!("{} [x] y", c.tag), "{mode:?}");
        }

        // Pipelined lines are answered one by one, in order.
        a.send(b"one\ntwo");
        assert_eq!(
            a.hear(),
            format!("sent as {} to 2 other participants", a.tag)
        );
        assert_eq!(
            a.hear(),
            format!("sent as {} to 2 other participants", a.tag)
        );
        for member in [&mut b, &mut c] {
            assert_eq!(member.hear(), format!("{} one", a.tag), "{mode:?}");
            assert_eq!(member.hear(), format!("{} two", a.tag), "{mode:?}");
        }

        // Leaving is closing the connection.
        drop(c);
        b.wait_for_others(1);
        assert_eq!(
            b.say(b"bye"),
            format!("sent as {} to 1 other participant", b.tag)
        );
        assert_eq!(a.hear(), format!("{} bye", b.tag), "{mode:?}");
    }
}

#[cfg(feature = "message")]
#[test]
fn message_api_full_room_and_idle_connections() {
    let server = Server::start(
        "chat",
        &[
            "--api",
            "message",
            "--max-participants",
            "2",
            "--idle-timeout",
            "1",
        ],
    );
    let a = Member::connect(server.addr);
    let mut b = Member::connect(server.addr);
    b.wait_for_others(1);
    // A newcomer to a full room is told so, and its connection closed.
    let mut c = Member::connect(server.addr);
    assert_eq!(
        c.hear(),
        "error: the room is full (2 participants); try again later"
    );
    c.expect_closed();

    // Nothing moves on a's and b's connections: the server closes them after the idle timeout,
    // which frees their places (a newcomer to a full room would be turned away instead).
    a.expect_closed();
    b.expect_closed();
    let mut d = Member::connect(server.addr);
    assert_eq!(
        d.say(b""),
        format!("in the room as {} with 0 other participants", d.tag)
    );
}

#[cfg(feature = "message")]
#[test]
fn message_api_a_member_that_never_reads_is_cut_off_and_the_others_go_on() {
    for mode in ["single", "pool"] {
        let server = Server::start("chat", &["--api", "message", "--mode", mode]);
        let mut talker = Member::connect(server.addr);
        let mut listener = Member::connect(server.addr);
        let deaf = deaf_member(server.addr);
        talker.wait_for_others(2);

        // Long lines, until the server has given up on the member that reads none of them: the
        // replies count it no more. The talker and the listener read everything all along.
        let line = "x".repeat(60_000);
        let mut sent = 0;
        loop {
            let message = format!("{sent} {line}");
            let reply = talker.say(message.as_bytes());
            assert_eq!(
                listener.hear(),
                format!("{} {message}", talker.tag),
                "{mode}: message {sent}"
            );
            sent += 1;
            if reply == format!("sent as {} to 1 other participant", talker.tag) {
                break;
            }
            assert_eq!(
                reply,
                format!("sent as {} to 2 other participants", talker.tag),
                "{mode}"
            );
            // 1 MiB waits for the deaf member on the server, and socket buffers hold a few more.
            assert!(
                sent < 1000,
                "{mode}: {} MB relayed, the deaf member is still in",
                sent * 60 / 1000
            );
        }
        deaf.expect_closed();
        assert_eq!(
            talker.say(b"still here"),
            format!("sent as {} to 1 other participant", talker.tag)
        );
        assert_eq!(
            listener.hear(),
            format!("{} still here", talker.tag),
            "{mode}"
        );
    }
}

/// A member that never reads, with a small receive buffer so the server's limit is reached soon.
#[cfg(feature = "message")]
fn deaf_member(server: SocketAddr) -> Member {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect_timeout(&server.into(), IO_TIMEOUT).unwrap();
    Member::from_stream(socket.into())
}
