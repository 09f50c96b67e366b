//! Response fields the cache does not read when it decides whether and
//! for how long to store (the `cache_ignore_headers` setting), as nginx's
//! `proxy_ignore_headers`: the operator's word over the origin's, for
//! applications that say `Cache-Control: no-cache, private` or set a
//! cookie on every page and are micro-cached all the same
//! (`cache_valid = 200 1s`). Only what the cache reads changes: clients
//! get the fields as the origin sent them.

use super::Targeting;
use crate::http::ResponseHead;
use std::borrow::Cow;

/// The fields the setting may list, spelled as nginx's
/// `proxy_ignore_headers` spells them; a field's bit is its place here.
const FIELDS: [&str; 6] = [
    "Cache-Control",
    "Expires",
    "Set-Cookie",
    "Vary",
    "X-Accel-Expires",
    "Surrogate-Control",
];

/// Those [`IgnoredHeaders::read`] takes out of a response: the others are
/// read through [`Targeting`], whose own switches turn them off (see
/// [`IgnoredHeaders::targeting`]).
const TAKEN_OUT: [&str; 4] = ["cache-control", "expires", "set-cookie", "vary"];

/// A set of [`FIELDS`], empty by default (every field is read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IgnoredHeaders {
    /// Bit `i` for `FIELDS[i]`.
    bits: u8,
}

impl IgnoredHeaders {
    /// `Cache-Control, Expires, Set-Cookie` (spaces work as separators
    /// too, as nginx writes them), in any case; empty = none. Each name
    /// once.
    pub fn parse(v: &str) -> Result<IgnoredHeaders, String> {
        let mut set = IgnoredHeaders::default();
        for name in v
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
        {
            let Some(i) = FIELDS.iter().position(|f| f.eq_ignore_ascii_case(name)) else {
                return Err(not_a_choice(name));
            };
            if set.bits & (1 << i) != 0 {
                return Err(format!("{} is listed twice", FIELDS[i]));
            }
            set.bits |= 1 << i;
        }
        Ok(set)
    }

    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }

    /// Whether field `name` (any case) is listed.
    pub fn ignores(&self, name: &str) -> bool {
        self.names().any(|f| f.eq_ignore_ascii_case(name))
    }

    /// The names listed, as [`FIELDS`] spells them, in its order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        (FIELDS.iter().enumerate())
            .filter(|(i, _)| self.bits & (1 << i) != 0)
            .map(|(_, f)| *f)
    }

    /// A response as the cache reads it: without the listed fields of
    /// [`TAKEN_OUT`]. A copy only when it has one of them.
    pub fn read<'a>(&self, response: &'a ResponseHead) -> Cow<'a, ResponseHead> {
        let listed = || TAKEN_OUT.iter().filter(|name| self.ignores(name));
        if !listed().any(|name| response.headers.contains(name)) {
            return Cow::Borrowed(response);
        }
        let mut read = response.clone();
        for name in listed() {
            read.headers.remove(name);
        }
        Cow::Owned(read)
    }

    /// `targeting` without the fields listed of those it reads:
    /// `X-Accel-Expires` as with `x_accel_expires = false`,
    /// `Surrogate-Control` as with an empty `surrogate_id` (neither read
    /// nor removed, and the cache not announced in `Surrogate-Capability`:
    /// an origin would send directives for nothing).
    pub fn targeting(&self, mut targeting: Targeting) -> Targeting {
        if self.ignores("x-accel-expires") {
            targeting.x_accel_expires = false;
        }
        if self.ignores("surrogate-control") {
            targeting.surrogate_id = None;
        }
        targeting
    }
}

/// Why `name` may not be listed.
fn not_a_choice(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let name = name.escape_debug();
    if lower.ends_with("-cache-control") {
        // A targeted field is read only because `targeted_cache_control`
        // lists it: two settings saying opposite things of one field.
        format!(
            "`{name}` is read only when targeted_cache_control lists it: take it off that list \
             instead"
        )
    } else if lower.starts_with("x-accel-") {
        format!(
            "the cache does not act on `{name}`: of nginx's X-Accel fields it reads \
             X-Accel-Expires alone, keeps X-Accel-Limit-Rate unserved with an answer (the \
             proxy's rate for it, not the cache's), and never stores an answer with \
             X-Accel-Redirect (for files routes), whatever is ignored"
        )
    } else {
        format!(
            "`{name}` is not a field the cache reads to decide what to store: list {}",
            either(&FIELDS)
        )
    }
}

