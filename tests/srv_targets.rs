//! Targets written `srv:NAME`: their addresses and ports are those of the
//! SRV records a DNS server (`resolver`) gives, as Consul's, played here
//! by an in-process server on loopback.

mod support;

use std::net::Ipv4Addr;
use std::time::Duration;
use support::srv_dns::SrvDns;
use support::*;

/// The service the tests' DNS knows.
const SVC: &str = "_http._tcp.app.test";
const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// The DNS server, answering `SVC` with a record for each of `backends`
/// (priority 10), each at a host of its own whose address it gives.
fn dns_for(backends: &[&Backend]) -> SrvDns {
    let dns = SrvDns::start();
    let mut records = Vec::new();
    for (i, b) in backends.iter().enumerate() {
        let host = format!("node-{i}.test");
        dns.host(&host, LOOPBACK);
        records.push((10, 1, b.addr.port(), host));
    }
    let records: Vec<(u16, u16, u16, &str)> = (records.iter())
        .map(|(p, w, port, host)| (*p, *w, *port, host.as_str()))
        .collect();
    dns.set(SVC, &records);
    dns
}

fn backends_of(proxy: &Proxy, requests: usize) -> Vec<String> {
    let mut client = proxy.connect();
    (0..requests)
        .map(|_| {
            let response = client.get("/");
            assert_eq!(response.status, 200);
            response.header("x-backend").unwrap_or_default().to_string()
        })
        .collect()
}

fn admin_get(proxy: &Proxy, path: &str) -> String {
    let admin = proxy.handle().admin_addr().expect("admin listener");
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    one_request(admin, request.as_bytes()).body_str()
}

#[test]
fn requests_are_spread_over_the_addresses_of_the_lowest_priority_records() {
    let (a, b, standby) = (
        Backend::echo("a"),
        Backend::echo("b"),
        Backend::echo("standby"),
    );
    let dns = dns_for(&[&a, &b]);
    dns.host("standby.test", LOOPBACK);
    dns.set(
        SVC,
        &[
            (10, 1, a.addr.port(), "node-0.test"),
            (20, 1, standby.addr.port(), "standby.test"),
            (10, 9, b.addr.port(), "node-1.test"),
        ],
    );
    let conf = format!(
        "resolver = {}\ntargets = srv:{SVC} max_conns=50\n",
        dns.addr
    );
    let mut proxy = start_proxy(&[], from_file_with_admin(&conf));

    // Round robin over the two of priority 10, which has no notion of
    // weight.
    let seen = backends_of(&proxy, 4);
    assert_eq!(seen.iter().filter(|b| *b == "a").count(), 2, "{seen:?}");
    assert_eq!(seen.iter().filter(|b| *b == "b").count(), 2, "{seen:?}");
    assert_eq!(
        standby.requests(),
        0,
        "priority 20 is a backup, not taken while the others serve"
    );

    // Each a target named by the name and its address.
    let status = admin_get(&proxy, "/status");
    for backend in [&a, &b] {
        let name = format!("\"name\":\"srv:{SVC}@{}\"", backend.addr);
        assert!(status.contains(&name), "{status}");
    }
    // The whole name, at the admin listener, as a name's.
    let named = admin_get(&proxy, &format!("/targets/srv:{SVC}"));
    assert!(
        named.starts_with(&format!("{{\"name\":\"srv:{SVC}\"")),
        "{named}"
    );

    // A request without `Host` is sent the service's domain.
    let response = one_request(proxy.addr, b"GET /old HTTP/1.0\r\n\r\n");
    assert_eq!(response.status, 200);
    let last = [&a, &b]
        .iter()
        .flat_map(|b| b.seen())
        .find(|s| s.path() == "/old")
        .expect("the request went on");
    let port = [&a, &b]
        .iter()
        .find(|b| b.seen().iter().any(|s| s.path() == "/old"))
        .unwrap()
        .addr
        .port();
    assert_eq!(last.field_or("host", "-"), format!("app.test:{port}"));
    assert!(dns.udp_queries() >= 1);
    proxy.shutdown(Duration::from_secs(1));
}

#[test]
fn check_lists_each_address_and_a_truncated_reply_is_asked_again_over_tcp() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let dns = dns_for(&[&a, &b]);
    dns.truncate(true);
    let conf = format!(
        "resolver = {}\ntargets = srv:{SVC} weight=3\nbalance = least_conn\n",
        dns.addr
    );
    let (code, stdout, stderr) = inverso_check(&conf, "error");
    assert_eq!(code, Some(0), "{stderr}");
    let mut ports = [a.addr, b.addr];
    ports.sort();
    let expected = format!(
        "# target srv:{SVC} resolves to 2 addresses, each a target of its own:\n\
         # target srv:{SVC}@{0} -> {0} (weight 3)\n\
         # target srv:{SVC}@{1} -> {1} (weight 3)\n",
        ports[0], ports[1]
    );
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(
        stdout.contains(&format!("resolver = {} ", dns.addr)),
        "{stdout}"
    );
    assert!(dns.tcp_queries() >= 1, "asked again over TCP");
}

