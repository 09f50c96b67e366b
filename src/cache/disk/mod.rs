//! The disk tier: entries the memory LRU evicts for room go to files of
//! their own in `cache_disk_dir`, up to `cache_disk_size` bytes of files,
//! and come back to memory when asked for (a victim cache, as nginx's
//! `proxy_cache_path ... max_size=` keeps its bodies on disk).
//!
//! A request thread never waits for the disk: evicted entries are handed
//! to one writer thread over a bounded channel (dropped and counted when
//! it is full). A hit reads its file outside every lock. Every purge
//! reaches the index, and is remembered a while: a write evicted before a
//! purge that names it ended is not entered (see `recent`), so that a
//! purge cannot be undone by a write still on its way.
//!
//! # Layout
//! - `file`: one entry's file, its name, and reading it back (whole, or
//!   its head only).
//! - `index`: which keys have a file, its own LRU by bytes, Vary index
//!   and purges.
//! - `writer`: the thread that takes the directory's lock, scans it,
//!   then writes files ([`Worker`]).
//! - `scan`: the index rebuilt from the directory at start-up.
//! - here: [`Disk`], what the memory store calls.

mod file;
mod index;
mod recent;
mod scan;
mod writer;

pub(crate) use index::Target;
pub use writer::Worker;

use super::persist::{read_regular, Record};
use super::store::{unix_ms, Entry, Purge};
use crate::http::Headers;
use crossbeam_channel::{bounded, Sender, TrySendError};
use file::Refused;
use index::{Doomed, Index};
use parking_lot::Mutex;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

/// Evicted entries waiting for the writer, at most: past this, one more
/// is dropped (and counted) rather than have a request wait for a disk.
const QUEUE: usize = 256;
/// Files deleted per hold of the index lock.
const DELETE_SLICE: usize = 256;

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub struct DiskStats {
    /// Entries promoted from a file to memory.
    pub hits: AtomicU64,
    /// Files written and entered.
    pub writes: AtomicU64,
    /// Evicted entries dropped because the writer's queue was full.
    pub dropped: AtomicU64,
    /// Writes not entered: a purge came after they were enqueued.
    pub discarded: AtomicU64,
    /// Files found damaged or missing when promoted.
    pub damaged: AtomicU64,
    /// Files that could not be written.
    pub write_failures: AtomicU64,
}

/// An evicted entry for the writer, and the purge generation it was
/// evicted in.
pub struct Job {
    entry: Arc<Entry>,
    generation: u64,
}

pub struct Disk {
    dir: PathBuf,
    index: Mutex<Index>,
    /// Bumped under the index lock as every purge begins and ends; see
    /// [`Disk::generation`].
    purges: AtomicU64,
    jobs: Sender<Job>,
    /// The largest body a file may hold (`max_object_size`).
    max_body: u64,
    scanned: AtomicBool,
    pub stats: DiskStats,
}

impl Disk {
    /// The tier in `dir` (created if missing), of `capacity` bytes of
    /// files, and its thread, which waits for the directory's lock and
    /// scans it before it writes.
    pub fn start(dir: &Path, capacity: u64, max_body: u64) -> io::Result<(Arc<Disk>, Worker)> {
        std::fs::create_dir_all(dir)?;
        let (jobs, queued) = bounded(QUEUE);
        let disk = Arc::new(Disk {
            dir: dir.to_path_buf(),
            index: Mutex::new(Index::new(capacity)),
            purges: AtomicU64::new(0),
            jobs,
            max_body,
            scanned: AtomicBool::new(false),
            stats: DiskStats::default(),
        });
        let worker = writer::spawn(disk.clone(), queued)?;
        Ok((disk, worker))
    }

    /// The purge generation, read before an eviction: a write is dropped
    /// if a purge that names it ended after it, or is under way (see
    /// [`recent`]).
    pub fn generation(&self) -> u64 {
        self.purges.load(Ordering::SeqCst)
    }

