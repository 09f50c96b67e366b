//! `sticky_cookie`: a client that was served by a target keeps going to
//! it, as with HAProxy's `cookie NAME insert` and nginx's `sticky cookie`.
//! The proxy names the target in a cookie on the responses it relays; a
//! request that carries the cookie goes to that target while it can serve.

use super::balancer::stable_hash;
use crate::cache::policy::CacheControl;
use crate::http::edits::Applied;
use crate::http::headers::{cookie_named, cookie_pairs, Headers};
use std::sync::Arc;

/// A request's part in `sticky_cookie`.
pub struct Sticky {
    /// The cookie's name.
    pub name: Arc<str>,
    /// What the request's cookie said, read at `now`.
    pub sent: Read,
    /// `sticky_cookie_max_idle` and `_max_life`.
    pub lifetimes: Lifetimes,
    /// When the request came, in Unix seconds (0 without lifetimes,
    /// which need no clock).
    pub now: u64,
    /// `sticky_cookie_nocache`: a response that sets the cookie is marked
    /// `private`.
    pub nocache: bool,
    /// `sticky_cookie_attributes`, as `Set-Cookie` says them.
    pub attributes: Arc<str>,
}

impl Sticky {
    /// The target the request's cookie names while it holds the client.
    pub fn stuck_to(&self) -> Option<&str> {
        self.sent.id.as_deref()
    }

    /// The cookie's value to set on a response from the target `id`: for
    /// a client not yet stuck to it, or stuck with dates due again.
    pub fn value_for(&self, id: &str) -> Option<String> {
        let stays = self.stuck_to() == Some(id);
        if stays && !self.sent.due {
            return None;
        }
        // A client moved to another target is stuck afresh.
        let first = self.sent.first.filter(|_| stays);
        Some(self.lifetimes.value(id, self.now, first))
    }
}

/// `sticky_cookie_max_idle` and `_max_life`, in seconds (HAProxy's
/// `maxidle` and `maxlife`): with either, the cookie carries the dates
/// that tell how long it has held its client, after the target's id
/// (`<id>|<last>|<first>`, each date hexadecimal Unix seconds, the one
/// not kept left empty).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lifetimes {
    /// A client that sent nothing for longer is balanced afresh.
    pub max_idle: Option<u64>,
    /// A client stuck for longer is balanced afresh.
    pub max_life: Option<u64>,
}

/// How far past the proxy's clock a cookie's date may be: another
/// proxy's clock, or this one's set back, as HAProxy allows. A date
/// further ahead was made up, and the cookie holds nobody.
const FUTURE_SLACK: u64 = 24 * 3600;

/// A request's sticky cookie, read against the [`Lifetimes`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Read {
    /// The target it names, while it holds the client: not expired,
    /// nor dated ahead, nor malformed.
    pub id: Option<String>,
    /// Under `max_life`, when the client was first stuck (now, for a
    /// cookie that says not).
    pub first: Option<u64>,
    /// Its dates are to be written again though the target stays: the
    /// last one has aged a quarter of `max_idle` (so a client that keeps
    /// coming is not set a cookie at every response), or they are not
    /// the ones the lifetimes keep (set or taken off since).
    pub due: bool,
}

impl Lifetimes {
    pub fn any(self) -> bool {
        self.max_idle.is_some() || self.max_life.is_some()
    }

    /// Reads the cookie's `value` at `now` (Unix seconds).
    pub fn read(self, value: &str, now: u64) -> Read {
        let mut parts = value.split('|');
        let id = parts.next().unwrap_or_default();
        let (last, first) = (date(parts.next()), date(parts.next()));
        let (Ok(last), Ok(first), None) = (last, first, parts.next()) else {
            return Read::default();
        };
        // A date the lifetimes do not keep is not read: it is written
        // off at this response.
        let holds = |date: Option<u64>, limit: Option<u64>| match (date, limit) {
            (Some(date), Some(limit)) => {
                date <= now.saturating_add(FUTURE_SLACK) && now.saturating_sub(date) <= limit
            }
            _ => true,
        };
        if id.is_empty() || !holds(last, self.max_idle) || !holds(first, self.max_life) {
            return Read::default();
        }
        let idle_due = match (self.max_idle, last) {
            (Some(limit), Some(last)) => now.saturating_sub(last) >= limit / 4,
            (Some(_), None) => true,
            (None, last) => last.is_some(),
        };
        Read {
            id: Some(id.to_string()),
            first: self.max_life.map(|_| first.unwrap_or(now)),
            due: idle_due || self.max_life.is_some() != first.is_some(),
        }
    }

