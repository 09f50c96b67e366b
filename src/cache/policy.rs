//! HTTP caching rules for a shared cache (RFC 9111): what may be stored,
//! for how long, how old a stored response is, and whether a stored
//! response may answer a given request. Pure functions of heads and times;
//! no storage, no sockets.

use crate::http::body::content_length;
use crate::http::date::parse_http_date;
use crate::http::forward::{is_hop_by_hop, strip_hop_by_hop, FORWARDING_FIELDS};
use crate::http::head::{push_canonical_authority, split_absolute};
use crate::http::headers::list_elements;
use crate::http::{Headers, RequestHead, ResponseHead};
use std::borrow::Cow;
use std::fmt::Write as _;
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
}

/// Lifetimes by status for responses that say nothing of their freshness
/// (nginx's `proxy_cache_valid`): the `cache_valid` setting, e.g.
/// `200 301 302 10m, 404 1m, any 30s`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheValid {
    /// `None` stands for `any`: every status not named elsewhere.
    rules: Vec<(Option<u16>, Duration)>,
}

impl CacheValid {
    pub fn parse(v: &str) -> Result<CacheValid, String> {
        let mut rules: Vec<(Option<u16>, Duration)> = Vec::new();
        for group in v.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            let words: Vec<&str> = group.split_whitespace().collect();
            let [statuses @ .., lifetime] = &words[..] else {
                continue;
            };
            if statuses.is_empty() {
                return Err(format!(
                    "`{group}` names no status (e.g. `200 301 10m, 404 1m, any 30s`)"
                ));
            }
            let lifetime = crate::config::parse_duration(lifetime)?;
            for status in statuses {
                let status = match *status {
                    "any" => None,
                    code => Some(
                        code.parse::<u16>()
                            .ok()
                            .filter(|&s| (100..600).contains(&s))
                            .ok_or_else(|| format!("`{code}` is not a status (or `any`)"))?,
                    ),
                };
                if let Some(code) = status.filter(|&s| !status_ever_stored(s)) {
                    return Err(format!("a {code} is never stored"));
                }
                if rules.iter().any(|(s, _)| *s == status) {
                    let named = status.map_or("any".to_string(), |s| s.to_string());
                    return Err(format!("{named} is given a lifetime twice"));
                }
                rules.push((status, lifetime));
            }
        }
        Ok(CacheValid { rules })
    }

    /// What `ttl` cuts short, said for a warning: a lifetime longer than
    /// it is not what the operator will get.
    pub fn capped_by(&self, ttl: Duration) -> Option<String> {
        // The first of the longest, as the setting names them.
        let (status, longest) = self.rules.iter().rev().max_by_key(|(_, d)| *d)?;
        let status = status.map_or("any".to_string(), |s| s.to_string());
        (*longest > ttl).then(|| {
            format!(
                "{status} is given {}, but ttl caps every lifetime at {}",
                said(*longest),
                said(ttl)
            )
        })
    }

    /// The lifetime for a response with `status` that says nothing of its
    /// freshness, if one is set.
    pub fn lifetime(&self, status: u16) -> Option<Duration> {
        let rule = |wanted: Option<u16>| self.rules.iter().find(|(s, _)| *s == wanted);
        rule(Some(status)).or_else(|| rule(None)).map(|(_, d)| *d)
    }
}

/// A configured duration as a warning says it: whole seconds, else
/// milliseconds (`1500ms`, which whole seconds would call `1s`, as a `1s`
/// ttl).
fn said(d: Duration) -> String {
    match d.subsec_millis() {
        0 => format!("{}s", d.as_secs()),
        _ => format!("{}ms", d.as_millis()),
    }
}

/// Which fields the origin may use to speak to this cache alone, over
/// Cache-Control and Expires (meant for browsers and every other cache):
/// `Surrogate-Control` (W3C Edge Architecture 1.0, as Squid, Fastly and
/// Akamai read it) and nginx's `X-Accel-Expires`. Both are taken out of
/// the responses clients get.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Targeting {
    /// The device token this cache announces in `Surrogate-Capability` and
    /// answers to in targeted directives (`max-age=60;inverso`); `None`:
    /// `Surrogate-Control` is neither read nor removed.
    pub surrogate_id: Option<Arc<str>>,
    pub x_accel_expires: bool,
}

impl Targeting {
    /// The fields that speak to this cache alone: read, stored with the
    /// response, never sent on to a client.
    pub fn own_fields(&self) -> &'static [&'static str] {
        own_fields(self.surrogate_id.is_some(), self.x_accel_expires)
    }
}

/// This cache's entry in a request's `Surrogate-Capability`, for the
/// device token `id` (the `surrogate_id` setting).
pub fn surrogate_capability(id: &str) -> String {
    format!("{id}=\"Surrogate/1.0\"")
}

/// The fields for this cache alone that it reads (see [`Targeting`]).
pub fn own_fields(surrogate_control: bool, x_accel_expires: bool) -> &'static [&'static str] {
    match (surrogate_control, x_accel_expires) {
        (true, true) => &["surrogate-control", "x-accel-expires"],
        (true, false) => &["surrogate-control"],
        (false, true) => &["x-accel-expires"],
        (false, false) => &[],
    }
}

/// Cache-Control directives we act on (RFC 9111 §5.2), from either side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub no_store: bool,
    /// Store only a status whose caching rules the cache knows, and then
    /// whatever `no-store` says (§5.2.2.3).
    pub must_understand: bool,
    pub no_cache: bool,
    pub private: bool,
    pub public: bool,
    /// must-revalidate or proxy-revalidate.
    pub must_revalidate: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    /// `Some(None)`: max-stale without a value (any staleness).
    pub max_stale: Option<Option<u64>>,
    pub min_fresh: Option<u64>,
    pub only_if_cached: bool,
    pub stale_if_error: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
    /// From `X-Accel-Expires: @T`: fresh until then (Unix seconds).
    pub fresh_until: Option<u64>,
    /// The lifetime came from a field for this cache alone (see
    /// [`Targeting`]): the origin's explicit word to it.
    pub targeted: bool,
}

impl CacheControl {
    /// Whether a response with these directives may never be served stale
    /// by a shared cache without revalidating it first: must-revalidate
    /// (§5.2.2.2), s-maxage, which implies proxy-revalidate (§5.2.2.10),
    /// and no-cache (§5.2.2.4), whatever the request allows (max-stale).
    pub fn forbids_stale(&self) -> bool {
        self.must_revalidate || self.s_maxage.is_some() || self.no_cache
    }

    pub fn parse(headers: &Headers) -> CacheControl {
        let mut cc = CacheControl::default();
        for directive in headers.quoted_list("cache-control") {
            cc.apply(directive);
        }
        cc
    }

    fn apply(&mut self, directive: &str) {
        let (name, value) = match directive.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (directive, None),
        };
        // RFC 9111 §4.2.1: an invalid delta-seconds makes the response
        // stale, so a bad max-age counts as 0 rather than absent.
        let seconds = || Some(value.and_then(delta_seconds).unwrap_or(0));
        // Directive names are case-insensitive and nearly always sent
        // in lower case: only the others pay for a copy (this runs for
        // every request and response that has the field, hits too).
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            &lower
        } else {
            name
        };
        match name {
            "no-store" => self.no_store = true,
            "must-understand" => self.must_understand = true,
            "no-cache" => self.no_cache = true,
            "private" => self.private = true,
            "public" => self.public = true,
            "must-revalidate" | "proxy-revalidate" => self.must_revalidate = true,
            "max-age" => self.max_age = self.max_age.or(seconds()),
            "s-maxage" => self.s_maxage = self.s_maxage.or(seconds()),
            "max-stale" => self.max_stale = Some(value.and_then(delta_seconds)),
            "min-fresh" => self.min_fresh = self.min_fresh.or(seconds()),
            "only-if-cached" => self.only_if_cached = true,
            "stale-if-error" => self.stale_if_error = self.stale_if_error.or(seconds()),
            "stale-while-revalidate" => {
                self.stale_while_revalidate = self.stale_while_revalidate.or(seconds())
            }
            _ => {}
        }
    }

    /// The directives a stored or arriving response gives this cache: the
    /// ones in a field for it alone when the origin sent one (see
    /// [`Targeting`]; `Surrogate-Control` first), else Cache-Control's.
    /// Cache-Control's `public` counts either way: it is what lets a
    /// response with `Set-Cookie` be stored, and a field about lifetimes
    /// is no such permission.
    pub fn of_response(headers: &Headers, targeting: &Targeting) -> CacheControl {
        let cc = CacheControl::parse(headers);
        let targeted = match &targeting.surrogate_id {
            Some(id) => surrogate_control(headers, id),
            None => None,
        };
        let targeted = targeted.or_else(|| {
            targeting
                .x_accel_expires
                .then(|| x_accel_expires(headers))
                .flatten()
        });
        match targeted {
            Some(own) => CacheControl {
                public: cc.public,
                targeted: true,
                ..own
            },
            None => cc,
        }
    }

    /// The request asks to skip stored responses: `no-cache`, or the
    /// HTTP/1.0 `Pragma: no-cache` when there is no Cache-Control (§5.4).
    pub fn request_no_cache(&self, headers: &Headers) -> bool {
        self.no_cache
            || (!headers.contains("cache-control") && headers.has_token("pragma", "no-cache"))
    }
}

