//! Load balancing and resilience: algorithms, dead and returning targets,
//! retries, and backends that fail in every way before answering.

mod support;

use inverso::config::{Balance, LeastTimeMeasure, Loader, LogFormat};
use inverso::realip::Cidr;
use inverso::upstream::hash_on::HashOn;
use inverso::upstream::retry_on::RetryOnStatus;
use inverso::{Config, Server};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use support::*;

// ------------------------------------------------------- a killable backend

/// A backend that can be killed (its listener closed, so connecting is
/// refused, and its open connections cut) and brought back on the same
/// port. `GET /health` answers 200 or 503 after [`Killable::healthy`];
/// anything else gets 200, `X-Backend: name` and the name as body.
#[derive(Clone)]
struct Killable {
    name: String,
    addr: SocketAddr,
    /// Requests other than health probes.
    requests: Arc<AtomicUsize>,
    probes: Arc<AtomicUsize>,
    healthy: Arc<AtomicBool>,
    alive: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Killable {
    fn start(name: &str) -> Killable {
        Killable::start_on(name, IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    fn start_on(name: &str, ip: IpAddr) -> Killable {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0)).unwrap();
        let k = Killable {
            name: name.to_string(),
            addr: listener.local_addr().unwrap(),
            requests: Arc::default(),
            probes: Arc::default(),
            healthy: Arc::new(AtomicBool::new(true)),
            alive: Arc::new(AtomicBool::new(true)),
            conns: Arc::default(),
            acceptor: Arc::default(),
        };
        k.listen(listener);
        k
    }

    fn listen(&self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        self.alive.store(true, Ordering::SeqCst);
        let k = self.clone();
        let thread = std::thread::spawn(move || {
            // Polls so that `kill` can close the listener: a blocking
            // accept cannot be interrupted portably.
            while k.alive.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        k.conns.lock().unwrap().push(stream.try_clone().unwrap());
                        let k = k.clone();
                        std::thread::spawn(move || k.serve(stream));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        *self.acceptor.lock().unwrap() = Some(thread);
    }

    fn serve(&self, stream: TcpStream) {
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let mut out = stream.try_clone().unwrap();
        let mut reader = Reader::new(stream);
        while let Ok(Some(head)) = reader.read_head() {
            if !self.alive.load(Ordering::SeqCst) {
                return;
            }
            if head.start_line.starts_with("GET /health ") {
                self.probes.fetch_add(1, Ordering::SeqCst);
                let status = if self.healthy.load(Ordering::SeqCst) {
                    200
                } else {
                    503
                };
                respond(&mut out, status, &[], b"");
            } else {
                self.requests.fetch_add(1, Ordering::SeqCst);
                respond(
                    &mut out,
                    200,
                    &[("X-Backend", &self.name)],
                    self.name.as_bytes(),
                );
            }
        }
    }

    /// Closes the listener and every open connection; returns once
    /// connecting is refused.
    fn kill(&self) {
        self.alive.store(false, Ordering::SeqCst);
        if let Some(thread) = self.acceptor.lock().unwrap().take() {
            thread.join().unwrap();
        }
        for conn in self.conns.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same address.
    fn revive(&self) {
        self.listen(TcpListener::bind(self.addr).unwrap());
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn probes(&self) -> usize {
        self.probes.load(Ordering::SeqCst)
    }

    /// Connections accepted since it last began to listen.
    fn accepted(&self) -> usize {
        self.conns.lock().unwrap().len()
    }
}

/// `GET path` on a new connection; the status and `X-Backend`.
fn get(proxy: &Proxy, path: &str) -> (u16, String) {
    let response = proxy.connect().get(path);
    let backend = response.header("x-backend").unwrap_or("-").to_string();
    (response.status, backend)
}

/// How many responses came from each backend.
fn tally(names: &[String]) -> HashMap<&str, usize> {
    let mut counts = HashMap::new();
    for name in names {
        *counts.entry(name.as_str()).or_default() += 1;
    }
    counts
}

// ------------------------------------------------------------- dead targets

/// One failure takes a target out for an hour: longer than any test.
fn down_for_an_hour(config: &mut Config) {
    config.max_fails = 1;
    config.fail_timeout = Duration::from_secs(3600);
}

#[test]
fn three_targets_one_dead_no_failed_get_in_100() {
    // With passive health (the dead target is soon skipped) and without
    // (every pick of it is retried elsewhere).
    for max_fails in [1, 0] {
        let a = Backend::echo("a");
        let b = Backend::echo("b");
        let proxy = start_proxy(&[a.addr, dead_addr(), b.addr], |c| c.max_fails = max_fails);
        let mut client = proxy.connect();
        for i in 0..100 {
            let response = client.get(&format!("/{i}"));
            assert_eq!(response.status, 200, "request {i}, max_fails={max_fails}");
        }
        assert_eq!(a.requests() + b.requests(), 100);
        let (a, b) = (a.requests(), b.requests());
        assert!(a >= 30 && b >= 30, "a: {a}, b: {b}");
    }
}

#[test]
fn a_target_killed_in_the_middle_of_a_load_loop_costs_no_failed_get() {
    let backends: Vec<Killable> = ["a", "b", "c"].iter().map(|n| Killable::start(n)).collect();
    let addrs: Vec<SocketAddr> = backends.iter().map(|k| k.addr).collect();
    let proxy = start_proxy(&addrs, |_| {});
    // A keep-alive client and one-shot clients: the proxy holds pooled
    // connections to the victim when it dies.
    let mut client = proxy.connect();
    let mut served = Vec::new();
    for i in 0..150 {
        if i == 50 {
            backends[1].kill();
        }
        let response = if i % 2 == 0 {
            client.get(&format!("/{i}"))
        } else {
            proxy.connect().get(&format!("/{i}"))
        };
        assert_eq!(response.status, 200, "request {i}");
        served.push(response.header("x-backend").unwrap().to_string());
    }
    let before = tally(&served[..50]);
    assert_eq!(before.len(), 3, "{before:?}");
    let after = tally(&served[51..]);
    assert_eq!(after.get("b"), None, "{after:?}");
    assert!(after["a"] > 30 && after["c"] > 30, "{after:?}");
}

#[test]
fn when_every_target_is_down_the_least_recently_failed_is_still_tried() {
    let a = Killable::start("a");
    let b = Killable::start("b");
    // Once both failed, only the fallback can reach them.
    let proxy = start_proxy(&[a.addr, b.addr], down_for_an_hour);
    a.kill();
    b.kill();
    assert_eq!(get(&proxy, "/").0, 502);
    a.revive();
    b.revive();
    // Both are marked down; a request is still tried rather than refused.
    let (status, _) = get(&proxy, "/");
    assert_eq!(status, 200);
}

#[test]
fn when_every_target_is_down_a_request_is_tried_once_not_on_each() {
    // Backends that accept and hang up: each try is a failure the proxy
    // would retry elsewhere. Once all are down, the one try a request gets
    // is enough; trying every dead target would make each request wait
    // out every one's timeout.
    let hang_up = |name: &str| Backend::start(name, |_, _| Action::Close);
    let (a, b) = (hang_up("a"), hang_up("b"));
    let proxy = start_proxy(&[a.addr, b.addr], down_for_an_hour);
    assert_eq!(get(&proxy, "/").0, 502);
    assert_eq!(
        (a.requests(), b.requests()),
        (1, 1),
        "retried while one was up"
    );
    for _ in 0..4 {
        assert_eq!(get(&proxy, "/").0, 502);
    }
    assert_eq!(a.requests() + b.requests(), 2 + 4, "one try per request");
}

// --------------------------------------------------------------- algorithms

#[test]
fn weighted_round_robin_holds_weights_exactly() {
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        c.balance = Balance::WeightedRoundRobin;
        c.targets[0].weight = 3;
    });
    let mut client = proxy.connect();
    let served: Vec<String> = (0..40)
        .map(|i| {
            let r = client.get(&format!("/{i}"));
            r.header("x-backend").unwrap().to_string()
        })
        .collect();
    for window in served.windows(4) {
        let a_count = window.iter().filter(|n| *n == "a").count();
        assert_eq!(a_count, 3, "{served:?}");
    }
    // Interleaved: never four in a row, b at most once per window.
    assert_eq!(a.requests(), 30);
    assert_eq!(b.requests(), 10);
}

#[test]
fn least_conn_sends_new_requests_away_from_a_busy_target() {
    let release = Gate::new();
    let slow_backend = |name: &'static str| {
        let gate = release.clone();
        Backend::start(name, move |seen, out| {
            if seen.path() == "/slow" {
                // Bounded: a test that never releases fails, not hangs.
                gate.wait();
            }
            respond(out, 200, &[("X-Backend", name)], name.as_bytes());
            Action::KeepAlive
        })
    };
    let a = slow_backend("a");
    let b = slow_backend("b");
    let proxy = start_proxy(&[a.addr, b.addr], |c| c.balance = Balance::LeastConn);

    let mut slow = proxy.connect();
    slow.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(wait_until(WAIT_LIMIT, || a.requests() + b.requests() == 1));
    let (busy, idle) = if a.requests() == 1 {
        ("a", "b")
    } else {
        ("b", "a")
    };

    // Every new request goes to the idle target (round robin would send
    // every other one to the busy target, where it would wait).
    let mut client = proxy.connect();
    for i in 0..20 {
        let response = client.get(&format!("/fast/{i}"));
        assert_eq!(response.header("x-backend"), Some(idle), "request {i}");
    }
    release.open();
    let response = slow.response();
    assert_eq!(response.header("x-backend"), Some(busy));
    // Both idle again: ties are broken round robin.
    let served: Vec<String> = (0..10).map(|i| get(&proxy, &format!("/{i}")).1).collect();
    let counts = tally(&served);
    assert_eq!((counts["a"], counts["b"]), (5, 5), "{served:?}");
}

#[test]
fn under_hash_balance_factor_a_hot_url_spills_off_its_busy_target_and_comes_back() {
    let release = Gate::new();
    let holding_backend = |name: &'static str| {
        let gate = release.clone();
        Backend::start(name, move |seen, out| {
            if seen.head.get("x-hold").is_some() {
                // Bounded: a test that never releases fails, not hangs.
                gate.wait();
            }
            respond(out, 200, &[("X-Backend", name)], name.as_bytes());
            Action::KeepAlive
        })
    };
    let a = holding_backend("a");
    let b = holding_backend("b");
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        c.balance = Balance::UriHash;
        c.hash_balance_factor = Some(100);
    });
    let (_, home) = get(&proxy, "/hot");
    assert_eq!(get(&proxy, "/hot").1, home);
    // One request for it held on its target: with 2 placed and 2 slots,
    // one a target's, the target holding one is at its bound.
    let mut held = proxy.connect();
    held.send(b"GET /hot HTTP/1.1\r\nHost: x\r\nX-Hold: 1\r\n\r\n");
    assert!(wait_until(WAIT_LIMIT, || a.requests() + b.requests() == 3));
    let (_, spilled) = get(&proxy, "/hot");
    assert_ne!(spilled, home);
    release.open();
    assert_eq!(held.response().header("x-backend"), Some(home.as_str()));
    // Below its bound again: the URL is back home.
    assert_eq!(get(&proxy, "/hot").1, home);
}

#[test]
fn ip_hash_keeps_a_client_on_one_target() {
    let backends: Vec<Backend> = ["a", "b", "c"].iter().map(|n| Backend::echo(n)).collect();
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let proxy = start_proxy(&addrs, |c| c.balance = Balance::IpHash);
    let served: Vec<String> = (0..30)
        .map(|i| {
            let r = proxy.connect().get(&format!("/{i}"));
            assert_eq!(r.status, 200);
            r.body_str().split(' ').next().unwrap().to_string()
        })
        .collect();
    assert!(served.iter().all(|s| *s == served[0]), "{served:?}");
}

#[test]
fn behind_a_trusted_proxy_ip_hash_and_the_log_follow_the_forwarded_client() {
    // One connection from a trusted balancer carries many clients: each is
    // hashed and logged by the address the balancer names.
    let backends: Vec<Backend> = ["a", "b", "c"].iter().map(|n| Backend::echo(n)).collect();
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let mut proxy = start_proxy(&addrs, |c| {
        c.balance = Balance::IpHash;
        c.real_ip_from = vec![Cidr::parse("127.0.0.0/8").unwrap()].into();
    });
    let mut balancer = proxy.connect();
    let mut served = |client: &str| {
        let r = balancer.get_with("/", &[("X-Forwarded-For", client)]);
        r.body_str().split(' ').next().unwrap().to_string()
    };
    let first: Vec<String> = (0..40).map(|i| served(&format!("203.0.113.{i}"))).collect();
    let again: Vec<String> = (0..40).map(|i| served(&format!("203.0.113.{i}"))).collect();
    assert_eq!(first, again, "each client stays on its target");
    let spread = tally(&first);
    assert!(spread.len() == 3, "40 clients, one target: {spread:?}");
    // The backend sees the whole chain, the balancer last.
    let seen = backends.iter().flat_map(|b| b.seen()).next().unwrap();
    let xff = seen.head.get("x-forwarded-for").unwrap().to_string();
    assert!(
        xff.starts_with("203.0.113.") && xff.ends_with(", 127.0.0.1"),
        "{xff}"
    );
    drop(balancer);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert!(
        lines.iter().any(|l| l.starts_with("203.0.113.39 - - [")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("127.0.0.1 ")),
        "{lines:?}"
    );
}

#[test]
fn an_untrusted_peer_cannot_choose_its_address() {
    let a = Backend::echo("a");
    let mut proxy = start_proxy(&[a.addr], |c| {
        c.real_ip_from = vec![Cidr::parse("10.0.0.0/8").unwrap()].into();
    });
    let r = proxy
        .connect()
        .get_with("/", &[("X-Forwarded-For", "203.0.113.9")]);
    assert_eq!(r.status, 200);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert!(
        lines.iter().all(|l| l.starts_with("127.0.0.1 - - [")),
        "{lines:?}"
    );
}

#[test]
fn uri_hash_sends_each_path_to_one_backend_and_spreads_paths_over_both() {
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let proxy = start_proxy(&[a.addr, b.addr], |c| c.balance = Balance::UriHash);
    let paths: Vec<String> = (0..40).map(|i| format!("/item/{i}?v=2")).collect();
    // Each on a connection of its own: the connection plays no part.
    let home: Vec<String> = (paths.iter())
        .map(|path| {
            let (status, backend) = get(&proxy, path);
            assert_eq!(status, 200, "{path}");
            backend
        })
        .collect();
    let spread = tally(&home);
    assert_eq!(spread.len(), 2, "40 paths, one backend: {spread:?}");
    // Again and again on one connection: each path where it went first.
    let mut client = proxy.connect();
    for round in 0..5 {
        for (path, home) in paths.iter().zip(&home) {
            let response = client.get(path);
            assert_eq!(response.status, 200, "{path}");
            assert_eq!(
                response.header("x-backend"),
                Some(home.as_str()),
                "{path}, round {round}"
            );
        }
    }
    // An absolute-form target is hashed by its path and query alone: the
    // same resource, the same backend.
    for (path, home) in paths.iter().zip(&home).take(10) {
        let response = client.get(&format!("http://test.example{path}"));
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.header("x-backend"), Some(home.as_str()), "{path}");
        assert!(response.body_str().contains(&format!(" GET {path} ")));
    }
    assert_eq!(a.requests() + b.requests(), 40 * 6 + 10);
}

#[test]
fn under_uri_hash_the_paths_of_a_dead_backend_are_retried_on_the_other() {
    let a = Backend::echo("a");
    // Never marked down: every request hashed to the dead target is tried
    // there and retried.
    let proxy = start_proxy(&[dead_addr(), a.addr], |c| {
        c.balance = Balance::UriHash;
        c.max_fails = 0;
    });
    let mut client = proxy.connect();
    for i in 0..30 {
        let response = client.get(&format!("/page/{i}"));
        assert_eq!(response.status, 200, "/page/{i}");
        assert_eq!(response.header("x-backend"), Some("a"), "/page/{i}");
    }
    assert_eq!(a.requests(), 30);
}

#[test]
fn a_sticky_cookie_wins_over_uri_hash() {
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        sticky(c);
        c.balance = Balance::UriHash;
    });
    // `GET /` hashes to one of them; a cookie naming the other wins.
    let (home, _) = get_sticky(&proxy, None);
    let (other, other_name) = match home.as_str() {
        "a" => (&b, "b"),
        _ => (&a, "a"),
    };
    let id = inverso::upstream::sticky::id_of(&other.addr.to_string());
    for _ in 0..5 {
        assert_eq!(
            get_sticky(&proxy, Some(&id)),
            (other_name.to_string(), None)
        );
    }
    assert_eq!(other.requests(), 5);
}

