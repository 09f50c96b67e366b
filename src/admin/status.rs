//! `GET /status`: the targets, the pools and the cache, as one JSON
//! object; `GET /stub_status`: nginx's page of connection counts.

use super::targets::push_name_and_address;
use crate::json;
use crate::metrics::STATUS_CLASSES;
use crate::proxy::Shared;
use crate::upstream::admin_state::AdminState;
use crate::upstream::health::LastCheck;
use crate::upstream::pools::Pools;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// `/stub_status`: nginx's page of that name to the byte, for the
/// monitoring that reads it (nginx-prometheus-exporter, the nginx checks
/// of Datadog, Zabbix and Telegraf): the connections open, those
/// accepted and those served, the requests answered, and the open ones
/// reading a request head, serving a request, and waiting for the next.
pub fn stub_status(shared: &Shared) -> String {
    let m = &shared.metrics;
    let phases = shared.census.phases();
    let requests: u64 = m.requests().iter().sum();
    format!(
        "Active connections: {} \nserver accepts handled requests\n {} {} {requests} \n\
         Reading: {} Writing: {} Waiting: {} \n",
        phases.active(),
        m.accepted.load(Ordering::Relaxed),
        m.handled.load(Ordering::Relaxed),
        phases.reading,
        phases.writing,
        phases.waiting,
    )
}

/// `/status`: the targets and the cache, as one JSON object.
pub fn status_json(shared: &Shared) -> String {
    let m = &shared.metrics;
    let mut out = String::with_capacity(1024);
    let requests: u64 = m.requests().iter().sum();
    let _ = write!(
        out,
        "{{\"shutting_down\":{},\"connections\":{},\"requests\":{requests},\"targets\":[",
        shared.shutting_down.load(Ordering::Relaxed),
        m.connections.load(Ordering::Relaxed),
    );
    let in_pools = (shared.pools.iter()).flat_map(|p| p.targets().iter().map(move |t| (p, t)));
    for (i, (pool, t)) in in_pools.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        push_name_and_address(&mut out, t);
        out.push(',');
        json::push_key(&mut out, "pool");
        json::push_str(&mut out, pool.name());
        // Its own `max_fails=`/`fail_timeout=`, or the keys'.
        let passive = t.health.passive();
        let _ = write!(
            out,
            ",\"weight\":{},\"backup\":{},\"max_conns\":{},\"max_fails\":{},\"fail_timeout_ms\":{},\"healthy\":{},\"stopping\":{},\"admin_state\":\"{}\",\"in_flight\":{},\"requests\":{},\"failures\":{},\"response_ms\":{},\"last_check\":",
            t.weight_now(),
            t.backup,
            // In force: an agent's `maxconn:N` may have changed it.
            match t.stats.waiting.limit() {
                0 => "null".to_string(),
                n => n.to_string(),
            },
            passive.max_fails,
            passive.fail_timeout.as_millis(),
            t.health.usable(std::time::Instant::now()),
            t.health.stopping(),
            t.health.admin_state(),
            t.stats.in_flight.load(Ordering::Relaxed),
            t.stats.requests.load(Ordering::Relaxed),
            t.stats.failures.load(Ordering::Relaxed),
            // What `least_time` reads; measured under it alone.
            match t.stats.latency.at(Instant::now()) {
                Some(ns) => format!("{:.3}", ns as f64 / 1e6),
                None => "null".to_string(),
            },
        );
        push_last_check(&mut out, t.health.last_check(), Instant::now());
        out.push('}');
    }
    push_unresolved(&mut out, shared);
    out.push_str("],\"pools\":");
    push_pools(&mut out, &shared.pools, Instant::now());
    out.push_str(",\"streams\":");
    push_streams(&mut out, shared);
    out.push_str(",\"jwt_keys\":");
    push_fetched_keys(&mut out, shared, Instant::now());
    out.push_str(",\"cache\":");
    push_cache_totals(&mut out, shared);
    out.push_str(",\"acme\":");
    push_acme(&mut out, shared);
    out.push_str("}\n");
    out
}

