//! Targets written as names follow their name's address while the proxy
//! runs (`resolve_interval`). DNS cannot be changed from a test, so the
//! re-resolution step is driven directly with a resolver the test plays.

mod support;

use inverso::config::{Loader, Target};
use inverso::upstream::resolve;
use inverso::{Config, Server};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
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

    fn resolve(&self, name: &str) -> io::Result<SocketAddr> {
        assert_eq!(name, SVC, "only names are looked up");
        self.asked.fetch_add(1, Ordering::SeqCst);
        (*self.answer.lock().unwrap()).ok_or_else(|| io::ErrorKind::NotFound.into())
    }
}

/// Names the first target `SVC` (it stays at the address it was given).
fn named(c: &mut Config) {
    c.targets[0].name = SVC.into();
    c.admin_port = Some(0);
}

fn admin_get(proxy: &Proxy, path: &str) -> String {
    let admin = proxy.handle().admin_addr().expect("admin listener");
    let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n");
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
    let never = |name: &str| -> io::Result<SocketAddr> { panic!("{name} looked up") };
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
        let mut next = Config::with_targets(vec![
            Target {
                name: SVC.into(),
                addr: svc,
                weight: 1,
                backup: false,
                max_conns: None,
            },
            support::target(c.addr),
        ]);
        next.log_to_stdout = false;
        next.cache_size = 0;
        next.path_to_persistence = None;
        next.admin_port = Some(0);
        next
    };
    // A reload comes while the lookup is under way (it found b): the
    // reload's own address (a) stands, and its second target too.
    let racing = |name: &str| -> io::Result<SocketAddr> {
        assert_eq!(name, SVC);
        control.reload(reloaded(a.addr)).unwrap();
        Ok(b.addr)
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
