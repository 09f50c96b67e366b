//! The directives this cache acts on: Cache-Control (RFC 9111 §5.2),
//! from either side, and the fields in which a response speaks to this
//! cache (RFC 9213's targeted fields, `Surrogate-Control`,
//! `X-Accel-Expires`).

use crate::http::structured::{parse_dictionary, Item};
use crate::http::Headers;
use std::sync::Arc;

/// Which fields the origin may use to speak to this cache, over
/// Cache-Control and Expires (meant for browsers and every other cache):
/// the targeted cache-control fields of RFC 9213 the settings list
/// (`CDN-Cache-Control`, or a name of the operator's own),
/// `Surrogate-Control` (W3C Edge Architecture 1.0, as Squid, Fastly and
/// Akamai read it) and nginx's `X-Accel-Expires`; and, about no lifetime,
/// `Surrogate-Key` (the tags a purge by tag names, see `tags`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Targeting {
    /// The device token this cache announces in `Surrogate-Capability` and
    /// answers to in targeted directives (`max-age=60;inverso`); `None`:
    /// `Surrogate-Control` is neither read nor removed.
    pub surrogate_id: Option<Arc<str>>,
    pub x_accel_expires: bool,
    /// RFC 9213's target list: the targeted fields read, the first
    /// present and valid one winning; lower case.
    pub fields: Arc<[Box<str>]>,
    /// `Surrogate-Key` is this cache's (the `surrogate_keys` setting):
    /// removed from responses, and its tags purged by; otherwise it
    /// passes through, for a CDN in front that reads it.
    pub surrogate_keys: bool,
}

impl Targeting {
    /// The fields that speak to this cache alone (and `X-Accel-Limit-Rate`,
    /// to the proxy): read, stored with the response, never sent on to a
    /// client.
    pub fn own_fields(&self) -> OwnFields {
        OwnFields {
            surrogate_control: self.surrogate_id.is_some(),
            x_accel_expires: self.x_accel_expires,
            surrogate_key: self.surrogate_keys,
            targeted: self.fields.clone(),
        }
    }
}

/// The one targeted field that speaks to every CDN, those in front of
/// this cache too: read when listed, and passed on (as Cloudflare passes
/// it on, and keeps its own `Cloudflare-CDN-Cache-Control`).
const CDN_CACHE_CONTROL: &str = "cdn-cache-control";

/// The fields of a response for this cache alone (see
/// [`Targeting::own_fields`]). Compared whole on every cache hit (an entry
/// stored under other settings is served without them): the targeted
/// list is one `Arc` per configuration, so equal settings compare by
/// pointer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnFields {
    surrogate_control: bool,
    x_accel_expires: bool,
    surrogate_key: bool,
    /// Every listed targeted field but [`CDN_CACHE_CONTROL`].
    targeted: Arc<[Box<str>]>,
}

impl OwnFields {
    /// Their names, lower case: with the settings' fields, the one that
    /// speaks to the proxy itself, `X-Accel-Limit-Rate` (stored, read
    /// at each hit, never served).
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let surrogate = self.surrogate_control.then_some("surrogate-control");
        let x_accel = self.x_accel_expires.then_some("x-accel-expires");
        let key = self.surrogate_key.then_some(super::SURROGATE_KEY);
        let targeted = self
            .targeted
            .iter()
            .map(|name| &**name)
            .filter(|name| !name.eq_ignore_ascii_case(CDN_CACHE_CONTROL));
        let rate = std::iter::once(crate::pace::ACCEL_LIMIT_RATE);
        (surrogate.into_iter().chain(x_accel).chain(key))
            .chain(targeted)
            .chain(rate)
    }

    /// Whether `name` (any case) is one of them.
    pub fn contains(&self, name: &str) -> bool {
        self.iter().any(|own| own.eq_ignore_ascii_case(name))
    }

    /// Takes them out of a response on its way to a client.
    pub fn remove_from(&self, headers: &mut Headers) {
        for name in self.iter() {
            headers.remove(name);
        }
    }
}

