//! The admin listener's `/stub_status`: nginx's page of that name, to
//! the byte, so that monitoring written for nginx reads inverso as it is;
//! and the same counts on `/metrics`.

mod support;

use support::*;

/// The page, once it reads `expected`: the connections' threads take
/// their bytes on their own time.
#[track_caller]
fn assert_page_becomes(proxy: &Proxy, expected: &str) {
    let mut page = String::new();
    let became = wait_until(WAIT_LIMIT, || {
        let answer = proxy.admin("GET", "/stub_status", "");
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        page = answer.body_str().to_string();
        page == expected
    });
    assert!(became, "{page:?}, not {expected:?}");
}

#[test]
fn stub_status_counts_connections_as_nginx_does_reading_writing_and_waiting() {
    let held = Gate::new();
    let backend = {
        let held = held.clone();
        Backend::start("slow", move |seen, out| {
            if seen.path() == "/held" {
                held.wait();
            }
            respond(out, 200, &[], b"ok");
            Action::KeepAlive
        })
    };
    let proxy = start_proxy(&[backend.addr], |c| {
        c.admin_port = Some(0);
        c.max_connections = 3;
    });
    assert_page_becomes(
        &proxy,
        "Active connections: 0 \nserver accepts handled requests\n 0 0 0 \n\
         Reading: 0 Writing: 0 Waiting: 0 \n",
    );

    // One answered and kept alive, one half-way through its head, one
    // whose backend holds its answer.
    let mut waiting = proxy.connect();
    assert_eq!(waiting.get("/").status, 200);
    let mut reading = proxy.connect();
    reading.send(b"GET / HTTP/1.1\r\nHo");
    let mut writing = proxy.connect();
    writing.send(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_page_becomes(
        &proxy,
        "Active connections: 3 \nserver accepts handled requests\n 3 3 1 \n\
         Reading: 1 Writing: 1 Waiting: 1 \n",
    );
    assert_eq!(
        proxy.metric("inverso_connections{state=\"reading\"}"),
        Some(1)
    );
    assert_eq!(
        proxy.metric("inverso_connections{state=\"writing\"}"),
        Some(1)
    );
    assert_eq!(
        proxy.metric("inverso_connections{state=\"waiting\"}"),
        Some(1)
    );

    // Over max_connections: accepted, not handled.
    let mut refused = proxy.connect();
    refused.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(refused.response().status, 503);
    assert_eq!(proxy.metric("inverso_connections_accepted_total"), Some(4));
    assert_eq!(proxy.metric("inverso_connections_handled_total"), Some(3));

    // The held answer goes; the half-written head is finished and
    // answered: every connection waits, and three requests were answered
    // (the refusal is one too).
    held.open();
    assert_eq!(writing.response().status, 200);
    reading.send(b"st: x\r\n\r\n");
    assert_eq!(reading.response().status, 200);
    assert_page_becomes(
        &proxy,
        "Active connections: 3 \nserver accepts handled requests\n 4 3 4 \n\
         Reading: 0 Writing: 0 Waiting: 3 \n",
    );
    drop((waiting, reading, writing));
    assert_page_becomes(
        &proxy,
        "Active connections: 0 \nserver accepts handled requests\n 4 3 4 \n\
         Reading: 0 Writing: 0 Waiting: 0 \n",
    );
}

#[test]
fn stub_status_is_read_alone() {
    let backend = Backend::echo("a");
    let proxy = start_proxy(&[backend.addr], |c| c.admin_port = Some(0));
    let put = proxy.admin("PUT", "/stub_status", "x");
    assert_eq!(put.status, 405);
    assert_eq!(put.header("allow"), Some("GET, HEAD, PURGE"));
}
