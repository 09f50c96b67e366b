//! The client's country, from a MaxMind DB file (`geoip_database`): the
//! format of MaxMind's GeoLite2 and GeoIP2 databases and of DB-IP's
//! free ones, which nginx's `geoip2` module and HAProxy's maxmind module
//! read. Our own reader of the spec's version 2, of what a country needs.
//!
//! - `metadata`: the map at the file's end: tree layout, type, build date.
//! - `tree`: the search tree, walked bit by bit down an address.
//! - `decode`: the data section's fields, to a country's ISO code.
//!
//! The whole file is read into memory once, at start-up and at each
//! reload (5 to 70 MB for the country and city databases), and shared
//! by reference with the request threads: a lookup reads it, never
//! locks. The file is not trusted: whatever its bytes, a lookup ends in
//! a bounded number of steps with a country or none, never a panic.

mod asked;
mod decode;
mod metadata;
mod tree;

#[cfg(test)]
#[path = "../../tests/support/mmdb.rs"]
pub(crate) mod writer;

pub use asked::{Geo, KeptCountry};
pub use metadata::Metadata;

use decode::{Section, Value};
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use tree::{Found, Tree};

/// The largest file read: a city database is some 70 MB, the largest
/// commercial ones a few hundred.
const MAX_FILE_SIZE: u64 = 1 << 30;

/// Why a file is not a database this reader can use, or a lookup found
/// no answer in it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GeoIpError {
    #[error("cannot read it: {0}")]
    Io(String),
    #[error("larger than {MAX_FILE_SIZE} bytes")]
    TooLarge,
    #[error("not a MaxMind DB file: no metadata marker in its last 128 KiB")]
    NoMetadata,
    #[error("its metadata {0}")]
    Metadata(&'static str),
    #[error("truncated: a part runs past the end of the file")]
    Truncated,
    #[error("its data section holds {0}")]
    Data(&'static str),
}

/// A country's two-letter ISO 3166-1 code, in capitals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Country([u8; 2]);

impl Country {
    /// `text` if it is two capital letters: `DE`, `US`.
    pub fn parse(text: &str) -> Option<Country> {
        match text.as_bytes() {
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Some(Country([*a, *b])),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        // Two ASCII capitals, as `parse` checked.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A database, read whole.
pub struct GeoIp {
    bytes: Box<[u8]>,
    meta: Metadata,
    tree: Tree,
    /// Where the data section begins and ends (the metadata's marker).
    data: std::ops::Range<usize>,
}

impl fmt::Debug for GeoIp {
    /// Its metadata: the bytes say nothing to whoever reads a listing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoIp").field("meta", &self.meta).finish()
    }
}

impl GeoIp {
    /// The database in the file at `path`.
    pub fn read(path: &Path) -> Result<GeoIp, GeoIpError> {
        // A regular file alone: a FIFO would hang `check`, or a reload
        // and the signal thread with it.
        match crate::cache::persist::read_regular(path, MAX_FILE_SIZE) {
            Ok(Some(bytes)) => GeoIp::parse(bytes),
            Ok(None) => Err(GeoIpError::TooLarge),
            Err(e) => Err(GeoIpError::Io(e.to_string())),
        }
    }

    /// The database `bytes` hold, its metadata and tree checked.
    pub fn parse(bytes: Vec<u8>) -> Result<GeoIp, GeoIpError> {
        let (meta, data_end) = metadata::read(&bytes)?;
        let (tree, data_start) = Tree::new(&meta, &bytes)?;
        if data_start > data_end {
            return Err(GeoIpError::Truncated);
        }
        Ok(GeoIp {
            bytes: bytes.into_boxed_slice(),
            meta,
            tree,
            data: data_start..data_end,
        })
    }

    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// What `inverso check` says of it: type, build date, nodes.
    pub fn summary(&self) -> String {
        let built = std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.meta.build_epoch);
        format!(
            "{}, built {}, IPv{} tree of {} nodes",
            self.meta.database_type.escape_debug(),
            crate::http::date::format_rfc3339(built),
            self.meta.ip_version,
            self.tree.node_count(),
        )
    }

    /// The country of `ip`: its network's `country.iso_code`, else its
    /// `registered_country.iso_code`; none for an address in no network,
    /// a record with neither, or a record that cannot be read.
    ///
    /// The fallback: an anonymous proxy, a satellite provider or an
    /// anycast network has no `country` where its users are (GeoIP2
    /// flags them in `traits` and leaves it out), only the country of
    /// the company that registered it, which is what GeoIP's legacy
    /// databases answered for most of them and what nginx users write
    /// as the `geoip2` default: a shop's rules then see a country, not
    /// an unknown one.
    pub fn country(&self, ip: IpAddr) -> Option<Country> {
        self.country_or_error(ip).ok().flatten()
    }

    fn country_or_error(&self, ip: IpAddr) -> Result<Option<Country>, GeoIpError> {
        let Found::Data(offset) = self.tree.find(&self.bytes, ip)? else {
            return Ok(None);
        };
        let data = self.bytes.get(self.data.clone()).unwrap_or_default();
        if offset >= data.len() {
            return Err(GeoIpError::Data("a record past the data section"));
        }
        for field in [&b"country"[..], b"registered_country"] {
            let mut section = Section::new(data);
            let code = section.find(offset, &[field, b"iso_code"])?;
            let country = match code {
                Some(Value::Text(code)) => std::str::from_utf8(code).ok().and_then(Country::parse),
                _ => None,
            };
            if country.is_some() {
                return Ok(country);
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
