//! Parsing a request head: the request line and the few headers this server acts on.

/// Why a request head was refused: the status to answer with before closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400: not a well-formed request line or header.
    BadRequest(&'static str),
    /// 501: a `Transfer-Encoding` this server does not decode.
    NotImplemented,
    /// 505: an HTTP version other than 1.0 and 1.1.
    VersionNotSupported,
}

/// What the server needs from a request head.
#[derive(Debug, PartialEq, Eq)]
pub struct Head<'a> {
    /// `GET`, `HEAD`, …
    pub method: &'a [u8],
    /// The request target, e.g. `/`.
    pub target: &'a [u8],
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// Whether the reply names the connection's fate (`Connection: keep-alive` for HTTP/1.0).
    pub http10: bool,
    /// The request body's length, to skip it.
    pub content_length: usize,
}

/// The length of the head at the front of `input`, up to and including the blank line, if it has
/// all arrived. Lines may end in CRLF or a bare LF.
pub fn head_len(input: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = input[from..].iter().position(|&b| b == b'\n') {
        let end = from + i + 1;
        let line = &input[from..end];
        if line == b"\n" || line == b"\r\n" {
            // A blank line before the request line is allowed (RFC 9112 §2.2): it is skipped by
            // the parser, not the end of the head.
            if from > 0 && !input[..from].iter().all(|b| b.is_ascii_whitespace()) {
                return Some(end);
            }
        }
        from = end;
    }
    None
}

/// Parses a complete head, as found by [`head_len`].
pub fn parse(head: &[u8]) -> Result<Head<'_>, Refusal> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .skip_while(|line| line.is_empty());
    let request_line = lines.next().ok_or(Refusal::BadRequest("no request line"))?;
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::BadRequest("malformed request line"));
    };
    if method.is_empty() || !method.iter().all(|&b| is_token(b)) {
        return Err(Refusal::BadRequest("malformed method"));
    }
    if target.is_empty() || target.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(Refusal::BadRequest("malformed request target"));
    }
    let http10 = match version {
        b"HTTP/1.1" => false,
        b"HTTP/1.0" => true,
        v if v.starts_with(b"HTTP/") && v.len() == 8 && v[5].is_ascii_digit() => {
            return Err(Refusal::VersionNotSupported)
        }
        _ => return Err(Refusal::BadRequest("malformed HTTP version")),
    };

    let mut keep_alive = !http10;
    let mut content_length: Option<usize> = None;
    let mut host = false;
    for line in lines.filter(|line| !line.is_empty()) {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(Refusal::BadRequest("header line without a colon"))?;
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Err(Refusal::BadRequest("malformed header name"));
        }
        if name.eq_ignore_ascii_case(b"connection") {
            for option in value.split(|&b| b == b',').map(trim) {
                if option.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if option.eq_ignore_ascii_case(b"keep-alive") && http10 {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let length = parse_length(value).ok_or(Refusal::BadRequest("bad Content-Length"))?;
            if content_length.is_some_and(|seen| seen != length) {
                return Err(Refusal::BadRequest("conflicting Content-Length headers"));
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(Refusal::NotImplemented);
        } else if name.eq_ignore_ascii_case(b"host") {
            host = true;
        }
    }
    if !http10 && !host {
        return Err(Refusal::BadRequest(
            "HTTP/1.1 request without a Host header",
        ));
    }
    Ok(Head {
        method,
        target,
        keep_alive,
        http10,
        content_length: content_length.unwrap_or(0),
    })
}

/// RFC 9110 `tchar`.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !matches!(b, b' ' | b'\t'));
    let end = bytes.iter().rposition(|b| !matches!(b, b' ' | b'\t'));
    match (start, end) {
        (Some(s), Some(e)) => &bytes[s..=e],
        _ => &[],
    }
}

fn parse_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}
