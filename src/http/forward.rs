//! The header rewriting a proxy owes both sides (RFC 9110 §7.6): drop what
//! describes one connection, and tell the backend who asked and through
//! whom.

use super::head::is_tchar;
use super::headers::Headers;
use crate::digits::push_ip;
use std::net::IpAddr;

/// Fields that describe a single connection (RFC 9110 §7.6.1, plus the
/// non-standard ones clients still send). The framing fields are also
/// dropped: the proxy frames each message it forwards itself.
pub(crate) const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "content-length",
    "upgrade",
];

/// The fields the proxy writes itself, whatever the client sent in them:
/// [`add_forwarded`]'s (first those it always writes, [`ALWAYS_WRITTEN`],
/// then `Via`), and those of a client's certificate (RFC 9440, see
/// `proxy::client_cert`).
pub const FORWARDING_FIELDS: [&str; 8] = [
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "forwarded",
    "via",
    "client-cert",
    "client-cert-chain",
];

/// Whether `name` is a field that frames a message or describes one
/// connection, or one of the forwarding fields: the proxy writes these
/// itself.
pub fn is_proxy_owned(name: &str) -> bool {
    frames_or_hop_by_hop(name)
        || FORWARDING_FIELDS
            .iter()
            .any(|f| f.eq_ignore_ascii_case(name))
}

/// Whether `name` (any case) is a field that frames a message or describes
/// one connection: the proxy drops every one it receives and writes its
/// own, both ways.
pub fn frames_or_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|f| f.eq_ignore_ascii_case(name))
}

/// Fields a peer may not make us drop by naming them in `Connection`: a
/// client that lists `X-Forwarded-For` or `Host` there is trying to make
/// the proxy hide something from the backend; a response must keep its
/// `Date` (RFC 9110 §6.6.1), which the cache's age and freshness read,
/// and its `Vary`, which says which stored variant answers whom (the
/// cache keys by it, and a client's cache needs it as much).
fn is_protected(name: &str) -> bool {
    ["host", "authorization", "cookie", "date", "vary"]
        .iter()
        .chain(&FORWARDING_FIELDS)
        .any(|p| p.eq_ignore_ascii_case(name))
}

/// Removes hop-by-hop fields and every field the `Connection` header names,
/// except protected ones. `keep_upgrade` leaves `Upgrade` in place for a
/// protocol switch (the caller re-adds `Connection: upgrade`).
pub fn strip_hop_by_hop(headers: &mut Headers, keep_upgrade: bool) {
    // Names only `Connection` adds: its usual `keep-alive` or `upgrade`
    // go anyway (or stay as `keep_upgrade` says), and with nothing else
    // named, nothing is copied.
    let named: Vec<String> = headers
        .tokens("connection")
        .filter(|t| !is_protected(t) && !HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(t)))
        .map(str::to_owned)
        .collect();
    headers.retain(|name, _| {
        let lower_is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if keep_upgrade && lower_is("upgrade") {
            return true;
        }
        !HOP_BY_HOP.iter().any(|h| lower_is(h)) && !named.iter().any(|n| lower_is(n))
    });
}

/// Whether `name` is a field that `strip_hop_by_hop` would remove from
/// `headers` (`name` lower-case): what the backend never sees.
pub fn is_hop_by_hop(headers: &Headers, name: &str) -> bool {
    HOP_BY_HOP.contains(&name)
        || (!is_protected(name)
            && headers
                .tokens("connection")
                .any(|t| t.eq_ignore_ascii_case(name)))
}

/// The hops an `OPTIONS` (or `TRACE`) may still be forwarded
/// (`Max-Forwards`, RFC 9110 §7.6.2), counting this one down; `None` when
/// the field is absent, repeated or not a number: it is then left as it
/// came. A number past `u32` is read as `u32::MAX`, the most we count.
pub fn max_forwards(headers: &Headers) -> Option<u32> {
    let mut values = headers.get_all("max-forwards");
    let value = values.next()?.trim_ascii();
    if values.next().is_some() || value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = value.iter().try_fold(0u32, |n, d| {
        n.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    });
    Some(n.unwrap_or(u32::MAX))
}

