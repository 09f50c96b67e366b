//! The client's address when inverso sits behind other proxies (a cloud
//! load balancer, a CDN, a TLS terminator): the TCP peer is then the proxy
//! in front, and the client is named in `X-Forwarded-For`. Only proxies
//! the configuration trusts (`real_ip_from`, after nginx's
//! `set_real_ip_from`) are believed: anyone else can write that field.

use crate::cidr_set::CidrList;
use crate::http::headers::Headers;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// An address block, `10.0.0.0/8` or `2001:db8::/32`; a bare address is
/// a block of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let written: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an address or address/prefix"))?;
        // Clients are compared in IPv4 form (`::ffff:10.1.2.3` is
        // 10.1.2.3): a block of such addresses written in IPv6 form
        // (`::ffff:10.0.0.0/104`) is that IPv4 block (10.0.0.0/8).
        let network = written.to_canonical();
        let mapped = written.is_ipv6() && network.is_ipv4();
        let (bits, written_bits, lowest) = match (network.is_ipv4(), mapped) {
            (true, false) => (32, 32, 0),
            (true, true) => (32, 128, 96),
            (false, _) => (128, 128, 0),
        };
        let prefix = match prefix {
            None => bits,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| (lowest..=written_bits).contains(&p))
                .map(|p| p - lowest)
                .ok_or_else(|| {
                    format!("`{text}`: the prefix must be {lowest} to {written_bits}")
                })?,
        };
        let cidr = Cidr { network, prefix };
        // `10.1.2.3/8` most likely means a typo for `10.1.2.3` or `10.0.0.0/8`.
        if cidr.masked(network) != bits_of(network) {
            return Err(format!(
                "`{text}` has bits set past its prefix /{prefix}: write the network's first address"
            ));
        }
        Ok(cidr)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && self.masked(ip) == bits_of(self.network)
    }

    /// Whether an address is in both blocks (one holds the other).
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }

    /// The block's first and last addresses, of its family.
    pub fn range(&self) -> (IpAddr, IpAddr) {
        let width = if self.network.is_ipv4() { 32 } else { 128 };
        let host_bits = u32::from(width - self.prefix);
        let hosts = u128::MAX.checked_shr(128 - host_bits).unwrap_or(0);
        let first = bits_of(self.network);
        let last = first | hosts;
        match self.network {
            // The bits past a /0..32 of a 32-bit address stay within it.
            IpAddr::V4(_) => (self.network, IpAddr::V4((last as u32).into())),
            IpAddr::V6(_) => (self.network, IpAddr::V6(last.into())),
        }
    }

    /// Whether the block holds every address of its family (`0.0.0.0/0`).
    pub fn is_everything(&self) -> bool {
        self.prefix == 0
    }

    fn masked(&self, ip: IpAddr) -> u128 {
        let width = if ip.is_ipv4() { 32 } else { 128 };
        let host_bits = u32::from(width - self.prefix);
        let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
        bits_of(ip) & mask
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// An address as a number of its family's width (IPv4 in the low 32 bits).
pub(crate) fn bits_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address a request comes from: `peer`, unless `peer` is a trusted
/// proxy, in which case `X-Forwarded-For` is read from its right end, each
/// hop's word taken for the one before it while that hop is trusted (nginx's
/// `real_ip_recursive on`). An element that is not an address ends the
/// walk: the last hop that named a proper one is taken.
pub fn client_address(peer: IpAddr, headers: &Headers, trusted: &CidrList) -> IpAddr {
    let is_trusted = |ip: IpAddr| is_trusted(ip, trusted);
    if !is_trusted(peer) {
        return peer;
    }
    let mut address = peer;
    let fields = headers.get_all("x-forwarded-for").rev();
    let elements = fields.flat_map(|f| f.rsplit(|&b| b == b','));
    for element in elements.filter(|e| !e.trim_ascii().is_empty()) {
        if !is_trusted(address) {
            break;
        }
        let Some(ip) = std::str::from_utf8(element).ok().and_then(parse_element) else {
            break;
        };
        address = ip.to_canonical();
    }
    address
}

/// Fields frameworks build links and redirects from, as only a proxy in
/// front of them can know: the port (Spring, Rack, Django, Laravel), the
/// path prefix (Spring, Laravel, ASP.NET Core) and the scheme (Rack reads
/// `X-Forwarded-Ssl: on` and `X-Forwarded-Scheme` before
/// `X-Forwarded-Proto`; Outlook's `Front-End-Https`), and the URL that
/// IIS's URL Rewrite puts in `X-Original-URL` or `X-Rewrite-URL` (which
/// Symfony before 3.4.14, Zend Framework and Drupal on them serve in
/// place of the request's own path). From a client they are its word,
/// which a page the cache stores would pass on to everyone (links to
/// another host, a scheme that loops, another path's page under the
/// request's key; that path past the routes that close it):
/// [`drop_claims`] takes them out unless the peer is a trusted proxy.
const CLAIMS: [&str; 7] = [
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "front-end-https",
    "x-original-url",
    "x-rewrite-url",
];

/// Removes the [`CLAIMS`] a client that is no trusted proxy sent.
pub fn drop_claims(headers: &mut Headers) {
    headers.retain(|name, _| {
        // Under either spelling: with `underscores_in_headers`, a backend
        // reading `_` as `-` takes `X_Forwarded_Ssl` for `X-Forwarded-Ssl`.
        !(CLAIMS.iter()).any(|c| crate::http::headers::read_alike(c.as_bytes(), name))
    });
}

/// Whether `peer` is one of the proxies in front listed in `real_ip_from`
/// (asked for each hop of `X-Forwarded-For` too: a binary search, however
/// many blocks a CDN's list holds).
pub fn is_trusted(peer: IpAddr, trusted: &CidrList) -> bool {
    trusted.holds(peer)
}

/// The scheme the client used, for `X-Forwarded-Proto`: `https` when the
/// PROXY header said the client came over TLS (`over_tls`), or when a
/// trusted proxy says so in the `X-Forwarded-Proto` it sends (the last
/// element, its own: one that appends to what its client sent would
/// otherwise let that client claim TLS); `http` otherwise, inverso itself
/// speaking plain HTTP. Without this, an application behind a TLS
/// terminator would build `http://` links and redirect in circles.
pub fn client_scheme(
    peer: IpAddr,
    over_tls: bool,
    headers: &Headers,
    trusted: &CidrList,
) -> &'static str {
    let said_https = || {
        headers
            .tokens("x-forwarded-proto")
            .last()
            .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
    };
    if over_tls || (is_trusted(peer, trusted) && said_https()) {
        "https"
    } else {
        "http"
    }
}

