//! The admin listener's page (`GET /`): what `/status` says, for people:
//! each pool and its targets, the cache, the process; `?refresh=N`; the
//! fields that keep the page from running or loading anything.

mod support;

use support::*;

/// The row of the target named `name`, from `<tr` to `</tr>`.
#[track_caller]
fn row<'a>(page: &'a str, name: &str) -> &'a str {
    let cell = format!("<td class=\"name\">{name}");
    let at = page
        .find(&cell)
        .unwrap_or_else(|| panic!("no row for {name}"));
    let start = page[..at].rfind("<tr").expect("<tr");
    let end = at + page[at..].find("</tr>").expect("</tr>");
    &page[start..end]
}

/// The cells of a row, the name cells' markup included.
fn cells(row: &str) -> Vec<&str> {
    (row.split("<td").skip(1))
        .map(|cell| {
            let text = &cell[cell.find('>').unwrap() + 1..];
            text.split("</td>").next().unwrap()
        })
        .collect()
}

#[test]
fn the_page_shows_each_pool_with_its_targets_and_the_cache() {
    let main = Backend::start("main", |_, out| {
        respond(out, 200, &[("Cache-Control", "max-age=60")], b"page");
        Action::KeepAlive
    });
    let (api, spare) = (Backend::echo("api"), Backend::echo("spare"));
    let dead = dead_addr();
    let mut tweak = Some(from_file_with_admin(&format!(
        "targets = {}, {dead}\n\
         retries = 0\n\
         pool.api = {}, {} backup\n\
         route./api/ = api\n",
        main.addr, api.addr, spare.addr
    )));
    let proxy = start_proxy(&[], |c| {
        (tweak.take().unwrap())(c);
        c.cache_size = 1 << 20;
    });
    // Round robin: main (stored), then the dead target (502); the page
    // again from the cache; the API.
    for (path, status, cache) in [
        ("/page", 200, "MISS"),
        ("/other", 502, "(none)"),
        ("/page", 200, "HIT"),
    ] {
        let r = proxy.get_on("site.test", path, &[]);
        assert_eq!((r.status, x_cache(&r)), (status, cache), "{}", r.head.raw);
    }
    assert_eq!(proxy.get_on("site.test", "/api/x", &[]).status, 200);
    let r = proxy.admin("PUT", &format!("/targets/{}", spare.addr), "drain");
    assert_eq!(r.status, 200, "{}", r.body_str());

    let mut page = String::new();
    assert!(wait_until(WAIT_LIMIT, || {
        page = proxy.admin("GET", "/", "").body_str();
        page.contains("requests answered: 4 (2xx 3, 5xx 1)")
    }));
    let r = proxy.admin("GET", "/", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(page.ends_with("</html>\n"), "{page}");
    assert!(!page.contains("<meta http-equiv=\"refresh\""), "{page}");

    assert!(
        page.contains("<h2>Pool <code>default</code></h2>"),
        "{page}"
    );
    assert!(
        page.contains(
            "Targets taking new requests: 1 of 2 · waiting for a slot: 0 · answers: 2xx 2, 5xx 1"
        ),
        "{page}"
    );
    // Name, address, health, state, weight, in flight, max conns,
    // requests, failures, time to answer, last check (no active checks).
    let main_row = row(&page, &main.addr.to_string());
    assert!(main_row.starts_with("<tr class=\"up\">"), "{main_row}");
    let main_addr = main.addr.to_string();
    let expected = [
        &main_addr, &main_addr, "up", "ready", "1", "0", "-", "1", "0", "-", "-",
    ];
    assert_eq!(cells(main_row), expected);
    // One failure (max_fails = 1) takes the dead target out.
    let dead_row = row(&page, &dead.to_string());
    assert!(dead_row.starts_with("<tr class=\"down\">"), "{dead_row}");
    assert_eq!(cells(dead_row)[2..4], ["down", "ready"]);
    assert_eq!(cells(dead_row)[7..9], ["1", "1"]);
    // In maintenance, the operator's word rules the row.
    let r = proxy.admin("PUT", &format!("/targets/{dead}"), "maint");
    assert_eq!(r.status, 200, "{}", r.body_str());
    let later = proxy.admin("GET", "/", "").body_str();
    let dead_row = row(&later, &dead.to_string());
    assert!(dead_row.starts_with("<tr class=\"maint\">"), "{dead_row}");
    assert_eq!(cells(dead_row)[2..4], ["down", "maint"]);

    assert!(page.contains("<h2>Pool <code>api</code></h2>"), "{page}");
    assert!(
        page.contains(
            "Targets taking new requests: 1 of 2 · waiting for a slot: 0 · answers: 2xx 1"
        ),
        "{page}"
    );
    let spare_row = row(&page, &spare.addr.to_string());
    assert!(spare_row.starts_with("<tr class=\"drain\">"), "{spare_row}");
    let spare_cells = cells(spare_row);
    assert!(
        spare_cells[0].ends_with("<span class=\"tag\">backup</span>"),
        "{spare_row}"
    );
    assert_eq!(spare_cells[2..4], ["up", "drain"]);
    assert_eq!(cells(row(&page, &api.addr.to_string()))[7], "1");

    // The cache: one entry, one hit.
    assert!(
        page.contains("<h2>Cache</h2>\n<p>Entries: 1 · stored: "),
        "{page}"
    );
    assert!(page.contains(" of 1.0 MiB ("), "{page}");
    let (_, totals) = page.split_once("<th>Snapshots failed</th></tr>\n").unwrap();
    let totals = totals.split("</tr>").next().unwrap();
    // Hits, misses (the page's and the API's: the 502 is no answer of a
    // backend's), the hit ratio, stale, revalidated, bypassed, evicted,
    // snapshots.
    let expected = ["1", "2", "33.3%", "0", "0", "0", "0", "0", "0"];
    assert_eq!(cells(totals), expected, "{totals}");
}

#[test]
fn the_page_runs_nothing_and_reloads_when_asked() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| c.admin_port = Some(0));
    let r = proxy.admin("GET", "/", "");
    assert_eq!(r.status, 200);
    let policy = r.header("content-security-policy").expect("a policy");
    assert!(policy.starts_with("default-src 'none'; "), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(r.body_str().contains("<h2>Cache</h2>\n<p>None: "));

    let page = proxy.admin("GET", "/?refresh=7", "").body_str();
    assert!(
        page.contains("<meta http-equiv=\"refresh\" content=\"7\">"),
        "{page}"
    );
    assert!(page.contains("Reloaded every 7 s"), "{page}");
    for refused in [
        "/?refresh=0",
        "/?refresh=3601",
        "/?refresh=5s",
        "/?sort=name",
    ] {
        let r = proxy.admin("GET", refused, "");
        assert_eq!(r.status, 400, "{refused}");
        assert!(r.body_str().contains("refresh=<seconds>"), "{refused}");
    }
    // The other files are not pages: no policy there.
    let r = proxy.admin("GET", "/status", "");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("content-security-policy"), None);

    // When the process started, as Prometheus's process collectors say it.
    let metrics = proxy.admin("GET", "/metrics", "").body_str();
    let started: f64 = (metrics.lines())
        .find_map(|l| l.strip_prefix("process_start_time_seconds "))
        .expect("process_start_time_seconds")
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    assert!(
        started <= now.as_secs_f64() && started > now.as_secs_f64() - 3600.0,
        "{started}"
    );

    let r = proxy.admin("POST", "/", "");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, PURGE"));
}

