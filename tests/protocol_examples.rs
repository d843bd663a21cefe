//! Issue 4's examples as users run them: `remote_cmd`, `file_server`, `auth_echo` and
//! `sticky_packets`, driven by the seeds' own Python clients (scripted input instead of
//! `input()`), by the Rust `client` example, and by hostile raw sockets; and the framing module
//! against a small Python server that speaks `struct 'i'`.
//!
//! Servers listen on `127.0.0.1:0`; every socket, child process and wait has a deadline.

// The examples it drives need these features (their `required-features` in Cargo.toml).
#![cfg(all(feature = "json", feature = "auth", feature = "checksum"))]

mod programs;

use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use programs::python::{python, python3_available, run_seed_client, seed_client};
use programs::{connect, example, scratch, Interactive, Run, Server, IO_TIMEOUT, RUN_TIMEOUT};
use serde_json::{json, Value};
use socketserver::framing::{md5_hex, Framing, Header};

const SEED_KEY: &str = "linhaifeng bang bang bang";

/// Runs the Rust `client` example, `client <subcommand> --addr <addr> <args>`, with `env` added to
/// its environment and `stdin` as its input.
fn client(
    subcommand: &str,
    addr: SocketAddr,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
) -> Run {
    let mut command = Command::new(example("client"));
    command
        .arg(subcommand)
        .args(["--addr", &addr.to_string()])
        .args(args)
        .env_remove("SOCKETSERVER_SECRET")
        .envs(env.iter().copied());
    Run::with_input(command, stdin.as_bytes(), RUN_TIMEOUT)
}

fn object(value: Value) -> Header {
    value.as_object().cloned().expect("a JSON object")
}

// ---------------------------------------------------------------------------------------------
// remote_cmd

/// Seed 004's client, verbatim but for the port (argv) and three lines marked `added` that check
/// the output against the header's md5. [`seed_client`] adds a scripted `input()` and a socket
/// timeout.
const SEED_REMOTE_CLIENT: &str = r#"
import json
import struct
import sys, hashlib  # added
from socket import *

client = socket(AF_INET,SOCK_STREAM)
client.connect(('127.0.0.1',int(sys.argv[1])))

while True:
    msg = input('请输入命令').strip()
    if len(msg) == 0:
        continue
    client.send(msg.encode('utf-8'))

    xxxx = client.recv(4)
    header_len = struct.unpack('i',xxxx)[0]
    json_str_bytes = client.recv(header_len)
    json_str = json_str_bytes.decode('utf_8')
    header_dic = json.loads(json_str)
    print(header_dic)
    total_size = header_dic["total_size"]

    recv_size = 0
    _got = b''  # added
    while recv_size < total_size:
        recv_data = client.recv(1024)
        recv_size += len(recv_data)
        _got += recv_data  # added
        print(recv_data.decode('gbk'),end='')
    else:
        print()
    print('md5 ok' if hashlib.md5(_got).hexdigest() == header_dic['md5'] else 'md5 MISMATCH')  # added
"#;

#[test]
fn seed_remote_command_client_parses_the_header_and_gets_the_output() {
    if !python3_available() {
        return;
    }
    let server = Server::start("remote_cmd", &[]);
    let big = "seq 1 3000"; // 13893 bytes: many recv(1024) calls
    let run = run_seed_client(
        SEED_REMOTE_CLIENT,
        server.addr.port(),
        &["echo hello", "", "echo out; echo err >&2", big],
    );
    assert!(run.status.success(), "{run}");
    let stdout = &run.stdout;
    assert!(stdout.contains("'total_size': 6"), "{run}");
    assert!(
        stdout.contains(&format!("'md5': '{}'", md5_hex(b"hello\n"))),
        "{run}"
    );
    assert!(stdout.contains("'filename': 'output.txt'"), "{run}");
    assert!(stdout.contains("hello\n\nmd5 ok\n"), "{run}");
    // stdout first, then stderr, as the seeds send them.
    assert!(stdout.contains("out\nerr\n\nmd5 ok\n"), "{run}");
    assert!(stdout.contains("2999\n3000\n\nmd5 ok\n"), "{run}");
    assert!(!stdout.contains("MISMATCH"), "{run}");
}

#[test]
fn remote_cmd_enforces_its_time_and_output_limits() {
    let server = Server::start("remote_cmd", &["--timeout", "1", "--max-output", "1000"]);
    let run = client(
        "remote-cmd",
        server.addr,
        &[],
        &[],
        "sleep 30\nyes | head -c 100000\necho still here\n",
    );
    assert!(run.status.success(), "{run}");
    assert!(run.stderr.contains("killed at its time limit"), "{run}");
    assert!(
        run.stdout.contains("[remote_cmd: killed after 1s]"),
        "{run}"
    );
    assert!(run.stderr.contains("output was cut"), "{run}");
    assert!(
        run.stdout
            .contains("[remote_cmd: output cut at 1000 bytes]"),
        "{run}"
    );
    assert!(run.stdout.ends_with("still here\n"), "{run}");
}

