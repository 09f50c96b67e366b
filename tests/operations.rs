//! Operations: the admin listener (metrics, status, health, purge), the
//! access log's formats and reopen, reload, graceful shutdown, and the
//! signals of the binary.

mod support;

use inverso::config::LogFormat;
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use support::*;

// ------------------------------------------------------------ tiny JSON

/// Just enough JSON to check what the proxy writes.
#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &str) -> Json {
        let chars: Vec<char> = text.trim().chars().collect();
        let mut at = 0;
        let value = parse_value(&chars, &mut at);
        assert_eq!(at, chars.len(), "trailing text after JSON in {text:?}");
        value
    }

    fn get(&self, key: &str) -> &Json {
        match self {
            Json::Obj(fields) => fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("no key {key:?} in {self:?}")),
            _ => panic!("not an object: {self:?}"),
        }
    }

    fn num(&self) -> f64 {
        match self {
            Json::Num(n) => *n,
            _ => panic!("not a number: {self:?}"),
        }
    }

    fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            _ => panic!("not a string: {self:?}"),
        }
    }

    fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(items) => items,
            _ => panic!("not an array: {self:?}"),
        }
    }
}

fn parse_value(c: &[char], at: &mut usize) -> Json {
    skip_ws(c, at);
    match c[*at] {
        '{' => {
            *at += 1;
            let mut fields = Vec::new();
            skip_ws(c, at);
            if c[*at] == '}' {
                *at += 1;
                return Json::Obj(fields);
            }
            loop {
                skip_ws(c, at);
                let Json::Str(key) = parse_value(c, at) else {
                    panic!("object key is not a string at {at}");
                };
                skip_ws(c, at);
                assert_eq!(c[*at], ':');
                *at += 1;
                fields.push((key, parse_value(c, at)));
                skip_ws(c, at);
                *at += 1;
                match c[*at - 1] {
                    ',' => continue,
                    '}' => return Json::Obj(fields),
                    other => panic!("unexpected {other:?} in object"),
                }
            }
        }
        '[' => {
            *at += 1;
            let mut items = Vec::new();
            skip_ws(c, at);
            if c[*at] == ']' {
                *at += 1;
                return Json::Arr(items);
            }
            loop {
                items.push(parse_value(c, at));
                skip_ws(c, at);
                *at += 1;
                match c[*at - 1] {
                    ',' => continue,
                    ']' => return Json::Arr(items),
                    other => panic!("unexpected {other:?} in array"),
                }
            }
        }
        '"' => {
            *at += 1;
            let mut s = String::new();
            loop {
                let ch = c[*at];
                *at += 1;
                match ch {
                    '"' => return Json::Str(s),
                    '\\' => {
                        let e = c[*at];
                        *at += 1;
                        match e {
                            'n' => s.push('\n'),
                            'r' => s.push('\r'),
                            't' => s.push('\t'),
                            'u' => {
                                let hex: String = c[*at..*at + 4].iter().collect();
                                *at += 4;
                                let code = u32::from_str_radix(&hex, 16).unwrap();
                                s.push(char::from_u32(code).unwrap());
                            }
                            other => s.push(other),
                        }
                    }
                    ch if (ch as u32) < 0x20 => panic!("raw control character in a string"),
                    ch => s.push(ch),
                }
            }
        }
        't' | 'f' | 'n' => {
            for (word, value) in [
                ("true", Json::Bool(true)),
                ("false", Json::Bool(false)),
                ("null", Json::Null),
            ] {
                let end = (*at + word.len()).min(c.len());
                if c[*at..end].iter().collect::<String>() == word {
                    *at = end;
                    return value;
                }
            }
            panic!("bad literal at {at}");
        }
        _ => {
            let start = *at;
            while *at < c.len() && matches!(c[*at], '-' | '+' | '.' | 'e' | 'E' | '0'..='9') {
                *at += 1;
            }
            let text: String = c[start..*at].iter().collect();
            Json::Num(
                text.parse()
                    .unwrap_or_else(|_| panic!("bad number {text:?}")),
            )
        }
    }
}

fn skip_ws(c: &[char], at: &mut usize) {
    while *at < c.len() && c[*at].is_whitespace() {
        *at += 1;
    }
}

// ------------------------------------------------------------ helpers

/// One request on its own connection to the admin listener.
fn admin(addr: SocketAddr, method: &str, target: &str, host: &str) -> Response {
    let mut client = Client::connect(addr);
    client.send(format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
    if method == "HEAD" {
        client.head_response()
    } else {
        client.response()
    }
}

/// The samples of a Prometheus text page, `name{labels}` to value; checks
/// that every sample's family was announced with `# HELP` and `# TYPE`.
fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let response = admin(addr, "GET", "/metrics", "127.0.0.1");
    assert_eq!(response.status, 200);
    assert!(response
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = response.body_str();
    let mut helped = Vec::new();
    let mut typed = HashMap::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.push(rest.split(' ').next().unwrap().to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split(' ');
            let name = words.next().unwrap().to_string();
            let kind = words.next().unwrap().to_string();
            assert!(
                ["counter", "gauge", "histogram", "summary"].contains(&kind.as_str()),
                "{line}"
            );
            typed.insert(name, kind);
        } else if !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| typed.contains_key(*base))
                })
                .unwrap_or(name);
            assert!(typed.contains_key(family), "no # TYPE for {line}");
            assert!(helped.iter().any(|h| h == family), "no # HELP for {line}");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
            samples.insert(series.to_string(), value);
        }
    }
    samples
}

/// [`scrape`]s once `requests` are counted: a request is, once its
/// response has gone out.
fn scrape_once_counted(addr: SocketAddr, requests: f64) -> HashMap<String, f64> {
    assert!(wait_until(WAIT_LIMIT, || {
        scrape(addr)["inverso_request_duration_seconds_count"] == requests
    }));
    scrape(addr)
}

fn with_admin(config: &mut inverso::Config) {
    config.admin_port = Some(0);
}

fn with_cache(config: &mut inverso::Config) {
    config.admin_port = Some(0);
    config.cache_size = 1 << 20;
}

/// A backend whose responses may be cached for a minute and vary on
/// Accept-Encoding; the body names the encoding asked for.
fn cacheable_backend() -> Backend {
    Backend::start("cacheable", |seen, out| {
        let encoding = seen.head.get("accept-encoding").unwrap_or("none");
        let body = format!("{} {encoding}", seen.path());
        respond(
            out,
            200,
            &[("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding")],
            body.as_bytes(),
        );
        Action::KeepAlive
    })
}

fn get_with(proxy: &Proxy, path: &str, extra: &str) -> Response {
    let mut client = proxy.connect();
    client.send(format!("GET {path} HTTP/1.1\r\nHost: test.example\r\n{extra}\r\n").as_bytes());
    client.response()
}

// ------------------------------------------------------------ admin

#[test]
fn metrics_count_requests_by_class_target_and_duration() {
    let a = Backend::echo("a");
    let b = Backend::start("b", |seen, out| {
        let status = if seen.path() == "/missing" { 404 } else { 200 };
        respond(out, status, &[], b"b");
        Action::KeepAlive
    });
    let dead = dead_addr();
    // No retries and no passive health: the dead target answers its turns.
    let proxy = start_proxy(&[a.addr, b.addr, dead], |c| {
        with_admin(c);
        c.retries = Some(0);
        c.max_fails = 0;
    });
    let admin_addr = proxy.handle().admin_addr().expect("admin listener");
    let mut client = proxy.connect();
    // Round robin: a, b (404), dead (502), a, b, dead.
    let statuses: Vec<u16> = ["/1", "/missing", "/3", "/4", "/5", "/6"]
        .iter()
        .map(|p| {
            let r = client.get(p);
            if r.head.has_token("connection", "close") {
                client = proxy.connect();
            }
            r.status
        })
        .collect();
    assert_eq!(statuses, [200, 404, 502, 200, 200, 502]);
    // Waits for the last response to have gone out.
    let m = scrape_once_counted(admin_addr, 6.0);
    assert_eq!(m["inverso_requests_total{class=\"2xx\"}"], 3.0);
    assert_eq!(m["inverso_requests_total{class=\"4xx\"}"], 1.0);
    assert_eq!(m["inverso_requests_total{class=\"5xx\"}"], 2.0);
    assert_eq!(m["inverso_requests_total{class=\"3xx\"}"], 0.0);
    assert_eq!(
        m["inverso_request_duration_seconds_bucket{le=\"+Inf\"}"],
        6.0
    );
    assert!(m["inverso_request_duration_seconds_sum"] > 0.0);
    let bucket = |le: &str| m[&format!("inverso_request_duration_seconds_bucket{{le=\"{le}\"}}")];
    assert!(bucket("0.001") <= bucket("0.01") && bucket("0.01") <= bucket("10"));
    for (addr, requests, failures) in [(a.addr, 2.0, 0.0), (b.addr, 2.0, 0.0), (dead, 2.0, 2.0)] {
        let label = format!("{{target=\"{addr}\",pool=\"default\"}}");
        assert_eq!(
            m[&format!("inverso_upstream_requests_total{label}")],
            requests
        );
        assert_eq!(
            m[&format!("inverso_upstream_failures_total{label}")],
            failures
        );
        assert_eq!(m[&format!("inverso_upstream_in_flight{label}")], 0.0);
    }
    for addr in [a.addr, b.addr] {
        assert_eq!(
            m[&format!("inverso_upstream_up{{target=\"{addr}\",pool=\"default\"}}")],
            1.0
        );
    }
    // What each backend answered, and how fast: the dead one answered
    // nothing.
    for (addr, ok, missing) in [(a.addr, 2.0, 0.0), (b.addr, 1.0, 1.0), (dead, 0.0, 0.0)] {
        let class = |c: &str| {
            m[&format!("inverso_upstream_responses_total{{target=\"{addr}\",pool=\"default\",class=\"{c}\"}}")]
        };
        assert_eq!(
            (class("2xx"), class("4xx"), class("5xx")),
            (ok, missing, 0.0),
            "{addr}"
        );
        let heads = |suffix: &str| m[&format!("inverso_upstream_header_seconds{suffix}")];
        assert_eq!(
            heads(&format!("_count{{target=\"{addr}\",pool=\"default\"}}")),
            ok + missing
        );
        assert_eq!(
            heads(&format!(
                "_bucket{{target=\"{addr}\",pool=\"default\",le=\"+Inf\"}}"
            )),
            ok + missing
        );
        assert!(
            heads(&format!(
                "_bucket{{target=\"{addr}\",pool=\"default\",le=\"0.001\"}}"
            )) <= ok + missing
        );
    }
    // The client connection is open while we scrape.
    assert!(m["inverso_connections_in_flight"] >= 1.0);
    // No cache, no cache families.
    assert!(!m.keys().any(|k| k.starts_with("inverso_cache_")));
}

#[test]
fn metrics_count_cache_results() {
    let origin = cacheable_backend();
    let proxy = start_proxy(&[origin.addr], with_cache);
    let admin_addr = proxy.handle().admin_addr().unwrap();
    assert_eq!(get_with(&proxy, "/c", "").header("x-cache"), Some("MISS"));
    assert_eq!(get_with(&proxy, "/c", "").header("x-cache"), Some("HIT"));
    assert_eq!(get_with(&proxy, "/c", "").header("x-cache"), Some("HIT"));
    let mut client = proxy.connect();
    assert_eq!(client.post("/p", b"x").header("x-cache"), Some("BYPASS"));
    let m = scrape_once_counted(admin_addr, 4.0);
    assert_eq!(m["inverso_cache_requests_total{result=\"hit\"}"], 2.0);
    assert_eq!(m["inverso_cache_requests_total{result=\"miss\"}"], 1.0);
    assert_eq!(m["inverso_cache_requests_total{result=\"bypass\"}"], 1.0);
    assert_eq!(m["inverso_cache_requests_total{result=\"stale\"}"], 0.0);
    assert_eq!(
        m["inverso_cache_requests_total{result=\"revalidated\"}"],
        0.0
    );
    assert_eq!(m["inverso_cache_entries"], 1.0);
    assert!(m["inverso_cache_bytes"] > 0.0);
    assert_eq!(m["inverso_cache_capacity_bytes"], (1u64 << 20) as f64);
    assert_eq!(m["inverso_cache_evictions_total"], 0.0);
    assert_eq!(m["inverso_cache_snapshot_duration_seconds_count"], 0.0);
}

