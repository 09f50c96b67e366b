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
