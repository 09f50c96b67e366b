//! Requests that came over plain HTTP sent to HTTPS (`redirect_to_https`),
//! as nginx's `return 301 https://$host$request_uri` behind a TLS
//! terminator and HAProxy's `http-request redirect scheme https`. Whether
//! a request came over plain HTTP is not decided here: it is the scheme
//! `X-Forwarded-Proto` is sent with (see [`crate::realip::client_scheme`]),
//! so a backend is never told `https` for a request this would redirect,
//! nor the other way round; a route's `if https` reads that scheme too.
//! Nor whether to redirect: that is the `redirect_to_https` of the pool
//! a request is routed to, a pool's own or the top level's. This module
//! says where a request goes, with which status, and which paths stay on
//! plain HTTP.

use crate::http::head::{path_and_query_of, push_host_name};
use crate::http::RequestHead;
use crate::patterns::PathPrefixes;

/// The answer to a request that came over plain HTTP.
#[derive(Debug, PartialEq, Eq)]
pub struct Redirect {
    /// 301 for GET and HEAD; 308 for the other methods, which 301 lets
    /// browsers turn into a GET (RFC 9110 §15.4.2), losing a form's body.
    pub status: u16,
    /// `https://`, the host asked for without its port, and the
    /// request-target's path and query as sent.
    pub location: String,
}

