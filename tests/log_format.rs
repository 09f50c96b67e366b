//! `log_format` templates over real sockets: a request a backend answers,
//! the same one answered from the cache, and one refused before it was
//! parsed, each logged as the template says, field by field.

mod support;

use inverso::config::LogFormat;
use inverso::Config;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// nginx's `combined` plus `rt=$request_time`, as the README shows it.
const NGINX_COMBINED: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status \
                              $body_bytes_sent \"$http_referer\" \"$http_user_agent\" \
                              rt=$request_time";

/// Every kind of variable, one per tab-separated field: a value cannot
/// hold a tab (escaped as `\x09`), so the fields split cleanly.
const EVERY_KIND: [&str; 24] = [
    "$remote_addr",
    "$remote_port",
    "$time_local",
    "$time_iso8601",
    "$msec",
    "$request",
    "$request_method",
    "$request_uri",
    "$uri",
    "$args",
    "$server_protocol",
    "$status",
    "$body_bytes_sent",
    "$request_time",
    "$upstream_addr",
    "$upstream_header_time",
    "$upstream_cache_status",
    "$host",
    "${http_x_trace}",
    "$request_id",
    "$duration_ms",
    "$upstream_ms",
    "$server_port",
    "$server_addr",
];

fn logging_as(template: &str) -> impl FnOnce(&mut Config) + '_ {
    move |c| {
        c.log_format = LogFormat::parse(template).unwrap();
        c.cache_size = 4 << 20;
        c.max_object_size = Some(256 * 1024);
        c.request_id_header = Some("X-Request-Id".into());
    }
}

/// `text` is `digits.ddd`, as nginx writes seconds and inverso milliseconds.
fn is_thousandths(text: &str) -> bool {
    text.split_once('.').is_some_and(|(whole, frac)| {
        !whole.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && frac.len() == 3
            && frac.bytes().all(|b| b.is_ascii_digit())
    })
}

/// `text` has the shape of `pattern`, where `9` is any digit and `M` any
/// ASCII letter.
fn shaped(text: &str, pattern: &str) -> bool {
    text.len() == pattern.len()
        && text.bytes().zip(pattern.bytes()).all(|(t, p)| match p {
            b'9' => t.is_ascii_digit(),
            b'M' => t.is_ascii_alphabetic(),
            _ => t == p,
        })
}

#[test]
fn a_proxied_request_and_a_cache_hit_are_logged_field_by_field() {
    let origin = numbered_fresh_origin();
    let mut proxy = start_proxy(&[origin.addr], logging_as(&EVERY_KIND.join("\t")));
    let mut client = proxy.connect();
    let port = client.reader.stream.local_addr().unwrap().port();
    // A value no log parser should have to fear: quotes, a backslash, a
    // tab and UTF-8 (bytes that are not UTF-8 the test backend would not
    // take: the unit tests have them).
    let request = |client: &mut Client| {
        client.send(
            b"GET /page?lang=en&q=%22 HTTP/1.1\r\nHost: Test.Example:8080\r\n\
              X-Trace: a\"b\\c\td\xc3\xa9\r\n\r\n",
        );
        client.response()
    };
    let miss = request(&mut client);
    assert_eq!(miss.header("x-cache"), Some("MISS"));
    let hit = request(&mut client);
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert_eq!(origin.requests(), 1);
    // No Host: refused (400) before the request was parsed.
    client.send(b"GET /bad HTTP/1.1\r\n\r\n");
    assert_eq!(client.response().status, 400);
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));

    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 3, "{lines:?}");
    let fields: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    for (line, f) in lines.iter().zip(&fields) {
        assert_eq!(f.len(), EVERY_KIND.len(), "{line}");
        // The proxy's address and port, the refused request's too.
        assert_eq!(f[22], proxy.addr.port().to_string(), "{line}");
        assert_eq!(f[23], "127.0.0.1", "{line}");
    }
    for (f, response, cache) in [(&fields[0], &miss, "MISS"), (&fields[1], &hit, "HIT")] {
        let line = f.join(" | ");
        assert_eq!(f[0], "127.0.0.1", "{line}");
        assert_eq!(f[1], port.to_string(), "{line}");
        assert!(shaped(f[2], "99/MMM/9999:99:99:99 +0000"), "{line}");
        assert!(shaped(f[3], "9999-99-99T99:99:99+00:00"), "{line}");
        assert!(is_thousandths(f[4]), "{line}");
        assert_eq!(f[5], "GET /page?lang=en&q=%22 HTTP/1.1", "{line}");
        assert_eq!(f[6], "GET", "{line}");
        assert_eq!(f[7], "/page?lang=en&q=%22", "{line}");
        assert_eq!(f[8], "/page", "{line}");
        assert_eq!(f[9], "lang=en&q=%22", "{line}");
        assert_eq!(f[10], "HTTP/1.1", "{line}");
        assert_eq!(f[11], "200", "{line}");
        assert_eq!(f[12], response.body.len().to_string(), "{line}");
        assert!(is_thousandths(f[13]), "{line}");
        assert_eq!(f[16], cache, "{line}");
        assert_eq!(f[17], "test.example", "{line}");
        assert_eq!(f[18], r"a\x22b\x5Cc\x09d\xC3\xA9", "{line}");
        assert_eq!(Some(f[19]), response.header("x-request-id"), "{line}");
        assert!(is_thousandths(f[20]), "{line}");
    }
    // The backend answered the first; the cache the second.
    let (miss, hit) = (&fields[0], &fields[1]);
    assert_eq!(miss[14], origin.addr.to_string());
    assert!(is_thousandths(miss[15]), "{}", lines[0]);
    assert!(is_thousandths(miss[21]), "{}", lines[0]);
    assert_eq!([hit[14], hit[15], hit[21]], ["-"; 3], "{}", lines[1]);
    // The refused one: its request line, and no fields, backend or cache.
    let bad = &fields[2];
    assert_eq!(bad[5], "GET /bad HTTP/1.1", "{}", lines[2]);
    assert_eq!(bad[11], "400", "{}", lines[2]);
    assert_eq!(
        [bad[14], bad[15], bad[16], bad[17], bad[18], bad[21]],
        ["-"; 6],
        "{}",
        lines[2]
    );
}

