//! Which pool of backends serves a request (`route.<host><path> = pool`):
//! nginx's `server_name` and `location` prefixes, HAProxy's `use_backend`
//! on `hdr(host)` and `path_beg`, written as one table.
//!
//! Of the routes whose host and path both match a request, the one with
//! the most specific host wins (a name, then the longest `*.` suffix, then
//! none), then the one with the longest path; with none, the request goes
//! to `targets`. The order routes are written in never matters, but
//! between routes with conditions (`if cookie canary 1`, see
//! [`Condition`]) at one host and path: those are tried in the order
//! written, before the route without one.
//!
//! A path matches whole segments: `/api` matches `/api`, `/api/` and
//! `/api/v1`, not `/apiary`; `/api/` matches `/api/` and below, not
//! `/api`. It is compared with the request's path as a backend would read
//! it: percent-encoded letters, digits and `-_~.` decoded, runs of `/`
//! merged. A path that backends read in different ways (a `.` or `..`
//! segment however spelled, a `\`) is refused rather than matched, so
//! no spelling slips a request past the route meant for it.

use crate::cache::policy::push_path;
use crate::files::Files;
use crate::http::head::push_host_name;
use crate::http::headers::set_cookie_paths;
use crate::ratelimit::Rate;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

mod condition;
pub use condition::{Asked, Condition, Lookup};

/// Most routes one configuration may hold: each request compares its
/// host and path with every one, in order of specificity.
pub const MAX_ROUTES: usize = 1000;

/// The routes of one configuration, most specific first.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    routes: Vec<Route>,
    /// Some route names a host: the request's is read (else no request
    /// pays for spelling it).
    by_host: bool,
    /// Some route is an `internal` `files` route: a backend's
    /// `X-Accel-Redirect` may name a file of it (else no request pays for
    /// keeping what such a file would be served for).
    accel: bool,
}

/// A request path that routes refuse (see [`is_ambiguous`]): answered 400.
#[derive(Debug, PartialEq, Eq)]
pub struct Ambiguous;

/// One `route.<host><path> = pool` key.
#[derive(Clone, Debug)]
pub struct Route {
    host: HostPattern,
    /// Starts with `/`; `/` alone matches every path.
    path: Box<str>,
    /// The pool's index: 0 for `targets`, then each `pool.<name>` in the
    /// order written.
    pub pool: usize,
    /// With `rewrite=`: what replaces the matched prefix of the path a
    /// backend is sent.
    rewrite: Option<Box<str>>,
    /// With `rewrite=` and `cookie_paths`: the `Path` of a backend's
    /// cookies goes back under the route's prefix too.
    cookie_paths: bool,
    /// A route that answers itself instead, with a redirect or a fixed
    /// response (its `pool` is then `targets`', whose settings the answer
    /// takes).
    answer: Option<Answer>,
    /// `if <condition>`: what else a request must carry for the route to
    /// take it.
    condition: Option<Condition>,
    /// `files <dir>`: the files under the route's prefix are served from
    /// `dir` (and with `fallback=`, what is not there goes to `pool`).
    files: Option<FilesRoute>,
    /// `rate_limit=` and its burst: buckets of the route's own, which its
    /// requests fill as well as their pool's.
    rate_limit: Option<(Rate, u32)>,
}

/// A `files` route's directory, and whether a missing file goes to the
/// route's pool.
#[derive(Clone, Debug)]
struct FilesRoute {
    files: Arc<Files>,
    fallback: bool,
    /// `internal`: reached only by a backend's `X-Accel-Redirect`.
    internal: bool,
}

/// What a route that sends to no pool answers.
#[derive(Clone, Debug)]
enum Answer {
    Redirect(Redirect),
    Return(Return),
}

/// `return <status> [<text>]`: the proxy answers `status` itself, with
/// `text` as the body, or without one its own page for the status
/// (nginx's `return 403;` and `return 200 "ok";`, HAProxy's `http-request
/// return` and `http-request deny`).
#[derive(Clone, Debug)]
pub struct Return {
    pub status: u16,
    pub text: Option<Box<str>>,
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

/// The host a route (or a `rewrite.<name>` rule's `host=`) is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HostPattern {
    Any,
    /// Lower case, without port or trailing dot.
    Exact(Box<str>),
    /// `*.example.com`: `.example.com`, matched by every name that ends
    /// with it (`a.example.com`, `a.b.example.com`), not by
    /// `example.com` itself, as nginx's `server_name *.example.com`.
    Suffix(Box<str>),
}

impl HostPattern {
    /// How specific: the more, the earlier tried.
    pub(crate) fn rank(&self) -> (u8, usize) {
        match self {
            HostPattern::Exact(_) => (2, 0),
            HostPattern::Suffix(s) => (1, s.len()),
            HostPattern::Any => (0, 0),
        }
    }

