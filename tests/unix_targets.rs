//! Targets on Unix-domain sockets (`unix:PATH`), over real sockets in
//! temporary directories: requests answered, the pooled connection
//! reused, a socket that is missing or refuses failing over to a TCP
//! target, round robin over both kinds, active health checks (a GET, or a
//! connect alone), WebSocket tunnels, and the target's name at the admin
//! listener and in the log.

mod support;

use inverso::config::{Config, Target};
use std::io::Write;
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;

/// A proxy in front of `targets` (of either kind), `tweak` applied.
fn proxy_for(targets: Vec<Target>, tweak: impl FnOnce(&mut Config)) -> Proxy {
    start_proxy(&[], |c| {
        c.targets = targets;
        tweak(c);
    })
}

fn with_admin(c: &mut Config) {
    c.admin_port = Some(0);
}

/// The object `/status` gives for the target named `name`.
fn status_of(proxy: &Proxy, name: &str) -> String {
    let status = proxy.admin("GET", "/status", "").body_str();
    let start = status
        .find(&format!("{{\"name\":\"{name}\""))
        .unwrap_or_else(|| panic!("no target {name} in {status}"));
    let end = status[start..].find('}').expect("an object's end") + start;
    status[start..=end].to_string()
}

/// `/` with `%2F`, as a client that encodes a path segment sends it.
fn percent_encoded(name: &str) -> String {
    name.replace('/', "%2F")
}

