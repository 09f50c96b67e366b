//! Saying a lasting failure (a full disk under the access log or the
//! snapshot) when it starts, again at most once a minute while it lasts,
//! and when it ends, rather than at every retry.

use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// How often a failure that goes on is said again: nginx repeats its
/// alerts at most once a minute too.
pub const WARN_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct Throttle {
    /// When the failure was last said; `None` while all is well.
    warned: Option<Instant>,
    /// The causes [`Throttle::failed_because`] said lately, and when:
    /// the oldest goes first past [`CAUSES_KEPT`].
    causes: Vec<(String, Instant)>,
}

impl Throttle {
    /// Nothing said yet (for a `static`).
    pub const fn new() -> Self {
        Throttle {
            warned: None,
            causes: Vec::new(),
        }
    }

    /// A failure at `now`: whether to say so.
    pub fn failed(&mut self, now: Instant) -> bool {
        let say = self
            .warned
            .is_none_or(|t| now.duration_since(t) >= WARN_EVERY);
        if say {
            self.warned = Some(now);
        }
        say
    }

    /// A failure at `now` of `cause` (its message): as [`Throttle::failed`],
    /// once a minute for each cause, so that a cause not said lately is
    /// said at once. A full disk made room on, then a directory made
    /// read-only, is news to the operator who just fixed the first: not
    /// for up to a minute later; two causes that alternate are each said
    /// once a minute, not at every change.
    pub fn failed_because(&mut self, now: Instant, cause: &str) -> bool {
        let lately = |at: Instant| now.duration_since(at) < WARN_EVERY;
        match self.causes.iter().position(|(c, _)| c == cause) {
            Some(i) if lately(self.causes[i].1) => return false,
            Some(i) => self.causes[i].1 = now,
            None => {
                if self.causes.len() == CAUSES_KEPT {
                    self.causes.remove(0);
                }
                self.causes.push((cause.to_owned(), now));
            }
        }
        self.warned = Some(now);
        true
    }

    /// A success: whether it ends failures that were said.
    pub fn recovered(&mut self) -> bool {
        self.causes.clear();
        self.warned.take().is_some()
    }
}

/// A [`Throttle`] in a `static`, for a failure any thread may meet
/// (threads that cannot be started, descriptors run out).
#[derive(Default)]
pub struct OnceAMinute(Mutex<Throttle>);

impl OnceAMinute {
    pub const fn new() -> Self {
        OnceAMinute(Mutex::new(Throttle::new()))
    }

    /// A failure now: whether to say so.
    pub fn due(&self) -> bool {
        self.0.lock().failed(Instant::now())
    }

    /// A success: whether it ends failures that were said.
    pub fn recovered(&self) -> bool {
        self.0.lock().recovered()
    }
}

/// A failure every request may meet (a dead backend under load), said
/// at most once a minute for each cause, with how many of that cause went
/// unsaid since, rather than once a request. Each cause has its own
/// throttle: a target flapping between two causes (refused, then timed
/// out, then refused) says each once a minute, not every failure.
#[derive(Debug, Default)]
pub struct Counted(Mutex<Vec<Said>>);

/// The causes a [`Counted`] tells apart at once. One past them takes the
/// place of a cause last said a minute ago or more; while none was, it
/// is kept quiet: a line a minute for each of these is enough to read.
const CAUSES_KEPT: usize = 8;

#[derive(Debug)]
struct Said {
    cause: String,
    throttle: Throttle,
    /// Failures of `cause` not said since it last was.
    quiet: u64,
}

