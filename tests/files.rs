//! `files` routes over real sockets (`route./static/ = files <dir>`): a
//! directory's files sent whole (with the head in one write, or by the
//! kernel from the page cache), indexes and the redirect of a directory
//! asked for without its `/`, the names refused, validators, conditionals
//! and one range, the 405 for other methods, `fallback=` to a pool,
//! `max_age=`, the top level's `response_header.*`, and the access log.

mod support;

use inverso::http::date::{format_http_date, parse_http_date};
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};
use support::*;

/// Every file of the site was last changed at this second (0x6553f100):
/// its ETag and Last-Modified are known in advance.
const MODIFIED: u64 = 1_700_000_000;
/// Below the size sent with the head in one `writev` (32 KiB).
const SMALL: usize = 20_000;
/// Above it: sent by `sendfile`.
const LARGE: usize = 1 << 20;
/// What the site's directory never lets out: in a file beside it, and in
/// one of its own hidden files.
const OUTSIDE: &str = "the secret outside the directory";
const HIDDEN: &str = "SECRET=in-a-dot-file";

/// A served directory `www` in a temporary one, with `outside.txt` beside
/// it.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("www");
        for sub in ["docs", "empty", "a"] {
            fs::create_dir_all(root.join(sub)).unwrap();
        }
        let write = |name: &str, bytes: &[u8]| {
            let path = root.join(name);
            fs::write(&path, bytes).unwrap();
            let at = UNIX_EPOCH + Duration::from_secs(MODIFIED);
            File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(at)
                .unwrap();
        };
        write("index.html", b"<h1>home</h1>");
        write("docs/index.html", b"<h1>docs</h1>");
        write("small.txt", &pattern(SMALL));
        write("large.bin", &pattern(LARGE));
        write("a/b", b"a slash b");
        write("a b.css", b"p { }");
        write(".env", HIDDEN.as_bytes());
        fs::write(dir.path().join("outside.txt"), OUTSIDE).unwrap();
        // Links out of the directory, and one within it.
        symlink(dir.path().join("outside.txt"), root.join("out.txt")).unwrap();
        symlink(dir.path(), root.join("up")).unwrap();
        symlink(root.join("small.txt"), root.join("latest.txt")).unwrap();
        fs::create_dir(root.join("linked")).unwrap();
        symlink(
            dir.path().join("outside.txt"),
            root.join("linked/index.html"),
        )
        .unwrap();
        Site { dir }
    }

    /// The served directory, as a config value.
    fn root(&self) -> String {
        self.path().to_str().unwrap().to_string()
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("www")
    }
}

/// A proxy whose `targets` are `app` and whose `route./static/` serves
/// `site`'s files with `options`, then `more` config lines.
fn serving(app: &Backend, site: &Site, options: &str, more: &str) -> Proxy {
    start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\nroute./static/ = files {}{options}\n{more}",
            app.addr,
            site.root()
        )),
    )
}

/// A file's ETag, as the proxy makes it: its mtime and length in hex.
fn etag(len: usize) -> String {
    format!("\"{MODIFIED:x}-{len:x}\"")
}

fn last_modified() -> String {
    format_http_date(UNIX_EPOCH + Duration::from_secs(MODIFIED))
}

fn http_date(secs: u64) -> String {
    format_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Asserts a 200 with all of `expected` as its body and the file's
/// fields, showing the head (never the body) on failure.
#[track_caller]
fn assert_whole(r: &Response, expected: &[u8], content_type: &str) {
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(
        (r.body.len(), fnv(&r.body)),
        (expected.len(), fnv(expected)),
        "{}",
        r.head.raw
    );
    assert!(r.body == expected, "{}", r.head.raw);
    assert_eq!(
        r.header("content-type"),
        Some(content_type),
        "{}",
        r.head.raw
    );
    let len = expected.len().to_string();
    assert_eq!(r.header("content-length"), Some(len.as_str()));
    assert_eq!(r.header("etag"), Some(etag(expected.len()).as_str()));
    assert_eq!(r.header("last-modified"), Some(last_modified().as_str()));
    // An empty file has no part to ask for.
    let ranges = (!expected.is_empty()).then_some("bytes");
    assert_eq!(r.header("accept-ranges"), ranges, "{}", r.head.raw);
    assert!(r.head.has("date"), "{}", r.head.raw);
    assert!(!r.head.has("transfer-encoding"), "{}", r.head.raw);
}

#[test]
fn a_small_file_is_sent_whole_with_its_validators_and_the_connection_goes_on() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let proxy = serving(&app, &site, "", "");
    let small = pattern(SMALL);
    let mut client = proxy.connect();
    let r = client.get("/static/small.txt");
    assert_whole(&r, &small, "text/plain; charset=utf-8");
    assert!(!r.head.has("cache-control"), "{}", r.head.raw);
    assert!(!r.head.has("connection"), "{}", r.head.raw);
    // HEAD: the same head, no body; the next answer on the connection
    // would not parse if one had been sent.
    let r = client.head("/static/small.txt");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.header("content-length"), Some("20000"));
    assert_eq!(r.header("etag"), Some(etag(SMALL).as_str()));
    assert!(client.reader.buffered().is_empty());
    let r = client.get("/static/small.txt");
    assert_whole(&r, &small, "text/plain; charset=utf-8");
    // A link within the directory is followed; the type is its name's.
    let r = client.get("/static/latest.txt");
    assert_whole(&r, &small, "text/plain; charset=utf-8");
    assert_eq!(app.requests(), 0);
}

#[test]
fn a_large_file_is_sent_whole_by_the_kernel_and_the_connection_goes_on() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let proxy = serving(&app, &site, "", "");
    let large = pattern(LARGE);
    let mut client = proxy.connect();
    let r = client.get("/static/large.bin");
    assert_whole(&r, &large, "application/octet-stream");
    let r = client.head("/static/large.bin");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.header("content-length"), Some("1048576"));
    assert!(client.reader.buffered().is_empty());
    let r = client.get("/static/large.bin");
    assert_whole(&r, &large, "application/octet-stream");
    let r = client.get("/static/small.txt");
    assert_whole(&r, &pattern(SMALL), "text/plain; charset=utf-8");
    // Asked to close after it: all of it, then the end of the stream.
    client.send(b"GET /static/large.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let r = client.response();
    assert_whole(&r, &large, "application/octet-stream");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(client.is_closed());
    assert_eq!(app.requests(), 0);
}

