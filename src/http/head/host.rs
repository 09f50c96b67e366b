//! A Host field's value (or an absolute target's authority): checked for
//! what a backend could read otherwise, and spelled one way per server.

use super::HeadError;
use std::fmt::Write as _;

/// The authority (of a valid Host) as one name per server (RFC 3986
/// §6.2.2, §6.2.3): host lower-cased, without the trailing dot of a fully
/// qualified name, and the port as a number, left out when it is HTTP's
/// default. The cache keys on it, so `example.com:80` is not a second copy
/// of `example.com`; and it is what backends are sent, so that the key is
/// what the backend answered for (nginx's `$host` is spelled the same
/// way), not a spelling a backend might treat otherwise.
pub fn push_canonical_authority(key: &mut String, authority: &str) {
    let (host, port) = split_port(authority);
    push_host(key, host);
    match port.parse::<u16>() {
        Ok(80) => {}
        Ok(n) => {
            let _ = write!(key, ":{n}");
        }
        Err(_) if port.is_empty() => {}
        // Not a request's, whose port is a number (else refused with it):
        // an authority from elsewhere (a backend's URL, a listing's) keeps
        // what it says, so that it is no other site's key.
        Err(_) => {
            key.push(':');
            key.push_str(port);
        }
    }
}

/// The host of a valid authority without its port, spelled as
/// [`push_canonical_authority`] spells it (an IPv6 literal keeps its
/// brackets): what nginx's `$host` holds, and what a redirect to another
/// scheme, whose port is that scheme's own, names.
pub fn push_host_name(out: &mut String, authority: &str) {
    push_host(out, split_port(authority).0);
}

/// A valid authority's host and port (empty when it has none, or only
/// its colon). A colon inside an IPv6 literal's brackets is not a port's.
fn split_port(authority: &str) -> (&str, &str) {
    match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, port),
        _ => (authority, ""),
    }
}

/// Lower-cased, without the trailing dot of a fully qualified name.
fn push_host(out: &mut String, host: &str) {
    let host = host
        .strip_suffix('.')
        .filter(|h| !h.is_empty())
        .unwrap_or(host);
    // Copied, then lower-cased where it lies: a push per character costs
    // ten times as much, and this runs for every request (its cache key,
    // its `X-Forwarded-Host`).
    let start = out.len();
    out.push_str(host);
    out[start..].make_ascii_lowercase();
}

/// RFC 9110 §7.2: Host = uri-host [ ":" port ], where uri-host is an
/// IP-literal in brackets or a name, and port a number up to 65535. No
/// userinfo, no path, nothing a backend could split differently from us.
/// Names are narrower than RFC 3986's reg-name: letters, digits, `-`, `_`
/// and dots between non-empty labels (a trailing one too), which is every
/// name DNS or a hosts file serves; `%`-escapes and sub-delims (`,;'=`...)
/// are refused, as a backend decoding or splitting on them would see
/// another host than the one the cache keyed on.
pub fn check_host(host: &[u8]) -> Result<(), HeadError> {
    let invalid = Err(HeadError::Malformed("invalid Host"));
    if host.is_empty() || host.len() > 255 {
        return invalid;
    }
    let (name, port) = if host[0] == b'[' {
        let Some(close) = host.iter().position(|&b| b == b']') else {
            return invalid;
        };
        // An IPv6 address (IPvFuture and zone ids are refused): `[1]` or
        // `[:::]` is no address a backend could be reached at.
        let literal = std::str::from_utf8(&host[1..close]).ok();
        let literal_ok = literal.is_some_and(|l| l.parse::<std::net::Ipv6Addr>().is_ok());
        if !literal_ok {
            return invalid;
        }
        match &host[close + 1..] {
            [] => (&host[..0], None),
            [b':', port @ ..] => (&host[..0], Some(port)),
            _ => return invalid,
        }
    } else {
        match host.iter().position(|&b| b == b':') {
            Some(colon) => (&host[..colon], Some(&host[colon + 1..])),
            None => (host, None),
        }
    };
    let labels = name.strip_suffix(b".").unwrap_or(name);
    let name_ok = host[0] == b'['
        || (labels
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && labels.split(|&b| b == b'.').all(|label| !label.is_empty()));
    let port_ok = port.is_none_or(|p| {
        p.len() <= 5
            && p.iter().all(u8::is_ascii_digit)
            && (p.is_empty() || p.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')) <= 65535)
    });
    if name_ok && port_ok {
        Ok(())
    } else {
        invalid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_values() {
        for good in [
            "a",
            "a.example",
            "a.example:8080",
            "127.0.0.1",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:80",
            "[2001:DB8::1]:8080",
            "[::ffff:192.0.2.1]",
            "a:",
            "xn--caf-dma.example",
            "a_b",
            "a.",
            "A.Example.:8080",
            "a:65535",
            "a:0080",
        ] {
            assert_eq!(check_host(good.as_bytes()), Ok(()), "{good}");
        }
        for bad in [
            "",
            ":80",
            "a:b",
            "a:80:90",
            "a:123456",
            "a b",
            "a/b",
            "u@a",
            "[::1",
            "[]",
            "[::1]x",
            "[::g]",
            "[1]",
            "[:::]",
            "[1:2:3:4:5:6:7:8:9]",
            "[::1.2.3]",
            "a\\b",
            "a,b:x",
            "a,b",
            "a;b",
            "a'b",
            "a%00",
            "a%2fb",
            "a=b",
            "a~b",
            "a:99999",
            "a:65536",
            ".",
            "..",
            ".a",
            "a..b",
            "[::1]:65536",
        ] {
            assert!(check_host(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_names_lose_their_port_as_nginx_s_host() {
        for (authority, host) in [
            ("a.example", "a.example"),
            ("Shop.Example.:8080", "shop.example"),
            ("a.example:80", "a.example"),
            ("a:", "a"),
            ("127.0.0.1:8443", "127.0.0.1"),
            ("[::1]", "[::1]"),
            ("[2001:DB8::1]:8080", "[2001:db8::1]"),
            ("[::ffff:192.0.2.1]:80", "[::ffff:192.0.2.1]"),
        ] {
            assert_eq!(check_host(authority.as_bytes()), Ok(()), "{authority}");
            let mut out = String::from("https://");
            push_host_name(&mut out, authority);
            assert_eq!(out, format!("https://{host}"), "{authority}");
        }
        // The port is kept where one server is named, as the cache keys it.
        let mut key = String::new();
        push_canonical_authority(&mut key, "[2001:DB8::1]:8080");
        assert_eq!(key, "[2001:db8::1]:8080");
    }

    #[test]
    fn a_host_may_be_255_bytes_long_and_no_longer() {
        assert_eq!(check_host("a".repeat(255).as_bytes()), Ok(()));
        assert!(check_host("a".repeat(256).as_bytes()).is_err());
    }

    #[test]
    fn canonical_authorities() {
        for (authority, canonical) in [
            ("A.Example.:80", "a.example"),
            ("a:", "a"),
            ("a:0080", "a"),
            ("a:08080", "a:8080"),
            ("[::1]:80", "[::1]"),
            // Unchecked authorities (a backend's Location, a listing's URL)
            // keep a port that is no number, and are no other site's.
            ("a:x", "a:x"),
            ("a:99999", "a:99999"),
        ] {
            let mut key = String::new();
            push_canonical_authority(&mut key, authority);
            assert_eq!(key, canonical, "{authority}");
        }
    }
}
