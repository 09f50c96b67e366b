//! The connections a client connection keeps to `send_proxy` targets
//! between its requests. Its PROXY header named that client, so no other
//! client's request may go on one: it is never pooled, but kept by its
//! client connection, reused by that client's next request to the same
//! target, and closed with it (HAProxy's private connections).

use super::admin_state::AdminState;
use super::health::Health;
use super::idle::IdleConns;
use super::Upstream;
use crate::http::conn::{SharedStream, Stream};
use crate::http::send_proxy::ClientEnds;
use crate::http::BufConn;
use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

/// The most connections one client connection keeps, one per target: a
/// client whose requests a balancer spreads over a few such targets
/// finds each its own, as HAProxy's `max-session-srv-conns` (10) keeps
/// them; one beyond closes the one idle longest.
const MOST_KEPT: usize = 4;

/// The connections a client connection keeps, one per target at most,
/// the one idle longest first.
#[derive(Default)]
pub struct KeptConns(Cell<Vec<Kept>>);

struct Kept {
    /// The target's pool of idle connections, which it has in place of
    /// any other name: the same one is the same target at the same
    /// address, in the same generation of the settings (a reload's pools
    /// are new ones; a retired pool takes none back).
    pool: Arc<IdleConns>,
    /// The target's health and state, read at each look: one put into
    /// maintenance has its kept connections closed, as its pooled ones.
    health: Arc<Health>,
    conn: BufConn<SharedStream<Stream>>,
    since: Instant,
}

impl KeptConns {
    /// Keeps `conn`, its exchange with `target` over and read to its
    /// end, in place of any other kept to `target`.
    pub(super) fn keep(&self, target: &Upstream, conn: BufConn<SharedStream<Stream>>) {
        let mut kept = self.0.take();
        let replaced = (kept.iter())
            .position(|k| Arc::ptr_eq(&k.pool, &target.idle))
            .or((kept.len() >= MOST_KEPT).then_some(0));
        let closed = replaced.map(|at| kept.remove(at));
        kept.push(Kept {
            pool: target.idle.clone(),
            health: target.health.clone(),
            conn,
            since: Instant::now(),
        });
        self.0.set(kept);
        drop(closed);
    }

    /// The connection kept to `target`, if there is one. Those that may
    /// no longer be used close first, to whichever target: idle for
    /// longer than the target's pooled ones may be, their pool retired
    /// (a reload's: no request goes to its targets any more), or their
    /// target put into maintenance.
    pub(super) fn take_for(&self, target: &Upstream) -> Option<BufConn<SharedStream<Stream>>> {
        let mut kept = self.0.take();
        kept.retain(|k| k.pool.would_keep(k.since) && k.health.admin_state() != AdminState::Maint);
        let found = (kept.iter())
            .position(|k| Arc::ptr_eq(&k.pool, &target.idle))
            .map(|at| kept.remove(at).conn);
        self.0.set(kept);
        found
    }
}

/// Whom a connection to a backend is made for: the client connection a
/// `send_proxy` target's PROXY header names, and where that connection
/// keeps its own to such a target (none for a mirrored copy, whose
/// connection closes after it).
pub struct ForClient<'a> {
    pub ends: ClientEnds,
    pub kept: Option<&'a KeptConns>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Balance, Config, Target};
    use crate::http::conn::Kind;
    use crate::upstream::test_support::upstreams;
    use crate::upstream::Upstreams;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    /// A new connection to `listener`.
    fn conn(listener: &TcpListener) -> BufConn<SharedStream<Stream>> {
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        BufConn::new(SharedStream(Arc::new(Stream::from(Kind::Tcp(tcp)))), 64)
    }

    /// Which connection it is: its own port.
    fn port(conn: &BufConn<SharedStream<Stream>>) -> u16 {
        let Kind::Tcp(tcp) = conn.get_ref().0.kind() else {
            unreachable!("made over TCP")
        };
        tcp.local_addr().unwrap().port()
    }

    #[test]
    fn one_is_kept_per_target_and_past_four_the_one_idle_longest_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let pool = upstreams(6, Balance::RoundRobin, None);
        let targets = pool.targets();
        let kept = KeptConns::default();
        let (first, second) = (conn(&listener), conn(&listener));
        let second_port = port(&second);
        kept.keep(&targets[0], first);
        kept.keep(&targets[0], second);
        let taken = kept.take_for(&targets[0]).expect("the one kept last");
        assert_eq!(port(&taken), second_port);
        assert!(kept.take_for(&targets[0]).is_none(), "one per target");

        let ports: Vec<u16> = (0..5)
            .map(|i| {
                let c = conn(&listener);
                let p = port(&c);
                kept.keep(&targets[i], c);
                p
            })
            .collect();
        assert!(kept.take_for(&targets[0]).is_none(), "the fifth closed it");
        assert!(kept.take_for(&targets[5]).is_none(), "none kept for it");
        for i in 1..5 {
            let taken = kept.take_for(&targets[i]).map(|c| port(&c));
            assert_eq!(taken, Some(ports[i]), "target {i}");
        }
    }

    #[test]
    fn those_of_a_retired_pool_or_idle_past_their_age_close_at_the_next_look() {
        let backend = TcpListener::bind("127.0.0.1:0").unwrap();
        let (old, new) = (
            upstreams(1, Balance::RoundRobin, None),
            upstreams(1, Balance::RoundRobin, None),
        );
        let (old, new) = (&old.targets()[0], &new.targets()[0]);
        let kept = KeptConns::default();
        kept.keep(old, conn(&backend));
        let (mut at_old, _) = backend.accept().unwrap();
        kept.keep(new, conn(&backend));
        // A reload; looking for the new target's then closes the old
        // one's, which its backend sees.
        old.idle.retire();
        assert!(kept.take_for(new).is_some());
        at_old
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(std::io::Read::read(&mut at_old, &mut [0; 1]).unwrap(), 0);
        assert!(kept.take_for(old).is_none());

        let mut config = Config::with_targets(vec![Target::new(
            "127.0.0.1:1",
            "127.0.0.1:1".parse().unwrap(),
        )]);
        config.connection_timeout = Duration::ZERO;
        let ageless = Upstreams::new(&config);
        kept.keep(&ageless.targets()[0], conn(&backend));
        assert!(kept.take_for(&ageless.targets()[0]).is_none());
    }

    #[test]
    fn those_of_a_target_put_into_maintenance_close_at_the_next_look() {
        let backend = TcpListener::bind("127.0.0.1:0").unwrap();
        let pool = upstreams(2, Balance::RoundRobin, None);
        let targets = pool.targets();
        let kept = KeptConns::default();
        kept.keep(&targets[0], conn(&backend));
        let (mut at_backend, _) = backend.accept().unwrap();
        kept.keep(&targets[1], conn(&backend));
        targets[0].health.set_admin_state(AdminState::Drain);
        assert!(kept.take_for(&targets[1]).is_some());
        let drained = kept.take_for(&targets[0]).expect("drained, not closed");
        kept.keep(&targets[0], drained);

        targets[0].health.set_admin_state(AdminState::Maint);
        assert!(kept.take_for(&targets[1]).is_none());
        at_backend
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(
            std::io::Read::read(&mut at_backend, &mut [0; 1]).unwrap(),
            0
        );
        targets[0].health.set_admin_state(AdminState::Ready);
        assert!(kept.take_for(&targets[0]).is_none(), "closed for good");
    }
}
