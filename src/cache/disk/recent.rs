//! The purges a write on its way to disk may predate: those that ended
//! after the entry was evicted from memory (or are under way), each with
//! what it names, so that the writer drops the writes they name and
//! enters the others. A purge of one URL (every successful `POST` makes
//! one) then costs the queue nothing but that URL's writes.

use super::index::Target;
use crate::cache::policy::Tags;
use std::collections::VecDeque;

/// Ended purges remembered; past these, a write evicted before the last
/// one forgotten is dropped, whatever it names.
const MOST: usize = 1024;

struct Logged {
    /// The purge generation it began at.
    begun: u64,
    /// The generation it ended at; `None` while memory's part runs.
    ended: Option<u64>,
    target: Target,
}

#[derive(Default)]
pub struct Recent {
    purges: VecDeque<Logged>,
    /// The latest end among the purges forgotten.
    forgotten: u64,
}

impl Recent {
    /// A purge of `target` begun at generation `begun`.
    pub fn begin(&mut self, begun: u64, target: Target) {
        let ended = None;
        self.purges.push_back(Logged {
            begun,
            ended,
            target,
        });
    }

    /// The purge begun at `begun` ended at `ended`.
    pub fn end(&mut self, begun: u64, ended: u64) {
        if let Some(logged) = self.purges.iter_mut().find(|p| p.begun == begun) {
            logged.ended = Some(ended);
        }
        // The oldest ended first; one under way stays however old.
        while self.purges.len() > MOST {
            match self.purges.front().and_then(|p| p.ended) {
                Some(ended) => {
                    self.forgotten = self.forgotten.max(ended);
                    self.purges.pop_front();
                }
                None => break,
            }
        }
    }

    /// Whether an entry of `key` and `tags`, evicted from memory at
    /// `generation`, may be one a purge dropped: a purge that names it
    /// ended after it was evicted, or is under way (memory's part may not
    /// have reached it when it was evicted).
    pub fn names(&self, generation: u64, key: &str, tags: &Tags) -> bool {
        generation < self.forgotten
            || (self.purges.iter())
                .filter(|p| p.ended.is_none_or(|ended| ended > generation))
                .any(|p| p.target.holds(key, tags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_is_dropped_only_for_a_purge_naming_it_that_ended_after_it() {
        let mut recent = Recent::default();
        let none = Tags::default();
        let url = |u: &str| Target::Primaries(vec![u.to_string()]);
        recent.begin(1, url("GET h/a"));
        // Under way: what it names is dropped, whenever it was evicted.
        assert!(recent.names(5, "GET h/a", &none));
        assert!(!recent.names(0, "GET h/b", &none));
        recent.end(1, 2);
        assert!(recent.names(1, "GET h/a", &none));
        // Evicted after it ended: stored after it, a later response.
        assert!(!recent.names(2, "GET h/a", &none));
        recent.begin(3, Target::All);
        recent.end(3, 4);
        assert!(recent.names(3, "GET h/b", &none));
        assert!(!recent.names(4, "GET h/b", &none));
        // Past what it remembers, what came before is dropped.
        for g in 0..MOST as u64 {
            recent.begin(10 + 2 * g, url("GET h/z"));
            recent.end(10 + 2 * g, 11 + 2 * g);
        }
        assert!(recent.names(3, "GET h/b", &none));
        assert!(!recent.names(4, "GET h/b", &none));
        assert!(recent.names(4, "GET h/z", &none));
    }
}
