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
//! the answer's TTL, so such names are looked up every interval. A
//! target written `srv:NAME` has its SRV records asked of the `resolver`
//! in force (see [`crate::dns::srv`]), whose reply's TTL says when to ask
//! again (see [`Schedule`]); a record whose weight or priority changed
//! changes its address's weight or `backup` as an address that came or
//! went does. The resolver is a parameter ([`Resolve`]) so tests can play
//! DNS.

mod schedule;

pub use schedule::{Looked, Schedule, MIN_WAIT};

use crate::config::{self, listed, Addresses, Found, LastAddresses, Target, Written};
use crate::dns::srv::Answer;
use crate::throttle::Throttle;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Turns a target as written (`app:8000`, `srv:_http._tcp.app.test`)
/// into the addresses it gives (with what SRV records say of each),
/// in any order ([`config::addresses_of`] makes the set of them): the
/// system resolver's ([`system`]) or a test's.
pub type Resolve<'a> = dyn Fn(&str) -> io::Result<Vec<Found>> + 'a;

/// [`Resolve`], with the answer's TTL where the resolver reads one
/// ([`answer_via`]'s).
pub type ResolveTimed<'a> = dyn Fn(&str) -> io::Result<Answer> + 'a;

/// Which names, as written, a step looks up (those whose answer ran out).
pub type Due<'a> = dyn Fn(&str) -> bool + 'a;

/// The system resolver, as start-up and reloads ask it: every address it
/// gives (see [`config::lookup`]); for `srv:NAME`, those its SRV records
/// give, asked of resolv.conf's first `nameserver` (see [`via`]).
pub fn system(name: &str) -> io::Result<Vec<Found>> {
    via(name, None)
}

/// [`system`], but for `srv:NAME`, whose SRV records are asked of
/// `resolver` (the key of that name; `None`: resolv.conf's first
/// `nameserver`, see [`crate::dns::srv::lookup`]).
pub fn via(name: &str, resolver: Option<SocketAddr>) -> io::Result<Vec<Found>> {
    answer_via(name, resolver).map(|answer| answer.found)
}

/// [`via`], with the TTL of an `srv:` name's reply (the system resolver
/// gives none).
pub fn answer_via(name: &str, resolver: Option<SocketAddr>) -> io::Result<Answer> {
    match config::written(name) {
        Ok(Written::Name { host, port }) => config::lookup(host, port)
            .map(|a| Answer::from(a.into_iter().map(Found::from).collect::<Vec<_>>())),
        Ok(Written::Srv(service)) => crate::dns::srv::lookup(service, resolver),
        Ok(Written::Address(addr)) => Ok(Answer::from(vec![Found::from(addr)])),
        // Never looked up (see `is_named`): a path has no addresses.
        Ok(Written::Unix(_)) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("target `{name}` is a Unix socket, which has no addresses to look up"),
        )),
        Err(message) => Err(io::Error::new(io::ErrorKind::InvalidInput, message)),
    }
}

/// A target written as a name whose set of addresses changed: one came,
/// one went, it moved, or an SRV record gave one another weight or
/// priority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// As written in `targets`.
    pub name: String,
    /// Its addresses before and now, sorted (see [`Found::order`]), with
    /// what SRV records gave them that the name's targets take (see
    /// [`Found::of`]).
    pub was: Vec<Found>,
    pub now: Vec<Found>,
    /// Addresses the name gives past [`config::MAX_ADDRESSES_PER_NAME`],
    /// not used.
    pub left_out: usize,
}

impl std::fmt::Display for Change {
    /// `target app:8000 now resolves to 10.0.0.5:8000, 10.0.0.6:8000 (was 10.0.0.5:8000)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "target {} now resolves to {} (was {})",
            self.name,
            listed(&self.now),
            listed(&self.was)
        )?;
        if self.left_out > 0 {
            write!(
                f,
                "; {} more left out, at most {} addresses of a name being used",
                self.left_out,
                config::MAX_ADDRESSES_PER_NAME
            )?;
        }
        Ok(())
    }
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
            .retain(|name, _| targets.iter().any(|t| t.as_written() == *name));
    }
}

/// Whether `target` was written as a name (`srv:NAME` too), the only
/// kind looked up again: an address written as one is meant as that
/// address.
pub fn is_named(target: &Target) -> bool {
    matches!(
        config::written(target.as_written()),
        Ok(Written::Name { .. } | Written::Srv(_))
    )
}

