//! The cache snapshot file: its format, an atomic write and a tolerant load.
//!
//! This module knows bytes on disk only: records are opaque keys, heads and bodies
//! with three timestamps. Recency, HTTP and locking belong to the caller.
//!
//! # Format, version 1
//!
//! All integers are little-endian; times are milliseconds since the Unix epoch.
//!
//! ```text
//! offset  size  field
//! 0       8     magic, b"INVERSO\0"
//! 8       4     format version, u32 = 1
//! 12            records, zero or more, then the trailer
//!
//! record:
//!   4     payload length `len`, u32, at least 36 and below 0xFFFF_FFFF
//!   4     CRC-32 (IEEE, as crc32fast computes it) of the payload
//!   len   payload:
//!           8   stored_at, u64
//!           8   expires_at, u64 (end of freshness)
//!           8   stale_until, u64 (end of the stale-if-error window)
//!           4   key length k, u32     k   key
//!           4   head length h, u32    h   head (opaque serialized response head)
//!           4   body length b, u32    b   body
//!         and len = 36 + k + h + b exactly.
//!
//! trailer (16 bytes), then the end of the file:
//!   4     end marker 0xFFFF_FFFF, in the place of a record length
//!   8     number of records in the file, u64
//!   4     CRC-32 of the 12 bytes before it (marker and count)
//! ```
//!
//! Why a trailer: per-record checksums catch a torn or flipped record, but a file cut
//! exactly between two records would otherwise look whole and silently lose the rest
//! of the cache. A file without a valid trailer is therefore reported as truncated.
//! The marker takes the place of a length so a reader needs no look-ahead, and uses
//! a value no record length can have; it is all ones rather than zero because
//! zero-filled blocks are a common face of a file damaged by a crash. The count,
//! under its own checksum, also catches records lost or duplicated in the middle.
//!
//! A version number is there from day one so a later format can be told apart
//! instead of sniffed. Loading never trusts a length before checking it against the
//! bytes that are really there and the caller's [`LoadLimits`].

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const MAGIC: [u8; 8] = *b"INVERSO\0";
pub const FORMAT_VERSION: u32 = 1;

const HEADER_LEN: u64 = 12;
/// Three u64 times and three u32 lengths.
const FIXED_PAYLOAD_LEN: u32 = 3 * 8 + 3 * 4;
const END_MARKER: u32 = u32::MAX;
const MAX_PAYLOAD_LEN: u32 = END_MARKER - 1;
/// The largest body a record surely holds, with room for its key and
/// head (each at most 1 MiB: `max_header_size`'s bound, and a response
/// head's): a larger entry may be left out of the snapshot (see
/// [`write_records`]).
pub const MAX_SNAPSHOT_BODY: u64 = (MAX_PAYLOAD_LEN - FIXED_PAYLOAD_LEN) as u64 - (2 << 20);
const TRAILER_LEN: u64 = 16;

/// One cached response as stored on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Vec<u8>,
    /// Opaque serialized response head.
    pub head: Vec<u8>,
    pub body: Arc<[u8]>,
    /// Unix milliseconds.
    pub stored_at: u64,
    /// Unix milliseconds: end of freshness.
    pub expires_at: u64,
    /// Unix milliseconds: end of the stale-if-error window, `>= expires_at`.
    pub stale_until: u64,
}

/// How long past its freshness a response the origin can revalidate (it
/// has an `ETag` or `Last-Modified`) is kept, even with no stale-if-error
/// window: a request for it then costs a 304 rather than the whole body
/// again (nginx's `proxy_cache_path ... inactive` is 10 minutes too).
pub const REVALIDATION_WINDOW_MS: u64 = 10 * 60 * 1000;

impl Record {
    /// Until when the record is worth keeping (Unix milliseconds): the end
    /// of its stale-if-error window, or for one that can be revalidated at
    /// least [`REVALIDATION_WINDOW_MS`] past its freshness.
    pub fn keep_until(&self) -> u64 {
        let revalidatable = self.expires_at.saturating_add(REVALIDATION_WINDOW_MS);
        if self.stale_until >= revalidatable || !has_validator(&self.head) {
            self.stale_until
        } else {
            revalidatable
        }
    }

