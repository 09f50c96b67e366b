//! A directory's listing (`autoindex`), for a directory asked for with
//! its trailing `/` that has no `index.html`: nginx's `autoindex on`, as
//! HTML or, with `autoindex=json`, as its `autoindex_format json`.
//!
//! What the listing names is what the route serves: no name that starts
//! with `.`, no link that leads out of the directory or to a name with a
//! `.`, nothing but files and directories.

use crate::cache::policy::decode_percent;
use crate::html::push_escaped;
use crate::http::date::{format_http_date, format_listing_date};
use std::fmt::Write as _;
use std::time::SystemTime;

/// Most names one listing reads, listed or not: a directory of a million
/// files would otherwise cost a request that much work and memory. A
/// directory that has more is said to be cut.
pub const MAX_LISTED: usize = 10_000;

/// Longest name the HTML listing shows whole, as nginx's (in characters);
/// a longer one is cut, and ends with `..>`.
const NAME_WIDTH: usize = 50;

/// How a listing is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Html,
    Json,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html; charset=utf-8",
            Format::Json => "application/json",
        }
    }
}

/// One name in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// As the file system holds it: bytes, maybe not UTF-8.
    pub name: Vec<u8>,
    pub directory: bool,
    pub len: u64,
    pub modified: SystemTime,
}

/// A directory's entries, sorted, and whether it has more than were
/// read.
#[derive(Debug)]
pub struct Listing {
    pub entries: Vec<Entry>,
    pub cut: bool,
}

impl Listing {
    /// `entries` (of at most [`MAX_LISTED`] names read), directories
    /// first, then by name, as nginx sorts them; `cut` when the directory
    /// held more names than were read.
    pub fn new(mut entries: Vec<Entry>, cut: bool) -> Listing {
        entries.sort_by(|a, b| (!a.directory, &a.name).cmp(&(!b.directory, &b.name)));
        Listing { entries, cut }
    }

    /// The listing of the directory at `path` (the request's path, as
    /// sent, which ends with `/`), written as `format` says.
    pub fn write(&self, path: &str, format: Format) -> String {
        match format {
            Format::Html => self.html(path),
            Format::Json => self.json(),
        }
    }

    fn html(&self, path: &str) -> String {
        let mut title = String::new();
        push_escaped(
            &mut title,
            &String::from_utf8_lossy(&decode_percent(path.as_bytes())),
        );
        let mut out = String::with_capacity(256 + self.entries.len() * 120);
        let _ = write!(
            out,
            "<html>\n<head><title>Index of {title}</title></head>\n<body>\n\
             <h1>Index of {title}</h1><hr><pre>"
        );
        if path != "/" {
            out.push_str("<a href=\"../\">../</a>\n");
        }
        for entry in &self.entries {
            let mut shown: String = String::from_utf8_lossy(&entry.name).into_owned();
            if entry.directory {
                shown.push('/');
            }
            let count = shown.chars().count();
            if count > NAME_WIDTH {
                shown = shown.chars().take(NAME_WIDTH - 3).collect::<String>() + "..>";
            }
            out.push_str("<a href=\"");
            out.push_str(&href(&entry.name));
            if entry.directory {
                out.push('/');
            }
            out.push_str("\">");
            push_escaped(&mut out, &shown);
            out.push_str("</a>");
            let pad = NAME_WIDTH.saturating_sub(count.min(NAME_WIDTH)) + 1;
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(&format_listing_date(entry.modified));
            let _ = match entry.directory {
                true => writeln!(out, " {:>19}", "-"),
                false => writeln!(out, " {:>19}", entry.len),
            };
        }
        if self.cut {
            let _ = writeln!(out, "\n(the first {MAX_LISTED} names read; more not shown)");
        }
        out.push_str("</pre><hr></body>\n</html>\n");
        out
    }

    fn json(&self) -> String {
        let mut out = String::with_capacity(8 + self.entries.len() * 100);
        out.push('[');
        for (i, entry) in self.entries.iter().enumerate() {
            out.push_str(if i == 0 { "\n" } else { ",\n" });
            out.push_str("{ \"name\":\"");
            crate::json::push_escaped(&mut out, &String::from_utf8_lossy(&entry.name));
            let kind = if entry.directory { "directory" } else { "file" };
            let mtime = format_http_date(entry.modified);
            let _ = write!(out, "\", \"type\":\"{kind}\", \"mtime\":\"{mtime}\"");
            if !entry.directory {
                let _ = write!(out, ", \"size\":{}", entry.len);
            }
            out.push_str(" }");
        }
        out.push_str("\n]\n");
        out
    }
}