    /// The cookie's value for target `id` set at `now`, the client first
    /// stuck at `first` (now, if it was not).
    pub fn value(self, id: &str, now: u64, first: Option<u64>) -> String {
        let last = match self.max_idle {
            Some(_) => format!("{now:x}"),
            None => String::new(),
        };
        match self.max_life {
            Some(_) => format!("{id}|{last}|{:x}", first.unwrap_or(now)),
            None if self.max_idle.is_some() => format!("{id}|{last}"),
            None => id.to_string(),
        }
    }
}

/// One of the cookie's dates: absent or empty is none; anything but up to
/// 16 hexadecimal digits is a cookie that was not ours.
fn date(part: Option<&str>) -> Result<Option<u64>, ()> {
    match part {
        None | Some("") => Ok(None),
        Some(p) if p.len() <= 16 && p.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u64::from_str_radix(p, 16).map(Some).map_err(|_| ())
        }
        Some(_) => Err(()),
    }
}

/// The time by the system's clock, in Unix seconds, as cookies' dates
/// count it; 0 for a clock set before 1970.
pub fn unix_now() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| d.as_secs())
}

/// The cookie value that names a target: a hash of its name as written in
/// `targets`, so that it survives restarts and reloads, and is the same
/// on every proxy with the same targets, without showing the backend's
/// address to clients.
pub fn id_of(target_name: &str) -> String {
    // Stable across builds and processes, unlike std's hasher.
    format!("{:016x}", stable_hash(target_name.as_bytes()))
}

/// Takes cookie `name` out of the request's `Cookie` fields and returns its
/// value, if there was one. It is the proxy's, not the application's
/// (HAProxy's `indirect`): the backend does not see it, and a request that
/// carries no other cookie is, for the cache, a request without cookies.
///
/// Read as bytes: a cookie of the application's that is not UTF-8 (obs-text
/// is allowed in a field value) neither hides ours, in the same field or
/// another, nor is lost from what goes on.
pub fn take(headers: &mut Headers, name: &str) -> Option<String> {
    // A first look copies nothing: most requests do not carry it.
    let value = headers.cookie(name)?;
    let value = String::from_utf8_lossy(value).trim_matches('"').to_string();
    // The others go on, in one field.
    let mut others = Vec::new();
    for pair in headers.get_all("cookie").flat_map(cookie_pairs) {
        if cookie_named(pair, name).is_none() {
            if !others.is_empty() {
                others.extend_from_slice(b"; ");
            }
            others.extend_from_slice(pair);
        }
    }
    headers.remove("cookie");
    if !others.is_empty() {
        headers.push("Cookie", others);
    }
    Some(value)
}

/// The `Set-Cookie` line that sends the client to the target `value`
/// names ([`Sticky::value_for`]); `attributes` as kept by the
/// configuration (`; Secure`).
pub fn set_cookie_line(name: &str, value: &str, attributes: &str) -> String {
    format!("Set-Cookie: {name}={value}; Path=/; HttpOnly{attributes}\r\n")
}

