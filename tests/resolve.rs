//! Targets written as names follow their name's address while the proxy
//! runs (`resolve_interval`). DNS cannot be changed from a test, so the
//! re-resolution step is driven directly with a resolver the test plays.

mod support;

use inverso::config::{Found, Loader, Target};
use inverso::upstream::resolve;
use inverso::{Config, Server};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::srv_dns::SrvDns;
use support::*;

/// The name the tests' DNS knows.
const SVC: &str = "svc:1234";

/// A resolver that answers `SVC` with whatever the test put in it last,
/// or fails while it holds nothing; any other name is a test failure
/// (targets written as addresses are never looked up).
#[derive(Clone, Default)]
struct FakeDns {
    answer: Arc<Mutex<Option<SocketAddr>>>,
    asked: Arc<AtomicUsize>,
}

impl FakeDns {
    fn answering(addr: SocketAddr) -> FakeDns {
        let dns = FakeDns::default();
        dns.set(Some(addr));
        dns
    }

    fn set(&self, answer: Option<SocketAddr>) {
        *self.answer.lock().unwrap() = answer;
    }

    fn resolve(&self, name: &str) -> io::Result<Vec<Found>> {
        assert_eq!(name, SVC, "only names are looked up");
        self.asked.fetch_add(1, Ordering::SeqCst);
        let answer = *self.answer.lock().unwrap();
        answer
            .map(|addr| vec![addr.into()])
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }
}

/// Names the first target `SVC` (it stays at the address it was given).
fn named(c: &mut Config) {
    c.targets[0].name = SVC.into();
    c.admin_port = Some(0);
}

fn admin_get(proxy: &Proxy, path: &str) -> String {
    let admin = proxy.handle().admin_addr().expect("admin listener");
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    one_request(admin, request.as_bytes()).body_str()
}

fn backend_of(proxy: &Proxy) -> String {
    let response = proxy.connect().get("/");
    assert_eq!(response.status, 200);
    response.header("x-backend").unwrap_or_default().to_string()
}

#[test]
fn a_name_that_moves_is_followed_after_one_step() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let mut proxy = start_proxy(&[a.addr], |c| {
        named(c);
        c.upstream_keepalive = 4;
    });
    let control = proxy.handle().control();
    let dns = FakeDns::answering(a.addr);
    let step = |dns: &FakeDns| control.re_resolve(&|name: &str| dns.resolve(name));

    let mut client = proxy.connect();
    assert_eq!(client.get("/").header("x-backend"), Some("a"));
    assert_eq!(step(&dns), 0, "the same address: nothing to do");
    assert_eq!(client.get("/").header("x-backend"), Some("a"));
    assert_eq!(a.connections(), 1, "the idle connection to a was reused");

    dns.set(Some(b.addr));
    assert_eq!(step(&dns), 1);
    // The next request, even on the same client connection, goes to the
    // new address; the idle connection to the old one is closed.
    assert_eq!(client.get("/").header("x-backend"), Some("b"));
    assert_eq!(backend_of(&proxy), "b");
    assert!(wait_until(WAIT_LIMIT, || a.closed() == a.connections()));
    assert_eq!(a.requests(), 2);

    let status = admin_get(&proxy, "/status");
    assert!(
        status.contains(&format!("\"address\":\"{}\"", b.addr)),
        "{status}"
    );
    assert!(status.contains(&format!("\"name\":\"{SVC}\"")), "{status}");
    let metrics = admin_get(&proxy, "/metrics");
    assert!(
        metrics.contains("\n# TYPE inverso_target_address_changes_total counter\ninverso_target_address_changes_total 1\n"),
        "{metrics}"
    );
    // Counters go on by name across the move.
    assert!(
        status.contains("\"in_flight\":0,\"requests\":4,\"failures\":0"),
        "{status}"
    );
    drop(client);
    proxy.shutdown(Duration::from_secs(1));
}

#[test]
fn a_name_that_does_not_resolve_keeps_its_address() {
    let a = Backend::echo("a");
    let mut proxy = start_proxy(&[a.addr], named);
    let control = proxy.handle().control();
    let dns = FakeDns::default();
    for _ in 0..3 {
        assert_eq!(control.re_resolve(&|name: &str| dns.resolve(name)), 0);
        assert_eq!(backend_of(&proxy), "a");
    }
    assert_eq!(dns.asked.load(Ordering::SeqCst), 3);
    let status = admin_get(&proxy, "/status");
    assert!(
        status.contains(&format!("\"address\":\"{}\"", a.addr)),
        "{status}"
    );
    // Back, and moved meanwhile: followed.
    let b = Backend::echo("b");
    dns.set(Some(b.addr));
    assert_eq!(control.re_resolve(&|name: &str| dns.resolve(name)), 1);
    assert_eq!(backend_of(&proxy), "b");
    proxy.shutdown(Duration::from_secs(1));
}