/// `0..n`, backwards in even rounds: an order in which round robin, going
/// on from a pass that alternated, does not happen to send each request
/// where it went before.
fn order(n: usize, round: usize) -> Vec<usize> {
    match round % 2 {
        0 => (0..n).rev().collect(),
        _ => (0..n).collect(),
    }
}

/// `balance = hash` on `on` (`header:X-Tenant`, ...).
fn hash_on(c: &mut Config, on: &str) {
    c.balance = Balance::Hash;
    c.hash_on = Some(HashOn::parse(on).unwrap());
}

#[test]
fn hash_on_a_header_keeps_each_tenant_on_one_backend_and_spreads_tenants_over_both() {
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let proxy = start_proxy(&[a.addr, b.addr], |c| hash_on(c, "header:X-Tenant"));
    let tenants: Vec<String> = (0..40).map(|i| format!("tenant-{i}")).collect();
    // Each on a connection of its own: the connection plays no part.
    let home: Vec<String> = (tenants.iter())
        .map(|tenant| {
            let response = proxy.connect().get_with("/", &[("X-Tenant", tenant)]);
            assert_eq!(response.status, 200, "{tenant}");
            response.header("x-backend").unwrap().to_string()
        })
        .collect();
    let spread = tally(&home);
    assert_eq!(spread.len(), 2, "40 tenants, one backend: {spread:?}");
    // Again on one connection, for other paths, the name in another case
    // and the value padded: each tenant where it went first.
    let mut client = proxy.connect();
    for round in 0..4 {
        for k in order(tenants.len(), round) {
            let (tenant, home) = (&tenants[k], &home[k]);
            let path = format!("/reports/{round}?page={round}");
            let padded = format!("  {tenant} ");
            let response = client.get_with(&path, &[("x-tenant", &padded)]);
            assert_eq!(response.status, 200, "{tenant}");
            assert_eq!(
                response.header("x-backend"),
                Some(home.as_str()),
                "{tenant}, round {round}"
            );
        }
    }
    // Each backend got the field, and only from its own tenants.
    for (backend, name) in [(&a, "a"), (&b, "b")] {
        for seen in backend.seen() {
            let tenant = seen.field_or("x-tenant", "-");
            let k = tenants.iter().position(|t| *t == tenant).expect(&tenant);
            assert_eq!(home[k], name, "{tenant}");
        }
    }
    assert_eq!(a.requests() + b.requests(), 40 * 5);
}

#[test]
fn hash_on_a_cookie_hashes_the_application_s_cookie_not_the_sticky_one() {
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        sticky(c);
        hash_on(c, "cookie:sid");
    });
    let users: Vec<String> = (0..40).map(|i| format!("user-{i}")).collect();
    // Each without the proxy's cookie: hashed, and told its target.
    let home: Vec<(String, String)> = (users.iter())
        .map(|user| {
            let cookie = format!("theme=dark; sid={user}");
            let response = proxy.connect().get_with("/", &[("Cookie", &cookie)]);
            assert_eq!(response.status, 200, "{user}");
            let backend = response.header("x-backend").unwrap().to_string();
            let set = response.header("set-cookie").expect("the sticky cookie");
            let id = inverso::upstream::sticky::id_of(
                &[&a, &b][usize::from(backend == "b")].addr.to_string(),
            );
            assert!(set.starts_with(&format!("srv={id};")), "{set}");
            (backend, id)
        })
        .collect();
    let backends: Vec<String> = home.iter().map(|(backend, _)| backend.clone()).collect();
    assert_eq!(tally(&backends).len(), 2, "40 users, one backend");
    // With a `srv` that names no target, different at each request, among
    // other cookies in other fields: still the home of the `sid`.
    let mut client = proxy.connect();
    for round in 0..3 {
        for k in order(users.len(), round) {
            let (user, (backend, _)) = (&users[k], &home[k]);
            let stale = format!("srv=0000{round:012}; lang=en");
            let sid = format!("sid={user}");
            let response = client.request("GET", "/", &[("Cookie", &stale), ("Cookie", &sid)], b"");
            assert_eq!(response.status, 200, "{user}");
            assert_eq!(
                response.header("x-backend"),
                Some(backend.as_str()),
                "{user}"
            );
        }
    }
    // The backend gets the application's cookies, never the proxy's.
    for seen in a.seen().into_iter().chain(b.seen()) {
        let cookies = seen.field_or("cookie", "");
        assert!(cookies.contains("sid=user-"), "{cookies}");
        assert!(!cookies.contains("srv="), "{cookies}");
    }
    // A sticky cookie naming a target still wins: each user sent to the
    // target that is not its home.
    for (user, (backend, _)) in users.iter().zip(&home).take(10) {
        let (other, other_name) = match backend.as_str() {
            "a" => (&b, "b"),
            _ => (&a, "a"),
        };
        let id = inverso::upstream::sticky::id_of(&other.addr.to_string());
        let cookie = format!("srv={id}; sid={user}");
        let response = proxy.connect().get_with("/", &[("Cookie", &cookie)]);
        assert_eq!(response.header("x-backend"), Some(other_name), "{user}");
        assert_eq!(response.header("set-cookie"), None, "{user}");
    }
}

#[test]
fn hash_on_a_query_parameter_keeps_each_user_on_one_backend_whatever_the_path() {
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let proxy = start_proxy(&[a.addr, b.addr], |c| hash_on(c, "query:user"));
    let users: Vec<String> = (0..40).map(|i| format!("u{i}")).collect();
    let home: Vec<String> = (users.iter())
        .map(|user| get(&proxy, &format!("/?user={user}")))
        .map(|(status, backend)| {
            assert_eq!(status, 200);
            backend
        })
        .collect();
    assert_eq!(tally(&home).len(), 2, "40 users, one backend: {home:?}");
    let mut client = proxy.connect();
    for (user, home) in users.iter().zip(&home) {
        for target in [
            format!("/inbox?sort=date&user={user}&page=2"),
            format!("/a/b/c?user={user}&user=someone-else"),
            format!("http://test.example/profile?user={user}"),
        ] {
            let response = client.get(&target);
            assert_eq!(response.status, 200, "{target}");
            assert_eq!(
                response.header("x-backend"),
                Some(home.as_str()),
                "{target}"
            );
        }
    }
    assert_eq!(a.requests() + b.requests(), 40 * 4);
}

#[test]
fn hash_without_the_value_alternates_over_the_backends() {
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let proxy = start_proxy(&[a.addr, b.addr], |c| hash_on(c, "header:X-Tenant"));
    // Without the field, with an empty one, with another field of a name
    // that begins alike: none has a value to hash.
    let mut client = proxy.connect();
    let served: Vec<String> = (0..12)
        .map(|i| {
            let fields: &[(&str, &str)] = match i % 3 {
                0 => &[],
                1 => &[("X-Tenant", "")],
                _ => &[("X-Tenant-Id", "acme")],
            };
            let response = client.get_with("/", fields);
            assert_eq!(response.status, 200);
            response.header("x-backend").unwrap().to_string()
        })
        .collect();
    let expected: Vec<&str> = ["a", "b"].into_iter().cycle().take(12).collect();
    assert_eq!(served, expected);
}

#[test]
fn under_hash_the_cache_revalidates_on_the_backend_of_the_request_it_came_from() {
    // Stored, but to be revalidated at every use (`no-cache`): 304 to a
    // request that has the version.
    let origin = |name: &'static str| {
        Backend::start(name, move |seen, out| {
            let fields = [
                ("X-Backend", name),
                ("Cache-Control", "no-cache"),
                ("ETag", "\"v1\""),
            ];
            if seen.field_or("if-none-match", "") == "\"v1\"" {
                write_304(out, &fields);
            } else {
                respond(out, 200, &fields, b"the report");
            }
            Action::KeepAlive
        })
    };
    let (a, b) = (origin("a"), origin("b"));
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        hash_on(c, "header:X-Tenant");
        c.cache_size = 1 << 20;
    });
    // A tenant at each backend, found by paths of their own.
    let mut homes: HashMap<String, String> = HashMap::new();
    for i in 0..40 {
        let tenant = format!("tenant-{i}");
        let response = proxy
            .connect()
            .get_with(&format!("/probe/{i}"), &[("X-Tenant", &tenant)]);
        homes
            .entry(response.header("x-backend").unwrap().to_string())
            .or_insert(tenant);
    }
    let (at_a, at_b) = (&homes["a"], &homes["b"]);
    let before = (a.requests(), b.requests());
    // One URL for both: each revalidation goes where its tenant does.
    let mut client = proxy.connect();
    for (tenant, home) in [(at_a, &a), (at_a, &a), (at_b, &b), (at_b, &b), (at_a, &a)] {
        let response = client.get_with("/report", &[("X-Tenant", tenant)]);
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"the report");
        let last = home.seen().last().cloned().unwrap();
        assert_eq!(last.path(), "/report", "{tenant}");
        assert_eq!(last.field_or("x-tenant", "-"), *tenant);
    }
    // Stored from a, then each use revalidated: none answered from the
    // cache without asking, none sent to the other tenant's backend.
    assert_eq!(a.requests() - before.0, 3);
    assert_eq!(b.requests() - before.1, 2);
    let revalidated = b.seen().into_iter().filter(|s| s.path() == "/report");
    assert!(revalidated
        .into_iter()
        .all(|s| s.field_or("if-none-match", "") == "\"v1\""));
}

#[test]
fn random_two_spreads_requests_over_every_target() {
    let backends: Vec<Backend> = ["a", "b", "c"].iter().map(|n| Backend::echo(n)).collect();
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let proxy = start_proxy(&addrs, |c| c.balance = Balance::RandomTwo);
    let mut client = proxy.connect();
    for i in 0..90 {
        assert_eq!(client.get(&format!("/{i}")).status, 200);
    }
    // Sequential requests: every draw is a tie, so the choice is uniform.
    for b in &backends {
        assert!(b.requests() >= 10, "{}: {}", b.name, b.requests());
    }
}

// ------------------------------------------------------------------ backups

#[test]
fn a_backup_serves_only_while_every_other_target_is_down() {
    let a = Killable::start("a");
    let b = Killable::start("b");
    let spare = Killable::start("spare");
    let targets = [a.addr, b.addr, spare.addr];
    // Plain round robin: the backup's turns are not handed to `a`.
    let proxy = start_proxy(&targets, |c| c.targets[2].backup = true);
    let served: Vec<String> = (0..20).map(|i| get(&proxy, &format!("/{i}")).1).collect();
    assert_eq!(spare.requests(), 0, "{served:?}");
    assert_eq!((a.requests(), b.requests()), (10, 10));

    // One primary down: the other takes everything.
    a.kill();
    for i in 0..10 {
        assert_eq!(get(&proxy, &format!("/b{i}")), (200, "b".to_string()));
    }
    assert_eq!(spare.requests(), 0);

    // Both down: the backup, from the first request on (a retry).
    b.kill();
    for i in 0..10 {
        assert_eq!(get(&proxy, &format!("/s{i}")), (200, "spare".to_string()));
    }
}

#[test]
fn traffic_returns_from_the_backup_once_a_target_passes_its_checks_again() {
    let a = Killable::start("a");
    let spare = Killable::start("spare");
    // Failing before the checker starts, which probes at once: a first
    // probe answered 200 would leave one failure, not two, counted by
    // the time the third arrives.
    a.healthy.store(false, Ordering::SeqCst);
    let proxy = start_proxy(&[a.addr, spare.addr], |c| {
        checks(c);
        c.targets[1].backup = true;
    });
    // fall = 2: once a third probe has arrived, two have failed.
    assert!(wait_until(WAIT_LIMIT, || a.probes() >= 3));
    for i in 0..5 {
        assert_eq!(get(&proxy, &format!("/{i}")), (200, "spare".to_string()));
    }
    a.healthy.store(true, Ordering::SeqCst);
    assert!(
        wait_until(WAIT_LIMIT, || get(&proxy, "/again").1 == "a"),
        "a never used again"
    );
    let before = spare.requests();
    for i in 0..5 {
        assert_eq!(get(&proxy, &format!("/a{i}")), (200, "a".to_string()));
    }
    assert_eq!(spare.requests(), before);
}

// ------------------------------------------------------------ active checks

fn checks(config: &mut Config) {
    config.health_check_path = Some("/health".to_string());
    config.health_check_interval = Duration::from_millis(20);
    // A probe of a healthy target may take longer than an interval on a
    // loaded machine: only the targets meant to fail should.
    config.health_check_timeout = Some(Duration::from_secs(5));
    config.health_check_rise = 2;
    config.health_check_fall = 2;
    // Passive marks last an hour: only the checks can bring a target back.
    down_for_an_hour(config);
}

#[test]
fn a_target_failing_its_checks_gets_no_traffic_until_they_pass() {
    let a = Killable::start("a");
    let b = Killable::start("b");
    b.healthy.store(false, Ordering::SeqCst);
    let proxy = start_proxy(&[a.addr, b.addr], checks);
    // fall = 2: once a third probe has arrived, two have failed.
    assert!(wait_until(WAIT_LIMIT, || b.probes() >= 3));
    for i in 0..20 {
        assert_eq!(get(&proxy, &format!("/{i}")), (200, "a".to_string()));
    }
    assert_eq!(b.requests(), 0);

    b.healthy.store(true, Ordering::SeqCst);
    // Bounded: each round is one request, the deadline caps the rounds.
    assert!(
        wait_until(WAIT_LIMIT, || get(&proxy, "/again").1 == "b"),
        "b never used again"
    );
}

#[test]
fn a_target_whose_probe_body_lacks_the_expected_text_is_held_down() {
    // Both answer their probes 200; b's body says it is degraded.
    let backend = |name: &'static str, health: &'static str| {
        Backend::start(name, move |seen, out| {
            let body = if seen.path() == "/health" {
                health
            } else {
                name
            };
            respond(out, 200, &[("X-Backend", name)], body.as_bytes());
            Action::KeepAlive
        })
    };
    let a = backend("a", "{\"status\":\"UP\"}");
    let b = backend("b", "{\"status\":\"DEGRADED\"}");
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        checks(c);
        c.health_check_expect_status = Arc::from([(200, 200)]);
        c.health_check_expect_body = Some("\"UP\"".into());
    });
    let probes = |b: &Backend| b.seen().iter().filter(|s| s.path() == "/health").count();
    // fall = 2: once a third probe has arrived, two have failed.
    assert!(wait_until(WAIT_LIMIT, || probes(&b) >= 3));
    for i in 0..10 {
        assert_eq!(get(&proxy, &format!("/{i}")), (200, "a".to_string()));
    }
    assert!(b.seen().iter().all(|s| s.path() == "/health"));
}

#[test]
fn a_probe_slower_than_the_interval_passes_within_health_check_timeout() {
    // b answers its probes 200, but only after longer than the interval.
    let slow_probes = |name: &'static str, delay: Duration| {
        Backend::start(name, move |seen, out| {
            if seen.path() == "/health" {
                std::thread::sleep(delay);
            }
            respond(out, 200, &[("X-Backend", name)], name.as_bytes());
            Action::KeepAlive
        })
    };
    let probes = |b: &Backend| b.seen().iter().filter(|s| s.path() == "/health").count();
    let served_by = |proxy: &Proxy| {
        (0..10)
            .map(|i| get(proxy, &format!("/{i}")).1)
            .collect::<Vec<_>>()
    };

    // By default a probe may take no longer than the interval: b is down.
    let (a, b) = (Backend::echo("a"), slow_probes("b", Duration::from_secs(1)));
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        checks(c);
        // Long enough for a's probes on a loaded machine.
        c.health_check_interval = Duration::from_millis(200);
        c.health_check_timeout = None;
    });
    assert!(wait_until(WAIT_LIMIT, || probes(&b) >= 3));
    assert!(served_by(&proxy).iter().all(|name| name == "a"));

    // With health_check_timeout above its delay, b stays in rotation.
    let (a, b) = (
        Backend::echo("a"),
        slow_probes("b", Duration::from_millis(150)),
    );
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        checks(c);
        c.health_check_timeout = Some(Duration::from_secs(5));
    });
    assert!(wait_until(WAIT_LIMIT, || probes(&b) >= 3));
    assert!(served_by(&proxy).iter().any(|name| name == "b"));
}

