//! The client's address behind proxies: the forwarding header the trusted proxies
//! write (`X-Forwarded-For` by default, or `Forwarded`, RFC 7239), read only through a
//! configured list of trusted proxies. Exactly one header is read: a header the proxies
//! do not write passes through them as the client wrote it.
//!
//! # The rule
//! The client is the peer address of the connection, unless that peer is a trusted
//! proxy. Then the forwarded hops are read **from the right** (the entry the trusted
//! proxy appended last, the one it saw): trusted proxies are skipped, and the first
//! address that is not a trusted proxy is the client. Every entry must parse as an IP
//! address (with or without a port, IPv6 in brackets); at the first one that does not
//! (a name, `unknown`, an obfuscated identifier, garbage) the walk stops and the client
//! is the last hop verified, the trusted proxy that forwarded it. At most
//! [`MAX_HOPS`] entries are read.
//!
//! # Why it holds
//! Everything left of what a trusted proxy appended was written by whoever connected to
//! that proxy, the client included: rotating a made-up left-most `X-Forwarded-For`
//! entry must not make a new client. Reading from the right stops at the first hop no
//! trusted proxy vouches for, so the address chosen is always one a trusted proxy saw
//! connect, whatever the client wrote. Without trusted proxies the headers are never
//! read.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

/// Most forwarded entries read from a request (a longer list stops the walk there:
/// the client is the last hop verified).
pub const MAX_HOPS: usize = 32;

/// The trusted proxies: addresses and CIDR ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Proxies from `10.0.0.0/8`, `192.168.1.7` or `::1`-style entries.
    pub fn parse<I, S>(entries: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        entries
            .into_iter()
            .map(|e| {
                let e = e.as_ref().trim();
                e.parse::<IpNet>()
                    .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{e:?} is not an IP address or CIDR range"))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    /// Whether `ip` is a trusted proxy (an IPv4-mapped IPv6 address counts as its IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One forwarded entry as an address: `1.2.3.4`, `1.2.3.4:80`, `[::1]`, `[::1]:80`,
/// `::1`, or RFC 7239's quoted forms; `None` for anything else.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let e = entry.trim().trim_matches('"').trim();
    if let Ok(ip) = e.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = e.parse::<SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    let inner = e.strip_prefix('[')?.split(']').next()?;
    inner.parse::<IpAddr>().ok().map(canonical)
}

/// The forwarded hops of `headers`, left to right, from the one header the trusted
/// proxies write: `Forwarded` (RFC 7239: the `for=` of every element) when `header` is
/// `forwarded`, else every line of the list header `header` (`X-Forwarded-For` by
/// default) in order. Only that header is read: one the proxies do not write is the
/// client's own. `None` for an entry that is not an address.
fn hops(headers: &HeaderMap, header: &http::HeaderName) -> Vec<Option<IpAddr>> {
    let mut out = Vec::new();
    if header == http::header::FORWARDED {
        for line in headers.get_all(http::header::FORWARDED) {
            let Ok(l) = line.to_str() else {
                out.push(None);
                continue;
            };
            for element in l.split(',') {
                let hop = element.split(';').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("for").then_some(v)
                });
                out.push(hop.and_then(parse_hop));
            }
        }
        return out;
    }
    for line in headers.get_all(header) {
        match line.to_str() {
            Ok(l) => out.extend(l.split(',').map(parse_hop)),
            Err(_) => out.push(None),
        }
    }
    out
}

/// The client's address for a request from `peer` (see the [module docs](self)),
/// reading the hops from `X-Forwarded-For`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    client_ip_from(
        peer,
        headers,
        trusted,
        &http::HeaderName::from_static("x-forwarded-for"),
    )
}

