//! `error_limit`: clients refused for the errors they cause, as HAProxy's
//! stick tables with `http_err_rate` and a `deny` on it, and fail2ban on
//! nginx's log: a scanner walking a list of paths (`/.env`, `/wp-login.php`,
//! `/.git/config`) is answered 404 after 404, and is refused altogether
//! once it has had more of them than the rate allows.
//!
//! Each client address (as [`counted_as`](crate::ratelimit::counted_as)
//! counts them) has a bucket of the rate's count of errors, refilled at
//! the rate. An answer with a counted status takes a token; a request
//! that finds the bucket empty is refused 429, and that refusal takes one
//! too (the bucket goes into debt), so a client that keeps on while
//! refused stays refused, and one that stops is back within about two
//! periods of the rate.

use crate::ratelimit::{Limit, Limiter, Rate, Who};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The statuses counted when `error_limit_statuses` lists none: every
/// client error but 429 (the proxy's own answer to a rate limit, which
/// counts its requests already) and 499 (a client that went away, which
/// browsers do as a page is left).
fn counted_by_default(status: u16) -> bool {
    (400..=499).contains(&status) && !matches!(status, 429 | 499)
}

/// The settings and the buckets of every client address.
pub struct ErrorLimit {
    rate: Rate,
    /// Empty: [`counted_by_default`].
    statuses: Arc<[(u16, u16)]>,
    buckets: Limiter,
}

impl ErrorLimit {
    pub fn new(rate: Rate, statuses: Arc<[(u16, u16)]>) -> ErrorLimit {
        let limit = Limit {
            rate,
            burst: rate.count - 1,
            delay: None,
        };
        ErrorLimit {
            rate,
            statuses,
            buckets: Limiter::new(limit),
        }
    }

    /// Whether these are the settings it was made with: a reload that
    /// keeps them keeps the buckets.
    pub fn is(&self, rate: Rate, statuses: &[(u16, u16)]) -> bool {
        self.rate == rate && *self.statuses == *statuses
    }

    /// Whether `client` may make a request at `now`; if not, how long
    /// until it may, were it to make none meanwhile.
    pub fn admit(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        self.buckets.has_token(Who::Address(client), now)
    }

    /// Whether an answer of `status` is one of the errors counted.
    pub fn counts(&self, status: u16) -> bool {
        match self.statuses.is_empty() {
            true => counted_by_default(status),
            false => (self.statuses.iter()).any(|&(low, high)| (low..=high).contains(&status)),
        }
    }

    /// The addresses refused at `now` (see [`Limiter::empty_at`]).
    pub fn refused_at(&self, now: Instant, most: usize) -> (Vec<(IpAddr, Duration)>, bool) {
        self.buckets.empty_at(now, most)
    }

    /// Lets `client` in again, its errors forgotten; whether it had any.
    pub fn forgive(&self, client: IpAddr) -> bool {
        self.buckets.forget(client)
    }

    /// The rate, as written.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Counts the answer `client` was given: an error of the statuses
    /// counted, or a request this limit refused (`refused`), whatever its
    /// status.
    pub fn note(&self, client: IpAddr, status: u16, refused: bool, now: Instant) {
        if refused || self.counts(status) {
            self.buckets.spend(Who::Address(client), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(rate: &str, statuses: &[(u16, u16)]) -> ErrorLimit {
        ErrorLimit::new(Rate::parse(rate).unwrap(), statuses.into())
    }

    #[test]
    fn a_client_is_refused_past_its_errors_and_back_once_it_stops() {
        let errors = limit("3/s", &[]);
        let scanner: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let t0 = Instant::now();
        // Successes and uncounted statuses take nothing.
        for status in [200, 301, 304, 429, 499, 500, 503] {
            errors.note(scanner, status, false, t0);
        }
        assert!(errors.admit(scanner, t0).is_ok());
        for _ in 0..3 {
            assert!(errors.admit(scanner, t0).is_ok());
            errors.note(scanner, 404, false, t0);
        }
        let wait = errors.admit(scanner, t0).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(334),
            "{wait:?}"
        );
        assert!(errors.admit(other, t0).is_ok(), "each address has its own");
        // Going on while refused keeps it refused: each refusal counts.
        let mut t = t0;
        for _ in 0..10 {
            t += Duration::from_millis(200);
            if errors.admit(scanner, t).is_err() {
                errors.note(scanner, 429, true, t);
            }
        }
        assert!(errors.admit(scanner, t).is_err());
        // Stopped, it is back within two periods, at most.
        assert!(errors.admit(scanner, t + Duration::from_secs(2)).is_ok());
    }

    #[test]
    fn the_refused_are_listed_longest_wait_first_and_one_is_let_in_again() {
        let errors = limit("2/m", &[]);
        let t = Instant::now();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Three errors for one, four for another, one for a third (not
        // refused); an IPv6 client listed by its /64.
        for (client, n) in [
            ("192.0.2.1", 3),
            ("192.0.2.2", 4),
            ("192.0.2.3", 1),
            ("2001:db8::7", 3),
        ] {
            for _ in 0..n {
                errors.note(ip(client), 404, false, t);
            }
        }
        let (refused, more) = errors.refused_at(t, 10);
        let listed: Vec<(String, u64)> = (refused.iter())
            .map(|(a, w)| (a.to_string(), w.as_secs()))
            .collect();
        assert_eq!(
            listed,
            [
                ("192.0.2.2".to_string(), 90),
                ("192.0.2.1".to_string(), 60),
                ("2001:db8::".to_string(), 60),
            ]
        );
        assert!(!more);
        let (two, more) = errors.refused_at(t, 2);
        assert_eq!(two.len(), 2);
        assert!(more);
        assert!(errors.forgive(ip("2001:db8::1234")), "the same /64");
        assert!(errors.admit(ip("2001:db8::7"), t).is_ok());
        assert!(!errors.forgive(ip("2001:db8::7")));
        assert!(!errors.forgive(ip("198.51.100.1")));
        assert_eq!(errors.refused_at(t, 10).0.len(), 2);
    }

    #[test]
    fn the_statuses_counted_are_the_listed_ones_or_client_errors_but_429_and_499() {
        let default = limit("10/m", &[]);
        let counted: Vec<u16> = (100..600).filter(|&s| default.counts(s)).collect();
        assert_eq!(counted.len(), 98);
        assert!(counted.contains(&400) && counted.contains(&404) && counted.contains(&401));
        assert!(!counted.contains(&429) && !counted.contains(&499) && !counted.contains(&500));
        let listed = limit("10/m", &[(403, 404), (500, 599)]);
        assert!(listed.counts(404) && listed.counts(502));
        assert!(!listed.counts(400) && !listed.counts(405));
        assert!(listed.is(Rate::parse("10/m").unwrap(), &[(403, 404), (500, 599)]));
        assert!(!listed.is(Rate::parse("10/m").unwrap(), &[]));
        assert!(!listed.is(Rate::parse("11/m").unwrap(), &[(403, 404), (500, 599)]));
    }
}
