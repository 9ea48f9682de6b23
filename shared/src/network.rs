//! The one rule for every connection a tenant's data makes the service open (a
//! zone's name servers and their glue today): only public unicast addresses are
//! reached, unless an operator allowed the network (`DNS_ALLOWED_PRIVATE_NETWORKS`).
//! What counts as not public is the contract's list ("Reaching out on a tenant's
//! behalf"): loopback, private (RFC 1918), CGNAT, link-local (the instance
//! metadata address among them), unique-local, multicast, unspecified,
//! documentation and reserved ranges, IPv4 and IPv6, v4-mapped and v4-embedding
//! IPv6 judged by the IPv4 address inside.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

/// IPv4 ranges that are not public unicast (IANA's special-purpose registry).
const NOT_PUBLIC_V4: [(Ipv4Net, &str); 15] = [
    (v4(0, 0, 0, 0, 8), "unspecified (\"this network\")"),
    (v4(10, 0, 0, 0, 8), "private (RFC 1918)"),
    (v4(100, 64, 0, 0, 10), "shared address space (CGNAT)"),
    (v4(127, 0, 0, 0, 8), "loopback"),
    (
        v4(169, 254, 0, 0, 16),
        "link-local (cloud instance metadata lives here)",
    ),
    (v4(172, 16, 0, 0, 12), "private (RFC 1918)"),
    (v4(192, 0, 0, 0, 24), "reserved for protocol assignments"),
    (v4(192, 0, 2, 0, 24), "documentation"),
    (v4(192, 88, 99, 0, 24), "reserved (deprecated 6to4 relay)"),
    (v4(192, 168, 0, 0, 16), "private (RFC 1918)"),
    (v4(198, 18, 0, 0, 15), "reserved for benchmarking"),
    (v4(198, 51, 100, 0, 24), "documentation"),
    (v4(203, 0, 113, 0, 24), "documentation"),
    (v4(224, 0, 0, 0, 4), "multicast"),
    (v4(240, 0, 0, 0, 4), "reserved (and broadcast)"),
];

/// IPv6 ranges inside global unicast (2000::/3) that are not public; everything
/// outside 2000::/3 is not public either (loopback, unspecified, unique-local,
/// link-local, multicast, the discard prefix, ...), except v4-mapped and NAT64
/// addresses, judged by their IPv4 address.
const NOT_PUBLIC_V6: [(Ipv6Net, &str); 3] = [
    (
        Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
        "reserved for protocol assignments (Teredo, benchmarking, ORCHID)",
    ),
    (
        Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
        "documentation",
    ),
    (
        Ipv6Net::new_assert(Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),
        "documentation",
    ),
];

/// Why an address is not public unicast, or `None` if it is.
pub fn not_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => not_public_v4(v4),
        IpAddr::V6(v6) => not_public_v6(v6),
    }
}

fn not_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    NOT_PUBLIC_V4
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, why)| *why)
}

fn not_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    // ::ffff:a.b.c.d (v4-mapped) and 64:ff9b::a.b.c.d (NAT64) reach the IPv4
    // address inside; 2002:aabb:ccdd::/48 (6to4) names one too.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return not_public_v4(v4);
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return not_public_v4(Ipv4Addr::from(
            (u32::from(segments[6]) << 16) | u32::from(segments[7]),
        ));
    }
    if segments[0] == 0x2002 {
        return not_public_v4(Ipv4Addr::from(
            (u32::from(segments[1]) << 16) | u32::from(segments[2]),
        ));
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    match segments[0] {
        0xfc00..=0xfdff => return Some("unique-local"),
        0xfe80..=0xfebf => return Some("link-local"),
        0xff00..=0xffff => return Some("multicast"),
        0x2000..=0x3fff => {}
        _ => return Some("reserved (outside global unicast)"),
    }
    NOT_PUBLIC_V6
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, why)| *why)
}

/// Networks an operator allows the service to reach although they are not public
/// (tests on loopback, name servers inside a private VPC). Empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedNetworks(Vec<IpNet>);

impl AllowedNetworks {
    /// None: only public unicast addresses are reached.
    pub fn none() -> Self {
        Self::default()
    }

    /// Comma-separated CIDRs (`127.0.0.0/8, fd00::/8`); a bare address is its /32
    /// or /128. An error names the part that is not a network.
    pub fn parse(value: &str) -> Result<Self, String> {
        value
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                part.parse::<IpNet>()
                    .or_else(|_| part.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        format!("{part:?} is not a network such as 10.0.0.0/8 or fd00::/8")
                    })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// These networks.
    pub fn of(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    /// Why the service must not connect to `ip`, or `None` if it may: public
    /// unicast, or inside an allowed network.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        let why = not_public(ip)?;
        let inside = |ip: IpAddr| self.0.iter().any(|net| net.contains(&ip));
        // An allowed IPv4 network also allows that address written v4-mapped.
        let v4 = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        if inside(ip) || v4.is_some_and(inside) {
            None
        } else {
            Some(why)
        }
    }

    /// Whether nothing beyond public addresses is allowed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn every_kind_the_contract_names_is_refused() {
        for (address, kind) in [
            ("127.0.7.50", "loopback"),
            ("::1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.31.255.255", "private"),
            ("192.168.0.1", "private"),
            ("100.64.0.1", "CGNAT"),
            ("169.254.169.254", "link-local"),
            ("fe80::1", "link-local"),
            ("fd00:ec2::254", "unique-local"),
            ("224.0.0.251", "multicast"),
            ("ff02::1", "multicast"),
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("2001:db8::1", "documentation"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "reserved"),
            ("198.18.0.1", "benchmarking"),
            // The metadata address and loopback, written as IPv6.
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:127.0.0.1", "loopback"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2002:a00:1::1", "private"),
            ("2001::1", "reserved"),
            ("100::1", "reserved"),
        ] {
            let why = not_public(ip(address));
            assert!(
                why.is_some_and(|why| why.contains(kind)),
                "{address}: {why:?}"
            );
        }
    }

    #[test]
    fn public_unicast_is_reached() {
        for address in [
            "8.8.8.8",
            "205.251.192.1",
            "1.1.1.1",
            "172.32.0.1",
            "2600:9000:5300::1",
            "2a00:1450:4001::200e",
            "::ffff:8.8.4.4",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(not_public(ip(address)), None, "{address}");
        }
    }

    #[test]
    fn an_operator_allows_networks_and_nothing_else() {
        let allowed = AllowedNetworks::parse("127.0.0.0/29, fd00::/8,10.0.0.53").expect("valid");
        assert_eq!(allowed.refusal(ip("127.0.0.3")), None);
        assert_eq!(allowed.refusal(ip("::ffff:127.0.0.3")), None);
        assert_eq!(allowed.refusal(ip("fd12::1")), None);
        assert_eq!(allowed.refusal(ip("10.0.0.53")), None);
        assert!(allowed.refusal(ip("127.0.7.50")).is_some());
        assert!(allowed.refusal(ip("10.0.0.54")).is_some());
        assert!(allowed.refusal(ip("169.254.169.254")).is_some());
        assert_eq!(allowed.refusal(ip("8.8.8.8")), None);
        assert!(AllowedNetworks::none().refusal(ip("127.0.0.1")).is_some());
        assert_eq!(
            AllowedNetworks::parse(" ").expect("empty"),
            AllowedNetworks::none()
        );
        let error = AllowedNetworks::parse("127.0.0.0/8,localhost").expect_err("not a network");
        assert!(error.contains("\"localhost\""), "{error}");
        assert!(AllowedNetworks::parse("10.0.0.0/33").is_err());
    }
}