/// The names that gave no address yet (`unresolved_targets = wait`),
/// after the targets, each as a target that is down with no address (as
/// HAProxy's stats page shows a server whose name does not resolve): its
/// options as written, nothing counted.
fn push_unresolved(out: &mut String, shared: &Shared) {
    let listed = shared.pools.targets().count();
    let configs = shared.config.pool_configs().zip(shared.pools.iter());
    let unresolved = configs.flat_map(|(c, pool)| c.unresolved.iter().map(move |t| (c, pool, t)));
    for (i, (config, pool, t)) in unresolved.enumerate() {
        if listed + i > 0 {
            out.push(',');
        }
        out.push('{');
        json::push_key(out, "name");
        json::push_str(out, &t.name);
        out.push_str(",\"address\":null,");
        json::push_key(out, "pool");
        json::push_str(out, pool.name());
        let _ = write!(
            out,
            ",\"weight\":{},\"backup\":{},\"max_conns\":{},\"max_fails\":{},\"fail_timeout_ms\":{},\"healthy\":false,\"stopping\":false,\"admin_state\":\"{}\",\"in_flight\":0,\"requests\":0,\"failures\":0,\"response_ms\":null,\"last_check\":null}}",
            t.weight,
            t.backup,
            t.max_conns.map_or("null".to_string(), |n| n.to_string()),
            config.max_fails_of(t),
            config.fail_timeout_of(t).as_millis(),
            match t.down {
                true => AdminState::Maint,
                false => AdminState::Ready,
            },
        );
    }
}

/// A target's `last_check`: what its last probe found and how long ago
/// it ended, `null` without active checks or before the first.
fn push_last_check(out: &mut String, last: Option<LastCheck>, now: Instant) {
    let Some(last) = last else {
        out.push_str("null");
        return;
    };
    let _ = write!(out, "{{\"passed\":{},", last.passed);
    json::push_key(out, "said");
    json::push_str(out, &last.said);
    let ago = now.saturating_duration_since(last.at).as_secs_f64();
    let _ = write!(out, ",\"s_ago\":{ago:.3}}}");
}

/// `/status`'s `pools` array: each pool's name, how many targets it has
/// and how many of them may take a new request, and the answers its
/// requests got by status class (as `/metrics` has them).
fn push_pools(out: &mut String, pools: &Pools, now: Instant) {
    out.push('[');
    for (i, pool) in pools.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        json::push_key(out, "name");
        json::push_str(out, pool.name());
        let _ = write!(
            out,
            ",\"targets\":{},\"usable\":{},\"queued\":{},\"requests\":{{",
            pool.targets().len(),
            pool.usable(now),
            pool.stats().queued.load(Ordering::Relaxed),
        );
        push_classes(out, pool.stats().answers.counts());
        out.push_str("}}");
    }
    out.push(']');
}

/// The members of a counts-by-class object: `"1xx":N,...,"5xx":N`.
fn push_classes(out: &mut String, counts: impl IntoIterator<Item = u64>) {
    for (j, (class, n)) in STATUS_CLASSES.iter().zip(counts).enumerate() {
        let comma = if j > 0 { "," } else { "" };
        let _ = write!(out, "{comma}\"{class}\":{n}");
    }
}

/// `/status`'s `streams` array: each `stream.<name>` running, how it is
/// served, and its connections (a `udp` one's sessions) and bytes, as
/// `/metrics`' `inverso_stream_*` count them.
fn push_streams(out: &mut String, shared: &Shared) {
    out.push('[');
    let running = shared.metrics.streams.get().map_or(&[][..], |s| &s[..]);
    // A reload keeps every running stream: each is found.
    let found = (running.iter()).filter_map(|(name, stats)| {
        (shared.config.stream_named(name)).map(|stream| (name, stats, stream))
    });
    for (i, (name, stats, stream)) in found.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        json::push_key(out, "name");
        json::push_str(out, name);
        let protocol = match (stream.udp, stream.tls) {
            (true, _) => "udp",
            (false, true) => "tls",
            (false, false) => "tcp",
        };
        let _ = write!(
            out,
            ",\"protocol\":\"{protocol}\",\"listen\":\"{}\",",
            stream.listen
        );
        json::push_key(out, "pool");
        json::push_str(out, &stream.pool_name);
        let _ = write!(
            out,
            ",\"open\":{},\"bytes_received\":{},\"bytes_sent\":{},\"ended\":{{",
            stats.open.load(Ordering::Relaxed),
            stats.received.load(Ordering::Relaxed),
            stats.sent.load(Ordering::Relaxed),
        );
        push_classes(out, stats.ended.counts());
        out.push_str("}}");
    }
    out.push(']');
}

/// `/status`'s `jwt_keys` array: each set of keys `auth_jwt_key_request`
/// fetches, with how many keys it holds and how long ago it last came
/// (`null`: never yet, and its scopes answer 503).
fn push_fetched_keys(out: &mut String, shared: &Shared, now: Instant) {
    out.push('[');
    for (i, fetched) in shared.config.distinct_fetched_jwt_keys().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        json::push_key(out, "pool");
        json::push_str(out, &fetched.from.pool_name);
        out.push(',');
        json::push_key(out, "path");
        json::push_str(out, &fetched.from.path);
        let keys = fetched.current().map_or(0, |k| k.len());
        let ago = fetched.came().map_or("null".to_string(), |t| {
            format!("{:.3}", now.saturating_duration_since(t).as_secs_f64())
        });
        let every = fetched.every().as_secs();
        let _ = write!(
            out,
            ",\"keys\":{keys},\"fetched_s_ago\":{ago},\"every_s\":{every}}}"
        );
    }
    out.push(']');
}