#[test]
fn a_name_without_records_stops_the_start_at_its_line() {
    let dns = SrvDns::start();
    dns.set("_http._tcp.empty.test", &[]);
    let nx = format!("no SRV records ({} knows no such name)", dns.addr);
    let cases = [
        ("_http._tcp.none.test", nx.as_str()),
        ("_http._tcp.empty.test", "no SRV records"),
    ];
    for (name, why) in cases {
        let conf = format!("resolver = {}\n\ntargets = srv:{name}\n", dns.addr);
        let e = config_error(&conf);
        assert_eq!(
            e,
            format!("proxy.conf:3: targets: target `srv:{name}` does not resolve: {why}"),
        );
        let (code, _, stderr) = inverso_check(&conf, "error");
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("proxy.conf:3: targets: target `srv:{name}`")),
            "{stderr}"
        );
    }
    // In a pool too; and only a `.` for a host: not available.
    dns.set("_http._tcp.gone.test", &[(1, 1, 80, ".")]);
    let conf = format!(
        "targets = 127.0.0.1:1\npool.api = srv:_http._tcp.gone.test\nresolver = {}\n",
        dns.addr
    );
    let e = config_error(&conf);
    assert!(e.starts_with("proxy.conf:2: pool.api: target `srv:_http._tcp.gone.test` does not resolve: no address"), "{e}");
}

#[test]
fn a_pool_of_srv_targets_is_routed_to() {
    let (a, other) = (Backend::echo("a"), Backend::echo("other"));
    let dns = dns_for(&[&a]);
    let conf = format!(
        "targets = {}\npool.api = srv:{SVC}\nroute./api/ = api\nresolver = {}\n",
        other.addr, dns.addr
    );
    let mut proxy = start_proxy(&[], from_file(&conf));
    let response = proxy.connect().get("/api/x");
    assert_eq!(response.header("x-backend"), Some("a"));
    proxy.shutdown(Duration::from_secs(1));
}

#[test]
fn with_resolve_interval_a_record_added_later_becomes_a_target() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let dns = dns_for(&[&a]);
    let conf = format!(
        "resolver = {}\ntargets = srv:{SVC}\nresolve_interval = 1s\n",
        dns.addr
    );
    let mut proxy = start_proxy(&[], from_file_with_admin(&conf));
    assert_eq!(backends_of(&proxy, 2), ["a", "a"]);

    // An instance registers: followed at the next interval, no reload.
    dns.host("node-1.test", LOOPBACK);
    dns.set(
        SVC,
        &[
            (10, 1, a.addr.port(), "node-0.test"),
            (10, 1, b.addr.port(), "node-1.test"),
        ],
    );
    assert!(
        wait_until(WAIT_LIMIT, || backends_of(&proxy, 2)
            .contains(&"b".to_string())),
        "b never became a target"
    );
    let status = admin_get(&proxy, "/status");
    assert!(
        status.contains(&format!("\"name\":\"srv:{SVC}@{}\"", b.addr)),
        "{status}"
    );

    // And the first goes away.
    dns.set(SVC, &[(10, 1, b.addr.port(), "node-1.test")]);
    assert!(
        wait_until(WAIT_LIMIT, || backends_of(&proxy, 2) == ["b", "b"]),
        "a stayed a target"
    );
    // While the records are gone, the last addresses stay.
    dns.set(SVC, &[]);
    let asked = dns.udp_queries();
    assert!(wait_until(WAIT_LIMIT, || dns.udp_queries() > asked + 1));
    assert_eq!(backends_of(&proxy, 2), ["b", "b"]);
    proxy.shutdown(Duration::from_secs(1));
}

