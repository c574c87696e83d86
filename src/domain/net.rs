//! Client addresses behind reverse proxies: address ranges (CIDRs) and the
//! rule that picks the client out of an `X-Forwarded-For` chain.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address range: `10.0.0.0/8`, `2001:db8::/32`, or one address (`192.0.2.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `address` or `address/prefix`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR range"))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("{text:?}: the prefix length is 0 to {max}")),
            },
        };
        Ok(Self { addr, prefix })
    }

    /// `127.0.0.0/8` and `::1`: a proxy on this machine.
    pub fn loopback() -> [Self; 2] {
        [
            Self {
                addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                prefix: 8,
            },
            Self {
                addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
                prefix: 128,
            },
        ]
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(u32::from(net).into(), u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` of `width` bits of `a` and `b` agree.
fn prefix_eq(a: u128, b: u128, width: u32, prefix: u8) -> bool {
    let prefix = u32::from(prefix);
    if prefix == 0 {
        return true;
    }
    let shift = width - prefix;
    (a >> shift) == (b >> shift)
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The client's address. A request from a trusted proxy names the chain of
/// addresses it came through in `X-Forwarded-For`, each proxy appending the
/// address it received the request from, so only the right end is written by
/// proxies we trust: the client is the rightmost address that is not one of
/// them. Everything to its left was written by the client and proves nothing.
/// A request that did not come from a trusted proxy is its peer.
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    proxies: &[IpNet],
) -> IpAddr {
    let peer = peer.to_canonical();
    let trusted = |ip: IpAddr| proxies.iter().any(|net| net.contains(ip));
    if !trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_for.rev() {
        // A malformed entry ends what can be believed: the nearest address
        // before it stands.
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = ip.to_canonical();
        if !trusted(client) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| IpNet::parse(n).unwrap()).collect()
    }

    #[test]
    fn ranges_parse_and_match() {
        let net = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped");
        let one = IpNet::parse("192.0.2.7").unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6 = IpNet::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(IpNet::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert_eq!(one.to_string(), "192.0.2.7/32");
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "example.com",
            "10.0.0.0/x",
            "1.2.3",
        ] {
            assert!(IpNet::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_address() {
        let proxies = nets(&["127.0.0.0/8", "10.0.0.0/8"]);
        let chain = |h: &'static str| h.split(',');
        // nginx appended the address it saw; the client wrote the rest.
        assert_eq!(
            client_ip(ip("127.0.0.1"), chain("6.6.6.6, 203.0.113.9"), &proxies),
            ip("203.0.113.9")
        );
        // Two trusted hops: a load balancer in front of nginx.
        assert_eq!(
            client_ip(
                ip("127.0.0.1"),
                chain("1.1.1.1,203.0.113.9, 10.0.0.5"),
                &proxies
            ),
            ip("203.0.113.9")
        );
        // Not from a proxy: the header is the client's own words.
        assert_eq!(
            client_ip(ip("198.51.100.4"), chain("203.0.113.9"), &proxies),
            ip("198.51.100.4")
        );
        // No header, or nothing but proxies in it.
        assert_eq!(
            client_ip(ip("127.0.0.1"), chain(""), &proxies),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), chain("10.0.0.7"), &proxies),
            ip("10.0.0.7")
        );
        // Garbage ends the chain that can be believed.
        assert_eq!(
            client_ip(
                ip("127.0.0.1"),
                chain("203.0.113.9, junk, 10.0.0.5"),
                &proxies
            ),
            ip("10.0.0.5")
        );
        // No proxies configured: always the peer.
        assert_eq!(
            client_ip(ip("127.0.0.1"), chain("203.0.113.9"), &[]),
            ip("127.0.0.1")
        );
    }
}