    /// Whether a request's host (see [`host_of`]; `None`: it named none)
    /// is this one.
    pub(crate) fn matches(&self, host: Option<&str>) -> bool {
        match (self, host) {
            (HostPattern::Any, _) => true,
            (HostPattern::Exact(name), Some(host)) => **name == *host,
            (HostPattern::Suffix(suffix), Some(host)) => {
                host.len() > suffix.len() && host.ends_with(&**suffix)
            }
            (_, None) => false,
        }
    }
}

impl Route {
    /// Reads the part of a `route.` key after the dot (`example.com/api/`,
    /// `*.example.com`, `/static/`) and the rewrite, if any, of the route
    /// to `pool`.
    pub fn parse(spec: &str, pool: usize, rewrite: Option<&str>) -> Result<Route, String> {
        if let Some(rewrite) = rewrite {
            // `//x` reads as another host to some backends; dot-segments
            // as other paths.
            if !rewrite.starts_with('/')
                || rewrite.starts_with("//")
                || is_ambiguous(rewrite)
                || rewrite.contains(['?', '#', '%'])
                || rewrite.bytes().any(|b| !b.is_ascii_graphic())
            {
                return Err(format!(
                    "rewrite={rewrite}: a path that starts with one `/`, with no `.` or `..` \
                     segment, `?`, `#`, `%`, `\\`, space or non-ASCII character"
                ));
            }
        }
        let (host, path) = parse_spec(spec)?;
        Ok(Route {
            host,
            path,
            pool,
            rewrite: rewrite.map(Into::into),
            cookie_paths: false,
            answer: None,
            condition: None,
            files: None,
            rate_limit: None,
        })
    }

    /// The route for `spec` that serves the files of `files` under its
    /// prefix; with `fallback`, a request for one that is not there (or
    /// with another method than GET or HEAD) goes to the pool of that
    /// index (nginx's `try_files $uri $uri/ @app`).
    pub fn serving_files(
        spec: &str,
        files: Arc<Files>,
        fallback: Option<usize>,
    ) -> Result<Route, String> {
        let (host, path) = parse_spec(spec)?;
        Ok(Route {
            host,
            path,
            pool: fallback.unwrap_or(0),
            rewrite: None,
            cookie_paths: false,
            answer: None,
            condition: None,
            files: Some(FilesRoute {
                files,
                fallback: fallback.is_some(),
                internal: false,
            }),
            rate_limit: None,
        })
    }

    /// This `files` route, reached only by a backend's `X-Accel-Redirect`
    /// (nginx's `internal` location): a client asking for its paths gets
    /// 404.
    pub fn internal(self) -> Result<Route, String> {
        match self.files {
            Some(files) if !files.fallback => Ok(Route {
                files: Some(FilesRoute {
                    internal: true,
                    ..files
                }),
                ..self
            }),
            _ => Err("internal: a route a client never reaches has no pool to fall back to".into()),
        }
    }

    /// Whether this is an `internal` `files` route.
    pub fn is_internal(&self) -> bool {
        self.files.as_ref().is_some_and(|f| f.internal)
    }

    /// For a `files` route: its directory, and whether what is not there
    /// goes to its pool.
    pub fn files(&self) -> Option<(&Files, bool)> {
        (self.files.as_ref()).map(|f| (&*f.files, f.fallback))
    }

    /// For a `files` route: the part of `path` (a request's, without its
    /// query, as sent) below the route's prefix, as
    /// [`Files::find`] reads it: starting with `/`, or empty when the
    /// path is the prefix of a route without a trailing `/` (`/static`
    /// under `route./static`: a directory asked for without its `/`).
    pub fn path_under(&self, path: &str) -> String {
        let path = routing_path(path);
        // The route matched, so the path starts with its prefix.
        let rest = path.strip_prefix(&*self.path).unwrap_or_default();
        match self.path.ends_with('/') {
            true => format!("/{rest}"),
            false => rest.to_string(),
        }
    }

    /// This route (with `rewrite=`), its backends' cookie paths put back
    /// under its prefix too (see [`Route::set_cookie_back`]).
    pub fn with_cookie_paths(self) -> Result<Route, String> {
        if self.rewrite.is_none() {
            return Err(
                "cookie_paths puts cookie paths back from under rewrite=: it needs rewrite=".into(),
            );
        }
        Ok(Route {
            cookie_paths: true,
            ..self
        })
    }

    /// Whether the backends' cookie paths are put back under the route's
    /// prefix (`cookie_paths`).
    pub fn rewrites_cookie_paths(&self) -> bool {
        self.cookie_paths
    }