#[test]
fn two_requests_sent_at_once_are_answered_in_order() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let proxy = serving(&app, &site, "", "");
    let mut client = proxy.connect();
    client.send(
        b"GET /static/large.bin HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /static/small.txt HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /static/ HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_whole(
        &client.response(),
        &pattern(LARGE),
        "application/octet-stream",
    );
    let r = client.head_response();
    assert_eq!((r.status, r.header("content-length")), (200, Some("20000")));
    let r = client.response();
    assert_eq!((r.status, r.body_str().as_str()), (200, "<h1>home</h1>"));
    assert_eq!(app.requests(), 0);
}

#[test]
fn a_directory_is_its_index_and_one_without_its_slash_is_redirected() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let proxy = serving(
        &app,
        &site,
        "",
        &format!("route./s = files {}\n", site.root()),
    );
    let mut client = proxy.connect();
    let r = client.get("/static/");
    assert_whole(&r, b"<h1>home</h1>", "text/html; charset=utf-8");
    let r = client.get("/static/docs/");
    assert_whole(&r, b"<h1>docs</h1>", "text/html; charset=utf-8");
    // With the query kept, and the connection (no body was sent).
    let r = client.get("/static/docs?q=1");
    assert_eq!(r.status, 301, "{}", r.head.raw);
    assert_eq!(r.header("location"), Some("/static/docs/?q=1"));
    let r = client.get("/static/docs/?q=1");
    assert_whole(&r, b"<h1>docs</h1>", "text/html; charset=utf-8");
    // A directory without an index, a file asked for as a directory.
    assert_eq!(client.get("/static/empty/").status, 404);
    assert_eq!(client.get("/static/small.txt/").status, 404);
    assert_eq!(client.get("/static/nothing.txt").status, 404);

    // A route without the trailing slash: its own path is the directory.
    let r = client.get("/s");
    assert_eq!(r.status, 301, "{}", r.head.raw);
    assert_eq!(r.header("location"), Some("/s/"));
    let r = client.get("/s?x=2");
    assert_eq!(r.header("location"), Some("/s/?x=2"));
    let r = client.get("/s/");
    assert_whole(&r, b"<h1>home</h1>", "text/html; charset=utf-8");
    let r = client.get("/s/small.txt");
    assert_whole(&r, &pattern(SMALL), "text/plain; charset=utf-8");
    let r = client.get("/s/docs");
    assert_eq!(r.header("location"), Some("/s/docs/"));
    assert_eq!(app.requests(), 0);
    // Whole segments: `/sx` is not under `/s`, nor `/static` under
    // `/static/`; both go to targets.
    for path in ["/sx/small.txt", "/static"] {
        let r = client.get(path);
        assert_eq!(r.header("x-backend"), Some("app"), "{path}");
    }
    assert_eq!(app.requests(), 2);
}

#[test]
fn with_autoindex_a_directory_without_an_index_is_listed_as_nginx_lists_it() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let list = site.path().join("list");
    fs::create_dir(&list).unwrap();
    fs::create_dir(list.join("sub")).unwrap();
    fs::write(list.join("x <y>.txt"), "12345").unwrap();
    fs::write(list.join(".hidden"), HIDDEN).unwrap();
    // A name a request could not name unrefused (400).
    fs::write(list.join("back\\slash.txt"), "x").unwrap();
    symlink(site.dir.path().join("outside.txt"), list.join("out.txt")).unwrap();
    symlink(site.path().join("small.txt"), list.join("in.txt")).unwrap();
    symlink(site.path().join(".env"), list.join("env")).unwrap();
    symlink(site.dir.path(), list.join("up")).unwrap();
    let fifo = std::ffi::CString::new(list.join("pipe").to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let proxy = serving(
        &app,
        &site,
        " autoindex",
        &format!("route./json/ = files {} autoindex=json\n", site.root()),
    );
    let mut client = proxy.connect();
    let r = client.get("/static/list/");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let html = r.body_str();
    assert!(
        html.contains("<title>Index of /static/list/</title>"),
        "{html}"
    );
    // Directories first; the name escaped, its link encoded.
    let sub = html.find("<a href=\"sub/\">sub/</a>").expect(&html);
    let named = html.find("<a href=\"x%20%3Cy%3E.txt\">x &lt;y&gt;.txt</a>");
    assert!(named.is_some_and(|at| at > sub), "{html}");
    // A link within the directory, with what it links to.
    let linked = html
        .lines()
        .find(|l| l.contains("href=\"in.txt\""))
        .expect(&html);
    assert!(linked.ends_with(&format!(" {SMALL}")), "{linked}");
    // Nothing the route would not serve by that name.
    for unlisted in [".hidden", "out.txt", "\"env\"", "\"up/\"", "pipe", "slash"] {
        assert!(!html.contains(unlisted), "{unlisted}: {html}");
    }
    // A HEAD says the length of the GET's listing.
    let r = client.head("/static/list/");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(html.len().to_string().as_str())
    );
    assert!(r.body.is_empty());
    // An index still wins; a directory without its `/` is still sent to it.
    assert_whole(
        &client.get("/static/docs/"),
        b"<h1>docs</h1>",
        "text/html; charset=utf-8",
    );
    assert_eq!(client.get("/static/list").status, 301);
    // As JSON.
    let r = client.get("/json/list/");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let json = r.body_str();
    assert!(
        json.starts_with("[\n{ \"name\":\"sub\", \"type\":\"directory\""),
        "{json}"
    );
    assert!(
        json.contains("{ \"name\":\"x <y>.txt\", \"type\":\"file\""),
        "{json}"
    );
    assert!(json.contains("\"size\":5 }"), "{json}");
    assert!(
        !json.contains("out.txt") && !json.contains(".hidden"),
        "{json}"
    );
    assert_eq!(app.requests(), 0);
}

#[test]
fn a_listing_reads_ten_thousand_names_at_most_and_says_it_was_cut() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let many = site.path().join("many");
    fs::create_dir(&many).unwrap();
    for i in 0..10_050 {
        File::create(many.join(format!("f{i:05}"))).unwrap();
    }
    // Hidden names count as read too.
    let dots = site.path().join("dots");
    fs::create_dir(&dots).unwrap();
    for i in 0..10_050 {
        File::create(dots.join(format!(".d{i:05}"))).unwrap();
    }
    let proxy = serving(&app, &site, " autoindex", "");
    let html = proxy.exchange(|c| c.get("/static/many/")).body_str();
    let listed = html
        .lines()
        .filter(|l| l.starts_with("<a href=\"f"))
        .count();
    assert_eq!(listed, 10_000);
    assert!(html.contains("(the first 10000 names read; more not shown)"));
    let hidden = proxy.exchange(|c| c.get("/static/dots/")).body_str();
    assert!(hidden.contains("more not shown"), "{hidden}");
    assert!(!hidden.contains(".d"), "{hidden}");
}

