//! HTTP caching rules for a shared cache (RFC 9111): what may be stored,
//! for how long, how old a stored response is, and whether a stored
//! response may answer a given request. Pure functions of heads and times;
//! no storage, no sockets.
//!
//! - here: the settings, what may be stored and for how long, freshness
//!   and age, and what a request accepts of a stored response.
//! - `directives`: Cache-Control, and the fields that speak to this
//!   cache (RFC 9213's targeted fields, `Surrogate-Control`,
//!   `X-Accel-Expires`).
//! - `valid`: lifetimes by status (the `cache_valid` setting).
//! - `ignore`: response fields the cache does not read (the
//!   `cache_ignore_headers` setting).
//! - `bypass`: cookies that keep a request away from the cache (the
//!   `cache_bypass_cookies` setting).
//! - `cache_vary`: the cookies and fields every response is keyed on
//!   besides its own `Vary` (the `cache_vary` setting).
//! - `key`: cache keys and Vary.
//! - `params`: query parameters left out of the key (the
//!   `cache_key_ignore_params` setting).
//!   Both lists are `crate::patterns` lists (`utm_*, gclid`).
//! - `conditional`: conditional requests, and what a 304 (or a HEAD's
//!   200) refreshes.
//! - `tags`: `Surrogate-Key`, the tags a response is stored with for a
//!   purge by tag.
//! - `pattern`: `Purge-Regex`, the regular expression of a purge by
//!   pattern, matched against the path and query of a host's keys.
//!
//! Their public items are re-exported here: callers name every one
//! `policy::X`.

mod bypass;
mod cache_vary;
mod conditional;
mod directives;
mod ignore;
mod key;
pub(crate) use key::remove_dot_segments;
mod params;
mod pattern;
mod tags;
#[cfg(test)]
mod test_support;
mod valid;

pub use bypass::BypassCookies;
pub use cache_vary::CacheVary;
pub use conditional::{head_describes, not_modified, refresh_from_304, same_validator, validators};
pub use directives::{surrogate_capability, CacheControl, OwnFields, Targeting};
pub use ignore::IgnoredHeaders;
pub use key::{
    decode_percent, field_of, is_https_key, key_authority, keys_of_reference, prefix_keys_of_uri,
    primary_key, primary_keys_of_uri, push_path, respell_key, spells_a_varying_field_otherwise,
    split_key, variant_key, vary_names, PrefixKeys,
};
pub use params::IgnoredParams;
pub use pattern::{KeyPattern, PatternError, MAX_PATTERN_LEN, MAX_PATTERN_SIZE, PURGE_REGEX};
pub use tags::{Tags, TagsError, MAX_TAGS, MAX_TAG_LEN, SURROGATE_KEY};
pub use valid::CacheValid;

use crate::http::date::parse_http_date;
use crate::http::forward::FORWARDING_FIELDS;
use crate::http::{Headers, RequestHead, ResponseHead};
use directives::delta_seconds;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Knobs from the configuration that the rules depend on.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Caps every response's freshness (the original design's `ttl`).
    pub ttl: Duration,
    /// Cache responses that carry no freshness information at all, for `ttl`.
    pub cache_unlabeled: bool,
    /// How long an expired entry may still be served when the origin fails.
    pub stale_if_error: Duration,
    /// How long an expired entry may still be served while it is
    /// revalidated in the background.
    pub stale_while_revalidate: Duration,
    pub targeting: Targeting,
    pub cache_valid: Arc<CacheValid>,
    /// Response fields not read (see [`IgnoredHeaders::read`]); when it
    /// lists X-Accel-Expires or Surrogate-Control, `targeting` reads them
    /// no more ([`IgnoredHeaders::targeting`]).
    pub ignored: IgnoredHeaders,
    /// Statuses whose answers clients get as an error page instead
    /// (`intercept_errors`): stored, they would be served as they came.
    pub never_stored: Arc<[u16]>,
    /// The request fields the proxy writes anew for each request: those
    /// `request_header.*` sets from its variables, and `request_id_header`.
    /// Variants are keyed on the client's fields, not on what the backend
    /// was sent, so a response that varies on one of these is not stored.
    pub rendered_fields: Arc<[Box<str>]>,
    /// Request fields that authenticate a request besides `Authorization`
    /// (`auth_jwt_header`'s): a request with one is treated as one with
    /// `Authorization` (RFC 9111 §3.5), its token taken out of the
    /// cache's own requests.
    pub credential_fields: Arc<[Box<str>]>,
    /// A gzip-coded answer goes decoded to the clients that take no gzip
    /// (`gunzip`): stored once, it is right for every client.
    pub gunzip: bool,
    /// What every response is keyed on besides its `Vary` (`cache_vary`).
    pub vary: CacheVary,
}

impl Settings {
    /// Whether `request` is authenticated (see [`has_credentials`]), by
    /// one of [`Settings::credential_fields`] too.
    pub fn has_credentials(&self, request: &Headers) -> bool {
        has_credentials(request) || (self.credential_fields.iter()).any(|f| request.contains(f))
    }

    /// The request fields a response's variants are keyed on: those its
    /// `Vary` names ([`vary_names`]), or none when Vary is not read (one
    /// entry per URL, as nginx's `proxy_ignore_headers Vary`).
    pub fn vary_names(&self, response: &ResponseHead) -> Vec<String> {
        match self.ignored.ignores("vary") {
            true => Vec::new(),
            false => vary_names(response),
        }
    }

    /// The request fields a response's variants are keyed on
    /// ([`Settings::vary_names`]), and `accept-encoding` too when its body
    /// is in a content coding that `Vary` does not say it chose by: nginx
    /// gzips without `Vary` unless told `gzip_vary on`, and the
    /// compressed answer to one client that takes gzip, keyed by the URL
    /// alone, would go to every client, those that take no coding too.
    /// Keyed so, it goes to those that send the same `Accept-Encoding`.
    /// Not with `gunzip`, for a gzip-coded answer it decodes for them.
    /// With them, the cookies and fields `cache_vary` names.
    pub fn key_names(&self, response: &ResponseHead) -> Vec<String> {
        let mut names = self.vary_names(response);
        if !self.vary.is_empty() {
            names.extend(self.vary.names().iter().cloned());
            names.sort();
            names.dedup();
        }
        let by_coding = "accept-encoding";
        let decoded_for_others =
            self.gunzip && crate::gunzip::decodes(response.status, &response.headers);
        if crate::http::range::is_coded(&response.headers)
            && !decoded_for_others
            && !names.iter().any(|n| n == by_coding)
        {
            names.push(by_coding.to_string());
            names.sort();
        }
        names
    }
}

