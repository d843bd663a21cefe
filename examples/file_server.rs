//! The seeds' "FTP homework" (seeds 000 and 002): uploads, downloads and listings of one folder.
//!
//! Every command is the seeds' header + body message: `struct.pack('i', len(header))`, a UTF-8
//! JSON header, then the body the header announces. Many commands per connection.
//!
//! | command | header | body |
//! |---|---|---|
//! | upload | `{"cmd": "put", "filename": "a.txt", "filesize": N}` (seed 002), optionally `"md5"` or `"sha256"` (hex); seed 000's `{"file_name": …, "file_size": N}` without `cmd` too | N bytes |
//! | download | `{"cmd": "get", "filename": "a.txt"}` | none |
//! | listing | `{"cmd": "list"}` | none |
//!
//! After each command the server answers with a framed JSON status:
//! `{"status": "ok", …}` or `{"status": "error", "message": "…"}`. A `get` that succeeded is
//! followed by the file: its status carries `filesize` and `md5`. A `list` status carries
//! `files: [{"name", "size"}]`. The seeds' upload clients never read these replies; that is fine.
//!
//! Safety, where the seeds have none:
//!
//! * Files live in `--root DIR` only. Names with `..`, a separator, NUL or other control
//!   characters, absolute paths and names starting with `.` are refused (the seeds'
//!   `normpath(join(dir, name))` lets `../` escape the folder).
//! * An upload is written to a hidden temporary file and renamed into place only when all the
//!   announced bytes arrived (and the `md5`/`sha256` matched, if the header had one): a cut-off
//!   upload never appears as a finished file.
//! * Uploads over `--max-file-size` are refused, and the connection is closed — its body is not
//!   read. A header that is not JSON, or announces an impossible size, also ends the connection
//!   after an error status. A client idle for `--idle-timeout` seconds is disconnected.
//!
//! ```text
//! cargo run --example file_server -- --root ./file_upload        # 127.0.0.1:8080
//! cargo run --example client -- file --addr 127.0.0.1:8080 put a.txt
//! ```

mod common;

use std::fs::{self, File};
use std::io::{self, Seek};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use common::{Args, Example, ExtraOption, ModeName};
use serde_json::{json, Value};
use socketserver::framing::{
    check_file_name, copy_exact, header_str, header_u64, md5_hex_of, receive_file, Expected,
    Framing, Header,
};
use socketserver::{RequestHandler, StreamRequest};

const EXAMPLE: Example = Example {
    name: "file_server",
    about: "The seeds' FTP homework: put (upload), get and list files in --root DIR, with struct 'i' + JSON headers.",
    default_addr: "127.0.0.1:8080",
    default_mode: ModeName::Threading,
    options: &[
        ExtraOption {
            name: "--root",
            value: "DIR",
            help: "the folder served; created if missing (required)",
            check: common::any_value,
        },
        ExtraOption {
            name: "--max-file-size",
            value: "BYTES",
            help: "largest upload accepted (default 67108864, 64 MiB)",
            check: common::check_parses::<u64>,
        },
        ExtraOption {
            name: "--idle-timeout",
            value: "SECS",
            help: "disconnect a client silent for this long (default 300)",
            check: common::check_parses::<f64>,
        },
    ],
};

/// JSON headers are small; anything larger is hostile or broken.
const MAX_HEADER: u64 = 64 * 1024;

#[derive(Clone)]
struct FileServer {
    root: Arc<PathBuf>,
    max_file_size: u64,
}

/// What to do with the connection after a command.
enum Next {
    Continue,
    Close,
}

