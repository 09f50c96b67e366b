//! `mirror`: a copy of each request sent to a backend goes to another
//! pool too, its answer dropped; the client never waits for it.

mod support;

use std::io::Write;
use support::*;

/// `mirror = shadow` for `targets = main`, then `more`.
fn mirrored(main: &Backend, shadow_addr: std::net::SocketAddr, more: &str) -> Proxy {
    let text = format!(
        "targets = {}\npool.shadow = {shadow_addr}\nmirror = shadow\n{more}",
        main.addr
    );
    start_proxy(&[], from_file_with_admin(&text))
}

/// `mirror = shadow` for `targets = main`, with the cache on.
fn cached_and_mirrored(main: &Backend, shadow: &Backend) -> Proxy {
    let text = format!(
        "targets = {}\npool.shadow = {}\nmirror = shadow\n",
        main.addr, shadow.addr
    );
    start_proxy(&[], |c| {
        from_file(&text)(c);
        c.cache_size = 1 << 20;
    })
}

#[test]
fn each_request_goes_to_the_mirror_too_and_its_answer_is_dropped() {
    let main = Backend::echo("main");
    let shadow = Backend::start("shadow", |_, out| {
        respond(out, 500, &[("X-Shadow", "yes")], b"the shadow's answer");
        Action::KeepAlive
    });
    let proxy = mirrored(&main, shadow.addr, "route./s/ = shadow\n");
    let mut client = proxy.connect();
    let r = client.get_with("/a?x=1", &[("X-Custom", "1")]);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert!(!r.head.has("x-shadow"), "{}", r.head.raw);
    let body = pattern(5000);
    let r = client.request("POST", "/form", &[], &body);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert!(wait_until(WAIT_LIMIT, || shadow.requests() == 2));
    // The same requests the main backend was sent: method, target,
    // fields (the forwarding ones too), body.
    // Copies go on threads of their own, in any order.
    let (mut seen, mut sent) = (shadow.seen(), main.seen());
    seen.sort_by(|a, b| a.head.start_line.cmp(&b.head.start_line));
    sent.sort_by(|a, b| a.head.start_line.cmp(&b.head.start_line));
    for (copy, original) in seen.iter().zip(&sent) {
        assert_eq!(copy.head.start_line, original.head.start_line);
        assert_eq!(copy.body, original.body);
        for field in [
            "host",
            "x-custom",
            "x-forwarded-for",
            "x-forwarded-proto",
            "via",
        ] {
            assert_eq!(copy.head.get(field), original.head.get(field), "{field}");
        }
    }
    assert_eq!(seen[1].body, body, "POST /form sorts after GET /a");
    // The shadow pool's own requests are not sent to it twice.
    assert_eq!(client.get("/s/x").status, 500);
    assert!(wait_until(WAIT_LIMIT, || {
        proxy.metric("inverso_mirror_requests_total{result=\"answered\"}") == Some(2)
    }));
    assert_eq!(shadow.requests(), 3);
    assert_eq!(main.requests(), 2);
}

#[test]
fn a_client_never_waits_for_the_mirror() {
    let main = Backend::echo("main");
    let (gate, shadow) = held_mirror();
    let proxy = mirrored(&main, shadow.addr, "");
    // While the mirror holds its copies unanswered, the clients have
    // their answers.
    let mut client = proxy.connect();
    for path in ["/1", "/2", "/3"] {
        assert_eq!(client.get(path).status, 200);
    }
    assert!(wait_until(WAIT_LIMIT, || shadow.requests() >= 1));
    gate.open();
    assert!(wait_until(WAIT_LIMIT, || shadow.requests() == 3));
    assert_eq!(main.requests(), 3);
}

