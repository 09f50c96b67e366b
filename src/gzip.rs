//! Responses compressed with gzip or Brotli for the clients that take it
//! (`gzip`, `brotli`), as nginx's `gzip on` (and its ngx_brotli module's
//! `brotli on`), Caddy's `encode` and HAProxy's `compression
//! algo gzip`: backends that send text as they make it (gunicorn, Node,
//! Puma, PHP) leave compression to the proxy in front of them. Both
//! codings follow the same rules; the client's `Accept-Encoding` picks
//! one ([`Accepts`]).
//!
//! What the cache stores is the response as the backend sent it; a hit
//! for a client that takes a coding is served from a compressed copy
//! made once per entry and coding (see `cache::store::Entry::compressed`),
//! where nginx compresses the stored body again for every hit.

use crate::http::Headers;
use crate::patterns::{Listing, NamePatterns};
use brotli::CompressorWriter;
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;

/// A content coding responses are compressed with (RFC 9110 §8.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Brotli,
}

impl Coding {
    pub const ALL: [Coding; 2] = [Coding::Gzip, Coding::Brotli];

    /// Its name in `Content-Encoding`.
    pub fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Brotli => "br",
        }
    }

    /// The key that turns it on, which names its metrics too.
    pub fn key(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Brotli => "brotli",
        }
    }

    /// Its place in [`Coding::ALL`], for what is kept per coding.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The statuses whose bodies are compressed: nginx's (200, 403, 404) and
/// HAProxy's (200 to 203). A 206 is a part of the uncompressed body, and
/// redirects and the other errors carry a few bytes at most.
const STATUSES: [u16; 6] = [200, 201, 202, 203, 403, 404];

/// `gzip_types` unless set: the text formats of the web (nginx compresses
/// `text/html` alone unless told more; every guide to it adds these).
pub const DEFAULT_TYPES: &str = "text/html, text/css, text/plain, text/xml, text/javascript, \
    application/javascript, application/json, application/xml, application/rss+xml, \
    application/atom+xml, image/svg+xml";

const TYPES: Listing = Listing {
    what: "media types",
    example: "text/html, application/json, text/*",
    prefix_example: "text/*",
    every: "every type",
    most: 64,
};

/// The media types `gzip_types` lists: `text/html`, or with a trailing
/// `*` every type it begins (`text/*`); a lone `*` is every type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaTypes(NamePatterns);

impl MediaTypes {
    pub fn parse(v: &str) -> Result<MediaTypes, String> {
        NamePatterns::parse(v, &TYPES, spell_type).map(MediaTypes)
    }

    /// Whether the type of a `Content-Type` value (its parameters, such
    /// as `charset`, aside) is listed.
    pub(crate) fn lists(&self, content_type: &[u8]) -> bool {
        let end = content_type.iter().position(|&b| b == b';');
        let media_type = content_type[..end.unwrap_or(content_type.len())].trim_ascii();
        // Lowered on the stack: this is asked of every response. A type
        // longer than any written in a list is in none.
        let mut lower = [0u8; MAX_TYPE_LEN];
        let Some(lower) = lower.get_mut(..media_type.len()) else {
            return false;
        };
        lower.copy_from_slice(media_type);
        lower.make_ascii_lowercase();
        self.0.matches(lower)
    }
}

/// Not coded already, nor forbidden to be transformed (RFC 9111
/// §5.2.2.6). The codings are read as bytes: one that is not UTF-8 is
/// still a coding, and the body not to be coded again. A quoted string
/// holding `, no-transform` (a field name in `no-cache="..."`) reads as
/// the directive: compressing less than allowed is no harm.
pub fn may_transform(headers: &Headers) -> bool {
    let mut codings = (headers.get_all("content-encoding"))
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii);
    codings.all(|c| c.is_empty() || c.eq_ignore_ascii_case(b"identity"))
        && !headers.has_token("cache-control", "no-transform")
}

/// The longest media type (RFC 6838: 127 characters each side of `/`).
const MAX_TYPE_LEN: usize = 255;