/// This cache's entry in a request's `Surrogate-Capability`, for the
/// device token `id` (the `surrogate_id` setting).
pub fn surrogate_capability(id: &str) -> String {
    format!("{id}=\"Surrogate/1.0\"")
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
        // RFC 9111 §5.2: no space around `=`. A lifetime or a window so
        // written gives none (`max-age =60` is no max-age, as nginx reads
        // it); a restriction (`private ="Set-Cookie"`) still restricts.
        let (name, value, spaced) = match directive.split_once('=') {
            Some((n, v)) => {
                let spaced = n.ends_with([' ', '\t']) || v.starts_with([' ', '\t']);
                (n.trim(), Some(v.trim().trim_matches('"')), spaced)
            }
            None => (directive, None, false),
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
            "max-age"
            | "s-maxage"
            | "max-stale"
            | "min-fresh"
            | "stale-if-error"
            | "stale-while-revalidate"
                if spaced => {}
            "no-store" => self.no_store = true,
            "must-understand" => self.must_understand = true,
            "no-cache" => self.no_cache = true,
            "private" => self.private = true,
            "public" => self.public = true,
            "must-revalidate" | "proxy-revalidate" => self.must_revalidate = true,
            "max-age" => self.max_age = self.max_age.or(seconds()),
            "s-maxage" => self.s_maxage = self.s_maxage.or(seconds()),
            // Any staleness only without a value: a bad one allows none.
            "max-stale" => self.max_stale = Some(value.map(|v| delta_seconds(v).unwrap_or(0))),
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
    /// ones in a field that targets it when the origin sent one (see
    /// [`Targeting`]: the listed RFC 9213 fields in their order, then
    /// `Surrogate-Control`, then `X-Accel-Expires`), else Cache-Control's.
    /// Cache-Control's `public` counts either way: it is what lets a
    /// response with `Set-Cookie` be stored, and a field about lifetimes
    /// is no such permission.
    pub fn of_response(headers: &Headers, targeting: &Targeting) -> CacheControl {
        let cc = CacheControl::parse(headers);
        let targeted = targeting
            .fields
            .iter()
            .find_map(|name| targeted_cache_control(headers, name))
            .or_else(|| {
                let id = targeting.surrogate_id.as_deref()?;
                surrogate_control(headers, id)
            })
            .or_else(|| {
                targeting
                    .x_accel_expires
                    .then(|| x_accel_expires(headers))
                    .flatten()
            });
        match targeted {
            Some(own) => CacheControl {
                public: cc.public || own.public,
                targeted: true,
                ..own
            },
            None => cc,
        }
    }

    /// The request asks to skip stored responses: `no-cache`, or the
    /// HTTP/1.0 `Pragma: no-cache` unless a Cache-Control says something
    /// this cache understands (§5.4: one of extensions only does not).
    pub fn request_no_cache(&self, headers: &Headers) -> bool {
        self.no_cache
            || (*self == CacheControl::default() && headers.has_token("pragma", "no-cache"))
    }
}

/// A targeted cache-control field (RFC 9213 §2): a Structured Field
/// Dictionary of Cache-Control's directives. `None` when it is absent,
/// empty or not a valid Dictionary (§2.1: the field is then ignored, and
/// the next one on the list, or Cache-Control, decides).
///
/// A value of the wrong type is one §2.1 says not to consume; read as
/// nothing, it would make a cache store more than the origin meant. So
/// it errs the way Cache-Control's parsing does: a directive that
/// restricts caching (`private=x-user`, a token where a string belongs)
/// counts unless it says false (`no-store=?0`); a lifetime that is not a
/// non-negative integer (`max-age=1.5`, `max-age="60"`) is 0, as an
/// invalid one makes a response stale (RFC 9111 §4.2.1); a stale window
/// or a permission (`public`, `must-understand`) of another type is left
/// out. Members come in order, a repeated one's last value winning.
fn targeted_cache_control(headers: &Headers, name: &str) -> Option<CacheControl> {
    let dictionary = parse_dictionary(headers.get_all(name))?;
    let mut cc = CacheControl::default();
    let (mut must_revalidate, mut proxy_revalidate) = (false, false);
    for (directive, value) in dictionary {
        let seconds = match value {
            Item::Integer(n) => u64::try_from(n).ok().map(|n| n.min(MAX_DELTA_SECONDS)),
            _ => None,
        };
        let restricts = !matches!(value, Item::Boolean(false));
        let permits = matches!(value, Item::Boolean(true));
        match directive.as_str() {
            "no-store" => cc.no_store = restricts,
            "no-cache" => cc.no_cache = restricts,
            "private" => cc.private = restricts,
            "must-revalidate" => must_revalidate = restricts,
            "proxy-revalidate" => proxy_revalidate = restricts,
            "must-understand" => cc.must_understand = permits,
            "public" => cc.public = permits,
            "max-age" => cc.max_age = Some(seconds.unwrap_or(0)),
            "s-maxage" => cc.s_maxage = Some(seconds.unwrap_or(0)),
            "stale-if-error" => cc.stale_if_error = seconds,
            "stale-while-revalidate" => cc.stale_while_revalidate = seconds,
            _ => {}
        }
    }
    cc.must_revalidate = must_revalidate || proxy_revalidate;
    Some(cc)
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
        Some(at) => cc.fresh_until = Some(unix_time(at)?),
        None => match delta_seconds(value)? {
            0 => cc.no_store = true,
            n => cc.max_age = Some(n),
        },
    }
    Some(cc)
}

