//! A name under the directory opened without leaving it: the path a
//! request's path names (segments decoded, hidden ones refused), a link on
//! its way checked against the directory's real path, and what a failed
//! open means for the request.

use super::beneath::Opened;
use super::find::{Found, Unopened};
use super::Files;
use crate::digits::percent_decoded;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

impl Files {
    /// [`Files::open_under`], for a regular file alone: a directory is no
    /// file by that name.
    pub(super) fn open_file(&self, relative: &Path) -> Result<(File, std::fs::Metadata), Found> {
        match self.open_under(relative)? {
            (file, meta) if meta.is_file() => Ok((file, meta)),
            _ => Err(Found::Missing),
        }
    }

    /// `relative` (a path [`relative_path`] made) opened, with its
    /// metadata, when it is a regular file or a directory under the
    /// directory's real path. Opened non-blocking, so that a FIFO does not
    /// wait for a writer (nor a read for its data).
    pub(super) fn open_under(&self, relative: &Path) -> Result<(File, std::fs::Metadata), Found> {
        let path = || self.dir.join(relative);
        let file = match self.beneath.open(&self.dir, relative) {
            Opened::File(file) => file,
            Opened::Failed(e) => return Err(found_for(e, &path())),
            Opened::Linked => return self.open_checked(&path(), true),
            Opened::NotHere => return self.open_checked(&path(), false),
        };
        let meta = file.metadata().map_err(|e| failed(e, &path()))?;
        match meta.is_file() || meta.is_dir() {
            true => Ok((file, meta)),
            false => Err(Found::Missing),
        }
    }

    /// [`Files::open_under`] for a path with a link on its way, or where
    /// `openat2` is not at hand. The path is first opened without reading
    /// (`O_PATH`: a device or a mount point outside is not opened for its
    /// data, nor does what its permissions say leak out), and where it
    /// really is is asked of the kernel (`/proc/self/fd`), so that a link
    /// put in the way between a check and the open cannot lead out, as it
    /// could if the path were resolved first and opened after; only then
    /// is it opened for reading, through that same descriptor.
    fn open_checked(&self, path: &Path, linked: bool) -> Result<(File, std::fs::Metadata), Found> {
        let found = |e: io::Error| match found_for(e, path) {
            // Behind a link, what the proxy may not search is not there:
            // a link out says nothing of what it points to.
            Found::Forbidden(_) if linked => Found::Missing,
            other => other,
        };
        let placed = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH)
            .open(path)
            .map_err(found)?;
        let meta = placed.metadata().map_err(|e| failed(e, path))?;
        if !meta.is_file() && !meta.is_dir() {
            return Err(Found::Missing);
        }
        let at = format!("/proc/self/fd/{}", placed.as_raw_fd());
        // Without /proc (a chroot that lacks it), the path resolved after
        // the open, and opened again: a link swapped in since could lead
        // out.
        let (real, reopen) = match std::fs::read_link(&at) {
            Ok(real) => (real, PathBuf::from(at)),
            Err(_) => {
                let real = path.canonicalize().map_err(found)?;
                (real.clone(), real)
            }
        };
        if !self.holds(&real) {
            return Err(Found::Missing);
        }
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&reopen)
            .map_err(|e| found_for(e, path))?;
        // Opened again by its path (no `/proc`): the file checked, or none.
        let opened = file.metadata().map_err(|e| failed(e, path))?;
        if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
            return Err(Found::Missing);
        }
        Ok((file, meta))
    }

    /// Whether `real` (a real path) is under the directory's real path,
    /// and under no name there that starts with `.` (a link `git` to
    /// `.git` leads to what a request may not name). The directory's real
    /// path is looked up each time (only paths with a link on their way
    /// come here): it may be a link switched since (`current` to
    /// `releases/42`), and the release before is not served through a
    /// link to it.
    fn holds(&self, real: &Path) -> bool {
        (self.dir.canonicalize()).is_ok_and(|root| holds_under(&root, real))
    }
}

/// Whether `real` is under `root` (both real paths), and under no name
/// there that starts with `.`.
pub(super) fn holds_under(root: &Path, real: &Path) -> bool {
    real.strip_prefix(root).is_ok_and(|rest| {
        rest.components()
            .all(|c| !c.as_os_str().as_bytes().starts_with(b"."))
    })
}

/// What an error opening the name at `path` means for the request.
pub(super) fn found_for(e: io::Error, path: &Path) -> Found {
    match e.kind() {
        io::ErrorKind::PermissionDenied => Found::Forbidden(Unopened {
            path: path.to_path_buf(),
            error: e,
        }),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::InvalidFilename => {
            Found::Missing
        }
        // A link loop, a name too long, a socket (`ENXIO`) or a device
        // without its driver: no file by that name.
        _ if matches!(
            e.raw_os_error(),
            Some(libc::ELOOP | libc::ENAMETOOLONG | libc::ENXIO | libc::ENODEV | libc::EOPNOTSUPP)
        ) =>
        {
            Found::Missing
        }
        _ => failed(e, path),
    }
}

/// Opening `path` failed for a cause a request cannot help.
fn failed(error: io::Error, path: &Path) -> Found {
    Found::Failed(Unopened {
        path: path.to_path_buf(),
        error,
    })
}

/// The path under the directory that `under` names: its segments, each
/// decoded; `None` when one is refused (see the module's documentation)
/// or holds an escape that is not one.
pub(super) fn relative_path(under: &str) -> Option<PathBuf> {
    let mut path = PathBuf::new();
    for segment in under.split('/').filter(|s| !s.is_empty()) {
        let decoded = percent_decoded(segment)?;
        if decoded.starts_with(b".") || decoded.contains(&b'/') || decoded.contains(&0) {
            return None;
        }
        path.push(std::ffi::OsStr::from_bytes(&decoded));
    }
    Some(path)
}