/// A listed type (its `*` taken off) as `Content-Type` values are
/// compared: lower case, `type/subtype`, each a token; a prefix may stop
/// anywhere (`text/`, `application/vnd.`).
fn spell_type(written: &str) -> Result<Vec<u8>, String> {
    let is_token = |s: &str| s.bytes().all(crate::http::head::is_tchar);
    let well_formed = match written.split_once('/') {
        None => written.is_empty(),
        Some((kind, sub)) => !kind.is_empty() && is_token(kind) && is_token(sub),
    };
    if !well_formed {
        return Err(format!(
            "`{written}` is not a media type (`type/subtype`, e.g. `{}`)",
            TYPES.example
        ));
    }
    if written.len() > MAX_TYPE_LEN {
        return Err(format!(
            "`{written}` is longer than a media type may be (RFC 6838: {MAX_TYPE_LEN} characters)"
        ));
    }
    Ok(written.to_ascii_lowercase().into_bytes())
}

/// The least gzip level of a cache entry's compressed copy: made once,
/// sent many times, it is worth the CPU (with zlib-rs, 1 is a quick coder
/// with fixed codes, which leaves text 35-50% larger than 6 does, for a
/// quarter to a half of its CPU: measured on 1 to 64 KiB of this README).
pub const KEPT_LEVEL: u32 = 6;

/// The least Brotli quality of a cache entry's copy, made once: the knee
/// of the curve. Measured on 64 KiB of this README and of JSON, 5 makes
/// them 35% and 9% of their size (2's 38% and 10%) for three times 2's
/// CPU (13 to 26 MB/s); 7 saves 1% more at half that speed, 9 is ten
/// times slower and 10 and 11 slower still: too slow to hold up the hit
/// that makes the copy.
pub const KEPT_QUALITY: u32 = 5;

/// The Brotli window (log2 of its bytes): 512 KiB, ngx_brotli's default.
/// A smaller one saves no memory: at 16 and qualities 5 and 6 the
/// encoder takes other match finders, of some 30 MiB.
const BROTLI_WINDOW: u32 = 19;

/// The highest `brotli_comp_level`. Measured (the RSS of 50 encoders,
/// each after 64 KiB of a page streamed): 0.6 MiB an encoder at 2, 1.3
/// at 5, 1.8 at 6, then 8 at 7 and 28 at 9, for 1-3% smaller output.
pub const MAX_BROTLI_QUALITY: u32 = 6;

/// The Brotli encoder's own output buffer, drained at every piece.
const BROTLI_BUFFER: usize = 4096;

/// An encoder writing into a `Vec` it owns, of either coding.
trait CodingWriter: Write {
    fn output(&mut self) -> &mut Vec<u8>;
    fn output_ref(&self) -> &[u8];
    /// The end of the stream: what it still holds, and the trailer.
    fn end(self: Box<Self>) -> Vec<u8>;
}

impl CodingWriter for GzEncoder<Vec<u8>> {
    fn output(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
    fn output_ref(&self) -> &[u8] {
        self.get_ref()
    }
    fn end(self: Box<Self>) -> Vec<u8> {
        self.finish().unwrap_or_default()
    }
}

impl CodingWriter for CompressorWriter<Vec<u8>> {
    fn output(&mut self) -> &mut Vec<u8> {
        self.get_mut()
    }
    fn output_ref(&self) -> &[u8] {
        self.get_ref()
    }
    fn end(self: Box<Self>) -> Vec<u8> {
        self.into_inner()
    }
}

/// An encoder of `coding` at `level` (gzip's 1 to 9, Brotli's quality
/// 0 to 11), boxed: one type for both, and Brotli's state (some 5 KiB
/// before its tables, which it allocates) kept off a worker's small stack.
fn writer(coding: Coding, level: u32, capacity: usize) -> Box<dyn CodingWriter> {
    let out = Vec::with_capacity(capacity);
    match coding {
        Coding::Gzip => Box::new(GzEncoder::new(out, Compression::new(level.clamp(1, 9)))),
        Coding::Brotli => Box::new(CompressorWriter::new(
            out,
            BROTLI_BUFFER,
            level.min(MAX_BROTLI_QUALITY),
            BROTLI_WINDOW,
        )),
    }
}

fn compress_at(coding: Coding, body: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = writer(coding, level, body.len() / 3 + 64);
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.end()
}

/// The settings in force, when `gzip` or `brotli` is on.
#[derive(Clone, Debug)]
pub struct Gzip {
    types: MediaTypes,
    min_length: u64,
    /// `gzip_comp_level`, when `gzip` is on.
    gzip_level: Option<u32>,
    /// `brotli_comp_level`, when `brotli` is on.
    brotli_level: Option<u32>,
}

impl Gzip {
    /// The settings of `config`, when `gzip` or `brotli` is on.
    pub fn of(config: &crate::config::Config) -> Option<Gzip> {
        (config.gzip || config.brotli).then(|| Gzip {
            types: config.gzip_types.clone(),
            min_length: config.gzip_min_length,
            gzip_level: config.gzip.then_some(config.gzip_comp_level),
            brotli_level: config.brotli.then_some(config.brotli_comp_level),
        })
    }