/// Statuses a cache may store without explicit freshness (RFC 9110
/// §15.1). 206 is left out: inverso does not combine partial content.
fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// The final statuses RFC 9110 §15 defines, whose caching rules inverso
/// applies: what `must-understand` asks of a cache (RFC 9111 §5.2.2.3).
fn understood(status: u16) -> bool {
    matches!(
        status,
        200..=206 | 300..=305 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 500..=505
    )
}

/// How long a stored response stays fresh and may serve as stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    pub fresh: Duration,
    /// Past freshness, how long it may still answer when the origin fails.
    pub stale_if_error: Duration,
}

/// Whether a final status is the URL's own answer: all but 206, 304 and
/// 412, which answer one request's range or conditions.
pub fn answers_the_url(status: u16) -> bool {
    status >= 200 && !matches!(status, 206 | 304 | 412)
}

/// The URL's answers (206 also needs range merging we do not do, and a
/// 304 has no body to store) but 600-999, which HTTP does not define (RFC
/// 9110 §15: treated as an error).
pub fn status_ever_stored(status: u16) -> bool {
    answers_the_url(status) && status < 600
}

/// Whether a response's `Vary` names what no key made from the client's
/// request tells apart: `*`, or a field the proxy writes itself (from the
/// client's address, from its Host as spelled), whose value in the
/// client's request, all a key can hold, is not what the backend answered.
pub fn varies_past_any_key(response: &Headers) -> bool {
    response
        .tokens("vary")
        .any(|v| v == "*" || FORWARDING_FIELDS.iter().any(|f| v.eq_ignore_ascii_case(f)))
}

/// Whether a request is authenticated (RFC 9111 §3.5): by `Authorization`,
/// or by a client certificate (`Client-Cert`, which the proxy writes for
/// a client that showed one on `tls_port`, and takes from no request).
pub fn has_credentials(request: &Headers) -> bool {
    request.contains("authorization") || request.contains("client-cert")
}

/// Decides whether a response to `request` may be stored (RFC 9111 §3),
/// and for how long it is fresh (§4.2.1). `response_time` is when it
/// arrived. `None`: do not store.
pub fn storable(
    request: &RequestHead,
    response: &ResponseHead,
    response_time: SystemTime,
    settings: &Settings,
) -> Option<Lifetime> {
    // `X-Accel-Redirect`: the backend names a file to send this client in
    // its answer's place (see `proxy::files`); its answer is for no one
    // else, whatever it says of caching.
    if request.method != "GET"
        || !status_ever_stored(response.status)
        || settings.never_stored.contains(&response.status)
        || response.headers.contains("x-accel-redirect")
    {
        return None;
    }
    let vary = settings.key_names(response);
    if !settings.rendered_fields.is_empty() {
        let rendered = |name: &String| {
            (settings.rendered_fields.iter()).any(|f| f.eq_ignore_ascii_case(field_of(name)))
        };
        if vary.iter().any(rendered) {
            return None;
        }
    }
    // `Accept_Language` beside `Accept-Language` (`underscores_in_headers`):
    // the backend may have read the one the variant key does not hold.
    if spells_a_varying_field_otherwise(&request.headers, &vary) {
        return None;
    }
    let response = &*settings.ignored.read(response);
    // Cache-Control not read: whatever it said (`private`, `no-cache`),
    // the response is stored only for a lifetime given to this cache.
    let cache_control_unread = settings.ignored.ignores("cache-control");
    let req_cc = CacheControl::parse(&request.headers);
    let cc = CacheControl::of_response(&response.headers, &settings.targeting);
    // `must-understand, no-store`: stored by a cache that knows the
    // status, by no other (the `no-store` is for caches that do not know
    // the directive).
    if cc.must_understand && !understood(response.status) {
        return None;
    }
    let no_store = cc.no_store && !cc.must_understand;
    if req_cc.no_store || no_store || cc.private {
        return None;
    }
    if varies_past_any_key(&response.headers) {
        return None;
    }
    // §3.5: a shared cache stores a response to an authenticated request
    // only when the response's Cache-Control says so explicitly (unread,
    // it says nothing, and nothing else permits it). A
    // lifetime given to this cache alone does not: an application may
    // give one to every page (a middleware's Surrogate-Control) and mark
    // a user's own `private` for browsers, which this cache then does not
    // read. Squid stores none while it reads Surrogate-Control. Nor, then,
    // do Cache-Control's `s-maxage` and `must-revalidate`: they permit it
    // for the revalidation they impose once stale, and with a field for
    // this cache read they are not; only its `public` still counts.
    if settings.has_credentials(&request.headers) && !shared_despite_credentials(&cc, response) {
        return None;
    }
    // Stricter than the RFC: a Set-Cookie meant for one user must not be
    // replayed to others unless the origin marks the response public.
    if response.headers.contains("set-cookie") && !cc.public {
        return None;
    }
    let explicit = explicit_freshness(&cc, response, response_time);
    let configured = match explicit {
        Some(_) => None,
        None => settings.cache_valid.lifetime(response.status),
    };
    // A response whose Cache-Control is unread may have said anything of
    // its freshness: nothing is guessed for it from Last-Modified.
    let guessed = || heuristic_freshness(response, response_time);
    let fresh = match explicit.or(configured) {
        Some(d) => d,
        None if !heuristically_cacheable(response.status) && !cc.public => return None,
        None => match (!cache_control_unread).then(guessed).flatten() {
            Some(d) => d,
            None if settings.cache_unlabeled => settings.ttl,
            None => Duration::ZERO,
        },
    };
    let fresh = if cc.no_cache {
        Duration::ZERO
    } else {
        fresh.min(settings.ttl)
    };
    // A response to a request with cookies that says nothing of caching
    // is not stored: an application that knows its users by a cookie has
    // not said that one user's page may go to another, neither fresh
    // (guessed from Last-Modified) nor after a revalidation (its validator
    // may name the resource, not this user's rendering of it, and the
    // origin then confirms one user's page for the next). nginx stores
    // nothing without an explicit lifetime; Varnish passes every request
    // with cookies.
    // The same for a lifetime of zero (`max-age=0`, `Expires: 0`, and one
    // for this cache alone: `Surrogate-Control: max-age=0`, "not at the
    // edge"): stored, it would answer the next user once revalidated with
    // this one's validator, or stale. The operator's word (`cache_valid`,
    // `cache_unlabeled`) on a response that says nothing lifts this as the
    // origin's does, but only with a lifetime to give: not a zero one, nor
    // one the response's `no-cache` makes zero.
    let operators_lifetime = explicit.is_none()
        && (configured.is_some() || settings.cache_unlabeled)
        && !fresh.is_zero();
    if explicit.is_none_or(|d| d.is_zero())
        && !cc.public
        && cc.s_maxage.is_none()
        && !operators_lifetime
        && request.headers.contains("cookie")
    {
        return None;
    }
    // Nothing to gain from an entry that is born stale and cannot be
    // revalidated: it would never be served. Nor, with Cache-Control
    // unread, from one revalidated on every use: it may have said
    // `private`, and the origin confirm one user's page for the next with
    // that user's validator.
    if fresh.is_zero() && (!has_validator(response) || cache_control_unread) {
        return None;
    }
    Some(Lifetime {
        fresh,
        stale_if_error: stale_window(
            fresh,
            &cc,
            response,
            settings.stale_if_error,
            settings.stale_while_revalidate,
        ),
    })
}