/// The latest Unix time `X-Accel-Expires: @T` may name: the end of year
/// 9999, the latest an HTTP date can say.
const MAX_UNIX_TIME: u64 = 253_402_300_799;

/// `@T`'s T: digits, as delta-seconds, but capped at [`MAX_UNIX_TIME`]
/// rather than at 2^31, which as a moment is 19 January 2038: capped there,
/// every `@T` would be past from then on.
fn unix_time(value: &str) -> Option<u64> {
    digits_capped(value, MAX_UNIX_TIME)
}

/// The largest delta-seconds we keep (68 years): RFC 9111 §1.2.2, "If a
/// cache receives a delta-seconds value greater than the greatest integer
/// it can represent, or if any of its subsequent calculations overflows,
/// the cache MUST consider the value to be 2147483648 (2^31)".
pub(super) const MAX_DELTA_SECONDS: u64 = 1 << 31;

/// RFC 9111 §1.2.2: `delta-seconds = 1*DIGIT` (no sign, no space), capped
/// at [`MAX_DELTA_SECONDS`] so that no later sum or subtraction with it
/// can overflow.
pub(super) fn delta_seconds(value: &str) -> Option<u64> {
    digits_capped(value, MAX_DELTA_SECONDS)
}

/// `1*DIGIT` as a number, at most `cap` (more digits than a `u64` holds
/// too).
fn digits_capped(value: &str, cap: u64) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(value.parse::<u64>().map_or(cap, |n| n.min(cap)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::policy::test_support::{
        fresh_for, fresh_with, get, response, settings, with_cache_valid,
    };
    use crate::cache::policy::{storable, Lifetime, Settings};
    use crate::http::date::format_http_date;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    #[test]
    fn directive_names_are_case_insensitive() {
        let cc =
            CacheControl::parse(&get(&[("Cache-Control", "MAX-AGE=5, No-Store, private")]).headers);
        assert_eq!(cc.max_age, Some(5));
        assert!(cc.no_store && cc.private);
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

    fn surrogate_settings() -> Settings {
        Settings {
            targeting: Targeting {
                surrogate_id: Some(Arc::from("edge")),
                x_accel_expires: true,
                ..Targeting::default()
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
        let resp = [("Cache-Control", "public"), sc("max-age=60")];
        assert_eq!(targeted(&auth, &resp).map(|l| l.fresh.as_secs()), Some(60));
        // s-maxage and must-revalidate permit it for the revalidation they
        // impose once stale, which this cache does not read here: its
        // window would be the one the targeted field gives.
        for obligation in ["s-maxage=5", "must-revalidate"] {
            let resp = [("Cache-Control", obligation), sc("max-age=60")];
            assert_eq!(targeted(&auth, &resp), None, "{obligation}");
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

    /// The test settings reading `Inverso-Cache-Control`, then
    /// `CDN-Cache-Control`, before Surrogate-Control (targeted at `edge`).
    fn rfc_9213_settings() -> Settings {
        let mut settings = surrogate_settings();
        settings.targeting.fields =
            Arc::from(["inverso-cache-control".into(), CDN_CACHE_CONTROL.into()]);
        settings
    }

    fn rfc_9213_with_cache_valid() -> Settings {
        Settings {
            cache_valid: with_cache_valid("200 10m").cache_valid,
            ..rfc_9213_settings()
        }
    }

    fn rfc_9213(req: &[(&str, &str)], resp: &[(&str, &str)]) -> Option<Lifetime> {
        let now = SystemTime::now();
        storable(&get(req), &response(200, resp), now, &rfc_9213_settings())
    }

    fn rfc_9213_fresh(resp: &[(&str, &str)]) -> Option<u64> {
        rfc_9213(&[], resp).map(|l| l.fresh.as_secs())
    }

    #[test]
    fn the_first_listed_targeted_field_goes_before_the_others() {
        let own = |v| ("Inverso-Cache-Control", v);
        let cdn = |v| ("CDN-Cache-Control", v);
        let cc = ("Cache-Control", "max-age=5");
        // RFC 9213 §2.2: the first field on the list that is present,
        // valid and not empty; then Surrogate-Control, then Cache-Control.
        assert_eq!(
            rfc_9213_fresh(&[cc, cdn("max-age=60"), own("max-age=30")]),
            Some(30)
        );
        assert_eq!(rfc_9213_fresh(&[cc, cdn("max-age=60")]), Some(60));
        let sc = ("Surrogate-Control", "max-age=90");
        assert_eq!(rfc_9213_fresh(&[cc, sc, cdn("max-age=60")]), Some(60));
        for skipped in [
            "",
            "max-age=60,",
            "MAX-AGE=60",
            "max-age = 60",
            "max-age=\"60",
        ] {
            let resp = [cc, own(skipped), cdn("max-age=60")];
            assert_eq!(rfc_9213_fresh(&resp), Some(60), "{skipped:?}");
            assert_eq!(rfc_9213_fresh(&[cc, own(skipped)]), Some(5), "{skipped:?}");
        }
        // Not listed: not read (and, see store, passed on).
        let other = ("Akamai-Cache-Control", "max-age=60");
        assert_eq!(rfc_9213_fresh(&[cc, other]), Some(5));
        // Off: Cache-Control alone.
        let resp = response(200, &[cc, cdn("max-age=60")]);
        let lifetime = storable(&get(&[]), &resp, SystemTime::now(), &settings());
        assert_eq!(lifetime.map(|l| l.fresh.as_secs()), Some(5));
    }

    #[test]
    fn a_targeted_field_sets_cache_control_and_expires_aside() {
        let cdn = |v| ("CDN-Cache-Control", v);
        // RFC 9213 §3.1's examples: stored by this cache alone, or by
        // every cache but this one.
        let no_store = ("Cache-Control", "no-store");
        assert_eq!(rfc_9213_fresh(&[no_store, cdn("max-age=60")]), Some(60));
        let everyone = [("Cache-Control", "max-age=60"), cdn("no-store")];
        assert_eq!(rfc_9213_fresh(&everyone), None);
        // `none` names no directive, and is not empty: Cache-Control is
        // set aside, and with it its lifetime; a validator keeps the
        // response to be revalidated.
        let none = [no_store, ("ETag", "\"x\""), cdn("none")];
        assert_eq!(rfc_9213_fresh(&none), Some(0));
        let expires = [(
            "Expires",
            &*format_http_date(SystemTime::now() + Duration::from_secs(600)),
        )];
        let with_expires = [expires[0], ("ETag", "\"x\""), cdn("must-revalidate")];
        assert_eq!(rfc_9213_fresh(&with_expires), Some(0));
        // Every directive of Cache-Control, with its meaning there.
        assert_eq!(rfc_9213_fresh(&[cdn("private, max-age=60")]), None);
        assert_eq!(
            rfc_9213_fresh(&[cdn("private=\"x-user\", max-age=60")]),
            None
        );
        assert_eq!(
            rfc_9213_fresh(&[("ETag", "\"x\""), cdn("no-cache, max-age=60")]),
            Some(0)
        );
        assert_eq!(rfc_9213_fresh(&[cdn("s-maxage=30, max-age=60")]), Some(30));
        let windows = rfc_9213(&[], &[cdn("max-age=60, stale-if-error=600")]).unwrap();
        assert_eq!(windows.stale_if_error, Duration::from_secs(600));
        let strict = rfc_9213(&[], &[cdn("max-age=60, must-revalidate")]).unwrap();
        assert_eq!(strict.stale_if_error, Duration::ZERO);
        // A value of the wrong type errs toward caching less: a lifetime
        // is 0 (whatever cache_valid would give), a restriction counts
        // unless it says false, a stale window is left out.
        let valid = rfc_9213_with_cache_valid();
        for odd in ["max-age=1.5", "max-age=\"60\"", "max-age=-5", "max-age=?1"] {
            let resp = [("ETag", "\"x\""), cdn(odd)];
            assert_eq!(rfc_9213_fresh(&resp), Some(0), "{odd}");
            assert_eq!(
                fresh_with(&valid, &[], 200, &resp),
                Some(Duration::ZERO),
                "{odd}"
            );
        }
        assert_eq!(rfc_9213_fresh(&[cdn("private=x-user, max-age=60")]), None);
        assert_eq!(
            rfc_9213_fresh(&[cdn("private=(\"x-user\"), max-age=60")]),
            None
        );
        assert_eq!(rfc_9213_fresh(&[cdn("no-store=1, max-age=60")]), None);
        let no_cache_token = [("ETag", "\"x\""), cdn("no-cache=x-user, max-age=60")];
        assert_eq!(rfc_9213_fresh(&no_cache_token), Some(0));
        assert_eq!(rfc_9213_fresh(&[cdn("no-store=?0, max-age=60")]), Some(60));
        let odd_window = rfc_9213(&[], &[cdn("max-age=60, stale-if-error=1.5")]).unwrap();
        assert_eq!(
            odd_window.stale_if_error,
            Duration::from_secs(60),
            "the setting's"
        );
        let odd_public = [("Set-Cookie", "a=1"), cdn("public=1, max-age=60")];
        assert_eq!(rfc_9213_fresh(&odd_public), None);
        // A repeated directive: its last value (a Dictionary's rule).
        assert_eq!(rfc_9213_fresh(&[cdn("max-age=10, max-age=20")]), Some(20));
        assert_eq!(
            rfc_9213_fresh(&[cdn("no-store, max-age=60, no-store=?0")]),
            Some(60)
        );
        // Lines are one Dictionary.
        assert_eq!(rfc_9213_fresh(&[cdn("max-age=60"), cdn("no-store")]), None);
    }

    #[test]
    fn a_targeted_field_grants_what_it_says_but_not_credentials() {
        let cdn = |v| ("CDN-Cache-Control", v);
        // Its `public` lets a response with Set-Cookie be stored, as
        // Cache-Control's does (the cookie itself never is).
        assert_eq!(
            rfc_9213_fresh(&[("Set-Cookie", "a=1"), cdn("max-age=60")]),
            None
        );
        assert_eq!(
            rfc_9213_fresh(&[("Set-Cookie", "a=1"), cdn("public, max-age=60")]),
            Some(60)
        );
        // Answers to requests with credentials: Cache-Control's word only,
        // as for Surrogate-Control (a middleware may give every page a
        // lifetime for the CDN).
        let auth = [("Authorization", "Basic eDp5")];
        assert!(rfc_9213(&auth, &[cdn("public, max-age=60")]).is_none());
        for obligation in ["s-maxage=5", "must-revalidate"] {
            let resp = [("Cache-Control", obligation), cdn("max-age=60")];
            assert!(rfc_9213(&auth, &resp).is_none(), "{obligation}");
        }
        let permitted = [("Cache-Control", "public"), cdn("max-age=60")];
        assert_eq!(
            rfc_9213(&auth, &permitted).map(|l| l.fresh.as_secs()),
            Some(60)
        );
        // Cookies in the request: an explicit lifetime, as max-age.
        assert!(rfc_9213(&[("Cookie", "a=1")], &[cdn("max-age=60")]).is_some());
        assert!(rfc_9213(&[("Cookie", "a=1")], &[("ETag", "\"x\""), cdn("max-age=0")]).is_none());
    }

    #[test]
    fn own_fields_are_the_listed_ones_but_cdn_cache_control() {
        let own = rfc_9213_settings().targeting.own_fields();
        let names: Vec<&str> = own.iter().collect();
        assert_eq!(
            names,
            [
                "surrogate-control",
                "x-accel-expires",
                "inverso-cache-control",
                "x-accel-limit-rate"
            ]
        );
        assert!(own.contains("Inverso-Cache-Control"));
        assert!(!own.contains("CDN-Cache-Control"));
        assert!(!own.contains("Surrogate-Key"));
        assert_eq!(own, rfc_9213_settings().targeting.own_fields());
        assert_ne!(own, surrogate_settings().targeting.own_fields());
    }

    #[test]
    fn surrogate_key_is_the_cache_s_own_while_surrogate_keys_is_on() {
        let mut targeting = Targeting {
            surrogate_keys: true,
            ..Targeting::default()
        };
        let own = targeting.own_fields();
        assert_eq!(
            own.iter().collect::<Vec<_>>(),
            ["surrogate-key", "x-accel-limit-rate"]
        );
        let mut headers = Headers::new();
        headers.push("Surrogate-Key", "product-42 home");
        headers.push("ETag", "\"v1\"");
        let mut served = headers.clone();
        own.remove_from(&mut served);
        assert_eq!(served.get("surrogate-key"), None);
        assert!(served.contains("etag"));
        // Off: it passes through, for a CDN in front that reads it.
        targeting.surrogate_keys = false;
        let off = targeting.own_fields();
        assert!(!off.contains("Surrogate-Key"));
        assert_ne!(off, own);
        let mut passed = headers.clone();
        off.remove_from(&mut passed);
        assert_eq!(passed.get("surrogate-key"), Some(&b"product-42 home"[..]));
    }

    #[test]
    fn x_accel_expires_at_a_time_past_2038_is_that_time() {
        // `@T` is a moment, not a length of time: capped at 2^31 as
        // delta-seconds are, it would be 19 January 2038, and from then
        // on every `@T` would be past.
        let xa = |v| ("X-Accel-Expires", v);
        let now = UNIX_EPOCH + Duration::from_secs(2_200_000_000);
        let date = format_http_date(now);
        let resp = [("Date", &*date), xa("@2200000600")];
        assert_eq!(targeted_fresh(&resp), Some(Duration::from_secs(600)));
        // Far past any date: fresh for `ttl`, no overflow.
        let resp = [("Date", &*date), xa("@99999999999999999999999")];
        assert_eq!(targeted_fresh(&resp), Some(Duration::from_secs(3600)));
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
                ..Targeting::default()
            },
            ..settings()
        };
        let resp = response(200, &[("Cache-Control", "max-age=5"), xa("60")]);
        let lifetime = storable(&get(&[]), &resp, SystemTime::now(), &off);
        assert_eq!(lifetime.map(|l| l.fresh), secs(5));
    }

    #[test]
    fn a_lifetime_with_a_space_beside_its_equals_sign_is_none() {
        let cc = |v| CacheControl::parse(&get(&[("Cache-Control", v)]).headers);
        // A space on either side alone is enough (RFC 9111 §5.2).
        for spaced in ["max-age =60", "max-age= 60", "max-age = 60"] {
            assert_eq!(cc(spaced).max_age, None, "{spaced}");
        }
        let windows = cc("s-maxage =5, min-fresh =5, stale-if-error =5, stale-while-revalidate =5");
        assert_eq!(windows, CacheControl::default());
        assert_eq!(cc("max-stale =5").max_stale, None);
        // A restriction so written still restricts.
        assert!(cc("private =\"Set-Cookie\"").private);
        assert_eq!(cc("max-age=60").max_age, Some(60));
    }

    #[test]
    fn only_if_cached_is_read() {
        let cc = |v| CacheControl::parse(&get(&[("Cache-Control", v)]).headers);
        assert!(cc("max-age=0, only-if-cached").only_if_cached);
        assert!(!cc("max-age=0").only_if_cached);
    }

    #[test]
    fn surrogate_capability_names_the_device_token() {
        assert_eq!(surrogate_capability("edge"), "edge=\"Surrogate/1.0\"");
    }

    #[test]
    fn a_targeted_field_reads_proxy_revalidate_must_understand_and_stale_while_revalidate() {
        let cdn = |v| ("CDN-Cache-Control", v);
        let proxy = rfc_9213(&[], &[cdn("max-age=60, proxy-revalidate")]).unwrap();
        assert_eq!(proxy.stale_if_error, Duration::ZERO);
        // Its `no-store` is for caches that do not know the status.
        let understood = [cdn("must-understand, no-store, max-age=60")];
        assert_eq!(rfc_9213_fresh(&understood), Some(60));
        let swr = rfc_9213(&[], &[cdn("max-age=60, stale-while-revalidate=600")]).unwrap();
        assert_eq!(swr.stale_if_error, Duration::from_secs(600));
    }

    #[test]
    fn surrogate_control_reads_stale_while_revalidate_and_quoted_semicolons() {
        let sc = |v| ("Surrogate-Control", v);
        let swr = targeted(&[], &[sc("max-age=60, stale-while-revalidate=600")]).unwrap();
        assert_eq!(swr.stale_if_error, Duration::from_secs(600));
        // A `;` inside quotes targets no device: this no-store is for all.
        let quoted = [sc("max-age=60, no-store=\"for;other\"")];
        assert_eq!(targeted_fresh(&quoted), None);
    }
}
