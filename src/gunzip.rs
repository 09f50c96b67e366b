//! Gzip-coded answers decoded for the clients that do not take gzip
//! (`gunzip`), as nginx's `gunzip on`: a backend that keeps its files
//! compressed (a bucket of objects stored with `Content-Encoding: gzip`),
//! or a cache that keeps one compressed copy of each page (backends asked
//! with `request_header.Accept-Encoding = gzip`), still answers a client
//! that sends no `Accept-Encoding` (curl, a script, a crawler) with bytes
//! it can read.
//!
//! A body is decoded as it comes, at most [`SLICE`] bytes at a time
//! whatever it inflates to: a few kilobytes that decode to gigabytes cost
//! the client's reading of them, not the proxy's memory.

use crate::gzip;
use crate::http::body::{chunk_size_line, LAST_CHUNK};
use crate::http::conn::write_all_vectored_counting;
use crate::http::Headers;
use flate2::{Decompress, FlushDecompress, Status};
use std::io::{IoSlice, Write};

/// The most one [`Decoder::drain`] makes.
pub const SLICE: usize = 64 * 1024;

/// zlib's largest window, which gzip's writers use.
const WINDOW_BITS: u8 = 15;

/// The most deflate makes of one coded byte (a run of 258 bytes in 2 bits,
/// the format's longest match in its shortest code).
const MOST_PER_BYTE: u64 = 1032;

/// The two bytes every gzip member begins with (RFC 1952 §2.3.1).
const MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GunzipError {
    #[error("gzip-coded body is corrupt: {0}")]
    Corrupt(String),
    #[error("gzip-coded body ends inside its stream")]
    Truncated,
}

/// Whether a response (to a client that does not take gzip) is decoded:
/// its one coding gzip (`x-gzip` too), the whole of its body (a `206`
/// carries a piece of the coded bytes, which decodes to nothing), and its
/// backend not against it being transformed (`Cache-Control:
/// no-transform`, RFC 9111 §5.2.2.6). A `HEAD`'s answer or a `304` of
/// such a body is edited as its `200` would be.
pub fn decodes(status: u16, headers: &Headers) -> bool {
    if !(200..=599).contains(&status) || status == 206 {
        return false;
    }
    let mut codings = (headers.get_all("content-encoding"))
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty());
    let gzip = |c: &[u8]| c.eq_ignore_ascii_case(b"gzip") || c.eq_ignore_ascii_case(b"x-gzip");
    codings.next().is_some_and(gzip)
        && codings.next().is_none()
        && !headers.has_token("cache-control", "no-transform")
}

/// The field lines a decoded response has in place of the ones
/// [`gzip::REPLACED_FIELDS`] names (its `Content-Encoding` goes, and what
/// held of the coded bytes): `Vary` with `Accept-Encoding` (other clients
/// get the coded bytes) and its `ETag` weak (it named the coded bytes; a
/// client's `If-None-Match` is compared weakly, and still matches it).
pub fn push_decoded_fields(out: &mut Vec<u8>, headers: &Headers) {
    gzip::push_vary(out, headers);
    gzip::push_weak_etag(out, headers);
}

/// Why a body [`write_decoded`] was writing was cut short.
#[derive(Debug)]
pub enum WriteCut {
    /// Writing to the client failed: it left, or took nothing in time.
    Client(std::io::Error),
    /// The body stopped decoding.
    Corrupt(GunzipError),
}

/// Writes `head`, then `coded` decoded a [`SLICE`] at a time (each a
/// chunk when `chunked`, then the last chunk; else ended by the close).
/// Returns the bytes written, the head's among them (chunk framing not
/// counted).
pub fn write_decoded(
    out: &mut impl Write,
    head: &[u8],
    coded: &[u8],
    chunked: bool,
) -> (usize, Result<(), WriteCut>) {
    let mut decoder = Decoder::new();
    decoder.feed(coded);
    let (mut head, mut sent, mut size_line) = (head, 0, Vec::new());
    loop {
        let (slice, more) = match decoder.drain(true) {
            Ok(drained) => drained,
            Err(e) => return (sent, Err(WriteCut::Corrupt(e))),
        };
        size_line.clear();
        if chunked && !slice.is_empty() {
            chunk_size_line(slice.len(), &mut size_line);
        }
        let crlf: &[u8] = if size_line.is_empty() { b"" } else { b"\r\n" };
        let last: &[u8] = if chunked && !more { LAST_CHUNK } else { b"" };
        let slices = &mut [
            IoSlice::new(head),
            IoSlice::new(&size_line),
            IoSlice::new(slice),
            IoSlice::new(crlf),
            IoSlice::new(last),
        ];
        let (written, result) = write_all_vectored_counting(out, slices);
        let framed = written.saturating_sub(head.len() + size_line.len());
        sent += written.min(head.len()) + framed.min(slice.len());
        if let Err(e) = result {
            return (sent, Err(WriteCut::Client(e)));
        }
        head = b"";
        if !more {
            return (sent, Ok(()));
        }
    }
}