#[test]
fn status_is_json_with_targets_and_cache() {
    let a = Backend::echo("a");
    let dead = dead_addr();
    let spare = Backend::echo("spare");
    let proxy = start_proxy(&[a.addr, dead, spare.addr], |c| {
        with_cache(c);
        c.targets[1].weight = 3;
        c.targets[2].backup = true;
        // No retries: the dead target's 502 reaches the client.
        c.retries = Some(0);
    });
    let admin_addr = proxy.handle().admin_addr().unwrap();
    assert_eq!(proxy.connect().get("/x").status, 200);
    assert_eq!(proxy.connect().get("/y").status, 502);
    assert!(wait_until(WAIT_LIMIT, || {
        let s = Json::parse(&admin(admin_addr, "GET", "/status", "127.0.0.1").body_str());
        s.get("requests").num() == 2.0
    }));
    let response = admin(admin_addr, "GET", "/status", "127.0.0.1");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let status = Json::parse(&response.body_str());
    let targets = status.get("targets").arr();
    assert_eq!(targets.len(), 3);
    assert_eq!(targets[0].get("address").str(), a.addr.to_string());
    assert_eq!(targets[0].get("weight").num(), 1.0);
    assert_eq!(targets[0].get("failures").num(), 0.0);
    assert_eq!(targets[0].get("in_flight").num(), 0.0);
    assert_eq!(targets[1].get("address").str(), dead.to_string());
    assert_eq!(targets[1].get("weight").num(), 3.0);
    assert_eq!(targets[1].get("failures").num(), 1.0);
    assert_eq!(targets[1].get("backup"), &Json::Bool(false));
    assert_eq!(targets[2].get("backup"), &Json::Bool(true));
    assert_eq!(targets[2].get("requests").num(), 0.0);
    // One failure (max_fails = 1) takes the dead target out of rotation.
    assert_eq!(targets[0].get("healthy"), &Json::Bool(true));
    assert_eq!(targets[1].get("healthy"), &Json::Bool(false));
    let cache = status.get("cache");
    assert_eq!(cache.get("enabled"), &Json::Bool(true));
    assert_eq!(cache.get("misses").num(), 1.0);
    assert_eq!(cache.get("entries").num(), 0.0); // the echo is not cacheable
    assert_eq!(status.get("shutting_down"), &Json::Bool(false));
}

#[test]
fn the_admin_listener_may_share_the_port_on_the_other_family() {
    if !has_ipv6_loopback() {
        return;
    }
    // `bind = 0.0.0.0` (the default) takes IPv4 alone: `admin_bind = ::1`
    // at its port is another socket, as nginx would bind both.
    let backend = Backend::echo("a");
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let text = format!(
        "targets = {}\nport = {port}\nadmin_bind = ::1\nadmin_port = {port}\n",
        backend.addr
    );
    let mut loader = inverso::config::Loader::new();
    loader.file("proxy.conf", &text).unwrap();
    let mut config = loader.build().unwrap();
    config.log_to_stdout = false;
    config.cache_size = 0;
    config.path_to_persistence = None;
    let handle = inverso::Server::start_on(listener, config).unwrap();
    let admin_addr = handle.admin_addr().unwrap();
    assert_eq!(
        admin_addr,
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))
    );
    assert_eq!(admin(admin_addr, "GET", "/healthz", "[::1]").status, 200);
    let response = Client::connect(SocketAddr::from(([127, 0, 0, 1], port))).get("/");
    assert_eq!(response.header("x-backend"), Some("a"));
    handle.shutdown(Duration::from_secs(1));
}

#[test]
fn healthz_unknown_paths_and_wrong_methods() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], with_admin);
    let admin_addr = proxy.handle().admin_addr().unwrap();
    let ok = admin(admin_addr, "GET", "/healthz", "127.0.0.1");
    assert_eq!((ok.status, ok.body_str().as_str()), (200, "ok\n"));
    assert!(ok.head.has_token("connection", "close"));
    assert_eq!(
        admin(admin_addr, "HEAD", "/healthz", "127.0.0.1").status,
        200
    );
    assert_eq!(admin(admin_addr, "GET", "/nope", "127.0.0.1").status, 404);
    assert_eq!(admin(admin_addr, "POST", "/nope", "127.0.0.1").status, 404);
    for (method, path) in [
        ("POST", "/metrics"),
        ("DELETE", "/status"),
        ("POST", "/cache"),
        ("PUT", "/cache/entries"),
    ] {
        let r = admin(admin_addr, method, path, "127.0.0.1");
        assert_eq!(r.status, 405, "{method} {path}");
        assert!(r.header("allow").is_some(), "{method} {path}");
    }
    // A malformed request is refused, not a crash.
    let mut client = Client::connect(admin_addr);
    client.send(b"GARBAGE\r\n\r\n");
    assert_eq!(client.response().status, 400);
    assert_eq!(a.requests(), 0);
}

#[test]
fn healthz_says_shutting_down_while_requests_drain() {
    // The admin listener serves through the drain: a health checker reads
    // 503, not a refused connection.
    let release = Gate::new();
    let gate = release.clone();
    let a = Backend::start("a", move |_, out| {
        gate.wait();
        respond(out, 200, &[], b"late");
        Action::KeepAlive
    });
    let mut proxy = start_proxy(&[a.addr], with_admin);
    let admin_addr = proxy.handle().admin_addr().unwrap();
    let mut busy = proxy.connect();
    busy.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(wait_until(WAIT_LIMIT, || a.requests() == 1));
    let handle = proxy.take_handle();
    let shutdown = std::thread::spawn(move || handle.shutdown(Duration::from_secs(20)));
    assert!(wait_until(WAIT_LIMIT, || {
        admin(admin_addr, "GET", "/healthz", "127.0.0.1").status == 503
    }));
    let status = admin(admin_addr, "GET", "/status", "127.0.0.1");
    assert!(
        status.body_str().contains("\"shutting_down\":true"),
        "{}",
        status.body_str()
    );
    release.open();
    assert_eq!(busy.response().body, b"late");
    assert!(shutdown.join().unwrap());
}

/// A reload that comes once a drain has begun (one that was reading its
/// file when SIGTERM came) changes nothing: the drain finishes on the
/// settings it began with.
#[test]
fn a_reload_during_a_drain_is_refused() {
    let release = Gate::new();
    let gate = release.clone();
    let a = Backend::start("a", move |_, out| {
        gate.wait();
        respond(out, 200, &[], b"late");
        Action::KeepAlive
    });
    let b = Backend::echo("b");
    let mut proxy = start_proxy(&[a.addr], with_admin);
    let admin_addr = proxy.handle().admin_addr().unwrap();
    let next = proxy.config_for(&[b.addr], with_admin);
    let control = proxy.handle().control();
    let mut busy = proxy.connect();
    busy.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(wait_until(WAIT_LIMIT, || a.requests() == 1));
    let handle = proxy.take_handle();
    let shutdown = std::thread::spawn(move || handle.shutdown(Duration::from_secs(20)));
    assert!(wait_until(WAIT_LIMIT, || {
        admin(admin_addr, "GET", "/healthz", "127.0.0.1").status == 503
    }));
    let refused = control.reload(next);
    assert!(
        matches!(refused, Err(inverso::server::ReloadError::ShuttingDown)),
        "{refused:?}"
    );
    let status = admin(admin_addr, "GET", "/status", "127.0.0.1");
    assert!(status.body_str().contains(&a.addr.to_string()));
    assert!(!status.body_str().contains(&b.addr.to_string()));
    release.open();
    assert_eq!(busy.response().body, b"late");
    assert!(shutdown.join().unwrap());
}

#[test]
fn purge_removes_every_variant_and_only_on_the_admin_port() {
    let origin = cacheable_backend();
    let proxy = start_proxy(&[origin.addr], with_cache);
    let admin_addr = proxy.handle().admin_addr().unwrap();
    for extra in ["Accept-Encoding: gzip\r\n", ""] {
        assert_eq!(
            get_with(&proxy, "/v?q=1", extra).header("x-cache"),
            Some("MISS")
        );
        assert_eq!(
            get_with(&proxy, "/v?q=1", extra).header("x-cache"),
            Some("HIT")
        );
    }
    assert_eq!(
        get_with(&proxy, "/other", "").header("x-cache"),
        Some("MISS")
    );
    assert_eq!(proxy.handle().cache().unwrap().len(), 3);

    // Another host's key is not ours.
    assert_eq!(
        admin(admin_addr, "PURGE", "/v?q=1", "elsewhere.example").status,
        404
    );
    // The Host field names the public host (any case).
    let purged = admin(admin_addr, "PURGE", "/v?q=1", "Test.Example");
    assert_eq!(purged.status, 200, "{}", purged.body_str());
    let body = Json::parse(&purged.body_str());
    assert_eq!(body.get("removed").num(), 2.0);
    assert_eq!(body.get("key").str(), "test.example/v?q=1");
    for extra in ["Accept-Encoding: gzip\r\n", ""] {
        let r = get_with(&proxy, "/v?q=1", extra);
        assert_eq!(r.header("x-cache"), Some("MISS"), "{extra:?}");
    }
    assert_eq!(
        get_with(&proxy, "/other", "").header("x-cache"),
        Some("HIT")
    );
    // An absolute-form target carries its host itself.
    let r = admin(
        admin_addr,
        "PURGE",
        "http://test.example/other",
        "127.0.0.1",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        admin(admin_addr, "PURGE", "/other", "test.example").status,
        404
    );

    // On the public port PURGE is just a method, forwarded to the backend.
    let before = origin.requests();
    let mut client = proxy.connect();
    client.send(b"PURGE /v?q=1 HTTP/1.1\r\nHost: test.example\r\n\r\n");
    assert_eq!(client.response().status, 200);
    assert_eq!(origin.requests(), before + 1);
    assert_eq!(origin.seen().last().unwrap().method(), "PURGE");
}

#[test]
fn delete_cache_drops_everything() {
    let origin = cacheable_backend();
    let proxy = start_proxy(&[origin.addr], with_cache);
    let admin_addr = proxy.handle().admin_addr().unwrap();
    get_with(&proxy, "/a", "");
    get_with(&proxy, "/b", "");
    // A page on a rebound name (its Host) is refused; an address is not.
    for host in ["evil.example", "admin", "evil.example:9901"] {
        assert_eq!(
            admin(admin_addr, "DELETE", "/cache", host).status,
            403,
            "{host}"
        );
    }
    assert_eq!(proxy.handle().cache().unwrap().len(), 2);
    let r = admin(admin_addr, "DELETE", "/cache", &admin_addr.to_string());
    assert_eq!(r.status, 200);
    assert_eq!(Json::parse(&r.body_str()).get("removed").num(), 2.0);
    assert!(proxy.handle().cache().unwrap().is_empty());
    assert_eq!(get_with(&proxy, "/a", "").header("x-cache"), Some("MISS"));
    proxy.handle().cache().unwrap().clear();
    for host in ["localhost", "localhost:9901", "[::1]:9901", "127.0.0.1"] {
        let r = admin(admin_addr, "DELETE", "/cache", host);
        assert_eq!(r.status, 404, "{host}");
        assert_eq!(Json::parse(&r.body_str()).get("removed").num(), 0.0);
    }
}

#[test]
fn an_admin_request_head_trickling_in_gets_408_at_its_deadline() {
    // One byte every 0.7 s: each read comes well within any per-read
    // timeout, the whole head never. The admin listener's deadline (5 s)
    // frees the slot; before it had one, 32 such clients locked it out.
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], with_admin);
    let mut client = Client::connect(proxy.handle().admin_addr().unwrap());
    for byte in b"GET /h" {
        client.send(&[*byte]);
        std::thread::sleep(Duration::from_millis(700));
    }
    let response = client.response();
    assert_eq!(response.status, 408, "{}", response.head.raw);
}

#[test]
fn a_malformed_admin_head_request_gets_its_refusal_without_a_body() {
    // RFC 9110 §9.3.2: no content in answer to a HEAD, refused or not.
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], with_admin);
    let addr = proxy.handle().admin_addr().unwrap();
    for (sent, status) in [
        (
            "HEAD /status HTTP/1.1\r\nHost: x\r\nBad Field: y\r\n\r\n",
            400,
        ),
        ("HEAD /status HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ] {
        let mut client = Client::connect(addr);
        client.send(sent.as_bytes());
        let response = client.head_response();
        assert_eq!(response.status, status, "{sent:?}");
        assert!(response.header("content-length").is_some());
        assert_eq!(client.read_until_closed(), b"", "{sent:?}");
    }
}

#[test]
fn the_admin_listener_is_off_by_default() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    assert_eq!(proxy.handle().admin_addr(), None);
}

// ------------------------------------------------------------ logs