#[test]
fn sent_http_reads_the_response_fields_as_the_client_got_them() {
    let origin = numbered_fresh_origin();
    let template = "$request_uri|$sent_http_x_cache|$sent_http_content_length|$sent_http_x_none";
    let mut proxy = start_proxy(&[origin.addr], logging_as(template));
    let mut client = proxy.connect();
    let miss = client.get("/page");
    let hit = client.get("/page");
    client.send(b"GET /bad HTTP/1.1\r\n\r\n");
    assert_eq!(client.response().status, 400);
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let length = |r: &Response| r.header("content-length").unwrap().to_string();
    let lines = proxy.log_lines();
    assert_eq!(
        lines[..2],
        [
            format!("/page|MISS|{}|-", length(&miss)),
            format!("/page|HIT|{}|-", length(&hit)),
        ]
    );
    // The proxy's own answer: its fields, as sent.
    let refused: Vec<&str> = lines[2].split('|').collect();
    assert_eq!([refused[0], refused[1], refused[3]], ["/bad", "-", "-"]);
    assert!(refused[2].parse::<u64>().unwrap() > 0, "{}", lines[2]);
}

#[test]
fn upstream_http_reads_the_backend_s_fields_as_they_came() {
    let origin = Backend::start("origin", |_, out| {
        let fields = [
            ("Cache-Control", "max-age=60"),
            ("X-Powered-By", "Express"),
            ("X-App-Time", "12ms"),
            ("X-Tag", "a"),
            ("x-tag", "b"),
        ];
        respond(out, 200, &fields, b"body");
        Action::KeepAlive
    });
    let template = "$request_uri|$upstream_http_x_powered_by|$sent_http_x_powered_by|\
                    $upstream_http_X_App_Time|$upstream_http_x_cache|$sent_http_x_cache|\
                    $upstream_http_x_tag|$sent_http_x_tag";
    let mut proxy = start_proxy(&[origin.addr], |c| {
        logging_as(template)(c);
        let mut loader = inverso::config::Loader::new();
        let text = "targets = 127.0.0.1:1\nresponse_header.X-Powered-By =\n";
        loader.file("proxy.conf", text).unwrap();
        c.response_headers = loader.build().unwrap().response_headers;
    });
    let mut client = proxy.connect();
    let miss = client.get("/page");
    assert_eq!(miss.header("x-powered-by"), None, "{}", miss.head.raw);
    client.get("/page");
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    // The backend's field before the proxy took it out; the proxy's own
    // X-Cache is no backend's; a hit asked no backend.
    assert_eq!(
        proxy.log_lines(),
        [
            "/page|Express|-|12ms|-|MISS|a, b|a, b",
            "/page|-|-|-|-|HIT|-|a, b"
        ]
    );
}

#[test]
fn upstream_cookie_reads_the_cookies_the_backend_set() {
    let origin = Backend::start("origin", |_, out| {
        let fields = [
            ("Set-Cookie", "sid=abc123; Path=/; HttpOnly"),
            ("Set-Cookie", "Theme=dark"),
            ("Set-Cookie", "flag; Secure"),
        ];
        respond(out, 200, &fields, b"body");
        Action::KeepAlive
    });
    // A template naming no `$upstream_http_` field: the backend's fields
    // are kept for its cookies all the same.
    let template = "$upstream_cookie_sid|$upstream_cookie_THEME|$upstream_cookie_flag|\
                    $upstream_cookie_none";
    let proxy = start_proxy(&[origin.addr], logging_as(template));
    assert_eq!(proxy.connect().get("/").status, 200);
    assert_eq!(lines_of(proxy), ["abc123|dark|-|-"]);
}

#[test]
fn nginx_s_combined_format_reads_as_nginx_writes_it() {
    let origin = numbered_fresh_origin();
    let mut proxy = start_proxy(&[origin.addr], logging_as(NGINX_COMBINED));
    let mut client = proxy.connect();
    let headers = [
        ("Referer", "https://ref.example/a"),
        ("User-Agent", "Mozilla/5.0 \"quoted\""),
    ];
    assert_eq!(
        client.get_with("/n", &headers).header("x-cache"),
        Some("MISS")
    );
    assert_eq!(client.get("/n").header("x-cache"), Some("HIT"));
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));

    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let mut parsed = Vec::new();
    for line in &lines {
        // As a GoAccess or grok pattern for nginx's combined reads it.
        let rest = line.strip_prefix("127.0.0.1 - - [").expect(line);
        let (time, rest) = rest.split_once("] \"").expect(line);
        assert!(shaped(time, "99/MMM/9999:99:99:99 +0000"), "{line}");
        let (request, rest) = rest.split_once("\" ").expect(line);
        let (status, rest) = rest.split_once(' ').expect(line);
        let (bytes, rest) = rest.split_once(" \"").expect(line);
        let (referer, rest) = rest.split_once("\" \"").expect(line);
        let (agent, rt) = rest.split_once("\" rt=").expect(line);
        assert!(is_thousandths(rt), "{line}");
        assert!(bytes.bytes().all(|b| b.is_ascii_digit()), "{line}");
        parsed.push((request, status, referer, agent));
    }
    assert_eq!(
        parsed,
        [
            (
                "GET /n HTTP/1.1",
                "200",
                "https://ref.example/a",
                r"Mozilla/5.0 \x22quoted\x22"
            ),
            ("GET /n HTTP/1.1", "200", "-", "-"),
        ]
    );
}