/// Where the decoding of a body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before a member, or inside one.
    Member,
    /// A member ended: another may begin (RFC 1952 §2.2: a gzip file is
    /// a series of members, as `cat a.gz b.gz` makes).
    Between,
    /// What followed the last member began none: left out, as `gzip -d`
    /// and browsers leave out such trailing bytes.
    Trailing,
}

/// zlib's inflate over the members of one body.
struct Members {
    inflate: Decompress,
    stage: Stage,
    /// A byte of the body was taken (an empty body is an empty body).
    began: bool,
}

impl Members {
    fn new() -> Members {
        Members {
            inflate: Decompress::new_gzip(WINDOW_BITS),
            stage: Stage::Member,
            began: false,
        }
    }

    /// Inflates `input`, which it moves past what it takes, into the
    /// spare capacity of `out` (never more: the caller bounds what one
    /// call makes by the room it gives); `ended` when `input` holds the
    /// body's last byte. Returns whether `out` was filled (more may come
    /// of what `input` holds). A body that ends inside a member, or is
    /// not gzip, is an error.
    fn inflate(
        &mut self,
        input: &mut &[u8],
        out: &mut Vec<u8>,
        ended: bool,
    ) -> Result<bool, GunzipError> {
        loop {
            match self.stage {
                Stage::Trailing => {
                    *input = &[];
                    return Ok(false);
                }
                Stage::Between if input.is_empty() => return Ok(false),
                Stage::Between if input.len() < MAGIC.len() && !ended => return Ok(false),
                Stage::Between if input.starts_with(&MAGIC) => {
                    self.inflate.reset(true);
                    self.stage = Stage::Member;
                }
                Stage::Between => {
                    self.stage = Stage::Trailing;
                    continue;
                }
                Stage::Member => {}
            }
            if out.len() == out.capacity() {
                return Ok(true);
            }
            let before = (self.inflate.total_in(), self.inflate.total_out());
            let status = (self.inflate)
                .decompress_vec(input, out, FlushDecompress::None)
                .map_err(|e| GunzipError::Corrupt(e.message().unwrap_or("not gzip").to_owned()))?;
            let used = (self.inflate.total_in() - before.0) as usize;
            let made = self.inflate.total_out() - before.1;
            *input = &input[used..];
            self.began |= used > 0;
            if status == Status::StreamEnd {
                self.stage = Stage::Between;
            } else if used == 0 && made == 0 && out.len() < out.capacity() {
                // All of the input taken in (zlib keeps what it cannot
                // use yet): the member needs more than has come.
                if ended && self.began {
                    return Err(GunzipError::Truncated);
                }
                return Ok(false);
            }
        }
    }
}

