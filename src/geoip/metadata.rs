//! A MaxMind DB's metadata: a map after the last `\xab\xcd\xefMaxMind.com`
//! in the file's last 128 KiB, read as the data section is. It says how
//! the search tree is laid out (its node count, record size and address
//! family) and what the database is (its type, when it was built).

use super::decode::{Section, Value};
use super::GeoIpError;

/// What begins the metadata; the last one in the file counts, as the
/// data before it may hold the same bytes.
const MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";

/// The spec's bound on the metadata, marker included.
const MAX_METADATA: usize = 128 * 1024;

/// The format version this reader knows (2.x: a minor version adds keys).
const MAJOR_VERSION: u64 = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub node_count: u32,
    /// Bits in each of a node's two records: 24, 28 or 32.
    pub record_size: u16,
    /// 4 or 6: an IPv4 database has a 32-level tree.
    pub ip_version: u16,
    /// `GeoLite2-Country`, `GeoIP2-City`, `DBIP-Country-Lite`, ...
    pub database_type: String,
    /// When the database was built, in seconds since 1970.
    pub build_epoch: u64,
}

/// The metadata of the database `bytes`, and where its marker begins
/// (the end of the data section).
pub(super) fn read(bytes: &[u8]) -> Result<(Metadata, usize), GeoIpError> {
    let tail_start = bytes.len().saturating_sub(MAX_METADATA);
    let tail = bytes.get(tail_start..).unwrap_or_default();
    let marker = memchr::memmem::rfind(tail, MARKER).ok_or(GeoIpError::NoMetadata)?;
    let start = tail_start + marker;
    let section = bytes.get(start + MARKER.len()..).unwrap_or_default();
    Ok((parse(section)?, start))
}

/// The metadata map at the start of `section`.
fn parse(section: &[u8]) -> Result<Metadata, GeoIpError> {
    let mut reader = Section::new(section);
    let (Value::Map(pairs, mut at), _) = reader.value(0)? else {
        return Err(GeoIpError::Metadata("is not a map"));
    };
    let (mut node_count, mut record_size, mut ip_version, mut major) = (None, None, None, None);
    let (mut database_type, mut build_epoch) = (None, None);
    for _ in 0..pairs {
        let (key, after_key) = reader.value(at)?;
        let (value, after) = reader.value(after_key)?;
        // A map is stepped over whole, not just its head.
        at = match value {
            Value::Map(..) => reader.skip(after_key, 0)?,
            _ => after,
        };
        let number = match value {
            Value::Uint(n) => Some(n),
            _ => None,
        };
        match key {
            Value::Text(b"node_count") => node_count = number,
            Value::Text(b"record_size") => record_size = number,
            Value::Text(b"ip_version") => ip_version = number,
            Value::Text(b"binary_format_major_version") => major = number,
            Value::Text(b"build_epoch") => build_epoch = number,
            Value::Text(b"database_type") => {
                if let Value::Text(text) = value {
                    database_type = Some(String::from_utf8_lossy(text).into_owned());
                }
            }
            Value::Text(_) => {}
            _ => return Err(GeoIpError::Metadata("has a key that is not a string")),
        }
    }
    if major != Some(MAJOR_VERSION) {
        return Err(GeoIpError::Metadata("is not of format version 2"));
    }
    let node_count = node_count
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or(GeoIpError::Metadata("has no node_count"))?;
    let record_size = match record_size {
        Some(bits @ (24 | 28 | 32)) => bits as u16,
        _ => {
            return Err(GeoIpError::Metadata(
                "has a record_size other than 24, 28 or 32",
            ))
        }
    };
    let ip_version = match ip_version {
        Some(version @ (4 | 6)) => version as u16,
        _ => return Err(GeoIpError::Metadata("has an ip_version other than 4 or 6")),
    };
    Ok(Metadata {
        node_count,
        record_size,
        ip_version,
        database_type: database_type.ok_or(GeoIpError::Metadata("has no database_type"))?,
        build_epoch: build_epoch.ok_or(GeoIpError::Metadata("has no build_epoch"))?,
    })
}

impl Metadata {
    /// Bytes of one node: two records.
    pub(super) fn node_bytes(&self) -> usize {
        usize::from(self.record_size) / 4
    }
}
