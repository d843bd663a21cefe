//! DNS messages on the wire (RFC 1035 section 4, EDNS from RFC 6891): names, records, reading a
//! query and writing a response with name compression.
//!
//! Reading is bounds-checked throughout: every read goes through [`Reader`], which returns `None`
//! past the end, so a truncated or hostile datagram becomes FORMERR (or is dropped), never a
//! panic. Nothing here allocates more than a small multiple of the datagram's size.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Record type A (an IPv4 address).
pub const TYPE_A: u16 = 1;
/// Record type NS (a name server).
pub const TYPE_NS: u16 = 2;
/// Record type SOA (the zone's start of authority).
pub const TYPE_SOA: u16 = 6;
/// Record type TXT (text strings).
pub const TYPE_TXT: u16 = 16;
/// Record type AAAA (an IPv6 address).
pub const TYPE_AAAA: u16 = 28;
/// The EDNS pseudo-record OPT.
pub const TYPE_OPT: u16 = 41;
/// Query type ANY: every record at the name.
pub const TYPE_ANY: u16 = 255;
/// Class IN, the only one served.
pub const CLASS_IN: u16 = 1;

/// Response codes (the extended ones need EDNS: BADVERS).
pub const NOERROR: u16 = 0;
/// The query could not be parsed.
pub const FORMERR: u16 = 1;
/// The name does not exist.
pub const NXDOMAIN: u16 = 3;
/// The opcode is not implemented.
pub const NOTIMP: u16 = 4;
/// The server will not answer (a name outside its zone).
pub const REFUSED: u16 = 5;
/// The EDNS version is not supported.
pub const BADVERS: u16 = 16;

/// The size every DNS client accepts over UDP; a larger answer without EDNS is truncated.
pub const PLAIN_UDP_SIZE: usize = 512;
/// The largest UDP answer sent, whatever size a client's EDNS record offers (and the size this
/// server advertises in its own OPT record).
pub const MAX_UDP_SIZE: usize = 4096;
/// The header's length.
const HEADER_LEN: usize = 12;
/// The longest name in wire form, and the longest label (RFC 1035 section 2.3.4).
const MAX_NAME_LEN: usize = 255;
const MAX_LABEL_LEN: usize = 63;

/// A domain name: its labels, lower-cased so names compare case-insensitively. The root has no
/// labels.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Name {
    labels: Vec<Vec<u8>>,
}

impl Name {
    /// The root name, `.`.
    pub fn root() -> Name {
        Name { labels: Vec::new() }
    }

    /// The name of these labels (outermost last), checking the limits on label and name length.
    pub fn from_labels(labels: Vec<Vec<u8>>) -> Result<Name, String> {
        let mut labels = labels;
        let mut wire_len = 1;
        for label in &mut labels {
            if label.is_empty() || label.len() > MAX_LABEL_LEN {
                return Err(format!(
                    "a label must be 1 to {MAX_LABEL_LEN} bytes long, not {}",
                    label.len()
                ));
            }
            label.make_ascii_lowercase();
            wire_len += 1 + label.len();
        }
        if wire_len > MAX_NAME_LEN {
            return Err(format!(
                "a name must be at most {MAX_NAME_LEN} bytes long in wire form, not {wire_len}"
            ));
        }
        Ok(Name { labels })
    }

    /// The labels, innermost first.
    pub fn labels(&self) -> &[Vec<u8>] {
        &self.labels
    }

    /// Whether this name is `zone` or a name below it.
    pub fn is_within(&self, zone: &Name) -> bool {
        self.labels.len() >= zone.labels.len()
            && self.labels[self.labels.len() - zone.labels.len()..] == zone.labels[..]
    }

    /// The name one label up; `None` for the root.
    pub fn parent(&self) -> Option<Name> {
        (!self.labels.is_empty()).then(|| Name {
            labels: self.labels[1..].to_vec(),
        })
    }