/// Each name among `targets`, once, in their order: its first target
/// (which has the options written for it) and what its targets are at
/// (sorted, see [`Found::order`]): nothing for one that gave no address
/// yet.
fn names(targets: &[Target]) -> Vec<(&Target, Vec<Found>)> {
    let mut names: Vec<(&Target, Vec<Found>)> = Vec::new();
    for target in targets.iter().filter(|t| is_named(t)) {
        // A name's targets are all at TCP addresses.
        let Some(found) = Found::of(target) else {
            continue;
        };
        let found = Some(found).filter(|_| !target.has_no_address());
        let name = target.as_written();
        match names.iter_mut().find(|(n, _)| n.as_written() == name) {
            Some((_, found_before)) => found_before.extend(found),
            None => names.push((target, found.into_iter().collect())),
        }
    }
    for (_, found) in &mut names {
        found.sort_unstable_by_key(Found::order);
    }
    names
}

/// What each name among `targets` is at, for a reload to keep where it
/// does not resolve then.
pub fn last_addresses(targets: &[Target]) -> LastAddresses {
    let names = names(targets).into_iter();
    LastAddresses::new(names.map(|(first, found)| (first.as_written().to_string(), found)))
}

/// What a step's lookups gave: the names whose targets change, and each
/// name looked up, for the [`Schedule`].
#[derive(Debug, Default)]
pub struct Lookups {
    pub changes: Vec<Change>,
    pub looked: Vec<Looked>,
}

/// Looks up each target written as a name, once, with `resolve`; returns
/// those whose targets would change: an address came or went, or an SRV
/// record's weight or priority that the name takes changed (compared as
/// sets: an answer in another order is no change). A name that does
/// not resolve keeps the addresses it had (DNS down for a moment must
/// not take a backend away), with a warning at most once a minute per
/// name (one as written with no address yet, see
/// [`Target::has_no_address`], stays without); so does one of which an
/// address is now one of `own`, the addresses the proxy serves HTTP on
/// (requests would loop, which a reload refuses too).
pub fn look_up(
    targets: &[Target],
    resolve: &Resolve<'_>,
    own: &[SocketAddr],
    failures: &mut Failures,
) -> Vec<Change> {
    let resolve = |name: &str| resolve(name).map(Answer::from);
    look_up_due(targets, &resolve, own, failures, &|_| true).changes
}

/// [`look_up`] of the names `due` takes, with the TTL of each answer
/// (none for a lookup that failed: it is tried again after the interval,
/// as every name was before TTLs were read).
pub fn look_up_due(
    targets: &[Target],
    resolve: &ResolveTimed<'_>,
    own: &[SocketAddr],
    failures: &mut Failures,
    due: &Due<'_>,
) -> Lookups {
    failures.keep_only(targets);
    let mut lookups = Lookups::default();
    let names = names(targets).into_iter();
    for (first, was) in names.filter(|(first, _)| due(first.as_written())) {
        let name = first.as_written();
        let answer = resolve(name);
        let at = Instant::now();
        let ttl = answer.as_ref().ok().and_then(|a| a.ttl);
        let answer = answer.and_then(|answer| usable(first.addresses_in(answer.found), own));
        // An answer not taken is a failure, tried again as one.
        let ttl = ttl.filter(|_| answer.is_ok());
        let looked = Looked {
            name: name.to_string(),
            ttl,
            at,
        };
        lookups.looked.push(looked);
        match answer {
            Ok(found) => {
                if failures.recovered(name) {
                    log::info!("target {name} resolves again");
                }
                // As its targets would take them: a weight= written
                // makes a record's weight no change.
                let now: Vec<Found> = (first.at(&found.used).iter())
                    .filter_map(Found::of)
                    .collect();
                if now != was {
                    lookups.changes.push(Change {
                        name: name.to_string(),
                        was,
                        now,
                        left_out: found.left_out,
                    });
                }
            }
            Err(e) => {
                if failures.failed(name, at) {
                    log::warn!(
                        "{} (said at most once a minute while it lasts)",
                        config::does_not_resolve(name, &e, &was)
                    );
                }
            }
        }
    }
    lookups
}

