//! Answering a query from the zone, as an authoritative server does (RFC 1034 section 4.3.2,
//! without delegations, wildcards or CNAMEs, which this server does not serve).
//!
//! * A name in the zone with records of the type asked: those records, with the AA bit (and, for
//!   NS records, the addresses of the name servers that are in the zone, in the additional
//!   section).
//! * A name in the zone without that type (or a name that only has names below it): NOERROR with
//!   no answer and the SOA in the authority section (NODATA, RFC 2308).
//! * A name in the zone that does not exist: NXDOMAIN with the SOA in the authority section.
//! * A name outside the zone, a class other than IN, or a zone transfer over UDP: REFUSED.
//! * A malformed query: FORMERR; another opcode: NOTIMP; an EDNS version other than 0: BADVERS.

use crate::wire::{
    self, Answer, Parsed, Query, RData, Record, BADVERS, CLASS_IN, NOERROR, NXDOMAIN, REFUSED,
    TYPE_A, TYPE_AAAA, TYPE_ANY, TYPE_OPT,
};
use crate::zone::Zone;

/// Query types answered REFUSED over UDP: IXFR, AXFR and the obsolete MAILB, MAILA.
const TRANSFER_TYPES: [u16; 4] = [251, 252, 253, 254];

/// The response to the datagram `packet`, or `None` when it is not a query (too short to have
/// a header, or a response) and gets no answer.
pub fn respond(zone: &Zone, packet: &[u8]) -> Option<Vec<u8>> {
    match wire::parse_query(packet) {
        Parsed::Ignore => None,
        Parsed::Error(header, rcode) => Some(wire::encode_error(header, rcode)),
        Parsed::Query(query) => Some(wire::encode_response(&query, &answer(zone, &query))),
    }
}

/// What the zone says to `query`.
pub fn answer<'a>(zone: &'a Zone, query: &Query) -> Answer<'a> {
    if query.edns.is_some_and(|edns| edns.version != 0) {
        return Answer {
            rcode: BADVERS,
            ..Answer::default()
        };
    }
    if query.qclass != CLASS_IN
        || query.qtype == TYPE_OPT
        || TRANSFER_TYPES.contains(&query.qtype)
        || !query.qname.is_within(&zone.origin)
    {
        return Answer {
            rcode: REFUSED,
            ..Answer::default()
        };
    }
    let Some(records) = zone.records_at(&query.qname) else {
        let rcode = if zone.is_empty_non_terminal(&query.qname) {
            NOERROR
        } else {
            NXDOMAIN
        };
        return negative(zone, rcode);
    };
    let answers: Vec<&Record> = records
        .iter()
        .filter(|r| query.qtype == TYPE_ANY || r.data.rtype() == query.qtype)
        .collect();
    if answers.is_empty() {
        return negative(zone, NOERROR);
    }
    let additional = glue(zone, &answers);
    Answer {
        rcode: NOERROR,
        aa: true,
        answers,
        authority: Vec::new(),
        additional,
    }
}

/// NXDOMAIN or NODATA: no answer, the SOA in the authority section.
fn negative(zone: &Zone, rcode: u16) -> Answer<'_> {
    Answer {
        rcode,
        aa: true,
        answers: Vec::new(),
        authority: vec![&zone.negative_soa],
        additional: Vec::new(),
    }
}

