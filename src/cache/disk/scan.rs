//! The index rebuilt from the directory at start-up: each file's head
//! read (not its body, whose checksum is checked when it is promoted);
//! temporary, damaged and expired files of ours deleted; anything else
//! left alone.

use super::file::{self, Named, Refused};
use super::index::Held;
use super::Disk;
use crate::cache::persist::Record;
use crate::cache::policy::Tags;
use crate::cache::store::unix_ms;
use crate::http::head::parse_response;
use crossbeam_channel::Receiver;
use std::fs;
use std::path::Path;
use std::time::{Instant, SystemTime};

/// Files the scan looks at, at most: a directory holding more than any
/// `cache_disk_size` makes sense for (or another's, with millions of
/// files) is not read to its end. What is past it stays unindexed.
const MAX_FILES: usize = 4_000_000;
/// Files entered per hold of the index lock.
const BATCH: usize = 256;

#[derive(Default, Clone, Copy)]
struct Counts {
    seen: usize,
    removed: usize,
    foreign: usize,
}

/// Scans the directory; false if stopped before the end.
pub(super) fn scan(disk: &Disk, stop: &Receiver<()>) -> bool {
    let started = Instant::now();
    let now = unix_ms(SystemTime::now());
    let mut counts = Counts::default();
    let mut batch = Vec::with_capacity(BATCH);
    let Ok(subdirs) = fs::read_dir(&disk.dir) else {
        return true;
    };
    for sub in subdirs.flatten() {
        let name = sub.file_name();
        let ours = name.to_str().is_some_and(file::is_subdir_name);
        if !ours || !sub.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(files) = fs::read_dir(sub.path()) else {
            continue;
        };
        for f in files.flatten() {
            if counts.seen >= MAX_FILES {
                log::warn!(
                    "cache_disk_dir {}: more than {MAX_FILES} files; the rest are not indexed",
                    disk.dir.display()
                );
                return finish(disk, batch, counts, started);
            }
            if stop.try_recv().is_ok() {
                return false;
            }
            counts.seen += 1;
            let name = f.file_name();
            let Some(name) = name.to_str() else {
                counts.foreign += 1;
                continue;
            };
            let path = f.path();
            // Not through a symlink, nor into anything but a file.
            if !f.file_type().is_ok_and(|t| t.is_file()) {
                counts.foreign += 1;
                continue;
            }
            match file::named(name) {
                Named::Other => counts.foreign += 1,
                Named::Temporary => remove(&path, &mut counts),
                Named::File => match found(disk, &path, name, now) {
                    Ok(Some(entry)) => batch.push(entry),
                    Ok(None) | Err(Refused::Damaged(_) | Refused::Version(_)) => {
                        remove(&path, &mut counts)
                    }
                    Err(Refused::NotOurs | Refused::Io(_)) => counts.foreign += 1,
                },
            }
            if batch.len() >= BATCH {
                enter(disk, &mut batch);
            }
        }
    }
    finish(disk, batch, counts, started)
}

fn finish(disk: &Disk, mut batch: Vec<(String, Held)>, counts: Counts, started: Instant) -> bool {
    enter(disk, &mut batch);
    log::info!(
        "cache_disk_dir {}: {} entries ({} bytes) indexed in {:?}; {} files removed (temporary, \
         damaged or expired), {} not ours left alone",
        disk.dir.display(),
        disk.len(),
        disk.bytes(),
        started.elapsed(),
        counts.removed,
        counts.foreign,
    );
    true
}

fn remove(path: &Path, counts: &mut Counts) {
    counts.removed += usize::from(fs::remove_file(path).is_ok());
}

/// The entry a file named `name` holds, if it is ours and worth keeping:
/// `None` for one expired or filed under a name not its key's.
fn found(
    disk: &Disk,
    path: &Path,
    name: &str,
    now: u64,
) -> Result<Option<(String, Held)>, Refused> {
    let (record, size) = file::read_head(path, disk.max_body)?;
    let Ok(key) = String::from_utf8(record.key.clone()) else {
        return Ok(None);
    };
    let keep_until = record.keep_until();
    if keep_until <= now || file::name_of(&key) != name {
        return Ok(None);
    }
    let held = Held {
        id: 0,
        name: name.to_string(),
        size,
        expires_at: record.expires_at,
        keep_until,
        tags: tags_of(&record),
        soft: None,
    };
    Ok(Some((key, held)))
}

/// The `Surrogate-Key` tags of a record's head (none if it does not
/// parse: its promotion refuses it then).
fn tags_of(record: &Record) -> Tags {
    let mut text = record.head.clone();
    text.extend_from_slice(b"\r\n");
    match parse_response(&text) {
        Ok(head) => Tags::of_response(&head.headers),
        Err(_) => Tags::default(),
    }
}

fn enter(disk: &Disk, batch: &mut Vec<(String, Held)>) {
    let mut index = disk.index.lock();
    let doomed: Vec<_> = (batch.drain(..))
        .flat_map(|(key, held)| index.insert_scanned(key, held))
        .collect();
    drop(index);
    disk.delete(doomed);
}
