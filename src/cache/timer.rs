//! The timer thread: every `unit_time`, drop entries past their stale
//! window and, if the cache changed, write a snapshot. Also the start-up
//! load and the final snapshot at shutdown.

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
    let entries = cache.entries();
    persist::write_snapshot(path, entries.iter().map(|e| &e.record))
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
            if let Some(damage) = &loaded.damage {
                // Outside the macro, which evaluates nothing when warnings
                // are not logged.
                let aside = set_aside(path, "damaged");
                log::warn!(
                    "cache snapshot {}: {damage}; keeping the {} valid records{aside}",
                    path.display(),
                    loaded.records.len(),
                );
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
        let mut file = path.map(|path| SnapshotFile {
            // What was loaded belongs on disk, also when the file it came
            // from was damaged and moved aside: written at the first tick,
            // not at the first change, which may never come before a crash.
            on_disk: path.exists() || !cache.is_empty(),
            path,
            written: cache.generation(),
            failing: Throttle::default(),
        });
        let thread = std::thread::Builder::new()
            .name("cache-timer".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    let expired = cache.expire_due(SystemTime::now());
                    if expired > 0 {
                        log::debug!("cache: {expired} entries expired");
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
        })
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
    /// The cache generation it holds.
    written: u64,
    failing: Throttle,
}

impl SnapshotFile {
    /// Writes a snapshot if the cache changed since the last one, if the
    /// file went missing (deleted while the proxy runs: nothing else would
    /// bring it back before the next change), or at the last moment if
    /// reads changed the recency. A failure is tried again next time, and
    /// said once a minute while it lasts; the last one, at shutdown, is
    /// always said: the next start will not find what it held.
    fn write_if_needed(&mut self, cache: &Cache, moment: Moment) {
        let last = matches!(moment, Moment::Last { .. });
        let force = matches!(moment, Moment::Last { touched: true });
        let now = cache.generation();
        let missing = self.on_disk && !self.path.exists();
        if now == self.written && !force && !missing {
            return;
        }
        let started = Instant::now();
        match snapshot(cache, &self.path) {
            Ok(stats) => {
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
                } else if self.failing.failed(Instant::now()) {
                    log::warn!(
                        "cache snapshot {}: {} (tried again every unit_time; said again at most once a minute)",
                        self.path.display(),
                        with_causes(&e)
                    );
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