/// The addresses of an answer a name takes (see [`Target::addresses_in`]),
/// unless there are none or one is the proxy's own (one of `own`, as
/// [`config::is_listener`] tells).
fn usable(found: Addresses, own: &[SocketAddr]) -> io::Result<Addresses> {
    if found.used.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no address returned",
        ));
    }
    let is_own = |addr| own.iter().any(|&own| config::is_listener(own, addr));
    match found.used.iter().find(|f| is_own(f.addr)) {
        Some(f) => Err(io::Error::other(format!(
            "it now resolves to {}, this proxy's own address (requests would loop)",
            f.addr
        ))),
        None => Ok(found),
    }
}

/// Moves each name of `unresolved` (as written, with no address) that
/// `changes` gives addresses to to the end of `targets`, for [`apply`]
/// to spread over them.
pub fn admit(targets: &mut Vec<Target>, unresolved: &mut Vec<Target>, changes: &[Change]) {
    let resolved = |t: &Target| {
        changes
            .iter()
            .any(|c| c.name == t.name && !c.now.is_empty())
    };
    let (now, still) = std::mem::take(unresolved).into_iter().partition(resolved);
    *unresolved = still;
    targets.extend::<Vec<Target>>(now);
}

/// Gives each name in `changes` its new addresses: its targets are
/// replaced, where the first of them stood, by one per address (see
/// [`Target::at`]), with the options written for it (weight, `max_conns`,
/// `backup`, `max_fails`, `fail_timeout`) and what its SRV records now
/// say. Returns how many names were found; one that is no longer among
/// `targets` is skipped.
pub fn apply(targets: &mut Vec<Target>, changes: &[Change]) -> usize {
    let mut applied = 0;
    for change in changes {
        let Some(first) = targets.iter().position(|t| t.as_written() == change.name) else {
            continue;
        };
        let spread = targets[first].at(&change.now);
        // Those before `first` are other targets: it stays where it was.
        targets.retain(|t| t.as_written() != change.name);
        targets.splice(first..first, spread);
        applied += 1;
    }
    applied
}

/// The schedule of a thread that starts at `now` with `targets`. Their
/// lookup at start-up or at the reload read no TTL, so a name whose
/// resolver reads one (`srv:`) is taken as if that answer were not to be
/// kept at all, and asked again after [`MIN_WAIT`], from when on its
/// TTL rules; one the system resolver looks up waits the interval, as
/// after any of its answers.
pub fn schedule(targets: &[Target], interval: Duration, now: Instant) -> Schedule {
    let looked = names(targets).into_iter().map(|(first, _)| {
        let name = first.as_written();
        let reads_ttl = matches!(config::written(name), Ok(Written::Srv(_)));
        Looked {
            name: name.to_string(),
            ttl: reads_ttl.then_some(0),
            at: now,
        }
    });
    Schedule::new(interval, looked.collect())
}

/// The thread that calls a step whenever a name is due (see
/// [`Schedule`]). Dropping (or stopping) it ends the thread at once if it
/// waits, else once its step ends, without waiting for it: a lookup
/// under way may block for as long as the system resolver's timeouts, and
/// neither a reload nor a shutdown should wait that. What such a lookup
/// finds is not used: the server drops results from before a generation
/// it did not build them against, and any once it is shutting down.
pub struct Resolver {
    /// Dropping it wakes the thread's wait.
    _stop: Sender<()>,
}

