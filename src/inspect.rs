//! `inverso cache inspect FILE`: what a snapshot holds, one line per record
//! and a summary.

use anyhow::Context;
use inverso::cache::persist::{load_snapshot, LoadLimits};
use inverso::cache::store::unix_ms;
use inverso::cache::Entry;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

pub fn run(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        anyhow::bail!("{}: no such file", path.display());
    }
    // `now = 0` keeps expired records too: inspecting shows everything.
    let loaded = load_snapshot(path, 0, &LoadLimits::UNLIMITED)
        .with_context(|| format!("cannot inspect {}", path.display()))?;
    let now = unix_ms(SystemTime::now());
    let (mut fresh, mut stale, mut expired, mut bytes) = (0, 0, 0, 0u64);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(out, "{:<7} {:>10} {:>22}  key", "status", "body", "expires")?;
    for record in loaded.records {
        bytes += record.body.len() as u64;
        let expires = if record.expires_at > now {
            fresh += 1;
            format!("in {}", seconds(record.expires_at - now))
        } else if record.stale_until > now {
            stale += 1;
            format!("stale, usable {}", seconds(record.stale_until - now))
        } else {
            expired += 1;
            format!("expired {} ago", seconds(now - record.expires_at))
        };
        let key = String::from_utf8_lossy(&record.key).replace('\n', " | ");
        let body = record.body.len();
        let status =
            Entry::from_record(record).map_or("?".to_string(), |e| e.head.status.to_string());
        writeln!(out, "{status:<7} {body:>10} {expires:>22}  {key}")?;
    }
    writeln!(
        out,
        "records: {} ({fresh} fresh, {stale} stale, {expired} expired), body bytes: {bytes}",
        fresh + stale + expired
    )?;
    out.flush().context("cannot write the output")?;
    // Listed, but not a healthy file: a script should be able to tell.
    if let Some(damage) = loaded.damage {
        anyhow::bail!(
            "{}: damaged: {damage} (records after it are lost)",
            path.display()
        );
    }
    Ok(())
}

fn seconds(ms: u64) -> String {
    match ms / 1000 {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}