    /// This name with `suffix`'s labels appended (a relative name completed by the origin).
    pub fn join(&self, suffix: &Name) -> Result<Name, String> {
        let mut labels = self.labels.clone();
        labels.extend(suffix.labels.iter().cloned());
        Name::from_labels(labels)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.labels.is_empty() {
            return f.write_str(".");
        }
        for label in &self.labels {
            for &b in label {
                match b {
                    b'.' | b'\\' | b'"' | b';' | b'(' | b')' => write!(f, "\\{}", b as char)?,
                    0x21..=0x7e => write!(f, "{}", b as char)?,
                    _ => write!(f, "\\{b:03}")?,
                }
            }
            f.write_str(".")?;
        }
        Ok(())
    }
}

/// The data of a record of one of the served types.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum RData {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// A name server's name.
    Ns(Name),
    /// The start of authority.
    Soa(Soa),
    /// One or more strings of at most 255 bytes each.
    Txt(Vec<Vec<u8>>),
}

impl RData {
    /// The record type of this data.
    pub fn rtype(&self) -> u16 {
        match self {
            RData::A(_) => TYPE_A,
            RData::Aaaa(_) => TYPE_AAAA,
            RData::Ns(_) => TYPE_NS,
            RData::Soa(_) => TYPE_SOA,
            RData::Txt(_) => TYPE_TXT,
        }
    }
}

/// An SOA record's fields.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Soa {
    /// The primary name server.
    pub mname: Name,
    /// The administrator's mailbox, as a name.
    pub rname: Name,
    /// The zone's version.
    pub serial: u32,
    /// Secondary servers' timers, in seconds.
    pub refresh: u32,
    /// See `refresh`.
    pub retry: u32,
    /// See `refresh`.
    pub expire: u32,
    /// How long a negative answer may be cached (RFC 2308).
    pub minimum: u32,
}

/// A resource record of class IN.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Record {
    /// The owner name.
    pub name: Name,
    /// Time to live, in seconds.
    pub ttl: u32,
    /// The type and data.
    pub data: RData,
}

/// The header fields a response copies from its query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The query's id.
    pub id: u16,
    /// The query's opcode.
    pub opcode: u8,
    /// Recursion desired, copied back (this server never recurses).
    pub rd: bool,
}

/// A query's EDNS (OPT) record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    /// The largest UDP answer the client accepts.
    pub udp_size: u16,
    /// The EDNS version; only 0 is served.
    pub version: u8,
    /// DNSSEC OK, copied back (RFC 3225).
    pub dnssec_ok: bool,
}

/// A standard query with one question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// What the response copies.
    pub header: Header,
    /// The question's name, lower-cased.
    pub qname: Name,
    /// The question's type.
    pub qtype: u16,
    /// The question's class.
    pub qclass: u16,
    /// The question exactly as sent (name in the client's case, type, class), echoed back.
    pub question: Vec<u8>,
    /// The OPT record, if the query had one.
    pub edns: Option<Edns>,
}

/// What a datagram turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A standard query to answer.
    Query(Query),
    /// A query to answer with this error code and no question (FORMERR, NOTIMP).
    Error(Header, u16),
    /// Not a query at all (shorter than a header, or a response): dropped without an answer,
    /// so two servers cannot bounce packets at each other.
    Ignore,
}

/// A cursor over a datagram whose reads fail past the end instead of panicking.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An uncompressed name (a question's: nothing precedes it for a pointer to point at).
    fn name(&mut self) -> Option<Name> {
        let mut labels = Vec::new();
        loop {
            let len = usize::from(self.u8()?);
            if len == 0 {
                return Name::from_labels(labels).ok();
            }
            // Pointers (0xC0) and the obsolete label types (0x40, 0x80) are refused here.
            if len > MAX_LABEL_LEN {
                return None;
            }
            labels.push(self.take(len)?.to_vec());
        }
    }

    /// Steps over a name that may end in a compression pointer (another record's owner),
    /// without following it. Returns whether it was the root.
    fn skip_name(&mut self) -> Option<bool> {
        let mut root = true;
        // Each step consumes at least one byte, so this ends within the datagram.
        loop {
            let len = self.u8()?;
            match len {
                0 => return Some(root),
                0xC0..=0xFF => {
                    self.u8()?;
                    return Some(false);
                }
                1..=0x3F => {
                    self.take(usize::from(len))?;
                    root = false;
                }
                _ => return None,
            }
        }
    }
}

