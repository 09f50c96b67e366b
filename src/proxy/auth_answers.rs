//! `auth_request_cache`: the yeses of an `auth_request` service kept for
//! a while, so that a client asking again the same thing (a page's
//! assets, an API polled) is let through without the service being asked
//! again, as nginx users get by putting a `proxy_cache` on the
//! `auth_request` location.
//!
//! An answer is taken again only for the same question, byte for byte:
//! the requesting pool, the client's address and scheme, and the question
//! as it would be sent (the method, URL and every field of the client:
//! its cookies, its credentials, its certificate, whatever else the
//! service judges). Which fields a service reads is its own business, so
//! none is left out of the key: a question that differs in any field is
//! asked. Only yeses are kept, and not those that set a cookie (a session
//! the service refreshes) or that say not to be stored. Questions are
//! kept by their SHA-256: a client can neither make its question pass for
//! another's nor, by asking large ones, take more memory.

use crate::http::{Headers, RequestHead};
use parking_lot::Mutex;
use ring::digest::{Context, SHA256};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most answers kept: a memory bound, whatever clients send. Past it,
/// the oldest kept goes (asked again when it comes back).
const MAX_ANSWERS: usize = 10_000;

/// A question's key: its SHA-256, so that a large question costs no more
/// memory than a small one, and no question can be made to pass for
/// another.
pub type Key = [u8; 32];

/// The answers of one configuration's services: a reload starts anew.
#[derive(Default)]
pub struct AuthAnswers {
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    answers: HashMap<Key, Answer>,
    /// The keys of `answers`, oldest first: the first to go past the bound.
    order: VecDeque<Key>,
}

struct Answer {
    until: Instant,
    /// The fields of the answer `auth_request_headers` names.
    fields: Headers,
}

impl AuthAnswers {
    /// The fields the yes to `key` gave, if one is kept and fresh at `now`.
    pub fn get(&self, key: &Key, now: Instant) -> Option<Headers> {
        let kept = self.kept.lock();
        let answer = kept.answers.get(key).filter(|a| a.until > now)?;
        Some(answer.fields.clone())
    }