/// An address, with a port after it or not (`192.0.2.1:4711`,
/// `[2001:db8::1]:4711`, as some balancers write them). Not one with a
/// zone (`[fe80::1%2]:4711`, which the socket address parser takes): an
/// interface index of another machine names no client, and a zone is in
/// no address a proxy writes (RFC 7239 leaves it out), as nginx reads it.
fn parse_element(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if text.contains('%') {
        return None;
    }
    text.parse::<IpAddr>()
        .or_else(|_| text.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> CidrList {
        let list: Vec<Cidr> = list.iter().map(|c| Cidr::parse(c).unwrap()).collect();
        list.into()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn from(peer: &str, xff: &[&str], trusted: &[&str]) -> IpAddr {
        let mut headers = Headers::default();
        for value in xff {
            headers.push("X-Forwarded-For", value);
        }
        client_address(ip(peer), &headers, &cidrs(trusted))
    }

    #[test]
    fn blocks_hold_what_their_prefix_says() {
        let ten = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(ten.contains(ip("10.255.0.1")));
        assert!(!ten.contains(ip("11.0.0.1")));
        assert!(ten.contains(ip("::ffff:10.1.2.3")), "mapped IPv4");
        // The same block written in IPv6 form, as a dual-stack listener
        // shows its IPv4 clients.
        let mapped = Cidr::parse("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(mapped, ten);
        assert_eq!(mapped.to_string(), "10.0.0.0/8");
        assert_eq!(
            Cidr::parse("::ffff:10.1.2.3").unwrap(),
            Cidr::parse("10.1.2.3").unwrap()
        );
        for wider in ["::ffff:0.0.0.0/95", "::ffff:10.0.0.0/129"] {
            let e = Cidr::parse(wider).unwrap_err();
            assert!(e.contains("the prefix must be 96 to 128"), "{wider}: {e}");
        }
        let e = Cidr::parse("10.0.0.0/33").unwrap_err();
        assert!(e.contains("the prefix must be 0 to 32"), "{e}");
        assert!(!ten.contains(ip("::1")));
        let one = Cidr::parse("192.168.1.10").unwrap();
        assert!(one.contains(ip("192.168.1.10")));
        assert!(!one.contains(ip("192.168.1.11")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::5")));
        assert_eq!(v6.to_string(), "2001:db8::/32");
    }

    #[test]
    fn malformed_blocks_are_refused() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "x",
            "10.0.0.0/",
            "10.1.2.3/8",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_trusted_peers_are_believed() {
        let trusted = ["10.0.0.0/8"];
        assert_eq!(
            from("10.0.0.5", &["203.0.113.7"], &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(
            from("198.51.100.1", &["203.0.113.7"], &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(from("10.0.0.5", &["203.0.113.7"], &[]), ip("10.0.0.5"));
        assert_eq!(from("10.0.0.5", &[], &trusted), ip("10.0.0.5"), "no field");
    }

    #[test]
    fn the_walk_stops_at_the_first_untrusted_hop() {
        let trusted = ["10.0.0.0/8"];
        // The client wrote 1.1.1.1 itself; the trusted balancer appended
        // the address it saw, 203.0.113.7, then a second trusted hop.
        let xff = ["1.1.1.1, 203.0.113.7, 10.0.0.9"];
        assert_eq!(from("10.0.0.5", &xff, &trusted), ip("203.0.113.7"));
        // Over several fields, the last one last.
        let split = ["1.1.1.1", "203.0.113.7, 10.0.0.9"];
        assert_eq!(from("10.0.0.5", &split, &trusted), ip("203.0.113.7"));
        // Every hop trusted: the leftmost.
        assert_eq!(
            from("10.0.0.5", &["10.0.0.1, 10.0.0.2"], &trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn an_address_with_a_zone_ends_the_walk() {
        let trusted = ["10.0.0.0/8"];
        let xff = ["203.0.113.7, [fe80::1%2]:4711, 10.0.0.9"];
        assert_eq!(from("10.0.0.5", &xff, &trusted), ip("10.0.0.9"));
        let bare = ["203.0.113.7, fe80::1%2"];
        assert_eq!(from("10.0.0.5", &bare, &trusted), ip("10.0.0.5"));
    }

    #[test]
    fn odd_elements_name_no_client_and_end_the_walk_as_nginx_reads_them() {
        let trusted = ["10.0.0.0/8"];
        // Each after a client, before a trusted hop: the walk stops at
        // the element, the hop after it taken.
        for odd in [
            "[2001:db8::1]",
            "[2001:db8::1]:",
            "1.2.3.4:",
            "1.2.3.4:65536",
            "unknown",
            "_hidden",
            "_SEVKISEK",
            "\"[2001:db8::1]\"",
            "for=1.2.3.4",
            "01.2.3.4",
        ] {
            let xff = [format!("203.0.113.7, {odd}, 10.0.0.9")];
            let xff: Vec<&str> = xff.iter().map(String::as_str).collect();
            assert_eq!(from("10.0.0.5", &xff, &trusted), ip("10.0.0.9"), "{odd}");
        }
        // An IPv4 address in IPv6 form is that IPv4 address, port or not.
        for mapped in ["::ffff:10.1.2.3", "[::ffff:10.1.2.3]:4711"] {
            let xff = [format!("203.0.113.7, {mapped}")];
            let xff: Vec<&str> = xff.iter().map(String::as_str).collect();
            assert_eq!(
                from("10.0.0.5", &xff, &trusted),
                ip("203.0.113.7"),
                "{mapped}"
            );
        }
        let xff = ["203.0.113.7, [2001:db8::1]:4711"];
        assert_eq!(from("10.0.0.5", &xff, &trusted), ip("2001:db8::1"));
    }

    #[test]
    fn only_a_trusted_proxy_or_a_tls_proxy_header_makes_it_https() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        let with = |values: &[&str]| {
            let mut headers = Headers::default();
            for value in values {
                headers.push("X-Forwarded-Proto", value);
            }
            headers
        };
        let https = with(&["https"]);
        assert_eq!(
            client_scheme(ip("10.0.0.5"), false, &https, &trusted),
            "https"
        );
        assert_eq!(
            client_scheme(ip("192.0.2.1"), false, &https, &trusted),
            "http"
        );
        // The trusted proxy's own element is the last: what its client
        // wrote before it is the client's claim.
        assert_eq!(
            client_scheme(ip("10.0.0.5"), false, &with(&["https, http"]), &trusted),
            "http"
        );
        assert_eq!(
            client_scheme(ip("10.0.0.5"), false, &with(&["http", "HTTPS"]), &trusted),
            "https"
        );
        assert_eq!(
            client_scheme(ip("10.0.0.5"), false, &with(&["ftp"]), &trusted),
            "http"
        );
        assert_eq!(
            client_scheme(ip("10.0.0.5"), false, &with(&[]), &trusted),
            "http"
        );
        assert_eq!(
            client_scheme(ip("192.0.2.1"), true, &with(&[]), &CidrList::default()),
            "https"
        );
    }

    #[test]
    fn garbage_ends_the_walk_at_the_last_proper_address() {
        let trusted = ["10.0.0.0/8"];
        for (forwarded, client) in [
            ("unknown", "10.0.0.5"),
            ("1.1.1.1, nonsense, 10.0.0.9", "10.0.0.9"),
            ("203.0.113.7:4000", "203.0.113.7"),
            ("[2001:db8::1]:4000", "2001:db8::1"),
            ("203.0.113.7:port", "10.0.0.5"),
            (" 2001:db8::1 ", "2001:db8::1"),
            ("203.0.113.7, ,", "203.0.113.7"),
        ] {
            assert_eq!(
                from("10.0.0.5", &[forwarded], &trusted),
                ip(client),
                "{forwarded:?}"
            );
        }
    }

    #[test]
    fn only_a_block_of_prefix_zero_is_everything() {
        assert!(Cidr::parse("0.0.0.0/0").unwrap().is_everything());
        assert!(Cidr::parse("::/0").unwrap().is_everything());
        assert!(!Cidr::parse("0.0.0.0/1").unwrap().is_everything());
        assert!(!Cidr::parse("10.0.0.0/8").unwrap().is_everything());
    }

    #[test]
    fn blocks_overlap_when_one_holds_the_other_either_way_round() {
        let block = |c| Cidr::parse(c).unwrap();
        let (ten, ten_one) = (block("10.0.0.0/8"), block("10.1.0.0/16"));
        assert!(ten.overlaps(&ten_one));
        assert!(ten_one.overlaps(&ten));
        assert!(ten.overlaps(&ten));
        assert!(!ten.overlaps(&block("11.0.0.0/8")));
        assert!(!block("0.0.0.0/0").overlaps(&block("::/0")), "families");
    }

    #[test]
    fn claims_are_dropped_under_either_spelling_and_other_fields_kept() {
        let mut headers = Headers::default();
        for name in [
            "Host",
            "X-Forwarded-Port",
            "x-forwarded-prefix",
            "X_Forwarded_Ssl",
            "X-Forwarded-Scheme",
            "FRONT-END-HTTPS",
            "X-Original-URL",
            "X_Rewrite_Url",
            "X-Forwarded-For",
            "X-Forwarded-Proto",
            "X-Forwarded-Ports",
        ] {
            headers.push(name, "1");
        }
        drop_claims(&mut headers);
        let kept: Vec<&str> = headers.iter().map(|(name, _)| name).collect();
        // `X-Forwarded-For` and `-Proto` are read by who is trusted instead.
        assert_eq!(
            kept,
            [
                "Host",
                "X-Forwarded-For",
                "X-Forwarded-Proto",
                "X-Forwarded-Ports"
            ]
        );
    }
}
