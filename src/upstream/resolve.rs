//! Targets written as names, looked up again while the proxy runs
//! (`resolve_interval`): a backend container restarted by Docker Compose
//! or Kubernetes comes back at another address under the same name.
//!
//! Only the lookups are here, and the thread that times them; switching
//! to the new addresses is the server's, which does it as a reload does
//! (a new generation of upstreams), under the reload's own lock.
//!
//! The lookup is the system resolver's (`getaddrinfo`), which blocks: it
//! runs on this thread alone, never on a request's. It says nothing of
//! the answer's TTL, so names are looked up every interval instead. The
//! resolver is a parameter ([`Resolve`]) so tests can play DNS.

use crate::config::{self, Target, Written};
use crate::throttle::Throttle;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Turns a target as written (`app:8000`) into one address.
pub type Resolve<'a> = dyn Fn(&str) -> io::Result<SocketAddr> + 'a;

/// The system resolver, with the rule start-up and reloads use: the first
/// address it gives (see [`config::lookup`]).
pub fn system(name: &str) -> io::Result<SocketAddr> {
    match config::written(name) {
        Ok(Written::Name { host, port }) => config::lookup(host, port),
        Ok(Written::Address(addr)) => Ok(addr),
        Err(message) => Err(io::Error::new(io::ErrorKind::InvalidInput, message)),
    }
}

/// A target whose name now resolves to another address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// As written in `targets`.
    pub name: String,
    pub was: SocketAddr,
    pub now: SocketAddr,
}

/// Which names failed to resolve, so each failure is said when it begins,
/// at most once a minute while it lasts, and when it ends.
#[derive(Debug, Default)]
pub struct Failures(HashMap<String, Throttle>);

impl Failures {
    /// `name` did not resolve at `now`: whether to say so.
    fn failed(&mut self, name: &str, now: Instant) -> bool {
        self.0.entry(name.to_string()).or_default().failed(now)
    }

    /// `name` resolved: whether that ends failures that were said.
    fn recovered(&mut self, name: &str) -> bool {
        self.0.remove(name).is_some_and(|mut t| t.recovered())
    }

    /// Forgets names no longer among `targets` (a reload took them out).
    fn keep_only(&mut self, targets: &[Target]) {
        self.0
            .retain(|name, _| targets.iter().any(|t| t.name == *name));
    }
}

/// Whether `target` was written as a name, the only kind looked up again:
/// an address written as one is meant as that address.
pub fn is_named(target: &Target) -> bool {
    matches!(config::written(&target.name), Ok(Written::Name { .. }))
}

/// Looks up each target written as a name, once, with `resolve`; returns
/// those now at another address. A name that does not resolve keeps the
/// address it had (DNS down for a moment must not take a backend away),
/// with a warning at most once a minute per name; so does one that now
/// resolves to `own`, the address the proxy listens on (requests would
/// loop, which a reload refuses too).
pub fn look_up(
    targets: &[Target],
    resolve: &Resolve<'_>,
    own: SocketAddr,
    failures: &mut Failures,
) -> Vec<Change> {
    failures.keep_only(targets);
    let mut changes = Vec::new();
    for target in targets.iter().filter(|t| is_named(t)) {
        match resolve(&target.name).and_then(|addr| not_own(addr, own)) {
            Ok(now) => {
                if failures.recovered(&target.name) {
                    log::info!("target {} resolves again", target.name);
                }
                if now != target.addr {
                    changes.push(Change {
                        name: target.name.clone(),
                        was: target.addr,
                        now,
                    });
                }
            }
            Err(e) => {
                if failures.failed(&target.name, Instant::now()) {
                    log::warn!(
                        "target {} does not resolve: {e}; it stays at {} (said at most once a \
                         minute while it lasts)",
                        target.name,
                        target.addr
                    );
                }
            }
        }
    }
    changes
}

/// `addr`, unless it is the proxy's own (`own`, as [`config::target_at`]
/// tells).
fn not_own(addr: SocketAddr, own: SocketAddr) -> io::Result<SocketAddr> {
    let probe = Target {
        name: String::new(),
        addr,
        weight: 1,
        backup: false,
        max_conns: None,
    };
    match config::target_at(own, std::slice::from_ref(&probe)) {
        Some(_) => Err(io::Error::other(format!(
            "it now resolves to {addr}, this proxy's own address (requests would loop)"
        ))),
        None => Ok(addr),
    }
}

/// Gives each target in `changes` (by name) its new address; returns how
/// many were found. A name that is no longer among `targets` is skipped.
pub fn apply(targets: &mut [Target], changes: &[Change]) -> usize {
    let mut applied = 0;
    for change in changes {
        if let Some(t) = targets.iter_mut().find(|t| t.name == change.name) {
            t.addr = change.now;
            applied += 1;
        }
    }
    applied
}

/// The thread that calls a step every interval. Dropping (or stopping) it
/// ends the thread at its next wake-up without waiting for it: a lookup
/// under way may block for as long as the system resolver's timeouts, and
/// neither a reload nor a shutdown should wait that. What such a lookup
/// finds is not used: the server drops results from before a generation
/// it did not build them against, and any once it is shutting down.
pub struct Resolver {
    /// Dropping it wakes the thread's wait.
    _stop: Sender<()>,
}