#[test]
fn a_mirror_that_cannot_be_reached_is_counted_and_harms_no_one() {
    let main = Backend::echo("main");
    let proxy = mirrored(&main, dead_addr(), "request_buffer_size = 1KiB\n");
    let mut client = proxy.connect();
    assert_eq!(client.get("/a").status, 200);
    assert!(wait_until(WAIT_LIMIT, || {
        proxy.metric("inverso_mirror_requests_total{result=\"failed\"}") == Some(1)
    }));
    // A body streamed to the backend as it is read has no second copy:
    // not mirrored, counted.
    let body = pattern(100_000);
    let r = client.request("POST", "/upload", &[], &body);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    let dropped = "inverso_mirror_requests_total{result=\"dropped\"}";
    assert_eq!(proxy.metric(dropped), Some(1));
    assert_eq!(main.requests(), 2);
}

#[test]
fn a_cache_hit_is_mirrored_as_a_miss_is() {
    let main = Backend::start("main", |_, out| {
        let fields = [("Cache-Control", "max-age=60"), ("ETag", "\"v1\"")];
        respond(out, 200, &fields, b"stored");
        Action::KeepAlive
    });
    let shadow = Backend::echo("shadow");
    let proxy = cached_and_mirrored(&main, &shadow);
    let mut client = proxy.connect();
    // One copy each, in order (each waited for before the next request).
    let mut copies = 0;
    let mut copied = |client: &mut Client, path: &str, fields: &[(&str, &str)]| {
        let r = client.get_with(path, fields);
        copies += 1;
        assert!(wait_until(WAIT_LIMIT, || shadow.requests() == copies));
        r
    };
    assert_eq!(x_cache(&copied(&mut client, "/c", &[])), "MISS");
    assert_eq!(x_cache(&copied(&mut client, "/c", &[])), "HIT");
    let matching = [("If-None-Match", "\"v1\"")];
    assert_eq!(copied(&mut client, "/c", &matching).status, 304);
    let r = copied(&mut client, "/c", &[("Range", "bytes=0-1")]);
    assert_eq!((r.status, &r.body[..]), (206, &b"st"[..]));
    assert_eq!(x_cache(&copied(&mut client, "/d", &[])), "MISS");
    // A request past the cache, copied last: every copy before it was
    // taken from the queue before it.
    assert_eq!(client.request("POST", "/end", &[], b"x").status, 200);
    assert!(wait_until(WAIT_LIMIT, || shadow.requests() == 6));
    assert_eq!(main.requests(), 3);
    let seen = shadow.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path()).collect();
    assert_eq!(paths, ["/c", "/c", "/c", "/c", "/d", "/end"]);
    // As the backend was sent the miss, forwarding fields and all; the
    // client's own conditions and range in theirs.
    let miss = &main.seen()[0];
    for copy in &seen[..4] {
        assert_eq!(copy.head.start_line, miss.head.start_line);
        for field in ["host", "x-forwarded-for", "x-forwarded-proto", "via"] {
            assert_eq!(copy.head.get(field), miss.head.get(field), "{field}");
        }
    }
    assert_eq!(seen[2].head.get("if-none-match"), Some("\"v1\""));
    assert_eq!(seen[3].head.get("range"), Some("bytes=0-1"));
    assert_eq!(seen[1].head.get("if-none-match"), None);
}