#[test]
fn a_target_gone_with_its_pooled_connection_is_logged_with_no_connect_time() {
    // The pooled connection is found closed, and a new one is refused:
    // nothing of the dead connection's reuse shows in the log.
    let a = Killable::start("a");
    let template = "$status $upstream_status $upstream_connect_time $upstream_addr";
    let mut proxy = start_proxy(&[a.addr], |c| {
        c.log_format = LogFormat::parse(template).unwrap();
        c.retries = Some(0);
    });
    assert_eq!(get(&proxy, "/"), (200, "a".to_string()));
    a.kill();
    assert_eq!(get(&proxy, "/").0, 502);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    // Logged as each worker finishes: the first request's worker may log
    // after the second's, which came on a connection of its own.
    assert_eq!(lines.len(), 2, "{lines:?}");
    let failed = lines.iter().find(|l| l.starts_with("502 "));
    let expected = format!("502 502 - {}", a.addr);
    assert_eq!(failed, Some(&expected), "{lines:?}");
}

#[test]
fn a_target_that_comes_back_is_used_again_after_its_checks_pass() {
    let a = Killable::start("a");
    let b = Killable::start("b");
    let proxy = start_proxy(&[a.addr, b.addr], checks);
    assert!(wait_until(WAIT_LIMIT, || get(&proxy, "/").1 == "b"));

    b.kill();
    for i in 0..20 {
        assert_eq!(
            get(&proxy, &format!("/{i}")),
            (200, "a".to_string()),
            "request {i}"
        );
    }
    b.revive();
    // Marked down by a failed request (for an hour) and by its probes:
    // the probes passing again are what brings it back.
    assert!(
        wait_until(WAIT_LIMIT, || get(&proxy, "/back").1 == "b"),
        "b never used again"
    );
}

#[test]
fn a_failed_request_is_not_retried_on_a_target_the_checker_holds_down() {
    // a hangs (a timeout); b fails its checks. Retrying on b would go to a
    // target known to be out; the client hears of a's timeout instead.
    let a = Backend::start("a", |seen, out| {
        if seen.path() == "/health" {
            respond(out, 200, &[], b"");
            return Action::KeepAlive;
        }
        Action::Hang
    });
    let b = Killable::start("b");
    b.healthy.store(false, Ordering::SeqCst);
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        checks(c);
        c.connection_timeout = Duration::from_millis(300);
    });
    assert!(wait_until(WAIT_LIMIT, || b.probes() >= 3));
    assert_eq!(get(&proxy, "/hang").0, 504);
    assert_eq!(b.requests(), 0);
}

#[test]
fn the_checker_stops_with_the_server() {
    let a = Killable::start("a");
    let mut proxy = start_proxy(&[a.addr], |c| {
        checks(c);
        // The checker spends its time waiting for the next round: shutdown
        // must interrupt that wait, not sit it out.
        c.health_check_interval = Duration::from_secs(3600);
    });
    assert!(wait_until(WAIT_LIMIT, || a.probes() >= 1));
    // Bounded by WAIT_LIMIT inside `shutdown`.
    assert!(proxy.shutdown(Duration::from_secs(1)));
    assert_eq!(a.probes(), 1);
}

#[test]
fn a_reload_points_the_checker_at_the_new_targets() {
    let a = Killable::start("a");
    let b = Killable::start("b");
    let mut proxy = start_proxy(&[a.addr], |_| {});
    let mut next = Config::with_targets(vec![target(a.addr), target(b.addr)]);
    next.log_to_stdout = false;
    next.cache_size = 0;
    next.path_to_persistence = None;
    checks(&mut next);
    proxy.handle().control().reload(next).unwrap();
    assert!(wait_until(WAIT_LIMIT, || a.probes() >= 1 && b.probes() >= 1));
    assert!(proxy.shutdown(Duration::from_secs(1)));
}

/// A backend whose `/health` answers 400 unless Host is `host`, as a
/// Django app with ALLOWED_HOSTS or a name-based virtual host would;
/// anything else gets 200, `X-Backend: vhost` and the body `vhost`.
fn virtual_host(host: &'static str) -> Backend {
    Backend::start("vhost", move |seen, out| {
        if seen.path() != "/health" {
            respond(out, 200, &[("X-Backend", "vhost")], b"vhost");
        } else if seen.field_or("host", "") == host {
            respond(out, 200, &[], b"");
        } else {
            respond(out, 400, &[], b"unknown host");
        }
        Action::KeepAlive
    })
}

/// The Host field of every probe `backend` has received so far.
fn probe_hosts(backend: &Backend) -> Vec<String> {
    backend
        .seen()
        .iter()
        .filter(|seen| seen.path() == "/health")
        .map(|seen| seen.field_or("host", "(none)"))
        .collect()
}

/// The number of probes `backend` has received so far.
fn probes_seen(backend: &Backend) -> usize {
    probe_hosts(backend).len()
}

#[test]
fn probes_are_sent_with_health_check_method_and_a_head_s_answer_passes() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| {
        checks(c);
        c.health_check_method = "HEAD";
    });
    let probes = || -> Vec<String> {
        (a.seen().iter())
            .filter(|seen| seen.path() == "/health")
            .map(|seen| seen.method().to_string())
            .collect()
    };
    // fall = 2: had the probes failed, two of three would have taken it out.
    assert!(wait_until(WAIT_LIMIT, || probes().len() >= 3));
    assert!(probes().iter().all(|m| m == "HEAD"), "{:?}", probes());
    assert_eq!(get(&proxy, "/").0, 200);
}

#[test]
fn probes_send_health_check_host_and_a_backend_checking_host_stays_in() {
    let a = Killable::start("a");
    let v = virtual_host("www.example.com");
    let proxy = start_proxy(&[a.addr, v.addr], |c| {
        checks(c);
        c.health_check_host = Some("www.example.com".to_string());
    });
    // fall = 2: had the probes failed, two of three would have taken it out.
    assert!(wait_until(WAIT_LIMIT, || probes_seen(&v) >= 3));
    assert!(
        probe_hosts(&v).iter().all(|h| h == "www.example.com"),
        "{:?}",
        probe_hosts(&v)
    );
    // Round robin over two targets in rotation: every other request.
    let served = (0..4).filter(|_| get(&proxy, "/").1 == "vhost").count();
    assert_eq!(served, 2, "vhost out of rotation");
}

#[test]
fn without_health_check_host_probes_name_the_target_as_written() {
    let a = Killable::start("a");
    let v = virtual_host("www.example.com");
    let proxy = start_proxy(&[a.addr, v.addr], checks);
    // fall = 2: once a third probe has arrived, two have failed.
    assert!(wait_until(WAIT_LIMIT, || probes_seen(&v) >= 3));
    let written = v.addr.to_string();
    assert!(
        probe_hosts(&v).iter().all(|h| *h == written),
        "{:?}",
        probe_hosts(&v)
    );
    assert!(
        (0..6).all(|_| get(&proxy, "/").1 == "a"),
        "vhost in rotation"
    );
}

/// With `health_check_port`, the probes go to that port of each target's
/// address (a management port), naming it in their Host; the traffic
/// port sees none, and what the management port answers puts the
/// target down and back up.
#[test]
fn with_health_check_port_probes_go_to_the_management_port() {
    let a = Backend::echo("a");
    let well = Arc::new(AtomicBool::new(false));
    let said = well.clone();
    let management = Backend::start("management", move |_, out| {
        let status = if said.load(Ordering::SeqCst) {
            200
        } else {
            503
        };
        respond(out, status, &[], b"");
        Action::KeepAlive
    });
    let port = management.addr.port();
    let proxy = start_proxy(&[a.addr], |c| {
        checks(c);
        c.health_check_port = Some(port);
        c.admin_port = Some(0);
    });
    // fall = 2: once a third probe has arrived, two have failed.
    assert!(wait_until(WAIT_LIMIT, || probes_seen(&management) >= 3));
    assert_eq!(healthy(&proxy, a.addr), "false");
    let named = format!("127.0.0.1:{port}");
    assert!(probe_hosts(&management).iter().all(|h| *h == named));
    assert_eq!(probes_seen(&a), 0, "a probe reached the traffic port");
    // What the last probe found, in /status and on the page.
    let failed = r#""last_check":{"passed":false,"said":"status 503","s_ago":"#;
    assert!(proxy.target_status(a.addr).contains(failed));
    let page = admin_request(&proxy, "GET", "/", "127.0.0.1", "").body_str();
    assert!(page.contains("<td class=\"name\">status 503, "), "{page}");
    well.store(true, Ordering::SeqCst);
    assert!(wait_until(WAIT_LIMIT, || healthy(&proxy, a.addr) == "true"));
    assert_eq!(probes_seen(&a), 0, "a probe reached the traffic port");
    let passed = r#""last_check":{"passed":true,"said":"passed","s_ago":"#;
    assert!(proxy.target_status(a.addr).contains(passed));
}

/// `health_check_fast_interval` probes a target on its way down far
/// sooner than `health_check_interval` would; `health_check_down_interval`
/// spaces the probes of one that is down.
#[test]
fn a_failing_target_is_probed_at_the_fast_interval_and_once_down_at_the_down_one() {
    let a = Backend::echo("a");
    let b = Backend::start("b", |seen, out| {
        let status = if seen.path() == "/health" { 503 } else { 200 };
        respond(out, status, &[("X-Backend", "b")], b"b");
        Action::KeepAlive
    });
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        checks(c);
        c.admin_port = Some(0);
        // After the first probe, only the fast interval brings another
        // within the test, and only the down interval keeps them away.
        c.health_check_interval = Duration::from_secs(3600);
        c.health_check_fast_interval = Some(Duration::from_millis(20));
        c.health_check_down_interval = Some(Duration::from_secs(3600));
        c.health_check_fall = 3;
    });
    assert!(wait_until(WAIT_LIMIT, || healthy(&proxy, b.addr) == "false"));
    let probed = probes_seen(&b);
    assert_eq!(probed, 3, "down at the third failure");
    // Time for a few more at the fast interval: none comes.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        probes_seen(&b),
        probed,
        "probed at the fast interval while down"
    );
    assert_eq!(
        probes_seen(&a),
        1,
        "a target that passed waits the interval"
    );
    assert!((0..4).all(|_| get(&proxy, "/").1 == "a"), "b in rotation");
}

/// A target's own `check_port=N` wins over the pool's
/// `health_check_port` for it alone: each management port hears only
/// its target's probes, and each target is judged by its own.
#[test]
fn a_targets_check_port_wins_over_the_pools_health_check_port() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let pools_port = Backend::start("pool's", |_, out| {
        respond(out, 200, &[], b"");
        Action::KeepAlive
    });
    let bs_port = Backend::start("b's", |_, out| {
        respond(out, 503, &[], b"");
        Action::KeepAlive
    });
    let (shared, own) = (pools_port.addr.port(), bs_port.addr.port());
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        checks(c);
        c.health_check_port = Some(shared);
        c.targets[1].check_port = Some(own);
        c.admin_port = Some(0);
    });
    // fall = 2: once a third probe has arrived, two have failed.
    assert!(wait_until(WAIT_LIMIT, || probes_seen(&bs_port) >= 3));
    assert!(wait_until(WAIT_LIMIT, || probes_seen(&pools_port) >= 3));
    assert_eq!(healthy(&proxy, b.addr), "false");
    assert_eq!(healthy(&proxy, a.addr), "true");
    let named = |port: u16| format!("127.0.0.1:{port}");
    assert!(probe_hosts(&pools_port).iter().all(|h| *h == named(shared)));
    assert!(probe_hosts(&bs_port).iter().all(|h| *h == named(own)));
    assert_eq!(
        probes_seen(&a) + probes_seen(&b),
        0,
        "a probe reached a traffic port"
    );
    assert!((0..4).all(|_| get(&proxy, "/").1 == "a"), "b in rotation");
}

#[test]
fn a_reload_that_sets_health_check_host_brings_a_host_checking_target_back() {
    let a = Killable::start("a");
    let v = virtual_host("www.example.com");
    let proxy = start_proxy(&[a.addr, v.addr], checks);
    assert!(wait_until(WAIT_LIMIT, || probes_seen(&v) >= 3));
    assert!(
        (0..6).all(|_| get(&proxy, "/").1 == "a"),
        "vhost in rotation"
    );
    let next = reloaded(&[a.addr, v.addr], |c| {
        checks(c);
        c.health_check_host = Some("www.example.com".to_string());
    });
    proxy.handle().control().reload(next).unwrap();
    // Bounded: each round is one request, the deadline caps the rounds.
    assert!(
        wait_until(WAIT_LIMIT, || get(&proxy, "/").1 == "vhost"),
        "vhost never used again"
    );
    assert!(probe_hosts(&v).iter().any(|h| h == "www.example.com"));
}

/// `configure` applied to a config for `targets` like `start_proxy`'s.
fn reloaded(targets: &[SocketAddr], configure: impl FnOnce(&mut Config)) -> Config {
    let mut next = Config::with_targets(targets.iter().copied().map(target).collect());
    next.log_to_stdout = false;
    next.cache_size = 0;
    next.path_to_persistence = None;
    configure(&mut next);
    next
}