/// The `Surrogate-Control` directives for this cache (Edge Architecture
/// §2.2-2.3): those targeted at `id` (`max-age=60;inverso`) and those
/// targeted at no device. Of them, `no-store`, `max-age` (with its
/// `+seconds` extension: how long it may still be served stale after,
/// read as a `stale-if-error` window), `stale-if-error` and
/// `stale-while-revalidate` are read. "If more than one is targeted at a
/// surrogate, the most specific applies" (§3): a value targeted at `id`
/// goes before one targeted at none, wherever either stands; a
/// `no-store` for either keeps the response out (as Squid merges them).
/// `None` when they say nothing of storing or of lifetime
/// (`content="ESI/1.0"` alone): Cache-Control then decides, as it does
/// for a response without the field.
fn surrogate_control(headers: &Headers, id: &str) -> Option<CacheControl> {
    // [untargeted, targeted at this cache], each with its `max-age`'s
    // `+seconds`.
    let mut scs = [
        (CacheControl::default(), None),
        (CacheControl::default(), None),
    ];
    for item in headers.quoted_list("surrogate-control") {
        let (directive, target) = match item.rsplit_once(';') {
            Some((directive, target)) if !target.contains('"') => (directive, Some(target.trim())),
            _ => (item, None),
        };
        if target.is_some_and(|t| !t.eq_ignore_ascii_case(id)) {
            continue;
        }
        let (sc, plus) = &mut scs[usize::from(target.is_some())];
        let name = directive.split('=').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("max-age") {
            if sc.max_age.is_some() {
                continue;
            }
            let value = directive.split_once('=').map_or("", |(_, v)| v.trim());
            let (fresh, stale) = match value.split_once('+') {
                Some((fresh, stale)) => (fresh, delta_seconds(stale)),
                None => (value, None),
            };
            // Invalid counts as 0, as in Cache-Control (§4.2.1).
            sc.max_age = Some(delta_seconds(fresh).unwrap_or(0));
            *plus = stale;
        } else if ["no-store", "stale-if-error", "stale-while-revalidate"]
            .iter()
            .any(|d| name.eq_ignore_ascii_case(d))
        {
            sc.apply(directive);
        }
    }
    let [(any, any_plus), (ours, ours_plus)] = scs;
    // The `+seconds` goes with the max-age that applies.
    let (max_age, plus) = match ours.max_age {
        Some(_) => (ours.max_age, ours_plus),
        None => (any.max_age, any_plus),
    };
    let sc = CacheControl {
        no_store: any.no_store || ours.no_store,
        max_age,
        stale_if_error: ours
            .stale_if_error
            .or(ours_plus)
            .or(any.stale_if_error)
            .or(plus),
        stale_while_revalidate: ours.stale_while_revalidate.or(any.stale_while_revalidate),
        ..CacheControl::default()
    };
    (sc.no_store || sc.max_age.is_some()).then_some(sc)
}

/// nginx's `X-Accel-Expires`: seconds of freshness, `0` for "do not
/// store", or `@T` for "fresh until the Unix time T". A value of another
/// form is ignored, as nginx ignores it.
fn x_accel_expires(headers: &Headers) -> Option<CacheControl> {
    let value = headers.get_str("x-accel-expires")?;
    let mut cc = CacheControl::default();
    match value.strip_prefix('@') {
        Some(at) => cc.fresh_until = Some(delta_seconds(at)?),
        None => match delta_seconds(value)? {
            0 => cc.no_store = true,
            n => cc.max_age = Some(n),
        },
    }
    Some(cc)
}

/// The largest delta-seconds we keep (68 years): RFC 9111 §1.2.2, "If a
/// cache receives a delta-seconds value greater than the greatest integer
/// it can represent, or if any of its subsequent calculations overflows,
/// the cache MUST consider the value to be 2147483648 (2^31)".
const MAX_DELTA_SECONDS: u64 = 1 << 31;

/// RFC 9111 §1.2.2: `delta-seconds = 1*DIGIT` (no sign, no space), capped
/// at [`MAX_DELTA_SECONDS`] so that no later sum or subtraction with it
/// can overflow.
fn delta_seconds(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        value
            .parse::<u64>()
            .map_or(MAX_DELTA_SECONDS, |n| n.min(MAX_DELTA_SECONDS)),
    )
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

/// What starts the key of a request the client made over TLS (to a proxy
/// in front that terminated it, see [`crate::realip::client_scheme`]):
/// an application may answer `http` and `https` differently (a redirect
/// to `https` for the one, the page for the other), so they are stored
/// apart, as nginx's default key begins with `$scheme`.
const HTTPS_PREFIX: &str = "https://";

/// The cache key of a request: host (lower-cased) and target path with
/// query, after `https://` when `scheme` is `https`.
pub fn primary_key(request: &RequestHead, scheme: &str) -> String {
    let authority = request.authority().unwrap_or("");
    let path = request.path_and_query();
    let mut key = String::with_capacity(HTTPS_PREFIX.len() + authority.len() + path.len());
    if scheme == "https" {
        key.push_str(HTTPS_PREFIX);
    }
    push_canonical_authority(&mut key, authority);
    push_path(&mut key, &path);
    key
}

/// The keys a request's URI may be stored under, one per scheme: a change
/// to the resource (a POST, a PURGE) drops both.
pub fn primary_keys_of_uri(request: &RequestHead) -> [String; 2] {
    let http = primary_key(request, "http");
    let https = format!("{HTTPS_PREFIX}{http}");
    [http, https]
}

/// The keys of the URI a `Location` or `Content-Location` names in the
/// answer to an unsafe request whose own keys are `request_keys` (from
/// [`primary_keys_of_uri`]). RFC 9111 §4.4 makes them candidates for
/// invalidation too, and forbids it for another origin: a reference to
/// another host, or one that is not HTTP, gives `None`. A relative
/// reference is resolved against the request's path (RFC 3986 §5.2).
pub fn keys_of_reference(request_keys: &[String; 2], reference: &str) -> Option<[String; 2]> {
    let base = &request_keys[0];
    let (authority, base_path) = base.split_at(base.find('/').unwrap_or(base.len()));
    let reference = reference.split('#').next().unwrap_or_default().trim();
    let reference = &*as_followed(reference);
    let network_path = split_absolute(reference).or_else(|| {
        let rest = reference.strip_prefix("//")?;
        Some(rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len())))
    });
    let path = match network_path {
        Some((their_authority, rest)) => {
            let mut theirs = String::with_capacity(their_authority.len());
            push_canonical_authority(&mut theirs, their_authority);
            if theirs != authority {
                return None;
            }
            match rest {
                path if path.starts_with('/') => path.to_string(),
                query => format!("/{query}"),
            }
        }
        None if reference.starts_with('/') => reference.to_string(),
        // Empty (the request's own URI, already dropped), or with another
        // scheme (`mailto:`): a relative path has no `:` in its first
        // segment.
        None if reference.is_empty()
            || reference[..reference.find(['/', '?']).unwrap_or(reference.len())].contains(':') =>
        {
            return None
        }
        None => {
            let base_path = &base_path[..base_path.find('?').unwrap_or(base_path.len())];
            if reference.starts_with('?') {
                format!("{base_path}{reference}")
            } else {
                let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
                format!("{dir}{reference}")
            }
        }
    };
    let (path, query) = path.split_at(path.find('?').unwrap_or(path.len()));
    let mut key = String::with_capacity(authority.len() + path.len() + query.len());
    key.push_str(authority);
    push_path(&mut key, &remove_dot_segments(path));
    push_path(&mut key, query);
    let https = format!("{HTTPS_PREFIX}{key}");
    Some([key, https])
}

