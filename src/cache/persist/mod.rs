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
//!
//! # Layout
//! - `format`: the bytes of a snapshot, encoded and decoded: the header,
//!   a record and the trailer ([`Record`], [`write_records`]).
//! - `write`: a file written whole or not at all, through symlinks and
//!   only ever over a regular file ([`write_atomically`], [`set_aside`],
//!   [`ensure_directory`]).
//! - `lock`: the directory lock that makes two writers take turns.
//! - `load`: a snapshot read back, every valid record before any damage
//!   kept, within the caller's limits ([`load_snapshot`], [`Damage`]).
//! - here: [`PersistError`], and the step and path an I/O error names.

mod format;
mod load;
mod lock;
mod write;

pub(crate) use format::{read_framed, write_framed};
pub use format::{
    write_records, Record, SnapshotStats, FORMAT_VERSION, MAGIC, MAX_SNAPSHOT_BODY,
    REVALIDATION_WINDOW_MS,
};
pub use load::{
    load_snapshot, read_records, scan_records, scan_snapshot, Damage, LoadLimits, Loaded, Part,
};
pub(crate) use load::{open_regular, read_regular};
pub use write::{ensure_directory, set_aside, write_atomically, write_snapshot};

use std::io;
use std::path::{Path, PathBuf};

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

#[cfg(test)]
mod test_support {
    use super::*;

    pub(super) fn record(i: usize) -> Record {
        Record {
            key: format!("GET example.test /item/{i}").into_bytes(),
            head: format!("HTTP/1.1 200 OK\r\nx-n: {i}\r\n\r\n").into_bytes(),
            body: vec![(i % 251) as u8; i % 300].into(),
            stored_at: 1_000 + i as u64,
            expires_at: 2_000 + i as u64,
            stale_until: 3_000 + i as u64,
        }
    }

    pub(super) fn encode(records: &[Record]) -> Vec<u8> {
        let mut out = Vec::new();
        let stats = write_records(&mut out, records).expect("writing to a Vec");
        assert_eq!(stats.bytes, out.len() as u64);
        out
    }

    pub(super) fn read(bytes: &[u8]) -> Loaded {
        read_records(bytes, 0, &LoadLimits::UNLIMITED).expect("a valid header")
    }
}