/// Reads a datagram as a query.
pub fn parse_query(packet: &[u8]) -> Parsed {
    let mut r = Reader {
        data: packet,
        pos: 0,
    };
    let (Some(id), Some(flags)) = (r.u16(), r.u16()) else {
        return Parsed::Ignore;
    };
    if packet.len() < HEADER_LEN {
        return Parsed::Ignore;
    }
    if flags & 0x8000 != 0 {
        return Parsed::Ignore;
    }
    let header = Header {
        id,
        opcode: ((flags >> 11) & 0x0F) as u8,
        rd: flags & 0x0100 != 0,
    };
    if header.opcode != 0 {
        return Parsed::Error(header, NOTIMP);
    }
    match parse_body(&mut r, header) {
        Some(query) => Parsed::Query(query),
        None => Parsed::Error(header, FORMERR),
    }
}

/// The counts, the question and the additional section (an OPT record) of a query; `None` for
/// anything malformed.
fn parse_body(r: &mut Reader<'_>, header: Header) -> Option<Query> {
    let (qdcount, ancount, nscount, arcount) = (r.u16()?, r.u16()?, r.u16()?, r.u16()?);
    if qdcount != 1 || ancount != 0 || nscount != 0 {
        return None;
    }
    let start = r.pos;
    let qname = r.name()?;
    let qtype = r.u16()?;
    let qclass = r.u16()?;
    let question = r.data.get(start..r.pos)?.to_vec();
    let mut edns = None;
    // A claimed count larger than the datagram runs out of bytes and fails: bounded.
    for _ in 0..arcount {
        let root = r.skip_name()?;
        let rtype = r.u16()?;
        let class = r.u16()?;
        let ttl = r.u32()?;
        let rdlen = r.u16()?;
        r.take(usize::from(rdlen))?;
        if rtype == TYPE_OPT {
            // One OPT record, owned by the root (RFC 6891 section 6.1.1).
            if edns.is_some() || !root {
                return None;
            }
            edns = Some(Edns {
                udp_size: class,
                version: (ttl >> 16) as u8,
                dnssec_ok: ttl & 0x8000 != 0,
            });
        }
        // Other additional records (a TSIG, say) are not used: this server signs nothing.
    }
    if r.pos != r.data.len() {
        return None;
    }
    Some(Query {
        header,
        qname,
        qtype,
        qclass,
        question,
        edns,
    })
}

/// What to answer a query with.
#[derive(Debug, Default)]
pub struct Answer<'a> {
    /// The response code, up to 12 bits (the upper 8 go in the OPT record).
    pub rcode: u16,
    /// Authoritative answer.
    pub aa: bool,
    /// The answer section.
    pub answers: Vec<&'a Record>,
    /// The authority section.
    pub authority: Vec<&'a Record>,
    /// The additional section (left out, without TC, where it does not fit).
    pub additional: Vec<&'a Record>,
}

/// A response being written: the buffer and, for compression, where each name written so far
/// (and every suffix of it) starts.
struct Writer<'a> {
    buf: Vec<u8>,
    names: Vec<(&'a [Vec<u8>], u16)>,
}

impl<'a> Writer<'a> {
    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Remembers that the name `labels` starts at `offset` (pointers reach 14 bits only).
    fn remember(&mut self, labels: &'a [Vec<u8>], offset: usize) {
        if let Ok(offset) = u16::try_from(offset) {
            if offset < 0x4000 && !labels.is_empty() {
                self.names.push((labels, offset));
            }
        }
    }