#[test]
fn a_reload_pointing_a_target_at_the_proxy_itself_is_refused() {
    // The new file names another port, which a reload does not apply:
    // the running listener would be a target of its own.
    let a = Killable::start("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    let next = reloaded(&[proxy.addr], |c| c.port = 1);
    let e = proxy.handle().control().reload(next).unwrap_err();
    assert!(e.to_string().contains("own address"), "{e}");
    assert_eq!(get(&proxy, "/").1, "a");
}

#[test]
fn a_backend_on_ipv6_at_the_port_of_an_ipv4_proxy_is_another_server() {
    if !has_ipv6_loopback() {
        return;
    }
    // `bind = 0.0.0.0` (the default) takes IPv4 alone: a backend on
    // [::1] at the proxy's port is another server, as nginx sees it.
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let six = Backend::echo_on(TcpListener::bind(("::1", port)).unwrap(), "six");
    let mut loader = Loader::new();
    let text = format!("port = {port}\ntargets = [::1]:{port}\n");
    loader.file("proxy.conf", &text).unwrap();
    let mut config = loader.build().unwrap();
    config.log_to_stdout = false;
    config.cache_size = 0;
    config.path_to_persistence = None;
    let handle = Server::start_on(listener, config.clone()).unwrap();
    let response = Client::connect(SocketAddr::from(([127, 0, 0, 1], port))).get("/");
    assert_eq!(response.header("x-backend"), Some("six"));
    // A reload to it is taken too.
    handle.control().reload(config).unwrap();
    assert_eq!(six.requests(), 1);
    handle.shutdown(Duration::from_secs(1));
}

#[test]
fn reloads_neither_restart_the_checks_count_nor_probe_at_once() {
    let a = Killable::start("a");
    let hourly = |c: &mut Config| {
        checks(c);
        c.health_check_interval = Duration::from_secs(3600);
        c.health_check_fall = 2;
    };
    a.healthy.store(false, Ordering::SeqCst);
    let proxy = start_proxy(&[a.addr], hourly);
    assert!(wait_until(WAIT_LIMIT, || a.probes() == 1));
    for _ in 0..10 {
        let next = reloaded(&[a.addr], hourly);
        proxy.handle().control().reload(next).unwrap();
    }
    // Nothing is due for an hour, whichever checker is in force.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(a.probes(), 1);
    // One failure of two so far: still in rotation.
    assert_eq!(get(&proxy, "/").1, "a");
}

#[test]
fn a_reload_s_checker_waits_for_a_probe_slower_than_the_interval() {
    // Each probe takes 200 ms, ten intervals: a reload's checker would
    // send its own beside the old checker's, were it not to wait.
    let probing = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (now, top) = (probing.clone(), most.clone());
    let a = Backend::start("a", move |seen, out| {
        if seen.path() == "/health" {
            let at_once = now.fetch_add(1, Ordering::SeqCst) + 1;
            top.fetch_max(at_once, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(200));
            // Before the answer: its probe cannot end before this.
            now.fetch_sub(1, Ordering::SeqCst);
        }
        respond(out, 200, &[("X-Backend", "a")], b"a");
        Action::KeepAlive
    });
    let proxy = start_proxy(&[a.addr], checks);
    let probes = || a.seen().iter().filter(|s| s.path() == "/health").count();
    for round in 1..=3 {
        assert!(wait_until(WAIT_LIMIT, || probing.load(Ordering::SeqCst) == 1));
        let next = reloaded(&[a.addr], checks);
        proxy.handle().control().reload(next).unwrap();
        assert!(wait_until(WAIT_LIMIT, || probes() > round));
    }
    assert_eq!(most.load(Ordering::SeqCst), 1);
    assert_eq!(get(&proxy, "/").1, "a");
}

#[test]
fn a_reload_that_turns_get_checks_off_or_to_connects_lets_go_of_the_targets_they_held_down() {
    // Off, or checks by connecting (which b, answering its GET 503,
    // passes): b comes back by the checks, not by a passive mark's end,
    // which is an hour away.
    for tcp in [false, true] {
        let a = Killable::start("a");
        let b = Killable::start("b");
        b.healthy.store(false, Ordering::SeqCst);
        let proxy = start_proxy(&[a.addr, b.addr], checks);
        // fall = 2: once a third probe has arrived, two have failed.
        assert!(wait_until(WAIT_LIMIT, || b.probes() >= 3));
        assert!((0..6).all(|_| get(&proxy, "/").1 == "a"));
        // The same passive settings.
        let next = reloaded(&[a.addr, b.addr], |c| {
            checks(c);
            c.health_check_path = None;
            c.health_check_tcp = tcp;
        });
        proxy.handle().control().reload(next).unwrap();
        assert!(
            wait_until(WAIT_LIMIT, || get(&proxy, "/").1 == "b"),
            "tcp {tcp}: b still held down"
        );
    }
}

// ---------------------------------------------------- checks by connecting

/// Checks by connecting alone (`health_check_tcp`), rise and fall 2. Only
/// they take a target out, and a failed request is not retried: a
/// request sent to a target that is down would be answered 502.
fn tcp_checks(config: &mut Config) {
    config.health_check_tcp = true;
    config.health_check_interval = Duration::from_millis(20);
    config.health_check_timeout = Some(Duration::from_secs(5));
    config.health_check_rise = 2;
    config.health_check_fall = 2;
    config.max_fails = 0;
    config.retries = Some(0);
    config.admin_port = Some(0);
}

/// `inverso_upstream_up` of the target at `addr` in `pool`.
fn up(proxy: &Proxy, addr: SocketAddr, pool: &str) -> Option<u64> {
    proxy.metric(&format!(
        "inverso_upstream_up{{target=\"{addr}\",pool=\"{pool}\"}}"
    ))
}

/// `healthy` in `/status` for the target at `addr`.
fn healthy(proxy: &Proxy, addr: SocketAddr) -> String {
    let object = proxy.target_status(addr);
    let (_, value) = object.split_once("\"healthy\":").expect("healthy");
    value.split(',').next().unwrap().to_string()
}

#[test]
fn a_target_whose_listener_closed_fails_its_tcp_checks_until_it_listens_again() {
    let a = Killable::start("a");
    let b = Killable::start("b");
    let proxy = start_proxy(&[a.addr, b.addr], tcp_checks);
    // Probes connect, send nothing and close: no request, no GET.
    assert!(wait_until(WAIT_LIMIT, || a.accepted() >= 3 && b.accepted() >= 3));
    assert_eq!(
        (a.requests(), a.probes(), b.requests(), b.probes()),
        (0, 0, 0, 0)
    );
    assert_eq!(up(&proxy, b.addr, "default"), Some(1));

    // Connecting is refused: out after `fall` probes, by the checks alone.
    b.kill();
    assert!(
        wait_until(WAIT_LIMIT, || up(&proxy, b.addr, "default") == Some(0)),
        "b never taken out"
    );
    assert_eq!(healthy(&proxy, b.addr), "false");
    for i in 0..20 {
        assert_eq!(
            get(&proxy, &format!("/{i}")),
            (200, "a".to_string()),
            "request {i}"
        );
    }
    assert_eq!(b.requests(), 0);

    // Listening again on the same port: back after `rise` probes.
    b.revive();
    assert!(
        wait_until(WAIT_LIMIT, || up(&proxy, b.addr, "default") == Some(1)),
        "b never back"
    );
    assert_eq!(healthy(&proxy, b.addr), "true");
    // Bounded: each round is one request, the deadline caps the rounds.
    assert!(
        wait_until(WAIT_LIMIT, || get(&proxy, "/back").1 == "b"),
        "b never used again"
    );
    assert_eq!(b.probes(), 0, "a GET probe was sent");
}

#[test]
fn a_target_that_accepts_and_never_answers_passes_its_tcp_checks() {
    // Accepts, holds every connection, and never reads or writes.
    let mute = TcpListener::bind("127.0.0.1:0").unwrap();
    let mute_addr = mute.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in mute.incoming().flatten() {
            held.push(stream);
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    let a = Killable::start("a");
    let proxy = start_proxy(&[a.addr, mute_addr], |c| {
        tcp_checks(c);
        // One failed probe would hold it out for the rest of the test.
        c.health_check_fall = 1;
        c.health_check_rise = 1000;
    });
    // A target's probes follow one another: by the third connect, the
    // first two have counted.
    assert!(wait_until(WAIT_LIMIT, || accepted.load(Ordering::SeqCst) >= 3));
    assert_eq!(up(&proxy, mute_addr, "default"), Some(1));
    assert_eq!(healthy(&proxy, mute_addr), "true");
}

#[test]
fn a_pool_checks_its_targets_by_connecting_and_the_top_level_is_not_checked() {
    let main = Backend::echo("main");
    let a = Backend::echo("a");
    let dead = dead_addr();
    let proxy = start_proxy(
        &[],
        from_file_with_admin(&format!(
            "targets = {}\nmax_fails = 0\nretries = 0\n\
             pool.checked = {}, {dead}\n\
             pool.checked.health_check_tcp = true\n\
             pool.checked.health_check_interval = 20ms\n\
             pool.checked.health_check_timeout = 5s\n\
             pool.checked.health_check_fall = 1\n\
             route./c/ = checked\n",
            main.addr, a.addr
        )),
    );
    assert!(
        wait_until(WAIT_LIMIT, || up(&proxy, dead, "checked") == Some(0)),
        "the dead target never taken out"
    );
    // The live one was connected to, and nothing was sent to it.
    assert!(wait_until(WAIT_LIMIT, || a.connections() >= 2));
    assert!(a.seen().is_empty(), "{:?}", a.seen());
    assert_eq!(up(&proxy, a.addr, "checked"), Some(1));
    for i in 0..6 {
        assert_eq!(
            get(&proxy, &format!("/c/{i}")),
            (200, "a".to_string()),
            "request {i}"
        );
    }
    // targets sets no check: never connected to but by a request.
    assert_eq!(main.connections(), 0);
    assert_eq!(get(&proxy, "/"), (200, "main".to_string()));
}

#[test]
fn a_reload_applies_max_fails_and_fail_timeout_to_the_targets_it_keeps() {
    let a = Killable::start("a");
    let b = Killable::start("b");
    let proxy = start_proxy(&[a.addr, b.addr], down_for_an_hour);
    b.kill();
    assert!((0..4).all(|i| get(&proxy, &format!("/{i}")).0 == 200));
    b.revive();
    assert!((0..6).all(|_| get(&proxy, "/").1 == "a"), "b is out");
    // A shorter fail_timeout: the count and the mark made under the old
    // settings are dropped, as an nginx reload would.
    let next = reloaded(&[a.addr, b.addr], |c| {
        c.max_fails = 1;
        c.fail_timeout = Duration::from_secs(1800);
    });
    proxy.handle().control().reload(next).unwrap();
    assert_eq!(
        (0..4).filter(|_| get(&proxy, "/").1 == "b").count(),
        2,
        "b still held out under the old settings"
    );
}

// ------------------------------- a target's own max_fails and fail_timeout

/// A backend that answers every request 503, which `counting_503s` makes
/// a failure of its target (the request then goes on to another): its
/// request count is its target's count of failures.
fn failing(name: &str) -> Backend {
    Backend::start(name, |_, out| {
        respond(out, 503, &[], b"busy");
        Action::KeepAlive
    })
}

/// A 503 is retried and counts toward `max_fails`; under the keys, one
/// failure takes a target out for an hour.
fn counting_503s(config: &mut Config) {
    config.retry_on_status = RetryOnStatus::parse("503").unwrap();
    down_for_an_hour(config);
}

/// `count` GETs, each answered by `good` (a failing target's 503 is
/// retried there).
#[track_caller]
fn all_answered_by_good(proxy: &Proxy, count: usize) {
    for i in 0..count {
        assert_eq!(get(proxy, &format!("/{i}")), (200, "good".into()), "{i}");
    }
}

#[test]
fn a_target_with_max_fails_0_is_never_taken_out_while_one_under_the_key_is() {
    let good = Backend::echo("good");
    let (never, keyed) = (failing("never"), failing("keyed"));
    let proxy = start_proxy(&[good.addr, never.addr, keyed.addr], |c| {
        counting_503s(c);
        c.targets[1].max_fails = Some(0);
    });
    all_answered_by_good(&proxy, 12);
    assert_eq!(keyed.requests(), 1, "max_fails = 1: out after its failure");
    // Round robin over `good` and `never` for the 11 others.
    assert!(
        never.requests() >= 4,
        "max_fails=0 taken out: {} request(s)",
        never.requests()
    );
}

#[test]
fn status_shows_each_target_its_own_max_fails_and_fail_timeout_or_the_keys() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        with_admin(c);
        c.max_fails = 2;
        c.fail_timeout = Duration::from_secs(10);
        c.targets[1].max_fails = Some(0);
        c.targets[1].fail_timeout = Some(Duration::from_secs(90));
    });
    let status = admin_request(&proxy, "GET", "/status", "127.0.0.1", "").body_str();
    let of = |addr: SocketAddr| {
        let at = status.find(&format!("\"name\":\"{addr}\"")).unwrap();
        status[at..].split('}').next().unwrap().to_string()
    };
    assert!(
        of(a.addr).contains("\"max_fails\":2,\"fail_timeout_ms\":10000,"),
        "{status}"
    );
    assert!(
        of(b.addr).contains("\"max_fails\":0,\"fail_timeout_ms\":90000,"),
        "{status}"
    );
}

#[test]
fn a_target_with_a_larger_max_fails_stays_in_after_one_failure() {
    let good = Backend::echo("good");
    let patient = failing("patient");
    let proxy = start_proxy(&[good.addr, patient.addr], |c| {
        counting_503s(c);
        c.targets[1].max_fails = Some(3);
    });
    all_answered_by_good(&proxy, 20);
    // In after its first and second failures, out after its third.
    assert_eq!(patient.requests(), 3);
}

#[test]
fn a_reload_changing_a_target_max_fails_puts_it_in_force() {
    let good = Backend::echo("good");
    let flaky = failing("flaky");
    let addrs = [good.addr, flaky.addr];
    let own = |max_fails: Option<u32>| {
        move |c: &mut Config| {
            counting_503s(c);
            c.targets[1].max_fails = max_fails;
        }
    };
    let proxy = start_proxy(&addrs, own(Some(0)));
    all_answered_by_good(&proxy, 10);
    let before = flaky.requests();
    assert!(before >= 3, "max_fails=0 taken out after {before}");
    // Its own max_fails=2 from now on: two more failures take it out.
    proxy.reload(&addrs, own(Some(2)));
    all_answered_by_good(&proxy, 10);
    assert_eq!(flaky.requests(), before + 2);
    // Without an option of its own: the key's max_fails = 1. The change
    // lets go of the mark made under max_fails=2 (as a change of the
    // key does), and one failure takes it out again.
    proxy.reload(&addrs, own(None));
    all_answered_by_good(&proxy, 10);
    assert_eq!(flaky.requests(), before + 3);
}

// ------------------------------------------------------------- bad backends

fn short_timeout(config: &mut Config) {
    config.connection_timeout = Duration::from_millis(300);
    // Keep every target in rotation: the tests choose targets by turn.
    config.max_fails = 0;
}

/// A backend that reads each request and then resets the connection
/// without a byte of response.
fn resetting_backend() -> Backend {
    Backend::start("reset", |_, out| {
        let _ = socket2::SockRef::from(&*out).set_linger(Some(Duration::ZERO));
        Action::Close
    })
}

