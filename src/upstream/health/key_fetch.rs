//! `auth_jwt_key_request`: a thread per set of keys fetched asks a
//! target of the pool for it on a fresh connection, as a probe does,
//! at start-up (and at each reload, or new addresses of the pool's
//! targets), then every `auth_jwt_key_cache`, [`RETRY`] after a failure,
//! and sooner when a token names a key the set lacks (see
//! [`next_fetch`]). A set that came whole and parses is put in force; a
//! failure keeps the one before.

use super::checker::{Active, Checker, Probe};
use super::probe::fetch_body;
use super::AdminState;
use crate::auth::jwt::Jwks;
use crate::auth::jwt_keys::{next_fetch, FetchedKeys, RETRY};
use crate::json_value::MAX_JSON;
use crate::metrics::Metrics;
use crate::throttle::Throttle;
use crossbeam_channel::{bounded, select, Receiver};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

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
            Ok(keys) => {
                metrics.jwt_key_fetches.fetch_add(1, Ordering::Relaxed);
                let count = keys.len();
                let changed = fetch.keys.put(keys);
                let recovered = said.recovered();
                if changed || recovered {
                    log::info!(
                        "auth_jwt_key_request: {count} key(s) from pool {} ({}) in force",
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
                        RETRY.min(fetch.keys.every)
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
            let due = next_fetch(asked, got_keys, fetch.keys.every, woken);
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

/// The keys of the first target that gives a set, those that may take
/// requests tried first and those in maintenance never; or why none did
/// (the last target's reason).
fn fetch_once(fetch: &KeyFetch) -> Result<Jwks, String> {
    let now = Instant::now();
    let mut targets: Vec<&Probe> = (fetch.targets.iter())
        .filter(|t| t.health.admin_state() != AdminState::Maint)
        .collect();
    // Stable: the pool's order among the usable, then among the others.
    targets.sort_by_key(|t| !t.health.usable(now));
    let mut why = "every target of the pool is in maintenance".to_string();
    for target in targets {
        let body = fetch_body(target, &fetch.settings, MAX_JSON);
        match body
            .map_err(|e| e.to_string())
            .and_then(|b| Jwks::parse(&b))
        {
            Ok(keys) => return Ok(keys),
            Err(e) => why = format!("{}: {e}", target.name),
        }
    }
    Err(why)
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
    /// Joined, it fails if they do not all come within 10 s (rather than
    /// hold the test).
    fn key_server(
        replies: Vec<String>,
        stop: Option<Sender<()>>,
    ) -> (SocketAddr, std::thread::JoinHandle<()>) {
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
            for (i, reply) in replies.iter().enumerate() {
                let mut stream = accept();
                stream.set_nonblocking(false).unwrap();
                if i == last {
                    stop.take();
                }
                let _ = stream.read(&mut [0u8; 1024]);
                let _ = stream.write_all(reply.as_bytes());
            }
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
            keys: Arc::new(FetchedKeys::new(from, every)),
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
        assert_eq!(fetch_once(&fetch), Jwks::parse(KEYS.as_bytes()));
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
}