    /// gzip alone, `level` from 1 (fastest) to 9 (smallest).
    pub fn new(types: MediaTypes, min_length: u64, level: u32) -> Gzip {
        Gzip {
            types,
            min_length,
            gzip_level: Some(level.clamp(1, 9)),
            brotli_level: None,
        }
    }

    /// These settings with Brotli on too, at `quality` (0 to 11).
    pub fn with_brotli(self, quality: u32) -> Gzip {
        Gzip {
            brotli_level: Some(quality.min(MAX_BROTLI_QUALITY)),
            ..self
        }
    }

    fn level(&self, coding: Coding) -> Option<u32> {
        match coding {
            Coding::Gzip => self.gzip_level,
            Coding::Brotli => self.brotli_level,
        }
    }

    /// The coding a client that says `accepts` gets, of those on.
    pub fn coding_for(&self, accepts: Accepts) -> Option<Coding> {
        accepts.choice(|c| self.level(c).is_some())
    }

    /// These settings and the coding a client that says `accepts` gets,
    /// if it takes one of those on.
    pub fn taken_by(&self, accepts: Accepts) -> Option<(&Gzip, Coding)> {
        Some((self, self.coding_for(accepts)?))
    }

    /// Whether a response with this status and these fields goes out
    /// compressed to a client that takes a coding: a listed type, not
    /// coded already, not a part of a body, not forbidden to be
    /// transformed (RFC 9111 §5.2.2.6), and a body of at least
    /// `gzip_min_length` when its length is known (`None`: chunked or
    /// until the close; a HEAD's `Content-Length` describes the body of
    /// the GET).
    pub fn suits(&self, status: u16, headers: &Headers, length: Option<u64>) -> bool {
        if !STATUSES.contains(&status) || length.is_some_and(|n| n == 0 || n < self.min_length) {
            return false;
        }
        // The likeliest to refuse first: this is asked of every response.
        (headers.get("content-type")).is_some_and(|t| self.types.lists(t))
            && !headers.contains("content-range")
            && may_transform(headers)
    }

    /// Whether the whole body a `206` is a part of would go out compressed
    /// to some clients (its length aside): the part, sent as it came, then
    /// says `Vary` as that `200` would (RFC 9110 §15.3.7).
    pub fn suits_the_whole_of(&self, part: &Headers) -> bool {
        (part.get("content-type")).is_some_and(|t| self.types.lists(t)) && may_transform(part)
    }

    /// A whole body, compressed.
    pub fn compress(&self, coding: Coding, body: &[u8]) -> Vec<u8> {
        compress_at(coding, body, self.level(coding).unwrap_or_default())
    }

    /// A cache entry's body, compressed once for all the hits it will
    /// serve: at [`KEPT_LEVEL`] (gzip) or [`KEPT_QUALITY`] (Brotli) at
    /// least, as a file precompressed for nginx's `gzip_static` would be.
    pub fn compress_to_keep(&self, coding: Coding, body: &[u8]) -> Vec<u8> {
        let least = match coding {
            Coding::Gzip => KEPT_LEVEL,
            Coding::Brotli => KEPT_QUALITY,
        };
        let level = self.level(coding).unwrap_or_default().max(least);
        compress_at(coding, body, level)
    }

