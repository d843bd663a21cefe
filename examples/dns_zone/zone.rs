//! The zone: read from a master file (RFC 1035 section 5) the way NSD reads one, for the subset
//! this server serves — `$ORIGIN`, `$TTL`, and records of class IN and type SOA, NS, A, AAAA and
//! TXT — and indexed by owner name for lookups.
//!
//! The syntax handled: names absolute (ending in `.`) or relative to the origin, `@` for the
//! origin, an omitted owner (a line starting with a blank) meaning the previous record's, TTL and
//! class optional and in either order (TTLs with units such as `1h30m`), parentheses continuing a
//! record over several lines, `;` comments, quoted strings with `\"`, `\\` and `\DDD` escapes.
//! Anything else (`$INCLUDE`, other types or classes, a second SOA, a name outside the zone, a
//! delegation) is refused with the file's line, so a zone never loads half-understood.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::wire::{Name, RData, Record, Soa};

/// The largest zone file read: a bound on the memory a zone takes.
pub const MAX_ZONE_BYTES: u64 = 64 * 1024 * 1024;
/// The largest TTL (RFC 2181 section 8).
const MAX_TTL: u64 = 0x7FFF_FFFF;

/// A zone ready to answer from.
#[derive(Debug)]
pub struct Zone {
    /// The apex: the SOA record's owner.
    pub origin: Name,
    /// The SOA record for negative answers: its TTL is the lower of its own and its minimum field
    /// (RFC 2308 section 3).
    pub negative_soa: Record,
    /// Every record, by owner name.
    names: HashMap<Name, Vec<Record>>,
    /// Names with no record that have names with records below them ("empty non-terminals"): they
    /// exist, so a query for them is answered NODATA, not NXDOMAIN (RFC 8020).
    empty_non_terminals: HashSet<Name>,
}

impl Zone {
    /// Reads the zone file at `path`.
    ///
    /// # Errors
    ///
    /// The file cannot be read, is larger than [`MAX_ZONE_BYTES`], or is not a zone this server
    /// can serve (the message says where and why).
    pub fn load(path: &Path) -> io::Result<Zone> {
        let file = std::fs::File::open(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open zone file {}: {e}", path.display()),
            )
        })?;
        let mut text = Vec::new();
        file.take(MAX_ZONE_BYTES + 1).read_to_end(&mut text)?;
        if text.len() as u64 > MAX_ZONE_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: larger than {MAX_ZONE_BYTES} bytes", path.display()),
            ));
        }
        Zone::parse(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}:{e}", path.display()),
            )
        })
    }

    /// Reads a zone from a master file's text; the error starts with the line number.
    pub fn parse(text: &[u8]) -> Result<Zone, String> {
        let records = parse_records(text)?;
        Zone::from_records(records)
    }

    /// The records owned by `name`, if it owns any.
    pub fn records_at(&self, name: &Name) -> Option<&[Record]> {
        self.names.get(name).map(Vec::as_slice)
    }

    /// Whether `name` owns no record but names below it do.
    pub fn is_empty_non_terminal(&self, name: &Name) -> bool {
        self.empty_non_terminals.contains(name)
    }

    fn from_records(records: Vec<(usize, Record)>) -> Result<Zone, String> {
        let mut soas = records
            .iter()
            .filter(|(_, r)| matches!(r.data, RData::Soa(_)));
        let Some((_, soa)) = soas.next() else {
            return Err("0: no SOA record: a zone needs exactly one, at its apex".to_string());
        };
        if let Some((line, _)) = soas.next() {
            return Err(format!("{line}: a second SOA record"));
        }
        let origin = soa.name.clone();
        let mut negative_soa = soa.clone();
        if let RData::Soa(Soa { minimum, .. }) = soa.data {
            negative_soa.ttl = soa.ttl.min(minimum);
        }
        let mut names: HashMap<Name, Vec<Record>> = HashMap::new();
        let mut empty_non_terminals = HashSet::new();
        for (line, record) in records {
            if !record.name.is_within(&origin) {
                return Err(format!(
                    "{line}: {} is outside the zone {origin}",
                    record.name
                ));
            }
            if matches!(record.data, RData::Ns(_)) && record.name != origin {
                return Err(format!(
                    "{line}: NS records below the apex (delegations) are not served: {}",
                    record.name
                ));
            }
            let mut up = record.name.parent();
            while let Some(name) = up {
                if !name.is_within(&origin) || !empty_non_terminals.insert(name.clone()) {
                    break;
                }
                up = name.parent();
            }
            let set = names.entry(record.name.clone()).or_default();
            // A record given twice is served once, as NSD does.
            if !set.iter().any(|r| r.data == record.data) {
                set.push(record);
            }
        }
        empty_non_terminals.retain(|name| !names.contains_key(name));
        Ok(Zone {
            origin,
            negative_soa,
            names,
            empty_non_terminals,
        })
    }
}

