//! `retry_on_status`: a response whose status is listed sends an
//! idempotent request with a buffered body on to the next target, as
//! HAProxy's `retry-on` and nginx's `proxy_next_upstream http_503`.

mod support;

use inverso::upstream::retry_on::RetryOnStatus;
use inverso::Config;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;

/// A backend answering every request `status`, with `busy NAME` as body
/// (the marker that shows which backend a relayed answer came from) and
/// `headers`.
fn answering(name: &str, status: u16, headers: &'static [(&'static str, &'static str)]) -> Backend {
    let body = format!("busy {name}");
    Backend::start(name, move |_, out| {
        respond(out, status, headers, body.as_bytes());
        Action::KeepAlive
    })
}

fn listing(statuses: &str) -> impl Fn(&mut Config) + '_ {
    move |c| c.retry_on_status = RetryOnStatus::parse(statuses).unwrap()
}

/// A 503 is tried once more on another target, and counts no failure.
fn one_retry_on_503(c: &mut Config) {
    listing("503")(c);
    c.max_fails = 0;
    c.retries = Some(1);
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
const POST: &[u8] = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";

/// Sends `request` on a new connection and reads the answer.
fn send(proxy: &Proxy, request: &[u8]) -> Response {
    let mut client = proxy.connect();
    client.send(request);
    client.response()
}

/// Waits until the access log has a line with every one of `fragments`.
#[track_caller]
fn assert_logged(proxy: &Proxy, fragments: &[&str]) {
    let found = wait_until(WAIT_LIMIT, || {
        proxy
            .log_lines()
            .iter()
            .any(|l| fragments.iter().all(|f| l.contains(f)))
    });
    assert!(
        found,
        "no line with {fragments:?} in {:?}",
        proxy.log_lines()
    );
}

/// The sample `metric{target="addr",pool="default"}` from the admin
/// listener.
fn sample(proxy: &Proxy, metric: &str, target: SocketAddr) -> u64 {
    let admin = proxy
        .handle()
        .admin_addr()
        .expect("the admin listener is on");
    let metrics = one_request(admin, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let prefix = format!("{metric}{{target=\"{target}\",pool=\"default\"}} ");
    let text = metrics.body_str();
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix:?} in {text}"))
}

#[test]
fn retry_timeout_ends_the_retries_of_a_request_whose_first_try_took_longer() {
    // The first target (round robin's first) takes its time to say 503.
    let slow = Backend::start("slow", |_, out| {
        std::thread::sleep(Duration::from_millis(300));
        respond(out, 503, &[], b"busy slow");
        Action::KeepAlive
    });
    let good = Backend::echo("good");
    for (limit, status) in [(Duration::ZERO, 200), (Duration::from_millis(100), 503)] {
        let proxy = start_proxy(&[slow.addr, good.addr], |c| {
            listing("503")(c);
            c.retry_timeout = limit;
        });
        let answer = send(&proxy, GET);
        assert_eq!(answer.status, status, "retry_timeout {limit:?}");
    }
    assert_eq!(good.requests(), 1, "retried once, under no limit");

    // A first target that never answers: its timeout past the limit, the
    // client hears of it rather than waiting for the next one.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    for (limit, status) in [(Duration::ZERO, 200), (Duration::from_millis(100), 504)] {
        let proxy = start_proxy(&[silent_addr, good.addr], |c| {
            c.backend_timeout = Some(Duration::from_millis(300));
            c.retry_timeout = limit;
        });
        let answer = send(&proxy, GET);
        assert_eq!(answer.status, status, "retry_timeout {limit:?}");
    }
}