#[test]
fn hidden_names_decoded_slashes_and_links_out_are_not_found() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let proxy = serving(&app, &site, "", "");
    // The file `a/b` is there: `a%2Fb` still names nothing.
    let mut client = proxy.connect();
    assert_eq!(client.get("/static/a/b").body_str(), "a slash b");
    for path in [
        "/static/.env",
        "/static/%2Eenv",
        "/static/%2eenv",
        "/static/docs/.env",
        "/static/a%2Fb",
        "/static/a%2fb",
        "/static/out.txt",
        "/static/up/outside.txt",
        // An index that links out.
        "/static/linked/",
        "/static/linked/index.html",
        "/static/%zz",
        "/static/%4",
    ] {
        let r = client.get(path);
        assert_eq!(r.status, 404, "{path}: {}", r.head.raw);
        let body = r.body_str();
        assert!(!body.contains(OUTSIDE) && !body.contains(HIDDEN), "{path}");
    }
    // A link that leaves the directory and comes back into it names a
    // file under its real path: that one is served.
    let r = client.get("/static/up/www/small.txt");
    assert_whole(&r, &pattern(SMALL), "text/plain; charset=utf-8");
    assert_eq!(app.requests(), 0);
}

#[test]
fn dot_segments_and_nul_are_refused_before_routing_with_400() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let proxy = serving(&app, &site, "", "");
    for path in [
        "/static/../outside.txt",
        "/static/%2E%2E/outside.txt",
        "/static/docs/../../outside.txt",
        "/static/..%2Foutside.txt",
        "/static/docs%2F..%2F..%2Foutside.txt",
        "/static/./small.txt",
        // `%00` is refused as routes read paths, before a file is looked
        // for: a server that decodes it would read another name.
        "/static/small.txt%00.png",
        "/static/%00",
    ] {
        let r = proxy.get_on("x", path, &[]);
        assert_eq!(r.status, 400, "{path}: {}", r.head.raw);
        let body = r.body_str();
        assert!(!body.contains(OUTSIDE) && !body.contains(HIDDEN), "{path}");
    }
    assert_eq!(app.requests(), 0);
}

#[test]
fn a_fifo_is_not_found_and_not_waited_on() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let fifo = site.path().join("pipe");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
    let proxy = serving(&app, &site, "", "");
    let mut client = proxy.connect();
    // No writer ever opens it: a blocking open would hang the request
    // until the client's read timeout, and fail the test.
    assert_eq!(client.get("/static/pipe").status, 404);
    assert_eq!(client.get("/static/index.html").status, 200);
}

#[test]
fn validators_answer_conditionals_in_rfc_order() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let proxy = serving(&app, &site, "", "");
    let tag = etag(SMALL);
    let mut client = proxy.connect();
    let path = "/static/small.txt";
    for fields in [
        vec![("If-None-Match", tag.clone())],
        vec![("If-None-Match", format!("\"x\", W/{tag}"))],
        vec![("If-None-Match", "*".to_string())],
        vec![("If-Modified-Since", last_modified())],
        vec![("If-Modified-Since", http_date(MODIFIED + 60))],
    ] {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let r = client.get_with(path, &fields);
        assert_eq!(r.status, 304, "{fields:?}: {}", r.head.raw);
        assert_eq!(r.header("etag"), Some(tag.as_str()), "{fields:?}");
        assert_eq!(r.header("last-modified"), Some(last_modified().as_str()));
        assert!(
            !r.head.has("content-type") && !r.head.has("content-range"),
            "{}",
            r.head.raw
        );
        // No body: the next answer on the connection parses.
        assert!(client.reader.buffered().is_empty(), "{fields:?}");
    }
    // A HEAD is answered 304 too.
    let r = client.head_with(path, &[("If-None-Match", &tag)]);
    assert_eq!(r.status, 304);
    for fields in [
        vec![("If-None-Match", "\"other\"".to_string())],
        // If-None-Match wins over If-Modified-Since.
        vec![
            ("If-None-Match", "\"other\"".to_string()),
            ("If-Modified-Since", last_modified()),
        ],
        vec![("If-Modified-Since", http_date(MODIFIED - 60))],
        vec![("If-Match", tag.clone())],
        vec![("If-Match", "*".to_string())],
        vec![("If-Unmodified-Since", last_modified())],
    ] {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let r = client.get_with(path, &fields);
        assert_whole(&r, &pattern(SMALL), "text/plain; charset=utf-8");
    }
    for fields in [
        vec![("If-Match", "\"other\"".to_string())],
        // Compared strongly.
        vec![("If-Match", format!("W/{tag}"))],
        vec![("If-Unmodified-Since", http_date(MODIFIED - 60))],
        // If-Match is checked first, and fails before If-None-Match.
        vec![
            ("If-Match", "\"other\"".to_string()),
            ("If-None-Match", tag.clone()),
        ],
    ] {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let r = client.get_with(path, &fields);
        assert_eq!(r.status, 412, "{fields:?}: {}", r.head.raw);
    }
    // All on one connection.
    assert_eq!(client.get(path).status, 200);
    assert_eq!(app.requests(), 0);
}