#[test]
fn escape_json_lines_are_json_objects_whatever_the_client_sends() {
    let origin = numbered_fresh_origin();
    let template = "escape=json {\"request\":\"$request\",\"agent\":\"$http_user_agent\",\
                    \"status\":$status,\"cache\":\"$upstream_cache_status\",\
                    \"user\":\"$remote_user\"}";
    let mut proxy = start_proxy(&[origin.addr], logging_as(template));
    let mut client = proxy.connect();
    let agent = [("User-Agent", "Mozilla/5.0 \"quoted\" back\\slash\ttab café")];
    assert_eq!(client.get_with("/j", &agent).status, 200);
    assert_eq!(client.get("/j").header("x-cache"), Some("HIT"));
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));

    let lines = proxy.log_lines();
    assert_eq!(
        lines,
        [
            r#"{"request":"GET /j HTTP/1.1","agent":"Mozilla/5.0 \"quoted\" back\\slash\ttab café","status":200,"cache":"MISS","user":""}"#,
            r#"{"request":"GET /j HTTP/1.1","agent":"","status":200,"cache":"HIT","user":""}"#,
        ]
    );
}

/// Seconds written `s.mmm`, as milliseconds.
fn millis(text: &str) -> u64 {
    assert!(is_thousandths(text), "{text}");
    text.replace('.', "").parse().unwrap()
}

#[test]
fn upstream_times_are_nginx_s_connect_header_and_response() {
    // `/slow`'s body comes 300 ms after its head; every answer is fresh
    // for a minute, and a second `/fast` is a cache hit.
    let origin = Backend::start("origin", |seen, out| {
        let head = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 4\r\n\r\n";
        let _ = out.write_all(head);
        if seen.path() == "/slow" {
            std::thread::sleep(Duration::from_millis(300));
        }
        let _ = out.write_all(b"body");
        Action::KeepAlive
    });
    let template = "$upstream_connect_time $upstream_header_time $upstream_response_time";
    let mut proxy = start_proxy(&[origin.addr], logging_as(template));
    let mut client = proxy.connect();
    for path in ["/fast", "/slow", "/fast"] {
        assert_eq!(client.get(path).body_str(), "body", "{path}");
    }
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));

    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 3, "{lines:?}");
    let times: Vec<Vec<&str>> = lines.iter().map(|l| l.split(' ').collect()).collect();
    for t in &times[..2] {
        // The response's end comes after its head, both after connecting.
        let (connect, header, response) = (millis(t[0]), millis(t[1]), millis(t[2]));
        assert!(response >= header && response >= connect, "{t:?}");
    }
    // The second went on the connection the first left in the pool.
    assert_eq!(times[1][0], "0.000", "{lines:?}");
    // Its response ended no sooner than the backend's pause.
    assert!(millis(times[1][2]) >= 300, "{lines:?}");
    // A cache hit has no backend, and no backend's times.
    assert_eq!(times[2], ["-", "-", "-"], "{lines:?}");
}

#[test]
fn upstream_queue_time_is_zero_for_a_request_that_did_not_wait_and_a_dash_without_a_backend() {
    // No `max_conns`: no request waits. A cache hit and the proxy's own
    // answer ask no backend.
    let origin = numbered_fresh_origin();
    let proxy = start_proxy(&[origin.addr], |c| {
        from_file(&format!(
            "targets = {}\nroute./health = return 200 ok\n\
             log_format = $request_uri $upstream_cache_status $upstream_queue_time\n",
            origin.addr
        ))(c);
        // `from_file` turns the cache off.
        c.cache_size = 4 << 20;
    });
    let mut client = proxy.connect();
    assert_eq!(client.get("/a").header("x-cache"), Some("MISS"));
    assert_eq!(client.get("/a").header("x-cache"), Some("HIT"));
    assert_eq!(client.get("/health").status, 200);
    drop(client);
    assert_eq!(
        lines_of(proxy),
        ["/a MISS 0.000", "/a HIT -", "/health - -"]
    );
}

#[test]
fn upstream_status_is_the_backend_s_or_the_proxy_s_for_its_failure() {
    // The backend answers 503, which the proxy relays; the cache then
    // stores nothing of it.
    let origin = Backend::start("origin", |_, out| {
        respond(out, 503, &[], b"busy");
        Action::KeepAlive
    });
    let mut proxy = start_proxy(&[origin.addr], logging_as("$status $upstream_status"));
    assert_eq!(proxy.connect().get("/").status, 503);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert_eq!(proxy.log_lines(), ["503 503"]);

    // A stale entry the backend says is still good: the client gets the
    // entry, a 200, and the backend said 304.
    let origin = Backend::start("origin", |seen, out| {
        if seen.field_or("if-none-match", "") == "\"v1\"" {
            write_304(out, &[("ETag", "\"v1\""), ("Cache-Control", "max-age=0")]);
        } else {
            respond(
                out,
                200,
                &[("ETag", "\"v1\""), ("Cache-Control", "max-age=0")],
                b"v1",
            );
        }
        Action::KeepAlive
    });
    let template = "$status $upstream_status $upstream_cache_status";
    let mut proxy = start_proxy(&[origin.addr], logging_as(template));
    let mut client = proxy.connect();
    assert_eq!(client.get("/r").body_str(), "v1");
    assert_eq!(client.get("/r").header("x-cache"), Some("REVALIDATED"));
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert_eq!(proxy.log_lines(), ["200 200 MISS", "200 304 REVALIDATED"]);

    // A head that parses, with a body that cannot be framed: the proxy's
    // 502, not the 200 the backend wrote.
    let origin = Backend::start("origin", |_, out| {
        let _ =
            out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nbody");
        Action::Close
    });
    let mut proxy = start_proxy(&[origin.addr], logging_as("$status $upstream_status"));
    assert_eq!(proxy.connect().get("/").status, 502);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert_eq!(proxy.log_lines(), ["502 502"]);

    // A target that cannot be reached: nginx's 502 for it too.
    let mut proxy = start_proxy(&[dead_addr()], |c| {
        logging_as("$status $upstream_status $upstream_connect_time")(c);
        c.retries = Some(0);
    });
    assert_eq!(proxy.connect().get("/").status, 502);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert_eq!(proxy.log_lines(), ["502 502 -"]);
}