/// Sends `request` on a new connection; the response must come, and come
/// before the client's own read timeout.
fn send(proxy: &Proxy, request: &[u8]) -> Response {
    let mut client = proxy.connect();
    client.send(request);
    client.response()
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
const POST: &[u8] = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";

/// The answer to `request` from a new proxy in front of `bad` then
/// `good`: round robin sends its first request to `bad`.
fn first_answer(bad: &Backend, good: &Backend, request: &[u8]) -> Response {
    let proxy = start_proxy(&[bad.addr, good.addr], short_timeout);
    send(&proxy, request)
}

/// With `bad` first in turn and a good echo backend after it: a GET is
/// retried there, a POST is answered `post_status` and never sent on.
#[track_caller]
fn assert_get_retried_post_answered(bad: &Backend, post_status: u16) {
    let good = Backend::echo("good");
    let response = first_answer(bad, &good, GET);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-backend"), Some("good"));
    assert_eq!(first_answer(bad, &good, POST).status, post_status);
    // After a timeout (a backend that never answers) nothing orders the
    // backend's reading of the request before the proxy's answer.
    assert!(
        wait_until(WAIT_LIMIT, || bad.requests() >= 2),
        "the bad backend did not get both requests"
    );
    assert_eq!(bad.requests(), 2);
    assert_eq!(good.requests(), 1);
}

#[test]
fn a_backend_that_never_answers_costs_a_get_a_retry_and_a_post_a_504() {
    let hang = Backend::start("hang", |_, _| Action::Hang);
    assert_get_retried_post_answered(&hang, 504);
}

#[test]
fn backend_timeout_bounds_the_wait_for_a_backend_apart_from_the_clients_timeout() {
    let slow = Backend::start("slow", |_, out| {
        std::thread::sleep(Duration::from_millis(1200));
        respond(out, 200, &[], b"late");
        Action::KeepAlive
    });
    // Clients idle out after 500 ms, yet the backend may take seconds.
    let patient = start_proxy(&[slow.addr], |c| {
        c.connection_timeout = Duration::from_millis(500);
        c.backend_timeout = Some(Duration::from_secs(10));
    });
    let response = send(&patient, GET);
    assert_eq!(
        (response.status, response.body_str().as_str()),
        (200, "late")
    );
    // Without it, connection_timeout bounds the backend too.
    let strict = start_proxy(&[slow.addr], |c| {
        c.connection_timeout = Duration::from_millis(500);
    });
    assert_eq!(send(&strict, GET).status, 504);
    // And a short one gives up on a backend long before clients idle out
    // (past the test client's own read timeout: it would fail first).
    let hang = Backend::start("hang", |_, _| Action::Hang);
    let proxy = start_proxy(&[hang.addr], |c| {
        c.connection_timeout = IO_TIMEOUT * 6;
        c.backend_timeout = Some(Duration::from_millis(300));
        c.max_fails = 0;
    });
    assert_eq!(send(&proxy, GET).status, 504);
}

#[test]
fn a_backend_answering_garbage_costs_a_get_a_retry_and_a_post_a_502() {
    let garbage = Backend::start("garbage", |_, out| {
        let _ = out.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n");
        Action::Close
    });
    assert_get_retried_post_answered(&garbage, 502);
}

#[test]
fn a_reset_before_the_response_costs_a_get_a_retry_and_a_post_a_502() {
    let reset = resetting_backend();
    // The backend may have acted on the POST: it is not sent twice.
    assert_get_retried_post_answered(&reset, 502);
}

/// The answer of the echo backend named `good` to `METHOD /big`: 200,
/// having received all of `body`.
#[track_caller]
fn assert_good_got_all(response: &Response, method: &str, body: &[u8]) {
    assert_eq!(response.status, 200);
    let expect = format!(
        "good {method} /big len={} fnv={:016x}",
        body.len(),
        fnv(body)
    );
    assert_eq!(response.body_str(), expect);
}

/// `METHOD /big` with `body`, whole.
fn request_to_big(method: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "{method} /big HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

#[test]
fn a_streamed_body_is_never_replayed_but_an_unsent_one_moves_on() {
    // Larger than what the proxy buffers: streamed to the backend.
    let body = pattern(200_000);
    let post = request_to_big("POST", &body);

    let reset = resetting_backend();
    let good = Backend::echo("good");
    assert_eq!(first_answer(&reset, &good, &post).status, 502);
    assert_eq!(reset.requests(), 1);
    assert_eq!(good.requests(), 0);

    // Connecting failed: nothing was read from the client yet, so the
    // request goes to the next target whole.
    let good = Backend::echo("good");
    let proxy = start_proxy(&[dead_addr(), good.addr], short_timeout);
    let response = send(&proxy, &post);
    assert_good_got_all(&response, "POST", &body);
}

#[test]
fn a_body_within_request_buffer_size_is_read_first_and_may_be_replayed() {
    let body = pattern(200_000);
    let put = request_to_big("PUT", &body);
    let reset = resetting_backend();
    let good = Backend::echo("good");
    // Streamed by default: once sent, it cannot be sent again.
    assert_eq!(first_answer(&reset, &good, &put).status, 502);
    // Read whole first, it goes to the next target after the reset.
    let proxy = start_proxy(&[reset.addr, good.addr], |c| {
        short_timeout(c);
        c.request_buffer_size = 1 << 20;
    });
    let response = send(&proxy, &put);
    assert_good_got_all(&response, "PUT", &body);
    assert_eq!(reset.requests(), 2);
}

/// `PUT /big` with `body` in chunks of 10,000 bytes.
fn chunked_put_to_big(body: &[u8]) -> Vec<u8> {
    let mut request =
        b"PUT /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for chunk in body.chunks(10_000) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    request
}

#[test]
fn a_chunked_body_within_request_buffer_size_may_be_replayed_and_a_longer_one_only_unsent() {
    let reset = resetting_backend();
    let good = Backend::echo("good");
    // Within the default 64 KiB: read whole first, so sent again after
    // the reset.
    let small = pattern(30_000);
    let response = first_answer(&reset, &good, &chunked_put_to_big(&small));
    assert_good_got_all(&response, "PUT", &small);
    assert_eq!(reset.requests(), 1);

    // Past it: streamed once its start is read, and never sent twice.
    let big = pattern(200_000);
    let put = chunked_put_to_big(&big);
    assert_eq!(first_answer(&reset, &good, &put).status, 502);
    assert_eq!(reset.requests(), 2);
    assert_eq!(good.requests(), 1);

    // A target that could not be reached got none of it: the next one
    // gets it whole, the start read before streaming included.
    let proxy = start_proxy(&[dead_addr(), good.addr], short_timeout);
    let response = send(&proxy, &put);
    assert_good_got_all(&response, "PUT", &big);
}

#[test]
fn retries_zero_answers_the_first_failure() {
    let good = Backend::echo("good");
    let proxy = start_proxy(&[dead_addr(), good.addr], |c| {
        c.retries = Some(0);
        c.max_fails = 0;
    });
    assert_eq!(send(&proxy, GET).status, 502);
    assert_eq!(send(&proxy, GET).status, 200);
}

// ---------------------------------------------------------------- max_conns

/// A backend that holds `/slow` until `release` opens and answers every
/// request with its path.
fn holding_backend(name: &str, release: &Gate) -> Backend {
    let release = release.clone();
    Backend::start(name, move |seen, out| {
        if seen.path() == "/slow" {
            release.wait();
        }
        respond(out, 200, &[("X-Backend", "x")], seen.path().as_bytes());
        Action::KeepAlive
    })
}

/// Sends `GET path` on a new connection without waiting for the answer.
fn ask(proxy: &Proxy, path: &str) -> Client {
    let mut client = proxy.connect();
    client.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    client
}

/// Sends `GET /slow`, which `a` holds, and waits until `a` has it: with
/// `max_conns=1`, `a` has no slot left.
fn take_the_slot(proxy: &Proxy, a: &Backend) -> Client {
    let slow = ask(proxy, "/slow");
    assert!(wait_until(WAIT_LIMIT, || a.requests() == 1));
    slow
}

/// Sends `GET path` and waits until the proxy has queued it, the `nth`
/// request queued since it started.
fn ask_in_line(proxy: &Proxy, path: &str, nth: u64) -> Client {
    let client = ask(proxy, path);
    assert!(wait_until(WAIT_LIMIT, || queued_total(proxy) == nth));
    client
}

/// Waits until the access log has a line containing `fragment`.
#[track_caller]
fn assert_logged_soon(proxy: &Proxy, fragment: &str) {
    assert!(wait_until(WAIT_LIMIT, || proxy
        .log_lines()
        .iter()
        .any(|l| l.contains(fragment))));
}

fn queued_total(proxy: &Proxy) -> u64 {
    let admin = proxy.handle().admin_addr().unwrap();
    let metrics = one_request(admin, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let text = metrics.body_str();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("inverso_upstream_queued_total "))
        .unwrap();
    line.parse().unwrap()
}

/// A proxy in front of `a` alone, with one slot there (`max_conns=1`)
/// and the admin listener for `queued_total`.
fn one_slot_proxy(a: &Backend) -> Proxy {
    start_proxy(&[a.addr], |c| {
        c.targets[0].max_conns = Some(1);
        c.admin_port = Some(0);
    })
}

#[test]
fn a_request_past_max_conns_waits_for_a_slot() {
    let release = Gate::new();
    let a = holding_backend("a", &release);
    let proxy = one_slot_proxy(&a);
    let mut slow = take_the_slot(&proxy, &a);
    let mut next = ask_in_line(&proxy, "/next", 1);
    // Waiting at the proxy, not sent to the busy backend.
    assert_eq!(a.requests(), 1);
    release.open();
    assert_eq!(slow.response().body, b"/slow");
    assert_eq!(next.response().body, b"/next");
    assert_eq!(a.requests(), 2);
}

/// The value of `/metrics`' line for `series` (its name and labels).
fn metric(proxy: &Proxy, series: &str) -> String {
    let admin = proxy.handle().admin_addr().unwrap();
    let metrics = one_request(admin, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let text = metrics.body_str();
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '));
    value
        .unwrap_or_else(|| panic!("no {series} in {text}"))
        .to_string()
}

/// With `max_queue`, a request past those waiting already is answered
/// 503 at once (`PQ`), and those waiting still get their slot; with 0,
/// none waits.
#[test]
fn a_request_past_max_queue_is_refused_at_once_and_those_in_line_served() {
    const QUEUE: &str = "inverso_pool_queue_current{pool=\"default\"}";
    let release = Gate::new();
    let a = holding_backend("a", &release);
    let mut proxy = start_proxy(&[a.addr], |c| {
        c.targets[0].max_conns = Some(1);
        c.admin_port = Some(0);
        // Far longer than the test: a 503 is the full queue's.
        c.queue_timeout = Some(Duration::from_secs(60));
        c.max_queue = Some(1);
        c.log_format =
            LogFormat::parse("$request_uri $status $termination $upstream_queue_time").unwrap();
    });
    let mut slow = take_the_slot(&proxy, &a);
    let mut next = ask_in_line(&proxy, "/next", 1);
    assert_eq!(metric(&proxy, QUEUE), "1");
    let status = admin_request(&proxy, "GET", "/status", "127.0.0.1", "").body_str();
    assert!(status.contains("\"usable\":1,\"queued\":1,"), "{status}");
    let refused = send(&proxy, b"GET /refused HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(refused.status, 503);
    assert_eq!(queued_total(&proxy), 1, "the refused one waited");
    release.open();
    assert_eq!(slow.response().body, b"/slow");
    assert_eq!(next.response().body, b"/next");
    assert!(wait_until(WAIT_LIMIT, || metric(&proxy, QUEUE) == "0"));
    let served: Vec<String> = a.seen().iter().map(|s| s.path().to_string()).collect();
    assert_eq!(served, ["/slow", "/next"]);
    drop((slow, next));
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert!(
        lines.iter().any(|l| l == "/refused 503 PQ 0.000"),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("/next 200 -- ")),
        "{lines:?}"
    );

    // None waits: the slot taken, the next is refused at once.
    let release = Gate::new();
    let a = holding_backend("a", &release);
    let proxy = start_proxy(&[a.addr], |c| {
        c.targets[0].max_conns = Some(1);
        c.queue_timeout = Some(Duration::from_secs(60));
        c.max_queue = Some(0);
    });
    let mut slow = take_the_slot(&proxy, &a);
    assert_eq!(send(&proxy, GET).status, 503);
    release.open();
    assert_eq!(slow.response().status, 200);
    assert_eq!(a.requests(), 1);
}

#[test]
fn requests_waiting_for_a_slot_get_it_in_the_order_they_came() {
    let release = Gate::new();
    let a = holding_backend("a", &release);
    let proxy = start_proxy(&[a.addr], |c| {
        c.targets[0].max_conns = Some(1);
        c.admin_port = Some(0);
        // The queue's timeout: none of these waits comes near it.
        c.connect_timeout = Some(Duration::from_secs(30));
    });
    let mut slow = take_the_slot(&proxy, &a);
    let mut line = Vec::new();
    for (n, path) in (1..).zip(["/1", "/2", "/gone", "/3"]) {
        line.push(ask_in_line(&proxy, path, n));
    }
    // One in the middle of the line leaves: those behind it still go.
    drop(line.remove(2));
    assert_logged_soon(&proxy, "\"GET /gone HTTP/1.1\" 499 ");
    release.open();
    assert_eq!(slow.response().body, b"/slow");
    for (client, path) in line.iter_mut().zip(["/1", "/2", "/3"]) {
        assert_eq!(client.response().body, path.as_bytes());
    }
    let served: Vec<String> = a.seen().iter().map(|s| s.path().to_string()).collect();
    assert_eq!(served, ["/slow", "/1", "/2", "/3"]);
}

#[test]
fn a_request_whose_client_left_while_it_waited_is_not_sent() {
    let release = Gate::new();
    let a = holding_backend("a", &release);
    let proxy = one_slot_proxy(&a);
    let mut slow = take_the_slot(&proxy, &a);
    let gone = ask_in_line(&proxy, "/gone", 1);
    drop(gone);
    assert_logged_soon(&proxy, "\"GET /gone HTTP/1.1\" 499 ");
    release.open();
    assert_eq!(slow.response().body, b"/slow");
    assert_eq!(a.requests(), 1);
}

#[test]
fn a_request_that_waits_past_the_queue_timeout_gets_503() {
    let release = Gate::new();
    let a = holding_backend("a", &release);
    let proxy = start_proxy(&[a.addr], |c| {
        c.targets[0].max_conns = Some(1);
        c.connect_timeout = Some(Duration::from_millis(200));
    });
    let mut slow = take_the_slot(&proxy, &a);
    assert_eq!(send(&proxy, GET).status, 503);
    assert_eq!(a.requests(), 1);
    release.open();
    assert_eq!(slow.response().status, 200);
}

/// Seconds as `$upstream_queue_time` writes them (`0.301`), in
/// milliseconds.
#[track_caller]
fn queued_millis(text: &str) -> u64 {
    let (whole, frac) = text.split_once('.').unwrap_or_else(|| panic!("{text}"));
    assert_eq!(frac.len(), 3, "{text}");
    whole.parse::<u64>().unwrap() * 1000 + frac.parse::<u64>().unwrap()
}

/// How long the gate stays closed on a request waiting for a slot: the
/// least its `$upstream_queue_time` may say.
const HELD: Duration = Duration::from_millis(300);

#[test]
fn a_request_that_waited_for_a_slot_logs_how_long_and_one_that_did_not_zero() {
    let release = Gate::new();
    let a = holding_backend("a", &release);
    let mut proxy = start_proxy(&[a.addr], |c| {
        c.targets[0].max_conns = Some(1);
        c.admin_port = Some(0);
        c.queue_timeout = Some(Duration::from_secs(30));
        c.log_format = LogFormat::parse("$request_uri $upstream_queue_time").unwrap();
    });
    let mut slow = take_the_slot(&proxy, &a);
    let mut next = ask_in_line(&proxy, "/next", 1);
    // Counted in the queue only once its wait had begun: it waits at
    // least as long as the slot is held from here.
    std::thread::sleep(HELD);
    release.open();
    assert_eq!(slow.response().body, b"/slow");
    assert_eq!(next.response().body, b"/next");
    drop((slow, next));
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let logged = |uri: &str| {
        let line = lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{uri} ")));
        line.unwrap_or_else(|| panic!("{uri} not in {lines:?}"))
            .to_string()
    };
    assert_eq!(logged("/slow"), "0.000", "{lines:?}");
    let waited = queued_millis(&logged("/next"));
    assert!(waited >= HELD.as_millis() as u64, "{lines:?}");
}

#[test]
fn a_request_the_queue_timed_out_logs_how_long_it_waited() {
    let release = Gate::new();
    let a = holding_backend("a", &release);
    let mut proxy = start_proxy(&[a.addr], |c| {
        c.targets[0].max_conns = Some(1);
        c.queue_timeout = Some(HELD);
        c.log_format =
            LogFormat::parse("$request_uri $status $termination $upstream_queue_time").unwrap();
    });
    let mut slow = take_the_slot(&proxy, &a);
    assert_eq!(send(&proxy, GET).status, 503);
    release.open();
    assert_eq!(slow.response().status, 200);
    drop(slow);
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    let timed_out = lines.iter().find_map(|l| l.strip_prefix("/ 503 sQ "));
    let timed_out = timed_out.unwrap_or_else(|| panic!("{lines:?}"));
    // As HAProxy's `Tw` with `sQ`: the whole queue_timeout, at least.
    assert!(
        queued_millis(timed_out) >= HELD.as_millis() as u64,
        "{lines:?}"
    );
}

#[test]
fn a_queue_timeout_longer_than_connect_timeout_keeps_a_request_waiting_past_it() {
    // HAProxy's `timeout connect 100ms` with `timeout queue 30s`: a dead
    // host is given up on at once, a busy one waited for.
    let connect_timeout = Duration::from_millis(100);
    let release = Gate::new();
    let a = holding_backend("a", &release);
    let proxy = start_proxy(&[a.addr], |c| {
        c.targets[0].max_conns = Some(1);
        c.admin_port = Some(0);
        c.connect_timeout = Some(connect_timeout);
        c.queue_timeout = Some(Duration::from_secs(30));
    });
    let mut slow = take_the_slot(&proxy, &a);
    let mut next = ask_in_line(&proxy, "/next", 1);
    // Past the connect timeout, by which a queue bound to it answers 503;
    // what this request gets does not depend on how long this is.
    std::thread::sleep(connect_timeout * 3);
    release.open();
    assert_eq!(slow.response().body, b"/slow");
    let next = next.response();
    assert_eq!(next.status, 200);
    assert_eq!(next.body, b"/next");
    assert_eq!(a.requests(), 2);
}

#[test]
fn a_request_waiting_for_a_busy_primary_is_not_sent_to_a_backup_and_times_out_as_any() {
    let release = Gate::new();
    let a = holding_backend("a", &release);
    let backup = Backend::echo("backup");
    let proxy = start_proxy(&[a.addr, backup.addr], |c| {
        c.targets[0].max_conns = Some(1);
        c.targets[1].backup = true;
        c.connect_timeout = Some(Duration::from_millis(200));
    });
    let mut slow = take_the_slot(&proxy, &a);
    // A backup stands in for a primary down, not busy: the request waits
    // for the primary (before, the free backup made it look for a slot
    // again and again, never asleep, past its queue's timeout).
    assert_eq!(send(&proxy, GET).status, 503);
    assert_eq!((a.requests(), backup.requests()), (1, 0));
    release.open();
    assert_eq!(slow.response().status, 200);
}

#[test]
fn a_reload_that_raises_max_conns_lets_in_those_waiting_and_those_after_them() {
    let release = Gate::new();
    let a = holding_backend("a", &release);
    let slots = |max: usize| {
        move |c: &mut Config| {
            c.targets[0].max_conns = Some(max);
            c.admin_port = Some(0);
            c.connect_timeout = Some(Duration::from_secs(30));
        }
    };
    let proxy = start_proxy(&[a.addr], slots(1));
    let mut slow = take_the_slot(&proxy, &a);
    let mut waiting = ask_in_line(&proxy, "/waiting", 1);
    // Three slots from now on: the one waiting since before the reload
    // takes one, and a request after it the next, while `/slow` holds
    // the first.
    proxy.reload(&[a.addr], slots(3));
    assert_eq!(waiting.response().body, b"/waiting");
    assert_eq!(send(&proxy, GET).status, 200);
    assert_eq!(queued_total(&proxy), 1);
    release.open();
    assert_eq!(slow.response().body, b"/slow");
}

#[test]
fn a_reload_that_shortens_queue_timeout_holds_for_the_requests_after_it_not_those_waiting() {
    let release = Gate::new();
    let a = holding_backend("a", &release);
    let queue = |timeout: Duration| {
        move |c: &mut Config| {
            c.targets[0].max_conns = Some(1);
            c.admin_port = Some(0);
            c.queue_timeout = Some(timeout);
        }
    };
    let short = Duration::from_millis(200);
    let proxy = start_proxy(&[a.addr], queue(Duration::from_secs(30)));
    let mut slow = take_the_slot(&proxy, &a);
    let mut waiting = ask_in_line(&proxy, "/waiting", 1);
    proxy.reload(&[a.addr], queue(short));
    // A request that comes after the reload has its timeout.
    assert_eq!(send(&proxy, GET).status, 503);
    // The one waiting since before it keeps its own deadline, 30 s:
    // well past the new one, it is still in line when the slot frees.
    std::thread::sleep(short * 3);
    release.open();
    assert_eq!(slow.response().body, b"/slow");
    let waited = waiting.response();
    assert_eq!(waited.status, 200);
    assert_eq!(waited.body, b"/waiting");
}

#[test]
fn requests_go_around_a_target_at_max_conns() {
    let release = Gate::new();
    let a = holding_backend("a", &release);
    let b = holding_backend("b", &release);
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        c.targets[0].max_conns = Some(1);
        c.max_fails = 0;
    });
    // Round robin sends the first to a, which then has no slot left.
    let mut slow = take_the_slot(&proxy, &a);
    for path in ["/x", "/y", "/z"] {
        assert_eq!(
            send(
                &proxy,
                format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()
            )
            .status,
            200
        );
    }
    assert_eq!((a.requests(), b.requests()), (1, 3));
    release.open();
    assert_eq!(slow.response().status, 200);
}

#[test]
fn a_full_target_is_waited_for_rather_than_its_backup_used() {
    let release = Gate::new();
    let a = holding_backend("a", &release);
    let spare = Backend::echo("spare");
    let proxy = start_proxy(&[a.addr, spare.addr], |c| {
        c.targets[0].max_conns = Some(1);
        c.targets[1].backup = true;
        c.admin_port = Some(0);
    });
    let mut slow = take_the_slot(&proxy, &a);
    let mut next = ask_in_line(&proxy, "/next", 1);
    release.open();
    assert_eq!(slow.response().body, b"/slow");
    assert_eq!(next.response().body, b"/next");
    assert_eq!((a.requests(), spare.requests()), (2, 0));
}

#[test]
fn a_background_revalidation_holds_its_slot_until_its_body_is_read() {
    let (active, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (head_sent, release) = (Arc::new(AtomicBool::new(false)), Gate::new());
    let backend = {
        let (active, most, head_sent, release) = (
            active.clone(),
            most.clone(),
            head_sent.clone(),
            release.clone(),
        );
        Backend::start("o", move |seen, out| {
            most.fetch_max(active.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            let swr = [
                ("Cache-Control", "max-age=1, stale-while-revalidate=1000"),
                ("Age", "100"),
            ];
            if seen.path() != "/swr" {
                respond(out, 200, &[("Cache-Control", "no-store")], b"other");
            } else if seen.head.has("if-none-match") {
                // The new body comes later: the revalidation is reading it.
                let head = "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nETag: \"v2\"\r\nContent-Length: 8\r\n\r\n";
                let _ = out.write_all(head.as_bytes());
                head_sent.store(true, Ordering::SeqCst);
                release.wait();
                let _ = out.write_all(b"new body");
            } else {
                respond(out, 200, &[swr[0], swr[1], ("ETag", "\"v1\"")], b"old body");
            }
            active.fetch_sub(1, Ordering::SeqCst);
            Action::KeepAlive
        })
    };
    let proxy = start_proxy(&[backend.addr], |c| {
        c.cache_size = 4 << 20;
        c.targets[0].max_conns = Some(1);
        c.admin_port = Some(0);
    });
    assert_eq!(proxy.exchange(|c| c.get("/swr")).status, 200);
    // Served stale, then revalidated on this connection's thread.
    let mut first = proxy.connect();
    assert_eq!(first.get("/swr").header("x-cache"), Some("STALE"));
    assert!(wait_until(WAIT_LIMIT, || head_sent.load(Ordering::SeqCst)));
    let mut other = ask_in_line(&proxy, "/other", 1);
    release.open();
    assert_eq!(other.response().body, b"other");
    assert_eq!(most.load(Ordering::SeqCst), 1, "max_conns=1 was passed");
}

// ------------------------------------------------------------ sticky_cookie

fn sticky(c: &mut Config) {
    c.sticky_cookie = Some("srv".into());
    c.max_fails = 1;
}

/// `GET /` with `cookie` (if any): the backend that answered, and the
/// `srv` cookie the response set (if it did).
fn get_sticky(proxy: &Proxy, cookie: Option<&str>) -> (String, Option<String>) {
    let mut client = proxy.connect();
    let response = match cookie {
        Some(value) => client.get_with("/", &[("Cookie", &format!("a=1; srv={value}"))]),
        None => client.get("/"),
    };
    assert_eq!(response.status, 200);
    let set = response.header("set-cookie").map(|v| {
        assert!(v.ends_with("; Path=/; HttpOnly"), "{v}");
        v.strip_prefix("srv=")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    });
    (response.header("x-backend").unwrap().to_string(), set)
}

fn unix_now() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.unwrap().as_secs()
}

/// A dated sticky cookie's id, last and first dates.
fn dates_of(value: &str) -> (String, u64, u64) {
    let parts: Vec<&str> = value.split('|').collect();
    assert_eq!(parts.len(), 3, "{value}");
    let date = |p: &str| u64::from_str_radix(p, 16).unwrap();
    (parts[0].to_string(), date(parts[1]), date(parts[2]))
}

#[test]
fn sticky_cookie_lifetimes_let_an_idle_or_old_client_go_and_keep_a_busy_one_dated() {
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let hour = 3600;
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        sticky(c);
        c.sticky_cookie_lifetimes = inverso::upstream::sticky::Lifetimes {
            max_idle: Some(hour),
            max_life: Some(8 * hour),
        };
    });
    let before = unix_now();
    let (home, set) = get_sticky(&proxy, None);
    let set = set.expect("the first response names its target");
    let (id, last, first) = dates_of(&set);
    let now = unix_now();
    assert!((before..=now).contains(&last) && first == last, "{set}");
    // As set, it holds the client, and is not set again at each response.
    for _ in 0..3 {
        assert_eq!(get_sticky(&proxy, Some(&set)), (home.clone(), None));
    }
    // Last refreshed twenty minutes ago, a quarter of max_idle past: the
    // client stays, told a new last date and its first one kept.
    let (served, renewed) = get_sticky(
        &proxy,
        Some(&format!("{id}|{:x}|{:x}", now - 1200, now - 2 * hour)),
    );
    assert_eq!(served, home);
    let (renewed_id, renewed_last, kept_first) = dates_of(&renewed.expect("renewed"));
    assert_eq!((renewed_id, kept_first), (id.clone(), now - 2 * hour));
    assert!(renewed_last >= now);
    // Idle two hours, or stuck nine though busy: let go. Balanced afresh
    // (round robin: both backends serve four such requests), each
    // response telling the client where it is now stuck, from now.
    let idle = format!("{id}|{:x}|{:x}", now - 2 * hour, now - 2 * hour);
    let old = format!("{id}|{:x}|{:x}", now - 60, now - 9 * hour);
    for cookie in [idle, old] {
        let served: HashSet<String> = (0..4)
            .map(|_| {
                let (served, set) = get_sticky(&proxy, Some(&cookie));
                let (_, last, first) = dates_of(&set.expect("stuck afresh"));
                assert!(last >= now && first >= now, "{cookie}");
                served
            })
            .collect();
        assert_eq!(served.len(), 2, "{cookie}: {served:?}");
    }
}