/// A word or quoted string of the file, escapes kept (names need to tell `\.` from `.`).
#[derive(Debug)]
struct Token {
    raw: Vec<u8>,
    quoted: bool,
}

/// One record or directive: its tokens (parentheses joined its lines), where it starts, and
/// whether its line starts with a blank (no owner: the previous record's).
#[derive(Debug)]
struct Entry {
    line: usize,
    indented: bool,
    tokens: Vec<Token>,
}

/// Splits the file into entries.
fn entries(text: &[u8]) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    let mut current: Option<Entry> = None;
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut open_line = 0usize;
    let mut at_line_start = true;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if at_line_start && depth == 0 && b != b'\n' {
            at_line_start = false;
            current = Some(Entry {
                line,
                indented: b == b' ' || b == b'\t',
                tokens: Vec::new(),
            });
        }
        match b {
            b'\n' => {
                line += 1;
                if depth == 0 {
                    entries.extend(current.take().filter(|e| !e.tokens.is_empty()));
                    at_line_start = true;
                }
                i += 1;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b';' => {
                while i < text.len() && text[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' => {
                if depth == 0 {
                    open_line = line;
                }
                depth += 1;
                i += 1;
            }
            b')' => {
                if depth == 0 {
                    return Err(format!("{line}: ')' without '('"));
                }
                depth -= 1;
                i += 1;
            }
            b'"' => {
                let start = i + 1;
                i = start;
                while i < text.len() && text[i] != b'"' {
                    if text[i] == b'\n' {
                        return Err(format!("{line}: a quoted string must end on its line"));
                    }
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                if i >= text.len() {
                    return Err(format!("{line}: unterminated quoted string"));
                }
                push_token(&mut current, &text[start..i], true);
                i += 1;
            }
            _ => {
                let start = i;
                while i < text.len() && !b" \t\r\n;()\"".contains(&text[i]) {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                let end = i.min(text.len());
                push_token(&mut current, &text[start..end], false);
                i = end;
            }
        }
    }
    if depth > 0 {
        return Err(format!("{open_line}: '(' never closed"));
    }
    entries.extend(current.filter(|e| !e.tokens.is_empty()));
    Ok(entries)
}

fn push_token(current: &mut Option<Entry>, raw: &[u8], quoted: bool) {
    if let Some(entry) = current {
        entry.tokens.push(Token {
            raw: raw.to_vec(),
            quoted,
        });
    }
}

/// `raw` with its escapes resolved: `\DDD` (decimal) is that byte, `\X` is X.
fn unescape(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' {
            out.push(raw[i]);
            i += 1;
            continue;
        }
        let digits = raw
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(u8::is_ascii_digit));
        if let Some(d) = digits {
            let value = d.iter().fold(0u32, |v, &c| v * 10 + u32::from(c - b'0'));
            let byte =
                u8::try_from(value).map_err(|_| format!("escape \\{value} is not a byte"))?;
            out.push(byte);
            i += 4;
        } else if let Some(&c) = raw.get(i + 1) {
            out.push(c);
            i += 2;
        } else {
            return Err("a '\\' at the end of a word".to_string());
        }
    }
    Ok(out)
}

/// A name as written: `@` is the origin, a name ending in an unescaped `.` is absolute, any
/// other is relative to the origin.
fn parse_name(raw: &[u8], origin: Option<&Name>) -> Result<Name, String> {
    let text = String::from_utf8_lossy(raw);
    let need_origin = || {
        origin
            .cloned()
            .ok_or_else(|| format!("'{text}' is relative, and no $ORIGIN is set before it"))
    };
    if raw == b"@" {
        return need_origin();
    }
    if raw == b"." {
        return Ok(Name::root());
    }
    let mut labels = Vec::new();
    let mut label = Vec::new();
    let mut absolute = false;
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'\\' => {
                let end = if raw.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    i + 4
                } else {
                    i + 2
                };
                let escape = raw
                    .get(i..end)
                    .ok_or_else(|| format!("bad escape in '{text}'"))?;
                label.extend(unescape(escape)?);
                i = end;
                continue;
            }
            b'.' => {
                if label.is_empty() {
                    return Err(format!("empty label in '{text}'"));
                }
                labels.push(std::mem::take(&mut label));
                absolute = i + 1 == raw.len();
            }
            c => label.push(c),
        }
        i += 1;
    }
    if !label.is_empty() {
        labels.push(label);
    }
    let name = Name::from_labels(labels).map_err(|e| format!("'{text}': {e}"))?;
    if absolute {
        Ok(name)
    } else {
        name.join(&need_origin()?)
            .map_err(|e| format!("'{text}': {e}"))
    }
}