#[test]
fn one_range_is_sent_as_a_part() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let proxy = serving(&app, &site, "", "");
    let (small, large) = (pattern(SMALL), pattern(LARGE));
    let mut client = proxy.connect();
    let part = |client: &mut Client, path: &str, range: &str| {
        let r = client.get_with(path, &[("Range", range)]);
        assert_eq!(r.status, 206, "{range}: {}", r.head.raw);
        r
    };
    let r = part(&mut client, "/static/small.txt", "bytes=10-19");
    assert_eq!(r.body, &small[10..20]);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/20000"));
    assert_eq!(r.header("content-length"), Some("10"));
    assert_eq!(r.header("etag"), Some(etag(SMALL).as_str()));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    // The last bytes, by suffix; past the end, cut at it.
    let r = part(&mut client, "/static/small.txt", "bytes=-100");
    assert_eq!(r.body, &small[SMALL - 100..]);
    assert_eq!(r.header("content-range"), Some("bytes 19900-19999/20000"));
    let r = part(&mut client, "/static/small.txt", "bytes=19990-30000");
    assert_eq!(r.body, &small[19990..]);
    // From an offset of the large file, by sendfile: to its end, and a
    // piece larger than what goes with the head.
    let r = part(&mut client, "/static/large.bin", "bytes=700001-");
    assert!(r.body == large[700_001..], "{}", r.head.raw);
    assert_eq!(
        r.header("content-range"),
        Some("bytes 700001-1048575/1048576")
    );
    assert_eq!(r.header("content-length"), Some("348575"));
    let r = part(&mut client, "/static/large.bin", "bytes=100000-299999");
    assert!(r.body == large[100_000..300_000], "{}", r.head.raw);
    let r = part(&mut client, "/static/large.bin", "bytes=1048000-1048009");
    assert_eq!(r.body, &large[1_048_000..1_048_010]);
    // A HEAD's range is ignored (RFC 9110 §14.2: ranges are a GET's), as
    // the cache ignores it: the whole file's head.
    let r = client.head_with("/static/large.bin", &[("Range", "bytes=0-99")]);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.header("content-length"), Some("1048576"));
    assert_eq!(r.header("content-range"), None);

    // If-Range with another validator: the whole file; with its own,
    // the part.
    let fields = [("Range", "bytes=0-9"), ("If-Range", "\"old\"")];
    assert_whole(
        &client.get_with("/static/small.txt", &fields),
        &small,
        "text/plain; charset=utf-8",
    );
    let tag = etag(SMALL);
    let fields = [("Range", "bytes=0-9"), ("If-Range", tag.as_str())];
    assert_eq!(client.get_with("/static/small.txt", &fields).status, 206);
    // Past the end: 416, with the length.
    for path in ["/static/small.txt", "/static/large.bin"] {
        let r = client.get_with(path, &[("Range", "bytes=5000000-")]);
        assert_eq!(r.status, 416, "{path}: {}", r.head.raw);
        let len = if path.ends_with("txt") { SMALL } else { LARGE };
        let expected = format!("bytes */{len}");
        assert_eq!(r.header("content-range"), Some(expected.as_str()));
    }
    // And the connection is still good.
    assert_whole(
        &client.get("/static/small.txt"),
        &small,
        "text/plain; charset=utf-8",
    );
    assert_eq!(app.requests(), 0);
}

#[test]
fn other_methods_are_answered_405_and_a_body_closes_the_connection() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let proxy = serving(&app, &site, "", "");
    let mut client = proxy.connect();
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let r = client.request(method, "/static/small.txt", &[], b"");
        assert_eq!(r.status, 405, "{method}: {}", r.head.raw);
        let allow: Vec<&str> = r.head.get_all("allow").collect();
        assert_eq!(allow, ["GET, HEAD"], "{method}: {}", r.head.raw);
        assert_ne!(r.header("connection"), Some("close"), "{method}");
    }
    // Still open: none had a body.
    assert_eq!(client.get("/static/index.html").status, 200);
    // One with a body: its body is not read, and could not be told from
    // a next request, so the connection closes.
    let r = client.post(
        "/static/small.txt",
        b"GET /static/.env HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(r.status, 405, "{}", r.head.raw);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(client.is_closed());
    assert_eq!(app.requests(), 0);
}

#[test]
fn with_fallback_what_is_not_there_goes_to_the_pool() {
    let (main, app, site) = (Backend::echo("main"), Backend::echo("app"), Site::new());
    let mut proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\npool.app = {}\nroute./static/ = files {} fallback=app\n",
            main.addr,
            app.addr,
            site.root()
        )),
    );
    let mut client = proxy.connect();
    let r = client.get("/static/missing.txt?v=2");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.header("x-backend"), Some("app"));
    assert!(
        r.body_str()
            .starts_with("app GET /static/missing.txt?v=2 len=0 "),
        "{}",
        r.body_str()
    );
    assert_eq!(app.requests(), 1);
    // What is there is served from the directory, on the same connection.
    let r = client.get("/static/small.txt");
    assert_whole(&r, &pattern(SMALL), "text/plain; charset=utf-8");
    assert!(!r.head.has("x-backend"));
    let r = client.get("/static/");
    assert_eq!(r.body_str(), "<h1>home</h1>");
    // A directory without its slash is still redirected.
    assert_eq!(client.get("/static/docs").status, 301);
    assert_eq!(app.requests(), 1);
    // A name the directory refuses, a directory without an index, HEAD
    // for a missing file: the pool's.
    for path in ["/static/.env", "/static/empty/", "/static/out.txt"] {
        let r = client.get(path);
        assert_eq!(r.header("x-backend"), Some("app"), "{path}: {}", r.head.raw);
        assert!(!r.body_str().contains(HIDDEN) && !r.body_str().contains(OUTSIDE));
    }
    let r = client.head("/static/gone.txt");
    assert_eq!((r.status, r.header("x-backend")), (200, Some("app")));
    // Another method goes to the pool, with its body, even for a file
    // that is there.
    let r = client.post("/static/small.txt", b"form=1");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.header("x-backend"), Some("app"));
    let seen = app.seen();
    let last = seen.last().unwrap();
    assert_eq!((last.method(), last.path()), ("POST", "/static/small.txt"));
    assert_eq!(last.body, b"form=1");
    // Every request the pool saw was one the directory did not answer.
    let paths: Vec<&str> = seen.iter().map(|s| s.path()).collect();
    assert_eq!(
        paths,
        [
            "/static/missing.txt?v=2",
            "/static/.env",
            "/static/empty/",
            "/static/out.txt",
            "/static/gone.txt",
            "/static/small.txt"
        ]
    );
    assert_eq!(main.requests(), 0);
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    // The log tells the two apart: the pool's backend, or none.
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 9, "{lines:#?}");
    let line = |request: &str| {
        let quoted = format!("\"{request} HTTP/1.1\" ");
        let found = lines.iter().find(|l| l.contains(&quoted));
        found
            .unwrap_or_else(|| panic!("{request}: {lines:#?}"))
            .clone()
    };
    let from_disk = line("GET /static/small.txt");
    assert!(from_disk.contains("\" 200 20000 "), "{from_disk}");
    assert!(from_disk.contains(" upstream=- "), "{from_disk}");
    assert!(from_disk.ends_with(" pool=app"), "{from_disk}");
    let relayed = line("GET /static/missing.txt?v=2");
    let upstream = format!(" upstream={} ", app.addr);
    assert!(relayed.contains(&upstream), "{relayed}");
    assert!(relayed.ends_with(" pool=app"), "{relayed}");
}

