//! One entry's file: a small header, then the entry as a snapshot frames
//! a record (length, checksum, payload); its name, a hash of its key; and
//! a file read back whole (to promote it) or only as far as its head (to
//! index it at start-up).
//!
//! ```text
//! offset  size  field
//! 0       8     magic, b"INVDISK\0"
//! 8       4     format version, u32 = 1
//! 12            one record, as in a snapshot (see `persist`), then the end
//! ```

use crate::cache::persist::{open_regular, read_framed, write_framed, Record};
use md5::{Digest as _, Md5};
use std::fs::{self, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

pub const MAGIC: [u8; 8] = *b"INVDISK\0";
pub const VERSION: u32 = 1;
const HEADER_LEN: u64 = 12;
/// The record's length and checksum, then its three times and the
/// key's length: what is read before the key.
const FRAME_LEN: u64 = 8;
const TIMES_LEN: usize = 24;
/// The largest key and head a file may say it holds: a request head and
/// a response head are each bounded by `max_header_size`'s own bound.
pub const MAX_KEY: u32 = 1 << 20;
pub const MAX_HEAD: u32 = 1 << 20;
/// What a file holds beside its key, head and body.
pub const FIXED_LEN: u64 = HEADER_LEN + FRAME_LEN + TIMES_LEN as u64 + 12;
/// Hex digits of a file's name (an MD5 of its key, as nginx names its
/// cache files).
const NAME_LEN: usize = 32;
const TMP_SUFFIX: &str = ".tmp";

/// Why a file is not read.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// No magic of ours: never touched (the directory may be another's).
    #[error("not an inverso cache file")]
    NotOurs,
    #[error("unsupported cache file version {0}")]
    Version(u32),
    #[error("damaged: {0}")]
    Damaged(&'static str),
    #[error("cannot read it")]
    Io(#[from] io::Error),
}

/// The name of the file holding `key`.
pub fn name_of(key: &str) -> String {
    let digest: [u8; 16] = Md5::digest(key.as_bytes()).into();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `dir`/`ab`/`abcd...`: 256 subdirectories, so that none holds millions.
pub fn path_of(dir: &Path, name: &str) -> PathBuf {
    dir.join(name.get(..2).unwrap_or("00")).join(name)
}

/// What a name in the directory is to us.
#[derive(Debug, PartialEq, Eq)]
pub enum Named {
    File,
    Temporary,
    /// Not ours by its name: never touched.
    Other,
}

pub fn named(name: &str) -> Named {
    let hex =
        |s: &str| s.len() == NAME_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    match name.strip_suffix(TMP_SUFFIX) {
        Some(stem) if hex(stem) => Named::Temporary,
        None if hex(name) => Named::File,
        _ => Named::Other,
    }
}

/// Whether a directory name is one of the 256 `path_of` makes.
pub fn is_subdir_name(name: &str) -> bool {
    name.len() == 2 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub fn temporary_of(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TMP_SUFFIX);
    PathBuf::from(tmp)
}

/// The bytes of a file holding `record`; `None` when a record cannot
/// hold it.
pub fn encode(out: &mut impl Write, record: &Record) -> io::Result<Option<u64>> {
    out.write_all(&MAGIC)?;
    out.write_all(&VERSION.to_le_bytes())?;
    Ok(write_framed(out, record)?.map(|n| n + HEADER_LEN))
}

/// Writes `record` to `path` (created afresh, readable by the proxy's
/// user alone, as a snapshot is); its size, or `None` when it cannot be
/// held. Not fsync'd: a file torn by a power loss fails its checksum
/// and is dropped, which costs a miss, where an fsync for every
/// eviction would cost the disk's every write.
pub fn write_new(path: &Path, record: &Record) -> io::Result<Option<u64>> {
    // Never through what sits there (a symlink left by anyone).
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = BufWriter::new(options.open(path)?);
    let size = encode(&mut out, record)?;
    out.flush()?;
    Ok(size)
}

/// The record a whole file holds.
pub fn decode(bytes: &[u8]) -> Result<Record, Refused> {
    let (magic, rest) = bytes.split_first_chunk::<8>().ok_or(Refused::NotOurs)?;
    if *magic != MAGIC {
        return Err(Refused::NotOurs);
    }
    let (version, rest) = rest
        .split_first_chunk::<4>()
        .ok_or(Refused::Damaged("cut in its header"))?;
    check_version(u32::from_le_bytes(*version))?;
    read_framed(rest).ok_or(Refused::Damaged("a checksum or a length does not match"))
}

fn check_version(version: u32) -> Result<(), Refused> {
    match version {
        VERSION => Ok(()),
        v => Err(Refused::Version(v)),
    }
}

/// A file's record without its body (empty), read as far as its head
/// only, and the file's size: what the index needs. The body's checksum
/// is checked when the entry is promoted.
pub fn read_head(path: &Path, max_body: u64) -> Result<(Record, u64), Refused> {
    // Never a FIFO or a device, which could block or be read forever.
    let file = open_regular(path)?;
    let size = file.metadata()?.len();
    let mut src = BufReader::new(file.take(size));
    let mut fixed = [0u8; 8 + 4 + 8 + TIMES_LEN + 4];
    if src.read_exact(&mut fixed).is_err() {
        // Too short to be told ours or not: left alone unless its
        // magic says it is.
        return Err(match fixed.starts_with(&MAGIC) {
            true => Refused::Damaged("cut in its header"),
            false => Refused::NotOurs,
        });
    }
    let mut cur = &fixed[..];
    if take::<8>(&mut cur) != Some(MAGIC) {
        return Err(Refused::NotOurs);
    }
    check_version(u32::from_le_bytes(take(&mut cur).unwrap_or_default()))?;
    let payload_len = u64::from(u32::from_le_bytes(take(&mut cur).unwrap_or_default()));
    let _crc = take::<4>(&mut cur);
    let time = |cur: &mut &[u8]| u64::from_le_bytes(take(cur).unwrap_or_default());
    let (stored_at, expires_at, stale_until) = (time(&mut cur), time(&mut cur), time(&mut cur));
    let key_len = u32::from_le_bytes(take(&mut cur).unwrap_or_default());
    let key = read_field(&mut src, key_len, MAX_KEY)?;
    let head_len = read_u32(&mut src)?;
    let head = read_field(&mut src, head_len, MAX_HEAD)?;
    let body_len = u64::from(read_u32(&mut src)?);
    if body_len > max_body {
        return Err(Refused::Damaged("a body larger than max_object_size"));
    }
    let fields = u64::from(key_len) + u64::from(head_len) + body_len;
    if payload_len != TIMES_LEN as u64 + 12 + fields || size != FIXED_LEN + fields {
        return Err(Refused::Damaged("its lengths do not add up"));
    }
    let record = Record {
        key,
        head,
        body: Vec::new().into(),
        stored_at,
        expires_at,
        stale_until,
    };
    Ok((record, size))
}

fn take<const N: usize>(cur: &mut &[u8]) -> Option<[u8; N]> {
    let (bytes, rest) = cur.split_first_chunk::<N>()?;
    *cur = rest;
    Some(*bytes)
}

fn read_u32(src: &mut impl Read) -> Result<u32, Refused> {
    let mut n = [0u8; 4];
    src.read_exact(&mut n)
        .map_err(|_| Refused::Damaged("cut short"))?;
    Ok(u32::from_le_bytes(n))
}

/// A field of `len` bytes, checked against `max` before anything is
/// allocated for it.
fn read_field(src: &mut impl Read, len: u32, max: u32) -> Result<Vec<u8>, Refused> {
    if len > max {
        return Err(Refused::Damaged("a key or head over its limit"));
    }
    let mut field = vec![0; len as usize];
    src.read_exact(&mut field)
        .map_err(|_| Refused::Damaged("cut short"))?;
    Ok(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn record(key: &str, body: &[u8]) -> Record {
        Record {
            key: key.as_bytes().to_vec(),
            head: b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\n".to_vec(),
            body: body.to_vec().into(),
            stored_at: 1_000,
            expires_at: 61_000,
            stale_until: 61_000,
        }
    }

    fn written(dir: &Path, r: &Record) -> (PathBuf, Vec<u8>) {
        let path = dir.join(name_of(std::str::from_utf8(&r.key).unwrap()));
        let size = write_new(&path, r).unwrap().unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, size);
        (path, bytes)
    }

    #[test]
    fn a_file_written_reads_back_whole_and_by_its_head() {
        let dir = tempfile::tempdir().unwrap();
        let r = record("GET h/a", b"hello body");
        let (path, bytes) = written(dir.path(), &r);
        assert_eq!(decode(&bytes).unwrap(), r);
        let (head, size) = read_head(&path, 1 << 20).unwrap();
        assert_eq!(size, bytes.len() as u64);
        assert_eq!((head.key, head.head), (r.key.clone(), r.head.clone()));
        assert_eq!((head.stored_at, head.expires_at), (1_000, 61_000));
        assert!(head.body.is_empty());
        // A body over the limit is refused by its length alone.
        assert!(matches!(read_head(&path, 3), Err(Refused::Damaged(_))));
    }

    #[test]
    fn truncated_flipped_empty_and_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes) = written(dir.path(), &record("GET h/a", b"0123456789"));
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
            fs::write(&path, &bytes[..cut]).unwrap();
            assert!(read_head(&path, 1 << 20).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[i / 8] ^= 1 << (i % 8);
            assert!(decode(&flipped).is_err(), "bit {i}");
        }
        assert!(matches!(decode(b""), Err(Refused::NotOurs)));
        fs::write(&path, b"").unwrap();
        assert!(matches!(read_head(&path, 1 << 20), Err(Refused::NotOurs)));
        // A snapshot is another format: not ours.
        let mut snapshot = Vec::new();
        crate::cache::persist::write_records(&mut snapshot, [&record("k", b"x")]).unwrap();
        assert!(matches!(decode(&snapshot), Err(Refused::NotOurs)));
        fs::write(&path, &snapshot).unwrap();
        assert!(matches!(read_head(&path, 1 << 20), Err(Refused::NotOurs)));
        let mut other = bytes.clone();
        other[8] = 9;
        assert!(matches!(decode(&other), Err(Refused::Version(9))));
    }

    #[test]
    fn names_tell_ours_from_others() {
        let name = name_of("GET h/a");
        assert_eq!(named(&name), Named::File);
        assert_eq!(named(&format!("{name}.tmp")), Named::Temporary);
        for other in ["cache.bin", "README", &name[1..], &name.to_uppercase()] {
            assert_eq!(named(other), Named::Other, "{other}");
        }
        assert!(path_of(Path::new("d"), &name).starts_with(Path::new("d").join(&name[..2])));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_refused_or_read_without_a_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
            let mut ours = MAGIC.to_vec();
            ours.extend_from_slice(&VERSION.to_le_bytes());
            ours.extend_from_slice(&bytes);
            let _ = decode(&ours);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            fs::write(&path, &ours).unwrap();
            let _ = read_head(&path, 1 << 20);
        }
    }
}