#[test]
fn a_short_ttl_is_followed_long_before_resolve_interval() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let dns = dns_for(&[&a]);
    dns.ttl(1);
    let conf = format!(
        "resolver = {}\ntargets = srv:{SVC}\nresolve_interval = 1h\n",
        dns.addr
    );
    let mut proxy = start_proxy(&[], from_file(&conf));
    // Start-up's lookup read no TTL, so the name is asked again after the
    // floor; from that answer on its TTL says when.
    let asked = dns.udp_queries();
    assert!(
        wait_until(WAIT_LIMIT, || dns.udp_queries() > asked),
        "never asked again after start-up"
    );
    assert_eq!(backends_of(&proxy, 2), ["a", "a"]);

    // The instance moves: followed after its records' TTL, not the hour.
    dns.host("node-1.test", LOOPBACK);
    dns.set(SVC, &[(10, 1, b.addr.port(), "node-1.test")]);
    assert!(
        wait_until(WAIT_LIMIT, || backends_of(&proxy, 2) == ["b", "b"]),
        "the move was not followed"
    );
    proxy.shutdown(Duration::from_secs(1));
}

/// `SVC` answered with records of (priority, weight, backend).
fn dns_with(records: &[(u16, u16, &Backend)]) -> SrvDns {
    let dns = SrvDns::start();
    let hosts: Vec<String> = (0..records.len())
        .map(|i| format!("node-{i}.test"))
        .collect();
    for host in &hosts {
        dns.host(host, LOOPBACK);
    }
    let records: Vec<(u16, u16, u16, &str)> = (records.iter().zip(&hosts))
        .map(|(&(priority, weight, b), host)| (priority, weight, b.addr.port(), host.as_str()))
        .collect();
    dns.set(SVC, &records);
    dns
}

#[test]
fn the_records_of_a_higher_priority_are_backups_serving_while_the_others_are_down() {
    let (a, standby) = (Backend::echo("a"), Backend::echo("standby"));
    let dns = dns_with(&[(10, 1, &a), (20, 1, &standby)]);
    let conf = format!("resolver = {}\ntargets = srv:{SVC}\n", dns.addr);
    let mut proxy = start_proxy(&[], from_file(&conf));
    assert_eq!(backends_of(&proxy, 6), ["a"; 6]);
    assert_eq!(standby.requests(), 0);
    proxy.shutdown(Duration::from_secs(1));

    // The same records, the primary's port closed: the backup answers,
    // from the first request on (a retry).
    let down = dead_addr();
    dns.set(
        SVC,
        &[
            (10, 1, down.port(), "node-0.test"),
            (20, 1, standby.addr.port(), "node-1.test"),
        ],
    );
    let mut proxy = start_proxy(&[], from_file(&conf));
    assert_eq!(backends_of(&proxy, 4), ["standby"; 4]);
    proxy.shutdown(Duration::from_secs(1));
}

#[test]
fn the_records_weights_spread_requests_under_weighted_round_robin() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let dns = dns_with(&[(10, 3, &a), (10, 1, &b)]);
    let conf = format!(
        "resolver = {}\ntargets = srv:{SVC}\nbalance = weighted_round_robin\n",
        dns.addr
    );
    let mut proxy = start_proxy(&[], from_file(&conf));
    let served = backends_of(&proxy, 40);
    for window in served.windows(4) {
        let a_count = window.iter().filter(|n| *n == "a").count();
        assert_eq!(a_count, 3, "{served:?}");
    }
    assert_eq!((a.requests(), b.requests()), (30, 10));
    proxy.shutdown(Duration::from_secs(1));
}

#[test]
fn check_lists_each_addresss_weight_and_backup_from_its_record() {
    let (a, b, standby) = (
        Backend::echo("a"),
        Backend::echo("b"),
        Backend::echo("standby"),
    );
    let dns = dns_with(&[(10, 3, &a), (10, 0, &b), (20, 5, &standby)]);
    let name = |backend: &Backend| format!("srv:{SVC}@{0} -> {0}", backend.addr);
    // Under the default round robin too, though it reads no weight.
    for balance in ["", "balance = weighted_round_robin\n"] {
        let conf = format!("resolver = {}\ntargets = srv:{SVC}\n{balance}", dns.addr);
        let (code, stdout, stderr) = inverso_check(&conf, "error");
        assert_eq!(code, Some(0), "{stderr}");
        for line in [
            format!("# target srv:{SVC} resolves to 3 addresses, each a target of its own:"),
            format!("# target {} (weight 3)\n", name(&a)),
            format!("# target {} (weight 1)\n", name(&b)),
            format!("# target {} (weight 5, backup)\n", name(&standby)),
        ] {
            assert!(stdout.contains(&line), "{line} in {stdout}");
        }
    }

    // `weight=` written is every address's; `backup` written makes the
    // lowest priority's backups, and leaves the others out.
    let conf = format!(
        "resolver = {}\ntargets = 127.0.0.1:1, srv:{SVC} weight=2 backup\n\
         balance = weighted_round_robin\n",
        dns.addr
    );
    let (code, stdout, stderr) = inverso_check(&conf, "error");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!(
            "# target srv:{SVC} resolves to 2 addresses, each a target of its own:"
        )),
        "{stdout}"
    );
    for backend in [&a, &b] {
        let line = format!("# target {} (weight 2, backup)\n", name(backend));
        assert!(stdout.contains(&line), "{line} in {stdout}");
    }
    assert!(!stdout.contains(&standby.addr.to_string()), "{stdout}");
}

