//! `auth_jwt_key_request`: a thread per set of keys fetched asks a
//! target of the pool for it on a fresh connection, as a probe does,
//! at start-up (and at each reload, or new addresses of the pool's
//! targets), then every `auth_jwt_key_cache` or as long as the set's
//! answer says (see [`cache_time`]), [`RETRY`] after a failure, and
//! sooner when a token names a key the set lacks (see [`next_fetch`]). A
//! set that came whole and parses is put in force; a failure keeps the
//! one before. The path may give the provider's discovery document
//! instead, whose `jwks_uri` is then asked of the same target (see
//! [`crate::auth::discovery`]).

use super::checker::{Active, Checker, Probe, ProbeKind};
use super::probe::fetch_body;
use super::AdminState;
use crate::auth::discovery::KeyDocument;
use crate::auth::jwt::Jwks;
#[cfg(doc)]
use crate::auth::jwt_keys::cache_time;
use crate::auth::jwt_keys::{next_fetch, FetchedKeys, RETRY};
use crate::cache::policy::freshness_left;
use crate::json_value::MAX_JSON;
use crate::metrics::Metrics;
use crate::throttle::Throttle;
use crossbeam_channel::{bounded, select, Receiver};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// One set of keys to fetch, and where from.
pub struct KeyFetch {
    pub keys: Arc<FetchedKeys>,
    /// The targets of the pool asked, as probes reach them.
    pub targets: Vec<Probe>,
    /// The `GET` of the path, the pool's timeouts, any 2xx.
    pub settings: Active,
}

impl Checker {
    /// Starts a thread per set of keys, stopped as the checker threads
    /// are.
    pub fn fetch_keys(fetches: Vec<KeyFetch>, metrics: &Arc<Metrics>) -> io::Result<Checker> {
        let (stop, stopped) = bounded(1);
        for fetch in fetches {
            let (stopped, metrics) = (stopped.clone(), metrics.clone());
            std::thread::Builder::new()
                .name("jwt-keys".into())
                .spawn(move || fetch_loop(&fetch, &metrics, &stopped))?;
        }
        Ok(Checker { _stop: stop })
    }
}

fn fetch_loop(fetch: &KeyFetch, metrics: &Metrics, stopped: &Receiver<()>) {
    let from = &fetch.keys.from;
    let mut said = Throttle::new();
    loop {
        let asked = Instant::now();
        let fetched = fetch_once(fetch);
        // Stopped meanwhile: these settings are no longer in force.
        if matches!(
            stopped.try_recv(),
            Err(crossbeam_channel::TryRecvError::Disconnected)
        ) {
            return;
        }
        let got_keys = match fetched {
            Ok(came) => {
                metrics.jwt_key_fetches.fetch_add(1, Ordering::Relaxed);
                let count = came.keys.len();
                fetch.keys.use_for(came.said);
                let changed = fetch.keys.put(came.keys);
                let recovered = said.recovered();
                let found = match &came.jwks_path {
                    Some(path) => format!(", its jwks_uri {path}"),
                    None => String::new(),
                };
                if changed || recovered {
                    log::info!(
                        "auth_jwt_key_request: {count} key(s) from pool {} ({}{found}) in force",
                        from.pool_name,
                        from.path
                    );
                }
                true
            }
            Err(why) => {
                (metrics.jwt_key_fetches_failed).fetch_add(1, Ordering::Relaxed);
                if let Some(quiet) = said.failed_because(Instant::now(), &why) {
                    let kept = match fetch.keys.current() {
                        Some(keys) => format!("the {} key(s) fetched before are kept", keys.len()),
                        None => "requests asking for a token are answered 503 until keys come"
                            .to_string(),
                    };
                    let again = match quiet {
                        0 => String::new(),
                        n => format!(" ({n} more time(s) since said)"),
                    };
                    log::warn!(
                        "auth_jwt_key_request: cannot fetch the keys from pool {} ({}): \
                         {why}{again}; {kept}; trying again within {:?}",
                        from.pool_name,
                        from.path,
                        RETRY.min(fetch.keys.every())
                    );
                }
                false
            }
        };
        // A token that named an unknown key while this fetch ran was
        // checked against the set before it: this one answers it.
        while fetch.keys.woken().try_recv().is_ok() {}
        let mut woken = false;
        loop {
            let due = next_fetch(asked, got_keys, fetch.keys.every(), woken);
            let wait = due.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                break;
            }
            select! {
                recv(stopped) -> _ => return,
                recv(fetch.keys.woken()) -> _ => woken = true,
                default(wait) => break,
            }
        }
    }
}