/// Whether `cc` (a response's directives, [`CacheControl::of_response`])
/// lets a shared cache store the `response` to a request with credentials
/// (RFC 9111 §3.5): see [`storable`].
fn shared_despite_credentials(cc: &CacheControl, response: &ResponseHead) -> bool {
    if cc.targeted {
        CacheControl::parse(&response.headers).public
    } else {
        cc.public || cc.s_maxage.is_some() || cc.must_revalidate
    }
}

/// Whether `answer`, a 304 (or a 200 to a `HEAD`) to a request with
/// credentials, says itself that a shared cache may keep it (RFC 9111
/// §3.5), as the 200 it stands for would have had to: its own
/// `Cache-Control`, not the stored entry's it refreshes. A server sends a
/// 304 with the `Cache-Control` its 200 would have carried (RFC 9110
/// §15.4.5); one without says nothing that lets the fields it brings for
/// that client (the user it answered) go into the entry served to
/// everyone. A request without credentials needs no such word.
pub fn answer_shared_despite_credentials(
    request: &Headers,
    answer: &ResponseHead,
    settings: &Settings,
) -> bool {
    if !settings.has_credentials(request) {
        return true;
    }
    let answer = &*settings.ignored.read(answer);
    let cc = CacheControl::of_response(&answer.headers, &settings.targeting);
    shared_despite_credentials(&cc, answer)
}

/// How long past its freshness a stored response may still answer when
/// the origin fails. `fresh` is its lifetime as stored, `cc` its
/// directives ([`CacheControl::of_response`]), and `configured` and
/// `configured_swr` the windows for a response that says nothing of them
/// (the `stale_if_error` and `stale_while_revalidate` settings). Every
/// stored entry's window comes from here: a new response's, and a snapshot
/// record's, which must not keep one today's rules would not give it.
pub fn stale_window(
    fresh: Duration,
    cc: &CacheControl,
    response: &ResponseHead,
    configured: Duration,
    configured_swr: Duration,
) -> Duration {
    // §4.2.4 / §5.2.2.2: must-revalidate (and s-maxage, which implies
    // proxy-revalidate, and no-cache) forbid serving stale "in all
    // circumstances", a stale-if-error window beside them too: of
    // conflicting directives the most restrictive holds (§4.2.1).
    let on_error = match cc.stale_if_error {
        _ if cc.forbids_stale() => Duration::ZERO,
        Some(s) => Duration::from_secs(s),
        // Nor one that said nothing of freshness, unless it grants the
        // window itself (see [`must_revalidate`]).
        None if must_revalidate(fresh, cc, response) => Duration::ZERO,
        None => configured,
    };
    // Within a stale-while-revalidate window the entry answers whatever the
    // origin does; a failing origin is no reason to stop.
    on_error.max(stale_while_revalidate(fresh, cc, response, configured_swr))
}

/// Whether a stored response may never be served stale without the
/// origin's word first: its directives forbid it
/// ([`CacheControl::forbids_stale`]), or it was never fresh and the origin
/// said nothing about freshness at all. Such is an application's page with
/// only an `ETag` (Express's default): stored so that a 304 can stand for
/// its body, it may be one user's own page, which `max-stale` or an
/// outage must not hand to others. (An explicit `max-age=0` is the
/// origin's word on caching, and stale-if-error applies to it as usual.)
pub fn must_revalidate(fresh: Duration, cc: &CacheControl, response: &ResponseHead) -> bool {
    let only_revalidated = fresh.is_zero()
        && cc.s_maxage.or(cc.max_age).or(cc.fresh_until).is_none()
        && (cc.targeted || !response.headers.contains("expires"));
    cc.forbids_stale() || only_revalidated
}

