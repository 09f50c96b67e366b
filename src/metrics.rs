//! Counters for the admin listener's `/metrics` and `/status`.
//!
//! Everything on the request path is a relaxed atomic increment: no lock,
//! no allocation. Figures are read, and the text put together, only when
//! somebody scrapes.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Upper bounds of the request-duration histogram, in seconds (the
/// Prometheus client libraries' defaults, plus a finer start: most
/// proxied requests take well under 5 ms).
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Status classes counted: 1xx to 5xx.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Process-wide counters. Survive a reload.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: StatusClasses,
    durations: Histogram,
    /// Client connections open right now.
    pub connections: AtomicUsize,
    /// Client connections taken from a listener, and of those the ones
    /// served (not refused over `max_connections` or
    /// `max_connections_per_client`), as nginx's `accepts` and `handled`.
    pub accepted: AtomicU64,
    pub handled: AtomicU64,
    /// SIGHUP reloads applied and refused.
    pub reloads: AtomicU64,
    pub reloads_refused: AtomicU64,
    /// Requests that had to wait for a slot at a target (`max_conns`).
    pub queued: AtomicU64,
    /// Requests refused 429 by `rate_limit`.
    pub rate_limited: AtomicU64,
    /// Requests refused 429 by `error_limit`.
    pub error_limited: AtomicU64,
    /// Requests held back to the rate by `rate_limit_delay`.
    pub rate_limit_delayed: AtomicU64,
    /// Requests `rate_limit_dry_run` let through that a limit would have
    /// refused, and that it would have held back.
    pub rate_limited_dry_run: AtomicU64,
    pub rate_limit_delayed_dry_run: AtomicU64,
    /// Targets whose name came to resolve to another address while the
    /// proxy ran (`resolve_interval`).
    pub address_changes: AtomicU64,
    /// Requests refused 403 by `allow_from` or `deny_from`.
    pub access_denied: AtomicU64,
    /// Spans `otel_exporter` sent (the collector answered 2xx), dropped
    /// for a full queue, and lost with a batch that failed.
    pub otel_spans_sent: AtomicU64,
    pub otel_spans_dropped: AtomicU64,
    pub otel_spans_failed: AtomicU64,
    /// Requests refused by `auth_basic` or `auth_jwt`: without
    /// credentials, with wrong ones, and (403) with a token whose claims
    /// `auth_jwt_require` refuses.
    pub auth_missing: AtomicU64,
    pub auth_wrong: AtomicU64,
    pub auth_forbidden: AtomicU64,
    /// Sets of keys `auth_jwt_key_request` fetched, and fetches that
    /// failed.
    pub jwt_key_fetches: AtomicU64,
    pub jwt_key_fetches_failed: AtomicU64,
    /// Requests `auth_request`'s pool let through, refused (answered
    /// other than 2xx), and could not be asked of.
    pub auth_requests_allowed: AtomicU64,
    pub auth_requests_denied: AtomicU64,
    pub auth_requests_failed: AtomicU64,
    /// Let through on a yes `auth_request_cache` kept.
    pub auth_requests_cached: AtomicU64,
    /// Requests that came over plain HTTP answered with a redirect to
    /// HTTPS (`redirect_to_https`).
    pub https_redirects: AtomicU64,
    /// Copies of requests `mirror` sent and had an answer to, sent and
    /// had none (no connection, a timeout, not HTTP), and did not send
    /// (its queue full, a body streamed, no target to take it).
    pub mirror_answered: AtomicU64,
    pub mirror_failed: AtomicU64,
    pub mirror_dropped: AtomicU64,
    /// TLS handshakes on `tls_port` that completed, and those that did not
    /// (a client that gave up, spoke plain HTTP, offered nothing in
    /// common, or took longer than client_header_timeout).
    pub tls_handshakes: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    /// Of the completed, those that resumed an earlier session.
    pub tls_resumed: AtomicU64,
    /// Responses sent compressed with gzip (`gzip`).
    pub gzip: CodingCounters,
    /// Responses sent compressed with Brotli (`brotli`).
    pub brotli: CodingCounters,
    /// When the process began: the same in every generation.
    pub started: Started,
    /// Each `stream.<name>`'s counts, by its name: set as the server
    /// starts (its streams are those of the start, until a restart).
    pub streams: OnceLock<Vec<(Arc<str>, StreamStats)>>,
}

impl Metrics {
    /// Where the responses sent compressed with `coding` are counted.
    pub fn compressed(&self, coding: crate::gzip::Coding) -> &CodingCounters {
        match coding {
            crate::gzip::Coding::Gzip => &self.gzip,
            crate::gzip::Coding::Brotli => &self.brotli,
        }
    }

    /// The counts of the stream `name`.
    pub fn stream(&self, name: &str) -> Option<&StreamStats> {
        let streams = self.streams.get()?;
        streams.iter().find(|(n, _)| **n == *name).map(|(_, s)| s)
    }
}

/// A `stream.<name>`'s connections, as HAProxy counts a frontend's
/// sessions and bytes.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Connections ended, by the class of the status their line logged.
    pub ended: StatusClasses,
    /// Connections open now.
    pub open: AtomicUsize,
    /// Bytes received from the clients, and sent to them.
    pub received: AtomicU64,
    pub sent: AtomicU64,
}

