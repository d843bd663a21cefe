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

use programs::python::{python, python3_available, run_seed_client, seed_client};
use programs::{example, scratch, Interactive, Run, Server, IO_TIMEOUT, RUN_TIMEOUT};
use serde_json::{json, Value};
use socketserver::framing::{md5_hex, Framing, Header};

const SEED_KEY: &str = "linhaifeng bang bang bang";

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

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

/// A raw connection to file_server speaking the framing by hand.
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