#[test]
fn targets_written_as_addresses_are_never_looked_up() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let mut proxy = start_proxy(&[a.addr, b.addr], named);
    let control = proxy.handle().control();
    let dns = FakeDns::answering(a.addr);
    // FakeDns fails the test if asked for b's `127.0.0.1:PORT`.
    assert_eq!(control.re_resolve(&|name: &str| dns.resolve(name)), 0);
    assert_eq!(dns.asked.load(Ordering::SeqCst), 1);

    // Nor is the step taken at all when no target is a name.
    let mut plain = start_proxy(&[a.addr], |_| {});
    let never = |name: &str| -> io::Result<Vec<Found>> { panic!("{name} looked up") };
    assert_eq!(plain.handle().control().re_resolve(&never), 0);
    plain.shutdown(Duration::from_secs(1));
    proxy.shutdown(Duration::from_secs(1));
}

#[test]
fn a_moved_target_keeps_its_drain_state_and_starts_healthy() {
    let (a, b, c) = (Backend::echo("a"), Backend::echo("b"), Backend::echo("c"));
    let dead = dead_addr();
    let mut proxy = start_proxy(&[dead, c.addr], |conf| {
        named(conf);
        conf.max_fails = 1;
        conf.fail_timeout = Duration::from_secs(3600);
        conf.retries = Some(1);
    });
    let control = proxy.handle().control();
    // svc is at a dead address: one failure takes it out for an hour.
    for _ in 0..4 {
        assert_eq!(backend_of(&proxy), "c");
    }
    assert!(admin_get(&proxy, "/status").contains("\"healthy\":false"));
    let drain =
        format!("PUT /targets/{SVC} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\ndrain");
    let admin = proxy.handle().admin_addr().unwrap();
    assert_eq!(one_request(admin, drain.as_bytes()).status, 200);

    let dns = FakeDns::answering(a.addr);
    assert_eq!(control.re_resolve(&|name: &str| dns.resolve(name)), 1);
    let status = admin_get(&proxy, "/status");
    assert!(
        !status.contains("\"healthy\":false"),
        "another server: fresh health: {status}"
    );
    assert!(status.contains("\"admin_state\":\"drain\""), "{status}");
    for _ in 0..4 {
        assert_eq!(backend_of(&proxy), "c", "drained: no new request");
    }
    let ready =
        format!("PUT /targets/{SVC} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nready");
    assert_eq!(one_request(admin, ready.as_bytes()).status, 200);
    let mut seen: Vec<String> = (0..4).map(|_| backend_of(&proxy)).collect();
    seen.sort();
    assert_eq!(seen, ["a", "a", "c", "c"]);
    assert_eq!(a.requests(), 2);
    drop(b);
    proxy.shutdown(Duration::from_secs(1));
}

#[test]
fn lookups_overtaken_by_a_reload_are_dropped_and_the_next_step_builds_on_the_reload() {
    let (a, b, c) = (Backend::echo("a"), Backend::echo("b"), Backend::echo("c"));
    let mut proxy = start_proxy(&[a.addr], named);
    let control = proxy.handle().control();
    let reloaded = |svc: SocketAddr| {
        let mut next = Config::with_targets(vec![Target::new(SVC, svc), support::target(c.addr)]);
        next.log_to_stdout = false;
        next.cache_size = 0;
        next.path_to_persistence = None;
        next.admin_port = Some(0);
        next
    };
    // A reload comes while the lookup is under way (it found b): the
    // reload's own address (a) stands, and its second target too.
    let racing = |name: &str| -> io::Result<Vec<Found>> {
        assert_eq!(name, SVC);
        control.reload(reloaded(a.addr)).unwrap();
        Ok(vec![b.addr.into()])
    };
    assert_eq!(control.re_resolve(&racing), 0);
    let status = admin_get(&proxy, "/status");
    assert!(
        status.contains(&format!("\"address\":\"{}\"", a.addr)),
        "{status}"
    );
    assert!(
        status.contains(&format!("\"address\":\"{}\"", c.addr)),
        "{status}"
    );

    // The next step moves svc in the reloaded generation, keeping c.
    let dns = FakeDns::answering(b.addr);
    assert_eq!(control.re_resolve(&|name: &str| dns.resolve(name)), 1);
    let status = admin_get(&proxy, "/status");
    assert!(
        status.contains(&format!("\"address\":\"{}\"", b.addr)),
        "{status}"
    );
    assert!(
        status.contains(&format!("\"address\":\"{}\"", c.addr)),
        "{status}"
    );
    let mut seen: Vec<String> = (0..4).map(|_| backend_of(&proxy)).collect();
    seen.sort();
    assert_eq!(seen, ["b", "b", "c", "c"]);

    // And a reload after it puts its own addresses in force again.
    control.reload(reloaded(a.addr)).unwrap();
    let status = admin_get(&proxy, "/status");
    assert!(
        status.contains(&format!("\"address\":\"{}\"", a.addr)),
        "{status}"
    );
    proxy.shutdown(Duration::from_secs(1));
}