/// Asserts that `r` is a multipart 206 of the parts `spans` of `file`
/// (inclusive), each saying `content_type` and its range of `file`'s.
fn assert_parts(r: &Response, file: &[u8], content_type: &str, spans: &[(usize, usize)]) {
    assert_eq!(r.status, 206, "{}", r.head.raw);
    assert!(!r.head.has("content-range"), "{}", r.head.raw);
    let parts = multipart(r);
    assert_eq!(parts.len(), spans.len(), "{}", r.head.raw);
    for ((fields, bytes), &(start, end)) in parts.iter().zip(spans) {
        let range = format!("bytes {start}-{end}/{}", file.len());
        let expected = [
            ("content-type".to_string(), content_type.to_string()),
            ("content-range".to_string(), range),
        ];
        assert_eq!(fields, &expected);
        assert!(bytes[..] == file[start..=end], "{start}-{end}");
    }
}

#[test]
fn several_ranges_are_one_multipart_answer_cut_from_the_file() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let proxy = serving(&app, &site, "", "");
    let (small, large) = (pattern(SMALL), pattern(LARGE));
    let mut client = proxy.connect();
    // Small: read and sent with the head in one write.
    let text = "text/plain; charset=utf-8";
    let r = client.get_with("/static/small.txt", &[("Range", "bytes=0-9,20-29,-5")]);
    assert_parts(&r, &small, text, &[(0, 9), (20, 29), (19995, 19999)]);
    assert_eq!(r.header("etag"), Some(etag(SMALL).as_str()));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    // Large: the parts from the file by `sendfile`, between their frames,
    // in the order asked; the connection goes on, so the length was
    // exact.
    let binary = "application/octet-stream";
    let r = client.get_with(
        "/static/large.bin",
        &[("Range", "bytes=1048000-,0-99,100000-299999")],
    );
    let spans = [(1_048_000, LARGE - 1), (0, 99), (100_000, 299_999)];
    assert_parts(&r, &large, binary, &spans);
    assert_eq!(client.get("/static/small.txt").body, small);
    // With `If-Range` its own tag, the parts; another, the whole file.
    let tag = etag(LARGE);
    let fields = [("Range", "bytes=0-0,2-2"), ("If-Range", tag.as_str())];
    let r = client.get_with("/static/large.bin", &fields);
    assert_parts(&r, &large, binary, &[(0, 0), (2, 2)]);
    let fields = [("Range", "bytes=0-0,2-2"), ("If-Range", "\"old\"")];
    assert_whole(
        &client.get_with("/static/large.bin", &fields),
        &large,
        binary,
    );
    // Ranges that overlap, or more than 32, are answered with the whole
    // file, as the cache answers them.
    let r = client.get_with("/static/small.txt", &[("Range", "bytes=0-9,5-20")]);
    assert_whole(&r, &small, text);
    let many: Vec<String> = (0..33).map(|i| format!("{}-{}", 2 * i, 2 * i)).collect();
    let many = format!("bytes={}", many.join(","));
    assert_whole(
        &client.get_with("/static/small.txt", &[("Range", &many)]),
        &small,
        text,
    );
    // One left of two (the other past the end): a plain 206.
    let r = client.get_with("/static/small.txt", &[("Range", "bytes=0-9,5000000-")]);
    assert_eq!(r.status, 206, "{}", r.head.raw);
    assert_eq!(r.header("content-range"), Some("bytes 0-9/20000"));
    assert_eq!(r.body, &small[..10]);
    // A HEAD's ranges are ignored.
    let r = client.head_with("/static/small.txt", &[("Range", "bytes=0-9,20-29")]);
    assert_eq!((r.status, r.header("content-length")), (200, Some("20000")));
    assert_eq!(app.requests(), 0);
}

#[test]
fn max_age_and_the_top_level_response_fields_are_on_file_answers() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let proxy = serving(
        &app,
        &site,
        " max_age=1h",
        "response_header.X-Frame-Options = DENY\nresponse_header.Server =\n",
    );
    let mut client = proxy.connect();
    let tag = etag(SMALL);
    let answers = [
        (200, client.get("/static/small.txt")),
        (200, client.head("/static/small.txt")),
        (
            206,
            client.get_with("/static/large.bin", &[("Range", "bytes=1-2")]),
        ),
        (
            304,
            client.get_with("/static/small.txt", &[("If-None-Match", &tag)]),
        ),
        (301, client.get("/static/docs")),
        (404, client.get("/static/nothing")),
        (405, client.request("PUT", "/static/small.txt", &[], b"")),
        (
            412,
            client.get_with("/static/small.txt", &[("If-Match", "\"x\"")]),
        ),
        (
            416,
            client.get_with("/static/small.txt", &[("Range", "bytes=999999-")]),
        ),
    ];
    for (status, r) in &answers {
        assert_eq!(r.status, *status, "{}", r.head.raw);
        let frame: Vec<&str> = r.head.get_all("x-frame-options").collect();
        assert_eq!(frame, ["DENY"], "{status}: {}", r.head.raw);
        assert!(!r.head.has("server"), "{status}: {}", r.head.raw);
    }
    for (status, r) in &answers[..4] {
        let cache: Vec<&str> = r.head.get_all("cache-control").collect();
        assert_eq!(cache, ["max-age=3600"], "{status}: {}", r.head.raw);
        // As nginx's `expires 1h`: `Expires` beside it, an hour past the
        // answer's `Date`, on its 304 too.
        assert_eq!(
            expires_after_date(r),
            Some(3600),
            "{status}: {}",
            r.head.raw
        );
    }
    for (status, r) in &answers[4..] {
        assert!(!r.head.has("expires"), "{status}: {}", r.head.raw);
    }
    assert_eq!(app.requests(), 0);
}

/// How many seconds the answer's `Expires` is past its `Date`, when it
/// has one of each.
fn expires_after_date(r: &Response) -> Option<u64> {
    let mut expires = r.head.get_all("expires");
    let (Some(expires), None) = (expires.next(), expires.next()) else {
        return None;
    };
    let date = parse_http_date(r.header("date")?)?;
    parse_http_date(expires)?
        .duration_since(date)
        .ok()
        .map(|d| d.as_secs())
}

#[test]
fn immutable_files_say_their_expiry_too() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let proxy = serving(&app, &site, " max_age=365d immutable", "");
    let r = proxy.get_on("x", "/static/small.txt", &[]);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(
        r.header("cache-control"),
        Some("max-age=31536000, immutable")
    );
    assert_eq!(expires_after_date(&r), Some(31_536_000), "{}", r.head.raw);
}

