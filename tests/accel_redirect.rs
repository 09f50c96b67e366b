//! `X-Accel-Redirect` over real sockets: a backend that checked a client
//! may have a file names it, and the proxy sends it from an `internal`
//! `files` route in the answer's place, with the backend's fields for a
//! download, as nginx does for Django's, Rails' and PHP's protected files.

mod support;

use std::fs;
use std::io::Write;
use std::time::Duration;
use support::*;

/// A backend that answers `/download/<name>` with an empty 200 naming
/// `/protected/<name>`, and anything else with its path.
fn app() -> Backend {
    Backend::start("app", |seen, out| {
        match seen.path().strip_prefix("/download/") {
            Some(name) => {
                let to = format!("/protected/{name}");
                let fields = [
                    ("X-Accel-Redirect", to.as_str()),
                    ("Content-Type", "application/pdf"),
                    ("Content-Disposition", "attachment; filename=\"report.pdf\""),
                    ("Cache-Control", "public, max-age=60"),
                    ("X-App", "not passed on"),
                ];
                respond(out, 200, &fields, b"");
            }
            None => {
                let fields = [("Cache-Control", "max-age=60")];
                respond(out, 200, &fields, seen.path().as_bytes());
            }
        }
        Action::KeepAlive
    })
}

/// A directory with `report.pdf` (1 KiB of a pattern), and the proxy in
/// front of `app` with an internal `files` route on it at `/protected/`
/// (with `options`), and a cache when `cached`.
fn setup(app: &Backend, options: &str, cached: bool) -> (tempfile::TempDir, Proxy) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("report.pdf"), body(1024)).unwrap();
    let text = format!(
        "targets = {}\nroute./protected/ = files {} internal{options}\n",
        app.addr,
        dir.path().display()
    );
    let tweak = from_file(&text);
    let proxy = start_proxy(&[], move |c| {
        tweak(c);
        if cached {
            c.cache_size = 1 << 20;
        }
    });
    (dir, proxy)
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

#[test]
fn the_file_a_backend_names_goes_in_its_answer_s_place() {
    let app = app();
    let (_dir, mut proxy) = setup(&app, "", false);
    let mut client = proxy.connect();
    let r = client.get("/download/report.pdf");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert!(r.body == body(1024));
    assert_eq!(r.header("content-type"), Some("application/pdf"));
    let disposition = "attachment; filename=\"report.pdf\"";
    assert_eq!(r.header("content-disposition"), Some(disposition));
    assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(r.header("x-accel-redirect"), None);
    assert_eq!(r.header("x-app"), None);
    assert!(r.header("etag").is_some(), "{}", r.head.raw);
    // A download resumed: a range of the file, on the same connection.
    let r = client.get_with("/download/report.pdf", &[("Range", "bytes=1000-")]);
    assert_eq!(r.status, 206, "{}", r.head.raw);
    assert_eq!(r.body, &body(1024)[1000..]);
    // A HEAD stays one.
    let r = client.head("/download/report.pdf");
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("content-length"), Some("1024"));
    // Other answers of the backend go on as they are.
    assert_eq!(client.get("/page").body, b"/page");
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert!(
        lines[0].contains("\"GET /download/report.pdf HTTP/1.1\" 200 1024 "),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains(&format!("upstream={}", app.addr)),
        "{}",
        lines[0]
    );
}

#[test]
fn an_internal_route_is_not_there_for_clients() {
    let app = app();
    let (_dir, proxy) = setup(&app, "", false);
    let mut client = proxy.connect();
    let r = client.get("/protected/report.pdf");
    assert_eq!(r.status, 404, "{}", r.head.raw);
    assert_eq!(app.requests(), 0);
}

#[test]
fn a_path_no_files_route_serves_is_the_backend_s_error() {
    // The backend names what the client's path says.
    let backend = Backend::start("b", |seen, out| {
        let to = match seen.path() {
            "/elsewhere" => "/elsewhere/x",
            "/out" => "/protected/../secret",
            "/hidden" => "/protected/.env",
            _ => "/protected/missing.pdf",
        };
        respond(out, 200, &[("X-Accel-Redirect", to)], b"");
        Action::KeepAlive
    });
    let (dir, proxy) = setup(&backend, "", false);
    fs::write(dir.path().join(".env"), "SECRET").unwrap();
    let mut client = proxy.connect();
    for (path, status) in [
        ("/elsewhere", 502),
        ("/out", 502),
        ("/hidden", 404),
        ("/missing", 404),
    ] {
        let r = client.get(path);
        assert_eq!(r.status, status, "{path}: {}", r.head.raw);
        assert!(!r.body_str().contains("SECRET"), "{path}");
    }
}

