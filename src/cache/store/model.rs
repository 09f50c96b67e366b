//! The cache against a model of what it must hold, by proptest.

use super::*;
use crate::cache::policy::{Lifetime, Settings};
use crate::gzip::Coding;
use crate::http::Headers;
use crate::http::ResponseHead;
use proptest::prelude::*;
use std::time::Duration;

fn settings() -> Settings {
    Settings {
        targeting: policy::Targeting {
            surrogate_keys: true,
            ..Default::default()
        },
        ..Settings::default()
    }
}

const NAMES: [&str; 2] = ["accept-encoding", "accept-language"];

/// (url, vary: None or Some((name index, value)), body len, tag, fresh secs)
fn make(url: u8, vary: Option<(usize, u8)>, body: usize, tag: u8, fresh: u64) -> Entry {
    let primary = format!("h/{url}");
    let mut head = ResponseHead::new(200);
    head.headers
        .push("Cache-Control", format!("max-age={fresh}"));
    head.headers.push("Surrogate-Key", format!("t{tag}"));
    let key = match vary {
        None => primary.clone(),
        Some((n, v)) => {
            head.headers.push("Vary", NAMES[n]);
            let mut req = Headers::new();
            req.push(NAMES[n], format!("v{v}"));
            policy::variant_key(&primary, &[NAMES[n].to_string()], &req)
        }
    };
    Entry::new(
        key,
        head,
        vec![b'x'; body].into(),
        SystemTime::now(),
        Lifetime {
            fresh: Duration::from_secs(fresh),
            stale_if_error: Duration::from_secs(10),
        },
        &settings(),
    )
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, Option<(usize, u8)>, usize, u8, u64),
    Lookup(u8, usize, u8),
    Purge(u8, bool),
    Prefix(u8, bool),
    Tag(u8, bool),
    Compress(u8, Option<(usize, u8)>, usize),
    Expire(u64),
    Clear,
    Begin(usize),
    Finish(usize, u8, Option<(usize, u8)>, usize, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let vary = prop::option::of((0usize..2, 0u8..3));
    prop_oneof![
        8 => (0u8..5, vary.clone(), 0usize..3000, 0u8..3, 0u64..100)
            .prop_map(|(u, v, b, t, f)| Op::Insert(u, v, b, t, f)),
        2 => (0u8..5, 0usize..2, 0u8..3).prop_map(|(u, n, v)| Op::Lookup(u, n, v)),
        1 => (0u8..5, any::<bool>()).prop_map(|(u, s)| Op::Purge(u, s)),
        1 => (0u8..5, any::<bool>()).prop_map(|(u, s)| Op::Prefix(u, s)),
        1 => (0u8..3, any::<bool>()).prop_map(|(t, s)| Op::Tag(t, s)),
        2 => (0u8..5, vary, 0usize..3000).prop_map(|(u, v, b)| Op::Compress(u, v, b)),
        1 => (0u64..200).prop_map(Op::Expire),
        1 => Just(Op::Clear),
        2 => (0usize..3).prop_map(Op::Begin),
        3 => (0usize..3, 0u8..5, prop::option::of((0usize..2, 0u8..3)), 0usize..3000, 0u8..3)
            .prop_map(|(f, u, v, b, t)| Op::Finish(f, u, v, b, t)),
    ]
}

/// The LRU's own invariants (bytes, links), and every variant in its
/// URL's index, every index naming stored variants only.
pub(super) fn check(cache: &Cache) {
    let state = cache.state.lock();
    state.lru.assert_invariant();
    for (key, entry) in state.lru.iter() {
        assert_eq!(key, entry.key());
        let primary = primary_of(key);
        if primary.len() != key.len() {
            let v = state
                .vary
                .get(primary)
                .unwrap_or_else(|| panic!("{key:?} unindexed"));
            assert!(v.keys.contains(key), "{key:?} not in its index");
        } else {
            assert!(!state.vary.contains_key(primary), "{key:?} with variants");
        }
    }
    for (primary, v) in &state.vary {
        assert!(!v.keys.is_empty(), "{primary:?} has no variants");
        for k in &v.keys {
            assert!(
                state.lru.contains_key(k.as_str()),
                "{k:?} indexed, not stored"
            );
        }
    }
}