    /// The next purge generation, under the index lock.
    fn next_generation(&self) -> u64 {
        self.purges.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Hands an entry memory evicted for room to the writer, or drops it
    /// when the writer is behind.
    pub fn offer(&self, entry: Arc<Entry>, generation: u64) {
        let record = &entry.record;
        if record.keep_until() <= unix_ms(SystemTime::now()) || record.payload_len().is_none() {
            return;
        }
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.jobs.try_send(Job { entry, generation })
        {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The key a request's response is stored under on disk, when a file
    /// is there: under the variant of the fields the URL varies on in
    /// memory (`names`), else on disk.
    pub fn held_key(
        &self,
        primary: &str,
        names: Option<&[String]>,
        request: &Headers,
    ) -> Option<String> {
        let index = self.index.lock();
        let key = match names {
            Some(names) => crate::cache::policy::variant_key(primary, names, request),
            None => index.key_for(primary, request),
        };
        index.holds(&key).then_some(key)
    }

    /// The record stored under `key` (its file read outside the lock and
    /// checked), with the time of a soft purge since it was written and
    /// the file's id. The file stays, the most recently used: memory
    /// holds a copy, not the only one, so that a response read back and
    /// evicted again is not written again, and a cache whose hot set is
    /// larger than memory reads its files rather than rewrites them. A
    /// damaged or missing file is dropped, said once, and a miss; so is
    /// one purged while it was read.
    pub fn read(&self, key: &str) -> Option<(Record, Option<u64>, u64)> {
        let (id, name, size, soft) = {
            let index = self.index.lock();
            let held = index.peek(key)?;
            (held.id, held.name.clone(), held.size, held.soft)
        };
        let path = file::path_of(&self.dir, &name);
        let read = read_regular(&path, size)
            .map_err(Refused::Io)
            .and_then(|bytes| bytes.ok_or(Refused::Damaged("larger than when it was written")))
            .and_then(|bytes| file::decode(&bytes))
            .and_then(|record| match record.key == key.as_bytes() {
                true => Ok(record),
                false => Err(Refused::Damaged("holds another key")),
            });
        let mut index = self.index.lock();
        let (held, damaged) = match read {
            // Not if purged, or written again, while it was read.
            Ok(_) => (index.touch(key, id), false),
            Err(_) => (false, index.take(key, id).is_some()),
        };
        if damaged {
            // Under the lock, as every deletion: a file written again for
            // the key is entered under it too.
            let _ = std::fs::remove_file(&path);
        }
        drop(index);
        match read {
            Ok(record) if held => {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                Some((record, soft, id))
            }
            Ok(_) => None,
            Err(e) => {
                if damaged {
                    self.stats.damaged.fetch_add(1, Ordering::Relaxed);
                    let cause = crate::cache::timer::with_causes(&e);
                    log::warn!("cache_disk_dir: {}: {cause}; dropped", path.display());
                }
                None
            }
        }
    }

    /// Memory stored a response under `key`: what the tier holds for it
    /// is older, and goes, unless it is file `kept` (the response was read
    /// back from it).
    pub fn forget(&self, key: &str, kept: Option<u64>) {
        let doomed = self.index.lock().forget(key, kept);
        self.delete(doomed);
    }

    /// Purges what `target` names, the first part of a purge of the whole
    /// cache, which [`Disk::end_purge`] ends once memory's part is done:
    /// the disk first, so that a request reading a file back meanwhile
    /// began before the purge, and memory refuses what it read; an entry
    /// memory evicts before its part is done is not written. Returns how
    /// many entries it named, and the purge's generation for
    /// [`Disk::end_purge`].
    pub(crate) fn begin_purge(&self, target: &Target, purge: Purge) -> (usize, u64) {
        let mut index = self.index.lock();
        let begun = self.next_generation();
        index.recent.begin(begun, target.clone());
        let (named, doomed) = index.purge(target, purge);
        drop(index);
        self.delete(doomed);
        (named, begun)
    }

    /// See [`Disk::begin_purge`].
    pub(crate) fn end_purge(&self, begun: u64) {
        let mut index = self.index.lock();
        let ended = self.next_generation();
        index.recent.end(begun, ended);
    }

    /// Drops the entries past their `keep_until` at `now`; returns how many.
    pub fn expire_due(&self, now: SystemTime) -> usize {
        let doomed = self.index.lock().expire(unix_ms(now));
        let n = doomed.len();
        self.delete(doomed);
        n
    }

    pub fn len(&self) -> usize {
        self.index.lock().len()
    }

    /// Every key with a file (for tests and inspection: a copy of them
    /// all, under the index lock).
    pub fn keys(&self) -> Vec<String> {
        self.index.lock().keys()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the files indexed.
    pub fn bytes(&self) -> u64 {
        self.index.lock().bytes()
    }

    /// `cache_disk_size`.
    pub fn capacity(&self) -> u64 {
        self.index.lock().capacity()
    }

    /// Whether the start-up scan is over (until then, lookups miss what
    /// it has not reached).
    pub fn is_scanned(&self) -> bool {
        self.scanned.load(Ordering::Acquire)
    }

    /// Deletes the files of `doomed` whose key the index does not hold
    /// (again), a slice at a time under the lock: the writer enters a
    /// file under it, so a file written again for a key is never deleted
    /// as the old one's.
    fn delete(&self, doomed: Doomed) {
        for slice in doomed.chunks(DELETE_SLICE) {
            let index = self.index.lock();
            for (key, name) in slice {
                if !index.holds(key) {
                    let _ = std::fs::remove_file(file::path_of(&self.dir, name));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
