//! Idle keep-alive connections to one backend.

use crate::http::BufConn;
use parking_lot::Mutex;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A stack of idle connections: the most recently used is reused first (it
/// is the least likely to have been closed by the backend), and the oldest
/// are the ones that age out.
pub struct Pool {
    idle: Mutex<Vec<(BufConn<TcpStream>, Instant)>>,
    max_idle: usize,
    /// Connections idle for longer are closed instead of reused: backends
    /// close idle connections themselves after a while, and a connection
    /// they closed costs a failed attempt.
    max_age: Duration,
}

impl Pool {
    pub fn new(max_idle: usize, max_age: Duration) -> Pool {
        Pool {
            idle: Mutex::new(Vec::new()),
            max_idle,
            max_age,
        }
    }

    pub fn take(&self) -> Option<BufConn<TcpStream>> {
        let now = Instant::now();
        let mut idle = self.idle.lock();
        // The oldest entries sit at the bottom of the stack.
        let fresh_from = idle
            .iter()
            .position(|(_, since)| now.duration_since(*since) < self.max_age)
            .unwrap_or(idle.len());
        let stale: Vec<_> = idle.drain(..fresh_from).collect();
        let conn = idle.pop().map(|(conn, _)| conn);
        drop(idle);
        drop(stale); // closed outside the lock
        conn
    }

    pub fn give(&self, conn: BufConn<TcpStream>) {
        if self.max_idle == 0 {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() >= self.max_idle {
            let oldest = idle.remove(0);
            idle.push((conn, Instant::now()));
            drop(idle);
            drop(oldest);
        } else {
            idle.push((conn, Instant::now()));
        }
    }

    pub fn idle_count(&self) -> usize {
        self.idle.lock().len()
    }
}