    /// Keeps the yes to `key` (its named `fields`) until `until`.
    pub fn put(&self, key: Key, until: Instant, fields: Headers) {
        let mut kept = self.kept.lock();
        let answer = Answer { until, fields };
        // One kept before (expired, or it would not have been asked)
        // keeps its place.
        if let Some(old) = kept.answers.get_mut(&key) {
            *old = answer;
            return;
        }
        if kept.answers.len() >= MAX_ANSWERS {
            if let Some(oldest) = kept.order.pop_front() {
                kept.answers.remove(&oldest);
            }
        }
        kept.answers.insert(key, answer);
        kept.order.push_back(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let kept = self.kept.lock();
        assert_eq!(kept.answers.len(), kept.order.len());
        kept.answers.len()
    }
}

/// The key of `question`, asked for a request of the pool at `pool` by
/// `client` over `scheme`.
pub fn key(pool: usize, client: IpAddr, scheme: &str, question: &RequestHead) -> Key {
    let mut digest = Context::new(&SHA256);
    // Lengths first: no part can pass for a boundary between two.
    let mut part = |bytes: &[u8]| {
        digest.update(&(bytes.len() as u64).to_le_bytes());
        digest.update(bytes);
    };
    part(&pool.to_le_bytes());
    part(scheme.as_bytes());
    part(client.to_string().as_bytes());
    part(question.method.as_bytes());
    part(question.target.as_bytes());
    for (name, value) in question.headers.iter() {
        part(name.as_bytes());
        part(value);
    }
    let mut key = [0; 32];
    key.copy_from_slice(digest.finish().as_ref());
    key
}

/// How long a yes with these fields may be kept, at most `longest`: not
/// at all when it sets a cookie or its `Cache-Control` says not to keep
/// it; no longer than its `max-age`.
pub fn keep_for(answer: &Headers, longest: Duration) -> Duration {
    if answer.contains("set-cookie") {
        return Duration::ZERO;
    }
    let mut keep = longest;
    for directive in answer.tokens("cache-control") {
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        let name = name.trim();
        if ["no-store", "no-cache", "private"]
            .iter()
            .any(|d| name.eq_ignore_ascii_case(d))
        {
            return Duration::ZERO;
        }
        if name.eq_ignore_ascii_case("max-age") {
            let seconds = value.trim().trim_matches('"').parse::<u64>().unwrap_or(0);
            keep = keep.min(Duration::from_secs(seconds));
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Version;

    fn question(fields: &[(&str, &str)]) -> RequestHead {
        let mut headers = Headers::new();
        for (name, value) in fields {
            headers.push(name, value);
        }
        RequestHead {
            method: "GET".into(),
            target: "/verify".into(),
            version: Version::Http11,
            headers,
        }
    }

    #[test]
    fn a_question_differing_in_anything_has_another_key() {
        let ip: IpAddr = [192, 0, 2, 1].into();
        let base = question(&[("Cookie", "s=1"), ("X-Original-URI", "/a")]);
        let same = key(0, ip, "https", &base);
        assert_eq!(same, key(0, ip, "https", &base.clone()));
        let others = [
            key(1, ip, "https", &base),
            key(0, [192, 0, 2, 2].into(), "https", &base),
            key(0, ip, "http", &base),
            key(
                0,
                ip,
                "https",
                &question(&[("Cookie", "s=2"), ("X-Original-URI", "/a")]),
            ),
            key(
                0,
                ip,
                "https",
                &question(&[("Cookie", "s=1"), ("X-Original-URI", "/b")]),
            ),
            key(
                0,
                ip,
                "https",
                &question(&[
                    ("Cookie", "s=1"),
                    ("X-Original-URI", "/a"),
                    ("X-Api-Key", "k"),
                ]),
            ),
            // A value that would end a field and start another.
            key(
                0,
                ip,
                "https",
                &question(&[("Cookie", "s=1X-Original-URI/a")]),
            ),
            key(
                0,
                ip,
                "https",
                &question(&[("Cookie", "s=1"), ("X-Original-URI", ""), ("", "/a")]),
            ),
        ];
        for (i, other) in others.iter().enumerate() {
            assert_ne!(&same, other, "{i}");
        }
    }

    #[test]
    fn a_yes_is_taken_again_until_it_expires() {
        let answers = AuthAnswers::default();
        let now = Instant::now();
        let mut fields = Headers::new();
        fields.push("Remote-User", "ann");
        answers.put([1; 32], now + Duration::from_secs(5), fields);
        let got = answers.get(&[1; 32], now + Duration::from_secs(4)).unwrap();
        assert_eq!(got.get_str("remote-user"), Some("ann"));
        assert!(answers
            .get(&[1; 32], now + Duration::from_secs(5))
            .is_none());
        assert!(answers.get(&[2; 32], now).is_none());
    }

    #[test]
    fn past_the_bound_the_oldest_answers_go() {
        let answers = AuthAnswers::default();
        let later = Instant::now() + Duration::from_secs(60);
        let key = |i: usize| {
            let mut k = [0; 32];
            k[..8].copy_from_slice(&i.to_le_bytes());
            k
        };
        for i in 0..MAX_ANSWERS + 10 {
            answers.put(key(i), later, Headers::new());
        }
        assert_eq!(answers.len(), MAX_ANSWERS);
        let now = Instant::now();
        assert!(answers.get(&key(9), now).is_none(), "among the oldest");
        assert!(answers.get(&key(10), now).is_some());
        assert!(answers.get(&key(MAX_ANSWERS + 9), now).is_some());
        // One put again keeps its place, and takes no other's.
        answers.put(key(10), later, Headers::new());
        assert_eq!(answers.len(), MAX_ANSWERS);
        answers.put(key(MAX_ANSWERS + 10), later, Headers::new());
        assert!(answers.get(&key(10), now).is_none());
        assert!(answers.get(&key(11), now).is_some());
    }

    #[test]
    fn an_answer_that_sets_a_cookie_or_says_not_to_be_stored_is_not_kept() {
        let minute = Duration::from_secs(60);
        let with = |fields: &[(&str, &str)]| {
            let mut headers = Headers::new();
            for (name, value) in fields {
                headers.push(name, value);
            }
            keep_for(&headers, minute)
        };
        assert_eq!(with(&[]), minute);
        assert_eq!(with(&[("Set-Cookie", "s=2")]), Duration::ZERO);
        assert_eq!(with(&[("Cache-Control", "no-store")]), Duration::ZERO);
        assert_eq!(
            with(&[("Cache-Control", "max-age=60, Private")]),
            Duration::ZERO
        );
        assert_eq!(with(&[("cache-control", "no-cache")]), Duration::ZERO);
        assert_eq!(
            with(&[("Cache-Control", "max-age=5")]),
            Duration::from_secs(5)
        );
        assert_eq!(with(&[("Cache-Control", "max-age=600")]), minute);
        assert_eq!(with(&[("Cache-Control", "max-age=oops")]), Duration::ZERO);
    }
}