/// A TTL or SOA timer: seconds, or a number with units (`s`, `m`, `h`, `d`, `w`) such as `1h30m`.
fn parse_ttl(raw: &[u8]) -> Result<u32, String> {
    let text = String::from_utf8_lossy(raw);
    let bad = || format!("'{text}' is not a TTL (seconds, or units such as 1h30m)");
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for &c in raw {
        if c.is_ascii_digit() {
            let n = number.unwrap_or(0) * 10 + u64::from(c - b'0');
            if n > MAX_TTL {
                return Err(bad());
            }
            number = Some(n);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            b's' => 1,
            b'm' => 60,
            b'h' => 3600,
            b'd' => 86_400,
            b'w' => 604_800,
            _ => return Err(bad()),
        };
        total += number.take().ok_or_else(bad)? * unit;
        if total > MAX_TTL {
            return Err(bad());
        }
    }
    total += number.unwrap_or(0);
    if raw.is_empty() || total > MAX_TTL {
        return Err(bad());
    }
    Ok(total as u32)
}

/// What the parser remembers from one entry to the next.
#[derive(Default)]
struct State {
    origin: Option<Name>,
    default_ttl: Option<u32>,
    last_ttl: Option<u32>,
    last_owner: Option<Name>,
}

/// Every record of the file, with its line.
fn parse_records(text: &[u8]) -> Result<Vec<(usize, Record)>, String> {
    let mut state = State::default();
    let mut records = Vec::new();
    for entry in entries(text)? {
        let line = entry.line;
        if let Some(record) = parse_entry(&mut state, entry).map_err(|e| format!("{line}: {e}"))? {
            records.push((line, record));
        }
    }
    Ok(records)
}