/// A backend on `ip` answering every request with 200 and `X-Backend: name`.
fn echo_on(ip: std::net::IpAddr, name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind(SocketAddr::new(ip, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
                let Ok(mut out) = stream.try_clone() else {
                    return;
                };
                let mut reader = Reader::new(stream);
                while let Ok(Some(_)) = reader.read_head() {
                    respond(&mut out, 200, &[("X-Backend", name)], name.as_bytes());
                }
            });
        }
    });
    addr
}

#[test]
fn localhost_targets_keep_serving_with_the_resolver_thread_on() {
    let ip = localhost_ip();
    let backend = echo_on(ip, "a");
    let mut loader = Loader::new();
    loader
        .file(
            "proxy.conf",
            &format!(
                "targets = localhost:{}\nresolve_interval = 1s\ncache_size = 0\npath_to_persistence =\n",
                backend.port()
            ),
        )
        .unwrap();
    let mut config = loader.build().unwrap();
    assert_eq!(config.resolve_interval, Some(Duration::from_secs(1)));
    config.log_to_stdout = false;
    let handle = Server::start_on(TcpListener::bind("127.0.0.1:0").unwrap(), config).unwrap();
    let control = handle.control();
    // The real step with the real resolver: localhost stays where it is.
    assert_eq!(control.re_resolve(&resolve::system), 0);
    // Requests for a while, the thread's steps among them or not: the
    // test says nothing of when those come, only that serving goes on.
    for _ in 0..50 {
        let response = Client::connect(handle.local_addr()).get("/");
        assert_eq!(response.header("x-backend"), Some("a"));
    }
    assert_eq!(control.re_resolve(&resolve::system), 0);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(handle.shutdown(Duration::from_secs(1)));
    });
    assert!(rx
        .recv_timeout(WAIT_LIMIT)
        .expect("shutdown did not return"));
}

/// The `resolve_interval` thread takes its steps itself, with the system
/// resolver: a target whose name gives another address than the one it
/// stands at moves there with no step driven by the test. A reload that
/// turns the interval on starts the thread.
#[test]
fn a_reload_that_sets_resolve_interval_has_names_followed_without_a_driven_step() {
    let a = Backend::echo("a");
    let b = echo_on(localhost_ip(), "b");
    // Written as localhost's name, standing at a's address.
    let at_a = |c: &mut Config| c.targets[0].name = format!("localhost:{}", b.port());
    let proxy = start_proxy(&[a.addr], at_a);
    // No interval, no thread: nothing looked the name up.
    assert_eq!(backend_of(&proxy), "a");
    proxy.reload(&[a.addr], |c| {
        at_a(c);
        c.resolve_interval = Some(Duration::from_secs(1));
    });
    let served_by_b = || proxy.connect().get("/").header("x-backend") == Some("b");
    assert!(
        wait_until(WAIT_LIMIT, served_by_b),
        "the name was not followed"
    );
}

/// A pool's target written as a name follows it as the top level's do,
/// and counts among the names that changed.
#[test]
fn a_pool_s_target_follows_its_name() {
    let (a, b, c) = (Backend::echo("a"), Backend::echo("b"), Backend::echo("c"));
    let from_text = from_file_with_admin(&format!(
        "targets = {}\npool.other = {}\nroute./p/ = other\n",
        a.addr, b.addr
    ));
    let proxy = start_proxy(&[], move |c| {
        from_text(c);
        c.pools[0].config.targets[0].name = SVC.into();
    });
    let dns = FakeDns::answering(c.addr);
    let changed = (proxy.handle().control()).re_resolve(&|name: &str| dns.resolve(name));
    assert_eq!(changed, 1);
    let response = proxy.connect().get("/p/x");
    assert_eq!(response.header("x-backend"), Some("c"));
    assert_eq!(backend_of(&proxy), "a");
}

// ------------------------------------------- a name giving several addresses

/// A resolver that answers `SVC` with every address the test put in it,
/// in the order it put them (as a DNS server rotating its answers may).
#[derive(Clone, Default)]
struct Replicas(Arc<Mutex<Vec<SocketAddr>>>);