/// [`client_ip`] reading the hops from `header` instead: `forwarded` for RFC 7239's
/// `Forwarded`, or another `X-Forwarded-For`-style list header.
pub fn client_ip_from(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
    xff: &http::HeaderName,
) -> IpAddr {
    let mut client = canonical(peer);
    if trusted.is_empty() || !trusted.contains(client) {
        return client;
    }
    let hops = hops(headers, xff);
    for hop in hops.iter().rev().take(MAX_HOPS) {
        match hop {
            Some(ip) if trusted.contains(*ip) => client = *ip,
            Some(ip) => return *ip,
            None => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_trusted_proxies_are_believed() {
        let t = TrustedProxies::parse(["10.0.0.0/8", "::1"]).unwrap();
        let none = TrustedProxies::default();
        let xff = h(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4")]);
        // Not through a trusted proxy: the header is the client's own words.
        assert_eq!(client_ip(ip("1.2.3.4"), &xff, &t), ip("1.2.3.4"));
        assert_eq!(client_ip(ip("10.0.0.2"), &xff, &none), ip("10.0.0.2"));
        // Through one: the right-most entry, what the proxy saw.
        assert_eq!(client_ip(ip("10.0.0.2"), &xff, &t), ip("1.2.3.4"));
        // Two proxies: skip the trusted one.
        let two = h(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.1.1.1")]);
        assert_eq!(client_ip(ip("10.0.0.2"), &two, &t), ip("1.2.3.4"));
        // Several lines are one list, in order.
        let lines = h(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "1.2.3.4:5555"),
        ]);
        assert_eq!(client_ip(ip("::1"), &lines, &t), ip("1.2.3.4"));
        // Garbage stops the walk at the last hop verified.
        for bad in [
            "evil.example",
            "unknown",
            "_hidden",
            "1.2.3",
            "",
            "1.2.3.4.5",
        ] {
            let g = h(&[("x-forwarded-for", &format!("1.2.3.4, {bad}, 10.9.9.9"))]);
            assert_eq!(client_ip(ip("10.0.0.2"), &g, &t), ip("10.9.9.9"), "{bad:?}");
        }
        // Every hop trusted: the left-most verified one.
        let all = h(&[("x-forwarded-for", "10.3.3.3, 10.2.2.2")]);
        assert_eq!(client_ip(ip("10.0.0.2"), &all, &t), ip("10.3.3.3"));
        // IPv4-mapped IPv6 peers are their IPv4 address.
        assert_eq!(client_ip(ip("::ffff:10.0.0.2"), &xff, &t), ip("1.2.3.4"));
    }

    fn fwd(peer: IpAddr, headers: &HeaderMap, t: &TrustedProxies) -> IpAddr {
        client_ip_from(peer, headers, t, &http::header::FORWARDED)
    }

    #[test]
    fn forwarded_rfc_7239() {
        let t = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        let f = h(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8::1]:4711\";proto=https, For=10.1.1.1;by=10.0.0.1",
        )]);
        assert_eq!(fwd(ip("10.0.0.2"), &f, &t), ip("2001:db8::1"));
        let hidden = h(&[("forwarded", "for=1.2.3.4, for=_gw7, for=10.1.1.1")]);
        assert_eq!(fwd(ip("10.0.0.2"), &hidden, &t), ip("10.1.1.1"));
        let unknown = h(&[("forwarded", "for=unknown")]);
        assert_eq!(fwd(ip("10.0.0.2"), &unknown, &t), ip("10.0.0.2"));
        // Only the configured header is read: with X-Forwarded-For configured, a
        // Forwarded header (which the proxies do not write) is the client's own, and
        // the reverse.
        let both = h(&[("forwarded", "for=6.6.6.6"), ("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(client_ip(ip("10.0.0.2"), &both, &t), ip("1.2.3.4"));
        assert_eq!(fwd(ip("10.0.0.2"), &both, &t), ip("6.6.6.6"));
        let only_fwd = h(&[("forwarded", "for=6.6.6.6")]);
        assert_eq!(client_ip(ip("10.0.0.2"), &only_fwd, &t), ip("10.0.0.2"));
    }

    #[test]
    fn a_huge_header_reads_a_bounded_number_of_hops() {
        let t = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        let long = std::iter::repeat_n("10.5.5.5", 10_000)
            .collect::<Vec<_>>()
            .join(",");
        let m = h(&[("x-forwarded-for", &format!("1.2.3.4,{long}"))]);
        assert_eq!(client_ip(ip("10.0.0.2"), &m, &t), ip("10.5.5.5"));
        assert!(TrustedProxies::parse(["not-a-net"]).is_err());
    }

    proptest! {
        /// Whatever the client writes left of what the trusted proxies appended, the
        /// chosen address is the one the first trusted proxy saw connect.
        #[test]
        fn the_client_cannot_choose_its_address(
            written in prop::collection::vec("[ -~]{0,20}", 0..6),
            seen in any::<[u8; 4]>().prop_filter("not a proxy", |b| b[0] != 10),
            proxies in prop::collection::vec(any::<[u8; 3]>(), 0..4),
        ) {
            let t = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
            let seen = IpAddr::from(seen);
            let mut list: Vec<String> = written.iter().map(|w| w.replace(',', " ")).collect();
            list.push(seen.to_string());
            list.extend(proxies.iter().map(|p| format!("10.{}.{}.{}", p[0], p[1], p[2])));
            let Ok(value) = http::HeaderValue::from_str(&list.join(", ")) else {
                return Ok(());
            };
            let mut m = HeaderMap::new();
            m.insert("x-forwarded-for", value);
            prop_assert_eq!(client_ip(ip("10.0.0.2"), &m, &t), seen);
        }
    }
}
