//! Header + body messages: a length-prefixed JSON header that announces the body (feature `json`).

use std::io::{self, Read, Write};

use serde_json::{Map, Value};

use super::codec::Framing;
use super::preview::shown;

/// A message header (feature `json`): a JSON object such as
/// `{"cmd": "put", "filename": "a.txt", "filesize": 3}`.
///
/// It is a [`serde_json::Map`] of [`serde_json::Value`]s, from the `serde_json` crate that this
/// module re-exports as [`socketserver::framing::serde_json`](super::serde_json) (feature
/// `json`): build one with its `json!` macro, read fields with `get` and `as_str`/`as_u64`, or
/// with [`header_str`]/[`header_u64`], which say what is wrong in their errors.
///
/// ```
/// use socketserver::framing::serde_json::{json, Value};
/// use socketserver::framing::{header_u64, Header};
///
/// # fn main() -> std::io::Result<()> {
/// let reply: Header = match json!({"status": "ok", "filesize": 3}) {
///     Value::Object(map) => map,
///     _ => unreachable!("a JSON object literal"),
/// };
/// assert_eq!(reply.get("status").and_then(Value::as_str), Some("ok"));
/// assert_eq!(header_u64(&reply, &["filesize"])?, 3);
/// # Ok(())
/// # }
/// ```
pub type Header = Map<String, Value>;

impl Framing {
    /// Writes `header` as one frame of UTF-8 JSON (feature `json`) — the Python tutorial
    /// programs' `struct.pack('i', len(head)) + head`. It must be a JSON object. Does not flush.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `header` cannot be encoded or its frame is over the limit (nothing is
    /// written); any error of `writer`.
    pub fn write_header<W: Write + ?Sized>(
        &self,
        writer: &mut W,
        header: &Header,
    ) -> io::Result<()> {
        let json = serde_json::to_vec(header).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot encode header: {e}"),
            )
        })?;
        self.write_frame(writer, &json)
    }

    /// Reads one header frame and parses it (feature `json`). `Ok(None)` means the stream ended
    /// cleanly before it.
    ///
    /// # Errors
    ///
    /// Those of [`read_frame`](Framing::read_frame), and `InvalidData` for a frame that is not
    /// UTF-8 JSON, or JSON that is not an object.
    pub fn read_header<R: Read + ?Sized>(&self, reader: &mut R) -> io::Result<Option<Header>> {
        let Some(frame) = self.read_frame(reader)? else {
            return Ok(None);
        };
        parse_header(&frame).map(Some)
    }
}

/// Parses a header frame: a UTF-8 JSON object (feature `json`).
///
/// # Errors
///
/// `InvalidData` if `frame` is not UTF-8 JSON, or the JSON is not an object.
pub fn parse_header(frame: &[u8]) -> io::Result<Header> {
    match serde_json::from_slice::<Value>(frame) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the header is JSON but not an object: {}", kind_of(&other)),
        )),
        Err(e) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the header is not valid JSON ({e})"),
        )),
    }
}

/// The first of `names` present in `header`, as a non-negative integer (feature `json`) — for
/// size fields that go by several names (`"filesize"` or `"file_size"`, `"total_size"` or
/// `"data_size"`).
///
/// # Errors
///
/// `InvalidData` if none of `names` is present or the value is not a whole number of at least 0.
///
/// ```
/// use socketserver::framing::{header_u64, parse_header};
///
/// let header = parse_header(br#"{"file_name": "a.txt", "file_size": 3}"#).unwrap();
/// assert_eq!(header_u64(&header, &["filesize", "file_size"]).unwrap(), 3);
/// assert!(header_u64(&header, &["total_size"]).is_err());
/// ```
pub fn header_u64(header: &Header, names: &[&str]) -> io::Result<u64> {
    let (name, value) = first_of(header, names)?;
    value.as_u64().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "header field \"{name}\" must be a whole number of at least 0, got {}",
                shown(value)
            ),
        )
    })
}

/// The first of `names` present in `header`, as a string (feature `json`).
///
/// # Errors
///
/// `InvalidData` if none of `names` is present or the value is not a string.
pub fn header_str<'a>(header: &'a Header, names: &[&str]) -> io::Result<&'a str> {
    let (name, value) = first_of(header, names)?;
    value.as_str().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "header field \"{name}\" must be a string, got {}",
                shown(value)
            ),
        )
    })
}

fn first_of<'h, 'n>(header: &'h Header, names: &[&'n str]) -> io::Result<(&'n str, &'h Value)> {
    names
        .iter()
        .find_map(|name| header.get(*name).map(|value| (*name, value)))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the header has no field {}", names.join(" or ")),
            )
        })
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn header(value: Value) -> Header {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("tests pass objects"),
        }
    }

    #[test]
    fn round_trips_the_python_tutorial_header() {
        let framing = Framing::python_struct_i();
        let sent = header(json!({"cmd": "put", "filename": "a.txt", "filesize": 3}));
        let mut wire = Vec::new();
        framing.write_header(&mut wire, &sent).unwrap();
        wire.extend_from_slice(b"abc");
        let mut reader = &wire[..];
        let got = framing.read_header(&mut reader).unwrap().unwrap();
        assert_eq!(got, sent);
        assert_eq!(header_u64(&got, &["filesize"]).unwrap(), 3);
        assert_eq!(header_str(&got, &["filename"]).unwrap(), "a.txt");
        assert_eq!(reader, b"abc");
    }

    #[test]
    fn not_json_and_not_an_object_are_invalid_data() {
        let err = parse_header(b"{not json").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        let err = parse_header(b"[1, 2]").unwrap_err();
        assert!(err.to_string().contains("not an object: an array"), "{err}");
        let err = parse_header(&[0xff, 0xfe]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn size_fields_must_be_whole_non_negative_numbers() {
        for bad in [
            json!({"filesize": -1}),
            json!({"filesize": 1.5}),
            json!({"filesize": "3"}),
        ] {
            let err = header_u64(&header(bad.clone()), &["filesize"]).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert!(err.to_string().contains("whole number"), "{err}");
            assert!(
                err.to_string().ends_with(&bad["filesize"].to_string()),
                "{err}"
            );
        }
        let err = header_u64(&header(json!({})), &["filesize", "file_size"]).unwrap_err();
        assert!(err.to_string().contains("filesize or file_size"), "{err}");
    }

    #[test]
    fn a_huge_value_appears_in_the_error_cut_short() {
        let big = "x\n".repeat(1 << 19);
        let err = header_u64(&header(json!({"filesize": big})), &["filesize"]).unwrap_err();
        let err = err.to_string();
        assert!(err.len() < 200 && !err.contains('\n'), "{err}");
        // The JSON of the value: quotes, and each "\n" escaped to two characters.
        assert!(err.contains("… (1572866 bytes)"), "{err}");
        let err = header_str(&header(json!({"filename": [big]})), &["filename"]).unwrap_err();
        assert!(err.to_string().len() < 200, "{err}");
    }
}