#[test]
fn a_request_is_proxied_to_a_unix_target_and_answered() {
    let app = UnixBackend::echo("app");
    let proxy = proxy_for(vec![app.target()], |_| {});
    let mut client = proxy.connect();
    let response = client.get("/hello?x=1");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-backend"), Some("app"));
    assert!(
        response.body_str().starts_with("app GET /hello?x=1 len=0 "),
        "{}",
        response.body_str()
    );
    // A body, larger than one read, goes whole.
    let body = pattern(300_000);
    let response = client.post("/upload", &body);
    assert_eq!(
        response.body_str(),
        format!("app POST /upload len=300000 fnv={:016x}", fnv(&body))
    );
    // The client is the TCP client still; its Host travels.
    let seen = app.seen();
    assert_eq!(seen[0].head.get("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen[0].head.get("host"), Some("test.example"));

    // A request without a Host gets `localhost`, not the socket's path.
    let old = one_request(proxy.addr, b"GET /old HTTP/1.0\r\n\r\n");
    assert_eq!(old.status, 200);
    let last = app.seen().pop().expect("the HTTP/1.0 request");
    assert_eq!(last.path(), "/old");
    assert_eq!(last.head.get("host"), Some("localhost"));

    // The access log names the target as written.
    let upstream = format!("upstream=unix:{} ", app.path.display());
    assert!(
        wait_until(WAIT_LIMIT, || proxy
            .log_lines()
            .iter()
            .any(|l| l.contains("GET /hello?x=1") && l.contains(&upstream))),
        "{:?}",
        proxy.log_lines()
    );
}

#[test]
fn the_pooled_unix_connection_carries_the_next_requests() {
    let app = UnixBackend::echo("app");
    let proxy = proxy_for(vec![app.target()], |_| {});
    let mut client = proxy.connect();
    for i in 0..5 {
        assert_eq!(client.get(&format!("/{i}")).status, 200, "request {i}");
    }
    // Another client's request too.
    assert_eq!(proxy.connect().get("/other").status, 200);
    assert_eq!(app.requests(), 6);
    assert_eq!(app.connections(), 1);
    assert!(app.seen().iter().all(|s| s.conn == 0));
}

#[test]
fn a_unix_target_that_is_missing_or_refuses_fails_over_to_a_tcp_target() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Target::unix(dir.path().join("missing.sock"));
    let refusing = Target::unix(dead_unix_path(dir.path()));
    for dead in [missing, refusing] {
        // Alone: nothing answers.
        let alone = proxy_for(vec![dead.clone()], |_| {});
        assert_eq!(alone.connect().get("/").status, 502, "{}", dead.name);

        let b = Backend::echo("b");
        let proxy = proxy_for(vec![dead.clone(), b.target()], with_admin);
        let mut client = proxy.connect();
        for i in 0..4 {
            let response = client.get(&format!("/{i}"));
            assert_eq!(response.status, 200, "{}: request {i}", dead.name);
            assert_eq!(response.header("x-backend"), Some("b"));
        }
        assert_eq!(b.requests(), 4);
        // Tried once (round robin came to it), failed, and taken out.
        let status = status_of(&proxy, &dead.name);
        assert!(status.contains("\"healthy\":false"), "{status}");
        assert!(status.contains("\"failures\":1,"), "{status}");
    }
}

#[test]
fn round_robin_reaches_a_unix_and_a_tcp_target_in_turn() {
    let app = UnixBackend::echo("app");
    let b = Backend::echo("b");
    let proxy = proxy_for(vec![app.target(), b.target()], |_| {});
    let mut client = proxy.connect();
    let answered: Vec<String> = (0..10)
        .map(|i| {
            let response = client.get(&format!("/{i}"));
            assert_eq!(response.status, 200, "request {i}");
            response.header("x-backend").unwrap_or("?").to_string()
        })
        .collect();
    for pair in answered.windows(2) {
        assert_ne!(pair[0], pair[1], "not in turn: {answered:?}");
    }
    assert_eq!((app.requests(), b.requests()), (5, 5));
}

#[test]
fn active_health_checks_probe_a_unix_target_with_host_localhost() {
    let healthy = Arc::new(AtomicBool::new(false));
    let state = healthy.clone();
    let app = UnixBackend::start("app", move |seen, out| {
        let status = match seen.path() {
            "/health" if !state.load(Ordering::SeqCst) => 503,
            _ => 200,
        };
        respond(out, status, &[("X-Backend", "app")], b"app");
        Action::KeepAlive
    });
    let b = Backend::echo("b");
    let proxy = proxy_for(vec![app.target(), b.target()], |c| {
        c.health_check_path = Some("/health".to_string());
        c.health_check_interval = Duration::from_millis(20);
        c.health_check_timeout = Some(Duration::from_secs(5));
        c.health_check_rise = 1;
        c.health_check_fall = 1;
    });
    let probes = || app.seen().iter().filter(|s| s.path() == "/health").count();
    // fall = 1: once a second probe has arrived, the first has failed.
    assert!(wait_until(WAIT_LIMIT, || probes() >= 2));
    let mut client = proxy.connect();
    for i in 0..6 {
        let response = client.get(&format!("/{i}"));
        assert_eq!(response.header("x-backend"), Some("b"), "request {i}");
    }
    let seen = app.seen();
    let probe = seen.iter().find(|s| s.path() == "/health").unwrap();
    assert_eq!(probe.head.get("host"), Some("localhost"));
    assert_eq!(probe.head.get("user-agent"), Some("inverso-health-check"));
    assert!(seen.iter().all(|s| s.path() == "/health"), "no request");

    healthy.store(true, Ordering::SeqCst);
    // Bounded: each round is one request, the deadline caps the rounds.
    assert!(
        wait_until(WAIT_LIMIT, || client.get("/again").header("x-backend")
            == Some("app")),
        "app never used again"
    );
}

#[test]
fn tcp_checks_connect_to_a_unix_target_s_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sock");
    let app = Target::unix(&path);
    let b = Backend::echo("b");
    let proxy = proxy_for(vec![app.clone(), b.target()], |c| {
        with_admin(c);
        c.health_check_tcp = true;
        c.health_check_interval = Duration::from_millis(20);
        c.health_check_timeout = Some(Duration::from_secs(5));
        c.health_check_rise = 1;
        c.health_check_fall = 1;
        // Only the checks take it out; a request sent to it would fail.
        c.max_fails = 0;
        c.retries = Some(0);
    });
    // No socket yet: out.
    assert!(
        wait_until(WAIT_LIMIT, || status_of(&proxy, &app.name)
            .contains("\"healthy\":false")),
        "{}",
        status_of(&proxy, &app.name)
    );
    let mut client = proxy.connect();
    for i in 0..4 {
        let response = client.get(&format!("/{i}"));
        assert_eq!(response.header("x-backend"), Some("b"), "request {i}");
    }

    // A backend listens there now: counting what it accepts, answering
    // each request with `X-Backend: app`.
    let listener = UnixListener::bind(&path).unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (count, served) = (accepted.clone(), requests.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            let served = served.clone();
            std::thread::spawn(move || {
                let mut out = stream.try_clone().unwrap();
                let mut reader = Reader::new(stream);
                while let Ok(Some(_)) = reader.read_head() {
                    served.fetch_add(1, Ordering::SeqCst);
                    respond(&mut out, 200, &[("X-Backend", "app")], b"app");
                }
            });
        }
    });
    assert!(
        wait_until(WAIT_LIMIT, || status_of(&proxy, &app.name)
            .contains("\"healthy\":true")),
        "{}",
        status_of(&proxy, &app.name)
    );
    assert!(wait_until(WAIT_LIMIT, || accepted.load(Ordering::SeqCst) >= 2));
    // Connected to, nothing sent.
    assert_eq!(requests.load(Ordering::SeqCst), 0);
    // Bounded: each round is one request, the deadline caps the rounds.
    assert!(
        wait_until(WAIT_LIMIT, || client.get("/again").header("x-backend")
            == Some("app")),
        "app never used again"
    );
}

