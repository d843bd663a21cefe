//! `client remote-cmd`: the Python tutorial's remote-command client for `remote_cmd`.
//!
//! Sends each line of stdin as one command, framed (see `examples/remote_cmd/wire.rs`: unlike the
//! tutorial's bare command, it is never cut or merged in transit), reads the `struct 'i'` + JSON
//! header, then exactly `total_size` bytes of output, which it prints as they arrive and checks
//! against the header's `md5`. A non-zero exit status, a time-out or a cut is noted on stderr; a
//! command the server refused (its header has `"error"`) prints the server's message on stderr,
//! and the client exits with status 1 at the end. If a key is configured
//! (`SOCKETSERVER_SECRET` or `--secret-file PATH`, `--digest md5|sha256`), the HMAC handshake
//! comes first. Stops at EOF or `quit`.

use std::io::{self, BufRead, Write};

use md5::{Digest as _, Md5};
use socketserver::framing::{copy_exact_inspect, header_u64, Framing};

use super::auth_echo::{authenticator, connect};
use super::remote_cmd_wire::framed_request;

pub fn run(addr: &str, args: &[String]) -> Result<(), String> {
    let (auth, rest) = authenticator(args)?;
    if let Some(extra) = rest.first() {
        return Err(format!("unexpected argument '{extra}'"));
    }
    let mut stream = connect(addr)?;
    if let Some(auth) = auth {
        auth.respond(&mut stream)
            .map_err(|e| format!("handshake with {addr} failed: {e}"))?;
    }
    let framing = Framing::python_struct_i().max_frame_len(64 * 1024);
    let mut refused = 0;
    for line in io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("cannot read stdin: {e}"))?;
        let command = line.trim();
        if command.is_empty() {
            continue;
        }
        if command == "quit" {
            break;
        }
        let request = framed_request(command.as_bytes())
            .map_err(|e| format!("cannot send the command: {e}"))?;
        io::Write::write_all(&mut stream, &request)
            .map_err(|e| format!("cannot send the command: {e}"))?;
        let header = framing
            .read_header(&mut stream)
            .map_err(|e| format!("bad reply header: {e}"))?
            .ok_or("the server closed the connection (authentication refused?)")?;
        let total = header_u64(&header, &["total_size", "data_size"]).map_err(|e| e.to_string())?;
        let error = header.get("error").and_then(|v| v.as_str());
        let mut md5 = Md5::new();
        // A refusal's output is the server's message: for stderr, like the client's own notes.
        let mut out: Box<dyn Write> = match error {
            Some(_) => Box::new(io::stderr().lock()),
            None => Box::new(io::stdout().lock()),
        };
        copy_exact_inspect(&mut stream, &mut out, total, |chunk| md5.update(chunk))
            .map_err(|e| format!("output cut off: {e}"))?;
        out.flush()
            .map_err(|e| format!("cannot write stdout: {e}"))?;
        drop(out);
        if error.is_some() {
            refused += 1;
        }
        let got = md5
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        if let Some(want) = header.get("md5").and_then(|v| v.as_str()) {
            if !want.eq_ignore_ascii_case(&got) {
                return Err(format!(
                    "md5 mismatch: the header says {want}, the output is {got}"
                ));
            }
        }
        let note = |text: String| {
            let _ = writeln!(io::stderr(), "[{text}]");
        };
        match header.get("exit_code").and_then(serde_json::Value::as_i64) {
            Some(0) | None => {}
            Some(code) => note(format!("exit status {code}")),
        }
        if header.get("timed_out").and_then(serde_json::Value::as_bool) == Some(true) {
            note("the command was killed at its time limit".to_string());
        }
        if header.get("truncated").and_then(serde_json::Value::as_bool) == Some(true) {
            note("the output was cut at the server's limit".to_string());
        }
    }
    match refused {
        0 => Ok(()),
        n => Err(format!("the server refused {n} command(s)")),
    }
}