impl Replicas {
    fn resolve(&self, name: &str) -> io::Result<Vec<Found>> {
        assert_eq!(name, SVC, "only names are looked up");
        Ok(self.0.lock().unwrap().iter().map(|&a| a.into()).collect())
    }
}

/// One re-resolution, `SVC` now giving `addrs`: how many names changed.
fn step(proxy: &Proxy, dns: &Replicas, addrs: &[SocketAddr]) -> usize {
    *dns.0.lock().unwrap() = addrs.to_vec();
    (proxy.handle().control()).re_resolve(&|name: &str| dns.resolve(name))
}

/// The name of `SVC`'s target at `addr` while it gives several addresses.
fn at(addr: SocketAddr) -> String {
    format!("{SVC}@{addr}")
}

/// The backends that answered `n` requests (each on a new connection),
/// sorted.
fn served(proxy: &Proxy, n: usize) -> Vec<String> {
    let mut seen: Vec<String> = (0..n).map(|_| backend_of(proxy)).collect();
    seen.sort();
    seen
}

#[test]
fn requests_are_spread_over_every_address_a_name_gives() {
    let (a, b, c) = (Backend::echo("a"), Backend::echo("b"), Backend::echo("c"));
    let mut proxy = start_proxy(&[a.addr], named);
    let dns = Replicas::default();
    assert_eq!(step(&proxy, &dns, &[c.addr, a.addr, b.addr]), 1);
    assert_eq!(
        served(&proxy, 9),
        ["a", "a", "a", "b", "b", "b", "c", "c", "c"]
    );
    // Each a target of its own, named by its address.
    let status = admin_get(&proxy, "/status");
    for backend in [&a, &b, &c] {
        let target = format!(
            "\"name\":\"{}\",\"address\":\"{}\"",
            at(backend.addr),
            backend.addr
        );
        assert!(status.contains(&target), "{status}");
    }
    assert!(!status.contains(&format!("\"name\":\"{SVC}\"")), "{status}");
    let metrics = admin_get(&proxy, "/metrics");
    for backend in [&a, &b, &c] {
        let line = format!(
            "\ninverso_upstream_requests_total{{target=\"{}\",pool=\"default\"}} 3\n",
            at(backend.addr)
        );
        assert!(metrics.contains(&line), "{metrics}");
    }
    assert!(
        metrics.contains("\ninverso_target_address_changes_total 1\n"),
        "{metrics}"
    );
    // Counted once per name, whatever number of its addresses came or went,
    // as its HELP says.
    assert!(
        metrics.contains(
            "\n# HELP inverso_target_address_changes_total Names whose set of addresses changed"
        ),
        "{metrics}"
    );

    // The same addresses in another order, one twice: no change.
    assert_eq!(step(&proxy, &dns, &[b.addr, c.addr, a.addr, b.addr]), 0);
    // Down to one: the target is named as written again.
    assert_eq!(step(&proxy, &dns, &[b.addr]), 1);
    assert_eq!(served(&proxy, 3), ["b", "b", "b"]);
    let status = admin_get(&proxy, "/status");
    let target = format!("\"name\":\"{SVC}\",\"address\":\"{}\"", b.addr);
    assert!(status.contains(&target), "{status}");
    assert!(!status.contains('@'), "{status}");
    proxy.shutdown(Duration::from_secs(1));
}

#[test]
fn an_address_that_comes_gets_requests_one_that_goes_none_and_the_others_keep_their_connections() {
    let (a, b, c) = (Backend::echo("a"), Backend::echo("b"), Backend::echo("c"));
    let mut proxy = start_proxy(&[a.addr], |conf| {
        named(conf);
        conf.upstream_keepalive = 4;
    });
    let dns = Replicas::default();
    assert_eq!(step(&proxy, &dns, &[a.addr, b.addr]), 1);
    let mut client = proxy.connect();
    let mut on_one_connection = |n: usize| {
        let mut seen: Vec<String> = (0..n)
            .map(|_| client.get("/").header("x-backend").unwrap().to_string())
            .collect();
        seen.sort();
        seen
    };
    assert_eq!(on_one_connection(4), ["a", "a", "b", "b"]);
    assert_eq!((a.connections(), b.connections()), (1, 1));

    // b goes, c comes.
    assert_eq!(step(&proxy, &dns, &[c.addr, a.addr]), 1);
    assert_eq!(on_one_connection(4), ["a", "a", "c", "c"]);
    assert_eq!(b.requests(), 2, "none to the address that went");
    assert!(
        wait_until(WAIT_LIMIT, || b.closed() == b.connections()),
        "its idle connection is closed"
    );
    assert_eq!(
        a.connections(),
        1,
        "the address that stayed kept its idle connection"
    );
    assert_eq!(c.connections(), 1);
    // And its counters.
    let metrics = admin_get(&proxy, "/metrics");
    let line = format!(
        "\ninverso_upstream_requests_total{{target=\"{}\",pool=\"default\"}} 4\n",
        at(a.addr)
    );
    assert!(metrics.contains(&line), "{metrics}");
    assert!(!metrics.contains(&at(b.addr)), "{metrics}");
    proxy.shutdown(Duration::from_secs(1));
}