impl Counted {
    /// A failure of `cause` at `now`: `Some(n)` to say it, `n` the
    /// failures of that cause not said since it last was; `None` to keep
    /// quiet.
    pub fn failed_because(&self, now: Instant, cause: &str) -> Option<u64> {
        let mut said = self.0.lock();
        let at = match said.iter().position(|s| s.cause == cause) {
            Some(at) => at,
            None => {
                let new = Said {
                    cause: cause.to_owned(),
                    throttle: Throttle::new(),
                    quiet: 0,
                };
                if said.len() < CAUSES_KEPT {
                    said.push(new);
                    said.len() - 1
                } else {
                    let due = |s: &Said| {
                        s.throttle
                            .warned
                            .is_none_or(|t| now.duration_since(t) >= WARN_EVERY)
                    };
                    let at = said.iter().position(due)?;
                    said[at] = new;
                    at
                }
            }
        };
        let said = &mut said[at];
        if said.throttle.failed(now) {
            Some(std::mem::take(&mut said.quiet))
        } else {
            said.quiet += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_the_start_then_once_per_interval_then_the_end() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        assert!(!t.recovered(), "nothing failed yet");
        assert!(t.failed(t0));
        assert!(!t.failed(t0 + Duration::from_secs(1)));
        assert!(!t.failed(t0 + WARN_EVERY - Duration::from_millis(1)));
        assert!(t.failed(t0 + WARN_EVERY));
        assert!(t.recovered());
        assert!(!t.recovered());
        assert!(t.failed(t0 + WARN_EVERY + Duration::from_secs(1)));
    }

    #[test]
    fn another_cause_is_said_at_once_the_same_once_a_minute() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        let second = |s| t0 + Duration::from_secs(s);
        assert!(t.failed_because(t0, "no space left"));
        assert!(!t.failed_because(second(1), "no space left"));
        assert!(t.failed_because(second(2), "read-only file system"));
        assert!(!t.failed_because(second(3), "read-only file system"));
        // Back and forth between the two: each said once a minute, not at
        // every change.
        assert!(!t.failed_because(second(4), "no space left"));
        assert!(!t.failed_because(second(5), "read-only file system"));
        assert!(t.failed_because(t0 + WARN_EVERY, "no space left"));
        assert!(!t.failed_because(second(61), "no space left"));
        assert!(t.recovered());
        assert!(
            t.failed_because(second(70), "no space left"),
            "a new failure"
        );
    }

    #[test]
    fn counted_says_how_many_it_kept_quiet() {
        let c = Counted::default();
        let t0 = Instant::now();
        let second = |s| t0 + Duration::from_secs(s);
        assert_eq!(c.failed_because(t0, "refused"), Some(0));
        assert_eq!(c.failed_because(second(1), "refused"), None);
        assert_eq!(c.failed_because(second(2), "refused"), None);
        assert_eq!(c.failed_because(second(3), "timed out"), Some(0));
        assert_eq!(c.failed_because(second(4), "timed out"), None);
        assert_eq!(
            c.failed_because(second(3) + WARN_EVERY, "timed out"),
            Some(1)
        );
        assert_eq!(c.failed_because(t0 + WARN_EVERY, "refused"), Some(2));
    }

    /// A target flapping between two causes: each is said once a minute,
    /// not at every change.
    #[test]
    fn counted_causes_that_alternate_are_each_said_once_a_minute() {
        let c = Counted::default();
        let t0 = Instant::now();
        let said = (0..100)
            .map(|s| {
                let cause = ["refused", "timed out"][s as usize % 2];
                c.failed_because(t0 + Duration::from_millis(s * 100), cause)
            })
            .filter(Option::is_some)
            .count();
        assert_eq!(said, 2);
    }

    /// Past the causes it keeps apart, a new cause takes the place of one
    /// said a minute ago, and is kept quiet while none was.
    #[test]
    fn counted_keeps_a_bounded_number_of_causes() {
        let c = Counted::default();
        let t0 = Instant::now();
        for n in 0..CAUSES_KEPT {
            assert_eq!(c.failed_because(t0, &format!("cause {n}")), Some(0));
        }
        assert_eq!(c.failed_because(t0, "one more"), None);
        assert_eq!(c.failed_because(t0 + WARN_EVERY, "one more"), Some(0));
        assert_eq!(c.0.lock().len(), CAUSES_KEPT);
    }
}