#[test]
fn json_log_lines_with_heads_parse() {
    let a = Backend::echo("a");
    let mut proxy = start_proxy(&[a.addr], |c| {
        c.log_format = LogFormat::Json;
        c.log_headers = true;
    });
    let mut client = proxy.connect();
    client.send(
        b"GET /j?x=\"1\" HTTP/1.1\r\nHost: test.example\r\nUser-Agent: t\"\\\r\nX-Test: yes\r\nAuthorization: Basic YW5uOnNlY3JldA==\r\nProxy_Authorization: hunter two\r\n\r\n",
    );
    assert_eq!(client.response().status, 200);
    client.send(b"GET /k HTTP/1.1\r\n\r\n"); // no Host: refused with 400
    assert_eq!(client.response().status, 400);
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let first = Json::parse(&lines[0]);
    assert_eq!(first.get("request").str(), "GET /j?x=\"1\" HTTP/1.1");
    assert_eq!(first.get("status").num(), 200.0);
    assert_eq!(first.get("client").str(), "127.0.0.1");
    assert_eq!(first.get("user_agent").str(), "t\"\\");
    assert_eq!(first.get("referer"), &Json::Null);
    assert_eq!(first.get("upstream").str(), a.addr.to_string());
    assert_eq!(first.get("cache"), &Json::Null);
    assert!(first.get("duration_ms").num() >= first.get("upstream_ms").num());
    assert!(first.get("time").str().ends_with('Z'));
    assert!(first.get("bytes").num() > 0.0);
    let pairs = |key: &str| -> Vec<(String, String)> {
        first
            .get(key)
            .arr()
            .iter()
            .map(|p| (p.arr()[0].str().to_string(), p.arr()[1].str().to_string()))
            .collect()
    };
    assert!(pairs("request_headers").contains(&("X-Test".into(), "yes".into())));
    // Credentials by their scheme alone; the backend got them whole.
    let credentials = ("Authorization".to_string(), "Basic [redacted]".to_string());
    assert!(pairs("request_headers").contains(&credentials));
    assert!(!lines[0].contains("YW5uOnNlY3JldA"), "{}", lines[0]);
    // Spelled with `_`, and without a scheme: all of it.
    let spelled = ("Proxy_Authorization".to_string(), "[redacted]".to_string());
    assert!(pairs("request_headers").contains(&spelled), "{}", lines[0]);
    assert!(!lines[0].contains("hunter"), "{}", lines[0]);
    assert_eq!(
        a.seen()[0].field_or("authorization", "-"),
        "Basic YW5uOnNlY3JldA=="
    );
    assert!(pairs("response_headers").contains(&("X-Backend".into(), "a".into())));
    let second = Json::parse(&lines[1]);
    assert_eq!(second.get("status").num(), 400.0);
    assert!(second.get("response_headers").arr().len() >= 2);
}

#[test]
fn combined_log_with_heads_stays_one_line_per_request() {
    let a = Backend::echo("a");
    let mut proxy = start_proxy(&[a.addr], |c| c.log_headers = true);
    let mut client = proxy.connect();
    client.send(b"GET /h HTTP/1.1\r\nHost: test.example\r\nX-Test: a\"b\r\n\r\n");
    assert_eq!(client.response().status, 200);
    drop(client);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(r#" request_headers="Host: test.example\x0D\x0AX-Test: a\x22b""#),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("X-Backend: a"), "{}", lines[0]);
}

#[test]
fn access_log_lines_a_full_disk_refuses_are_counted() {
    // /dev/full refuses every write with ENOSPC: serving goes on, and the
    // lost lines show in the metrics.
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| {
        with_admin(c);
        c.path_to_log = Some("/dev/full".into());
    });
    let admin_addr = proxy.handle().admin_addr().expect("admin listener");
    let mut client = proxy.connect();
    for i in 0..50 {
        assert_eq!(client.get(&format!("/{i}")).status, 200);
    }
    // Every line, including those the buffer held when a flush failed.
    assert!(wait_until(WAIT_LIMIT, || {
        scrape(admin_addr)["inverso_access_log_lost_lines_total"] == 50.0
    }));
    assert_eq!(
        admin(admin_addr, "GET", "/healthz", "127.0.0.1").status,
        200
    );
}

#[test]
fn the_log_file_is_reopened_after_a_rename() {
    let a = Backend::echo("a");
    let mut proxy = start_proxy(&[a.addr], |_| {});
    assert_eq!(proxy.connect().get("/before").status, 200);
    let rotated = proxy.log_path.with_extension("log.1");
    // The record is queued before the reopen, so it reaches the old file.
    assert!(wait_until(WAIT_LIMIT, || proxy.log_lines().len() == 1));
    std::fs::rename(&proxy.log_path, &rotated).unwrap();
    proxy.handle().control().reopen_log().unwrap();
    assert!(proxy.log_path.exists());
    assert_eq!(proxy.connect().get("/after").status, 200);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert_eq!(old.lines().count(), 1);
    assert!(old.contains("/before"));
    let new = proxy.log_lines();
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(new[0].contains("/after"));
}

// ------------------------------------------------------------ reload

#[test]
fn reload_swaps_targets_under_load_without_a_failed_request() {
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let proxy = start_proxy(&[a.addr], with_admin);
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let addr = proxy.addr;
    let loaders: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            let failures = failures.clone();
            std::thread::spawn(move || {
                // One keep-alive connection each, held across the reload.
                let mut client = Client::connect(addr);
                let mut sent = 0;
                while !stop.load(Ordering::SeqCst) && sent < 20_000 {
                    client.send(b"GET /load HTTP/1.1\r\nHost: test.example\r\n\r\n");
                    match client.try_response(false) {
                        Ok(r) if r.status == 200 => {}
                        _ => {
                            failures.fetch_add(1, Ordering::SeqCst);
                            client = Client::connect(addr);
                        }
                    }
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    assert!(wait_until(WAIT_LIMIT, || a.requests() >= 50));
    let mut next = proxy_config(&[b.addr]);
    next.connection_timeout = Duration::from_secs(7);
    let reloaded = proxy.handle().control().reload(next).unwrap();
    assert!(
        reloaded.needs_restart.is_empty(),
        "{:?}",
        reloaded.needs_restart
    );
    let a_after = a.requests();
    assert!(wait_until(WAIT_LIMIT, || b.requests() >= 50));
    stop.store(true, Ordering::SeqCst);
    let sent: usize = loaders.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(failures.load(Ordering::SeqCst), 0, "of {sent} requests");
    // Only requests already in flight at the swap may still reach a.
    assert!(a.requests() <= a_after + 4);
    let m = scrape(proxy.handle().admin_addr().unwrap());
    assert_eq!(m["inverso_config_reloads_total{result=\"applied\"}"], 1.0);
    assert!(m.contains_key(&format!(
        "inverso_upstream_requests_total{{target=\"{}\",pool=\"default\"}}",
        b.addr
    )));
}

/// The configuration `start_proxy` builds, for reloads.
fn proxy_config(targets: &[SocketAddr]) -> inverso::Config {
    let mut config = inverso::Config::with_targets(targets.iter().copied().map(target).collect());
    config.log_to_stdout = false;
    config.path_to_persistence = None;
    config.connection_timeout = Duration::from_secs(5);
    config.cache_size = 0;
    config.admin_port = Some(0);
    config
}

#[test]
fn reload_reports_keys_that_need_a_restart_and_keeps_them() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| {
        with_admin(c);
        c.log_headers = false;
    });
    let log = proxy.log_path.clone();
    let mut next = proxy_config(&[a.addr]);
    next.port = 1;
    next.cache_size = 1 << 20;
    next.path_to_log = Some(log);
    next.log_format = LogFormat::Json;
    next.worker_priority = Some(5);
    let reloaded = proxy.handle().control().reload(next).unwrap();
    assert_eq!(
        reloaded.needs_restart,
        ["port", "cache_size", "worker_priority"]
    );
    // The log format changed on the fly; the cache stayed off.
    let r = proxy.connect().get("/after");
    assert_eq!(r.status, 200);
    assert!(r.header("x-cache").is_none());
    assert!(wait_until(WAIT_LIMIT, || proxy
        .log_lines()
        .iter()
        .any(|l| l.starts_with('{') && l.contains("/after"))));
}

/// A proxy whose connection_timeout is an hour, and a client connection
/// that made a request and now waits under it.
fn an_hour_idle() -> (Backend, Proxy, Client) {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| {
        c.connection_timeout = Duration::from_secs(3600)
    });
    let mut idle = proxy.connect();
    assert_eq!(idle.get("/before").status, 200);
    (a, proxy, idle)
}

/// Reloads `proxy` with `connection_timeout` set to each of `timeouts`.
fn reload_timeouts(proxy: &Proxy, a: &Backend, timeouts: &[Duration]) {
    for &timeout in timeouts {
        let mut next = proxy_config(&[a.addr]);
        next.connection_timeout = timeout;
        proxy.handle().control().reload(next).unwrap();
    }
}

#[test]
fn a_reload_that_shortens_connection_timeout_closes_connections_idle_under_the_old_one() {
    let (a, proxy, mut idle) = an_hour_idle();
    reload_timeouts(&proxy, &a, &[Duration::from_millis(300)]);
    // Its read began under an hour's timeout; it ends by the new one.
    assert!(idle.is_closed());
    proxy.assert_becomes_idle();
    assert_eq!(proxy.connect().get("/after").status, 200);
}

/// The shortened timeout the two tests below undo with a second reload.
/// That reload must land before it passes (or the connection is closed
/// under it): seconds are many times what two reloads take on a loaded
/// machine, where a tenth of one was not, one was once not enough with
/// two builds running beside the tests, two once not with three, and
/// three once not with two mutation runs and the whole suite at once.
const UNDONE: Duration = Duration::from_secs(5);

#[test]
fn a_connection_timeout_shortened_then_lengthened_a_little_closes_at_the_longer() {
    let (a, proxy, mut idle) = an_hour_idle();
    // The longer one well past the look below (a loaded machine may look
    // seconds late), still within the client's own read timeout.
    let timeouts = [UNDONE, Duration::from_secs(12)];
    let reloaded = std::time::Instant::now();
    reload_timeouts(&proxy, &a, &timeouts);
    // Not at the first, undone by the second: looked at once it has passed
    // (counted from before the reloads, so slow reloads add no margin).
    std::thread::sleep(
        (reloaded + UNDONE * 3 / 2).saturating_duration_since(std::time::Instant::now()),
    );
    let stream = &idle.reader.stream;
    stream.set_nonblocking(true).unwrap();
    let open =
        matches!(stream.peek(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).unwrap();
    assert!(open, "closed at the first timeout");
    // ...but still shorter than the hour it waits under: closed at that.
    assert!(idle.is_closed());
}

#[test]
fn a_connection_timeout_shortened_then_lengthened_again_closes_nothing() {
    let (a, proxy, mut before) = an_hour_idle();
    let timeouts = [UNDONE, Duration::from_secs(3600)];
    let reloaded = std::time::Instant::now();
    reload_timeouts(&proxy, &a, &timeouts);
    let mut after = proxy.connect();
    assert_eq!(after.get("/after").status, 200);
    // Past the short timeout, which the second reload undid: both
    // connections still serve.
    std::thread::sleep(
        (reloaded + UNDONE * 3 / 2).saturating_duration_since(std::time::Instant::now()),
    );
    assert_eq!(before.get("/before-again").status, 200);
    assert_eq!(after.get("/after-again").status, 200);
}

#[test]
fn a_reload_that_shortens_connection_timeout_closes_nothing_before_the_new_one() {
    let (a, proxy, mut idle) = an_hour_idle();
    let reloaded = Instant::now();
    reload_timeouts(&proxy, &a, &[UNDONE]);
    // A whole exchange on another connection: time for a close asked by
    // the reload to have been done, had it been done at once.
    assert_eq!(proxy.connect().get("/after").status, 200);
    let stream = &idle.reader.stream;
    stream.set_nonblocking(true).unwrap();
    let open =
        matches!(stream.peek(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).unwrap();
    // A machine too loaded to look within the new timeout proves nothing.
    assert!(
        open || reloaded.elapsed() >= UNDONE,
        "closed before the new timeout"
    );
    // ...and closed once it has passed.
    assert!(idle.is_closed());
}

#[test]
fn keepalive_timeout_bounds_the_wait_between_requests_alone() {
    // Shorter than connection_timeout (an hour): the idle connection
    // closes by it, well within the client's own read timeout.
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| {
        c.connection_timeout = Duration::from_secs(3600);
        c.keepalive_timeout = Some(Duration::from_millis(300));
    });
    let mut idle = proxy.connect();
    assert_eq!(idle.get("/before").status, 200);
    assert!(idle.is_closed());

    // Longer (behind a load balancer that keeps its idle connections a
    // minute): past connection_timeout, the connection still serves.
    let proxy = start_proxy(&[a.addr], |c| {
        c.connection_timeout = Duration::from_millis(300);
        c.keepalive_timeout = Some(Duration::from_secs(3600));
    });
    let mut idle = proxy.connect();
    assert_eq!(idle.get("/before").status, 200);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(idle.get("/after").status, 200);
}

#[test]
fn a_connection_idle_past_a_second_still_serves_and_still_closes_at_keepalive_timeout() {
    // After a second with nothing, the wait for the next request gives
    // back the stack below it and goes on for the rest of keepalive_timeout:
    // neither closed when its first part ends nor kept past the whole.
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| {
        c.connection_timeout = Duration::from_secs(3600);
        c.keepalive_timeout = Some(Duration::from_secs(4));
    });
    let mut idle = proxy.connect();
    assert_eq!(idle.get("/before").status, 200);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(idle.get("/after").status, 200);
    assert!(idle.is_closed(), "kept past keepalive_timeout");
    assert_eq!(a.requests(), 2);
}