#[test]
fn a_request_in_flight_at_an_address_that_goes_finishes_there() {
    let gate = Gate::new();
    let held = gate.clone();
    let slow = Backend::start("slow", move |seen, out| {
        if seen.path() == "/slow" {
            held.wait();
        }
        respond(out, 200, &[("X-Backend", "slow")], b"slow");
        Action::KeepAlive
    });
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let mut proxy = start_proxy(&[slow.addr], named);
    let dns = Replicas::default();
    let addr = proxy.addr;
    let waiting = std::thread::spawn(move || Client::connect(addr).get("/slow"));
    assert!(wait_until(WAIT_LIMIT, || slow.requests() == 1));

    assert_eq!(step(&proxy, &dns, &[a.addr, b.addr]), 1);
    assert_eq!(served(&proxy, 4), ["a", "a", "b", "b"]);
    gate.open();
    let response = waiting.join().unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body_str(), "slow");
    assert_eq!(slow.requests(), 1);
    proxy.shutdown(Duration::from_secs(1));
}

/// `GET /` with the sticky cookie `srv` set to `id` (if any): the backend
/// that answered, and the id the response set (if it did).
fn get_stuck(proxy: &Proxy, id: Option<&str>) -> (String, Option<String>) {
    let mut client = proxy.connect();
    let response = match id {
        Some(id) => client.get_with("/", &[("Cookie", &format!("srv={id}"))]),
        None => client.get("/"),
    };
    assert_eq!(response.status, 200);
    let set = response.header("set-cookie").map(|v| {
        let value = v.strip_prefix("srv=").unwrap();
        value.split(';').next().unwrap().to_string()
    });
    (response.header("x-backend").unwrap().to_string(), set)
}

#[test]
fn a_sticky_client_stays_with_its_address_as_the_name_gives_more() {
    use inverso::upstream::sticky::id_of;
    let (a, b, c) = (Backend::echo("a"), Backend::echo("b"), Backend::echo("c"));
    let mut proxy = start_proxy(&[a.addr], |conf| {
        named(conf);
        conf.sticky_cookie = Some("srv".into());
    });
    let dns = Replicas::default();
    let (first, id) = get_stuck(&proxy, None);
    assert_eq!(first, "a");
    let id = id.expect("a cookie");
    assert_eq!(
        id,
        id_of(SVC),
        "a name giving one address: as it always was"
    );

    // a is one of two now, named by its address: its clients stay, and
    // are given its new id.
    assert_eq!(step(&proxy, &dns, &[b.addr, a.addr]), 1);
    let renamed = id_of(&at(a.addr));
    for _ in 0..4 {
        assert_eq!(
            get_stuck(&proxy, Some(&id)),
            ("a".into(), Some(renamed.clone()))
        );
    }
    for _ in 0..4 {
        assert_eq!(get_stuck(&proxy, Some(&renamed)), ("a".into(), None));
    }
    let (_, b_id) = get_stuck(&proxy, Some(&id_of(&at(b.addr))));
    assert_eq!(b_id, None, "b's own id");

    // One more: a keeps its name, and its clients; so does b.
    assert_eq!(step(&proxy, &dns, &[a.addr, c.addr, b.addr]), 1);
    for _ in 0..4 {
        assert_eq!(get_stuck(&proxy, Some(&renamed)), ("a".into(), None));
        assert_eq!(
            get_stuck(&proxy, Some(&id)),
            ("a".into(), Some(renamed.clone()))
        );
        let b_id = id_of(&at(b.addr));
        assert_eq!(get_stuck(&proxy, Some(&b_id)), ("b".into(), None));
    }
    proxy.shutdown(Duration::from_secs(1));
}