#[test]
fn a_response_field_set_at_the_top_level_replaces_the_files_own() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let proxy = serving(
        &app,
        &site,
        " max_age=1d",
        "response_header.Cache-Control = no-store\n",
    );
    let r = proxy.get_on("x", "/static/small.txt", &[]);
    assert_eq!(r.status, 200);
    let cache: Vec<&str> = r.head.get_all("cache-control").collect();
    assert_eq!(cache, ["no-store"], "{}", r.head.raw);
    // The route's `Expires` would tell the caches that read only it to
    // keep what the operator's field says not to.
    assert!(!r.head.has("expires"), "{}", r.head.raw);
    assert_eq!(r.header("etag"), Some(etag(SMALL).as_str()));
    assert_eq!(r.body, pattern(SMALL));
}

#[test]
fn file_answers_are_logged_with_their_bytes_and_no_upstream() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let mut proxy = serving(&app, &site, "", "");
    let mut client = proxy.connect();
    assert_eq!(client.get("/static/small.txt").status, 200);
    assert_eq!(client.get("/static/large.bin?log=1").status, 200);
    assert_eq!(client.head("/static/index.html").status, 200);
    let r = client.get_with("/static/large.bin", &[("Range", "bytes=10-19")]);
    assert_eq!(r.status, 206);
    assert_eq!(client.get("/static/missing").status, 404);
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 5, "{lines:#?}");
    for (request, status, bytes) in [
        ("GET /static/small.txt", "200", "20000"),
        ("GET /static/large.bin?log=1", "200", "1048576"),
        ("HEAD /static/index.html", "200", "0"),
        ("GET /static/large.bin", "206", "10"),
        ("GET /static/missing", "404", ""),
    ] {
        let quoted = format!("\"{request} HTTP/1.1\" {status} {bytes}");
        let line = (lines.iter())
            .find(|l| l.contains(&quoted))
            .unwrap_or_else(|| panic!("{quoted}: {lines:#?}"));
        assert!(line.contains(" upstream=- cache=- "), "{line}");
    }
}

#[test]
fn inverso_check_names_the_directory_its_max_age_and_fallback() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let real = site.path().canonicalize().unwrap();
    let (code, out, err) = inverso_check(
        &format!(
            "targets = {}\npool.app = 127.0.0.1:1\n\
             route./static/ = files {} max_age=10m fallback=app\n\
             route./plain/ = files {}\n",
            app.addr,
            site.root(),
            site.root()
        ),
        "warn",
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    let dir = real.display();
    assert!(
        out.contains(&format!(
            "# route /static/ -> files in {dir}, Cache-Control: max-age=600, the rest to app"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("# route /plain/ -> files in {dir}\n")),
        "{out}"
    );
}

#[test]
fn a_name_is_found_however_it_is_spelled_and_on_whatever_route() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let proxy = serving(
        &app,
        &site,
        "",
        &format!("route.cdn.example = files {}\n", site.root()),
    );
    let small = pattern(SMALL);
    let mut client = proxy.connect();
    for path in [
        "/static/sm%61ll.txt",
        "/st%61tic/small.txt",
        "/static//small.txt",
        "//static/small.txt",
        "/static/small.txt?v=1&w",
    ] {
        assert_whole(&client.get(path), &small, "text/plain; charset=utf-8");
    }
    let r = client.get("/static/a%20b.css");
    assert_whole(&r, b"p { }", "text/css; charset=utf-8");
    // The absolute form: its path is the file's, and a redirect keeps
    // the client's path.
    client.send(b"GET http://x.example/static/small.txt HTTP/1.1\r\nHost: x.example\r\n\r\n");
    assert_whole(&client.response(), &small, "text/plain; charset=utf-8");
    client.send(b"GET http://x.example/static/docs?q=1 HTTP/1.1\r\nHost: x.example\r\n\r\n");
    let r = client.response();
    assert_eq!(
        r.header("location"),
        Some("/static/docs/?q=1"),
        "{}",
        r.head.raw
    );
    // A route for a host alone: its whole site is the directory.
    let get_on = |client: &mut Client, path: &str| {
        client.send(format!("GET {path} HTTP/1.1\r\nHost: cdn.example\r\n\r\n").as_bytes());
        client.response()
    };
    assert_whole(
        &get_on(&mut client, "/small.txt"),
        &small,
        "text/plain; charset=utf-8",
    );
    assert_eq!(get_on(&mut client, "/").body_str(), "<h1>home</h1>");
    let r = get_on(&mut client, "/docs?a=b");
    assert_eq!(r.header("location"), Some("/docs/?a=b"), "{}", r.head.raw);
    assert_eq!(get_on(&mut client, "/.env").status, 404);
    assert_eq!(app.requests(), 0);
}

#[test]
fn http_1_0_and_a_get_with_a_body_close_after_the_file() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let proxy = serving(&app, &site, "", "");
    let (small, large) = (pattern(SMALL), pattern(LARGE));
    // HTTP/1.0 without keep-alive: the file, then the end of the stream.
    for (path, bytes, content_type) in [
        ("/static/small.txt", &small, "text/plain; charset=utf-8"),
        ("/static/large.bin", &large, "application/octet-stream"),
    ] {
        let mut client = proxy.connect();
        client.send(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes());
        let r = client.response();
        assert_whole(&r, bytes, content_type);
        assert!(client.is_closed(), "{path}");
    }
    // HTTP/1.0 asking to keep it alive: kept.
    let mut client = proxy.connect();
    client.send(b"GET /static/index.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = client.response();
    assert_eq!(r.body_str(), "<h1>home</h1>");
    assert!(
        r.head.has_token("connection", "keep-alive"),
        "{}",
        r.head.raw
    );
    client.send(b"GET /static/index.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(client.response().status, 200);
    // A GET with a body: the body is never read as the next request.
    let mut client = proxy.connect();
    let smuggled = b"GET /static/.env HTTP/1.1\r\nHost: x\r\n\r\n";
    let r = client.request("GET", "/static/small.txt", &[], smuggled);
    assert_whole(&r, &small, "text/plain; charset=utf-8");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(client.is_closed());
    assert_eq!(app.requests(), 0);
}

/// ann's password is `secret` (`htpasswd`'s MD5-crypt).
const USERS: &str = "ann:$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/\n";

#[test]
fn files_behind_a_sign_in_or_an_access_list_stay_behind_it() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let users = site.dir.path().join("htpasswd");
    fs::write(&users, USERS).unwrap();
    let proxy = serving(
        &app,
        &site,
        "",
        &format!(
            "auth_basic = Staff\nauth_basic_user_file = {}\n\
             request_id_header = X-Request-Id\n",
            users.display()
        ),
    );
    let mut client = proxy.connect();
    let r = client.get("/static/small.txt");
    assert_eq!(r.status, 401, "{}", r.head.raw);
    assert!(r.body.len() < SMALL, "{}", r.head.raw);
    let r = client.get_with(
        "/static/small.txt",
        &[("Authorization", "Basic YW5uOnNlY3JldA==")],
    );
    assert_whole(&r, &pattern(SMALL), "text/plain; charset=utf-8");
    // The request's ID goes back with the file too.
    let id = r.header("x-request-id").unwrap_or_default();
    assert!(!id.is_empty(), "{}", r.head.raw);
    assert_eq!(app.requests(), 0);

    let denied = serving(&app, &site, "", "deny_from = 127.0.0.0/8\n");
    let r = denied.get_on("x", "/static/small.txt", &[]);
    assert_eq!(r.status, 403, "{}", r.head.raw);
    assert!(r.body.len() < 1000);
}

