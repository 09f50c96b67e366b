//! `error_pages`: the operator's HTML bodies for the proxy's own error
//! answers, and never for a backend's.

mod support;

use inverso::error_pages::ErrorPages;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;

const PAGE_502: &str = "<!doctype html><h1>We will be right back</h1>\n";
const PAGE_429: &str = "<!doctype html><h1>Slow down</h1>\n";
const PAGE_503: &str = "<!doctype html><h1>Too busy</h1>\n";
const HTML: &str = "text/html; charset=utf-8";

/// A directory holding `pages` as `<status>.html`.
fn pages_dir(pages: &[(u16, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (status, page) in pages {
        std::fs::write(dir.path().join(format!("{status}.html")), page).unwrap();
    }
    dir
}

/// The answer to a HEAD: `length` in its Content-Length, and nothing
/// after the head before the connection closes.
#[track_caller]
fn assert_head_alone(response: &Response, client: &mut Client, length: usize) {
    let length = length.to_string();
    assert_eq!(response.header("content-length"), Some(&length[..]));
    let after = client.read_until_closed();
    assert!(
        after.is_empty(),
        "a body followed the head: {:?}",
        String::from_utf8_lossy(&after)
    );
}

fn load(dir: &Path) -> ErrorPages {
    ErrorPages::load(dir.to_str().unwrap()).unwrap()
}

/// `pages` as the proxy holds them once read (the directory can go).
fn pages(pages: &[(u16, &str)]) -> ErrorPages {
    load(pages_dir(pages).path())
}

#[test]
fn a_dead_target_s_502_is_the_page_as_html_and_logged_with_its_size() {
    let mut proxy = start_proxy(&[dead_addr()], |c| {
        c.error_pages = pages(&[(502, PAGE_502)])
    });
    let response = proxy.connect().get("/");
    assert_eq!(response.status, 502);
    assert_eq!(response.header("content-type"), Some(HTML));
    let length = PAGE_502.len().to_string();
    assert_eq!(response.header("content-length"), Some(&length[..]));
    assert_eq!(response.body_str(), PAGE_502);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let logged = format!("\"GET / HTTP/1.1\" 502 {length} ");
    assert!(lines[0].contains(&logged), "{}", lines[0]);
}

#[test]
fn a_backend_s_own_502_is_relayed_as_it_came() {
    let backend = Backend::start("own", |_, out| {
        respond(
            out,
            502,
            &[("Content-Type", "text/plain")],
            b"backend says no",
        );
        Action::KeepAlive
    });
    let proxy = start_proxy(&[backend.addr], |c| {
        c.error_pages = pages(&[(502, PAGE_502)])
    });
    let response = proxy.connect().get("/");
    assert_eq!(response.status, 502);
    assert_eq!(response.header("content-type"), Some("text/plain"));
    assert_eq!(response.body_str(), "backend says no");
}

#[test]
fn a_status_without_a_page_keeps_the_plain_text_body() {
    let proxy = start_proxy(&[dead_addr()], |c| {
        c.error_pages = pages(&[(503, PAGE_503)])
    });
    let response = proxy.connect().get("/");
    assert_eq!(response.status, 502);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(response.body_str(), "502 Bad Gateway\n");
}

#[test]
fn a_head_request_gets_the_page_s_length_and_no_body() {
    let proxy = start_proxy(&[dead_addr()], |c| {
        c.error_pages = pages(&[(502, PAGE_502)])
    });
    let mut client = proxy.connect();
    let head = client.head("/");
    assert_eq!(head.status, 502);
    assert_eq!(head.header("content-type"), Some(HTML));
    let length = PAGE_502.len().to_string();
    assert_eq!(head.header("content-length"), Some(&length[..]));
    // Nothing followed the head: the next response on the connection
    // starts where the head ended, as a GET's with the page.
    assert!(
        !head.head.has_token("connection", "close"),
        "a dead target's 502 keeps the connection"
    );
    let get = client.get("/");
    assert_eq!(get.header("content-length"), Some(&length[..]));
    assert_eq!(get.body_str(), PAGE_502);
}

#[test]
fn a_rate_limited_request_gets_the_429_page_with_its_retry_after() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| {
        c.error_pages = pages(&[(429, PAGE_429)]);
        c.rate_limit = Some(inverso::ratelimit::Rate::parse("1/h").unwrap());
        c.rate_limit_burst = Some(0);
        c.request_id_header = Some("X-Request-ID".into());
    });
    let mut client = proxy.connect();
    let first = std::time::Instant::now();
    assert_eq!(client.get("/1").status, 200);
    let refused = client.get("/2");
    let since_first = first.elapsed();
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("content-type"), Some(HTML));
    assert_eq!(refused.body_str(), PAGE_429);
    // The hour's token less the moment since the first request, rounded
    // up: a client that waits as long as it is told is let in.
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(retry <= 3600, "{retry}");
    assert!(
        Duration::from_secs(retry) + since_first >= Duration::from_secs(3600),
        "{retry} s, {since_first:?} after the first request"
    );
    assert!(
        refused.header("x-request-id").is_some(),
        "{:?}",
        refused.head
    );
    // The connection is kept, as without a page.
    assert_eq!(client.get("/3").status, 429);
}

