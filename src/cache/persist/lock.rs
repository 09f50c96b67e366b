//! The directory lock that makes two writers of one file, in one process
//! or two, take turns.

use std::fs::File;
use std::io;
use std::path::Path;

use super::write::parent_dir;

/// Holds the directory a snapshot goes in locked (`flock`) until dropped.
/// Two processes may share `path_to_persistence` or `state_file` (the old
/// and the new one of an upgrade under `reuse_port`): each would otherwise
/// remove the other's temporary file as it starts its own, and could
/// rename one still being written over the file. Two threads of one
/// process wait for each other too (each lock is on its own open of the
/// directory). Best effort: where the lock cannot be had (a file system
/// without `flock`), files are written as before.
#[cfg(unix)]
pub(super) fn lock_directory(path: &Path) -> Option<File> {
    use std::os::fd::AsRawFd;
    let dir = File::open(parent_dir(path)).ok()?;
    loop {
        // SAFETY: the descriptor is the directory's, open for the call.
        if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Some(dir);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            log::debug!("cannot lock {}: {error}", parent_dir(path).display());
            return None;
        }
    }
}

#[cfg(not(unix))]
pub(super) fn lock_directory(_path: &Path) -> Option<File> {
    None
}

#[cfg(test)]
mod tests {
    use super::super::test_support::record;
    use super::super::{load_snapshot, write_snapshot, LoadLimits};

    #[test]
    fn two_writers_of_one_snapshot_take_turns() {
        // As an old and a new process sharing path_to_persistence do.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        let records: Vec<_> = (0..2_000).map(record).collect();
        std::thread::scope(|scope| {
            let write_often = || {
                (0..20)
                    .map(|_| write_snapshot(&path, &records))
                    .collect::<Vec<_>>()
            };
            let writers = [scope.spawn(write_often), scope.spawn(write_often)];
            for writer in writers {
                for result in writer.join().unwrap() {
                    assert_eq!(result.unwrap().records, 2_000);
                }
            }
        });
        let loaded = load_snapshot(&path, 0, &LoadLimits::UNLIMITED).unwrap();
        assert!(loaded.damage.is_none(), "{:?}", loaded.damage);
        assert_eq!(loaded.records, records);
    }
}
