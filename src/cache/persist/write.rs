//! A file written whole or not at all: to a temporary file beside it,
//! fsync'd and renamed over it, through symlinks and only ever over a
//! regular file; and a damaged file set aside.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use super::format::{write_records, Record, SnapshotStats};
use super::lock::lock_directory;
use super::{io_error, PersistError};

/// Creates the directory the snapshot goes in when it is missing, as nginx
/// creates a `proxy_cache_path`, and checks that what is at `path`, if
/// anything, is a regular file: a directory that cannot be made, or a
/// directory, FIFO or device the snapshot would never be written over, is
/// found out at start-up rather than at every tick.
pub fn ensure_directory(path: &Path) -> io::Result<()> {
    // Where a snapshot would go, through symlinks as `write_atomically`
    // goes: a loop, or anything but a regular file there, is refused; the
    // directory made is the one the file goes in (a dangling link's too).
    let dest = destination(path).map_err(|e| match e {
        PersistError::Io { source, .. } => source,
        e => io::Error::other(e.to_string()),
    })?;
    if let Some(dir) = dest.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot create its directory: {e}")))?;
    }
    Ok(())
}

/// Writes a snapshot atomically, as [`write_atomically`] writes any file.
pub fn write_snapshot<'a>(
    path: &Path,
    records: impl IntoIterator<Item = &'a Record>,
) -> Result<SnapshotStats, PersistError> {
    write_atomically(path, |out| write_records(out, records))
}

/// Writes a file whole or not at all: what `write` puts out goes to
/// `path` + ".tmp" in the same directory, fsync'd, renamed over `path`,
/// then the directory fsync'd so the rename itself is durable. A crash at
/// any moment leaves either the old or the new file at `path`, so a reader
/// never sees half of one; a stale ".tmp" is simply overwritten next time.
/// `write` runs with the directory locked (see `lock_directory`): what
/// it reads to decide what to write is read after every earlier writer
/// (of this process or another) is done, so the last to write holds the
/// latest. The file is readable by the proxy's user alone.
pub fn write_atomically<T>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<T>,
) -> Result<T, PersistError> {
    let path = &destination(path)?;
    let _writing = lock_directory(path);
    let tmp = tmp_path(path);
    let result = write_file(&tmp, write).and_then(|written| {
        fs::rename(&tmp, path).map_err(io_error("rename the temporary file over", path))?;
        sync_parent_dir(path)?;
        Ok(written)
    });
    if result.is_err() {
        // Best effort: a leftover .tmp is harmless, only untidy.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Moves the file a snapshot for `path` would replace (through symlinks,
/// as [`write_snapshot`] goes) to the same name plus `.{label}-{unix
/// seconds}`, so that what could not be read of it is not destroyed by
/// the next snapshot. Returns the new name; `None` when there is nothing
/// worth keeping (no file, an empty one).
pub fn set_aside(
    path: &Path,
    label: &str,
    unix_secs: u64,
) -> Result<Option<PathBuf>, PersistError> {
    // Nothing a snapshot would be written over (a FIFO, a directory...):
    // nothing to keep out of its way.
    let Ok(file) = destination(path) else {
        return Ok(None);
    };
    match fs::metadata(&file) {
        Ok(meta) if meta.len() > 0 => {}
        _ => return Ok(None),
    }
    // Never over an earlier one (two starts within a second): `-2`, `-3`...
    let named = |n: u32| {
        let mut aside = file.as_os_str().to_owned();
        aside.push(format!(".{label}-{unix_secs}"));
        if n > 1 {
            aside.push(format!("-{n}"));
        }
        PathBuf::from(aside)
    };
    let aside = (1..=1000)
        .map(named)
        .find(|p| fs::symlink_metadata(p).is_err())
        .ok_or_else(|| {
            io_error("move aside", &file)(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a thousand earlier copies in the same second",
            ))
        })?;
    fs::rename(&file, &aside).map_err(io_error("move aside", &file))?;
    sync_parent_dir(&file)?;
    Ok(Some(aside))
}

/// Where a snapshot for `path` goes: through symlinks to the file they
/// name, existing or not yet (a link to a data volume keeps working,
/// rather than being replaced by a file), and only ever over a regular
/// file or nothing. The rename would otherwise replace whatever sits
/// there: a device node (`/dev/null`, as root), a FIFO, a directory.
fn destination(path: &Path) -> Result<PathBuf, PersistError> {
    // As the kernel's own limit on links followed in one lookup.
    const MAX_LINKS: usize = 40;
    let mut dest = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::symlink_metadata(&dest) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs::read_link(&dest).map_err(io_error("resolve", &dest))?;
                // A relative target is relative to the link's directory;
                // `join` keeps an absolute one as it is.
                dest = match dest.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            Ok(meta) if meta.is_file() => return Ok(dest),
            Ok(_) => {
                return Err(io_error("write over", &dest)(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a regular file",
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(dest),
            Err(e) => return Err(io_error("resolve", &dest)(e)),
        }
    }
    Err(io_error("resolve", path)(io::Error::new(
        io::ErrorKind::InvalidInput,
        "too many levels of symbolic links",
    )))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

fn write_file<T>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<T>,
) -> Result<T, PersistError> {
    // A fresh file, never whatever sits at the temporary path: a symlink
    // left there (by anyone who can write to the directory) would otherwise
    // be followed, and the snapshot written over the file it points to.
    // Only if there is one: on a read-only file system the removal would
    // fail first, and name a leftover that does not exist.
    if fs::symlink_metadata(path).is_ok() {
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_error("remove the old", path)(e));
            }
            _ => {}
        }
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    // Readable by the proxy's user alone, whatever the umask: keys hold
    // the request fields responses vary on (a Cookie, an Authorization),
    // and bodies answers to authenticated requests a `public` let the
    // cache keep. nginx creates its cache files 0600 too. The rename
    // carries the mode over the file it replaces.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).map_err(io_error("create", path))?;
    let mut out = BufWriter::new(file);
    let written = write(&mut out).map_err(io_error("write", path))?;
    let file = out
        .into_inner()
        .map_err(|e| io_error("write", path)(e.into_error()))?;
    file.sync_all().map_err(io_error("fsync", path))?;
    Ok(written)
}