#[test]
fn a_range_request_the_cache_takes_is_copied_before_the_cache_fetches_for_it() {
    // The backend, asked to revalidate, first waits for the mirror to
    // have the client's copy (for less than the proxy waits for it), and
    // records whether it came.
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    let copies = Arc::new(AtomicUsize::new(0));
    let counted = copies.clone();
    let shadow = Backend::start("shadow", move |_, out| {
        counted.fetch_add(1, Ordering::SeqCst);
        respond(out, 200, &[], b"shadow");
        Action::KeepAlive
    });
    let copied_first: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let (seen_copies, record) = (copies.clone(), copied_first.clone());
    // Each request the backend is asked (a miss or a revalidation) is a
    // client's, copied once: the nth (from 1) wants n copies.
    let asked = AtomicUsize::new(0);
    let main = Backend::start("main", move |seen, out| {
        let wanted = asked.fetch_add(1, Ordering::SeqCst) + 1;
        if seen.head.get("if-none-match").is_some() {
            let due = Instant::now() + Duration::from_secs(3);
            while seen_copies.load(Ordering::SeqCst) < wanted && Instant::now() < due {
                std::thread::sleep(Duration::from_millis(10));
            }
            let came = seen_copies.load(Ordering::SeqCst) >= wanted;
            record.lock().unwrap().push((seen.path().to_string(), came));
            respond(out, 304, &[("ETag", "\"v1\"")], b"");
        } else {
            let fields = [("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")];
            respond(out, 200, &fields, b"stored body");
        }
        Action::KeepAlive
    });
    let proxy = cached_and_mirrored(&main, &shadow);
    let mut client = proxy.connect();
    // Stored (a miss, copied), then revalidated: whole, then a range.
    assert_eq!(client.get("/w").status, 200);
    assert!(wait_until(WAIT_LIMIT, || copies.load(Ordering::SeqCst) == 1));
    assert_eq!(client.get("/w").status, 200);
    assert!(wait_until(WAIT_LIMIT, || copies.load(Ordering::SeqCst) == 2));
    assert_eq!(client.get("/r").status, 200);
    assert!(wait_until(WAIT_LIMIT, || copies.load(Ordering::SeqCst) == 3));
    let part = client.get_with("/r", &[("Range", "bytes=0-1")]);
    assert_eq!(part.status, 206, "{}", part.head.raw);
    assert!(wait_until(WAIT_LIMIT, || copies.load(Ordering::SeqCst) == 4));
    let record = copied_first.lock().unwrap().clone();
    assert_eq!(record, [("/w".to_string(), true), ("/r".to_string(), true)]);
}

#[test]
fn a_mirror_must_name_a_pool_other_than_its_own() {
    let cases = [
        (
            "targets = 127.0.0.1:9\nmirror = shadw\npool.shadow = 127.0.0.1:10\n",
            "proxy.conf:2: mirror: no pool is named `shadw` (did you mean `shadow`?)",
        ),
        (
            "targets = 127.0.0.1:9\nmirror = default\n",
            "proxy.conf:2: mirror: names the pool itself",
        ),
        (
            "targets = 127.0.0.1:9\npool.a = 127.0.0.1:10\npool.a.mirror = a\n",
            "proxy.conf:3: pool.a.mirror: names the pool itself",
        ),
    ];
    for (text, expected) in cases {
        let e = config_error(text);
        assert!(e.contains(expected), "{text}: {e}");
    }
}

#[test]
fn only_the_client_s_request_is_mirrored_not_the_sign_in_service_s_question() {
    let main = Backend::echo("main");
    let shadow = Backend::echo("shadow");
    let auth = Backend::start("auth", |_, out| {
        respond(out, 200, &[], b"");
        Action::KeepAlive
    });
    let text = format!(
        "targets = {}\npool.shadow = {}\npool.auth = {}\nmirror = shadow\n\
         auth_request = auth /check\n",
        main.addr, shadow.addr, auth.addr
    );
    let proxy = start_proxy(&[], from_file_with_admin(&text));
    assert_eq!(proxy.connect().get("/app").status, 200);
    assert!(wait_until(WAIT_LIMIT, || shadow.requests() >= 1));
    assert_eq!(auth.requests(), 1);
    let paths: Vec<String> = shadow.seen().iter().map(|s| s.path().to_string()).collect();
    assert_eq!(paths, ["/app"]);
    // Counted once at the mirror's target, as any request.
    let sent = format!(
        "inverso_upstream_requests_total{{target=\"{}\",pool=\"shadow\"}}",
        shadow.addr
    );
    let page = proxy.admin("GET", "/metrics", "").body_str();
    assert!(page.contains(&format!("{sent} 1")), "{page}");
}

