//! The disk tier with its thread, on a temporary directory: what is
//! written, entered, purged and deleted.

use super::*;
use crate::cache::policy::{Lifetime, Settings};
use crate::cache::store::{Cache, Group};
use crate::http::ResponseHead;
use std::time::{Duration, Instant};

fn entry(path: &str, tag: &str) -> Arc<Entry> {
    let mut head = ResponseHead::new(200);
    head.headers.push("Cache-Control", "max-age=600");
    head.headers.push("Surrogate-Key", tag);
    let lifetime = Lifetime {
        fresh: Duration::from_secs(600),
        stale_if_error: Duration::ZERO,
    };
    let body = format!("body of {path}").into_bytes().into();
    let key = format!("GET h{path}");
    Arc::new(Entry::new(
        key,
        head,
        body,
        SystemTime::now(),
        lifetime,
        &Settings::default(),
    ))
}

/// Files of entries in `dir` (the lock file aside).
fn files(dir: &Path) -> usize {
    let subdirs = std::fs::read_dir(dir).unwrap().flatten();
    let subdirs = subdirs.filter(|d| d.file_type().unwrap().is_dir());
    subdirs
        .map(|d| std::fs::read_dir(d.path()).unwrap().count())
        .sum()
}

#[track_caller]
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn started(dir: &Path, capacity: u64) -> (Arc<Disk>, Worker) {
    let (disk, worker) = Disk::start(dir, capacity, 1 << 20).unwrap();
    wait_for("scanned", || disk.is_scanned());
    (disk, worker)
}

fn written(disk: &Disk, n: u64) {
    wait_for("written", || disk.stats.writes.load(Ordering::Relaxed) >= n);
}

/// A purge of `target` from the disk alone, begun and ended.
fn purge(disk: &Disk, target: &Target, purge: Purge) -> usize {
    let (named, begun) = disk.begin_purge(target, purge);
    disk.end_purge(begun);
    named
}

#[test]
fn an_entry_written_is_read_back_and_its_file_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, _worker) = started(dir.path(), 1 << 20);
    let e = entry("/a", "t");
    disk.offer(e.clone(), disk.generation());
    written(&disk, 1);
    assert_eq!((disk.len(), files(dir.path())), (1, 1));
    let (record, soft, _) = disk.read("GET h/a").unwrap();
    assert_eq!((record, soft), (e.record.clone(), None));
    assert_eq!((disk.len(), files(dir.path())), (1, 1));
    assert!(disk.read("GET h/a").is_some());
}

#[test]
fn eviction_past_the_size_deletes_files() {
    let dir = tempfile::tempdir().unwrap();
    let size = {
        let mut out = Vec::new();
        file::encode(&mut out, &entry("/0", "t").record)
            .unwrap()
            .unwrap()
    };
    let (disk, _worker) = started(dir.path(), size * 3);
    for i in 0..10 {
        disk.offer(entry(&format!("/{i}"), "t"), disk.generation());
    }
    written(&disk, 10);
    assert_eq!((disk.len(), files(dir.path())), (3, 3));
    assert!(disk.read("GET h/9").is_some());
    assert!(disk.read("GET h/0").is_none());
}

#[test]
fn purges_reach_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, _worker) = started(dir.path(), 1 << 20);
    for (path, tag) in [("/a", "x"), ("/p/1", "y"), ("/p/2", "y"), ("/t", "z")] {
        disk.offer(entry(path, tag), disk.generation());
    }
    written(&disk, 4);
    assert_eq!(
        purge(
            &disk,
            &Target::Primaries(vec!["GET h/a".into()]),
            Purge::Hard
        ),
        1
    );
    let prefix = Target::Group(Group::Prefixes(vec!["GET h/p/".into()]));
    assert_eq!(purge(&disk, &prefix, Purge::Hard), 2);
    assert_eq!((disk.len(), files(dir.path())), (1, 1));
    let mut h = Headers::new();
    h.push("Surrogate-Key", "z");
    let tag = Target::Group(Group::Tags(
        crate::cache::policy::Tags::of_purge(&h).unwrap(),
    ));
    assert_eq!(purge(&disk, &tag, Purge::Hard), 1);
    assert_eq!((disk.len(), files(dir.path())), (0, 0));
}