#[test]
fn a_reload_that_shortens_keepalive_timeout_closes_connections_idle_under_the_old_one() {
    let (a, proxy, mut idle) = an_hour_idle();
    let mut next = proxy_config(&[a.addr]);
    next.connection_timeout = Duration::from_secs(3600);
    next.keepalive_timeout = Some(Duration::from_millis(300));
    proxy.handle().control().reload(next).unwrap();
    assert!(idle.is_closed());
    assert_eq!(proxy.connect().get("/after").status, 200);
}

#[test]
fn a_reload_that_shortens_keepalive_timeout_lets_a_head_already_begun_arrive() {
    // As nginx: keepalive_timeout is the wait for a request's first byte;
    // once the head has begun, client_header_timeout bounds it instead.
    let (a, proxy, mut idle) = an_hour_idle();
    let mut begun = proxy.connect();
    assert_eq!(begun.get("/first").status, 200);
    begun.send(b"GET /second HTTP/1.1\r\n");
    let mut next = proxy_config(&[a.addr]);
    next.connection_timeout = Duration::from_secs(3600);
    next.keepalive_timeout = Some(Duration::from_secs(1));
    proxy.handle().control().reload(next).unwrap();
    // The close has been done once the idle connection is closed.
    assert!(idle.is_closed());
    begun.send(b"Host: test.example\r\n\r\n");
    let response = begun.response();
    assert_eq!(response.status, 200);
    assert_eq!(a.requests(), 3);
}

#[test]
fn a_shorter_close_asked_while_a_longer_one_waits_is_done_first() {
    // Shortened to half an hour, then to 300 ms: the connection idle under
    // the hour is closed 300 ms on, not once the half hour is over.
    let (a, proxy, mut idle) = an_hour_idle();
    for keepalive in [Duration::from_secs(1800), Duration::from_millis(300)] {
        let mut next = proxy_config(&[a.addr]);
        next.connection_timeout = Duration::from_secs(3600);
        next.keepalive_timeout = Some(keepalive);
        proxy.handle().control().reload(next).unwrap();
    }
    assert!(idle.is_closed());
}

/// This process's threads named `name`.
#[cfg(target_os = "linux")]
fn threads_named(name: &str) -> usize {
    (std::fs::read_dir("/proc/self/task").unwrap().flatten())
        .filter(|task| {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            comm.trim_end() == name
        })
        .count()
}

#[cfg(target_os = "linux")]
#[test]
fn reloads_that_shorten_keepalive_timeout_share_one_closing_thread() {
    // An operator switching between two configurations: every other
    // reload shortens keepalive_timeout (600 s to 300 s), each asking for
    // a close 300 s on. One thread waits for them all.
    let a = Backend::echo("a");
    let keepalive = |secs: u64| {
        move |c: &mut inverso::Config| c.keepalive_timeout = Some(Duration::from_secs(secs))
    };
    let mut proxy = start_proxy(&[a.addr], keepalive(600));
    for _ in 0..10 {
        proxy.reload(&[a.addr], keepalive(300));
        proxy.reload(&[a.addr], keepalive(600));
    }
    assert_eq!(proxy.connect().get("/").status, 200);
    // Ten or more with a thread per reload; the other tests here that
    // shorten a timeout (as many as run at once) have one each.
    let closers = threads_named("idle-close");
    assert!((1..10).contains(&closers), "{closers} closing threads");
    assert!(proxy.shutdown(Duration::from_secs(5)));
}

/// The nice value in a /proc/.../stat line.
#[cfg(target_os = "linux")]
fn nice_in(stat: &str) -> i64 {
    // Fields after the parenthesised name: state is field 3, nice 19.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(16).unwrap().parse().unwrap()
}

/// Nice values of this process's threads named `name`.
#[cfg(target_os = "linux")]
fn nice_of_threads(name: &str) -> Vec<i64> {
    let mut nice = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        // A thread may end between the listing and the reads.
        if let (true, Ok(stat)) = (
            comm.trim_end() == name,
            std::fs::read_to_string(task.path().join("stat")),
        ) {
            nice.push(nice_in(&stat));
        }
    }
    nice
}

#[cfg(target_os = "linux")]
#[test]
fn worker_priority_is_the_nice_value_of_the_connection_threads() {
    let own = || nice_in(&std::fs::read_to_string("/proc/thread-self/stat").unwrap());
    let base = own();
    // Lowering the priority needs no privilege; no other test sets it, so a
    // worker at this value is one of this proxy's.
    if base == 19 {
        eprintln!("skipped: the tests run at the lowest priority already");
        return;
    }
    let wanted = (base + 3).min(19);
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| c.worker_priority = Some(wanted as i32));
    assert_eq!(proxy.connect().get("/").status, 200);
    let workers = nice_of_threads("worker");
    assert!(workers.contains(&wanted), "workers at {workers:?}");
    assert_eq!(
        own(),
        base,
        "the thread that started the proxy is untouched"
    );
}

#[test]
fn a_reload_that_cannot_open_its_log_changes_nothing() {
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let proxy = start_proxy(&[a.addr], with_admin);
    let mut next = proxy_config(&[b.addr]);
    next.path_to_log = Some(Path::new("/nonexistent-dir/for/sure/access.log").into());
    assert!(proxy.handle().control().reload(next).is_err());
    assert_eq!(
        proxy.connect().get("/x").body_str(),
        format!("a GET /x len=0 fnv={:016x}", fnv(b""))
    );
    let m = scrape(proxy.handle().admin_addr().unwrap());
    assert_eq!(m["inverso_config_reloads_total{result=\"refused\"}"], 1.0);
}

/// A backend that answers every request `200 ok` on a keep-alive
/// connection, one request for `/hold` only once the test sends on the
/// returned channel, and counts the connections whose other end closed.
/// Its reads wait 30 s, longer than any test waits: a connection it
/// counts was closed by the proxy, not timed out here.
fn holding_backend() -> (
    SocketAddr,
    mpsc::Sender<()>,
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (release, held) = mpsc::channel::<()>();
    let held = Arc::new(std::sync::Mutex::new(held));
    let (requests, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (seen, ended) = (requests.clone(), closed.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(stream) = stream else { continue };
            let (held, seen, ended) = (held.clone(), seen.clone(), ended.clone());
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                let mut writer = stream.try_clone().unwrap();
                let mut reader = Reader::new(stream);
                while let Ok(Some(head)) = reader.read_head() {
                    seen.fetch_add(1, Ordering::SeqCst);
                    if head.start_line.starts_with("GET /hold ") {
                        let _ = held.lock().unwrap().recv_timeout(Duration::from_secs(30));
                    }
                    respond(&mut writer, 200, &[], b"ok");
                }
                ended.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, release, requests, closed)
}

#[test]
fn a_reload_closes_the_idle_backend_connections_of_the_settings_it_replaces() {
    let (addr, release, requests, closed) = holding_backend();
    let proxy = start_proxy(&[addr], |c| {
        c.connection_timeout = Duration::from_secs(60);
    });
    // A request that runs across the reload (a WebSocket, a long
    // download) keeps the old settings alive while it runs.
    let long = {
        let addr = proxy.addr;
        std::thread::spawn(move || Client::connect(addr).get("/hold").status)
    };
    assert!(wait_until(WAIT_LIMIT, || requests.load(Ordering::SeqCst) == 1));
    // Another one leaves its backend connection idle in the old pool.
    assert_eq!(proxy.connect().get("/quick").status, 200);
    assert_eq!(closed.load(Ordering::SeqCst), 0);
    let mut next = proxy_config(&[addr]);
    next.connection_timeout = Duration::from_secs(60);
    proxy.handle().control().reload(next).unwrap();
    // No request will ever take that connection again: it is closed
    // now, not when the long request ends.
    let closed_now = wait_until(WAIT_LIMIT, || closed.load(Ordering::SeqCst) == 1);
    release.send(()).unwrap();
    assert_eq!(long.join().unwrap(), 200);
    assert!(closed_now, "the old pool's idle connection is still open");
    // The long request's connection is not pooled where nobody looks for
    // it either.
    assert!(wait_until(WAIT_LIMIT, || closed.load(Ordering::SeqCst) == 2));
    assert_eq!(proxy.connect().get("/after").status, 200);
}

#[test]
fn idle_backend_connections_are_closed_at_their_age_while_clients_keep_connecting() {
    let (addr, _release, _requests, closed) = holding_backend();
    let proxy = start_proxy(&[addr], |c| {
        c.connection_timeout = Duration::from_secs(1);
    });
    assert_eq!(proxy.connect().get("/quick").status, 200);
    // New connections come faster than a waiting worker's accept times
    // out (the connection_timeout too): no quiet moment, and nothing is
    // asked of the backend, so no request finds its connection stale.
    let deadline = Instant::now() + WAIT_LIMIT;
    while closed.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        let mut client = proxy.connect();
        client.send(b"NOT HTTP\r\n\r\n");
        assert_eq!(client.response().status, 400);
        drop(client);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        closed.load(Ordering::SeqCst),
        1,
        "a connection idle past connection_timeout is still pooled"
    );
}

// ------------------------------------------------------------ shutdown

/// A cache kept in `snapshot`, whose timer never fires during a test:
/// only shutdown writes it.
fn snapshotting(snapshot: &std::path::Path) -> impl Fn(&mut inverso::Config) + '_ {
    move |c| {
        c.cache_size = 1 << 20;
        c.unit_time = Duration::from_secs(3600);
        c.path_to_persistence = Some(snapshot.to_path_buf());
    }
}

#[test]
fn shutdown_writes_the_final_snapshot() {
    let origin = cacheable_backend();
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("cache.bin");
    let settings = snapshotting(&snapshot);
    let mut first = start_proxy(&[origin.addr], &settings);
    assert_eq!(
        get_with(&first, "/kept", "").header("x-cache"),
        Some("MISS")
    );
    assert!(!snapshot.exists());
    assert!(first.shutdown(Duration::from_secs(5)));
    assert!(snapshot.exists());
    let second = start_proxy(&[origin.addr], &settings);
    assert_eq!(
        get_with(&second, "/kept", "").header("x-cache"),
        Some("HIT")
    );
    assert_eq!(origin.requests(), 1);
}

#[test]
fn an_admin_purge_during_shutdown_is_in_the_final_snapshot_or_refused() {
    // An admin connection accepted before the shutdown, its request sent
    // during it: a `DELETE /cache` answered 200 must not come back at the
    // next start.
    let origin = cacheable_backend();
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("cache.bin");
    let settings = |c: &mut inverso::Config| {
        snapshotting(&snapshot)(c);
        c.admin_port = Some(0);
    };
    let mut first = start_proxy(&[origin.addr], settings);
    assert_eq!(
        get_with(&first, "/kept", "").header("x-cache"),
        Some("MISS")
    );
    let mut purge = Client::connect(first.handle().admin_addr().unwrap());
    // Let the admin listener accept it; its request comes during the
    // shutdown.
    std::thread::sleep(Duration::from_millis(200));
    let purging = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        purge.send(b"DELETE /cache HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        purge.try_response(false).map(|r| r.status)
    });
    assert!(first.shutdown(Duration::from_secs(5)));
    let answered = purging.join().unwrap();
    let second = start_proxy(&[origin.addr], settings);
    let next = get_with(&second, "/kept", "");
    // Sent after the shutdown began, it is answered as the snapshot has it:
    // 200 and gone (had the shutdown taken longer), or 503 and kept (or,
    // on a machine so loaded that the connection was still waiting to be
    // accepted when the listener closed, reset, and kept).
    match answered {
        Ok(200) => assert_eq!(next.header("x-cache"), Some("MISS"), "purged, yet back"),
        Ok(503) | Err(_) => assert_eq!(next.header("x-cache"), Some("HIT"), "refused, yet gone"),
        Ok(other) => panic!("{other}"),
    }
}