    pub fn encoder(&self, coding: Coding) -> Encoder {
        let level = self.level(coding).unwrap_or_default();
        Encoder {
            coding,
            writer: writer(coding, level, 0),
        }
    }
}

/// Compression as it stands for one request: its pool's settings, and
/// the coding its client gets of them (see `proxy::relay::client_accepts`).
/// A response [`Gzip::suits`] says `Vary: Accept-Encoding` whether or not
/// this client takes a coding.
#[derive(Clone, Copy, Debug)]
pub struct ForClient<'g> {
    pub gzip: &'g Gzip,
    pub coding: Option<Coding>,
}

/// A body compressed as it streams.
pub struct Encoder {
    coding: Coding,
    writer: Box<dyn CodingWriter>,
}

impl Encoder {
    pub fn coding(&self) -> Coding {
        self.coding
    }

    /// Compresses a piece and returns all of it that can be decoded so far:
    /// each piece is flushed (a sync flush costs some bytes, and keeps a
    /// page flushed as it renders, or an event, from being held back
    /// until more comes).
    pub fn push(&mut self, piece: &[u8]) -> &[u8] {
        self.writer.output().clear();
        // Writing to a Vec cannot fail.
        let _ = self
            .writer
            .write_all(piece)
            .and_then(|()| self.writer.flush());
        self.writer.output_ref()
    }

    /// The end of the stream: what the encoder still holds, and the trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.writer.output().clear();
        self.writer.end()
    }
}

/// What a request's `Accept-Encoding` says of the codings the proxy
/// makes (RFC 9110 §12.5.3): each one's weight in thousandths, 0 for
/// one it does not take.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accepts {
    gzip: u16,
    br: u16,
}

impl Accepts {
    pub fn of(request: &Headers) -> Accepts {
        Accepts {
            gzip: weight_of(request, &GZIP_NAMES),
            br: weight_of(request, &["br"]),
        }
    }

    /// The coding of those `on` it takes with the greater weight, Brotli
    /// at equal weights (browsers send `gzip, deflate, br, zstd`, each of
    /// weight 1: Brotli makes text some 15-20% smaller).
    pub fn choice(self, on: impl Fn(Coding) -> bool) -> Option<Coding> {
        let weight = |coding, w| if on(coding) { w } else { 0 };
        let (gzip, br) = (
            weight(Coding::Gzip, self.gzip),
            weight(Coding::Brotli, self.br),
        );
        match (gzip, br) {
            (0, 0) => None,
            (gzip, br) if br >= gzip => Some(Coding::Brotli),
            _ => Some(Coding::Gzip),
        }
    }
}

/// The names of gzip in `Accept-Encoding`.
const GZIP_NAMES: [&str; 2] = ["gzip", "x-gzip"];

/// Whether a request's `Accept-Encoding` takes gzip (RFC 9110 §12.5.3):
/// `gzip` (or `x-gzip`) with a weight above 0, or `*` when gzip is not
/// named. No field, an empty one, or a weight that does not parse: no.
pub fn accepted(request: &Headers) -> bool {
    accepts_coding(request, &GZIP_NAMES)
}

/// Whether a request's `Accept-Encoding` takes the content coding of
/// one of `names` (any case), as [`accepted`] reads it for gzip.
pub fn accepts_coding(request: &Headers, names: &[&str]) -> bool {
    weight_of(request, names) > 0
}

/// The weight in thousandths a request's `Accept-Encoding` gives the
/// coding of one of `names`: the first element that names it says, else
/// `*`. An element whose weight does not parse takes nothing.
fn weight_of(request: &Headers, names: &[&str]) -> u16 {
    let mut star = 0;
    for element in request.tokens("accept-encoding") {
        let mut parts = element.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let weight = parts.try_fold(1000, |weight, p| match p.trim().split_once('=') {
            Some((q, v)) if q.trim().eq_ignore_ascii_case("q") => parse_weight(v.trim()),
            _ => Some(weight),
        });
        let weight = weight.unwrap_or(0);
        if names.iter().any(|name| coding.eq_ignore_ascii_case(name)) {
            return weight;
        }
        if coding == "*" {
            star = star.max(weight);
        }
    }
    star
}

