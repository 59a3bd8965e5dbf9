//! `--trusted-proxies`: which peers may say who the client is, and the client address read from
//! their `Forwarded` (RFC 7239) or `X-Forwarded-For` headers. A peer not in the list is the
//! client, whatever it sends: anyone can write those headers.

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// At most this many hops are read from the right of a forwarding chain: the client is found
/// within the proxies an operator runs, and a long made-up chain costs nothing to skip.
const MAX_HOPS: usize = 32;

/// The networks whose peers are trusted to report the client's address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses `CIDR,CIDR,…`; a bare address is a network of one.
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        let mut networks = Vec::new();
        for item in list
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let network = match IpNet::from_str(item) {
                Ok(network) => network,
                Err(_) => IpAddr::from_str(item)
                    .map(IpNet::from)
                    .map_err(|_| format!("'{item}' is not an address or a CIDR network"))?,
            };
            networks.push(network.trunc());
        }
        Ok(TrustedProxies(networks))
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The client's address for a request from `peer`: `peer` itself unless it is trusted;
    /// then, walking the forwarding chain from the nearest hop, the first address that is not a
    /// trusted proxy. A hop that cannot be read (`unknown`, an obfuscated name) stops the walk:
    /// the last address known is the answer.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        let forwarded = headers.get_all("forwarded").iter().next().is_some();
        let hops: Vec<&str> = if forwarded {
            headers
                .get_all("forwarded")
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .filter_map(forwarded_for)
                .collect()
        } else {
            headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .collect()
        };
        for hop in hops.iter().rev().take(MAX_HOPS) {
            let Some(address) = parse_node(hop.trim()) else {
                break;
            };
            client = canonical(address);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:192.0.2.1`, as a dual-stack listener sees IPv4
/// peers) is that IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The `for=` node of one `Forwarded` element (`for=192.0.2.60;proto=http;by=…`).
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// An address as forwarding headers write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(address) = IpAddr::from_str(node) {
        return Some(address);
    }
    if let Ok(socket) = SocketAddr::from_str(node) {
        return Some(socket.ip());
    }
    let bracketed = node.strip_prefix('[')?.split(']').next()?;
    IpAddr::from_str(bracketed).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let sent = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(
            proxies.client_ip(ip("198.51.100.1"), &sent),
            ip("198.51.100.1")
        );
        let none = TrustedProxies::default();
        assert_eq!(none.client_ip(ip("10.0.0.1"), &sent), ip("10.0.0.1"));
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.1").unwrap();
        // The leftmost entry is whatever the client wrote; the proxies appended the rest.
        let sent = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.7, 10.1.1.1")]);
        assert_eq!(
            proxies.client_ip(ip("192.168.1.1"), &sent),
            ip("203.0.113.7")
        );
        let split = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(proxies.client_ip(ip("10.0.0.2"), &split), ip("203.0.113.9"));
    }

    #[test]
    fn forwarded_wins_and_reads_every_node_form() {
        let proxies = TrustedProxies::parse("127.0.0.1/32,::1").unwrap();
        let sent = headers(&[
            ("forwarded", r#"for="[2001:db8:cafe::17]:4711";proto=https"#),
            ("x-forwarded-for", "203.0.113.1"),
        ]);
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), &sent),
            ip("2001:db8:cafe::17")
        );
        let v4 = headers(&[(
            "forwarded",
            "for=192.0.2.60:80;by=203.0.113.43, for=127.0.0.1",
        )]);
        assert_eq!(proxies.client_ip(ip("::1"), &v4), ip("192.0.2.60"));
        let hidden = headers(&[("forwarded", "for=_hidden, for=198.51.100.17")]);
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), &hidden),
            ip("198.51.100.17")
        );
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(
            proxies.client_ip(ip("127.0.0.1"), &unknown),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_networks() {
        let proxies = TrustedProxies::parse("127.0.0.0/8").unwrap();
        let sent = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(
            proxies.client_ip(ip("::ffff:127.0.0.1"), &sent),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn bad_lists_are_refused_by_name() {
        let err = TrustedProxies::parse("10.0.0.0/8,nonsense").unwrap_err();
        assert!(err.contains("nonsense"), "{err}");
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
    }
}