pub(super) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

#[cfg(unix)]
fn sync_parent_dir(path: &Path) -> Result<(), PersistError> {
    let dir = parent_dir(path);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("fsync the directory", dir))
}

#[cfg(not(unix))]
fn sync_parent_dir(_path: &Path) -> Result<(), PersistError> {
    // Directories cannot be opened for syncing here; the rename is as durable as it gets.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::record;
    use super::super::{load_snapshot, LoadLimits};
    use super::*;

    #[test]
    fn round_trip_of_ten_thousand_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        let records: Vec<_> = (0..10_000).map(record).collect();
        let stats = write_snapshot(&path, &records).unwrap();
        assert_eq!(stats.records, 10_000);
        assert_eq!(stats.skipped_too_large, 0);
        assert_eq!(stats.bytes, fs::metadata(&path).unwrap().len());
        assert!(!tmp_path(&path).exists(), "the temporary file was renamed");

        let loaded = load_snapshot(&path, 0, &LoadLimits::UNLIMITED).unwrap();
        assert!(loaded.damage.is_none(), "{:?}", loaded.damage);
        assert_eq!(loaded.records, records);
        assert_eq!((loaded.skipped_expired, loaded.skipped_over_limit), (0, 0));
    }

    #[test]
    fn files_set_aside_in_the_same_second_keep_each_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        let mut kept = Vec::new();
        for content in ["first", "second", "third"] {
            fs::write(&path, content).unwrap();
            kept.push(set_aside(&path, "damaged", 7).unwrap().unwrap());
        }
        assert!(!path.exists());
        let names: Vec<_> = kept
            .iter()
            .map(|p| fs::read_to_string(p).unwrap())
            .collect();
        assert_eq!(names, ["first", "second", "third"]);
        assert!(kept[0].to_string_lossy().ends_with("cache.bin.damaged-7"));
        assert!(kept[1].to_string_lossy().ends_with("cache.bin.damaged-7-2"));
        // Nothing worth keeping: no file, or an empty one.
        assert_eq!(set_aside(&path, "damaged", 7).unwrap(), None);
        fs::write(&path, "").unwrap();
        assert_eq!(set_aside(&path, "damaged", 7).unwrap(), None);
    }

    #[test]
    fn a_leftover_tmp_file_does_not_disturb_loading_or_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        let records: Vec<_> = (0..5).map(record).collect();
        write_snapshot(&path, &records).unwrap();
        // As if a crash happened half-way through the next write.
        fs::write(tmp_path(&path), b"INVERSO\0garbage from a crash").unwrap();
        let loaded = load_snapshot(&path, 0, &LoadLimits::UNLIMITED).unwrap();
        assert!(loaded.damage.is_none(), "{:?}", loaded.damage);
        assert_eq!(loaded.records, records);

        write_snapshot(&path, &records[..2]).unwrap();
        assert!(!tmp_path(&path).exists());
        let loaded = load_snapshot(&path, 0, &LoadLimits::UNLIMITED).unwrap();
        assert_eq!(loaded.records, records[..2]);
    }

    #[cfg(unix)]
    #[test]
    fn a_snapshot_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        // Keys hold the request fields a response varies on (a Cookie, an
        // Authorization), bodies what answered them.
        let mut private = record(1);
        private.key = b"h/account\nauthorization=Basic YWxpY2U6c2VjcmV0".to_vec();
        write_snapshot(&path, [&private]).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
        // Also when it replaces a file an older version left readable.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_snapshot(&path, [&private]).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_at_the_temporary_path_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        let victim = dir.path().join("victim.txt");
        fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, tmp_path(&path)).unwrap();
        write_snapshot(&path, &[record(1)]).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert!(fs::symlink_metadata(&path).unwrap().is_file());
        let loaded = load_snapshot(&path, 0, &LoadLimits::UNLIMITED).unwrap();
        assert_eq!(loaded.records, [record(1)]);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_snapshot_path_is_written_through_not_replaced() {
        // An operator's link to a data volume keeps working.
        let dir = tempfile::tempdir().unwrap();
        let volume = dir.path().join("volume");
        fs::create_dir(&volume).unwrap();
        let real = volume.join("cache.bin");
        write_snapshot(&real, &[record(1)]).unwrap();
        let link = dir.path().join("cache.bin");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_snapshot(&link, &[record(2)]).unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        let loaded = load_snapshot(&real, 0, &LoadLimits::UNLIMITED).unwrap();
        assert_eq!(loaded.records, [record(2)]);
        // A link to a file not written yet (a first run): the file is
        // made where the link points, relative to the link's directory.
        let first = dir.path().join("first.bin");
        std::os::unix::fs::symlink("volume/new.bin", &first).unwrap();
        write_snapshot(&first, &[record(3)]).unwrap();
        assert!(fs::symlink_metadata(&first)
            .unwrap()
            .file_type()
            .is_symlink());
        let loaded = load_snapshot(&volume.join("new.bin"), 0, &LoadLimits::UNLIMITED).unwrap();
        assert_eq!(loaded.records, [record(3)]);
        // A link to a directory, or a loop, is refused and left alone.
        let to_dir = dir.path().join("to_dir.bin");
        std::os::unix::fs::symlink(&volume, &to_dir).unwrap();
        assert!(write_snapshot(&to_dir, &[record(4)]).is_err());
        let looped = dir.path().join("loop.bin");
        std::os::unix::fs::symlink(&looped, &looped).unwrap();
        assert!(write_snapshot(&looped, &[record(4)]).is_err());
        assert!(fs::symlink_metadata(&looped)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn io_errors_name_the_step_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("cache.bin");
        let err = write_snapshot(&path, &[record(1)]).unwrap_err();
        let PersistError::Io { step, path: at, .. } = &err else {
            panic!("expected an io error, got {err}");
        };
        assert_eq!(*step, "create");
        assert_eq!(*at, tmp_path(&path));
        assert!(err.to_string().contains("cache.bin.tmp"), "{err}");

        let err = load_snapshot(dir.path(), 0, &LoadLimits::UNLIMITED).unwrap_err();
        assert!(matches!(err, PersistError::Io { .. }), "a directory: {err}");
    }

    #[test]
    fn writing_with_a_relative_path_syncs_the_current_directory() {
        // `Path::parent` of a bare file name is empty; it must mean ".".
        assert!(sync_parent_dir(Path::new("cache.bin")).is_ok());
    }

    #[test]
    fn what_ensure_directory_accepts_a_snapshot_can_be_written_to() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.bin");
        fs::write(&real, b"").unwrap();
        let good = dir.path().join("good");
        std::os::unix::fs::symlink(&real, &good).unwrap();
        let dangling_ok = dir.path().join("dangling_ok");
        std::os::unix::fs::symlink(dir.path().join("later.bin"), &dangling_ok).unwrap();
        let dangling_missing_dir = dir.path().join("dangling_missing_dir");
        std::os::unix::fs::symlink(dir.path().join("no/such/dir/s.bin"), &dangling_missing_dir)
            .unwrap();
        let looped = dir.path().join("looped");
        std::os::unix::fs::symlink(&looped, &looped).unwrap();
        let mut never_written = Vec::new();
        for path in [good, dangling_ok, dangling_missing_dir, looped] {
            if ensure_directory(&path).is_ok() {
                if let Err(e) = write_snapshot(&path, []) {
                    never_written.push(format!("{}: {e}", path.display()));
                }
            }
        }
        assert!(
            never_written.is_empty(),
            "accepted, never written: {never_written:#?}"
        );
    }

    #[test]
    fn the_directory_synced_and_locked_is_the_snapshots_own() {
        let path = Path::new("/var/cache/inverso/cache.bin");
        assert_eq!(parent_dir(path), Path::new("/var/cache/inverso"));
        assert_eq!(parent_dir(Path::new("cache.bin")), Path::new("."));
    }

    #[test]
    fn a_directory_that_cannot_be_synced_is_an_error() {
        // The rename is only durable once the directory is; not being able
        // to open it must not pass for success.
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let err = sync_parent_dir(&gone.join("cache.bin")).unwrap_err();
        let PersistError::Io { step, path, .. } = &err else {
            panic!("expected an io error, got {err}");
        };
        assert_eq!((*step, path), ("fsync the directory", &gone));
    }

    #[test]
    fn a_temporary_path_that_cannot_be_cleared_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        // A directory is never removed as a leftover temporary file.
        fs::create_dir(tmp_path(&path)).unwrap();
        let err = write_snapshot(&path, &[record(1)]).unwrap_err();
        let PersistError::Io { step, path: at, .. } = &err else {
            panic!("expected an io error, got {err}");
        };
        assert_eq!((*step, at), ("remove the old", &tmp_path(&path)), "{err}");
        assert!(!path.exists());
    }

    #[test]
    fn a_path_that_cannot_be_resolved_is_named_not_its_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        fs::write(&file, b"").unwrap();
        let path = file.join("cache.bin");
        let err = write_snapshot(&path, &[record(1)]).unwrap_err();
        let PersistError::Io { step, path: at, .. } = &err else {
            panic!("expected an io error, got {err}");
        };
        assert_eq!((*step, at), ("resolve", &path), "{err}");
    }
}