#[test]
fn a_get_answered_with_a_listed_status_goes_to_the_next_target() {
    // Round robin sends a new proxy's first request to the first target.
    let bad = answering("bad", 503, &[]);
    let good = Backend::echo("good");
    let proxy = start_proxy(&[bad.addr, good.addr], |c| {
        listing("503")(c);
        c.admin_port = Some(0);
    });
    let response = send(&proxy, GET);
    assert_eq!(response.status, 200, "{}", response.head.raw);
    assert_eq!(response.header("x-backend"), Some("good"));
    assert_eq!((bad.requests(), good.requests()), (1, 1));
    // The log names the target that answered last; each attempt counts.
    assert_logged(
        &proxy,
        &["\"GET / HTTP/1.1\" 200", &format!("upstream={}", good.addr)],
    );
    assert_eq!(
        sample(&proxy, "inverso_upstream_requests_total", bad.addr),
        1
    );
    assert_eq!(
        sample(&proxy, "inverso_upstream_requests_total", good.addr),
        1
    );

    // The default lists nothing: the 503 is relayed as it came.
    let bad = answering("bad", 503, &[]);
    let good = Backend::echo("good");
    let proxy = start_proxy(&[bad.addr, good.addr], |_| {});
    let response = send(&proxy, GET);
    assert_eq!(
        (response.status, response.body_str()),
        (503, "busy bad".into())
    );
    assert_eq!((bad.requests(), good.requests()), (1, 0));
}

#[test]
fn a_post_answered_with_a_listed_status_is_relayed_not_sent_again() {
    let bad = answering("bad", 503, &[]);
    let good = Backend::echo("good");
    let proxy = start_proxy(&[bad.addr, good.addr], listing("503"));
    let response = send(&proxy, POST);
    assert_eq!(
        (response.status, response.body_str()),
        (503, "busy bad".into())
    );
    assert_eq!((bad.requests(), good.requests()), (1, 0));
}

#[test]
fn when_every_target_answers_a_listed_status_the_last_answer_is_relayed() {
    let backends: Vec<Backend> = ["a", "b", "c"]
        .into_iter()
        .map(|name| answering(name, 503, &[("X-Backend", "x")]))
        .collect();
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let proxy = start_proxy(&addrs, |c| {
        listing("502, 503")(c);
        c.max_fails = 0;
    });
    let response = send(&proxy, GET);
    // The backend's own answer, not one the proxy made up.
    assert_eq!(response.status, 503);
    assert_eq!(response.header("x-backend"), Some("x"));
    let body = response.body_str();
    let last = backends
        .iter()
        .find(|b| body == format!("busy {}", b.name))
        .unwrap_or_else(|| panic!("not a backend's body: {body:?}"));
    for b in &backends {
        assert_eq!(b.requests(), 1, "{} tried once", b.name);
    }
    assert_logged(&proxy, &["\" 503 ", &format!("upstream={}", last.addr)]);

    // `retries` bounds the attempts: one retry, two targets asked.
    let backends: Vec<Backend> = ["a", "b", "c"]
        .into_iter()
        .map(|name| answering(name, 503, &[]))
        .collect();
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let proxy = start_proxy(&addrs, one_retry_on_503);
    assert_eq!(send(&proxy, GET).status, 503);
    let asked: usize = backends.iter().map(Backend::requests).sum();
    assert_eq!(asked, 2);
}

#[test]
fn a_status_that_is_not_listed_is_relayed() {
    let bad = answering("bad", 503, &[]);
    let good = Backend::echo("good");
    let proxy = start_proxy(&[bad.addr, good.addr], listing("500, 502, 504, 429"));
    let response = send(&proxy, GET);
    assert_eq!(
        (response.status, response.body_str()),
        (503, "busy bad".into())
    );
    assert_eq!(good.requests(), 0);
}

#[test]
fn a_listed_5xx_counts_toward_max_fails_and_a_listed_4xx_does_not() {
    let config = |c: &mut Config| {
        listing("404, 502")(c);
        c.max_fails = 1;
        c.fail_timeout = Duration::from_secs(3600);
        c.admin_port = Some(0);
    };
    let failing = answering("failing", 502, &[]);
    let good = Backend::echo("good");
    let proxy = start_proxy(&[failing.addr, good.addr], config);
    for _ in 0..4 {
        assert_eq!(send(&proxy, GET).status, 200);
    }
    assert_eq!(failing.requests(), 1, "out of rotation after its 502");
    assert_eq!(
        sample(&proxy, "inverso_upstream_failures_total", failing.addr),
        1
    );

    let missing = answering("missing", 404, &[]);
    let good = Backend::echo("good");
    let proxy = start_proxy(&[missing.addr, good.addr], config);
    for _ in 0..4 {
        assert_eq!(send(&proxy, GET).status, 200);
    }
    assert!(missing.requests() >= 2, "still in rotation after its 404");
    assert_eq!(
        sample(&proxy, "inverso_upstream_failures_total", missing.addr),
        0
    );
}