    /// Writes `name`, ending in a pointer to an earlier copy of its longest known suffix.
    fn name(&mut self, name: &'a Name) {
        let labels = name.labels();
        for i in 0..labels.len() {
            let suffix = &labels[i..];
            if let Some(&(_, offset)) = self.names.iter().find(|(known, _)| *known == suffix) {
                self.u16(0xC000 | offset);
                return;
            }
            let at = self.buf.len();
            self.remember(suffix, at);
            // Labels are at most 63 bytes (checked when the name was made).
            self.buf.push(labels[i].len() as u8);
            self.buf.extend_from_slice(&labels[i]);
        }
        self.buf.push(0);
    }

    fn record(&mut self, record: &'a Record) {
        self.name(&record.name);
        self.u16(record.data.rtype());
        self.u16(CLASS_IN);
        self.u32(record.ttl);
        let len_at = self.buf.len();
        self.u16(0);
        match &record.data {
            RData::A(addr) => self.buf.extend_from_slice(&addr.octets()),
            RData::Aaaa(addr) => self.buf.extend_from_slice(&addr.octets()),
            RData::Ns(name) => self.name(name),
            RData::Soa(soa) => {
                self.name(&soa.mname);
                self.name(&soa.rname);
                for v in [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum] {
                    self.u32(v);
                }
            }
            RData::Txt(strings) => {
                for s in strings {
                    // At most 255 bytes each (checked when the zone was read).
                    self.buf.push(s.len() as u8);
                    self.buf.extend_from_slice(s);
                }
            }
        }
        // Record data here is at most a few kilobytes (a TXT record's strings from one line).
        let rdlen = (self.buf.len() - len_at - 2) as u16;
        self.buf[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    }

    /// Sets the header's count at `index` (0 question .. 3 additional).
    fn set_count(&mut self, index: usize, count: usize) {
        let at = 4 + 2 * index;
        let count = u16::try_from(count).unwrap_or(u16::MAX);
        self.buf[at..at + 2].copy_from_slice(&count.to_be_bytes());
    }
}

/// The header of a response to `header`.
fn response_header(w: &mut Writer<'_>, header: Header, aa: bool, rcode: u16) {
    w.u16(header.id);
    let mut flags = 0x8000 | (u16::from(header.opcode & 0x0F) << 11) | (rcode & 0x0F);
    if aa {
        flags |= 0x0400;
    }
    if header.rd {
        flags |= 0x0100;
    }
    w.u16(flags);
    w.buf.extend_from_slice(&[0; 8]);
}

/// An error response with no question (FORMERR, NOTIMP).
pub fn encode_error(header: Header, rcode: u16) -> Vec<u8> {
    let mut w = Writer {
        buf: Vec::with_capacity(HEADER_LEN),
        names: Vec::new(),
    };
    response_header(&mut w, header, false, rcode);
    w.buf
}

/// The response to `query`: its question, then `answer`'s sections, within the size the client
/// accepts (512 bytes, or its EDNS size up to [`MAX_UDP_SIZE`]). An answer or authority section
/// that does not fit sets TC and leaves every record out (the client retries over TCP); an
/// additional record that does not fit is just left out. A query with EDNS gets an OPT record.
pub fn encode_response<'a>(query: &'a Query, answer: &Answer<'a>) -> Vec<u8> {
    let limit = match query.edns {
        Some(edns) => usize::from(edns.udp_size).clamp(PLAIN_UDP_SIZE, MAX_UDP_SIZE),
        None => PLAIN_UDP_SIZE,
    };
    // The OPT record: root name, type, class (size), TTL (extended rcode, version, flags), rdlen.
    let opt_len = if query.edns.is_some() { 11 } else { 0 };
    let mut w = Writer {
        buf: Vec::with_capacity(limit),
        names: Vec::new(),
    };
    response_header(&mut w, query.header, answer.aa, answer.rcode);
    w.set_count(0, 1);
    // The question as the client wrote it, so its case comes back unchanged (RFC 1035 section
    // 7.3); its name is then a target for compression.
    w.buf.extend_from_slice(&query.question);
    let mut at = HEADER_LEN;
    for (i, label) in query.qname.labels().iter().enumerate() {
        w.remember(&query.qname.labels()[i..], at);
        at += 1 + label.len();
    }
    let question_end = w.buf.len();

