//! Failures and limits: dead, slow and broken backends, slow clients, the
//! connection limit, and graceful shutdown.

mod support;

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;

fn short_timeout(config: &mut inverso::Config) {
    config.connection_timeout = Duration::from_millis(300);
}

#[test]
fn a_dead_target_gets_502() {
    let proxy = start_proxy(&[dead_addr()], |_| {});
    let mut client = proxy.connect();
    let response = client.get("/");
    assert_eq!(response.status, 502);
    assert!(
        response.body_str().contains("502"),
        "{}",
        response.body_str()
    );
    // The client is told, and may carry on (or is told to go away).
    if !response.head.has_token("connection", "close") {
        assert_eq!(client.get("/again").status, 502);
    }
}

#[test]
fn the_proxys_own_answer_to_a_head_has_no_body() {
    // Pipelined behind a HEAD: had the 502 carried its body, the second
    // response would start with those bytes.
    let proxy = start_proxy(&[dead_addr()], |_| {});
    let mut client = proxy.connect();
    client.send(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    let head = client.head_response();
    assert_eq!(head.status, 502);
    assert!(
        !head.head.has_token("connection", "close"),
        "{}",
        head.head.raw
    );
    let get = client.response();
    assert_eq!(get.status, 502, "{}", get.head.raw);
    assert!(get.body_str().contains("502"));
}

#[test]
fn a_target_that_never_answers_gets_504() {
    let slow = Backend::start("slow", |_, _| Action::Hang);
    let proxy = start_proxy(&[slow.addr], short_timeout);
    let mut client = proxy.connect();
    let response = client.get("/");
    assert_eq!(response.status, 504);
    // The 504 comes from the proxy's timeout, not from the backend: its
    // thread may not have read the request yet.
    assert!(
        wait_until(WAIT_LIMIT, || slow.requests() >= 1),
        "the backend never got the request"
    );
    assert_eq!(slow.requests(), 1);
    // The proxy gave up on the backend connection rather than pooling it.
    assert!(wait_until(WAIT_LIMIT, || slow.closed() == 1));
}

#[test]
fn a_target_answering_garbage_gets_502() {
    let a = Backend::start("a", |seen, out| {
        match seen.path() {
            "/garbage" => {
                let _ = out.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n");
            }
            "/bad-status" => {
                let _ = out.write_all(b"HTTP/1.1 2x0 Hmm\r\nContent-Length: 0\r\n\r\n");
            }
            "/bad-length" => {
                let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\nabc");
            }
            _ => {
                respond(out, 200, &[], b"fine");
                return Action::KeepAlive;
            }
        }
        Action::Close
    });
    let proxy = start_proxy(&[a.addr], |_| {});
    for path in ["/garbage", "/bad-status", "/bad-length"] {
        let mut client = proxy.connect();
        let response = client.get(path);
        assert_eq!(response.status, 502, "{path}");
        assert_eq!(proxy.connect().get("/ok").body, b"fine");
    }
}

/// A backend that cuts its responses short: `/cut-large` and `/cut-small`
/// announce a Content-Length and close after 100 bytes, `/cut-chunked`
/// sends a bad chunk after 100 good bytes; anything else gets "fine".
fn cutting_backend() -> Backend {
    Backend::start("a", |seen, out| {
        let head = match seen.path() {
            "/cut-large" => "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n",
            "/cut-small" => "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
            "/cut-chunked" => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n",
            _ => {
                respond(out, 200, &[], b"fine");
                return Action::KeepAlive;
            }
        };
        let _ = out.write_all(head.as_bytes());
        let _ = out.write_all(&pattern(100));
        if seen.path() == "/cut-chunked" {
            let _ = out.write_all(b"\r\nzz-not-a-size\r\n");
        }
        Action::Close
    })
}

/// A second's idle timeout, so a connection wrongly kept open ends soon.
fn one_second(config: &mut inverso::Config) {
    config.connection_timeout = Duration::from_secs(1);
}

/// Sends `GET path` on a new connection and reads the response's head
/// only, leaving its body to the test.
fn head_only(proxy: &Proxy, path: &str) -> (Client, Head) {
    let mut client = proxy.connect();
    client.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    let head = client
        .reader
        .read_head()
        .unwrap()
        .expect("no response head");
    (client, head)
}

/// What a client whose connection the proxy ends reads: a 408, or the
/// end of the stream (or a reset) at once. `who` names it in the message.
#[track_caller]
fn assert_closed_or_408(client: &mut Client, who: &str) {
    match client.try_response(false) {
        Ok(response) => assert_eq!(response.status, 408),
        Err(e) => assert!(
            matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
            ),
            "{who} client not closed: {e}"
        ),
    }
}

#[test]
fn a_target_closing_mid_body_ends_the_client_connection_with_nothing_appended() {
    let a = cutting_backend();
    let proxy = start_proxy(&[a.addr], one_second);
    // Past the head the client cannot be told: it must get exactly the
    // bytes the backend sent, then a closed connection. Nothing may be
    // appended to the truncated body (no error response inside it).
    let (mut client, head) = head_only(&proxy, "/cut-large");
    assert!(head.start_line.contains(" 200 "), "{}", head.raw);
    assert_eq!(head.get("content-length"), Some("200000"));
    let rest = client.read_until_closed();
    assert!(
        rest == pattern(100),
        "after the truncated body the client got {:?}",
        String::from_utf8_lossy(&rest[100.min(rest.len())..])
    );
}

#[test]
fn a_broken_chunked_body_ends_the_client_connection_without_a_last_chunk() {
    let a = cutting_backend();
    let proxy = start_proxy(&[a.addr], one_second);
    let (mut client, head) = head_only(&proxy, "/cut-chunked");
    assert!(head.start_line.contains(" 200 "), "{}", head.raw);
    assert!(head.is_chunked(), "{}", head.raw);
    // The client must not be able to mistake the body for a complete one,
    // and nothing but chunk framing and the backend's bytes may follow.
    let rest = client.read_until_closed();
    let text = String::from_utf8_lossy(&rest);
    assert!(
        !text.contains("HTTP/1.1"),
        "a response inside the body: {text:?}"
    );
    assert!(
        !rest.ends_with(b"0\r\n\r\n"),
        "truncated body looks complete"
    );
}

#[test]
fn after_a_target_cut_a_body_the_proxy_serves_others() {
    let a = cutting_backend();
    let proxy = start_proxy(&[a.addr], one_second);
    let mut cut = proxy.connect();
    cut.send(b"GET /cut-large HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        cut.try_response(false).unwrap_err().kind(),
        io::ErrorKind::UnexpectedEof
    );

    // A small body may be gathered before the head goes out: then a 502
    // is possible; a truncated 200 never is.
    let mut client = proxy.connect();
    client.send(b"GET /cut-small HTTP/1.1\r\nHost: x\r\n\r\n");
    match client.try_response(false) {
        Ok(response) => assert_eq!(response.status, 502),
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}"),
    }

    let mut other = proxy.connect();
    for _ in 0..3 {
        assert_eq!(other.get("/ok").body, b"fine");
    }
}

