//! Client access lists: `allow_from` and `deny_from`, checked on the
//! client as the access log shows it, and answered 403 before a backend or
//! the cache is involved.

mod support;

use inverso::cidr_set::CidrList;
use inverso::config::Config;
use inverso::realip::Cidr;
use std::net::IpAddr;
use std::time::Duration;
use support::*;

fn blocks(list: &[&str]) -> CidrList {
    let list: Vec<Cidr> = list.iter().map(|b| Cidr::parse(b).unwrap()).collect();
    list.into()
}

const HERE: [u8; 4] = [127, 0, 0, 1];

/// Asserts that `response` is the proxy's own 403 and the connection was
/// closed after it.
#[track_caller]
fn assert_refused(client: &mut Client, response: &Response) {
    assert_eq!(response.status, 403, "{}", response.body_str());
    assert!(response.head.has_token("connection", "close"));
    assert_eq!(response.body_str(), "403 Forbidden\n");
    assert!(client.is_closed());
}

#[test]
fn a_denied_client_gets_403_and_no_backend_hears_of_it() {
    let a = Backend::echo("a");
    let mut proxy = start_proxy(&[a.addr], |c| {
        c.deny_from = blocks(&["127.0.0.1"]);
        c.admin_port = Some(0);
    });
    let mut client = proxy.connect();
    let refused = client.get("/secret");
    assert_refused(&mut client, &refused);
    // A HEAD is answered with the head alone.
    let mut client = proxy.connect();
    let refused = client.head("/secret");
    assert_eq!(refused.status, 403);
    assert!(client.is_closed());
    assert_eq!((a.requests(), a.connections()), (0, 0));
    // The admin listener has admin_bind, not these lists: still reachable,
    // and it counts the refusals.
    let admin = proxy.handle().admin_addr().unwrap();
    let metrics = one_request(admin, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_eq!(metrics.status, 200);
    let text = metrics.body_str();
    assert!(
        text.lines().any(|l| l == "inverso_access_denied_total 2"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "inverso_requests_total{class=\"4xx\"} 2"),
        "{text}"
    );
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].starts_with("127.0.0.1 ") && lines[0].contains("\"GET /secret HTTP/1.1\" 403 "),
        "{}",
        lines[0]
    );
}

#[test]
fn allow_from_admits_only_the_clients_it_lists() {
    let a = Backend::echo("a");
    let elsewhere = start_proxy(&[a.addr], |c| c.allow_from = blocks(&["10.0.0.0/8"]));
    let mut client = elsewhere.connect();
    let refused = client.get("/");
    assert_refused(&mut client, &refused);
    assert_eq!(a.requests(), 0);

    let here = start_proxy(&[a.addr], |c| {
        c.allow_from = blocks(&["10.0.0.0/8", "127.0.0.0/8"]);
    });
    let mut client = here.connect();
    assert_eq!(client.get("/1").status, 200);
    assert_eq!(client.get("/2").status, 200, "kept alive");
    assert_eq!(a.requests(), 2);
}

#[test]
fn deny_from_wins_over_allow_from() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| {
        c.allow_from = blocks(&["127.0.0.0/8"]);
        c.deny_from = blocks(&["127.0.0.2"]);
    });
    let denied = IpAddr::from([127, 0, 0, 2]);
    let mut client = Client::connect_from(denied, proxy.addr);
    let refused = client.get("/");
    assert_refused(&mut client, &refused);
    let mut client = Client::connect_from(IpAddr::from(HERE), proxy.addr);
    assert_eq!(client.get("/").status, 200);
    assert_eq!(a.requests(), 1);
}

#[test]
fn behind_a_trusted_proxy_the_client_it_names_is_checked() {
    let a = Backend::echo("a");
    let trusted = |c: &mut Config| c.real_ip_from = blocks(&["127.0.0.1"]).to_vec().into();
    let proxy = start_proxy(&[a.addr], |c| {
        trusted(c);
        c.deny_from = blocks(&["10.0.0.0/8"]);
    });
    let mut balancer = proxy.connect();
    let named = balancer.get_with("/", &[("X-Forwarded-For", "203.0.113.9")]);
    assert_eq!(named.status, 200);
    assert_eq!(balancer.get("/own").status, 200, "the balancer itself");
    let refused = balancer.get_with("/", &[("X-Forwarded-For", "10.1.2.3")]);
    assert_refused(&mut balancer, &refused);
    assert_eq!(a.requests(), 2);
    let mut proxy = proxy;
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert!(
        lines[2].starts_with("10.1.2.3 ") && lines[2].contains(" 403 "),
        "{lines:#?}"
    );

    // The other way: only the clients the balancer names from 10/8.
    let proxy = start_proxy(&[a.addr], |c| {
        trusted(c);
        c.allow_from = blocks(&["10.0.0.0/8"]);
    });
    let mut balancer = proxy.connect();
    let named = balancer.get_with("/", &[("X-Forwarded-For", "10.1.2.3")]);
    assert_eq!(named.status, 200);
    let refused = balancer.get("/own");
    assert_refused(&mut balancer, &refused);
    // An untrusted peer cannot name itself into the list.
    let untrusted = IpAddr::from([127, 0, 0, 2]);
    let mut client = Client::connect_from(untrusted, proxy.addr);
    let refused = client.get_with("/", &[("X-Forwarded-For", "10.1.2.3")]);
    assert_refused(&mut client, &refused);
    assert_eq!(a.requests(), 3);
}

