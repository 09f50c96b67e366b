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
    /// The causes [`Throttle::failed_because`] was told of lately.
    causes: Vec<Said>,
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

    /// A failure at `now` of `cause` (its message), said at most once a
    /// minute for each cause: `Some(n)` to say it, `n` the failures of
    /// that cause not said since it last was; `None` to keep quiet. So a
    /// cause not said lately is said at once (a full disk made room on,
    /// then a directory made read-only, is news to the operator who just
    /// fixed the first), and two causes that alternate (a backend refusing,
    /// then timing out) are each said once a minute, not at every change.
    /// Past [`CAUSES_KEPT`] causes, a new one takes the place of one last
    /// said a minute ago or more; while none was, it is kept quiet.
    pub fn failed_because(&mut self, now: Instant, cause: &str) -> Option<u64> {
        let due = |at: Instant| now.duration_since(at) >= WARN_EVERY;
        let new = || Said {
            cause: cause.to_owned(),
            at: now,
            quiet: 0,
        };
        let i = match self.causes.iter().position(|s| s.cause == cause) {
            Some(i) if !due(self.causes[i].at) => {
                self.causes[i].quiet += 1;
                return None;
            }
            Some(i) => i,
            None if self.causes.len() < CAUSES_KEPT => {
                self.causes.push(new());
                self.causes.len() - 1
            }
            None => {
                let i = self.causes.iter().position(|s| due(s.at))?;
                self.causes[i] = new();
                i
            }
        };
        let said = &mut self.causes[i];
        said.at = now;
        self.warned = Some(now);
        Some(std::mem::take(&mut said.quiet))
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
/// as [`Throttle::failed_because`] says one, from any thread: once a
/// minute for each cause, with how many of that cause went unsaid since,
/// rather than once a request.
#[derive(Debug, Default)]
pub struct Counted(Mutex<Throttle>);

/// The causes a [`Throttle`] tells apart at once: a line a minute for
/// each of these is enough to read.
const CAUSES_KEPT: usize = 8;

/// A cause of failure a [`Throttle`] was told of.
#[derive(Debug)]
struct Said {
    cause: String,
    /// When it was last said.
    at: Instant,
    /// Failures of `cause` not said since.
    quiet: u64,
}

impl Counted {
    /// See [`Throttle::failed_because`].
    pub fn failed_because(&self, now: Instant, cause: &str) -> Option<u64> {
        self.0.lock().failed_because(now, cause)
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
        let mut said = |at, cause| t.failed_because(at, cause).is_some();
        assert!(said(t0, "no space left"));
        assert!(!said(second(1), "no space left"));
        assert!(said(second(2), "read-only file system"));
        assert!(!said(second(3), "read-only file system"));
        // Back and forth between the two: each said once a minute, not at
        // every change.
        assert!(!said(second(4), "no space left"));
        assert!(!said(second(5), "read-only file system"));
        assert!(said(t0 + WARN_EVERY, "no space left"));
        assert!(!said(second(61), "no space left"));
        assert!(t.recovered());
        assert!(
            t.failed_because(second(70), "no space left").is_some(),
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
        assert_eq!(c.0.lock().causes.len(), CAUSES_KEPT);
    }

    #[test]
    fn once_a_minute_says_the_start_and_the_end_of_a_failure() {
        static FAILING: OnceAMinute = OnceAMinute::new();
        assert!(!FAILING.recovered(), "nothing failed yet");
        assert!(FAILING.due());
        assert!(!FAILING.due(), "said a moment ago");
        assert!(FAILING.recovered());
        assert!(!FAILING.recovered());
        assert!(FAILING.due(), "a new failure");
    }
}