#[test]
fn a_client_that_stops_mid_head_is_dropped_and_others_are_served() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], short_timeout);
    let mut stalled = proxy.connect();
    stalled.send(b"GET /never-finished HTTP/1.1\r\nHost: x\r\nX-Partial: ye");
    // Others are served meanwhile.
    let mut other = proxy.connect();
    assert_eq!(other.get("/other").status, 200);
    assert_closed_or_408(&mut stalled, "stalled");
    assert!(stalled.is_closed());
    assert_eq!(a.requests(), 1);
    assert_eq!(proxy.connect().get("/after").status, 200);
}

#[test]
fn a_client_idle_between_requests_is_closed_after_the_timeout() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], short_timeout);
    let mut client = proxy.connect();
    assert_eq!(client.get("/").status, 200);
    // Nothing more is sent: the proxy closes (without a response, or
    // with a 408) well within the client's own read timeout.
    assert_closed_or_408(&mut client, "idle");
    proxy.assert_becomes_idle();
}

#[test]
fn over_max_connections_gets_503_and_is_closed() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| c.max_connections = 2);
    let mut first = proxy.connect();
    let mut second = proxy.connect();
    assert_eq!(first.get("/1").status, 200);
    assert_eq!(second.get("/2").status, 200);
    assert_eq!(proxy.handle().live_connections(), 2);

    let mut third = proxy.connect();
    third.send(b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n");
    let response = third.response();
    assert_eq!(response.status, 503);
    assert!(third.is_closed());
    assert_eq!(a.requests(), 2);

    // The first two are still served; once one leaves, a newcomer is too.
    assert_eq!(second.get("/2b").status, 200);
    drop(first);
    assert!(wait_until(WAIT_LIMIT, || proxy.handle().live_connections() <= 1));
    assert_eq!(proxy.connect().get("/4").status, 200);

    // The refusal is in the access log like any answer (nginx logs its
    // limit_conn 503s): an operator sees overload where it shows.
    drop(second);
    let mut proxy = proxy;
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    let refused: Vec<_> = lines.iter().filter(|l| l.contains("\" 503 ")).collect();
    assert_eq!(refused.len(), 1, "{lines:#?}");
    // With the request line if it had arrived when the 503 went out.
    assert!(
        refused[0].contains("\"GET /3 HTTP/1.1\" 503 ") || refused[0].contains(" \"\" 503 "),
        "{}",
        refused[0]
    );
    assert!(refused[0].contains(" upstream=- "), "{}", refused[0]);
}

#[test]
fn a_client_that_connects_and_says_nothing_holds_no_thread_until_it_speaks() {
    // defer_accept (the default): the kernel keeps the connection until
    // its first bytes come, so a worker takes it with its request there.
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut silent = proxy.connect();
    // Well within the second after which the kernel passes it on anyway.
    let handle = proxy.handle();
    let counted = wait_until(Duration::from_millis(300), || handle.live_connections() > 0);
    assert!(!counted, "a silent connection was accepted at once");
    assert_eq!(silent.get("/spoke").status, 200);
    assert_eq!(proxy.handle().live_connections(), 1);
}

#[test]
fn without_defer_accept_a_silent_connection_is_accepted_at_once() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| c.defer_accept = false);
    let mut silent = proxy.connect();
    let handle = proxy.handle();
    assert!(wait_until(WAIT_LIMIT, || handle.live_connections() == 1));
    assert_eq!(silent.get("/spoke").status, 200);
}

#[test]
fn one_client_address_holds_at_most_max_connections_per_client() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| c.max_connections_per_client = 2);
    let here = std::net::IpAddr::from([127, 0, 0, 1]);
    let mut held: Vec<Client> = (0..2)
        .map(|_| Client::connect_from(here, proxy.addr))
        .collect();
    for (i, client) in held.iter_mut().enumerate() {
        assert_eq!(client.get(&format!("/{i}")).status, 200);
    }
    let mut third = Client::connect_from(here, proxy.addr);
    third.send(b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(third.response().status, 503);
    assert!(third.is_closed());

    // Another address is not held back by this one's connections.
    let elsewhere = std::net::IpAddr::from([127, 0, 0, 2]);
    assert_eq!(
        Client::connect_from(elsewhere, proxy.addr).get("/x").status,
        200
    );
    // Once one of its connections ends, the address may open another.
    held.pop();
    assert!(wait_until(WAIT_LIMIT, || proxy.handle().live_connections() <= 1));
    assert_eq!(Client::connect_from(here, proxy.addr).get("/4").status, 200);
    assert_eq!(a.requests(), 4);
}

/// Three requests an hour, two at once past the first: nothing refills
/// while a test runs.
fn slow_rate(c: &mut inverso::config::Config) {
    c.rate_limit = Some(inverso::ratelimit::Rate::parse("3/h").unwrap());
    c.rate_limit_burst = Some(2);
}

#[test]
fn a_client_address_over_rate_limit_gets_429_and_others_do_not() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], slow_rate);
    let here = std::net::IpAddr::from([127, 0, 0, 1]);
    let mut client = Client::connect_from(here, proxy.addr);
    for i in 0..3 {
        assert_eq!(client.get(&format!("/{i}")).status, 200);
    }
    let refused = client.get("/3");
    assert_eq!(refused.status, 429);
    // A token comes back every 20 minutes.
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=1200).contains(&retry), "{retry}");
    // Without a body the connection stays open; with one, it closes (the
    // body is not read).
    assert_eq!(client.get("/4").status, 429);
    assert_eq!(client.post("/5", b"body").status, 429);
    assert!(client.is_closed());
    assert_eq!(a.requests(), 3);
    // Another address has a bucket of its own.
    let elsewhere = std::net::IpAddr::from([127, 0, 0, 2]);
    assert_eq!(
        Client::connect_from(elsewhere, proxy.addr).get("/x").status,
        200
    );
    assert!(wait_until(WAIT_LIMIT, || proxy.log_lines().len() == 7));
    let lines = proxy.log_lines();
    assert!(
        lines[3].contains("\"GET /3 HTTP/1.1\" 429 "),
        "{}",
        lines[3]
    );
}

#[test]
fn under_rate_limit_delay_a_burst_waits_its_turn_instead_of_passing_at_once() {
    // nginx's `limit_req zone=z burst=2;` (no `nodelay`) at one a second:
    // a client's second and third requests in a row go on, each held
    // back to the rate, none refused.
    let a = Backend::echo("a");
    let proxy = start_proxy(
        &[],
        from_file_with_admin(&format!(
            "targets = {}\nrate_limit = 60/m\nrate_limit_burst = 2\nrate_limit_delay = 0\n",
            a.addr
        )),
    );
    let delayed = "inverso_rate_limit_delayed_total";
    assert_eq!(proxy.metric(delayed), Some(0));
    let mut client = proxy.connect();
    for i in 0..3 {
        assert_eq!(client.get(&format!("/{i}")).status, 200);
    }
    assert_eq!(proxy.metric(delayed), Some(2));
    assert_eq!(proxy.metric("inverso_rate_limited_total"), Some(0));
    assert_eq!(a.requests(), 3);
}

