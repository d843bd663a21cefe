//! A client for the metrics admin listener, shared by `tests/metrics.rs` and
//! `tests/metrics_programs.rs`.

use std::io::{Read, Write};

/// `GET path` over `stream` (HTTP/1.0); the status line and the body.
pub fn get(mut stream: impl Read + Write, path: &str) -> (String, String) {
    write!(stream, "GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}
