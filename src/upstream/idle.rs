//! Idle keep-alive connections to one backend.

use crate::http::conn::{SharedStream, Stream};
use crate::http::BufConn;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A stack of idle connections: the most recently used is reused first (it
/// is the least likely to have been closed by the backend), and the oldest
/// are the ones that age out.
pub struct IdleConns {
    idle: Mutex<Vec<(BufConn<SharedStream<Stream>>, Instant)>>,
    max_idle: usize,
    /// Connections idle for longer are closed instead of reused: backends
    /// close idle connections themselves after a while, and a connection
    /// they closed costs a failed attempt.
    max_age: Duration,
    most_use: MostUse,
    /// The settings this pool belongs to were replaced (a reload): no
    /// request looks here any more, and none sweeps it, so a connection
    /// given back is closed rather than kept for as long as a request of
    /// the old settings runs (a WebSocket: hours). Read under the lock of
    /// `idle`, after [`IdleConns::retire`] set it before taking that lock: a
    /// connection is either given after the retirement and closed, or
    /// given before it and closed with the others.
    retired: AtomicBool,
}

/// How much use a connection may see before it is closed rather than
/// kept for another exchange: nginx's upstream `keepalive_requests` and
/// `keepalive_time`, so that a backend that grows with each connection's
/// life is relieved, and a balancer between the proxy and its backends
/// (a Kubernetes Service) spreads new connections again.
#[derive(Clone, Copy, Debug, Default)]
pub struct MostUse {
    /// Exchanges (`upstream_keepalive_requests`); `None`: no limit.
    pub requests: Option<u64>,
    /// Time since it was opened (`upstream_keepalive_time`).
    pub lifetime: Option<Duration>,
}

impl IdleConns {
    /// Whether no connection is ever kept (`upstream_keepalive = 0`).
    pub fn keeps_none(&self) -> bool {
        self.max_idle == 0
    }

    pub fn new(max_idle: usize, max_age: Duration, most_use: MostUse) -> IdleConns {
        IdleConns {
            idle: Mutex::new(Vec::new()),
            max_idle,
            max_age,
            most_use,
            retired: AtomicBool::new(false),
        }
    }

    pub fn take(&self) -> Option<BufConn<SharedStream<Stream>>> {
        let mut idle = self.idle.lock();
        let stale = self.drain_stale(&mut idle);
        let conn = idle.pop().map(|(conn, _)| conn);
        drop(idle);
        drop(stale); // closed outside the lock
        conn
    }

    /// Closes the connections idle for longer than `max_age`, as nginx's
    /// upstream `keepalive_timeout` does: without it they would stay open
    /// (or half-closed by a backend that went away) until the next request.
    pub fn sweep(&self) {
        let stale = self.drain_stale(&mut self.idle.lock());
        drop(stale); // closed outside the lock
    }

    fn drain_stale(
        &self,
        idle: &mut Vec<(BufConn<SharedStream<Stream>>, Instant)>,
    ) -> Vec<BufConn<SharedStream<Stream>>> {
        let now = Instant::now();
        // The oldest entries sit at the bottom of the stack.
        let fresh_from = idle
            .iter()
            .position(|(_, since)| now.duration_since(*since) < self.max_age)
            .unwrap_or(idle.len());
        idle.drain(..fresh_from).map(|(conn, _)| conn).collect()
    }

    /// Closes every idle connection (the backend went away under them).
    pub fn clear(&self) {
        let idle = std::mem::take(&mut *self.idle.lock());
        drop(idle); // closed outside the lock
    }

    /// Closes every idle connection, and from now on every connection
    /// given back (see `retired`).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
        self.clear();
    }

    /// Whether `stream` has had all the use it may: it is closed after
    /// its exchange, not kept.
    pub fn worn_out(&self, stream: &Stream) -> bool {
        let (lent, age) = stream.used();
        self.most_use.requests.is_some_and(|most| lent >= most)
            || self.most_use.lifetime.is_some_and(|most| age >= most)
    }

    /// Whether a connection idle since `since` may still be used, as one
    /// of these would be: connections are kept, the pool is not retired,
    /// and it has not idled past `max_age`.
    pub fn would_keep(&self, since: Instant) -> bool {
        self.max_idle > 0 && !self.retired.load(Ordering::Relaxed) && since.elapsed() < self.max_age
    }

    pub fn give(&self, conn: BufConn<SharedStream<Stream>>) {
        if self.max_idle == 0 {
            return;
        }
        let mut idle = self.idle.lock();
        if self.retired.load(Ordering::Relaxed) {
            drop(idle);
            drop(conn); // closed outside the lock
            return;
        }
        if idle.len() >= self.max_idle {
            let oldest = idle.remove(0);
            idle.push((conn, Instant::now()));
            drop(idle);
            drop(oldest);
        } else {
            idle.push((conn, Instant::now()));
        }
    }

    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.idle.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::conn::Kind;
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;

    fn connections(n: usize) -> (TcpListener, Vec<BufConn<SharedStream<Stream>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = (0..n)
            .map(|_| {
                BufConn::new(
                    SharedStream(Arc::new(Stream::from(Kind::Tcp(
                        TcpStream::connect(addr).unwrap(),
                    )))),
                    1024,
                )
            })
            .collect();
        (listener, conns)
    }

    #[test]
    fn a_connection_is_worn_out_by_its_requests_or_its_life() {
        let (_listener, conns) = connections(1);
        let stream = &conns[0].get_ref().0;
        let by_requests = |requests| MostUse {
            requests: Some(requests),
            lifetime: None,
        };
        let pool = |most_use| IdleConns::new(4, Duration::from_secs(3600), most_use);
        stream.lend();
        assert!(!pool(by_requests(2)).worn_out(stream));
        stream.lend();
        assert!(pool(by_requests(2)).worn_out(stream));
        assert!(!pool(MostUse::default()).worn_out(stream), "no limit");
        let by_life = |lifetime| MostUse {
            requests: None,
            lifetime: Some(lifetime),
        };
        assert!(!pool(by_life(Duration::from_secs(3600))).worn_out(stream));
        assert!(pool(by_life(Duration::ZERO)).worn_out(stream));
    }

    #[test]
    fn a_sweep_closes_only_connections_idle_past_their_age() {
        let (_listener, conns) = connections(2);
        let keeping = IdleConns::new(4, Duration::from_secs(3600), MostUse::default());
        let expiring = IdleConns::new(4, Duration::ZERO, MostUse::default());
        let mut conns = conns.into_iter();
        keeping.give(conns.next().unwrap());
        expiring.give(conns.next().unwrap());
        keeping.sweep();
        expiring.sweep();
        assert_eq!((keeping.idle_count(), expiring.idle_count()), (1, 0));
    }
}