/// Who the request came from, for the forwarding fields.
pub struct Forwarded<'a> {
    /// The connection's other end, appended to `X-Forwarded-For`.
    pub client_ip: IpAddr,
    /// The client as logged: `client_ip`, or the client a trusted proxy in
    /// front names. For `X-Real-IP` and `Forwarded`, whose readers take it
    /// for the client itself.
    pub real_ip: IpAddr,
    /// "http", or "https" when a proxy in front says the client used TLS.
    pub proto: &'a str,
    /// The Host the client asked for, if any.
    pub host: Option<&'a str>,
    /// This hop's entry for Via, e.g. "1.1 inverso"; `None` leaves `Via`
    /// as it came.
    pub via: Option<&'a str>,
    /// The cache's entry for `Surrogate-Capability`, e.g.
    /// `inverso="Surrogate/1.0"`: appended to what surrogates in front
    /// announced.
    pub surrogate_capability: Option<&'a str>,
}

/// Adds the forwarding fields: `X-Forwarded-For` appended to what earlier
/// proxies wrote (folded into one field); `X-Forwarded-Proto`,
/// `X-Forwarded-Host`, `X-Real-IP` and `Forwarded` set from what this
/// proxy saw or a trusted proxy in front said (a client's own values would
/// be lies we pass on); and `Via` appended.
pub fn add_forwarded(headers: &mut Headers, f: &Forwarded<'_>) {
    let mut client = String::with_capacity(15);
    push_ip(&mut client, f.real_ip);
    // What earlier hops wrote, before this one's entry.
    let mut forwarded_for = Vec::with_capacity(64);
    push_joined(&mut forwarded_for, headers, "x-forwarded-for");
    match f.client_ip == f.real_ip {
        true => forwarded_for.extend_from_slice(client.as_bytes()),
        false => {
            let mut peer = String::with_capacity(15);
            push_ip(&mut peer, f.client_ip);
            forwarded_for.extend_from_slice(peer.as_bytes());
        }
    }
    let via = f.via.map(|entry| {
        let mut via = Vec::with_capacity(32);
        push_joined(&mut via, headers, "via");
        via.extend_from_slice(entry.as_bytes());
        via
    });
    let capability = f
        .surrogate_capability
        .map(|entry| surrogate_capability(headers, entry));
    // Every field set below goes in one pass over the list (each `set`
    // would walk it again): these run on every request.
    headers.retain(|name, _| {
        let named = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        !(ALWAYS_WRITTEN.iter().any(|n| named(n))
            || via.is_some() && named("via")
            || capability.is_some() && named("surrogate-capability"))
    });
    let mut element = Vec::with_capacity(64);
    push_forwarded_element(&mut element, &client, f.host, f.proto);
    // Room for them all at once, their names (at most 20 bytes) too.
    let values = [
        forwarded_for.len(),
        client.len(),
        element.len(),
        f.proto.len(),
        f.host.map_or(0, str::len),
        via.as_ref().map_or(0, Vec::len),
        capability.as_ref().map_or(0, Vec::len),
    ];
    headers.reserve(
        values.len(),
        values.iter().sum::<usize>() + 20 * values.len(),
    );
    headers.push("X-Forwarded-For", forwarded_for);
    // As nginx's common `proxy_set_header X-Real-IP $remote_addr` (with
    // its realip module, the client a trusted proxy names): backends moved
    // from behind nginx trust it for allow-lists, rate limits and audit
    // logs.
    headers.push("X-Real-IP", &client);
    // Ours alone, not appended to: the elements before it would be the
    // client's word (a trusted proxy's is in X-Forwarded-For), and readers
    // such as Spring's ForwardedHeaderFilter take host and proto from the
    // first element.
    headers.push("Forwarded", element);
    headers.push("X-Forwarded-Proto", f.proto);
    if let Some(host) = f.host {
        headers.push("X-Forwarded-Host", host);
    }
    if let Some(via) = via {
        headers.push("Via", via);
    }
    if let Some(capability) = capability {
        headers.push("Surrogate-Capability", capability);
    }
}

/// The fields [`add_forwarded`] always writes (or, `X-Forwarded-Host`
/// for a request without a host, takes out): the first five of
/// [`FORWARDING_FIELDS`].
const ALWAYS_WRITTEN: &[&str] = FORWARDING_FIELDS.split_at(5).0;

