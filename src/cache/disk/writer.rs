//! The disk tier's thread: it takes the directory's lock (waiting while
//! another process holds it), scans the directory, then writes the
//! evicted entries it is handed, one file each.

use super::file::{self, path_of, temporary_of};
use super::index::Held;
use super::{scan, Disk, Job};
use crate::cache::store::unix_ms;
use crossbeam_channel::{bounded, select, Receiver, RecvTimeoutError, Sender};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// The file whose lock says which process owns the directory.
const LOCK_NAME: &str = "inverso-disk.lock";
/// How often a process waiting for another's lock tries again.
const LOCK_RETRY: Duration = Duration::from_millis(500);

/// The thread; [`Worker::finish`] (or a drop) stops it once it has
/// written what was queued, and releases the directory.
pub struct Worker {
    stop: Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    pub fn finish(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let _ = self.stop.try_send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop_now();
    }
}

pub(super) fn spawn(disk: Arc<Disk>, jobs: Receiver<Job>) -> io::Result<Worker> {
    let (stop, stopped) = bounded(1);
    let thread = std::thread::Builder::new()
        .name("cache-disk".into())
        .spawn(move || run(&disk, &jobs, &stopped))?;
    Ok(Worker {
        stop,
        thread: Some(thread),
    })
}

fn run(disk: &Disk, jobs: &Receiver<Job>, stop: &Receiver<()>) {
    let Some(_lock) = lock(&disk.dir, stop) else {
        return;
    };
    // Stopped during the scan: the stop is taken, and nothing is left
    // to wait for.
    if !scan::scan(disk, stop) {
        return;
    }
    disk.index.lock().scanned();
    disk.scanned.store(true, Ordering::Release);
    loop {
        select! {
            recv(jobs) -> job => match job {
                Ok(job) => disk.write(job),
                Err(_) => return,
            },
            recv(stop) -> _ => break,
        }
    }
    // What was evicted before the stop is on disk for the next start.
    while let Ok(job) = jobs.try_recv() {
        disk.write(job);
    }
}

/// The directory's lock: two processes writing and deleting each
/// other's files, with an index each, would lose entries and serve
/// files the other replaced. One that finds it held (the old process of
/// an upgrade under `reuse_port`) waits for it, its disk tier idle
/// meanwhile, rather than refuse to start. `None`: stopped while
/// waiting.
fn lock(dir: &Path, stop: &Receiver<()>) -> Option<File> {
    let path = dir.join(LOCK_NAME);
    let file = match OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
    {
        Ok(file) => file,
        Err(e) => {
            log::warn!(
                "cache_disk_dir: cannot open {}: {e}; the disk tier is off",
                path.display()
            );
            return None;
        }
    };
    let mut said = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Some(file),
            Err(TryLockError::WouldBlock) => {
                if !said {
                    log::info!(
                        "cache_disk_dir {}: in use by another process; waiting for it",
                        dir.display()
                    );
                    said = true;
                }
                if !matches!(
                    stop.recv_timeout(LOCK_RETRY),
                    Err(RecvTimeoutError::Timeout)
                ) {
                    return None;
                }
            }
            // A file system without locks: as a snapshot's, best effort.
            Err(TryLockError::Error(e)) => {
                log::debug!("cannot lock {}: {e}", path.display());
                return Some(file);
            }
        }
    }
}

impl Disk {
    /// Writes an evicted entry's file under a temporary name, then
    /// renames it and enters it under the index lock, unless a purge that
    /// names it ended since it was evicted, or is under way.
    fn write(&self, job: Job) {
        let entry = &job.entry;
        let record = &entry.record;
        let key = entry.key();
        // Read back from its file, which is still there: written already.
        if (entry.disk_id()).is_some_and(|id| self.index.lock().holds_file(key, id)) {
            return;
        }
        let keep_until = record.keep_until();
        let purged = || (self.index.lock().recent).names(job.generation, key, entry.tags());
        if keep_until <= unix_ms(SystemTime::now()) || purged() {
            self.stats.discarded.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let name = file::name_of(key);
        let path = path_of(&self.dir, &name);
        let tmp = temporary_of(&path);
        let written = path
            .parent()
            .map_or(Ok(()), fs::create_dir_all)
            .and_then(|()| file::write_new(&tmp, record));
        let size = match written {
            Ok(Some(size)) => size,
            Ok(None) => {
                let _ = fs::remove_file(&tmp);
                return;
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                if self.stats.write_failures.fetch_add(1, Ordering::Relaxed) == 0 {
                    log::warn!("cache_disk_dir: cannot write {}: {e}", tmp.display());
                }
                return;
            }
        };
        let held = Held {
            id: 0,
            name,
            size,
            expires_at: record.expires_at,
            keep_until,
            tags: entry.tags().clone(),
            soft: None,
        };
        let mut index = self.index.lock();
        if index.recent.names(job.generation, key, entry.tags()) {
            drop(index);
            let _ = fs::remove_file(&tmp);
            self.stats.discarded.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if fs::rename(&tmp, &path).is_err() {
            drop(index);
            let _ = fs::remove_file(&tmp);
            self.stats.write_failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let doomed = index.insert(key.to_string(), held);
        drop(index);
        self.stats.writes.fetch_add(1, Ordering::Relaxed);
        self.delete(doomed);
    }
}
