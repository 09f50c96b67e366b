//! The process ID file (`pid_file`), nginx's `pid` and HAProxy's `-p`:
//! where init scripts, monit and a logrotate `postrotate` find the
//! process to signal, and what `inverso signal` reads.
//!
//! Written once the proxy listens, whole or not at all (a temporary file
//! renamed over it), so a reader never finds it half written; removed at
//! the end only while it still names this process: during an upgrade
//! (`reuse_port`), the new process has written its own over it by the time
//! the old one exits.

use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};

/// Why a process ID file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {} (is inverso running?): {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} does not hold a process ID: {found:?}", path.display())]
    NotAPid { path: PathBuf, found: String },
}

/// The most a process ID file holds: a number and a line feed. More is
/// some other file.
const MOST_BYTES: u64 = 32;

/// Writes this process's ID to `path`, replacing what was there.
pub fn write(path: &Path) -> Result<(), PidFileError> {
    let failed = |source| PidFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let name = path.file_name().ok_or_else(|| {
        failed(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no file name",
        ))
    })?;
    let mut temporary = name.to_os_string();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = path.with_file_name(temporary);
    let written = create_new(&temporary)
        .and_then(|mut file| writeln!(file, "{}", std::process::id()))
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(failed(e));
    }
    Ok(())
}

/// A new file at `path`, never one already there: the temporary name is
/// one anyone can tell, and a link left at it in a directory others may
/// write to would have the file it points at truncated and written with
/// the proxy's rights. What is there is removed first (a link itself, not
/// the file it points at), as one left by a process of the same ID that
/// died; made again by then, it is an error.
fn create_new(path: &Path) -> io::Result<File> {
    let open = || OpenOptions::new().write(true).create_new(true).open(path);
    match open() {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            std::fs::remove_file(path)?;
            open()
        }
        opened => opened,
    }
}

/// Removes `path` if it names this process; leaves it otherwise (another
/// process wrote its own since) and when it cannot be read.
pub fn remove_if_ours(path: &Path) {
    if read(path).is_ok_and(|pid| pid == std::process::id()) {
        if let Err(e) = std::fs::remove_file(path) {
            log::warn!("cannot remove the pid_file {}: {e}", path.display());
        }
    }
}

/// The process ID `path` holds: a number above 1 (0 and -1 would name
/// process groups to `kill`, 1 is init), with a line feed or not.
pub fn read(path: &Path) -> Result<u32, PidFileError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|file| file.take(MOST_BYTES).read_to_end(&mut bytes))
        .map_err(|source| PidFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    // Read as bytes: a file that is no text (or is cut within a
    // character) holds no process ID, and is not one that cannot be read.
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let trimmed = text.trim_end_matches(['\n', '\r']);
    match trimmed.parse::<u32>() {
        Ok(pid) if pid > 1 && i32::try_from(pid).is_ok() && !trimmed.starts_with('+') => Ok(pid),
        _ => Err(PidFileError::NotAPid {
            path: path.to_path_buf(),
            found: text,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_whole_read_back_and_removed_only_while_it_is_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inverso.pid");
        std::fs::write(&path, "12345\n").unwrap();
        write(&path).unwrap();
        let ours = std::process::id();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{ours}\n"));
        assert_eq!(read(&path).unwrap(), ours);
        // No temporary file left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        remove_if_ours(&path);
        assert!(!path.exists());

        // Another process's (a newer one, after an upgrade) stays.
        std::fs::write(&path, "12345").unwrap();
        remove_if_ours(&path);
        assert_eq!(read(&path).unwrap(), 12345);
    }

    #[test]
    fn a_link_at_the_temporary_name_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inverso.pid");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let temporary = dir
            .path()
            .join(format!("inverso.pid.{}.tmp", std::process::id()));
        std::os::unix::fs::symlink(&victim, &temporary).unwrap();
        write(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(read(&path).unwrap(), std::process::id());
        assert!(temporary.symlink_metadata().is_err(), "left behind");
    }

    #[test]
    fn what_is_no_process_id_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inverso.pid");
        for bad in [
            "",
            "0\n",
            "1\n",
            "-1\n",
            "+42\n",
            " 42\n",
            "42 43\n",
            "abc",
            "4294967295",
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = read(&path).unwrap_err();
            assert!(
                e.to_string().contains("does not hold a process ID"),
                "{bad:?}: {e}"
            );
        }
        // A large file is some other file: read no further than a pid's.
        std::fs::write(&path, "7".repeat(1 << 20)).unwrap();
        assert!(
            matches!(read(&path), Err(PidFileError::NotAPid { found, .. }) if found.len() == 32)
        );
        // Nor is a file of no text, or one cut within a character.
        let mut cut = b"7".repeat(31);
        cut.extend_from_slice("é".as_bytes());
        for bad in [b"\xff\xfe12\n".to_vec(), cut, "é".as_bytes().to_vec()] {
            std::fs::write(&path, &bad).unwrap();
            let e = read(&path).unwrap_err();
            assert!(
                matches!(e, PidFileError::NotAPid { .. }),
                "{:?}: {e}",
                String::from_utf8_lossy(&bad)
            );
        }
        let e = read(&dir.path().join("none.pid")).unwrap_err();
        assert!(e.to_string().contains("is inverso running?"), "{e}");
        let e = write(&dir.path().join("missing").join("inverso.pid")).unwrap_err();
        assert!(e.to_string().starts_with("cannot write "), "{e}");
    }
}