/// `Surrogate-Capability` as it goes on: what surrogates in front
/// announced, but an entry in this cache's own name, then `entry`, this
/// cache's. No device in front has this cache's name, and whoever sent it
/// (a client claiming ESI, say) would have the origin answer what suits a
/// device this cache is not, for it to store for everyone.
fn surrogate_capability(headers: &Headers, entry: &str) -> Vec<u8> {
    let ours = entry.split('=').next().unwrap_or(entry).trim();
    let mut capability = Vec::new();
    for device in headers.quoted_list("surrogate-capability") {
        let token = device.split('=').next().unwrap_or(device).trim();
        // One with a quote left open would make this cache's entry,
        // after it, part of its quoted string.
        if !token.eq_ignore_ascii_case(ours) && quotes_close(device) {
            capability.extend_from_slice(device.as_bytes());
            capability.extend_from_slice(b", ");
        }
    }
    capability.extend_from_slice(entry.as_bytes());
    capability
}

/// Whether every quoted string `element` opens is closed (RFC 9110
/// §5.6.4, `\\` escaping the next character inside one).
fn quotes_close(element: &str) -> bool {
    let (mut quoted, mut escaped) = (false, false);
    for b in element.bytes() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ => {}
        }
    }
    !quoted
}

/// Appends this hop's `Forwarded` element (RFC 7239 §4): `for=` the
/// client, `host=` the Host it asked for (when it asked for one), `proto=`
/// its scheme. `client` is an address as `push_ip` writes it: an IPv6 one,
/// the only kind with a colon, goes in brackets and quotes (§6).
fn push_forwarded_element(out: &mut Vec<u8>, client: &str, host: Option<&str>, proto: &str) {
    out.extend_from_slice(b"for=");
    if client.contains(':') {
        out.extend_from_slice(b"\"[");
        out.extend_from_slice(client.as_bytes());
        out.extend_from_slice(b"]\"");
    } else {
        out.extend_from_slice(client.as_bytes());
    }
    if let Some(host) = host {
        out.extend_from_slice(b";host=");
        push_forwarded_value(out, host);
    }
    out.extend_from_slice(b";proto=");
    push_forwarded_value(out, proto);
}