#[test]
fn an_answer_naming_a_file_is_never_stored() {
    let app = app();
    let (_dir, proxy) = setup(&app, "", true);
    let mut client = proxy.connect();
    for _ in 0..3 {
        let r = client.get("/download/report.pdf");
        assert_eq!(r.status, 200, "{}", r.head.raw);
        assert!(r.body == body(1024));
    }
    // Each went to the backend, who decides each time; while the cache
    // is on, and stores the backend's other answers.
    assert_eq!(app.requests(), 3);
    assert_eq!(client.get("/page").header("x-cache"), Some("MISS"));
    assert_eq!(client.get("/page").header("x-cache"), Some("HIT"));
    assert_eq!(app.requests(), 4);
}

#[test]
fn the_path_is_routed_by_the_host_the_request_was() {
    let app = app();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    fs::write(a.path().join("report.pdf"), "A's report").unwrap();
    fs::write(b.path().join("report.pdf"), "B's secret").unwrap();
    let text = format!(
        "targets = {}\nroute./protected/ = files {} internal\n\
         route.b.example/protected/ = files {} internal\n",
        app.addr,
        a.path().display(),
        b.path().display()
    );
    let proxy = start_proxy(&[], from_file(&text));
    let mut client = proxy.connect();
    // An absolute-form target's host is the request's, whatever `Host`
    // says (RFC 9112 §3.2.2).
    client.send(b"GET http://a.example/download/report.pdf HTTP/1.1\r\nHost: b.example\r\n\r\n");
    assert_eq!(client.response().body, b"A's report");
    client.send(b"GET /download/report.pdf HTTP/1.1\r\nHost: b.example\r\n\r\n");
    assert_eq!(client.response().body, b"B's secret");
}

#[test]
fn the_backend_s_caching_fields_replace_the_file_s_and_a_path_not_text_is_its_error() {
    let backend = Backend::start("b", |seen, out| {
        let to: &[u8] = match seen.path() {
            "/bytes" => b"/protected/r\xe9port.pdf",
            _ => b"/protected/report.pdf",
        };
        let mut head =
            b"HTTP/1.1 200 OK\r\nCache-Control: private, no-cache\r\nX-Accel-Redirect: ".to_vec();
        head.extend_from_slice(to);
        head.extend_from_slice(b"\r\nContent-Length: 11\r\n\r\nplaceholder");
        let _ = out.write_all(&head);
        Action::KeepAlive
    });
    let (_dir, proxy) = setup(&backend, " max_age=7d", false);
    let mut client = proxy.connect();
    let r = client.get("/file");
    assert!(r.body == body(1024), "{}", r.head.raw);
    let cache_control: Vec<_> = r.head.get_all("cache-control").collect();
    assert_eq!(cache_control, ["private, no-cache"], "{}", r.head.raw);
    let r = client.get("/bytes");
    assert_eq!(r.status, 502, "{}", r.head.raw);
    assert!(!r.body_str().contains("placeholder"));
    assert_eq!(r.header("x-accel-redirect"), None);
}

#[test]
fn a_background_refresh_does_not_store_an_answer_naming_a_file() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let answered = std::sync::Arc::new(AtomicUsize::new(0));
    let count = answered.clone();
    let backend = Backend::start("b", move |_, out| {
        // First a page, stale at once but for its revalidation window;
        // then a file named for its refresh.
        let fields: &[(&str, &str)] = match count.fetch_add(1, Ordering::SeqCst) {
            0 => &[
                ("Cache-Control", "max-age=1, stale-while-revalidate=600"),
                ("Age", "5"),
            ],
            _ => &[
                ("Cache-Control", "public, max-age=600"),
                ("X-Accel-Redirect", "/protected/report.pdf"),
            ],
        };
        respond(out, 200, fields, b"placeholder");
        Action::KeepAlive
    });
    let (_dir, proxy) = setup(&backend, "", true);
    let mut client = proxy.connect();
    assert_eq!(client.get("/swr").header("x-cache"), Some("MISS"));
    // Served stale; refreshed once this answer is out, on this thread,
    // before the next request on the connection is read.
    assert_eq!(client.get("/swr").header("x-cache"), Some("STALE"));
    for _ in 0..2 {
        let r = client.get("/swr");
        assert_eq!(r.header("x-accel-redirect"), None, "{}", r.head.raw);
        assert_ne!(r.header("x-cache"), Some("HIT"), "{}", r.head.raw);
    }
    assert!(answered.load(Ordering::SeqCst) >= 2, "the refresh went out");
}