/// A set that came, and for how long its answer says it may be used.
#[derive(Debug, PartialEq)]
struct Came {
    keys: Jwks,
    /// Where the set was, when a discovery document said.
    jwks_path: Option<String>,
    /// How much longer the set's answer is fresh, when it says.
    said: Option<Duration>,
}

/// The keys of the first target that gives a set, those that may take
/// requests tried first and those in maintenance never; or why none did
/// (the last target's reason).
fn fetch_once(fetch: &KeyFetch) -> Result<Came, String> {
    let now = Instant::now();
    let mut targets: Vec<&Probe> = (fetch.targets.iter())
        .filter(|t| t.health.admin_state() != AdminState::Maint)
        .collect();
    // Stable: the pool's order among the usable, then among the others.
    targets.sort_by_key(|t| !t.health.usable(now));
    let mut why = "every target of the pool is in maintenance".to_string();
    for target in targets {
        match keys_of(target, fetch) {
            Ok(came) => return Ok(came),
            Err(e) => why = format!("{}: {e}", target.name),
        }
    }
    Err(why)
}

/// The key set `target` gives: at the path asked, or at the `jwks_uri`
/// of the discovery document found there, both asked at each fetch (a
/// provider may move its keys during a rotation). Redirects are not
/// followed (a 3xx is no 2xx): the pool's `Host` and targets are the
/// provider's.
fn keys_of(target: &Probe, fetch: &KeyFetch) -> Result<Came, String> {
    let (body, said) = fetch_document(target, &fetch.settings)?;
    let discovery = match KeyDocument::read(&body)? {
        KeyDocument::Keys(keys) => {
            let jwks_path = None;
            return Ok(Came {
                keys,
                jwks_path,
                said,
            });
        }
        KeyDocument::Discovery(discovery) => discovery,
    };
    let refused = |e: crate::auth::discovery::DiscoveryError| e.to_string();
    discovery
        .check_issuer(fetch.keys.issuer.as_deref())
        .map_err(refused)?;
    let asked = fetch.settings.host.as_deref().unwrap_or(&target.host);
    let path = discovery.jwks_path(asked).map_err(refused)?;
    let settings = Active {
        kind: ProbeKind::Http {
            method: "GET",
            path: path.clone(),
        },
        ..fetch.settings.clone()
    };
    let in_jwks = |e: String| format!("jwks_uri {path}: {e}");
    let (body, said) = fetch_document(target, &settings).map_err(in_jwks)?;
    let keys = Jwks::parse(&body).map_err(in_jwks)?;
    let jwks_path = Some(path);
    Ok(Came {
        keys,
        jwks_path,
        said,
    })
}