#[test]
fn a_retried_answer_is_never_stored_and_stale_if_error_sees_the_last_one() {
    // A 503 the cache would keep for a minute, retried: the 200 after it
    // says no-store, so the next request finds nothing stored.
    let bad = answering("bad", 503, &[("Cache-Control", "max-age=60")]);
    let good = Backend::start("good", |seen, out| {
        let body = format!("good {}", seen.path());
        respond(out, 200, &[("Cache-Control", "no-store")], body.as_bytes());
        Action::KeepAlive
    });
    let proxy = start_proxy(&[bad.addr, good.addr], |c| {
        listing("503")(c);
        c.max_fails = 0;
        c.cache_size = 1 << 20;
    });
    for _ in 0..3 {
        let response = proxy.exchange(|c| c.get("/p"));
        assert_eq!(
            (response.status, response.body_str()),
            (200, "good /p".into()),
            "{}",
            response.head.raw
        );
        assert_eq!(response.header("x-cache"), Some("MISS"));
    }
    assert_eq!(good.requests(), 3);

    // A stale entry stands in when the last answer is a 5xx, retried or
    // not: stale by 50 s at once, within the default stale_if_error.
    let flip = Arc::new(AtomicBool::new(false));
    let backends: Vec<Backend> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let flip = flip.clone();
            let name = name.to_string();
            Backend::start(&name.clone(), move |_, out| {
                if flip.load(Ordering::SeqCst) {
                    respond(out, 503, &[], format!("busy {name}").as_bytes());
                } else {
                    let fields = [("Cache-Control", "max-age=50"), ("Age", "100")];
                    respond(out, 200, &fields, b"stored");
                }
                Action::KeepAlive
            })
        })
        .collect();
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let proxy = start_proxy(&addrs, |c| {
        listing("503")(c);
        c.max_fails = 0;
        c.cache_size = 1 << 20;
    });
    let first = proxy.exchange(|c| c.get("/s"));
    assert_eq!((first.status, first.header("x-cache")), (200, Some("MISS")));
    flip.store(true, Ordering::SeqCst);
    let stale = proxy.exchange(|c| c.get("/s"));
    assert_eq!(
        (stale.status, stale.header("x-cache"), stale.body_str()),
        (200, Some("STALE"), "stored".into()),
        "{}",
        stale.head.raw
    );
    let asked: usize = backends.iter().map(Backend::requests).sum();
    assert_eq!(asked, 3, "the miss, then both targets");
}

#[test]
fn early_hints_from_a_retried_target_reach_the_client_before_the_final_answer() {
    let hinting = Backend::start("hinting", |_, out| {
        out.write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n")
            .unwrap();
        respond(out, 503, &[], b"busy hinting");
        Action::KeepAlive
    });
    let good = Backend::echo("good");
    let proxy = start_proxy(&[hinting.addr, good.addr], listing("503"));
    let mut client = proxy.connect();
    let hints = client.get("/");
    assert_eq!(hints.status, 103, "{}", hints.head.raw);
    let last = client.response();
    assert_eq!(last.status, 200, "{}", last.head.raw);
    assert_eq!(last.header("x-backend"), Some("good"));
    // The connection carries on, in step: the next request's hints (if
    // it went to `hinting` again), then its final answer.
    let mut next = client.get("/next");
    for _ in 0..2 {
        if next.status >= 200 {
            break;
        }
        next = client.response();
    }
    assert_eq!(next.status, 200, "{}", next.head.raw);
    assert_eq!(next.header("x-backend"), Some("good"));
}

