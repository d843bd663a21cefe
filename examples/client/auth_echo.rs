//! `client auth-echo`: the Python tutorial's legal authenticated client for `auth_echo`.
//!
//! Answers the server's challenge with `HMAC(key, challenge)` (`--digest md5|sha256`, default
//! sha256; the key from `SOCKETSERVER_SECRET` or `--secret-file PATH`), then sends each line of
//! stdin and prints the upper-cased reply. Stops at EOF or `quit`.

use std::io::{self, BufRead, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use socketserver::auth::{Authenticator, Digest, Secret};

/// How long any read or write may wait.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(addr: &str, args: &[String]) -> Result<(), String> {
    let (auth, rest) = authenticator(args)?;
    if let Some(extra) = rest.first() {
        return Err(format!("unexpected argument '{extra}'"));
    }
    let auth = auth.ok_or("no secret key: set SOCKETSERVER_SECRET or pass --secret-file PATH")?;
    let mut stream = connect(addr)?;
    auth.respond(&mut stream)
        .map_err(|e| format!("handshake with {addr} failed: {e}"))?;
    let stdout = io::stdout();
    for line in io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("cannot read stdin: {e}"))?;
        let msg = line.trim();
        if msg.is_empty() {
            continue;
        }
        if msg == "quit" {
            break;
        }
        stream
            .write_all(msg.as_bytes())
            .map_err(|e| refused_or(e, "cannot send"))?;
        // The echo is exactly as long as the message; read all of it, however it is split.
        let mut reply = vec![0u8; msg.len()];
        stream
            .read_exact(&mut reply)
            .map_err(|e| refused_or(e, "no reply"))?;
        let mut out = stdout.lock();
        writeln!(out, "{}", String::from_utf8_lossy(&reply))
            .and_then(|()| out.flush())
            .map_err(|e| format!("cannot write stdout: {e}"))?;
    }
    Ok(())
}

/// The server closes the connection on a failed handshake without a word; say so.
fn refused_or(e: io::Error, what: &str) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe => format!(
            "the server closed the connection ({e}): authentication refused? Check the key and --digest"
        ),
        _ => format!("{what}: {e}"),
    }
}

/// Connects with read and write timeouts.
pub fn connect(addr: &str) -> Result<TcpStream, String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| format!("cannot set timeouts: {e}"))?;
    Ok(stream)
}

/// Takes `--secret-file PATH` and `--digest NAME` out of `args`: the authenticator, if a key is
/// configured (the file, else `SOCKETSERVER_SECRET`), and the remaining arguments.
pub fn authenticator(args: &[String]) -> Result<(Option<Authenticator>, Vec<String>), String> {
    let mut file = None;
    let mut digest = Digest::Sha256;
    let mut rest = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        if name != "--secret-file" && name != "--digest" {
            rest.push(arg.clone());
            continue;
        }
        let value = inline
            .or_else(|| args.next().cloned())
            .ok_or_else(|| format!("{name} needs a value"))?;
        if name == "--digest" {
            digest = value.parse().map_err(|e: io::Error| e.to_string())?;
        } else {
            file = Some(value);
        }
    }
    let secret = Secret::load(file.as_deref().map(Path::new), "SOCKETSERVER_SECRET")
        .map_err(|e| e.to_string())?;
    Ok((secret.map(|s| Authenticator::new(s).digest(digest)), rest))
}
