//! `error_limit`: a client address that causes more client errors than
//! the rate allows is refused 429 before anything else is done for it,
//! as HAProxy's `http_err_rate` deny: a scanner's run of 404s ends it,
//! other clients go on.
//!
//! The backend answers `/missing...` 404 and everything else 200. Three
//! errors an hour: nothing refills while a test runs. Each client sends
//! its requests on one connection, whose thread counts an answer before
//! it reads the next request.

mod support;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::*;

/// A backend answering 404 under `/missing`, 200 elsewhere, counting
/// what it was asked.
fn origin(asked: Arc<AtomicUsize>) -> Backend {
    Backend::start("origin", move |seen, out| {
        asked.fetch_add(1, Ordering::SeqCst);
        let status = match seen.path().starts_with("/missing") {
            true => 404,
            false => 200,
        };
        respond(out, status, &[], seen.path().as_bytes());
        Action::KeepAlive
    })
}

fn proxy_with(backend: &Backend, more: &str) -> Proxy {
    let text = format!("targets = {}\nerror_limit = 3/h\n{more}", backend.addr);
    start_proxy(&[], from_file_with_admin(&text))
}

fn address(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

#[test]
fn a_client_past_its_errors_is_refused_and_the_others_are_not() {
    let asked = Arc::new(AtomicUsize::new(0));
    let backend = origin(asked.clone());
    let proxy = proxy_with(&backend, "");
    let mut scanner = Client::connect_from(address(1), proxy.addr);
    // Successes cost nothing.
    for _ in 0..5 {
        assert_eq!(scanner.get("/").status, 200);
    }
    for path in [
        "/missing/.env",
        "/missing/.git/config",
        "/missing/wp-login.php",
    ] {
        assert_eq!(scanner.get(path).status, 404);
    }
    let refused = scanner.get("/");
    assert_eq!(refused.status, 429);
    // A token comes back every 20 minutes; the refusals themselves
    // count, so the wait is that of a bucket in debt.
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=1200).contains(&retry), "{retry}");
    assert_eq!(scanner.get("/missing/admin").status, 429);
    let longer: u64 = (scanner.get("/").header("retry-after").unwrap())
        .parse()
        .unwrap();
    assert!(longer > retry, "{longer} after {retry}");
    assert_eq!(asked.load(Ordering::SeqCst), 8);
    // Another address has a bucket of its own.
    let mut other = Client::connect_from(address(2), proxy.addr);
    assert_eq!(other.get("/").status, 200);
    assert_eq!(proxy.metric("inverso_error_limited_total"), Some(3));
}

