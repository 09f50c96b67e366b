//! The timer thread: every `unit_time`, drop entries past their stale
//! window and, if the cache changed, write a snapshot. Also the start-up
//! load and the final snapshot at shutdown.

use super::disk;
use super::persist::{self, LoadLimits, PersistError, SnapshotStats};
use super::policy::Settings;
use super::store::{unix_ms, Cache};
use crate::throttle::Throttle;
use crossbeam_channel::{bounded, RecvTimeoutError, Sender};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Writes the cache to `path` (temporary file, fsync, rename). Only
/// pointer copies happen under the cache lock.
pub fn snapshot(cache: &Cache, path: &Path) -> Result<SnapshotStats, PersistError> {
    snapshot_file(cache, path).map(|(stats, _)| stats)
}

/// [`snapshot`], and the file it wrote as [`FileId`] tells it apart.
fn snapshot_file(cache: &Cache, path: &Path) -> Result<(SnapshotStats, FileId), PersistError> {
    let entries = cache.entries();
    persist::write_atomically(path, |out| {
        let stats = persist::write_records(out, entries.iter().map(|e| &e.record))?;
        // Read from the file written, before the rename: another process
        // may rename its own over it as soon as the directory is unlocked.
        let id = FileId::of(&out.get_ref().metadata()?, stats.bytes);
        Ok((stats, id))
    })
}

/// What tells the snapshot this process wrote (or loaded) from one
/// another process wrote over it since: the old or the new process of an
/// upgrade under `reuse_port` share `path_to_persistence`, and the old
/// one's last snapshot, at its exit, replaces the new one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    device: u64,
    inode: u64,
    len: u64,
}

impl FileId {
    /// `len` apart from `meta`: a file still being written is longer
    /// once its buffer is flushed.
    fn of(meta: &std::fs::Metadata, len: u64) -> FileId {
        #[cfg(unix)]
        let (device, inode) = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let (device, inode) = {
            let _ = meta;
            (0, 0)
        };
        FileId { device, inode, len }
    }

    /// The file at `path` now (through symlinks, as snapshots are
    /// written); `None` when there is none or it cannot be read.
    fn at(path: &Path) -> Option<FileId> {
        let meta = std::fs::metadata(path).ok()?;
        Some(FileId::of(&meta, meta.len()))
    }
}

/// Fills the cache from a snapshot file. Never fails the start: damage or
/// an unknown version is logged and the cache starts with what was valid.
/// Such a file is moved aside (see [`persist::set_aside`]) rather than
/// left for the next snapshot to replace: another version's reader, or
/// someone by hand, may recover what this one could not.
pub fn load<'s>(
    cache: &Cache,
    path: &Path,
    settings_of: impl Fn(&str) -> Option<&'s Settings>,
) -> usize {
    let limits = LoadLimits {
        max_record_bytes: cache.max_object_size().saturating_add(1 << 20),
        // Only a bound on memory: the cache's own LRU keeps the most recent
        // entries of a snapshot from a larger cache (they come first). Twice
        // the capacity leaves room for the file's per-record overhead.
        max_total_bytes: cache.capacity().saturating_mul(2),
    };
    let started = Instant::now();
    let now = unix_ms(SystemTime::now());
    match persist::load_snapshot(path, now, &limits) {
        Ok(loaded) => {
            match &loaded.damage {
                // Nothing in it to recover, nor to move aside: the first
                // tick writes over it (see `SnapshotFile::new`).
                Some(damage @ persist::Damage::Empty) => log::warn!(
                    "cache snapshot {}: {damage}; starting with an empty cache, and a snapshot \
                     replaces it within unit_time",
                    path.display(),
                ),
                Some(damage) => {
                    // Outside the macro, which evaluates nothing when
                    // warnings are not logged.
                    let aside = set_aside(path, "damaged");
                    log::warn!(
                        "cache snapshot {}: {damage}; keeping the {} valid records{aside}",
                        path.display(),
                        loaded.records.len(),
                    );
                }
                None => {}
            }
            let total = loaded.records.len();
            // Left out on purpose, not for damage: their pool's `cache`
            // is off now.
            let left_out = Cell::new(0);
            let stored = cache.load(loaded.records, now, |key| {
                let settings = settings_of(key);
                left_out.set(left_out.get() + usize::from(settings.is_none()));
                settings
            });
            let left_out = left_out.get();
            if total > 0 || loaded.skipped_expired > 0 || loaded.skipped_over_limit > 0 {
                log::info!(
                    "cache snapshot {}: loaded {stored} of {total} records in {:?}, {} kept within cache_size (skipped: {} expired, {} larger than the cache takes, {left_out} for URLs whose pool does not use the cache)",
                    path.display(),
                    started.elapsed(),
                    cache.len(),
                    loaded.skipped_expired,
                    loaded.skipped_over_limit,
                );
            }
            let unused = total.saturating_sub(stored + left_out);
            if unused > 0 {
                log::warn!(
                    "cache snapshot {}: {unused} records not used: a head that does not parse, a status the cache never stores, a key that is not UTF-8, or a body larger than max_object_size (`inverso cache inspect` shows which)",
                    path.display(),
                );
            }
            stored
        }
        Err(e) => {
            // Not read, for whatever reason (another version, not a
            // snapshot, a permission or an I/O error): kept for whoever can.
            let aside = set_aside(path, "unread");
            log::warn!(
                "cache snapshot {}: {}; starting with an empty cache{aside}",
                path.display(),
                with_causes(&e),
            );
            0
        }
    }
}