/// A gzip-coded body decoded as it comes: [`feed`](Decoder::feed) it the
/// coded pieces, [`drain`](Decoder::drain) what they decode to.
pub struct Decoder {
    members: Members,
    /// The coded bytes fed and not yet decoded, from `at`.
    held: Vec<u8>,
    at: usize,
    /// What the last drain made: its capacity, [`SLICE`], bounds it.
    out: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            members: Members::new(),
            held: Vec::new(),
            at: 0,
            out: Vec::new(),
        }
    }

    /// The body's next coded bytes.
    pub fn feed(&mut self, piece: &[u8]) {
        if self.members.stage == Stage::Trailing {
            return;
        }
        self.held.drain(..self.at);
        self.at = 0;
        self.held.extend_from_slice(piece);
    }

    /// The next at most [`SLICE`] decoded bytes; `ended` once the body
    /// has all been fed. Says too whether more can be drained before the
    /// next feed (the slice was filled). A body that ends inside a member,
    /// or is not gzip, is an error.
    pub fn drain(&mut self, ended: bool) -> Result<(&[u8], bool), GunzipError> {
        self.out.clear();
        self.out.reserve_exact(SLICE);
        let mut input = &self.held[self.at..];
        let full = self.members.inflate(&mut input, &mut self.out, ended)?;
        self.at = self.held.len() - input.len();
        Ok((&self.out, full))
    }

    /// A body come whole, decoded, when it decodes to at most `limit`
    /// bytes (`None` past that: it streams, decoded as it goes).
    pub fn whole(body: &[u8], limit: u64) -> Result<Option<Vec<u8>>, GunzipError> {
        // A member ends with its length (RFC 1952 §2.3.1, modulo 2^32):
        // the body's, for the one member nearly every server writes, so
        // the output is allocated once, and decoded into in one call (a
        // cache hit of a small page is decoded at every hit). One past
        // it, so that the call that makes it all also finds the end; one
        // past the limit at most, to find a body that passes it; and no
        // more than deflate can make of the body (at most 1,032 bytes a
        // byte), whatever its trailer says.
        let past_limit = limit.saturating_add(1);
        let said = body.last_chunk::<4>().map_or(0, |n| u32::from_le_bytes(*n));
        let most = (body.len() as u64).saturating_mul(MOST_PER_BYTE);
        let first = (u64::from(said) + 1).min(most).min(past_limit);
        let mut made = Vec::with_capacity(usize::try_from(first).unwrap_or(usize::MAX));
        let mut members = Members::new();
        let mut input = body;
        loop {
            let full = members.inflate(&mut input, &mut made, true)?;
            let len = made.len() as u64;
            if len > limit {
                return Ok(None);
            }
            if !full {
                return Ok(Some(made));
            }
            // Said wrong (several members): grown a slice, or what it
            // has, at a time.
            let more = (len.max(SLICE as u64)).min(past_limit - len);
            made.reserve_exact(usize::try_from(more).unwrap_or(usize::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use proptest::prelude::*;
    use std::io::Write;

    fn gzip(body: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::new(6));
        encoder.write_all(body).unwrap();
        encoder.finish().unwrap()
    }

    /// Decodes `coded` fed in pieces of `size`, draining after each.
    fn in_pieces(coded: &[u8], size: usize) -> Result<Vec<u8>, GunzipError> {
        let mut decoder = Decoder::new();
        let mut made = Vec::new();
        let pieces: Vec<&[u8]> = coded.chunks(size.max(1)).collect();
        for (i, piece) in pieces.iter().enumerate() {
            decoder.feed(piece);
            let ended = i + 1 == pieces.len();
            loop {
                let (slice, more) = decoder.drain(ended)?;
                assert!(slice.len() <= SLICE);
                made.extend_from_slice(slice);
                if !more {
                    break;
                }
            }
        }
        if pieces.is_empty() {
            made.extend_from_slice(decoder.drain(true)?.0);
        }
        Ok(made)
    }

    fn headers(fields: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (name, value) in fields {
            h.push(name, value);
        }
        h
    }

    #[test]
    fn only_whole_bodies_coded_with_gzip_alone_are_decoded() {
        for value in ["gzip", "GZIP", "x-gzip", " gzip ", "gzip,"] {
            let fields = headers(&[("Content-Encoding", value)]);
            assert!(decodes(200, &fields), "{value:?}");
            assert!(decodes(404, &fields), "{value:?}");
        }
        for value in ["br", "deflate", "gzip, br", "br, gzip", "identity", ""] {
            assert!(
                !decodes(200, &headers(&[("Content-Encoding", value)])),
                "{value:?}"
            );
        }
        let two_lines = headers(&[("Content-Encoding", "gzip"), ("Content-Encoding", "gzip")]);
        assert!(!decodes(200, &two_lines), "coded twice");
        assert!(!decodes(200, &Headers::new()));
        let coded = headers(&[("Content-Encoding", "gzip")]);
        assert!(!decodes(206, &coded), "a part of the coded bytes");
        assert!(!decodes(101, &coded));
        let kept = headers(&[
            ("Content-Encoding", "gzip"),
            ("Cache-Control", "max-age=60, No-Transform"),
        ]);
        assert!(!decodes(200, &kept));
    }

    #[test]
    fn a_decoded_answer_varies_by_accept_encoding_and_its_etag_is_weak() {
        let mut out = Vec::new();
        let fields = headers(&[("ETag", "\"v1\""), ("Vary", "Cookie")]);
        push_decoded_fields(&mut out, &fields);
        assert_eq!(out, b"Vary: Cookie, Accept-Encoding\r\nETag: W/\"v1\"\r\n");
        out.clear();
        push_decoded_fields(&mut out, &headers(&[("ETag", "W/\"v2\"")]));
        assert_eq!(out, b"Vary: Accept-Encoding\r\nETag: W/\"v2\"\r\n");
    }

    #[test]
    fn a_body_decodes_whole_or_in_any_pieces() {
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let coded = gzip(&text);
        assert_eq!(Decoder::whole(&coded, u64::MAX).unwrap().unwrap(), text);
        for size in [1, 7, 1000, 65_536, coded.len()] {
            assert_eq!(in_pieces(&coded, size).unwrap(), text, "pieces of {size}");
        }
    }

    #[test]
    fn whole_declines_a_body_that_decodes_past_its_limit() {
        let coded = gzip(&[b'a'; 10_000]);
        assert_eq!(
            Decoder::whole(&coded, 10_000).unwrap().unwrap().len(),
            10_000
        );
        assert_eq!(Decoder::whole(&coded, 9_999).unwrap(), None);
    }

    /// A few kilobytes that inflate to megabytes come out a slice at a
    /// time.
    #[test]
    fn a_bomb_comes_out_a_slice_at_a_time() {
        let coded = gzip(&vec![0u8; 8 << 20]);
        assert!(coded.len() < 20_000, "{}", coded.len());
        let mut decoder = Decoder::new();
        decoder.feed(&coded);
        let (mut total, mut drains) = (0, 0);
        loop {
            let (slice, more) = decoder.drain(true).unwrap();
            assert_eq!(slice.len(), SLICE);
            total += slice.len();
            drains += 1;
            if !more {
                break;
            }
        }
        assert_eq!((total, drains), (8 << 20, 128));
    }

    #[test]
    fn members_one_after_another_decode_as_one_body() {
        let mut coded = gzip(b"first ");
        coded.extend(gzip(b""));
        coded.extend(gzip(b"second"));
        assert_eq!(
            Decoder::whole(&coded, 100).unwrap().unwrap(),
            b"first second"
        );
        for size in 1..=coded.len() {
            assert_eq!(in_pieces(&coded, size).unwrap(), b"first second");
        }
        // The last member's length is what `whole` sizes its buffer by:
        // an empty one after a large one says nothing of the body.
        let text = vec![b'x'; 300_000];
        let mut coded = gzip(&text);
        coded.extend(gzip(b""));
        assert_eq!(Decoder::whole(&coded, 1 << 20).unwrap().unwrap(), text);
        assert_eq!(Decoder::whole(&coded, 299_999).unwrap(), None);
    }

    #[test]
    fn bytes_after_the_last_member_that_begin_none_are_left_out() {
        for trailing in [&b"\0\0\0\0"[..], b"garbage", b"\x1f"] {
            let mut coded = gzip(b"page");
            coded.extend_from_slice(trailing);
            assert_eq!(in_pieces(&coded, 3).unwrap(), b"page", "{trailing:?}");
        }
    }

    #[test]
    fn a_body_cut_short_or_not_gzip_is_an_error() {
        let coded = gzip(b"a page long enough to be cut somewhere in its middle");
        for cut in [1, 5, 10, coded.len() / 2, coded.len() - 1] {
            assert_eq!(
                Decoder::whole(&coded[..cut], 1000),
                Err(GunzipError::Truncated),
                "cut at {cut}"
            );
            assert_eq!(in_pieces(&coded[..cut], 2), Err(GunzipError::Truncated));
        }
        assert!(matches!(
            Decoder::whole(b"<html>not coded</html>", 1000),
            Err(GunzipError::Corrupt(_))
        ));
        let mut flipped = coded.clone();
        let last = flipped.len() - 5;
        flipped[last] ^= 0xff;
        assert!(
            matches!(Decoder::whole(&flipped, 1000), Err(GunzipError::Corrupt(_))),
            "its CRC"
        );
        // A second member cut short is as cut as the first.
        let mut two = coded.clone();
        two.extend_from_slice(&coded[..coded.len() - 3]);
        assert_eq!(Decoder::whole(&two, 1000), Err(GunzipError::Truncated));
    }

    #[test]
    fn an_empty_body_is_empty() {
        assert_eq!(Decoder::whole(b"", 10).unwrap().unwrap(), b"");
        assert_eq!(in_pieces(b"", 1).unwrap(), b"");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the text and the pieces, what is drained is the text.
        #[test]
        fn any_pieces_decode_to_the_text(
            text in proptest::collection::vec(prop_oneof![Just(b'a'), any::<u8>()], 0..40_000),
            size in 1usize..20_000,
        ) {
            let coded = gzip(&text);
            prop_assert_eq!(in_pieces(&coded, size).unwrap(), text);
        }

        /// Any bytes at all: an answer or an error, never a panic or a
        /// slice past its bound.
        #[test]
        fn any_bytes_end_in_a_text_or_an_error(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
            size in 1usize..64,
        ) {
            let mut coded = MAGIC.to_vec();
            coded.extend(&bytes);
            let _ = in_pieces(&coded, size);
            let _ = in_pieces(&bytes, size);
        }
    }
}