/// A reference as a browser follows it (the WHATWG URL parser): tabs
/// dropped, and what a URI may not hold raw (a non-ASCII character, a
/// space), which some applications put in a `Location` as given,
/// percent-encoded in UTF-8. Request targets with such bytes are refused,
/// so only the encoded spelling can name a stored entry.
fn as_followed(reference: &str) -> Cow<'_, str> {
    if reference.bytes().all(|b| b.is_ascii_graphic()) {
        return Cow::Borrowed(reference);
    }
    let mut out = String::with_capacity(reference.len() * 3);
    for b in reference.bytes().filter(|&b| b != b'\t') {
        if b.is_ascii_graphic() {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    Cow::Owned(out)
}

/// RFC 3986 §5.2.4, for a path that starts with `/`: what a client that
/// follows the reference asks for.
fn remove_dot_segments(path: &str) -> Cow<'_, str> {
    if !path.split('/').any(|s| s == "." || s == "..") {
        return Cow::Borrowed(path);
    }
    let mut out: Vec<&str> = Vec::new();
    let mut last = "";
    for segment in path.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
        last = segment;
    }
    // `/a/b/..` is the directory `/a/`.
    if last == "." || last == ".." {
        out.push("");
    }
    Cow::Owned(format!("/{}", out.join("/")))
}

/// A stored key (a snapshot's) spelled as [`primary_key`] and
/// [`variant_key`] spell it today: a key written before a spelling rule
/// existed would never be looked up again, and only take room until
/// evicted.
pub fn respell_key(key: &str) -> String {
    let (primary, variant) = key.split_at(key.find('\n').unwrap_or(key.len()));
    let (scheme, primary) = match primary.strip_prefix(HTTPS_PREFIX) {
        Some(rest) => (HTTPS_PREFIX, rest),
        None => ("", primary),
    };
    let (authority, path) = primary.split_at(primary.find('/').unwrap_or(primary.len()));
    let mut respelled = String::with_capacity(key.len());
    respelled.push_str(scheme);
    push_canonical_authority(&mut respelled, authority);
    push_path(&mut respelled, path);
    respelled.push_str(&respell_variant(variant));
    respelled
}

