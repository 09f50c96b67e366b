//! `GET /cache/entries`: reads its query, picks the entries it names, and
//! writes each as JSON (credentials in keys redacted).

use super::purge::keys_of_url;
use super::status::push_cache_totals;
use super::{host_is_an_address, push_list, Reply};
use crate::auth;
use crate::cache::store::unix_ms;
use crate::cache::{policy, Entry, Listed, Listing};
use crate::config::escape_controls;
use crate::gzip::Coding;
use crate::http::head::{push_canonical_authority, split_absolute};
use crate::http::RequestHead;
use crate::json;
use crate::proxy::Shared;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

/// Entries `/cache/entries` lists without `limit=`, and the most it takes:
/// a listing is built whole in memory before it is sent.
const DEFAULT_LISTING_LIMIT: usize = 100;
const MAX_LISTING_LIMIT: usize = 10_000;

/// What `/cache/entries` lists.
#[derive(Debug, PartialEq, Eq)]
enum Selection {
    /// `url=`: the entries of one URL, every Vary variant.
    Url(String),
    /// `prefix=`: those a `PURGE` of the prefix followed by `*` names.
    Prefix(String),
    /// Neither: every entry of every site.
    Everything,
}

/// A `/cache/entries` query, read.
#[derive(Debug, PartialEq, Eq)]
struct EntriesQuery {
    selection: Selection,
    limit: usize,
}

/// Reads the query of `/cache/entries`: `url=` or `prefix=` (a URL or a
/// prefix as a client would send it, percent-encoded as a query value
/// must be, so that its own `?` and `&` stay its own) and `limit=`. A
/// parameter unknown or given twice is an error rather than ignored: a
/// typo (`prefx=`) would list another selection than the one meant, and
/// a URL sent unencoded would lose what follows its first `&`.
fn entries_query(query: Option<&str>) -> Result<EntriesQuery, String> {
    let (mut url, mut prefix, mut limit) = (None, None, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match name {
            "url" => &mut url,
            "prefix" => &mut prefix,
            "limit" => &mut limit,
            _ => {
                // Quoted with what a terminal would obey escaped: a
                // client's bytes, going to whoever reads the answer.
                let name: String = name.chars().take(64).collect();
                return Err(format!(
                    "unknown parameter \"{}\": takes url=, prefix= and limit= (percent-encode the URL)",
                    escape_controls(&name)
                ));
            }
        };
        if slot.replace(value).is_some() {
            return Err(format!("{name}= given twice"));
        }
    }
    let limit = match limit {
        None => DEFAULT_LISTING_LIMIT,
        Some(limit) => match limit.parse::<usize>() {
            Ok(n)
                if (1..=MAX_LISTING_LIMIT).contains(&n)
                    && limit.bytes().all(|b| b.is_ascii_digit()) =>
            {
                n
            }
            _ => {
                return Err(format!(
                    "limit= takes a number from 1 to {MAX_LISTING_LIMIT}"
                ))
            }
        },
    };
    let selection = match (url, prefix) {
        (Some(_), Some(_)) => return Err("url= or prefix=, not both".into()),
        (Some(url), None) => Selection::Url(request_target(url, "url")?),
        (None, Some(prefix)) => Selection::Prefix(request_target(prefix, "prefix")?),
        (None, None) => Selection::Everything,
    };
    Ok(EntriesQuery { selection, limit })
}

/// A query value decoded into a request-target: origin-form (`/a?b`) or
/// absolute-form (`http://host/a`), of visible ASCII or UTF-8, as a
/// client could send it: UTF-8 percent-encoded, as a browser sends
/// `/café` (`/caf%C3%A9`), the one spelling keys can hold (a target with
/// raw non-ASCII bytes is refused).
fn request_target(value: &str, name: &str) -> Result<String, String> {
    let bad = || {
        format!("{name}= takes a URL as a client sends it (/path?query or http://host/path), percent-encoded")
    };
    let decoded = String::from_utf8(policy::decode_percent(value.as_bytes())).map_err(|_| bad())?;
    let visible = !decoded.bytes().any(|b| b <= b' ' || b == 0x7f);
    let form = decoded.starts_with('/') || split_absolute(&decoded).is_some();
    if !(visible && form) {
        return Err(bad());
    }
    let mut target = String::with_capacity(decoded.len());
    for b in decoded.bytes() {
        match b.is_ascii() {
            true => target.push(char::from(b)),
            false => {
                let _ = write!(target, "%{b:02X}");
            }
        }
    }
    Ok(target)
}