#[test]
fn requests_the_proxy_refuses_as_malformed_count_too() {
    let asked = Arc::new(AtomicUsize::new(0));
    let backend = origin(asked.clone());
    let proxy = proxy_with(&backend, "");
    for _ in 0..3 {
        let mut client = Client::connect_from(address(3), proxy.addr);
        client.send(b"GET /a b c HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(client.response().status, 400);
        assert!(client.is_closed());
    }
    // Counted once its connection's thread is done with it.
    assert!(wait_until(WAIT_LIMIT, || {
        let mut client = Client::connect_from(address(3), proxy.addr);
        client.get("/").status == 429
    }));
    assert_eq!(asked.load(Ordering::SeqCst), 0);
}

#[test]
fn only_the_listed_statuses_are_counted() {
    let asked = Arc::new(AtomicUsize::new(0));
    let backend = origin(asked.clone());
    let proxy = proxy_with(&backend, "error_limit_statuses = 500-599\n");
    let mut client = Client::connect_from(address(4), proxy.addr);
    for _ in 0..6 {
        assert_eq!(client.get("/missing").status, 404);
    }
    assert_eq!(client.get("/").status, 200);
}

#[test]
fn a_reload_that_keeps_the_limit_keeps_the_counts_and_one_that_changes_it_starts_anew() {
    let asked = Arc::new(AtomicUsize::new(0));
    let backend = origin(asked.clone());
    let proxy = proxy_with(&backend, "");
    let mut client = Client::connect_from(address(5), proxy.addr);
    for _ in 0..3 {
        assert_eq!(client.get("/missing").status, 404);
    }
    let same = format!("targets = {}\nerror_limit = 3/h\n", backend.addr);
    proxy.reload(&[], from_file_with_admin(&same));
    assert_eq!(client.get("/").status, 429);
    let other = format!("targets = {}\nerror_limit = 4/h\n", backend.addr);
    proxy.reload(&[], from_file_with_admin(&other));
    assert_eq!(client.get("/").status, 200);
}

#[test]
fn the_admin_listener_lists_the_clients_refused_and_lets_one_in_again() {
    let asked = Arc::new(AtomicUsize::new(0));
    let backend = origin(asked.clone());
    let proxy = proxy_with(&backend, "");
    let listed = proxy.admin("GET", "/error_limit", "");
    assert_eq!(listed.status, 200);
    assert_eq!(
        listed.body_str(),
        "{\"rate\":\"3/h\",\"refused\":[],\"truncated\":false}\n"
    );
    let mut scanner = Client::connect_from(address(6), proxy.addr);
    for _ in 0..3 {
        assert_eq!(scanner.get("/missing").status, 404);
    }
    // One error short of the limit: counted, not listed.
    let mut other = Client::connect_from(address(7), proxy.addr);
    assert_eq!(other.get("/missing").status, 404);
    assert_eq!(scanner.get("/").status, 429);
    let listed = proxy.admin("GET", "/error_limit", "").body_str();
    assert!(
        listed.starts_with(
            "{\"rate\":\"3/h\",\"refused\":[{\"address\":\"127.0.0.6\",\"admitted_in_s\":"
        ),
        "{listed}"
    );
    assert!(listed.ends_with("}],\"truncated\":false}\n"), "{listed}");

    let forgiven = proxy.admin("DELETE", "/error_limit/127.0.0.6", "");
    assert_eq!(forgiven.status, 200, "{}", forgiven.body_str());
    assert_eq!(
        forgiven.body_str(),
        "{\"address\":\"127.0.0.6\",\"forgiven\":true}\n"
    );
    assert_eq!(scanner.get("/").status, 200);
    assert!(proxy
        .admin("GET", "/error_limit", "")
        .body_str()
        .contains("\"refused\":[]"));
    assert_eq!(
        proxy.admin("DELETE", "/error_limit/192.0.2.1", "").status,
        404
    );
    assert_eq!(proxy.admin("DELETE", "/error_limit/nope", "").status, 400);
    assert_eq!(proxy.admin("PUT", "/error_limit", "").status, 405);
}

#[test]
fn an_address_excepted_is_neither_counted_nor_refused() {
    let asked = Arc::new(AtomicUsize::new(0));
    let backend = origin(asked.clone());
    let proxy = proxy_with(
        &backend,
        "error_limit_except_from = 127.0.0.8/32, 10.0.0.0/8\n",
    );
    let mut monitor = Client::connect_from(address(8), proxy.addr);
    for _ in 0..6 {
        assert_eq!(monitor.get("/missing").status, 404);
    }
    assert_eq!(monitor.get("/").status, 200);
    assert!(proxy
        .admin("GET", "/error_limit", "")
        .body_str()
        .contains("\"refused\":[]"));
    // Its neighbour is not.
    let mut scanner = Client::connect_from(address(9), proxy.addr);
    for _ in 0..3 {
        assert_eq!(scanner.get("/missing").status, 404);
    }
    assert_eq!(scanner.get("/").status, 429);
}

/// Behind a proxy `real_ip_from` trusts, each client it names is counted
/// apart, and the proxy itself never: a malformed head, which names no
/// one, is the proxy's (not the client's of the request before it on the
/// connection), and refusing the proxy would refuse everyone behind it.
#[test]
fn behind_a_trusted_proxy_its_clients_are_counted_and_the_proxy_never() {
    let asked = Arc::new(AtomicUsize::new(0));
    let backend = origin(asked.clone());
    let proxy = proxy_with(&backend, "real_ip_from = 127.0.0.0/8\n");
    let get = |lb: &mut Client, path: &str, client: &str| {
        lb.get_with(path, &[("X-Forwarded-For", client)]).status
    };
    // One more than the limit: each is counted once its connection's
    // thread is done with it, the last perhaps after the check below.
    for _ in 0..4 {
        let mut lb = Client::connect_from(address(10), proxy.addr);
        assert_eq!(get(&mut lb, "/", "192.0.2.1"), 200);
        lb.send(b"GET /a b c HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(lb.response().status, 400);
    }
    let mut lb = Client::connect_from(address(10), proxy.addr);
    assert_eq!(
        get(&mut lb, "/", "192.0.2.1"),
        200,
        "charged another's errors"
    );
    for _ in 0..3 {
        assert_eq!(get(&mut lb, "/missing", "192.0.2.2"), 404);
    }
    assert_eq!(get(&mut lb, "/", "192.0.2.2"), 429);
    assert_eq!(get(&mut lb, "/", "192.0.2.3"), 200);
    // Without a client named, the request is the proxy's: never refused.
    for _ in 0..4 {
        assert_eq!(lb.get("/missing").status, 404);
    }
    assert_eq!(lb.get("/").status, 200);
}