/// The body of a `GET` under `settings` (at most [`MAX_JSON`] bytes, as
/// a key file), and how much longer its answer says it is fresh.
fn fetch_document(
    target: &Probe,
    settings: &Active,
) -> Result<(Vec<u8>, Option<Duration>), String> {
    let asked = SystemTime::now();
    let (head, body) = fetch_body(target, settings, MAX_JSON).map_err(|e| e.to_string())?;
    Ok((body, freshness_left(&head, asked, SystemTime::now())))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{probe_at, probing};
    use super::*;
    use crate::config::PoolRequest;
    use crossbeam_channel::Sender;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener};
    use std::time::Duration;

    const KEYS: &str = r#"{"keys":[{"kty":"oct","kid":"a","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}"#;
    const OTHER_KEYS: &str =
        r#"{"keys":[{"kty":"oct","kid":"b","k":"YW5vdGhlci1zZWNyZXQtYW5vdGhlci1zZWNyZXQtYWFh"}]}"#;

    fn answer(status: u16, body: &str) -> String {
        format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    /// A key server answering one connection with each of `replies` in
    /// turn, then closing it; `stop` is dropped as the last one comes.
    /// Joined, it gives the requests it read, and fails if they do not
    /// all come within 10 s (rather than hold the test).
    fn key_server(
        replies: Vec<String>,
        stop: Option<Sender<()>>,
    ) -> (SocketAddr, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let server = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            let accept = || loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        assert!(Instant::now() < deadline, "not asked in time");
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("{e}"),
                }
            };
            let (last, mut stop) = (replies.len() - 1, stop);
            let mut asked = Vec::new();
            for (i, reply) in replies.iter().enumerate() {
                let mut stream = accept();
                stream.set_nonblocking(false).unwrap();
                if i == last {
                    stop.take();
                }
                let mut request = [0u8; 1024];
                let n = stream.read(&mut request).unwrap_or(0);
                asked.push(String::from_utf8_lossy(&request[..n]).into_owned());
                let _ = stream.write_all(reply.as_bytes());
            }
            asked
        });
        (addr, server)
    }

    fn fetch_from(targets: Vec<Probe>, every: Duration) -> KeyFetch {
        let from = PoolRequest {
            pool_name: "idp".into(),
            pool: 1,
            path: "/jwks".into(),
        };
        KeyFetch {
            keys: Arc::new(FetchedKeys::new(from, Some(every), None)),
            targets,
            // Time enough for a fetch to succeed on a loaded machine.
            settings: Active {
                expect_status: Arc::new([(200, 299)]),
                timeout: Duration::from_secs(5),
                connect_timeout: Duration::from_secs(5),
                ..probing(1, 1)
            },
        }
    }

    /// Whether a connection to `listener` came and waits to be taken.
    fn was_asked(listener: &TcpListener) -> bool {
        listener.set_nonblocking(true).unwrap();
        listener.accept().is_ok()
    }

    #[test]
    fn keys_are_asked_of_a_usable_target_first_and_never_of_one_in_maintenance() {
        // Neither answers: asking either would fail, or wait out the
        // timeout, before the keys of the one that can take requests.
        let in_maintenance = TcpListener::bind("127.0.0.1:0").unwrap();
        let taken_out = TcpListener::bind("127.0.0.1:0").unwrap();
        let (usable, server) = key_server(vec![answer(200, KEYS)], None);
        let targets = vec![
            probe_at(in_maintenance.local_addr().unwrap()),
            probe_at(taken_out.local_addr().unwrap()),
            probe_at(usable),
        ];
        targets[0].health.set_admin_state(AdminState::Maint);
        targets[1].health.failed(Instant::now(), "refused");
        let fetch = fetch_from(targets, Duration::from_secs(600));
        assert_eq!(
            fetch_once(&fetch).map(|c| c.keys),
            Jwks::parse(KEYS.as_bytes())
        );
        server.join().unwrap();
        assert!(!was_asked(&in_maintenance));
        assert!(!was_asked(&taken_out));

        let alone = fetch_from(vec![probe_at(usable)], Duration::from_secs(600));
        alone.targets[0].health.set_admin_state(AdminState::Maint);
        assert_eq!(
            fetch_once(&alone).unwrap_err(),
            "every target of the pool is in maintenance"
        );
    }

    #[test]
    fn a_set_that_comes_or_comes_back_is_said_and_the_same_set_again_is_not() {
        let (stop, stopped) = bounded(1);
        let replies = vec![
            answer(200, KEYS),
            answer(200, KEYS),
            answer(503, ""),
            answer(200, KEYS),
            answer(200, OTHER_KEYS),
            // Asked once the lines before are written: stops the loop.
            answer(200, KEYS),
        ];
        let (addr, server) = key_server(replies, Some(stop));
        let fetch = fetch_from(vec![probe_at(addr)], Duration::from_millis(20));
        let metrics = Metrics::default();
        let ((), lines) = crate::test_log::logged(|| fetch_loop(&fetch, &metrics, &stopped));
        server.join().unwrap();
        let lines: Vec<&String> = (lines.iter())
            .filter(|l| l.contains("auth_jwt_key_request"))
            .collect();
        let in_force = "INFO auth_jwt_key_request: 1 key(s) from pool idp (/jwks) in force";
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert_eq!(lines[0], in_force);
        assert!(
            lines[1].starts_with("WARN auth_jwt_key_request: cannot fetch the keys")
                && lines[1].contains("status 503; the 1 key(s) fetched before are kept"),
            "{}",
            lines[1]
        );
        // Back after the failure, though the same set as before.
        assert_eq!(lines[2], in_force);
        assert_eq!(lines[3], in_force, "a new set");
        assert_eq!(
            fetch.keys.current().as_deref(),
            Jwks::parse(OTHER_KEYS.as_bytes()).ok().as_ref()
        );
        assert_eq!(metrics.jwt_key_fetches.load(Ordering::Relaxed), 4);
        assert_eq!(metrics.jwt_key_fetches_failed.load(Ordering::Relaxed), 1);
    }

    /// [`fetch_from`] of a provider's discovery document, the pool's
    /// `request_header.Host` naming it, and `issuer` the scope's.
    fn discovering(addr: SocketAddr, issuer: Option<&str>) -> KeyFetch {
        let from = PoolRequest {
            pool_name: "idp".into(),
            pool: 1,
            path: "/.well-known/openid-configuration".into(),
        };
        let fetch = fetch_from(vec![probe_at(addr)], Duration::from_secs(600));
        KeyFetch {
            keys: Arc::new(FetchedKeys::new(from.clone(), None, issuer.map(Into::into))),
            settings: Active {
                kind: ProbeKind::Http {
                    method: "GET",
                    path: from.path.to_string(),
                },
                host: Some("id.example.com".into()),
                ..fetch.settings
            },
            ..fetch
        }
    }

    fn document(jwks_uri: &str) -> String {
        let issuer = "https://id.example.com/realms/shop";
        answer(
            200,
            &format!(r#"{{"issuer":"{issuer}","jwks_uri":"{jwks_uri}"}}"#),
        )
    }

    #[test]
    fn a_discovery_document_has_its_jwks_uri_asked_of_the_same_target() {
        let keys_answer = format!(
            "HTTP/1.1 200 OK\r\nCache-Control: public, max-age=3600\r\nAge: 600\r\n\
             Content-Length: {}\r\n\r\n{KEYS}",
            KEYS.len()
        );
        let replies = vec![
            document("https://id.example.com:443/realms/shop/certs?v=2"),
            keys_answer,
        ];
        let (addr, server) = key_server(replies, None);
        let fetch = discovering(addr, Some("https://id.example.com/realms/shop"));
        let came = fetch_once(&fetch).unwrap();
        let asked = server.join().unwrap();
        assert_eq!(Ok(&came.keys), Jwks::parse(KEYS.as_bytes()).as_ref());
        assert_eq!(came.jwks_path.as_deref(), Some("/realms/shop/certs?v=2"));
        // Its max-age less the age it had on arrival.
        let said = came.said.unwrap();
        assert!(
            said <= Duration::from_secs(3000) && said > Duration::from_secs(2900),
            "{said:?}"
        );
        assert!(
            asked[0].starts_with("GET /.well-known/openid-configuration HTTP/1.1\r\n"),
            "{asked:?}"
        );
        assert!(
            asked[1].starts_with("GET /realms/shop/certs?v=2 HTTP/1.1\r\n"),
            "{asked:?}"
        );
        assert!(
            asked
                .iter()
                .all(|a| a.contains("\r\nHost: id.example.com\r\n")),
            "{asked:?}"
        );
    }

    #[test]
    fn a_discovery_document_of_another_issuer_or_host_gives_no_keys_and_nothing_more_is_asked() {
        for (reply, issuer, says) in [
            (
                document("https://id.example.com/certs"),
                Some("https://id.example.com/realms/other"),
                "names issuer \"https://id.example.com/realms/shop\", auth_jwt_issuer asks for",
            ),
            (
                document("https://www.googleapis.com/oauth2/v3/certs"),
                None,
                "jwks_uri \"https://www.googleapis.com/oauth2/v3/certs\" is on host",
            ),
            (
                document("ftp://id.example.com/certs"),
                None,
                "is not an http(s) URL of a path",
            ),
            // Not followed: the pool's targets and Host are the provider's.
            (
                "HTTP/1.1 302 Found\r\nLocation: https://elsewhere.example/certs\r\n\
                 Content-Length: 0\r\n\r\n"
                    .to_string(),
                None,
                "status 302",
            ),
        ] {
            let (addr, server) = key_server(vec![reply], None);
            let e = fetch_once(&discovering(addr, issuer)).unwrap_err();
            assert!(
                e.starts_with(&format!("{addr}: ")) && e.contains(says),
                "{e}"
            );
            assert_eq!(server.join().unwrap().len(), 1);
        }
        // The key set's own failure says where it was asked.
        let replies = vec![document("/certs"), answer(404, "")];
        let (addr, server) = key_server(replies, None);
        let e = fetch_once(&discovering(addr, None)).unwrap_err();
        assert_eq!(e, format!("{addr}: jwks_uri /certs: status 404"));
        server.join().unwrap();
    }

    #[test]
    fn a_key_sets_answer_says_how_long_it_is_used_within_bounds() {
        use crate::auth::jwt_keys::{cache_time, DEFAULT_CACHE, MAX_SAID_CACHE, MIN_SAID_CACHE};
        use crate::http::date::format_http_date;
        let now = SystemTime::now();
        let used_for = |fields: &str| {
            let head = format!("HTTP/1.1 200 OK\r\n{fields}Content-Length: 0\r\n\r\n");
            let head = crate::http::head::parse_response(head.as_bytes()).unwrap();
            cache_time(None, freshness_left(&head, now, now))
        };
        let date = format_http_date(now);
        let in_two_hours = format_http_date(now + Duration::from_secs(7200));
        let hour = Duration::from_secs(3600);
        for (fields, used) in [
            ("Cache-Control: max-age=3600\r\n", hour),
            (
                "Cache-Control: public, max-age=3600, must-revalidate\r\n",
                hour,
            ),
            // A cache in between already kept it 10 minutes.
            (
                "Cache-Control: max-age=3600\r\nAge: 600\r\n",
                hour - DEFAULT_CACHE,
            ),
            ("Cache-Control: s-maxage=7200, max-age=60\r\n", 2 * hour),
            (
                &format!("Date: {date}\r\nExpires: {in_two_hours}\r\n"),
                2 * hour,
            ),
            // max-age goes before Expires.
            (
                &format!("Cache-Control: max-age=3600\r\nExpires: {in_two_hours}\r\n"),
                hour,
            ),
            // Fresh no time at all, or a year: the bounds.
            ("Cache-Control: max-age=0\r\n", MIN_SAID_CACHE),
            ("Cache-Control: max-age=10\r\n", MIN_SAID_CACHE),
            ("Expires: 0\r\n", MIN_SAID_CACHE),
            ("Cache-Control: max-age=nope\r\n", MIN_SAID_CACHE),
            ("Cache-Control: max-age=31536000\r\n", MAX_SAID_CACHE),
            (
                "Cache-Control: max-age=99999999999999999999999\r\n",
                MAX_SAID_CACHE,
            ),
            // Nothing said of how long: the default.
            ("", DEFAULT_CACHE),
            ("Cache-Control: no-cache\r\n", DEFAULT_CACHE),
            ("Cache-Control: no-store, private\r\n", DEFAULT_CACHE),
            ("Cache-Control: max-age =60\r\n", DEFAULT_CACHE),
        ] {
            let got = used_for(fields);
            // A Date names a whole second.
            let near = got.abs_diff(used) <= Duration::from_secs(1);
            assert!(near, "{fields:?}: {got:?}, not {used:?}");
        }
    }
}
