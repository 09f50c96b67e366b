//! Routes that answer themselves instead of sending to a pool: a
//! redirect (`redirect <status> <to>`) or a fixed response (`return
//! <status> [<text>]`).

use super::paths::{path_is_under, routing_path};
use super::spec::parse_spec;
use super::{Answer, OwnSettings, Route};
use crate::config::FieldFamily;
use crate::field_value::{Facts, FieldValue};

/// `return <status> [<text>]`: the proxy answers `status` itself, with
/// `text` as the body, or without one its own page for the status
/// (nginx's `return 403;` and `return 200 "ok";`, HAProxy's `http-request
/// return` and `http-request deny`).
#[derive(Clone, Debug)]
pub struct Return {
    pub status: u16,
    /// As written; its variables, if any, rendered at each answer
    /// ([`Return::body`]).
    pub text: Option<FieldValue>,
    /// The text's `Content-Type` (`type=`); `None`: plain text.
    pub content_type: Option<Box<str>>,
    escape: Escape,
}

/// How a variable's value is written into a `return` text: as text of
/// the text's type. A client's `$http_<name>` or `$request_uri` echoed
/// raw into an HTML page would run its script on the site's origin
/// (reflected XSS), and one with a `"` would end a JSON string early and
/// write keys of its own; nginx leaves that to whoever writes the
/// `return`, and a route has no other way to escape it.
#[derive(Clone, Copy, Debug)]
enum Escape {
    /// Byte for byte: a body may hold any.
    Raw,
    /// HTML and XML: `&<>"'` as references, controls as U+FFFD.
    Markup,
    /// Inside a JSON string (RFC 8259 §7).
    Json,
}

impl Escape {
    fn of(content_type: Option<&str>) -> Escape {
        let essence = content_type
            .and_then(|t| t.split(';').next())
            .unwrap_or_default()
            .to_ascii_lowercase();
        match essence.as_str() {
            "text/html" | "text/xml" | "application/xml" => Escape::Markup,
            e if e.ends_with("+xml") => Escape::Markup,
            "application/json" => Escape::Json,
            e if e.ends_with("+json") => Escape::Json,
            _ => Escape::Raw,
        }
    }

    fn write(self, value: &[u8], out: &mut Vec<u8>) {
        let push = match self {
            Escape::Raw => return out.extend_from_slice(value),
            Escape::Markup => crate::html::push_escaped,
            Escape::Json => crate::json::push_escaped,
        };
        // A byte that is not UTF-8 has no character to escape to.
        let mut escaped = String::with_capacity(value.len());
        push(&mut escaped, &String::from_utf8_lossy(value));
        out.extend_from_slice(escaped.as_bytes());
    }
}

impl Return {
    /// The body: the text as it is when it holds no variable, else
    /// rendered into `rendered` for the request `facts` tells of (made
    /// only then: a fixed text costs nothing per request).
    pub fn body<'a, 'f>(
        &'a self,
        facts: impl FnOnce() -> Facts<'f>,
        rendered: &'a mut Vec<u8>,
    ) -> Option<&'a [u8]> {
        let text = self.text.as_ref()?;
        if let Some(fixed) = text.text() {
            return Some(fixed.as_bytes());
        }
        let escape = self.escape;
        text.render_each(&facts(), rendered, |value, out| escape.write(value, out));
        Some(rendered)
    }
}

/// Longest text a `return` route may answer with.
pub const MAX_RETURN_TEXT: usize = 4096;

/// `return 444`: nginx's status for a connection closed without an
/// answer (HAProxy's `http-request reject`), logged as such.
pub const CLOSE_UNANSWERED: u16 = 444;

/// `redirect <status> <to>`: the proxy answers `status` itself, with a
/// `Location` of `to` in place of the matched prefix (nginx's `return 301
/// https://example.com$request_uri`, HAProxy's `http-request redirect
/// prefix`).
#[derive(Clone, Debug)]
pub struct Redirect {
    pub status: u16,
    to: Box<str>,
}

/// The statuses a redirect route may answer.
pub const REDIRECT_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

