//! Responses compressed with gzip for the clients that take it (`gzip`),
//! as nginx's `gzip on` and HAProxy's `compression algo gzip`: backends
//! that send text as they make it (gunicorn, Node, Puma, PHP) leave
//! compression to the proxy in front of them.
//!
//! What the cache stores is the response as the backend sent it; a hit
//! for a client that takes gzip is served from a compressed copy made
//! once per entry (see `cache::store::Entry::compressed`), where nginx
//! compresses the stored body again for every hit.

use crate::http::Headers;
use crate::patterns::{Listing, NamePatterns};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;

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

/// The least level of a cache entry's compressed copy: made once, sent
/// many times, it is worth the CPU (with zlib-rs, 1 is a quick coder with
/// fixed codes, which leaves text 35-50% larger than 6 does, for a quarter
/// to a half of its CPU: measured on 1 to 64 KiB of this README).
pub const KEPT_LEVEL: u32 = 6;

fn compress_at(body: &[u8], level: Compression) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 3 + 64), level);
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// The settings in force, when `gzip` is on.
#[derive(Clone, Debug)]
pub struct Gzip {
    types: MediaTypes,
    min_length: u64,
    level: Compression,
}

impl Gzip {
    /// The settings of `config`, when `gzip` is on.
    pub fn of(config: &crate::config::Config) -> Option<Gzip> {
        config.gzip.then(|| {
            let types = config.gzip_types.clone();
            Gzip::new(types, config.gzip_min_length, config.gzip_comp_level)
        })
    }

    /// `level` from 1 (fastest) to 9 (smallest).
    pub fn new(types: MediaTypes, min_length: u64, level: u32) -> Gzip {
        Gzip {
            types,
            min_length,
            level: Compression::new(level.clamp(1, 9)),
        }
    }

    /// Whether a response with this status and these fields goes out
    /// compressed to a client that takes gzip: a listed type, not coded
    /// already, not a part of a body, not forbidden to be transformed
    /// (RFC 9111 §5.2.2.6), and a body of at least `gzip_min_length` when
    /// its length is known (`None`: chunked or until the close; a HEAD's
    /// `Content-Length` describes the body of the GET).
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
    pub fn compress(&self, body: &[u8]) -> Vec<u8> {
        compress_at(body, self.level)
    }

    /// A cache entry's body, compressed once for all the hits it will
    /// serve: at [`KEPT_LEVEL`] at least, as a file precompressed for
    /// nginx's `gzip_static` would be.
    pub fn compress_to_keep(&self, body: &[u8]) -> Vec<u8> {
        compress_at(body, Compression::new(self.level.level().max(KEPT_LEVEL)))
    }

    pub fn encoder(&self) -> Encoder {
        Encoder(GzEncoder::new(Vec::new(), self.level))
    }
}

/// `gzip` as it stands for one request: its pool's settings, and whether
/// its client takes gzip (see `proxy::relay::client_takes_gzip`). A response
/// [`Gzip::suits`] says `Vary: Accept-Encoding` whether or not this
/// client takes it.
#[derive(Clone, Copy, Debug)]
pub struct ForClient<'g> {
    pub gzip: &'g Gzip,
    pub takes: bool,
}

/// A body compressed as it streams.
pub struct Encoder(GzEncoder<Vec<u8>>);

impl Encoder {
    /// Compresses a piece and returns all of it that can be decoded so far:
    /// each piece is flushed (a sync flush costs some bytes, and keeps a
    /// page flushed as it renders, or an event, from being held back
    /// until more comes).
    pub fn push(&mut self, piece: &[u8]) -> &[u8] {
        let out = self.0.get_mut();
        out.clear();
        // Writing to a Vec cannot fail.
        let _ = self.0.write_all(piece).and_then(|()| self.0.flush());
        self.0.get_ref()
    }

    /// The end of the stream: what the encoder still holds, and the trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.0.get_mut().clear();
        self.0.finish().unwrap_or_default()
    }
}