#[test]
fn over_max_connections_the_503_is_the_page() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| {
        c.error_pages = pages(&[(503, PAGE_503)]);
        c.max_connections = 1;
    });
    let mut first = proxy.connect();
    assert_eq!(first.get("/1").status, 200);
    let mut second = proxy.connect();
    second.send(b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n");
    let response = second.response();
    assert_eq!(response.status, 503);
    assert_eq!(response.header("content-type"), Some(HTML));
    assert!(response.head.has_token("connection", "close"));
    assert_eq!(response.body_str(), PAGE_503);
    assert!(second.is_closed());
}

#[test]
fn over_max_connections_a_head_gets_the_503_page_s_length_and_no_body() {
    // After empty lines too, which RFC 9112 §2.2 has a server ignore.
    for sent in ["", "\r\n\r\n"] {
        let a = Backend::echo("a");
        let proxy = start_proxy(&[a.addr], |c| {
            c.error_pages = pages(&[(503, PAGE_503)]);
            c.max_connections = 1;
        });
        let mut first = proxy.connect();
        assert_eq!(first.get("/1").status, 200);
        let mut second = proxy.connect();
        second.send(format!("{sent}HEAD /2 HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        let response = second.head_response();
        assert_eq!(response.status, 503, "{sent:?}");
        assert_head_alone(&response, &mut second, PAGE_503.len());
    }
}

#[test]
fn over_max_connections_per_client_a_head_after_a_proxy_header_gets_no_body() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| {
        c.error_pages = pages(&[(503, PAGE_503)]);
        c.proxy_protocol = true;
        c.max_connections_per_client = 1;
    });
    let mut held = proxy.connect();
    held.send(b"PROXY TCP4 203.0.113.1 127.0.0.1 1000 80\r\n");
    assert_eq!(held.get("/1").status, 200);
    let mut again = proxy.connect();
    again.send(b"PROXY TCP4 203.0.113.1 127.0.0.1 1001 80\r\nHEAD /2 HTTP/1.1\r\nHost: x\r\n\r\n");
    let response = again.head_response();
    assert_eq!(response.status, 503);
    assert_head_alone(&response, &mut again, PAGE_503.len());
}

#[test]
fn a_head_with_a_body_over_max_body_size_gets_the_413_head_alone() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| {
        c.error_pages = pages(&[(413, "<p>too large</p>")]);
        c.max_body_size = 10;
    });
    let mut client = proxy.connect();
    client.send(b"HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n");
    let response = client.head_response();
    assert_eq!(response.status, 413);
    assert_head_alone(&response, &mut client, 16);
}

#[test]
fn a_malformed_request_gets_the_400_page_and_the_connection_closed() {
    let proxy = start_proxy(&[dead_addr()], |c| {
        c.error_pages = pages(&[(400, "<p>bad</p>")])
    });
    let mut client = proxy.connect();
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Field: y\r\n\r\n");
    let response = client.response();
    assert_eq!(response.status, 400);
    assert_eq!(response.body_str(), "<p>bad</p>");
    assert!(response.head.has_token("connection", "close"));
}

