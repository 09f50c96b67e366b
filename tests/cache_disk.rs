//! `cache_disk_dir`: a memory cache with room for two or three entries,
//! and a disk tier behind it that keeps what memory evicts, serves it as
//! a HIT, keeps it across a restart, and drops what a PURGE names.

mod support;

use inverso::cache::Cache;
use inverso::Config;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use support::*;

const URLS: usize = 10;

/// Every answer fresh for ten minutes, its body the path padded to 1000
/// bytes.
fn origin() -> Backend {
    Backend::start("origin", |seen, out| {
        let mut body = seen.path().as_bytes().to_vec();
        body.resize(1000, b'.');
        respond(out, 200, &[("Cache-Control", "max-age=600")], &body);
        Action::KeepAlive
    })
}

struct Dirs {
    _dir: tempfile::TempDir,
    disk: PathBuf,
    snapshot: PathBuf,
}

fn dirs() -> Dirs {
    let dir = tempfile::tempdir().unwrap();
    Dirs {
        disk: dir.path().join("disk"),
        snapshot: dir.path().join("cache.bin"),
        _dir: dir,
    }
}

/// Room in memory for two or three of the origin's answers.
fn small_cache(snapshot: &Path, disk: Option<&Path>) -> impl FnOnce(&mut Config) {
    let (snapshot, disk) = (snapshot.to_path_buf(), disk.map(Path::to_path_buf));
    move |c| {
        c.cache_size = 6000;
        c.max_object_size = Some(2000);
        c.path_to_persistence = Some(snapshot);
        c.cache_disk_dir = disk;
        c.admin_port = Some(0);
    }
}

fn cache_of(proxy: &Proxy) -> &Arc<Cache> {
    proxy.handle().cache().expect("the cache is on")
}

/// The keys stored in memory or on disk (a response read back from disk
/// is in both: its file stays).
fn stored(cache: &Cache) -> BTreeSet<String> {
    let in_memory = cache.entries().into_iter().map(|e| e.key().to_string());
    let disk = cache.disk().expect("the disk tier is on");
    in_memory.chain(disk.keys()).collect()
}

/// Waits until the disk tier has scanned its directory and `n` keys are
/// in memory or on disk (what memory evicted is written).
fn settled_with(cache: &Cache, n: usize) {
    let disk = cache.disk().expect("the disk tier is on");
    let all = || disk.is_scanned() && stored(cache).len() == n;
    assert!(
        wait_until(Duration::from_secs(10), all),
        "{} in memory, {} on disk",
        cache.len(),
        disk.len()
    );
}

fn settled(proxy: &Proxy) {
    settled_with(cache_of(proxy), URLS);
}

fn path(i: usize) -> String {
    format!("/item/{i}")
}

/// `GET` of URL `i`: its X-Cache, the body checked.
fn x_cache(proxy: &Proxy, i: usize) -> String {
    let r = proxy.exchange(|c| c.get(&path(i)));
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert!(
        r.body_str().starts_with(&format!("{}.", path(i))),
        "{}",
        r.body_str()
    );
    r.header("x-cache").unwrap_or("(none)").to_string()
}