#[test]
fn ip_hash_moves_only_the_clients_of_an_address_that_comes() {
    // The address that comes sorts first: the others' places in the list
    // change, their names and clients must not.
    let mut three = [Backend::echo("1"), Backend::echo("2"), Backend::echo("3")];
    three.sort_by_key(|backend| backend.addr);
    let [c, a, b] = three;
    let x = Backend::echo("x");
    let mut proxy = start_proxy(&[a.addr, x.addr], |conf| {
        named(conf);
        conf.balance = inverso::config::Balance::IpHash;
        conf.real_ip_from = vec![inverso::realip::Cidr::parse("127.0.0.0/8").unwrap()].into();
    });
    let dns = Replicas::default();
    assert_eq!(step(&proxy, &dns, &[a.addr, b.addr]), 1);
    let mut balancer = proxy.connect();
    let mut served = |client: usize| {
        let forwarded = format!("203.0.113.{client}");
        let r = balancer.get_with("/", &[("X-Forwarded-For", &forwarded)]);
        r.header("x-backend").unwrap().to_string()
    };
    let before: Vec<String> = (0..120).map(&mut served).collect();
    assert!(
        [&a, &b, &x].iter().all(|t| before.contains(&t.name)),
        "{before:?}"
    );

    assert_eq!(step(&proxy, &dns, &[c.addr, b.addr, a.addr]), 1);
    let after: Vec<String> = (0..120).map(&mut served).collect();
    let moved: Vec<(&String, &String)> = (before.iter().zip(&after))
        .filter(|(was, now)| was != now)
        .collect();
    assert!(!moved.is_empty(), "c takes some clients");
    assert!(
        moved.iter().all(|(_, now)| **now == c.name),
        "only to the address that came ({}): {moved:?}",
        c.name
    );
    drop(balancer);
    proxy.shutdown(Duration::from_secs(1));
}

#[test]
fn the_name_of_several_targets_stands_for_each_of_them_at_the_admin_listener() {
    let (a, b, c, d) = (
        Backend::echo("a"),
        Backend::echo("b"),
        Backend::echo("c"),
        Backend::echo("d"),
    );
    let mut proxy = start_proxy(&[a.addr], named);
    let dns = Replicas::default();
    let admin = proxy.handle().admin_addr().unwrap();
    let put = |id: &str, state: &str| {
        let request = format!(
            "PUT /targets/{id} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{state}",
            state.len()
        );
        one_request(admin, request.as_bytes())
    };
    assert_eq!(step(&proxy, &dns, &[a.addr, b.addr]), 1);
    let group = admin_get(&proxy, &format!("/targets/{SVC}"));
    // In the order of their addresses.
    let (first, second) = (a.addr.min(b.addr), a.addr.max(b.addr));
    assert!(
        group.starts_with(&format!(
            "{{\"name\":\"{SVC}\",\"targets\":[{{\"name\":\"{}\",",
            at(first)
        )),
        "{group}"
    );
    assert!(
        group.contains(&format!("}},{{\"name\":\"{}\",", at(second))),
        "{group}"
    );

    // Drained by the name: each of its targets.
    let drained = put(SVC, "drain");
    assert_eq!(drained.status, 200);
    let body = drained.body_str();
    assert_eq!(
        body.matches("\"admin_state\":\"drain\"").count(),
        2,
        "{body}"
    );
    assert_eq!(body.matches("\"previous\":\"ready\"").count(), 2, "{body}");
    assert_eq!(proxy.connect().get("/").status, 503, "no target ready");

    // An address that comes starts drained as the others are.
    assert_eq!(step(&proxy, &dns, &[a.addr, b.addr, c.addr]), 1);
    assert_eq!(proxy.connect().get("/").status, 503);
    // One of them by its own name.
    let ready = put(&at(c.addr), "ready");
    assert_eq!(ready.status, 200);
    assert!(
        ready
            .body_str()
            .starts_with(&format!("{{\"name\":\"{}\",", at(c.addr))),
        "{}",
        ready.body_str()
    );
    assert_eq!(served(&proxy, 2), ["c", "c"]);
    // The others differ now: the next address starts ready.
    assert_eq!(step(&proxy, &dns, &[a.addr, b.addr, c.addr, d.addr]), 1);
    let seen = served(&proxy, 8);
    assert!(seen.contains(&"d".to_string()), "{seen:?}");
    assert!(seen.iter().all(|s| s == "c" || s == "d"), "{seen:?}");
    assert_eq!((a.requests(), b.requests()), (0, 0));
    assert_eq!(put("nothing:80", "ready").status, 404);
    proxy.shutdown(Duration::from_secs(1));
}

// ------------------------------------------- a name that does not resolve yet

/// A name that resolves nowhere (RFC 6761 §6.4): the system resolver
/// fails it at once, at start-up and at a reload.
const NOT_YET: &str = "app.invalid:1234";

/// proxy.conf's lines that keep a name that does not resolve waiting.
const WAIT: &str = "unresolved_targets = wait\nresolve_interval = 1h\n";

/// A resolver that gives `NOT_YET` the address `at`; any other name is a
/// test failure.
fn giving(at: SocketAddr) -> impl Fn(&str) -> io::Result<Vec<Found>> {
    move |name: &str| {
        assert_eq!(name, NOT_YET, "only names are looked up");
        Ok(vec![Found::from(at)])
    }
}