impl Resolver {
    /// Calls `step` with the names due, as `schedule` has them, until
    /// stopped, or until `step` says there is nothing left to do it for
    /// (`None`: the server is gone); what it looked up says when next.
    pub fn start(
        schedule: Schedule,
        step: impl FnMut(&Due<'_>) -> Option<Vec<Looked>> + Send + 'static,
    ) -> io::Result<Resolver> {
        let (stop, stopped) = bounded(1);
        std::thread::Builder::new()
            .name("resolve".into())
            .spawn(move || when_due(schedule, &stopped, step))?;
        Ok(Resolver { _stop: stop })
    }

    pub fn stop(self) {}
}

fn when_due(
    mut schedule: Schedule,
    stopped: &Receiver<()>,
    mut step: impl FnMut(&Due<'_>) -> Option<Vec<Looked>>,
) {
    loop {
        let woken = match schedule.next() {
            Some(due) => stopped.recv_timeout(due.saturating_duration_since(Instant::now())),
            None => stopped.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        if !matches!(woken, Err(RecvTimeoutError::Timeout)) {
            return;
        }
        let began = Instant::now();
        let Some(looked) = step(&|name| schedule.is_due(name, began)) else {
            return;
        };
        schedule.took(began, looked, Instant::now());
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
        Target::new(name, addr.parse::<SocketAddr>().unwrap())
    }

    fn addrs(list: &[&str]) -> Vec<Found> {
        (list.iter())
            .map(|a| a.parse::<SocketAddr>().unwrap().into())
            .collect()
    }

    #[test]
    fn only_names_are_looked_up_and_only_moves_reported() {
        let targets = [
            target("10.0.0.1:80", "10.0.0.1:80"),
            target("[::1]:80", "[::1]:80"),
            target("app:80", "10.0.0.5:80"),
            target("db:80", "10.0.0.6:80"),
            Target::unix("/run/app.sock"),
        ];
        assert!(!is_named(&targets[4]), "a Unix socket's path is no name");
        let asked = Arc::new(AtomicUsize::new(0));
        let count = asked.clone();
        let resolve = move |name: &str| -> io::Result<Vec<Found>> {
            count.fetch_add(1, Ordering::SeqCst);
            match name {
                "app:80" => Ok(addrs(&["10.0.0.7:80"])),
                "db:80" => Ok(addrs(&["10.0.0.6:80"])),
                other => panic!("{other} is an address, never looked up"),
            }
        };
        let changes = look_up(&targets, &resolve, &[OWN], &mut Failures::default());
        assert_eq!(asked.load(Ordering::SeqCst), 2);
        assert_eq!(
            changes,
            [Change {
                name: "app:80".into(),
                was: addrs(&["10.0.0.5:80"]),
                now: addrs(&["10.0.0.7:80"]),
                left_out: 0,
            }]
        );
        let mut moved = targets.to_vec();
        assert_eq!(apply(&mut moved, &changes), 1);
        assert_eq!(moved[2].addr.tcp(), "10.0.0.7:80".parse().ok());
        assert_eq!(moved[3..], targets[3..]);
    }

    #[test]
    fn a_name_that_fails_keeps_its_address_and_its_failure_is_remembered_until_it_resolves() {
        let targets = [target("app:80", "10.0.0.5:80")];
        let mut failures = Failures::default();
        let down = |_: &str| -> io::Result<Vec<Found>> { Err(io::ErrorKind::NotFound.into()) };
        assert!(look_up(&targets, &down, &[OWN], &mut failures).is_empty());
        assert!(look_up(&targets, &down, &[OWN], &mut failures).is_empty());
        assert_eq!(failures.0.len(), 1);
        let up = |_: &str| -> io::Result<Vec<Found>> { Ok(addrs(&["10.0.0.5:80"])) };
        assert!(look_up(&targets, &up, &[OWN], &mut failures).is_empty());
        assert!(failures.0.is_empty(), "the failure ended");
        // A name a reload removed is forgotten.
        look_up(&targets, &down, &[OWN], &mut failures);
        look_up(&[], &down, &[OWN], &mut failures);
        assert!(failures.0.is_empty());
    }

    #[test]
    fn a_name_that_comes_to_resolve_to_the_proxy_itself_stays_where_it_was() {
        let targets = [target("app:8080", "10.0.0.5:8080")];
        let mut failures = Failures::default();
        let home = |_: &str| -> io::Result<Vec<Found>> { Ok(addrs(&["127.0.0.1:8080"])) };
        assert!(look_up(&targets, &home, &[OWN], &mut failures).is_empty());
        assert_eq!(failures.0.len(), 1, "said as a failure");
    }

    #[test]
    fn a_name_is_compared_by_its_set_of_addresses_and_spread_over_them() {
        let mut targets = vec![
            target("10.0.0.1:80", "10.0.0.1:80"),
            Target {
                weight: 2,
                max_conns: Some(5),
                max_fails: Some(3),
                fail_timeout: Some(Duration::from_secs(30)),
                ..target("app:80", "10.0.0.5:80")
            },
            target("db:80", "10.0.0.9:80"),
        ];
        let answer = Arc::new(std::sync::Mutex::new(addrs(&["10.0.0.5:80"])));
        let dns = answer.clone();
        let resolve = move |name: &str| -> io::Result<Vec<Found>> {
            match name {
                "app:80" => Ok(dns.lock().unwrap().clone()),
                _ => Ok(addrs(&["10.0.0.9:80"])),
            }
        };
        let mut failures = Failures::default();
        let mut step = |targets: &mut Vec<Target>, now: &[&str]| {
            *answer.lock().unwrap() = addrs(now);
            let changes = look_up(targets, &resolve, &[OWN], &mut failures);
            assert_eq!(apply(targets, &changes), changes.len());
            changes
        };

        // One more address, given first: the name's targets are one per
        // address, sorted, where the name stood.
        let changes = step(&mut targets, &["10.0.0.6:80", "10.0.0.5:80"]);
        assert_eq!(
            changes,
            [Change {
                name: "app:80".into(),
                was: addrs(&["10.0.0.5:80"]),
                now: addrs(&["10.0.0.5:80", "10.0.0.6:80"]),
                left_out: 0,
            }]
        );
        assert_eq!(
            changes[0].to_string(),
            "target app:80 now resolves to 10.0.0.5:80, 10.0.0.6:80 (was 10.0.0.5:80)"
        );
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "10.0.0.1:80",
                "app:80@10.0.0.5:80",
                "app:80@10.0.0.6:80",
                "db:80"
            ]
        );
        assert!(targets[1..3]
            .iter()
            .all(|t| (t.weight, t.max_conns) == (2, Some(5))));
        // A re-resolution keeps the passive-health options written too.
        assert!(targets[1..3]
            .iter()
            .all(|t| (t.max_fails, t.fail_timeout) == (Some(3), Some(Duration::from_secs(30)))));

        // The same set in another order (DNS round robin): no change.
        assert!(step(&mut targets, &["10.0.0.6:80", "10.0.0.5:80"]).is_empty());
        assert!(step(&mut targets, &["10.0.0.5:80", "10.0.0.6:80", "10.0.0.6:80"]).is_empty());

        // One goes, another comes: the one that stays keeps its name.
        let changes = step(&mut targets, &["10.0.0.7:80", "10.0.0.6:80"]);
        assert_eq!(changes[0].was, addrs(&["10.0.0.5:80", "10.0.0.6:80"]));
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "10.0.0.1:80",
                "app:80@10.0.0.6:80",
                "app:80@10.0.0.7:80",
                "db:80"
            ]
        );

