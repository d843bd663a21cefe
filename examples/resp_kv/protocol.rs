//! RESP2 requests in, replies out: a parser that finds one complete command at the front of the
//! input without copying it, and helpers that append replies to an output buffer.

use std::ops::Range;

/// Largest bulk string accepted in a request. Redis allows 512 MB; a benchmark example has no use
/// for more than this, and a bad peer cannot make it allocate more.
pub const MAX_BULK: usize = 16 * 1024 * 1024;
/// Most arguments in one multibulk command.
pub const MAX_ARGS: usize = 1024 * 1024;
/// Longest inline command (a line of space-separated words), as in Redis.
pub const MAX_INLINE: usize = 64 * 1024;

/// What the front of the input holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// One complete command of this many bytes; its arguments were stored as ranges.
    Command(usize),
    /// An empty command (a blank line, `*0`) of this many bytes: skip it.
    Empty(usize),
    /// Not a whole command yet: read more.
    Incomplete,
    /// Not RESP: reply with this error and close, as Redis does.
    Error(&'static str),
}

/// Parses the command at the front of `input`, storing each argument's byte range in `args`.
pub fn parse(input: &[u8], args: &mut Vec<Range<usize>>) -> Parsed {
    args.clear();
    match input.first() {
        None => Parsed::Incomplete,
        Some(b'*') => parse_multibulk(input, args),
        Some(_) => parse_inline(input, args),
    }
}

fn parse_inline(input: &[u8], args: &mut Vec<Range<usize>>) -> Parsed {
    let Some(newline) = input.iter().position(|&b| b == b'\n') else {
        return if input.len() > MAX_INLINE {
            Parsed::Error("too big inline request")
        } else {
            Parsed::Incomplete
        };
    };
    let mut i = 0;
    while i < newline {
        while i < newline && matches!(input[i], b' ' | b'\t' | b'\r') {
            i += 1;
        }
        let begin = i;
        while i < newline && !matches!(input[i], b' ' | b'\t' | b'\r') {
            i += 1;
        }
        if i > begin {
            args.push(begin..i);
        }
    }
    if args.is_empty() {
        Parsed::Empty(newline + 1)
    } else {
        Parsed::Command(newline + 1)
    }
}

fn parse_multibulk(input: &[u8], args: &mut Vec<Range<usize>>) -> Parsed {
    let Some((count, mut pos)) = number_line(input, 1) else {
        return incomplete_or(input, "invalid multibulk length");
    };
    let count = match count {
        Ok(n) if n <= 0 => return Parsed::Empty(pos),
        Ok(n) if n as usize <= MAX_ARGS => n as usize,
        _ => return Parsed::Error("invalid multibulk length"),
    };
    for _ in 0..count {
        match input.get(pos) {
            None => return Parsed::Incomplete,
            Some(b'$') => {}
            Some(_) => return Parsed::Error("expected '$'"),
        }
        let Some((len, after)) = number_line(input, pos + 1) else {
            return incomplete_or(&input[pos..], "invalid bulk length");
        };
        let len = match len {
            Ok(n) if n >= 0 && n as usize <= MAX_BULK => n as usize,
            _ => return Parsed::Error("invalid bulk length"),
        };
        let end = after + len;
        if input.len() < end + 2 {
            return Parsed::Incomplete;
        }
        if &input[end..end + 2] != b"\r\n" {
            return Parsed::Error("bulk string not followed by CRLF");
        }
        args.push(after..end);
        pos = end + 2;
    }
    Parsed::Command(pos)
}

/// A header line still arriving is incomplete; one that is already too long to be a number is an
/// error.
fn incomplete_or(input: &[u8], error: &'static str) -> Parsed {
    if input.len() > 32 && !input[..32].contains(&b'\n') {
        Parsed::Error(error)
    } else {
        Parsed::Incomplete
    }
}

/// Reads the decimal number on the line starting at `from`, ended by CRLF. `None`: the line is
/// not complete; `Some((Err(()), _))`: it is not a number.
fn number_line(input: &[u8], from: usize) -> Option<(Result<i64, ()>, usize)> {
    let rest = input.get(from..)?;
    let cr = rest.iter().take(32).position(|&b| b == b'\r')?;
    if rest.len() < cr + 2 {
        return None;
    }
    let next = from + cr + 2;
    if rest[cr + 1] != b'\n' {
        return Some((Err(()), next));
    }
    Some((parse_i64(&rest[..cr]).ok_or(()), next))
}

/// Parses a whole decimal `i64` (optional `-`), as Redis's `string2ll`: no `+`, no spaces, no
/// leading zeros but `0` itself.
pub fn parse_i64(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 19 || (digits[0] == b'0' && digits.len() > 1) {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(d - b'0');
        value = if negative {
            value.checked_mul(10)?.checked_sub(digit)?
        } else {
            value.checked_mul(10)?.checked_add(digit)?
        };
    }
    if negative && value == 0 {
        return None;
    }
    Some(value)
}

/// Appends `+<text>\r\n`.
pub fn simple(out: &mut Vec<u8>, text: &str) {
    out.push(b'+');
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `-<text>\r\n`.
pub fn error(out: &mut Vec<u8>, text: &str) {
    out.push(b'-');
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `:<n>\r\n`.
pub fn integer(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    push_decimal(out, n);
    out.extend_from_slice(b"\r\n");
}

/// Appends `$<len>\r\n<data>\r\n`.
pub fn bulk(out: &mut Vec<u8>, data: &[u8]) {
    out.push(b'$');
    push_decimal(out, data.len() as i64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends the null bulk string `$-1\r\n`.
pub fn nil(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// Appends an array header `*<n>\r\n`; the caller appends the `n` elements.
pub fn array(out: &mut Vec<u8>, n: usize) {
    out.push(b'*');
    push_decimal(out, n as i64);
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal without going through `fmt` (this runs for every reply).
pub fn push_decimal(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}