#[test]
fn a_mirror_s_connection_that_answers_on_and_on_is_not_kept() {
    // Seventeen interim answers, then the final one later: the
    // connection is not pooled meanwhile, where the next request on it
    // would read that final answer as its own.
    let late = Gate::new();
    let shadow = {
        let late = late.clone();
        Backend::start("shadow", move |seen, out| {
            if seen.path() == "/long" {
                for _ in 0..17 {
                    let _ = out.write_all(b"HTTP/1.1 102 Processing\r\n\r\n");
                }
                late.wait();
                respond(out, 200, &[], b"late answer to /long");
            } else {
                respond(out, 200, &[], b"its own answer");
            }
            Action::KeepAlive
        })
    };
    let main = Backend::echo("main");
    let proxy = mirrored(&main, shadow.addr, "route./s/ = shadow\n");
    assert_eq!(proxy.connect().get("/long").status, 200);
    assert!(wait_until(WAIT_LIMIT, || {
        proxy.metric("inverso_mirror_requests_total{result=\"answered\"}") == Some(1)
    }));
    let r = proxy.connect().get("/s/next");
    assert_eq!(r.body_str(), "its own answer");
    late.open();
}

#[test]
fn check_says_which_pools_are_mirrored() {
    let text = "targets = 127.0.0.1:9\npool.api = 127.0.0.1:10\npool.next = 127.0.0.1:11\n\
                mirror = next\nroute./api/ = api\n";
    let (code, out, err) = inverso_check(text, "warn");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("# pool api: balance round_robin, mirrored to next"),
        "{out}"
    );
    // The mirror pool's own requests are not mirrored to it.
    let next = out
        .lines()
        .find(|l| l.starts_with("# pool next:"))
        .expect(&out);
    assert!(!next.contains("mirrored"), "{next}");
    // Nor is it warned of as a pool no request reaches, as it is
    // without the mirror.
    assert!(!err.contains("no route sends requests to it"), "{err}");
    let (_, _, err) = inverso_check(&text.replace("mirror = next\n", ""), "warn");
    assert!(
        err.contains("pool.next: no route sends requests to it"),
        "{err}"
    );
}

#[test]
fn a_copy_says_connection_close_as_its_own_pool_keeps_connections() {
    // `upstream_keepalive = 0` is per pool: a copy goes on its mirror
    // pool's connections, and says `Connection: close` as that pool
    // keeps none (RFC 9112 §9.6), whatever the request's own pool does.
    for (more, main_closes, copy_closes) in [
        ("pool.shadow.upstream_keepalive = 0\n", false, true),
        (
            "upstream_keepalive = 0\npool.shadow.upstream_keepalive = 16\n",
            true,
            false,
        ),
    ] {
        let main = Backend::echo("main");
        let shadow = Backend::echo("shadow");
        let proxy = mirrored(&main, shadow.addr, more);
        assert_eq!(proxy.connect().get("/a").status, 200);
        assert!(wait_until(WAIT_LIMIT, || shadow.requests() == 1));
        let (sent, copy) = (&main.seen()[0], &shadow.seen()[0]);
        assert_eq!(
            sent.head.has_token("connection", "close"),
            main_closes,
            "{more}"
        );
        assert_eq!(
            copy.head.has_token("connection", "close"),
            copy_closes,
            "{more}"
        );
        assert_eq!(copy.path(), "/a");
    }
}