#[test]
fn under_rate_limit_dry_run_what_the_limit_would_refuse_or_hold_passes_and_is_counted() {
    let a = Backend::echo("a");
    let proxy = start_proxy(
        &[],
        from_file_with_admin(&format!(
            "targets = {}\nrate_limit = 3/h\nrate_limit_burst = 2\nrate_limit_delay = 1\n\
             rate_limit_dry_run = true\nlog_format = $request_uri $status $limit_req_status\n\
             route./free = return 200\n",
            a.addr
        )),
    );
    let mut client = proxy.connect();
    for i in 0..5 {
        assert_eq!(client.get(&format!("/{i}")).status, 200, "request {i}");
    }
    // The third would have waited 20 minutes, the fourth and fifth been
    // refused (a refused request takes no token, so both find none).
    assert_eq!(
        proxy.metric("inverso_rate_limit_delayed_dry_run_total"),
        Some(1)
    );
    assert_eq!(proxy.metric("inverso_rate_limited_dry_run_total"), Some(2));
    assert_eq!(proxy.metric("inverso_rate_limited_total"), Some(0));
    assert_eq!(proxy.metric("inverso_rate_limit_delayed_total"), Some(0));
    assert_eq!(a.requests(), 5);
    // Each line says what the limits did; a request answered before them
    // has no such status.
    assert_eq!(client.get("/free").status, 200);
    assert!(wait_until(WAIT_LIMIT, || proxy.log_lines().len() == 6));
    assert_eq!(
        proxy.log_lines(),
        [
            "/0 200 PASSED",
            "/1 200 PASSED",
            "/2 200 DELAYED_DRY_RUN",
            "/3 200 REJECTED_DRY_RUN",
            "/4 200 REJECTED_DRY_RUN",
            "/free 200 -",
        ]
    );
}

#[test]
fn behind_a_trusted_proxy_the_client_it_names_is_limited() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| {
        slow_rate(c);
        c.real_ip_from = vec![inverso::realip::Cidr::parse("127.0.0.1").unwrap()].into();
    });
    let mut balancer = proxy.connect();
    for _ in 0..3 {
        let r = balancer.get_with("/", &[("X-Forwarded-For", "203.0.113.1")]);
        assert_eq!(r.status, 200);
    }
    let over = balancer.get_with("/", &[("X-Forwarded-For", "203.0.113.1")]);
    assert_eq!(over.status, 429);
    let other = balancer.get_with("/", &[("X-Forwarded-For", "203.0.113.2")]);
    assert_eq!(other.status, 200);
}

/// An IPv6 client may send from any address of its /64: the limit holds
/// for the /64, as it would for the one address of a home behind a NAT.
#[test]
fn an_ipv6_client_is_rate_limited_by_its_64() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| {
        slow_rate(c);
        c.real_ip_from = vec![inverso::realip::Cidr::parse("127.0.0.1").unwrap()].into();
    });
    let mut balancer = proxy.connect();
    for i in 1..=3 {
        let from = format!("2001:db8:0:1::{i}");
        let r = balancer.get_with("/", &[("X-Forwarded-For", from.as_str())]);
        assert_eq!(r.status, 200);
    }
    let next = [("X-Forwarded-For", "2001:db8:0:1:ffff:ffff:ffff:ffff")];
    assert_eq!(balancer.get_with("/", &next).status, 429);
    let next_64 = [("X-Forwarded-For", "2001:db8:0:2::1")];
    assert_eq!(balancer.get_with("/", &next_64).status, 200);
    assert_eq!(a.requests(), 4);
}

#[test]
fn a_reload_that_keeps_the_rate_limit_keeps_the_buckets() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], slow_rate);
    let mut client = proxy.connect();
    for _ in 0..3 {
        assert_eq!(client.get("/").status, 200);
    }
    assert_eq!(client.get("/").status, 429);
    let same = |c: &mut inverso::config::Config| {
        c.targets = vec![target(a.addr)];
        c.log_to_stdout = false;
        c.cache_size = 0;
        c.path_to_persistence = None;
    };
    let mut next = inverso::config::Config::with_targets(vec![target(a.addr)]);
    same(&mut next);
    slow_rate(&mut next);
    proxy.handle().control().reload(next).unwrap();
    assert_eq!(client.get("/").status, 429, "a reload is no way around it");
    // A new limit starts everyone afresh.
    let mut next = inverso::config::Config::with_targets(vec![target(a.addr)]);
    same(&mut next);
    slow_rate(&mut next);
    next.rate_limit_burst = Some(5);
    proxy.handle().control().reload(next).unwrap();
    assert_eq!(client.get("/").status, 200);
}

#[test]
fn behind_a_proxy_protocol_balancer_each_named_client_has_its_own_limit() {
    let a = Backend::echo("a");
    let mut proxy = start_proxy(&[a.addr], |c| {
        c.proxy_protocol = true;
        c.max_connections_per_client = 1;
    });
    let mut held = proxy.connect();
    held.send(b"PROXY TCP4 203.0.113.1 127.0.0.1 1000 80\r\n");
    assert_eq!(held.get("/1").status, 200);
    // Every connection comes from the balancer's address; the clients
    // they name differ, so neither is held back by the other.
    let mut other = proxy.connect();
    other.send(b"PROXY TCP4 203.0.113.2 127.0.0.1 1000 80\r\n");
    assert_eq!(other.get("/2").status, 200);
    // Refused as soon as its header names it, request or not: a client
    // that opens connections and says nothing more takes no slot.
    let mut again = proxy.connect();
    again.send(b"PROXY TCP4 203.0.113.1 127.0.0.1 1001 80\r\n");
    assert_eq!(again.response().status, 503);
    assert!(again.is_closed());
    // Once the named client's connection ends, it may open another.
    drop(held);
    assert!(wait_until(WAIT_LIMIT, || proxy.handle().live_connections() <= 1));
    let mut later = proxy.connect();
    later.send(b"PROXY TCP4 203.0.113.1 127.0.0.1 1002 80\r\n");
    assert_eq!(later.get("/later").status, 200);
    drop((other, again, later));
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    let refused: Vec<_> = lines.iter().filter(|l| l.contains("\" 503 ")).collect();
    assert_eq!(refused.len(), 1, "{lines:#?}");
    // Logged for the client it named, not as the PROXY line.
    assert!(
        refused[0].starts_with("203.0.113.1 ") && refused[0].contains(" \"\" 503 "),
        "{}",
        refused[0]
    );
    assert_eq!(a.requests(), 3);
}