#[test]
fn only_an_internal_route_is_named() {
    let backend = Backend::start("b", |_, out| {
        respond(out, 200, &[("X-Accel-Redirect", "/public/report.pdf")], b"");
        Action::KeepAlive
    });
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("report.pdf"), body(64)).unwrap();
    let routes = format!("route./public/ = files {}\n", dir.path().display());
    // Without an internal route, the answer is relayed as it is.
    let text = format!("targets = {}\n{routes}", backend.addr);
    let proxy = start_proxy(&[], from_file(&text));
    let r = proxy.connect().get("/download");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert_eq!(r.header("x-accel-redirect"), Some("/public/report.pdf"));
    // With one, a public route serves its clients, not what a backend names.
    let internal = format!(
        "route./protected/ = files {} internal\n",
        dir.path().display()
    );
    let text = format!("targets = {}\n{routes}{internal}", backend.addr);
    let proxy = start_proxy(&[], from_file(&text));
    let mut client = proxy.connect();
    assert!(client.get("/public/report.pdf").body == body(64));
    let r = client.get("/download");
    assert_eq!(r.status, 502, "{}", r.head.raw);
    assert_eq!(r.header("x-accel-redirect"), None);
}

#[test]
fn a_304_for_a_named_file_carries_no_content_type() {
    // RFC 9110 §15.4.5: a 304 sends no representation metadata beyond
    // what updates a cache (nginx's not_modified filter clears the type).
    let app = app();
    let (_dir, proxy) = setup(&app, "", false);
    let mut client = proxy.connect();
    let whole = client.get("/download/report.pdf");
    assert_eq!(whole.header("content-type"), Some("application/pdf"));
    let etag = whole.header("etag").unwrap().to_string();
    let r = client.get_with("/download/report.pdf", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304, "{}", r.head.raw);
    for field in ["content-type", "content-disposition"] {
        assert_eq!(r.header(field), None, "{}", r.head.raw);
    }
    assert!(r.header("cache-control").is_some(), "{}", r.head.raw);
}

#[test]
fn a_304_for_a_named_file_has_the_tag_and_vary_its_200_has() {
    // The backend types `notes.txt` application/pdf, which gzip_types does
    // not list: its 200 goes as it is, strong tag and no Vary. Its 304
    // must name the same (RFC 9110 §15.4.5), not those of a text/plain.
    let app = app();
    let (dir, proxy) = setup(&app, "\ngzip = true", false);
    fs::write(dir.path().join("notes.txt"), body(4096)).unwrap();
    let mut client = proxy.connect();
    let gz = ("Accept-Encoding", "gzip");
    let whole = client.get_with("/download/notes.txt", &[gz]);
    assert_eq!(whole.status, 200, "{}", whole.head.raw);
    assert_eq!(whole.header("content-encoding"), None, "{}", whole.head.raw);
    assert_eq!(whole.header("vary"), None, "{}", whole.head.raw);
    let etag = whole.header("etag").unwrap().to_string();
    let r = client.get_with("/download/notes.txt", &[gz, ("If-None-Match", &etag)]);
    assert_eq!(r.status, 304, "{}", r.head.raw);
    assert_eq!(r.header("etag"), Some(etag.as_str()), "{}", r.head.raw);
    assert_eq!(r.header("vary"), None, "{}", r.head.raw);
}

#[test]
fn a_missing_file_gets_the_404_page_of_the_pool_that_named_it() {
    // The answer takes the settings of the backend's pool: with error_pages
    // of its own, its 404.html (which was not even loaded, and said to be
    // unused).
    const PAGE: &str = "<!doctype html><h1>Not here</h1>\n";
    let app = app();
    let (files, pages) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    fs::write(pages.path().join("404.html"), PAGE).unwrap();
    let text = format!(
        "targets = {}\npool.app = {}\npool.app.error_pages = {}\n\
         route./download/ = app\nroute./protected/ = files {} internal\n",
        dead_addr(),
        app.addr,
        pages.path().display(),
        files.path().display()
    );
    let proxy = start_proxy(&[], from_file(&text));
    let r = proxy.connect().get("/download/missing.pdf");
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (404, PAGE),
        "{}",
        r.head.raw
    );
}