    /// The payload length on disk, or `None` if the record cannot be represented.
    fn payload_len(&self) -> Option<u32> {
        let variable = [self.key.len(), self.head.len(), self.body.len()]
            .into_iter()
            .try_fold(0u64, |sum, n| sum.checked_add(u64::try_from(n).ok()?))?;
        let len = u64::from(FIXED_PAYLOAD_LEN).checked_add(variable)?;
        u32::try_from(len)
            .ok()
            .filter(|&len| len <= MAX_PAYLOAD_LEN)
    }
}

/// Whether a serialized head has an `ETag` or `Last-Modified` field.
fn has_validator(head: &[u8]) -> bool {
    head.split(|&b| b == b'\n').any(|line| {
        let name = line.split(|&b| b == b':').next().unwrap_or_default();
        name.eq_ignore_ascii_case(b"etag") || name.eq_ignore_ascii_case(b"last-modified")
    })
}

/// What a loaded record takes in memory beyond its payload (its record and
/// buffers' headers, the entry then built from it), counted against
/// [`LoadLimits::max_total_bytes`]: a file of many tiny records would
/// otherwise take many times its size.
const RECORD_MEMORY: u64 = 512;

/// Bounds on what loading keeps, in payload bytes (a record's key, head and body
/// plus 36 bytes). Records beyond them are skipped, never allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLimits {
    /// A larger record is skipped (typically the cache's per-object limit).
    pub max_record_bytes: u64,
    /// Records that would take the kept total past this are skipped (typically the
    /// cache capacity). Records are kept in file order.
    pub max_total_bytes: u64,
}

impl LoadLimits {
    /// No limit but the format's own; for tools that list a file.
    pub const UNLIMITED: LoadLimits = LoadLimits {
        max_record_bytes: u64::MAX,
        max_total_bytes: u64::MAX,
    };
}

/// What a load found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Valid, unexpired records within the limits, in file order (empty
    /// when they were handed to a visitor instead).
    pub records: Vec<Record>,
    /// Valid records past [`Record::keep_until`].
    pub skipped_expired: usize,
    /// Valid records left out because of the [`LoadLimits`].
    pub skipped_over_limit: usize,
    /// Corruption or truncation, with its byte offset. Every valid record
    /// before it was read, and nothing after it: a record's length is not
    /// under its checksum, so past a damaged record the next one cannot be
    /// found with certainty, and reading on could take the bytes of a
    /// cached body (which a backend chose) for records.
    pub damage: Option<Damage>,
}

/// Where a snapshot's valid records end, and why.
#[derive(Debug, thiserror::Error)]
pub enum Damage {
    #[error("empty file (0 bytes)")]
    Empty,
    #[error("truncated: the file ends at byte {end}, inside the {HEADER_LEN}-byte header")]
    InHeader { end: u64 },
    #[error(
        "truncated: the file ends at byte {at} after {found} records, without the end trailer"
    )]
    NoTrailer { at: u64, found: u64 },
    #[error("truncated: the file ends at byte {end}, inside {part} starting at byte {at}")]
    Truncated { end: u64, part: Part, at: u64 },
    #[error(
        "record {record} at byte {at}: length {len} is below the {FIXED_PAYLOAD_LEN}-byte minimum"
    )]
    ShortRecord { record: u64, at: u64, len: u32 },
    #[error("record {record} at byte {at} fails its checksum")]
    Checksum { record: u64, at: u64 },
    #[error("record {record} at byte {at}: field lengths do not add up to {len}")]
    FieldLengths { record: u64, at: u64, len: u32 },
    #[error("the end trailer at byte {at} fails its checksum")]
    TrailerChecksum { at: u64 },
    #[error("the end trailer at byte {at} counts {count} records, the file holds {found}")]
    TrailerCount { at: u64, count: u64, found: u64 },
    #[error("unexpected bytes after the end trailer, at byte {end}")]
    AfterTrailer { end: u64 },
    #[error("read error near byte {near}: {error}")]
    Read { near: u64, error: io::Error },
}

/// The part of a snapshot a truncation fell in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    RecordHeader,
    Record(u64),
    Trailer,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::RecordHeader => f.write_str("a record header"),
            Part::Record(n) => write!(f, "record {n}"),
            Part::Trailer => f.write_str("the end trailer"),
        }
    }
}