#[test]
fn request_length_and_bytes_sent_count_what_crossed_the_wire() {
    let origin = numbered_fresh_origin();
    let template = "$request_length $bytes_sent $body_bytes_sent";
    let mut proxy = start_proxy(&[origin.addr], logging_as(template));
    let mut client = proxy.connect();
    let get = b"GET /a HTTP/1.1\r\nHost: x\r\nX-Pad: 12345\r\n\r\n";
    let post =
        b"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let mut sizes = Vec::new();
    for (i, request) in [&get[..], &post[..]].into_iter().enumerate() {
        // Empty lines before a request line are not the request's (as
        // nginx counts it).
        if i == 1 {
            client.send(b"\r\n\r\n");
        }
        client.send(request);
        let response = client.response();
        assert_eq!(response.status, 200);
        let sent = response.head.raw.len() + response.body.len();
        sizes.push(format!("{} {sent} {}", request.len(), response.body.len()));
    }
    // Refused as it is (no Host): read all the same.
    let bad = b"GET /bad HTTP/1.1\r\n\r\n";
    client.send(bad);
    let refused = client.response();
    assert_eq!(refused.status, 400);
    let sent = refused.head.raw.len() + refused.body.len();
    sizes.push(format!("{} {sent} {}", bad.len(), refused.body.len()));
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert_eq!(proxy.log_lines(), sizes);
}

#[test]
fn connection_and_connection_requests_tell_keep_alive_reuse() {
    let origin = numbered_fresh_origin();
    let mut proxy = start_proxy(
        &[origin.addr],
        logging_as("$connection $connection_requests"),
    );
    let mut first = proxy.connect();
    assert_eq!(first.get("/a").status, 200);
    assert_eq!(first.get("/b").status, 200);
    drop(first);
    let mut second = proxy.connect();
    assert_eq!(second.get("/c").status, 200);
    drop(second);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    let mut fields: Vec<(u64, u64)> = (lines.iter())
        .map(|l| {
            let (serial, requests) = l.split_once(' ').unwrap();
            (serial.parse().unwrap(), requests.parse().unwrap())
        })
        .collect();
    // Logged as each worker finishes: `/b`'s line may come after `/c`'s.
    fields.sort_unstable();
    assert_eq!(fields.len(), 3, "{lines:?}");
    let (one, two) = (fields[0].0, fields[2].0);
    assert!(one >= 1 && two > one, "{lines:?}");
    assert_eq!(fields, [(one, 1), (one, 2), (two, 1)]);
}

#[test]
fn a_refused_request_logs_its_own_scheme_not_the_one_a_proxy_gave_the_request_before() {
    // Behind a trusted proxy, the first request on the connection came
    // over HTTPS to it (X-Forwarded-Proto). The second is malformed (no
    // Host): its fields are never read, its client is the connection's
    // other end again, and its scheme the connection's own, http.
    let origin = numbered_fresh_origin();
    let mut proxy = start_proxy(
        &[],
        from_file(&format!(
            "targets = {}\nreal_ip_from = 127.0.0.1/32\nlog_format = $status $scheme $remote_addr\n",
            origin.addr
        )),
    );
    let mut client = proxy.connect();
    client.send(
        b"GET /a HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\n\
          X-Forwarded-Proto: https\r\n\r\n",
    );
    assert_eq!(client.response().status, 200);
    client.send(b"GET /bad HTTP/1.1\r\n\r\n");
    assert_eq!(client.response().status, 400);
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert_eq!(
        proxy.log_lines(),
        ["200 https 203.0.113.9", "400 http 127.0.0.1"]
    );
}

/// README, Templates: `$http_<name>` is a request field, a field written
/// with `_` matching too, "several fields of that name are joined with
/// `, `". `$http_user_agent` and `$http_referer` (which the combined and
/// JSON formats log too) are read so as well.
#[test]
fn http_user_agent_and_referer_read_their_fields_as_every_http_variable() {
    let origin = numbered_fresh_origin();
    let mut proxy = start_proxy(
        &[origin.addr],
        logging_as("$http_x_trace|$http_user_agent|$http_referer"),
    );
    let mut client = proxy.connect();
    let headers = [
        ("X-Trace", "t1"),
        ("X-Trace", "t2"),
        ("User-Agent", "ua1"),
        ("User_Agent", "ua2"),
        ("Referer", "r1"),
        ("Referer", "r2"),
    ];
    assert_eq!(client.get_with("/joined", &headers).status, 200);
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert_eq!(proxy.log_lines(), ["t1, t2|ua1, ua2|r1, r2"]);
}

// ------------------------------------------------ $termination (HAProxy's)

/// The proxy's log lines once it has shut down, `$status $termination`
/// each (see [`termination_of`]).
fn lines_of(mut proxy: Proxy) -> Vec<String> {
    assert!(proxy.shutdown(Duration::from_secs(5)));
    proxy.log_lines()
}

/// A proxy in front of `targets` logging `$status $termination`, sending
/// a request once and no more, waiting at most `backend_timeout` for a
/// backend. Without a cache, which would take a response whole before a
/// client that left is noticed.
fn termination_of(targets: &[std::net::SocketAddr], backend_timeout: Duration) -> Proxy {
    start_proxy(targets, |c| {
        logging_as("$status $termination")(c);
        c.cache_size = 0;
        c.retries = Some(0);
        c.backend_timeout = Some(backend_timeout);
    })
}

#[test]
fn termination_is_dashes_for_an_exchange_that_ended_as_it_should_and_a_cache_hit() {
    let origin = numbered_fresh_origin();
    let mut proxy = start_proxy(
        &[origin.addr],
        logging_as("$termination $upstream_cache_status"),
    );
    let mut client = proxy.connect();
    assert_eq!(client.get("/a").header("x-cache"), Some("MISS"));
    assert_eq!(client.get("/a").header("x-cache"), Some("HIT"));
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert_eq!(proxy.log_lines(), ["-- MISS", "-- HIT"]);
}

#[test]
fn termination_of_a_target_that_refuses_the_connection_is_sc() {
    let proxy = termination_of(&[dead_addr()], Duration::from_secs(5));
    assert_eq!(proxy.connect().get("/").status, 502);
    assert_eq!(lines_of(proxy), ["502 SC"]);
}