#[test]
fn a_write_enqueued_before_a_purge_naming_it_is_not_entered() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, _worker) = started(dir.path(), 1 << 20);
    let before = disk.generation();
    purge(
        &disk,
        &Target::Primaries(vec!["GET h/a".into()]),
        Purge::Hard,
    );
    disk.offer(entry("/a", "t"), before);
    // Evicted while a purge is under way (memory's part not done yet).
    let (_, begun) = disk.begin_purge(&Target::Primaries(vec!["GET h/c".into()]), Purge::Hard);
    disk.offer(entry("/c", "t"), disk.generation());
    wait_for("discarded", || {
        disk.stats.discarded.load(Ordering::Relaxed) == 2
    });
    disk.end_purge(begun);
    // Evicted before those purges, of another URL: written.
    disk.offer(entry("/b", "t"), before);
    written(&disk, 1);
    assert!(disk.read("GET h/c").is_none());
    assert!(disk.read("GET h/a").is_none());
    assert!(disk.read("GET h/b").is_some());
    assert_eq!(files(dir.path()), 1);
}

#[test]
fn expiry_deletes_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, _worker) = started(dir.path(), 1 << 20);
    disk.offer(entry("/a", "t"), disk.generation());
    written(&disk, 1);
    assert_eq!(disk.expire_due(SystemTime::now()), 0);
    assert_eq!(
        disk.expire_due(SystemTime::now() + Duration::from_secs(601)),
        1
    );
    assert_eq!((disk.len(), files(dir.path())), (0, 0));
}

#[test]
fn a_restart_finds_the_files_and_leaves_others_alone() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (disk, worker) = started(dir.path(), 1 << 20);
        disk.offer(entry("/a", "t"), disk.generation());
        disk.offer(entry("/b", "t"), disk.generation());
        worker.finish();
        assert_eq!(disk.len(), 2);
    }
    let sub = dir.path().join("00");
    std::fs::create_dir_all(&sub).unwrap();
    let foreign = sub.join("notes.txt");
    std::fs::write(&foreign, b"mine").unwrap();
    // Our name, not our magic: not ours either.
    let lookalike = sub.join(file::name_of("x"));
    std::fs::write(&lookalike, b"someone else's").unwrap();
    let tmp = sub.join(format!("{}.tmp", file::name_of("y")));
    std::fs::write(&tmp, b"half").unwrap();
    let (disk, _worker) = started(dir.path(), 1 << 20);
    assert_eq!(disk.len(), 2);
    assert!(foreign.exists() && lookalike.exists() && !tmp.exists());
    assert!(disk.read("GET h/b").is_some());
}

#[test]
fn a_damaged_file_is_a_miss_and_goes() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, _worker) = started(dir.path(), 1 << 20);
    disk.offer(entry("/a", "t"), disk.generation());
    written(&disk, 1);
    let path = file::path_of(dir.path(), &file::name_of("GET h/a"));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert!(disk.read("GET h/a").is_none());
    assert_eq!(disk.stats.damaged.load(Ordering::Relaxed), 1);
    assert_eq!((disk.len(), files(dir.path())), (0, 0));
}