/// Whether `value`, a listing's URL or prefix, is an absolute URL of
/// another site than the request's Host.
fn names_another_site(head: &RequestHead, value: &str) -> bool {
    let Some((authority, _)) = split_absolute(value) else {
        return false;
    };
    let canonical = |authority: &str| {
        let mut canonical = String::with_capacity(authority.len());
        push_canonical_authority(&mut canonical, authority);
        canonical
    };
    canonical(authority) != canonical(head.headers.get_str("host").unwrap_or_default())
}

/// `GET /cache/entries`: what the cache holds for a URL (`url=`), under
/// a prefix (`prefix=`) or in all, each entry as [`push_entry`] writes
/// it, at most `limit=` of them, with the totals of `/status`; 404 when
/// none is stored. Nothing listed is promoted: a listing is not a use.
///
/// A URL or a prefix is keyed as a `PURGE` of it is, on the site the
/// `Host` names, and is taken under any Host, as a purge is: a page on a
/// name rebound to 127.0.0.1 sends its own name, and can list only what
/// the proxy stores for it. Another site's (an absolute URL naming
/// another host, which a page may write in a query as it cannot in its
/// request-target) and every site's entries (neither parameter) are
/// taken only under a Host that is an address, as a purge by tag that
/// reaches every site is: they would show such a page the URLs (and, in
/// the keys of responses that vary, the request fields, a cookie
/// perhaps) of the sites the proxy serves.
pub(super) fn cache_entries(head: &RequestHead, query: Option<&str>, shared: &Shared) -> Reply {
    let EntriesQuery { selection, limit } = match entries_query(query) {
        Ok(query) => query,
        Err(e) => return Reply::text(400, format!("{e}\n")),
    };
    let another_site = match &selection {
        Selection::Url(value) | Selection::Prefix(value) => names_another_site(head, value),
        Selection::Everything => true,
    };
    if another_site && !host_is_an_address(head) {
        return Reply::text(
            403,
            "a listing of another site's or every site's entries takes a Host that is an IP \
             address or localhost; \
             url= or prefix= list the Host's own\n",
        );
    }
    let Some(cache) = &shared.cache else {
        return Reply::json(404, "{\"entries\":[],\"enabled\":false}\n".into());
    };
    let ignored = &shared.config.cache_key_ignore_params;
    let public = |target: String| RequestHead {
        method: "GET".into(),
        target,
        ..head.clone()
    };
    // What was listed, as a purge's answer names it: the `http` key.
    let (named, listing) = match selection {
        Selection::Url(url) => {
            let mut keys = keys_of_url(&public(url), ignored);
            let listing = cache.list_all(&keys, limit);
            (Some(("key", keys.swap_remove(0))), listing)
        }
        Selection::Prefix(prefix) => {
            // `http://host` and a `*` would make the `*` the host's.
            let Some(keys) = policy::prefix_keys_of_uri(&public(format!("{prefix}*")), ignored)
            else {
                return Reply::text(
                    400,
                    "prefix= of an absolute URL takes a path: http://host/\n",
                );
            };
            // The bare keys first, then those under the prefix.
            let mut listing = (keys.bare.as_ref())
                .map_or_else(Listing::default, |bare| cache.list_all(bare, limit));
            let under = cache.list_prefixes(&keys.prefixes, limit - listing.entries.len());
            listing.entries.extend(under.entries);
            listing.truncated |= under.truncated;
            let [http, _] = keys.prefixes;
            (Some(("prefix", http)), listing)
        }
        Selection::Everything => (None, cache.list_prefixes(&[String::new()], limit)),
    };
    let status = if listing.entries.is_empty() { 404 } else { 200 };
    // The ttl in force caps what an entry was stored with, as when it is
    // served (see `Entry::expires_under`).
    let ttl_of = |entry: &Entry| {
        (shared
            .cache_rules
            .settings_of_key(entry.key(), &shared.config.routes))
        .map_or(Duration::MAX, |settings| settings.ttl)
    };
    let mut out = listing_json(&listing, SystemTime::now(), &ttl_of);
    out.pop(); // the closing brace, to add the selection and the totals
    if let Some((label, key)) = named {
        out.push(',');
        json::push_key(&mut out, label);
        json::push_str(&mut out, &key);
    }
    out.push_str(",\"cache\":");
    push_cache_totals(&mut out, shared);
    out.push_str("}\n");
    Reply::json(status, out)
}