#[test]
fn pages_are_read_once_and_again_by_a_reload() {
    let dir = pages_dir(&[(502, "first")]);
    let target = dead_addr();
    let proxy = start_proxy(&[target], |c| c.error_pages = load(dir.path()));
    assert_eq!(proxy.connect().get("/").body_str(), "first");
    // Held in memory: a change on disk waits for the reload.
    std::fs::write(dir.path().join("502.html"), "second").unwrap();
    assert_eq!(proxy.connect().get("/").body_str(), "first");
    let mut next = inverso::Config::with_targets(vec![support::target(target)]);
    next.log_to_stdout = false;
    next.cache_size = 0;
    next.path_to_persistence = None;
    next.path_to_log = Some(proxy.log_path.clone());
    next.error_pages = load(dir.path());
    proxy.handle().control().reload(next).unwrap();
    assert_eq!(proxy.connect().get("/").body_str(), "second");
}

#[test]
fn a_client_the_access_lists_refuse_gets_the_403_page() {
    let page = "<!doctype html><h1>Not from here</h1>\n";
    let backend = Backend::echo("a");
    let proxy = start_proxy(&[backend.addr], |c| {
        c.error_pages = pages(&[(403, page)]);
        c.deny_from = vec![inverso::realip::Cidr::parse("127.0.0.1").unwrap()].into();
    });
    let response = proxy.connect().get("/");
    assert_eq!(response.status, 403);
    assert_eq!(response.header("content-type"), Some(HTML));
    assert_eq!(response.body_str(), page);
    assert_eq!(backend.requests(), 0);
}

/// A backend whose answer is the status its path names (`/404`), with a
/// body and fields a client of an intercepting proxy must not see, and
/// fresh for a minute.
fn erring_backend() -> Backend {
    Backend::start("erring", |seen, out| {
        let last = seen.path().rsplit('/').next().unwrap_or_default();
        let status = last.parse().unwrap_or(200);
        let fields = [
            ("Content-Type", "text/plain"),
            ("Set-Cookie", "debug=1"),
            ("Cache-Control", "max-age=60"),
            ("WWW-Authenticate", "Basic realm=x"),
            ("Retry-After", "120"),
        ];
        respond(out, status, &fields, b"stack trace of the backend");
        Action::KeepAlive
    })
}

/// A proxy in front of `backend` with the pages in `dir`, replacing its
/// errors, and a cache.
fn intercepting(backend: &Backend, dir: &Path) -> Proxy {
    let conf = format!(
        "targets = {}\nerror_pages = {}\nintercept_errors = true\n",
        backend.addr,
        dir.display()
    );
    let mut tweak = Some(from_file(&conf));
    start_proxy(&[], |c| {
        (tweak.take().unwrap())(c);
        c.cache_size = 1 << 20;
    })
}

#[test]
fn intercept_errors_answers_a_backend_s_error_with_the_page_for_it() {
    let backend = erring_backend();
    let dir = pages_dir(&[
        (404, "<h1>not here</h1>"),
        (401, "<h1>who?</h1>"),
        (500, PAGE_502),
        (503, PAGE_503),
    ]);
    let proxy = intercepting(&backend, dir.path());
    let mut client = proxy.connect();
    for _ in 0..2 {
        let r = client.get("/404");
        assert_eq!(
            (r.status, r.body_str().as_str()),
            (404, "<h1>not here</h1>")
        );
        assert_eq!(r.header("content-type"), Some(HTML));
        assert_eq!(r.header("set-cookie"), None, "{}", r.head.raw);
        assert_eq!(r.header("x-cache"), None, "{}", r.head.raw);
    }
    // Not stored: the page, not the backend's answer, at every request.
    assert_eq!(backend.requests(), 2);
    let r = client.get("/500");
    assert_eq!((r.status, r.body_str().as_str()), (500, PAGE_502));
    assert_eq!(r.header("retry-after"), Some("120"));
    let r = client.get("/503");
    assert_eq!((r.status, r.body_str().as_str()), (503, PAGE_503));
    // No page, or an answer whose fields the client needs: as it came.
    for (path, status) in [("/403", 403), ("/401", 401)] {
        let r = client.get(path);
        assert_eq!(r.status, status);
        assert_eq!(r.body_str(), "stack trace of the backend");
    }
    let r = client.get("/401");
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=x"));
    let head = client.head("/404");
    assert_eq!(head.status, 404);
    // The connection went on through all of it.
    assert_eq!(client.get("/200").status, 200);
}