/// A page from a name pointed at 127.0.0.1 (DNS rebinding) is of the
/// same origin as the admin listener there: over a loopback connection,
/// a Host that is a name is refused, but for what tells nothing or names
/// the Host's own site.
#[test]
fn over_loopback_a_host_that_is_a_name_reads_nothing() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| {
        c.admin_port = Some(0);
        c.cache_size = 1 << 20;
    });
    let addr = proxy.handle().admin_addr().unwrap();
    let ask = |method: &str, target: &str, host: &str| {
        let request = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        one_request(addr, request.as_bytes())
    };
    for target in [
        "/",
        "/status",
        "/metrics",
        "/stub_status",
        "/cache",
        "/nope",
    ] {
        for host in ["rebound.example", "rebound.example:9901"] {
            let r = ask("GET", target, host);
            assert_eq!(r.status, 403, "{target} {host}");
            assert!(r.body_str().contains("loopback"), "{target} {host}");
        }
        for host in ["127.0.0.1", "localhost:9901", "[::1]:9901"] {
            assert_ne!(ask("GET", target, host).status, 403, "{target} {host}");
        }
    }
    let r = ask("DELETE", "/cache", "rebound.example");
    assert_eq!(r.status, 403);
    // What tells nothing, or names the Host's own site, is taken.
    assert_eq!(ask("GET", "/healthz", "rebound.example").status, 200);
    assert_eq!(ask("PURGE", "/a", "www.example.com").status, 404);
    let own = ask("GET", "/cache/entries?url=/a", "www.example.com");
    assert_eq!(own.status, 404, "nothing stored: {}", own.body_str());
    assert!(own.body_str().contains("\"key\":\"www.example.com/a\""));
}