/// Where `head`, a request that came over plain HTTP, is sent: `None`
/// when it is served as usual instead. So are a path `except` lists; an
/// `OPTIONS *`, which asks about the server, not about a resource that
/// could move; and a request that names no host (HTTP/1.0 without
/// `Host`), which no browser sends and whose redirect could name none:
/// an old health checker (HAProxy's default `OPTIONS / HTTP/1.0`), which
/// a 400 would take for a failed backend.
///
/// `sent` is the request-target as the client sent it, which a
/// `rewrite.<name>` rule may have replaced in `head` since: the client is
/// sent to its own URL over HTTPS, as nginx's `$request_uri` does.
pub fn redirect(head: &RequestHead, sent: &str, except: &PathPrefixes) -> Option<Redirect> {
    if sent == "*" {
        return None;
    }
    let authority = head.authority()?;
    let target = path_and_query_of(sent);
    let path = target.split_once('?').map_or(&*target, |(path, _)| path);
    if except.matches(path) {
        return None;
    }
    let mut location = String::with_capacity("https://".len() + authority.len() + target.len());
    location.push_str("https://");
    push_host_name(&mut location, authority);
    location.push_str(&target);
    let status = match &*head.method {
        "GET" | "HEAD" => 301,
        _ => 308,
    };
    Some(Redirect { status, location })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{parse_request, RequestLimits};

    fn head(raw: &str) -> RequestHead {
        parse_request(raw.as_bytes(), &RequestLimits::default()).unwrap()
    }

    fn sent_to(raw: &str, except: &str) -> Option<(u16, String)> {
        let except = PathPrefixes::parse(except).unwrap();
        let head = head(raw);
        redirect(&head, &head.target, &except).map(|r| (r.status, r.location))
    }

    fn to(status: u16, location: &str) -> Option<(u16, String)> {
        Some((status, location.to_string()))
    }

    #[test]
    fn the_host_asked_for_without_its_port_and_the_target_as_sent() {
        for (raw, location) in [
            (
                "GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: Shop.Example:8080\r\n\r\n",
                "https://shop.example/a/b?x=1&y=%20",
            ),
            (
                "GET / HTTP/1.1\r\nHost: shop.example.\r\n\r\n",
                "https://shop.example/",
            ),
            (
                "GET /p HTTP/1.1\r\nHost: [2001:DB8::1]:8080\r\n\r\n",
                "https://[2001:db8::1]/p",
            ),
            ("GET /p HTTP/1.1\r\nHost: [::1]\r\n\r\n", "https://[::1]/p"),
            (
                "GET /p HTTP/1.1\r\nHost: 192.0.2.7:80\r\n\r\n",
                "https://192.0.2.7/p",
            ),
            // Unusual but legal origin-form: still a path on this host.
            (
                "GET //other.example/x HTTP/1.1\r\nHost: a\r\n\r\n",
                "https://a//other.example/x",
            ),
            (
                "GET /?q HTTP/1.0\r\nHost: a.example\r\n\r\n",
                "https://a.example/?q",
            ),
        ] {
            assert_eq!(sent_to(raw, ""), to(301, location), "{raw:?}");
        }
    }

    #[test]
    fn an_absolute_form_target_names_the_host() {
        let raw = "GET http://Shop.Example:8080/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n";
        assert_eq!(sent_to(raw, ""), to(301, "https://shop.example/p?q=1"));
        // An empty path is `/`; an empty path with a query too.
        let raw = "GET http://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n";
        assert_eq!(sent_to(raw, ""), to(301, "https://a.example/"));
        let raw = "GET http://a.example?x HTTP/1.0\r\n\r\n";
        assert_eq!(sent_to(raw, ""), to(301, "https://a.example/?x"));
    }

    #[test]
    fn methods_other_than_get_and_head_keep_theirs_with_308() {
        let with = |method: &str| {
            let raw = format!("{method} /form HTTP/1.1\r\nHost: a\r\n\r\n");
            sent_to(&raw, "").map(|(status, _)| status)
        };
        assert_eq!(with("GET"), Some(301));
        assert_eq!(with("HEAD"), Some(301));
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND"] {
            assert_eq!(with(method), Some(308), "{method}");
        }
    }

    #[test]
    fn some_requests_are_served_as_usual() {
        // OPTIONS * asks about the server; HTTP/1.0 without Host names
        // no host to send it to.
        assert_eq!(sent_to("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", ""), None);
        assert_eq!(sent_to("GET /p HTTP/1.0\r\n\r\n", ""), None);
        assert_eq!(
            sent_to("GET /p HTTP/1.0\r\nHost: a\r\n\r\n", ""),
            to(301, "https://a/p")
        );
    }

    #[test]
    fn excepted_prefixes_match_the_path_as_sent_before_its_query() {
        let except = "/healthz, /.well-known/acme-challenge/";
        let served = |target: &str| {
            let raw = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
            sent_to(&raw, except).is_none()
        };
        for (target, as_usual) in [
            ("/healthz", true),
            ("/healthz?full=1", true),
            ("/healthz/deep", true),
            // A prefix, as nginx's `location /healthz`.
            ("/healthzz", true),
            ("/.well-known/acme-challenge/tok3n", true),
            ("/.well-known/acme-challenge", false),
            ("/HEALTHZ", false),
            ("/%68ealthz", false),
            ("/?p=/healthz", false),
            ("/", false),
            ("http://a/healthz?x", true),
            ("http://a?/healthz", false),
        ] {
            assert_eq!(served(target), as_usual, "{target}");
        }
    }

    #[test]
    fn except_lists_paths() {
        assert!(PathPrefixes::parse("").unwrap().is_empty());
        let list = PathPrefixes::parse(" /healthz ,/.well-known/acme-challenge/").unwrap();
        assert!(list.matches("/healthz") && list.matches("/.well-known/acme-challenge/x"));
        assert!(!list.matches("/health"));
        // What a backend reads as another path is not under the prefix:
        // `/admin` would be served over plain HTTP.
        for elsewhere in [
            "/healthz/../admin",
            "/healthz/%2E%2E/admin",
            "/healthz/..;/admin",
        ] {
            assert!(!list.matches(elsewhere), "{elsewhere}");
        }
        for (bad, why) in [
            ("healthz", "`healthz` does not start with `/`"),
            ("/a, *", "`*` does not start with `/`"),
            ("/a b", "is not the start of a path"),
            ("/a?b", "is not the start of a path"),
            ("/a#b", "is not the start of a path"),
            ("/caf\u{e9}", "is not the start of a path"),
            ("/a,", "empty entry"),
            ("/a, /a", "`/a` is listed twice"),
        ] {
            let e = PathPrefixes::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let many: Vec<String> = (0..33).map(|i| format!("/p{i}")).collect();
        let e = PathPrefixes::parse(&many.join(",")).unwrap_err();
        assert!(e.contains("33 path prefixes listed; at most 32"), "{e}");
        assert!(PathPrefixes::parse(&many[..32].join(",")).is_ok());
    }
}
