//! Parsing a request head: finding where it ends as its bytes arrive, then the request line and
//! the few headers this server acts on.

/// Finds the end of a request head as its bytes arrive, examining every byte once: each call
/// resumes where the last one stopped, so a head trickled a byte at a time costs what one read
/// of it would.
///
/// Empty lines before the request line (RFC 9112 §2.2 allows ignoring them) are reported as they
/// complete, for the caller to drop at once, and count against the limit with the head itself:
/// a peer sending only line feeds is refused after `limit` bytes, however it splits them.
#[derive(Debug, Clone)]
pub struct HeadScanner {
    /// Most bytes of leading empty lines and head together.
    limit: usize,
    /// Bytes of leading empty lines the caller has already dropped, for this head.
    skipped: usize,
    /// Bytes of the pending input already examined.
    scanned: usize,
    /// Where the line being scanned starts in the pending input.
    line_start: usize,
    /// Whether the request line has ended (so an empty line now ends the head).
    in_head: bool,
    /// Bytes looked at, to check that the work stays linear in the input.
    #[cfg(test)]
    steps: usize,
}

/// What [`HeadScanner::scan`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// The head is not complete yet. The first `skip` bytes are empty lines to drop now; the
    /// next call gets the input that follows them, with whatever arrived since.
    More {
        /// Bytes of leading empty lines to drop.
        skip: usize,
    },
    /// After `skip` bytes of empty lines to drop, the next `len` bytes are a complete head,
    /// up to and including the empty line that ends it. The scanner is ready for the next head.
    Head {
        /// Bytes of leading empty lines to drop.
        skip: usize,
        /// Length of the head.
        len: usize,
    },
    /// More than the limit arrived without a complete head, and some of it was a request line.
    TooLarge,
    /// More than the limit arrived, all of it empty lines.
    OnlyEmptyLines,
}

impl HeadScanner {
    /// A scanner for heads of at most `limit` bytes, leading empty lines included.
    pub fn new(limit: usize) -> HeadScanner {
        HeadScanner {
            limit,
            skipped: 0,
            scanned: 0,
            line_start: 0,
            in_head: false,
            #[cfg(test)]
            steps: 0,
        }
    }

    /// Scans `pending`: the input after the last head (or after what the last call said to
    /// skip), including the bytes earlier calls already examined. Lines end in LF or CRLF.
    pub fn scan(&mut self, pending: &[u8]) -> Scan {
        // Only the first `limit` bytes can belong to an acceptable head; past them, there is no
        // need to look (and so the answer cannot depend on how the input was split).
        let cap = (self.limit - self.skipped).min(pending.len());
        let mut skip = 0;
        while self.scanned < cap {
            let rest = &pending[self.scanned..cap];
            let Some(i) = rest.iter().position(|&b| b == b'\n') else {
                self.count(rest.len());
                self.scanned = cap;
                break;
            };
            self.count(i + 1);
            let line = &pending[self.line_start..self.scanned + i];
            self.scanned += i + 1;
            let empty = match line {
                [] => true,
                [only] => {
                    self.count(1);
                    *only == b'\r'
                }
                _ => false,
            };
            if empty && self.in_head {
                let len = self.scanned - skip;
                self.reset();
                return Scan::Head { skip, len };
            }
            if empty {
                skip = self.scanned;
            } else {
                self.in_head = true;
            }
            self.line_start = self.scanned;
        }
        if pending.len() > cap {
            let unfinished = &pending[skip..cap];
            return if !self.in_head && (unfinished.is_empty() || unfinished == b"\r") {
                Scan::OnlyEmptyLines
            } else {
                Scan::TooLarge
            };
        }
        // The caller drops `skip` bytes: keep the offsets relative to what it passes next.
        self.skipped += skip;
        self.scanned -= skip;
        self.line_start -= skip;
        Scan::More { skip }
    }

    /// Ready for the next head.
    fn reset(&mut self) {
        (self.skipped, self.scanned, self.line_start, self.in_head) = (0, 0, 0, false);
    }

    #[cfg(test)]
    fn count(&mut self, bytes: usize) {
        self.steps += bytes;
    }

    #[cfg(not(test))]
    fn count(&mut self, _bytes: usize) {}
}

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

/// Parses a complete head, as found by [`HeadScanner`] (so without leading empty lines).
pub fn parse(head: &[u8]) -> Result<Head<'_>, Refusal> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
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

