//! Request bodies read whole to disk before a backend is asked
//! (`request_buffer_dir`, nginx's `client_body_temp_path`): a slow upload
//! larger than `request_buffer_size` holds no backend connection, and
//! the request may be sent again on another target.
//!
//! Each body is a file without a name (`O_TMPFILE`), so that nothing is
//! left in the directory by a crash and no other process can open it; on
//! a file system that has no such files, one named and removed at once.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// A body written to disk whole.
#[derive(Debug)]
pub struct Spooled {
    file: File,
    len: u64,
}

impl Spooled {
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Reads the body from `offset` into `buf`, as much as fits and is
    /// left (nothing at its end), and returns what it read. At an offset,
    /// not from a position: each try of the request reads from the start.
    pub fn read_at<'b>(&self, buf: &'b mut [u8], offset: u64) -> io::Result<&'b [u8]> {
        let left = self.len.saturating_sub(offset);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], offset)?;
        if n == 0 && want > 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(&buf[..n])
    }
}

/// A body being written to disk.
#[derive(Debug)]
pub struct Spooling {
    file: File,
    len: u64,
}

impl Spooling {
    /// A file in `dir` to write a body to.
    pub fn create(dir: &Path) -> io::Result<Spooling> {
        Ok(Spooling {
            file: unnamed_file(dir)?,
            len: 0,
        })
    }

    pub fn write(&mut self, piece: &[u8]) -> io::Result<()> {
        self.file.write_all(piece)?;
        self.len += piece.len() as u64;
        Ok(())
    }

    /// The whole body, to read back.
    pub fn done(self) -> Spooled {
        Spooled {
            file: self.file,
            len: self.len,
        }
    }
}

/// Whether bodies can be written to `dir`: a file made there and dropped
/// (at start-up and at each reload, so that a directory that is missing
/// or not writable is told then, not at the first large upload).
pub fn check_dir(dir: &Path) -> io::Result<()> {
    if !dir.is_dir() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no such directory"));
    }
    unnamed_file(dir).map(drop)
}

fn unnamed_file(dir: &Path) -> io::Result<File> {
    let unnamed = OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir);
    match unnamed {
        // A file system (or kernel) without unnamed files says so.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
            named_then_removed(dir)
        }
        other => other,
    }
}

/// The number in the next named file's name.
static NEXT: AtomicU64 = AtomicU64::new(0);

fn named_then_removed(dir: &Path) -> io::Result<File> {
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".inverso-body-{}-{n}", std::process::id()));
        let created = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path);
        match created {
            Ok(file) => {
                fs::remove_file(&path)?;
                return Ok(file);
            }
            // Left by an earlier process of the same ID: the next name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_back(body: &Spooled, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0; step];
        loop {
            let read = body.read_at(&mut buf, out.len() as u64).unwrap();
            if read.is_empty() {
                return out;
            }
            out.extend_from_slice(read);
        }
    }

    #[test]
    fn a_body_is_read_back_whole_from_any_offset_and_leaves_no_file_behind() {
        let dir = tempfile::tempdir().unwrap();
        check_dir(dir.path()).unwrap();
        let mut spooling = Spooling::create(dir.path()).unwrap();
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for piece in body.chunks(7_000) {
            spooling.write(piece).unwrap();
        }
        let spooled = spooling.done();
        assert_eq!(spooled.len(), body.len() as u64);
        assert_eq!(read_back(&spooled, 4096), body);
        // A second try reads it from the start again.
        assert_eq!(read_back(&spooled, 65_536), body);
        let mut tail = [0; 10];
        assert_eq!(spooled.read_at(&mut tail, 99_995).unwrap(), &body[99_995..]);
        assert!(spooled.read_at(&mut tail, 200_000).unwrap().is_empty());
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_file_found_shorter_than_its_body_is_an_error_not_an_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut spooling = Spooling::create(dir.path()).unwrap();
        spooling.write(&[7; 100]).unwrap();
        let spooled = spooling.done();
        spooled.file.set_len(60).unwrap();
        let mut buf = [0; 64];
        assert_eq!(spooled.read_at(&mut buf, 0).unwrap(), &[7; 60]);
        let e = spooled.read_at(&mut buf, 60).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_named_file_is_removed_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = named_then_removed(dir.path()).unwrap();
        file.write_all(b"body").unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut back = [0; 4];
        file.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(&back, b"body");
    }

    #[test]
    fn a_name_taken_is_passed_over_and_another_error_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let next = NEXT.load(Ordering::Relaxed);
        for n in next..next + 3 {
            let name = format!(".inverso-body-{}-{n}", std::process::id());
            fs::write(dir.path().join(name), b"left by another").unwrap();
        }
        named_then_removed(dir.path()).unwrap();
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            3,
            "another's file removed"
        );
        let missing = dir.path().join("missing");
        let e = named_then_removed(&missing).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_missing_directory_or_a_file_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        assert_eq!(
            check_dir(&missing).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        let file = dir.path().join("file");
        fs::write(&file, b"").unwrap();
        assert!(check_dir(&file).is_err());
    }
}
