//! `limit_rate` and `limit_rate_after` over real sockets: a response
//! relayed as it streams, one read whole, a cache hit and a file each
//! arrive whole and intact, and never faster than the rate allows; a
//! pool that sets no rate sends at full speed.
//!
//! The one time asserted is a lower bound, which a slow machine only
//! makes easier to meet: under a rate, bytes cannot arrive sooner than it
//! lets them.

mod support;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

/// 256 KiB a second, after the first 44 KiB: a body of 300 KiB takes
/// nearly a second.
const RATE: &str = "limit_rate = 256KiB/s\nlimit_rate_after = 44KiB\n";
const LARGE: usize = 300 * 1024;
/// Read whole before it is sent (under `response_buffer_size`).
const SMALL: usize = 60 * 1024;

/// An origin answering `/small...` with [`SMALL`] bytes and anything else
/// with [`LARGE`], fresh for a minute under `/cached`.
fn origin() -> Backend {
    Backend::start("origin", |seen, out| {
        let path = seen.path();
        let fresh: &[(&str, &str)] = match path.starts_with("/cached") {
            true => &[("Cache-Control", "max-age=60")],
            false => &[],
        };
        let len = if path.starts_with("/small") {
            SMALL
        } else {
            LARGE
        };
        respond(out, 200, fresh, &pattern(len));
        Action::KeepAlive
    })
}

/// A proxy with the configuration `text` and a cache that stores
/// [`LARGE`] bodies.
fn caching_proxy(text: &str) -> Proxy {
    start_proxy(&[], |c| {
        from_file(text)(c);
        c.cache_size = 4 << 20;
        c.max_object_size = Some(1 << 20);
    })
}

/// `GET path` on a connection of its own: the body, and how long it took.
fn timed_get(proxy: &Proxy, path: &str) -> (Vec<u8>, Duration) {
    let mut client = proxy.connect();
    let began = Instant::now();
    let r = client.get(path);
    assert_eq!(r.status, 200, "{path}: {}", r.head.raw);
    (r.body, began.elapsed())
}