#[test]
fn a_client_s_value_ending_in_connection_close_smuggles_no_request_to_the_mirror() {
    // A rendered field whose value the client makes end with
    // `Connection: close`, right before the copy's `Content-Length`:
    // the copy must keep every line, or the mirror reads the body as a
    // request of its own. (The client names its `User-Agent` in
    // `Connection`, so that its own line is taken out.)
    let main = Backend::echo("main");
    let shadow = Backend::echo("shadow");
    let proxy = mirrored(
        &main,
        shadow.addr,
        "request_header.X-Client-UA = $http_user_agent\n",
    );
    let smuggled = b"GET /smuggled HTTP/1.1\r\nHost: internal\r\nX-Real-IP: 127.0.0.1\r\n\r\n";
    let mut client = proxy.connect();
    let r = client.request(
        "POST",
        "/form",
        &[
            ("Connection", "User-Agent"),
            ("User-Agent", "Connection: close"),
        ],
        smuggled,
    );
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert!(wait_until(WAIT_LIMIT, || shadow.requests() >= 1));
    let copy = &shadow.seen()[0];
    assert_eq!(copy.head.start_line, "POST /form HTTP/1.1", "{copy:#?}");
    assert_eq!(copy.body, smuggled, "{copy:#?}");
    assert_eq!(main.seen()[0].body, smuggled);
    // No second request came on the copy's connection: the mirror read
    // one, then the connection went back to the pool, idle.
    assert_eq!(proxy.connect().get("/after").status, 200);
    assert!(wait_until(WAIT_LIMIT, || shadow.requests() == 2));
    let lines: Vec<String> = (shadow.seen().iter())
        .map(|s| s.head.start_line.clone())
        .collect();
    assert_eq!(lines, ["POST /form HTTP/1.1", "GET /after HTTP/1.1"]);
}

#[test]
fn a_client_s_field_cannot_take_the_next_line_out_of_the_mirror_s_copy() {
    let main = Backend::echo("main");
    let shadow = Backend::echo("shadow");
    let proxy = mirrored(&main, shadow.addr, "");
    let r = proxy.connect().get_with("/a", &[("X-Connection", "close")]);
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert!(wait_until(WAIT_LIMIT, || shadow.requests() == 1));
    let (sent, copy) = (&main.seen()[0], &shadow.seen()[0]);
    assert!(sent.head.get("x-forwarded-for").is_some());
    for field in ["x-connection", "x-forwarded-for"] {
        assert_eq!(
            copy.head.get(field),
            sent.head.get(field),
            "{field}: {copy:#?}"
        );
    }
}

/// Waits for `n` copies counted as `result`: answered, failed or dropped.
fn counted(proxy: &Proxy, result: &str, n: u64) -> bool {
    let name = format!("inverso_mirror_requests_total{{result=\"{result}\"}}");
    wait_until(WAIT_LIMIT, || proxy.metric(&name) == Some(n))
}

#[test]
fn a_mirror_s_connection_is_kept_after_an_answer_read_whole_and_closed_after_a_large_one() {
    // An answer of a length past what is worth reading (1 MiB) closes
    // its connection; a small one, one after an interim answer, one
    // without a body and one of some hundred kilobytes each leave it for
    // the next copy.
    let shadow = Backend::start("shadow", |seen, out| {
        match seen.path() {
            "/big" => respond(out, 200, &[], &vec![b'x'; (1 << 20) + 1]),
            "/early" => {
                let _ = out.write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n");
                respond(out, 200, &[], b"after a hint");
            }
            "/empty" => respond(out, 204, &[], b""),
            // Read in more than one piece, but within what is read.
            "/medium" => respond(out, 200, &[], &vec![b'x'; 500_000]),
            _ => respond(out, 200, &[], b"small"),
        }
        Action::KeepAlive
    });
    let main = Backend::echo("main");
    let proxy = mirrored(&main, shadow.addr, "");
    let mut client = proxy.connect();
    let paths = ["/1", "/early", "/empty", "/medium", "/2"];
    for (n, path) in (1..).zip(paths) {
        assert_eq!(client.get(path).status, 200);
        assert!(counted(&proxy, "answered", n), "{path}");
    }
    assert_eq!(shadow.connections(), 1, "every copy went on the first's");
    assert_eq!(client.get("/big").status, 200);
    assert!(counted(&proxy, "answered", 6));
    assert_eq!(client.get("/3").status, 200);
    assert!(counted(&proxy, "answered", 7));
    assert_eq!(shadow.connections(), 2, "the large answer's was closed");
    assert!(wait_until(WAIT_LIMIT, || shadow.closed() == 1));
}