/// Whether a shared cache may store a response that goes out with the
/// fields `headers` holds (the backend's, less those `edits` replace)
/// and those `edits` set: then, under `sticky_cookie_nocache`, it is
/// marked `private`, as HAProxy's `nocache` does, lest a cache in front
/// hand one client's cookie to all. One already `private` or `no-store`
/// is left as it is; `no-cache` still lets a cache store it.
pub fn shared_caches_may_store(headers: &Headers, edits: Applied<'_>) -> bool {
    let cc = match edits.edits(b"cache-control") {
        false => CacheControl::parse(headers),
        // The operator's value; one with variables is not read here,
        // and the response is marked.
        true => {
            let mut set = Headers::default();
            if let Some(value) = edits.value_of("cache-control") {
                set.push("Cache-Control", value);
            }
            CacheControl::parse(&set)
        }
    };
    !(cc.private || cc.no_store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(id_of("10.0.0.1:80"), id_of("10.0.0.1:80"));
        assert_ne!(id_of("10.0.0.1:80"), id_of("10.0.0.2:80"));
        assert_eq!(id_of("a").len(), 16);
    }

    #[test]
    fn the_cookie_is_taken_from_among_the_others_in_any_cookie_field() {
        let mut headers = Headers::default();
        headers.push("Cookie", "a=1; srv=abc ;b=2");
        assert_eq!(take(&mut headers, "sr"), None);
        assert_eq!(headers.get_str("cookie"), Some("a=1; srv=abc ;b=2"));
        assert_eq!(take(&mut headers, "srv").as_deref(), Some("abc"));
        assert_eq!(headers.get_str("cookie"), Some("a=1; b=2"));
        let mut headers = Headers::default();
        headers.push("Cookie", "a=1");
        headers.push("Cookie", "srv=\"q\"");
        assert_eq!(take(&mut headers, "srv").as_deref(), Some("q"));
        assert_eq!(headers.get_str("cookie"), Some("a=1"));
        // Ours alone: no Cookie field left.
        let mut headers = Headers::default();
        headers.push("Cookie", "srv=q");
        assert_eq!(take(&mut headers, "srv").as_deref(), Some("q"));
        assert!(!headers.contains("cookie"));
        assert_eq!(take(&mut Headers::default(), "srv"), None);
    }

    #[test]
    fn a_cookie_that_is_not_utf_8_neither_hides_ours_nor_is_lost() {
        let mut headers = Headers::default();
        headers.push("Cookie", b"lang=caf\xe9".as_slice());
        headers.push("Cookie", "srv=abc; a=1");
        assert_eq!(take(&mut headers, "srv").as_deref(), Some("abc"));
        assert_eq!(headers.get("cookie"), Some(&b"lang=caf\xe9; a=1"[..]));
        let mut headers = Headers::default();
        headers.push("Cookie", b"x=\xff; srv=abc".as_slice());
        assert_eq!(take(&mut headers, "srv").as_deref(), Some("abc"));
        assert_eq!(headers.get("cookie"), Some(&b"x=\xff"[..]));
    }

    const HOUR: u64 = 3600;
    const NOW: u64 = 1_800_000_000;

    fn lifetimes(max_idle: Option<u64>, max_life: Option<u64>) -> Lifetimes {
        Lifetimes { max_idle, max_life }
    }

    fn sticky(lifetimes: Lifetimes, cookie: &str) -> Sticky {
        Sticky {
            name: Arc::from("S"),
            sent: lifetimes.read(cookie, NOW),
            lifetimes,
            now: NOW,
            nocache: false,
            attributes: Arc::from(""),
        }
    }

    #[test]
    fn without_lifetimes_the_cookie_is_the_id_alone_and_dates_are_written_off() {
        let none = Lifetimes::default();
        // Nothing to date: the request needs no clock.
        assert!(!none.any());
        assert_eq!(none.value("abc", NOW, Some(5)), "abc");
        let read = none.read("abc", NOW);
        assert_eq!(
            (read.id.as_deref(), read.first, read.due),
            (Some("abc"), None, false)
        );
        // Dates of lifetimes since taken off: the client stays, and is
        // given the plain id, however old or new the dates.
        for cookie in ["abc|1", "abc||1", "abc|1|1", &format!("abc|{:x}", u64::MAX)] {
            let read = none.read(cookie, NOW);
            assert_eq!(
                (read.id.as_deref(), read.due),
                (Some("abc"), true),
                "{cookie}"
            );
            assert_eq!(
                sticky(none, cookie).value_for("abc").as_deref(),
                Some("abc")
            );
        }
        assert_eq!(sticky(none, "abc").value_for("abc"), None);
        assert_eq!(sticky(none, "abc").value_for("def").as_deref(), Some("def"));
    }

    #[test]
    fn a_cookie_idle_longer_than_max_idle_holds_nobody() {
        let idle = lifetimes(Some(HOUR), None);
        assert!(idle.any());
        assert_eq!(idle.value("abc", NOW, None), format!("abc|{NOW:x}"));
        let at = |ago: u64| idle.read(&format!("abc|{:x}", NOW - ago), NOW);
        assert_eq!(at(HOUR).id.as_deref(), Some("abc"));
        assert_eq!(at(HOUR + 1), Read::default());
        // Set again once a quarter of the limit has passed, not before.
        assert!(!at(HOUR / 4 - 1).due && at(HOUR / 4).due && at(HOUR).due);
        assert!(!at(0).due);
        // One from before the limit was set has no date: it holds, and is dated.
        let undated = idle.read("abc", NOW);
        assert_eq!((undated.id.as_deref(), undated.due), (Some("abc"), true));
        assert_eq!(undated.first, None);
    }

    #[test]
    fn a_cookie_older_than_max_life_holds_nobody_however_busy() {
        let life = lifetimes(None, Some(8 * HOUR));
        assert!(life.any());
        assert_eq!(life.value("abc", NOW, Some(7)), "abc||7");
        assert_eq!(life.value("abc", NOW, None), format!("abc||{NOW:x}"));
        let at = |ago: u64| life.read(&format!("abc||{:x}", NOW - ago), NOW);
        let kept = at(8 * HOUR);
        assert_eq!(
            (kept.id.as_deref(), kept.first, kept.due),
            (Some("abc"), Some(NOW - 8 * HOUR), false)
        );
        assert_eq!(at(8 * HOUR + 1), Read::default());
        // Undated: first stuck now, and told so.
        let undated = life.read("abc", NOW);
        assert_eq!((undated.first, undated.due), (Some(NOW), true));
        // A last date max_life does not keep is written off.
        assert!(life.read(&format!("abc|1|{NOW:x}"), NOW).due);
    }

    #[test]
    fn with_both_the_first_date_stays_while_the_last_moves_on() {
        let both = lifetimes(Some(HOUR), Some(8 * HOUR));
        let first = NOW - 5 * HOUR;
        let cookie = format!("abc|{:x}|{first:x}", NOW - HOUR / 2);
        let s = sticky(both, &cookie);
        assert_eq!(s.stuck_to(), Some("abc"));
        assert_eq!(s.value_for("abc"), Some(format!("abc|{NOW:x}|{first:x}")));
        // Moved to another target: stuck afresh.
        assert_eq!(s.value_for("def"), Some(format!("def|{NOW:x}|{NOW:x}")));
        // Idle too long, or stuck too long: either lets the client go.
        let idle = format!("abc|{:x}|{:x}", NOW - 2 * HOUR, NOW - 3 * HOUR);
        let old = format!("abc|{:x}|{:x}", NOW - 60, NOW - 9 * HOUR);
        for cookie in [idle, old] {
            assert_eq!(sticky(both, &cookie).stuck_to(), None, "{cookie}");
            let fresh = sticky(both, &cookie).value_for("abc");
            assert_eq!(fresh, Some(format!("abc|{NOW:x}|{NOW:x}")), "{cookie}");
        }
        // Written by this proxy a moment ago: read back whole, nothing due.
        let written = both.value("abc", NOW - 1, Some(first));
        let read = both.read(&written, NOW);
        assert_eq!(
            (read.id.as_deref(), read.first, read.due),
            (Some("abc"), Some(first), false)
        );
    }

    #[test]
    fn a_date_far_ahead_or_a_cookie_not_ours_holds_nobody() {
        let both = lifetimes(Some(HOUR), Some(HOUR));
        let ahead = |secs: u64| format!("abc|{:x}|{:x}", NOW + secs, NOW);
        // Another proxy's clock a day ahead is still believed; more is made up.
        assert_eq!(both.read(&ahead(24 * HOUR), NOW).id.as_deref(), Some("abc"));
        assert_eq!(both.read(&ahead(24 * HOUR + 1), NOW), Read::default());
        assert_eq!(
            both.read(&format!("abc|{:x}|{:x}", NOW, u64::MAX), NOW),
            Read::default()
        );
        let too_long = format!("abc|{}|1", "1".repeat(17));
        for cookie in [
            "",
            "|1|1",
            "abc|x",
            "abc|1|1|1",
            "abc|-1",
            "abc| 1",
            "abc|+1",
            &too_long,
        ] {
            assert_eq!(both.read(cookie, NOW), Read::default(), "{cookie:?}");
            assert_eq!(
                Lifetimes::default().read(cookie, NOW),
                Read::default(),
                "{cookie:?}"
            );
        }
        // Up to 16 digits, in either case.
        assert_eq!(
            both.read(&format!("abc|{NOW:X}"), NOW).id.as_deref(),
            Some("abc")
        );
        assert_eq!(
            both.read(&format!("abc|{NOW:016x}"), NOW).id.as_deref(),
            Some("abc")
        );
    }
}