impl Resolver {
    /// Calls `step` every `interval` until stopped, or until `step` says
    /// there is nothing left to do it for (the server is gone).
    pub fn start(
        interval: Duration,
        step: impl FnMut() -> bool + Send + 'static,
    ) -> io::Result<Resolver> {
        let (stop, stopped) = bounded(1);
        std::thread::Builder::new()
            .name("resolve".into())
            .spawn(move || every(interval, &stopped, step))?;
        Ok(Resolver { _stop: stop })
    }

    pub fn stop(self) {}
}

fn every(interval: Duration, stopped: &Receiver<()>, mut step: impl FnMut() -> bool) {
    loop {
        match stopped.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        if !step() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Where the proxy listens in these tests.
    const OWN: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

    fn target(name: &str, addr: &str) -> Target {
        Target {
            name: name.into(),
            addr: addr.parse().unwrap(),
            weight: 1,
            backup: false,
            max_conns: None,
        }
    }

    #[test]
    fn only_names_are_looked_up_and_only_moves_reported() {
        let targets = [
            target("10.0.0.1:80", "10.0.0.1:80"),
            target("[::1]:80", "[::1]:80"),
            target("app:80", "10.0.0.5:80"),
            target("db:80", "10.0.0.6:80"),
        ];
        let asked = Arc::new(AtomicUsize::new(0));
        let count = asked.clone();
        let resolve = move |name: &str| -> io::Result<SocketAddr> {
            count.fetch_add(1, Ordering::SeqCst);
            match name {
                "app:80" => Ok("10.0.0.7:80".parse().unwrap()),
                "db:80" => Ok("10.0.0.6:80".parse().unwrap()),
                other => panic!("{other} is an address, never looked up"),
            }
        };
        let changes = look_up(&targets, &resolve, OWN, &mut Failures::default());
        assert_eq!(asked.load(Ordering::SeqCst), 2);
        assert_eq!(
            changes,
            [Change {
                name: "app:80".into(),
                was: "10.0.0.5:80".parse().unwrap(),
                now: "10.0.0.7:80".parse().unwrap(),
            }]
        );
        let mut moved = targets.clone();
        assert_eq!(apply(&mut moved, &changes), 1);
        assert_eq!(moved[2].addr, "10.0.0.7:80".parse().unwrap());
        assert_eq!(moved[3], targets[3]);
    }

    #[test]
    fn a_name_that_fails_keeps_its_address_and_its_failure_is_remembered_until_it_resolves() {
        let targets = [target("app:80", "10.0.0.5:80")];
        let mut failures = Failures::default();
        let down = |_: &str| -> io::Result<SocketAddr> { Err(io::ErrorKind::NotFound.into()) };
        assert!(look_up(&targets, &down, OWN, &mut failures).is_empty());
        assert!(look_up(&targets, &down, OWN, &mut failures).is_empty());
        assert_eq!(failures.0.len(), 1);
        let up = |_: &str| -> io::Result<SocketAddr> { Ok("10.0.0.5:80".parse().unwrap()) };
        assert!(look_up(&targets, &up, OWN, &mut failures).is_empty());
        assert!(failures.0.is_empty(), "the failure ended");
        // A name a reload removed is forgotten.
        look_up(&targets, &down, OWN, &mut failures);
        look_up(&[], &down, OWN, &mut failures);
        assert!(failures.0.is_empty());
    }

    #[test]
    fn a_name_that_comes_to_resolve_to_the_proxy_itself_stays_where_it_was() {
        let targets = [target("app:8080", "10.0.0.5:8080")];
        let mut failures = Failures::default();
        let home = |_: &str| -> io::Result<SocketAddr> { Ok("127.0.0.1:8080".parse().unwrap()) };
        assert!(look_up(&targets, &home, OWN, &mut failures).is_empty());
        assert_eq!(failures.0.len(), 1, "said as a failure");
    }

    #[test]
    fn the_thread_steps_every_interval_until_stopped_or_told_to_end() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let resolver =
            Resolver::start(Duration::from_millis(1), move || tx.send(()).is_ok()).unwrap();
        for _ in 0..3 {
            rx.recv_timeout(Duration::from_secs(10)).expect("a step");
        }
        resolver.stop();
        // Ended: its sender is dropped with it (after a step under way).
        let ended = (0..1000).any(|_| {
            matches!(
                rx.recv_timeout(Duration::from_secs(10)),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected)
            )
        });
        assert!(ended);

        // A step that says the server is gone ends it too.
        let (tx, rx) = crossbeam_channel::unbounded::<()>();
        let _resolver = Resolver::start(Duration::from_millis(1), move || {
            let _ = &tx;
            false
        })
        .unwrap();
        assert!(matches!(
            rx.recv_timeout(Duration::from_secs(10)),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        ));
    }

    #[test]
    fn the_system_resolver_takes_addresses_as_they_are() {
        assert_eq!(
            system("127.0.0.1:8080").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            system("no port").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
