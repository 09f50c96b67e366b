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
//! the service refreshes) or that say not to be stored.

use crate::http::{Headers, RequestHead};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most answers kept: a memory bound, whatever clients send. Past it,
/// expired ones are dropped; if none has, the new one is not kept.
const MAX_ANSWERS: usize = 10_000;

/// The longest question kept (its key is the whole question): one
/// larger is always asked.
const MAX_QUESTION: usize = 16 * 1024;

/// The answers of one configuration's services: a reload starts anew.
#[derive(Default)]
pub struct AuthAnswers {
    kept: Mutex<HashMap<Box<[u8]>, Kept>>,
}

struct Kept {
    until: Instant,
    /// The fields of the answer `auth_request_headers` names.
    fields: Headers,
}

impl AuthAnswers {
    /// The fields the yes to `key` gave, if one is kept and fresh at `now`.
    pub fn get(&self, key: &[u8], now: Instant) -> Option<Headers> {
        let kept = self.kept.lock();
        let answer = kept.get(key).filter(|k| k.until > now)?;
        Some(answer.fields.clone())
    }

    /// Keeps the yes to `key` (its named `fields`) until `until`.
    pub fn put(&self, key: Box<[u8]>, until: Instant, fields: Headers, now: Instant) {
        let mut kept = self.kept.lock();
        if kept.len() >= MAX_ANSWERS && !kept.contains_key(&key) {
            kept.retain(|_, k| k.until > now);
            if kept.len() >= MAX_ANSWERS {
                return;
            }
        }
        kept.insert(key, Kept { until, fields });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.kept.lock().len()
    }
}

/// The key of `question`, asked for a request of the pool at `pool` by
/// `client` over `scheme`; `None` when it is too large to keep.
pub fn key(pool: usize, client: IpAddr, scheme: &str, question: &RequestHead) -> Option<Box<[u8]>> {
    let mut key = Vec::with_capacity(256);
    key.extend_from_slice(&pool.to_le_bytes());
    for part in [
        scheme.as_bytes(),
        b"\n",
        client.to_string().as_bytes(),
        b"\n",
        question.method.as_bytes(),
        b" ",
        question.target.as_bytes(),
        b"\n",
    ] {
        key.extend_from_slice(part);
    }
    for (name, value) in question.headers.iter() {
        // Lengths first: no value can pass for a field boundary.
        for part in [
            &(name.len() as u32).to_le_bytes()[..],
            &(value.len() as u32).to_le_bytes(),
            name.as_bytes(),
            value,
        ] {
            key.extend_from_slice(part);
        }
        if key.len() > MAX_QUESTION {
            return None;
        }
    }
    Some(key.into_boxed_slice())
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
        let k = |pool, ip, scheme, q: &RequestHead| key(pool, ip, scheme, q).unwrap();
        let same = k(0, ip, "https", &base);
        assert_eq!(same, k(0, ip, "https", &base.clone()));
        let others = [
            k(1, ip, "https", &base),
            k(0, [192, 0, 2, 2].into(), "https", &base),
            k(0, ip, "http", &base),
            k(
                0,
                ip,
                "https",
                &question(&[("Cookie", "s=2"), ("X-Original-URI", "/a")]),
            ),
            k(
                0,
                ip,
                "https",
                &question(&[("Cookie", "s=1"), ("X-Original-URI", "/b")]),
            ),
            k(
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
            k(
                0,
                ip,
                "https",
                &question(&[("Cookie", "s=1X-Original-URI/a")]),
            ),
        ];
        for (i, other) in others.iter().enumerate() {
            assert_ne!(&same, other, "{i}");
        }
        let huge = "x".repeat(MAX_QUESTION);
        assert_eq!(key(0, ip, "https", &question(&[("Cookie", &huge)])), None);
    }

    #[test]
    fn a_yes_is_taken_again_until_it_expires() {
        let answers = AuthAnswers::default();
        let now = Instant::now();
        let mut fields = Headers::new();
        fields.push("Remote-User", "ann");
        answers.put(
            b"q".to_vec().into(),
            now + Duration::from_secs(5),
            fields,
            now,
        );
        let got = answers.get(b"q", now + Duration::from_secs(4)).unwrap();
        assert_eq!(got.get_str("remote-user"), Some("ann"));
        assert!(answers.get(b"q", now + Duration::from_secs(5)).is_none());
        assert!(answers.get(b"other", now).is_none());
    }

    #[test]
    fn past_the_bound_expired_answers_go_and_else_new_ones_are_not_kept() {
        let answers = AuthAnswers::default();
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        for i in 0..MAX_ANSWERS {
            let until = if i % 2 == 0 { now } else { later };
            answers.put(i.to_le_bytes().into(), until, Headers::new(), now);
        }
        assert_eq!(answers.len(), MAX_ANSWERS);
        let step = now + Duration::from_secs(1);
        answers.put(b"new".to_vec().into(), later, Headers::new(), step);
        assert_eq!(answers.len(), MAX_ANSWERS / 2 + 1, "the expired half went");
        assert!(answers.get(b"new", step).is_some());
        for i in 0..MAX_ANSWERS {
            answers.put(
                (i + MAX_ANSWERS).to_le_bytes().into(),
                later,
                Headers::new(),
                step,
            );
        }
        assert_eq!(answers.len(), MAX_ANSWERS, "none expired: the bound holds");
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