fn not_resolving(name: &str) -> io::Result<Vec<Found>> {
    assert_eq!(name, NOT_YET, "only names are looked up");
    Err(io::ErrorKind::NotFound.into())
}

/// What a request gets from a proxy whose every target is down and
/// cannot be reached.
fn status_when_every_target_is_down() -> u16 {
    let mut down = start_proxy(&[dead_addr()], |_| {});
    let status = down.connect().get("/").status;
    down.shutdown(Duration::from_secs(1));
    status
}

#[test]
fn a_proxy_starts_with_a_name_that_does_not_resolve_and_serves_it_once_it_does() {
    let a = Backend::echo("a");
    let mut proxy = start_proxy(
        &[],
        from_file_with_admin(&format!("{WAIT}targets = {NOT_YET}\n")),
    );
    let control = proxy.handle().control();
    let all_down = status_when_every_target_is_down();
    assert_eq!(all_down, 502);
    for _ in 0..3 {
        assert_eq!(proxy.connect().get("/").status, all_down);
    }
    let status = admin_get(&proxy, "/status");
    assert!(
        status.contains(&format!(
            "{{\"name\":\"{NOT_YET}\",\"address\":null,\"pool\":\"default\",\"weight\":1,"
        )),
        "{status}"
    );
    assert!(status.contains("\"healthy\":false"), "{status}");
    // Still nothing: still waiting.
    assert_eq!(control.re_resolve(&not_resolving), 0);
    assert_eq!(proxy.connect().get("/").status, all_down);

    assert_eq!(control.re_resolve(&giving(a.addr)), 1);
    for _ in 0..3 {
        assert_eq!(backend_of(&proxy), "a");
    }
    let status = admin_get(&proxy, "/status");
    let target = format!("\"name\":\"{NOT_YET}\",\"address\":\"{}\"", a.addr);
    assert!(status.contains(&target), "{status}");
    assert!(!status.contains("\"address\":null"), "{status}");
    let metrics = admin_get(&proxy, "/metrics");
    assert!(
        metrics.contains("\ninverso_target_address_changes_total 1\n"),
        "{metrics}"
    );
    // From then on a name like any other: the same address, no change.
    assert_eq!(control.re_resolve(&giving(a.addr)), 0);
    proxy.shutdown(Duration::from_secs(1));
}

/// A pool of a name that resolves (`localhost`) and one that does not
/// serves from the first; the second joins it once it resolves.
#[test]
fn a_pool_with_one_name_resolved_and_one_not_serves_from_the_resolved_one() {
    let (top, c) = (Backend::echo("top"), Backend::echo("c"));
    let a = echo_on(localhost_ip(), "a");
    let proxy = start_proxy(
        &[],
        from_file_with_admin(&format!(
            "{WAIT}targets = {}\npool.app = localhost:{}, {NOT_YET}\nroute./app/ = app\n",
            top.addr,
            a.port()
        )),
    );
    let served = |n: usize| {
        let mut seen: Vec<String> = (0..n)
            .map(|_| {
                let response = proxy.connect().get("/app/x");
                assert_eq!(response.status, 200);
                response.header("x-backend").unwrap().to_string()
            })
            .collect();
        seen.sort();
        seen
    };
    assert_eq!(served(4), ["a", "a", "a", "a"]);
    let status = admin_get(&proxy, "/status");
    assert!(
        status.contains(&format!(
            "{{\"name\":\"{NOT_YET}\",\"address\":null,\"pool\":\"app\","
        )),
        "{status}"
    );
    let dns = |name: &str| match name {
        NOT_YET => Ok(vec![Found::from(c.addr)]),
        _ => resolve::system(name),
    };
    assert_eq!(proxy.handle().control().re_resolve(&dns), 1);
    assert_eq!(served(4), ["a", "a", "c", "c"]);
    assert_eq!(backend_of(&proxy), "top");
}

#[test]
fn a_reload_with_a_name_that_does_not_resolve_is_taken_with_wait_and_refused_with_refuse() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let mut proxy = start_proxy(&[a.addr], |c| c.admin_port = Some(0));
    let control = proxy.handle().control();
    let targets = format!("targets = {}, {NOT_YET}\n", a.addr);
    let refused = config_error(&format!("resolve_interval = 1h\n{targets}"));
    assert!(
        refused.starts_with("proxy.conf:2: targets: target `app.invalid:1234` does not resolve"),
        "{refused}"
    );
    let refused = config_error(&format!(
        "resolve_interval = 1h\nunresolved_targets = refuse\n{targets}"
    ));
    assert!(refused.contains("does not resolve"), "{refused}");

    let next = proxy.config_for(&[], from_file_with_admin(&format!("{WAIT}{targets}")));
    control.reload(next).unwrap();
    assert_eq!(served_by(&proxy, 4), ["a", "a", "a", "a"]);
    let status = admin_get(&proxy, "/status");
    assert!(
        status.contains(&format!("{{\"name\":\"{NOT_YET}\",\"address\":null,")),
        "{status}"
    );
    assert_eq!(control.re_resolve(&giving(b.addr)), 1);
    assert_eq!(served_by(&proxy, 4), ["a", "a", "b", "b"]);
    proxy.shutdown(Duration::from_secs(1));
}