#[test]
fn a_single_sticky_cookie_lifetime_dates_the_cookie_by_the_clock() {
    // Either lifetime alone needs the clock, as both together do.
    for (max_idle, max_life) in [(Some(3600), None), (None, Some(3600))] {
        let a = Backend::echo("a");
        let proxy = start_proxy(&[a.addr], |c| {
            sticky(c);
            c.sticky_cookie_lifetimes = inverso::upstream::sticky::Lifetimes { max_idle, max_life };
        });
        let before = unix_now();
        let (_, set) = get_sticky(&proxy, None);
        let set = set.expect("the first response names its target");
        let now = unix_now();
        // `<id>|<last>` under max_idle, `<id>||<first>` under max_life.
        let parts: Vec<&str> = set.split('|').collect();
        let date = parts[if max_idle.is_some() { 1 } else { 2 }];
        let date = u64::from_str_radix(date, 16).unwrap();
        assert!((before..=now).contains(&date), "{set}");
    }
}

#[test]
fn a_sticky_cookie_keeps_a_client_on_the_target_that_served_it() {
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let proxy = start_proxy(&[a.addr, b.addr], sticky);
    let (first, id) = get_sticky(&proxy, None);
    let id = id.expect("the first response names its target");
    // Round robin alone would alternate; the cookie holds the client.
    for _ in 0..4 {
        assert_eq!(get_sticky(&proxy, Some(&id)), (first.clone(), None));
    }
    // Another client, without the cookie, is balanced as usual and told
    // where it landed.
    let (other, other_id) = get_sticky(&proxy, None);
    assert_ne!(other, first);
    assert_ne!(other_id.unwrap(), id);
    // A cookie that names no target is replaced.
    let (_, replaced) = get_sticky(&proxy, Some("0123456789abcdef"));
    assert!(replaced.is_some());
    // The cookie is the proxy's: backends see the application's alone.
    let seen = [a.seen(), b.seen()].concat();
    assert!(seen
        .iter()
        .all(|s| s.head.get("cookie").is_none_or(|c| c == "a=1")));
    assert!(seen.iter().any(|s| s.head.get("cookie") == Some("a=1")));
}

#[test]
fn a_client_stuck_to_a_target_that_is_down_moves_and_is_told() {
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let dead = dead_addr();
    let proxy = start_proxy(&[dead, a.addr, b.addr], |c| {
        sticky(c);
        c.max_fails = 1;
    });
    let dead_id = inverso::upstream::sticky::id_of(&dead.to_string());
    let (served, moved_to) = get_sticky(&proxy, Some(&dead_id));
    let moved_to = moved_to.expect("the cookie now names another target");
    assert_ne!(moved_to, dead_id);
    assert_eq!(get_sticky(&proxy, Some(&moved_to)), (served, None));
}

#[test]
fn a_client_stuck_to_a_backup_goes_back_once_the_others_can_serve() {
    let a = Backend::echo("a");
    let spare = Backend::echo("spare");
    let proxy = start_proxy(&[a.addr, spare.addr], |c| {
        sticky(c);
        c.targets[1].backup = true;
    });
    // Given during an outage of a.
    let spare_id = inverso::upstream::sticky::id_of(&spare.addr.to_string());
    let (served, now_stuck_to) = get_sticky(&proxy, Some(&spare_id));
    assert_eq!(served, "a");
    let a_id = inverso::upstream::sticky::id_of(&a.addr.to_string());
    assert_eq!(now_stuck_to.as_deref(), Some(a_id.as_str()));
    assert_eq!(spare.requests(), 0);
}

#[test]
fn a_client_stuck_to_a_full_target_waits_for_it() {
    let release = Gate::new();
    let a = holding_backend("a", &release);
    let b = holding_backend("b", &release);
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        sticky(c);
        c.targets[0].max_conns = Some(1);
        c.admin_port = Some(0);
    });
    let a_id = inverso::upstream::sticky::id_of(&a.addr.to_string());
    let mut slow = proxy.connect();
    slow.send(format!("GET /slow HTTP/1.1\r\nHost: x\r\nCookie: srv={a_id}\r\n\r\n").as_bytes());
    assert!(wait_until(WAIT_LIMIT, || a.requests() == 1));
    let mut next = proxy.connect();
    next.send(format!("GET /next HTTP/1.1\r\nHost: x\r\nCookie: srv={a_id}\r\n\r\n").as_bytes());
    // Waiting for a, not sent to b.
    assert!(wait_until(WAIT_LIMIT, || queued_total(&proxy) == 1));
    assert_eq!((a.requests(), b.requests()), (1, 0));
    release.open();
    assert_eq!(slow.response().body, b"/slow");
    assert_eq!(next.response().body, b"/next");
    assert_eq!((a.requests(), b.requests()), (2, 0));
}

/// A backend that keeps every request head as raw bytes (the shared test
/// backend reads heads as UTF-8) and answers with its name.
fn raw_head_backend(name: &'static str) -> (SocketAddr, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let heads: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let kept = heads.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let kept = kept.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        kept.lock().unwrap().push(buf.drain(..end + 4).collect());
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nX-Backend: {name}\r\nContent-Length: 0\r\n\r\n"
                        );
                        if stream.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                    match stream.read(&mut chunk) {
                        Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
            });
        }
    });
    (addr, heads)
}

#[test]
fn a_sticky_cookie_beside_a_cookie_that_is_not_utf_8_still_holds_and_stays_the_proxys() {
    let (a, a_heads) = raw_head_backend("a");
    let (b, b_heads) = raw_head_backend("b");
    let proxy = start_proxy(&[a, b], sticky);
    let b_id = inverso::upstream::sticky::id_of(&b.to_string());
    // Round robin alone would send one of two to a.
    for _ in 0..2 {
        let mut client = proxy.connect();
        let mut request =
            format!("GET / HTTP/1.1\r\nHost: x\r\nCookie: srv={b_id}\r\nCookie: lang=caf")
                .into_bytes();
        request.extend_from_slice(b"\xe9\r\n\r\n");
        client.send(&request);
        let response = client.response();
        assert_eq!(response.header("x-backend"), Some("b"));
        assert_eq!(response.header("set-cookie"), None);
    }
    assert!(a_heads.lock().unwrap().is_empty());
    let heads = b_heads.lock().unwrap();
    assert_eq!(heads.len(), 2);
    for head in heads.iter() {
        let cookies: Vec<&[u8]> = head
            .split(|&b| b == b'\n')
            .filter(|line| line.to_ascii_lowercase().starts_with(b"cookie:"))
            .collect();
        // The application's cookie as it came, the proxy's gone.
        assert_eq!(cookies, [&b"Cookie: lang=caf\xe9\r"[..]]);
    }
}

/// A backend answering with the `Cache-Control` the request asks for in
/// `X-Cc` (none without it).
fn cache_control_backend(name: &str) -> Backend {
    let me = name.to_string();
    Backend::start(name, move |seen, out| {
        let mut fields = vec![("X-Backend", me.as_str())];
        if let Some(cc) = seen.head.get("x-cc") {
            fields.push(("Cache-Control", cc));
        }
        respond(out, 200, &fields, b"ok");
        Action::KeepAlive
    })
}

/// The `Cache-Control` fields of `GET /` asking the backend for `cc`,
/// sending the sticky cookie `id` if given, and whether it set the cookie.
fn cache_control_of(proxy: &Proxy, cc: Option<&str>, id: Option<&str>) -> (Vec<String>, bool) {
    let cookie = id.map(|id| format!("srv={id}"));
    let fields: Vec<(&str, &str)> = [("X-Cc", cc), ("Cookie", cookie.as_deref())]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect();
    let response = proxy.connect().get_with("/", &fields);
    assert_eq!(response.status, 200);
    let all = response.head.get_all("cache-control").map(String::from);
    (all.collect(), response.header("set-cookie").is_some())
}

#[test]
fn sticky_cookie_nocache_marks_private_a_storable_response_that_sets_the_cookie() {
    let a = cache_control_backend("a");
    let id = inverso::upstream::sticky::id_of(&a.addr.to_string());
    let proxy = start_proxy(&[a.addr], |c| {
        sticky(c);
        c.sticky_cookie_nocache = true;
    });
    let private = |cc: &str| (vec![cc.to_string(), "private".to_string()], true);
    assert_eq!(
        cache_control_of(&proxy, Some("max-age=60"), None),
        private("max-age=60")
    );
    assert_eq!(
        cache_control_of(&proxy, Some("public, s-maxage=9"), None),
        private("public, s-maxage=9")
    );
    assert_eq!(
        cache_control_of(&proxy, None, None),
        (vec!["private".to_string()], true)
    );
    // no-cache still lets a shared cache store it (and revalidate).
    assert_eq!(
        cache_control_of(&proxy, Some("no-cache"), None),
        private("no-cache")
    );
    // Already kept from shared caches: as it came.
    for kept in ["private, max-age=5", "no-store", "Private=\"Set-Cookie\""] {
        assert_eq!(
            cache_control_of(&proxy, Some(kept), None),
            (vec![kept.to_string()], true)
        );
    }
    // A client already stuck gets no cookie, and the response as it came.
    assert_eq!(
        cache_control_of(&proxy, Some("max-age=60"), Some(&id)),
        (vec!["max-age=60".to_string()], false)
    );

    // The operator's Cache-Control is the one read.
    let set_by_operator = |value: &str| {
        let mut loader = Loader::new();
        let text = format!("targets = 127.0.0.1:1\nresponse_header.Cache-Control = {value}\n");
        loader.file("proxy.conf", &text).unwrap();
        let edits = loader.build().unwrap().response_headers;
        proxy.reload(&[a.addr], |c| {
            sticky(c);
            c.sticky_cookie_nocache = true;
            c.response_headers = edits;
        });
    };
    set_by_operator("no-store");
    assert_eq!(
        cache_control_of(&proxy, Some("max-age=60"), None),
        (vec!["no-store".to_string()], true)
    );
    set_by_operator("max-age=600");
    assert_eq!(
        cache_control_of(&proxy, Some("private"), None),
        private("max-age=600")
    );

    // Off (the default, as HAProxy's `insert` without `nocache`): left alone.
    proxy.reload(&[a.addr], sticky);
    assert_eq!(
        cache_control_of(&proxy, Some("max-age=60"), None),
        (vec!["max-age=60".to_string()], true)
    );
}

