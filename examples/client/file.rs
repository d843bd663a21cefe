//! `client file`: uploads, downloads and listings for `file_server` (the tutorial's FTP homework).
//!
//! Commands, given after `--addr` or as lines on stdin (the tutorial's `>>:` prompt, one per line,
//! until EOF or `quit`):
//!
//! * `put PATH` — uploads the file with a `cmd`/`filename`/`filesize` header plus its `md5`, then
//!   prints the server's status.
//! * `get NAME [DEST]` — downloads `NAME` into `DEST` (default: `NAME` in the current folder);
//!   the file appears only when complete and its MD5 matched.
//! * `list` — prints `name<TAB>size` for every file.
//!
//! A refused command prints the server's message on stderr; the client goes on with the next
//! and exits with status 1 at the end if any failed.

use std::fs::File;
use std::io::{self, BufRead, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use socketserver::framing::{
    copy_exact, header_str, header_u64, md5_hex_of, receive_file, Expected, Framing, Header,
};

use super::auth_echo::connect;

pub fn run(addr: &str, args: &[String]) -> Result<(), String> {
    let mut stream = connect(addr)?;
    let mut failed = 0;
    let mut one = |stream: &mut TcpStream, words: &[String]| -> Result<bool, String> {
        match command(stream, words) {
            Ok(()) => Ok(true),
            Err(Failure::Refused(message)) => {
                let _ = writeln!(io::stderr(), "{}: {message}", words.join(" "));
                failed += 1;
                Ok(true)
            }
            Err(Failure::Fatal(message)) => Err(message),
        }
    };
    if !args.is_empty() {
        one(&mut stream, args)?;
    } else {
        for line in io::stdin().lock().lines() {
            let line = line.map_err(|e| format!("cannot read stdin: {e}"))?;
            let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            if words.is_empty() {
                continue;
            }
            if words[0] == "quit" {
                break;
            }
            one(&mut stream, &words)?;
        }
    }
    match failed {
        0 => Ok(()),
        n => Err(format!("{n} command(s) failed")),
    }
}

/// A command that failed: refused by the server (the connection goes on), or fatal.
enum Failure {
    Refused(String),
    Fatal(String),
}

fn fatal(what: &str) -> impl Fn(io::Error) -> Failure + '_ {
    move |e| Failure::Fatal(format!("{what}: {e}"))
}

fn framing() -> Framing {
    Framing::python_struct_i().max_frame_len(16 * 1024 * 1024)
}

fn command(stream: &mut TcpStream, words: &[String]) -> Result<(), Failure> {
    let usage = || Failure::Refused("usage: put PATH | get NAME [DEST] | list".to_string());
    match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["put", path] => put(stream, Path::new(path)),
        ["get", name] => get(stream, name, PathBuf::from(name)),
        ["get", name, dest] => get(stream, name, PathBuf::from(dest)),
        ["list"] => list(stream),
        _ => Err(usage()),
    }
}

fn send_header(stream: &mut TcpStream, header: Value) -> Result<(), Failure> {
    let header = header.as_object().cloned().unwrap_or_default();
    framing()
        .write_header(stream, &header)
        .map_err(fatal("cannot send"))
}

/// Reads the server's status; `Refused` with its message if it is an error.
fn status(stream: &mut TcpStream) -> Result<Header, Failure> {
    let header = framing()
        .read_header(stream)
        .map_err(fatal("bad reply"))?
        .ok_or_else(|| Failure::Fatal("the server closed the connection".to_string()))?;
    match header.get("status").and_then(Value::as_str) {
        Some("ok") => Ok(header),
        _ => {
            let message = header_str(&header, &["message"]).unwrap_or("refused, no reason given");
            Err(Failure::Refused(message.to_string()))
        }
    }
}

fn put(stream: &mut TcpStream, path: &Path) -> Result<(), Failure> {
    let refused = |e: io::Error| Failure::Refused(format!("{}: {e}", path.display()));
    let mut file = File::open(path).map_err(refused)?;
    let size = file.metadata().map_err(refused)?.len();
    let md5 = md5_hex_of(&mut file).map_err(refused)?;
    let mut file = File::open(path).map_err(refused)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Failure::Refused(format!("{} is not a file", path.display())))?;
    send_header(
        stream,
        json!({"cmd": "put", "filename": name, "filesize": size, "md5": md5}),
    )?;
    copy_exact(&mut file, stream, size).map_err(fatal("upload interrupted"))?;
    status(stream)?;
    println!("put {name}: {size} bytes stored");
    Ok(())
}

fn get(stream: &mut TcpStream, name: &str, dest: PathBuf) -> Result<(), Failure> {
    send_header(stream, json!({"cmd": "get", "filename": name}))?;
    let header = status(stream)?;
    let size = header_u64(&header, &["filesize"]).map_err(fatal("bad reply"))?;
    let expected = Expected::from_header(&header).map_err(fatal("bad reply"))?;
    receive_file(stream, &dest, size, &expected).map_err(fatal("download failed"))?;
    println!("get {name}: {size} bytes saved to {}", dest.display());
    Ok(())
}

fn list(stream: &mut TcpStream) -> Result<(), Failure> {
    send_header(stream, json!({"cmd": "list"}))?;
    let header = status(stream)?;
    let files = header
        .get("files")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = io::stdout().lock();
    for file in files {
        let name = file.get("name").and_then(Value::as_str).unwrap_or("?");
        let size = file.get("size").and_then(Value::as_u64).unwrap_or(0);
        let _ = writeln!(out, "{name}\t{size}");
    }
    Ok(())
}