/// What a write produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotStats {
    pub records: usize,
    /// Size of the file, header and trailer included.
    pub bytes: u64,
    /// Records left out because the format cannot hold them (over 4 GiB).
    pub skipped_too_large: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("not an inverso cache snapshot (unknown magic bytes)")]
    NotASnapshot,
    #[error("unsupported snapshot format version {0} (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion(u32),
    #[error("cannot {step} {}", path.display())]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// From [`read_records`], which has no path; [`load_snapshot`] turns it into `Io`.
    #[error("cannot read the snapshot header")]
    Header(#[source] io::Error),
}

fn io_error<'p>(step: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> PersistError + 'p {
    move |source| PersistError::Io {
        step,
        path: path.to_owned(),
        source,
    }
}

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

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Holds the directory a snapshot goes in locked (`flock`) until dropped.
/// Two processes may share `path_to_persistence` or `state_file` (the old
/// and the new one of an upgrade under `reuse_port`): each would otherwise
/// remove the other's temporary file as it starts its own, and could
/// rename one still being written over the file. Two threads of one
/// process wait for each other too (each lock is on its own open of the
/// directory). Best effort: where the lock cannot be had (a file system
/// without `flock`), files are written as before.
#[cfg(unix)]
fn lock_directory(path: &Path) -> Option<File> {
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
fn lock_directory(_path: &Path) -> Option<File> {
    None
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

/// Writes the whole format (header, records, trailer) to `out`. Records too large
/// for the format are left out and counted.
pub fn write_records<'a, W: Write>(
    out: &mut W,
    records: impl IntoIterator<Item = &'a Record>,
) -> io::Result<SnapshotStats> {
    out.write_all(&MAGIC)?;
    out.write_all(&FORMAT_VERSION.to_le_bytes())?;
    let mut stats = SnapshotStats {
        bytes: HEADER_LEN,
        ..SnapshotStats::default()
    };
    for record in records {
        let Some(len) = record.payload_len() else {
            stats.skipped_too_large += 1;
            continue;
        };
        write_record(out, record, len)?;
        stats.records += 1;
        stats.bytes += 8 + u64::from(len);
    }
    out.write_all(&trailer(stats.records as u64))?;
    stats.bytes += TRAILER_LEN;
    Ok(stats)
}

/// Streams the payload in its parts, so bodies are not copied to compute the CRC.
fn write_record<W: Write>(out: &mut W, r: &Record, len: u32) -> io::Result<()> {
    let mut times = [0u8; 24];
    times[..8].copy_from_slice(&r.stored_at.to_le_bytes());
    times[8..16].copy_from_slice(&r.expires_at.to_le_bytes());
    times[16..].copy_from_slice(&r.stale_until.to_le_bytes());
    // payload_len has checked that every length fits in a u32.
    let len_of = |bytes: &[u8]| (bytes.len() as u32).to_le_bytes();
    let (key_len, head_len, body_len) = (len_of(&r.key), len_of(&r.head), len_of(&r.body));
    let parts: [&[u8]; 7] = [
        &times, &key_len, &r.key, &head_len, &r.head, &body_len, &r.body,
    ];
    let mut crc = crc32fast::Hasher::new();
    for part in parts {
        crc.update(part);
    }
    out.write_all(&len.to_le_bytes())?;
    out.write_all(&crc.finalize().to_le_bytes())?;
    for part in parts {
        out.write_all(part)?;
    }
    Ok(())
}

fn trailer(count: u64) -> [u8; TRAILER_LEN as usize] {
    let mut t = [0u8; TRAILER_LEN as usize];
    t[..4].copy_from_slice(&END_MARKER.to_le_bytes());
    t[4..12].copy_from_slice(&count.to_le_bytes());
    let crc = crc32fast::hash(&t[..12]);
    t[12..].copy_from_slice(&crc.to_le_bytes());
    t
}

/// Loads the snapshot at `path`. A missing file is an empty cache, not an error.
/// Records past [`Record::keep_until`] at `now_unix_ms` are skipped (none at
/// 0). Damage is reported in [`Loaded::damage`] with every valid record before
/// it kept; only an unreadable file, a foreign file or an unknown version are
/// errors.
pub fn load_snapshot(
    path: &Path,
    now_unix_ms: u64,
    limits: &LoadLimits,
) -> Result<Loaded, PersistError> {
    keeping_records(|visit| scan_snapshot(path, now_unix_ms, limits, visit))
}

/// Runs a scan that keeps the records it is handed, in [`Loaded::records`].
fn keeping_records(
    scan: impl FnOnce(&mut dyn FnMut(Record)) -> Result<Loaded, PersistError>,
) -> Result<Loaded, PersistError> {
    let mut records = Vec::new();
    let mut loaded = scan(&mut |r| records.push(r))?;
    loaded.records = records;
    Ok(loaded)
}

/// As [`load_snapshot`], but hands each record to `visit` as it is read
/// rather than keeping them ([`Loaded::records`] stays empty): one record
/// in memory at a time, however large the file.
pub fn scan_snapshot(
    path: &Path,
    now_unix_ms: u64,
    limits: &LoadLimits,
    visit: &mut dyn FnMut(Record),
) -> Result<Loaded, PersistError> {
    let file = match open_regular(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => return Err(io_error("open", path)(e)),
    };
    scan_records(BufReader::new(file), now_unix_ms, limits, visit).map_err(|e| match e {
        PersistError::Header(source) => io_error("read the header of", path)(source),
        other => other,
    })
}

/// Opens `path` for reading if it is a regular file. Anything else is an
/// error, not a wait: opening a FIFO would block until someone writes to
/// it (start-up would hang), and a device could be read forever.
pub(crate) fn open_regular(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// Parses a snapshot from any reader; see [`load_snapshot`]. Arbitrary input never
/// panics and never makes it allocate more than the input holds or the limits allow.
pub fn read_records(
    reader: impl Read,
    now_unix_ms: u64,
    limits: &LoadLimits,
) -> Result<Loaded, PersistError> {
    keeping_records(|visit| scan_records(reader, now_unix_ms, limits, visit))
}

/// [`read_records`], handing each record to `visit` (see [`scan_snapshot`]).
pub fn scan_records(
    reader: impl Read,
    now_unix_ms: u64,
    limits: &LoadLimits,
    visit: &mut dyn FnMut(Record),
) -> Result<Loaded, PersistError> {
    let mut src = Source { reader, offset: 0 };
    let mut header = [0u8; HEADER_LEN as usize];
    let n = read_full(&mut src.reader, &mut header).map_err(PersistError::Header)?;
    let magic_seen = n.min(MAGIC.len());
    if header[..magic_seen] != MAGIC[..magic_seen] {
        return Err(PersistError::NotASnapshot);
    }
    if n < header.len() {
        // A prefix of a valid header: a snapshot cut short, not a foreign file.
        let damage = match n {
            0 => Damage::Empty,
            n => Damage::InHeader { end: n as u64 },
        };
        return Ok(Loaded {
            damage: Some(damage),
            ..Loaded::default()
        });
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != FORMAT_VERSION {
        return Err(PersistError::UnsupportedVersion(version));
    }
    src.offset = HEADER_LEN;
    let mut loaded = Loaded::default();
    if let Err(damage) = read_body(&mut src, now_unix_ms, limits, &mut loaded, visit) {
        loaded.damage = Some(damage);
    }
    Ok(loaded)
}

/// Reads records up to and including the trailer. `Err` says where the
/// damage is.
fn read_body<R: Read>(
    src: &mut Source<R>,
    now_unix_ms: u64,
    limits: &LoadLimits,
    loaded: &mut Loaded,
    visit: &mut dyn FnMut(Record),
) -> Result<(), Damage> {
    let mut found: u64 = 0;
    let mut kept_bytes: u64 = 0;
    let mut payload = Vec::new();
    loop {
        let at = src.offset;
        let mut len = [0u8; 4];
        match src.fill(&mut len)? {
            0 => return Err(Damage::NoTrailer { at, found }),
            4 => {}
            _ => return Err(src.truncated(Part::RecordHeader, at)),
        }
        let len = u32::from_le_bytes(len);
        if len == END_MARKER {
            return check_trailer(src, at, found);
        }
        let record = found + 1;
        let what = Part::Record(record);
        let mut crc = [0u8; 4];
        src.exact(&mut crc, at, what)?;
        let crc = u32::from_le_bytes(crc);
        if len < FIXED_PAYLOAD_LEN {
            return Err(Damage::ShortRecord { record, at, len });
        }
        let len64 = u64::from(len);
        let over_limit = len64 > limits.max_record_bytes
            || kept_bytes.saturating_add(len64 + RECORD_MEMORY) > limits.max_total_bytes;
        let intact = if over_limit {
            src.skip_verified(len64, crc, at, what)?
        } else {
            src.payload(len64, crc, at, what, &mut payload)?
        };
        if !intact {
            return Err(Damage::Checksum { record, at });
        }
        found += 1;
        if over_limit {
            loaded.skipped_over_limit += 1;
            continue;
        }
        let decoded = decode(&payload).ok_or(Damage::FieldLengths { record, at, len })?;
        // `now = 0` keeps every record (`cache inspect`), one that says
        // it ended at the epoch too.
        if now_unix_ms != 0 && decoded.keep_until() <= now_unix_ms {
            loaded.skipped_expired += 1;
            continue;
        }
        kept_bytes += len64 + RECORD_MEMORY;
        visit(decoded);
    }
}

fn check_trailer<R: Read>(src: &mut Source<R>, at: u64, found: u64) -> Result<(), Damage> {
    let mut rest = [0u8; 12];
    src.exact(&mut rest, at, Part::Trailer)?;
    let mut count = [0u8; 8];
    count.copy_from_slice(&rest[..8]);
    let count = u64::from_le_bytes(count);
    if trailer(count)[4..] != rest {
        return Err(Damage::TrailerChecksum { at });
    }
    if count != found {
        return Err(Damage::TrailerCount { at, count, found });
    }
    let end = src.offset;
    if src.fill(&mut [0u8; 1])? != 0 {
        return Err(Damage::AfterTrailer { end });
    }
    Ok(())
}

fn decode(payload: &[u8]) -> Option<Record> {
    let mut cur = payload;
    let stored_at = take_u64(&mut cur)?;
    let expires_at = take_u64(&mut cur)?;
    let stale_until = take_u64(&mut cur)?;
    let key = take_field(&mut cur)?.to_vec();
    let head = take_field(&mut cur)?.to_vec();
    let body = Arc::from(take_field(&mut cur)?);
    cur.is_empty().then_some(Record {
        key,
        head,
        body,
        stored_at,
        expires_at,
        stale_until,
    })
}

fn take_u64(cur: &mut &[u8]) -> Option<u64> {
    let (bytes, rest) = cur.split_first_chunk::<8>()?;
    *cur = rest;
    Some(u64::from_le_bytes(*bytes))
}

fn take_field<'a>(cur: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = cur.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    if rest.len() < len {
        return None;
    }
    let (field, rest) = rest.split_at(len);
    *cur = rest;
    Some(field)
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A reader that knows its byte offset, so every damage report can say where.
struct Source<R> {
    reader: R,
    offset: u64,
}

impl<R: Read> Source<R> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, Damage> {
        let n = read_full(&mut self.reader, buf).map_err(|e| self.read_error(e))?;
        self.offset += n as u64;
        Ok(n)
    }

    fn read_error(&self, error: io::Error) -> Damage {
        Damage::Read {
            near: self.offset,
            error,
        }
    }

    fn truncated(&self, part: Part, at: u64) -> Damage {
        Damage::Truncated {
            end: self.offset,
            part,
            at,
        }
    }

    fn exact(&mut self, buf: &mut [u8], at: u64, what: Part) -> Result<(), Damage> {
        if self.fill(buf)? < buf.len() {
            return Err(self.truncated(what, at));
        }
        Ok(())
    }

    /// Reads a payload of `len` bytes into `buf`; whether its CRC matches.
    /// The buffer grows with the bytes actually read, so a corrupt length in
    /// a short file costs no more memory than the file holds.
    fn payload(
        &mut self,
        len: u64,
        crc: u32,
        at: u64,
        what: Part,
        buf: &mut Vec<u8>,
    ) -> Result<bool, Damage> {
        buf.clear();
        let result = (&mut self.reader).take(len).read_to_end(buf);
        self.offset += buf.len() as u64;
        result.map_err(|e| self.read_error(e))?;
        if (buf.len() as u64) < len {
            return Err(self.truncated(what, at));
        }
        Ok(crc32fast::hash(buf) == crc)
    }

    /// Reads past a payload of `len` bytes through a fixed buffer, so a
    /// record the limits exclude is never held in memory; whether its CRC
    /// matches.
    fn skip_verified(&mut self, len: u64, crc: u32, at: u64, what: Part) -> Result<bool, Damage> {
        let mut sink = CrcSink(crc32fast::Hasher::new());
        let result = io::copy(&mut (&mut self.reader).take(len), &mut sink);
        let n = result.map_err(|e| self.read_error(e))?;
        self.offset += n;
        if n < len {
            return Err(self.truncated(what, at));
        }
        Ok(sink.0.finalize() == crc)
    }
}

struct CrcSink(crc32fast::Hasher);

impl Write for CrcSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(i: usize) -> Record {
        Record {
            key: format!("GET example.test /item/{i}").into_bytes(),
            head: format!("HTTP/1.1 200 OK\r\nx-n: {i}\r\n\r\n").into_bytes(),
            body: vec![(i % 251) as u8; i % 300].into(),
            stored_at: 1_000 + i as u64,
            expires_at: 2_000 + i as u64,
            stale_until: 3_000 + i as u64,
        }
    }

    fn encode(records: &[Record]) -> Vec<u8> {
        let mut out = Vec::new();
        let stats = write_records(&mut out, records).expect("writing to a Vec");
        assert_eq!(stats.bytes, out.len() as u64);
        out
    }

    fn read(bytes: &[u8]) -> Loaded {
        read_records(bytes, 0, &LoadLimits::UNLIMITED).expect("a valid header")
    }

    /// Byte offset where each record ends.
    fn record_ends(records: &[Record]) -> Vec<usize> {
        let mut end = HEADER_LEN as usize;
        records
            .iter()
            .map(|r| {
                end += 8 + r.payload_len().expect("small record") as usize;
                end
            })
            .collect()
    }

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

    #[test]
    fn empty_snapshot_round_trips() {
        let bytes = encode(&[]);
        assert_eq!(bytes.len() as u64, HEADER_LEN + TRAILER_LEN);
        let loaded = read(&bytes);
        assert!(loaded.records.is_empty());
        assert!(loaded.damage.is_none(), "{:?}", loaded.damage);
    }

    #[test]
    fn missing_file_is_an_empty_cache() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = load_snapshot(&dir.path().join("none.bin"), 0, &LoadLimits::UNLIMITED);
        let loaded = loaded.unwrap();
        assert!(loaded.records.is_empty());
        assert!(loaded.damage.is_none(), "{:?}", loaded.damage);
    }

    #[test]
    fn zero_byte_file_is_reported_as_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        fs::write(&path, b"").unwrap();
        let loaded = load_snapshot(&path, 0, &LoadLimits::UNLIMITED).unwrap();
        assert!(loaded.records.is_empty());
        assert!(matches!(loaded.damage, Some(Damage::Empty)));
    }

    #[test]
    fn truncation_at_every_offset_keeps_the_records_before_the_cut() {
        let records: Vec<_> = (1..=3).map(record).collect();
        let bytes = encode(&records);
        let ends = record_ends(&records);
        for cut in 0..bytes.len() {
            let loaded = read(&bytes[..cut]);
            let whole = ends.iter().filter(|&&end| end <= cut).count();
            assert_eq!(loaded.records, records[..whole], "cut at {cut}");
            assert!(loaded.damage.is_some(), "cut at {cut} must be reported");
        }
        assert!(read(&bytes).damage.is_none());
    }

    #[test]
    fn cut_at_a_record_boundary_names_the_offset() {
        let records: Vec<_> = (1..=3).map(record).collect();
        let bytes = encode(&records);
        let boundary = record_ends(&records)[1];
        let damage = read(&bytes[..boundary]).damage.unwrap().to_string();
        assert!(damage.contains(&format!("byte {boundary}")), "{damage}");
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
    fn any_flipped_bit_in_record_two_keeps_record_one_only() {
        let records: Vec<_> = (1..=3).map(record).collect();
        let bytes = encode(&records);
        let ends = record_ends(&records);
        for byte in ends[0]..ends[1] {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[byte] ^= 1 << bit;
                let loaded = read(&damaged);
                assert_eq!(loaded.records, records[..1], "byte {byte} bit {bit}");
                assert!(loaded.damage.is_some(), "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn a_record_faked_inside_a_body_is_never_read_past_a_damaged_length() {
        // A backend chose this body: a whole record, checksum and all.
        let encoded = encode(&[record(9)]);
        let fake = encoded[HEADER_LEN as usize..encoded.len() - TRAILER_LEN as usize].to_vec();
        let mut carrier = record(1);
        carrier.body = fake.clone().into();
        let records = [carrier, record(2)];
        let mut damaged = encode(&records);
        let ends = record_ends(&records);
        // The carrier's length, damaged to end where the fake one starts.
        let header = HEADER_LEN as usize;
        let len = (ends[0] - fake.len() - header - 8) as u32;
        damaged[header..header + 4].copy_from_slice(&len.to_le_bytes());
        let loaded = read(&damaged);
        assert!(loaded.records.is_empty(), "{:?}", loaded.records);
        assert!(loaded.damage.is_some());
    }

    #[test]
    fn a_lost_record_is_caught_by_the_trailer_count() {
        let records: Vec<_> = (1..=3).map(record).collect();
        let bytes = encode(&records);
        let ends = record_ends(&records);
        let mut spliced = bytes[..ends[0]].to_vec();
        spliced.extend_from_slice(&bytes[ends[1]..]);
        let loaded = read(&spliced);
        assert_eq!(loaded.records, [records[0].clone(), records[2].clone()]);
        assert!(matches!(
            loaded.damage,
            Some(Damage::TrailerCount { count: 3, .. })
        ));
    }

    #[test]
    fn bytes_after_the_trailer_are_reported_but_records_kept() {
        let records: Vec<_> = (1..=3).map(record).collect();
        let mut bytes = encode(&records);
        bytes.push(0);
        let loaded = read(&bytes);
        assert_eq!(loaded.records, records);
        assert!(matches!(loaded.damage, Some(Damage::AfterTrailer { .. })));
    }

    #[test]
    fn wrong_magic_is_not_a_snapshot() {
        let mut bytes = encode(&[record(1)]);
        bytes[0] = b'X';
        let err = read_records(&bytes[..], 0, &LoadLimits::UNLIMITED).unwrap_err();
        assert!(matches!(err, PersistError::NotASnapshot), "{err}");
        let err = read_records(&b"GET / HTTP/1.1\r\n"[..], 0, &LoadLimits::UNLIMITED);
        assert!(matches!(err, Err(PersistError::NotASnapshot)));
    }

    #[test]
    fn unknown_version_is_an_error() {
        let mut bytes = encode(&[record(1)]);
        bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
        let err = read_records(&bytes[..], 0, &LoadLimits::UNLIMITED).unwrap_err();
        assert!(matches!(err, PersistError::UnsupportedVersion(2)), "{err}");
        assert!(err.to_string().contains("version 2"));
    }

    #[test]
    fn records_past_their_stale_window_are_skipped() {
        let mut records: Vec<_> = (0..4).map(record).collect();
        for (r, stale_until) in records.iter_mut().zip([100, 200, 300, 400]) {
            r.expires_at = 50;
            r.stale_until = stale_until;
        }
        let loaded = read_records(&encode(&records)[..], 200, &LoadLimits::UNLIMITED).unwrap();
        assert_eq!(
            loaded.records,
            records[2..],
            "expired but still within stale-if-error"
        );
        assert_eq!(loaded.skipped_expired, 2);
        assert!(loaded.damage.is_none(), "{:?}", loaded.damage);
    }

    #[test]
    fn records_over_the_limits_are_skipped_and_later_ones_kept() {
        let records = [record(10), record(290), record(20), record(30)];
        let len = |i: usize| u64::from(records[i].payload_len().unwrap());
        let limits = LoadLimits {
            max_record_bytes: len(0).max(len(2)).max(len(3)),
            // Each counted with what it takes in memory beyond its payload.
            max_total_bytes: len(0) + len(2) + 2 * RECORD_MEMORY,
        };
        let loaded = read_records(&encode(&records)[..], 0, &limits).unwrap();
        assert_eq!(loaded.records, [records[0].clone(), records[2].clone()]);
        assert_eq!(
            loaded.skipped_over_limit, 2,
            "one too big, one over the total"
        );
        assert!(loaded.damage.is_none(), "{:?}", loaded.damage);
    }

    #[test]
    fn a_corrupt_skipped_record_is_still_damage() {
        let records = [record(290), record(1)];
        let mut bytes = encode(&records);
        let last_body_byte = record_ends(&records)[0] - 1;
        bytes[last_body_byte] ^= 1;
        let limits = LoadLimits {
            max_record_bytes: 100,
            max_total_bytes: u64::MAX,
        };
        let loaded = read_records(&bytes[..], 0, &limits).unwrap();
        assert!(loaded.records.is_empty());
        assert!(matches!(
            loaded.damage,
            Some(Damage::Checksum { record: 1, .. })
        ));
    }

    /// A header and one record frame claiming `len` payload bytes, followed by a few.
    fn claiming(len: u32) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&[7; 100]);
        bytes
    }

    #[test]
    fn a_four_gib_length_does_not_allocate() {
        let bytes = claiming(MAX_PAYLOAD_LEN);
        for limits in [
            LoadLimits::UNLIMITED,
            LoadLimits {
                max_record_bytes: 1 << 20,
                max_total_bytes: 1 << 20,
            },
        ] {
            let loaded = read_records(&bytes[..], 0, &limits).unwrap();
            assert!(loaded.records.is_empty());
            assert!(matches!(loaded.damage, Some(Damage::Truncated { .. })));
        }
        // The buffer grows with the bytes present, not with the claim.
        let mut src = Source {
            reader: &bytes[..],
            offset: 0,
        };
        let mut buf = Vec::new();
        let result = src.payload(u64::from(MAX_PAYLOAD_LEN), 0, 0, Part::Record(1), &mut buf);
        assert!(matches!(result, Err(Damage::Truncated { .. })));
        assert_eq!(buf.len(), bytes.len());
        assert!(buf.capacity() < 64 * 1024, "capacity {}", buf.capacity());
    }

    #[test]
    fn a_length_below_the_fixed_fields_is_damage() {
        let loaded = read(&claiming(FIXED_PAYLOAD_LEN - 1));
        assert!(matches!(loaded.damage, Some(Damage::ShortRecord { .. })));
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
    fn a_snapshot_path_that_is_not_a_regular_file_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("cache.bin");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Opening a FIFO for reading would block until a writer came.
        for path in [fifo.as_path(), Path::new("/dev/zero"), dir.path()] {
            let err = load_snapshot(path, 0, &LoadLimits::UNLIMITED).unwrap_err();
            assert!(matches!(err, PersistError::Io { .. }), "{path:?}: {err}");
        }
        let err = load_snapshot(&fifo, 0, &LoadLimits::UNLIMITED).unwrap_err();
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("not a regular file"));
        // Nor is one written over: the rename would replace the FIFO (or
        // a device node, as root) with a file.
        let err = write_snapshot(&fifo, &[record(1)]).unwrap_err();
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("not a regular file"), "{err}");
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(
            &fs::symlink_metadata(&fifo).unwrap().file_type()
        ));
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

    fn arb_record() -> impl Strategy<Value = Record> {
        let bytes = || prop::collection::vec(any::<u8>(), 0..64);
        (bytes(), bytes(), bytes(), any::<[u64; 3]>()).prop_map(|(key, head, body, t)| Record {
            key,
            head,
            body: body.into(),
            stored_at: t[0],
            expires_at: t[1],
            stale_until: t[2],
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_after_a_valid_header_never_panic(
            tail in prop::collection::vec(any::<u8>(), 0..512),
            max in 0u64..300,
        ) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            bytes.extend_from_slice(&tail);
            let limits = LoadLimits { max_record_bytes: max, max_total_bytes: max * 2 };
            prop_assert!(read_records(&bytes[..], 0, &limits).is_ok());
            prop_assert!(read_records(&bytes[..], 0, &LoadLimits::UNLIMITED).is_ok());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = read_records(&bytes[..], 0, &LoadLimits::UNLIMITED);
        }

        #[test]
        fn arbitrary_records_round_trip(records in prop::collection::vec(arb_record(), 0..20)) {
            let loaded = read(&encode(&records));
            let live: Vec<_> = records.iter().filter(|r| r.stale_until > 0).cloned().collect();
            prop_assert!(loaded.damage.is_none(), "{:?}", loaded.damage);
            prop_assert_eq!(loaded.records, live);
        }
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
}