#[test]
fn a_directory_s_redirect_never_leads_to_another_host() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let proxy = serving(
        &app,
        &site,
        "",
        &format!("route.cdn.example = files {}\n", site.root()),
    );
    let mut client = proxy.connect();
    // `//static/docs/` would be the host `static` to a browser: the path
    // goes back as routes read it, `//` merged.
    for (path, location) in [
        ("//static/docs", "/static/docs/"),
        ("///static/docs?q=1", "/static/docs/?q=1"),
        ("/static//docs", "/static/docs/"),
    ] {
        let r = client.get(path);
        assert_eq!(r.status, 301, "{path}: {}", r.head.raw);
        assert_eq!(r.header("location"), Some(location), "{path}");
    }
    for (path, location) in [("//docs", "/docs/"), ("//%64ocs", "/docs/")] {
        client.send(format!("GET {path} HTTP/1.1\r\nHost: cdn.example\r\n\r\n").as_bytes());
        let r = client.response();
        assert_eq!(r.status, 301, "{path}: {}", r.head.raw);
        assert_eq!(r.header("location"), Some(location), "{path}");
    }
}

#[test]
fn an_empty_file_and_files_either_side_of_the_writev_size_are_sent_whole() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let at = UNIX_EPOCH + Duration::from_secs(MODIFIED);
    for (name, len) in [
        ("empty.txt", 0),
        ("edge.bin", 32 * 1024),
        ("over.bin", 32 * 1024 + 1),
    ] {
        let path = site.path().join(name);
        fs::write(&path, pattern(len)).unwrap();
        let file = File::options().write(true).open(&path).unwrap();
        file.set_modified(at).unwrap();
    }
    let proxy = serving(&app, &site, "", "");
    let mut client = proxy.connect();
    let r = client.get("/static/empty.txt");
    assert_whole(&r, b"", "text/plain; charset=utf-8");
    // Nothing to send a part of: the whole, as nginx sends it.
    let r = client.get_with("/static/empty.txt", &[("Range", "bytes=0-")]);
    assert_whole(&r, b"", "text/plain; charset=utf-8");
    for (path, len) in [
        ("/static/edge.bin", 32 * 1024),
        ("/static/over.bin", 32 * 1024 + 1),
    ] {
        assert_whole(&client.get(path), &pattern(len), "application/octet-stream");
        let r = client.get_with(path, &[("Range", "bytes=1-")]);
        assert_eq!(r.status, 206, "{path}: {}", r.head.raw);
        assert_eq!(r.body, &pattern(len)[1..], "{path}");
    }
    assert_whole(
        &client.get("/static/empty.txt"),
        b"",
        "text/plain; charset=utf-8",
    );
}

#[test]
fn a_missing_file_is_answered_with_the_404_page_of_error_pages() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let pages = tempfile::tempdir().unwrap();
    fs::write(pages.path().join("404.html"), "<h1>no such page</h1>").unwrap();
    fs::write(pages.path().join("405.html"), "<h1>not so</h1>").unwrap();
    let more = format!("error_pages = {}\n", pages.path().display());
    let proxy = serving(&app, &site, "", &more);
    let mut client = proxy.connect();
    let r = client.get("/static/nothing.txt");
    assert_eq!(r.status, 404, "{}", r.head.raw);
    assert_eq!(r.body_str(), "<h1>no such page</h1>");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let r = client.request("PUT", "/static/small.txt", &[], b"");
    assert_eq!((r.status, r.body_str().as_str()), (405, "<h1>not so</h1>"));
    assert_whole(
        &client.get("/static/small.txt"),
        &pattern(SMALL),
        "text/plain; charset=utf-8",
    );
    // Nor is the page said to be unused.
    let conf = format!(
        "targets = {}\nroute./static/ = files {}\n{more}",
        app.addr,
        site.root()
    );
    let (code, _, stderr) = inverso_check(&conf, "warn");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("not used"), "{stderr}");
}

#[test]
fn a_single_page_application_gets_its_index_for_every_path_it_routes_itself() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let proxy = serving(&app, &site, " fallback=/index.html", "");
    let mut client = proxy.connect();
    for path in [
        "/static/account/settings",
        "/static/nothing.txt",
        "/static/.env",
    ] {
        let r = client.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.head.raw);
        assert_eq!(r.body, b"<h1>home</h1>", "{path}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert!(!r.body_str().contains(HIDDEN));
    }
    // What is there is itself, and a directory still gets its slash.
    assert_eq!(client.get("/static/small.txt").body, pattern(SMALL));
    assert_eq!(client.get("/static/docs").status, 301);
    // Its validators are the index's: a client's copy is current.
    let etag = etag(b"<h1>home</h1>".len());
    let r = client.get_with("/static/deep/link", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304, "{}", r.head.raw);
    // No pool behind it: another method is refused, and nothing reached
    // the backend.
    client.send(b"POST /static/form HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(client.response().status, 405);
    assert_eq!(app.requests(), 0);
}

#[test]
fn a_fallback_file_that_is_not_there_is_a_configuration_error() {
    let site = Site::new();
    let text = format!(
        "targets = 127.0.0.1:9\nroute./ = files {} fallback=/app.html\n",
        site.root()
    );
    let mut loader = inverso::config::Loader::new();
    loader.file("proxy.conf", &text).unwrap();
    let e = loader.build().map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("proxy.conf:2:"), "{e}");
    assert!(e.contains("fallback=/app.html: no such file in"), "{e}");
}