/// When the process began, by the monotonic clock (for its uptime, which
/// a change of the wall clock does not move) and by the wall clock.
#[derive(Debug)]
pub struct Started {
    at: Instant,
    wall: SystemTime,
}

impl Default for Started {
    fn default() -> Started {
        Started {
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

impl Started {
    pub fn uptime(&self) -> Duration {
        self.at.elapsed()
    }

    /// Seconds since the Unix epoch, as Prometheus's
    /// `process_start_time_seconds` says it.
    pub fn unix_seconds(&self) -> f64 {
        self.wall
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }
}

/// Responses sent compressed, and their body bytes before and after, as
/// HAProxy's `comp_rsp`, `comp_in` and `comp_out`: what compression saves
/// in bandwidth (a cache hit served from an entry's compressed copy counts
/// as compressed again).
#[derive(Debug, Default)]
pub struct CodingCounters {
    pub responses: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

impl CodingCounters {
    pub fn count(&self, bytes_in: u64, bytes_out: u64) {
        self.responses.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts one request that ended with `status` after `duration`.
    pub fn observe(&self, status: u16, duration: Duration) {
        self.requests.count(status);
        self.durations.observe(duration);
    }

    /// Counts a request `auth_basic` answered 401.
    pub fn count_auth_refusal(&self, refused: crate::auth::Refused) {
        let counter = match refused {
            crate::auth::Refused::Missing => &self.auth_missing,
            crate::auth::Refused::Wrong => &self.auth_wrong,
            crate::auth::Refused::Forbidden => &self.auth_forbidden,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests per status class, in [`STATUS_CLASSES`] order.
    pub fn requests(&self) -> [u64; 5] {
        self.requests.counts()
    }

    /// Cumulative counts per bucket bound (then +Inf), and the sum in seconds.
    pub fn durations(&self) -> (Vec<u64>, f64) {
        self.durations.cumulative()
    }
}

/// Counts by status class, 1xx to 5xx.
#[derive(Debug, Default)]
pub struct StatusClasses([AtomicU64; 5]);

impl StatusClasses {
    pub fn count(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.0[class].fetch_add(1, Ordering::Relaxed);
    }

    /// In [`STATUS_CLASSES`] order.
    pub fn counts(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed))
    }
}

/// Durations in [`DURATION_BUCKETS`], and their sum.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket, not cumulative; the last slot is past the largest bound.
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, duration: Duration) {
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let seconds = micros as f64 / 1e6;
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Cumulative counts per bucket bound (then +Inf), and the sum in seconds.
    pub fn cumulative(&self) -> (Vec<u64>, f64) {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Ordering::Relaxed);
                total
            })
            .collect();
        let sum = self.micros.load(Ordering::Relaxed) as f64 / 1e6;
        (cumulative, sum)
    }
}

/// One backend's counters; kept across reloads for a target that stays.
#[derive(Debug, Default)]
pub struct TargetStats {
    /// Requests sent, a resend on a fresh connection (after a pooled one
    /// died) included: the backend may have seen both.
    pub requests: AtomicU64,
    /// Requests that failed at this backend: no connection, a timeout, a
    /// broken or malformed response.
    pub failures: AtomicU64,
    /// Requests at this backend right now (counted by
    /// [`crate::upstream::slots`]).
    pub in_flight: AtomicUsize,
    /// Final response heads received, by status class (HAProxy's
    /// per-server `http_responses_total`), whether relayed or retried.
    pub responses: StatusClasses,
    /// How long it took to send each of those heads once it had the
    /// request (the log's `upstream_ms`).
    pub header_times: Histogram,
    /// The same, as a recent average, for `least_time` (measured only
    /// under it).
    pub latency: crate::upstream::latency::Latency,
    /// The requests waiting for a slot here (`max_conns`), in the order
    /// they began to wait (see [`crate::upstream::slots::Waiting`]).
    pub waiting: crate::upstream::slots::Queue,
    /// When its failures were last said on stderr, and how many since
    /// were not: one line a request would flood it while it is down.
    pub failures_said: crate::throttle::Counted,
}

/// One pool's counters (`targets`' or a `pool.<name>`'s); kept across
/// reloads for a pool that keeps its name.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// The answers the clients of the requests routed to the pool got, by
    /// status class, whoever gave them: a backend, the cache, or the
    /// proxy itself (the pool's 403, 429, 413, 502, 504): HAProxy's
    /// `haproxy_backend_http_responses_total`.
    pub answers: StatusClasses,
    /// Its requests waiting for a slot now (`max_queue` bounds them):
    /// HAProxy's `haproxy_backend_current_queue`.
    pub queued: AtomicUsize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_cumulative_buckets() {
        let m = Metrics::default();
        m.observe(200, Duration::from_micros(500));
        m.observe(204, Duration::from_millis(3));
        m.observe(502, Duration::from_secs(20));
        m.observe(99, Duration::from_micros(1));
        assert_eq!(m.requests(), [1, 2, 0, 0, 1]);
        let (buckets, sum) = m.durations();
        assert_eq!(buckets[0], 2); // <= 1 ms
        assert_eq!(buckets[2], 3); // <= 5 ms
        assert_eq!(buckets[DURATION_BUCKETS.len() - 1], 3);
        assert_eq!(buckets[DURATION_BUCKETS.len()], 4);
        assert!((sum - 20.003501).abs() < 1e-9);
    }
}