/// Longest `to` a redirect route may give.
const MAX_REDIRECT_LEN: usize = 2048;

/// Longest `type=` a `return` route may give.
const MAX_MEDIA_TYPE_LEN: usize = 128;

/// Whether `media_type` is a media type a `Content-Type` may say
/// (RFC 9110 §8.3.1): `type/subtype` of tokens, with `;name=value`
/// parameters of tokens (`text/html;charset=utf-8`), no space or quote.
fn check_media_type(media_type: &str) -> Result<(), String> {
    let token = |t: &str| !t.is_empty() && t.bytes().all(crate::http::head::is_tchar);
    let mut parts = media_type.split(';');
    let essence = parts.next().and_then(|e| e.split_once('/'));
    let valid = media_type.len() <= MAX_MEDIA_TYPE_LEN
        && essence.is_some_and(|(kind, sub)| token(kind) && token(sub))
        && parts.all(|p| p.split_once('=').is_some_and(|(n, v)| token(n) && token(v)));
    match valid {
        true => Ok(()),
        false => Err(format!(
            "type={}: a media type is `type/subtype`, with `;name=value` parameters, of \
             letters, digits and `!#$%&'*+-.^_`|~`, at most {MAX_MEDIA_TYPE_LEN} bytes \
             (`type=application/json`, `type=text/html;charset=utf-8`)",
            media_type.escape_debug()
        )),
    }
}

/// A `return` route's text, with the variables a request's field may
/// name (nginx's `return 200 "$remote_addr"`), checked; a `$` that
/// starts none is refused, as in a field's value, for `$$`.
fn return_text(status: u16, text: &str) -> Result<FieldValue, String> {
    if text.len() > MAX_RETURN_TEXT || text.chars().any(char::is_control) {
        return Err(format!(
            "return {status}: the text is one line of at most {MAX_RETURN_TEXT} bytes, \
             with no control character (a tab included)"
        ));
    }
    // Read as a response's field, so that a variable of a backend's
    // answer is told apart from an unknown one, then refused: a `return`
    // has no backend.
    let value = FieldValue::parse(text, FieldFamily::Response)
        .map_err(|e| format!("return {status}: {e}"))?;
    if value.of_response() {
        return Err(format!(
            "return {status}: the text names a variable of a backend's answer (`$status`, \
             `$upstream_*`, ...), and a `return` route answers before any backend: it may \
             name the request's (`$remote_addr`, `$host`, `$request_uri`, `$http_<name>`)"
        ));
    }
    Ok(value)
}

impl Route {
    /// A route (`spec` as for [`Route::parse`]) that answers `status` with
    /// a `Location` of `to` (a path, or an `http://` or `https://` URL)
    /// in place of the matched prefix.
    pub fn redirecting(spec: &str, status: u16, to: &str) -> Result<Route, String> {
        if !REDIRECT_STATUSES.contains(&status) {
            return Err(format!(
                "redirect {status}: the status of a redirect is 301, 302, 303, 307 or 308"
            ));
        }
        // A URL names its host: `https://` alone would take the host from
        // the request's path (`/old/evil.example/x`).
        let authority = (to
            .strip_prefix("http://")
            .or_else(|| to.strip_prefix("https://")))
        .map(|rest| rest.split('/').next().unwrap_or_default());
        let url = authority.is_some_and(|host| !host.is_empty());
        if !(url || authority.is_none() && to.starts_with('/') && !to.starts_with("//"))
            || to.len() > MAX_REDIRECT_LEN
            || to.contains(['?', '#'])
            || to.bytes().any(|b| !b.is_ascii_graphic())
        {
            return Err(format!(
                "redirect {status} {to}: the place to send clients to is a path (`/new/`) or an \
                 `http://` or `https://` URL, with no `?`, `#`, space or non-ASCII character, \
                 at most {MAX_REDIRECT_LEN} bytes: the rest of the path and the query are \
                 added to it"
            ));
        }
        let (host, path) = parse_spec(spec)?;
        let route = Route {
            server_name: host.server_name(),
            host,
            path,
            pool: 0,
            rewrite: None,
            cookie_paths: false,
            answer: Some(Answer::Redirect(Redirect {
                status,
                to: to.into(),
            })),
            condition: None,
            files: None,
            rate_limit: None,
            own: OwnSettings::default(),
        };
        // `/old/` to `/old/new/` (or to `/old`) would send its clients
        // round until 414: where a path under the route is sent, it is
        // under the route again.
        let under = match route.path.ends_with('/') {
            true => format!("{}x", route.path),
            false => format!("{}/x", route.path),
        };
        let sent = route.with_prefix_replaced(to, &under).unwrap_or_default();
        if to.starts_with('/') && path_is_under(&routing_path(&sent), &route.path) {
            return Err(format!(
                "redirect {status} {to}: sends `{under}` to `{sent}`, under the route again: \
                 clients would go round in a loop"
            ));
        }
        Ok(route)
    }