#[test]
fn a_denied_request_s_body_is_never_forwarded() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| c.deny_from = blocks(&["127.0.0.0/8"]));
    // Small enough to be buffered whole if it were read, and larger than
    // request_buffer_size, which would stream; each followed by a
    // pipelined request that must not be served either.
    for len in [100, 100 * 1024] {
        let mut client = proxy.connect();
        let mut request =
            format!("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n")
                .into_bytes();
        request.extend_from_slice(&pattern(len));
        request.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
        client.send(&request);
        let refused = client.response();
        assert_refused(&mut client, &refused);
    }
    // Waiting for 100-continue: told 403 instead, never to go on.
    let mut client = proxy.connect();
    client
        .send(b"PUT /big HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    let refused = client.response();
    assert_refused(&mut client, &refused);
    assert_eq!((a.requests(), a.connections()), (0, 0));
}

#[test]
fn a_denied_client_is_not_served_from_the_cache() {
    let a = Backend::start("a", |_, out| {
        respond(out, 200, &[("Cache-Control", "max-age=600")], b"stored");
        Action::KeepAlive
    });
    let mut proxy = start_proxy(&[a.addr], |c| c.cache_size = 1 << 20);
    proxy.exchange(|client| assert_eq!(client.get("/page").status, 200));
    let hit = proxy.connect().get("/page");
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    let mut next = proxy.config_for(&[a.addr], |_| {});
    next.cache_size = 1 << 20;
    next.deny_from = blocks(&["127.0.0.1"]);
    proxy.handle().control().reload(next).unwrap();
    let mut client = proxy.connect();
    let refused = client.get("/page");
    assert_refused(&mut client, &refused);
    assert!(refused.header("x-cache").is_none());
    assert_eq!(a.requests(), 1);
    assert!(proxy.shutdown(Duration::from_secs(5)));
}

#[test]
fn a_reload_turns_the_lists_on_and_off_from_the_next_request() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |_| {});
    let mut client = proxy.connect();
    assert_eq!(client.get("/1").status, 200);
    let mut next = proxy.config_for(&[a.addr], |_| {});
    next.allow_from = blocks(&["192.0.2.0/24"]);
    proxy.handle().control().reload(next).unwrap();
    // The connection opened before the reload: its next request is
    // checked on the new lists.
    let refused = client.get("/2");
    assert_refused(&mut client, &refused);
    let mut fresh = proxy.connect();
    let refused = fresh.get("/3");
    assert_refused(&mut fresh, &refused);
    proxy
        .handle()
        .control()
        .reload(proxy.config_for(&[a.addr], |_| {}))
        .unwrap();
    assert_eq!(proxy.connect().get("/4").status, 200);
    assert_eq!(a.requests(), 2);
}

/// Lists read from files (`file:<path>`, as published lists come, with
/// their comments), a pool's own too, and read again by a reload.
#[test]
fn lists_are_read_from_files_and_read_again_by_a_reload() {
    let (a, b) = (Backend::echo("a"), Backend::echo("b"));
    let dir = tempfile::tempdir().unwrap();
    let (drop, staff) = (dir.path().join("drop.txt"), dir.path().join("staff.txt"));
    std::fs::write(
        &drop,
        "; Spamhaus DROP List\n192.0.2.0/24 ; SBL1\n127.0.0.1\n",
    )
    .unwrap();
    std::fs::write(&staff, "# the office\n198.51.100.0/24\n").unwrap();
    let text = format!(
        "targets = {a}\ndeny_from = 203.0.113.9, file:{}\n\
         pool.admin = {b}\nroute./admin = admin\npool.admin.allow_from = file:{}\n",
        drop.display(),
        staff.display(),
        a = a.addr,
        b = b.addr,
    );
    let proxy = start_proxy(&[a.addr], from_file(&text));
    let mut client = proxy.connect();
    let refused = client.get("/");
    assert_refused(&mut client, &refused);

    std::fs::write(&drop, "192.0.2.0/24\n").unwrap();
    let next = proxy.config_for(&[a.addr], from_file(&text));
    proxy.handle().control().reload(next).unwrap();
    assert_eq!(proxy.connect().get("/").status, 200);
    let mut client = proxy.connect();
    let refused = client.get("/admin/users");
    assert_refused(&mut client, &refused);

    std::fs::write(&staff, "198.51.100.0/24\n127.0.0.1\n").unwrap();
    let next = proxy.config_for(&[a.addr], from_file(&text));
    proxy.handle().control().reload(next).unwrap();
    assert_eq!(proxy.connect().get("/admin/users").status, 200);
    assert_eq!((a.requests(), b.requests()), (1, 1));
}

