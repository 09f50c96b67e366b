//! One backend: whether the balancer may give it a request, and a
//! connection to it lent from its idle ones or made anew, and given back.

use super::admin_state::AdminState;
use super::dial::{connect, handshake, no_delay, open, send_in_clear};
use super::kept::{ForClient, KeptConns};
use super::{slots, Upstream, Upstreams};
use crate::config::LeastTimeMeasure;
use crate::http::conn::{Kind, SharedStream, Stream};
use crate::http::send_proxy;
use crate::http::BufConn;
use rustls_pki_types::ServerName;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Buffer for reading a backend's responses: large enough that a 64 KiB
/// response arrives in one read and leaves in one write (read straight
/// into it when found there; see `BufConn::without_probe`).
const UPSTREAM_BUFFER: usize = 64 * 1024 + 1024;

impl Upstream {
    /// Whether its answers are timed for `least_time`, and by `measure`.
    pub fn timed_by(&self, measure: LeastTimeMeasure) -> bool {
        self.least_time.is_some_and(|t| t.measure == measure)
    }

    /// Whether each connection carries one request
    /// (`upstream_keepalive = 0`).
    pub fn keeps_no_connection(&self) -> bool {
        self.idle.keeps_none()
    }

    /// Closes the idle connections: one of them was found dead, and the
    /// others most likely went with it (a restarted backend).
    pub fn forget_idle(&self) {
        self.idle.clear();
    }

    /// Returns a connection whose last exchange ended cleanly: to the
    /// pool, or, to a `send_proxy` target, to the client connection it
    /// was made for (`kept`; with none, it closes). One to a target in
    /// maintenance is closed.
    pub fn checkin(&self, mut conn: BufConn<SharedStream<Stream>>, kept: Option<&KeptConns>) {
        if self.health.admin_state() == AdminState::Maint || self.idle.worn_out(&conn.get_ref().0) {
            return;
        }
        conn.release_if_empty();
        match conn.get_ref().kind() {
            Kind::Tls(tls) => tls.release_if_empty(),
            Kind::Fcgi(fcgi) => fcgi.release_if_empty(),
            _ => {}
        }
        if self.send_proxy.is_some() {
            if let Some(kept) = kept.filter(|_| !self.keeps_no_connection()) {
                kept.keep(self, conn);
            }
            return;
        }
        self.idle.give(conn);
        // Put into maintenance while it was given back: the clear that
        // came with the change may have missed it (see `set_admin_state`).
        if self.health.admin_state() == AdminState::Maint {
            self.idle.clear();
        }
    }

    /// Whether the balancer may give it a new request at `now`: up (as
    /// far as failures and health checks say) and `ready`, neither
    /// drained nor in maintenance, nor stopping by its checks' word.
    pub fn in_rotation(&self, now: Instant) -> bool {
        self.health.takes_new_requests() && self.health.usable(now)
    }

    /// Its weight now: the one the operator gave on the admin listener,
    /// else the configured one. A balancer that weighs as it picks reads
    /// it each time; the hashing ones were built with the configured one.
    pub fn weight_now(&self) -> u32 {
        self.health.admin().weight().unwrap_or(self.weight)
    }

    /// Requests being served by this backend right now.
    pub fn in_flight(&self) -> usize {
        self.stats.in_flight.load(Ordering::Relaxed)
    }

    /// No slot here for a request waiting as `waiting` (or not at all):
    /// `max_conns` are served already, or others wait for it first.
    pub(super) fn has_no_slot(&self, waiting: Option<&slots::Waiting>) -> bool {
        slots::is_full(&self.stats) || !slots::in_turn(&self.stats, waiting)
    }
}

/// A target's TLS: the settings its connections are made with, and the
/// name its certificate is checked for.
#[derive(Clone, Debug)]
pub struct BackendTls {
    pub settings: Arc<rustls::ClientConfig>,
    pub name: ServerName<'static>,
}