/// `{"entries":[...],"truncated":...}`, each entry's times under the
/// `ttl_of` it.
fn listing_json(listing: &Listing, now: SystemTime, ttl_of: &dyn Fn(&Entry) -> Duration) -> String {
    let mut out = String::from("{\"entries\":[");
    for (i, listed) in listing.entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_entry(&mut out, listed, now, ttl_of(&listed.entry));
    }
    let _ = write!(out, "],\"truncated\":{}}}", listing.truncated);
    out
}

/// A stored key as `/cache/entries` lists it: the credentials and
/// cookies a response varying on them is keyed by written as the access
/// log writes credentials (`Basic [redacted]`), so that the listing holds
/// no password or session (two users' variants then read alike).
fn listed_key(key: &str) -> std::borrow::Cow<'_, str> {
    let secret = |name: &str| matches!(name, "authorization" | "proxy-authorization" | "cookie");
    let mut lines = key.split('\n');
    let primary = lines.next().unwrap_or_default();
    let variant: Vec<&str> = lines.collect();
    let holds_secret = |line: &&str| line.split_once('=').is_some_and(|(name, _)| secret(name));
    if !variant.iter().any(holds_secret) {
        return key.into();
    }
    let mut listed = primary.to_string();
    for line in variant {
        listed.push('\n');
        match line.split_once('=') {
            Some((name, value)) if secret(name) => {
                let shown = if name == "cookie" {
                    "[redacted]".to_string()
                } else {
                    auth::redacted(value)
                };
                let _ = write!(listed, "{name}={shown}");
            }
            _ => listed.push_str(line),
        }
    }
    listed.into()
}