#[test]
fn a_mirror_s_connection_whose_answer_says_close_is_not_kept() {
    // The backend says `Connection: close` but leaves the connection
    // open: it is closed all the same, the next copy goes on a new one.
    let shadow = Backend::start("shadow", |_, out| {
        respond(out, 200, &[("Connection", "close")], b"ok");
        Action::KeepAlive
    });
    let main = Backend::echo("main");
    let proxy = mirrored(&main, shadow.addr, "");
    let mut client = proxy.connect();
    for (n, path) in [(1, "/1"), (2, "/2")] {
        assert_eq!(client.get(path).status, 200);
        assert!(counted(&proxy, "answered", n), "{path}");
    }
    assert_eq!((shadow.requests(), shadow.connections()), (2, 2));
}

#[test]
fn a_mirror_s_answer_head_is_read_up_to_32_kib() {
    // A head of some kilobytes is read as any; one past 32 KiB is not.
    // Its end comes a moment after the rest, so that the proxy holds
    // the long part unfinished first.
    let shadow = Backend::start("shadow", |seen, out| {
        let long = if seen.path() == "/huge" { 40_000 } else { 8000 };
        let start = format!("HTTP/1.1 200 OK\r\nX-Long: {}", "v".repeat(long));
        let _ = out.write_all(start.as_bytes());
        std::thread::sleep(std::time::Duration::from_millis(100));
        let _ = out.write_all(b"\r\nContent-Length: 2\r\n\r\nok");
        Action::KeepAlive
    });
    let main = Backend::echo("main");
    let proxy = mirrored(&main, shadow.addr, "");
    let mut client = proxy.connect();
    assert_eq!(client.get("/long").status, 200);
    assert!(counted(&proxy, "answered", 1));
    assert_eq!(client.get("/huge").status, 200);
    assert!(counted(&proxy, "failed", 1));
    assert_eq!(
        proxy.metric("inverso_mirror_requests_total{result=\"answered\"}"),
        Some(1)
    );
}

#[test]
fn a_mirror_s_switch_or_endless_interim_answers_are_counted_without_waiting_for_more() {
    // A copy asks for no switch, and what follows a 101 or a seventeenth
    // interim answer is not read: the copy is answered at once, and its
    // connection closed (the backend hangs on until then).
    let shadow = Backend::start("shadow", |seen, out| {
        let head: &[u8] = match seen.path() {
            "/switch" => {
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n"
            }
            _ => b"HTTP/1.1 102 Processing\r\n\r\n",
        };
        let times = if seen.path() == "/switch" { 1 } else { 17 };
        for _ in 0..times {
            let _ = out.write_all(head);
        }
        Action::Hang
    });
    let main = Backend::echo("main");
    let proxy = mirrored(&main, shadow.addr, "backend_timeout = 30s\n");
    let soon = std::time::Duration::from_secs(3);
    let answered = |n| {
        wait_until(soon, || {
            proxy.metric("inverso_mirror_requests_total{result=\"answered\"}") == Some(n)
        })
    };
    let mut client = proxy.connect();
    assert_eq!(client.get("/switch").status, 200);
    assert!(answered(1));
    assert_eq!(client.get("/processing").status, 200);
    assert!(answered(2));
    assert!(wait_until(WAIT_LIMIT, || shadow.closed() == 2));
}