    /// This route, its requests also limited to `rate` (with `burst`
    /// past it; none given: a second's worth, as `rate_limit_burst`) in
    /// buckets of its own: nginx's `limit_req` in a `location`, in front
    /// of the same backends as the rest of the site. Not on a route that
    /// answers before any limit is counted (a redirect, a `return`: as
    /// nginx's `return`, which comes before `limit_req`), nor on an
    /// `internal` one, which clients never reach.
    pub fn with_rate_limit(self, rate: Rate, burst: Option<u32>) -> Result<Route, String> {
        if self.answer.is_some() {
            return Err(
                "rate_limit=: a redirect or a `return` is answered before any rate limit is \
                 counted; a route to a pool or to files takes one"
                    .into(),
            );
        }
        if self.is_internal() {
            return Err(
                "rate_limit=: an internal route is reached by a backend's X-Accel-Redirect \
                 alone, counted by the route the client asked for"
                    .into(),
            );
        }
        Ok(Route {
            rate_limit: Some((rate, burst.unwrap_or(rate.one_second()))),
            ..self
        })
    }

    /// With `rate_limit=`: the route's rate and burst.
    pub fn rate_limit(&self) -> Option<(Rate, u32)> {
        self.rate_limit
    }

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

    /// With `rewrite=`: what replaces the matched prefix.
    pub fn rewrite(&self) -> Option<&str> {
        self.rewrite.as_deref()
    }