// These run under `cargo test` through `tests/http_head.rs`, which includes this file (an
// example's own unit tests are not run by default).
#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a connection fed `input` sees: every complete head, parsed, then how it stopped.
    #[derive(Debug, PartialEq, Eq)]
    enum Event {
        Head(Vec<u8>, Result<(Vec<u8>, Vec<u8>, bool), Refusal>),
        Refused(Scan),
    }

    fn event(head: &[u8]) -> Event {
        let parsed = parse(head).map(|h| (h.method.to_vec(), h.target.to_vec(), h.keep_alive));
        Event::Head(head.to_vec(), parsed)
    }

    /// Feeds `input` to a scanner in chunks of the given sizes (cycled), as the server does:
    /// dropping what it says to skip, taking every head it finds. Checks on the way that the
    /// bytes held between chunks never exceed the limit and that no byte is examined twice.
    /// Returns the events and the bytes still held at the end.
    fn feed(input: &[u8], limit: usize, sizes: &[usize]) -> (Vec<Event>, Vec<u8>) {
        let mut scanner = HeadScanner::new(limit);
        let (mut held, mut events) = (Vec::new(), Vec::new());
        let mut chunks = sizes.iter().copied().cycle();
        let (mut fed, mut newlines) = (0, 0);
        while fed < input.len() {
            let n = chunks.next().unwrap_or(1).clamp(1, input.len() - fed);
            let chunk = &input[fed..fed + n];
            held.extend_from_slice(chunk);
            fed += n;
            newlines += chunk.iter().filter(|&&b| b == b'\n').count();
            loop {
                match scanner.scan(&held) {
                    Scan::More { skip } => {
                        held.drain(..skip);
                        break;
                    }
                    Scan::Head { skip, len } => {
                        events.push(event(&held[skip..skip + len]));
                        held.drain(..skip + len);
                    }
                    refused => {
                        events.push(Event::Refused(refused));
                        return (events, held);
                    }
                }
            }
            assert!(
                held.len() <= limit,
                "{} bytes held, limit {limit}",
                held.len()
            );
            // Each byte is searched once, plus one look at each one-byte line.
            assert!(
                scanner.steps <= fed + newlines,
                "{} steps for {fed} bytes",
                scanner.steps
            );
        }
        (events, held)
    }

    /// The same, obviously (and quadratically): lines split from the whole input at once.
    fn reference(input: &[u8], limit: usize) -> Vec<Event> {
        let mut events = Vec::new();
        let mut rest = input;
        loop {
            let mut skip = 0;
            while rest[skip..].starts_with(b"\n") || rest[skip..].starts_with(b"\r\n") {
                skip += if rest[skip] == b'\n' { 1 } else { 2 };
            }
            // The end of the first empty line after a non-empty one, if any.
            let mut end = None;
            let mut at = skip;
            let mut first = true;
            while let Some(i) = rest[at..].iter().position(|&b| b == b'\n') {
                let line = &rest[at..at + i];
                if !first && (line.is_empty() || line == b"\r") {
                    end = Some(at + i + 1);
                    break;
                }
                (at, first) = (at + i + 1, false);
            }
            match end {
                Some(end) if end <= limit => {
                    events.push(event(&rest[skip..end]));
                    rest = &rest[end..];
                }
                _ if rest.len() > limit => {
                    let only_empty = skip >= limit
                        || rest[skip..limit].is_empty()
                        || &rest[skip..limit] == b"\r";
                    events.push(Event::Refused(if only_empty {
                        Scan::OnlyEmptyLines
                    } else {
                        Scan::TooLarge
                    }));
                    return events;
                }
                _ => return events,
            }
        }
    }

    #[test]
    fn finds_heads_ending_in_crlf_or_lf() {
        let mut scanner = HeadScanner::new(100);
        let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET";
        assert_eq!(scanner.scan(get), Scan::Head { skip: 0, len: 27 });
        assert_eq!(
            scanner.scan(b"GET /\nHost: a\n\n"),
            Scan::Head { skip: 0, len: 15 }
        );
        assert_eq!(scanner.scan(b"GET / HTTP/1.1\r\n"), Scan::More { skip: 0 });
    }

    #[test]
    fn leading_empty_lines_are_dropped_and_bounded() {
        let mut scanner = HeadScanner::new(10);
        assert_eq!(scanner.scan(b"\r\n\n\r"), Scan::More { skip: 3 });
        // The caller dropped them: the next call starts at the `\r`.
        assert_eq!(scanner.scan(b"\r\nA\n\n"), Scan::Head { skip: 2, len: 3 });
        // Ten line feeds are allowed (and dropped); the eleventh byte is one too many.
        let mut scanner = HeadScanner::new(10);
        assert_eq!(scanner.scan(&[b'\n'; 10]), Scan::More { skip: 10 });
        assert_eq!(scanner.scan(b"\n"), Scan::OnlyEmptyLines);
        // A request line that starts within the limit makes it a head too large.
        let mut scanner = HeadScanner::new(10);
        assert_eq!(scanner.scan(b"\n\n\nGET / HTTP/1.1"), Scan::TooLarge);
        // A line of only spaces is not empty: it is a (bad) request line.
        let mut scanner = HeadScanner::new(10);
        assert_eq!(scanner.scan(b" \r\n\r\n"), Scan::Head { skip: 0, len: 5 });
        assert!(parse(b" \r\n\r\n").is_err());
    }

    #[test]
    fn the_limit_counts_the_head_and_its_leading_empty_lines() {
        let head = b"\r\nGET / HTTP/1.0\r\n\r\n";
        assert_eq!(
            HeadScanner::new(head.len()).scan(head),
            Scan::Head {
                skip: 2,
                len: head.len() - 2
            }
        );
        assert_eq!(HeadScanner::new(head.len() - 1).scan(head), Scan::TooLarge);
        // A head under the limit is found even when what follows it is over.
        let mut pipelined = head.to_vec();
        pipelined.extend_from_slice(&[b'x'; 100]);
        assert_eq!(
            HeadScanner::new(head.len()).scan(&pipelined),
            Scan::Head {
                skip: 2,
                len: head.len() - 2
            }
        );
    }

    #[test]
    fn a_trickled_head_is_examined_once() {
        // 8,000 leading line feeds, then a head, one byte per read: the old scan looked at
        // every byte held on every read, and at all earlier ones for each empty line.
        let mut input = vec![b'\n'; 8000];
        input.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let (events, held) = feed(&input, 8192, &[1]);
        assert_eq!(events, vec![event(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")]);
        assert!(held.is_empty());
    }

    #[test]
    fn a_stream_of_line_feeds_is_refused_after_the_limit() {
        let input = vec![b'\n'; 100_000];
        let (events, held) = feed(&input, 8192, &[1, 7, 4096]);
        assert_eq!(events, vec![Event::Refused(Scan::OnlyEmptyLines)]);
        // Never more than one chunk held: the empty lines were dropped as they came.
        assert!(held.len() <= 4096, "{} bytes held", held.len());
    }

    #[test]
    fn parses_the_request_line_and_the_headers_it_acts_on() {
        let head = parse(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").unwrap();
        assert_eq!((head.method, head.target), (&b"GET"[..], &b"/x"[..]));
        assert!(!head.keep_alive && !head.http10);
        let head =
            parse(b"POST / HTTP/1.0\nConnection: keep-alive\nContent-Length: 5\n\n").unwrap();
        assert!(head.keep_alive && head.http10);
        assert_eq!(head.content_length, 5);
        assert_eq!(
            parse(b"GET / HTTP/2.0\r\n\r\n"),
            Err(Refusal::VersionNotSupported)
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(Refusal::NotImplemented)
        );
    }

    /// Bytes a head is made of, and the ones that break it: line ends in every form, a request
    /// line, headers (good, bad and repeated), spaces, and noise.
    fn adversarial() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            4 => Just(b"\n".to_vec()),
            4 => Just(b"\r\n".to_vec()),
            2 => Just(b"\r".to_vec()),
            3 => Just(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n".to_vec()),
            2 => Just(b"GET / HTTP/1.1\r\n".to_vec()),
            1 => Just(b"HEAD /x HTTP/1.0\n".to_vec()),
            2 => Just(b"Host: h\r\n".to_vec()),
            1 => Just(b"Connection: close, keep-alive\r\n".to_vec()),
            1 => Just(b"Content-Length: 12\r\n".to_vec()),
            1 => Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
            1 => Just(b" :\t".to_vec()),
            2 => proptest::collection::vec(any::<u8>(), 1..24),
        ];
        proptest::collection::vec(piece, 0..60).prop_map(|pieces| pieces.concat())
    }

    fn any_input() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..1024),
            proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 0..1024),
            adversarial(),
        ]
    }

    proptest! {
        /// Any input in any chunking: no panic, nothing held beyond the limit, no byte examined
        /// twice, and the same heads and refusal as the whole input scanned at once.
        #[test]
        fn any_input_in_any_chunking_gives_the_reference_result(
            input in any_input(),
            limit in 1usize..600,
            sizes in proptest::collection::vec(1usize..300, 1..12),
        ) {
            let (chunked, _) = feed(&input, limit, &sizes);
            let (whole, _) = feed(&input, limit, &[input.len().max(1)]);
            prop_assert_eq!(&chunked, &whole);
            prop_assert_eq!(chunked, reference(&input, limit));
        }

        /// However many empty lines lead, byte by byte: dropped as they come, and refused once
        /// they alone pass the limit.
        #[test]
        fn leading_empty_lines_are_never_held(
            count in 0usize..3000,
            crlf in any::<u64>(),
            limit in 1usize..4096,
        ) {
            // Line `i` ends in CRLF when bit `i % 64` of `crlf` is set, else in a bare LF.
            let input: Vec<u8> = (0..count)
                .flat_map(|i| if crlf >> (i % 64) & 1 == 1 { &b"\r\n"[..] } else { &b"\n"[..] })
                .copied()
                .collect();
            let (events, held) = feed(&input, limit, &[1]);
            if input.len() > limit {
                prop_assert_eq!(events, vec![Event::Refused(Scan::OnlyEmptyLines)]);
            } else {
                prop_assert_eq!(events, vec![]);
                // At most the `\r` of a CRLF still to come.
                prop_assert!(held.len() <= 1, "{} bytes held", held.len());
            }
        }

        /// The parser takes any bytes as a head without panicking.
        #[test]
        fn parse_never_panics(head in any_input()) {
            let _ = parse(&head);
        }
    }
}