    /// The route for `spec` that answers `status` itself, with `text`
    /// as the body if given: an endpoint for a load balancer's health
    /// checks (`return 200 ok`), a path no backend should see (`return
    /// 404`), a site taken down (`return 503 back soon`).
    pub fn returning(
        spec: &str,
        status: u16,
        text: Option<&str>,
        content_type: Option<&str>,
    ) -> Result<Route, String> {
        if let Some(content_type) = content_type {
            if text.is_none() {
                return Err(format!(
                    "return {status} type={content_type}: a type is the text's, and there is \
                     no text after it"
                ));
            }
            check_media_type(content_type)?;
        }
        if status == CLOSE_UNANSWERED && text.is_some() {
            return Err(
                "return 444 closes the connection without an answer: it takes no text".into(),
            );
        }
        // 1xx, 204, 205, 206 and 304 have no body of this kind; a 3xx is
        // a redirect's, with the place it sends to.
        if !matches!(status, 200..=203 | 400..=599) {
            return Err(format!(
                "return {status}: a route returns 200 to 203, or 400 to 599 \
                 (for 301 to 308: `redirect <status> <to>`)"
            ));
        }
        // Answers that RFC 9110 says must carry a field a route cannot
        // give: they would tell the client what to do, and not how.
        if let Some(field) = crate::http::head::required_field(status) {
            return Err(format!(
                "return {status}: a {status} must say `{field}`, which a route cannot give"
            ));
        }
        let text = match text {
            Some(text) => Some(return_text(status, text)?),
            // A 2xx has no page of the proxy's own (nor the `Allow` of
            // its answer to an OPTIONS): its status line, as text.
            None => (status < 300).then(|| {
                let reason = crate::http::head::reason_phrase(status);
                FieldValue::fixed(&format!("{status} {reason}\n"))
            }),
        };
        let (host, path) = parse_spec(spec)?;
        Ok(Route {
            server_name: host.server_name(),
            host,
            path,
            pool: 0,
            rewrite: None,
            cookie_paths: false,
            answer: Some(Answer::Return(Return {
                status,
                text,
                content_type: content_type.map(Box::from),
                escape: Escape::of(content_type),
            })),
            condition: None,
            files: None,
            rate_limit: None,
            own: OwnSettings::default(),
        })
    }

    /// For a redirect route: the status and the place it sends to.
    pub fn redirect(&self) -> Option<(u16, &str)> {
        match &self.answer {
            Some(Answer::Redirect(r)) => Some((r.status, &*r.to)),
            _ => None,
        }
    }

    /// For a `return` route: what it answers.
    pub fn returned(&self) -> Option<&Return> {
        match &self.answer {
            Some(Answer::Return(r)) => Some(r),
            _ => None,
        }
    }

