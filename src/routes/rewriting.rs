//! A route's prefix replaced (`rewrite=`, and a redirect's place) in the
//! target a backend is sent, and put back under the route's own in what
//! the backend answers about its paths: `Location`, and with
//! `cookie_paths` the `Path` of its cookies.

use super::paths::{path_is_under, routing_path};
use super::spec::host_of;
use super::Route;
use crate::http::headers::set_cookie_attributes;

impl Route {
    /// The request-target a backend is sent for `target` (path and query,
    /// as the client sent it): with `rewrite=`, the matched prefix of
    /// its path, as matched, replaced; otherwise `None` (sent as it is).
    pub fn rewritten(&self, target: &str) -> Option<String> {
        let rewrite = self.rewrite.as_deref()?;
        self.with_prefix_replaced(rewrite, target)
    }

    /// A backend's `Location` as the client must follow it, for a route
    /// with `rewrite=`: a path under the rewritten prefix, or a URL at the
    /// host the backend was sent (`sent_host`) with such a path, goes back
    /// under the route's own prefix (nginx's `proxy_redirect default`).
    /// `None`: the field goes on as it is (another host, another path, no
    /// rewrite).
    pub fn location_back(&self, location: &str, sent_host: Option<&str>) -> Option<String> {
        let rewrite = self.rewrite.as_deref()?;
        let path = match location
            .strip_prefix("http://")
            .or_else(|| location.strip_prefix("https://"))
        {
            Some(url) => {
                let (authority, path) = url.split_at(url.find(['/', '?']).unwrap_or(url.len()));
                if host_of(authority) != host_of(sent_host?) {
                    return None;
                }
                path
            }
            None if location.starts_with('/') && !location.starts_with("//") => location,
            None => return None,
        };
        let back = self.back_under_prefix(rewrite, path)?;
        // Relative, `//evil.example` or `/\evil.example` would be another
        // host to a browser, where the backend's URL was its own.
        let elsewhere = back.starts_with("//") || back.starts_with("/\\");
        (!elsewhere).then_some(back)
    }

    /// A backend's `Set-Cookie` field as the client must store it, for a
    /// route with `rewrite=`: each `Path` attribute under the rewritten
    /// prefix goes back under the route's own prefix, as a `Location`
    /// path does (nginx's `proxy_cookie_path` from the rewritten prefix
    /// to the route's), the rest of the field byte for byte. `None`: the
    /// field goes on as it is (no such `Path`, no rewrite).
    ///
    /// Every `Path` attribute, not only the last, which alone counts to
    /// RFC 6265 (§5.3 step 7): a client or a cache in front that reads
    /// the first then gets the same path, and the one that counts is
    /// rewritten either way (nginx too rewrites each). A `Path` that is
    /// empty or does not start with `/` stands for the request's own
    /// directory (§5.2.4), which is the client's URL already: left alone.
    pub fn set_cookie_back(&self, field: &[u8]) -> Option<Vec<u8>> {
        let rewrite = self.rewrite.as_deref().filter(|_| self.cookie_paths)?;
        let mut back: Option<Vec<u8>> = None;
        // Where the field's bytes not yet copied to `back` begin.
        let mut copied = 0;
        for span in set_cookie_attributes(field, "path") {
            let Ok(path) = std::str::from_utf8(&field[span.clone()]) else {
                continue;
            };
            // A `?` is part of a cookie's path (no query), and such a
            // path matches no request: left alone.
            if !path.starts_with('/') || path.contains('?') {
                continue;
            }
            // The route's path holds no `;` (see `parse_spec`), which
            // would end the attribute and begin another.
            let Some(mut path) = self.back_under_prefix(rewrite, path) else {
                continue;
            };
            // The backend's root under a route without a trailing `/`
            // (`route./shop`): `/shop/` would leave out `/shop` itself,
            // which the route takes; `/shop` covers both, and no more.
            if path.strip_prefix(&*self.path) == Some("/") && !self.path.ends_with('/') {
                path.pop();
            }
            let out = back.get_or_insert_with(|| Vec::with_capacity(field.len() + self.path.len()));
            out.extend_from_slice(&field[copied..span.start]);
            out.extend_from_slice(path.as_bytes());
            copied = span.end;
        }
        let mut back = back?;
        back.extend_from_slice(&field[copied..]);
        Some(back)
    }

    /// `path` (a query after it kept) put back from under `rewrite` to
    /// under the route's own prefix, `None` when it is not under
    /// `rewrite` (whole segments, or `rewrite` without its trailing `/`):
    /// what [`Route::rewritten`] did, undone, for what a backend answers
    /// about its own paths.
    fn back_under_prefix(&self, rewrite: &str, path: &str) -> Option<String> {
        let (path_only, _) = path.split_at(path.find('?').unwrap_or(path.len()));
        if !path_is_under(path_only, rewrite) && path_only != rewrite.trim_end_matches('/') {
            return None;
        }
        let rest = path
            .strip_prefix(rewrite.trim_end_matches('/'))
            .unwrap_or(path);
        let prefix = &*self.path;
        let mut back = String::with_capacity(prefix.len() + rest.len());
        back.push_str(prefix);
        match (prefix.ends_with('/'), rest.starts_with('/')) {
            (true, true) => back.push_str(&rest[1..]),
            (false, false) if !rest.is_empty() && !rest.starts_with('?') => {
                back.push('/');
                back.push_str(rest);
            }
            _ => back.push_str(rest),
        }
        Some(back)
    }