#[test]
fn behind_a_proxy_protocol_balancer_the_client_its_header_names_is_checked() {
    let a = Backend::echo("a");
    let proxy = start_proxy(&[a.addr], |c| {
        c.proxy_protocol = true;
        c.deny_from = blocks(&["203.0.113.1"]);
    });
    let mut denied = proxy.connect();
    denied.send(b"PROXY TCP4 203.0.113.1 127.0.0.1 1000 80\r\n");
    let refused = denied.get("/");
    assert_refused(&mut denied, &refused);
    let mut other = proxy.connect();
    other.send(b"PROXY TCP4 203.0.113.2 127.0.0.1 1000 80\r\n");
    assert_eq!(other.get("/").status, 200);
    assert_eq!(a.requests(), 1);
}

#[test]
fn check_prints_the_lists_and_names_the_line_of_a_bad_block() {
    let good =
        "targets = 127.0.0.1:9001\nallow_from = 10.0.0.0/8, 2001:db8::/32\ndeny_from = 10.0.0.5\n";
    let (code, stdout, stderr) = inverso_check(good, "error");
    assert_eq!(code, Some(0), "{stderr}");
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} =")))
            .unwrap_or_default()
            .to_string()
    };
    let allow = line("allow_from");
    assert!(
        allow.starts_with("allow_from = 10.0.0.0/8, 2001:db8::/32 "),
        "{stdout}"
    );
    assert!(allow.contains("proxy.conf:2"), "{allow}");
    assert!(line("deny_from").contains("10.0.0.5"), "{stdout}");

    let (code, _, stderr) = inverso_check(
        "targets = 127.0.0.1:9001\n\ndeny_from = 10.0.0.0/8, 300.1.1.1\n",
        "error",
    );
    assert_eq!(code, Some(2));
    assert!(stderr.contains("proxy.conf:3: deny_from: "), "{stderr}");
    assert!(stderr.contains("300.1.1.1"), "{stderr}");
}

// ------------------------------------------------------------ secure links

/// nginx's recipe: the MD5 of `expires`, the path, the client's address
/// and the secret, in base64url without padding.
fn signed(expires: u64, uri: &str) -> String {
    use base64::Engine as _;
    use md5::Digest as _;
    let text = format!("{expires}{uri}127.0.0.1 s3cret");
    let hash = md5::Md5::digest(text.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash)
}

fn now() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.unwrap().as_secs()
}

#[test]
fn a_secure_link_is_served_only_with_its_hash_and_before_it_expires() {
    let (a, site) = (Backend::echo("a"), Backend::echo("site"));
    let text = format!(
        "targets = {}\npool.dl = {}\nroute./dl/ = dl\n\
         pool.dl.secure_link = $arg_md5,$arg_expires\n\
         pool.dl.secure_link_md5 = $secure_link_expires$uri$remote_addr s3cret\n",
        site.addr, a.addr
    );
    let proxy = start_proxy(&[site.addr], from_file(&text));
    let later = now() + 3600;
    let get = |path: String| proxy.connect().get(&path).status;

    let hash = signed(later, "/dl/report.pdf");
    assert_eq!(
        get(format!("/dl/report.pdf?md5={hash}&expires={later}")),
        200
    );
    assert_eq!(a.requests(), 1);
    // Padded, as some signers write it.
    assert_eq!(
        get(format!("/dl/report.pdf?md5={hash}==&expires={later}")),
        200
    );

    let refused = [
        format!("/dl/report.pdf?expires={later}"),
        format!("/dl/report.pdf?md5=&expires={later}"),
        format!("/dl/other.pdf?md5={hash}&expires={later}"),
        format!("/dl/report.pdf?md5={hash}&expires={}", later + 1),
        format!("/dl/report.pdf?md5={hash}"),
        format!("/dl/report.pdf?md5={hash}&expires=soon"),
        format!("/dl/report.pdf?md5=%2B{hash}&expires={later}"),
    ];
    for path in refused {
        assert_eq!(get(path.clone()), 403, "{path}");
    }
    assert_eq!(a.requests(), 2, "no refused request reached the backend");

    // The right hash for a time gone: 410.
    let earlier = now() - 60;
    let hash = signed(earlier, "/dl/report.pdf");
    assert_eq!(
        get(format!("/dl/report.pdf?md5={hash}&expires={earlier}")),
        410
    );
    assert_eq!(a.requests(), 2);
    // Outside the pool, nothing is asked.
    assert_eq!(get("/elsewhere".into()), 200);
    assert_eq!(site.requests(), 1);
}