#[test]
fn an_intercepted_416_keeps_the_length_a_resuming_client_needs() {
    let backend = Backend::start("resumable", |_, out| {
        let fields = [("Content-Range", "bytes */1234"), ("Set-Cookie", "debug=1")];
        respond(out, 416, &fields, b"stack trace of the backend");
        Action::KeepAlive
    });
    let dir = pages_dir(&[(416, "<h1>no such part</h1>")]);
    let proxy = intercepting(&backend, dir.path());
    let r = proxy.connect().get("/video.mp4");
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (416, "<h1>no such part</h1>")
    );
    assert_eq!(
        r.header("content-range"),
        Some("bytes */1234"),
        "{}",
        r.head.raw
    );
    assert_eq!(r.header("set-cookie"), None, "{}", r.head.raw);
}

#[test]
fn a_pool_intercepts_its_backends_errors_alone() {
    let (main, api) = (erring_backend(), erring_backend());
    let dir = pages_dir(&[(404, "<h1>not here</h1>")]);
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\nerror_pages = {}\npool.api = {}\npool.api.intercept_errors = true\n\
             route./api/ = api\n",
            main.addr,
            dir.path().display(),
            api.addr
        )),
    );
    let body = |path: &str| {
        let r = proxy.get_on("site.test", path, &[]);
        assert_eq!(r.status, 404, "{path}");
        r.body_str()
    };
    assert_eq!(body("/api/404"), "<h1>not here</h1>");
    assert_eq!(body("/404"), "stack trace of the backend");
}

#[test]
fn an_intercepted_answer_to_a_revalidation_is_the_page_not_the_stale_entry() {
    // Stored at once stale, with a window for errors: the page that
    // replaces the backend's 404 is an answer, not a failure to cover.
    let answered = Arc::new(AtomicUsize::new(0));
    let count = answered.clone();
    let backend = Backend::start("gone", move |_, out| {
        match count.fetch_add(1, Ordering::SeqCst) {
            0 => respond(
                out,
                200,
                &[
                    ("Cache-Control", "max-age=0, stale-if-error=600"),
                    ("ETag", "\"v1\""),
                ],
                b"old body",
            ),
            _ => respond(out, 404, &[], b"backend 404"),
        }
        Action::KeepAlive
    });
    let dir = pages_dir(&[(404, "<h1>not here</h1>")]);
    let proxy = intercepting(&backend, dir.path());
    let mut client = proxy.connect();
    assert_eq!(client.get("/x").body_str(), "old body");
    assert_eq!(proxy.handle().cache().expect("a cache").len(), 1);
    let r = client.get("/x");
    assert_eq!(
        (r.status, r.body_str().as_str()),
        (404, "<h1>not here</h1>")
    );
}

#[test]
fn a_pool_may_have_pages_of_its_own() {
    // Two sites behind one proxy, each with its own brand.
    let (main, shop) = (erring_backend(), erring_backend());
    let site = pages_dir(&[(502, "<h1>site down</h1>")]);
    let brand = pages_dir(&[(502, "<h1>shop down</h1>"), (404, "<h1>no such item</h1>")]);
    let (site_dir, brand_dir) = (site.path().display(), brand.path().display());
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\nerror_pages = {site_dir}\n\
             pool.shop = {}\npool.shop.error_pages = {brand_dir}\n\
             pool.shop.intercept_errors = true\n\
             pool.shopdown = {}\npool.shopdown.error_pages = {brand_dir}\n\
             pool.dead = {}\n\
             route.shop.test = shop\nroute.down.shop.test = shopdown\nroute./dead/ = dead\n",
            main.addr,
            shop.addr,
            dead_addr(),
            dead_addr(),
        )),
    );
    let body = |host: &str, path: &str| {
        let r = proxy.get_on(host, path, &[]);
        (r.status, r.body_str())
    };
    assert_eq!(
        body("shop.test", "/item/404"),
        (404, "<h1>no such item</h1>".into())
    );
    assert_eq!(
        body("down.shop.test", "/x"),
        (502, "<h1>shop down</h1>".into())
    );
    // The others have the top level's, and do not intercept.
    assert_eq!(
        body("site.test", "/dead/x"),
        (502, "<h1>site down</h1>".into())
    );
    assert_eq!(
        body("site.test", "/404"),
        (404, "stack trace of the backend".into())
    );
}