#[test]
fn remote_cmd_refuses_non_loopback_addresses_without_a_secret() {
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let mut command = Command::new(example("remote_cmd"));
        command
            .args(["--addr", addr])
            .env_remove("SOCKETSERVER_SECRET");
        let run = Run::to_completion(command, RUN_TIMEOUT);
        assert_eq!(run.status.code(), Some(1), "{run}");
        assert!(
            run.stderr.contains("refusing to run shell commands"),
            "{run}"
        );
        assert!(run.stdout.is_empty(), "it must not even listen: {run}");
    }
}

#[test]
fn remote_cmd_with_a_secret_serves_only_authenticated_clients() {
    let dir = scratch("remote_cmd_secret");
    let key_file = dir.join("key");
    fs::write(&key_file, "s3cret key\n").unwrap();
    let key_arg = key_file.to_str().unwrap();
    let server = Server::start("remote_cmd", &["--secret-file", key_arg]);
    // The client reads the same key from the environment (the file's trailing newline is not
    // part of the key).
    let run = client(
        "remote-cmd",
        server.addr,
        &[],
        &[("SOCKETSERVER_SECRET", "s3cret key")],
        "echo authorised\n",
    );
    assert!(run.status.success(), "{run}");
    assert_eq!(run.stdout, "authorised\n");

    // Without the key, nothing runs: the client sees a challenge where it expected a header.
    let marker = dir.join("ran");
    let run = client(
        "remote-cmd",
        server.addr,
        &[],
        &[],
        &format!("touch {}\n", marker.display()),
    );
    assert!(!run.status.success(), "{run}");
    let run = client(
        "remote-cmd",
        server.addr,
        &[],
        &[("SOCKETSERVER_SECRET", "wrong key")],
        &format!("touch {}\n", marker.display()),
    );
    assert!(!run.status.success(), "{run}");
    server.wait_for_log("authentication failed");
    assert!(!marker.exists(), "an unauthenticated command ran");
}

/// Sends `pieces` to `remote_cmd` as the seeds' client does (no framing), `gap` apart.
fn send_pieces(stream: &mut TcpStream, pieces: &[&[u8]], gap: Duration) {
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 {
            thread::sleep(gap);
        }
        stream.write_all(piece).unwrap();
    }
}

/// Reads one `remote_cmd` reply: the header and the `total_size` bytes of output.
fn command_reply(stream: &mut TcpStream) -> (Header, String) {
    let header = Framing::python_struct_i()
        .read_header(stream)
        .unwrap()
        .expect("a reply header");
    let size = header["total_size"].as_u64().unwrap();
    let mut output = vec![0u8; size as usize];
    stream.read_exact(&mut output).unwrap();
    assert_eq!(header["md5"], md5_hex(&output), "{header:?}");
    (header, String::from_utf8(output).unwrap())
}

/// Whether the server sends nothing more within `wait` (no reply to a fragment, say).
fn nothing_more(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut byte = [0u8; 1];
    let quiet = matches!(stream.read(&mut byte), Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut));
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    quiet
}

#[test]
fn remote_cmd_never_runs_a_fragment_as_a_command() {
    let dir = scratch("remote_cmd_fragments");
    let log = dir.join("log");
    let server = Server::start_with_env(
        "remote_cmd",
        &["--quiet-time", "0.5"],
        &[("RUST_LOG", "debug")],
    );
    let mut stream = connect(server.addr);

    // The seeds' protocol: "ec" and "ho ..." 50 ms apart are one command, run once.
    let command = format!("echo once >> {}; echo split", log.display());
    let (head, tail) = command.as_bytes().split_at(2);
    send_pieces(&mut stream, &[head, tail], Duration::from_millis(50));
    let (header, output) = command_reply(&mut stream);
    assert_eq!(output, "split\n", "{header:?}");
    assert_eq!(header["exit_code"], 0);
    assert!(nothing_more(&mut stream, Duration::from_millis(700)));

    // A framed request is read exactly, however far apart its pieces arrive: magic, length and
    // command all cut, with gaps longer than the quiet time.
    let command = format!("echo twice >> {}; echo framed", log.display());
    let mut request = vec![0xff, b'r', b'c', b'1'];
    request.extend_from_slice(&(command.len() as u32).to_be_bytes());
    request.extend_from_slice(command.as_bytes());
    let pieces: Vec<&[u8]> = vec![
        &request[..2],
        &request[2..6],
        &request[6..11],
        &request[11..],
    ];
    send_pieces(&mut stream, &pieces, Duration::from_millis(600));
    let (header, output) = command_reply(&mut stream);
    assert_eq!(output, "framed\n", "{header:?}");
    assert!(nothing_more(&mut stream, Duration::from_millis(700)));

    assert_eq!(fs::read_to_string(&log).unwrap(), "once\ntwice\n");
    server.wait_for_log("runs \"echo once");
    assert!(!server.wait_for_log("runs").contains("runs \"ec\""));
}

