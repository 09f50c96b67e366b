//! The Prometheus text format's pieces: label values, family headers,
//! counters and histograms.

use crate::metrics::DURATION_BUCKETS;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// A Prometheus label value: `\`, `"` and newlines escaped.
pub(super) fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(super) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A histogram's `_bucket`, `_sum` and `_count` lines; `labels` go before
/// `le` (empty, or ending in a comma).
pub(super) fn histogram_lines(
    out: &mut String,
    name: &str,
    labels: &str,
    cumulative: &[u64],
    sum: f64,
) {
    for (i, n) in cumulative.iter().enumerate() {
        let le = DURATION_BUCKETS
            .get(i)
            .map_or("+Inf".to_string(), |b| b.to_string());
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {n}");
    }
    let count = cumulative.last().copied().unwrap_or(0);
    let bare = labels.trim_end_matches(',');
    let braced = if bare.is_empty() {
        String::new()
    } else {
        format!("{{{bare}}}")
    };
    let _ = writeln!(out, "{name}_sum{braced} {sum}");
    let _ = writeln!(out, "{name}_count{braced} {count}");
}

/// A counter family of one sample, without labels.
pub(super) fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

/// A counter family with one label, a sample per value of it.
pub(super) fn labeled_counter(
    out: &mut String,
    (name, label): (&str, &str),
    help: &str,
    samples: &[(&str, &AtomicU64)],
) {
    family(out, name, "counter", help);
    for (value, count) in samples {
        let count = count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
    }
}