    /// `target` with the matched prefix of its path (as matched)
    /// replaced by `with`, its query as it came; `None` for a target
    /// that is no path.
    pub(super) fn with_prefix_replaced(&self, with: &str, target: &str) -> Option<String> {
        if !target.starts_with('/') {
            return None;
        }
        let (path, query) = target.split_at(target.find('?').unwrap_or(target.len()));
        let path = routing_path(path);
        // The route matched, so the path starts with the prefix; a path
        // of `/api` under a route `/api/` cannot.
        let rest = path.strip_prefix(&*self.path).unwrap_or("");
        let mut out = String::with_capacity(with.len() + rest.len() + query.len());
        out.push_str(with);
        // One `/` where the two meet: `/api` to `/` makes `/api/x` `/x`.
        match (with.ends_with('/'), rest.starts_with('/')) {
            (true, true) => out.push_str(&rest[1..]),
            (false, false) if !rest.is_empty() => {
                out.push('/');
                out.push_str(rest);
            }
            _ => out.push_str(rest),
        }
        // A URL with no path left (`https://example.com` for `/`) names
        // its root, as nginx's `https://example.com$request_uri` does:
        // `/` before a query too, which some clients would otherwise
        // take for a part of the host.
        let site = (with.split_once("://")).map(|(_, after)| after);
        if site.is_some_and(|after| !after.contains('/')) && rest.is_empty() {
            out.push('/');
        }
        out.push_str(query);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_replaces_the_matched_prefix_once() {
        let route = |spec: &str, to: &str| Route::parse(spec, 1, Some(to)).unwrap();
        let cases = [
            ("/api/", "/", "/api/users?id=3", "/users?id=3"),
            ("/api", "/", "/api/users", "/users"),
            ("/api", "/", "/api", "/"),
            ("/api", "/", "/api?x", "/?x"),
            ("/api/", "/v2/", "/api/users", "/v2/users"),
            ("/api", "/v2", "/api/users", "/v2/users"),
            ("/old/", "/new", "/old/a", "/new/a"),
            ("/", "/app/", "/a/b", "/app/a/b"),
            ("/api/", "/", "/%61pi//y", "/y"),
        ];
        for (spec, to, target, want) in cases {
            let got = route(spec, to).rewritten(target);
            assert_eq!(got.as_deref(), Some(want), "{spec} {to} {target}");
        }
        assert_eq!(
            Route::parse("/api/", 1, None).unwrap().rewritten("/api/x"),
            None
        );
        assert_eq!(route("/", "/app/").rewritten("*"), None);
    }

    #[test]
    fn a_backend_s_redirect_goes_back_under_the_route_s_prefix() {
        let back = |spec: &str, to: &str, location: &str| {
            let route = Route::parse(spec, 1, Some(to)).unwrap();
            route.location_back(location, Some("Site.Test:8080"))
        };
        let cases = [
            ("/api/", "/", "/login", Some("/api/login")),
            ("/api/", "/", "/", Some("/api/")),
            ("/api/", "/", "/a?b=1", Some("/api/a?b=1")),
            ("/api/", "/", "http://site.test/login", Some("/api/login")),
            ("/api/", "/", "https://SITE.test:8080/x?y", Some("/api/x?y")),
            ("/api/", "/", "https://site.test", Some("/api/")),
            ("/api/", "/", "https://other.test/login", None),
            ("/api/", "/", "//site.test/login", None),
            ("/api/", "/", "login", None),
            ("/api", "/v2", "/v2/users", Some("/api/users")),
            ("/api", "/v2", "/v2", Some("/api")),
            ("/api", "/v2", "/v2?a", Some("/api?a")),
            ("/api", "/v2", "/v2x", None),
            ("/api/", "/v2/", "/v2", Some("/api/")),
            ("/api/", "/v2/", "/elsewhere", None),
            (
                "/api/",
                "/",
                "http://site.test//evil.test/x",
                Some("/api//evil.test/x"),
            ),
            ("/", "/", "http://site.test//evil.test/x", None),
            ("/", "/", "http://site.test/\\evil.test/x", None),
        ];
        for (spec, to, location, want) in cases {
            let got = back(spec, to, location);
            assert_eq!(got.as_deref(), want, "{spec} {to} {location}");
        }
        let plain = Route::parse("/api/", 1, None).unwrap();
        assert_eq!(plain.location_back("/login", Some("site.test")), None);
    }

    #[test]
    fn a_backend_s_cookie_paths_go_back_under_the_route_s_prefix() {
        let back = |spec: &str, to: &str, field: &[u8]| {
            let route = Route::parse(spec, 1, Some(to)).unwrap();
            let back = route.with_cookie_paths().unwrap().set_cookie_back(field);
            back.map(|b| String::from_utf8_lossy(&b).into_owned())
        };
        let cases: [(&str, &str, &str, Option<&str>); 32] = [
            // nginx's `proxy_cookie_path / /app/`.
            (
                "/app/",
                "/",
                "sid=1; Path=/account",
                Some("sid=1; Path=/app/account"),
            ),
            ("/app/", "/", "sid=1; Path=/", Some("sid=1; Path=/app/")),
            // `/app` covers `/app` itself, which the route takes, and
            // what is under it; `/app/` would leave the first out.
            ("/app", "/", "sid=1; Path=/", Some("sid=1; Path=/app")),
            ("/api", "/v2/", "s=1; Path=/v2/", Some("s=1; Path=/api")),
            // A `?` is no query in a cookie's path.
            ("/api/", "/v2/", "s=1; Path=/v2/x?y", None),
            (
                "/app",
                "/",
                "sid=1; Path=/a/b",
                Some("sid=1; Path=/app/a/b"),
            ),
            ("/api/", "/v2/", "s=1; Path=/v2/x", Some("s=1; Path=/api/x")),
            ("/api/", "/v2/", "s=1; Path=/v2", Some("s=1; Path=/api/")),
            ("/api", "/v2", "s=1; Path=/v2", Some("s=1; Path=/api")),
            ("/", "/app/", "s=1; Path=/app/x", Some("s=1; Path=/x")),
            // Not under the rewritten prefix, by whole segments.
            ("/api/", "/v2/", "s=1; Path=/elsewhere", None),
            ("/api", "/v2", "s=1; Path=/v2x", None),
            ("/", "/app/", "s=1; Path=/", None),
            // No Path: the browser takes the request's directory, the
            // client's URL already.
            ("/app/", "/", "sid=1", None),
            ("/app/", "/", "sid=1; HttpOnly; Secure", None),
            ("/app/", "/", "Path=/x", None),
            ("/app/", "/", "sid=Path=/x", None),
            ("/app/", "/", "sid=1; MyPath=/x; Domain=/x", None),
            // Empty, or not a path: the request's directory too.
            ("/app/", "/", "sid=1; Path=", None),
            ("/app/", "/", "sid=1; Path= \t; Secure", None),
            ("/app/", "/", "sid=1; Path; Secure", None),
            ("/app/", "/", "sid=1; Path=\"/x\"", None),
            ("/app/", "/", "sid=1; Path=x/y", None),
            // The attribute's name in any case, spaces and tabs around
            // it and its value kept as they were.
            ("/app/", "/", "sid=1; path=/x", Some("sid=1; path=/app/x")),
            ("/app/", "/", "sid=1;PATH=/x", Some("sid=1;PATH=/app/x")),
            (
                "/app/",
                "/",
                "sid=1 ;  Path \t=  /x \t; Secure",
                Some("sid=1 ;  Path \t=  /app/x \t; Secure"),
            ),
            // Everything else byte for byte, in its order.
            (
                "/app/",
                "/",
                "a=\"b c\"; Secure; Path=/x; HttpOnly; SameSite=Lax; Max-Age=60",
                Some("a=\"b c\"; Secure; Path=/app/x; HttpOnly; SameSite=Lax; Max-Age=60"),
            ),
            // Quotes mean nothing to RFC 6265: a `;` in them ends the
            // cookie's value, and browsers read a Path there.
            ("/app/", "/", "s=\"a;Path=/x\"", Some("s=\"a;Path=/app/x\"")),
            (
                "/app/",
                "/",
                "s=\"a; b\"; Path=/x",
                Some("s=\"a; b\"; Path=/app/x"),
            ),
            // Every Path (the last is the one that counts).
            (
                "/app/",
                "/",
                "a=1; Path=/x; Path=/y",
                Some("a=1; Path=/app/x; Path=/app/y"),
            ),
            (
                "/api/",
                "/v2/",
                "a=1; Path=/v2/x; Path=/other",
                Some("a=1; Path=/api/x; Path=/other"),
            ),
            (
                "/api/",
                "/v2/",
                "a=1; Path=/other; Path=/v2/x",
                Some("a=1; Path=/other; Path=/api/x"),
            ),
        ];
        for (spec, to, field, want) in cases {
            let got = back(spec, to, field.as_bytes());
            assert_eq!(got.as_deref(), want, "{spec} {to} {field}");
        }
        // Bytes that are not UTF-8 elsewhere in the field stay as they came.
        let route = Route::parse("/app/", 1, Some("/")).unwrap();
        let route = route.with_cookie_paths().unwrap();
        let got = route.set_cookie_back(b"a=\xff; Path=/x; b=\xfe");
        assert_eq!(got.as_deref(), Some(&b"a=\xff; Path=/app/x; b=\xfe"[..]));
        let plain = Route::parse("/app/", 1, None).unwrap();
        assert_eq!(plain.set_cookie_back(b"sid=1; Path=/"), None);
        assert!(plain.with_cookie_paths().is_err());
        // Only when asked for, as nginx's `proxy_cookie_path`.
        let unasked = Route::parse("/app/", 1, Some("/")).unwrap();
        assert_eq!(unasked.set_cookie_back(b"sid=1; Path=/"), None);
    }
}