/// The A and AAAA records, from the zone, of the name servers among `answers`.
fn glue<'a>(zone: &'a Zone, answers: &[&'a Record]) -> Vec<&'a Record> {
    let mut additional = Vec::new();
    for record in answers {
        let RData::Ns(target) = &record.data else {
            continue;
        };
        if let Some(records) = zone.records_at(target) {
            additional.extend(
                records
                    .iter()
                    .filter(|r| matches!(r.data.rtype(), TYPE_A | TYPE_AAAA)),
            );
        }
    }
    additional
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::query_bytes;
    use crate::wire::{FORMERR, NOTIMP, TYPE_NS, TYPE_SOA, TYPE_TXT};

    const ZONE: &str = "$ORIGIN example.org.\n$TTL 3600\n\
        @ SOA ns1 hostmaster 1 7200 900 1209600 300\n\
        @ NS ns1\n@ NS ns.example.net.\n\
        ns1 A 192.0.2.1\nns1 AAAA 2001:db8::1\nwww A 192.0.2.10\n\
        a.b.deep TXT hi\n";

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        query_bytes(0x1234, name, qtype, None)
    }

    /// rcode, AA, and the answer, authority and additional counts.
    fn summary(reply: &[u8]) -> (u16, bool, u16, u16, u16) {
        let count = |at: usize| u16::from_be_bytes([reply[at], reply[at + 1]]);
        (
            u16::from(reply[3] & 0x0F),
            reply[2] & 0x04 != 0,
            count(6),
            count(8),
            count(10),
        )
    }

    fn ask(name: &str, qtype: u16) -> (u16, bool, u16, u16, u16) {
        let zone = Zone::parse(ZONE.as_bytes()).unwrap();
        summary(&respond(&zone, &query(name, qtype)).unwrap())
    }

    #[test]
    fn answers_nxdomain_nodata_and_refused() {
        assert_eq!(ask("www.example.org", TYPE_A), (NOERROR, true, 1, 0, 0));
        assert_eq!(ask("WWW.EXAMPLE.ORG", TYPE_A), (NOERROR, true, 1, 0, 0));
        assert_eq!(ask("example.org", TYPE_SOA), (NOERROR, true, 1, 0, 0));
        assert_eq!(
            ask("example.org", TYPE_NS),
            (NOERROR, true, 2, 0, 2),
            "with glue"
        );
        assert_eq!(ask("www.example.org", TYPE_AAAA), (NOERROR, true, 0, 1, 0));
        assert_eq!(
            ask("deep.example.org", TYPE_A),
            (NOERROR, true, 0, 1, 0),
            "empty non-terminal"
        );
        assert_eq!(
            ask("a.b.deep.example.org", TYPE_TXT),
            (NOERROR, true, 1, 0, 0)
        );
        assert_eq!(ask("nope.example.org", TYPE_A), (NXDOMAIN, true, 0, 1, 0));
        assert_eq!(ask("example.net", TYPE_A), (REFUSED, false, 0, 0, 0));
        assert_eq!(ask("org", TYPE_A), (REFUSED, false, 0, 0, 0));
        assert_eq!(ask("example.org", 252), (REFUSED, false, 0, 0, 0), "AXFR");
        assert_eq!(ask("ns1.example.org", TYPE_ANY), (NOERROR, true, 2, 0, 0));
    }

    #[test]
    fn errors_for_bad_queries() {
        let zone = Zone::parse(ZONE.as_bytes()).unwrap();
        let mut bad = query("www.example.org", TYPE_A);
        bad.truncate(bad.len() - 1);
        let reply = respond(&zone, &bad).unwrap();
        assert_eq!(summary(&reply).0, FORMERR);
        assert_eq!(&reply[..2], &[0x12, 0x34], "the query's id");
        let mut notify = query("example.org", TYPE_SOA);
        notify[2] = 4 << 3;
        assert_eq!(summary(&respond(&zone, &notify).unwrap()).0, NOTIMP);
        assert_eq!(respond(&zone, b"\x12\x34"), None);
    }

    #[test]
    fn the_negative_soa_has_the_minimum_ttl() {
        let zone = Zone::parse(ZONE.as_bytes()).unwrap();
        let reply = respond(&zone, &query("nope.example.org", TYPE_A)).unwrap();
        let question_end = query("nope.example.org", TYPE_A).len();
        // Owner (a pointer into the question), type, class, then the TTL.
        let ttl_at = question_end + 2 + 4;
        assert_eq!(&reply[ttl_at..ttl_at + 4], &300u32.to_be_bytes());
    }
}