/// nginx's `secure_link_secret` recipe: the MD5, in hex, of the link
/// and the secret word.
fn signed_in_path(link: &str) -> String {
    use md5::Digest as _;
    let hash = md5::Md5::digest(format!("{link}s3cret").as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_link_signed_in_its_path_goes_on_without_its_hash_and_a_forged_one_is_refused() {
    let (files, site) = (Backend::echo("files"), Backend::echo("site"));
    let text = format!(
        "targets = {}\npool.docs = {}\nroute./p/ = docs rewrite=/secure/\n\
         pool.docs.secure_link_secret = s3cret\nlog_format = $request_uri $uri $status\n",
        site.addr, files.addr
    );
    let mut proxy = start_proxy(&[site.addr], from_file(&text));
    let get = |path: &str| proxy.connect().get(path).status;

    let hash = signed_in_path("docs/guide.pdf?v=2");
    assert_eq!(get(&format!("/p/{hash}/docs/guide.pdf?v=2")), 200);
    let upper = hash.to_uppercase();
    assert_eq!(get(&format!("/p/{upper}/docs/guide.pdf?v=2")), 200);
    let seen: Vec<String> = files.seen().iter().map(|s| s.path().to_string()).collect();
    assert_eq!(seen, ["/secure/docs/guide.pdf?v=2"; 2]);

    for forged in [
        format!("/p/{hash}/docs/guide.pdf?v=3"),
        format!("/p/{hash}/docs/other.pdf?v=2"),
        format!("/p/{}/docs/guide.pdf?v=2", &hash[1..]),
        format!("/p/{hash}/"),
        "/p/docs/guide.pdf?v=2".to_string(),
    ] {
        assert_eq!(get(&forged), 403, "{forged}");
    }
    assert_eq!(files.requests(), 2, "no forged link reached the backend");
    // Outside the pool, nothing is asked.
    assert_eq!(get("/elsewhere"), 200);
    assert_eq!(site.requests(), 1);

    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    assert_eq!(
        lines[0],
        format!("/p/{hash}/docs/guide.pdf?v=2 /p/docs/guide.pdf 200"),
        "the log has the client's target, and the path without its hash (before the route's \
         rewrite=, as ever)"
    );
}

#[test]
fn every_link_signed_in_its_path_to_one_file_is_one_cache_entry() {
    let files = Backend::start("files", |_, out| {
        respond(out, 200, &[("Cache-Control", "max-age=60")], b"guide");
        Action::KeepAlive
    });
    let text = format!("targets = {}\nsecure_link_secret = s3cret\n", files.addr);
    let file = from_file(&text);
    let proxy = start_proxy(&[], |c| {
        file(c);
        c.cache_size = 1 << 20;
    });
    let hash = signed_in_path("docs/guide.pdf");
    let lower = proxy.connect().get(&format!("/p/{hash}/docs/guide.pdf"));
    assert_eq!(lower.head.get("x-cache"), Some("MISS"));
    let upper = format!("/p/{}/docs/guide.pdf", hash.to_uppercase());
    let again = proxy.connect().get(&upper);
    assert_eq!(
        (again.status, again.head.get("x-cache")),
        (200, Some("HIT"))
    );
    assert_eq!(files.requests(), 1);
    // The entry is the link's: its path without a hash is still refused.
    assert_eq!(proxy.connect().get("/p/docs/guide.pdf").status, 403);
}

#[test]
fn secure_link_and_secure_link_md5_go_together() {
    let alone = config_error("targets = 127.0.0.1:1\nsecure_link = $arg_md5\n");
    assert!(
        alone.contains("secure_link: is on, but secure_link_md5 is empty"),
        "{alone}"
    );
    let md5 = config_error("targets = 127.0.0.1:1\nsecure_link_md5 = $uri s\n");
    assert!(
        md5.contains("secure_link_md5: is set, but secure_link is off"),
        "{md5}"
    );
    let both = config_error(
        "targets = 127.0.0.1:1\nsecure_link = $arg_md5\nsecure_link_md5 = $uri s\n\
         secure_link_secret = s3cret\n",
    );
    assert!(
        both.contains("secure_link_secret: goes with one of secure_link and secure_link_secret"),
        "{both}"
    );
    let spaced = config_error("targets = 127.0.0.1:1\nsecure_link_secret = two words\n");
    assert!(spaced.contains("one word of visible ASCII"), "{spaced}");
    let bad = config_error("targets = 127.0.0.1:1\nsecure_link = $arg_md5,$nope\n");
    assert!(
        bad.contains("secure_link: ") && bad.contains("$nope"),
        "{bad}"
    );
}