#[test]
fn the_connections_of_an_ipv6_client_are_counted_by_its_64() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| {
        c.proxy_protocol = true;
        c.max_connections_per_client = 1;
    });
    let mut held = proxy.connect();
    held.send(b"PROXY TCP6 2001:db8:0:1::1 ::1 1000 80\r\n");
    assert_eq!(held.get("/1").status, 200);
    let mut same_64 = proxy.connect();
    same_64.send(b"PROXY TCP6 2001:db8:0:1::2 ::1 1001 80\r\n");
    assert_eq!(same_64.response().status, 503);
    let mut other_64 = proxy.connect();
    other_64.send(b"PROXY TCP6 2001:db8:0:2::1 ::1 1002 80\r\n");
    assert_eq!(other_64.get("/2").status, 200);
    assert_eq!(a.requests(), 2);
}

#[test]
fn a_client_that_leaves_in_the_middle_of_a_head_is_logged_as_400() {
    let a = Backend::echo("a");
    let mut proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(b"GET /half HTTP/1.1\r\nHost: x\r\nX-Par");
    drop(client);
    assert!(wait_until(WAIT_LIMIT, || !proxy.log_lines().is_empty()));
    // A connection that says nothing at all is not logged.
    drop(proxy.connect());
    assert_eq!(proxy.connect().get("/after").status, 200);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].contains("\"GET /half HTTP/1.1\" 400 0 "),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("\"GET /after HTTP/1.1\" 200 "),
        "{}",
        lines[1]
    );
    assert_eq!(a.requests(), 1);
}

/// A backend that answers `/slow` with `body` once the returned flag is
/// raised (or, bounded, after WAIT_LIMIT, letting the test's assertions
/// fail), and anything else with `fast` at once.
fn slow_backend(body: Vec<u8>) -> (Backend, Gate) {
    let release = Gate::new();
    let gate = release.clone();
    let backend = Backend::start("a", move |seen, out| {
        if seen.path() == "/slow" {
            gate.wait();
            respond(out, 200, &[], &body);
        } else {
            respond(out, 200, &[], b"fast");
        }
        Action::KeepAlive
    });
    (backend, release)
}

#[test]
fn shutdown_finishes_the_request_in_flight_and_closes_idle_clients() {
    let body = pattern(100_000);
    let (a, release) = slow_backend(body.clone());
    let mut proxy = start_proxy(&[a.addr], |_| {});

    let mut idle = proxy.connect();
    assert_eq!(idle.get("/fast").body, b"fast");
    let mut busy = proxy.connect();
    busy.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(wait_until(WAIT_LIMIT, || a.requests() == 2));

    let handle = proxy.take_handle();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(handle.shutdown(Duration::from_secs(20)));
    });

    // Shutdown has begun once it closes the idle connection.
    assert!(idle.is_closed(), "idle keep-alive client not closed");
    assert!(
        rx.try_recv().is_err(),
        "shutdown returned with a request in flight"
    );
    release.open();

    let response = busy.response();
    assert_eq!(response.status, 200);
    assert!(response.body == body, "in-flight body damaged");
    // Said up front, so the client sends nothing more into the close.
    assert!(
        response.head.has_token("connection", "close"),
        "{}",
        response.head.raw
    );
    let clean = rx
        .recv_timeout(WAIT_LIMIT)
        .expect("shutdown did not return");
    assert!(clean, "shutdown reported connections cut");
    assert!(busy.is_closed());
}

#[test]
fn a_shutdown_without_grace_cuts_nothing_when_every_connection_is_idle() {
    // shutdown_timeout = 0: the idle connections it closes are still
    // unwinding as the grace ends; none was cut mid-request.
    // (Connections that have sent nothing yet: one that has just had its
    // response may still be logging it, busy for a moment more.)
    let a = Backend::start("a", |_, out| {
        respond(out, 200, &[], b"unused");
        Action::KeepAlive
    });
    let mut proxy = start_proxy(&[a.addr], |_| {});
    let mut idle: Vec<_> = (0..4).map(|_| proxy.connect()).collect();
    assert!(wait_until(WAIT_LIMIT, || proxy.handle().live_connections() == 4));
    assert!(proxy.take_handle().shutdown(Duration::ZERO));
    for client in &mut idle {
        assert!(client.is_closed());
    }
}

#[test]
fn a_shutdown_without_grace_reports_the_request_it_cuts() {
    let (a, release) = slow_backend(Vec::new());
    let mut proxy = start_proxy(&[a.addr], |_| {});
    let mut busy = proxy.connect();
    busy.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(wait_until(WAIT_LIMIT, || a.requests() == 1));
    assert!(!proxy.take_handle().shutdown(Duration::ZERO));
    assert!(busy.is_closed());
    release.open();
}

#[test]
fn every_kind_of_response_finishing_during_a_shutdown_says_connection_close() {
    // Held at the backend while the shutdown begins: a relayed response, a
    // proxy error (the backend hangs up: 502) and a cached entry the
    // backend revalidates (304).
    let release = Gate::new();
    let gate = release.clone();
    let a = Backend::start("a", move |seen, out| {
        if seen.path() == "/reval" && !seen.head.has("if-none-match") {
            let headers = [("Cache-Control", "max-age=0"), ("ETag", "\"v1\"")];
            respond(out, 200, &headers, b"stored");
            return Action::KeepAlive;
        }
        gate.wait();
        match seen.path() {
            "/broken" => Action::Close,
            "/reval" => {
                let _ = out.write_all(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n");
                Action::KeepAlive
            }
            _ => {
                respond(out, 200, &[], b"slow");
                Action::KeepAlive
            }
        }
    });
    let mut proxy = start_proxy(&[a.addr], |c| {
        c.cache_size = 1 << 20;
        c.retries = Some(0);
    });
    let mut idle = proxy.connect();
    assert_eq!(idle.get("/reval").body, b"stored");
    let paths = ["/slow", "/broken", "/reval"];
    let mut busy: Vec<_> = paths
        .iter()
        .map(|path| {
            let mut client = proxy.connect();
            client.send(format!("GET {path} HTTP/1.1\r\nHost: test.example\r\n\r\n").as_bytes());
            client
        })
        .collect();
    assert!(wait_until(WAIT_LIMIT, || a.requests() == 4));
    let handle = proxy.take_handle();
    let shutdown = std::thread::spawn(move || handle.shutdown(Duration::from_secs(20)));
    // The shutdown has begun once it closes the idle connection.
    assert!(idle.is_closed(), "idle keep-alive client not closed");
    release.open();
    for (client, (path, status)) in busy.iter_mut().zip(paths.into_iter().zip([200, 502, 200])) {
        let response = client.response();
        assert_eq!(response.status, status, "{path}");
        assert!(
            response.head.has_token("connection", "close"),
            "{path}: {}",
            response.head.raw
        );
    }
    assert!(shutdown.join().unwrap());
}

#[test]
fn shutdown_with_no_connections_returns_true() {
    let a = Backend::echo("a");
    let mut proxy = start_proxy(&[a.addr], |_| {});
    assert_eq!(proxy.connect().get("/").status, 200);
    proxy.assert_becomes_idle();
    assert!(proxy.shutdown(Duration::from_secs(5)));
}

#[test]
fn requests_cut_at_the_end_of_the_grace_period_are_logged() {
    let release = Gate::new();
    let gate = release.clone();
    let a = Backend::start("a", move |seen, out| {
        if seen.path().starts_with("/hang") {
            // Bounded: answers anyway once the test is over.
            gate.wait();
        }
        respond(out, 200, &[], b"late");
        Action::KeepAlive
    });
    // Backend reads that would wait far longer than the test.
    let mut proxy = start_proxy(&[a.addr], |c| {
        c.connection_timeout = Duration::from_secs(60)
    });

    // One request on a new backend connection, one on a pooled one (whose
    // failure would otherwise be retried on a fresh connection).
    let mut fresh = proxy.connect();
    fresh.send(b"GET /hang-fresh HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut pooled = proxy.connect();
    assert_eq!(pooled.get("/fast").status, 200);
    pooled.send(b"GET /hang-pooled HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(wait_until(WAIT_LIMIT, || a.requests() == 3));

    assert!(
        !proxy.shutdown(Duration::from_millis(100)),
        "shutdown said every request finished"
    );
    let lines = proxy.log_lines();
    release.open();
    for path in ["/hang-fresh", "/hang-pooled"] {
        // The 502 the proxy would have answered, which never reached the
        // client: its connection was closed first.
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("\"GET {path} HTTP/1.1\" 502 0 "))),
            "no line for {path}: {lines:#?}"
        );
    }
}