/// A weight (RFC 9110 §12.4.2: `0` to `1`, at most three decimals) in
/// thousandths. Anything else (`inf`, `1e0`, `+1`, `0.0001`) is no weight.
fn parse_weight(v: &str) -> Option<u16> {
    let (whole, decimals) = v.split_once('.').unwrap_or((v, ""));
    if decimals.len() > 3 || !decimals.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = decimals
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |n, b| n * 10 + u16::from(b - b'0'));
    match whole {
        "1" if thousandths == 0 => Some(1000),
        "0" => Some(thousandths),
        _ => None,
    }
}

/// The field lines a response sent compressed has in place of its `ETag`,
/// `Vary` and `Accept-Ranges` (see [`push_vary`], [`push_weak_etag`]),
/// and `Content-Encoding` naming `coding`. `headers` are the response's
/// fields as the backend sent them.
pub fn push_compressed_fields(out: &mut Vec<u8>, headers: &Headers, coding: Coding) {
    push_vary(out, headers);
    push_weak_etag(out, headers);
    out.extend_from_slice(b"Content-Encoding: ");
    out.extend_from_slice(coding.name().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `Vary` with `Accept-Encoding` among its names, for a response that is
/// compressed for some clients and not for others (whether or not this
/// one is): a cache in front must not give one client's coding to
/// another. In place of the response's own `Vary` lines.
pub fn push_vary(out: &mut Vec<u8>, headers: &Headers) {
    out.extend_from_slice(b"Vary: ");
    let (mut listed, mut covered) = (false, false);
    for name in headers.tokens("vary") {
        if listed {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(name.as_bytes());
        listed = true;
        covered |= name == "*" || name.eq_ignore_ascii_case("accept-encoding");
    }
    if !covered {
        if listed {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(b"Accept-Encoding");
    }
    out.extend_from_slice(b"\r\n");
}

/// The response's `ETag`, weak: a strong one names these very bytes
/// (RFC 9110 §8.8.1), which the compressed body is not; weak, it still
/// matches the client's `If-None-Match` (compared weakly), as nginx does.
pub fn push_weak_etag(out: &mut Vec<u8>, headers: &Headers) {
    if let Some(etag) = headers.get("etag") {
        out.extend_from_slice(b"ETag: ");
        if !etag.starts_with(b"W/") {
            out.extend_from_slice(b"W/");
        }
        out.extend_from_slice(etag);
        out.extend_from_slice(b"\r\n");
    }
}

/// The fields a response sent compressed replaces (see
/// [`push_compressed_fields`]): a backend's `Content-Encoding: identity`
/// beside ours would name two codings (and browsers decode neither).
/// Those that hold of the bytes the backend sent go: `Accept-Ranges`
/// (the ranges it offers are of them) and their digests (RFC 9530's,
/// RFC 3230's, `Content-MD5`), which would fail the client's check.
/// Framing fields are not among them: no stored or relayed head holds
/// them by then.
pub const REPLACED_FIELDS: [&str; 8] = [
    "etag",
    "vary",
    "content-encoding",
    "accept-ranges",
    "content-digest",
    "repr-digest",
    "digest",
    "content-md5",
];

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use std::io::Read;

    fn headers(fields: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (name, value) in fields {
            h.push(name, value);
        }
        h
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
        out
    }

    fn gzip() -> Gzip {
        Gzip::new(MediaTypes::parse(DEFAULT_TYPES).unwrap(), 20, 1)
    }

    #[test]
    fn accept_encoding_takes_gzip_by_name_or_star_with_a_weight_above_zero() {
        for (value, takes) in [
            ("gzip", true),
            ("GZIP", true),
            ("x-gzip", true),
            ("deflate, gzip;q=0.5", true),
            ("br, gzip ; q=1.0", true),
            ("*", true),
            ("*;q=0.1", true),
            ("gzip;q=0", false),
            ("gzip; q=0.000", false),
            ("gzip;q=0, *", false),
            ("*, gzip;q=0", false),
            ("*;q=0", false),
            ("br, deflate", false),
            ("identity", false),
            ("gzip;q=x", false),
            ("gzip;q=0.001", true),
            ("gzip;q=1.", true),
            ("gzip;q=inf", false),
            ("gzip;q=1e0", false),
            ("gzip;q=+1", false),
            ("gzip;q=0.0001", false),
            ("gzip;q=1.5", false),
            ("", false),
            ("gzipped", false),
            // A parameter other than the weight says nothing of it.
            ("gzip;level=9", true),
        ] {
            let request = headers(&[("Accept-Encoding", value)]);
            assert_eq!(accepted(&request), takes, "{value:?}");
        }
        assert!(!accepted(&Headers::new()));
        let two_lines = headers(&[("Accept-Encoding", "br"), ("Accept-Encoding", "gzip")]);
        assert!(accepted(&two_lines));
    }

    #[test]
    fn only_listed_uncoded_whole_bodies_of_some_statuses_are_compressed() {
        let gzip = gzip();
        let html = headers(&[("Content-Type", "Text/HTML; charset=utf-8")]);
        assert!(gzip.suits(200, &html, Some(1000)));
        assert!(gzip.suits(404, &html, None));
        assert!(gzip.suits(200, &html, Some(20)));
        assert!(!gzip.suits(200, &html, Some(19)), "under gzip_min_length");
        assert!(!gzip.suits(200, &html, Some(0)));
        for status in [204, 206, 301, 304, 500, 502] {
            assert!(!gzip.suits(status, &html, Some(1000)), "{status}");
        }
        for fields in [
            vec![("Content-Type", "image/png")],
            vec![("Content-Type", "text/html"), ("Content-Encoding", "br")],
            vec![("Content-Type", "text/html"), ("Content-Encoding", "gzip")],
            vec![
                ("Content-Type", "text/html"),
                ("Content-Range", "bytes 0-9/99"),
            ],
            vec![
                ("Content-Type", "text/html"),
                ("Cache-Control", "public, No-Transform"),
            ],
            vec![],
        ] {
            assert!(
                !gzip.suits(200, &headers(&fields), Some(1000)),
                "{fields:?}"
            );
        }
        let identity = headers(&[
            ("Content-Type", "text/css"),
            ("Content-Encoding", "identity"),
        ]);
        assert!(gzip.suits(200, &identity, Some(1000)));
    }

    #[test]
    fn types_are_listed_exactly_or_by_prefix_and_bad_ones_are_refused() {
        let types = MediaTypes::parse("application/json, TEXT/*").unwrap();
        assert!(types.lists(b"application/json"));
        assert!(types.lists(b"text/csv ; charset=utf-8"));
        assert!(types.lists(b" Text/Plain"));
        assert!(!types.lists(b"application/jsonp"));
        assert!(!types.lists(b"image/svg+xml"));
        assert!(MediaTypes::parse("*").unwrap().lists(b"image/png"));
        assert!(!MediaTypes::default().lists(b"text/html"));
        for bad in [
            "text",
            "text/html/x",
            "/html",
            "text/ht ml",
            "text/*/x",
            "te xt/*",
        ] {
            let e = MediaTypes::parse(bad).unwrap_err();
            assert!(e.contains("media type") || e.contains('*'), "{bad:?}: {e}");
        }
        let long = format!("text/{}", "x".repeat(300));
        assert!(MediaTypes::parse(&long).unwrap_err().contains("longer"));
        assert!(!types.lists(long.as_bytes()));
        assert!(MediaTypes::parse("text/html, text/html")
            .unwrap_err()
            .contains("listed twice"));
    }

    #[test]
    fn a_part_says_vary_when_its_whole_body_would_be_compressed() {
        let gzip = gzip();
        let part = |fields: &[(&str, &str)]| {
            let mut h = headers(&[("Content-Range", "bytes 0-9/99")]);
            for (name, value) in fields {
                h.push(name, value);
            }
            gzip.suits_the_whole_of(&h)
        };
        assert!(part(&[("Content-Type", "text/html")]));
        assert!(!part(&[("Content-Type", "image/png")]));
        assert!(!part(&[
            ("Content-Type", "text/html"),
            ("Content-Encoding", "br")
        ]));
        assert!(!part(&[]));
    }

    #[test]
    fn the_settings_of_a_config_with_gzip_on_are_its_own() {
        let mut config = crate::config::Config::with_targets(Vec::new());
        config.gzip = true;
        config.gzip_min_length = 50;
        let gzip = Gzip::of(&config).unwrap();
        let html = headers(&[("Content-Type", "text/html")]);
        assert!(gzip.suits(200, &html, Some(50)));
        assert!(!gzip.suits(200, &html, Some(49)));
    }

    #[test]
    fn a_type_of_the_longest_length_rfc_6838_allows_is_listed() {
        let longest = format!("text/{}", "x".repeat(MAX_TYPE_LEN - 5));
        let types = MediaTypes::parse(&longest).unwrap();
        assert!(types.lists(longest.as_bytes()));
    }

    #[test]
    fn a_whole_body_and_a_streamed_one_decode_to_what_went_in() {
        let gzip = gzip();
        let body: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let whole = gzip.compress(Coding::Gzip, &body);
        assert!(whole.len() < body.len());
        assert_eq!(gunzip(&whole), body);

        let mut encoder = gzip.encoder(Coding::Gzip);
        let mut streamed = Vec::new();
        let mut pushed = 0;
        for piece in body.chunks(7000) {
            streamed.extend_from_slice(encoder.push(piece));
            pushed += piece.len();
            // Flushed: all that went in so far decodes before the end.
            let mut partial = Vec::new();
            let _ = GzDecoder::new(&streamed[..]).read_to_end(&mut partial);
            assert_eq!(partial, body[..pushed]);
        }
        streamed.extend_from_slice(&encoder.finish());
        assert_eq!(gunzip(&streamed), body);
        assert_eq!(gunzip(&gzip.encoder(Coding::Gzip).finish()), b"");

        // What the cache keeps is made once, harder.
        let text = page_like(60_000);
        let kept = gzip.compress_to_keep(Coding::Gzip, &text);
        assert_eq!(gunzip(&kept), text);
        assert!(kept.len() < gzip.compress(Coding::Gzip, &text).len());
    }

    #[test]
    fn every_level_compresses_within_half_a_worker_threads_stack() {
        // Workers run on small stacks (`server::workers::WORKER_STACK`, 256 KiB):
        // an encoder that builds its state on the stack would overflow it.
        let body = page_like(200_000);
        let compressed = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || {
                (1..=9)
                    .map(|level| {
                        let gzip = Gzip::new(MediaTypes::default(), 0, level);
                        let mut encoder = gzip.encoder(Coding::Gzip);
                        let _ = encoder.push(&body[..1000]);
                        gzip.compress(Coding::Gzip, &body)
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap()
            .join()
            .unwrap();
        for (level, bytes) in compressed.iter().enumerate() {
            assert_eq!(gunzip(bytes), page_like(200_000), "level {}", level + 1);
        }
        assert!(compressed[8].len() <= compressed[0].len());
    }

    fn unbrotli(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        brotli::Decompressor::new(bytes, 4096)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn brotli_wins_at_equal_weights_and_the_heavier_coding_otherwise() {
        use Coding::{Brotli, Gzip as Gz};
        let both = gzip().with_brotli(5);
        let gzip_alone = gzip();
        for (value, with_both, with_gzip_alone) in [
            ("gzip, deflate, br, zstd", Some(Brotli), Some(Gz)),
            ("br, gzip", Some(Brotli), Some(Gz)),
            ("gzip;q=1, br;q=0.5", Some(Gz), Some(Gz)),
            ("gzip;q=0.5, br;q=0.5", Some(Brotli), Some(Gz)),
            ("gzip;q=0.4, br;q=0.5", Some(Brotli), Some(Gz)),
            ("gzip, br;q=0", Some(Gz), Some(Gz)),
            ("br;q=0, *", Some(Gz), Some(Gz)),
            ("BR", Some(Brotli), None),
            ("br;q=0.001", Some(Brotli), None),
            ("br;q=x, gzip;q=0.1", Some(Gz), Some(Gz)),
            ("*", Some(Brotli), Some(Gz)),
            ("*;q=0.5, gzip", Some(Gz), Some(Gz)),
            ("*, gzip;q=0.2", Some(Brotli), Some(Gz)),
            ("gzip;q=0, br;q=0", None, None),
            ("*;q=0", None, None),
            ("identity", None, None),
            ("identity;q=0, br", Some(Brotli), None),
            ("deflate, zstd", None, None),
            ("", None, None),
        ] {
            let accepts = Accepts::of(&headers(&[("Accept-Encoding", value)]));
            assert_eq!(both.coding_for(accepts), with_both, "{value:?}");
            assert_eq!(gzip_alone.coding_for(accepts), with_gzip_alone, "{value:?}");
        }
        assert_eq!(both.coding_for(Accepts::default()), None);
        let two_lines = headers(&[("Accept-Encoding", "gzip"), ("Accept-Encoding", "br")]);
        assert_eq!(both.coding_for(Accepts::of(&two_lines)), Some(Brotli));
        let mut config = crate::config::Config::with_targets(Vec::new());
        config.brotli = true;
        let brotli_alone = Gzip::of(&config).unwrap();
        let gzip_only = Accepts::of(&headers(&[("Accept-Encoding", "gzip")]));
        assert_eq!(brotli_alone.coding_for(gzip_only), None);
        let browser = Accepts::of(&headers(&[("Accept-Encoding", "gzip, br")]));
        assert_eq!(brotli_alone.coding_for(browser), Some(Brotli));
    }

    #[test]
    fn a_brotli_body_whole_streamed_or_kept_decodes_to_what_went_in() {
        let brotli = gzip().with_brotli(5);
        let body = page_like(70_000);
        let whole = brotli.compress(Coding::Brotli, &body);
        assert!(whole.len() < brotli.compress(Coding::Gzip, &body).len());
        assert_eq!(unbrotli(&whole), body);

        let mut encoder = brotli.encoder(Coding::Brotli);
        assert_eq!(encoder.coding(), Coding::Brotli);
        let mut streamed = Vec::new();
        let mut pushed = 0;
        for piece in body.chunks(7000) {
            streamed.extend_from_slice(encoder.push(piece));
            pushed += piece.len();
            // Flushed: all that went in so far decodes before the end.
            let mut partial = Vec::new();
            let _ = brotli::Decompressor::new(&streamed[..], 4096).read_to_end(&mut partial);
            assert_eq!(partial, body[..pushed]);
        }
        streamed.extend_from_slice(&encoder.finish());
        assert_eq!(unbrotli(&streamed), body);
        assert_eq!(unbrotli(&brotli.encoder(Coding::Brotli).finish()), b"");
        assert_eq!(
            unbrotli(&brotli.compress_to_keep(Coding::Brotli, &body)),
            body
        );
    }

    #[test]
    fn every_brotli_quality_compresses_within_half_a_worker_threads_stack() {
        let body = page_like(20_000);
        let compressed = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || {
                (0..=11)
                    .map(|quality| {
                        let brotli = gzip().with_brotli(quality);
                        let mut encoder = brotli.encoder(Coding::Brotli);
                        let _ = encoder.push(&body[..1000]);
                        brotli.compress(Coding::Brotli, &body)
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap()
            .join()
            .unwrap();
        for (quality, bytes) in compressed.iter().enumerate() {
            assert_eq!(unbrotli(bytes), page_like(20_000), "quality {quality}");
        }
    }

    fn page_like(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| b"<p>some text, and more</p>\n"[i % 27] ^ (i / 997) as u8)
            .collect()
    }

    #[test]
    fn compressed_fields_weaken_the_etag_and_vary_on_accept_encoding() {
        let mut out = Vec::new();
        let h = headers(&[("ETag", "\"v1\""), ("Vary", "Origin")]);
        push_compressed_fields(&mut out, &h, Coding::Gzip);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Vary: Origin, Accept-Encoding\r\nETag: W/\"v1\"\r\nContent-Encoding: gzip\r\n"
        );
        let mut out = Vec::new();
        let h = headers(&[("ETag", "W/\"v1\""), ("Vary", "accept-encoding, origin")]);
        push_compressed_fields(&mut out, &h, Coding::Brotli);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Vary: accept-encoding, origin\r\nETag: W/\"v1\"\r\nContent-Encoding: br\r\n"
        );
        let mut out = Vec::new();
        push_vary(&mut out, &headers(&[("Vary", "*")]));
        assert_eq!(out, b"Vary: *\r\n");
        let mut out = Vec::new();
        push_vary(&mut out, &Headers::new());
        assert_eq!(out, b"Vary: Accept-Encoding\r\n");
    }
}
