//! The bytes of a snapshot: the header, a record and the trailer, encoded
//! and decoded, as the module's documentation lays them out.

use std::io::{self, Write};
use std::sync::Arc;

pub const MAGIC: [u8; 8] = *b"INVERSO\0";

pub const FORMAT_VERSION: u32 = 1;

pub(super) const HEADER_LEN: u64 = 12;

/// Three u64 times and three u32 lengths.
pub(super) const FIXED_PAYLOAD_LEN: u32 = 3 * 8 + 3 * 4;

pub(super) const END_MARKER: u32 = u32::MAX;

pub(super) const MAX_PAYLOAD_LEN: u32 = END_MARKER - 1;

/// The largest body a record surely holds, with room for its key and
/// head (each at most 1 MiB: `max_header_size`'s bound, and a response
/// head's): a larger entry may be left out of the snapshot (see
/// [`write_records`]).
pub const MAX_SNAPSHOT_BODY: u64 = (MAX_PAYLOAD_LEN - FIXED_PAYLOAD_LEN) as u64 - (2 << 20);

pub(super) const TRAILER_LEN: u64 = 16;

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
    pub(crate) fn payload_len(&self) -> Option<u32> {
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

/// What a write produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotStats {
    pub records: usize,
    /// Size of the file, header and trailer included.
    pub bytes: u64,
    /// Records left out because the format cannot hold them (over 4 GiB).
    pub skipped_too_large: usize,
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

/// One record framed as in a snapshot (length, checksum, payload), for a
/// file of its own (the disk tier's); `None` written when the format
/// cannot hold it.
pub(crate) fn write_framed<W: Write>(out: &mut W, record: &Record) -> io::Result<Option<u64>> {
    let Some(len) = record.payload_len() else {
        return Ok(None);
    };
    write_record(out, record, len)?;
    Ok(Some(8 + u64::from(len)))
}

/// The record [`write_framed`] wrote, which must be all of `bytes`:
/// `None` for a length that is not the bytes', a checksum that fails or
/// fields that do not add up.
pub(crate) fn read_framed(bytes: &[u8]) -> Option<Record> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let (crc, payload) = rest.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    if payload.len() != len || crc32fast::hash(payload) != u32::from_le_bytes(*crc) {
        return None;
    }
    decode(payload)
}

pub(super) fn trailer(count: u64) -> [u8; TRAILER_LEN as usize] {
    let mut t = [0u8; TRAILER_LEN as usize];
    t[..4].copy_from_slice(&END_MARKER.to_le_bytes());
    t[4..12].copy_from_slice(&count.to_le_bytes());
    let crc = crc32fast::hash(&t[..12]);
    t[12..].copy_from_slice(&crc.to_le_bytes());
    t
}

pub(super) fn decode(payload: &[u8]) -> Option<Record> {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{encode, read, record};
    use super::super::{read_records, LoadLimits};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_snapshot_round_trips() {
        let bytes = encode(&[]);
        assert_eq!(bytes.len() as u64, HEADER_LEN + TRAILER_LEN);
        let loaded = read(&bytes);
        assert!(loaded.records.is_empty());
        assert!(loaded.damage.is_none(), "{:?}", loaded.damage);
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

    fn with_head(head: &str, expires_at: u64, stale_until: u64) -> Record {
        Record {
            head: head.as_bytes().to_vec(),
            expires_at,
            stale_until,
            ..record(1)
        }
    }

    #[test]
    fn a_revalidatable_record_is_kept_ten_minutes_past_its_freshness() {
        let ten_minutes = 10 * 60 * 1000;
        for head in [
            "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nlast-modified: Tue, 01 Jan 2030 00:00:00 GMT\r\n\r\n",
        ] {
            let r = with_head(head, 5_000, 5_000);
            assert_eq!(r.keep_until(), 5_000 + ten_minutes, "{head:?}");
            // A longer stale-if-error window outlasts the revalidation one.
            let r = with_head(head, 5_000, 5_000 + ten_minutes + 1);
            assert_eq!(r.keep_until(), 5_000 + ten_minutes + 1, "{head:?}");
        }
        // Nothing to revalidate with: only the stale-if-error window counts.
        let plain = with_head("HTTP/1.1 200 OK\r\nx-etag: \"v1\"\r\n\r\n", 5_000, 7_000);
        assert_eq!(plain.keep_until(), 7_000);
    }

    /// A zero-filled body of `len` bytes that costs next to no memory: the
    /// zeroed pages are mapped lazily and never touched, so records can
    /// reach the format's 4 GiB bound in a test.
    #[cfg(target_pointer_width = "64")]
    fn untouched_body(len: u64) -> Arc<[u8]> {
        let body = Arc::<[u8]>::new_zeroed_slice(usize::try_from(len).unwrap());
        // SAFETY: all zeroes is a valid u8.
        unsafe { body.assume_init() }
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn the_largest_snapshot_body_fits_beside_a_mebibyte_key_and_head_and_no_more() {
        let mib = vec![b'k'; 1 << 20];
        let at_most = |body_len| Record {
            key: mib.clone(),
            head: mib.clone(),
            body: untouched_body(body_len),
            ..record(1)
        };
        assert_eq!(
            at_most(MAX_SNAPSHOT_BODY).payload_len(),
            Some(MAX_PAYLOAD_LEN)
        );
        assert_eq!(at_most(MAX_SNAPSHOT_BODY + 1).payload_len(), None);
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn a_record_the_format_cannot_hold_is_left_out_and_counted() {
        let huge = Record {
            key: Vec::new(),
            head: Vec::new(),
            body: untouched_body(u64::from(MAX_PAYLOAD_LEN - FIXED_PAYLOAD_LEN) + 1),
            ..record(2)
        };
        let records = [record(1), huge, record(3)];
        let mut out = Vec::new();
        let stats = write_records(&mut out, &records).unwrap();
        assert_eq!((stats.records, stats.skipped_too_large), (2, 1));
        let loaded = read(&out);
        assert!(loaded.damage.is_none(), "{:?}", loaded.damage);
        assert_eq!(loaded.records, [records[0].clone(), records[2].clone()]);
    }
}
