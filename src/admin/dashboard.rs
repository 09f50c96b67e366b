//! `GET /`: the proxy's state as a page to read in a browser, as HAProxy's
//! statistics page (`stats uri`): each pool's targets (whether they take
//! requests, their weight, requests in flight and in all, failures, the
//! time to an answer, what their last health check found), the cache's
//! totals, the keys fetched for
//! `auth_jwt`. `?refresh=N` reloads it every N seconds (HAProxy's
//! `stats refresh`).
//!
//! It only shows: what changes things (`PUT /targets/...`, `PURGE`,
//! `DELETE /cache`) is a request of its own, which no form or link on a
//! page can send, and the page runs no script (see `connection`'s
//! `Content-Security-Policy`).

use super::Reply;
use crate::html::push_escaped;
use crate::http::date::format_http_date;
use crate::metrics::STATUS_CLASSES;
use crate::proxy::Shared;
use crate::upstream::admin_state::AdminState;
use crate::upstream::{Upstream, Upstreams};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// The longest `?refresh=` takes, in seconds: an hour.
const MOST_REFRESH: u64 = 3600;

const STYLE: &str = "<style>\n\
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em;color:#1d1d1d;background:#fff}\n\
h1{font-size:1.4em;margin:0 0 .2em}\n\
h2{font-size:1.1em;margin:1.6em 0 .3em}\n\
p{margin:.3em 0}\n\
table{border-collapse:collapse;margin:.4em 0}\n\
th,td{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}\n\
th{background:#f2f2f2;font-weight:600}\n\
th.name,td.name{text-align:left}\n\
tr.down td{background:#fbe3e1}\n\
tr.drain td,tr.stopping td{background:#fdf3d2}\n\
tr.maint td{background:#e8e8e8;color:#555}\n\
.tag{font-size:.8em;border:1px solid #999;border-radius:3px;padding:0 .3em;margin-left:.4em}\n\
.alert{background:#fbe3e1;padding:.4em .7em;display:inline-block}\n\
.quiet{color:#666}\n\
</style>\n";

/// The page, or `400` for a query it does not take.
pub(super) fn dashboard(query: Option<&str>, shared: &Shared) -> Reply {
    match refresh_of(query) {
        Ok(refresh) => Reply {
            content_type: "text/html; charset=utf-8",
            ..Reply::text(200, page(shared, refresh, Instant::now()))
        },
        Err(e) => Reply::text(400, e),
    }
}

/// `refresh=N`, the one parameter the page takes.
fn refresh_of(query: Option<&str>) -> Result<Option<u64>, String> {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return Ok(None);
    };
    query
        .strip_prefix("refresh=")
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=MOST_REFRESH).contains(n))
        .map(Some)
        .ok_or_else(|| {
            format!("the page takes one parameter, refresh=<seconds> (1 to {MOST_REFRESH})\n")
        })
}