/// A `Forwarded` value: a token as it is, anything else (a host's port
/// colon, an IPv6 literal's brackets) as a quoted-string (RFC 7239 §4, RFC
/// 9110 §5.6.4), `"` and `\` escaped. A Host was checked when the request
/// was read: no control characters to reach this.
fn push_forwarded_value(out: &mut Vec<u8>, value: &str) {
    if !value.is_empty() && value.bytes().all(is_tchar) {
        out.extend_from_slice(value.as_bytes());
        return;
    }
    out.push(b'"');
    for b in value.bytes() {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Appends every value of `name`, each followed by ", " (the value to
/// come after them is the caller's).
fn push_joined(out: &mut Vec<u8>, headers: &Headers, name: &str) {
    for v in headers.get_all(name) {
        let v = v.trim_ascii();
        if !v.is_empty() {
            out.extend_from_slice(v);
            out.extend_from_slice(b", ");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_connection_named_fields() {
        let mut h = Headers::new();
        h.push("Connection", "keep-alive, X-Secret, X-Forwarded-For, host");
        h.push("Keep-Alive", "timeout=5");
        h.push("X-Secret", "1");
        h.push("TE", "trailers");
        h.push("Upgrade", "websocket");
        h.push("Host", "a");
        h.push("X-Forwarded-For", "10.0.0.1");
        h.push("Accept", "*/*");
        strip_hop_by_hop(&mut h, false);
        let names: Vec<_> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Host", "X-Forwarded-For", "Accept"]);
    }

    #[test]
    fn max_forwards_is_one_number_or_nothing() {
        let of = |values: &[&str]| {
            let mut h = Headers::new();
            for v in values {
                h.push("Max-Forwards", v);
            }
            max_forwards(&h)
        };
        assert_eq!(of(&[]), None);
        assert_eq!(of(&["0"]), Some(0));
        assert_eq!(of(&[" 7 "]), Some(7));
        assert_eq!(of(&["99999999999999999999"]), Some(u32::MAX));
        for bad in [
            &["1", "2"][..],
            &["-1"],
            &["+1"],
            &["1.0"],
            &[""],
            &["1, 2"],
        ] {
            assert_eq!(of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn keeps_upgrade_when_asked() {
        let mut h = Headers::new();
        h.push("Connection", "Upgrade");
        h.push("Upgrade", "websocket");
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get_str("upgrade"), Some("websocket"));
        assert!(!h.contains("connection"));
    }

    #[test]
    fn appends_forwarding_fields() {
        let mut h = Headers::new();
        h.push("X-Forwarded-For", "1.1.1.1");
        h.push("x-forwarded-for", "2.2.2.2");
        h.push("X-Forwarded-Proto", "https");
        h.push("Via", "1.0 fred");
        h.push("Surrogate-Capability", "cdn=\"Surrogate/1.0 ESI/1.0\"");
        add_forwarded(
            &mut h,
            &Forwarded {
                client_ip: "127.0.0.1".parse().unwrap(),
                real_ip: "127.0.0.1".parse().unwrap(),
                proto: "http",
                host: Some("example.com"),
                via: Some("1.1 inverso"),
                surrogate_capability: Some("inverso=\"Surrogate/1.0\""),
            },
        );
        assert_eq!(
            h.get_str("x-forwarded-for"),
            Some("1.1.1.1, 2.2.2.2, 127.0.0.1")
        );
        assert_eq!(h.get_str("x-forwarded-proto"), Some("http"));
        assert_eq!(h.get_str("x-forwarded-host"), Some("example.com"));
        assert_eq!(h.get_str("via"), Some("1.0 fred, 1.1 inverso"));
        assert_eq!(h.get_all("x-forwarded-for").count(), 1);
        assert_eq!(
            h.get_str("surrogate-capability"),
            Some("cdn=\"Surrogate/1.0 ESI/1.0\", inverso=\"Surrogate/1.0\"")
        );
    }

    /// The `Forwarded` element for a client at `client`.
    fn element(client: &str, host: Option<&str>, proto: &str) -> String {
        let mut out = Vec::new();
        push_forwarded_element(&mut out, client, host, proto);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_forwarded_element_quotes_what_is_no_token() {
        assert_eq!(
            element("192.0.2.60", Some("example.com"), "http"),
            "for=192.0.2.60;host=example.com;proto=http"
        );
        // RFC 7239 §6: an IPv6 node in brackets, and those in quotes.
        assert_eq!(
            element("2001:db8::1", Some("example.com"), "https"),
            "for=\"[2001:db8::1]\";host=example.com;proto=https"
        );
        // A port's colon and an IP literal's brackets are no token.
        assert_eq!(
            element("::1", Some("[::1]:8080"), "http"),
            "for=\"[::1]\";host=\"[::1]:8080\";proto=http"
        );
        assert_eq!(
            element("10.0.0.1", Some("shop.example:8443"), "http"),
            "for=10.0.0.1;host=\"shop.example:8443\";proto=http"
        );
        assert_eq!(element("10.0.0.1", None, "http"), "for=10.0.0.1;proto=http");
        // What a quoted-string must escape, should a value ever hold it.
        let mut out = Vec::new();
        push_forwarded_value(&mut out, "a\"b\\c");
        assert_eq!(out, b"\"a\\\"b\\\\c\"");
        out.clear();
        push_forwarded_value(&mut out, "");
        assert_eq!(out, b"\"\"");
    }

    #[test]
    fn x_real_ip_and_forwarded_name_the_client_not_the_proxy_in_front() {
        let mut h = Headers::new();
        h.push("X-Real-IP", "6.6.6.6");
        h.push("x-real-ip", "6.6.6.7");
        h.push("Forwarded", "for=7.7.7.7;proto=https;host=evil");
        h.push("Forwarded", "for=8.8.8.8");
        h.push("X-Forwarded-For", "2001:db8::7");
        add_forwarded(
            &mut h,
            &Forwarded {
                client_ip: "10.0.0.1".parse().unwrap(),
                real_ip: "2001:db8::7".parse().unwrap(),
                proto: "https",
                host: Some("shop.example:8443"),
                via: None,
                surrogate_capability: None,
            },
        );
        let all = |name| h.get_all(name).collect::<Vec<_>>();
        assert_eq!(all("x-real-ip"), [&b"2001:db8::7"[..]]);
        assert_eq!(
            all("forwarded"),
            [&b"for=\"[2001:db8::7]\";host=\"shop.example:8443\";proto=https"[..]]
        );
        assert_eq!(all("x-forwarded-for"), [&b"2001:db8::7, 10.0.0.1"[..]]);
    }

    #[test]
    fn the_fields_the_proxy_writes_are_owned_and_protected() {
        for name in ["X-Real-IP", "forwarded", "X-Forwarded-For", "via"] {
            assert!(is_proxy_owned(name), "{name}");
            assert!(is_protected(name), "{name}");
        }
        // Named in Connection, the client's own goes on to be replaced,
        // not dropped as a hop-by-hop field.
        let mut h = Headers::new();
        h.push("Connection", "X-Real-IP, Forwarded");
        h.push("X-Real-IP", "6.6.6.6");
        assert!(!is_hop_by_hop(&h, "x-real-ip"));
        assert!(!is_hop_by_hop(&h, "forwarded"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.get_str("x-real-ip"), Some("6.6.6.6"));
    }

    #[test]
    fn only_framing_hop_by_hop_and_forwarding_fields_are_the_proxys_own() {
        for name in ["Transfer-Encoding", "content-length", "TE", "Keep-Alive"] {
            assert!(frames_or_hop_by_hop(name), "{name}");
            assert!(is_proxy_owned(name), "{name}");
        }
        // Config refuses to set the proxy's own fields: a false positive
        // here would refuse a backend's ordinary ones.
        for name in ["Accept", "X-Request-ID", "Content-Type", "X-Forwarded-Port"] {
            assert!(!frames_or_hop_by_hop(name), "{name}");
            assert!(!is_proxy_owned(name), "{name}");
        }
        assert!(!frames_or_hop_by_hop("X-Forwarded-For"));
    }

    #[test]
    fn is_hop_by_hop_names_exactly_what_stripping_removes() {
        let names = [
            "keep-alive",
            "x-secret",
            "x-real-ip",
            "host",
            "date",
            "accept",
            "te",
        ];
        let mut h = Headers::new();
        h.push("Connection", "close, X-Secret, Host, Date");
        for name in names {
            h.push(name, "1");
        }
        let hop: Vec<&str> = (names.into_iter())
            .filter(|n| is_hop_by_hop(&h, n))
            .collect();
        assert_eq!(hop, ["keep-alive", "x-secret", "te"]);
        strip_hop_by_hop(&mut h, false);
        let kept: Vec<&str> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(kept, ["x-real-ip", "host", "date", "accept"]);
    }

    /// The `Surrogate-Capability` sent on for one whose fields (each a
    /// line) are `sent`, with this cache's entry added.
    fn capability_sent_on(sent: &[&str]) -> (Option<String>, usize) {
        let mut h = Headers::new();
        for value in sent {
            h.push("Surrogate-Capability", *value);
        }
        add_forwarded(
            &mut h,
            &Forwarded {
                client_ip: "127.0.0.1".parse().unwrap(),
                real_ip: "127.0.0.1".parse().unwrap(),
                proto: "http",
                host: None,
                via: None,
                surrogate_capability: Some("inverso=\"Surrogate/1.0\""),
            },
        );
        let lines = h.get_all("surrogate-capability").count();
        (h.get_str("surrogate-capability").map(str::to_string), lines)
    }

    #[test]
    fn a_capability_in_this_caches_name_is_not_taken_from_the_client() {
        // A client claiming this cache's device token (with a capability
        // it lacks, ESI) would have the origin answer what suits such a
        // device, and the cache store it for everyone.
        let sent = capability_sent_on(&[
            "INVERSO=\"Surrogate/1.0 ESI/1.0\", cdn=\"Surrogate/1.0 ESI/1.0\"",
            " inverso = \"ESI/1.0\" ,, x=\"a,b\"",
        ]);
        let want = "cdn=\"Surrogate/1.0 ESI/1.0\", x=\"a,b\", inverso=\"Surrogate/1.0\"";
        assert_eq!(sent, (Some(want.to_string()), 1));
    }

    #[test]
    fn a_device_with_a_quote_left_open_does_not_swallow_this_caches_entry() {
        let sent = capability_sent_on(&["cdn=\"x, edge=\"a\\\"b\""]);
        let want = "edge=\"a\\\"b\", inverso=\"Surrogate/1.0\"";
        assert_eq!(sent, (Some(want.to_string()), 1));
        // Outside a quoted string a backslash escapes nothing: the quote
        // after it still opens one, left open.
        let sent = capability_sent_on(&["x=\\\"y"]);
        let want = "inverso=\"Surrogate/1.0\"";
        assert_eq!(sent, (Some(want.to_string()), 1));
    }
}
