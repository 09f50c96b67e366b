//! `GET /metrics`: every counter and gauge the proxy keeps, in the
//! Prometheus text format.

use super::prometheus::{counter, family, histogram_lines, label, labeled_counter};
use crate::cache::Named;
use crate::gzip::Coding;
use crate::metrics::{StreamStats, STATUS_CLASSES};
use crate::proxy::Shared;
use crate::upstream::admin_state::AdminState;
use crate::upstream::Upstream;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// The Prometheus text exposition format (version 0.0.4).
pub fn metrics_text(shared: &Shared) -> String {
    let m = &shared.metrics;
    let mut out = String::with_capacity(4096);

    family(
        &mut out,
        "inverso_requests_total",
        "counter",
        "Client requests answered, by status class.",
    );
    for (class, n) in STATUS_CLASSES.iter().zip(m.requests()) {
        let _ = writeln!(out, "inverso_requests_total{{class=\"{class}\"}} {n}");
    }

    family(
        &mut out,
        "inverso_request_duration_seconds",
        "histogram",
        "Time from a request head's arrival to the last byte of its response.",
    );
    let (buckets, sum) = m.durations();
    histogram_lines(
        &mut out,
        "inverso_request_duration_seconds",
        "",
        &buckets,
        sum,
    );

    // The standard name, which dashboards read an uptime and restarts from.
    family(
        &mut out,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since the Unix epoch, in seconds.",
    );
    let _ = writeln!(
        out,
        "process_start_time_seconds {:.3}",
        m.started.unix_seconds()
    );
    family(
        &mut out,
        "inverso_connections_in_flight",
        "gauge",
        "Client connections open.",
    );
    let _ = writeln!(
        out,
        "inverso_connections_in_flight {}",
        m.connections.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "inverso_connections",
        "gauge",
        "Client connections open, by what each is doing: reading a request head, serving a request, waiting for the next (nginx's stub_status).",
    );
    let phases = shared.census.phases();
    for (state, count) in [
        ("reading", phases.reading),
        ("writing", phases.writing),
        ("waiting", phases.waiting),
    ] {
        let _ = writeln!(out, "inverso_connections{{state=\"{state}\"}} {count}");
    }
    counter(
        &mut out,
        "inverso_connections_accepted_total",
        "Client connections accepted.",
        m.accepted.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "inverso_connections_handled_total",
        "Client connections accepted and served, not refused over max_connections or max_connections_per_client.",
        m.handled.load(Ordering::Relaxed),
    );

    // Each pool's totals, as HAProxy's per-backend families: what the
    // clients of its requests got, and how many of its targets may serve.
    family(
        &mut out,
        "inverso_pool_requests_total",
        "counter",
        "Client requests routed to each pool, by the status class of their answer (a backend's, the cache's or the proxy's own).",
    );
    for pool in shared.pools.iter() {
        let name = label(pool.name());
        for (class, n) in STATUS_CLASSES.iter().zip(pool.stats().answers.counts()) {
            let _ = writeln!(
                out,
                "inverso_pool_requests_total{{pool=\"{name}\",class=\"{class}\"}} {n}"
            );
        }
    }
    family(
        &mut out,
        "inverso_pool_targets_usable",
        "gauge",
        "Targets of each pool that may take a new request now: up, neither drained nor in maintenance.",
    );
    let now = Instant::now();
    for pool in shared.pools.iter() {
        let _ = writeln!(
            out,
            "inverso_pool_targets_usable{{pool=\"{}\"}} {}",
            label(pool.name()),
            pool.usable(now)
        );
    }
    family(
        &mut out,
        "inverso_pool_queue_current",
        "gauge",
        "Requests of each pool waiting now for a free slot at a target at its max_conns.",
    );
    for pool in shared.pools.iter() {
        let _ = writeln!(
            out,
            "inverso_pool_queue_current{{pool=\"{}\"}} {}",
            label(pool.name()),
            pool.stats().queued.load(Ordering::Relaxed)
        );
    }

    stream_families(
        &mut out,
        shared.metrics.streams.get().map_or(&[], |s| &s[..]),
    );

    // Each target with its labels: its name, then its pool's (`default`
    // for `targets`), as HAProxy's per-server metrics carry their
    // backend's as `proxy`.
    let targets: Vec<(&Upstream, String)> = (shared.pools.iter())
        .flat_map(|pool| pool.targets().iter().map(move |t| (t, pool.name())))
        .map(|(t, pool)| {
            let labels = format!("target=\"{}\",pool=\"{}\"", label(&t.name), label(pool));
            (t, labels)
        })
        .collect();
    for (name, kind, help) in [
        (
            "inverso_upstream_requests_total",
            "counter",
            "Requests sent to each backend.",
        ),
        (
            "inverso_upstream_failures_total",
            "counter",
            "Requests that failed at each backend (connect, timeout, bad reply).",
        ),
        (
            "inverso_upstream_in_flight",
            "gauge",
            "Requests at each backend right now.",
        ),
        (
            "inverso_upstream_up",
            "gauge",
            "1 while a backend is healthy, 0 while health checks or failures keep it out.",
        ),
        (
            "inverso_upstream_stopping",
            "gauge",
            "1 while a backend's health check answers 404 under health_check_disable_on_404: up, but given no new request.",
        ),
        (
            "inverso_upstream_weight",
            "gauge",
            "Each backend's weight in force: the one the admin listener gave, else the configured one.",
        ),
    ] {
        family(&mut out, name, kind, help);
        let now = std::time::Instant::now();
        for (t, labels) in &targets {
            let value = match name {
                "inverso_upstream_up" => u64::from(t.health.usable(now)),
                "inverso_upstream_stopping" => u64::from(t.health.stopping()),
                "inverso_upstream_weight" => u64::from(t.weight_now()),
                "inverso_upstream_in_flight" => t.stats.in_flight.load(Ordering::Relaxed) as u64,
                "inverso_upstream_failures_total" => t.stats.failures.load(Ordering::Relaxed),
                _ => t.stats.requests.load(Ordering::Relaxed),
            };
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }

    family(
        &mut out,
        "inverso_upstream_responses_total",
        "counter",
        "Response heads received from each backend, by status class (retried ones too).",
    );
    for (t, labels) in &targets {
        for (class, n) in STATUS_CLASSES.iter().zip(t.stats.responses.counts()) {
            let _ = writeln!(
                out,
                "inverso_upstream_responses_total{{{labels},class=\"{class}\"}} {n}"
            );
        }
    }
    family(
        &mut out,
        "inverso_upstream_header_seconds",
        "histogram",
        "Time each backend took to send its response head once it had the request.",
    );
    for (t, labels) in &targets {
        let (buckets, sum) = t.stats.header_times.cumulative();
        histogram_lines(
            &mut out,
            "inverso_upstream_header_seconds",
            &format!("{labels},"),
            &buckets,
            sum,
        );
    }

    family(
        &mut out,
        "inverso_upstream_admin_state",
        "gauge",
        "1 for the state the operator set each backend in (ready, drain or maint), 0 for the others.",
    );
    for (t, labels) in &targets {
        let current = t.health.admin_state();
        for state in AdminState::ALL {
            let _ = writeln!(
                out,
                "inverso_upstream_admin_state{{{labels},state=\"{state}\"}} {}",
                u8::from(state == current)
            );
        }
    }

    labeled_counter(
        &mut out,
        ("inverso_config_reloads_total", "result"),
        "Configuration reloads (SIGHUP), applied or refused.",
        &[("applied", &m.reloads), ("refused", &m.reloads_refused)],
    );

    counter(
        &mut out,
        "inverso_target_address_changes_total",
        "Names whose set of addresses changed while the proxy ran (resolve_interval): one came, one went, it moved, or an SRV record gave it another weight or priority.",
        m.address_changes.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "inverso_upstream_queued_total",
        "Requests that waited for a slot because the targets that could serve them were at max_conns.",
        m.queued.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "inverso_rate_limited_total",
        "Requests answered 429 for being over a rate_limit (top level, pool or route).",
        m.rate_limited.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "inverso_error_limited_total",
        "Requests answered 429 because their client had caused more errors than error_limit allows.",
        m.error_limited.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "inverso_rate_limit_delayed_total",
        "Requests held back to the rate before going on, under a rate_limit_delay.",
        m.rate_limit_delayed.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "inverso_rate_limited_dry_run_total",
        "Requests a rate_limit would have answered 429, let through under rate_limit_dry_run.",
        m.rate_limited_dry_run.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "inverso_rate_limit_delayed_dry_run_total",
        "Requests a rate_limit_delay would have held back, not held under rate_limit_dry_run.",
        m.rate_limit_delayed_dry_run.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "inverso_access_denied_total",
        "Requests answered 403 because their client address was refused by allow_from or deny_from.",
        m.access_denied.load(Ordering::Relaxed),
    );
    labeled_counter(
        &mut out,
        ("inverso_otel_spans_total", "result"),
        "Spans of traced requests for otel_exporter: sent (the collector answered 2xx), dropped (the queue was full), or failed (lost with a batch the collector did not take).",
        &[
            ("sent", &m.otel_spans_sent),
            ("dropped", &m.otel_spans_dropped),
            ("failed", &m.otel_spans_failed),
        ],
    );
    labeled_counter(
        &mut out,
        ("inverso_auth_refused_total", "reason"),
        "Requests refused by auth_basic or auth_jwt: 401 without credentials or a token (a browser's first request), 401 with a user or password not in auth_basic_user_file or a token not taken (wrong), 403 with a valid token whose claims do not meet auth_jwt_require (forbidden).",
        &[
            ("missing", &m.auth_missing),
            ("wrong", &m.auth_wrong),
            ("forbidden", &m.auth_forbidden),
        ],
    );
    labeled_counter(
        &mut out,
        ("inverso_jwt_key_fetches_total", "result"),
        "Fetches of the keys auth_jwt_key_request asks a pool for: a set put in force (ok), or none (failed: no answer, another status, not a key set; the set before is kept).",
        &[
            ("ok", &m.jwt_key_fetches),
            ("failed", &m.jwt_key_fetches_failed),
        ],
    );
    labeled_counter(
        &mut out,
        ("inverso_auth_requests_total", "result"),
        "Requests asked of the auth_request pool: let through (a 2xx), refused (any other answer, sent to the client), or failed (the pool could not be asked: 502, 503 or 504); or let through unasked on a yes auth_request_cache kept (cached).",
        &[
            ("allowed", &m.auth_requests_allowed),
            ("denied", &m.auth_requests_denied),
            ("failed", &m.auth_requests_failed),
            ("cached", &m.auth_requests_cached),
        ],
    );
    labeled_counter(
        &mut out,
        ("inverso_mirror_requests_total", "result"),
        "Copies of requests sent to a mirror pool: answered (the answer dropped), failed (no answer), or dropped unsent (the queue full, a body streamed, no target to take it).",
        &[
            ("answered", &m.mirror_answered),
            ("failed", &m.mirror_failed),
            ("dropped", &m.mirror_dropped),
        ],
    );
    counter(
        &mut out,
        "inverso_https_redirects_total",
        "Requests that came over plain HTTP answered with a redirect to HTTPS (redirect_to_https).",
        m.https_redirects.load(Ordering::Relaxed),
    );
    // Counted by the rules themselves; a reload keeps a rule's count
    // while it keeps its name.
    family(
        &mut out,
        "inverso_rewrites_total",
        "counter",
        "Requests each rewrite.<name> rule applied to: its path rewritten, or the request redirected.",
    );
    for rule in shared.config.rewrites.iter() {
        let _ = writeln!(
            out,
            "inverso_rewrites_total{{rule=\"{}\"}} {}",
            label(rule.name()),
            rule.applied()
        );
    }
    family(
        &mut out,
        "inverso_denied_total",
        "counter",
        "Requests each deny.<name> rule refused.",
    );
    for rule in shared.config.deny.iter() {
        let _ = writeln!(
            out,
            "inverso_denied_total{{rule=\"{}\"}} {}",
            label(rule.name()),
            rule.refused()
        );
    }
    if let Some(served) = &shared.config.tls_served {
        family(
            &mut out,
            "inverso_tls_certificate_expiry_seconds",
            "gauge",
            "When each certificate of tls_certificates, and the one the ACME client got, stops being valid (its notAfter), in seconds since the Unix epoch.",
        );
        let acme: Vec<_> = (shared.acme.iter().flat_map(|acme| acme.in_force()))
            .map(|(path, key)| {
                let until = key.end_entity_cert().ok();
                (path, until.and_then(|der| crate::tls::x509::not_after(der)))
            })
            .collect();
        let acme = acme.iter().map(|(path, until)| (path.as_path(), *until));
        for (path, until) in served.valid_until().chain(acme) {
            let Some(secs) = until.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            else {
                continue;
            };
            let file = label(&path.display().to_string());
            let secs = secs.as_secs();
            let _ = writeln!(
                out,
                "inverso_tls_certificate_expiry_seconds{{file=\"{file}\"}} {secs}"
            );
        }
        family(
            &mut out,
            "inverso_tls_ocsp_next_update_seconds",
            "gauge",
            "When the OCSP response stapled with each certificate of tls_certificates goes out of date (its nextUpdate), in seconds since the Unix epoch; a certificate without one, or whose response says no nextUpdate, is not listed.",
        );
        for stapled in served.stapled() {
            let Some(secs) = (stapled.good.next_update)
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            else {
                continue;
            };
            let file = label(&stapled.chain.display().to_string());
            let secs = secs.as_secs();
            let _ = writeln!(
                out,
                "inverso_tls_ocsp_next_update_seconds{{file=\"{file}\"}} {secs}"
            );
        }
    }
    labeled_counter(
        &mut out,
        ("inverso_tls_handshakes_total", "result"),
        "TLS handshakes on tls_port and streams that end TLS: completed, or failed (the client gave up or timed out, spoke plain HTTP, or shared no protocol version or cipher suite).",
        &[("ok", &m.tls_handshakes), ("failed", &m.tls_handshake_failures)],
    );
    counter(
        &mut out,
        "inverso_tls_sessions_resumed_total",
        "Completed TLS handshakes on tls_port and streams that end TLS that resumed an earlier session (a ticket or a session ID) instead of making a new one.",
        m.tls_resumed.load(Ordering::Relaxed),
    );
    for coding in Coding::ALL {
        let (counters, name) = (m.compressed(coding), coding.key());
        counter(
            &mut out,
            &format!("inverso_{name}_responses_total"),
            &format!(
                "Responses sent compressed with {name} (relayed, cached, files, own answers)."
            ),
            counters.responses.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            &format!("inverso_{name}_bytes_in_total"),
            &format!(
                "Body bytes of the responses sent compressed with {name}, before compression."
            ),
            counters.bytes_in.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            &format!("inverso_{name}_bytes_out_total"),
            &format!("Body bytes of the responses sent compressed with {name}, as sent."),
            counters.bytes_out.load(Ordering::Relaxed),
        );
    }
    counter(
        &mut out,
        "inverso_access_log_lost_lines_total",
        "Access-log lines a sink (stdout, the file) could not take, e.g. on a full disk.",
        shared.log.lost(),
    );

    let Some(cache) = &shared.cache else {
        return out;
    };
    let s = &cache.stats;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    labeled_counter(
        &mut out,
        ("inverso_cache_requests_total", "result"),
        "Requests that went through the cache, by X-Cache result.",
        &[
            ("hit", &s.hits),
            ("miss", &s.misses),
            ("stale", &s.stale),
            ("revalidated", &s.revalidated),
            ("bypass", &s.bypass),
        ],
    );
    for (name, kind, help, value) in [
        (
            "inverso_cache_entries",
            "gauge",
            "Responses stored (each Vary variant counts).",
            cache.len() as f64,
        ),
        (
            "inverso_cache_bytes",
            "gauge",
            "Bytes the entries take, counted as cache_size is (body, head, key and bookkeeping).",
            cache.bytes() as f64,
        ),
        (
            "inverso_cache_capacity_bytes",
            "gauge",
            "The cache's capacity (cache_size).",
            cache.capacity() as f64,
        ),
        (
            "inverso_cache_read_ahead_bytes",
            "gauge",
            "Bytes of responses being stored that wait for slow clients to take them (at most cache_size in all, but 64 KiB each).",
            load(&s.read_ahead) as f64,
        ),
        (
            "inverso_cache_evictions_total",
            "counter",
            "Entries evicted to make room.",
            load(&s.evictions) as f64,
        ),
        (
            "inverso_cache_snapshot_failures_total",
            "counter",
            "Snapshot writes that failed.",
            load(&s.snapshot_failures) as f64,
        ),
    ] {
        family(&mut out, name, kind, help);
        let _ = writeln!(out, "{name} {value}");
    }
    for (name, help, counts) in [
        (
            "inverso_cache_purges_total",
            "Purges taken on the admin listener, by what they name and whether soft.",
            &s.purges,
        ),
        (
            "inverso_cache_purged_entries_total",
            "Entries the purges named: removed (hard) or marked stale (soft).",
            &s.purged_entries,
        ),
    ] {
        family(&mut out, name, "counter", help);
        for kind in Named::ALL {
            for (mode, counter) in ["hard", "soft"].iter().zip(&counts[kind as usize]) {
                let n = load(counter);
                let kind = kind.label();
                let _ = writeln!(out, "{name}{{kind=\"{kind}\",mode=\"{mode}\"}} {n}");
            }
        }
    }
    family(
        &mut out,
        "inverso_cache_snapshot_duration_seconds",
        "summary",
        "Snapshot files written, and the time spent writing them.",
    );
    let _ = writeln!(
        out,
        "inverso_cache_snapshot_duration_seconds_sum {}\ninverso_cache_snapshot_duration_seconds_count {}",
        load(&s.snapshot_micros) as f64 / 1e6,
        load(&s.snapshot_writes)
    );
    if let Some(disk) = cache.disk() {
        disk_families(&mut out, disk);
    }
    out
}

/// The disk tier's (`cache_disk_dir`): nothing without one.
fn disk_families(out: &mut String, disk: &crate::cache::disk::Disk) {
    let s = &disk.stats;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    for (name, help, value) in [
        (
            "inverso_cache_disk_entries",
            "Responses kept on disk (cache_disk_dir), each a file.",
            disk.len() as u64,
        ),
        (
            "inverso_cache_disk_bytes",
            "Bytes of the files kept on disk.",
            disk.bytes(),
        ),
        (
            "inverso_cache_disk_capacity_bytes",
            "The disk tier's capacity (cache_disk_size).",
            disk.capacity(),
        ),
    ] {
        family(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    for (name, help, value) in [
        (
            "inverso_cache_disk_hits_total",
            "Responses read back from disk into memory (and served as hits).",
            &s.hits,
        ),
        (
            "inverso_cache_disk_writes_total",
            "Responses evicted from memory written to disk.",
            &s.writes,
        ),
        (
            "inverso_cache_disk_dropped_total",
            "Responses evicted from memory not written: the writer was behind.",
            &s.dropped,
        ),
        (
            "inverso_cache_disk_damaged_total",
            "Files found damaged or missing when read back (each dropped, a miss).",
            &s.damaged,
        ),
    ] {
        counter(out, name, help, load(value));
    }
}

/// Each `stream.<name>`'s connections and bytes, as HAProxy's frontend
/// sessions and bytes: nothing without streams.
fn stream_families(out: &mut String, streams: &[(Arc<str>, StreamStats)]) {
    if streams.is_empty() {
        return;
    }
    family(
        out,
        "inverso_stream_connections_total",
        "counter",
        "Connections each stream (stream.<name>) has ended, by the status class of their log line.",
    );
    for (name, stats) in streams {
        let name = label(name);
        for (class, n) in STATUS_CLASSES.iter().zip(stats.ended.counts()) {
            let _ = writeln!(
                out,
                "inverso_stream_connections_total{{stream=\"{name}\",class=\"{class}\"}} {n}"
            );
        }
    }
    type Sample = fn(&StreamStats) -> u64;
    let per_stream: [(&str, &str, &str, Sample); 3] = [
        (
            "inverso_stream_connections_current",
            "gauge",
            "Connections open on each stream now.",
            |s| s.open.load(Ordering::Relaxed) as u64,
        ),
        (
            "inverso_stream_bytes_received_total",
            "counter",
            "Bytes each stream received from its clients, of connections ended.",
            |s| s.received.load(Ordering::Relaxed),
        ),
        (
            "inverso_stream_bytes_sent_total",
            "counter",
            "Bytes each stream sent to its clients, of connections ended.",
            |s| s.sent.load(Ordering::Relaxed),
        ),
    ];
    for (metric, kind, help, value) in per_stream {
        family(out, metric, kind, help);
        for (name, stats) in streams {
            let _ = writeln!(
                out,
                "{metric}{{stream=\"{}\"}} {}",
                label(name),
                value(stats)
            );
        }
    }
}