fn page(shared: &Shared, refresh: Option<u64>, now: Instant) -> String {
    let mut out = String::with_capacity(8192);
    out.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>inverso</title>\n",
    );
    if let Some(seconds) = refresh {
        let _ = writeln!(out, "<meta http-equiv=\"refresh\" content=\"{seconds}\">");
    }
    out.push_str(STYLE);
    out.push_str("</head>\n<body>\n<h1>inverso</h1>\n");
    push_summary(&mut out, shared);
    for pool in shared.pools.iter() {
        push_pool(&mut out, pool, now);
    }
    push_cache(&mut out, shared);
    push_fetched_keys(&mut out, shared, now);
    let _ = write!(
        out,
        "<p class=\"quiet\">At {}. The same as data: <a href=\"/status\">/status</a> (JSON), \
         <a href=\"/metrics\">/metrics</a> (Prometheus), <a href=\"/stub_status\">/stub_status</a>. ",
        format_http_date(SystemTime::now())
    );
    match refresh {
        Some(seconds) => {
            let _ = writeln!(
                out,
                "Reloaded every {seconds} s: <a href=\"/\">stop</a>.</p>"
            );
        }
        None => out.push_str("<a href=\"/?refresh=5\">Reload every 5 s</a>.</p>\n"),
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// The process: version, uptime, connections, requests by class.
fn push_summary(out: &mut String, shared: &Shared) {
    let m = &shared.metrics;
    if shared.shutting_down.load(Ordering::Relaxed) {
        out.push_str("<p class=\"alert\">Shutting down: no new connection is taken.</p>\n");
    }
    let requests = m.requests();
    let answered = match requests.iter().sum() {
        0 => "0".to_string(),
        n => format!("{} ({})", grouped(n), by_class(requests)),
    };
    let _ = writeln!(
        out,
        "<p>Version {} · process {} · up {} · connections open: {} · requests answered: \
         {answered} · reloads: {}</p>",
        env!("CARGO_PKG_VERSION"),
        std::process::id(),
        uptime(m.started.uptime()),
        grouped(m.connections.load(Ordering::Relaxed) as u64),
        grouped(m.reloads.load(Ordering::Relaxed)),
    );
}

/// One pool: how many of its targets take requests, the answers its
/// clients got, and a row per target.
fn push_pool(out: &mut String, pool: &Upstreams, now: Instant) {
    out.push_str("<h2>Pool <code>");
    push_escaped(out, pool.name());
    let _ = writeln!(
        out,
        "</code></h2>\n<p>Targets taking new requests: {} of {} · waiting for a slot: {} · \
         answers: {}</p>",
        pool.usable(now),
        pool.targets().len(),
        pool.stats().queued.load(Ordering::Relaxed),
        by_class(pool.stats().answers.counts()),
    );
    out.push_str(
        "<table>\n<tr><th class=\"name\">Target</th><th class=\"name\">Address</th>\
         <th class=\"name\">Health</th><th class=\"name\">State</th><th>Weight</th>\
         <th>In flight</th><th>Max conns</th><th>Requests</th><th>Failures</th>\
         <th>Time to answer</th><th class=\"name\">Last check</th></tr>\n",
    );
    for target in pool.targets() {
        push_target(out, target, now);
    }
    out.push_str("</table>\n");
}

fn push_target(out: &mut String, t: &Upstream, now: Instant) {
    let health = if !t.health.usable(now) {
        "down"
    } else if t.health.stopping() {
        "stopping"
    } else {
        "up"
    };
    let state = t.health.admin_state();
    // What the row says first: the operator's word, then the checks'.
    let row = match state {
        AdminState::Ready => health,
        AdminState::Drain | AdminState::Maint => state.as_str(),
    };
    let _ = write!(out, "<tr class=\"{row}\"><td class=\"name\">");
    push_escaped(out, &t.name);
    if t.backup {
        out.push_str("<span class=\"tag\">backup</span>");
    }
    out.push_str("</td><td class=\"name\">");
    push_escaped(out, &t.addr.to_string());
    let max_conns = match t.stats.waiting.limit() {
        0 => "-".to_string(),
        n => grouped(n as u64),
    };
    // Measured under `least_time` alone.
    let answer_time = match t.stats.latency.at(now) {
        Some(ns) => format!("{:.1} ms", ns as f64 / 1e6),
        None => "-".to_string(),
    };
    let _ = write!(
        out,
        "</td><td class=\"name\">{health}</td><td class=\"name\">{state}</td><td>{}</td>\
         <td>{}</td><td>{max_conns}</td><td>{}</td><td>{}</td><td>{answer_time}</td>\
         <td class=\"name\">",
        t.weight_now(),
        grouped(t.in_flight() as u64),
        grouped(t.stats.requests.load(Ordering::Relaxed)),
        grouped(t.stats.failures.load(Ordering::Relaxed)),
    );
    // What the active checks last found, as HAProxy's `LastChk`.
    match t.health.last_check() {
        Some(last) => {
            push_escaped(out, &last.said);
            let ago = uptime(now.saturating_duration_since(last.at));
            let _ = write!(out, ", {ago} ago");
        }
        None => out.push('-'),
    }
    out.push_str("</td></tr>\n");
}

fn push_cache(out: &mut String, shared: &Shared) {
    out.push_str("<h2>Cache</h2>\n");
    let Some(cache) = &shared.cache else {
        out.push_str("<p>None: <code>cache_size</code> is 0.</p>\n");
        return;
    };
    let s = &cache.stats;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (hits, misses) = (load(&s.hits), load(&s.misses));
    let ratio = match hits + misses {
        0 => "-".to_string(),
        asked => format!("{:.1}%", hits as f64 * 100.0 / asked as f64),
    };
    let (bytes, capacity) = (cache.bytes(), cache.capacity());
    let _ = writeln!(
        out,
        "<p>Entries: {} · stored: {} of {} ({:.1}%)</p>",
        grouped(cache.len() as u64),
        size(bytes),
        size(capacity),
        bytes as f64 * 100.0 / capacity.max(1) as f64,
    );
    out.push_str(
        "<table>\n<tr><th>Hits</th><th>Misses</th><th>Hit ratio</th>\
         <th>Stale</th><th>Revalidated</th><th>Bypassed</th><th>Evicted</th>\
         <th>Snapshots written</th><th>Snapshots failed</th></tr>\n",
    );
    let _ = writeln!(
        out,
        "<tr><td>{}</td><td>{}</td><td>{ratio}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td><td>{}</td></tr>\n</table>",
        grouped(hits),
        grouped(misses),
        grouped(load(&s.stale)),
        grouped(load(&s.revalidated)),
        grouped(load(&s.bypass)),
        grouped(load(&s.evictions)),
        grouped(load(&s.snapshot_writes)),
        grouped(load(&s.snapshot_failures)),
    );
}

/// The sets of keys `auth_jwt_key_request` fetches, when there are any.
fn push_fetched_keys(out: &mut String, shared: &Shared, now: Instant) {
    let sets = shared.config.distinct_fetched_jwt_keys();
    if sets.is_empty() {
        return;
    }
    out.push_str(
        "<h2>Keys fetched for <code>auth_jwt</code></h2>\n<table>\n\
         <tr><th class=\"name\">Pool</th><th class=\"name\">Path</th><th>Keys</th>\
         <th>Fetched</th><th>Every</th></tr>\n",
    );
    for fetched in sets {
        out.push_str("<tr><td class=\"name\">");
        push_escaped(out, &fetched.from.pool_name);
        out.push_str("</td><td class=\"name\">");
        push_escaped(out, &fetched.from.path);
        let ago = fetched.came().map_or("not yet".to_string(), |t| {
            format!("{} ago", uptime(now.saturating_duration_since(t)))
        });
        let _ = writeln!(
            out,
            "</td><td>{}</td><td>{ago}</td><td>{}</td></tr>",
            fetched.current().map_or(0, |k| k.len()),
            uptime(fetched.every()),
        );
    }
    out.push_str("</table>\n");
}

/// Counts by status class: `2xx 1,024, 5xx 3`, the classes without one
/// left out (`none` when all are).
fn by_class(counts: [u64; 5]) -> String {
    let said: Vec<String> = (STATUS_CLASSES.iter().zip(counts))
        .filter(|(_, n)| *n > 0)
        .map(|(class, n)| format!("{class} {}", grouped(n)))
        .collect();
    if said.is_empty() {
        "none".to_string()
    } else {
        said.join(", ")
    }
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Bytes in the binary unit that reads best: `512 B`, `1.5 KiB`, `64.0 MiB`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A span to the second, its largest units first: `3d 4h 5m 6s`, `42s`.
fn uptime(span: Duration) -> String {
    let s = span.as_secs();
    let parts = [
        (s / 86_400, 'd'),
        (s / 3600 % 24, 'h'),
        (s / 60 % 60, 'm'),
        (s % 60, 's'),
    ];
    let first = parts.iter().position(|(n, _)| *n > 0).unwrap_or(3);
    let words: Vec<String> = parts[first..]
        .iter()
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_sizes_and_spans_read_as_people_write_them() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(u64::MAX), "18,446,744,073,709,551,615");
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(64 << 20), "64.0 MiB");
        assert_eq!(size(3 << 40), "3.0 TiB");
        assert_eq!(size(u64::MAX), "16777216.0 TiB");
        assert_eq!(uptime(Duration::ZERO), "0s");
        assert_eq!(uptime(Duration::from_secs(42)), "42s");
        assert_eq!(uptime(Duration::from_secs(3600)), "1h 0m 0s");
        assert_eq!(
            uptime(Duration::from_secs(3 * 86_400 + 4 * 3600 + 5 * 60 + 6)),
            "3d 4h 5m 6s"
        );
        assert_eq!(by_class([0; 5]), "none");
        assert_eq!(by_class([0, 1024, 0, 0, 3]), "2xx 1,024, 5xx 3");
    }

    #[test]
    fn the_page_takes_a_refresh_of_one_second_to_an_hour_and_nothing_else() {
        assert_eq!(refresh_of(None), Ok(None));
        assert_eq!(refresh_of(Some("")), Ok(None));
        assert_eq!(refresh_of(Some("refresh=1")), Ok(Some(1)));
        assert_eq!(refresh_of(Some("refresh=3600")), Ok(Some(3600)));
        for refused in [
            "refresh=0",
            "refresh=3601",
            "refresh=",
            "refresh=+5",
            "refresh=5s",
            "refresh=99999999999999999999999",
            "refresh=5&x=1",
            "x=1",
            "Refresh=5",
        ] {
            assert!(refresh_of(Some(refused)).is_err(), "{refused}");
        }
    }
}
