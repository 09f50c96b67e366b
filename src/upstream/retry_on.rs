//! `retry_on_status`: response statuses that send a request on to another
//! target, as HAProxy's `retry-on 502 503 504` and nginx's
//! `proxy_next_upstream http_502 http_503 http_504`. When a request may go
//! again is `proxy::origin`'s business; this only knows the list.

/// The 4xx statuses a list may name: answers about this server at this
/// moment (who may see what, what it holds, how busy it is) that another
/// target may not give. The others (400, 405, 413, 415, 422, ...) are
/// about the request itself, which every target would answer alike.
/// HAProxy's `retry-on` takes these, nginx's `proxy_next_upstream` a part.
const RETRIABLE_4XX: [u16; 6] = [401, 403, 404, 408, 425, 429];

/// Statuses a list may hold: 400 to 599, one bit each.
const FIRST: u16 = 400;
const LAST: u16 = 599;

/// A set of statuses, empty by default (nothing is retried on its status).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryOnStatus {
    /// Bit `s - 400` for each status `s` listed.
    bits: [u64; 4],
}

impl RetryOnStatus {
    /// `502, 503, 504` (spaces work as separators too, as HAProxy writes
    /// them); empty = none. Each status is a 5xx or one of
    /// [`RETRIABLE_4XX`], listed once.
    pub fn parse(v: &str) -> Result<RetryOnStatus, String> {
        let mut set = RetryOnStatus::default();
        for word in v
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
        {
            let status = word
                .parse::<u16>()
                .ok()
                .filter(|_| word.bytes().all(|b| b.is_ascii_digit()))
                .filter(|s| (100..=599).contains(s))
                .ok_or_else(|| {
                    format!(
                        "`{}` is not a status (e.g. `502, 503, 504`)",
                        word.escape_debug()
                    )
                })?;
            if status < FIRST {
                return Err(format!(
                    "{status} is not an error: only 4xx and 5xx responses may be retried"
                ));
            }
            if status < 500 && !RETRIABLE_4XX.contains(&status) {
                let taken: Vec<String> = RETRIABLE_4XX.iter().map(u16::to_string).collect();
                return Err(format!(
                    "{status} is an answer about the request itself, which any target would \
                     give too (the 4xx statuses taken are {}, and every 5xx)",
                    taken.join(", ")
                ));
            }
            if set.contains(status) {
                return Err(format!("{status} is listed twice"));
            }
            let bit = usize::from(status - FIRST);
            set.bits[bit / 64] |= 1 << (bit % 64);
        }
        Ok(set)
    }

    pub fn is_empty(&self) -> bool {
        self.bits == [0; 4]
    }

    /// Whether `status` is listed.
    pub fn contains(&self, status: u16) -> bool {
        if !(FIRST..=LAST).contains(&status) {
            return false;
        }
        let bit = usize::from(status - FIRST);
        self.bits[bit / 64] & (1 << (bit % 64)) != 0
    }

    /// Whether a response with `status` counts as a failure of its target
    /// toward `max_fails`: a listed 5xx says the server is not well, as
    /// nginx counts `http_502` and the like under `proxy_next_upstream`. A
    /// listed 4xx does not (nginx never counts its `http_403` and
    /// `http_404`): the server answered, about something it lacks.
    pub fn fails_target(&self, status: u16) -> bool {
        status >= 500 && self.contains(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_errors_that_another_target_may_not_give() {
        let set = RetryOnStatus::parse("502, 503,504 429").unwrap();
        for s in [429, 502, 503, 504] {
            assert!(set.contains(s), "{s}");
        }
        for s in [0, 200, 404, 500, 599, 600, u16::MAX] {
            assert!(!set.contains(s), "{s}");
        }
        assert!(set.fails_target(503));
        assert!(!set.fails_target(429));
        assert!(!set.fails_target(500), "not listed");
        assert!(RetryOnStatus::parse("").unwrap().is_empty());
        assert!(RetryOnStatus::parse(" , ").unwrap().is_empty());
        let every = RetryOnStatus::parse("401 403 404 408 425 429 500 501 507 599").unwrap();
        assert!(every.contains(599) && every.contains(401));
    }

    #[test]
    fn refuses_what_is_no_error_or_no_status() {
        for (bad, says) in [
            ("200", "not an error"),
            ("304", "not an error"),
            ("101", "not an error"),
            ("400", "about the request itself"),
            ("413", "about the request itself"),
            ("600", "not a status"),
            ("99", "not a status"),
            ("5xx", "not a status"),
            ("+502", "not a status"),
            ("http_502", "not a status"),
            ("502;503", "not a status"),
            ("503, 503", "listed twice"),
        ] {
            let e = RetryOnStatus::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