/// A connection to a backend, checked out for one exchange.
pub struct UpstreamConn {
    pub conn: BufConn<SharedStream<Stream>>,
    /// Whether it served an earlier request: a reused connection may have
    /// been closed by the backend while idle, which is worth one retry.
    pub reused: bool,
    /// The backend answered before the whole request body was sent, and
    /// the rest was not: the connection is out of step, never reused.
    pub body_cut: bool,
    /// The same for a body streamed from the client: the rest of it is
    /// still on the client connection, which closes after the answer.
    pub client_body_left: bool,
    /// What had been read from it and written to it when it was checked
    /// out: what this exchange receives and sends is counted from there.
    pub received_from: u64,
    pub sent_from: u64,
}

impl Upstreams {
    /// A new connection to `target`, within `connect_timeout`: connected,
    /// its PROXY header sent (a `send_proxy` target's, naming `client`),
    /// its TLS handshake made. `in_use` is shown the socket before
    /// anything waits on it (see [`Upstreams::checkout`]). The caller
    /// sets its timeouts for what follows.
    pub fn dial(
        &self,
        target: &Upstream,
        client: Option<&send_proxy::ClientEnds>,
        in_use: impl FnOnce(&Arc<Stream>),
    ) -> io::Result<Arc<Stream>> {
        let stream = Arc::new(open(
            &target.addr,
            target.tls.as_ref(),
            target.fastcgi.as_ref(),
        )?);
        in_use(&stream);
        let started = Instant::now();
        let left = || self.connect_timeout.saturating_sub(started.elapsed());
        connect(&stream, &target.addr, self.connect_timeout)?;
        no_delay(&stream)?;
        if let Some(version) = target.send_proxy {
            send_in_clear(&stream, &send_proxy::header(version, client), left())?;
        }
        handshake(&stream, left())?;
        Ok(stream)
    }

    /// An idle pooled connection to `target`, or a new one when none is
    /// left or `fresh` is asked for, either reading and writing within
    /// `timeout` (the pool's `backend_timeout`, or a route's own). To a `send_proxy` target, the one
    /// `client` kept instead, or a new one that starts with the PROXY
    /// header naming `client` (`UNKNOWN`, `LOCAL` with none); `client` is
    /// read for no other target.
    ///
    /// `in_use` is shown the socket before anything waits on it, even the
    /// connect: a forced shutdown can then end the wait (see
    /// `proxy::ConnWatch`). One that comes before the connect begins
    /// makes it fail: Linux keeps the shutdown of an unconnected socket.
    pub fn checkout(
        &self,
        target: &Upstream,
        fresh: bool,
        client: Option<ForClient<'_>>,
        timeout: Duration,
        in_use: impl FnOnce(&Arc<Stream>),
    ) -> io::Result<UpstreamConn> {
        if !fresh {
            let idle = match (target.send_proxy, client.as_ref().and_then(|c| c.kept)) {
                (None, _) => target.idle.take(),
                (Some(_), Some(kept)) => kept.take_for(target),
                (Some(_), None) => None,
            };
            if let Some(conn) = idle {
                conn.get_ref().lend();
                in_use(&conn.get_ref().0);
                conn.get_ref().0.time_out_after(timeout)?;
                return Ok(UpstreamConn {
                    received_from: conn.get_ref().received(),
                    sent_from: conn.get_ref().sent(),
                    conn,
                    reused: true,
                    body_cut: false,
                    client_body_left: false,
                });
            }
        }
        let stream = self.dial(target, client.as_ref().map(|c| &c.ends), in_use)?;
        stream.lend();
        stream.time_out_after(timeout)?;
        Ok(UpstreamConn {
            received_from: stream.received(),
            sent_from: stream.sent(),
            conn: BufConn::new(SharedStream(stream), UPSTREAM_BUFFER).without_probe(),
            reused: false,
            body_cut: false,
            client_body_left: false,
        })
    }
}