#[test]
fn a_request_still_connecting_at_the_end_of_the_grace_period_is_logged() {
    let blackhole = blackhole_addr();
    let mut proxy = start_proxy(&[blackhole], |c| {
        c.connection_timeout = Duration::from_secs(60);
        c.connect_timeout = Some(Duration::from_secs(60));
        c.admin_port = Some(0);
    });
    let mut client = proxy.connect();
    client.send(b"GET /connecting HTTP/1.1\r\nHost: x\r\n\r\n");
    // The target is picked, the connect (which no backend will ever
    // answer) next: the request is under way, not a connection idle.
    assert!(
        wait_until(WAIT_LIMIT, || upstream_in_flight(&proxy, blackhole) == 1),
        "the request never went for its target"
    );
    assert!(!proxy.shutdown(Duration::from_millis(100)));
    let lines = proxy.log_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"GET /connecting HTTP/1.1\" 502 0 ")),
        "{lines:#?}"
    );
}

/// The requests in flight at `target`, from the admin listener's metrics.
fn upstream_in_flight(proxy: &Proxy, target: std::net::SocketAddr) -> u64 {
    let admin = proxy
        .handle()
        .admin_addr()
        .expect("the admin listener is on");
    let metrics = one_request(admin, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let sample = format!("inverso_upstream_in_flight{{target=\"{target}\",pool=\"default\"}} ");
    let text = metrics.body_str();
    let value = text.lines().find_map(|l| l.strip_prefix(&sample));
    value
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {sample:?} in {text}"))
}

#[test]
fn connect_timeout_bounds_a_backend_that_never_answers_the_handshake() {
    // connection_timeout alone would keep the request past the client's
    // patience; connect_timeout gives up on the handshake first.
    let slow_reads = |c: &mut inverso::Config| {
        c.connection_timeout = Duration::from_secs(60);
        c.connect_timeout = Some(Duration::from_millis(200));
    };
    let proxy = start_proxy(&[blackhole_addr()], slow_reads);
    assert_eq!(proxy.connect().get("/").status, 504);

    // With another target, the request is retried there.
    let a = Backend::echo("a");
    let proxy = start_proxy(&[blackhole_addr(), a.addr], slow_reads);
    let mut client = proxy.connect();
    for _ in 0..2 {
        assert_eq!(client.get("/").status, 200);
    }
    assert_eq!(a.requests(), 2);
}

#[test]
fn a_response_cut_short_is_logged_with_its_status_and_the_bytes_sent() {
    // The backend announces 100 000 bytes, sends 50 000 and hangs up.
    let a = Backend::start("a", |_, out| {
        let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
        let _ = out.write_all(&pattern(50_000));
        Action::Close
    });
    let mut proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(b"GET /cut HTTP/1.1\r\nHost: x\r\n\r\n");
    let got = client.read_until_closed();
    assert!(got.starts_with(b"HTTP/1.1 200 "), "{:?}", &got[..20]);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"GET /cut HTTP/1.1\" 200 50000 ")),
        "{lines:#?}"
    );
}

#[test]
fn a_response_finishing_in_a_shutdown_reaches_a_client_that_pipelined_another() {
    // Closing on unread input (the pipelined request) would send a reset
    // that destroys what of the response is still on its way.
    let body = pattern(2_000_000);
    let (a, release) = slow_backend(body.clone());
    let mut proxy = start_proxy(&[a.addr], |_| {});
    let mut busy = proxy.connect();
    busy.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(wait_until(WAIT_LIMIT, || a.requests() == 1));
    busy.send(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    let handle = proxy.take_handle();
    let shutdown = std::thread::spawn(move || handle.shutdown(Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(200));
    release.open();
    // A slow reader: the tail is still queued when the proxy closes.
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        std::thread::sleep(Duration::from_millis(2));
        match busy.reader.stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("after {} bytes: {e}", got.len()),
        }
    }
    assert!(shutdown.join().unwrap());
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        got[head_end..] == body[..],
        "{} of {} body bytes",
        got.len() - head_end,
        body.len()
    );
}

#[test]
fn a_request_closed_as_idle_by_a_shutdown_is_never_sent_on() {
    // Each client sends a POST as the shutdown begins: whatever reaches
    // the backend must be answered; what is closed as idle, not sent.
    let a = Backend::echo("a");
    let mut proxy = start_proxy(&[a.addr], |_| {});
    let mut clients: Vec<Client> = (0..100).map(|_| proxy.connect()).collect();
    for c in clients.iter_mut() {
        assert_eq!(c.post("/warm", b"x").status, 200);
    }
    let before = a.requests();
    let handle = proxy.take_handle();
    for c in clients.iter_mut() {
        c.send(b"POST /charge HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx");
    }
    let shutdown = std::thread::spawn(move || handle.shutdown(Duration::from_secs(5)));
    let answered = clients
        .iter_mut()
        .map(|c| c.try_response(false).is_ok())
        .filter(|&ok| ok)
        .count();
    assert!(shutdown.join().unwrap());
    assert_eq!(a.requests() - before, answered, "acted on, never answered");
}