/// A reload (SIGHUP) while a name that had addresses does not resolve
/// keeps them, as HAProxy's `init-addr last`: a DNS failure at that
/// moment does not empty its pool, under `wait` and `refuse` alike. A
/// name new to the reload has none to keep: refused, or waiting, as ever.
#[test]
fn a_reload_while_a_name_does_not_resolve_keeps_its_last_addresses() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    const NEW: &str = "new.invalid:1234";
    let mut proxy = start_proxy(
        &[],
        from_file_with_admin(&format!("{WAIT}targets = {NOT_YET}\n")),
    );
    let control = proxy.handle().control();
    assert_eq!(control.re_resolve(&giving(a.addr)), 1);
    assert_eq!(served_by(&proxy, 2), ["a", "a"]);
    // As SIGHUP reloads: the file read again, `NOT_YET` failing its
    // lookup then (`.invalid` never resolves).
    let reload = |text: &str| -> Result<(), String> {
        let tweak = from_file_keeping(text, control.last_addresses())?;
        let mut next = proxy.config_for(&[], tweak);
        next.admin_port = Some(0);
        control.reload(next).map(drop).map_err(|e| e.to_string())
    };

    reload(&format!("{WAIT}targets = {NOT_YET}\n")).unwrap();
    assert_eq!(served_by(&proxy, 2), ["a", "a"]);
    let status = admin_get(&proxy, "/status");
    let kept = format!("\"name\":\"{NOT_YET}\",\"address\":\"{}\"", a.addr);
    assert!(status.contains(&kept), "{status}");

    let refuse = "resolve_interval = 1h\nunresolved_targets = refuse\n";
    reload(&format!("{refuse}targets = {NOT_YET}, {}\n", b.addr)).unwrap();
    assert_eq!(served_by(&proxy, 4), ["a", "a", "b", "b"]);

    let e = reload(&format!("{refuse}targets = {NOT_YET}, {NEW}\n")).unwrap_err();
    assert!(
        e.contains(&format!("target `{NEW}` does not resolve")),
        "{e}"
    );
    reload(&format!("{WAIT}targets = {NOT_YET}, {NEW}\n")).unwrap();
    assert_eq!(served_by(&proxy, 2), ["a", "a"]);
    let status = admin_get(&proxy, "/status");
    assert!(status.contains(&kept), "{status}");
    assert!(
        status.contains(&format!("{{\"name\":\"{NEW}\",\"address\":null,")),
        "{status}"
    );
    proxy.shutdown(Duration::from_secs(1));
}

/// The backends that answered `n` requests, sorted.
fn served_by(proxy: &Proxy, n: usize) -> Vec<String> {
    let mut seen: Vec<String> = (0..n).map(|_| backend_of(proxy)).collect();
    seen.sort();
    seen
}

/// An `srv:` name without records waits as a name does, and the
/// `resolve_interval` thread itself, asking the DNS server the test
/// plays, gives it its addresses once the records are there: no step
/// driven by the test.
#[test]
fn an_srv_name_without_records_waits_for_them_and_the_thread_finds_them() {
    const SRV: &str = "_http._tcp.app.test";
    let a = Backend::echo("a");
    let dns = SrvDns::start();
    let proxy = start_proxy(
        &[],
        from_file_with_admin(&format!(
            "resolver = {}\nunresolved_targets = wait\nresolve_interval = 1s\n\
             targets = srv:{SRV}\n",
            dns.addr
        )),
    );
    assert_eq!(
        proxy.connect().get("/").status,
        status_when_every_target_is_down()
    );
    let status = admin_get(&proxy, "/status");
    assert!(
        status.contains(&format!("{{\"name\":\"srv:{SRV}\",\"address\":null,")),
        "{status}"
    );
    dns.host("node.test", std::net::Ipv4Addr::LOCALHOST);
    dns.set(SRV, &[(10, 1, a.addr.port(), "node.test")]);
    let served_by_a = || proxy.connect().get("/").header("x-backend") == Some("a");
    assert!(
        wait_until(WAIT_LIMIT, served_by_a),
        "the records were not followed"
    );
}