/// The path and query with percent-encodings in one spelling (RFC 3986
/// §6.2.2.1, §6.2.2.2): hex digits upper-cased, and an encoded unreserved
/// character (letter, digit, `-_~`) decoded. `/a%2fb`, `/a%2Fb` name
/// one resource, `/%7Euser` and `/~user` another; without this each
/// spelling would be an entry of its own, and a PURGE of one would leave
/// the others. Reserved characters stay encoded: `%2F` is not `/`. Nor
/// is `%2E` decoded: `/a/%2E%2E/b` would become a dot-segment, which
/// backends resolve while some take the encoded form literally.
fn push_path(key: &mut String, path: &str) {
    if !path.contains('%') {
        key.push_str(path);
        return;
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let encoded = (bytes[i] == b'%')
            .then(|| {
                Some((
                    hex_digit(*bytes.get(i + 1)?)?,
                    hex_digit(*bytes.get(i + 2)?)?,
                ))
            })
            .flatten();
        match encoded {
            Some((hi, lo)) => {
                let c = char::from(hi << 4 | lo);
                if c.is_ascii_alphanumeric() || "-_~".contains(c) {
                    key.push(c);
                } else {
                    let _ = write!(key, "%{:02X}", hi << 4 | lo);
                }
                i += 3;
            }
            None => {
                // A lone `%` (`?q=100%`, as browsers send what was typed)
                // is written as the escape it stands for: kept bare, `%` + a decoded `3` + `0` would
                // read as `%30`. Stepping by char keeps UTF-8 whole.
                let c = path[i..].chars().next().unwrap_or('%');
                match c {
                    '%' => key.push_str("%25"),
                    c => key.push(c),
                }
                i += c.len_utf8();
            }
        }
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// The field names a response varies on, lower-cased.
pub fn vary_names(response: &ResponseHead) -> Vec<String> {
    response
        .headers
        .tokens("vary")
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The key of one variant: the primary key, then each varying request
/// field: its name alone when the request lacks it (absent matches only
/// absent), else `name=` and its value in one spelling (see
/// [`push_variant_value`]).
///
/// A field the proxy drops before forwarding (a hop-by-hop one, or one the
/// request's `Connection` names) counts as absent: the key describes the
/// request the backend answered, or a client could file the answer to
/// its stripped request under the variant of a field it never reached.
pub fn variant_key(primary: &str, vary: &[String], request: &Headers) -> String {
    let mut key = primary.to_string();
    for name in vary {
        key.push('\n');
        key.push_str(name);
        if is_hop_by_hop(request, name) || !request.contains(name) {
            continue;
        }
        key.push('=');
        push_variant_value(&mut key, name, request.get_all(name));
    }
    key
}

/// Request fields that are lists by their definition (RFC 9110 §5.6.1's
/// `#rule`, whose recipients ignore empty elements and the whitespace
/// around commas, and whose lines combine into one: §5.3), those a
/// response may vary on. Another field's comma may be no separator (a
/// `User-Agent`'s `(KHTML, like Gecko)`, a cookie's value), nor its second
/// line a list element (a backend may read the first alone): its value
/// is kept as sent.
const LIST_VALUES: [&str; 9] = [
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "cache-control",
    "if-match",
    "if-none-match",
    "pragma",
    "prefer",
];

/// Fields whose values are case-insensitive throughout (RFC 9110 §12.5:
/// codings, charsets and language ranges, and the `q` parameter).
const CASE_INSENSITIVE_VALUES: [&str; 3] = ["accept-encoding", "accept-language", "accept-charset"];

/// The value of a varying field `name`, from the values of its lines.
/// Of a field in [`LIST_VALUES`], normalized as RFC 9111 §4.1 allows, so
/// that requests a backend must answer alike share one variant: the lines
/// combined, the list split at commas outside quoted strings, whitespace
/// around each element and empty elements dropped (RFC 9110 §5.6.1), and
/// the values of the `Accept-*` fields above lower-cased. Nothing else:
/// the order of elements stays, as some servers read it as a preference.
/// Of any other field, the lines as sent, each one apart (a `%0A`
/// between them, which no value holds). Bytes outside printable ASCII,
/// and `%`, are written `%XX`, so two values that differ otherwise never
/// make the same key.
fn push_variant_value<'a>(key: &mut String, name: &str, values: impl Iterator<Item = &'a [u8]>) {
    if !LIST_VALUES.contains(&name) {
        for (i, value) in values.enumerate() {
            if i > 0 {
                key.push_str("%0A");
            }
            push_escaped(key, value, false);
        }
        return;
    }
    let lower = CASE_INSENSITIVE_VALUES.contains(&name);
    let mut first = true;
    for element in values.flat_map(list_elements) {
        let element = element.trim_ascii();
        if element.is_empty() {
            continue;
        }
        if !std::mem::take(&mut first) {
            key.push(',');
        }
        push_escaped(key, element, lower);
    }
}

/// `bytes` in a key: `%` and bytes outside printable ASCII as `%XX`;
/// ASCII letters lower-cased if `lower`.
fn push_escaped(key: &mut String, bytes: &[u8], lower: bool) {
    for &b in bytes {
        let b = if lower { b.to_ascii_lowercase() } else { b };
        if b == b'%' || !(0x20..0x7f).contains(&b) {
            let _ = write!(key, "%{b:02X}");
        } else {
            key.push(b as char);
        }
    }
}

/// The variant part of a stored key (`\nname=value...`) as
/// [`variant_key`] spells it today.
fn respell_variant(variant: &str) -> String {
    let mut out = String::with_capacity(variant.len());
    for field in variant.split('\n').skip(1) {
        out.push('\n');
        match field.split_once('=') {
            Some((name, value)) => {
                out.push_str(name);
                out.push('=');
                let value = decode_percent(value.as_bytes());
                push_variant_value(&mut out, name, std::iter::once(&value[..]));
            }
            None => out.push_str(field),
        }
    }
    out
}

/// `%XX` decoded; anything else kept.
fn decode_percent(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = (b[i] == b'%')
            .then(|| Some(hex_digit(*b.get(i + 1)?)? * 16 + hex_digit(*b.get(i + 2)?)?))
            .flatten();
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
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

/// Decides whether a response to `request` may be stored (RFC 9111 §3),
/// and for how long it is fresh (§4.2.1). `response_time` is when it
/// arrived. `None`: do not store.
pub fn storable(
    request: &RequestHead,
    response: &ResponseHead,
    response_time: SystemTime,
    settings: &Settings,
) -> Option<Lifetime> {
    if request.method != "GET" || !status_ever_stored(response.status) {
        return None;
    }
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
    // `Vary: *`, and a response that varies on a field the proxy writes
    // itself (from the client's address, from its Host as spelled): the
    // client's own value of it, which is all a key can hold, is not what
    // the backend answered.
    if response
        .headers
        .tokens("vary")
        .any(|v| v == "*" || FORWARDING_FIELDS.iter().any(|f| v.eq_ignore_ascii_case(f)))
    {
        return None;
    }
    // §3.5: a shared cache stores a response to an authenticated request
    // only when the response's Cache-Control says so explicitly. A
    // lifetime given to this cache alone does not: an application may
    // give one to every page (a middleware's Surrogate-Control) and mark
    // a user's own `private` for browsers, which this cache then does not
    // read. Squid stores none while it reads Surrogate-Control.
    if request.headers.contains("authorization") {
        let said = if cc.targeted {
            Cow::Owned(CacheControl::parse(&response.headers))
        } else {
            Cow::Borrowed(&cc)
        };
        if !(said.public || said.s_maxage.is_some() || said.must_revalidate) {
            return None;
        }
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
    let fresh = match explicit.or(configured) {
        Some(d) => d,
        None if !heuristically_cacheable(response.status) && !cc.public => return None,
        None => match heuristic_freshness(response, response_time) {
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
    // revalidated: it would never be served.
    if fresh.is_zero() && !has_validator(response) {
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
    // proxy-revalidate) forbid serving stale, unless the origin grants a
    // stale-if-error window explicitly (RFC 5861).
    let on_error = match cc.stale_if_error {
        Some(s) => Duration::from_secs(s),
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
        && cc.s_maxage.or(cc.max_age).is_none()
        && !cc.targeted
        && !response.headers.contains("expires");
    cc.forbids_stale() || only_revalidated
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
        // At most 2^31 seconds: no overflow.
        let until = UNIX_EPOCH + Duration::from_secs(until);
        return Some(until.duration_since(date()).unwrap_or(Duration::ZERO));
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
        // A client asking for a minimum freshness does not want it stale.
        // One that accepts it stale (max-stale) gets it all the same, and
        // the entry is revalidated for the next.
        _ if staleness < stale_while_revalidate && req.min_fresh.is_none() => {
            Use::StaleRevalidating
        }
        Some(limit) if !must_revalidate && limit.is_none_or(|l| staleness.as_secs() <= l) => {
            Use::AllowedStale
        }
        _ => Use::Validate,
    }
}

/// Whether a client's own conditional GET/HEAD is satisfied by a stored
/// response, so it gets 304 (RFC 9110 §13.1.2-3, §13.2.2: If-None-Match
/// wins over If-Modified-Since).
pub fn not_modified(request: &Headers, stored: &ResponseHead) -> bool {
    // RFC 9110 §13.2.1: preconditions are ignored when the response would
    // not be 2xx (a stored 404 or 301 is sent as it is).
    if !(200..300).contains(&stored.status) {
        return false;
    }
    if request.contains("if-none-match") {
        let Some(etag) = stored.headers.get_str("etag") else {
            return false;
        };
        return request
            .quoted_list("if-none-match")
            .any(|tag| tag == "*" || weak_eq(tag, etag));
    }
    let Some(since) = request
        .get_str("if-modified-since")
        .and_then(parse_http_date)
    else {
        return false;
    };
    // RFC 9111 §4.3.2: without a Last-Modified, the stored Date (which
    // every stored response has: one is added to those that come without)
    // says when the copy was current.
    let modified = ["last-modified", "date"]
        .iter()
        .find_map(|name| stored.headers.get_str(name))
        .and_then(parse_http_date);
    modified.is_some_and(|modified| modified <= since)
}

/// Weak comparison of entity tags: equal once any `W/` is dropped.
fn weak_eq(a: &str, b: &str) -> bool {
    a.trim_start_matches("W/") == b.trim_start_matches("W/")
}

/// Request fields that make the origin answer 304 if our copy is current.
pub fn validators(stored: &ResponseHead) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    if let Some(etag) = stored.headers.get("etag") {
        out.push(("If-None-Match", etag.to_vec()));
    }
    if let Some(lm) = stored.headers.get("last-modified") {
        out.push(("If-Modified-Since", lm.to_vec()));
    }
    out
}

/// §4.3.4: whether a 304 is about the stored response. Its validator, if
/// it has one, must be the stored one: a strong entity-tag exactly, a weak
/// one by weak comparison, a `Last-Modified` the same date. A 304 naming
/// another representation must not refresh this one.
pub fn same_validator(stored: &ResponseHead, not_modified: &ResponseHead) -> bool {
    if let Some(tag) = not_modified.headers.get_str("etag") {
        let tag = tag.trim();
        let ours = stored.headers.get_str("etag").map(str::trim);
        return match ours {
            Some(ours) if tag.starts_with("W/") => weak_eq(tag, ours),
            Some(ours) => tag == ours,
            None => false,
        };
    }
    match (
        not_modified.headers.get_str("last-modified"),
        stored.headers.get_str("last-modified"),
    ) {
        (Some(theirs), Some(ours)) => parse_http_date(theirs) == parse_http_date(ours),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// What a `200` to a `HEAD` says of the stored `GET` response.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadVerdict {
    /// The same body: the stored response takes the HEAD's fields.
    Confirms,
    /// Another body (or status): the stored response is outdated.
    Contradicts,
    /// No validator to tell either way.
    Silent,
}

/// RFC 9111 §4.3.5: a `200` to a `HEAD` confirms the stored `GET` response
/// when every validator it carries (`ETag`, `Last-Modified`) equals the
/// stored one and its `Content-Length`, if any, is the stored body's
/// length. Compared exactly: a HEAD answered as a GET without its body
/// carries the very fields the GET would.
pub fn compare_head(stored: &ResponseHead, body_len: usize, head: &ResponseHead) -> HeadVerdict {
    let etag = head.headers.get_str("etag").map(str::trim);
    let last_modified = head.headers.get_str("last-modified");
    if etag.is_none() && last_modified.is_none() {
        return HeadVerdict::Silent;
    }
    let same_etag =
        etag.is_none_or(|tag| stored.headers.get_str("etag").map(str::trim) == Some(tag));
    let same_date = last_modified.is_none_or(|theirs| {
        let ours = stored.headers.get_str("last-modified");
        ours.and_then(parse_http_date).is_some()
            && ours.and_then(parse_http_date) == parse_http_date(theirs)
    });
    let same_length = match content_length(&head.headers) {
        Ok(None) => true,
        Ok(Some(length)) => length == body_len as u64,
        Err(_) => false,
    };
    if stored.status == 200 && same_etag && same_date && same_length {
        HeadVerdict::Confirms
    } else {
        HeadVerdict::Contradicts
    }
}

/// Fields that describe the stored body's bytes: a 304 leaves them as
/// they are (RFC 9111 §3.2 lets a cache keep what assures the integrity of
/// what it stored). A 304 that says `Content-Encoding: gzip` of a body
/// stored uncompressed would have every later client get bytes its coding
/// does not match; a weakly matching `ETag` names another rendering.
const DESCRIBE_THE_BODY: [&str; 7] = [
    "content-encoding",
    "content-range",
    "content-md5",
    "content-digest",
    "repr-digest",
    "digest",
    "etag",
];

/// §4.3.4: a 304 refreshes the stored head: its fields replace the stored
/// ones of the same name. Not merged: framing and hop-by-hop fields
/// (§3.1), the fields that describe the stored body, and `Set-Cookie`,
/// which a 304 carries for the client that caused it (a session refreshed
/// on revalidation), not for everyone the entry is served to afterwards.
pub fn refresh_from_304(stored: &mut ResponseHead, not_modified: &ResponseHead) {
    let mut fresh = not_modified.headers.clone();
    strip_hop_by_hop(&mut fresh, false);
    fresh.remove("set-cookie");
    for name in DESCRIBE_THE_BODY {
        fresh.remove(name);
    }
    for (name, _) in fresh.iter() {
        stored.headers.remove(name);
    }
    for (name, value) in fresh.iter() {
        stored.headers.push(name, value);
    }
}

/// Methods whose success invalidates what is stored for their URI (§4.4).
pub fn is_unsafe(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::date::format_http_date;
    use crate::http::Version;

    fn settings() -> Settings {
        Settings {
            ttl: Duration::from_secs(3600),
            cache_unlabeled: false,
            stale_if_error: Duration::from_secs(60),
            stale_while_revalidate: Duration::ZERO,
            targeting: Targeting::default(),
            cache_valid: Arc::default(),
        }
    }

    #[test]
    fn directive_names_are_case_insensitive() {
        let cc =
            CacheControl::parse(&get(&[("Cache-Control", "MAX-AGE=5, No-Store, private")]).headers);
        assert_eq!(cc.max_age, Some(5));
        assert!(cc.no_store && cc.private);
    }

    fn get(headers: &[(&str, &str)]) -> RequestHead {
        let mut h = Headers::new();
        h.push("Host", "Example.com");
        for (n, v) in headers {
            h.push(*n, *v);
        }
        RequestHead {
            method: "GET".into(),
            target: "/a?b".into(),
            version: Version::Http11,
            headers: h,
        }
    }

    fn response(status: u16, headers: &[(&str, &str)]) -> ResponseHead {
        let mut r = ResponseHead::new(status);
        for (n, v) in headers {
            r.headers.push(*n, *v);
        }
        r
    }

    fn fresh_for(req: &[(&str, &str)], status: u16, resp: &[(&str, &str)]) -> Option<Duration> {
        fresh_with(&settings(), req, status, resp)
    }

    /// The freshness `storable` gives a response under `settings`.
    fn fresh_with(
        settings: &Settings,
        req: &[(&str, &str)],
        status: u16,
        resp: &[(&str, &str)],
    ) -> Option<Duration> {
        let lifetime = storable(
            &get(req),
            &response(status, resp),
            SystemTime::now(),
            settings,
        );
        lifetime.map(|l| l.fresh)
    }

    /// The test settings with `cache_valid` set to `rules`.
    fn with_cache_valid(rules: &str) -> Settings {
        Settings {
            cache_valid: Arc::new(CacheValid::parse(rules).unwrap()),
            ..settings()
        }
    }

    #[test]
    fn an_odd_byte_in_one_directive_does_not_hide_the_others() {
        // Latin-1 in a quoted extension (obs-text): `private` still counts.
        let mut r = response(200, &[("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        r.headers
            .push("Cache-Control", b"private, max-age=600, x-note=\"caf\xe9\"");
        assert_eq!(
            storable(&get(&[]), &r, SystemTime::now(), &settings()),
            None
        );
    }

    #[test]
    fn keys() {
        assert_eq!(primary_key(&get(&[]), "http"), "example.com/a?b");
        let mut h = Headers::new();
        h.push("Accept-Encoding", "gzip");
        assert_eq!(
            variant_key("k", &["accept-encoding".into()], &h),
            "k\naccept-encoding=gzip"
        );
    }

    #[test]
    fn location_and_content_location_name_keys_on_the_same_host_only() {
        let mut post = get(&[]);
        post.method = "POST".into();
        post.target = "/shop/cart/add?x=1".into();
        post.headers.set("Host", "Shop.Example:80");
        let keys = primary_keys_of_uri(&post);
        let named = |reference: &str| keys_of_reference(&keys, reference).map(|[http, _]| http);
        for (reference, key) in [
            ("/shop/cart", "shop.example/shop/cart"),
            (
                "http://shop.example/shop/cart#top",
                "shop.example/shop/cart",
            ),
            ("HTTPS://SHOP.example/", "shop.example/"),
            ("//shop.example:80?page=2", "shop.example/?page=2"),
            ("view", "shop.example/shop/cart/view"),
            ("../list?all", "shop.example/shop/list?all"),
            ("./a/./b/..", "shop.example/shop/cart/a/"),
            ("?x=2", "shop.example/shop/cart/add?x=2"),
            ("/%7Euser/%2f", "shop.example/~user/%2F"),
            ("/../../etc", "shop.example/etc"),
        ] {
            assert_eq!(named(reference).as_deref(), Some(key), "{reference}");
        }
        let [http, https] = keys_of_reference(&keys, "/shop/cart").unwrap();
        assert_eq!(https, format!("https://{http}"));
        // Another origin's pages, or none at all.
        for reference in [
            "http://other.example/shop/cart",
            "//shop.example:8080/",
            "http://user@shop.example/",
            "mailto:shop@example.com",
            "ftp://shop.example/",
            "",
            "#top",
        ] {
            assert_eq!(named(reference), None, "{reference}");
        }
    }

    #[test]
    fn a_reference_with_raw_characters_names_the_uri_a_browser_asks_for() {
        // PHP's header() and others send a Location as given: a raw `é`
        // or space, which a browser follows percent-encoded in UTF-8.
        let mut post = get(&[]);
        post.method = "POST".into();
        post.target = "/cart".into();
        let keys = primary_keys_of_uri(&post);
        for (reference, followed) in [
            ("/caf\u{e9}?q=\u{e9}t\u{e9}", "/caf%c3%a9?q=%C3%A9t%C3%A9"),
            ("http://example.com/a b", "/a%20b"),
            ("na\u{ef}ve", "/na%C3%AFve"),
        ] {
            let mut browser = get(&[]);
            browser.target = followed.into();
            let [named, _] = keys_of_reference(&keys, reference).unwrap();
            assert_eq!(named, primary_key(&browser, "http"), "{reference}");
        }
    }

    #[test]
    fn one_server_is_one_key_however_its_host_is_spelled() {
        let key_for = |host: &str| {
            let mut request = get(&[]);
            request.headers.set("Host", host);
            primary_key(&request, "http")
        };
        for same in [
            "example.com",
            "EXAMPLE.com:80",
            "example.com.",
            "example.com:0080",
        ] {
            assert_eq!(key_for(same), "example.com/a?b", "{same}");
        }
        assert_eq!(key_for("example.com:8080"), "example.com:8080/a?b");
        assert_eq!(key_for("example.com:08080"), "example.com:8080/a?b");
        assert_eq!(key_for("[::1]"), "[::1]/a?b");
        assert_eq!(key_for("[::1]:80"), "[::1]/a?b");
        assert_eq!(key_for("[::1]:81"), "[::1]:81/a?b");
        assert_eq!(key_for("10.0.0.1:80"), "10.0.0.1/a?b");
    }

    #[test]
    fn one_resource_is_one_key_however_its_path_is_percent_encoded() {
        let key_for = |target: &str| {
            let mut request = get(&[]);
            request.target = target.to_string();
            request.headers.set("Host", "h");
            primary_key(&request, "http")
        };
        assert_eq!(key_for("/a%2fb?q=%3d"), "h/a%2Fb?q=%3D");
        assert_eq!(key_for("/a%2Fb?q=%3D"), "h/a%2Fb?q=%3D");
        // Unreserved characters decoded; reserved ones stay encoded.
        assert_eq!(key_for("/%7Euser/%41%62%2d%5f"), "h/~user/Ab-_");
        // Dots stay encoded: no dot-segment appears that was not sent.
        assert_eq!(key_for("/a/%2e%2e/b"), "h/a/%2E%2E/b");
        assert_eq!(key_for("/a%2F%3F%25"), "h/a%2F%3F%25");
        // A lone `%` is written as the escape it stands for, so that no
        // escape appears that was not sent (`%%300` is not `%00`).
        assert_eq!(key_for("/100%"), "h/100%25");
        assert_eq!(key_for("/%g1%4"), "h/%25g1%254");
        assert_eq!(key_for("/%é%41"), "h/%25éA");
        assert_eq!(key_for("/%%300"), "h/%2500");
        // Encoded UTF-8 bytes stay encoded: only the hex case changes.
        assert_eq!(key_for("/%c3%a9"), "h/%C3%A9");
    }

    #[test]
    fn keys_stored_in_an_older_spelling_are_respelled_and_todays_are_kept() {
        assert_eq!(respell_key("h/a%2fb?q=%3d"), "h/a%2Fb?q=%3D");
        assert_eq!(respell_key("H.:80/%7Eu\naccept=%2f"), "h/~u\naccept=/");
        // Variant values as an older version spelled them: a list's in
        // one spelling, another field's as they were.
        assert_eq!(
            respell_key("h/a\naccept-language=en, De\nx-a\nfoo=1, 2%09"),
            "h/a\naccept-language=en,de\nx-a\nfoo=1, 2%09"
        );
        assert_eq!(respell_key("h"), "h");
        assert_eq!(respell_key(""), "");
        for target in ["/", "/a%2Fb?x=%25", "/100%25", "/%C3%A9/~u"] {
            for host in ["h", "[::1]:81", "10.0.0.1:8080", ""] {
                let mut request = get(&[]);
                request.target = target.to_string();
                request.headers.set("Host", host);
                let key = primary_key(&request, "http");
                assert_eq!(respell_key(&key), key);
                let secure = primary_key(&request, "https");
                assert_eq!(secure, format!("https://{key}"));
                assert_eq!(respell_key(&secure), secure);
                let varied = format!("{key}\nx=1");
                assert_eq!(respell_key(&varied), varied);
            }
        }
    }

    proptest::proptest! {
        /// A variant key is spelled as it will be read back from a
        /// snapshot, whatever bytes the request's field held.
        #[test]
        fn variant_keys_are_respelled_as_they_are(
            values in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::prop_oneof![
                        proptest::sample::select(b" ,\"\\%\t=a".to_vec()),
                        proptest::num::u8::ANY,
                    ],
                    0..12,
                ),
                0..3,
            ),
            name in proptest::sample::select(vec!["accept-language", "x-a"]),
        ) {
            let mut h = Headers::new();
            for v in &values {
                h.push(name, v);
            }
            let key = variant_key("h/", &[name.to_string()], &h);
            proptest::prop_assert_eq!(respell_key(&key), key);
        }

        /// Normalising a path twice changes nothing more, hex case never
        /// matters, and two paths share a key only if they decode to the
        /// same bytes (no two resources are ever confused).
        #[test]
        fn percent_normalisation_is_stable_and_only_merges_equivalents(
            path in "(/|[a-zA-Z0-9._~-]|%[0-9a-fA-F]{2}|%|\\?){0,24}",
        ) {
            let mut once = String::new();
            push_path(&mut once, &path);
            let mut twice = String::new();
            push_path(&mut twice, &once);
            proptest::prop_assert_eq!(&once, &twice);
            let mut flipped = String::new();
            push_path(&mut flipped, &flip_hex_case(&path));
            proptest::prop_assert_eq!(&once, &flipped);
            proptest::prop_assert_eq!(decoded(&once), decoded(&path));
        }

        /// Whatever a backend puts in `Location`, the keys it names are on
        /// the request's own host, a path after it, and never a panic.
        #[test]
        fn a_reference_never_names_another_host(
            reference in "(https?://|//|/|\\.\\.?/|[a-z]+:)?([a-zA-Z0-9.:@\\[\\]%?#/ é\\t-]){0,24}",
        ) {
            let mut post = RequestHead {
                method: "POST".into(),
                target: "/a/b?c".into(),
                version: Version::Http11,
                headers: Headers::new(),
            };
            post.headers.push("Host", "shop.example");
            let keys = primary_keys_of_uri(&post);
            if let Some([http, https]) = keys_of_reference(&keys, &reference) {
                proptest::prop_assert!(http.starts_with("shop.example/"), "{}", http);
                proptest::prop_assert_eq!(https, format!("https://{http}"));
            }
        }
    }

    /// `path` with the case of the hex digits of every complete %-escape
    /// swapped.
    fn flip_hex_case(path: &str) -> String {
        let b = path.as_bytes();
        let mut out = b.to_vec();
        let mut i = 0;
        while i + 2 < b.len() {
            if b[i] == b'%' && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
                for k in [i + 1, i + 2] {
                    out[k] = if b[k].is_ascii_uppercase() {
                        b[k].to_ascii_lowercase()
                    } else {
                        b[k].to_ascii_uppercase()
                    };
                }
                i += 3;
            } else {
                i += 1;
            }
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// The bytes a path names, every valid %-escape decoded.
    fn decoded(path: &str) -> Vec<u8> {
        let b = path.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let hex = |c: u8| char::from(c).to_digit(16);
            match (
                b[i],
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            ) {
                (b'%', Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                }
                (c, _, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        out
    }

    #[test]
    fn variant_keys_tell_every_value_apart() {
        let vary = ["x-lang".to_string()];
        let key_of = |values: &[&[u8]]| {
            let mut h = Headers::new();
            for v in values {
                h.push("X-Lang", v);
            }
            variant_key("k", &vary, &h)
        };
        let keys = [
            key_of(&[]),
            key_of(&[b""]),
            key_of(&[b"\xff"]),
            key_of(&[b"\xfe"]),
            key_of(&["\u{fffd}".as_bytes()]),
            key_of(&[b"%FF"]),
            key_of(&[b"a\tb"]),
            key_of(&[b"a b"]),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(key_of(&[]), "k\nx-lang");
        assert_eq!(key_of(&[b""]), "k\nx-lang=");
        assert_eq!(key_of(&[b"caf\xc3\xa9 %"]), "k\nx-lang=caf%C3%A9 %25");
        // Several lines are one list (RFC 9110 §5.3), of a field known to
        // be one; another's stay apart.
        assert_ne!(key_of(&[b"a", b"b"]), key_of(&[b"a, b"]));
        assert_eq!(key_of(&[b"a", b"b"]), "k\nx-lang=a%0Ab");
        assert_eq!(
            keyed("Accept-Language", &["a", "b"]),
            keyed("Accept-Language", &["a, b"])
        );
    }

    fn keyed(name: &str, values: &[&str]) -> String {
        let mut h = Headers::new();
        for v in values {
            h.push(name, v);
        }
        variant_key("k", &[name.to_ascii_lowercase()], &h)
    }

    #[test]
    fn variant_keys_merge_only_the_spellings_of_one_list() {
        let one = keyed("Accept", &["1,2"]);
        assert_eq!(one, "k\naccept=1,2");
        for same in [
            &[" 1, 2 "][..],
            &["1", "2"],
            &["1 ,\t2"],
            &["1, ,2,"],
            &[",1", "", "2"],
        ] {
            assert_eq!(keyed("Accept", same), one, "{same:?}");
        }
        for other in [
            &["2,1"][..],
            &["1 2"],
            &["12"],
            &["1"],
            &["1,2,3"],
            &["\"1,2\""],
        ] {
            assert_ne!(keyed("Accept", other), one, "{other:?}");
        }
        // Inside a quoted string nothing is normalized.
        assert_ne!(
            keyed("Accept", &["\"a, b\""]),
            keyed("Accept", &["\"a,b\""])
        );
        // Case, only where the field's values are case-insensitive.
        let lang = keyed("Accept-Language", &["en, de;q=0.5"]);
        assert_eq!(keyed("Accept-Language", &["EN , De;Q=0.5"]), lang);
        assert_ne!(keyed("Accept-Language", &["de;q=0.5, en"]), lang);
        assert_eq!(
            keyed("Accept-Encoding", &["GZIP", "br"]),
            keyed("Accept-Encoding", &["gzip,br"])
        );
        assert_ne!(keyed("X-Lang", &["EN"]), keyed("X-Lang", &["en"]));
        // An empty field is not an absent one.
        assert_ne!(keyed("Accept", &[" "]), keyed("Accept", &[]));
    }

    #[test]
    fn variant_keys_keep_a_field_that_is_no_list_as_sent() {
        let ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 \
                  (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        let one = keyed("User-Agent", &[ua]);
        assert_eq!(keyed("User-Agent", &[ua]), one);
        let (first, second) = ua.split_once(", ").unwrap();
        for other in [
            &[&*ua.replace(", ", ",")][..],
            &[&*ua.replace(", ", " ,\t")],
            &[&*format!("{ua},")],
            &[&*format!("{ua}, ")],
            &[&*format!(",{ua}")],
            &[first, second],
        ] {
            assert_ne!(keyed("User-Agent", other), one, "{other:?}");
        }
        // Nor are the lines of another field combined, or its case changed.
        assert_ne!(
            keyed("Cookie", &["a=1, b=2"]),
            keyed("Cookie", &["a=1,b=2"])
        );
        assert_ne!(keyed("X-A", &["1", "2"]), keyed("X-A", &["1, 2"]));
        assert_ne!(keyed("X-A", &["1", "2"]), keyed("X-A", &["1,2"]));
        assert_ne!(keyed("X-A", &["a"]), keyed("X-A", &["A"]));
        // A line may not pass for two (no parsed value holds a line feed).
        assert_ne!(keyed("X-A", &["1", "2"]), keyed("X-A", &["1%0A2"]));
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
    fn delta_seconds_are_digits_capped_at_2_pow_31() {
        assert_eq!(delta_seconds("0"), Some(0));
        assert_eq!(delta_seconds("600"), Some(600));
        assert_eq!(delta_seconds("4294967296"), Some(MAX_DELTA_SECONDS));
        assert_eq!(
            delta_seconds("18446744073709551616000"),
            Some(MAX_DELTA_SECONDS)
        );
        for bad in ["", "+5", "-5", " 5", "5s", "0x5", "1.5"] {
            assert_eq!(delta_seconds(bad), None, "{bad:?}");
        }
        // A max-age too large to represent still means "fresh", for ttl.
        let huge = "max-age=99999999999999999999999";
        assert_eq!(
            fresh_for(&[], 200, &[("Cache-Control", huge)]),
            Some(Duration::from_secs(3600))
        );
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

    fn surrogate_settings() -> Settings {
        Settings {
            targeting: Targeting {
                surrogate_id: Some(Arc::from("edge")),
                x_accel_expires: true,
            },
            ..settings()
        }
    }

    /// What `storable` gives a response, with the cache answering to
    /// `edge` and reading X-Accel-Expires.
    fn targeted(req: &[(&str, &str)], resp: &[(&str, &str)]) -> Option<Lifetime> {
        storable(
            &get(req),
            &response(200, resp),
            SystemTime::now(),
            &surrogate_settings(),
        )
    }

    fn targeted_fresh(resp: &[(&str, &str)]) -> Option<Duration> {
        targeted(&[], resp).map(|l| l.fresh)
    }

    #[test]
    fn surrogate_control_goes_before_cache_control_and_expires() {
        let secs = |s| Some(Duration::from_secs(s));
        let sc = |v| ("Surrogate-Control", v);
        assert_eq!(targeted_fresh(&[sc("max-age=60")]), secs(60));
        // Cache-Control is for browsers and other caches.
        for cc in ["no-store", "private", "no-cache", "max-age=5", "s-maxage=5"] {
            let resp = [("Cache-Control", cc), sc("max-age=60")];
            assert_eq!(targeted_fresh(&resp), secs(60), "{cc}");
        }
        let expires = [("Expires", "0"), sc("max-age=60")];
        assert_eq!(targeted_fresh(&expires), secs(60));
        assert_eq!(
            targeted_fresh(&[("Cache-Control", "max-age=600"), sc("no-store")]),
            None
        );
        // Targeted at this cache, at another, at none; names in any case.
        assert_eq!(targeted_fresh(&[sc("max-age=60;edge")]), secs(60));
        assert_eq!(targeted_fresh(&[sc("max-age=60;EDGE")]), secs(60));
        assert_eq!(targeted_fresh(&[sc("MaX-AgE=60")]), secs(60));
        assert_eq!(targeted_fresh(&[sc("max-age=60;other")]), None);
        assert_eq!(
            targeted_fresh(&[("Cache-Control", "max-age=5"), sc("max-age=60;other")]),
            secs(5)
        );
        assert_eq!(
            targeted_fresh(&[sc("max-age=5, max-age=60;other, no-store;other")]),
            secs(5)
        );
        assert_eq!(targeted_fresh(&[sc("foo, max-age=60")]), secs(60));
        // Nothing of storing or lifetime: Cache-Control decides.
        let content = [("Cache-Control", "max-age=5"), sc("content=\"ESI/1.0\"")];
        assert_eq!(targeted_fresh(&content), secs(5));
        // Still capped by `ttl`, and a lifetime of 0 without a validator is
        // not worth storing.
        assert_eq!(targeted_fresh(&[sc("max-age=99999")]), secs(3600));
        assert_eq!(
            targeted_fresh(&[
                ("Expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
                sc("max-age=0")
            ]),
            None
        );
        // Not read at all without a device token.
        let resp = response(200, &[("Cache-Control", "no-store"), sc("max-age=60")]);
        assert_eq!(
            storable(&get(&[]), &resp, SystemTime::now(), &settings()),
            None
        );
    }

    /// Edge Architecture 1.0 §3: "If more than one is targeted at a
    /// surrogate, the most specific applies" (`max-age=60, no-store;abc`:
    /// `abc` applies no-store, the others max-age=60). A directive
    /// targeted at this cache goes before one targeted at none, wherever
    /// either stands in the field.
    #[test]
    fn a_directive_targeted_at_this_cache_goes_before_an_untargeted_one() {
        let secs = |s| Some(Duration::from_secs(s));
        let sc = |v| ("Surrogate-Control", v);
        for field in [
            "max-age=5, max-age=60;edge",
            "max-age=60;edge, max-age=5",
            "max-age=5, max-age=60;edge, no-store;other",
        ] {
            assert_eq!(targeted_fresh(&[sc(field)]), secs(60), "{field}");
        }
        // The windows too.
        for field in [
            "max-age=60+5, max-age=60+600;edge",
            "max-age=60;edge, stale-if-error=5, stale-if-error=600;edge",
        ] {
            let lifetime = targeted(&[], &[sc(field)]).unwrap();
            assert_eq!(lifetime.stale_if_error, Duration::from_secs(600), "{field}");
        }
        // A no-store for anyone still keeps it out.
        assert_eq!(targeted_fresh(&[sc("no-store, max-age=60;edge")]), None);
        assert_eq!(targeted_fresh(&[sc("max-age=60, no-store;edge")]), None);
    }

    #[test]
    fn surrogate_control_windows_and_permissions() {
        let sc = |v| ("Surrogate-Control", v);
        // `max-age=60+600`: served stale for up to 600 s when the origin
        // fails; its own stale-if-error and stale-while-revalidate count.
        let plus = targeted(&[], &[sc("max-age=60+600")]).unwrap();
        assert_eq!(plus.fresh, Duration::from_secs(60));
        assert_eq!(plus.stale_if_error, Duration::from_secs(600));
        let sie = targeted(&[], &[sc("max-age=60, stale-if-error=30")]).unwrap();
        assert_eq!(sie.stale_if_error, Duration::from_secs(30));
        // Cache-Control's must-revalidate is not for this cache.
        let resp = [("Cache-Control", "must-revalidate"), sc("max-age=60")];
        assert_eq!(
            targeted(&[], &resp).unwrap().stale_if_error,
            Duration::from_secs(60)
        );
        // An explicit lifetime for this cache lets it store answers to
        // requests with cookies, as max-age does; to requests with
        // credentials, only with Cache-Control's permission (§3.5).
        assert!(targeted(&[("Cookie", "a=1")], &[sc("max-age=60")]).is_some());
        // Not a lifetime of zero, as for max-age=0 (it would be revalidated
        // with this user's validator for the next).
        let zero = [("ETag", "\"x\""), sc("max-age=0")];
        assert!(targeted(&[("Cookie", "a=1")], &zero).is_none());
        assert!(targeted(&[], &zero).is_some());
        let auth = [("Authorization", "Basic eDp5")];
        assert!(targeted(&auth, &[sc("max-age=60")]).is_none());
        assert!(targeted(&auth, &[("X-Accel-Expires", "60")]).is_none());
        let private = [("Cache-Control", "private"), sc("max-age=60")];
        assert!(targeted(&auth, &private).is_none());
        for permission in ["public", "s-maxage=5", "must-revalidate"] {
            let resp = [("Cache-Control", permission), sc("max-age=60")];
            let lifetime = targeted(&auth, &resp);
            assert_eq!(
                lifetime.map(|l| l.fresh.as_secs()),
                Some(60),
                "{permission}"
            );
        }
        // Set-Cookie still needs Cache-Control's `public`.
        assert_eq!(
            targeted(&[], &[("Set-Cookie", "a=1"), sc("max-age=60")]),
            None
        );
        let public = [
            ("Cache-Control", "public"),
            ("Set-Cookie", "a=1"),
            sc("max-age=60"),
        ];
        assert!(targeted(&[], &public).is_some());
    }

    #[test]
    fn cache_valid_reads_as_nginx_proxy_cache_valid() {
        let rules = CacheValid::parse("200 301 302 10m, 404 1m, any 30s").unwrap();
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(rules.lifetime(200), secs(600));
        assert_eq!(rules.lifetime(302), secs(600));
        assert_eq!(rules.lifetime(404), secs(60));
        assert_eq!(rules.lifetime(500), secs(30));
        assert_eq!(rules.capped_by(Duration::from_secs(600)), None);
        assert_eq!(
            rules.capped_by(Duration::from_secs(60)).as_deref(),
            Some("200 is given 600s, but ttl caps every lifetime at 60s")
        );
        // Said as set: not `1s` for both of `1500ms` and a `1s` ttl.
        let fine = CacheValid::parse("200 1500ms").unwrap();
        assert_eq!(
            fine.capped_by(Duration::from_secs(1)).as_deref(),
            Some("200 is given 1500ms, but ttl caps every lifetime at 1s")
        );
        let no_any = CacheValid::parse(" 200 5m ,").unwrap();
        assert_eq!(no_any.lifetime(200), secs(300));
        assert_eq!(no_any.lifetime(404), None);
        assert_eq!(CacheValid::parse("").unwrap(), CacheValid::default());
        for bad in [
            "10m",
            "200",
            "abc 10m",
            "600 1m",
            "99 1m",
            "206 1m",
            "304 1m",
            "200 x",
            "200 1m, 200 2m",
            "any 1m, any 2m",
        ] {
            assert!(CacheValid::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cache_valid_gives_a_lifetime_to_responses_that_say_nothing_of_it() {
        let configured = with_cache_valid("200 302 10m, 404 1m");
        let fresh = |req: &[(&str, &str)], status, resp: &[(&str, &str)]| {
            fresh_with(&configured, req, status, resp)
        };
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(fresh(&[], 200, &[]), secs(600));
        assert_eq!(fresh(&[], 404, &[]), secs(60));
        // A status not cacheable by default, because the operator says so.
        assert_eq!(fresh(&[], 302, &[]), secs(600));
        // Not named: as before (no word on freshness, no validator).
        assert_eq!(fresh(&[], 410, &[]), None);
        // The origin's own word wins, and before the heuristic.
        assert_eq!(fresh(&[], 200, &[("Cache-Control", "max-age=5")]), secs(5));
        let lm = format_http_date(SystemTime::now() - Duration::from_secs(100_000));
        assert_eq!(fresh(&[], 200, &[("Last-Modified", &lm)]), secs(600));
        // What forbids storing still does; a request's cookie does not.
        assert_eq!(fresh(&[], 200, &[("Cache-Control", "private")]), None);
        assert_eq!(fresh(&[], 200, &[("Cache-Control", "no-store")]), None);
        assert_eq!(fresh(&[], 200, &[("Set-Cookie", "a=1")]), None);
        assert_eq!(fresh(&[("Cookie", "a=1")], 200, &[]), secs(600));
        assert_eq!(fresh(&[("Authorization", "Basic eDp5")], 200, &[]), None);
        // Capped by ttl.
        let long = with_cache_valid("200 2h");
        assert_eq!(fresh_with(&long, &[], 200, &[]), secs(3600));
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
    fn x_accel_expires_as_nginx_reads_it() {
        let secs = |s| Some(Duration::from_secs(s));
        let xa = |v| ("X-Accel-Expires", v);
        assert_eq!(
            targeted_fresh(&[("Cache-Control", "no-store"), xa("60")]),
            secs(60)
        );
        assert_eq!(
            targeted_fresh(&[("Cache-Control", "max-age=600"), xa("0")]),
            None
        );
        let now = SystemTime::now();
        let date = format_http_date(now);
        let at = now.duration_since(UNIX_EPOCH).unwrap().as_secs() + 100;
        let until = format!("@{at}");
        let fresh = targeted_fresh(&[("Date", &date), xa(&until)]).unwrap();
        assert!((99..=100).contains(&fresh.as_secs()), "{fresh:?}");
        // Another form is ignored, as nginx ignores it.
        for bad in ["", "-5", "1.5", "@", "@x", "soon"] {
            let resp = [("Cache-Control", "max-age=5"), xa(bad)];
            assert_eq!(targeted_fresh(&resp), secs(5), "{bad:?}");
        }
        // Surrogate-Control first.
        let both = [xa("60"), ("Surrogate-Control", "max-age=30")];
        assert_eq!(targeted_fresh(&both), secs(30));
        // Off: Cache-Control alone.
        let off = Settings {
            targeting: Targeting {
                surrogate_id: None,
                x_accel_expires: false,
            },
            ..settings()
        };
        let resp = response(200, &[("Cache-Control", "max-age=5"), xa("60")]);
        let lifetime = storable(&get(&[]), &resp, SystemTime::now(), &off);
        assert_eq!(lifetime.map(|l| l.fresh), secs(5));
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
    }

    #[test]
    fn conditionals() {
        let stored = response(
            200,
            &[
                ("ETag", "W/\"v1\""),
                ("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ],
        );
        let h = |n: &str, v: &str| {
            let mut h = Headers::new();
            h.push(n, v);
            h
        };
        assert!(not_modified(&h("If-None-Match", "\"v0\", \"v1\""), &stored));
        assert!(!not_modified(&h("If-None-Match", "\"v2\""), &stored));
        assert!(not_modified(&h("If-None-Match", "*"), &stored));
        // Without Last-Modified, the stored Date stands for it.
        let dated = response(200, &[("Date", "Sun, 06 Nov 1994 08:49:37 GMT")]);
        for stored in [&stored, &dated] {
            let since = |date: &str| not_modified(&h("If-Modified-Since", date), stored);
            assert!(since("Sun, 06 Nov 1994 08:49:37 GMT"));
            assert!(!since("Sat, 05 Nov 1994 08:49:37 GMT"));
        }
    }

    #[test]
    fn a_304_refreshes_fields() {
        let mut stored = response(
            200,
            &[
                ("ETag", "\"a\""),
                ("Cache-Control", "max-age=1"),
                ("X-Keep", "1"),
            ],
        );
        let nm = response(
            304,
            &[
                ("Cache-Control", "max-age=60"),
                ("Content-Length", "0"),
                ("Content-Type", "text/plain"),
                ("Content-Encoding", "gzip"),
                ("ETag", "W/\"a\""),
            ],
        );
        refresh_from_304(&mut stored, &nm);
        assert_eq!(stored.headers.get_str("cache-control"), Some("max-age=60"));
        assert_eq!(stored.headers.get_str("content-type"), Some("text/plain"));
        assert_eq!(stored.headers.get_str("x-keep"), Some("1"));
        assert!(!stored.headers.contains("content-length"));
        // What describes the stored bytes stays as it was stored.
        assert!(!stored.headers.contains("content-encoding"));
        assert_eq!(stored.headers.get_str("etag"), Some("\"a\""));
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
    fn a_head_confirms_the_stored_get_only_with_its_validators_and_length() {
        const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
        let stored = response(200, &[("ETag", "\"v1\""), ("Last-Modified", LM)]);
        let of = |fields: &[(&str, &str)]| compare_head(&stored, 5, &response(200, fields));
        use HeadVerdict::*;
        assert_eq!(of(&[("ETag", "\"v1\"")]), Confirms);
        assert_eq!(
            of(&[("Last-Modified", LM), ("Content-Length", "5")]),
            Confirms
        );
        assert_eq!(of(&[("ETag", " \"v1\" "), ("Last-Modified", LM)]), Confirms);
        assert_eq!(of(&[("ETag", "\"v2\"")]), Contradicts);
        assert_eq!(of(&[("ETag", "W/\"v1\"")]), Contradicts);
        assert_eq!(
            of(&[
                ("ETag", "\"v1\""),
                ("Last-Modified", "Mon, 07 Nov 1994 08:49:37 GMT")
            ]),
            Contradicts
        );
        assert_eq!(
            of(&[("ETag", "\"v1\""), ("Content-Length", "6")]),
            Contradicts
        );
        assert_eq!(
            of(&[("ETag", "\"v1\""), ("Content-Length", "+5")]),
            Contradicts
        );
        assert_eq!(of(&[("Content-Length", "5"), ("X-Other", "1")]), Silent);
        // A stored 404, or one without the validator the HEAD names.
        let gone = response(404, &[("ETag", "\"v1\"")]);
        assert_eq!(
            compare_head(&gone, 5, &response(200, &[("ETag", "\"v1\"")])),
            Contradicts
        );
        let bare = response(200, &[]);
        assert_eq!(
            compare_head(&bare, 5, &response(200, &[("Last-Modified", LM)])),
            Contradicts
        );
    }
}