/// Whether a request's `Accept-Encoding` takes gzip (RFC 9110 §12.5.3):
/// `gzip` (or `x-gzip`) with a weight above 0, or `*` when gzip is not
/// named. No field, an empty one, or a weight that does not parse: no.
pub fn accepted(request: &Headers) -> bool {
    accepts_coding(request, &["gzip", "x-gzip"])
}

/// Whether a request's `Accept-Encoding` takes the content coding of
/// one of `names` (any case), as [`accepted`] reads it for gzip.
pub fn accepts_coding(request: &Headers, names: &[&str]) -> bool {
    let mut star = false;
    for element in request.tokens("accept-encoding") {
        let mut parts = element.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let weighted = parts.all(|p| match p.trim().split_once('=') {
            Some((q, v)) if q.trim().eq_ignore_ascii_case("q") => weight_above_zero(v.trim()),
            _ => true,
        });
        if names.iter().any(|name| coding.eq_ignore_ascii_case(name)) {
            return weighted;
        }
        star |= coding == "*" && weighted;
    }
    star
}

/// Whether `v` is a weight (RFC 9110 §12.4.2: `0` to `1`, at most three
/// decimals) above 0. Anything else (`inf`, `1e0`, `+1`, `0.0001`) is no
/// weight, and takes nothing.
fn weight_above_zero(v: &str) -> bool {
    let (whole, decimals) = v.split_once('.').unwrap_or((v, ""));
    let decimals_fit = decimals.len() <= 3 && decimals.bytes().all(|b| b.is_ascii_digit());
    match whole {
        "1" => decimals_fit && decimals.bytes().all(|b| b == b'0'),
        "0" => decimals_fit && decimals.bytes().any(|b| b != b'0'),
        _ => false,
    }
}

/// The field lines a response sent compressed has in place of its `ETag`,
/// `Vary` and `Accept-Ranges` (see [`push_vary`], [`push_weak_etag`]),
/// and `Content-Encoding: gzip`. `headers` are the response's fields as
/// the backend sent them.
pub fn push_compressed_fields(out: &mut Vec<u8>, headers: &Headers) {
    push_vary(out, headers);
    push_weak_etag(out, headers);
    out.extend_from_slice(b"Content-Encoding: gzip\r\n");
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
        let whole = gzip.compress(&body);
        assert!(whole.len() < body.len());
        assert_eq!(gunzip(&whole), body);

        let mut encoder = gzip.encoder();
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
        assert_eq!(gunzip(&gzip.encoder().finish()), b"");

        // What the cache keeps is made once, harder.
        let text = page_like(60_000);
        let kept = gzip.compress_to_keep(&text);
        assert_eq!(gunzip(&kept), text);
        assert!(kept.len() < gzip.compress(&text).len());
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
                        let mut encoder = gzip.encoder();
                        let _ = encoder.push(&body[..1000]);
                        gzip.compress(&body)
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

    fn page_like(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| b"<p>some text, and more</p>\n"[i % 27] ^ (i / 997) as u8)
            .collect()
    }

    #[test]
    fn compressed_fields_weaken_the_etag_and_vary_on_accept_encoding() {
        let mut out = Vec::new();
        let h = headers(&[("ETag", "\"v1\""), ("Vary", "Origin")]);
        push_compressed_fields(&mut out, &h);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Vary: Origin, Accept-Encoding\r\nETag: W/\"v1\"\r\nContent-Encoding: gzip\r\n"
        );
        let mut out = Vec::new();
        let h = headers(&[("ETag", "W/\"v1\""), ("Vary", "accept-encoding, origin")]);
        push_compressed_fields(&mut out, &h);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Vary: accept-encoding, origin\r\nETag: W/\"v1\"\r\nContent-Encoding: gzip\r\n"
        );
        let mut out = Vec::new();
        push_vary(&mut out, &headers(&[("Vary", "*")]));
        assert_eq!(out, b"Vary: *\r\n");
        let mut out = Vec::new();
        push_vary(&mut out, &Headers::new());
        assert_eq!(out, b"Vary: Accept-Encoding\r\n");
    }
}