/// A sample of the admin listener's `/metrics`.
fn metric(proxy: &Proxy, name: &str) -> f64 {
    let mut client = Client::connect(proxy.handle().admin_addr().unwrap());
    client.send(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let page = client.response().body_str();
    let line = page
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '));
    line.and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{page}"))
}

fn purge(proxy: &Proxy, target: &str) -> u16 {
    let mut client = Client::connect(proxy.handle().admin_addr().unwrap());
    client.send(format!("PURGE {target} HTTP/1.1\r\nHost: test.example\r\n\r\n").as_bytes());
    client.response().status
}

#[test]
fn what_memory_evicts_is_served_from_disk_and_survives_a_restart() {
    let dirs = dirs();
    let backend = origin();
    let tweak = || small_cache(&dirs.snapshot, Some(&dirs.disk));
    let mut first = start_proxy(&[backend.addr], tweak());
    for i in 0..URLS {
        assert_eq!(x_cache(&first, i), "MISS", "{}", path(i));
    }
    settled(&first);
    assert!(
        cache_of(&first).len() < 4,
        "memory holds {}",
        cache_of(&first).len()
    );
    for i in 0..URLS {
        // Each hit reads one back to memory, which evicts another.
        settled(&first);
        assert_eq!(x_cache(&first, i), "HIT", "{}", path(i));
    }
    assert_eq!(backend.requests(), URLS);
    let hits = metric(&first, "inverso_cache_disk_hits_total");
    assert!(hits >= 7.0, "{hits} hits from disk");
    // Those read back kept their files: evicted again, none is written
    // again, so each response was written once.
    settled(&first);
    let writes = || metric(&first, "inverso_cache_disk_writes_total");
    assert!(wait_until(WAIT_LIMIT, || writes() >= URLS as f64));
    assert_eq!(writes(), URLS as f64);
    assert_eq!(
        metric(&first, "inverso_cache_disk_capacity_bytes"),
        (1u64 << 30) as f64
    );
    assert!(first.shutdown(Duration::from_secs(1)));

    // The snapshot has what memory held, the directory the rest.
    let second = start_proxy(&[backend.addr], tweak());
    settled(&second);
    for i in (0..URLS).rev() {
        settled(&second);
        assert_eq!(x_cache(&second, i), "HIT", "{}", path(i));
    }
    assert_eq!(backend.requests(), URLS);

    // A purge of one URL reaches it wherever it is.
    settled(&second);
    let in_memory = cache_of(&second).entries();
    let on_disk = (0..URLS).find(|&i| !in_memory.iter().any(|e| e.key().ends_with(&path(i))));
    let on_disk = on_disk.expect("one on disk");
    assert_eq!(purge(&second, &path(on_disk)), 200);
    assert_eq!(x_cache(&second, on_disk), "MISS");
    assert_eq!(backend.requests(), URLS + 1);
}

#[test]
fn without_a_disk_dir_what_memory_evicts_is_asked_for_again() {
    let dirs = dirs();
    let backend = origin();
    let proxy = start_proxy(&[backend.addr], small_cache(&dirs.snapshot, None));
    for i in 0..URLS {
        assert_eq!(x_cache(&proxy, i), "MISS", "{}", path(i));
    }
    assert_eq!(x_cache(&proxy, 0), "MISS");
    assert!(!dirs.disk.exists());
}

#[test]
fn variants_evicted_to_disk_are_found_by_what_they_vary_on() {
    let dirs = dirs();
    let backend = Backend::start("origin", |seen, out| {
        let language = seen.head.get("accept-language").unwrap_or("none");
        let mut body = format!("{} {language}", seen.path()).into_bytes();
        body.resize(1000, b'.');
        let fields = [
            ("Cache-Control", "max-age=600"),
            ("Vary", "Accept-Language"),
        ];
        respond(out, 200, &fields, &body);
        Action::KeepAlive
    });
    let proxy = start_proxy(
        &[backend.addr],
        small_cache(&dirs.snapshot, Some(&dirs.disk)),
    );
    let ask = |path: &str, language: &str| {
        let r = proxy.exchange(|c| c.get_with(path, &[("Accept-Language", language)]));
        assert!(
            r.body_str().starts_with(&format!("{path} {language}.")),
            "{}",
            r.body_str()
        );
        r.header("x-cache").unwrap_or("(none)").to_string()
    };
    let languages = ["en", "fr", "de", "it", "es"];
    for language in languages {
        assert_eq!(ask("/v", language), "MISS");
    }
    let cache = cache_of(&proxy);
    for language in languages {
        settled_with(cache, languages.len());
        assert_eq!(ask("/v", language), "HIT", "{language}");
    }
    assert_eq!(backend.requests(), languages.len());
    // A value never stored is a miss.
    assert_eq!(ask("/v", "nl"), "MISS");
}