#[test]
fn with_gzip_a_listing_goes_compressed_to_who_takes_it() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let list = site.path().join("list");
    fs::create_dir(&list).unwrap();
    for i in 0..100 {
        fs::write(list.join(format!("file-{i:03}.txt")), "x").unwrap();
    }
    let text = format!(
        "targets = {}\nroute./static/ = files {} autoindex\ngzip = true\n",
        app.addr,
        site.root()
    );
    let proxy = start_proxy(&[], from_file(&text));
    let mut client = proxy.connect();
    let plain = client.get("/static/list/");
    assert_eq!(plain.status, 200, "{}", plain.head.raw);
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    let gz = ("Accept-Encoding", "gzip");
    let r = client.get_with("/static/list/", &[gz]);
    assert_eq!(r.header("content-encoding"), Some("gzip"), "{}", r.head.raw);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(r.body.len() < plain.body.len() / 2, "{}", r.body.len());
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    // The same listing but for the times, which may have moved on.
    let lines = |b: &[u8]| String::from_utf8_lossy(b).lines().count();
    assert_eq!(lines(&unzipped), lines(&plain.body));
    assert!(String::from_utf8_lossy(&unzipped).contains("file-099.txt"));
    // Its HEAD says the coding, and no length.
    let h = client.head_with("/static/list/", &[gz]);
    assert_eq!(h.header("content-encoding"), Some("gzip"));
    assert_eq!(h.header("content-length"), None, "{}", h.head.raw);
}

#[test]
fn with_gzip_a_text_file_goes_compressed_to_who_takes_it() {
    let (app, site) = (Backend::echo("app"), Site::new());
    let text = format!(
        "targets = {}\nroute./static/ = files {}\ngzip = true\n",
        app.addr,
        site.root()
    );
    let proxy = start_proxy(&[], from_file_with_admin(&text));
    let mut client = proxy.connect();
    let gz = ("Accept-Encoding", "gzip");
    let r = client.get_with("/static/small.txt", &[gz]);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(
        r.header("accept-ranges"),
        None,
        "ranges of the file, not of this"
    );
    let weak = format!("W/{}", etag(SMALL));
    assert_eq!(r.header("etag"), Some(weak.as_str()));
    assert!(r.body.len() < SMALL / 2, "{}", r.body.len());
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert!(plain == pattern(SMALL));
    // Its HEAD says the coding, and no length: that would take
    // compressing it all.
    let h = client.head_with("/static/small.txt", &[gz]);
    assert_eq!(h.header("content-encoding"), Some("gzip"));
    assert_eq!(h.header("content-length"), None, "{}", h.head.raw);
    assert_eq!(h.header("etag"), Some(weak.as_str()));
    // A client that does not take gzip gets the file, told it varies.
    let r = client.get("/static/small.txt");
    assert_whole_varying(&r);
    // The weak tag still makes a 304, which varies too, and names the
    // tag its 200 would.
    let r = client.get_with("/static/small.txt", &[gz, ("If-None-Match", &weak)]);
    assert_eq!(r.status, 304, "{}", r.head.raw);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(r.header("etag"), Some(weak.as_str()));
    // A weak tag is no ground for a range: the whole, compressed.
    let r = client.get_with(
        "/static/small.txt",
        &[gz, ("Range", "bytes=0-9"), ("If-Range", &weak)],
    );
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    // HTTP/1.0, as for relayed answers: not compressed.
    client.send(b"GET /static/small.txt HTTP/1.0\r\nAccept-Encoding: gzip\r\nConnection: keep-alive\r\n\r\n");
    let r = client.response();
    assert_eq!(r.header("content-encoding"), None, "{}", r.head.raw);
    assert_eq!(r.body.len(), SMALL);
    // A range is of the file, sent as it is.
    let r = client.get_with("/static/small.txt", &[gz, ("Range", "bytes=0-9")]);
    assert_eq!((r.status, r.body.len()), (206, 10), "{}", r.head.raw);
    assert_eq!(r.header("content-encoding"), None);
    // A type gzip_types does not list goes as it is, and does not vary.
    let r = client.get_with("/static/large.bin", &[gz]);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), None);
    assert_eq!(r.body.len(), LARGE);
    // The two answers compressed (the first GET, the one with a weak
    // If-Range) are counted as relayed ones are.
    let admin = proxy.handle().admin_addr().unwrap();
    let metrics = one_request(admin, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let text = metrics.body_str();
    let bytes_in = format!("inverso_gzip_bytes_in_total {}", 2 * SMALL);
    for counted in ["inverso_gzip_responses_total 2", &bytes_in] {
        assert!(text.lines().any(|l| l == counted), "{counted}: {text}");
    }
}

/// `small.txt` whole and uncompressed, its answer saying it varies.
fn assert_whole_varying(r: &Response) {
    assert_whole(r, &pattern(SMALL), "text/plain; charset=utf-8");
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
}

#[test]
fn an_if_range_date_from_a_gzip_client_gets_no_part_of_the_plain_file() {
    // The compressed 200 and the plain file share one Last-Modified: a
    // part of the plain file, for that date, would be spliced onto the
    // gzip bytes the client holds (the cache answers this whole).
    let (app, site) = (Backend::echo("app"), Site::new());
    let text = format!(
        "targets = {}\nroute./static/ = files {}\ngzip = true\n",
        app.addr,
        site.root()
    );
    let proxy = start_proxy(&[], from_file(&text));
    let mut client = proxy.connect();
    let gz = ("Accept-Encoding", "gzip");
    let first = client.get_with("/static/small.txt", &[gz]);
    assert_eq!(first.header("content-encoding"), Some("gzip"));
    let date = first.header("last-modified").unwrap().to_string();
    let r = client.get_with(
        "/static/small.txt",
        &[gz, ("Range", "bytes=100-"), ("If-Range", &date)],
    );
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.header("content-encoding"), Some("gzip"), "{}", r.head.raw);
}

#[test]
fn an_svgz_is_sent_as_the_gzip_it_is_not_compressed_again() {
    // `.svgz` is an SVG gzipped (image/svg+xml, which gzip_types lists):
    // browsers draw it only with `Content-Encoding: gzip`, and with
    // `gzip` on it must not be compressed a second time.
    let (app, site) = (Backend::echo("app"), Site::new());
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\">{}</svg>",
        "<g/>".repeat(500)
    );
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut encoder, svg.as_bytes()).unwrap();
    let svgz = encoder.finish().unwrap();
    fs::write(site.path().join("logo.svgz"), &svgz).unwrap();
    let text = format!(
        "targets = {}\nroute./static/ = files {}\ngzip = true\ngzip_min_length = 20\n",
        app.addr,
        site.root()
    );
    let proxy = start_proxy(&[], from_file(&text));
    let mut client = proxy.connect();
    let r = client.get_with("/static/logo.svgz", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.header("content-type"), Some("image/svg+xml"));
    assert_eq!(r.header("content-encoding"), Some("gzip"), "{}", r.head.raw);
    assert!(r.body == svgz, "compressed again: {}", r.head.raw);
}