/// `/status`'s `acme` object: the server, and each certificate's names,
/// the one in force (until when, and from when the next is ordered) and
/// its last order's failure while none has succeeded since; `null`
/// without `acme_domains`.
fn push_acme(out: &mut String, shared: &Shared) {
    let Some(acme) = &shared.acme else {
        out.push_str("null");
        return;
    };
    out.push_str("{\"directory\":");
    json::push_str(out, &acme.settings().directory);
    out.push_str(",\"certificates\":[");
    for (i, status) in acme.status().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_acme_certificate(out, status);
    }
    out.push_str("]}");
}

fn push_acme_certificate(out: &mut String, status: &crate::acme::AcmeStatus) {
    let date = |out: &mut String, at: Option<std::time::SystemTime>| {
        let text = at.map(crate::http::date::format_rfc3339);
        json::push_opt_str(out, text.as_deref());
    };
    out.push_str("{\"domains\":[");
    for (i, domain) in status.names.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::push_str(out, domain);
    }
    out.push_str("],\"valid_until\":");
    date(out, status.valid_until);
    out.push_str(",\"renewed_from\":");
    date(out, status.renewed_from);
    out.push_str(",\"failed\":");
    match &status.failed {
        None => out.push_str("null"),
        Some(failed) => {
            out.push_str("{\"why\":");
            json::push_str(out, &failed.why);
            out.push_str(",\"at\":");
            date(out, Some(failed.at));
            out.push_str(",\"next\":");
            date(out, Some(failed.next));
            out.push('}');
        }
    }
    out.push('}');
}

/// `/status`'s `cache` object: what the cache holds in all, and its counters.
pub(super) fn push_cache_totals(out: &mut String, shared: &Shared) {
    match &shared.cache {
        None => out.push_str("{\"enabled\":false}"),
        Some(cache) => {
            let s = &cache.stats;
            let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            let _ = write!(
                out,
                "{{\"enabled\":true,\"entries\":{},\"bytes\":{},\"capacity\":{},\"hits\":{},\"misses\":{},\"stale\":{},\"revalidated\":{},\"bypass\":{},\"evictions\":{},\"snapshot_writes\":{},\"snapshot_failures\":{}",
                cache.len(),
                cache.bytes(),
                cache.capacity(),
                load(&s.hits),
                load(&s.misses),
                load(&s.stale),
                load(&s.revalidated),
                load(&s.bypass),
                load(&s.evictions),
                load(&s.snapshot_writes),
                load(&s.snapshot_failures),
            );
            if let Some(disk) = cache.disk() {
                let _ = write!(
                    out,
                    ",\"disk\":{{\"entries\":{},\"bytes\":{},\"capacity\":{},\"hits\":{}}}",
                    disk.len(),
                    disk.bytes(),
                    disk.capacity(),
                    load(&disk.stats.hits),
                );
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::admin_state::AdminState;

    #[test]
    fn status_lists_each_pool_with_its_targets_and_answers() {
        let mut loader = crate::config::Loader::new();
        let text = "targets = 127.0.0.1:9001\npool.api = 127.0.0.1:9002, 127.0.0.1:9003\n\
                    route./api/ = api\n";
        loader.file("proxy.conf", text).unwrap();
        let pools = Pools::new(&loader.build().unwrap());
        let api = pools.get(1);
        api.stats().answers.count(200);
        api.stats().answers.count(502);
        let seat = api.join_queue();
        pools.set_admin_state(&api.targets()[1], AdminState::Maint);
        let mut out = String::new();
        push_pools(&mut out, &pools, Instant::now());
        assert_eq!(
            out,
            "[{\"name\":\"default\",\"targets\":1,\"usable\":1,\"queued\":0,\
             \"requests\":{\"1xx\":0,\"2xx\":0,\"3xx\":0,\"4xx\":0,\"5xx\":0}},\
             {\"name\":\"api\",\"targets\":2,\"usable\":1,\"queued\":1,\
             \"requests\":{\"1xx\":0,\"2xx\":1,\"3xx\":0,\"4xx\":0,\"5xx\":1}}]"
        );
        drop(seat);
    }
}
