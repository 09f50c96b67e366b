//! Choosing a backend. A balancer only picks an index; it never touches
//! sockets, so each algorithm is a few lines and testable alone.

use std::sync::atomic::{AtomicUsize, Ordering};

pub trait Balancer: Send + Sync {
    /// The index of the target for the next request.
    fn pick(&self) -> usize;
}

/// Each target in turn: one atomic increment per request, no lock.
pub struct RoundRobin {
    next: AtomicUsize,
    targets: usize,
}

impl RoundRobin {
    pub fn new(targets: usize) -> Self {
        RoundRobin {
            next: AtomicUsize::new(0),
            targets: targets.max(1),
        }
    }
}

impl Balancer for RoundRobin {
    fn pick(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.targets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles() {
        let rr = RoundRobin::new(3);
        let picks: Vec<_> = (0..7).map(|_| rr.pick()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0]);
    }
}