#[test]
fn sticky_cookie_attributes_go_in_the_set_cookie_line() {
    let a = Backend::echo("a");
    let mut loader = Loader::new();
    let text = format!(
        "targets = {}\nsticky_cookie = srv\nsticky_cookie_attributes = Secure; SameSite=Lax; Max-Age=1h\n",
        a.addr
    );
    loader.file("proxy.conf", &text).unwrap();
    let attributes = loader.build().unwrap().sticky_cookie_attributes;
    let proxy = start_proxy(&[a.addr], |c| {
        sticky(c);
        c.sticky_cookie_attributes = attributes;
    });
    let id = inverso::upstream::sticky::id_of(&a.addr.to_string());
    let response = proxy.connect().get("/");
    assert_eq!(
        response.header("set-cookie"),
        Some(format!("srv={id}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=3600").as_str())
    );
}

// --------------------------------------------------------- targets by name

#[test]
fn targets_are_given_by_name() {
    let ip = localhost_ip();
    let a = Killable::start_on("a", ip);
    let mut loader = Loader::new();
    loader
        .file(
            "proxy.conf",
            &format!(
                "targets = localhost:{}\ncache_size = 0\npath_to_persistence =\n",
                a.addr.port()
            ),
        )
        .unwrap();
    let mut config = loader.build().unwrap();
    assert_eq!(
        config.targets[0].name,
        format!("localhost:{}", a.addr.port())
    );
    config.log_to_stdout = false;
    let handle = Server::start_on(TcpListener::bind("127.0.0.1:0").unwrap(), config).unwrap();
    let response = Client::connect(handle.local_addr()).get("/");
    assert_eq!(response.header("x-backend"), Some("a"));
    handle.shutdown(Duration::from_secs(1));

    let mut loader = Loader::new();
    loader
        .file(
            "proxy.conf",
            "targets = 127.0.0.1:1, no-such-host.invalid:80\n",
        )
        .unwrap();
    let e = loader.build().unwrap_err();
    assert_eq!(e.place, "proxy.conf:1");
    assert!(
        e.message.contains("no-such-host.invalid:80") && e.message.contains("does not resolve"),
        "{e}"
    );
}

// ------------------------------------------- drain and maint (admin listener)

/// Every `balance` algorithm.
const ALGORITHMS: [Balance; 7] = [
    Balance::RoundRobin,
    Balance::WeightedRoundRobin,
    Balance::LeastConn,
    Balance::IpHash,
    Balance::UriHash,
    Balance::Hash,
    Balance::RandomTwo,
];

/// Sets `balance`; `hash` on the `Host` every request here sends, so that
/// each has a value to hash.
fn balance_by(c: &mut Config, balance: Balance) {
    c.balance = balance;
    if balance == Balance::Hash {
        c.hash_on = Some(HashOn::parse("header:Host").unwrap());
    }
}

fn with_admin(c: &mut Config) {
    c.admin_port = Some(0);
}

/// `method path` on the admin listener, with `host` and `body`.
fn admin_request(proxy: &Proxy, method: &str, path: &str, host: &str, body: &str) -> Response {
    let admin = proxy.handle().admin_addr().expect("admin listener");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    one_request(admin, request.as_bytes())
}

/// Sets `target`'s state (`ready`, `drain`, `maint`) and checks the answer.
#[track_caller]
fn set_state(proxy: &Proxy, target: impl std::fmt::Display, state: &str) {
    let path = format!("/targets/{target}");
    let response = admin_request(proxy, "PUT", &path, "127.0.0.1", state);
    assert_eq!(response.status, 200, "{}", response.body_str());
    let body = response.body_str();
    assert!(
        body.contains(&format!("\"admin_state\":\"{}\"", state.trim())),
        "{body}"
    );
}

/// The `admin_state` `GET /targets/<target>` reports.
fn state_of(proxy: &Proxy, target: impl std::fmt::Display) -> String {
    let response = admin_request(proxy, "GET", &format!("/targets/{target}"), "127.0.0.1", "");
    assert_eq!(response.status, 200, "{}", response.body_str());
    let body = response.body_str();
    let (_, rest) = body.split_once("\"admin_state\":\"").expect("admin_state");
    rest.split('"').next().unwrap().to_string()
}

/// The backends that answered `n` GETs, each on a new connection.
fn answers(proxy: &Proxy, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let (status, backend) = get(proxy, "/");
            assert_eq!(status, 200);
            backend
        })
        .collect()
}

#[test]
fn a_weight_given_on_the_admin_listener_counts_from_the_next_request_until_weight_is_edited() {
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let weighted = |c: &mut Config| {
        with_admin(c);
        c.balance = Balance::WeightedRoundRobin;
    };
    let proxy = start_proxy(&[a.addr, b.addr], weighted);
    let shares = |n: usize| {
        let served = answers(&proxy, n);
        let a_count = served.iter().filter(|name| *name == "a").count();
        (a_count, n - a_count)
    };
    assert_eq!(shares(8), (4, 4));
    let put = |body: &str| {
        admin_request(
            &proxy,
            "PUT",
            &format!("/targets/{}", a.addr),
            "127.0.0.1",
            body,
        )
    };
    let r = put("weight=3\n");
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert!(r.body_str().contains("\"weight\":3"), "{}", r.body_str());
    assert!(
        r.body_str().contains("\"previous_weight\":1"),
        "{}",
        r.body_str()
    );
    assert_eq!(shares(8), (6, 2));
    let status = admin_request(&proxy, "GET", "/status", "127.0.0.1", "").body_str();
    assert!(status.contains("\"weight\":3,"), "{status}");
    let gauge = |addr| format!("inverso_upstream_weight{{target=\"{addr}\",pool=\"default\"}}");
    assert_eq!(proxy.metric(&gauge(a.addr)), Some(3));
    assert_eq!(proxy.metric(&gauge(b.addr)), Some(1));
    // Refused: out of range, not a number, not a word it knows.
    for body in ["weight=0", "weight=10001", "weight=x", "weight=", "heavy=2"] {
        let r = put(body);
        assert_eq!(r.status, 400, "{body}: {}", r.body_str());
        assert!(
            r.body_str().contains("weight=N"),
            "{body}: {}",
            r.body_str()
        );
    }
    // A reload keeps it while `weight=` is as it was, and puts the
    // file's in force once it was edited.
    proxy.reload(&[a.addr, b.addr], weighted);
    assert_eq!(shares(8), (6, 2));
    proxy.reload(&[a.addr, b.addr], |c| {
        weighted(c);
        c.targets[0].weight = 2;
    });
    assert_eq!(shares(6), (4, 2));

    // `round_robin`, which weighs nothing, refuses one.
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        with_admin(c);
        c.balance = Balance::RoundRobin;
    });
    let path = format!("/targets/{}", a.addr);
    let r = admin_request(&proxy, "PUT", &path, "127.0.0.1", "weight=3");
    assert_eq!(r.status, 409, "{}", r.body_str());
    assert!(r.body_str().contains("round_robin"), "{}", r.body_str());
    let now = admin_request(&proxy, "GET", &path, "127.0.0.1", "").body_str();
    assert!(now.contains("\"weight\":1,"), "{now}");
}

#[test]
fn a_weight_given_at_run_time_moves_urls_to_that_target_under_uri_hash() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        with_admin(c);
        c.balance = Balance::UriHash;
    });
    let served_by = || -> Vec<bool> {
        (0..200)
            .map(|k| {
                let r = proxy.connect().get(&format!("/item/{k}"));
                r.header("x-backend") == Some("a")
            })
            .collect()
    };
    let before = served_by();
    let path = format!("/targets/{}", a.addr);
    let r = admin_request(&proxy, "PUT", &path, "127.0.0.1", "weight=4");
    assert_eq!(r.status, 200, "{}", r.body_str());
    let after = served_by();
    // Each URL a had stays on it, and about 4/5 go there now.
    assert!((before.iter().zip(&after)).all(|(&was_a, &is_a)| !was_a || is_a));
    let on_a = after.iter().filter(|&&a| a).count();
    assert!((125..=195).contains(&on_a), "{on_a} of 200");
    assert!(before.iter().filter(|&&a| a).count() <= 140);
}

#[test]
fn a_drained_target_gets_no_new_requests_whatever_the_algorithm() {
    for balance in ALGORITHMS {
        let a = Backend::echo("a");
        let b = Backend::echo("b");
        let proxy = start_proxy(&[a.addr, b.addr], |c| {
            with_admin(c);
            balance_by(c, balance);
        });
        set_state(&proxy, a.addr, "drain");
        assert_eq!(state_of(&proxy, a.addr), "drain", "{balance:?}");
        let served = answers(&proxy, 12);
        assert!(served.iter().all(|s| s == "b"), "{balance:?}: {served:?}");
        assert_eq!(a.requests(), 0, "{balance:?}");
    }
}

#[test]
fn ready_brings_a_drained_target_back_into_rotation() {
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let proxy = start_proxy(&[a.addr, b.addr], with_admin);
    set_state(&proxy, a.addr, "drain");
    assert!(answers(&proxy, 4).iter().all(|s| s == "b"));
    set_state(&proxy, a.addr, "ready");
    let served = answers(&proxy, 4);
    assert_eq!(tally(&served), HashMap::from([("a", 2), ("b", 2)]));
}

#[test]
fn the_admin_listener_sends_an_http_1_0_client_no_100_continue() {
    // RFC 9110 §10.1.1: a 100-continue expectation in an HTTP/1.0 request
    // is ignored, and §15.2: no 1xx goes to an HTTP/1.0 client. The body
    // never comes whole, so a `100 Continue` is all that could be sent.
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], with_admin);
    let admin = proxy.handle().admin_addr().unwrap();
    for version in ["1.1", "1.0"] {
        let mut client = Client::connect(admin);
        client.send(
            format!(
                "PUT /targets/{} HTTP/{version}\r\nHost: 127.0.0.1\r\n\
                 Expect: 100-continue\r\nContent-Length: 5\r\n\r\nre",
                a.addr
            )
            .as_bytes(),
        );
        client.finish_sending();
        let sent = String::from_utf8(client.read_until_closed()).unwrap();
        match version {
            "1.1" => assert_eq!(sent, "HTTP/1.1 100 Continue\r\n\r\n"),
            _ => assert_eq!(sent, "", "to HTTP/{version}"),
        }
    }
}

#[test]
fn under_slow_start_a_target_back_from_maintenance_gets_a_sliver_at_first() {
    for slow_start in [Duration::ZERO, Duration::from_secs(3600)] {
        let a = Backend::echo("a");
        let b = Backend::echo("b");
        let proxy = start_proxy(&[a.addr, b.addr], |c| {
            with_admin(c);
            c.slow_start = slow_start;
        });
        set_state(&proxy, a.addr, "maint");
        set_state(&proxy, a.addr, "ready");
        let answered = answers(&proxy, 200);
        let served = tally(&answered);
        let to_a = served.get("a").copied().unwrap_or(0);
        if slow_start.is_zero() {
            assert_eq!(to_a, 100, "{served:?}");
        } else {
            // A share of about 1/1000 an hour's first seconds in.
            assert!(to_a < 10, "{served:?}");
        }
    }
}

#[test]
fn a_request_in_flight_at_a_target_put_in_maintenance_finishes() {
    let release = Gate::new();
    let a = holding_backend("a", &release);
    let b = Backend::echo("b");
    let proxy = start_proxy(&[a.addr, b.addr], with_admin);
    // Round robin sends the first to a, which holds it.
    let mut slow = take_the_slot(&proxy, &a);
    set_state(&proxy, a.addr, "maint");
    let status = admin_request(
        &proxy,
        "GET",
        &format!("/targets/{}", a.addr),
        "127.0.0.1",
        "",
    );
    assert!(
        status.body_str().contains("\"in_flight\":1"),
        "{}",
        status.body_str()
    );
    assert_eq!(get(&proxy, "/x"), (200, "b".to_string()));
    release.open();
    assert_eq!(slow.response().body, b"/slow");
    assert_eq!(a.requests(), 1);
}

#[test]
fn a_sticky_client_keeps_its_drained_target_but_not_one_in_maintenance() {
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        sticky(c);
        with_admin(c);
    });
    let a_id = inverso::upstream::sticky::id_of(&a.addr.to_string());
    let b_id = inverso::upstream::sticky::id_of(&b.addr.to_string());
    set_state(&proxy, a.addr, "drain");
    for _ in 0..3 {
        assert_eq!(get_sticky(&proxy, Some(&a_id)), ("a".to_string(), None));
        // A client without the cookie goes elsewhere.
        assert_eq!(
            get_sticky(&proxy, None),
            ("b".to_string(), Some(b_id.clone()))
        );
    }
    set_state(&proxy, a.addr, "maint");
    assert_eq!(
        get_sticky(&proxy, Some(&a_id)),
        ("b".to_string(), Some(b_id.clone()))
    );
    assert_eq!(a.requests(), 3);
}

/// `field` (a boolean or a number) in `/status` for the target at `addr`.
fn status_of(proxy: &Proxy, addr: SocketAddr, field: &str) -> String {
    let status = admin_request(proxy, "GET", "/status", "127.0.0.1", "").body_str();
    let at = (status.find(&format!("\"name\":\"{addr}\"")))
        .unwrap_or_else(|| panic!("no {addr} in {status}"));
    let object = status[at..].split('}').next().unwrap();
    let (_, value) = (object.split_once(&format!("\"{field}\":"))).expect(field);
    value.split(',').next().unwrap().to_string()
}

#[test]
fn with_disable_on_404_a_target_whose_probe_gets_404_is_drained_until_one_passes() {
    // b's health path answers what `health` holds; requests, its name.
    let health = Arc::new(std::sync::atomic::AtomicU16::new(200));
    let answers = |name: &'static str, health: Arc<std::sync::atomic::AtomicU16>| {
        Backend::start(name, move |seen, out| {
            match seen.path() == "/health" {
                true => respond(out, health.load(Ordering::SeqCst), &[], b""),
                false => respond(out, 200, &[("X-Backend", name)], name.as_bytes()),
            }
            Action::KeepAlive
        })
    };
    let a = answers("a", Arc::new(200.into()));
    let b = answers("b", health.clone());
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        checks(c);
        sticky(c);
        with_admin(c);
        c.health_check_disable_on_404 = true;
    });
    let b_id = inverso::upstream::sticky::id_of(&b.addr.to_string());
    health.store(404, Ordering::SeqCst);
    assert!(wait_until(WAIT_LIMIT, || {
        status_of(&proxy, b.addr, "stopping") == "true"
    }));
    assert_eq!(status_of(&proxy, b.addr, "healthy"), "true");
    for _ in 0..5 {
        assert_eq!(get_sticky(&proxy, None).0, "a");
        // A client the sticky cookie ties to it still comes.
        assert_eq!(get_sticky(&proxy, Some(&b_id)), ("b".to_string(), None));
    }
    // Probes answered 404 are no failures: still up after many.
    let probes = |backend: &Backend| {
        backend
            .seen()
            .iter()
            .filter(|s| s.path() == "/health")
            .count()
    };
    let seen = probes(&b);
    assert!(wait_until(WAIT_LIMIT, || probes(&b) >= seen + 3));
    assert_eq!(status_of(&proxy, b.addr, "healthy"), "true");
    health.store(200, Ordering::SeqCst);
    assert!(
        wait_until(WAIT_LIMIT, || get_sticky(&proxy, None).0 == "b"),
        "b never given a new request again"
    );
    assert_eq!(status_of(&proxy, b.addr, "stopping"), "false");
}

#[test]
fn with_no_target_ready_requests_get_503_whatever_the_algorithm() {
    for balance in ALGORITHMS {
        let a = Backend::echo("a");
        let b = Backend::echo("b");
        let spare = Backend::echo("spare");
        let proxy = start_proxy(&[a.addr, b.addr, spare.addr], |c| {
            with_admin(c);
            balance_by(c, balance);
            c.targets[2].backup = true;
        });
        set_state(&proxy, a.addr, "drain");
        set_state(&proxy, b.addr, "maint");
        // The backup stands in for primaries drained or in maintenance.
        assert_eq!(get(&proxy, "/"), (200, "spare".to_string()), "{balance:?}");
        set_state(&proxy, spare.addr, "maint");
        for _ in 0..3 {
            assert_eq!(get(&proxy, "/").0, 503, "{balance:?}");
        }
        assert_eq!(a.requests() + b.requests(), 0, "{balance:?}");
        assert_eq!(spare.requests(), 1, "{balance:?}");
        set_state(&proxy, b.addr, "ready");
        assert_eq!(get(&proxy, "/"), (200, "b".to_string()), "{balance:?}");
    }
}

