//! A snapshot read back: every valid record before any damage kept, the
//! damage said with its byte offset, and nothing allocated past what the
//! file holds or the caller's limits allow.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use super::format::{
    decode, trailer, Record, END_MARKER, FIXED_PAYLOAD_LEN, FORMAT_VERSION, HEADER_LEN, MAGIC,
};
use super::{io_error, PersistError};

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

/// The bytes of the regular file at `path` (see [`open_regular`]), or
/// `None` when it holds more than `limit`: read whole, its size known
/// before, and bounded even if it grows as it is read.
pub(crate) fn read_regular(path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let file = open_regular(path)?;
    let size = file.metadata()?.len();
    if size > limit {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
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
    use super::super::format::{MAX_PAYLOAD_LEN, TRAILER_LEN};
    use super::super::test_support::{encode, read, record};
    use super::super::write_snapshot;
    use super::*;
    use std::fs;

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

    #[test]
    fn a_cut_is_reported_as_a_truncation_of_the_part_it_falls_in() {
        let records = [record(1), record(200), record(2)];
        let bytes = encode(&records);
        let ends = record_ends(&records);
        let trailer_at = *ends.last().unwrap();
        let len = |i: usize| u64::from(records[i].payload_len().unwrap());
        // The middle record skipped (read past, never kept) or kept: a cut
        // is found where it is either way.
        let skipping = LoadLimits {
            max_record_bytes: len(0).max(len(2)),
            max_total_bytes: u64::MAX,
        };
        for limits in [LoadLimits::UNLIMITED, skipping] {
            for cut in HEADER_LEN as usize..bytes.len() {
                let whole = ends.iter().filter(|&&end| end <= cut).count();
                let at = if whole == 0 {
                    HEADER_LEN as usize
                } else {
                    ends[whole - 1]
                };
                let expected = if cut == at {
                    Damage::NoTrailer {
                        at: at as u64,
                        found: whole as u64,
                    }
                } else {
                    let part = if cut < at + 4 {
                        Part::RecordHeader
                    } else if at == trailer_at {
                        Part::Trailer
                    } else {
                        Part::Record(whole as u64 + 1)
                    };
                    Damage::Truncated {
                        end: cut as u64,
                        part,
                        at: at as u64,
                    }
                };
                let loaded = read_records(&bytes[..cut], 0, &limits).unwrap();
                assert_eq!(
                    format!("{:?}", loaded.damage),
                    format!("{:?}", Some(expected)),
                    "cut at {cut}, {limits:?}"
                );
            }
        }
    }

    #[test]
    fn a_truncation_names_the_part_it_falls_in() {
        let records = [record(1), record(2)];
        let bytes = encode(&records);
        let ends = record_ends(&records);
        let trailer_at = ends[1];
        for (cut, part) in [
            (ends[0] + 2, "inside a record header"),
            (ends[0] + 6, "inside record 2"),
            (trailer_at + 6, "inside the end trailer"),
        ] {
            let damage = read(&bytes[..cut]).damage.unwrap().to_string();
            assert!(damage.contains(part), "{damage}");
        }
    }

    #[test]
    fn a_record_of_the_fixed_fields_alone_is_valid() {
        let bare = Record {
            key: Vec::new(),
            head: Vec::new(),
            body: Vec::new().into(),
            ..record(1)
        };
        assert_eq!(bare.payload_len(), Some(FIXED_PAYLOAD_LEN));
        let records = [bare, record(2)];
        let loaded = read(&encode(&records));
        assert!(loaded.damage.is_none(), "{:?}", loaded.damage);
        assert_eq!(loaded.records, records);
    }

    #[test]
    fn a_record_exactly_at_the_size_limit_is_kept() {
        let records = [record(1), record(2)];
        let limits = LoadLimits {
            max_record_bytes: u64::from(records[1].payload_len().unwrap()),
            max_total_bytes: u64::MAX,
        };
        let loaded = read_records(&encode(&records)[..], 0, &limits).unwrap();
        assert_eq!(loaded.records, records);
        assert_eq!(loaded.skipped_over_limit, 0);
    }

    /// Hands out `bytes`, failing once with `error` when `fail_at` bytes are out.
    struct FailingOnce<'a> {
        bytes: &'a [u8],
        out: usize,
        fail_at: usize,
        error: Option<io::ErrorKind>,
    }

    impl Read for FailingOnce<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.out == self.fail_at {
                if let Some(kind) = self.error.take() {
                    return Err(kind.into());
                }
            }
            let until = if self.out < self.fail_at {
                self.fail_at
            } else {
                self.bytes.len()
            };
            let n = buf.len().min(until - self.out);
            buf[..n].copy_from_slice(&self.bytes[self.out..self.out + n]);
            self.out += n;
            Ok(n)
        }
    }

    #[test]
    fn a_read_error_is_damage_and_an_interrupted_read_is_retried() {
        let records: Vec<_> = (1..=3).map(record).collect();
        let bytes = encode(&records);
        let fail_at = record_ends(&records)[0];
        let reading = |error| FailingOnce {
            bytes: &bytes,
            out: 0,
            fail_at,
            error: Some(error),
        };
        let loaded = read_records(
            reading(io::ErrorKind::Interrupted),
            0,
            &LoadLimits::UNLIMITED,
        )
        .unwrap();
        assert!(loaded.damage.is_none(), "{:?}", loaded.damage);
        assert_eq!(loaded.records, records);

        let loaded =
            read_records(reading(io::ErrorKind::Other), 0, &LoadLimits::UNLIMITED).unwrap();
        assert_eq!(loaded.records, records[..1]);
        assert!(
            matches!(loaded.damage, Some(Damage::Read { near, .. }) if near == fail_at as u64),
            "{:?}",
            loaded.damage
        );
    }
}