#[test]
fn remote_cmd_refuses_an_over_long_command_and_runs_none_of_it() {
    let dir = scratch("remote_cmd_over_long");
    let (first, last) = (dir.join("first"), dir.join("last"));
    let server = Server::start("remote_cmd", &[]);
    let mut stream = connect(server.addr);
    // 10,000 bytes: the first 8,192 and the last 1,808 each hold a complete command.
    let head = format!("touch {}; ", first.display());
    let tail = format!("; touch {}", last.display());
    let command = format!(
        "{head}{}{tail}",
        ":".repeat(10_000 - head.len() - tail.len())
    );
    assert_eq!(command.len(), 10_000);
    assert!(command[..8192].contains(&head) && command[8192..].contains(&tail));
    stream.write_all(command.as_bytes()).unwrap();
    let (header, output) = command_reply(&mut stream);
    let error = header["error"].as_str().expect("an error reply");
    assert!(error.contains("10000 bytes, more than the 8192"), "{error}");
    assert!(output.contains(error), "{output}");
    assert_eq!(header["exit_code"], Value::Null);
    // Still in step: the next command is answered.
    stream.write_all(b"echo next").unwrap();
    assert_eq!(command_reply(&mut stream).1, "next\n");
    assert!(
        !first.exists() && !last.exists(),
        "a part of the command ran"
    );
}

/// Processes whose environment holds `MARK=<mark>`, from /proc.
fn marked_processes(mark: &str) -> Vec<String> {
    let needle = format!("MARK={mark}");
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| {
            let environ = fs::read(e.path().join("environ")).ok()?;
            environ
                .split(|&b| b == 0)
                .any(|var| var == needle.as_bytes())
                .then(|| {
                    fs::read_to_string(e.path().join("cmdline"))
                        .unwrap_or_default()
                        .replace('\0', " ")
                })
        })
        .collect()
}

/// Waits (at most 3 s) until no process is marked with `mark`; those still there.
fn marked_processes_gone(mark: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left = marked_processes(mark);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn remote_cmd_time_limit_kills_processes_that_left_the_process_group() {
    let server = Server::start("remote_cmd", &["--timeout", "2"]);
    let mut stream = connect(server.addr);
    let mark = format!("remote-cmd-escape-{}", std::process::id());
    // A new session (setsid), a double fork (its parent gone at once), and the shell waiting.
    let command =
        format!("export MARK={mark}; setsid sleep 30 & (setsid sh -c 'sleep 30; :' &); sleep 30");
    stream.write_all(command.as_bytes()).unwrap();
    // The escaped processes are running before the limit...
    let deadline = Instant::now() + Duration::from_millis(1800);
    while marked_processes(&mark).len() < 4 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        marked_processes(&mark).len() >= 4,
        "{:?}",
        marked_processes(&mark)
    );
    // ...and none is after it.
    let (header, output) = command_reply(&mut stream);
    assert_eq!(header["timed_out"], true, "{header:?}");
    assert!(output.contains("killed after 2s"), "{output}");
    assert_eq!(marked_processes_gone(&mark), Vec::<String>::new());

    // A background process that outlives the shell is ended with it, without waiting for the
    // time limit.
    let mark = format!("remote-cmd-background-{}", std::process::id());
    let command = format!("export MARK={mark}; setsid sleep 30 >/dev/null 2>&1 & echo left");
    stream.write_all(command.as_bytes()).unwrap();
    let (header, output) = command_reply(&mut stream);
    assert_eq!(
        (header["timed_out"].clone(), output.as_str()),
        (Value::Bool(false), "left\n")
    );
    assert_eq!(marked_processes_gone(&mark), Vec::<String>::new());
}

#[test]
fn remote_cmd_caps_concurrent_commands() {
    let server = Server::start_with_env(
        "remote_cmd",
        &["--max-commands", "2"],
        &[("RUST_LOG", "debug")],
    );
    let mut busy: Vec<TcpStream> = ["sleep 2.01", "sleep 2.02"]
        .iter()
        .map(|command| {
            let mut stream = connect(server.addr);
            stream.write_all(command.as_bytes()).unwrap();
            server.wait_for_log(&format!("runs \"{command}\""));
            stream
        })
        .collect();
    // Both slots taken: the third is refused at once, in the seeds' reply format.
    let mut third = connect(server.addr);
    third.write_all(b"echo third").unwrap();
    let (header, output) = command_reply(&mut third);
    let error = header["error"].as_str().expect("an error reply");
    assert!(error.contains("busy: 2 command(s) are running"), "{error}");
    assert!(output.contains(error), "{output}");
    for stream in &mut busy {
        assert_eq!(command_reply(stream).0["exit_code"], 0);
    }
    // Slots free again: the same connection's next command runs.
    third.write_all(b"echo third").unwrap();
    assert_eq!(command_reply(&mut third).1, "third\n");
}