#[test]
fn the_cache_evicts_to_disk_and_promotes_back() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, _worker) = started(dir.path(), 1 << 20);
    let one = entry("/0", "t").weight();
    let cache = Cache::new(one * 2 + one / 2, 1 << 20).with_disk(disk.clone());
    for i in 0..5 {
        assert!(cache.insert((*entry(&format!("/{i}"), "t")).clone()));
    }
    written(&disk, 3);
    let settings = Settings::default();
    let req = Headers::new();
    let found = cache.lookup_or_promote("GET h/0", &req, &settings).unwrap();
    assert_eq!(&found.record.body[..], b"body of /0");
    assert!(cache.lookup("GET h/0", &req).is_some());
    // Its file stays: evicted again, it is not written again.
    let on_disk = disk.len();
    written(&disk, 4);
    for i in 5..8 {
        assert!(cache.insert((*entry(&format!("/{i}"), "t")).clone()));
    }
    wait_for("/0 evicted again", || {
        cache.lookup("GET h/0", &req).is_none()
    });
    written(&disk, 6);
    assert!(disk.len() > on_disk);
    assert!(disk.read("GET h/0").is_some());
    // A purge of the URL reaches what is on disk.
    assert!(disk.len() >= 2);
    assert!(cache.invalidate("GET h/1") == 1);
    assert!(cache
        .lookup_or_promote("GET h/1", &req, &settings)
        .is_none());
}

#[test]
fn a_soft_purge_applies_when_the_entry_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, _worker) = started(dir.path(), 1 << 20);
    let one = entry("/0", "t").weight();
    let cache = Cache::new(one + one / 2, 1 << 20).with_disk(disk.clone());
    cache.insert((*entry("/a", "t")).clone());
    cache.insert((*entry("/b", "t")).clone());
    written(&disk, 1);
    let at = SystemTime::now();
    let soft = Purge::Soft(at);
    assert_eq!(cache.invalidate_all(&["GET h/a".to_string()], soft), 1);
    // Still there, stale as of the purge once back in memory.
    let back = (cache.lookup_or_promote("GET h/a", &Headers::new(), &Settings::default())).unwrap();
    assert!(back.record.expires_at <= unix_ms(at));
    assert_eq!(&back.record.body[..], b"body of /a");
}

#[test]
fn a_response_stored_again_in_memory_replaces_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (disk, _worker) = started(dir.path(), 1 << 20);
    let one = entry("/0", "t").weight();
    let cache = Cache::new(one + one / 2, 1 << 20).with_disk(disk.clone());
    cache.insert((*entry("/a", "t")).clone());
    cache.insert((*entry("/b", "t")).clone());
    written(&disk, 1);
    assert_eq!(disk.len(), 1);
    // Read back, stored again (evicting /b to disk): the file stays.
    let req = Headers::new();
    let back = cache.lookup_or_promote("GET h/a", &req, &Settings::default());
    assert!(back.is_some());
    assert!(disk.read("GET h/a").is_some());
    // Another response stored (evicting /a, read back, which is not
    // written again): the older file goes.
    cache.insert((*entry("/a", "t")).clone());
    assert!(disk.read("GET h/a").is_none());
    written(&disk, 2);
    assert_eq!((disk.len(), files(dir.path())), (1, 1));
    assert!(disk.read("GET h/b").is_some());
}

#[test]
fn a_second_user_of_the_directory_waits_for_it_then_takes_it_over() {
    let dir = tempfile::tempdir().unwrap();
    let (first, first_worker) = started(dir.path(), 1 << 20);
    first.offer(entry("/a", "t"), first.generation());
    written(&first, 1);
    let (second, second_worker) = Disk::start(dir.path(), 1 << 20, 1 << 20).unwrap();
    // One that gives up waiting stops at once.
    let (third, third_worker) = Disk::start(dir.path(), 1 << 20, 1 << 20).unwrap();
    let (done, finished) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        third_worker.finish();
        let _ = done.send(());
    });
    assert!(finished.recv_timeout(Duration::from_secs(10)).is_ok());
    assert!(!third.is_scanned());
    first_worker.finish();
    wait_for("taken over", || second.is_scanned());
    assert!(second.read("GET h/a").is_some());
    drop(second_worker);
}
