//! The backends: which one serves the next request (`balancer`), and the
//! keep-alive connections kept open to each (`pool`).

pub mod balancer;
pub mod pool;

use crate::config::Target;
use crate::http::BufConn;
use crate::metrics::TargetStats;
use balancer::{Balancer, RoundRobin};
use pool::Pool;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Buffer for reading a backend's responses: large enough that a 64 KiB
/// response arrives in one read and leaves in one write.
const UPSTREAM_BUFFER: usize = 64 * 1024 + 1024;

/// One backend and its idle connections.
pub struct Upstream {
    /// As configured (`host:port`); shown in the access log.
    pub name: Arc<str>,
    pub addr: SocketAddr,
    pub weight: u32,
    pool: Pool,
    /// Requests, failures and requests in flight, for the admin listener.
    pub stats: Arc<TargetStats>,
}

/// A connection to a backend, checked out for one exchange.
pub struct UpstreamConn {
    pub conn: BufConn<TcpStream>,
    /// Whether it served an earlier request: a reused connection may have
    /// been closed by the backend while idle, which is worth one retry.
    pub reused: bool,
}

/// All backends and the policy that spreads requests over them.
pub struct Upstreams {
    targets: Vec<Upstream>,
    balancer: Box<dyn Balancer>,
    timeout: Duration,
}

impl Upstreams {
    pub fn new(targets: &[Target], timeout: Duration, keepalive: usize) -> Upstreams {
        let targets = targets
            .iter()
            .map(|t| Upstream {
                name: t.name.as_str().into(),
                addr: t.addr,
                weight: t.weight,
                pool: Pool::new(keepalive, timeout),
                stats: Arc::default(),
            })
            .collect::<Vec<_>>();
        Upstreams {
            balancer: Box::new(RoundRobin::new(targets.len())),
            targets,
            timeout,
        }
    }

    pub fn targets(&self) -> &[Upstream] {
        &self.targets
    }

    /// Takes over the counters of the targets `old` shares with us (by
    /// name), so a reload does not reset them.
    pub fn keep_stats_of(&mut self, old: &Upstreams) {
        for target in &mut self.targets {
            if let Some(same) = old.targets.iter().find(|o| o.name == target.name) {
                target.stats = same.stats.clone();
            }
        }
    }

    /// The backend for the next request.
    pub fn pick(&self) -> &Upstream {
        &self.targets[self.balancer.pick() % self.targets.len()]
    }

    /// An idle pooled connection to `target`, or a new one when none is
    /// left or `fresh` is asked for.
    pub fn checkout(&self, target: &Upstream, fresh: bool) -> io::Result<UpstreamConn> {
        if !fresh {
            if let Some(conn) = target.pool.take() {
                return Ok(UpstreamConn { conn, reused: true });
            }
        }
        let stream = TcpStream::connect_timeout(&target.addr, self.timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        Ok(UpstreamConn {
            conn: BufConn::new(stream, UPSTREAM_BUFFER),
            reused: false,
        })
    }

    /// Returns a connection whose last exchange ended cleanly.
    pub fn checkin(&self, target: &Upstream, mut conn: BufConn<TcpStream>) {
        conn.release_if_empty();
        target.pool.give(conn);
    }
}