// ---------------------------------------------------------------------------------------------
// file_server

/// Seed 002's FTP client (`MYTCPClient`), verbatim but for the address (argv). [`seed_client`]
/// adds a scripted `input()` and a socket timeout.
const SEED_FTP_CLIENT: &str = r#"
import socket
import struct
import json
import os
import sys  # added
class MYTCPClient:
    address_family = socket.AF_INET
    socket_type = socket.SOCK_STREAM
    allow_reuse_address = False
    max_packet_size = 8192
    coding='utf-8'
    request_queue_size = 5
    def __init__(self, server_address, connect=True):
        self.server_address=server_address
        self.socket = socket.socket(self.address_family,
                                    self.socket_type)
        if connect:
            try:
                self.client_connect()
            except:
                self.client_close()
                raise
    def client_connect(self):
        self.socket.connect(self.server_address)
    def client_close(self):
        self.socket.close()
    def run(self):
        while True:
            inp=input(">>: ").strip()
            if not inp:continue
            l=inp.split()
            cmd=l[0]
            if hasattr(self,cmd):
                func=getattr(self,cmd)
                func(l)
    def put(self,args):
        cmd=args[0]
        filename=args[1]
        if not os.path.isfile(filename):
            print('file:%s is not exists' %filename)
            return
        else:
            filesize=os.path.getsize(filename)
        head_dic={'cmd':cmd,'filename':os.path.basename(filename),'filesize':filesize}
        print(head_dic)
        head_json=json.dumps(head_dic)
        head_json_bytes=bytes(head_json,encoding=self.coding)
        head_struct=struct.pack('i',len(head_json_bytes))
        self.socket.send(head_struct)
        self.socket.send(head_json_bytes)
        send_size=0
        with open(filename,'rb') as f:
            for line in f:
                self.socket.send(line)
                send_size+=len(line)
                print(send_size)
            else:
                print('upload successful')
client=MYTCPClient(('127.0.0.1',int(sys.argv[1])))
client.run()
"#;

/// Seed 000's movie upload client (header `file_name`/`file_size`, no `cmd`), verbatim but for
/// the folder (where it runs) and the port (argv). [`seed_client`] adds a scripted `input()` and
/// a socket timeout.
const SEED_MOVIE_CLIENT: &str = r#"
import os , json ,struct, socket, sys
client=socket.socket()
client.connect(('127.0.0.1',int(sys.argv[1])))
while True:
    movie_dir=os.getcwd()  # changed: the test runs the client in the folder of movies
    movie_list=os.listdir(movie_dir)
    for index,movie in enumerate(movie_list,1):
        print(index,movie)
    choice=input('请选择要上传的电影:').strip()
    if choice.isdigit():
        choice=int(choice)-1
        if choice in range(0,len(movie_list)):
            file_path=os.path .join(movie_dir,movie_list[choice])
            file_size=os.path.getsize(file_path)
            d={'file_name':movie_list[choice],'file_size':file_size,'介绍':'内容非常重要'}
            json_d=json.dumps(d)
            json_byte=json_d.encode('utf-8')
            header=struct.pack('i',len(json_byte))
            client.send(header)
            client.send(json_byte)
            with open(file_path,'rb')as f:
                for line in f:
                    client.send(line)
        else:
            print('not in range')
    else:
        print('must be a number')
"#;

/// Bytes with many short "lines", so the seed client sends many small pieces.
fn sample_file(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| if i % 37 == 0 { b'\n' } else { (i % 251) as u8 })
        .collect()
}

#[test]
fn seed_ftp_client_uploads_and_the_rust_client_gets_an_identical_copy() {
    if !python3_available() {
        return;
    }
    let dir = scratch("seed_ftp_upload");
    let root = dir.join("root");
    let data = sample_file(300_000);
    fs::write(dir.join("电影.bin"), &data).unwrap();
    let server = Server::start("file_server", &["--root", root.to_str().unwrap()]);
    let port = server.addr.port();

    // The client opens the file by the name typed, relative to where it runs.
    let mut ftp = seed_client(SEED_FTP_CLIENT, port, &["put 电影.bin"]);
    ftp.current_dir(&dir);
    let run = Run::to_completion(ftp, RUN_TIMEOUT);
    assert!(run.status.success(), "{run}");
    assert!(run.stdout.contains("upload successful"), "{run}");
    server.wait_for_log("stored 电影.bin (300000 bytes)");

    let copy = dir.join("copy.bin");
    let run = client(
        "file",
        server.addr,
        &["get", "电影.bin", copy.to_str().unwrap()],
        &[],
        "",
    );
    assert!(run.status.success(), "{run}");
    assert_eq!(md5_hex(&fs::read(&copy).unwrap()), md5_hex(&data));

    // Seed 000's variant: file_name / file_size, no cmd.
    let movies = dir.join("movies");
    fs::create_dir_all(&movies).unwrap();
    fs::write(movies.join("movie.mp4"), sample_file(50_000)).unwrap();
    let mut upload = seed_client(SEED_MOVIE_CLIENT, port, &["1"]);
    upload.current_dir(&movies);
    let run = Run::to_completion(upload, RUN_TIMEOUT);
    assert!(run.status.success(), "{run}");
    server.wait_for_log("stored movie.mp4 (50000 bytes)");
    assert_eq!(
        fs::read(root.join("movie.mp4")).unwrap(),
        sample_file(50_000)
    );

    let run = client("file", server.addr, &[], &[], "list\nquit\n");
    assert!(run.status.success(), "{run}");
    assert_eq!(run.stdout, "movie.mp4\t50000\n电影.bin\t300000\n");
}

