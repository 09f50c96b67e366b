//! `log_skip_paths` and `log_skip_statuses` over real sockets: the
//! answers they name leave no access-log line, the others do, and every
//! one is counted by the metrics all the same.

mod support;

use inverso::patterns::PathPrefixes;
use std::time::Duration;
use support::*;

/// A backend that answers `/healthz/down` (and only it) 503.
fn health_backend() -> Backend {
    Backend::start("b", |seen, out| {
        let status = if seen.path() == "/healthz/down" {
            503
        } else {
            200
        };
        respond(out, status, &[], b"ok");
        Action::KeepAlive
    })
}

/// The request paths of the lines logged.
fn logged_paths(proxy: &Proxy) -> Vec<String> {
    (proxy.log_lines().iter())
        .map(|line| line.split(' ').nth(6).unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_listed_path_is_not_logged_unless_its_answer_is_an_error() {
    let backend = health_backend();
    let mut proxy = start_proxy(&[backend.addr], |c| {
        c.log_skip_paths = PathPrefixes::parse("/healthz, /ready").unwrap();
    });
    let mut client = proxy.connect();
    // A prefix of the path as sent, as nginx's `location /healthz` is.
    for path in [
        "/healthz",
        "/healthz?deep=1",
        "/healthz/db",
        "/healthzz",
        "/ready",
    ] {
        assert_eq!(client.get(path).status, 200);
    }
    assert_eq!(client.get("/healthz/down").status, 503);
    // A path the backend reads as another is not the prefix's.
    for path in [
        "/page",
        "/r/ready",
        "/Ready",
        "/healthz/../page",
        "/healthz/%2e%2E/page",
    ] {
        assert_eq!(client.get(path).status, 200);
    }
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert_eq!(backend.requests(), 11, "every request went to the backend");
    assert_eq!(
        logged_paths(&proxy),
        [
            "/healthz/down",
            "/page",
            "/r/ready",
            "/Ready",
            "/healthz/../page",
            "/healthz/%2e%2E/page"
        ]
    );
}

#[test]
fn listed_statuses_are_not_logged() {
    let backend = health_backend();
    let mut proxy = start_proxy(&[backend.addr], |c| {
        c.log_skip_statuses = [(200, 399)].into();
        c.admin_port = Some(0);
    });
    // One connection: its lines are logged in the order it was answered.
    let mut client = proxy.connect();
    assert_eq!(client.get("/page").status, 200);
    assert_eq!(client.get("/healthz/down").status, 503);
    // The proxy's own answers are skipped or logged by the same rule.
    client.send(b"GET /bad HTTP/1.1\r\n\r\n");
    assert_eq!(client.response().status, 400);
    drop(client);
    // Counted once each answer is out: looked for until it is, a bounded
    // number of times.
    let admin = proxy.handle().admin_addr().unwrap();
    let counted = [
        "inverso_requests_total{class=\"2xx\"} 1",
        "inverso_requests_total{class=\"4xx\"} 1",
        "inverso_requests_total{class=\"5xx\"} 1",
    ];
    let mut text = String::new();
    for _ in 0..500 {
        let metrics = one_request(admin, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        text = metrics.body_str();
        if counted.iter().all(|c| text.lines().any(|l| l == *c)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for counted in counted {
        assert!(text.lines().any(|l| l == counted), "{counted}: {text}");
    }
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert_eq!(logged_paths(&proxy), ["/healthz/down", "/bad"]);
}

#[test]
fn a_refusal_over_max_connections_is_skipped_by_its_status_too() {
    let backend = health_backend();
    let mut proxy = start_proxy(&[backend.addr], |c| {
        c.log_skip_statuses = [(500, 599)].into();
        c.max_connections = 1;
    });
    let mut first = proxy.connect();
    assert_eq!(first.get("/held").status, 200);
    let mut second = proxy.connect();
    second.send(b"GET /refused HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(second.response().status, 503);
    drop((first, second));
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert_eq!(logged_paths(&proxy), ["/held"]);
}