/// A fill begun, and what was invalidated since: URLs, tags, or all.
struct Begun {
    fill: Fill,
    urls: Vec<u8>,
    tags: Vec<u8>,
    cleared: bool,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    #[test]
    fn cache_keeps_its_invariants(cap in 0u64..20_000, ops in prop::collection::vec(op(), 1..80)) {
        let cache = Arc::new(Cache::new(cap, 2500));
        let mut fills: [Option<Begun>; 3] = [None, None, None];
        for op in ops {
            let note_url = |fills: &mut [Option<Begun>; 3], u: u8| {
                for f in fills.iter_mut().flatten() { f.urls.push(u); }
            };
            let note_tag = |fills: &mut [Option<Begun>; 3], t: u8| {
                for f in fills.iter_mut().flatten() { f.tags.push(t); }
            };
            match op {
                Op::Insert(u, v, b, t, f) => {
                    cache.insert(make(u, v, b, t, f));
                }
                Op::Lookup(u, n, v) => {
                    let mut req = Headers::new();
                    req.push(NAMES[n], format!("v{v}"));
                    cache.lookup(&format!("h/{u}"), &req);
                }
                Op::Purge(u, soft) => {
                    let p = if soft { Purge::Soft(SystemTime::now()) } else { Purge::Hard };
                    cache.invalidate_all(&[format!("h/{u}")], p);
                    note_url(&mut fills, u);
                }
                Op::Prefix(u, soft) => {
                    let p = if soft { Purge::Soft(SystemTime::now()) } else { Purge::Hard };
                    cache.invalidate_group_by(&Group::Prefixes(vec![format!("h/{u}")]), p, 2, || check(&cache));
                    note_url(&mut fills, u);
                }
                Op::Tag(t, soft) => {
                    let p = if soft { Purge::Soft(SystemTime::now()) } else { Purge::Hard };
                    let mut h = Headers::new();
                    h.push("Surrogate-Key", format!("t{t}"));
                    let tags = policy::Tags::of_purge(&h).unwrap();
                    cache.invalidate_group_by(&Group::Tags(tags), p, 2, || check(&cache));
                    note_tag(&mut fills, t);
                }
                Op::Compress(u, v, b) => {
                    // Compress what is stored under that key, then reweigh.
                    let key = make(u, v, 0, 0, 1).key().to_string();
                    let held = cache.state.lock().lru.peek(key.as_str()).cloned();
                    if let Some(e) = held {
                        e.compressed(Coding::Gzip, |_| vec![b'z'; b]);
                        cache.reweigh(&e);
                    }
                }
                Op::Expire(s) => {
                    cache.expire_due(SystemTime::now() + Duration::from_secs(s));
                }
                Op::Clear => {
                    cache.clear();
                    for f in fills.iter_mut().flatten() { f.cleared = true; }
                }
                Op::Begin(i) => {
                    fills[i] = Some(Begun { fill: cache.begin_fill(), urls: vec![], tags: vec![], cleared: false });
                }
                Op::Finish(i, u, v, b, t) => {
                    if let Some(Begun { fill, urls, tags, cleared }) = fills[i].take() {
                        let e = Arc::new(make(u, v, b, t, 60));
                        let stored = cache.insert_filled(e.clone(), &fill);
                        let overtaken = cleared || urls.contains(&u) || tags.contains(&t);
                        if overtaken {
                            prop_assert!(!stored, "stored after an invalidation");
                        }
                        let fits = b <= 2500 && e.weight() <= cap;
                        if !overtaken && fits {
                            prop_assert!(stored, "not stored");
                        }
                        let held = cache.state.lock().lru.peek(e.key()).cloned();
                        prop_assert_eq!(stored, held.is_some_and(|h| Arc::ptr_eq(&h, &e)));
                    }
                }
            }
            check(&cache);
        }
    }
}