#[test]
fn termination_of_a_backend_slow_to_send_its_head_is_sh_in_lower_case() {
    let origin = Backend::start("origin", |_, _| Action::Hang);
    let proxy = termination_of(&[origin.addr], Duration::from_millis(300));
    assert_eq!(proxy.connect().get("/").status, 504);
    assert_eq!(lines_of(proxy), ["504 sH"]);
}

#[test]
fn termination_of_a_response_head_that_is_not_http_is_ph() {
    let origin = Backend::start("origin", |_, out| {
        let _ = out.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n");
        Action::Close
    });
    let proxy = termination_of(&[origin.addr], Duration::from_secs(5));
    assert_eq!(proxy.connect().get("/").status, 502);
    assert_eq!(lines_of(proxy), ["502 PH"]);
}

#[test]
fn termination_of_a_backend_that_closes_without_answering_is_sh() {
    let origin = Backend::start("origin", |_, _| Action::Close);
    let proxy = termination_of(&[origin.addr], Duration::from_secs(5));
    assert_eq!(proxy.connect().get("/").status, 502);
    assert_eq!(lines_of(proxy), ["502 SH"]);
}

#[test]
fn termination_of_a_body_the_backend_cut_short_is_sd() {
    // Larger than any buffer the proxy reads a body into before it
    // answers: the head is out when the backend closes.
    let origin = Backend::start("origin", |_, out| {
        let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4000000\r\n\r\n");
        let _ = out.write_all(&pattern(64 * 1024));
        Action::Close
    });
    let proxy = termination_of(&[origin.addr], Duration::from_secs(5));
    let mut client = proxy.connect();
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = client.reader.read_head().unwrap().expect("a response head");
    assert!(head.start_line.starts_with("HTTP/1.1 200"), "{}", head.raw);
    // Read until the proxy closes: the body ends short of its length.
    let body = client.reader.read_to_end().unwrap();
    assert!(body.len() < 4_000_000, "{}", body.len());
    assert_eq!(lines_of(proxy), ["200 SD"]);
}

#[test]
fn termination_of_a_client_gone_in_the_middle_of_the_body_is_cd() {
    // A body that never ends, sent as long as the proxy takes it.
    let origin = Backend::start("origin", |_, out| {
        let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n");
        let piece = pattern(64 * 1024);
        for _ in 0..1_000_000_000 / piece.len() {
            if out.write_all(&piece).is_err() {
                break;
            }
        }
        Action::Close
    });
    let proxy = termination_of(&[origin.addr], Duration::from_secs(5));
    let mut client = Client::connect_taking(4096, proxy.addr);
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = client.reader.read_head().unwrap().expect("a response head");
    assert!(head.start_line.starts_with("HTTP/1.1 200"), "{}", head.raw);
    drop(client);
    assert!(wait_until(Duration::from_secs(10), || origin.closed() == 1));
    assert_eq!(lines_of(proxy), ["200 CD"]);
}

