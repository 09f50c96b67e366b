//! How long a target has taken to answer lately, for `balance =
//! least_time`: a moving average of its times to a response head (or to
//! a response's last byte, `least_time_measure = last_byte`) that rises
//! at once to a slower answer and falls back slowly (Finagle's and
//! Linkerd's "peak EWMA"), and fades while the target gets no request, so
//! that one found slow once is tried again later rather than never.

use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// How fast the past fades: after this long, a measure weighs 1/e of
/// what it did (Finagle's default).
const DECAY: Duration = Duration::from_secs(10);

/// A target's recent time to answer.
#[derive(Debug, Default)]
pub struct Latency(Mutex<Option<Measure>>);

#[derive(Debug, Clone, Copy)]
struct Measure {
    /// Nanoseconds.
    average: f64,
    at: Instant,
}

impl Measure {
    /// The average faded to `now`.
    fn faded(self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.average * (-elapsed / DECAY.as_secs_f64()).exp()
    }
}

impl Latency {
    /// An answer took `took` (to its head, or to its last byte).
    pub fn observe(&self, took: Duration, now: Instant) {
        let took = took.as_nanos() as f64;
        let mut measure = self.0.lock();
        let average = match *measure {
            // A slower answer counts whole at once: a target that turns
            // slow is passed over from its first slow answer.
            Some(m) if took < m.faded(now) => {
                let elapsed = now.saturating_duration_since(m.at).as_secs_f64();
                let kept = (-elapsed / DECAY.as_secs_f64()).exp();
                m.average * kept + took * (1.0 - kept)
            }
            _ => took,
        };
        *measure = Some(Measure { average, at: now });
    }

    /// The average at `now`, in nanoseconds; `None` before any answer.
    pub fn at(&self, now: Instant) -> Option<u64> {
        let measure = *self.0.lock();
        measure.map(|m| m.faded(now) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_slower_answer_counts_at_once_and_a_faster_one_little_by_little() {
        let latency = Latency::default();
        let t0 = Instant::now();
        assert_eq!(latency.at(t0), None);
        latency.observe(10 * MS, t0);
        assert_eq!(latency.at(t0), Some(10_000_000));
        latency.observe(50 * MS, t0);
        assert_eq!(latency.at(t0), Some(50_000_000), "the peak, whole");

        // A fast answer a second later moves it about a tenth of the way
        // towards it: 50 ms · e^-0.1 + 1 ms · (1 - e^-0.1), 45.34 ms.
        let t1 = t0 + Duration::from_secs(1);
        latency.observe(MS, t1);
        let after = latency.at(t1).unwrap();
        assert!((45_300_000..45_400_000).contains(&after), "{after}");
    }

    #[test]
    fn it_fades_while_the_target_gets_no_request() {
        let latency = Latency::default();
        let t0 = Instant::now();
        latency.observe(100 * MS, t0);
        let later = latency.at(t0 + DECAY).unwrap();
        assert!((36_000_000..37_000_000).contains(&later), "{later}");
        // Slower than what is left of it: a peak again.
        let other = Latency::default();
        other.observe(100 * MS, t0);
        other.observe(50 * MS, t0 + DECAY);
        assert_eq!(other.at(t0 + DECAY), Some(50_000_000));
        assert!(latency.at(t0 + 20 * DECAY).unwrap() < 1_000);
        assert_eq!(latency.at(t0), Some(100_000_000), "reading changes nothing");
    }
}
