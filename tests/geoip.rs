//! `geoip_database`: the client's country (as `real_ip_from` names the
//! client) refused by a `deny.<name> = if country ...` rule, answered by
//! `$geoip_country_code` in a `return` text, a request field and the log.

mod support;

use std::path::Path;
use std::time::Duration;
use support::mmdb::{country_record, Writer};
use support::*;

/// A database of two networks, XX's and FR's, and one whose record has
/// only a registered country (SE), as an anonymous proxy's has.
fn write_database(path: &Path, record_size: u16, xx_network: &str) {
    let mut w = Writer::new(6, record_size);
    for (network, country, registered) in [
        (xx_network, Some("XX"), None),
        ("198.51.100.0/24", Some("FR"), Some("FR")),
        ("2001:db8:5::/48", None, Some("SE")),
    ] {
        let at = w.data(&country_record(country, registered));
        w.insert(network, at);
    }
    std::fs::write(path, w.finish("GeoLite2-Country")).unwrap();
}

fn config(backend: &Backend, db: &Path) -> String {
    format!(
        "targets = {}\n\
         real_ip_from = 127.0.0.1\n\
         geoip_database = {}\n\
         deny.geo = if country XX\n\
         route./ = return 200 [$geoip_country_code]\n\
         route./api/ if not country FR,XX = default\n\
         request_header.X-Country = $geoip_country_code\n\
         log_format = $remote_addr $status [$geoip_country_code]\n",
        backend.addr,
        db.display()
    )
}

/// The status and body of a GET of `path` from `client`, as the trusted
/// proxy in front (127.0.0.1) names it.
fn from(proxy: &Proxy, client: &str, path: &str) -> (u16, String) {
    let mut conn = proxy.connect();
    let r = conn.get_with(path, &[("X-Forwarded-For", client)]);
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

#[test]
fn a_country_is_refused_answered_forwarded_and_logged() {
    let backend = Backend::echo("app");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("GeoLite2-Country.mmdb");
    write_database(&db, 28, "203.0.113.0/24");
    let mut proxy = start_proxy(&[], from_file(&config(&backend, &db)));
    assert_eq!(from(&proxy, "203.0.113.9", "/").0, 403);
    assert_eq!(from(&proxy, "198.51.100.7", "/"), (200, "[FR]".into()));
    assert_eq!(from(&proxy, "192.0.2.1", "/"), (200, "[]".into()));
    // The registered country, where there is no other.
    assert_eq!(from(&proxy, "2001:db8:5::1", "/"), (200, "[SE]".into()));
    // `not country FR,XX` takes the others to the backend, with their
    // country in a field; FR's stay on `route./`.
    assert_eq!(from(&proxy, "2001:db8:5::1", "/api/x").0, 200);
    assert_eq!(from(&proxy, "198.51.100.7", "/api/x"), (200, "[FR]".into()));
    let seen = backend.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].field_or("x-country", "none"), "SE");
    // The peer itself, not named by a trusted proxy, has no country.
    let mut own = proxy.connect();
    assert_eq!(own.get("/").body, b"[]");
    // Each request on one connection is its own client's: the country
    // found for one is not kept for the next.
    for (client, body) in [("198.51.100.7", "[FR]"), ("192.0.2.1", "[]")] {
        let r = own.get_with("/", &[("X-Forwarded-For", client)]);
        assert_eq!(r.body, body.as_bytes(), "{client}");
    }
    assert_eq!(
        own.get_with("/", &[("X-Forwarded-For", "203.0.113.9")])
            .status,
        403
    );
    assert!(wait_until(WAIT_LIMIT, || proxy.log_lines().len() == 10));
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let lines = proxy.log_lines();
    for line in [
        "203.0.113.9 403 [XX]",
        "198.51.100.7 200 [FR]",
        "192.0.2.1 200 [-]",
        "2001:db8:5::1 200 [SE]",
        "127.0.0.1 200 [-]",
    ] {
        assert!(lines.contains(&line.to_string()), "{line}: {lines:#?}");
    }
}

#[test]
fn a_reload_reads_the_database_again() {
    let backend = Backend::echo("app");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("country.mmdb");
    write_database(&db, 24, "203.0.113.0/24");
    let proxy = start_proxy(&[], from_file(&config(&backend, &db)));
    assert_eq!(from(&proxy, "203.0.113.9", "/").0, 403);
    assert_eq!(from(&proxy, "192.0.2.1", "/").0, 200);
    let mut kept_alive = proxy.connect();
    let client = [("X-Forwarded-For", "192.0.2.1")];
    assert_eq!(kept_alive.get_with("/", &client).status, 200);
    // A weekly update moved XX's network.
    write_database(&db, 32, "192.0.2.0/24");
    proxy.reload(&[], from_file(&config(&backend, &db)));
    // A connection open across the reload asks the new database.
    assert_eq!(kept_alive.get_with("/", &client).status, 403);
    assert_eq!(from(&proxy, "203.0.113.9", "/"), (200, "[]".into()));
    assert_eq!(from(&proxy, "192.0.2.1", "/").0, 403);
    // A file cut short is refused, saying why: a reload keeps what runs.
    let bytes = std::fs::read(&db).unwrap();
    std::fs::write(&db, &bytes[..bytes.len() / 2]).unwrap();
    let refused = from_file_keeping(&config(&backend, &db), Default::default()).err();
    let message = refused.expect("a truncated database is refused");
    assert!(
        message.contains("geoip_database: ") && message.contains("not a MaxMind DB file"),
        "{message}"
    );
    assert_eq!(from(&proxy, "192.0.2.1", "/").0, 403);
}

#[test]
fn a_country_condition_without_a_database_is_refused() {
    for (line, key) in [
        ("deny.geo = if country XX", "deny.geo"),
        ("route./eu/ if country DE,FR = default", "route./eu/"),
        (
            "response_header.X-Eu if not country DE = 1",
            "response_header.X-Eu",
        ),
    ] {
        let message = config_error(&format!("targets = 127.0.0.1:1\n{line}\n"));
        assert!(
            message.contains(&format!("proxy.conf:2: {key}")) && message.contains("geoip_database"),
            "{line}: {message}"
        );
    }
    let message = config_error("targets = 127.0.0.1:1\ndeny.geo = if country de\n");
    assert!(message.contains("two capital letters"), "{message}");
}
