//! What a command header asks for, or why it is refused — the part of `file_server` that reads
//! what a client sent, kept apart so the property tests (`tests/fuzz_file_server.rs`) can feed
//! it hostile headers.

use serde_json::Value;
use socketserver::framing::{check_file_name, header_str, header_u64, Expected, Framing, Header};

/// JSON headers are small; anything larger is hostile or broken.
pub const MAX_HEADER: u64 = 64 * 1024;

/// How command headers are framed: the tutorial's `struct 'i'` length, then at most [`MAX_HEADER`]
/// bytes of JSON.
pub fn header_framing() -> Framing {
    Framing::python_struct_i().max_frame_len(MAX_HEADER)
}

/// A command the server carries out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Store the `size` bytes that follow the header as `name`.
    Put {
        name: String,
        size: u64,
        expected: Expected,
    },
    /// Send the file `name`.
    Get { name: String },
    /// List the files.
    List,
}

/// A command refused, and how to stay in step with the client afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Skip the `body` bytes the header announced, reply `message`, then read the next command.
    Skip { body: u64, message: String },
    /// Reply `message` and close the connection: the body that follows cannot be skipped (its
    /// size is missing, or more than the server reads).
    Close { message: String },
}

/// Reads `header`: the tutorial's `{"cmd": "put", "filename", "filesize"}` (or its
/// `file_name`/`file_size` without `cmd`), `{"cmd": "get", "filename"}`, `{"cmd": "list"}`.
/// Uploads over `max_file_size` bytes are refused with [`Refusal::Close`].
pub fn interpret(header: &Header, max_file_size: u64) -> Result<Command, Refusal> {
    let cmd = match header.get("cmd") {
        Some(Value::String(cmd)) => cmd.as_str(),
        // One of the tutorial's upload clients sends no "cmd".
        None if header.contains_key("file_name") || header.contains_key("filename") => "put",
        _ => "",
    };
    match cmd {
        "put" => put(header, max_file_size),
        "get" => {
            let name = file_name(header).map_err(|message| Refusal::Skip { body: 0, message })?;
            Ok(Command::Get { name })
        }
        "list" => Ok(Command::List),
        _ => Err(Refusal::Skip {
            body: 0,
            message: "unknown command: \"cmd\" must be put, get or list".to_string(),
        }),
    }
}

fn put(header: &Header, max_file_size: u64) -> Result<Command, Refusal> {
    // Without a size the body cannot be skipped: the connection is out of step.
    let size = header_u64(header, &["filesize", "file_size"]).map_err(|e| Refusal::Close {
        message: e.to_string(),
    })?;
    if size > max_file_size {
        return Err(Refusal::Close {
            message: format!(
                "the file is {size} bytes, more than the limit of {max_file_size} bytes"
            ),
        });
    }
    let skip = |message| Refusal::Skip {
        body: size,
        message,
    };
    let name = file_name(header).map_err(skip)?;
    let expected = Expected::from_header(header).map_err(|e| skip(e.to_string()))?;
    Ok(Command::Put {
        name,
        size,
        expected,
    })
}

/// The header's `filename` (or `file_name`), if it is a plain name inside the folder.
fn file_name(header: &Header) -> Result<String, String> {
    header_str(header, &["filename", "file_name"])
        .and_then(check_file_name)
        .map(str::to_string)
        .map_err(|e| e.to_string())
}
