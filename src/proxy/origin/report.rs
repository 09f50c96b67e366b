//! Failures and answers told to the target's health (toward `max_fails`),
//! counted, and said on stderr at most once a minute for each cause.

use super::{Failure, Malformed};
use crate::proxy::Client;
use crate::upstream::retry_on::RetryOnStatus;
use crate::upstream::Upstream;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Reports a failed exchange: warned about, counted, and held against the
/// target's health. Not what is not the backend's doing: the client's
/// side failing, a pooled connection it had closed while idle (a retry's
/// business), or a connection cut by a forced shutdown.
///
/// The choke point of the failures past the response head too: the log
/// is told how it ended the exchange (see [`Client::failed`]).
pub(in crate::proxy) fn hold_against(target: &Upstream, f: &Failure, client: &Client) {
    client.failed(f);
    if matches!(f, Failure::Client(_)) || client.watch.cut() {
        return;
    }
    let reason = f.to_string();
    warn_failure(target, &reason, client);
    // A body `gunzip` could not decode is one answer's fault, not the
    // target's: it answered, and clients that take gzip are served it.
    if !matches!(
        f,
        Failure::Stale(_) | Failure::Malformed(Malformed::Gzip(_))
    ) {
        count_failure(target, &reason);
    }
}

/// Reports a response head to its target's health. A status that
/// `retry_on_status` counts as the target's failure (a listed 5xx, see
/// [`RetryOnStatus::fails_target`]) goes toward `max_fails`, whether the
/// request is then retried or the answer relayed (the last attempt, a
/// POST); any other answer resets the count.
pub(super) fn report_answer(
    target: &Upstream,
    picked: Instant,
    status: u16,
    retry_on: &RetryOnStatus,
    client: &Client,
) {
    if !retry_on.fails_target(status) {
        target.health.succeeded(picked);
    } else if !client.watch.cut() {
        let reason = format!("answered {status}");
        warn_failure(target, &reason, client);
        count_failure(target, &reason);
    }
}

/// Says a failure of `target` on stderr, naming the client and the
/// request's ID (the access log's `request_id`), as nginx's error log
/// names the client and request (see [`say_failure`]).
pub(in crate::proxy) fn warn_failure(target: &Upstream, reason: &str, client: &Client) {
    let request_id = client.request_id.as_ref().map(|(_, id)| id.as_str());
    say_failure(target, reason, (client.real_ip, request_id));
}

/// A failure of `target` a stream's connection or session met (no
/// request: nothing else to tell): said, as [`say_failure`] says, and
/// counted toward its `max_fails`.
pub(in crate::proxy) fn fail_for_stream(target: &Upstream, reason: &str, client: IpAddr) {
    say_failure(target, reason, (client, None));
    count_failure(target, reason);
}

/// Says `reason`, a failure of `target` met by `client` (its address, and
/// its request's ID), at most once a minute for each target and cause,
/// with the count of those not said: a dead backend under load fails
/// every request, each in the access log already. Returns whether it was
/// said.
pub(in crate::proxy) fn say_failure(
    target: &Upstream,
    reason: &str,
    client: (IpAddr, Option<&str>),
) -> bool {
    let failures = &target.stats.failures_said;
    let Some(quiet) = failures.failed_because(Instant::now(), reason) else {
        return false;
    };
    let id = match client.1 {
        Some(id) => format!(", request_id {id}"),
        None => String::new(),
    };
    let since = match quiet {
        0 => String::new(),
        n => format!("; {n} failure(s) of it not said since the last"),
    };
    log::warn!(
        "target {}: {reason} (client {}{id}; said at most once a minute for each \
         target and cause{since})",
        target.name,
        client.0,
    );
    true
}

/// One failure of `target`: toward `max_fails`, and in its failure count.
pub(in crate::proxy) fn count_failure(target: &Upstream, reason: &str) {
    let now = Instant::now();
    if let Some(timing) = target.least_time {
        target.stats.latency.observe(timing.failure_takes, now);
    }
    target.health.failed(now, reason);
    target.stats.failures.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Target};
    use crate::upstream::Upstreams;
    use std::net::SocketAddr;

    #[test]
    fn a_target_s_failures_are_said_once_a_minute_for_each_cause() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let upstreams = Upstreams::new(&Config::with_targets(vec![Target::new("a", addr)]));
        let target = &upstreams.targets()[0];
        let client = (IpAddr::from([192, 0, 2, 7]), Some("id-1"));
        assert!(say_failure(target, "101 without Upgrade", client));
        // Every upgrade after it meets the same: not said again within
        // the minute, but counted for the next line.
        assert!(!say_failure(target, "101 without Upgrade", client));
        let said = &target.stats.failures_said;
        assert_eq!(
            said.failed_because(Instant::now(), "101 without Upgrade"),
            None
        );
        // The target's other failures are said as well: another cause is
        // said at once, its own count kept.
        assert_eq!(
            said.failed_because(Instant::now(), "cannot connect: refused"),
            Some(0)
        );
    }
}