    /// For a redirect route, its status and its `Location` for `target`:
    /// the place it sends to in place of the matched prefix, the query
    /// kept. A target that is no path (`*`) is sent to the place as
    /// written.
    pub fn redirect_for(&self, target: &str) -> Option<(u16, String)> {
        let Some(Answer::Redirect(Redirect { status, to })) = &self.answer else {
            return None;
        };
        let location = self.with_prefix_replaced(to, target);
        // A `\` in it goes as `%5C` (see `proxy::own_answer::location_field`).
        Some((*status, location.unwrap_or_else(|| to.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_return_route_answers_a_status_and_its_text_alone() {
        let route = Route::returning("/healthz", 200, Some("ok"), None).unwrap();
        let answer = route.returned().unwrap();
        let text = answer.text.as_ref().and_then(FieldValue::text);
        assert_eq!((answer.status, text), (200, Some("ok")));
        assert!(route.answers_itself() && route.redirect().is_none());
        assert_eq!(route.redirect_for("/healthz"), None);
        assert_eq!(route.to_string(), "/healthz");
        let bare = Route::returning("example.com/.git/", 404, None, None).unwrap();
        assert!(bare.returned().unwrap().text.is_none());
        let bare = Route::returning("/up", 200, None, None).unwrap();
        let text = bare.returned().unwrap().text.as_ref();
        assert_eq!(text.and_then(FieldValue::text), Some("200 OK\n"));
        for status in [401, 405, 407, 426] {
            let e = Route::returning("/x", status, None, None).unwrap_err();
            assert!(e.contains("which a route cannot give"), "{e}");
        }
        for status in [200, 203, 400, 403, 404, 410, 451, 503, 599] {
            assert!(
                Route::returning("/x", status, None, None).is_ok(),
                "{status}"
            );
        }
        // No body, or a redirect's.
        for status in [100, 101, 199, 204, 205, 206, 301, 304, 308, 399, 600] {
            let e = Route::returning("/x", status, None, None).unwrap_err();
            assert!(
                e.contains("a route returns 200 to 203, or 400 to 599"),
                "{e}"
            );
        }
        for text in ["two\nlines", "\u{1b}[31m", &"x".repeat(MAX_RETURN_TEXT + 1)] {
            let e = Route::returning("/x", 200, Some(text), None).unwrap_err();
            assert!(e.contains("one line of at most"), "{e}");
        }
        assert!(!Route::parse("/api/", 1, None).unwrap().answers_itself());
    }

    #[test]
    fn a_return_text_s_variables_are_rendered_for_each_request_as_text_of_its_type() {
        let mut headers = crate::http::Headers::new();
        headers.push("Host", "site.test");
        headers.push("X-Name", "<b>\"Ann\" & co</b>");
        headers.push("X-Bytes", &b"caf\xe9"[..]);
        let head = crate::http::RequestHead {
            method: "GET".into(),
            target: "/x?a=1".into(),
            version: crate::http::Version::Http11,
            headers,
        };
        let body = |text: &str, of: Option<&str>| {
            let route = Route::returning("/x", 200, Some(text), of).unwrap();
            let mut rendered = Vec::new();
            let answer = route.returned().unwrap();
            let body = answer.body(|| Facts::plain(&head), &mut rendered);
            String::from_utf8_lossy(body.unwrap()).into_owned()
        };
        let plain = body("$remote_addr ${request_uri}, $host $$5", None);
        assert_eq!(plain, "192.0.2.10 /x?a=1, site.test $5");
        let html = "<p>$http_x_name</p>";
        assert_eq!(
            body(html, Some("text/html;charset=utf-8")),
            "<p>&lt;b&gt;&quot;Ann&quot; &amp; co&lt;/b&gt;</p>"
        );
        assert_eq!(
            body("<n>$http_x_name</n>", Some("image/svg+xml")),
            "<n>&lt;b&gt;&quot;Ann&quot; &amp; co&lt;/b&gt;</n>"
        );
        assert_eq!(
            body("{\"n\":\"$http_x_name\"}", Some("application/vnd.api+json")),
            "{\"n\":\"<b>\\\"Ann\\\" & co</b>\"}"
        );
        // Other types, plain text among them: byte for byte.
        assert_eq!(
            body("$http_x_name", Some("text/css")),
            "<b>\"Ann\" & co</b>"
        );
        let route = Route::returning("/x", 200, Some("[$http_x_bytes]"), None).unwrap();
        let mut rendered = Vec::new();
        let answer = route.returned().unwrap();
        let raw = answer.body(|| Facts::plain(&head), &mut rendered);
        assert_eq!(raw, Some(&b"[caf\xe9]"[..]));
        // A fixed text is sent as made, nothing rendered for it.
        let route = Route::returning("/x", 200, Some("5$$ ok"), None).unwrap();
        let mut rendered = Vec::new();
        let answer = route.returned().unwrap();
        let fixed = answer.body(|| unreachable!("no variable to render"), &mut rendered);
        assert_eq!(fixed, Some(&b"5$ ok"[..]));
        assert!(rendered.is_empty());
        assert_eq!(answer.text.as_ref().map(FieldValue::source), Some("5$$ ok"));
    }

    #[test]
    fn a_return_text_may_say_its_type() {
        let route = |of: &str| Route::returning("/x", 200, Some("{}"), Some(of));
        for of in [
            "application/json",
            "text/html;charset=utf-8",
            "application/vnd.api+json",
        ] {
            let answer = route(of).unwrap();
            let returned = answer.returned().unwrap();
            assert_eq!(returned.content_type.as_deref(), Some(of));
        }
        for of in [
            "json",
            "text/",
            "/html",
            "text/html;",
            "text/html;charset",
            "a b/c",
            "x/y\"z",
        ] {
            let e = route(of).unwrap_err();
            assert!(e.contains("a media type is `type/subtype`"), "{of}: {e}");
        }
        let e = Route::returning("/x", 404, None, Some("application/json")).unwrap_err();
        assert!(e.contains("there is no text after it"), "{e}");
    }

    #[test]
    fn a_redirect_sends_to_its_place_with_the_rest_of_the_path_and_the_query() {
        let redirect = |spec: &str, status: u16, to: &str, target: &str| {
            let route = Route::redirecting(spec, status, to).unwrap();
            assert_eq!(route.pool, 0);
            route.redirect_for(target).unwrap()
        };
        let cases = [
            (
                "www.example",
                301,
                "https://example",
                "/a/b?x=1",
                "https://example/a/b?x=1",
            ),
            (
                "www.example",
                301,
                "https://example/",
                "/",
                "https://example/",
            ),
            (
                "www.example",
                301,
                "https://example",
                "*",
                "https://example",
            ),
            // The root's `/`, as nginx's `https://example$request_uri`.
            (
                "www.example",
                301,
                "https://example",
                "/",
                "https://example/",
            ),
            (
                "www.example",
                301,
                "https://example",
                "/?utm=1",
                "https://example/?utm=1",
            ),
            (
                "/docs",
                302,
                "https://docs.example",
                "/docs",
                "https://docs.example/",
            ),
            (
                "/docs",
                302,
                "https://docs.example",
                "/docs/x",
                "https://docs.example/x",
            ),
            ("/old/", 308, "/new/", "/old/x?y", "/new/x?y"),
            ("/old", 302, "/new", "/old", "/new"),
            ("/old/", 308, "/", "/old//evil.example/", "/evil.example/"),
            (
                "/old/",
                308,
                "/",
                "/old/\\evil.example/",
                "/\\evil.example/",
            ),
            (
                "/blog/",
                301,
                "https://blog.example",
                "/blog/%61//p",
                "https://blog.example/a/p",
            ),
        ];
        for (spec, status, to, target, want) in cases {
            let got = redirect(spec, status, to, target);
            assert_eq!(got, (status, want.to_string()), "{spec} {to} {target}");
        }
        let pooled = Route::parse("/api/", 1, Some("/")).unwrap();
        assert_eq!(pooled.redirect_for("/api/x"), None);
        for (status, to, says) in [
            (200, "/x", "301, 302, 303, 307 or 308"),
            (301, "x", "a path (`/new/`)"),
            (301, "//evil.example", "a path (`/new/`)"),
            (301, "ftp://example", "a path (`/new/`)"),
            (301, "https://", "a path (`/new/`)"),
            (301, "http:///x", "a path (`/new/`)"),
            (308, "/old/new/", "in a loop"),
            (308, "/old", "in a loop"),
            (301, "/a?b", "no `?`"),
        ] {
            let e = Route::redirecting("/old/", status, to).unwrap_err();
            assert!(e.contains(says), "{status} {to}: {e}");
        }
    }
}