#[test]
fn path_to_log_may_not_be_path_to_persistence() {
    // Taken, each file destroys the other: every snapshot is renamed over
    // the log (whose lines go on into the unlinked file), and
    // a reopen (SIGUSR1) appends log lines to the snapshot.
    let message = config_error(
        "targets = 127.0.0.1:1\ncache_size = 1MiB\npath_to_log = run/f\npath_to_persistence = ./run/f\n",
    );
    assert!(message.contains("path_to_log: "), "{message}");
    assert!(message.contains("is also path_to_persistence"), "{message}");
    // Nor at a reload, against the snapshot kept until a restart.
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("cache.bin");
    let proxy = start_proxy(&[], |c| {
        c.cache_size = 1 << 20;
        c.path_to_persistence = Some(snapshot.clone());
    });
    let mut next = proxy.config_for(&[], |c| {
        c.cache_size = 1 << 20;
        c.path_to_persistence = Some(snapshot.clone());
    });
    next.path_to_log = Some(snapshot.clone());
    let refused = proxy.handle().control().reload(next);
    assert!(
        refused.is_err(),
        "a reload logging to the snapshot is taken"
    );
}

// ------------------------------------------------------------ the binary

/// `inverso --config proxy.conf` in `dir`, with stderr lines on a channel.
struct Running {
    child: Child,
    stderr: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(dir: &Path) -> Running {
        Running::start_with(dir, |_| {})
    }

    fn start_with(dir: &Path, adjust: impl FnOnce(&mut Command)) -> Running {
        let mut command = Command::new(env!("CARGO_BIN_EXE_inverso"));
        adjust(&mut command);
        command.args(["--config", "proxy.conf"]);
        Running::spawn(command, dir)
    }

    /// Runs `command` in `dir`, with no `INVERSO_*` variable of the
    /// test's environment.
    fn spawn(mut command: Command, dir: &Path) -> Running {
        command
            .current_dir(dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars() {
            if name.starts_with("INVERSO_") {
                command.env_remove(name);
            }
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            stderr: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `text`; returns it.
    fn expect(&mut self, text: &str) -> String {
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!("no {text:?} on stderr; saw {:#?}", self.seen),
            }
        }
    }

    /// Sends the signal `name` (`HUP`, `TERM`, `USR1`, `INT`) to the
    /// process, as `kill -NAME` would, without needing that program.
    fn signal(&self, name: &str) {
        let signal = match name {
            "HUP" => libc::SIGHUP,
            "TERM" => libc::SIGTERM,
            "USR1" => libc::SIGUSR1,
            "INT" => libc::SIGINT,
            _ => panic!("no signal {name} here"),
        };
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill -{name}");
    }

    fn wait_exit(&mut self) -> Option<i32> {
        self.wait_status().code()
    }

    fn wait_status(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the process did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the process to exit, and fails with how it exited (a
    /// code or a signal) and all it wrote unless it exited with 0.
    #[track_caller]
    fn assert_exits_cleanly(&mut self) {
        let status = self.wait_status();
        if status.code() != Some(0) {
            // Its end of the pipe is closed: the reader thread ends soon.
            while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(1)) {
                self.seen.push(line);
            }
            panic!(
                "the process exited with {status}; it wrote {:#?}",
                self.seen
            );
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn address_after(line: &str, marker: &str) -> SocketAddr {
    let text = line.split(marker).nth(1).unwrap().trim();
    let port: u16 = text.rsplit(':').next().unwrap().parse().unwrap();
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn conf(targets: SocketAddr, extra: &str) -> String {
    format!(
        "bind = 127.0.0.1\nport = 0\nadmin_port = 0\ntargets = {targets}\ncache_size = 0\npath_to_persistence =\npath_to_log = access.log\n{extra}"
    )
}

/// A small file is read whole before its answer goes: one found shorter
/// than its size then was answered 500 without a word, and logged as if
/// all had gone well. It is said, with its path and sizes, as a file
/// found cut while it is sent is, and logged `PH`: the proxy would not
/// send what it had of it. A kernel file stands for a file cut between
/// its opening and its reading: sysfs says 4096 bytes of each, and has a
/// few.
#[test]
fn a_small_file_found_shorter_than_its_size_is_said_and_logged_ph() {
    let cpus = Path::new("/sys/devices/system/cpu");
    let size = std::fs::metadata(cpus.join("online")).map(|m| m.len());
    let content = std::fs::read(cpus.join("online")).map(|c| c.len() as u64);
    let (Ok(size), Ok(content)) = (size, content) else {
        eprintln!("no sysfs here: nothing to serve short");
        return;
    };
    assert!(content < size && size <= 32 * 1024, "{content} of {size}");
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "log_format = $status $termination\nroute./cpu/ = files {}\n",
        cpus.display()
    );
    std::fs::write(dir.path().join("proxy.conf"), conf(dead_addr(), &extra)).unwrap();
    let mut running = Running::start(dir.path());
    let addr = address_after(&running.expect("listening on "), "listening on ");
    let response = one_request(addr, b"GET /cpu/online HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(response.status, 500);
    let said = running.expect("the file was truncated");
    let sizes = format!("({content} of {size} bytes read");
    assert!(
        said.contains("/sys/devices/system/cpu/online") && said.contains(&sizes),
        "{said}"
    );
    running.signal("TERM");
    running.assert_exits_cleanly();
    let log = std::fs::read_to_string(dir.path().join("access.log")).unwrap();
    assert_eq!(log.lines().collect::<Vec<_>>(), ["500 PH"]);
}

/// Every line of the process's stderr once it has exited: read to the
/// end of the pipe, which the reading thread may not have reached yet
/// when the exit is seen (lines left out would pass for lines never said).
fn stderr_after_exit(running: &mut Running) -> Vec<String> {
    let mut lines = std::mem::take(&mut running.seen);
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match running.stderr.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => return lines,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("stderr never ended: {lines:#?}"),
        }
    }
}

/// A file the proxy may not read is 403, as nginx's, and no longer a
/// silent `LR`: the proxy's failure before any head (`PH`), said on stderr
/// with the file's path, once a minute rather than at every request. A
/// test run as root is refused by no mode bits: a sysfs attribute that
/// can only be written is refused to root too (`EACCES`, the kernel's
/// check, not the mode's).
#[test]
fn a_file_the_proxy_may_not_read_is_403_said_once_and_logged_ph() {
    let dir_of = Path::new("/sys/bus/platform");
    let refused = std::fs::File::open(dir_of.join("drivers_probe")).map_err(|e| e.kind());
    if refused.as_ref().err() != Some(&io::ErrorKind::PermissionDenied) {
        eprintln!("no write-only sysfs attribute here ({refused:?}): nothing to refuse");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "log_format = $status $termination\nroute./bus/ = files {}\n",
        dir_of.display()
    );
    std::fs::write(dir.path().join("proxy.conf"), conf(dead_addr(), &extra)).unwrap();
    let mut running = Running::start(dir.path());
    let addr = address_after(&running.expect("listening on "), "listening on ");
    let mut client = Client::connect(addr);
    for _ in 0..3 {
        assert_eq!(client.get("/bus/drivers_probe").status, 403);
    }
    // A missing one is answered as before, and said nowhere.
    assert_eq!(client.get("/bus/nothing").status, 404);
    let said = running.expect("opening the file failed");
    assert!(
        said.contains("/sys/bus/platform/drivers_probe") && said.contains("answered 403"),
        "{said}"
    );
    drop(client);
    running.signal("TERM");
    running.assert_exits_cleanly();
    let said = stderr_after_exit(&mut running);
    let times = said
        .iter()
        .filter(|l| l.contains("opening the file failed"));
    assert_eq!(times.count(), 1, "{said:#?}");
    let log = std::fs::read_to_string(dir.path().join("access.log")).unwrap();
    let lines = ["403 PH", "403 PH", "403 PH", "404 LR"];
    assert_eq!(log.lines().collect::<Vec<_>>(), lines);
}

/// The descriptors `pid` holds open, and what each is open on.
fn open_fds(pid: u32) -> Vec<(u64, PathBuf)> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap();
    fds.filter_map(|e| {
        let e = e.ok()?;
        Some((
            e.file_name().to_str()?.parse().ok()?,
            std::fs::read_link(e.path()).ok()?,
        ))
    })
    .collect()
}

/// `pid`'s limit on open files.
fn open_files_limit(pid: u32) -> libc::rlimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let pid = libc::pid_t::try_from(pid).unwrap();
    // SAFETY: prlimit(2) writes `limit`, a live `rlimit` of ours.
    let got = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut limit) };
    assert_eq!(got, 0, "{}", io::Error::last_os_error());
    limit
}

fn set_open_files_limit(pid: u32, limit: libc::rlimit) {
    let pid = libc::pid_t::try_from(pid).unwrap();
    // SAFETY: prlimit(2) reads `limit`, a live `rlimit` of ours.
    let set = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &limit, std::ptr::null_mut()) };
    assert_eq!(set, 0, "{}", io::Error::last_os_error());
}

/// A file that cannot be opened for want of descriptors is 500, as
/// nginx's, logged as the proxy's resource run out (`RH`), not a silent
/// `LR`, and said with the file's path. The process's limit on open
/// files is lowered to what it holds, between two requests on one
/// connection, then put back.
#[test]
fn a_file_not_opened_for_want_of_descriptors_is_500_said_and_logged_rh() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("a.txt"), "a").unwrap();
    let extra = format!(
        "log_format = $status $termination\nroute./f/ = files {}\n",
        site.display()
    );
    std::fs::write(dir.path().join("proxy.conf"), conf(dead_addr(), &extra)).unwrap();
    let mut running = Running::start(dir.path());
    let addr = address_after(&running.expect("listening on "), "listening on ");
    // The admin listener starts after the port serves, with a descriptor
    // of its own: the limit is lowered once it has it (a loaded machine
    // once lowered it first, and the start failed).
    running.expect("admin listener on");
    let mut client = Client::connect(addr);
    assert_eq!(client.get("/f/a.txt").status, 200);
    let pid = running.child.id();
    // The file is closed once it is sent, maybe after the client has it.
    let file = site.join("a.txt");
    assert!(wait_until(WAIT_LIMIT, || open_fds(pid)
        .iter()
        .all(|(_, on)| *on != file)));
    // Its next descriptor would be its lowest free one: none is.
    let held: Vec<u64> = open_fds(pid).into_iter().map(|(fd, _)| fd).collect();
    let lowest_free = (0..).find(|n| !held.contains(n)).unwrap();
    let was = open_files_limit(pid);
    let none_more = libc::rlimit {
        rlim_cur: lowest_free,
        ..was
    };
    set_open_files_limit(pid, none_more);
    let r = client.get("/f/a.txt");
    set_open_files_limit(pid, was);
    assert_eq!(r.status, 500, "{}", r.head.raw);
    let said = running.expect("opening the file failed");
    assert!(
        said.contains(&site.join("a.txt").display().to_string()) && said.contains("answered 500"),
        "{said}"
    );
    drop(client);
    running.signal("TERM");
    running.assert_exits_cleanly();
    let log = std::fs::read_to_string(dir.path().join("access.log")).unwrap();
    assert_eq!(log.lines().collect::<Vec<_>>(), ["200 --", "500 RH"]);
}