/// How much longer `response`, asked at `request_time` and arrived at
/// `response_time`, is fresh by what it says of itself: its explicit
/// lifetime less its age on arrival (§4.2, no heuristic); `None` when it
/// says nothing of its lifetime (no-cache and no-store are about
/// storing, and say none). For a client that keeps what it fetched
/// (the keys `auth_jwt_key_request` fetches), rather than this cache.
pub fn freshness_left(
    response: &ResponseHead,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Option<Duration> {
    let cc = CacheControl::parse(&response.headers);
    let lifetime = explicit_freshness(&cc, response, response_time)?;
    // In whole seconds, as the fields count: the milliseconds the request
    // took do not make `max-age=3600` good for 3599 s.
    let age = initial_age(response, request_time, response_time).as_secs();
    Some(lifetime.saturating_sub(Duration::from_secs(age)))
}

/// s-maxage, then max-age, then Expires minus Date (§4.2.1).
fn explicit_freshness(
    cc: &CacheControl,
    response: &ResponseHead,
    response_time: SystemTime,
) -> Option<Duration> {
    if let Some(s) = cc.s_maxage.or(cc.max_age) {
        return Some(Duration::from_secs(s));
    }
    let date = || date_of(response).unwrap_or(response_time);
    if let Some(until) = cc.fresh_until {
        // At most the end of year 9999: no overflow.
        let until = UNIX_EPOCH + Duration::from_secs(until);
        return Some(until.duration_since(date()).unwrap_or(Duration::ZERO));
    }
    // RFC 9213 §2.2: a field that targets this cache sets Expires aside
    // with Cache-Control.
    if cc.targeted {
        return None;
    }
    let expires = response.headers.get_str("expires")?;
    // An invalid Expires (e.g. "0") means "already expired" (§5.3).
    let Some(expires) = parse_http_date(expires) else {
        return Some(Duration::ZERO);
    };
    Some(expires.duration_since(date()).unwrap_or(Duration::ZERO))
}

/// §4.2.2: 10% of the time since Last-Modified.
fn heuristic_freshness(response: &ResponseHead, response_time: SystemTime) -> Option<Duration> {
    let last_modified = parse_http_date(response.headers.get_str("last-modified")?)?;
    let date = date_of(response).unwrap_or(response_time);
    Some(date.duration_since(last_modified).ok()? / 10)
}

fn date_of(response: &ResponseHead) -> Option<SystemTime> {
    parse_http_date(response.headers.get_str("date")?)
}

pub fn has_validator(response: &ResponseHead) -> bool {
    response.headers.contains("etag") || response.headers.contains("last-modified")
}

/// §4.2.3: how old the response already was when it arrived
/// (`corrected_initial_age`), from its Date and Age fields and the time the
/// request took.
///
/// A Date names a whole second: a response dated `12:00:00` was made at
/// some time up to `12:00:00.999`. It is taken as made at the end of that
/// second; otherwise a `max-age=1` response (or one dated by the proxy as
/// it arrived) would be up to a second old on arrival, and stale at once.
fn initial_age(
    response: &ResponseHead,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    let apparent = date_of(response)
        .and_then(|date| response_time.duration_since(date).ok())
        .map_or(Duration::ZERO, |d| d.saturating_sub(Duration::from_secs(1)));
    let age_value = response
        .headers
        .get_str("age")
        .and_then(age_value)
        .map_or(Duration::ZERO, Duration::from_secs);
    let delay = response_time
        .duration_since(request_time)
        .unwrap_or(Duration::ZERO);
    apparent.max(age_value.saturating_add(delay))
}

/// The seconds an `Age` field says: its first list member (RFC 9111 §5.1:
/// `7200, 0` is 7200), read as far as its digits go, so that `7200.0` or
/// `7200;x=1` count as 7200 (as Squid, Varnish, Fastly, Traffic Server and
/// Firefox read them) rather than as nothing, which would keep a response
/// fresh that its sender called old. A member that does not start with a
/// digit (`abc`, `-5`) is ignored, as §5.1 says of an invalid value.
fn age_value(field: &str) -> Option<u64> {
    let first = field.split(',').next().unwrap_or("").trim();
    let digits = first.bytes().take_while(u8::is_ascii_digit).count();
    delta_seconds(&first[..digits])
}

/// When the response was generated, as far as its Date and Age fields
/// tell: its arrival minus its initial age, never before the Unix epoch
/// whatever a backend claims.
pub fn birth_time(
    response: &ResponseHead,
    request_time: SystemTime,
    response_time: SystemTime,
) -> SystemTime {
    response_time
        .checked_sub(initial_age(response, request_time, response_time))
        .filter(|birth| *birth >= UNIX_EPOCH)
        .unwrap_or(UNIX_EPOCH)
}

/// How long past its freshness a response with these directives may be
/// served while it is revalidated in the background (RFC 5861 §3): what
/// it says, else `configured` (the `stale_while_revalidate` setting, as
/// nginx's `proxy_cache_use_stale updating`). Zero when the response
/// forbids serving it stale: must-revalidate, and s-maxage, which implies
/// proxy-revalidate (§5.2.2.2), or no-cache; and, unless it grants the
/// window itself, when it said nothing of freshness (see
/// [`must_revalidate`]) or was fresh for no time at all (`max-age=0`, an
/// `Expires` already past: the origin asks to be asked on every use, and
/// nginx does not even store such a response).
pub fn stale_while_revalidate(
    fresh: Duration,
    cc: &CacheControl,
    response: &ResponseHead,
    configured: Duration,
) -> Duration {
    match cc.stale_while_revalidate {
        _ if cc.forbids_stale() => Duration::ZERO,
        Some(s) => Duration::from_secs(s),
        None if fresh.is_zero() || must_revalidate(fresh, cc, response) => Duration::ZERO,
        None => configured,
    }
}

/// What a request accepts of a stored response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// Serve it as is.
    Fresh,
    /// Serve it although stale, because the request allows (max-stale).
    AllowedStale,
    /// Serve it although stale, because the response allows while it is
    /// revalidated (stale-while-revalidate); then revalidate it.
    StaleRevalidating,
    /// Ask the origin first (conditionally when it has a validator).
    Validate,
}

/// A stored response as [`usable`] weighs it.
#[derive(Clone, Copy, Debug)]
pub struct Stored {
    pub age: Duration,
    /// Fresh for this long in all, from birth.
    pub fresh: Duration,
    pub must_revalidate: bool,
    /// See [`stale_while_revalidate`].
    pub stale_while_revalidate: Duration,
}

/// Whether a stored response may answer a request with directives `req`
/// (§4.2, §5.2.1; RFC 5861).
pub fn usable(req: &CacheControl, request_no_cache: bool, stored: &Stored) -> Use {
    let Stored {
        age,
        fresh,
        must_revalidate,
        stale_while_revalidate,
    } = *stored;
    if request_no_cache {
        return Use::Validate;
    }
    // Compared at full precision, and `max-age=0` (a browser's "reload")
    // always revalidates, even an entry stored in this very millisecond.
    if req
        .max_age
        .is_some_and(|max| max == 0 || age > Duration::from_secs(max))
    {
        return Use::Validate;
    }
    let left = fresh.saturating_sub(age);
    if age < fresh {
        if req
            .min_fresh
            .is_some_and(|min| left < Duration::from_secs(min))
        {
            return Use::Validate;
        }
        return Use::Fresh;
    }
    let staleness = age - fresh;
    match req.max_stale {
        // A client asking for a minimum freshness does not want it stale,
        // nor one that accepts it stale by less than this. One that
        // accepts it stale (max-stale) gets it all the same, and the entry
        // is revalidated for the next.
        limit
            if staleness < stale_while_revalidate
                && req.min_fresh.is_none()
                && limit.flatten().is_none_or(|l| staleness.as_secs() <= l) =>
        {
            Use::StaleRevalidating
        }
        Some(limit) if !must_revalidate && limit.is_none_or(|l| staleness.as_secs() <= l) => {
            Use::AllowedStale
        }
        _ => Use::Validate,
    }
}