/// As a relayed body's: a file the client stops taking is `CD`, not an
/// exchange that ended as it should.
#[test]
fn termination_of_a_client_gone_in_the_middle_of_a_file_is_cd() {
    let dir = tempfile::tempdir().unwrap();
    // Past what the sockets between them hold: the client is gone while
    // the file still goes.
    std::fs::write(dir.path().join("big.bin"), pattern(16 << 20)).unwrap();
    let root = dir.path().to_str().unwrap().to_owned();
    let proxy = start_proxy(&[], move |c| {
        let text = format!("targets = {}\nroute./f/ = files {root}\n", dead_addr());
        from_file(&text)(c);
        c.log_format = LogFormat::parse("$status $termination").unwrap();
    });
    let mut client = Client::connect_taking(4096, proxy.addr);
    client.send(b"GET /f/big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = client.reader.read_head().unwrap().expect("a response head");
    assert!(head.start_line.starts_with("HTTP/1.1 200"), "{}", head.raw);
    drop(client);
    assert_eq!(lines_of(proxy), ["200 CD"]);
}

/// A proxy serving `dir` under `/f/` (with the route's `options`)
/// logging `$status $termination`, its client connections timing out
/// after `timeout`.
fn serving_files(dir: &std::path::Path, options: &str, timeout: Duration) -> Proxy {
    let text = format!(
        "targets = {}\nroute./f/ = files {} {options}\n",
        dead_addr(),
        dir.to_str().unwrap()
    );
    start_proxy(&[], move |c| {
        from_file(&text)(c);
        c.log_format = LogFormat::parse("$status $termination").unwrap();
        c.connection_timeout = timeout;
    })
}

/// A file cut shorter while it is sent (rewritten in place by a deploy)
/// is the proxy's failure midway, `PD`: it was `--`, as if the short body
/// had been the whole.
#[test]
fn termination_of_a_file_cut_short_while_it_was_sent_is_pd() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    std::fs::write(&path, pattern(4 << 20)).unwrap();
    // Sent at a pace: most of it is still on disk once the head is out.
    let proxy = serving_files(dir.path(), "limit_rate=256KiB", Duration::from_secs(10));
    let mut client = proxy.connect();
    client.send(b"GET /f/big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = client.reader.read_head().unwrap().expect("a response head");
    assert!(head.start_line.starts_with("HTTP/1.1 200"), "{}", head.raw);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(0).unwrap();
    let body = client.reader.read_to_end().unwrap();
    assert!(body.len() < 4 << 20, "{}", body.len());
    drop(client);
    assert_eq!(lines_of(proxy), ["200 PD"]);
}

/// A client that takes nothing of a file for the send timeout is the
/// client's timeout, `cD`, as HAProxy's; not one gone (`CD`).
#[test]
fn termination_of_a_client_too_slow_to_take_a_file_is_cd_in_lower_case() {
    let dir = tempfile::tempdir().unwrap();
    // Sparse: far past what the sockets between them hold, and no disk.
    let file = std::fs::File::create(dir.path().join("huge.bin")).unwrap();
    file.set_len(1 << 30).unwrap();
    let proxy = serving_files(dir.path(), "", Duration::from_millis(300));
    let mut client = Client::connect_taking(4096, proxy.addr);
    client.send(b"GET /f/huge.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = client.reader.read_head().unwrap().expect("a response head");
    assert!(head.start_line.starts_with("HTTP/1.1 200"), "{}", head.raw);
    // Reads no more, and stays: the proxy's shutdown waits for the
    // exchange, which its send timeout ends.
    let lines = lines_of(proxy);
    drop(client);
    assert_eq!(lines, ["200 cD"]);
}

#[test]
fn termination_of_a_client_gone_before_the_response_head_is_ch() {
    let origin = Backend::start("origin", |_, _| Action::Hang);
    let proxy = termination_of(&[origin.addr], Duration::from_secs(5));
    let mut client = proxy.connect();
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    // Gone once the backend has the request.
    assert!(wait_until(Duration::from_secs(5), || origin.requests() == 1));
    drop(client);
    assert!(wait_until(Duration::from_secs(5), || origin.closed() == 1));
    assert_eq!(lines_of(proxy), ["499 CH"]);
}

#[test]
fn termination_of_a_malformed_request_is_pr_and_of_one_abandoned_cr() {
    let origin = numbered_fresh_origin();
    let proxy = termination_of(&[origin.addr], Duration::from_secs(5));
    // No Host: the proxy refuses it.
    let mut client = proxy.connect();
    client.send(b"GET /bad HTTP/1.1\r\n\r\n");
    assert_eq!(client.response().status, 400);
    // Not a request line at all.
    let mut client = proxy.connect();
    client.send(b"\x01\x02 nonsense\r\n\r\n");
    assert_eq!(client.response().status, 400);
    // Half a head, then gone.
    let mut client = proxy.connect();
    client.send(b"GET /half HTTP/1.1\r\nHo");
    client
        .reader
        .stream
        .shutdown(std::net::Shutdown::Write)
        .unwrap();
    assert!(client.reader.read_to_end().unwrap().is_empty());
    assert_eq!(origin.requests(), 0);
    // Three connections: their lines in any order.
    let mut lines = lines_of(proxy);
    lines.sort();
    assert_eq!(lines, ["400 CR", "400 PR", "400 PR"]);
}

#[test]
fn termination_of_a_head_that_took_too_long_is_cr_in_lower_case() {
    let origin = numbered_fresh_origin();
    let proxy = start_proxy(&[origin.addr], |c| {
        logging_as("$status $termination")(c);
        c.client_header_timeout = Duration::from_millis(300);
    });
    let mut client = proxy.connect();
    client.send(b"GET / HTTP/1.1\r\n");
    assert_eq!(client.response().status, 408);
    assert_eq!(lines_of(proxy), ["408 cR"]);
}

#[test]
fn termination_of_the_proxy_s_own_refusals_is_pr_and_of_its_own_answers_lr() {
    let origin = numbered_fresh_origin();
    let proxy = start_proxy(
        &[origin.addr],
        from_file(&format!(
            "targets = {}\nrate_limit = 2/h\nroute./health = return 200 ok\n\
             log_format = $status $termination\n",
            origin.addr
        )),
    );
    let mut client = proxy.connect();
    assert_eq!(client.get("/health").status, 200);
    assert_eq!(client.get("/a").status, 200);
    assert_eq!(client.get("/a").status, 200);
    assert_eq!(client.get("/a").status, 429);
    drop(client);
    assert_eq!(lines_of(proxy), ["200 LR", "200 --", "200 --", "429 PR"]);
}

#[test]
fn termination_of_a_connection_over_max_connections_is_pr() {
    let origin = Backend::start("origin", |_, _| Action::Hang);
    let proxy = start_proxy(&[origin.addr], |c| {
        logging_as("$status $termination")(c);
        c.cache_size = 0;
        c.max_connections = 1;
    });
    let mut first = proxy.connect();
    first.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(wait_until(Duration::from_secs(5), || origin.requests() == 1));
    let mut second = proxy.connect();
    second.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(second.response().status, 503);
    drop(second);
    drop(first);
    assert!(wait_until(Duration::from_secs(5), || origin.closed() == 1));
    // Two connections: their lines in any order.
    let mut lines = lines_of(proxy);
    lines.sort();
    assert_eq!(lines, ["499 CH", "503 PR"]);
}

#[test]
fn the_json_line_carries_termination() {
    let proxy = start_proxy(&[dead_addr()], |c| {
        c.log_format = LogFormat::Json;
        c.retries = Some(0);
    });
    assert_eq!(proxy.connect().get("/").status, 502);
    let lines = lines_of(proxy);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains(r#","termination":"SC""#), "{}", lines[0]);
}

#[test]
fn upstream_bytes_are_those_of_each_exchange_head_and_framing_included() {
    // Answers of known sizes on one kept-alive backend connection: a body
    // with a length, a chunked one (its framing counted, as nginx counts
    // what it reads), one larger than the proxy gathers (streamed to the
    // client), and one that ends with the connection.
    const SMALL: &[u8] =
        b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 5\r\n\r\nhello";
    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\n\
                             Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    const LARGE_HEAD: &[u8] =
        b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 300000\r\n\r\n";
    const CLOSING_HEAD: &[u8] =
        b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
    let origin = Backend::start("origin", |seen, out| {
        match seen.path() {
            "/small" => out.write_all(SMALL).unwrap(),
            "/chunked" => out.write_all(CHUNKED).unwrap(),
            "/large" => {
                out.write_all(LARGE_HEAD).unwrap();
                out.write_all(&pattern(300_000)).unwrap();
            }
            "/cut" => {
                out.write_all(LARGE_HEAD).unwrap();
                out.write_all(&pattern(64 * 1024)).unwrap();
                return Action::Close;
            }
            _ => {
                out.write_all(CLOSING_HEAD).unwrap();
                out.write_all(b"until the end").unwrap();
                return Action::Close;
            }
        }
        Action::KeepAlive
    });
    let template = "$request_uri $upstream_bytes_received $upstream_response_length \
                    $request_completion";
    let proxy = start_proxy(&[origin.addr], |c| {
        c.log_format = LogFormat::parse(template).unwrap();
        c.cache_size = 0;
    });
    let mut client = proxy.connect();
    for path in ["/small", "/chunked", "/large", "/small", "/closing"] {
        assert_eq!(client.get(path).status, 200, "{path}");
    }
    // The backend closes 64 KiB into a body of 300,000 bytes: what it
    // sent is counted, and the answer was not whole.
    client.send(b"GET /cut HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = client.reader.read_head().unwrap().expect("a response head");
    assert!(head.start_line.starts_with("HTTP/1.1 200"), "{}", head.raw);
    assert!(client.reader.read_to_end().unwrap().len() < 300_000);
    drop(client);
    let count = |head: &[u8], body: usize| format!("{} {body}", head.len() + body);
    assert_eq!(
        lines_of(proxy),
        [
            format!("/small {} OK", count(&SMALL[..SMALL.len() - 5], 5)),
            format!("/chunked {} OK", count(&CHUNKED[..CHUNKED.len() - 13], 13)),
            format!("/large {} OK", count(LARGE_HEAD, 300_000)),
            // The connection was pooled: counted from this exchange on.
            format!("/small {} OK", count(&SMALL[..SMALL.len() - 5], 5)),
            format!("/closing {} OK", count(CLOSING_HEAD, 13)),
            format!("/cut {} ", count(LARGE_HEAD, 64 * 1024)),
        ]
    );
}

#[test]
fn upstream_bytes_are_each_target_s_and_a_dash_without_an_answer() {
    // Round robin over a target that refuses connections and one that
    // answers: of two requests, one tries the first target before the
    // second. Each logs the answer's bytes, after a `-` for the refused
    // target that one tried first, and a cache hit none.
    let origin = Backend::start("origin", |_, out| {
        respond(out, 200, &[("Cache-Control", "max-age=60")], b"four");
        Action::KeepAlive
    });
    let answer =
        "HTTP/1.1 200 Whatever\r\nCache-Control: max-age=60\r\nContent-Length: 4\r\n\r\nfour";
    let template = "$request_uri $upstream_addr $upstream_bytes_received \
                    $upstream_response_length $upstream_cache_status";
    let dead = dead_addr();
    let proxy = start_proxy(&[dead, origin.addr], logging_as(template));
    let mut client = proxy.connect();
    for path in ["/a", "/b"] {
        assert_eq!(client.get(path).body_str(), "four", "{path}");
    }
    assert_eq!(client.get("/a").header("x-cache"), Some("HIT"));
    drop(client);
    let answered = |path: &str| format!("{path} {} {} 4 MISS", origin.addr, answer.len());
    let retried = |path: &str| {
        let (addr, len) = (origin.addr, answer.len());
        format!("{path} {dead}, {addr} -, {len} -, 4 MISS")
    };
    let lines = lines_of(proxy);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let (a, b) = (&lines[0], &lines[1]);
    assert!(
        (*a == retried("/a") && *b == answered("/b"))
            || (*a == answered("/a") && *b == retried("/b")),
        "{lines:?}"
    );
    assert_eq!(lines[2], "/a - - - HIT");

    // No target answered: nothing read.
    let proxy = start_proxy(&[dead_addr()], |c| {
        c.log_format = LogFormat::parse("$status $upstream_bytes_received").unwrap();
        c.cache_size = 0;
    });
    assert_eq!(proxy.connect().get("/").status, 502);
    assert_eq!(lines_of(proxy), ["502 -"]);
}

#[test]
fn upstream_bytes_of_a_backend_that_failed_to_answer_are_what_went_and_came_before() {
    // One closes once it has read the request; one sends part of a head
    // and closes: nginx's counts of a failed try, no body either way.
    let request_sizes = Arc::new(Mutex::new(Vec::new()));
    let seen_by_backend = request_sizes.clone();
    let silent = Backend::start("silent", move |seen, _| {
        seen_by_backend.lock().unwrap().push(seen.head.raw.len());
        Action::Close
    });
    let partial = Backend::start("partial", |_, out| {
        let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-");
        Action::Close
    });
    for (backend, received) in [(&silent, 0), (&partial, 25)] {
        let proxy = start_proxy(&[backend.addr], |c| {
            c.log_format = LogFormat::parse(
                "$status $upstream_bytes_sent $upstream_bytes_received $upstream_response_length",
            )
            .unwrap();
            c.cache_size = 0;
            c.retries = Some(0);
        });
        assert_eq!(proxy.connect().get("/").status, 502);
        let lines = lines_of(proxy);
        let sent = lines[0]
            .split(' ')
            .nth(1)
            .unwrap()
            .parse::<usize>()
            .unwrap();
        assert!(sent > 20, "{lines:?}");
        assert_eq!(
            lines,
            [format!("502 {sent} {received} -")],
            "{}",
            backend.name
        );
        if backend.name == "silent" {
            assert_eq!(*request_sizes.lock().unwrap(), [sent]);
        }
    }
}

#[test]
fn upstream_bytes_sent_are_the_request_s_head_and_body_as_the_backend_got_them() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let seen_by_backend = received.clone();
    let origin = Backend::start("origin", move |seen, out| {
        let sizes = (seen.head.raw.len(), seen.body.len());
        seen_by_backend.lock().unwrap().push(sizes);
        respond(out, 200, &[("Cache-Control", "no-store")], b"ok");
        Action::KeepAlive
    });
    let proxy = start_proxy(&[origin.addr], |c| {
        c.log_format = LogFormat::parse("$request_method $upstream_bytes_sent").unwrap();
        c.cache_size = 0;
    });
    let mut client = proxy.connect();
    assert_eq!(client.get("/a").status, 200);
    client.send(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789");
    assert_eq!(client.response().status, 200);
    drop(client);
    let lines = lines_of(proxy);
    let sizes = received.lock().unwrap().clone();
    assert_eq!(sizes.len(), 2);
    assert_eq!(sizes[1].1, 10, "{sizes:?}");
    let sent: Vec<usize> = sizes.iter().map(|(head, body)| head + body).collect();
    assert_eq!(
        lines,
        [format!("GET {}", sent[0]), format!("POST {}", sent[1])]
    );
}

#[test]
fn request_body_is_logged_when_it_was_read_whole_and_escaped_as_any_text() {
    let origin = Backend::echo("app");
    let proxy = start_proxy(&[origin.addr], |c| {
        c.log_format =
            LogFormat::parse("escape=json {\"m\":\"$request_method\",\"b\":\"$request_body\"}")
                .unwrap();
        c.cache_size = 0;
        c.request_buffer_size = 1024;
    });
    let mut client = proxy.connect();
    assert_eq!(client.post("/form", b"name=\"ann\"\n&x=1").status, 200);
    assert_eq!(client.get("/page").status, 200);
    // Past request_buffer_size: streamed as it came, never held whole.
    assert_eq!(client.post("/upload", &pattern(4096)).status, 200);
    drop(client);
    assert_eq!(
        lines_of(proxy),
        [
            r#"{"m":"POST","b":"name=\"ann\"\n&x=1"}"#,
            r#"{"m":"GET","b":""}"#,
            r#"{"m":"POST","b":""}"#,
        ]
    );
}

#[test]
fn tcpinfo_is_what_the_kernel_measured_of_the_client_s_connection() {
    let origin = numbered_fresh_origin();
    let template = "$tcpinfo_rtt $tcpinfo_rttvar $tcpinfo_snd_cwnd $tcpinfo_rcv_space";
    let proxy = start_proxy(&[origin.addr], logging_as(template));
    assert_eq!(proxy.connect().get("/").status, 200);
    let lines = lines_of(proxy);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let numbers: Vec<u64> = lines[0].split(' ').map(|n| n.parse().unwrap()).collect();
    assert_eq!(numbers.len(), 4, "{lines:?}");
    // A live connection has a congestion window and room to receive.
    assert!(numbers[2] > 0 && numbers[3] > 0, "{lines:?}");
}

#[test]
fn pipe_says_which_request_came_before_the_answer_ahead_of_it_and_connection_time_grows() {
    let origin = numbered_fresh_origin();
    let proxy = start_proxy(&[origin.addr], |c| {
        c.log_format =
            LogFormat::parse("$request_uri $pipe $connection_requests $connection_time").unwrap();
        c.cache_size = 0;
    });
    let mut client = proxy.connect();
    assert_eq!(client.get("/alone").status, 200);
    // Two at once: the second waits in the proxy's buffer for the first's
    // answer.
    client.send(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(client.response().status, 200);
    assert_eq!(client.response().status, 200);
    drop(client);
    let lines = lines_of(proxy);
    let fields: Vec<Vec<&str>> = lines.iter().map(|l| l.split(' ').collect()).collect();
    let pipes: Vec<(&str, &str, &str)> = fields.iter().map(|f| (f[0], f[1], f[2])).collect();
    assert_eq!(
        pipes,
        [
            ("/alone", ".", "1"),
            ("/first", ".", "2"),
            ("/second", "p", "3")
        ]
    );
    let times: Vec<u64> = fields.iter().map(|f| millis(f[3])).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
}

#[test]
fn upstream_variables_list_every_target_tried_as_nginx_does() {
    // Round robin starts at the first target: one that refuses the
    // connection, then one that answers 503 (listed in
    // `retry_on_status`) for `/retry`, then one that answers.
    let dead = dead_addr();
    let busy = Backend::start("busy", |seen, out| {
        let status = if seen.path() == "/retry" { 503 } else { 200 };
        respond(out, status, &[], b"busy");
        Action::KeepAlive
    });
    let ok = Backend::start("ok", |_, out| {
        respond(out, 200, &[], b"fine");
        Action::KeepAlive
    });
    let template = "$status|$upstream_addr|$upstream_status|$upstream_connect_time|\
                    $upstream_header_time|$upstream_response_time|$upstream_bytes_received|\
                    $upstream_response_length";
    let text = format!(
        "targets = {dead}, {}, {}\nretries = 2\nretry_on_status = 503\n\
         response_header.X-Tried = $upstream_addr / $upstream_status\n\
         log_format = {template}\n",
        busy.addr, ok.addr
    );
    let mut proxy = start_proxy(&[dead, busy.addr, ok.addr], from_file(&text));
    let mut client = proxy.connect();
    let answer = client.get("/retry");
    assert_eq!(answer.body_str(), "fine");
    let tried = format!("{dead}, {}, {}", busy.addr, ok.addr);
    assert_eq!(
        answer.header("x-tried"),
        Some(format!("{tried} / 502, 503, 200").as_str()),
        "the response's field lists them too"
    );
    // The next request on the connection went to one target: nothing of
    // the first's is listed.
    let next = client.get("/again");
    assert_eq!(next.status, 200);
    let single = next.header("x-tried").unwrap().to_string();
    assert!(!single.contains(','), "{single}");
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let fields: Vec<&str> = lines[0].split('|').collect();
    assert_eq!(
        fields[..3],
        ["200", &tried, "502, 503, 200"],
        "{}",
        lines[0]
    );
    let list = |i: usize| -> Vec<&str> { fields[i].split(", ").collect() };
    // The refused target has no connect nor header time, the two that
    // answered have both; all three have a response time.
    for times in [list(3), list(4)] {
        assert_eq!(times[0], "-", "{}", lines[0]);
        assert!(times[1..].iter().all(|t| is_thousandths(t)), "{}", lines[0]);
    }
    assert!(list(5).iter().all(|t| is_thousandths(t)), "{}", lines[0]);
    // The bytes of each answer: the 503's head and its 4-byte body, then
    // the 200's.
    let received = list(6);
    assert_eq!(received[0], "-", "{}", lines[0]);
    assert!(received[1].parse::<u64>().unwrap() > 4, "{}", lines[0]);
    assert_eq!(list(7), ["-", "4", "4"], "{}", lines[0]);
    // One target: no list.
    let second: Vec<&str> = lines[1].split('|').collect();
    assert!(
        !second[1].contains(',') && !second[2].contains(','),
        "{}",
        lines[1]
    );
}