#[test]
fn an_http_1_0_client_kept_alive_is_told_so_with_the_page() {
    let backend = erring_backend();
    let dir = pages_dir(&[(404, "<h1>not here</h1>")]);
    let proxy = intercepting(&backend, dir.path());
    let mut client = proxy.connect();
    for path in ["/404", "/200"] {
        client.send(format!("GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes());
        let r = client.response();
        assert_eq!(r.header("connection"), Some("keep-alive"), "{}", r.head.raw);
    }
}

#[test]
fn a_page_any_scope_uses_is_not_called_unused_and_each_warning_comes_once() {
    let shop = pages_dir(&[(404, "<h1>no such item</h1>"), (502, PAGE_502)]);
    let conf = format!(
        "targets = 127.0.0.1:9001\n\
         pool.shop = 127.0.0.1:9002\npool.shop.error_pages = {0}\n\
         pool.shop.intercept_errors = true\n\
         pool.shopdown = 127.0.0.1:9003\npool.shopdown.error_pages = {0}\n\
         route.shop.test = shop\nroute.down.shop.test = shopdown\n",
        shop.path().display()
    );
    let (code, stdout, stderr) = inverso_check(&conf, "warn");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("not used"), "{stderr}");
    // `check` lists each pool's own pages, the ones it will use.
    assert!(
        stdout.contains("# pool shop: error page 404 <- "),
        "{stdout}"
    );
    assert!(
        stdout.contains("# pool shopdown: error page 502 <- "),
        "{stdout}"
    );
    // Without the intercepting pool, its 404.html is unused: said once.
    let conf = conf.replace("pool.shop.intercept_errors = true", "");
    let (_, _, stderr) = inverso_check(&conf, "warn");
    assert_eq!(
        stderr.matches("404.html is not used").count(),
        1,
        "{stderr}"
    );
    // Turned on at the top level, with no pages: said there alone.
    let conf = "targets = 127.0.0.1:9001\nintercept_errors = true\n\
                pool.a = 127.0.0.1:9002\npool.b = 127.0.0.1:9003\n\
                route./a/ = a\nroute./b/ = b\n";
    let (_, _, stderr) = inverso_check(conf, "warn");
    assert_eq!(
        stderr.matches("error_pages is empty").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn an_intercepted_chunked_error_that_came_whole_keeps_its_connection() {
    let backend = Backend::start("chunked-404", |_, out| {
        let _ = std::io::Write::write_all(
            out,
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\noops!\r\n0\r\n\r\n",
        );
        Action::KeepAlive
    });
    let dir = pages_dir(&[(404, "<h1>not here</h1>")]);
    let proxy = intercepting(&backend, dir.path());
    let mut client = proxy.connect();
    for _ in 0..2 {
        let r = client.get("/x");
        assert_eq!(
            (r.status, r.body_str().as_str()),
            (404, "<h1>not here</h1>")
        );
    }
    assert_eq!((backend.requests(), backend.connections()), (2, 1));
}

#[test]
fn a_500_the_proxy_answers_itself_gets_the_500_page() {
    // A rewrite rule that makes no path: the proxy's own 500 (README,
    // Rewriting), which nginx's `error_page 500 /500.html` covers.
    const PAGE_500: &str = "<!doctype html><h1>Oops</h1>\n";
    let main = Backend::echo("main");
    let dir = pages_dir(&[(500, PAGE_500)]);
    let proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\nerror_pages = {}\nrewrite.bare = ^/bare/(.*)$ $1\n",
            main.addr,
            dir.path().display()
        )),
    );
    let r = proxy.connect().get("/bare/x");
    assert_eq!(r.status, 500, "{}", r.head.raw);
    assert_eq!(r.header("content-type"), Some(HTML), "{}", r.head.raw);
    assert_eq!(r.body_str(), PAGE_500);
    assert_eq!(main.requests(), 0);
}