#[test]
fn a_websocket_to_a_unix_target_is_tunnelled_both_ways() {
    let app = UnixBackend::start("ws", |seen, out| {
        let key = seen.head.get("sec-websocket-key").unwrap_or("");
        let handshake = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            websocket_accept(key)
        );
        if out.write_all(handshake.as_bytes()).is_err() {
            return Action::Close;
        }
        let Ok(mut reader) = out.try_clone() else {
            return Action::Close;
        };
        echo_websocket_frames(out, &mut reader);
        Action::Close
    });
    let proxy = proxy_for(vec![app.target()], |_| {});
    let mut client = proxy.connect();
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    client.send(
        format!(
            "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    );
    let response = client.try_response(true).unwrap();
    assert_eq!(response.status, 101);
    assert_eq!(
        response.header("sec-websocket-accept"),
        Some(websocket_accept(key).as_str())
    );
    let big = pattern(100_000);
    client.send_split(&websocket_frame(0x2, &big, Some([9, 8, 7, 6])), 4096);
    let (opcode, echoed) = client.reader.read_websocket_frame().unwrap();
    assert_eq!(opcode, 0x2);
    assert!(echoed == big, "binary frame differs");
    client.send(&websocket_frame(0x8, &[0x03, 0xe8], Some([5, 5, 5, 5])));
    assert_eq!(
        client.reader.read_websocket_frame().unwrap(),
        (0x8, vec![0x03, 0xe8])
    );
    assert!(client.is_closed());
}

#[test]
fn the_admin_listener_knows_a_unix_target_by_its_name_encoded_or_not() {
    let app = UnixBackend::echo("app");
    let b = Backend::echo("b");
    let proxy = proxy_for(vec![app.target(), b.target()], with_admin);
    let name = app.target().name;
    assert!(name.starts_with("unix:/"), "{name}");
    let status = status_of(&proxy, &name);
    assert!(
        status.contains(&format!("\"address\":\"{name}\"")),
        "{status}"
    );

    let encoded = format!("/targets/{}", percent_encoded(&name));
    let drained = proxy.admin("PUT", &encoded, "drain");
    assert_eq!(drained.status, 200, "{}", drained.body_str());
    assert!(drained.body_str().contains("\"previous\":\"ready\""));
    let raw = proxy.admin("GET", &format!("/targets/{name}"), "");
    assert_eq!(raw.status, 200, "{}", raw.body_str());
    assert!(raw.body_str().contains("\"admin_state\":\"drain\""));

    let mut client = proxy.connect();
    for i in 0..4 {
        let response = client.get(&format!("/{i}"));
        assert_eq!(response.header("x-backend"), Some("b"), "request {i}");
    }
    assert_eq!(app.requests(), 0);

    let metrics = proxy.admin("GET", "/metrics", "").body_str();
    let label = format!(
        "inverso_upstream_admin_state{{target=\"{name}\",pool=\"default\",state=\"drain\"}} 1"
    );
    assert!(metrics.contains(&label), "{metrics}");
}
