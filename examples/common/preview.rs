//! Payloads in log lines: a short, escaped prefix, never the whole thing.

/// The most payload bytes a log line shows.
pub const SHOWN: usize = 64;

/// `payload` for a log line: in quotes, at most its first [`SHOWN`] bytes, escaped with
/// `escape_ascii` (so a peer's newlines, control characters or invalid UTF-8 cannot forge or
/// garble log lines), then `… (N bytes)` when it was cut. A flood of large requests then costs
/// short lines, not copies of the requests.
pub fn preview(payload: &[u8]) -> String {
    let shown = &payload[..payload.len().min(SHOWN)];
    if shown.len() < payload.len() {
        format!("\"{}\"… ({} bytes)", shown.escape_ascii(), payload.len())
    } else {
        format!("\"{}\"", shown.escape_ascii())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_payloads_are_shown_whole_and_escaped() {
        assert_eq!(preview(b""), r#""""#);
        assert_eq!(preview(b"hello"), r#""hello""#);
        assert_eq!(
            preview(b"a\nb\r\0\"\\\xff"),
            r#""a\nb\r\x00\"\\\xff""#,
            "newlines, NUL, quotes, backslashes and invalid UTF-8 are escaped"
        );
        assert_eq!(
            preview(&[b'x'; SHOWN]),
            format!("\"{}\"", "x".repeat(SHOWN))
        );
    }

    #[test]
    fn long_payloads_are_cut_to_a_prefix_with_their_size() {
        let long = vec![b'y'; 19_000];
        assert_eq!(
            preview(&long),
            format!("\"{}\"… (19000 bytes)", "y".repeat(SHOWN))
        );
        let one_more = vec![b'z'; SHOWN + 1];
        assert!(preview(&one_more).ends_with("\"… (65 bytes)"));
    }

    #[test]
    fn the_line_is_bounded_whatever_the_bytes() {
        // Every byte escaped to its longest form, \xNN: still a few hundred bytes at most.
        let worst = vec![0x80u8; 1 << 20];
        let shown = preview(&worst);
        assert!(shown.len() <= 4 * SHOWN + 32, "{} bytes", shown.len());
        assert!(!shown.contains('\n'));
        assert!(shown.ends_with("… (1048576 bytes)"));
    }
}