#[test]
fn a_reload_that_finds_the_start_up_file_gone_is_refused() {
    // Started on the default proxy.conf (not named), targets on the
    // command line: a SIGHUP while the file is away (replaced by a tool
    // that deletes, then writes) must not run on the defaults, dropping
    // what the file said (rate_limit, real_ip_from, ...) without a word.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.conf");
    std::fs::write(
        &file,
        "bind = 127.0.0.1\nport = 0\npath_to_persistence =\nrate_limit = 10/s\n",
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_inverso"));
    command.args(["--targets", "127.0.0.1:9"]);
    let mut running = Running::spawn(command, dir.path());
    running.expect("listening on ");
    std::fs::remove_file(&file).unwrap();
    running.signal("HUP");
    let refused = running.expect("reload refused");
    assert!(refused.contains("proxy.conf"), "{refused}");
    assert!(
        !running
            .seen
            .iter()
            .any(|l| l.contains("new configuration in force")),
        "{:#?}",
        running.seen
    );
    running.signal("TERM");
    running.assert_exits_cleanly();
}

/// SIGHUP while the DNS server the test plays has lost an `srv:` name's
/// records: the reload is taken (`refuse`, the default), the name keeps
/// the addresses it had, and the warning names it and the error.
#[test]
fn sighup_while_a_name_does_not_resolve_keeps_its_last_addresses() {
    const SRV: &str = "_http._tcp.app.test";
    let a = Backend::echo("a");
    let dns = support::srv_dns::SrvDns::start();
    dns.host("node.test", std::net::Ipv4Addr::LOCALHOST);
    dns.set(SRV, &[(10, 1, a.addr.port(), "node.test")]);
    let dir = tempfile::tempdir().unwrap();
    let file = |extra: &str| {
        let text = format!(
            "bind = 127.0.0.1\nport = 0\ncache_size = 0\npath_to_persistence =\n\
             resolver = {}\ntargets = srv:{SRV}\n{extra}",
            dns.addr
        );
        std::fs::write(dir.path().join("proxy.conf"), text).unwrap();
    };
    file("");
    let mut running = Running::start(dir.path());
    let addr = address_after(&running.expect("listening on "), "listening on ");
    let served = || one_request(addr, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(served().header("x-backend"), Some("a"));

    dns.set(SRV, &[]);
    file("connect_timeout = 3s\n");
    running.signal("HUP");
    let warned = running.expect("as before this reload");
    assert!(
        warned.contains(&format!("target srv:{SRV} does not resolve: "))
            && warned.contains(&format!("it stays at {}", a.addr)),
        "{warned}"
    );
    running.expect("new configuration in force");
    assert_eq!(served().header("x-backend"), Some("a"));
    running.signal("TERM");
    running.assert_exits_cleanly();
}

#[test]
fn sighup_reads_the_error_pages_again_and_a_bad_one_refuses_the_reload() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("errors")).unwrap();
    let page = dir.path().join("errors/502.html");
    std::fs::write(&page, "<p>first</p>").unwrap();
    std::fs::write(
        dir.path().join("proxy.conf"),
        conf(dead_addr(), "error_pages = errors\n"),
    )
    .unwrap();
    let mut running = Running::start(dir.path());
    let addr = address_after(&running.expect("listening on "), "listening on ");
    let get = || one_request(addr, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(get().body_str(), "<p>first</p>");

    std::fs::write(&page, "<p>second</p>").unwrap();
    running.signal("HUP");
    running.expect("new configuration in force");
    assert_eq!(get().body_str(), "<p>second</p>");

    // Too large: refused, naming the file; the pages in memory stay.
    std::fs::write(&page, vec![b'x'; 64 * 1024 + 1]).unwrap();
    running.signal("HUP");
    let refused = running.expect("reload refused");
    assert!(refused.contains("errors/502.html"), "{refused}");
    assert_eq!(get().body_str(), "<p>second</p>");
    running.signal("TERM");
    running.assert_exits_cleanly();
}

#[test]
fn a_reload_that_turns_the_cache_off_is_checked_with_the_cache_kept_on() {
    // `cache_size` waits for a restart: the file's other cache settings
    // would run with the cache that stays, and are checked so.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.conf");
    let with_cache = conf(dead_addr(), "").replace("cache_size = 0", "cache_size = 1MiB");
    std::fs::write(&file, &with_cache).unwrap();
    let mut running = Running::start(dir.path());
    running.expect("listening on ");
    let without = conf(
        dead_addr(),
        "sticky_cookie = SERVERID\ncache_bypass_cookies = SERVERID\n",
    );
    std::fs::write(&file, without).unwrap();
    running.signal("HUP");
    let refused = running.expect("reload refused");
    assert!(
        refused.contains("proxy.conf:9: cache_bypass_cookies"),
        "{refused}"
    );
    // Taken with the cache on or off where they agree.
    std::fs::write(&file, conf(dead_addr(), "sticky_cookie = SERVERID\n")).unwrap();
    running.signal("HUP");
    running.expect("`cache_size` changed");
    running.expect("new configuration in force");
    running.signal("TERM");
    running.assert_exits_cleanly();
}

#[test]
fn a_proxy_started_without_a_cache_takes_a_reload_only_a_cache_would_refuse() {
    // The check with the cache kept on is for a cache that runs: one
    // started off stays off, and settings that only conflict with a
    // cache are taken.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.conf");
    std::fs::write(&file, conf(dead_addr(), "")).unwrap();
    let mut running = Running::start(dir.path());
    running.expect("listening on ");
    let conflicting = conf(
        dead_addr(),
        "sticky_cookie = SERVERID\ncache_bypass_cookies = SERVERID\n",
    );
    std::fs::write(&file, conflicting).unwrap();
    running.signal("HUP");
    running.expect("new configuration in force");
    running.signal("TERM");
    running.assert_exits_cleanly();
}

#[test]
fn signals_reload_refuse_reopen_and_stop_the_binary() {
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.conf");
    std::fs::write(&file, conf(a.addr, "")).unwrap();
    let mut running = Running::start(dir.path());
    let addr = address_after(&running.expect("listening on "), "listening on ");
    let admin_addr = address_after(&running.expect("admin listener on "), "admin listener on ");
    assert_eq!(
        one_request(addr, b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n").header("x-backend"),
        Some("a")
    );

    // A bad file is refused with its file:line, and a keeps serving.
    std::fs::write(&file, conf(b.addr, "prot = 1\n")).unwrap();
    running.signal("HUP");
    let refused = running.expect("reload refused");
    assert!(refused.contains("proxy.conf:8"), "{refused}");
    assert_eq!(
        one_request(addr, b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n").header("x-backend"),
        Some("a")
    );

    // A good one is applied; a changed port is reported, not applied.
    std::fs::write(
        &file,
        conf(b.addr, "").replacen("port = 0\n", "port = 1\n", 1),
    )
    .unwrap();
    running.signal("HUP");
    running.expect("`port` changed");
    running.expect("new configuration in force");
    assert_eq!(
        one_request(addr, b"GET /3 HTTP/1.1\r\nHost: h\r\n\r\n").header("x-backend"),
        Some("b")
    );
    let m = scrape(admin_addr);
    assert_eq!(m["inverso_config_reloads_total{result=\"refused\"}"], 1.0);
    assert_eq!(m["inverso_config_reloads_total{result=\"applied\"}"], 1.0);

    // SIGUSR1 after logrotate's rename.
    let log = dir.path().join("access.log");
    assert!(wait_until(WAIT_LIMIT, || std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .count()
        == 3));
    std::fs::rename(&log, dir.path().join("access.log.1")).unwrap();
    running.signal("USR1");
    running.expect("access log reopened");
    assert_eq!(
        one_request(addr, b"GET /4 HTTP/1.1\r\nHost: h\r\n\r\n").status,
        200
    );

    // SIGTERM: a clean exit that flushes the log, with no lost line to
    // tell of.
    running.signal("TERM");
    running.assert_exits_cleanly();
    let said = stderr_after_exit(&mut running);
    assert!(!said.iter().any(|l| l.contains("lines lost")), "{said:#?}");
    let new = std::fs::read_to_string(&log).unwrap();
    assert_eq!(new.lines().count(), 1, "{new}");
    assert!(new.contains("GET /4"));
}

#[test]
fn a_second_sigterm_exits_at_once_and_sighup_no_longer_reloads() {
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Arc::new(std::sync::Mutex::new(release_rx));
    let slow = Backend::start("slow", move |_, out| {
        // Holds the request until the test ends (or the I/O timeout).
        let _ = release_rx.lock().unwrap().recv_timeout(IO_TIMEOUT);
        respond(out, 200, &[], b"late");
        Action::Close
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("proxy.conf"),
        conf(
            slow.addr,
            "shutdown_timeout = 1h\nconnection_timeout = 1h\n",
        ),
    )
    .unwrap();
    let mut running = Running::start(dir.path());
    let addr = address_after(&running.expect("listening on "), "listening on ");
    let mut client = Client::connect(addr);
    client.send(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(wait_until(WAIT_LIMIT, || slow.requests() == 1));
    running.signal("TERM");
    running.expect("shutting down");
    // A drain finishes on the settings it began with.
    running.signal("HUP");
    running.expect("SIGHUP: shutting down, not reloading");
    running.signal("TERM");
    assert_eq!(running.wait_exit(), Some(1));
    drop(release_tx);
}

/// A reload that cannot finish (here: its state file's directory locked
/// by another process; as well a name lookup that hangs) must not take
/// the stop signals with it: the shutdown begins, and a second signal
/// exits at once.
#[test]
fn a_stop_signal_during_a_reload_that_hangs_is_heard() {
    use std::os::fd::AsRawFd;
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.conf");
    std::fs::write(&file, conf(a.addr, "state_file = states\n")).unwrap();
    let mut running = Running::start(dir.path());
    running.expect("listening on ");
    let admin_addr = address_after(&running.expect("admin listener on "), "admin listener on ");
    // Held by the test until it ends: the reload's write of the state
    // file waits for it, its new settings in force.
    let held = std::fs::File::open(dir.path()).unwrap();
    // SAFETY: flock on a descriptor this test owns, open for the call.
    assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
    std::fs::write(&file, conf(b.addr, "state_file = states\n")).unwrap();
    running.signal("HUP");
    assert!(wait_until(WAIT_LIMIT, || {
        let status = admin(admin_addr, "GET", "/status", "127.0.0.1");
        status.body_str().contains(&b.addr.to_string())
    }));
    running.signal("TERM");
    running.expect("shutting down (send it again");
    running.signal("TERM");
    assert_eq!(running.wait_exit(), Some(1));
    drop(held);
}

/// Why a reload was refused quotes what the file says, a path with a NUL
/// or an escape sequence in it too: systemd ignores a notification with
/// a NUL in it (its READY=1 with it), and neither the log line nor
/// `systemctl status` may pass the escape on to a terminal.
#[test]
fn a_refused_reload_quoting_control_characters_is_told_safely() {
    use std::os::unix::net::UnixDatagram;
    let a = Backend::echo("a");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.conf");
    std::fs::write(&file, conf(a.addr, "")).unwrap();
    let socket = dir.path().join("notify");
    let systemd = UnixDatagram::bind(&socket).unwrap();
    systemd.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
    let heard = || {
        let mut buf = [0u8; 2048];
        let n = systemd.recv(&mut buf).expect("no notification came");
        buf[..n].to_vec()
    };
    let mut running = Running::start_with(dir.path(), |c| {
        c.env("NOTIFY_SOCKET", &socket);
    });
    running.expect("listening on ");
    assert!(heard().starts_with(b"READY=1\n"));
    std::fs::write(
        &file,
        conf(a.addr, "").replace("access.log", "log\0s\x1b[2J/access.log"),
    )
    .unwrap();
    running.signal("HUP");
    assert!(heard().starts_with(b"RELOADING=1\n"));
    let told = heard();
    let text = String::from_utf8_lossy(&told);
    assert!(
        text.starts_with("READY=1\nSTATUS=reload refused: "),
        "{text}"
    );
    assert!(!told.contains(&0) && !told.contains(&0x1b), "{text:?}");
    let line = running.expect("reload refused");
    assert!(!line.contains(['\0', '\x1b']), "{line:?}");
    assert!(line.contains("log\\u{0}s\\u{1b}[2J"), "{line}");
    running.signal("TERM");
    running.assert_exits_cleanly();
}

#[test]
fn upstream_counters_agree_with_what_the_backend_saw_when_a_pooled_connection_dies() {
    // The backend reads a request on a pooled connection and drops the
    // connection without a word: a GET is sent again on a fresh one (both
    // counted), a POST is not (502, and no failure held against it).
    let dropped_once = AtomicBool::new(false);
    let a = Backend::start("a", move |seen, out| {
        let drop_it = seen.method() == "POST"
            || (seen.path() == "/again" && !dropped_once.swap(true, Ordering::SeqCst));
        if drop_it {
            return Action::Close;
        }
        respond(out, 200, &[], b"a");
        Action::KeepAlive
    });
    let proxy = start_proxy(&[a.addr], |c| {
        with_admin(c);
        c.retries = Some(0);
    });
    let admin_addr = proxy.handle().admin_addr().unwrap();
    let mut client = proxy.connect();
    assert_eq!(client.get("/warm").status, 200);
    assert_eq!(client.get("/again").status, 200);
    assert_eq!(client.post("/charge", b"abc").status, 502);
    assert_eq!(a.requests(), 4);
    let m = scrape(admin_addr);
    let target = format!("{{target=\"{}\",pool=\"default\"}}", a.addr);
    assert_eq!(m[&format!("inverso_upstream_requests_total{target}")], 4.0);
    assert_eq!(m[&format!("inverso_upstream_failures_total{target}")], 0.0);
}

#[test]
fn writes_past_the_file_size_limit_fail_without_killing_the_process() {
    // `ulimit -f` smaller than the snapshot and than the access log: the
    // writes must fail (and be reported, at exit too), not raise SIGXFSZ,
    // whose default action ends the process.
    let body = pattern(200 * 1024);
    let origin = Backend::start("origin", move |seen, out| {
        let body = if seen.path() == "/big" {
            &body[..]
        } else {
            b"small"
        };
        respond(out, 200, &[("Cache-Control", "max-age=600")], body);
        Action::KeepAlive
    });
    let dir = tempfile::tempdir().unwrap();
    let settings = "cache_size = 4MiB\npath_to_persistence = cache.bin\nunit_time = 100ms\n";
    std::fs::write(
        dir.path().join("proxy.conf"),
        conf(origin.addr, settings).replace("cache_size = 0\npath_to_persistence =\n", ""),
    )
    .unwrap();
    let mut running = Running::start_with(dir.path(), |command| {
        use std::os::unix::process::CommandExt;
        // SAFETY: only setrlimit, async-signal-safe, runs between fork
        // and exec.
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 64 * 1024,
                    rlim_max: 64 * 1024,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let addr = address_after(&running.expect("listening on "), "listening on ");
    let request = b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_eq!(one_request(addr, request).status, 200);
    running.expect("File too large");
    // Still serving, from the cache.
    assert_eq!(one_request(addr, request).header("x-cache"), Some("HIT"));
    // More access-log lines than the limit lets through.
    let mut client = Client::connect(addr);
    for i in 0..600 {
        assert_eq!(client.get(&format!("/small{}", i % 10)).status, 200);
    }
    drop(client);
    running.signal("TERM");
    // Both said at exit, though their warnings were said less than a
    // minute before.
    running.expect("the final snapshot was not written");
    running.expect("lines lost while this process ran");
    running.assert_exits_cleanly();
}

#[test]
fn a_purge_says_on_stderr_what_it_did_to_the_entries() {
    // The operator reads there whether a purge removed the entries or,
    // soft, only marked them stale.
    let origin = Backend::start("origin", |_, out| {
        respond(out, 200, &[("Cache-Control", "max-age=600")], b"body");
        Action::KeepAlive
    });
    let dir = tempfile::tempdir().unwrap();
    let settings = conf(origin.addr, "").replace("cache_size = 0\n", "cache_size = 1MiB\n");
    std::fs::write(dir.path().join("proxy.conf"), settings).unwrap();
    let mut running = Running::start(dir.path());
    let addr = address_after(&running.expect("listening on "), "listening on ");
    let admin_addr = address_after(&running.expect("admin listener on "), "admin listener on ");
    let get = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    one_request(addr, get);
    assert_eq!(one_request(addr, get).header("x-cache"), Some("HIT"));
    for (soft, said) in [("1", "admin: soft purge "), ("0", "admin: purge ")] {
        let purge = format!("PURGE /a HTTP/1.1\r\nHost: h\r\nSoft-Purge: {soft}\r\n\r\n");
        assert_eq!(one_request(admin_addr, purge.as_bytes()).status, 200);
        let line = running.expect(said);
        let done = if soft == "1" {
            "marked stale"
        } else {
            "removed"
        };
        assert!(line.ends_with(&format!(": 1 entries {done}")), "{line}");
    }
    running.signal("TERM");
    running.assert_exits_cleanly();
}

/// Threads of process `pid` (from /proc).
fn threads_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
    line["Threads:".len()..].trim().parse().unwrap()
}

/// [`threads_of`] once the number holds still for 100 ms (at most 5 s):
/// under load a thread of start-up may still be on its way in or out.
fn settled_threads_of(pid: u32) -> u64 {
    let mut last = threads_of(pid);
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let now = threads_of(pid);
        if now == last {
            break;
        }
        last = now;
    }
    last
}

#[test]
fn at_the_thread_limit_new_connections_get_503_and_the_admin_still_answers() {
    // RLIMIT_NPROC counts a user's threads, and binds only a user without
    // CAP_SYS_RESOURCE: the binary runs as an otherwise unused one, chosen by
    // the test's process id so that two suites run at once (two clones on one
    // machine) do not count each other's threads.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to run the proxy as another user");
        return;
    }
    let a = Backend::echo("a");
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(dir.path().join("proxy.conf"), conf(a.addr, "")).unwrap();
    let unused_id = 50_000 + std::process::id() % 10_000;
    let as_other_user = |threads: Option<u64>| {
        Running::start_with(dir.path(), move |command| {
            use std::os::unix::process::CommandExt;
            command.uid(unused_id).gid(unused_id);
            if let Some(threads) = threads {
                // SAFETY: only setrlimit, async-signal-safe, runs between
                // fork and exec (after the uid is set).
                unsafe {
                    command.pre_exec(move || {
                        let limit = libc::rlimit {
                            rlim_cur: threads,
                            rlim_max: threads,
                        };
                        if libc::setrlimit(libc::RLIMIT_NPROC, &limit) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
            }
        })
    };
    // The threads it runs once a first client is served (the worker that
    // serves it starts another to accept meanwhile), counted on a first
    // run: the limit, so that the second client's worker cannot.
    let mut first = as_other_user(None);
    let first_addr = address_after(&first.expect("listening on "), "listening on ");
    first.expect("admin listener on ");
    assert_eq!(Client::connect(first_addr).get("/count").status, 200);
    let threads = settled_threads_of(first.child.id());
    first.signal("TERM");
    first.assert_exits_cleanly();
    let mut running = as_other_user(Some(threads));
    let addr = address_after(&running.expect("listening on "), "listening on ");
    let admin_addr = address_after(&running.expect("admin listener on "), "admin listener on ");
    // Said at start-up, before any client finds out.
    let warned = format!("at most {threads} threads may run");
    assert!(
        running.seen.iter().any(|l| l.contains(&warned)),
        "{:#?}",
        running.seen
    );
    // As the first run before its client: the one thread short of the
    // limit that serving a client takes (a flaky 503 otherwise, when a
    // thread of start-up had not yet ended).
    wait_until(WAIT_LIMIT, || threads_of(running.child.id()) < threads);
    let mut held = vec![Client::connect(addr)];
    assert_eq!(held[0].get("/held").status, 200);
    // The thread that accepts the next one cannot start another to accept
    // after it: refused at once, not left waiting in the backlog. (Or one
    // a few clients on: threads of the first run's start-up, or retiring,
    // counted then on a loaded machine, may have put the limit higher; it
    // failed so with one client of slack, in CI.)
    let refused = (0..8).any(|_| {
        let mut client = Client::connect(addr);
        client.send(b"GET /refused HTTP/1.1\r\nHost: h\r\n\r\n");
        let status = client.response().status;
        held.push(client);
        status == 503
    });
    assert!(refused, "no client refused at the thread limit");
    // And it stays the acceptor: the next is refused too, not left waiting.
    assert_eq!(Client::connect(addr).get("/refused-too").status, 503);
    running.expect("cannot start a worker thread");
    // A failure here (seen once, the admin port refusing connections)
    // says whether the proxy was still running, and all it said.
    let healthz = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        admin(admin_addr, "GET", "/healthz", "127.0.0.1").status
    }));
    if healthz.as_ref().ok() != Some(&200) {
        let exited = running.child.try_wait();
        while let Ok(line) = running.stderr.try_recv() {
            running.seen.push(line);
        }
        panic!(
            "/healthz: {healthz:?}; exited: {exited:?}; said: {:#?}",
            running.seen
        );
    }
    // A worker free again serves the next client.
    drop(held);
    assert!(wait_until(WAIT_LIMIT, || {
        Client::connect(addr).get("/after").status == 200
    }));
    running.signal("TERM");
    running.assert_exits_cleanly();
    let log = std::fs::read_to_string(dir.path().join("access.log")).unwrap();
    // The refusals logged (with their request line if it had arrived).
    assert!(log.matches("\" 503 ").count() >= 2, "{log}");
}

/// The binary started in `dir` with a descriptor limit of 256, which it
/// may raise to 4096.
fn start_with_few_descriptors(dir: &Path) -> Running {
    Running::start_with(dir, |command| {
        use std::os::unix::process::CommandExt;
        // SAFETY: only setrlimit, async-signal-safe, runs between fork
        // and exec.
        unsafe {
            command.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 256,
                    rlim_max: 4096,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    })
}

#[test]
fn the_descriptor_limit_is_raised_as_far_as_allowed_and_the_rest_said() {
    let a = Backend::echo("a");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("proxy.conf"), conf(a.addr, "")).unwrap();
    let mut running = start_with_few_descriptors(dir.path());
    // 10,000 connections would want more than the hard limit gives.
    let warning = running.expect("descriptors (RLIMIT_NOFILE");
    assert!(warning.contains("at most 4096 descriptors"), "{warning}");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", running.child.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(line.split_whitespace().nth(3), Some("4096"), "{line}");
}

/// A reload that raises max_connections raises the descriptor limit for
/// them as a start does, as far as the hard limit allows, and says what
/// is still short; a reload that leaves max_connections as it was does
/// not say it again (one shortfall, one warning, however many reloads).
#[test]
fn a_reload_that_raises_max_connections_raises_the_descriptor_limit_and_says_so_once() {
    let a = Backend::echo("a");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.conf");
    std::fs::write(&file, conf(a.addr, "max_connections = 50\n")).unwrap();
    let mut running = start_with_few_descriptors(dir.path());
    running.expect("listening on ");
    let pid = running.child.id();
    // 50 connections fit in 256 descriptors: the start leaves it.
    assert_eq!(open_files_limit(pid).rlim_cur, 256);

    // 10,000 would want more than the hard limit gives.
    std::fs::write(&file, conf(a.addr, "max_connections = 10000\n")).unwrap();
    running.signal("HUP");
    running.expect("new configuration in force");
    assert_eq!(open_files_limit(pid).rlim_cur, 4096);

    running.signal("HUP");
    running.expect("new configuration in force");
    let warnings = (running.seen.iter())
        .filter(|l| l.contains("descriptors (RLIMIT_NOFILE"))
        .count();
    assert_eq!(warnings, 1, "{:#?}", running.seen);
    running.signal("TERM");
    running.assert_exits_cleanly();
}

#[test]
fn out_of_descriptors_the_proxy_answers_503_and_blames_no_backend() {
    let a = Backend::echo("a");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("proxy.conf"),
        conf(a.addr, "upstream_keepalive = 0\n"),
    )
    .unwrap();
    let mut running = Running::start(dir.path());
    let addr = address_after(&running.expect("listening on "), "listening on ");
    let admin_addr = address_after(&running.expect("admin listener on "), "admin listener on ");
    let pid = running.child.id();
    // The child runs as this process's user, which may change its limits.
    let limit_descriptors = |n: u64| {
        // The soft limit only: raising a hard one takes a privilege.
        let limit = libc::rlimit {
            rlim_cur: n,
            rlim_max: 4096,
        };
        // SAFETY: a valid rlimit; no old value asked for.
        let set = unsafe {
            libc::prlimit(
                pid as libc::pid_t,
                libc::RLIMIT_NOFILE,
                &limit,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(set, 0, "{}", std::io::Error::last_os_error());
    };
    let mut client = Client::connect(addr);
    assert_eq!(client.get("/first").status, 200);
    // Every descriptor number below the limit taken (a worker waiting in
    // accept holds one too, unlisted): the client's next request is read,
    // and its backend connection cannot be opened.
    // (Tried again if the last request's backend socket was still being
    // closed as the descriptors were listed: that request then got its 200.)
    let refused = (0..10).any(|_| {
        let in_use: std::collections::HashSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        limit_descriptors((0..).find(|n| !in_use.contains(n)).unwrap());
        client.get("/second").status == 503
    });
    assert!(refused);
    running.expect("cannot open a connection to a backend");
    // Logged with no backend: none was reached.
    let log = dir.path().join("access.log");
    let refused_line = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let line = text
            .lines()
            .find(|l| l.contains("GET /second") && l.contains(" 503 "));
        line.map(str::to_string)
    };
    assert!(wait_until(WAIT_LIMIT, || refused_line().is_some()));
    let line = refused_line().unwrap();
    assert!(line.contains("upstream=- "), "{line}");
    // With room again, requests go through: the backend was never out.
    limit_descriptors(4096);
    assert_eq!(client.get("/third").status, 200);
    let m = scrape(admin_addr);
    let target = format!("{{target=\"{}\",pool=\"default\"}}", a.addr);
    assert_eq!(m[&format!("inverso_upstream_failures_total{target}")], 0.0);
    assert_eq!(m[&format!("inverso_upstream_up{target}")], 1.0);
    assert!(
        !running.seen.iter().any(|l| l.contains(" down")),
        "{:#?}",
        running.seen
    );
}

/// Makes a named pipe at `path` and opens its reading end, non-blocking
/// (so opening does not wait for a writer); the pipe fills up unless the
/// test reads from what this returns.
fn fifo_with_a_reader(path: &Path) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap()
}

#[test]
fn a_stalled_access_log_neither_hangs_a_reopen_nor_the_shutdown() {
    // The log goes to a pipe whose reader stopped reading: once the pipe
    // is full the writer waits for good. A reopen (SIGUSR1) and the final
    // flush give up rather than wait with it.
    let a = Backend::echo("a");
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("log.fifo");
    // The reader that never reads.
    let _reader = fifo_with_a_reader(&fifo);
    let mut proxy = start_proxy(&[a.addr], |c| c.path_to_log = Some(fifo.clone()));
    // Far more than a pipe holds (64 KiB): each line is about 150 bytes.
    let mut client = proxy.connect();
    for i in 0..1000 {
        assert_eq!(client.get(&format!("/{i}")).status, 200);
    }
    drop(client);
    let control = proxy.handle().control();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(control.reopen_log());
    });
    let reopened = rx.recv_timeout(WAIT_LIMIT).expect("the reopen hung");
    let e = reopened.unwrap_err();
    assert!(e.to_string().contains("stalled"), "{e}");
    // Returns (within the test's limit), lines still queued given up.
    assert!(proxy.shutdown(Duration::from_secs(1)));
}

/// A reopen that timed out (a reload refused for it) is still queued: once
/// the writer gets going again it must not switch file and format after all.
#[test]
fn a_reopen_given_up_on_is_never_applied_later() {
    use inverso::access_log::{AccessLog, Outputs, Record};
    use inverso::config::LogFormat;
    use inverso::upstream_tries::UpstreamTry;
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    // A reader that does not read (yet).
    let mut reader = fifo_with_a_reader(&fifo);
    let log = AccessLog::start(Outputs {
        stdout: false,
        file: Some(fifo.clone()),
        format: LogFormat::Combined,
        syslog: None,
        pool_files: Vec::new(),
    })
    .unwrap();
    let sender = log.sender();
    let record = || Record {
        time: std::time::SystemTime::now(),
        client: "127.0.0.1".parse().unwrap(),
        peer: None,
        proxied_to: None,
        proxy_tlvs: None,
        server: None,
        remote_user: None,
        jwt_claims: None,
        request_line: "GET / HTTP/1.1".into(),
        made_target: None,
        status: 200,
        bytes: 0,
        referer: None,
        user_agent: Some("u".repeat(8 * 1024)),
        cache: None,
        duration: Duration::ZERO,
        connection: None,
        head_bytes: 0,
        request_length: None,
        upstream_queue: None,
        last_try: UpstreamTry::default(),
        earlier_tries: Vec::new(),
        route_host: None,
        gzip_sizes: None,
        request_body: None,
        tcp_info: None,
        connection_time: None,
        pipelined: false,
        termination: Default::default(),
        limit_req: None,
        pool: None,
        show_pool: false,
        request_id: None,
        trace: None,
        heads: None,
        fields: None,
        response_head: None,
        upstream_fields: None,
        scheme: "http",
        tls: None,
        server_name: None,
        offered_protocols: None,
        country: None,
        client_certificate: None,
    };
    // Enough to fill the pipe and the writer's buffer: the writer blocks.
    for _ in 0..64 {
        sender.log(record());
    }
    std::thread::sleep(Duration::from_millis(300));
    let other = dir.path().join("other.log");
    let refused = sender.reopen(Some(other.clone()), LogFormat::Json, None, Vec::new());
    assert!(refused.is_err(), "the reopen should have timed out");
    // The reader catches up.
    let drain = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < deadline {
            let _ = reader.read(&mut buf);
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    sender.log(record());
    drop(sender);
    drain.join().unwrap();
    log.finish();
    let switched = std::fs::read_to_string(&other).unwrap_or_default();
    assert!(
        switched.is_empty(),
        "the refused reopen went ahead later: {} bytes of {} in {}",
        switched.len(),
        if switched.starts_with('{') {
            "JSON"
        } else {
            "lines"
        },
        other.display()
    );
}

// ------------------------------------------------------------ reuse_port

/// A proxy on `port` (and `admin_port`) of 127.0.0.1 in front of `backend`.
fn start_listening(
    backend: SocketAddr,
    port: u16,
    admin_port: u16,
    reuse_port: bool,
) -> Result<inverso::ServerHandle, inverso::server::StartError> {
    let mut config = inverso::Config::with_targets(vec![target(backend)]);
    config.bind = [127, 0, 0, 1].into();
    config.port = port;
    config.admin_port = Some(admin_port);
    config.reuse_port = reuse_port;
    config.log_to_stdout = false;
    config.path_to_log = None;
    config.path_to_persistence = None;
    config.cache_size = 0;
    inverso::Server::start(config)
}

#[test]
fn with_reuse_port_a_new_proxy_takes_over_from_a_running_one() {
    let old_backend = Backend::echo("old");
    let new_backend = Backend::echo("new");
    let old = start_listening(old_backend.addr, 0, 0, true).unwrap();
    let (addr, admin) = (old.local_addr(), old.admin_addr().unwrap());

    // Without the option the port is taken, as before.
    match start_listening(new_backend.addr, addr.port(), admin.port(), false) {
        Err(inverso::server::StartError::Bind { .. }) => {}
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("a second listener without SO_REUSEPORT"),
    }
    let new = start_listening(new_backend.addr, addr.port(), admin.port(), true).unwrap();
    assert_eq!(new.local_addr(), addr);
    assert_eq!(new.admin_addr(), Some(admin));

    // Once the old one is stopped, every connection reaches the new one.
    assert!(old.shutdown(Duration::from_secs(5)));
    for _ in 0..10 {
        let body = Client::connect(addr).get("/").body_str();
        assert!(body.starts_with("new "), "{body}");
    }
    assert!(new.shutdown(Duration::from_secs(5)));
}

#[test]
fn with_reuse_port_a_proxy_that_drains_leaves_the_admin_port_at_once_too() {
    // Held until released, for longer than the test waits for what it
    // checks (a Gate lets go after WAIT_LIMIT).
    let (release, released) = mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    let old_backend = Backend::start("old", move |_, out| {
        let _ = released.lock().unwrap().recv_timeout(WAIT_LIMIT * 6);
        respond(out, 200, &[], b"late");
        Action::KeepAlive
    });
    let new_backend = Backend::echo("new");
    let old = start_listening(old_backend.addr, 0, 0, true).unwrap();
    let (addr, admin) = (old.local_addr(), old.admin_addr().unwrap());
    // A request the old one holds, so that its drain lasts.
    let mut held = Client::connect(addr);
    held.send(b"GET /held HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(wait_until(WAIT_LIMIT, || old_backend.requests() == 1));
    let new = start_listening(new_backend.addr, addr.port(), admin.port(), true).unwrap();
    let draining = std::thread::spawn(move || old.shutdown(Duration::from_secs(30)));
    // Draining: every new connection reaches the new one, health checks
    // too, none the old one's 503. (One the old one had queued, or half
    // opened, as it left the port is reset or never answered: a retry.)
    let answered = |to: SocketAddr, path: &str| {
        use std::io::Write;
        let mut stream = std::net::TcpStream::connect(to).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n");
        stream.write_all(request.as_bytes()).ok()?;
        Reader::new(stream).read_response(false).ok()
    };
    let all_new =
        || (0..16).all(|_| answered(addr, "/").is_some_and(|r| r.body_str().starts_with("new ")));
    assert!(wait_until(WAIT_LIMIT * 3, all_new));
    let all_healthy =
        || (0..32).all(|_| answered(admin, "/healthz").is_some_and(|r| r.status == 200));
    assert!(wait_until(WAIT_LIMIT * 3, all_healthy));
    drop(release);
    assert_eq!(held.response().body_str(), "late");
    assert!(draining.join().unwrap());
    assert!(new.shutdown(Duration::from_secs(5)));
}

// ---------------------------------------------------------------- listen

#[test]
fn listen_serves_http_on_more_addresses_as_on_port() {
    let a = Backend::echo("a");
    let text = format!(
        "targets = {}\nlisten = 127.0.0.1:0, 127.0.0.1:0\n\
         request_header.X-Arrived-On = $server_addr:$server_port\n",
        a.addr
    );
    let mut proxy = start_proxy(&[a.addr], from_file(&text));
    let more = proxy.handle().listen_addrs();
    assert_eq!(more.len(), 2);
    let all: Vec<SocketAddr> = std::iter::once(proxy.addr).chain(more.clone()).collect();
    assert!(
        all[0] != all[1] && all[1] != all[2] && all[0] != all[2],
        "{all:?}"
    );
    for (i, &addr) in all.iter().enumerate() {
        let r = Client::connect(addr).get(&format!("/on/{i}"));
        assert_eq!(r.status, 200, "on {addr}");
    }
    // Each request says which listener took it, as nginx's `$server_port`.
    let arrived: Vec<String> = (a.seen().iter())
        .map(|s| s.field_or("x-arrived-on", "-"))
        .collect();
    let expected: Vec<String> = all.iter().map(SocketAddr::to_string).collect();
    assert_eq!(arrived, expected);

    // A change waits for a restart; the addresses listened on stay.
    let mut next = proxy.config_for(&[a.addr], from_file(&text));
    next.listen = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    let reloaded = proxy.handle().control().reload(next).unwrap();
    assert_eq!(reloaded.needs_restart, ["listen"]);
    assert_eq!(proxy.handle().listen_addrs(), more);
    assert_eq!(Client::connect(more[1]).get("/after").status, 200);

    // A target at one of them is refused: requests would loop.
    let mut looping = proxy.config_for(&[a.addr], from_file(&text));
    looping.targets = vec![target(a.addr), target(more[0])];
    let e = proxy.handle().control().reload(looping).unwrap_err();
    assert!(e.to_string().contains(&more[0].to_string()), "{e}");

    // A stop leaves every one of them.
    assert!(proxy.shutdown(Duration::from_secs(5)));
    for addr in all {
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "{addr} still taken"
        );
    }
}

#[test]
fn a_listen_address_that_cannot_be_bound_stops_the_start_naming_it() {
    let a = Backend::echo("a");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = taken.local_addr().unwrap();
    let mut config = inverso::Config::with_targets(vec![target(a.addr)]);
    config.bind = [127, 0, 0, 1].into();
    config.port = 0;
    config.listen = vec![at];
    (config.log_to_stdout, config.path_to_log) = (false, None);
    config.path_to_persistence = None;
    match inverso::Server::start(config) {
        Err(e @ inverso::server::StartError::ListenBind { .. }) => {
            assert!(e.to_string().contains(&format!("{at} (listen)")), "{e}")
        }
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("started with {at} taken"),
    }
}

#[test]
fn empty_lines_between_requests_start_the_head_and_its_timeout() {
    // keepalive_timeout is how long a connection waits for its next
    // request; an empty line before one starts it, as any byte does (as
    // nginx has it), and does not start the idle wait afresh.
    use std::io::{Read, Write};
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| {
        c.connection_timeout = Duration::from_secs(3600);
        c.keepalive_timeout = Some(Duration::from_secs(1));
        c.client_header_timeout = Duration::from_secs(1);
    });
    let mut client = proxy.connect();
    assert_eq!(client.get("/first").status, 200);
    let mut stream = client.reader.stream.try_clone().unwrap();
    // An empty line at once, then one every 0.7 s: each within
    // keepalive_timeout of the one before, all past the head's second.
    let began = Instant::now();
    for _ in 0..4 {
        let _ = stream.write_all(b"\r\n");
        std::thread::sleep(Duration::from_millis(700));
    }
    assert!(began.elapsed() >= Duration::from_millis(2800));
    let _ = stream.write_all(b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.is_empty() || rest.starts_with("HTTP/1.1 408"),
        "{rest}"
    );
    assert_eq!(a.requests(), 1);
}

#[test]
fn a_dead_backend_is_said_with_its_client_once_not_once_a_request() {
    // nginx's error log names the client of each failure; a line per
    // request of a dead backend under load would drown stderr, whose
    // access log has every one already. The ID ties the two together.
    let dead = dead_addr();
    let dir = tempfile::tempdir().unwrap();
    let extra = "max_fails = 0\nrequest_id_header = X-Request-ID\n";
    std::fs::write(dir.path().join("proxy.conf"), conf(dead, extra)).unwrap();
    let mut running = Running::start(dir.path());
    let addr = address_after(&running.expect("listening on "), "listening on ");
    for i in 0..5 {
        let request = format!("GET /{i} HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(one_request(addr, request.as_bytes()).status, 502);
    }
    let said = running.expect("cannot connect");
    assert!(said.contains(&format!("target {dead}: ")), "{said}");
    assert!(said.contains("client 127.0.0.1"), "{said}");
    let id = said
        .split("request_id ")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    running.signal("TERM");
    running.expect("stopped");
    let lines = running.seen.iter().filter(|l| l.contains("cannot connect"));
    assert_eq!(lines.count(), 1, "{:#?}", running.seen);
    let log = std::fs::read_to_string(dir.path().join("access.log")).unwrap();
    // Logged as each worker finishes: not always in the order sent.
    let first = log.lines().find(|l| l.contains("\"GET /0 ")).unwrap();
    assert!(first.contains(id), "{log}");
}
