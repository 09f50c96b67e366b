//! When each name is looked up next: once its last answer's TTL has run
//! out, as nginx's `resolver` and HAProxy's `resolvers` follow it, so
//! that a service whose registry (Consul, a Kubernetes headless Service)
//! publishes short TTLs is followed as fast as it promises. The TTL is
//! held to at least [`MIN_WAIT`] and at most `resolve_interval`; an
//! answer without one (the system resolver's) or a failed lookup waits
//! the interval, as every name did before TTLs were read.
//!
//! Pure: time is a parameter, so the arithmetic is tested without
//! sleeping; the thread that waits is `Resolver`'s.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The least an answer is kept, whatever its TTL: Consul answers with a
/// TTL of 0 by default, which taken as it is would have its names asked
/// for without a pause.
pub const MIN_WAIT: Duration = Duration::from_secs(1);

/// How long an answer with `ttl` (seconds; `None`: unknown) is kept
/// before its name is asked again: its TTL within [`MIN_WAIT`] and
/// `interval` (the interval alone when that is shorter), else the
/// interval. Clamped as a `Duration` of whole seconds, which any `u32`
/// fits, before any `Instant` is added to.
pub fn kept_for(ttl: Option<u32>, interval: Duration) -> Duration {
    match ttl {
        Some(ttl) => Duration::from_secs(u64::from(ttl))
            .max(MIN_WAIT)
            .min(interval),
        None => interval,
    }
}

/// One name's lookup, as the schedule takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Looked {
    /// As written in `targets`.
    pub name: String,
    /// Its answer's TTL, in seconds; `None` when the lookup failed or its
    /// resolver says none.
    pub ttl: Option<u32>,
    /// When the answer came: its TTL counts from then.
    pub at: Instant,
}

/// The next lookup of each name of one thread (a reload starts another,
/// with the names it reads).
#[derive(Debug)]
pub struct Schedule {
    interval: Duration,
    /// `None`: never, past what an `Instant` holds (an interval of
    /// centuries).
    due: HashMap<String, Option<Instant>>,
}

impl Schedule {
    /// The schedule of names just looked up as `looked` says.
    pub fn new(interval: Duration, looked: Vec<Looked>) -> Schedule {
        let mut schedule = Schedule {
            interval,
            due: HashMap::new(),
        };
        for looked in looked {
            schedule.looked_up(looked);
        }
        schedule
    }

    fn looked_up(&mut self, looked: Looked) {
        let due = (looked.at).checked_add(kept_for(looked.ttl, self.interval));
        self.due.insert(looked.name, due);
    }

    /// Whether `name` is to be looked up at `now`: not one the schedule
    /// does not know (a reload is replacing it).
    pub fn is_due(&self, name: &str, now: Instant) -> bool {
        self.due
            .get(name)
            .is_some_and(|due| due.is_some_and(|due| due <= now))
    }

    /// When the next lookup is due; `None`: never.
    pub fn next(&self) -> Option<Instant> {
        self.due.values().flatten().min().copied()
    }

    /// Takes the lookups of a step begun at `began` and ended at `now`.
    /// A name due then that was not looked up (no longer among the
    /// targets, a reload under way) waits the interval, so that it is not
    /// due again at once, round and round.
    pub fn took(&mut self, began: Instant, looked: Vec<Looked>, now: Instant) {
        let skipped: Vec<String> = (self.due.keys())
            .filter(|name| self.is_due(name, began))
            .filter(|name| !looked.iter().any(|l| l.name == **name))
            .cloned()
            .collect();
        for name in skipped {
            self.due.insert(name, now.checked_add(self.interval));
        }
        for looked in looked {
            if self.due.contains_key(&looked.name) {
                self.looked_up(looked);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn looked(name: &str, ttl: Option<u32>, at: Instant) -> Looked {
        Looked {
            name: name.into(),
            ttl,
            at,
        }
    }

    #[test]
    fn an_answer_is_kept_for_its_ttl_between_the_floor_and_the_interval() {
        let secs = Duration::from_secs;
        assert_eq!(kept_for(Some(30), HOUR), secs(30));
        assert_eq!(kept_for(Some(0), HOUR), MIN_WAIT, "Consul's default");
        assert_eq!(kept_for(Some(7200), HOUR), HOUR);
        assert_eq!(kept_for(Some(u32::MAX), HOUR), HOUR);
        assert_eq!(kept_for(None, HOUR), HOUR, "no TTL: the interval");
        // An interval under the floor (tests') is the ceiling still.
        let short = Duration::from_millis(5);
        assert_eq!(kept_for(Some(0), short), short);
        assert_eq!(kept_for(Some(u32::MAX), short), short);
    }

    #[test]
    fn each_name_is_due_after_its_own_answers_ttl() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut schedule = Schedule::new(
            HOUR,
            vec![
                looked("srv:_http._tcp.a.test", Some(0), t0),
                looked("app:80", None, t0),
            ],
        );
        assert_eq!(schedule.next(), Some(t0 + MIN_WAIT));
        assert!(!schedule.is_due("srv:_http._tcp.a.test", t0));
        assert!(schedule.is_due("srv:_http._tcp.a.test", t0 + MIN_WAIT));
        assert!(!schedule.is_due("app:80", t0 + MIN_WAIT));
        assert!(!schedule.is_due("other:80", t0 + HOUR), "unknown");

        // Its answer at 1.5s says 30s: due at 31.5s; app:80 at the hour.
        let began = t0 + MIN_WAIT;
        let at = began + Duration::from_millis(500);
        let answer = looked("srv:_http._tcp.a.test", Some(30), at);
        schedule.took(began, vec![answer], at);
        assert_eq!(schedule.next(), Some(at + secs(30)));
        assert!(schedule.is_due("app:80", t0 + HOUR));

        // A failure, or a TTL past the interval: the interval.
        let failed = looked("srv:_http._tcp.a.test", None, at + secs(30));
        schedule.took(at + secs(30), vec![failed], at + secs(30));
        assert_eq!(schedule.next(), Some(t0 + HOUR), "app:80's turn first");
        let huge = looked("app:80", Some(u32::MAX), t0 + HOUR);
        schedule.took(t0 + HOUR, vec![huge], t0 + HOUR);
        assert_eq!(schedule.next(), Some(at + secs(30) + HOUR));
    }

    #[test]
    fn a_name_due_but_not_looked_up_waits_the_interval_rather_than_being_due_still() {
        let t0 = Instant::now();
        let mut schedule = Schedule::new(HOUR, vec![looked("srv:a", Some(0), t0)]);
        let began = t0 + MIN_WAIT;
        // A reload took it out meanwhile; a name not scheduled is ignored.
        schedule.took(began, vec![looked("srv:new", Some(0), began)], began);
        assert_eq!(schedule.next(), Some(began + HOUR));
        assert!(!schedule.is_due("srv:new", began + HOUR));
    }

    #[test]
    fn an_interval_past_what_an_instant_holds_is_never() {
        let t0 = Instant::now();
        let forever = Duration::MAX;
        let schedule = Schedule::new(forever, vec![looked("app:80", None, t0)]);
        assert_eq!(schedule.next(), None);
        // Nor a TTL of 2^32-1 seconds taken as it is: no overflow.
        Schedule::new(forever, vec![looked("srv:a", Some(u32::MAX), t0)]).next();
    }
}
