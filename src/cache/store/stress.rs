//! The cache's invariants with threads at once.

use super::*;
use crate::cache::policy::{Lifetime, Settings};
use crate::gzip::Coding;
use crate::http::Headers;
use crate::http::ResponseHead;
use std::time::Duration;

#[test]
fn concurrent_operations_keep_the_invariants() {
    let cache = Arc::new(Cache::new(40_000, 4000));
    let names = ["accept-encoding", "accept-language"];
    let mut threads = Vec::new();
    for t in 0..4u64 {
        let cache = cache.clone();
        threads.push(std::thread::spawn(move || {
            let mut x = t * 7919 + 1;
            let mut rnd = move |n: u64| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x % n
            };
            for _ in 0..4000 {
                let u = rnd(6);
                let primary = format!("h/{u}");
                match rnd(10) {
                    0..=3 => {
                        let mut head = ResponseHead::new(200);
                        head.headers.push("Cache-Control", "max-age=60");
                        head.headers.push("Surrogate-Key", format!("t{}", rnd(3)));
                        let key = if rnd(2) == 0 {
                            primary.clone()
                        } else {
                            let n = names[rnd(2) as usize];
                            head.headers.push("Vary", n);
                            let mut req = Headers::new();
                            req.push(n, format!("v{}", rnd(3)));
                            policy::variant_key(&primary, &[n.to_string()], &req)
                        };
                        let fill = cache.begin_fill();
                        let e = Entry::new(
                            key,
                            head,
                            vec![b'x'; rnd(3000) as usize].into(),
                            SystemTime::now(),
                            Lifetime {
                                fresh: Duration::from_secs(rnd(3)),
                                stale_if_error: Duration::ZERO,
                            },
                            &Settings::default(),
                        );
                        cache.insert_filled(Arc::new(e), &fill);
                    }
                    4 => {
                        let mut req = Headers::new();
                        req.push(names[rnd(2) as usize], format!("v{}", rnd(3)));
                        if let Some(e) = cache.lookup(&primary, &req) {
                            if let Some((_, true)) = e.compressed(Coding::Gzip, |b| b.repeat(2)) {
                                cache.reweigh(&e);
                            }
                        }
                    }
                    5 => {
                        let p = if rnd(2) == 0 {
                            Purge::Hard
                        } else {
                            Purge::Soft(SystemTime::now())
                        };
                        cache.invalidate_all(&[primary], p);
                    }
                    6 => {
                        let p = if rnd(2) == 0 {
                            Purge::Hard
                        } else {
                            Purge::Soft(SystemTime::now())
                        };
                        cache.invalidate_group_by(&Group::Prefixes(vec![primary]), p, 2, || {});
                    }
                    7 => {
                        cache.expire_due(SystemTime::now() + Duration::from_secs(rnd(4)));
                    }
                    8 => {
                        if rnd(20) == 0 {
                            cache.clear();
                        }
                    }
                    _ => {
                        cache.entries_by(2, || {});
                    }
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    super::model::check(&cache);
    let state = cache.state.lock();
    assert!(state.fills.is_empty() && state.invalidated.is_empty() && state.sweeping.is_empty());
}