#[test]
fn a_client_gone_before_any_response_byte_is_logged_499() {
    let a = Backend::start("a", |_, out| {
        std::thread::sleep(Duration::from_millis(300));
        respond(out, 200, &[], b"late");
        Action::KeepAlive
    });
    let mut proxy = start_proxy(&[a.addr], |_| {});
    let client = proxy.connect();
    let mut stream = client.reader.stream;
    stream
        .write_all(b"GET /gone HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(wait_until(WAIT_LIMIT, || a.requests() == 1));
    // Gone with a reset: the first write of the response fails.
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
    proxy.assert_becomes_idle();
    let line = logged_line(&mut proxy, "/gone");
    assert!(line.contains("\" 499 0 "), "{line}");
}

#[test]
fn a_client_reset_before_any_body_byte_went_is_logged_499() {
    // A request pipelined behind it: the client is not looked at while
    // the backend works, so the answer, read whole or streamed, is
    // written to a client already gone, and its first write fails.
    for len in [4, 200_000] {
        let line = logged_after_a_reset_mid_answer("/reset", move |out| {
            respond(out, 200, &[], &pattern(len));
            Action::KeepAlive
        });
        assert!(line.contains("\" 499 0 "), "{len}: {line}");
    }
}

/// The log line of `GET path`, sent with another request pipelined
/// behind it, from a client that resets its connection while the
/// backend, which answers with `answer` once let go, works on it.
fn logged_after_a_reset_mid_answer(
    path: &str,
    answer: impl Fn(&mut std::net::TcpStream) -> Action + Send + Sync + 'static,
) -> String {
    let release = Gate::new();
    let gate = release.clone();
    let a = Backend::start("a", move |_, out| {
        gate.wait();
        answer(out)
    });
    let mut proxy = start_proxy(&[a.addr], |_| {});
    let mut stream = proxy.connect().reader.stream;
    let pipelined =
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(pipelined.as_bytes()).unwrap();
    assert!(wait_until(WAIT_LIMIT, || a.requests() == 1));
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
    release.open();
    proxy.assert_becomes_idle();
    logged_line(&mut proxy, path)
}

#[test]
fn a_body_cut_short_by_the_client_is_logged_with_its_status() {
    // Read whole (within response_buffer_size) and sent in one write, or
    // streamed: the client stops taking it, and resets, once it has the
    // head.
    const SIZE: usize = 16 << 20;
    let a = Backend::start("a", |_, out| {
        respond(out, 200, &[], &pattern(SIZE));
        Action::KeepAlive
    });
    for buffer in [SIZE as u64, 64 << 10] {
        let mut proxy = start_proxy(&[a.addr], |c| c.response_buffer_size = buffer);
        let mut client = Client::connect_taking(4096, proxy.addr);
        client.send(b"GET /cut HTTP/1.1\r\nHost: x\r\n\r\n");
        let head = client.reader.read_head().unwrap().unwrap();
        assert!(head.start_line.starts_with("HTTP/1.1 200 "), "{}", head.raw);
        let stream = client.reader.stream;
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(stream);
        proxy.assert_becomes_idle();
        let line = logged_line(&mut proxy, "/cut");
        let bytes: u64 = (line.split("\" 200 ").nth(1))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{buffer}: not a 200: {line}"));
        assert!(bytes < SIZE as u64, "{buffer}: {line}");
    }
}

#[test]
fn a_client_that_gives_up_waiting_is_logged_499_and_its_response_not_read() {
    // The client closes normally (curl -m, a closed tab) while the backend
    // works; its answer then comes: not sent, logged 499, and the backend
    // connection closed rather than read to the end of a long body.
    let (mut proxy, a) = answered_after_the_client_left("/abandoned", &[], |_| {});
    assert!(
        wait_until(WAIT_LIMIT, || a.closed() == 1),
        "the backend connection is closed, not pooled"
    );
    let line = logged_line(&mut proxy, "/abandoned");
    assert!(line.contains("\" 499 0 "), "{line}");
    assert!(line.contains(&format!("upstream={}", a.addr)), "{line}");
}

#[test]
fn a_client_that_gives_up_on_an_answer_the_cache_may_not_keep_is_logged_with_its_backend() {
    // Through the cache, an answer it will not store is not read for a
    // client gone meanwhile either: logged 499, naming the backend.
    let unkept = &[("Cache-Control", "no-store")];
    let (mut proxy, a) =
        answered_after_the_client_left("/unkept", unkept, |c| c.cache_size = 4 << 20);
    let line = logged_line(&mut proxy, "/unkept");
    assert!(line.contains("\" 499 0 "), "{line}");
    assert!(line.contains(&format!("upstream={}", a.addr)), "{line}");
}

/// A proxy (as `tweak` sets it) and its backend, which answers `GET path`
/// with 4 MiB and `fields` only once the client that asked has left;
/// returned once the proxy is idle again.
fn answered_after_the_client_left(
    path: &str,
    fields: &'static [(&'static str, &'static str)],
    tweak: impl FnOnce(&mut inverso::Config),
) -> (Proxy, Backend) {
    let release = Gate::new();
    let gate = release.clone();
    let a = Backend::start("a", move |_, out| {
        // Bounded: answers anyway once the test is over.
        gate.wait();
        respond(out, 200, fields, &vec![b'x'; 4 << 20]);
        Action::KeepAlive
    });
    let proxy = start_proxy(&[a.addr], tweak);
    send_then_leave(&proxy, &a, path);
    // Past the wait after which the proxy looks (20 ms): a precondition,
    // not a measurement.
    std::thread::sleep(Duration::from_millis(50));
    release.open();
    proxy.assert_becomes_idle();
    (proxy, a)
}

/// Shuts `proxy` down, asserting that nothing was cut, and returns its
/// access log's line for `path`.
#[track_caller]
fn logged_line(proxy: &mut Proxy, path: &str) -> String {
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    let found = lines.iter().find(|l| l.contains(path));
    found
        .unwrap_or_else(|| panic!("no line for {path}: {lines:#?}"))
        .clone()
}

/// A client sends `GET path`, waits until `backend` has the request, and
/// leaves (a normal close) while the backend works on it.
fn send_then_leave(proxy: &Proxy, backend: &Backend, path: &str) {
    let mut client = proxy.connect();
    client.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    assert!(wait_until(WAIT_LIMIT, || backend.requests() == 1));
    drop(client);
}

#[test]
fn a_client_that_leaves_while_the_backend_works_has_its_backend_connection_closed_at_once() {
    // nginx's `proxy_ignore_client_abort off`: the backend sees the close
    // while it works (a Go handler's context is cancelled), not only once
    // it answers.
    let saw_close = Arc::new(AtomicUsize::new(0));
    let a = working_backend(&saw_close);
    let mut proxy = start_proxy(&[a.addr], |_| {});
    send_then_leave(&proxy, &a, "/work");
    assert!(
        wait_until(WAIT_LIMIT, || saw_close.load(Ordering::SeqCst) == 1),
        "the backend saw no close while it worked"
    );
    proxy.assert_becomes_idle();
    let line = logged_line(&mut proxy, "/work");
    assert!(line.contains("\" 499 0 "), "{line}");
    assert!(line.contains(&format!("upstream={}", a.addr)), "{line}");
}

#[test]
fn a_client_that_leaves_frees_its_max_conns_slot_for_the_next_request() {
    let saw_close = Arc::new(AtomicUsize::new(0));
    let a = working_backend(&saw_close);
    let proxy = start_proxy(&[a.addr], |c| c.targets[0].max_conns = Some(1));
    send_then_leave(&proxy, &a, "/work");
    // Served, not 503 after waiting for a slot the one who left held.
    let mut next = proxy.connect();
    assert_eq!(next.get("/next").body, b"/next");
    // The backend's thread notices the close in its own time.
    assert!(
        wait_until(WAIT_LIMIT, || saw_close.load(Ordering::SeqCst) == 1),
        "the backend saw no close"
    );
}

/// The head of an event stream, its body chunked.
const EVENT_STREAM_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";

/// A backend answering an event stream: the head at once, then one event,
/// then (after `first_event` is opened) nothing more, waiting (bounded)
/// for the proxy to close the connection, counting in `saw_close` the
/// closes it saw.
fn streaming_backend(first_event: &Gate, saw_close: &Arc<AtomicUsize>) -> Backend {
    let (first_event, saw_close) = (first_event.clone(), saw_close.clone());
    Backend::start("a", move |_, out| {
        out.write_all(EVENT_STREAM_HEAD).unwrap();
        first_event.wait();
        out.write_all(b"c\r\ndata: tick\n\n\r\n").unwrap();
        out.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
        if matches!(out.read(&mut [0; 64]), Ok(0)) {
            saw_close.fetch_add(1, Ordering::SeqCst);
        }
        Action::Close
    })
}

#[test]
fn an_event_stream_s_head_reaches_the_client_before_its_first_event() {
    // A browser's EventSource opens on the head; nginx sends it on at once.
    let first_event = Gate::new();
    let saw_close = Arc::new(AtomicUsize::new(0));
    let a = streaming_backend(&first_event, &saw_close);
    let proxy = start_proxy(&[a.addr], |_| {});
    let (mut client, head) = head_only(&proxy, "/events");
    first_event.open();
    assert!(head.start_line.starts_with("HTTP/1.1 200"), "{head:?}");
    assert!(head.is_chunked(), "{head:?}");
    assert_eq!(client.reader.read_line().unwrap(), "c");
}

#[test]
fn a_client_that_leaves_an_event_stream_has_its_backend_connection_closed() {
    // Between events the proxy waits on the backend; a client that leaves
    // then is seen leaving, not only when the next event finds it gone
    // (which may be never: a stream with nothing more to say).
    let first_event = Gate::new();
    first_event.open();
    let saw_close = Arc::new(AtomicUsize::new(0));
    let a = streaming_backend(&first_event, &saw_close);
    // Not the backend timeout closing it: that comes after the backend
    // has stopped waiting.
    let mut proxy = start_proxy(&[a.addr], |c| c.connection_timeout = 2 * WAIT_LIMIT);
    let (mut client, _head) = head_only(&proxy, "/events");
    assert_eq!(client.reader.read_line().unwrap(), "c");
    drop(client);
    assert!(
        wait_until(WAIT_LIMIT, || saw_close.load(Ordering::SeqCst) == 1),
        "the backend saw no close"
    );
    proxy.assert_becomes_idle();
    let line = logged_line(&mut proxy, "/events");
    // What the client got: the head and one event.
    assert!(line.contains("\" 200 12 "), "{line}");
}

#[test]
fn a_client_that_leaves_an_event_stream_is_logged_as_the_one_that_ended_it() {
    // Seen leaving while the proxy waited on the backend: the client
    // ended the exchange in its body (`CD`), not the backend (`SD`),
    // which did nothing wrong.
    let first_event = Gate::new();
    first_event.open();
    let saw_close = Arc::new(AtomicUsize::new(0));
    let a = streaming_backend(&first_event, &saw_close);
    let mut proxy = start_proxy(&[a.addr], |c| {
        c.connection_timeout = 2 * WAIT_LIMIT;
        c.log_format =
            inverso::config::LogFormat::parse("$status $body_bytes_sent $termination").unwrap();
    });
    let (mut client, _head) = head_only(&proxy, "/events");
    assert_eq!(client.reader.read_line().unwrap(), "c");
    drop(client);
    assert!(
        wait_until(WAIT_LIMIT, || saw_close.load(Ordering::SeqCst) == 1),
        "the backend saw no close"
    );
    proxy.assert_becomes_idle();
    assert!(proxy.shutdown(WAIT_LIMIT));
    assert_eq!(proxy.log_lines(), ["200 12 CD"]);
}

#[test]
fn an_event_stream_that_fails_after_its_head_went_on_alone_is_cut_not_answered_502() {
    // Its head already reached the client: a 502 after it would be read
    // as the body's next bytes (and the connection might even be kept).
    for (what, ending) in [("closed", &b""[..]), ("malformed", &b"zz\r\n"[..])] {
        let head_seen = Gate::new();
        let a = {
            let head_seen = head_seen.clone();
            Backend::start("a", move |_, out| {
                out.write_all(EVENT_STREAM_HEAD).unwrap();
                head_seen.wait();
                let _ = out.write_all(ending);
                Action::Close
            })
        };
        let mut proxy = start_proxy(&[a.addr], |_| {});
        let (mut client, head) = head_only(&proxy, "/events");
        assert!(
            head.start_line.starts_with("HTTP/1.1 200"),
            "{what}: {head:?}"
        );
        head_seen.open();
        let rest = client.read_until_closed();
        assert_eq!(String::from_utf8_lossy(&rest), "", "{what}");
        let line = logged_line(&mut proxy, "/events");
        assert!(line.contains("\" 200 0 "), "{what}: {line}");
    }
}

#[test]
fn a_client_reset_before_an_event_stream_s_head_went_on_alone_is_logged_499() {
    // A request pipelined behind it: the client is not looked at while
    // the backend works, and the head, sent alone as no event comes,
    // fails to go. Nothing reached the client.
    let line = logged_after_a_reset_mid_answer("/events", |out| {
        let _ = out.write_all(EVENT_STREAM_HEAD);
        Action::Hang
    });
    assert!(line.contains("\" 499 0 "), "{line}");
}

#[test]
fn a_client_that_leaves_an_event_stream_before_its_first_event_is_logged_with_its_head() {
    // The head went on alone; the client has it, then leaves: logged as
    // what it got (200, no body byte), not as a 499.
    let first_event = Gate::new();
    let saw_close = Arc::new(AtomicUsize::new(0));
    let a = streaming_backend(&first_event, &saw_close);
    let mut proxy = start_proxy(&[a.addr], |c| c.connection_timeout = 2 * WAIT_LIMIT);
    let (client, _head) = head_only(&proxy, "/events");
    drop(client);
    proxy.assert_becomes_idle();
    first_event.open();
    let line = logged_line(&mut proxy, "/events");
    assert!(line.contains("\" 200 0 "), "{line}");
}

/// After its client left, the proxy still reads the backend's answer: the
/// backend sees no close, the proxy keeps that one connection.
#[track_caller]
fn assert_still_read_on(proxy: Proxy, saw_close: &AtomicUsize) {
    // Long enough for a watched wait to have seen the close (the tests
    // where the client is watched need far less); nothing to measure.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(saw_close.load(Ordering::SeqCst), 0);
    assert_eq!(proxy.handle().live_connections(), 1);
    drop(proxy);
}

#[test]
fn an_event_stream_the_cache_takes_is_read_on_after_its_client_leaves() {
    // As while waiting for the head: a response being stored is worth
    // having whole.
    let first_event = Gate::new();
    first_event.open();
    let saw_close = Arc::new(AtomicUsize::new(0));
    let a = streaming_backend(&first_event, &saw_close);
    let proxy = start_proxy(&[a.addr], |c| {
        c.cache_size = 4 << 20;
        c.cache_unlabeled = true;
    });
    let (mut client, _head) = head_only(&proxy, "/events");
    assert_eq!(client.reader.read_line().unwrap(), "c");
    drop(client);
    assert_still_read_on(proxy, &saw_close);
}

#[test]
fn a_stream_grown_too_large_to_store_has_its_backend_closed_once_its_client_leaves() {
    // Read on for the cache only while it may be stored: once it has
    // outgrown `max_object_size` it is watched as any other stream.
    let saw_close = Arc::new(AtomicUsize::new(0));
    let a = {
        let saw_close = saw_close.clone();
        Backend::start("a", move |_, out| {
            let head = "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n\
                        Transfer-Encoding: chunked\r\n\r\n";
            out.write_all(head.as_bytes()).unwrap();
            let large = format!("800\r\n{}\r\n", "x".repeat(0x800));
            out.write_all(large.as_bytes()).unwrap();
            out.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
            if matches!(out.read(&mut [0; 64]), Ok(0)) {
                saw_close.fetch_add(1, Ordering::SeqCst);
            }
            Action::Close
        })
    };
    let mut proxy = start_proxy(&[a.addr], |c| {
        c.cache_size = 4 << 20;
        c.max_object_size = Some(1024);
        c.connection_timeout = 2 * WAIT_LIMIT;
    });
    let (mut client, _) = head_only(&proxy, "/large");
    assert_eq!(client.reader.read_line().unwrap(), "800");
    // The whole chunk: the proxy has relayed the piece that outgrew the
    // cache, so a client leaving now leaves a stream nobody stores.
    client.reader.read_exact_body(0x800 + 2).unwrap();
    drop(client);
    assert!(
        wait_until(WAIT_LIMIT, || saw_close.load(Ordering::SeqCst) == 1),
        "the backend saw no close"
    );
    proxy.assert_becomes_idle();
    let line = logged_line(&mut proxy, "/large");
    assert!(line.contains("\" 200 2048 "), "{line}");
}

#[test]
fn a_request_the_cache_may_store_is_not_given_up_while_the_backend_works() {
    // As nginx does for a cacheable request: its answer is worth having
    // (and others may be waiting for it).
    let saw_close = Arc::new(AtomicUsize::new(0));
    let a = working_backend(&saw_close);
    let proxy = start_proxy(&[a.addr], |c| c.cache_size = 4 << 20);
    send_then_leave(&proxy, &a, "/work");
    assert_still_read_on(proxy, &saw_close);
}

#[test]
fn a_client_that_shuts_down_its_sending_side_after_its_request_gets_a_quick_answer() {
    // `nc -N`, `socat`, scripts: the request, then a half-close. Only a
    // backend slower than the 20 ms the proxy waits before it watches the
    // client makes that look like leaving (as the test below shows).
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(b"GET /quick HTTP/1.1\r\nHost: x\r\n\r\n");
    client.finish_sending();
    let got = String::from_utf8_lossy(&client.read_until_closed()).into_owned();
    assert!(got.starts_with("HTTP/1.1 200"), "{got:?}");
    assert!(got.contains("a GET /quick"), "{got:?}");
}

#[test]
fn requests_read_before_a_client_closes_are_still_answered() {
    // Two requests pipelined, then the sending side shut: the one already
    // in the proxy's buffer when its answer comes is answered; the last,
    // whose answer finds nothing more from a closed client, is not (as
    // nginx does: a half-close looks like leaving).
    let a = Backend::start("a", |_, out| {
        std::thread::sleep(Duration::from_millis(60));
        respond(out, 200, &[], b"slow");
        Action::KeepAlive
    });
    let mut proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    client.send(b"GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x\r\n\r\n");
    client.finish_sending();
    let got = String::from_utf8_lossy(&client.read_until_closed()).into_owned();
    assert_eq!(got.matches("HTTP/1.1 200").count(), 1, "{got:?}");
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert!(lines[0].contains("/p1 HTTP/1.1\" 200 4 "), "{lines:?}");
    assert!(lines[1].contains("/p2 HTTP/1.1\" 499 0 "), "{lines:?}");
}

#[test]
fn with_the_cache_on_a_client_gone_before_an_unstorable_answer_is_logged_499() {
    let release = Gate::new();
    let gate = release.clone();
    let a = Backend::start("a", move |_, out| {
        gate.wait();
        respond(out, 200, &[("Cache-Control", "no-store")], b"late");
        Action::KeepAlive
    });
    let mut proxy = start_proxy(&[a.addr], |c| c.cache_size = 4 << 20);
    send_then_leave(&proxy, &a, "/abandoned");
    std::thread::sleep(Duration::from_millis(50)); // past the 20 ms
    release.open();
    proxy.assert_becomes_idle();
    let line = logged_line(&mut proxy, "/abandoned");
    assert!(line.contains("\" 499 0 "), "{line}");
}

#[test]
fn a_shutdown_ends_a_background_revalidation_rather_than_wait_for_it() {
    let release = Gate::new();
    let gate = release.clone();
    let a = Backend::start("a", move |seen, out| {
        if seen.head.has("if-none-match") {
            // Bounded: answers anyway once the test is over.
            gate.wait();
        }
        let swr = [
            ("Cache-Control", "max-age=0, stale-while-revalidate=60"),
            ("ETag", "\"v1\""),
        ];
        respond(out, 200, &swr, b"body");
        Action::KeepAlive
    });
    let mut proxy = start_proxy(&[a.addr], |c| c.cache_size = 1 << 20);
    let mut client = proxy.connect();
    assert_eq!(client.get("/s").header("x-cache"), Some("MISS"));
    // Served stale; its revalidation then waits on the origin.
    assert_eq!(client.get("/s").header("x-cache"), Some("STALE"));
    assert!(wait_until(WAIT_LIMIT, || a.requests() == 2));
    let clean = proxy.shutdown(Duration::from_secs(5));
    release.open();
    assert!(
        clean,
        "the shutdown waited out its grace for the revalidation"
    );
}