#[test]
fn a_target_in_maintenance_is_not_the_last_resort_when_the_others_are_down() {
    let b = Backend::echo("b");
    let dead = dead_addr();
    let proxy = start_proxy(&[dead, b.addr], |c| {
        with_admin(c);
        down_for_an_hour(c);
        c.retries = Some(0);
    });
    // The dead target fails once and is out for an hour.
    assert_eq!(get(&proxy, "/").0, 502);
    set_state(&proxy, b.addr, "maint");
    // Every target that may serve is down: the dead one is tried (the
    // one that failed longest ago), never the one in maintenance.
    assert_eq!(get(&proxy, "/").0, 502);
    assert_eq!(b.requests(), 0);
    set_state(&proxy, dead, "maint");
    assert_eq!(get(&proxy, "/").0, 503);
    assert_eq!(b.requests(), 0);
}

#[test]
fn a_request_waiting_for_the_slot_of_a_target_put_in_maintenance_is_answered_503() {
    let release = Gate::new();
    let a = holding_backend("a", &release);
    let proxy = start_proxy(&[a.addr], |c| {
        c.targets[0].max_conns = Some(1);
        with_admin(c);
        // Far beyond the test: only the state change ends the wait.
        c.connect_timeout = Some(Duration::from_secs(60));
    });
    let mut slow = take_the_slot(&proxy, &a);
    let mut next = ask_in_line(&proxy, "/next", 1);
    set_state(&proxy, a.addr, "maint");
    assert_eq!(next.response().status, 503);
    release.open();
    assert_eq!(slow.response().body, b"/slow");
    assert_eq!(a.requests(), 1);
}

#[test]
fn maintenance_closes_the_idle_connections_and_drain_keeps_them() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], with_admin);
    assert_eq!(get(&proxy, "/").0, 200);
    set_state(&proxy, a.addr, "drain");
    // Still pooled: a sticky client may need it.
    assert_eq!((a.connections(), a.closed()), (1, 0));
    set_state(&proxy, a.addr, "maint");
    assert!(wait_until(WAIT_LIMIT, || a.closed() == 1));
}

#[test]
fn health_checks_pause_while_a_target_is_in_maintenance() {
    let a = Killable::start("a");
    let b = Killable::start("b");
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        checks(c);
        with_admin(c);
    });
    assert!(wait_until(WAIT_LIMIT, || a.probes() >= 1));
    set_state(&proxy, a.addr, "maint");
    let (a_then, b_then) = (a.probes(), b.probes());
    // b's probes are the clock: several intervals go by.
    assert!(wait_until(WAIT_LIMIT, || b.probes() >= b_then + 5));
    // At most one probe of a's was under way as it went into maintenance.
    assert!(a.probes() <= a_then + 1, "{} > {}", a.probes(), a_then + 1);
    set_state(&proxy, a.addr, "ready");
    let resumed = a.probes();
    assert!(wait_until(WAIT_LIMIT, || a.probes() > resumed));
}

#[test]
fn a_target_written_down_gets_nothing_until_ready_or_a_reload_without_the_word() {
    let a = Killable::start("a");
    let b = Killable::start("b");
    let down = |c: &mut Config| {
        checks(c);
        with_admin(c);
        c.targets[0].down = true;
    };
    let proxy = start_proxy(&[a.addr, b.addr], down);
    assert_eq!(state_of(&proxy, a.addr), "maint");
    assert!(answers(&proxy, 4).iter().all(|s| s == "b"));
    // Not probed either: b's probes are the clock.
    assert!(wait_until(WAIT_LIMIT, || b.probes() >= 5));
    assert_eq!(a.probes(), 0);

    // A reload with the word as it was keeps what the operator set.
    set_state(&proxy, a.addr, "ready");
    let next = reloaded(&[a.addr, b.addr], down);
    proxy.handle().control().reload(next).unwrap();
    assert_eq!(state_of(&proxy, a.addr), "ready");
    // One that takes the word out lets it in, whatever the operator set.
    set_state(&proxy, a.addr, "maint");
    let next = reloaded(&[a.addr, b.addr], |c| {
        checks(c);
        with_admin(c);
    });
    proxy.handle().control().reload(next).unwrap();
    assert_eq!(state_of(&proxy, a.addr), "ready");
    assert!(wait_until(WAIT_LIMIT, || a.probes() >= 2));
    let served = answers(&proxy, 4);
    assert!(served.iter().any(|s| s == "a"), "{served:?}");
}

#[test]
fn the_state_survives_a_reload_for_the_targets_that_stay() {
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let c = Backend::echo("c");
    let proxy = start_proxy(&[a.addr, b.addr], with_admin);
    set_state(&proxy, a.addr, "drain");
    let next = reloaded(&[a.addr, b.addr, c.addr], with_admin);
    proxy.handle().control().reload(next).unwrap();
    assert_eq!(state_of(&proxy, a.addr), "drain");
    assert_eq!(state_of(&proxy, c.addr), "ready");
    let served = answers(&proxy, 6);
    assert_eq!(tally(&served), HashMap::from([("b", 3), ("c", 3)]));
}

#[test]
fn targets_are_named_as_in_status_by_name_or_address() {
    let a = Backend::echo("a");
    let b = Backend::echo("b");
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        with_admin(c);
        c.targets[0].name = "app-a.internal:8080".into();
    });
    set_state(&proxy, "app-a.internal:8080", "maint");
    assert_eq!(state_of(&proxy, a.addr), "maint");
    set_state(&proxy, a.addr, "drain\n");
    assert_eq!(state_of(&proxy, "app-a.internal:8080"), "drain");
    let status = admin_request(&proxy, "GET", "/status", "127.0.0.1", "").body_str();
    let of = |name: &str| {
        let at = status.find(&format!("\"name\":\"{name}\"")).unwrap();
        status[at..].split('}').next().unwrap().to_string()
    };
    assert!(
        of("app-a.internal:8080").contains("\"admin_state\":\"drain\""),
        "{status}"
    );
    assert!(
        of(&b.addr.to_string()).contains("\"admin_state\":\"ready\""),
        "{status}"
    );
    let metrics = admin_request(&proxy, "GET", "/metrics", "127.0.0.1", "").body_str();
    for (state, value) in [("ready", 0), ("drain", 1), ("maint", 0)] {
        let line = format!(
            "inverso_upstream_admin_state{{target=\"app-a.internal:8080\",pool=\"default\",state=\"{state}\"}} {value}"
        );
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
    assert!(metrics.contains("# TYPE inverso_upstream_admin_state gauge"));
}

#[test]
fn bad_target_state_requests_are_refused_and_change_nothing() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], with_admin);
    let path = format!("/targets/{}", a.addr);
    let unknown = admin_request(&proxy, "PUT", "/targets/10.9.9.9:80", "127.0.0.1", "drain");
    assert_eq!(unknown.status, 404);
    assert_eq!(
        admin_request(&proxy, "GET", "/targets/nope", "127.0.0.1", "").status,
        404
    );
    for body in ["", "drained", "ready maint", "{\"state\":\"drain\"}"] {
        let r = admin_request(&proxy, "PUT", &path, "127.0.0.1", body);
        assert_eq!(r.status, 400, "{body:?}");
    }
    for method in ["DELETE", "PATCH"] {
        let r = admin_request(&proxy, method, &path, "127.0.0.1", "drain");
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD, PUT"));
    }
    // DNS rebinding: a page whose name points at the admin listener
    // cannot take a target out.
    for host in ["evil.example", "evil.example:9901"] {
        let r = admin_request(&proxy, "PUT", &path, host, "maint");
        assert_eq!(r.status, 403, "{host}");
    }
    for host in ["localhost:9901", "[::1]:9901", "127.0.0.1"] {
        let r = admin_request(&proxy, "PUT", &path, host, "ready");
        assert_eq!(r.status, 200, "{host}");
    }
    assert_eq!(state_of(&proxy, a.addr), "ready");
    assert_eq!(get(&proxy, "/").0, 200);
}

#[test]
fn a_request_queued_before_its_target_was_drained_does_not_keep_that_targets_sticky_clients_waiting(
) {
    let (release_a, release_b) = (Gate::new(), Gate::new());
    let a = holding_backend("a", &release_a);
    // Holds past a client's read timeout: nothing but the fix frees `a`'s
    // slot for the sticky request while the request in line waits.
    let b = {
        let release = release_b.clone();
        Backend::start("b", move |seen, out| {
            if seen.path() == "/slow" {
                for _ in 0..3 {
                    if release.wait() {
                        break;
                    }
                }
            }
            respond(out, 200, &[], seen.path().as_bytes());
            Action::KeepAlive
        })
    };
    let proxy = start_proxy(&[a.addr, b.addr], |c| {
        sticky(c);
        with_admin(c);
        c.targets[0].max_conns = Some(1);
        c.targets[1].max_conns = Some(1);
        // Far beyond the test: no queue timeout frees anything.
        c.connect_timeout = Some(Duration::from_secs(60));
        c.backend_timeout = Some(Duration::from_secs(60));
    });
    let a_id = inverso::upstream::sticky::id_of(&a.addr.to_string());
    let b_id = inverso::upstream::sticky::id_of(&b.addr.to_string());
    let send = |path: &str, id: Option<&str>| {
        let mut client = proxy.connect();
        let cookie = id.map_or(String::new(), |id| format!("Cookie: srv={id}\r\n"));
        client.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n{cookie}\r\n").as_bytes());
        client
    };
    let mut slow_a = send("/slow", Some(&a_id));
    assert!(wait_until(WAIT_LIMIT, || a.requests() == 1));
    let mut slow_b = send("/slow", Some(&b_id));
    assert!(wait_until(WAIT_LIMIT, || b.requests() == 1));
    // In line for a slot at a or b.
    let mut waiting = send("/waiting", None);
    assert!(wait_until(WAIT_LIMIT, || queued_total(&proxy) == 1));
    set_state(&proxy, a.addr, "drain");
    release_a.open();
    assert_eq!(slow_a.response().body, b"/slow");
    // a's slot is free, and a drained target still serves its sticky
    // clients: the request in line, which may no longer go to a, is not
    // ahead of this one there.
    let mut stuck = send("/stuck", Some(&a_id));
    let answer = stuck.response();
    assert_eq!(
        (answer.status, answer.body.as_slice()),
        (200, &b"/stuck"[..])
    );
    release_b.open();
    assert_eq!(slow_b.response().body, b"/slow");
    assert_eq!(waiting.response().body, b"/waiting");
    assert_eq!(a.requests(), 2);
}

#[test]
fn a_request_sent_before_its_target_was_taken_out_does_not_bring_it_back() {
    // README: a target out for `max_fails` failures comes back when
    // `fail_timeout` is over, or when a request tried on it as the last
    // resort succeeds. A request that was already at the target when it
    // was taken out, and ends well later, is neither (nginx resets a
    // peer's failures only for a request that chose it after them).
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = Mutex::new(released);
    let b = Backend::start("b", move |seen, out| {
        match seen.path() {
            "/held" => {
                let _ = released
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(120));
            }
            "/bad" => return Action::Close,
            _ => {}
        }
        respond(out, 200, &[("X-Backend", "b")], b"b");
        Action::KeepAlive
    });
    let spare = Backend::echo("spare");
    let proxy = start_proxy(&[b.addr, spare.addr], |c| {
        down_for_an_hour(c);
        c.targets[1].backup = true;
    });
    let mut held = proxy.connect();
    held.send(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(wait_until(WAIT_LIMIT, || b.requests() == 1));
    // b fails another request: out for an hour, and the backup serves
    // (the failed GET too, retried there).
    assert_eq!(get(&proxy, "/bad"), (200, "spare".to_string()));
    assert_eq!(get(&proxy, "/after"), (200, "spare".to_string()));
    release.send(()).unwrap();
    assert_eq!(held.response().status, 200);
    let served: Vec<String> = (0..5)
        .map(|i| get(&proxy, &format!("/later/{i}")).1)
        .collect();
    assert!(served.iter().all(|s| s == "spare"), "{served:?}");
}

#[test]
fn a_bad_target_state_is_quoted_with_its_control_characters_escaped() {
    // A PUT body is a client's bytes, going to whoever reads the answer:
    // quoted with what a terminal would obey escaped.
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], with_admin);
    let path = format!("/targets/{}", a.addr);
    let body = "\u{1b}]0;pwned\u{7}\u{1b}[2J\rready\u{202e}";
    let r = admin_request(&proxy, "PUT", &path, "127.0.0.1", body);
    assert_eq!(r.status, 400);
    let text = r.body_str();
    assert!(
        !text
            .chars()
            .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}'),
        "{text:?}"
    );
}

/// `least_time_measure = last_byte` times an answer to its end, not to
/// its head: a backend whose head comes at once and whose body takes
/// long is the fast one by its heads, the slow one by its last bytes.
#[test]
fn least_time_by_last_byte_passes_over_the_target_whose_bodies_take_long() {
    let trickling = Backend::start("trickling", |_, out| {
        let _ =
            out.write_all(b"HTTP/1.1 200 OK\r\nX-Backend: trickling\r\nContent-Length: 9\r\n\r\n");
        let _ = out.flush();
        std::thread::sleep(Duration::from_millis(300));
        let _ = out.write_all(b"trickling");
        Action::KeepAlive
    });
    let late = Backend::start("late", |_, out| {
        std::thread::sleep(Duration::from_millis(60));
        respond(out, 200, &[("X-Backend", "late")], b"late");
        Action::KeepAlive
    });
    let served_by = |measure| {
        let proxy = start_proxy(&[trickling.addr, late.addr], |c| {
            c.balance = Balance::LeastTime;
            c.least_time_measure = measure;
        });
        let served = answers(&proxy, 8);
        served.iter().filter(|s| *s == "late").count()
    };
    // One at a time, each target measured once, then the one that
    // seems faster kept (a busy machine may slow an answer past the
    // other's once or twice).
    let by_head = served_by(LeastTimeMeasure::Header);
    assert!(by_head <= 3, "late served {by_head} of 8 timed by the head");
    let by_last_byte = served_by(LeastTimeMeasure::LastByte);
    assert!(
        by_last_byte >= 5,
        "late served {by_last_byte} of 8 timed by the last byte"
    );
}

#[test]
fn least_time_sends_requests_to_the_target_that_answers_faster() {
    let slow = Backend::start("slow", |_, out| {
        std::thread::sleep(Duration::from_millis(100));
        respond(out, 200, &[("X-Backend", "slow")], b"slow");
        Action::KeepAlive
    });
    let fast = Backend::echo("fast");
    let proxy = start_proxy(&[slow.addr, fast.addr], |c| {
        with_admin(c);
        c.balance = Balance::LeastTime;
    });
    // One at a time: least_conn would take turns. Each target is tried
    // once to be measured; then the slow one's time keeps it out until
    // it fades, seconds later (a busy machine may slow a fast answer
    // past it once or twice).
    let served = answers(&proxy, 20);
    let slow_served = served.iter().filter(|s| *s == "slow").count();
    assert!((1..=3).contains(&slow_served), "{served:?}");
    // `/status` shows the times it picks by: the slow one's near the
    // 100 ms it waits (faded a little since), the fast one's below.
    let status = admin_request(&proxy, "GET", "/status", "127.0.0.1", "").body_str();
    let response_ms = |addr: SocketAddr| -> f64 {
        let at = status
            .find(&format!("\"address\":\"{addr}\""))
            .expect(&status);
        let rest = &status[at..];
        let (_, value) = rest.split_once("\"response_ms\":").expect(&status);
        value
            .split(['}', ','])
            .next()
            .unwrap()
            .parse()
            .expect(&status)
    };
    assert!(response_ms(slow.addr) >= 50.0, "{status}");
    assert!(response_ms(fast.addr) < response_ms(slow.addr), "{status}");

    // Under least_conn, the same requests take turns.
    proxy.reload(&[slow.addr, fast.addr], |c| {
        with_admin(c);
        c.balance = Balance::LeastConn;
    });
    let served = answers(&proxy, 4);
    assert_eq!(
        served.iter().filter(|s| *s == "slow").count(),
        2,
        "{served:?}"
    );
}