#[test]
fn every_kind_of_response_arrives_whole_and_no_faster_than_the_rate() {
    let origin = origin();
    let fast = Backend::start("fast", |_, out| {
        respond(out, 200, &[], &pattern(LARGE));
        Action::KeepAlive
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.bin"), pattern(LARGE)).unwrap();
    let text = format!(
        "targets = {}\n{RATE}route./files/ = files {}\n\
         pool.fast = {}\npool.fast.limit_rate = 0\nroute./fast/ = fast\n",
        origin.addr,
        dir.path().display(),
        fast.addr
    );
    let proxy = caching_proxy(&text);
    // The cache takes its entry first, so that the second is a hit: done
    // once the connection's next request is answered.
    let mut client = proxy.connect();
    assert!(client.get("/cached/a").body == pattern(LARGE));
    assert_eq!(x_cache(&client.head("/cached/a")), "HIT");
    let paths = ["/relayed", "/cached/a", "/files/big.bin", "/small"];
    let got: Vec<(Vec<u8>, Duration)> = std::thread::scope(|s| {
        let asked: Vec<_> = (paths.iter())
            .map(|path| s.spawn(|| timed_get(&proxy, path)))
            .collect();
        asked.into_iter().map(|a| a.join().unwrap()).collect()
    });
    for (path, (body, took)) in paths.iter().zip(got) {
        let len = if path.starts_with("/small") {
            SMALL
        } else {
            LARGE
        };
        assert!(body == pattern(len), "{path}: {} bytes", body.len());
        // What is past the first 44 KiB and the tenth of a second's worth
        // credited at the start, at 256 KiB a second, less a tenth for the
        // slices' rounding.
        let paced = len.saturating_sub(44 * 1024 + 256 * 1024 / 10);
        let least = paced as f64 / (256.0 * 1024.0) * 0.9;
        assert!(took.as_secs_f64() >= least, "{path}: {took:?}");
    }
    assert_eq!(origin.requests(), 3, "the hit reached no backend");
    // A pool with no rate of its own sends whole, at its own pace.
    let (body, _) = timed_get(&proxy, "/fast/x");
    assert!(body == pattern(LARGE));
}

#[test]
fn a_files_route_may_have_a_rate_of_its_own() {
    let origin = origin();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.bin"), pattern(LARGE)).unwrap();
    let text = format!(
        "targets = {}\nroute./slow/ = files {} limit_rate=256KiB/s limit_rate_after=44KiB\n\
         route./fast/ = files {}\n",
        origin.addr,
        dir.path().display(),
        dir.path().display()
    );
    let proxy = start_proxy(&[], from_file(&text));
    let (body, took) = timed_get(&proxy, "/slow/big.bin");
    assert!(body == pattern(LARGE));
    let least = (LARGE - 44 * 1024 - 256 * 1024 / 10) as f64 / (256.0 * 1024.0) * 0.9;
    assert!(took.as_secs_f64() >= least, "{took:?}");
    // Several parts of it go through the same buffer, at the same rate.
    let mut client = proxy.connect();
    let r = client.get_with("/slow/big.bin", &[("Range", "bytes=0-99,-300000")]);
    let parts = multipart(&r);
    let large = pattern(LARGE);
    assert_eq!(parts.len(), 2, "{}", r.head.raw);
    assert!(parts[0].1 == large[..100] && parts[1].1 == large[LARGE - 300_000..]);
    // The other route, and the pool, keep the settings' (none).
    assert!(timed_get(&proxy, "/fast/big.bin").0 == pattern(LARGE));
    assert!(timed_get(&proxy, "/relayed").0 == pattern(LARGE));
}

#[test]
fn a_backend_sets_its_answer_s_rate_with_x_accel_limit_rate() {
    let origin = Backend::start("origin", |seen, out| {
        let mut fields = vec![("X-Accel-Limit-Rate", "262144")];
        if seen.path().starts_with("/cached") {
            fields.push(("Cache-Control", "max-age=60"));
        }
        respond(out, 200, &fields, &pattern(LARGE));
        Action::KeepAlive
    });
    // No rate of the proxy's own.
    let text = format!("targets = {}\n", origin.addr);
    let proxy = caching_proxy(&text);
    let mut client = proxy.connect();
    let stored = client.get("/cached/a");
    assert!(stored.body == pattern(LARGE));
    // The field is the proxy's to read: never sent on, nor served from
    // the cache.
    assert_eq!(stored.header("x-accel-limit-rate"), None);
    let hit = client.head("/cached/a");
    assert_eq!(
        (x_cache(&hit), hit.header("x-accel-limit-rate")),
        ("HIT", None)
    );
    // 256 KiB a second: past the slice credited at the start, 0.9 s.
    let least = (LARGE - 256 * 1024 / 10) as f64 / (256.0 * 1024.0) * 0.9;
    for path in ["/relayed", "/cached/a"] {
        let (body, took) = timed_get(&proxy, path);
        assert!(body == pattern(LARGE), "{path}");
        assert!(took.as_secs_f64() >= least, "{path}: {took:?}");
    }
    assert_eq!(origin.requests(), 2, "the second /cached/a was a hit");
}

#[test]
fn a_stale_answer_is_not_paced_at_the_rate_of_the_answer_that_failed() {
    let failing = Arc::new(AtomicBool::new(false));
    let fails = failing.clone();
    let origin = Backend::start("origin", move |_, out| {
        if fails.load(Ordering::SeqCst) {
            // A rate of 1 KiB a second, then a body cut short: the stale
            // copy is answered instead, and must not go at that rate.
            let _ = out.write_all(
                b"HTTP/1.1 200 OK\r\nX-Accel-Limit-Rate: 1024\r\nContent-Length: 5000\r\n\r\nabc",
            );
            return Action::Close;
        }
        let fields = [("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")];
        respond(out, 200, &fields, &pattern(LARGE));
        Action::KeepAlive
    });
    let text = format!("targets = {}\n", origin.addr);
    let proxy = caching_proxy(&text);
    let mut client = proxy.connect();
    assert_eq!(x_cache(&client.get("/s")), "MISS");
    failing.store(true, Ordering::SeqCst);
    // At 1 KiB a second, 300 KiB would take five minutes: the answer is
    // waited for as long as the suite waits for anything.
    let answered = Arc::new(AtomicBool::new(false));
    let answer: Arc<Mutex<Option<(String, bool)>>> = Arc::default();
    let mut asking = proxy.connect();
    std::thread::spawn({
        let (answered, answer) = (answered.clone(), Arc::clone(&answer));
        move || {
            let r = asking.get("/s");
            *answer.lock().unwrap() = Some((x_cache(&r).to_string(), r.body == pattern(LARGE)));
            answered.store(true, Ordering::SeqCst);
        }
    });
    assert!(wait_until(WAIT_LIMIT, || answered.load(Ordering::SeqCst)));
    assert_eq!(answer.lock().unwrap().take(), Some(("STALE".into(), true)));
}

#[test]
fn a_rate_is_refused_where_it_is_no_size() {
    for (line, says) in [
        ("limit_rate = fast", "`fast` is not a size"),
        ("limit_rate = 10KB/s", "use KiB, MiB or GiB"),
        ("limit_rate_after = 1/s", "unknown size unit `/s`"),
        ("limit_rate = /s", "`/s` is not a rate"),
        (
            "route./d/ = files /tmp limit_rate=soon",
            "route./d/: limit_rate=soon: `soon` is not a size",
        ),
        (
            "route./d/ = files /tmp limit_rate=1k limit_rate=2k",
            "limit_rate= given twice",
        ),
    ] {
        let mut loader = inverso::config::Loader::new();
        let text = format!("targets = 127.0.0.1:9\n{line}\n");
        let e = loader
            .file("proxy.conf", &text)
            .and_then(|l| l.build())
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("proxy.conf:2") && e.contains(says),
            "{line}: {e}"
        );
    }
}