/// Moves a snapshot file that could not be read whole out of the way;
/// says how it went, for the warning about it.
fn set_aside(path: &Path, label: &str) -> String {
    let now = unix_ms(SystemTime::now()) / 1000;
    match persist::set_aside(path, label, now) {
        Ok(Some(aside)) => format!(
            "; the file is kept as {} (the next snapshot would replace it)",
            aside.display()
        ),
        Ok(None) => String::new(),
        Err(e) => format!(
            "; it could not be moved aside ({}), and the next snapshot will replace it",
            with_causes(&e)
        ),
    }
}

pub struct Timer {
    stop: Sender<()>,
    thread: Option<JoinHandle<()>>,
    /// The disk tier's thread, stopped after the timer's.
    disk: Option<disk::Worker>,
}

impl Timer {
    pub fn start(
        cache: Arc<Cache>,
        interval: Duration,
        path: Option<PathBuf>,
    ) -> std::io::Result<Timer> {
        let (stop, stopped) = bounded::<()>(1);
        // Read here, not in the thread: requests may change the cache before
        // the thread first runs, and those changes must count as unwritten.
        let mut file = path.map(|path| SnapshotFile::new(&cache, path));
        let thread = std::thread::Builder::new()
            .name("cache-timer".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    let now = SystemTime::now();
                    let expired = cache.expire_due(now);
                    let on_disk = cache.disk().map_or(0, |d| d.expire_due(now));
                    if expired + on_disk > 0 {
                        log::debug!("cache: {expired} entries expired, {on_disk} on disk");
                    }
                    if let Some(file) = &mut file {
                        file.write_if_needed(&cache, Moment::Tick);
                    }
                }
                // The final snapshot also records recency changed by reads.
                if let Some(file) = &mut file {
                    let touched = cache.take_touched();
                    file.write_if_needed(&cache, Moment::Last { touched });
                }
            })?;
        Ok(Timer {
            stop,
            thread: Some(thread),
            disk: None,
        })
    }

    /// The timer, stopping the disk tier's thread after its own.
    pub fn with_disk(mut self, disk: Option<disk::Worker>) -> Timer {
        self.disk = disk;
        self
    }

    /// Stops the thread after a last snapshot.
    pub fn finish(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let _ = self.stop.try_send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(disk) = self.disk.take() {
            disk.finish();
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// When a snapshot is considered.
enum Moment {
    /// A tick of the timer.
    Tick,
    /// At shutdown; `touched`: reads changed the recency since the last.
    Last { touched: bool },
}

/// The snapshot file, and what is known of it.
struct SnapshotFile {
    path: PathBuf,
    /// A snapshot was there at start-up or has been written since.
    on_disk: bool,
    /// The file there at start-up is empty, and is written over at the
    /// first tick.
    empty: bool,
    /// The cache generation it holds.
    written: u64,
    /// The file this process last wrote, or the one it loaded.
    ours: Option<FileId>,
    failing: Throttle,
}

impl SnapshotFile {
    fn new(cache: &Cache, path: PathBuf) -> SnapshotFile {
        SnapshotFile {
            // What was loaded belongs on disk, also when the file it came
            // from was damaged and moved aside: written at the first tick,
            // not at the first change, which may never come before a crash.
            on_disk: path.exists() || !cache.is_empty(),
            // A zero-byte file (what a crash during a first write leaves
            // on some file systems, or a `touch`) would otherwise stay
            // until the cache changes, and each start with an empty cache
            // would warn of it again.
            empty: FileId::at(&path).is_some_and(|file| file.len == 0),
            ours: FileId::at(&path),
            path,
            written: cache.generation(),
            failing: Throttle::default(),
        }
    }

    /// Whether the file at the path is another than the one this process
    /// wrote or loaded: another process's snapshot (the old one's at the
    /// end of an upgrade), which holds what that process cached, not what
    /// this one does, and would otherwise stay until this cache changes
    /// (a crash meanwhile would restart from it).
    fn replaced(&self) -> bool {
        match (self.ours, FileId::at(&self.path)) {
            (Some(ours), Some(now)) => ours != now,
            (None, Some(_)) => self.on_disk,
            _ => false,
        }
    }

    /// Writes a snapshot if the cache changed since the last one, if the
    /// file is the empty one found at start-up, if the file went missing
    /// (deleted while the proxy runs: nothing else would bring it back
    /// before the next change) or was replaced by another
    /// process's (see [`SnapshotFile::replaced`]), or at the last moment if
    /// reads changed the recency. A failure is tried again next time, and
    /// said once a minute while it lasts; the last one, at shutdown, is
    /// always said: the next start will not find what it held.
    fn write_if_needed(&mut self, cache: &Cache, moment: Moment) {
        let last = matches!(moment, Moment::Last { .. });
        let force = matches!(moment, Moment::Last { touched: true });
        let now = cache.generation();
        let missing = self.on_disk && !self.path.exists();
        if now == self.written && !force && !missing && !self.empty && !self.replaced() {
            return;
        }
        let started = Instant::now();
        match snapshot_file(cache, &self.path) {
            Ok((stats, id)) => {
                self.ours = Some(id);
                let micros = started.elapsed().as_micros() as u64;
                cache.stats.snapshot_micros.fetch_add(micros, Relaxed);
                cache.stats.snapshot_writes.fetch_add(1, Relaxed);
                if self.failing.recovered() {
                    log::warn!("cache snapshot {}: written again", self.path.display());
                }
                log::debug!(
                    "cache snapshot {}: {} records, {} bytes, {:?}",
                    self.path.display(),
                    stats.records,
                    stats.bytes,
                    started.elapsed()
                );
                self.written = now;
                self.on_disk = true;
                self.empty = false;
            }
            Err(e) => {
                cache.stats.snapshot_failures.fetch_add(1, Relaxed);
                if last {
                    log::error!(
                        "cache snapshot {}: the final snapshot was not written: {}; the next start \
                         finds the last one written, if any",
                        self.path.display(),
                        with_causes(&e)
                    );
                } else {
                    let cause = with_causes(&e);
                    if self
                        .failing
                        .failed_because(Instant::now(), &cause)
                        .is_some()
                    {
                        log::warn!(
                            "cache snapshot {}: {cause} (tried again every unit_time; said again at most once a minute for each cause)",
                            self.path.display(),
                        );
                    }
                }
            }
        }
    }
}

/// An error and what caused it, for a log line: "cannot open X: not a
/// regular file" rather than "cannot open X".
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::persist::Record;
    use crate::test_log::logged;

    #[test]
    fn a_snapshot_another_process_wrote_over_this_ones_is_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        let now = unix_ms(SystemTime::now());
        let record = Record {
            key: b"h/a".to_vec(),
            head: b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\n".to_vec(),
            body: Arc::from(&b"a"[..]),
            stored_at: now,
            expires_at: now + 600_000,
            stale_until: now + 600_000,
        };
        persist::write_snapshot(&path, [&record]).unwrap();
        let cache = Cache::new(1 << 20, 1 << 16);
        let settings = Settings::default();
        assert_eq!(load(&cache, &path, |_| Some(&settings)), 1);
        let mut file = SnapshotFile::new(&cache, path.clone());
        let writes = || cache.stats.snapshot_writes.load(Relaxed);
        // Nothing changed, and the file is the one loaded: not written.
        file.write_if_needed(&cache, Moment::Tick);
        assert_eq!(writes(), 0);
        // The old process of an upgrade under reuse_port writes its last
        // snapshot as it exits: what it held, not what this one holds.
        persist::write_snapshot(&path, []).unwrap();
        file.write_if_needed(&cache, Moment::Tick);
        let on_disk = persist::load_snapshot(&path, now, &LoadLimits::UNLIMITED).unwrap();
        assert_eq!(
            on_disk.records.len(),
            1,
            "this process's cache is on disk again"
        );
        assert_eq!(writes(), 1);
        // Its own file is not written again.
        file.write_if_needed(&cache, Moment::Tick);
        assert_eq!(writes(), 1);
    }

    #[test]
    fn an_empty_snapshot_file_is_written_over_at_the_first_tick() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        std::fs::write(&path, b"").unwrap();
        let cache = Cache::new(1 << 20, 1 << 16);
        let settings = Settings::default();
        assert_eq!(load(&cache, &path, |_| Some(&settings)), 0);
        // Not moved aside: nothing in it to keep.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let mut file = SnapshotFile::new(&cache, path.clone());
        let writes = || cache.stats.snapshot_writes.load(Relaxed);
        // The cache has not changed, but the file is no snapshot: the next
        // start would warn of it again.
        file.write_if_needed(&cache, Moment::Tick);
        assert_eq!(writes(), 1);
        let now = unix_ms(SystemTime::now());
        let on_disk = persist::load_snapshot(&path, now, &LoadLimits::UNLIMITED).unwrap();
        assert!(on_disk.damage.is_none(), "{:?}", on_disk.damage);
        assert!(on_disk.records.is_empty());
        // Once is enough.
        file.write_if_needed(&cache, Moment::Tick);
        assert_eq!(writes(), 1);
    }

    /// A record of `key` fresh for ten minutes from `now`.
    fn fresh_record(key: &str, body: &[u8], now: u64) -> Record {
        Record {
            key: key.as_bytes().to_vec(),
            head: b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\n".to_vec(),
            body: Arc::from(body),
            stored_at: now,
            expires_at: now + 600_000,
            stale_until: now + 600_000,
        }
    }

    fn keys_on_disk(path: &Path) -> Vec<String> {
        let on_disk = persist::load_snapshot(path, 0, &LoadLimits::UNLIMITED).unwrap();
        let keys = on_disk.records.iter();
        keys.map(|r| String::from_utf8_lossy(&r.key).into_owned())
            .collect()
    }

    #[test]
    fn a_change_is_written_at_the_next_tick_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        let cache = Cache::new(1 << 20, 1 << 16);
        let mut file = SnapshotFile::new(&cache, path.clone());
        let writes = || cache.stats.snapshot_writes.load(Relaxed);
        // No file and nothing cached: nothing to write.
        file.write_if_needed(&cache, Moment::Tick);
        assert_eq!(writes(), 0);
        assert!(!path.exists());
        let settings = Settings::default();
        let now = unix_ms(SystemTime::now());
        cache.load(vec![fresh_record("h/a", b"a", now)], now, |_| {
            Some(&settings)
        });
        file.write_if_needed(&cache, Moment::Tick);
        assert_eq!(writes(), 1);
        assert_eq!(keys_on_disk(&path), ["h/a"]);
        file.write_if_needed(&cache, Moment::Tick);
        assert_eq!(writes(), 1);
    }

    #[test]
    fn the_last_snapshot_is_written_for_reads_alone_and_not_without_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        let cache = Cache::new(1 << 20, 1 << 16);
        let settings = Settings::default();
        let now = unix_ms(SystemTime::now());
        cache.load(vec![fresh_record("h/a", b"a", now)], now, |_| {
            Some(&settings)
        });
        let mut file = SnapshotFile::new(&cache, path.clone());
        file.write_if_needed(&cache, Moment::Tick);
        let writes = || cache.stats.snapshot_writes.load(Relaxed);
        assert_eq!(writes(), 1);
        file.write_if_needed(&cache, Moment::Last { touched: false });
        assert_eq!(writes(), 1);
        // Reads changed only the recency, which the generation does not
        // count: the last moment to keep it.
        file.write_if_needed(&cache, Moment::Last { touched: true });
        assert_eq!(writes(), 2);
    }

    #[test]
    fn a_snapshot_another_process_wrote_before_the_first_tick_is_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        let cache = Cache::new(1 << 20, 1 << 16);
        let settings = Settings::default();
        let now = unix_ms(SystemTime::now());
        cache.load(vec![fresh_record("h/ours", b"a", now)], now, |_| {
            Some(&settings)
        });
        // No file at start-up: none is this process's yet.
        let mut file = SnapshotFile::new(&cache, path.clone());
        persist::write_snapshot(&path, [&fresh_record("h/theirs", b"b", now)]).unwrap();
        file.write_if_needed(&cache, Moment::Tick);
        assert_eq!(keys_on_disk(&path), ["h/ours"]);
    }

    #[test]
    fn records_whose_pool_no_longer_caches_are_left_out_of_the_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        let now = unix_ms(SystemTime::now());
        let records = [
            fresh_record("h/a", b"a", now),
            fresh_record("h/b", b"b", now),
        ];
        persist::write_snapshot(&path, &records).unwrap();
        let cache = Cache::new(1 << 20, 1 << 16);
        assert_eq!(load(&cache, &path, |_| None), 0);
        assert!(cache.is_empty());
        // Left in place: nothing in it was damaged.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_record_with_a_body_of_max_object_size_is_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        let now = unix_ms(SystemTime::now());
        let body = vec![b'x'; 1 << 16];
        persist::write_snapshot(&path, [&fresh_record("h/big", &body, now)]).unwrap();
        let cache = Cache::new(1 << 20, 1 << 16);
        let settings = Settings::default();
        // Its key and head come on top of the body in the file.
        assert_eq!(load(&cache, &path, |_| Some(&settings)), 1);
    }

    #[test]
    fn a_damaged_snapshot_is_moved_aside_under_the_second_it_happened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        std::fs::write(&path, b"not a snapshot").unwrap();
        let before = unix_ms(SystemTime::now()) / 1000;
        let said = set_aside(&path, "unread");
        let after = unix_ms(SystemTime::now()) / 1000;
        assert!(!path.exists());
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let [aside] = &aside[..] else {
            panic!("{aside:?}");
        };
        let name = aside.file_name().unwrap().to_str().unwrap();
        let secs: u64 = name
            .strip_prefix("cache.bin.unread-")
            .unwrap()
            .parse()
            .unwrap();
        assert!((before..=after).contains(&secs), "{name}");
        assert_eq!(
            said,
            format!(
                "; the file is kept as {} (the next snapshot would replace it)",
                aside.display()
            )
        );
        // Nothing left there to move.
        assert_eq!(set_aside(&path, "unread"), "");
    }

    #[test]
    fn an_error_is_told_with_each_of_its_causes() {
        let e = PersistError::Io {
            step: "open",
            path: PathBuf::from("cache.bin"),
            source: std::io::Error::other("not a regular file"),
        };
        assert_eq!(with_causes(&e), "cannot open cache.bin: not a regular file");
    }

    #[test]
    fn a_snapshot_writes_what_the_cache_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        let cache = Cache::new(1 << 20, 1 << 16);
        let settings = Settings::default();
        let now = unix_ms(SystemTime::now());
        let records = vec![
            fresh_record("h/a", b"ab", now),
            fresh_record("h/b", b"c", now),
        ];
        cache.load(records, now, |_| Some(&settings));
        let stats = snapshot(&cache, &path).unwrap();
        assert_eq!(stats.records, 2);
        assert_eq!(stats.bytes, std::fs::metadata(&path).unwrap().len());
        assert_eq!(keys_on_disk(&path), ["h/a", "h/b"]);
    }

    /// A timer that would not tick for an hour, over a cache changed
    /// since it started: only its last snapshot writes the file.
    fn timer_with_a_change(path: &Path) -> Timer {
        let cache = Arc::new(Cache::new(1 << 20, 1 << 16));
        let timer = Timer::start(cache.clone(), Duration::from_secs(3600), Some(path.into()));
        let settings = Settings::default();
        let now = unix_ms(SystemTime::now());
        cache.load(vec![fresh_record("h/a", b"a", now)], now, |_| {
            Some(&settings)
        });
        timer.unwrap()
    }

    #[test]
    fn finishing_the_timer_waits_for_its_last_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        timer_with_a_change(&path).finish();
        assert_eq!(keys_on_disk(&path), ["h/a"]);
    }

    #[test]
    fn dropping_the_timer_waits_for_its_last_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        drop(timer_with_a_change(&path));
        assert_eq!(keys_on_disk(&path), ["h/a"]);
    }

    /// What [`load`] logs of a snapshot of `records` into a cache of
    /// `capacity` bytes where only keys under `h/cached` are cached.
    fn load_logged(records: &[Record], capacity: u64) -> (usize, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        persist::write_snapshot(&path, records).unwrap();
        let cache = Cache::new(capacity, 1 << 16);
        let settings = Settings::default();
        let settings_of = |key: &str| key.starts_with("h/cached").then_some(&settings);
        let (stored, lines) = logged(|| load(&cache, &path, settings_of));
        let lines = lines
            .iter()
            .map(|l| l.replace(&*path.to_string_lossy(), "FILE"));
        (stored, lines.collect())
    }

    #[test]
    fn a_load_says_what_it_kept_and_what_it_left_out() {
        let now = unix_ms(SystemTime::now());
        let elapsed = regex::Regex::new(r" in [0-9.]+[µnm]?s,").unwrap();
        let info = |lines: &[String]| -> Vec<String> {
            let infos = lines.iter().filter(|l| l.starts_with("INFO"));
            infos
                .map(|l| elapsed.replace(l, " in T,").into_owned())
                .collect()
        };
        let warns = |lines: &[String]| -> Vec<String> {
            let warns = lines.iter().filter(|l| l.starts_with("WARN"));
            warns.cloned().collect()
        };
        // Nothing in it: nothing to say.
        let (stored, lines) = load_logged(&[], 1 << 20);
        assert_eq!((stored, lines), (0, vec![]));
        // Everything used.
        let (stored, lines) = load_logged(&[fresh_record("h/cached", b"a", now)], 1 << 20);
        assert_eq!(stored, 1);
        assert_eq!(
            info(&lines),
            ["INFO cache snapshot FILE: loaded 1 of 1 records in T, 1 kept within cache_size (skipped: 0 expired, 0 larger than the cache takes, 0 for URLs whose pool does not use the cache)"]
        );
        assert_eq!(warns(&lines), Vec::<String>::new());
        // Only an expired record: still said.
        let mut expired = fresh_record("h/cached", b"a", now - 20_000);
        (expired.expires_at, expired.stale_until) = (now - 10_000, now - 10_000);
        let (_, lines) = load_logged(&[expired], 1 << 20);
        assert_eq!(
            info(&lines),
            ["INFO cache snapshot FILE: loaded 0 of 0 records in T, 0 kept within cache_size (skipped: 1 expired, 0 larger than the cache takes, 0 for URLs whose pool does not use the cache)"]
        );
        // Only a record larger than the cache reads: still said.
        let (_, lines) = load_logged(&[fresh_record("h/cached", &[b'x'; 200], now)], 64);
        assert_eq!(
            info(&lines),
            ["INFO cache snapshot FILE: loaded 0 of 0 records in T, 0 kept within cache_size (skipped: 0 expired, 1 larger than the cache takes, 0 for URLs whose pool does not use the cache)"]
        );
        // One used, one left out on purpose, one not used.
        let mut unparsed = fresh_record("h/cached-too", b"c", now);
        unparsed.head = b"not a status line\r\n".to_vec();
        let records = [
            fresh_record("h/cached", b"a", now),
            fresh_record("h/other", b"b", now),
            unparsed,
        ];
        let (stored, lines) = load_logged(&records, 1 << 20);
        assert_eq!(stored, 1);
        assert_eq!(
            info(&lines),
            ["INFO cache snapshot FILE: loaded 1 of 3 records in T, 1 kept within cache_size (skipped: 0 expired, 0 larger than the cache takes, 1 for URLs whose pool does not use the cache)"]
        );
        assert_eq!(
            warns(&lines),
            ["WARN cache snapshot FILE: 1 records not used: a head that does not parse, a status the cache never stores, a key that is not UTF-8, or a body larger than max_object_size (`inverso cache inspect` shows which)"]
        );
    }
}