#[test]
fn a_host_that_does_not_resolve_is_left_out_with_a_warning_naming_it() {
    let a = Backend::echo("a");
    let dns = dns_with(&[(10, 1, &a)]);
    // A name with a space is no host name: never asked of the system
    // resolver, it does not resolve without a lookup on the network.
    dns.set(
        SVC,
        &[
            (10, 1, a.addr.port(), "node-0.test"),
            (10, 1, 8000, "no host.test"),
        ],
    );
    let conf = format!("resolver = {}\ntargets = srv:{SVC}\n", dns.addr);
    let (code, stdout, stderr) = inverso_check(&conf, "warn");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("# target srv:{SVC} -> {} (weight 1)", a.addr)),
        "{stdout}"
    );
    let warned: Vec<&str> = (stderr.lines())
        .filter(|l| l.contains("do not resolve"))
        .collect();
    assert_eq!(warned.len(), 1, "{stderr}");
    assert!(
        warned[0].contains("left out: no\\032host.test (no host name)"),
        "{stderr}"
    );

    // None resolves: the start stops, naming it.
    dns.set(SVC, &[(10, 1, 8000, "no host.test")]);
    let e = config_error(&conf);
    assert!(
        e.ends_with("its SRV record's host no\\032host.test does not resolve: no host name"),
        "{e}"
    );
}

fn admin_put(proxy: &Proxy, path: &str, body: &str) -> Response {
    let admin = proxy.handle().admin_addr().expect("admin listener");
    let request = format!(
        "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    one_request(admin, request.as_bytes())
}

#[test]
fn with_resolve_interval_a_records_new_priority_and_weight_are_followed() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let dns = dns_with(&[(10, 1, &a), (20, 1, &b)]);
    let conf = format!(
        "resolver = {}\ntargets = srv:{SVC}\nresolve_interval = 1s\n\
         balance = weighted_round_robin\n",
        dns.addr
    );
    let mut proxy = start_proxy(&[], from_file_with_admin(&conf));
    assert_eq!(backends_of(&proxy, 4), ["a"; 4]);
    let records = |a_record: (u16, u16), b_record: (u16, u16)| {
        dns.set(
            SVC,
            &[
                (a_record.0, a_record.1, a.addr.port(), "node-0.test"),
                (b_record.0, b_record.1, b.addr.port(), "node-1.test"),
            ],
        );
    };
    let target = |backend: &Backend| format!("/targets/srv:{SVC}@{}", backend.addr);
    let weight_of = |backend: &Backend| {
        let listed = admin_get(&proxy, &target(backend));
        let at = listed.find("\"weight\":").expect("a weight") + "\"weight\":".len();
        listed[at..]
            .split([',', '}'])
            .next()
            .unwrap_or_default()
            .to_string()
    };

    // The priorities swap: b is the primary, a its backup.
    records((20, 1), (10, 1));
    assert!(
        wait_until(WAIT_LIMIT, || backends_of(&proxy, 2) == ["b", "b"]),
        "b never became the primary"
    );
    let status = admin_get(&proxy, "/status");
    let a_entry = format!("\"address\":\"{}\"", a.addr);
    let a_at = status.find(&a_entry).expect("a listed");
    let a_entry = &status[a_at..];
    let a_entry = &a_entry[..a_entry.find("\"max_conns\"").expect("its max_conns")];
    assert!(a_entry.contains("\"backup\":true"), "{status}");

    // A weight given on the admin listener holds while its record's is
    // as it was, another record's changing meanwhile...
    let r = admin_put(&proxy, &target(&b), "weight=7");
    assert_eq!(r.status, 200, "{}", r.body_str());
    records((20, 2), (10, 1));
    assert!(
        wait_until(WAIT_LIMIT, || weight_of(&a) == "2"),
        "a never took its record's new weight"
    );
    assert_eq!(weight_of(&b), "7");
    // ... and gives way to the record's once that changes.
    records((20, 2), (10, 4));
    assert!(
        wait_until(WAIT_LIMIT, || weight_of(&b) == "4"),
        "b never took its record's new weight"
    );
    proxy.shutdown(Duration::from_secs(1));
}