/// Methods whose success invalidates what is stored for their URI (§4.4):
/// all but the safe ones, which are those of RFC 9110 §9.2.1 and the
/// WebDAV reads the IANA method registry marks safe: `PROPFIND` (RFC 4918
/// §9.1), `REPORT` (RFC 3253 §3.6) and `SEARCH` (RFC 5323 §2). A WebDAV
/// client (a Nextcloud sync, a calendar) sends them all the time, and
/// would otherwise empty the cache of the files it only looks at.
pub fn is_unsafe(method: &str) -> bool {
    !matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PROPFIND" | "REPORT" | "SEARCH"
    )
}

#[cfg(test)]
mod tests {
    use super::directives::MAX_DELTA_SECONDS;
    use super::test_support::{fresh_for, fresh_with, get, response, settings, with_cache_valid};
    use super::*;
    use crate::http::date::format_http_date;
    use crate::http::Headers;

    #[test]
    fn only_methods_that_change_nothing_are_safe() {
        for safe in [
            "GET", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "REPORT", "SEARCH",
        ] {
            assert!(!is_unsafe(safe), "{safe}");
        }
        // Methods are case-sensitive: `propfind` is another, unknown, one.
        let unsafe_ones = ["POST", "PUT", "PATCH", "DELETE", "MKCOL", "COPY", "MOVE"];
        for method in unsafe_ones
            .into_iter()
            .chain(["PROPPATCH", "LOCK", "UNLOCK", "propfind"])
        {
            assert!(is_unsafe(method), "{method}");
        }
    }

    #[test]
    fn a_response_varying_on_a_field_set_from_variables_is_not_stored() {
        let settings = Settings {
            rendered_fields: Arc::from(["X-Client-IP".into()]),
            ..settings()
        };
        let now = SystemTime::now();
        let varying = |vary: &str| {
            let r = response(200, &[("Cache-Control", "max-age=60"), ("Vary", vary)]);
            storable(&get(&[]), &r, now, &settings).is_some()
        };
        assert!(!varying("Accept-Encoding, x-client-ip"));
        assert!(varying("Accept-Encoding"));
    }

    #[test]
    fn a_response_varying_on_a_field_the_request_also_spells_otherwise_is_not_stored() {
        let vary = [("Cache-Control", "max-age=60"), ("Vary", "Accept-Language")];
        let en = ("Accept-Language", "en");
        assert!(fresh_for(&[en], 200, &vary).is_some());
        assert!(fresh_for(&[en, ("accept_LANGUAGE", "x")], 200, &vary).is_none());
        assert!(fresh_for(&[("Accept_Language", "x")], 200, &vary).is_none());
        // A field with `_` that Vary does not name, or no Vary at all.
        assert!(fresh_for(&[en, ("X_Trace", "1")], 200, &vary).is_some());
        let plain = [("Cache-Control", "max-age=60")];
        assert!(fresh_for(&[("Accept_Language", "x")], 200, &plain).is_some());
        // With Vary unread, one entry per URL whatever it says.
        let vary_unread = Settings {
            ignored: IgnoredHeaders::parse("vary").unwrap(),
            ..settings()
        };
        let both = [en, ("Accept_Language", "x")];
        assert!(fresh_with(&vary_unread, &both, 200, &vary).is_some());
    }

    #[test]
    fn age_is_the_first_members_leading_digits() {
        for (field, seconds) in [
            ("7200", Some(7200)),
            ("7200,0", Some(7200)),
            ("0, 7200", Some(0)),
            (" 7200 , 0", Some(7200)),
            ("7200.0", Some(7200)),
            ("7200;foo=bar", Some(7200)),
            ("99999999999999999999", Some(MAX_DELTA_SECONDS)),
            ("abc", None),
            ("-7200", None),
            ("", None),
            (",7200", None),
        ] {
            assert_eq!(age_value(field), seconds, "{field:?}");
        }
    }

    #[test]
    fn an_absurd_age_makes_an_old_response_not_a_panic() {
        let now = SystemTime::now();
        for age in [
            "18446744073709551615",
            "99999999999999999999999",
            "2147483648",
        ] {
            let r = response(200, &[("Age", age)]);
            assert_eq!(birth_time(&r, now, now), UNIX_EPOCH, "Age: {age}");
        }
        let r = response(200, &[("Age", "30")]);
        assert_eq!(birth_time(&r, now, now), now - Duration::from_secs(30));
    }

    #[test]
    fn an_answer_naming_a_file_in_its_place_is_never_stored() {
        let cacheable = [("Cache-Control", "public, max-age=600")];
        assert!(fresh_for(&[], 200, &cacheable).is_some());
        let naming = [cacheable[0], ("X-Accel-Redirect", "/protected/report.pdf")];
        assert_eq!(fresh_for(&[], 200, &naming), None);
        // Nor does a 304 carry one into what is stored.
        let mut stored = response(200, &cacheable);
        let not_modified = response(304, &[("X-Accel-Redirect", "/protected/x")]);
        refresh_from_304(&mut stored, &not_modified);
        assert!(!stored.headers.contains("x-accel-redirect"));
    }

