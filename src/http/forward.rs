//! The header rewriting a proxy owes both sides (RFC 9110 §7.6): drop what
//! describes one connection, and tell the backend who asked and through
//! whom.

use super::headers::Headers;
use crate::digits::push_ip;
use std::net::IpAddr;

/// Fields that describe a single connection (RFC 9110 §7.6.1, plus the
/// non-standard ones clients still send). The framing fields are also
/// dropped: the proxy frames each message it forwards itself.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "content-length",
    "upgrade",
];

/// The fields [`add_forwarded`] writes, whatever the client sent in them.
pub const FORWARDING_FIELDS: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "via",
];

/// Whether `name` is a field that frames a message or describes one
/// connection, or one of the forwarding fields: the proxy writes these
/// itself.
pub fn is_proxy_owned(name: &str) -> bool {
    HOP_BY_HOP
        .iter()
        .chain(&FORWARDING_FIELDS)
        .any(|f| f.eq_ignore_ascii_case(name))
}

/// Fields a peer may not make us drop by naming them in `Connection`: a
/// client that lists `X-Forwarded-For` or `Host` there is trying to make
/// the proxy hide something from the backend; a response must keep its
/// `Date` (RFC 9110 §6.6.1), which the cache's age and freshness read.
fn is_protected(name: &str) -> bool {
    ["host", "authorization", "cookie", "date"]
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

/// Who the request came from, for the `X-Forwarded-*` and `Via` fields.
pub struct Forwarded<'a> {
    pub client_ip: IpAddr,
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
/// proxies wrote (folded into one field), `X-Forwarded-Proto` and
/// `X-Forwarded-Host` set from what this proxy saw (a client's own values
/// would be lies we pass on), and `Via` appended.
pub fn add_forwarded(headers: &mut Headers, f: &Forwarded<'_>) {
    let mut client = String::with_capacity(15);
    push_ip(&mut client, f.client_ip);
    let xff = join_values(headers, "x-forwarded-for", &client);
    headers.set("X-Forwarded-For", xff);
    headers.set("X-Forwarded-Proto", f.proto);
    match f.host {
        Some(host) => headers.set("X-Forwarded-Host", host),
        None => {
            headers.remove("x-forwarded-host");
        }
    }
    if let Some(entry) = f.via {
        let via = join_values(headers, "via", entry);
        headers.set("Via", via);
    }
    if let Some(entry) = f.surrogate_capability {
        // What surrogates in front announced, but an entry in this
        // cache's own name: no device in front has it, and whoever sent it
        // (a client claiming ESI, say) would have the origin answer what
        // suits a device this cache is not, for it to store for everyone.
        let ours = entry.split('=').next().unwrap_or(entry).trim();
        let mut capability = Vec::new();
        for device in headers.quoted_list("surrogate-capability") {
            let token = device.split('=').next().unwrap_or(device).trim();
            if !token.eq_ignore_ascii_case(ours) {
                capability.extend_from_slice(device.as_bytes());
                capability.extend_from_slice(b", ");
            }
        }
        capability.extend_from_slice(entry.as_bytes());
        headers.set("Surrogate-Capability", capability);
    }
}

/// All values of `name` joined with ", ", then `last`.
fn join_values(headers: &Headers, name: &str, last: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for v in headers.get_all(name) {
        let v = v.trim_ascii();
        if !v.is_empty() {
            out.extend_from_slice(v);
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(last.as_bytes());
    out
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

    #[test]
    fn a_capability_in_this_caches_name_is_not_taken_from_the_client() {
        // A client claiming this cache's device token (with a capability
        // it lacks, ESI) would have the origin answer what suits such a
        // device, and the cache store it for everyone.
        let mut h = Headers::new();
        h.push(
            "Surrogate-Capability",
            "INVERSO=\"Surrogate/1.0 ESI/1.0\", cdn=\"Surrogate/1.0 ESI/1.0\"",
        );
        h.push(
            "Surrogate-Capability",
            " inverso = \"ESI/1.0\" ,, x=\"a,b\"",
        );
        add_forwarded(
            &mut h,
            &Forwarded {
                client_ip: "127.0.0.1".parse().unwrap(),
                proto: "http",
                host: None,
                via: None,
                surrogate_capability: Some("inverso=\"Surrogate/1.0\""),
            },
        );
        assert_eq!(
            h.get_str("surrogate-capability"),
            Some("cdn=\"Surrogate/1.0 ESI/1.0\", x=\"a,b\", inverso=\"Surrogate/1.0\"")
        );
        assert_eq!(h.get_all("surrogate-capability").count(), 1);
    }
}