    for &record in answer.answers.iter().chain(&answer.authority) {
        w.record(record);
    }
    let mut truncated = false;
    if w.buf.len() + opt_len > limit {
        truncated = true;
        w.buf.truncate(question_end);
        w.names.clear();
    } else {
        w.set_count(1, answer.answers.len());
        w.set_count(2, answer.authority.len());
    }
    let mut additional = 0;
    if !truncated {
        for &record in &answer.additional {
            let before = w.buf.len();
            let names = w.names.len();
            w.record(record);
            if w.buf.len() + opt_len > limit {
                w.buf.truncate(before);
                w.names.truncate(names);
                break;
            }
            additional += 1;
        }
    }
    if truncated {
        w.buf[2] |= 0x02;
    }
    if let Some(edns) = query.edns {
        w.buf.push(0);
        w.u16(TYPE_OPT);
        w.u16(MAX_UDP_SIZE as u16);
        let flags = if edns.dnssec_ok { 0x8000 } else { 0 };
        w.u32((u32::from(answer.rcode >> 4) << 24) | flags);
        w.u16(0);
        additional += 1;
    }
    w.set_count(3, additional);
    w.buf
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A query for `name` of type `qtype`, with an OPT record offering `edns` bytes if given.
    pub fn query_bytes(id: u16, name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
        for label in name.split('.').filter(|l| !l.is_empty()) {
            p.push(label.len() as u8);
            p.extend_from_slice(label.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&CLASS_IN.to_be_bytes());
        if let Some(size) = edns {
            p.push(0);
            p.extend_from_slice(&TYPE_OPT.to_be_bytes());
            p.extend_from_slice(&size.to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        }
        p
    }

    fn name(text: &str) -> Name {
        let labels = text
            .split('.')
            .filter(|l| !l.is_empty())
            .map(|l| l.as_bytes().to_vec())
            .collect();
        Name::from_labels(labels).unwrap()
    }

    #[test]
    fn a_query_parses_with_its_case_kept_in_the_question() {
        let packet = query_bytes(7, "WWW.Example.org", TYPE_A, Some(1232));
        let Parsed::Query(q) = parse_query(&packet) else {
            panic!("not a query");
        };
        assert_eq!(q.header.id, 7);
        assert!(q.header.rd);
        assert_eq!(q.qname, name("www.example.org"));
        assert_eq!(q.qtype, TYPE_A);
        assert_eq!(&q.question[..4], b"\x03WWW");
        assert_eq!(
            q.edns,
            Some(Edns {
                udp_size: 1232,
                version: 0,
                dnssec_ok: false
            })
        );
    }

    #[test]
    fn short_packets_and_responses_are_ignored() {
        assert_eq!(parse_query(b""), Parsed::Ignore);
        assert_eq!(parse_query(&[0; 11]), Parsed::Ignore);
        let mut packet = query_bytes(1, "example.org", TYPE_A, None);
        packet[2] |= 0x80;
        assert_eq!(parse_query(&packet), Parsed::Ignore);
    }

    #[test]
    fn malformed_queries_are_formerr() {
        let header = Header {
            id: 9,
            opcode: 0,
            rd: true,
        };
        let good = query_bytes(9, "example.org", TYPE_A, None);
        // Cut anywhere inside the question.
        for len in 12..good.len() {
            assert_eq!(
                parse_query(&good[..len]),
                Parsed::Error(header, FORMERR),
                "{len}"
            );
        }
        // Trailing garbage, two questions, a compression pointer in the question.
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(parse_query(&trailing), Parsed::Error(header, FORMERR));
        let mut two = good.clone();
        two[5] = 2;
        assert_eq!(parse_query(&two), Parsed::Error(header, FORMERR));
        let mut pointer = good[..12].to_vec();
        pointer.extend_from_slice(&[0xC0, 0x00, 0, 1, 0, 1]);
        assert_eq!(parse_query(&pointer), Parsed::Error(header, FORMERR));
        // An additional count far beyond the datagram.
        let mut many = good;
        many[10] = 0xFF;
        assert_eq!(parse_query(&many), Parsed::Error(header, FORMERR));
    }

    #[test]
    fn another_opcode_is_notimp() {
        let mut packet = query_bytes(3, "example.org", TYPE_A, None);
        packet[2] |= 2 << 3; // STATUS
        assert!(matches!(parse_query(&packet), Parsed::Error(_, NOTIMP)));
    }

    #[test]
    fn names_are_compressed_against_the_question() {
        let packet = query_bytes(1, "www.example.org", TYPE_NS, None);
        let Parsed::Query(q) = parse_query(&packet) else {
            panic!("not a query");
        };
        let ns = Record {
            name: name("www.example.org"),
            ttl: 60,
            data: RData::Ns(name("ns1.example.org")),
        };
        let answer = Answer {
            aa: true,
            answers: vec![&ns],
            ..Answer::default()
        };
        let out = encode_response(&q, &answer);
        let qend = packet.len();
        // The owner is a pointer to the question's name at offset 12.
        assert_eq!(&out[qend..qend + 2], &[0xC0, 12]);
        // The target: "ns1" then a pointer to "example.org" (offset 12 + 4).
        assert_eq!(&out[qend + 12..], b"\x03ns1\xC0\x10");
        assert_eq!(out[2] & 0x84, 0x84, "QR and AA");
    }

    #[test]
    fn too_big_without_edns_is_truncated_and_fits_with_edns() {
        let txt = Record {
            name: name("big.example.org"),
            ttl: 60,
            data: RData::Txt(vec![vec![b'x'; 200]; 4]),
        };
        let answer = Answer {
            aa: true,
            answers: vec![&txt],
            ..Answer::default()
        };
        let plain = query_bytes(1, "big.example.org", TYPE_TXT, None);
        let Parsed::Query(q) = parse_query(&plain) else {
            panic!()
        };
        let out = encode_response(&q, &answer);
        assert!(out.len() <= PLAIN_UDP_SIZE);
        assert_eq!(out[2] & 0x02, 0x02, "TC");
        assert_eq!(&out[6..8], &[0, 0], "no answers");

        let with_edns = query_bytes(1, "big.example.org", TYPE_TXT, Some(4096));
        let Parsed::Query(q) = parse_query(&with_edns) else {
            panic!()
        };
        let out = encode_response(&q, &answer);
        assert_eq!(out[2] & 0x02, 0, "no TC");
        assert_eq!(&out[6..8], &[0, 1]);
        assert_eq!(&out[10..12], &[0, 1], "the OPT record");
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic generator: the property is "no panic", for any input.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let base = query_bytes(5, "a.example.org", TYPE_A, Some(4096));
        for round in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut packet = base.clone();
            let len = (state % (base.len() as u64 + 8)) as usize;
            packet.resize(len, (state >> 8) as u8);
            for k in 0..(round % 4) {
                let at = ((state >> (16 + 8 * k)) as usize) % packet.len().max(1);
                if let Some(b) = packet.get_mut(at) {
                    *b = (state >> (24 + k)) as u8;
                }
            }
            if let Parsed::Query(q) = parse_query(&packet) {
                let _ = encode_response(&q, &Answer::default());
            }
        }
    }
}