/// A directive (which changes `state`) or a record.
fn parse_entry(state: &mut State, entry: Entry) -> Result<Option<Record>, String> {
    let mut tokens = entry.tokens.iter().peekable();
    let first = &entry.tokens[0];
    if !entry.indented && !first.quoted && first.raw.starts_with(b"$") {
        tokens.next();
        let value = tokens.next();
        if tokens.next().is_some() {
            return Err("a directive takes one value".to_string());
        }
        let missing = || "a directive needs a value".to_string();
        match first.raw.to_ascii_uppercase().as_slice() {
            b"$ORIGIN" => {
                let name = parse_name(&value.ok_or_else(missing)?.raw, state.origin.as_ref())?;
                state.origin = Some(name);
            }
            b"$TTL" => state.default_ttl = Some(parse_ttl(&value.ok_or_else(missing)?.raw)?),
            other => {
                return Err(format!(
                    "{} is not supported (only $ORIGIN and $TTL)",
                    String::from_utf8_lossy(other)
                ))
            }
        }
        return Ok(None);
    }
    let owner = if entry.indented {
        state
            .last_owner
            .clone()
            .ok_or("the first record has no owner name")?
    } else {
        tokens.next();
        parse_name(&first.raw, state.origin.as_ref())?
    };
    // TTL and class, both optional, in either order.
    let mut ttl = None;
    let rtype = loop {
        let token = tokens.next().ok_or("no record type")?;
        let upper = token.raw.to_ascii_uppercase();
        if token.raw.first().is_some_and(u8::is_ascii_digit) && ttl.is_none() {
            ttl = Some(parse_ttl(&token.raw)?);
        } else if upper == b"IN" {
        } else if matches!(upper.as_slice(), b"CH" | b"HS" | b"CS" | b"ANY") {
            return Err("only class IN is served".to_string());
        } else {
            break upper;
        }
    };
    let mut next = |what: &str| -> Result<&Token, String> {
        tokens
            .next()
            .ok_or_else(|| format!("{} needs {what}", String::from_utf8_lossy(&rtype)))
    };
    let data = match rtype.as_slice() {
        b"A" => RData::A(parse_text::<Ipv4Addr>(&next("an IPv4 address")?.raw)?),
        b"AAAA" => RData::Aaaa(parse_text::<Ipv6Addr>(&next("an IPv6 address")?.raw)?),
        b"NS" => RData::Ns(parse_name(&next("a name")?.raw, state.origin.as_ref())?),
        b"SOA" => {
            let mname = parse_name(&next("a primary server")?.raw, state.origin.as_ref())?;
            let rname = parse_name(&next("a mailbox")?.raw, state.origin.as_ref())?;
            let serial = parse_text::<u32>(&next("a serial")?.raw)?;
            let mut timers = [0u32; 4];
            for timer in &mut timers {
                *timer = parse_ttl(&next("refresh, retry, expire and minimum")?.raw)?;
            }
            let [refresh, retry, expire, minimum] = timers;
            RData::Soa(Soa {
                mname,
                rname,
                serial,
                refresh,
                retry,
                expire,
                minimum,
            })
        }
        b"TXT" => {
            let mut strings = Vec::new();
            for token in tokens.by_ref() {
                let s = unescape(&token.raw)?;
                if s.len() > 255 {
                    return Err(format!("a TXT string is {} bytes, at most 255", s.len()));
                }
                strings.push(s);
            }
            if strings.is_empty() {
                return Err("TXT needs at least one string".to_string());
            }
            RData::Txt(strings)
        }
        other => {
            return Err(format!(
                "record type {} is not supported (only SOA, NS, A, AAAA and TXT)",
                String::from_utf8_lossy(other)
            ))
        }
    };
    if let Some(extra) = tokens.next() {
        return Err(format!(
            "unexpected '{}' after the record",
            String::from_utf8_lossy(&extra.raw)
        ));
    }
    let ttl = ttl
        .or(state.default_ttl)
        .or(state.last_ttl)
        .ok_or("no TTL, and no $TTL before it")?;
    state.last_ttl = Some(ttl);
    state.last_owner = Some(owner.clone());
    Ok(Some(Record {
        name: owner,
        ttl,
        data,
    }))
}