#[test]
fn a_copy_that_may_be_sent_twice_is_sent_again_when_a_kept_connection_was_closed() {
    // `/once` is hung up on (read, then the connection closed unanswered)
    // the first time, answered after; `/hangup` always; `/nonsense` is
    // answered with what is no HTTP, `/interim` with an interim answer
    // only, `/slow` not at all.
    use std::sync::atomic::{AtomicBool, Ordering};
    let hung_once = AtomicBool::new(false);
    let shadow = Backend::start("shadow", move |seen, out| match seen.path() {
        "/once" if !hung_once.swap(true, Ordering::SeqCst) => Action::Close,
        "/hangup" => Action::Close,
        "/nonsense" => {
            let _ = out.write_all(b"nonsense\r\n\r\n");
            Action::Close
        }
        "/interim" => {
            let _ = out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
            Action::Close
        }
        "/slow" => Action::Hang,
        _ => {
            respond(out, 200, &[], b"ok");
            Action::KeepAlive
        }
    });
    let main = Backend::echo("main");
    let proxy = mirrored(&main, shadow.addr, "pool.shadow.backend_timeout = 1s\n");
    let mut client = proxy.connect();
    assert_eq!(client.get("/1").status, 200);
    assert!(counted(&proxy, "answered", 1));
    // On the kept connection, hung up on: a GET goes again on a new one.
    assert_eq!(client.get("/once").status, 200);
    assert!(counted(&proxy, "answered", 2));
    assert_eq!((shadow.requests(), shadow.connections()), (3, 2));
    // A POST is not sent twice.
    assert_eq!(client.request("POST", "/hangup", &[], b"x").status, 200);
    assert!(counted(&proxy, "failed", 1));
    assert_eq!(shadow.requests(), 4);
    // Nor is a GET hung up on over a new connection: it is no kept one
    // the backend had closed while it idled.
    assert_eq!(client.get("/hangup").status, 200);
    assert!(counted(&proxy, "failed", 2));
    assert_eq!(shadow.requests(), 5);
    // Nor one the backend answered in part (with what is no HTTP, an
    // interim answer only), nor one it kept waiting: each on a kept
    // connection.
    let (mut answered, mut failed) = (2, 2);
    for path in ["/nonsense", "/interim", "/slow"] {
        let requests = shadow.requests();
        assert_eq!(client.get("/warm").status, 200);
        answered += 1;
        assert!(counted(&proxy, "answered", answered), "{path}");
        assert_eq!(client.get(path).status, 200);
        failed += 1;
        assert!(counted(&proxy, "failed", failed), "{path}");
        assert_eq!(shadow.requests(), requests + 2, "{path}");
    }
}

/// A mirror that answers no copy until the gate opens.
fn held_mirror() -> (Gate, Backend) {
    let gate = Gate::new();
    let held = gate.clone();
    let shadow = Backend::start("shadow", move |_, out| {
        held.wait();
        respond(out, 200, &[], b"late");
        Action::KeepAlive
    });
    (gate, shadow)
}

#[test]
fn copies_sent_back_to_back_to_a_slow_mirror_each_find_a_thread() {
    // None waits behind another while fewer than sixteen are out.
    let (gate, shadow) = held_mirror();
    let main = Backend::echo("main");
    let proxy = mirrored(&main, shadow.addr, "");
    let mut client = proxy.connect();
    for i in 0..16 {
        assert_eq!(client.get(&format!("/{i}")).status, 200);
    }
    let all_out = wait_until(WAIT_LIMIT, || shadow.requests() == 16);
    gate.open();
    assert!(all_out, "{} of 16 at the mirror", shadow.requests());
}

#[test]
fn no_more_than_sixteen_copies_are_sent_at_once_the_rest_wait_their_turn() {
    // A mirror that holds every copy unanswered holds the sixteen
    // threads that send them; the copies after wait in the queue, and
    // go once it answers.
    let (gate, shadow) = held_mirror();
    let main = Backend::echo("main");
    let proxy = mirrored(&main, shadow.addr, "");
    // Each copy waited for at the mirror before the next is sent, so
    // that each finds every thread busy.
    let mut client = proxy.connect();
    for i in 0..20 {
        assert_eq!(client.get(&format!("/{i}")).status, 200);
        let reached = (i + 1).min(16);
        assert!(wait_until(WAIT_LIMIT, || shadow.requests() == reached));
    }
    // Time for a seventeenth copy to come, were there a thread to send it.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(shadow.requests(), 16);
    gate.open();
    assert!(wait_until(WAIT_LIMIT, || shadow.requests() == 20));
    assert_eq!(
        proxy.metric("inverso_mirror_requests_total{result=\"dropped\"}"),
        Some(0)
    );
}