/// `a, b or c`.
fn either(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::policy::test_support::{fresh_with, get, response, settings};
    use crate::cache::policy::{storable, CacheValid, Settings};
    use crate::http::date::format_http_date;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    /// The test settings with `cache_valid` and `cache_ignore_headers`.
    fn micro(valid: &str, ignored: &str) -> Settings {
        Settings {
            cache_valid: Arc::new(CacheValid::parse(valid).unwrap()),
            ignored: IgnoredHeaders::parse(ignored).unwrap(),
            ..settings()
        }
    }

    const RECIPE: &str = "Cache-Control, Expires, Set-Cookie";

    fn secs(s: u64) -> Option<Duration> {
        Some(Duration::from_secs(s))
    }

    #[test]
    fn names_in_any_case_separated_by_commas_or_spaces() {
        let set = IgnoredHeaders::parse("cache-control,  EXPIRES Set-Cookie ,vary").unwrap();
        let names: Vec<&str> = set.names().collect();
        assert_eq!(names, ["Cache-Control", "Expires", "Set-Cookie", "Vary"]);
        assert!(set.ignores("VARY") && !set.ignores("x-accel-expires"));
        let all = "X-Accel-Expires, Surrogate-Control, Vary, Set-Cookie, Expires, Cache-Control";
        assert_eq!(IgnoredHeaders::parse(all).unwrap().names().count(), 6);
        assert!(!IgnoredHeaders::parse("Vary").unwrap().is_empty());
        for empty in ["", " ", ","] {
            assert!(
                IgnoredHeaders::parse(empty).unwrap().is_empty(),
                "{empty:?}"
            );
        }
    }

    #[test]
    fn other_names_are_refused_saying_why() {
        for (bad, says) in [
            ("Content-Type", "not a field the cache reads"),
            ("Cache-Control, Pragma", "`Pragma` is not a field"),
            ("Cache_Control", "list Cache-Control, Expires"),
            ("CDN-Cache-Control", "targeted_cache_control"),
            ("Inverso-Cache-Control", "take it off that list"),
            ("X-Accel-Redirect", "does not act on `X-Accel-Redirect`"),
            ("Vary, vary", "Vary is listed twice"),
        ] {
            let e = IgnoredHeaders::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_private_no_cache_page_is_stored_for_the_lifetime_cache_valid_gives() {
        let page = [("Cache-Control", "no-cache, private"), ("ETag", "\"v1\"")];
        assert_eq!(
            fresh_with(&micro("200 1s", RECIPE), &[], 200, &page),
            secs(1)
        );
        // Either alone stores nothing: the setting gives no lifetime, and
        // cache_valid is for responses that say nothing.
        assert_eq!(fresh_with(&micro("", RECIPE), &[], 200, &page), None);
        assert_eq!(fresh_with(&micro("200 1s", ""), &[], 200, &page), None);
        // Every directive of the response is unread, its windows too: the
        // settings' apply.
        let l = |cc: &str| {
            let resp = response(200, &[("Cache-Control", cc)]);
            let settings = micro("200 1m", "Cache-Control");
            storable(&get(&[]), &resp, SystemTime::now(), &settings).unwrap()
        };
        for cc in [
            "no-store",
            "private=\"x-user\", must-revalidate",
            "max-age=5, stale-if-error=7",
            "s-maxage=600, must-understand",
        ] {
            assert_eq!(l(cc).fresh, Duration::from_secs(60), "{cc}");
            assert_eq!(l(cc).stale_if_error, Duration::from_secs(60), "{cc}");
        }
    }

    #[test]
    fn with_cache_control_unread_nothing_is_guessed_nor_kept_only_to_be_revalidated() {
        let now = SystemTime::now();
        let date = format_http_date(now);
        let old = format_http_date(now - Duration::from_secs(100_000));
        let dated = [
            ("Cache-Control", "private"),
            ("Date", &*date),
            ("Last-Modified", &*old),
        ];
        // Read, private stores nothing; unread, Last-Modified is no
        // lifetime given to this cache (one user's page, guessed fresh).
        let unread = micro("404 1m", "Cache-Control");
        assert_eq!(fresh_with(&unread, &[], 200, &dated), None);
        assert_eq!(fresh_with(&unread, &[], 200, &[("ETag", "\"v1\"")]), None);
        // A lifetime of zero is none, whatever gives it.
        let zero = micro("200 0s", "Cache-Control");
        assert_eq!(fresh_with(&zero, &[], 200, &[("ETag", "\"v1\"")]), None);
        let past = [("Expires", "0"), ("ETag", "\"v1\"")];
        assert_eq!(fresh_with(&unread, &[], 200, &past), None);
        // cache_unlabeled's ttl is one.
        let unlabeled = Settings {
            cache_unlabeled: true,
            ..unread
        };
        assert_eq!(fresh_with(&unlabeled, &[], 200, &dated), secs(3600));
    }

    #[test]
    fn ttl_still_caps_and_the_fields_still_read_still_give_lifetimes() {
        let long = micro("200 2h", RECIPE);
        let page = [("Cache-Control", "no-cache")];
        assert_eq!(fresh_with(&long, &[], 200, &page), secs(3600));
        // Expires read while Cache-Control is not: the origin's lifetime.
        let expires = format_http_date(SystemTime::now() + Duration::from_secs(100));
        let resp = [("Cache-Control", "private"), ("Expires", &*expires)];
        let cc_only = micro("200 1m", "Cache-Control");
        let fresh = fresh_with(&cc_only, &[], 200, &resp).unwrap();
        assert!((99..=100).contains(&fresh.as_secs()), "{fresh:?}");
        // Unread too: cache_valid's.
        assert_eq!(
            fresh_with(&micro("200 1m", RECIPE), &[], 200, &resp),
            secs(60)
        );
        // X-Accel-Expires is this cache's own field, read until listed.
        let accel = [("Cache-Control", "private"), ("X-Accel-Expires", "30")];
        let reading = Settings {
            targeting: Targeting {
                x_accel_expires: true,
                ..Targeting::default()
            },
            ..cc_only
        };
        assert_eq!(fresh_with(&reading, &[], 200, &accel), secs(30));
        let listed = Settings {
            targeting: IgnoredHeaders::parse("X-Accel-Expires")
                .unwrap()
                .targeting(reading.targeting.clone()),
            ..reading
        };
        assert_eq!(fresh_with(&listed, &[], 200, &accel), secs(60));
    }

    #[test]
    fn expires_alone_unread() {
        let expires = format_http_date(SystemTime::now() + Duration::from_secs(100));
        let resp = [("Expires", &*expires)];
        let unread = micro("200 1m", "Expires");
        assert_eq!(fresh_with(&unread, &[], 200, &resp), secs(60));
        // Cache-Control is still read, and wins.
        let both = [("Expires", &*expires), ("Cache-Control", "max-age=5")];
        assert_eq!(fresh_with(&unread, &[], 200, &both), secs(5));
        assert_eq!(
            fresh_with(&unread, &[], 200, &[("Cache-Control", "private")]),
            None
        );
    }

    #[test]
    fn a_response_setting_a_cookie_is_stored_when_set_cookie_is_unread() {
        let resp = [("Cache-Control", "max-age=60"), ("Set-Cookie", "sid=alice")];
        assert_eq!(fresh_with(&settings(), &[], 200, &resp), None);
        let unread = micro("", "Set-Cookie");
        assert_eq!(fresh_with(&unread, &[], 200, &resp), secs(60));
        // The recipe: a dynamic page's every answer.
        let page = [
            ("Cache-Control", "no-cache, private"),
            ("Set-Cookie", "sid=a"),
        ];
        assert_eq!(
            fresh_with(&micro("200 1s", RECIPE), &[], 200, &page),
            secs(1)
        );
        assert_eq!(
            fresh_with(&micro("200 1s", "Cache-Control"), &[], 200, &page),
            None
        );
    }

    #[test]
    fn vary_unread_keys_one_entry_per_url() {
        let unread = micro("", "Vary");
        for vary in ["Accept-Encoding, Cookie", "*", "X-Forwarded-For"] {
            let resp = response(200, &[("Cache-Control", "max-age=60"), ("Vary", vary)]);
            assert!(unread.vary_names(&resp).is_empty(), "{vary}");
            let lifetime = storable(&get(&[]), &resp, SystemTime::now(), &unread);
            assert_eq!(lifetime.map(|l| l.fresh), secs(60), "{vary}");
        }
        let resp = response(200, &[("Vary", "Accept-Encoding")]);
        assert_eq!(settings().vary_names(&resp), ["accept-encoding"]);
        let star = [("Cache-Control", "max-age=60"), ("Vary", "*")];
        assert_eq!(fresh_with(&settings(), &[], 200, &star), None);
    }

    #[test]
    fn what_the_request_says_still_counts() {
        let all = micro("200 1m", "Cache-Control, Expires, Set-Cookie, Vary");
        let page = [("Cache-Control", "public, s-maxage=60, must-revalidate")];
        // Credentials: only Cache-Control could permit storing, unread.
        let auth = [("Authorization", "Basic eDp5")];
        assert_eq!(fresh_with(&all, &auth, 200, &page), None);
        assert_eq!(fresh_with(&all, &auth, 200, &[]), None);
        assert_eq!(
            fresh_with(&all, &[("Cache-Control", "no-store")], 200, &page),
            None
        );
        // A cookie: cache_valid's lifetime lifts the rule, as without.
        assert_eq!(fresh_with(&all, &[("Cookie", "a=1")], 200, &page), secs(60));
        // Statuses never stored stay so.
        assert_eq!(fresh_with(&micro("any 1m", RECIPE), &[], 206, &page), None);
    }

    #[test]
    fn x_accel_expires_and_surrogate_control_turn_their_switches_off() {
        let on = Targeting {
            surrogate_id: Some(Arc::from("inverso")),
            x_accel_expires: true,
            fields: Arc::from(["cdn-cache-control".into()]),
            surrogate_keys: true,
        };
        let both = IgnoredHeaders::parse("X-Accel-Expires, Surrogate-Control").unwrap();
        let off = both.targeting(on.clone());
        assert_eq!((off.surrogate_id, off.x_accel_expires), (None, false));
        assert_eq!(off.fields, on.fields);
        // Surrogate-Key gives no lifetime: not the list's to turn off.
        assert!(off.surrogate_keys);
        let accel = IgnoredHeaders::parse("x-accel-expires")
            .unwrap()
            .targeting(on.clone());
        assert_eq!(
            (accel.surrogate_id, accel.x_accel_expires),
            (on.surrogate_id.clone(), false)
        );
        assert_eq!(IgnoredHeaders::default().targeting(on.clone()), on);
        // As read: Cache-Control decides again.
        let off = Settings {
            targeting: both.targeting(on.clone()),
            ..settings()
        };
        let resp = [
            ("Cache-Control", "max-age=5"),
            ("X-Accel-Expires", "60"),
            ("Surrogate-Control", "max-age=90"),
        ];
        assert_eq!(fresh_with(&off, &[], 200, &resp), secs(5));
        let read = Settings {
            targeting: on,
            ..settings()
        };
        assert_eq!(fresh_with(&read, &[], 200, &resp), secs(90));
    }

    #[test]
    fn a_response_without_the_fields_is_read_in_place() {
        let set = IgnoredHeaders::parse(RECIPE).unwrap();
        let plain = response(200, &[("Vary", "Accept"), ("ETag", "\"v1\"")]);
        assert!(matches!(set.read(&plain), Cow::Borrowed(_)));
        let full = response(200, &[("Cache-Control", "private"), ("Vary", "Accept")]);
        let read = set.read(&full);
        assert!(!read.headers.contains("cache-control"));
        assert!(read.headers.contains("vary"));
    }
}