impl RequestHandler<StreamRequest> for FileServer {
    fn handle(&mut self, req: &mut StreamRequest) -> io::Result<()> {
        let framing = Framing::python_struct_i().max_frame_len(MAX_HEADER);
        loop {
            let header = match framing.read_header(req) {
                Ok(Some(header)) => header,
                Ok(None) => return Ok(()), // the client left between commands
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    // Out of step with the client: say why, then hang up.
                    let _ = reply_error(req, &e.to_string());
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            let cmd = match header.get("cmd") {
                Some(Value::String(cmd)) => cmd.clone(),
                // Seed 000 sends uploads without a "cmd".
                None if header.contains_key("file_name") || header.contains_key("filename") => {
                    "put".to_string()
                }
                _ => String::new(),
            };
            let next = match cmd.as_str() {
                "put" => self.put(req, &header)?,
                "get" => self.get(req, &header)?,
                "list" => self.list(req)?,
                _ => {
                    reply_error(req, "unknown command: \"cmd\" must be put, get or list")?;
                    Next::Continue
                }
            };
            if let Next::Close = next {
                return Ok(());
            }
        }
    }
}

impl FileServer {
    fn put(&self, req: &mut StreamRequest, header: &Header) -> io::Result<Next> {
        let size = match header_u64(header, &["filesize", "file_size"]) {
            Ok(size) => size,
            Err(e) => {
                // Without a size the body cannot be skipped: the connection is out of step.
                reply_error(req, &e.to_string())?;
                return Ok(Next::Close);
            }
        };
        if size > self.max_file_size {
            log::debug!("{}: refused an upload of {size} bytes", req.peer_addr());
            reply_error(
                req,
                &format!(
                    "the file is {size} bytes, more than the limit of {} bytes",
                    self.max_file_size
                ),
            )?;
            return Ok(Next::Close);
        }
        let checked = header_str(header, &["filename", "file_name"])
            .and_then(check_file_name)
            .map(str::to_string)
            .and_then(|name| Ok((name, Expected::from_header(header)?)));
        let (name, expected) = match checked {
            Ok(ok) => ok,
            Err(e) => {
                // Skip the body so the next command is read from the right place.
                copy_exact(req, &mut io::sink(), size)?;
                reply_error(req, &e.to_string())?;
                return Ok(Next::Continue);
            }
        };
        match receive_file(req, &self.root.join(&name), size, &expected) {
            Ok(()) => {
                log::info!("{}: stored {name} ({size} bytes)", req.peer_addr());
                reply(
                    req,
                    json!({"status": "ok", "cmd": "put", "filename": name, "filesize": size}),
                )?;
                Ok(Next::Continue)
            }
            // A checksum mismatch comes after the whole body was read: still in step.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                reply_error(req, &e.to_string())?;
                Ok(Next::Continue)
            }
            Err(e) => {
                let _ = reply_error(req, &format!("upload of {name} failed: {e}"));
                Err(io::Error::new(
                    e.kind(),
                    format!("upload of {name} failed: {e}"),
                ))
            }
        }
    }

    fn get(&self, req: &mut StreamRequest, header: &Header) -> io::Result<Next> {
        let opened = header_str(header, &["filename", "file_name"])
            .and_then(check_file_name)
            .and_then(|name| open_regular(&self.root.join(name)).map(|f| (name.to_string(), f)));
        let (name, mut file, size) = match opened {
            Ok((name, (file, size))) => (name, file, size),
            Err(e) => {
                reply_error(req, &e.to_string())?;
                return Ok(Next::Continue);
            }
        };
        let md5 = md5_hex_of(&mut file)?;
        file.rewind()?;
        reply(
            req,
            json!({"status": "ok", "cmd": "get", "filename": name, "filesize": size, "md5": md5}),
        )?;
        copy_exact(&mut file, req, size)?;
        log::info!("{}: sent {name} ({size} bytes)", req.peer_addr());
        Ok(Next::Continue)
    }

    fn list(&self, req: &mut StreamRequest) -> io::Result<Next> {
        let mut files = Vec::new();
        for entry in fs::read_dir(self.root.as_path())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = entry.metadata()?;
            // Hidden names include uploads still in progress.
            if meta.is_file() && !name.starts_with('.') {
                files.push((name, meta.len()));
            }
        }
        files.sort();
        let files: Vec<Value> = files
            .into_iter()
            .map(|(name, size)| json!({"name": name, "size": size}))
            .collect();
        reply(req, json!({"status": "ok", "cmd": "list", "files": files}))?;
        Ok(Next::Continue)
    }
}

/// Opens `path` for reading if it is a regular file; its size.
fn open_regular(path: &Path) -> io::Result<(File, u64)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => io::Error::new(e.kind(), format!("no such file: {name}")),
        _ => io::Error::new(e.kind(), format!("cannot open {name}: {e}")),
    })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name} is not a regular file"),
        ));
    }
    Ok((file, meta.len()))
}

fn reply(req: &mut StreamRequest, status: Value) -> io::Result<()> {
    let status = status.as_object().cloned().unwrap_or_default();
    Framing::python_struct_i().write_header(req, &status)
}

/// Refuses a request. Logged at debug, as a client can make refusals as fast as it can send; a
/// stored or sent file is logged at info (it took a whole transfer, and names a checked file).
fn reply_error(req: &mut StreamRequest, message: &str) -> io::Result<()> {
    log::debug!("{}: {message}", req.peer_addr());
    reply(req, json!({"status": "error", "message": message}))
}

fn run(args: &Args) -> io::Result<()> {
    let Some(root) = args.value("--root") else {
        args.usage_error("--root DIR is required: the folder to serve");
    };
    fs::create_dir_all(root)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot create --root {root}: {e}")))?;
    let root = fs::canonicalize(root)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open --root {root}: {e}")))?;
    let idle: f64 = args.parsed("--idle-timeout", 300.0);
    let handler = FileServer {
        root: Arc::new(root),
        max_file_size: args.parsed("--max-file-size", 64 * 1024 * 1024),
    };
    log::info!("serving files in {}", handler.root.display());
    let builder = args
        .builder()
        .read_timeout(Duration::from_secs_f64(idle.clamp(0.001, 86_400.0)))
        .write_timeout(Duration::from_secs_f64(idle.clamp(0.001, 86_400.0)));
    common::serve_tcp(args, builder, handler)
}

fn main() -> ExitCode {
    let args = common::parse_args(&EXAMPLE);
    common::init_logging();
    common::exit_status(run(&args))
}