/// A name as a relative link: every byte but letters, digits and
/// `-._~` percent-encoded, so that a `:` cannot make it a URL of its own
/// (`javascript:`), nor a `?` or `#` end its path.
pub fn href(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn entry(name: &[u8], directory: bool, len: u64) -> Entry {
        Entry {
            name: name.to_vec(),
            directory,
            len,
            modified: UNIX_EPOCH + Duration::from_secs(784_111_777),
        }
    }

    #[test]
    fn directories_come_first_then_names_in_byte_order() {
        let listing = Listing::new(
            vec![
                entry(b"b.txt", false, 2),
                entry(b"zeta", true, 0),
                entry(b"a.txt", false, 1),
                entry(b"Alpha", true, 0),
            ],
            false,
        );
        let names: Vec<&[u8]> = listing.entries.iter().map(|e| &e.name[..]).collect();
        assert_eq!(names, [&b"Alpha"[..], b"zeta", b"a.txt", b"b.txt"]);
    }

    #[test]
    fn the_html_listing_is_nginx_s() {
        let listing = Listing::new(
            vec![entry(b"docs", true, 0), entry(b"a.txt", false, 1234)],
            false,
        );
        assert_eq!(
            listing.write("/files/sub%20dir/", Format::Html),
            "<html>\n<head><title>Index of /files/sub dir/</title></head>\n<body>\n\
             <h1>Index of /files/sub dir/</h1><hr><pre><a href=\"../\">../</a>\n\
             <a href=\"docs/\">docs/</a>                                              \
             06-Nov-1994 08:49                   -\n\
             <a href=\"a.txt\">a.txt</a>                                              \
             06-Nov-1994 08:49                1234\n\
             </pre><hr></body>\n</html>\n"
        );
        // The root has no way up.
        let root = Listing::new(vec![], false).write("/", Format::Html);
        assert!(!root.contains("../"), "{root}");
    }

    #[test]
    fn a_name_can_neither_write_markup_nor_make_its_link_another_url() {
        let listing = Listing::new(
            vec![
                entry(b"<script>x</script>", false, 1),
                entry(b"javascript:alert(1)", false, 1),
                entry(b"a\"b?c#d", false, 1),
                entry(b"caf\xc3\xa9 \xff", false, 1),
            ],
            false,
        );
        let html = listing.write("/<b>/", Format::Html);
        assert!(
            !html.contains("<script>") && !html.contains("<b>"),
            "{html}"
        );
        assert!(html.contains("Index of /&lt;b&gt;/"), "{html}");
        assert!(
            html.contains("href=\"%3Cscript%3Ex%3C%2Fscript%3E\""),
            "{html}"
        );
        assert!(
            html.contains("href=\"javascript%3Aalert%281%29\""),
            "{html}"
        );
        assert!(
            html.contains("href=\"a%22b%3Fc%23d\">a&quot;b?c#d</a>"),
            "{html}"
        );
        assert!(
            html.contains("href=\"caf%C3%A9%20%FF\">café \u{fffd}</a>"),
            "{html}"
        );
    }

    #[test]
    fn a_long_name_is_cut_and_the_columns_stay_aligned() {
        let long = "x".repeat(60);
        let listing = Listing::new(vec![entry(long.as_bytes(), false, 5)], false);
        let html = listing.write("/", Format::Html);
        let shown = format!(">{}..&gt;</a> 06-Nov-1994", "x".repeat(47));
        assert!(html.contains(&shown), "{html}");
        assert!(html.contains(&format!("href=\"{long}\"")), "{html}");
    }

    #[test]
    fn the_json_listing_is_nginx_s() {
        let listing = Listing::new(
            vec![entry(b"a\"b.txt", false, 7), entry(b"docs", true, 0)],
            false,
        );
        assert_eq!(
            listing.write("/", Format::Json),
            "[\n{ \"name\":\"docs\", \"type\":\"directory\", \
             \"mtime\":\"Sun, 06 Nov 1994 08:49:37 GMT\" },\n\
             { \"name\":\"a\\\"b.txt\", \"type\":\"file\", \
             \"mtime\":\"Sun, 06 Nov 1994 08:49:37 GMT\", \"size\":7 }\n]\n"
        );
        assert_eq!(
            Listing::new(vec![], false).write("/", Format::Json),
            "[\n]\n"
        );
    }

    #[test]
    fn a_cut_listing_says_so() {
        let html = Listing::new(vec![entry(b"a", false, 1)], true).write("/d/", Format::Html);
        assert!(
            html.contains("(the first 10000 names read; more not shown)"),
            "{html}"
        );
        let whole = Listing::new(vec![entry(b"a", false, 1)], false).write("/d/", Format::Html);
        assert!(!whole.contains("more not shown"), "{whole}");
    }

    #[test]
    fn a_bidi_override_in_a_name_does_not_reorder_what_it_shows() {
        // `invoice<U+202E>fdp.exe` would show as `invoiceexe.pdf`.
        let listing = Listing::new(
            vec![entry("invoice\u{202e}fdp.exe".as_bytes(), false, 1)],
            false,
        );
        let html = listing.write("/", Format::Html);
        assert!(!html.contains('\u{202e}'), "{html}");
        assert!(html.contains(">invoice\u{fffd}fdp.exe</a>"), "{html}");
    }

    #[test]
    fn a_control_character_in_a_name_draws_no_row() {
        let listing = Listing::new(vec![entry(b"a\nb\x1b[31m", false, 1)], false);
        let html = listing.write("/", Format::Html);
        assert!(html.contains(">a\u{fffd}b\u{fffd}[31m</a>"), "{html}");
        assert!(html.contains("href=\"a%0Ab%1B%5B31m\""), "{html}");
    }

    #[test]
    fn each_format_says_its_type() {
        assert_eq!(Format::Html.content_type(), "text/html; charset=utf-8");
        assert_eq!(Format::Json.content_type(), "application/json");
    }

    #[test]
    fn a_name_as_wide_as_the_column_is_shown_whole() {
        let name = "x".repeat(NAME_WIDTH);
        let listing = Listing::new(vec![entry(name.as_bytes(), false, 5)], false);
        let html = listing.write("/", Format::Html);
        assert!(html.contains(&format!(">{name}</a> 06-Nov-1994")), "{html}");
    }
}