    #[test]
    fn freshness_order() {
        assert_eq!(
            fresh_for(&[], 200, &[("Cache-Control", "max-age=10, s-maxage=20")]),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            fresh_for(&[], 200, &[("Cache-Control", "max-age=10")]),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            fresh_for(&[], 200, &[("Cache-Control", "max-age=99999")]),
            Some(Duration::from_secs(3600))
        );
        let now = SystemTime::now();
        let date = format_http_date(now);
        let expires = format_http_date(now + Duration::from_secs(100));
        assert_eq!(
            fresh_for(&[], 200, &[("Date", &date), ("Expires", &expires)]),
            Some(Duration::from_secs(100))
        );
        let lm = format_http_date(now - Duration::from_secs(1000));
        assert_eq!(
            fresh_for(&[], 200, &[("Date", &date), ("Last-Modified", &lm)]),
            Some(Duration::from_secs(100))
        );
        // Nothing said, no validator: not stored unless cache_unlabeled.
        assert_eq!(fresh_for(&[], 200, &[]), None);
        let unlabeled = Settings {
            cache_unlabeled: true,
            ..settings()
        };
        assert_eq!(
            storable(&get(&[]), &response(200, &[]), now, &unlabeled).map(|l| l.fresh),
            Some(Duration::from_secs(3600))
        );
        // A validator alone: stored, to be revalidated on use.
        assert_eq!(
            fresh_for(&[], 200, &[("ETag", "\"x\"")]),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn must_understand_stores_known_statuses_whatever_no_store_says() {
        let cc = [("Cache-Control", "max-age=5, must-understand, no-store")];
        assert_eq!(fresh_for(&[], 200, &cc), Some(Duration::from_secs(5)));
        assert_eq!(fresh_for(&[], 404, &cc), Some(Duration::from_secs(5)));
        // A status whose rules it does not know, never.
        assert_eq!(fresh_for(&[], 599, &cc), None);
        let without_no_store = [("Cache-Control", "max-age=5, must-understand")];
        assert_eq!(fresh_for(&[], 599, &without_no_store), None);
        assert_eq!(fresh_for(&[], 299, &without_no_store), None);
        // The request's own no-store still holds.
        assert_eq!(fresh_for(&[("Cache-Control", "no-store")], 200, &cc), None);
        // Without it, an unknown status with explicit freshness is stored.
        assert!(fresh_for(&[], 599, &[("Cache-Control", "max-age=5")]).is_some());
    }

    #[test]
    fn what_is_not_stored() {
        assert_eq!(
            fresh_for(&[], 200, &[("Cache-Control", "no-store, max-age=5")]),
            None
        );
        assert_eq!(
            fresh_for(&[], 200, &[("Cache-Control", "private, max-age=5")]),
            None
        );
        assert_eq!(
            fresh_for(
                &[("Cache-Control", "no-store")],
                200,
                &[("Cache-Control", "max-age=5")]
            ),
            None
        );
        assert_eq!(
            fresh_for(&[], 200, &[("Cache-Control", "max-age=5"), ("Vary", "*")]),
            None
        );
        assert_eq!(
            fresh_for(
                &[("Authorization", "x")],
                200,
                &[("Cache-Control", "max-age=5")]
            ),
            None
        );
        assert!(fresh_for(
            &[("Authorization", "x")],
            200,
            &[("Cache-Control", "public, max-age=5")]
        )
        .is_some());
        assert!(fresh_for(
            &[("Authorization", "x")],
            200,
            &[("Cache-Control", "s-maxage=5")]
        )
        .is_some());
        assert_eq!(
            fresh_for(
                &[("Client-Cert", ":AQID:")],
                200,
                &[("Cache-Control", "max-age=5")]
            ),
            None
        );
        assert!(fresh_for(
            &[("Client-Cert", ":AQID:")],
            200,
            &[("Cache-Control", "public, max-age=5")]
        )
        .is_some());
        assert_eq!(
            fresh_for(
                &[],
                200,
                &[("Cache-Control", "max-age=5"), ("Set-Cookie", "a=b")]
            ),
            None
        );
        assert!(fresh_for(
            &[],
            200,
            &[
                ("Cache-Control", "public, max-age=5"),
                ("Set-Cookie", "a=b")
            ]
        )
        .is_some());
        // 302 only with explicit freshness; 500 likewise.
        assert_eq!(fresh_for(&[], 302, &[("ETag", "\"x\"")]), None);
        assert!(fresh_for(&[], 302, &[("Cache-Control", "max-age=5")]).is_some());
        assert_eq!(fresh_for(&[], 206, &[("Cache-Control", "max-age=5")]), None);
        // 600 and up: not HTTP's (599 is, see must_understand's test).
        assert_eq!(fresh_for(&[], 600, &[("Cache-Control", "max-age=5")]), None);
        let mut post = get(&[]);
        post.method = "POST".into();
        assert!(storable(
            &post,
            &response(200, &[("Cache-Control", "max-age=5")]),
            SystemTime::now(),
            &settings()
        )
        .is_none());
    }

    #[test]
    fn a_cache_valid_lifetime_that_comes_to_nothing_stores_no_page_asked_with_a_cookie() {
        // The operator's word lifts the cookie rule only with a lifetime to
        // give: zero, or a `no-cache` that makes it so, leaves the page to
        // be revalidated with this user's validator for the next, as an
        // origin's `max-age=0` would.
        let configured = with_cache_valid("200 10m, 404 0s");
        let fresh = |req: &[(&str, &str)], status, resp: &[(&str, &str)]| {
            fresh_with(&configured, req, status, resp)
        };
        let cookie = [("Cookie", "sid=alice")];
        let etag = ("ETag", "\"alice\"");
        let no_cache = [("Cache-Control", "no-cache"), etag];
        assert_eq!(fresh(&cookie, 200, &no_cache), None);
        assert_eq!(fresh(&cookie, 404, &[etag]), None);
        // Without the cookie, stored as before: revalidated on every use.
        assert_eq!(fresh(&[], 200, &no_cache), Some(Duration::ZERO));
        assert_eq!(fresh(&[], 404, &[etag]), Some(Duration::ZERO));
        // A lifetime to give still lifts it.
        assert_eq!(fresh(&cookie, 200, &[etag]), Some(Duration::from_secs(600)));
    }

    #[test]
    fn cache_unlabeled_lifts_the_cookie_rule_only_for_responses_that_say_nothing() {
        let unlabeled = Settings {
            cache_unlabeled: true,
            ..settings()
        };
        let cookie = [("Cookie", "session=alice")];
        let fresh = |resp: &[(&str, &str)]| fresh_with(&unlabeled, &cookie, 200, resp);
        let etag = ("ETag", "\"alice\"");
        // Nothing said: stored for ttl, as the setting says.
        assert_eq!(fresh(&[etag]), Some(Duration::from_secs(3600)));
        // The origin said "ask me each time": alice's validator must not
        // fetch bob a 304 for alice's page.
        assert_eq!(fresh(&[("Cache-Control", "max-age=0"), etag]), None);
        assert_eq!(fresh(&[("Cache-Control", "no-cache"), etag]), None);
        assert_eq!(fresh(&[("Expires", "0"), etag]), None);
    }

    #[test]
    fn stale_if_error_windows() {
        let l = |cc: &str| {
            storable(
                &get(&[]),
                &response(200, &[("Cache-Control", cc)]),
                SystemTime::now(),
                &settings(),
            )
            .unwrap()
            .stale_if_error
        };
        assert_eq!(l("max-age=5"), Duration::from_secs(60));
        assert_eq!(l("max-age=5, stale-if-error=7"), Duration::from_secs(7));
        assert_eq!(l("max-age=5, must-revalidate"), Duration::ZERO);
        assert_eq!(l("s-maxage=5"), Duration::ZERO);
        // A stale-if-error window beside them too: the strictest holds.
        for strict in ["max-age=5, must-revalidate", "s-maxage=5"] {
            let with_window = format!("{strict}, stale-if-error=7");
            assert_eq!(l(&with_window), Duration::ZERO, "{with_window}");
        }
        // A stale-while-revalidate window is one where it answers anyway.
        assert_eq!(
            l("max-age=5, stale-while-revalidate=30"),
            Duration::from_secs(60)
        );
        assert_eq!(
            l("max-age=5, stale-if-error=7, stale-while-revalidate=90"),
            Duration::from_secs(90)
        );
        assert_eq!(
            l("max-age=5, must-revalidate, stale-while-revalidate=90"),
            Duration::ZERO
        );
    }

    #[test]
    fn a_response_that_said_nothing_of_freshness_gets_no_stale_window() {
        let now = SystemTime::now();
        let window = |settings: &Settings, resp: &[(&str, &str)]| {
            let lifetime = storable(&get(&[]), &response(200, resp), now, settings);
            lifetime.map(|l| l.stale_if_error)
        };
        let configured = Some(Duration::from_secs(60));
        let etag = ("ETag", "\"x\"");
        // A validator alone: stored to be revalidated, never served stale.
        assert_eq!(window(&settings(), &[etag]), Some(Duration::ZERO));
        // Fresh for no time, but by the origin's word: the window applies.
        for said in [("Cache-Control", "max-age=0"), ("Expires", "0")] {
            assert_eq!(window(&settings(), &[said, etag]), configured, "{said:?}");
        }
        // A lifetime guessed from Last-Modified is a lifetime.
        let date = format_http_date(now);
        let lm = format_http_date(now - Duration::from_secs(1000));
        let guessed = [("Date", &*date), ("Last-Modified", &*lm)];
        assert_eq!(window(&settings(), &guessed), configured);
        // A field for this cache alone sets Expires aside: said nothing.
        let targeting = Targeting {
            fields: Arc::from(["cdn-cache-control".into()]),
            ..Targeting::default()
        };
        let targeted = Settings {
            targeting,
            ..settings()
        };
        let expires_past = [("Expires", "0"), etag, ("CDN-Cache-Control", "none")];
        assert_eq!(window(&targeted, &expires_past), Some(Duration::ZERO));
    }

    #[test]
    fn request_directives() {
        let cc = |v: &str| {
            let mut h = Headers::new();
            h.push("Cache-Control", v);
            CacheControl::parse(&h)
        };
        let stored = |age, fresh, must_revalidate, swr| Stored {
            age: Duration::from_secs(age),
            fresh: Duration::from_secs(fresh),
            must_revalidate,
            stale_while_revalidate: Duration::from_secs(swr),
        };
        assert_eq!(usable(&cc(""), false, &stored(5, 10, false, 0)), Use::Fresh);
        assert_eq!(
            usable(&cc(""), false, &stored(15, 10, false, 0)),
            Use::Validate
        );
        assert_eq!(
            usable(&cc(""), true, &stored(1, 10, false, 0)),
            Use::Validate
        );
        assert_eq!(
            usable(&cc("max-age=3"), false, &stored(5, 10, false, 0)),
            Use::Validate
        );
        assert_eq!(
            usable(&cc("min-fresh=6"), false, &stored(5, 10, false, 0)),
            Use::Validate
        );
        assert_eq!(
            usable(&cc("max-stale"), false, &stored(50, 10, false, 0)),
            Use::AllowedStale
        );
        assert_eq!(
            usable(&cc("max-stale=5"), false, &stored(14, 10, false, 0)),
            Use::AllowedStale
        );
        assert_eq!(
            usable(&cc("max-stale=5"), false, &stored(16, 10, false, 0)),
            Use::Validate
        );
        assert_eq!(
            usable(&cc("max-stale"), false, &stored(50, 10, true, 0)),
            Use::Validate
        );
        // Within stale-while-revalidate: served, then revalidated; past
        // it, or when the request wants it fresh, revalidated first.
        assert_eq!(
            usable(&cc(""), false, &stored(15, 10, false, 10)),
            Use::StaleRevalidating
        );
        assert_eq!(
            usable(&cc(""), false, &stored(20, 10, false, 10)),
            Use::Validate
        );
        assert_eq!(
            usable(&cc("max-stale"), false, &stored(15, 10, false, 10)),
            Use::StaleRevalidating
        );
        for fresh_please in ["max-age=0", "min-fresh=1"] {
            assert_eq!(
                usable(&cc(fresh_please), false, &stored(15, 10, false, 10)),
                Use::Validate
            );
        }
        assert_eq!(
            usable(&cc(""), true, &stored(15, 10, false, 10)),
            Use::Validate
        );
        let mut h = Headers::new();
        h.push("Pragma", "no-cache");
        assert!(CacheControl::parse(&h).request_no_cache(&h));
        // Beside a Cache-Control this cache understands, Pragma is
        // ignored; beside one of extensions only, it still counts (§5.4).
        for (cache_control, no_cache) in [("max-age=60", false), ("x-ext, community=\"a\"", true)] {
            let mut with = h.clone();
            with.push("Cache-Control", cache_control);
            let cc = CacheControl::parse(&with);
            assert_eq!(cc.request_no_cache(&with), no_cache, "{cache_control}");
        }
    }

    #[test]
    fn initial_age_uses_date_and_age() {
        let now = SystemTime::now();
        let r = response(200, &[("Age", "30")]);
        assert_eq!(initial_age(&r, now, now).as_secs(), 30);
        let date = format_http_date(now - Duration::from_secs(100));
        let r = response(200, &[("Date", &date)]);
        assert!(initial_age(&r, now, now).as_secs() >= 98);
        // Dated this very second: not a fraction of a second old.
        let r = response(200, &[("Date", &format_http_date(now))]);
        assert_eq!(initial_age(&r, now, now), Duration::ZERO);
    }

    #[test]
    fn a_lifetime_guessed_from_last_modified_stores_no_page_asked_with_a_cookie() {
        let now = SystemTime::now();
        let date = format_http_date(now);
        let lm = format_http_date(now - Duration::from_secs(1000));
        let resp = [("Date", &*date), ("Last-Modified", &*lm)];
        assert_eq!(fresh_for(&[], 200, &resp), Some(Duration::from_secs(100)));
        assert_eq!(fresh_for(&[("Cookie", "sid=alice")], 200, &resp), None);
    }

    #[test]
    fn key_names_add_accept_encoding_for_a_coded_body_once() {
        let names = |resp: &[(&str, &str)]| settings().key_names(&response(200, resp));
        let gzip = ("Content-Encoding", "gzip");
        assert_eq!(names(&[gzip]), ["accept-encoding"]);
        assert_eq!(
            names(&[gzip, ("Vary", "Accept-Language")]),
            ["accept-encoding", "accept-language"]
        );
        assert_eq!(
            names(&[gzip, ("Vary", "Accept-Encoding")]),
            ["accept-encoding"]
        );
        // Not coded: what Vary names, nothing more.
        assert_eq!(names(&[("Vary", "Accept-Language")]), ["accept-language"]);
        assert!(names(&[("Content-Encoding", "identity")]).is_empty());
        // With `gunzip`, a gzip-coded body is right for every client; one
        // in another coding, or not to be transformed, is not.
        let decoding = Settings {
            gunzip: true,
            ..settings()
        };
        let names = |resp: &[(&str, &str)]| decoding.key_names(&response(200, resp));
        assert!(names(&[gzip]).is_empty());
        assert_eq!(
            names(&[gzip, ("Vary", "Accept-Encoding")]),
            ["accept-encoding"]
        );
        assert_eq!(names(&[("Content-Encoding", "br")]), ["accept-encoding"]);
        let kept = ("Cache-Control", "no-transform");
        assert_eq!(names(&[gzip, kept]), ["accept-encoding"]);
    }

    #[test]
    fn key_names_add_what_cache_vary_names_to_every_response_once() {
        let varying = Settings {
            vary: CacheVary::parse("cookie:lang, header:Accept-Language").unwrap(),
            ..settings()
        };
        let names = |resp: &[(&str, &str)]| varying.key_names(&response(200, resp));
        assert_eq!(names(&[]), ["accept-language", "cookie:lang"]);
        assert_eq!(
            names(&[
                ("Vary", "Accept-Language, Origin"),
                ("Content-Encoding", "gzip")
            ]),
            [
                "accept-encoding",
                "accept-language",
                "cookie:lang",
                "origin"
            ]
        );
        // Stored when Vary is not read too: the names are the operator's.
        let unread = Settings {
            ignored: IgnoredHeaders::parse("Vary").unwrap(),
            ..varying.clone()
        };
        assert_eq!(
            unread.key_names(&response(200, &[("Vary", "Origin")])),
            ["accept-language", "cookie:lang"]
        );
        // A cookie the backend is sent otherwise (`request_header.Cookie`)
        // keys nothing it answered: not stored.
        let rendered = Settings {
            rendered_fields: Arc::from(["Cookie".into()]),
            ..varying
        };
        let fresh = [("Cache-Control", "max-age=60")];
        let req = get(&[("Cookie", "lang=fr")]);
        let resp = response(200, &fresh);
        assert!(storable(&req, &resp, SystemTime::now(), &settings()).is_some());
        assert!(storable(&req, &resp, SystemTime::now(), &rendered).is_none());
    }

    #[test]
    fn an_answer_to_a_request_with_credentials_is_shared_only_when_it_says_so() {
        let auth = get(&[("Authorization", "Basic eDp5")]).headers;
        let anonymous = get(&[]).headers;
        let bare = response(304, &[("ETag", "\"x\"")]);
        let public = response(304, &[("Cache-Control", "public"), ("ETag", "\"x\"")]);
        let s = settings();
        assert!(answer_shared_despite_credentials(&anonymous, &bare, &s));
        assert!(!answer_shared_despite_credentials(&auth, &bare, &s));
        assert!(answer_shared_despite_credentials(&auth, &public, &s));
    }

    #[test]
    fn usable_at_the_edges_of_each_window() {
        let cc = |v: &str| {
            let mut h = Headers::new();
            h.push("Cache-Control", v);
            CacheControl::parse(&h)
        };
        let stored = |age, fresh, swr| Stored {
            age: Duration::from_secs(age),
            fresh: Duration::from_secs(fresh),
            must_revalidate: false,
            stale_while_revalidate: Duration::from_secs(swr),
        };
        // Fresh while its age is below its lifetime (§4.2), not at it.
        assert_eq!(usable(&cc(""), false, &stored(10, 10, 0)), Use::Validate);
        // A request's max-age accepts an age up to and including it
        // (§5.2.1.1), and min-fresh a freshness left of at least it.
        for accepted in ["max-age=60", "max-age=5", "min-fresh=5"] {
            let use_ = usable(&cc(accepted), false, &stored(5, 10, 0));
            assert_eq!(use_, Use::Fresh, "{accepted}");
        }
        // Within stale-while-revalidate, a max-stale that allows less
        // still wants it revalidated first; one that allows as much not.
        assert_eq!(
            usable(&cc("max-stale=2"), false, &stored(15, 10, 10)),
            Use::Validate
        );
        assert_eq!(
            usable(&cc("max-stale=5"), false, &stored(15, 10, 10)),
            Use::StaleRevalidating
        );
    }

    #[test]
    fn the_configured_stale_while_revalidate_is_not_given_to_a_response_fresh_for_no_time() {
        let configured = Duration::from_secs(30);
        let window = |fresh: u64, resp: &[(&str, &str)]| {
            let r = response(200, resp);
            let cc = CacheControl::of_response(&r.headers, &Targeting::default());
            stale_while_revalidate(Duration::from_secs(fresh), &cc, &r, configured)
        };
        let etag = ("ETag", "\"x\"");
        // `max-age=0`: the origin asks to be asked on every use.
        assert_eq!(
            window(0, &[("Cache-Control", "max-age=0"), etag]),
            Duration::ZERO
        );
        // A validator alone: it never said it may be served unasked.
        assert_eq!(window(0, &[etag]), Duration::ZERO);
        assert_eq!(
            window(60, &[("Cache-Control", "max-age=60"), etag]),
            configured
        );
    }
}