        // Back to one address: named as written again.
        step(&mut targets, &["10.0.0.7:80"]);
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["10.0.0.1:80", "app:80", "db:80"]);
        assert_eq!(targets[1].addr.tcp(), "10.0.0.7:80".parse().ok());
        assert_eq!(targets[1].weight, 2);
    }

    /// `addr` as an SRV record of `weight` gives it, a backup or not.
    fn record(addr: &str, weight: u32, backup: bool) -> Found {
        Found {
            weight: Some(weight),
            backup,
            ..addrs(&[addr])[0]
        }
    }

    #[test]
    fn a_records_new_weight_or_priority_is_a_change_and_its_target_takes_it() {
        const SRV: &str = "srv:_http._tcp.app.test";
        let written = Target {
            record_weight: true,
            ..target(SRV, "0.0.0.0:0")
        };
        let answer = Arc::new(std::sync::Mutex::new(vec![
            record("10.0.0.5:80", 3, false),
            record("10.0.0.6:80", 1, true),
        ]));
        let mut targets = written.at(&answer.lock().unwrap());
        let dns = answer.clone();
        let resolve = move |_: &str| -> io::Result<Vec<Found>> { Ok(dns.lock().unwrap().clone()) };
        let mut failures = Failures::default();
        let mut step = |targets: &mut Vec<Target>, now: Vec<Found>| {
            *answer.lock().unwrap() = now;
            let changes = look_up(targets, &resolve, &[OWN], &mut failures);
            apply(targets, &changes);
            changes
        };
        let shares = |targets: &[Target]| -> Vec<(u32, bool)> {
            targets.iter().map(|t| (t.weight, t.backup)).collect()
        };
        let same = vec![
            record("10.0.0.6:80", 1, true),
            record("10.0.0.5:80", 3, false),
        ];
        assert!(step(&mut targets, same).is_empty());

        // The first's weight is now 4; the second's priority the lowest.
        let changes = step(
            &mut targets,
            vec![
                record("10.0.0.5:80", 4, false),
                record("10.0.0.6:80", 1, false),
            ],
        );
        assert_eq!(
            changes[0].to_string(),
            format!(
                "target {SRV} now resolves to 10.0.0.5:80 (weight 4), 10.0.0.6:80 (weight 1) \
                 (was 10.0.0.5:80 (weight 3), 10.0.0.6:80 (weight 1, backup))"
            )
        );
        assert_eq!(shares(&targets), [(4, false), (1, false)]);
        // And back to a backup, which the target takes, as nothing wrote it.
        step(
            &mut targets,
            vec![
                record("10.0.0.5:80", 4, false),
                record("10.0.0.6:80", 2, true),
            ],
        );
        assert_eq!(shares(&targets), [(4, false), (2, true)]);

        // With weight= written, a record's weight changes nothing.
        let mut weighed: Vec<Target> = (targets.iter())
            .map(|t| Target {
                weight: 7,
                record_weight: false,
                ..t.clone()
            })
            .collect();
        let moved = vec![
            record("10.0.0.5:80", 9, false),
            record("10.0.0.6:80", 9, true),
        ];
        assert!(step(&mut weighed, moved).is_empty());
        assert_eq!(shares(&weighed), [(7, false), (7, true)]);
    }

    #[test]
    fn an_answer_with_the_proxy_itself_among_its_addresses_is_not_used() {
        let targets = [
            target("app:8080@10.0.0.5:8080", "10.0.0.5:8080"),
            target("app:8080@10.0.0.6:8080", "10.0.0.6:8080"),
        ];
        let mut failures = Failures::default();
        let home =
            |_: &str| -> io::Result<Vec<Found>> { Ok(addrs(&["10.0.0.5:8080", "127.0.0.1:8080"])) };
        assert!(look_up(&targets, &home, &[OWN], &mut failures).is_empty());
        assert_eq!(failures.0.len(), 1, "said as a failure");
        // Nor is an empty answer.
        let empty = |_: &str| -> io::Result<Vec<Found>> { Ok(Vec::new()) };
        assert!(look_up(&targets, &empty, &[OWN], &mut failures).is_empty());
    }

    #[test]
    fn a_change_says_how_many_addresses_past_the_most_a_name_may_use_were_left_out() {
        let targets = [target("app:80", "10.0.0.5:80")];
        let many = |_: &str| -> io::Result<Vec<Found>> {
            Ok((0..config::MAX_ADDRESSES_PER_NAME as u8 + 2)
                .map(|i| SocketAddr::from(([10, 0, 1, i], 80)).into())
                .collect())
        };
        let changes = look_up(&targets, &many, &[OWN], &mut Failures::default());
        assert_eq!(changes[0].now.len(), config::MAX_ADDRESSES_PER_NAME);
        assert_eq!(changes[0].left_out, 2);
        assert!(
            changes[0].to_string().ends_with(&format!(
                "; 2 more left out, at most {} addresses of a name being used",
                config::MAX_ADDRESSES_PER_NAME
            )),
            "{}",
            changes[0]
        );
    }

    #[test]
    fn a_failure_that_lasts_is_not_said_again_at_each_lookup_while_its_name_stays() {
        let t0 = Instant::now();
        let mut failures = Failures::default();
        assert!(failures.failed("app:80", t0));
        assert!(failures.failed("gone:80", t0));
        // Between two lookups: a reload took `gone:80` out.
        failures.keep_only(&[target("app:80", "10.0.0.5:80")]);
        assert!(!failures.failed("app:80", t0), "said again");
        assert!(
            failures.failed("gone:80", t0),
            "a name taken out is forgotten"
        );
    }

    #[test]
    fn a_name_with_no_address_yet_is_looked_up_and_admitted_once_it_resolves() {
        let mut targets = vec![target("10.0.0.1:80", "10.0.0.1:80")];
        let mut unresolved = vec![target("app:80", "0.0.0.0:0")];
        assert!(unresolved[0].has_no_address());
        let mut failures = Failures::default();
        let mut step =
            |targets: &mut Vec<Target>, unresolved: &mut Vec<Target>, resolve: &Resolve<'_>| {
                let all: Vec<Target> = targets.iter().chain(&*unresolved).cloned().collect();
                let changes = look_up(&all, resolve, &[OWN], &mut failures);
                admit(targets, unresolved, &changes);
                assert_eq!(apply(targets, &changes), changes.len());
                changes
            };
        let down = |_: &str| -> io::Result<Vec<Found>> { Err(io::ErrorKind::NotFound.into()) };
        assert!(step(&mut targets, &mut unresolved, &down).is_empty());
        // Nor is one at the proxy's own address taken.
        let home = |_: &str| -> io::Result<Vec<Found>> { Ok(addrs(&["127.0.0.1:8080"])) };
        assert!(step(&mut targets, &mut unresolved, &home).is_empty());
        assert_eq!((targets.len(), unresolved.len()), (1, 1), "still waiting");

        let up = |_: &str| -> io::Result<Vec<Found>> { Ok(addrs(&["10.0.0.6:80", "10.0.0.5:80"])) };
        let changes = step(&mut targets, &mut unresolved, &up);
        assert_eq!(
            changes,
            [Change {
                name: "app:80".into(),
                was: Vec::new(),
                now: addrs(&["10.0.0.5:80", "10.0.0.6:80"]),
                left_out: 0,
            }]
        );
        assert_eq!(
            changes[0].to_string(),
            "target app:80 now resolves to 10.0.0.5:80, 10.0.0.6:80 (was no address)"
        );
        assert!(unresolved.is_empty());
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["10.0.0.1:80", "app:80@10.0.0.5:80", "app:80@10.0.0.6:80"]
        );
        // From then on, a name like any other.
        assert!(step(&mut targets, &mut unresolved, &up).is_empty());
    }

    #[test]
    fn the_thread_steps_when_due_until_stopped_or_told_to_end() {
        let every = |interval: Duration| {
            let targets = [target("app:80", "10.0.0.5:80")];
            schedule(&targets, interval, Instant::now())
        };
        let (tx, rx) = crossbeam_channel::unbounded();
        let step = move |due: &Due<'_>| {
            let looked = Looked {
                name: "app:80".into(),
                ttl: None,
                at: Instant::now(),
            };
            (tx.send(()).is_ok() && due("app:80")).then(|| vec![looked])
        };
        let resolver = Resolver::start(every(Duration::from_millis(1)), step).unwrap();
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
        let _resolver = Resolver::start(every(Duration::from_millis(1)), move |_: &Due<'_>| {
            let _ = &tx;
            None
        })
        .unwrap();
        assert!(matches!(
            rx.recv_timeout(Duration::from_secs(10)),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        ));
    }

    #[test]
    fn only_the_names_due_are_looked_up_each_with_its_answers_ttl() {
        const SRV: &str = "srv:_http._tcp.app.test";
        let targets = [
            target("app:80", "10.0.0.5:80"),
            target(SRV, "10.0.0.6:80"),
            target("db:80", "10.0.0.7:80"),
        ];
        let t0 = Instant::now();
        // After start-up, whose lookup read no TTL: `srv:` after the
        // floor, the others after the interval.
        let hour = Duration::from_secs(3600);
        let first = schedule(&targets, hour, t0);
        assert_eq!(first.next(), Some(t0 + MIN_WAIT));
        assert!(first.is_due(SRV, t0 + MIN_WAIT) && !first.is_due("app:80", t0 + MIN_WAIT));

        let resolve = |name: &str| -> io::Result<Answer> {
            match name {
                SRV => Ok(Answer {
                    found: addrs(&["10.0.0.6:80"]),
                    ttl: Some(5),
                }),
                // At the proxy's own address: not taken, nor its TTL.
                "db:80" => Ok(Answer {
                    found: addrs(&["127.0.0.1:8080"]),
                    ttl: Some(5),
                }),
                other => panic!("{other} looked up, though not due"),
            }
        };
        let due = |name: &str| name != "app:80";
        let lookups = look_up_due(&targets, &resolve, &[OWN], &mut Failures::default(), &due);
        assert!(lookups.changes.is_empty());
        let ttls: Vec<(&str, Option<u32>)> = (lookups.looked.iter())
            .map(|l| (l.name.as_str(), l.ttl))
            .collect();
        assert_eq!(ttls, [(SRV, Some(5)), ("db:80", None)]);
    }

    #[test]
    fn the_system_resolver_takes_addresses_as_they_are() {
        assert_eq!(
            system("127.0.0.1:8080").unwrap(),
            addrs(&["127.0.0.1:8080"])
        );
        assert_eq!(
            via("no port", None).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert!(is_named(&target("srv:_http._tcp.app.test", "10.0.0.5:80")));
    }
}
