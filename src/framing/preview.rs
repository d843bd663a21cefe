//! A peer's bytes in an error message: a short, escaped prefix, never the whole thing.
//!
//! Errors end up in log lines (the default `handle_error` logs them) and in replies, so a header
//! field of megabytes, or one with newlines that would forge log lines, must not be copied into
//! them whole. The examples have the same helper for their own log lines.

/// The most bytes of a peer's value an error message shows.
const SHOWN: usize = 64;

/// `bytes` in quotes, at most the first [`SHOWN`] of them, escaped with `escape_ascii`, then
/// `… (N bytes)` when cut.
pub(crate) fn preview(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(SHOWN)];
    if shown.len() < bytes.len() {
        format!("\"{}\"… ({} bytes)", shown.escape_ascii(), bytes.len())
    } else {
        format!("\"{}\"", shown.escape_ascii())
    }
}

/// A header value for an error message: its JSON (which escapes control characters), or a
/// [`preview`] of that when it is long.
#[cfg(feature = "json")]
pub(crate) fn shown(value: &serde_json::Value) -> String {
    let json = value.to_string();
    if json.len() <= SHOWN {
        json
    } else {
        preview(json.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_shown_whole_and_escaped() {
        assert_eq!(preview(b"../a.txt"), r#""../a.txt""#);
        assert_eq!(preview(b"a\nb\0\"\xff"), r#""a\nb\x00\"\xff""#);
    }

    #[test]
    fn long_values_are_cut_with_their_size() {
        let shown = preview(&[b'n'; 1 << 20]);
        assert_eq!(shown, format!("\"{}\"… (1048576 bytes)", "n".repeat(SHOWN)));
    }
}