/// A token that must be valid UTF-8 and parse as `T` (an address, a serial).
fn parse_text<T: std::str::FromStr>(raw: &[u8]) -> Result<T, String> {
    let text = String::from_utf8_lossy(raw);
    text.parse().map_err(|_| {
        format!(
            "'{text}' is not a valid {}",
            std::any::type_name::<T>()
                .rsplit("::")
                .next()
                .unwrap_or("value")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        parse_name(text.as_bytes(), None).unwrap()
    }

    const ZONE: &str = r#"
$ORIGIN example.org.
$TTL 1h
; the apex
@   IN  SOA ns1 hostmaster.example.org. (
            2024010101 ; serial
            2h 15m 2w
            300 )       ; minimum
        NS  ns1
    IN  NS  ns2.example.net.
ns1 60 IN A 192.0.2.1
ns1 IN 60 AAAA 2001:db8::1
WWW A 192.0.2.10
txt TXT "hello world" "with \"quotes\"" plain \065
a.b.deep A 192.0.2.20
"#;

    #[test]
    fn the_sample_subset_parses() {
        let zone = Zone::parse(ZONE.as_bytes()).unwrap();
        assert_eq!(zone.origin, name("example.org."));
        let apex = zone.records_at(&zone.origin).unwrap();
        let Some(RData::Soa(soa)) = apex
            .iter()
            .map(|r| r.data.clone())
            .find(|d| matches!(d, RData::Soa(_)))
        else {
            panic!()
        };
        assert_eq!(soa.mname, name("ns1.example.org."));
        assert_eq!(soa.serial, 2_024_010_101);
        assert_eq!(
            (soa.refresh, soa.retry, soa.expire, soa.minimum),
            (7200, 900, 1_209_600, 300)
        );
        assert!(apex.iter().all(|r| r.ttl == 3600));
        assert_eq!(zone.negative_soa.ttl, 300);
        assert_eq!(apex.len(), 3, "SOA and two NS: omitted owners are the apex");
        let ns1 = zone.records_at(&name("ns1.example.org.")).unwrap();
        assert!(ns1.iter().all(|r| r.ttl == 60));
        let www = zone.records_at(&name("www.example.org.")).unwrap();
        assert_eq!(www[0].data, RData::A(Ipv4Addr::new(192, 0, 2, 10)));
        let txt = zone.records_at(&name("txt.example.org.")).unwrap();
        assert_eq!(
            txt[0].data,
            RData::Txt(vec![
                b"hello world".to_vec(),
                b"with \"quotes\"".to_vec(),
                b"plain".to_vec(),
                b"A".to_vec()
            ])
        );
        assert!(zone.is_empty_non_terminal(&name("b.deep.example.org.")));
        assert!(zone.is_empty_non_terminal(&name("deep.example.org.")));
        assert!(!zone.is_empty_non_terminal(&name("nope.example.org.")));
    }

    #[test]
    fn bad_zones_are_refused_with_their_line() {
        let cases: &[(&str, &str)] = &[
            (
                "$TTL 60\nexample.org. SOA a. b. 1 2 3 4 5\nx.example.org. MX 10 y\n",
                "3: record type MX",
            ),
            (
                "$ORIGIN example.org.\n$TTL 60\n@ SOA a b 1 2 3 4 5\nwww.other.org. A 1.2.3.4\n",
                "4: www.other.org. is outside",
            ),
            (
                "$ORIGIN example.org.\n$TTL 60\n@ SOA a b 1 2 3 4 5\n@ SOA a b 1 2 3 4 5\n",
                "4: a second SOA",
            ),
            (
                "$ORIGIN example.org.\n@ 60 SOA a b ( 1 2 3 4 5\n",
                "2: '(' never closed",
            ),
            (
                "$ORIGIN example.org.\n$TTL 60\n@ SOA a b 1 2 3 4 5\nx A 300.1.1.1\n",
                "4: '300.1.1.1' is not",
            ),
            ("$ORIGIN example.org.\n@ SOA a b 1 2 3 4 5\n", "2: no TTL"),
            ("@ 60 SOA a b 1 2 3 4 5\n", "1: '@' is relative"),
            (
                "$ORIGIN example.org.\n$TTL 60\n@ SOA a b 1 2 3 4 5\n@ CH A 1.2.3.4\n",
                "4: only class IN",
            ),
            ("$INCLUDE other\n", "1: $INCLUDE is not supported"),
            (
                "$ORIGIN example.org.\n$TTL 60\n@ SOA a b 1 2 3 4 5\nsub NS ns.sub\n",
                "4: NS records below the apex",
            ),
            ("$ORIGIN example.org.\n$TTL 60\nwww A 1.2.3.4\n", "no SOA"),
            (
                "$ORIGIN example.org.\n$TTL 60\n@ SOA a b 1 2 3 4 5\nt TXT \"open\n",
                "4: a quoted string",
            ),
            (
                "$ORIGIN example.org.\n$TTL 60\n@ SOA a b 1 2 3 4 5\na..b A 1.2.3.4\n",
                "4: empty label",
            ),
        ];
        for (text, expected) in cases {
            let err = Zone::parse(text.as_bytes()).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn names_ttls_and_escapes() {
        let origin = name("example.org.");
        assert_eq!(
            parse_name(b"Www", Some(&origin)).unwrap(),
            name("www.example.org.")
        );
        assert_eq!(parse_name(b"@", Some(&origin)).unwrap(), origin);
        assert_eq!(
            parse_name(b"a\\.b.", None).unwrap().labels(),
            &[b"a.b".to_vec()]
        );
        assert!(parse_name(&[b'a'; 64], Some(&origin)).is_err());
        assert_eq!(parse_ttl(b"1h30m").unwrap(), 5400);
        assert_eq!(parse_ttl(b"1W").unwrap(), 604_800);
        assert!(parse_ttl(b"h").is_err());
        assert!(parse_ttl(b"99999999999").is_err());
        assert_eq!(unescape(b"\\065\\\\x").unwrap(), b"A\\x");
        assert!(unescape(b"\\999").is_err());
    }

    #[test]
    fn arbitrary_text_never_panics() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let alphabet = b" \t\n();\"\\.@$0123456789abAIN SOATXT";
        for _ in 0..5_000 {
            let mut text = ZONE.as_bytes().to_vec();
            for _ in 0..8 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state as usize) % text.len();
                text[at] = alphabet[(state >> 32) as usize % alphabet.len()];
            }
            let _ = Zone::parse(&text);
            text.truncate((state >> 40) as usize % text.len());
            let _ = Zone::parse(&text);
        }
    }
}
