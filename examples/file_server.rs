//! The Python socket tutorial's "FTP homework": uploads, downloads and listings of one folder.
//!
//! Every command is the tutorial's header + body message: `struct.pack('i', len(header))`, a UTF-8
//! JSON header, then the body the header announces. Many commands per connection.
//!
//! | command | header | body |
//! |---|---|---|
//! | upload | `{"cmd": "put", "filename": "a.txt", "filesize": N}`, optionally `"md5"` or `"sha256"` (hex); `{"file_name": …, "file_size": N}` without `cmd` too | N bytes |
//! | download | `{"cmd": "get", "filename": "a.txt"}` | none |
//! | listing | `{"cmd": "list"}` | none |
//!
//! After each command the server answers with a framed JSON status: `{"status": "ok", …}` or
//! `{"status": "error", "message": "…"}`. A `get` that succeeded is followed by the file: its
//! status carries `filesize` and `md5`. A `list` status carries `files: [{"name", "size"}]`. The
//! tutorial's upload clients never read these replies; that is fine.
//!
//! Safety, where the tutorial has none:
//!
//! * Files live in `--root DIR` only. Names with `..`, a separator, NUL or other control
//!   characters, absolute paths and names starting with `.` are refused (the tutorial's
//!   `normpath(join(dir, name))` lets `../` escape the folder).
//! * Only regular files are served, listed and overwritten. A symbolic link in the folder is
//!   never followed — `get` opens with `O_NOFOLLOW` and checks the opened file's type, `list`
//!   leaves links out, `put` refuses to replace one — so a link to `/etc/passwd` serves nothing.
//!   FIFOs, devices and folders are refused the same way (opened with `O_NONBLOCK`, so a FIFO
//!   cannot hang `get`).
//! * `list` shows what `get` would serve. Entries that vanish while it looks (an upload's
//!   temporary file renamed into place, a file deleted) are skipped, not an error.
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

#[path = "file_server/command.rs"]
mod command;
mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use command::{header_framing, interpret, Command, Refusal};
use common::{Args, Example, ExtraOption, ModeName};
use serde_json::{json, Value};
use socketserver::framing::{
    check_file_name, copy_exact, md5_hex_of, receive_file, Expected, Framing,
};
use socketserver::{RequestHandler, StreamRequest};

const EXAMPLE: Example = Example {
    name: "file_server",
    about: "The Python tutorial's FTP exercise: put (upload), get and list files in --root DIR, with struct 'i' + JSON headers.",
    default_addr: "127.0.0.1:8080",
    default_mode: ModeName::Threading,
    modes: ModeName::ALL,
    options: &[
        common::METRICS,
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
        common::MAX_LIFETIME,
    ],
};

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
        let framing = header_framing();
        // Between commands, a stopping server ends the connection (see wait_for_request); a
        // command on its way is still served.
        while req.wait_for_request()? {
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
            let next = match interpret(&header, self.max_file_size) {
                Ok(Command::Put {
                    name,
                    size,
                    expected,
                }) => self.put(req, &name, size, &expected)?,
                Ok(Command::Get { name }) => self.get(req, &name)?,
                Ok(Command::List) => self.list(req)?,
                Err(Refusal::Skip { body, message }) => {
                    // Skip the body so the next command is read from the right place.
                    copy_exact(req, &mut io::sink(), body)?;
                    reply_error(req, &message)?;
                    Next::Continue
                }
                Err(Refusal::Close { message }) => {
                    reply_error(req, &message)?;
                    Next::Close
                }
            };
            if let Next::Close = next {
                return Ok(());
            }
        }
        Ok(())
    }
}

impl FileServer {
    fn put(
        &self,
        req: &mut StreamRequest,
        name: &str,
        size: u64,
        expected: &Expected,
    ) -> io::Result<Next> {
        let dest = self.root.join(name);
        // Only a regular file is replaced. The rename that puts the upload in place would
        // replace a symbolic link itself, never its target, but a link (or a folder, a FIFO)
        // there was not put there by this server: leave it alone.
        match fs::symlink_metadata(&dest) {
            Ok(meta) if !meta.file_type().is_file() => {
                copy_exact(req, &mut io::sink(), size)?;
                reply_error(
                    req,
                    &format!("{name} exists and is not a regular file: only regular files are overwritten"),
                )?;
                return Ok(Next::Continue);
            }
            _ => {}
        }
        match receive_file(req, &dest, size, expected) {
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

    fn get(&self, req: &mut StreamRequest, name: &str) -> io::Result<Next> {
        let (mut file, size) = match open_regular(&self.root, name) {
            Ok(opened) => opened,
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
        let entries = match fs::read_dir(self.root.as_path()) {
            Ok(entries) => entries,
            Err(e) => {
                reply_error(req, &format!("cannot list the folder: {e}"))?;
                return Ok(Next::Continue);
            }
        };
        let mut files = Vec::new();
        // Uploads come and go while we look: an entry that vanishes, or cannot be read, is
        // skipped rather than failing the listing.
        for entry in entries.flatten() {
            // Only what `get` would serve: plain names (not the hidden temporary files of
            // uploads in progress), regular files (not links, whatever they point to).
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if check_file_name(&name).is_err() {
                continue;
            }
            // `DirEntry::metadata` does not follow links.
            match entry.metadata() {
                Ok(meta) if meta.file_type().is_file() => files.push((name, meta.len())),
                _ => {}
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

/// Opens `root/name` for reading if it is a regular file; its size. A symbolic link is refused
/// without being followed (`O_NOFOLLOW`), and a FIFO or device without blocking on it
/// (`O_NONBLOCK`, which changes nothing for reads of a regular file).
fn open_regular(root: &Path, name: &str) -> io::Result<(File, u64)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(root.join(name))
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name} is a symbolic link: only regular files are served"),
            ),
            _ if e.kind() == io::ErrorKind::NotFound => {
                io::Error::new(e.kind(), format!("no such file: {name}"))
            }
            _ => io::Error::new(e.kind(), format!("cannot open {name}: {e}")),
        })?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name} is not a regular file: only regular files are served"),
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
    let root = Arc::clone(&handler.root);
    let served = common::serve_tcp(args, builder, handler);
    // An upload cut off by an immediate stop (a second signal, the --grace period running out)
    // never reached the code that removes its temporary file: its thread, or its child process,
    // was still running when the stop ended.
    remove_partial_uploads(&root);
    served
}

/// Removes the hidden temporary files of unfinished uploads (`.part-<16 hex digits>`) from `root`.
fn remove_partial_uploads(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let is_partial = name.to_str().is_some_and(|name| {
            name.strip_prefix(".part-")
                .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        });
        if is_partial {
            match fs::remove_file(entry.path()) {
                Ok(()) => log::info!("removed the partial upload {}", entry.path().display()),
                Err(e) => log::warn!("cannot remove {}: {e}", entry.path().display()),
            }
        }
    }
}

fn main() -> ExitCode {
    let args = common::parse_args(&EXAMPLE);
    common::init_logging();
    common::exit_status(run(&args))
}
