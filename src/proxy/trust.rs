//! [`TrustedProxy`]: an IP address or CIDR range whose PROXY protocol headers are believed.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::str::FromStr;

/// An address or range of addresses allowed to send PROXY protocol headers — your load
/// balancers: `"10.0.0.7"`, `"10.0.0.0/8"`, `"fd00::/8"`. Parsed from text with [`str::parse`],
/// or made from an [`IpAddr`] (a range of one).
///
/// An IPv4 range also matches IPv4-mapped IPv6 peers (`::ffff:10.0.0.7`), which is how a server
/// bound to `[::]` sees IPv4 clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy {
    network: IpAddr,
    prefix: u8,
}

impl TrustedProxy {
    /// Whether `ip` lies in this range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), 32, self.prefix)
                    == masked(u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(net.into(), 128, self.prefix) == masked(ip.into(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// The top `prefix` bits of a `bits`-wide address.
fn masked(addr: u128, bits: u8, prefix: u8) -> u128 {
    match bits - prefix {
        0 => addr,
        host if host >= 128 => 0,
        host => addr >> host,
    }
}

impl From<IpAddr> for TrustedProxy {
    fn from(ip: IpAddr) -> Self {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        TrustedProxy {
            network: ip,
            prefix,
        }
    }
}

impl FromStr for TrustedProxy {
    type Err = io::Error;

    fn from_str(text: &str) -> io::Result<Self> {
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "trusted proxy {text:?}: {why}; expected an IP address or a CIDR range such \
                     as 10.0.0.0/8 or fd00::/8"
                ),
            )
        };
        let (ip, prefix) = match text.split_once('/') {
            Some((ip, prefix)) => (ip, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = ip.trim().parse().map_err(|_| bad("not an IP address"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(bad(&format!("the prefix length must be 0 to {max}"))),
            },
        };
        Ok(TrustedProxy { network, prefix })
    }
}

impl fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> TrustedProxy {
        text.parse().expect("a valid range")
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an IP address")
    }

    #[test]
    fn a_cidr_range_contains_its_addresses_only() {
        let r = range("10.0.0.0/8");
        assert!(r.contains(ip("10.0.0.1")));
        assert!(r.contains(ip("10.255.255.255")));
        assert!(!r.contains(ip("11.0.0.0")));
        assert!(!r.contains(ip("127.0.0.1")));
        assert!(range("192.168.1.0/24").contains(ip("192.168.1.200")));
        assert!(!range("192.168.1.0/24").contains(ip("192.168.2.1")));
    }

    #[test]
    fn a_single_address_is_a_range_of_one() {
        let r = range("127.0.0.1");
        assert_eq!(r.to_string(), "127.0.0.1/32");
        assert!(r.contains(ip("127.0.0.1")));
        assert!(!r.contains(ip("127.0.0.2")));
        assert_eq!(TrustedProxy::from(ip("127.0.0.1")), r);
    }

    #[test]
    fn prefix_zero_matches_every_address_of_its_family() {
        assert!(range("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(!range("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(range("::/0").contains(ip("2001:db8::1")));
    }

    #[test]
    fn ipv6_ranges_and_ipv4_mapped_peers() {
        let r = range("fd00::/8");
        assert!(r.contains(ip("fd12:3456::1")));
        assert!(!r.contains(ip("fe80::1")));
        assert!(range("2001:db8::1/128").contains(ip("2001:db8::1")));
        assert!(range("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert!(!range("10.0.0.0/8").contains(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn bad_ranges_are_refused_with_a_message() {
        for bad in [
            "",
            "10.0.0",
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0/x",
            "host/8",
        ] {
            let err = bad.parse::<TrustedProxy>().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains("CIDR"), "{err}");
        }
    }
}