#[test]
fn a_discarded_answer_leaves_its_connection_fit_for_the_next_request() {
    // The 503's body came whole with its head: the connection goes back to
    // the pool, and carries the next request in step.
    let bad = Backend::start("bad", |seen, out| {
        let status = if seen.path() == "/retry" { 503 } else { 200 };
        respond(out, status, &[], format!("bad {}", seen.path()).as_bytes());
        Action::KeepAlive
    });
    let good = Backend::echo("good");
    let proxy = start_proxy(&[bad.addr, good.addr], one_retry_on_503);
    assert_eq!(
        send(&proxy, b"GET /retry HTTP/1.1\r\nHost: x\r\n\r\n").status,
        200
    );
    // Round robin comes back to `bad` within two requests.
    let from_bad = (0..2).any(|_| {
        let response = send(&proxy, b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(response.status, 200);
        response.body_str() == "bad /plain"
    });
    assert!(from_bad, "round robin never came back to bad");
    assert_eq!(bad.connections(), 1, "the pooled connection was used");
    assert_eq!(bad.requests(), 2);
}

#[test]
fn a_discarded_answer_whose_body_is_still_coming_closes_its_connection() {
    // The 503's head comes alone, its body held back until `bad` has been
    // asked again: pooled, the connection would give that body as the
    // answer to the next request sent on it.
    let held = Gate::new();
    let body_held = held.clone();
    let bad = Backend::start("bad", move |seen, out| {
        if seen.path() != "/retry" {
            respond(out, 200, &[], format!("bad {}", seen.path()).as_bytes());
            return Action::KeepAlive;
        }
        let head = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\n";
        let _ = out.write_all(head).and_then(|()| out.flush());
        body_held.wait();
        let _ = out.write_all(b"later");
        Action::KeepAlive
    });
    let good = Backend::echo("good");
    let proxy = start_proxy(&[bad.addr, good.addr], one_retry_on_503);
    let response = send(&proxy, b"GET /retry HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(response.header("x-backend"), Some("good"));
    // Round robin comes back to `bad` within two requests: on a new
    // connection, answered in step, while that body is still held.
    let from_bad = (0..2).any(|_| {
        let response = send(&proxy, b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(response.status, 200, "{}", response.head.raw);
        response.body_str() == "bad /plain"
    });
    held.open();
    assert!(from_bad, "round robin never came back to bad");
    assert!(
        wait_until(WAIT_LIMIT, || bad.closed() == 1),
        "the connection of the discarded answer was kept"
    );
    // Nothing more was sent on that connection.
    assert_eq!((bad.connections(), bad.requests()), (2, 2));
}

#[test]
fn a_large_discarded_body_is_not_read_its_connection_is_closed() {
    // 4 MiB the client will never see: the proxy closes the connection
    // rather than read it (the backend's write then fails).
    let big = Backend::start("big", |_, out| {
        respond(out, 503, &[], &pattern(4 << 20));
        Action::KeepAlive
    });
    let good = Backend::echo("good");
    let proxy = start_proxy(&[big.addr, good.addr], listing("503"));
    let response = send(&proxy, GET);
    assert_eq!(response.header("x-backend"), Some("good"));
    assert!(
        wait_until(WAIT_LIMIT, || big.closed() == 1),
        "the discarded answer's connection is still open"
    );
}

#[test]
fn a_reload_turns_retry_on_status_on() {
    let bad = answering("bad", 503, &[]);
    let good = Backend::echo("good");
    let proxy = start_proxy(&[bad.addr, good.addr], |c| c.max_fails = 0);
    assert_eq!(send(&proxy, GET).status, 503);
    let mut next = Config::with_targets(vec![bad.target(), good.target()]);
    next.log_to_stdout = false;
    next.cache_size = 0;
    next.path_to_persistence = None;
    next.path_to_log = Some(proxy.log_path.clone());
    next.max_fails = 0;
    listing("503")(&mut next);
    proxy.handle().control().reload(next).unwrap();
    for _ in 0..4 {
        let response = send(&proxy, GET);
        assert_eq!(response.status, 200, "{}", response.body_str());
    }
}