/// A raw connection to `file_server` speaking the framing by hand.
struct Raw {
    stream: TcpStream,
    framing: Framing,
}

impl Raw {
    fn new(addr: SocketAddr) -> Raw {
        Raw {
            stream: connect(addr),
            framing: Framing::python_struct_i(),
        }
    }

    fn send(&mut self, header: Value, body: &[u8]) {
        self.framing
            .write_header(&mut self.stream, &object(header))
            .unwrap();
        self.stream.write_all(body).unwrap();
    }

    fn status(&mut self) -> Header {
        self.framing
            .read_header(&mut self.stream)
            .unwrap()
            .expect("a status reply")
    }

    fn error(&mut self) -> String {
        let status = self.status();
        assert_eq!(status["status"], "error", "{status:?}");
        status["message"].as_str().unwrap().to_string()
    }

    /// Whether the server closed the connection (EOF or reset) rather than waiting for more.
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.stream.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        }
    }
}

fn listing(addr: SocketAddr) -> Vec<String> {
    let mut raw = Raw::new(addr);
    raw.send(json!({"cmd": "list"}), b"");
    let status = raw.status();
    status["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

fn all_entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn file_server_refuses_hostile_input_and_leaves_no_partial_file() {
    let dir = scratch("file_server_hostile");
    let root = dir.join("root");
    let server = Server::start(
        "file_server",
        &[
            "--root",
            root.to_str().unwrap(),
            "--max-file-size",
            "1000000",
        ],
    );
    let addr = server.addr;

    // Path traversal and other bad names: refused, body skipped, the connection goes on.
    let mut raw = Raw::new(addr);
    for name in [
        "../evil.txt",
        "/tmp/evil.txt",
        "a/b",
        "..",
        "a\0b",
        ".hidden",
        "",
    ] {
        raw.send(
            json!({"cmd": "put", "filename": name, "filesize": 4}),
            b"evil",
        );
        let message = raw.error();
        assert!(message.contains("refused"), "{name:?}: {message}");
    }
    raw.send(json!({"cmd": "get", "filename": "../../etc/passwd"}), b"");
    assert!(raw.error().contains("refused"));
    raw.send(json!({"cmd": "get", "filename": "missing.txt"}), b"");
    assert!(raw.error().contains("no such file"));
    raw.send(
        json!({"cmd": "put", "filename": "ok.txt", "filesize": 2}),
        b"ok",
    );
    assert_eq!(raw.status()["status"], "ok");
    assert!(!dir.join("evil.txt").exists());

    // A checksum that does not match: refused, nothing stored.
    let wrong = md5_hex(b"something else");
    raw.send(
        json!({"cmd": "put", "filename": "sum.txt", "filesize": 5, "md5": wrong}),
        b"hello",
    );
    assert!(raw.error().contains("checksum mismatch"));
    raw.send(
        json!({"cmd": "put", "filename": "sum.txt", "filesize": 5, "md5": md5_hex(b"hello")}),
        b"hello",
    );
    assert_eq!(raw.status()["status"], "ok");

    // A header announcing 2^31-1 bytes: refused without reading them, and the connection closed.
    raw.send(
        json!({"cmd": "put", "filename": "huge.bin", "filesize": i32::MAX}),
        b"",
    );
    assert!(raw.error().contains("more than the limit"));
    assert!(raw.closed());

    // A frame announcing 2^31-1 bytes of header: the same.
    let mut raw = Raw::new(addr);
    raw.stream.write_all(&i32::MAX.to_ne_bytes()).unwrap();
    assert!(raw.error().contains("2147483647"));
    assert!(raw.closed());

    // A header that is not JSON.
    let mut raw = Raw::new(addr);
    raw.framing
        .write_frame(&mut raw.stream, b"{'cmd': put")
        .unwrap();
    assert!(raw.error().contains("not valid JSON"));
    assert!(raw.closed());

    // A connection cut in the middle of the body: no file, no temporary file.
    let mut raw = Raw::new(addr);
    raw.send(
        json!({"cmd": "put", "filename": "cut.bin", "filesize": 100_000}),
        &[1u8; 5000],
    );
    drop(raw);
    server.wait_for_log("upload of cut.bin failed");

    // Every connection above has ended, and the server still serves.
    assert_eq!(listing(addr), ["ok.txt", "sum.txt"]);
    assert_eq!(all_entries(&root), ["ok.txt", "sum.txt"]);
}

#[test]
fn file_server_serves_lists_and_overwrites_only_regular_files() {
    let dir = scratch("file_server_links");
    let root = dir.join("root");
    fs::create_dir_all(&root).unwrap();
    let outside = dir.join("secret.txt");
    fs::write(&outside, "outside the root").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("link.txt")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("passwd")).unwrap();
    std::os::unix::fs::symlink(&dir, root.join("folder-link")).unwrap();
    fs::create_dir(root.join("folder")).unwrap();
    let fifo = std::ffi::CString::new(root.join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path it is given.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    fs::write(root.join("plain.txt"), "plain").unwrap();
    let server = Server::start("file_server", &["--root", root.to_str().unwrap()]);
    let mut raw = Raw::new(server.addr);

    // Not served: links (whatever they point to), a FIFO (without hanging), a folder.
    for name in ["link.txt", "passwd", "folder-link"] {
        raw.send(json!({"cmd": "get", "filename": name}), b"");
        let message = raw.error();
        assert!(message.contains("symbolic link"), "{name}: {message}");
    }
    for name in ["fifo", "folder"] {
        raw.send(json!({"cmd": "get", "filename": name}), b"");
        let message = raw.error();
        assert!(message.contains("not a regular file"), "{name}: {message}");
    }
    // Not listed.
    assert_eq!(listing(server.addr), ["plain.txt"]);
    // Not overwritten: the upload is refused (its body skipped), the link and its target stay.
    for name in ["link.txt", "folder-link", "fifo", "folder"] {
        raw.send(
            json!({"cmd": "put", "filename": name, "filesize": 4}),
            b"evil",
        );
        let message = raw.error();
        assert!(message.contains("not a regular file"), "{name}: {message}");
    }
    assert_eq!(fs::read_to_string(&outside).unwrap(), "outside the root");
    assert!(fs::symlink_metadata(root.join("link.txt"))
        .unwrap()
        .file_type()
        .is_symlink());
    // A regular file is overwritten, and still in step after the refusals.
    raw.send(
        json!({"cmd": "put", "filename": "plain.txt", "filesize": 3}),
        b"new",
    );
    assert_eq!(raw.status()["status"], "ok");
    assert_eq!(fs::read_to_string(root.join("plain.txt")).unwrap(), "new");
}

#[test]
fn file_server_lists_while_uploads_come_and_go() {
    let dir = scratch("file_server_list_race");
    let root = dir.join("root");
    let server = Server::start("file_server", &["--root", root.to_str().unwrap()]);
    let addr = server.addr;
    // Four uploaders, each replacing its few files over and over: every upload creates a
    // temporary file and renames it away, under the lister's feet.
    let uploaders: Vec<_> = (0..4)
        .map(|u| {
            thread::spawn(move || {
                let mut raw = Raw::new(addr);
                for i in 0..150 {
                    let name = format!("u{u}-{}.bin", i % 3);
                    raw.send(
                        json!({"cmd": "put", "filename": name, "filesize": 100}),
                        &[u as u8; 100],
                    );
                    assert_eq!(raw.status()["status"], "ok");
                }
            })
        })
        .collect();
    let mut raw = Raw::new(addr);
    let mut lists = 0;
    while lists < 2000 && !uploaders.iter().all(std::thread::JoinHandle::is_finished) {
        raw.send(json!({"cmd": "list"}), b"");
        let status = raw.status();
        assert_eq!(status["status"], "ok", "list #{lists}: {status:?}");
        for file in status["files"].as_array().unwrap() {
            assert!(!file["name"].as_str().unwrap().starts_with('.'), "{file}");
        }
        lists += 1;
    }
    for uploader in uploaders {
        uploader.join().unwrap();
    }
    assert!(lists > 0);
    assert_eq!(listing(addr).len(), 12);
}

#[test]
fn file_server_needs_a_root() {
    let mut command = Command::new(example("file_server"));
    command.args(["--addr", "127.0.0.1:0"]);
    let run = Run::to_completion(command, RUN_TIMEOUT);
    assert_eq!(run.status.code(), Some(2), "{run}");
    assert!(run.stderr.contains("--root DIR is required"), "{run}");
}

#[test]
fn rust_file_client_round_trips_and_reports_refusals() {
    let dir = scratch("file_client");
    let root = dir.join("root");
    let server = Server::start("file_server", &["--root", root.to_str().unwrap()]);
    let data = sample_file(70_000);
    fs::write(dir.join("a.bin"), &data).unwrap();
    let script = format!(
        "put {}\n\nlist\nget a.bin {}\nget nope.bin {}\nquit\nlist\n",
        dir.join("a.bin").display(),
        dir.join("back.bin").display(),
        dir.join("nope.bin").display()
    );
    let run = client("file", server.addr, &[], &[], &script);
    assert_eq!(run.status.code(), Some(1), "one command failed: {run}");
    assert_eq!(
        run.stdout,
        format!(
            "put a.bin: 70000 bytes stored\na.bin\t70000\nget a.bin: 70000 bytes saved to {}\n",
            dir.join("back.bin").display()
        )
    );
    assert!(run.stderr.contains("no such file: nope.bin"), "{run}");
    assert_eq!(fs::read(dir.join("back.bin")).unwrap(), data);
    assert!(!dir.join("nope.bin").exists());
}

/// Issue 9: names of 233 to 255 bytes passed `check_file_name`, then the upload failed with
/// "File name too long", because the temporary file's name added 23 bytes. End to end with a
/// 255-byte name: stored, fetched and listed; and a cut-off upload of another leaves nothing.
#[test]
fn file_server_stores_and_serves_a_255_byte_name() {
    let dir = scratch("file_server_long_name");
    let root = dir.join("root");
    let server = Server::start("file_server", &["--root", root.to_str().unwrap()]);
    let name = format!("{}.bin", "n".repeat(251));
    assert_eq!(name.len(), 255);
    let mut raw = Raw::new(server.addr);
    raw.send(
        json!({"cmd": "put", "filename": name, "filesize": 5, "md5": md5_hex(b"hello")}),
        b"hello",
    );
    let status = raw.status();
    assert_eq!(status["status"], "ok", "{status:?}");
    raw.send(json!({"cmd": "get", "filename": name}), b"");
    let status = raw.status();
    assert_eq!(status["filesize"], 5, "{status:?}");
    let mut body = [0u8; 5];
    raw.stream.read_exact(&mut body).unwrap();
    assert_eq!(&body, b"hello");

    let cut = format!("{}.bin", "c".repeat(251));
    let mut raw = Raw::new(server.addr);
    raw.send(
        json!({"cmd": "put", "filename": cut, "filesize": 100_000}),
        &[1u8; 5000],
    );
    drop(raw);
    server.wait_for_log(&format!("upload of {cut} failed"));
    assert_eq!(listing(server.addr), std::slice::from_ref(&name));
    assert_eq!(all_entries(&root), [name]);
}

// ---------------------------------------------------------------------------------------------
// auth_echo

/// Seed 002 §13's clients, verbatim but for the port (argv) and one change: Python 3.8+ requires
/// `hmac.new`'s digest, which was MD5 by default in the seeds' Python. KEY is replaced per
/// client. [`seed_client`] adds a scripted `input()` and a socket timeout.
const SEED_AUTH_CLIENT: &str = r#"
from socket import *
import hmac,os
import sys  # added

secret_key=KEY
def conn_auth(conn):
    msg=conn.recv(32)
    h=hmac.new(secret_key,msg,'md5')  # changed: digestmod is required since Python 3.8
    digest=h.digest()
    conn.sendall(digest)

def client_handler(ip_port,bufsize=1024):
    tcp_socket_client=socket(AF_INET,SOCK_STREAM)
    tcp_socket_client.connect(ip_port)
    AUTH
    while True:
        data=input('>>: ').strip()
        if not data:continue
        if data == 'quit':break
        tcp_socket_client.sendall(data.encode('utf-8'))
        respone=tcp_socket_client.recv(bufsize)
        print(respone.decode('utf-8'))
    tcp_socket_client.close()

if __name__ == '__main__':
    ip_port=('127.0.0.1',int(sys.argv[1]))
    bufsize=1024
    client_handler(ip_port,bufsize)
"#;

fn seed_auth_client(key: &str, handshake: bool) -> String {
    SEED_AUTH_CLIENT
        .replace("KEY", &format!("b'{key}'"))
        .replace(
            "AUTH",
            if handshake {
                "conn_auth(tcp_socket_client)"
            } else {
                "pass  # the illegal client: no handshake"
            },
        )
}

#[test]
fn seed_hmac_clients_legal_accepted_illegal_refused() {
    if !python3_available() {
        return;
    }
    let server = Server::start_with_env(
        "auth_echo",
        &["--digest", "md5", "--handshake-timeout", "1"],
        &[("SOCKETSERVER_SECRET", SEED_KEY)],
    );
    let port = server.addr.port();

    let run = run_seed_client(
        &seed_auth_client(SEED_KEY, true),
        port,
        &["hello", "", "socketserver", "quit"],
    );
    assert!(run.status.success(), "{run}");
    assert_eq!(run.stdout, "HELLO\nSOCKETSERVER\n");

    // No handshake: the server takes the 5 bytes of "hello" as the start of a 16-byte answer,
    // and hangs up when the deadline passes or the client leaves. What the client prints (the
    // challenge's random bytes, or a decoding error) is never the echo.
    let run = run_seed_client(&seed_auth_client(SEED_KEY, false), port, &["hello"]);
    assert!(!run.stdout.contains("HELLO"), "{run}");
    let log = server.wait_for_log("authentication: ");
    assert!(
        log.contains("no complete answer within 1s (5 of 16 bytes arrived)")
            || log.contains("closed the connection after 5 of the 16 bytes of the answer"),
        "{log}"
    );

    // The seed's other illegal client: a wrong key.
    let run = run_seed_client(
        &seed_auth_client("linhaifeng bang bang bang1111", true),
        port,
        &["hello"],
    );
    assert!(!run.stdout.contains("HELLO"), "{run}");
    server.wait_for_log("authentication failed: the answer is not the HMAC-MD5");
}

#[test]
fn rust_auth_echo_client_with_and_without_the_key() {
    let server = Server::start_with_env("auth_echo", &[], &[("SOCKETSERVER_SECRET", "k")]);
    let run = client(
        "auth-echo",
        server.addr,
        &[],
        &[("SOCKETSERVER_SECRET", "k")],
        "hi\nthere\n",
    );
    assert!(run.status.success(), "{run}");
    assert_eq!(run.stdout, "HI\nTHERE\n");
    let run = client(
        "auth-echo",
        server.addr,
        &["--digest", "md5"],
        &[("SOCKETSERVER_SECRET", "k")],
        "hi\n",
    );
    assert_eq!(run.status.code(), Some(1), "{run}");
    assert!(run.stderr.contains("authentication refused?"), "{run}");
    let run = client("auth-echo", server.addr, &[], &[], "hi\n");
    assert_eq!(run.status.code(), Some(1), "{run}");
    assert!(run.stderr.contains("no secret key"), "{run}");
}

#[test]
fn auth_echo_without_a_key_does_not_start() {
    let mut command = Command::new(example("auth_echo"));
    command
        .args(["--addr", "127.0.0.1:0"])
        .env_remove("SOCKETSERVER_SECRET");
    let run = Run::to_completion(command, RUN_TIMEOUT);
    assert_eq!(run.status.code(), Some(1), "{run}");
    assert!(run.stderr.contains("SOCKETSERVER_SECRET"), "{run}");
}

// ---------------------------------------------------------------------------------------------
// sticky_packets

#[test]
fn sticky_packets_shows_both_cases_and_the_cure() {
    let run = Run::to_completion(Command::new(example("sticky_packets")), RUN_TIMEOUT);
    assert!(run.status.success(), "{run}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("listening on 127.0.0.1:"), "{run}");
    for want in [
        "  server recv(1024) #1: b'hellohello'",
        "  server recv(1024) #2: b''",
        "  server recv(3):    b'hel'",
        "  server recv(1024): b'lo!today is a good weather!'",
        "  server read_frame #1: b'hello'",
        "  server read_frame #2: b'hello'",
        "  server read_frame #3: b'hello!'",
        "  server read_frame #4: b'today is a good weather!'",
        "  server read_frame #5: b'one frame, sent a byte at a time'",
    ] {
        assert!(lines.contains(&want), "missing {want:?}: {run}");
    }
}

// ---------------------------------------------------------------------------------------------
// The framing module against Python

/// A Python server speaking `struct 'i'` frames: answers each with its upper-cased copy, sent
/// in awkward pieces (the length split in two, the body a few bytes at a time).
const PYTHON_FRAME_SERVER: &str = r#"
import socket, struct, sys, time
s = socket.socket()
s.bind(('127.0.0.1', 0))
s.listen(1)
s.settimeout(10)
print(s.getsockname()[1], flush=True)
conn, _ = s.accept()
conn.settimeout(10)
def recv_exact(n):
    data = b''
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data
while True:
    head = recv_exact(4)
    if head is None:
        break
    (n,) = struct.unpack('i', head)
    body = recv_exact(n)
    reply = struct.pack('i', len(body)) + body.upper()
    conn.sendall(reply[:2]); time.sleep(0.01)
    for i in range(2, len(reply), 7000):
        conn.sendall(reply[i:i + 7000])
conn.close()
"#;

#[test]
fn rust_framing_client_talks_to_a_python_struct_i_server() {
    if !python3_available() {
        return;
    }
    let mut server = Interactive::start(python(PYTHON_FRAME_SERVER, &[]));
    let port = server.next_line();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut stream = connect(addr);
    let framing = Framing::python_struct_i();
    let big: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let messages: [&[u8]; 4] = [b"hello", b"", "struct 'i' 和 Rust".as_bytes(), &big];
    // All requests in one burst, then the replies: each must come back whole and in order.
    let mut burst = Vec::new();
    for message in messages {
        framing.write_frame(&mut burst, message).unwrap();
    }
    stream.write_all(&burst).unwrap();
    for message in messages {
        let reply = framing.read_frame(&mut stream).unwrap().expect("a reply");
        assert_eq!(reply, message.to_ascii_uppercase());
    }
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(framing.read_frame(&mut stream).unwrap(), None);
}