/// One entry as `/cache/entries` lists it: its key (the Vary part after
/// a newline, escaped), status, body size, `weight` (what it counts for
/// against `cache_size`), `age`, `fresh_for` (seconds left, negative once
/// stale: rounded down, so the sign is exact), `stale_window_left`
/// (seconds it may still stand in once stale: the whole window while it
/// is fresh), both under `ttl` as it is now, whether it has a validator
/// to be revalidated with, the request fields it varies on, its
/// `Surrogate-Key` tags, and the sizes of its gzip and Brotli copies
/// (`null` until a hit made one).
fn push_entry(out: &mut String, listed: &Listed, now: SystemTime, ttl: Duration) {
    let entry = &listed.entry;
    let record = &entry.record;
    let now_ms = unix_ms(now);
    let seconds_until = |at: u64| (i128::from(at) - i128::from(now_ms)).div_euclid(1000);
    let expires = entry.expires_under(ttl);
    let stale_left = entry
        .stale_until_under(ttl)
        .saturating_sub(now_ms.max(expires))
        / 1000;
    out.push('{');
    json::push_key(out, "key");
    json::push_str(out, &listed_key(entry.key()));
    let _ = write!(
        out,
        ",\"status\":{},\"body_bytes\":{},\"weight\":{},\"age\":{},\"fresh_for\":{},\"stale_window_left\":{stale_left},\"validator\":{},\"vary\":[",
        entry.head.status,
        record.body.len(),
        listed.weight,
        entry.age(now).as_secs(),
        seconds_until(expires),
        !policy::validators(&entry.head).is_empty(),
    );
    push_list(out, entry.vary_names());
    out.push_str("],\"tags\":[");
    push_list(out, entry.tags().iter());
    out.push(']');
    for coding in Coding::ALL {
        let _ = write!(out, ",\"{}_bytes\":", coding.key());
        match entry.compressed_len(coding) {
            Some(n) => {
                let _ = write!(out, "{n}");
            }
            None => out.push_str("null"),
        }
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::policy::{Lifetime, Settings};
    use crate::cache::Entry;
    use crate::http::ResponseHead;
    use std::sync::Arc;

    fn query(q: &str) -> Result<EntriesQuery, String> {
        entries_query(Some(q))
    }

    #[test]
    fn a_listing_query_takes_a_url_or_a_prefix_and_a_bounded_limit() {
        let url = |u: &str, limit| EntriesQuery {
            selection: Selection::Url(u.into()),
            limit,
        };
        assert_eq!(query("url=/products/42"), Ok(url("/products/42", 100)));
        // Encoded, the URL keeps its own query.
        assert_eq!(
            query("limit=3&url=%2Fp%3Fx%3D1%26y%3D%252F"),
            Ok(url("/p?x=1&y=%2F", 3))
        );
        assert_eq!(
            query("url=http://Shop.Example/a"),
            Ok(url("http://Shop.Example/a", 100))
        );
        assert_eq!(
            query("prefix=/&limit=10000"),
            Ok(EntriesQuery {
                selection: Selection::Prefix("/".into()),
                limit: 10_000
            })
        );
        let everything = EntriesQuery {
            selection: Selection::Everything,
            limit: 100,
        };
        assert_eq!(entries_query(None), Ok(everything));
        assert_eq!(query("limit=1").map(|q| q.limit), Ok(1));
        for bad in [
            "limit=0",
            "limit=10001",
            "limit=",
            "limit=ten",
            "limit=+5",
            "limit=-1",
            "limit=99999999999999999999999",
            "url=/a&prefix=/",
            "url=/a&url=/b",
            "limit=1&limit=2",
            "url=/a&b=1",
            "prefx=/",
            "url=",
            "url=products",
            "url=/a%20b",
            "url=/a%0d%0aX:1",
            "url=/%ff",
            "prefix=*",
        ] {
            assert!(query(bad).is_err(), "{bad} taken");
        }
        // A hostile parameter name is quoted escaped.
        let e = query("\u{1b}[2J=1").unwrap_err();
        assert!(!e.contains('\u{1b}'), "{e}");
    }

    /// An entry born at `birth` (seconds after the epoch), fresh for 60 s
    /// with 30 s of stale-if-error.
    fn stored(key: &str, fields: &[(&str, &str)], birth: u64) -> Entry {
        let mut head = ResponseHead::new(200);
        for (name, value) in fields {
            head.headers.push(name, *value);
        }
        let lifetime = Lifetime {
            fresh: Duration::from_secs(60),
            stale_if_error: Duration::from_secs(30),
        };
        let birth = SystemTime::UNIX_EPOCH + Duration::from_secs(birth);
        let body = b"hello".as_slice().into();
        Entry::new(
            key.into(),
            head,
            body,
            birth,
            lifetime,
            &Settings::default(),
        )
    }

    fn entry_json(entry: Entry, now_secs: f64) -> String {
        let listed = Listed {
            weight: entry.weight(),
            entry: Arc::new(entry),
        };
        let mut out = String::new();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(now_secs);
        push_entry(&mut out, &listed, now, Duration::MAX);
        out
    }

    #[test]
    fn an_entry_lists_its_times_validator_variants_tags_and_gzip_copy() {
        let fields = [
            ("ETag", "\"v1\""),
            ("Vary", "Accept-Encoding"),
            ("Surrogate-Key", "product-42 home"),
        ];
        let entry = stored("h/p\naccept-encoding=gzip", &fields, 1_000_000);
        entry.compressed(Coding::Gzip, |_| vec![0; 7]);
        let weight = entry.weight();
        let json = entry_json(entry, 1_000_010.0);
        assert_eq!(
            json,
            format!(
                "{{\"key\":\"h/p\\naccept-encoding=gzip\",\"status\":200,\"body_bytes\":5,\
                 \"weight\":{weight},\"age\":10,\"fresh_for\":50,\"stale_window_left\":30,\
                 \"validator\":true,\"vary\":[\"accept-encoding\"],\
                 \"tags\":[\"home\",\"product-42\"],\"gzip_bytes\":7,\"brotli_bytes\":null}}"
            )
        );
        // Stale: a negative `fresh_for`, even half a second past, and
        // what is left of the window.
        let plain = || stored("h/q", &[], 1_000_000);
        let json = entry_json(plain(), 1_000_075.0);
        assert!(
            json.contains("\"fresh_for\":-15,\"stale_window_left\":15,"),
            "{json}"
        );
        assert!(
            json.contains("\"validator\":false,\"vary\":[],\"tags\":[],\"gzip_bytes\":null,\"brotli_bytes\":null}"),
            "{json}"
        );
        let json = entry_json(plain(), 1_000_060.5);
        assert!(json.contains("\"fresh_for\":-1,"), "{json}");
        let json = entry_json(plain(), 1_000_200.0);
        assert!(json.contains("\"stale_window_left\":0,"), "{json}");
        let json = entry_json(
            stored(
                "h/r",
                &[("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")],
                0,
            ),
            0.0,
        );
        assert!(json.contains("\"validator\":true"), "{json}");
    }

    #[test]
    fn credentials_and_cookies_a_key_varies_on_are_listed_redacted() {
        let key = "h/a\naccept-encoding=gzip\nauthorization=Basic YW5uOnNlY3JldA==\n\
                   cookie=session=abc123\nproxy-authorization=s3cret";
        let json = entry_json(stored(key, &[], 0), 1.0);
        assert!(
            json.starts_with(
                "{\"key\":\"h/a\\naccept-encoding=gzip\\nauthorization=Basic [redacted]\\n\
                 cookie=[redacted]\\nproxy-authorization=[redacted]\","
            ),
            "{json}"
        );
        // A field the request did not carry keeps its name alone.
        let json = entry_json(stored("h/b\nauthorization", &[], 0), 1.0);
        assert!(
            json.starts_with("{\"key\":\"h/b\\nauthorization\","),
            "{json}"
        );
    }

    #[test]
    fn a_hostile_key_is_listed_escaped() {
        // Keys are the bytes clients sent: a terminal escape, a quote, a
        // backslash, Unicode line ends and a bidi override.
        let key = "h/a\u{1b}[31m\"\\\u{85}\u{2028}\u{202e}é\nx-evil=\u{7}";
        let json = entry_json(stored(key, &[], 0), 1.0);
        let raw = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{202e}');
        assert!(!json.chars().any(raw), "{json:?}");
        assert!(
            json.starts_with(
                "{\"key\":\"h/a\\u001b[31m\\\"\\\\\\u0085\\u2028\\u202eé\\nx-evil=\\u0007\","
            ),
            "{json}"
        );
        assert!(json.contains("\"vary\":[\"x-evil\"]"), "{json}");
    }

    #[test]
    fn a_listing_says_whether_it_was_cut_short() {
        let listed = || Listed {
            entry: Arc::new(stored("h/a", &[], 0)),
            weight: 1,
        };
        let mut listing = Listing {
            entries: vec![listed(), listed()],
            truncated: true,
        };
        let json = listing_json(&listing, SystemTime::UNIX_EPOCH, &|_| Duration::MAX);
        assert!(
            json.starts_with("{\"entries\":[{\"key\":\"h/a\","),
            "{json}"
        );
        assert_eq!(json.matches("{\"key\"").count(), 2);
        assert_eq!(json.matches("},{\"key\"").count(), 1, "{json}");
        assert!(json.ends_with("}],\"truncated\":true}"), "{json}");
        listing.entries.clear();
        listing.truncated = false;
        let json = listing_json(&listing, SystemTime::UNIX_EPOCH, &|_| Duration::MAX);
        assert_eq!(json, "{\"entries\":[],\"truncated\":false}");
    }
}