    /// The route for `spec` that answers `status` itself, with `text`
    /// as the body if given: an endpoint for a load balancer's health
    /// checks (`return 200 ok`), a path no backend should see (`return
    /// 404`), a site taken down (`return 503 back soon`).
    pub fn returning(spec: &str, status: u16, text: Option<&str>) -> Result<Route, String> {
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
        if let Some(text) = text {
            if text.len() > MAX_RETURN_TEXT || text.chars().any(char::is_control) {
                return Err(format!(
                    "return {status}: the text is one line of at most {MAX_RETURN_TEXT} bytes, \
                     with no control character (a tab included)"
                ));
            }
        }
        // A 2xx has no page of the proxy's own (nor the `Allow` of its
        // answer to an OPTIONS): its status line, as text.
        let text = text.map(Box::from).or_else(|| {
            let reason = crate::http::head::reason_phrase(status);
            (status < 300).then(|| format!("{status} {reason}\n").into())
        });
        let (host, path) = parse_spec(spec)?;
        Ok(Route {
            host,
            path,
            pool: 0,
            rewrite: None,
            cookie_paths: false,
            answer: Some(Answer::Return(Return { status, text })),
            condition: None,
            files: None,
            rate_limit: None,
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

    /// Whether the route answers itself (a redirect, a `return`, files
    /// without `fallback=`), sending to no pool.
    pub fn answers_itself(&self) -> bool {
        self.answer.is_some() || self.files.as_ref().is_some_and(|f| !f.fallback)
    }

    /// The route, taking only the requests that meet `condition`.
    pub fn on_condition(self, condition: Condition) -> Route {
        Route {
            condition: Some(condition),
            ..self
        }
    }

    /// Its `if` condition, if any.
    pub fn condition(&self) -> Option<&Condition> {
        self.condition.as_ref()
    }

    /// Whether a request for `host` (as [`host_of`] gives it) and `path`
    /// (as [`routing_path`] gives it, without the query) comes here; to
    /// a route with a condition, only one that meets it (see [`Lookup`]).
    fn matches(&self, host: Option<&str>, path: &str, lookup: Lookup<'_>) -> bool {
        let condition_met = || (self.condition.as_ref()).is_none_or(|c| c.met(lookup));
        self.host.matches(host) && path_is_under(path, &self.path) && condition_met()
    }

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
        for span in set_cookie_paths(field) {
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

    /// `target` with the matched prefix of its path (as matched)
    /// replaced by `with`, its query as it came; `None` for a target
    /// that is no path.
    fn with_prefix_replaced(&self, with: &str, target: &str) -> Option<String> {
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

/// The host and path of a `route.` key's part after the dot.
fn parse_spec(spec: &str) -> Result<(HostPattern, Box<str>), String> {
    let (host, path) = spec.split_at(spec.find('/').unwrap_or(spec.len()));
    let host = parse_host(host)?;
    let path = match path {
        "" => "/",
        path => path,
    };
    if path.contains(['?', '#', '%', '*']) || path.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(format!(
            "the path `{path}` may hold no `?`, `#`, `%`, `*`, space or non-ASCII \
             character: it is a prefix of paths, matched as decoded"
        ));
    }
    // A request under it holds the `;` too, which backends that drop `;`
    // parameters read without: it is refused as ambiguous, never matched.
    if path.contains(';') {
        return Err(format!(
            "the path `{path}` may hold no `;`: some backends read a path without its `;` \
             parameters, so requests with one are refused 400, never matched"
        ));
    }
    if is_ambiguous(path) {
        return Err(format!(
            "the path `{path}` has a `.` or `..` segment or a `\\`: requests with those are \
             refused, never matched"
        ));
    }
    if routing_path(path) != path {
        return Err(format!(
            "the path `{path}` is not as requests are matched: without `//` (write `{}`)",
            routing_path(path)
        ));
    }
    Ok((host, path.into()))
}

impl fmt::Display for Route {
    /// As a `route.` key writes it, after the dot.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.host)?;
        // `shop.example` rather than `shop.example/`.
        if &*self.path != "/" || self.host == HostPattern::Any {
            f.write_str(&self.path)?;
        }
        match &self.condition {
            Some(condition) => write!(f, " if {condition}"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for HostPattern {
    /// As written: nothing for any host.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Any => Ok(()),
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Suffix(suffix) => write!(f, "*{suffix}"),
        }
    }
}

/// A route's host as written: empty (any host), a name or address, or
/// `*.` and a name; lower-cased.
pub(crate) fn parse_host(host: &str) -> Result<HostPattern, String> {
    if host.is_empty() {
        return Ok(HostPattern::Any);
    }
    let (wildcard, name) = match host.strip_prefix("*.") {
        Some(name) => (true, name),
        None => (false, host),
    };
    let valid = !name.is_empty()
        && name.len() <= 253
        && (name.bytes()).all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && !name.starts_with('.')
        && !name.contains("..");
    let ipv6 = !wildcard && canonical_ipv6(name).is_some();
    if !valid && !ipv6 {
        return Err(format!(
            "`{host}` is no host: a name (`example.com`), `*.` and a name \
             (`*.example.com`, its subdomains), or nothing before the path (any host); \
             without a port"
        ));
    }
    let mut lower = String::with_capacity(name.len() + 1);
    if wildcard {
        lower.push('.');
    }
    lower.push_str(&host_of(name));
    Ok(match wildcard {
        true => HostPattern::Suffix(lower.into()),
        false => HostPattern::Exact(lower.into()),
    })
}

impl Routes {
    /// Any order: they are sorted by specificity. Two routes for one host
    /// and path are refused by the configuration, where it can say where.
    pub fn new(mut routes: Vec<Route>) -> Routes {
        // Stable: routes with conditions for one host and path are tried
        // in the order written, and before the one without.
        routes.sort_by(|a, b| {
            (b.host.rank().cmp(&a.host.rank()))
                .then(b.path.len().cmp(&a.path.len()))
                .then(b.condition.is_some().cmp(&a.condition.is_some()))
        });
        let by_host = routes.iter().any(|r| r.host != HostPattern::Any);
        let accel = routes.iter().any(Route::is_internal);
        Routes {
            routes,
            by_host,
            accel,
        }
    }

    /// Whether an `internal` `files` route is there for a backend's
    /// `X-Accel-Redirect` to name a file of.
    pub fn take_accel_redirects(&self) -> bool {
        self.accel
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Whether some route is for some host alone.
    pub fn by_host(&self) -> bool {
        self.by_host
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// The route that serves a request for `authority` (its Host, or its
    /// absolute-form target's) and `target` (its path and query), as an
    /// index for [`Routes::get`]; `None`: `targets` does. A target that
    /// is no path (`*`, OPTIONS of the whole server) goes by its host.
    /// With routes set, a path backends may read otherwise than it is
    /// matched (see [`is_ambiguous`]) is refused. Routes with an `if`
    /// condition take no such request (see [`Routes::route_asked`]).
    pub fn route(&self, authority: Option<&str>, target: &str) -> Result<Option<usize>, Ambiguous> {
        self.route_asked(authority, target, Lookup::Bare)
    }

    /// [`Routes::route`] for a request: routes with an `if` condition
    /// take it as `lookup` meets theirs.
    pub fn route_asked(
        &self,
        authority: Option<&str>,
        target: &str,
        lookup: Lookup<'_>,
    ) -> Result<Option<usize>, Ambiguous> {
        if self.routes.is_empty() {
            return Ok(None);
        }
        let path = match target.starts_with('/') {
            true => &target[..target.find('?').unwrap_or(target.len())],
            false => "/",
        };
        let Some(read) = unambiguous_reading(path) else {
            return Err(Ambiguous);
        };
        let host = authority.filter(|_| self.by_host).map(host_of);
        let host = host.as_deref();
        let find = |path: &str| (self.routes.iter()).position(|r| r.matches(host, path, lookup));
        let route = find(&read);
        // Java servers drop `;` parameters from segments (`/admin;x/`),
        // and many decode `%2F`: where that would be another route's
        // path, it is no path to route.
        match other_reading(path) {
            Some(other) if find(&other) != route => Err(Ambiguous),
            _ => Ok(route),
        }
    }

    pub fn get(&self, index: usize) -> Option<&Route> {
        self.routes.get(index)
    }
}

/// A request's host as routes compare it: lower case, without port or
/// trailing dot.
pub(crate) fn host_of(authority: &str) -> String {
    let mut host = String::with_capacity(authority.len());
    push_host_name(&mut host, authority);
    // `[0::1]` and `[::1]` are one address.
    canonical_ipv6(&host).unwrap_or(host)
}

/// `[address]` in its one spelling (RFC 5952), for a bracketed IPv6
/// address.
fn canonical_ipv6(host: &str) -> Option<String> {
    let inner = host.strip_prefix('[')?.strip_suffix(']')?;
    let address: std::net::Ipv6Addr = inner.parse().ok()?;
    Some(format!("[{address}]"))
}

/// Whether `path` is `prefix`, or below it by whole segments.
fn path_is_under(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// A path as routes match it (see the module's documentation): encoded
/// unreserved characters decoded (the cache key's spelling, and `.`),
/// runs of `/` merged. Paths with dot-segments are refused before (see
/// [`is_ambiguous`]).
pub fn routing_path(path: &str) -> Cow<'_, str> {
    if !path.contains('%') && !path.contains("//") {
        return Cow::Borrowed(path);
    }
    let mut decoded = String::with_capacity(path.len());
    push_path(&mut decoded, path);
    // `.` is unreserved too (RFC 3986 §2.3): `/%2Egit/` is `/.git/` to a
    // backend, and to a route for it. The cache key keeps it escaped (see
    // `push_path`); here no dot segment can come of it, such paths being
    // refused first.
    if decoded.contains("%2E") {
        decoded = decoded.replace("%2E", ".");
    }
    let mut merged = String::with_capacity(decoded.len());
    for c in decoded.chars() {
        if !(c == '/' && merged.ends_with('/')) {
            merged.push(c);
        }
    }
    Cow::Owned(merged)
}

/// Whether servers decode the escape of `byte` before they read a path
/// (nginx does, to match its locations), though RFC 3986 does not make
/// `/%40admin/` `/@admin/`: `/`, and every other character a route's
/// path may hold (see `parse_spec`), which [`other_reading`] decodes.
fn decoded_by_servers(byte: u8) -> bool {
    byte.is_ascii_graphic() && !b"%?#*;".contains(&byte)
}

/// `path` as servers that drop `;` parameters from segments and decode
/// `%2F` and the other characters a route may name read it (see
/// [`decoded_by_servers`]), matched as [`routing_path`] matches; `None`
/// when it has none of these.
pub fn other_reading(path: &str) -> Option<String> {
    let read = routing_path(path);
    let escaped = |(i, _): (usize, _)| {
        let hex = read.get(i + 1..i + 3)?;
        let byte = u8::from_str_radix(hex, 16).ok()?;
        decoded_by_servers(byte).then_some((i, char::from(byte)))
    };
    let reserved: Vec<(usize, char)> = read.match_indices('%').filter_map(escaped).collect();
    if !path.contains(';') && reserved.is_empty() {
        return None;
    }
    let mut decoded = String::with_capacity(read.len());
    let mut from = 0;
    for (i, c) in reserved {
        decoded.push_str(&read[from..i]);
        decoded.push(c);
        from = i + 3;
    }
    decoded.push_str(&read[from..]);
    let mut other = String::with_capacity(decoded.len());
    for (i, segment) in decoded.split('/').enumerate() {
        if i > 0 && !other.ends_with('/') {
            other.push('/');
        }
        other.push_str(segment.split(';').next().unwrap_or_default());
    }
    Some(other)
}

/// Whether backends could read `path` (a request's, without its query)
/// in ways that differ on which route it is for: it holds a `.` or `..`
/// segment, however spelled (`%2E`, with `;` parameters as Tomcat reads
/// `..;`, between `%2F` separators a backend may decode), or a `\` (or
/// `%5C`), which IIS and browsers read as `/`; or an escape no client
/// sends but that some server decodes into one of those: a NUL (`%00`,
/// Jetty's `.%00`), IIS's `%u002e`, a double-encoded `.`, `/`, `\` or
/// `;` (`%252e`), an overlong UTF-8 lead byte (`%c0%ae`). Servers resolve
/// such segments before or after merging `//`, decoding or not: no
/// matching can be sure to read them as the backend will. Browsers never
/// send them. As sent, and as routes read it (see [`routing_path`]):
/// `%25%32%65` is `%2e` to them, and `.` to a backend that decodes twice.
pub fn is_ambiguous(path: &str) -> bool {
    unambiguous_reading(path).is_none()
}

/// `path` as routes read it ([`routing_path`]), or `None` when backends
/// could read it otherwise ([`is_ambiguous`]): one decoding for both.
pub fn unambiguous_reading(path: &str) -> Option<Cow<'_, str>> {
    if ambiguous_as_spelled(path) {
        return None;
    }
    let read = routing_path(path);
    match &read {
        Cow::Owned(decoded) if ambiguous_as_spelled(decoded) => None,
        _ => Some(read),
    }
}

fn ambiguous_as_spelled(path: &str) -> bool {
    if path.contains('\\') {
        return true;
    }
    // The common case, a path with no escape, costs no allocation.
    if !path.contains('%') {
        return has_dot_segment(path.as_bytes());
    }
    let lower = path.to_ascii_lowercase();
    let smuggled = [
        "%00", "%u", "%252e", "%252f", "%255c", "%253b", "%c0", "%c1",
    ];
    if smuggled.iter().any(|s| lower.contains(s)) {
        return true;
    }
    // Decoded as liberally as any backend decodes it.
    let mut liberal = Vec::with_capacity(path.len());
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => Some([hi.to_ascii_uppercase(), lo.to_ascii_uppercase()]),
            _ => None,
        };
        match (bytes[i], escaped) {
            (b'\\', _) | (_, Some([b'5', b'C'])) => return true,
            (_, Some([b'2', b'E'])) => liberal.push(b'.'),
            (_, Some([b'2', b'F'])) => liberal.push(b'/'),
            (_, Some([b'3', b'B'])) => liberal.push(b';'),
            (b, _) => {
                liberal.push(b);
                i += 1;
                continue;
            }
        }
        i += 3;
    }
    has_dot_segment(&liberal)
}

/// Whether a segment of `path` is `.` or `..`, `;` parameters aside.
fn has_dot_segment(path: &[u8]) -> bool {
    path.split(|&b| b == b'/').any(|segment| {
        let name = segment.split(|&b| b == b';').next().unwrap_or_default();
        name == b"." || name == b".."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(specs: &[(&str, usize)]) -> Routes {
        Routes::new(
            (specs.iter())
                .map(|&(spec, pool)| Route::parse(spec, pool, None).unwrap())
                .collect(),
        )
    }

    fn pool(routes: &Routes, host: Option<&str>, target: &str) -> usize {
        let route = routes
            .route(host, target)
            .unwrap()
            .and_then(|i| routes.get(i));
        route.map_or(0, |r| r.pool)
    }

    #[test]
    fn paths_match_whole_segments() {
        let r = routes(&[("/api", 1), ("/static/", 2)]);
        for (target, want) in [
            ("/api", 1),
            ("/api/", 1),
            ("/api/v1?x=1", 1),
            ("/api?x", 1),
            ("/apiary", 0),
            ("/static/a.css", 2),
            ("/static/", 2),
            ("/static", 0),
            ("/", 0),
            ("*", 0),
        ] {
            assert_eq!(pool(&r, None, target), want, "{target}");
        }
    }

    #[test]
    fn the_longest_path_wins_whatever_the_order_written() {
        for specs in [[("/a/", 1), ("/a/b/", 2)], [("/a/b/", 2), ("/a/", 1)]] {
            let r = routes(&specs);
            assert_eq!(pool(&r, None, "/a/b/c"), 2);
            assert_eq!(pool(&r, None, "/a/c"), 1);
        }
    }

    #[test]
    fn a_route_with_a_condition_goes_before_the_one_without_at_its_place() {
        let on = |spec: &str, pool: usize, condition: &str| {
            let route = Route::parse(spec, pool, None).unwrap();
            route.on_condition(Condition::parse(condition).unwrap())
        };
        let r = Routes::new(vec![
            Route::parse("/api/", 1, None).unwrap(),
            on("/api/", 2, "cookie canary 1"),
            on("/api/", 3, "header x-canary"),
            on("/", 4, "header upgrade websocket"),
            Route::parse("/api/v1/", 5, None).unwrap(),
        ]);
        let mut headers = crate::http::Headers::new();
        let pool = |headers: &crate::http::Headers, target: &str| {
            let asked = Asked {
                method: "GET",
                target: "/",
                headers,
                client: "127.0.0.1".parse().unwrap(),
            };
            let index = r
                .route_asked(None, target, Lookup::Request(&asked))
                .unwrap();
            index.and_then(|i| r.get(i)).map_or(0, |route| route.pool)
        };
        assert_eq!(pool(&headers, "/api/x"), 1);
        headers.push("Upgrade", "websocket");
        // The longest path first: `/api/` is more specific than `/`.
        assert_eq!(pool(&headers, "/api/x"), 1);
        assert_eq!(pool(&headers, "/chat"), 4);
        headers.push("Cookie", "canary=1");
        headers.push("X-Canary", "yes");
        // Of two conditions met at one place, the first written.
        assert_eq!(pool(&headers, "/api/x"), 2);
        assert_eq!(pool(&headers, "/api/v1/x"), 5);
        // Without the request's fields, no condition is met.
        assert_eq!(r.route(None, "/chat"), Ok(None));
        assert_eq!(
            r.get(r.route(None, "/api/x").unwrap().unwrap())
                .unwrap()
                .pool,
            1
        );
        assert_eq!(
            on("/api/", 2, "cookie  canary 1").to_string(),
            "/api/ if cookie canary 1"
        );
    }

    #[test]
    fn a_negated_route_takes_what_its_condition_leaves_and_no_bare_lookup() {
        let on = |spec: &str, pool: usize, condition: &str| {
            let route = Route::parse(spec, pool, None).unwrap();
            route.on_condition(Condition::parse(condition).unwrap())
        };
        let r = Routes::new(vec![
            Route::parse("/", 1, None).unwrap(),
            on("/", 2, "not cookie session"),
            on("/admin/", 3, "not client 10.0.0.0/8"),
            on("/api/", 4, "header upgrade websocket and not cookie beta"),
            on("/w/", 5, "not method GET,HEAD"),
        ]);
        let pool = |lookup: Lookup<'_>, target: &str| {
            let index = r.route_asked(None, target, lookup).unwrap();
            index.and_then(|i| r.get(i)).map_or(0, |route| route.pool)
        };
        fn ask<'a>(method: &'a str, headers: &'a Headers, client: &str) -> Asked<'a> {
            Asked {
                method,
                target: "/",
                headers,
                client: client.parse().unwrap(),
            }
        }
        use crate::http::Headers;
        let headers = Headers::new();
        let anonymous = ask("GET", &headers, "192.0.2.1");
        assert_eq!(pool(Lookup::Request(&anonymous), "/page"), 2);
        assert_eq!(pool(Lookup::Request(&anonymous), "/admin/x"), 3);
        let office = ask("GET", &headers, "10.1.1.1");
        // Past the routes not met, to the shorter path's.
        assert_eq!(pool(Lookup::Request(&office), "/admin/x"), 2);
        assert_eq!(pool(Lookup::Request(&anonymous), "/w/x"), 2);
        let post = ask("POST", &headers, "192.0.2.1");
        assert_eq!(pool(Lookup::Request(&post), "/w/x"), 5);
        let mut upgrade = Headers::new();
        upgrade.push("Upgrade", "websocket");
        let socket = ask("GET", &upgrade, "192.0.2.1");
        assert_eq!(pool(Lookup::Request(&socket), "/api/chat"), 4);
        upgrade.push("Cookie", "session=1; beta=1");
        let signed_in = ask("GET", &upgrade, "192.0.2.1");
        assert_eq!(pool(Lookup::Request(&signed_in), "/page"), 1);
        assert_eq!(pool(Lookup::Request(&signed_in), "/api/chat"), 1);
        // No request, so none lacks a cookie: the route without a
        // condition, or `targets`.
        assert_eq!(pool(Lookup::Bare, "/page"), 1);
        assert_eq!(pool(Lookup::Bare, "/admin/x"), 1);
        assert_eq!(pool(Lookup::Bare, "/w/x"), 1);
        // A stored GET came through no route that reads past the key.
        assert_eq!(pool(Lookup::StoredGet, "/page"), 1);
        assert_eq!(pool(Lookup::StoredGet, "/w/x"), 1);
        assert_eq!(
            on("/", 2, "not  cookie session").to_string(),
            "/ if not cookie session"
        );
    }

    #[test]
    fn the_most_specific_host_wins_before_the_longest_path() {
        let r = routes(&[
            ("/api/", 1),
            ("shop.example", 2),
            ("*.example", 3),
            ("*.eu.example", 4),
            ("shop.example/admin/", 5),
            ("[::1]", 6),
        ]);
        for (host, target, want) in [
            (Some("shop.example"), "/api/x", 2),
            (Some("Shop.Example.:8080"), "/api/x", 2),
            (Some("shop.example"), "/admin/x", 5),
            (Some("blog.example"), "/api/x", 3),
            (Some("a.eu.example"), "/", 4),
            (Some("a.b.eu.example"), "/", 4),
            (Some("example"), "/api/x", 1),
            (Some("eu.example"), "/", 3),
            (None, "/api/x", 1),
            (None, "/", 0),
            (Some("other"), "/", 0),
            (Some("shop.example"), "*", 2),
            (Some("[0:0::1]:8080"), "/", 6),
            (Some("[::2]"), "/", 0),
            (None, "*", 0),
        ] {
            assert_eq!(pool(&r, host, target), want, "{host:?} {target}");
        }
    }

    #[test]
    fn no_spelling_of_a_path_slips_past_its_route() {
        let r = routes(&[("/admin/", 1)]);
        for target in [
            "/%61dmin/x",
            "/%61%64min/x",
            "//admin/x",
            "/admin//x",
            "/admin/a.b",
        ] {
            assert_eq!(pool(&r, None, target), 1, "{target}");
        }
        for target in ["/Admin/", "/x/admin/", "/x;jsessionid=1/admin"] {
            assert_eq!(pool(&r, None, target), 0, "{target}");
        }
        // An encoded `/`, or `;` parameters, where no server would read
        // another route's path (GitLab's `group%2Fproject`, a session id).
        let api = routes(&[("/api/", 1), ("/admin/", 2)]);
        for target in ["/api/v4/projects/group%2Fproject", "/api/x;jsessionid=1"] {
            assert_eq!(pool(&api, None, target), 1, "{target}");
        }
        // What backends resolve in different ways is refused outright.
        for target in [
            "/x/../admin/y",
            "/./admin/",
            "/admin//../secret",
            "/x/%2e%2e/admin/",
            "/x/%2E./admin/",
            "/x/..%2Fadmin/",
            "/x/..;/admin/",
            "/x/.;a=b/admin/",
            "/x/..\\admin/",
            "/x\\admin/",
            "/x%5Cadmin/",
            "/x/..",
            "/x/.?q",
            // Where a server that decodes `%2F` or drops `;` parameters
            // reads the path of another route.
            "/admin%2Fx",
            "/%2fadmin/x",
            "/admin;x/secret",
            "/admin;/secret",
            "/admin;v=2/x",
            // Escapes that some server decodes into a dot or separator.
            "/.%00/admin/",
            "/%u002e%u002e/admin/",
            "/%252e%252e/admin/",
            // The same, its escapes of `2` and `e` spelled escaped or
            // split, which routes decode before matching.
            "/x/%25%32%65%25%32%65/admin/",
            "/x/%%32e%%32e/admin/",
            "/x/%25%32e%25%32e/admin/",
            "/x/%25%32%46admin/",
            "/%c0%ae%c0%ae/admin/",
            "/x/..%3B/admin/",
        ] {
            assert_eq!(r.route(None, target), Err(Ambiguous), "{target}");
        }
        // Dots within a name are no segments; and no routes, no refusal.
        for target in ["/a.b/c..d/.e/f./...", "/x/..a;/", "/%2e%2e%2e/"] {
            assert!(r.route(None, target).is_ok(), "{target}");
        }
        assert_eq!(Routes::default().route(None, "/x/../admin/"), Ok(None));
    }

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

    #[test]
    fn a_return_route_answers_a_status_and_its_text_alone() {
        let route = Route::returning("/healthz", 200, Some("ok")).unwrap();
        let answer = route.returned().unwrap();
        assert_eq!((answer.status, answer.text.as_deref()), (200, Some("ok")));
        assert!(route.answers_itself() && route.redirect().is_none());
        assert_eq!(route.redirect_for("/healthz"), None);
        assert_eq!(route.to_string(), "/healthz");
        let bare = Route::returning("example.com/.git/", 404, None).unwrap();
        assert_eq!(bare.returned().unwrap().text, None);
        let bare = Route::returning("/up", 200, None).unwrap();
        assert_eq!(bare.returned().unwrap().text.as_deref(), Some("200 OK\n"));
        for status in [401, 405, 407, 426] {
            let e = Route::returning("/x", status, None).unwrap_err();
            assert!(e.contains("which a route cannot give"), "{e}");
        }
        for status in [200, 203, 400, 403, 404, 410, 451, 503, 599] {
            assert!(Route::returning("/x", status, None).is_ok(), "{status}");
        }
        // No body, or a redirect's.
        for status in [100, 101, 199, 204, 205, 206, 301, 304, 308, 399, 600] {
            let e = Route::returning("/x", status, None).unwrap_err();
            assert!(
                e.contains("a route returns 200 to 203, or 400 to 599"),
                "{e}"
            );
        }
        for text in ["two\nlines", "\u{1b}[31m", &"x".repeat(MAX_RETURN_TEXT + 1)] {
            let e = Route::returning("/x", 200, Some(text)).unwrap_err();
            assert!(e.contains("one line of at most"), "{e}");
        }
        assert!(!Route::parse("/api/", 1, None).unwrap().answers_itself());
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

    #[test]
    fn bad_routes_are_refused_with_the_reason() {
        for (spec, rewrite, says) in [
            ("shop.example:8080/", None, "no host"),
            ("*/api", None, "no host"),
            ("a..b", None, "no host"),
            ("[zz]", None, "no host"),
            ("/api?x", None, "may hold no"),
            ("/api/*", None, "may hold no"),
            ("/a%2Fb", None, "may hold no"),
            ("/a;b/", None, "may hold no `;`"),
            ("/a/../b", None, "a `.` or `..` segment"),
            ("/a\\b", None, "or a `\\`"),
            ("//a", None, "write `/a`"),
            ("/api/", Some("v2"), "starts with one `/`"),
            ("/api/", Some("/v2?x"), "starts with one `/`"),
            ("/api/", Some("//evil/"), "starts with one `/`"),
            ("/api/", Some("/v2/../x"), "no `.` or `..` segment"),
        ] {
            let e = Route::parse(spec, 1, rewrite).unwrap_err();
            assert!(e.contains(says), "{spec}: {e}");
        }
    }

    #[test]
    fn a_route_is_shown_as_written() {
        for spec in [
            "/",
            "/api/",
            "shop.example",
            "shop.example/a",
            "*.example/b/",
        ] {
            assert_eq!(Route::parse(spec, 1, None).unwrap().to_string(), spec);
        }
    }
}
