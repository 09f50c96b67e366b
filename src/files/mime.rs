//! The `Content-Type` of a file served from a directory, by the extension
//! of its name, as nginx's `mime.types` gives it for the kinds of file a
//! site holds. Text is said to be UTF-8, as the files a site is built from
//! are: a browser left to guess reads an HTML page without a `<meta
//! charset>` as windows-1252.

/// Anything not in the table: a browser offers it as a download, and
/// never runs it as a page or a script.
pub const UNKNOWN: &str = "application/octet-stream";

/// Extensions, lower case, and their types; sorted, for the binary search.
const TYPES: &[(&str, &str)] = &[
    ("7z", "application/x-7z-compressed"),
    ("aac", "audio/aac"),
    ("apng", "image/apng"),
    ("atom", "application/atom+xml"),
    ("avif", "image/avif"),
    ("bmp", "image/bmp"),
    ("bz2", "application/x-bzip2"),
    ("css", "text/css; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("eot", "application/vnd.ms-fontobject"),
    ("epub", "application/epub+zip"),
    ("flac", "audio/flac"),
    ("gif", "image/gif"),
    ("gz", "application/gzip"),
    ("htm", "text/html; charset=utf-8"),
    ("html", "text/html; charset=utf-8"),
    ("ico", "image/x-icon"),
    ("ics", "text/calendar; charset=utf-8"),
    ("jpeg", "image/jpeg"),
    ("jpg", "image/jpeg"),
    ("js", "text/javascript; charset=utf-8"),
    ("json", "application/json"),
    ("jsonld", "application/ld+json"),
    ("m4a", "audio/mp4"),
    ("m4v", "video/mp4"),
    ("manifest", "text/cache-manifest; charset=utf-8"),
    ("map", "application/json"),
    ("md", "text/markdown; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("mov", "video/quicktime"),
    ("mp3", "audio/mpeg"),
    ("mp4", "video/mp4"),
    ("mpeg", "video/mpeg"),
    ("oga", "audio/ogg"),
    ("ogg", "audio/ogg"),
    ("ogv", "video/ogg"),
    ("opus", "audio/ogg"),
    ("otf", "font/otf"),
    ("pdf", "application/pdf"),
    ("png", "image/png"),
    ("rss", "application/rss+xml"),
    ("svg", "image/svg+xml"),
    ("svgz", "image/svg+xml"),
    ("tar", "application/x-tar"),
    ("tif", "image/tiff"),
    ("tiff", "image/tiff"),
    ("ts", "video/mp2t"),
    ("ttf", "font/ttf"),
    ("txt", "text/plain; charset=utf-8"),
    ("vtt", "text/vtt; charset=utf-8"),
    ("wasm", "application/wasm"),
    ("wav", "audio/wav"),
    ("weba", "audio/webm"),
    ("webm", "video/webm"),
    ("webmanifest", "application/manifest+json"),
    ("webp", "image/webp"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("xhtml", "application/xhtml+xml"),
    ("xml", "application/xml"),
    ("zip", "application/zip"),
    ("zst", "application/zstd"),
];

/// The type of a file named `name` (its last path segment).
pub fn content_type(name: &[u8]) -> &'static str {
    let Some(dot) = name.iter().rposition(|&b| b == b'.') else {
        return UNKNOWN;
    };
    let extension = &name[dot + 1..];
    // No extension in the table is longer: a longer one is not looked up
    // (nor lower-cased into a buffer of its size).
    let mut lower = [0u8; 12];
    let Some(lower) = lower.get_mut(..extension.len()) else {
        return UNKNOWN;
    };
    lower.copy_from_slice(extension);
    lower.make_ascii_lowercase();
    TYPES
        .binary_search_by(|(ext, _)| ext.as_bytes().cmp(lower))
        .map_or(UNKNOWN, |i| TYPES[i].1)
}

/// The content coding a file named `name` is stored in, where its type
/// says what it is once decoded: an `.svgz` is an SVG gzipped, which a
/// browser draws only when told `Content-Encoding: gzip` (and which
/// `gzip` must not compress again).
pub fn content_encoding(name: &[u8]) -> Option<&'static str> {
    let dot = name.iter().rposition(|&b| b == b'.')?;
    name[dot + 1..]
        .eq_ignore_ascii_case(b"svgz")
        .then_some("gzip")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_lower_case() {
        for pair in TYPES.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
        }
        for (ext, _) in TYPES {
            assert_eq!(*ext, ext.to_ascii_lowercase());
            assert!(ext.len() <= 12);
        }
    }

    #[test]
    fn types_by_extension_in_any_case() {
        assert_eq!(content_type(b"index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type(b"LOGO.PNG"), "image/png");
        assert_eq!(
            content_type(b"app.min.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(b"font.woff2"), "font/woff2");
        assert_eq!(
            content_type(b"site.webmanifest"),
            "application/manifest+json"
        );
    }

    #[test]
    fn no_or_unknown_extension_is_a_download() {
        assert_eq!(content_type(b"README"), UNKNOWN);
        assert_eq!(content_type(b"archive.unknownext"), UNKNOWN);
        assert_eq!(content_type(b"x.averyveryverylongextension"), UNKNOWN);
        assert_eq!(content_type(b"trailing."), UNKNOWN);
        assert_eq!(content_type(b""), UNKNOWN);
    }

    #[test]
    fn an_svgz_is_an_svg_stored_gzipped() {
        assert_eq!(content_type(b"logo.svgz"), "image/svg+xml");
        assert_eq!(content_encoding(b"logo.svgz"), Some("gzip"));
        assert_eq!(content_encoding(b"LOGO.SVGZ"), Some("gzip"));
        for plain in [&b"logo.svg"[..], b"svgz", b"logo.svgz.txt"] {
            assert_eq!(content_encoding(plain), None);
        }
    }
}
