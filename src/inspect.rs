//! `inverso cache inspect FILE`: what a snapshot holds, one line per record
//! and a summary. Records are read one at a time, so a snapshot of any
//! size (or a crafted one claiming huge records) is listed in bounded
//! memory.

use anyhow::Context;
use inverso::cache::persist::{scan_snapshot, LoadLimits, Record};
use inverso::cache::policy::Settings;
use inverso::cache::store::unix_ms;
use inverso::cache::Entry;
use inverso::config::escape_controls;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

/// Records larger than this are checked and counted, not read into memory
/// (a cache stores objects up to `max_object_size`, far below this).
const MAX_LISTED_RECORD: u64 = 64 << 20;

pub fn run(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        anyhow::bail!("{}: no such file", path.display());
    }
    let now = unix_ms(SystemTime::now());
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let header = |out: &mut dyn Write| {
        writeln!(out, "{:<7} {:>10} {:>22}  key", "status", "body", "expires")
    };
    let mut tally = Tally::default();
    // The header goes out with the first record (or the summary): not
    // above an error about a file that could not be read at all.
    let mut written = None;
    let limits = LoadLimits {
        max_record_bytes: MAX_LISTED_RECORD,
        max_total_bytes: u64::MAX,
    };
    // `now = 0` keeps expired records too: inspecting shows everything.
    let loaded = scan_snapshot(path, 0, &limits, &mut |record| {
        let ok = written.get_or_insert_with(|| header(&mut out));
        if ok.is_ok() {
            *ok = writeln!(out, "{}", tally.line(record, now));
        }
    })
    .with_context(|| format!("cannot inspect {}", path.display()))?;
    written.unwrap_or_else(|| header(&mut out))?;
    let Tally {
        fresh,
        stale,
        expired,
        unusable,
        bytes,
    } = tally;
    writeln!(
        out,
        "records: {} ({fresh} fresh, {stale} stale, {expired} expired, {unusable} unusable), body bytes: {bytes}{}",
        fresh + stale + expired + unusable,
        match loaded.skipped_over_limit {
            0 => String::new(),
            n => format!(
                ", {n} over {} MiB (checksums sound) not listed",
                MAX_LISTED_RECORD >> 20
            ),
        },
    )?;
    out.flush().context("cannot write the output")?;
    // Listed, but not a healthy file: a script should be able to tell.
    if let Some(damage) = loaded.damage {
        anyhow::bail!(
            "{}: damaged: {}",
            path.display(),
            escape_controls(&damage.to_string())
        );
    }
    if unusable > 0 {
        anyhow::bail!(
            "{}: {unusable} record(s) the proxy would drop (a head that does not parse, a status it never stores, a key that is not UTF-8)",
            path.display()
        );
    }
    Ok(())
}

#[derive(Default)]
struct Tally {
    fresh: usize,
    stale: usize,
    expired: usize,
    /// Records the proxy would drop at load.
    unusable: usize,
    bytes: u64,
}

impl Tally {
    /// Counts `record` and describes it in one line. Keys are shown with
    /// control characters escaped: they came from a file, perhaps a
    /// crafted one, and go to a terminal.
    fn line(&mut self, record: Record, now: u64) -> String {
        let (expires_at, stale_until) = (record.expires_at, record.stale_until);
        let key = String::from_utf8_lossy(&record.key).replace('\n', " | ");
        let key = escape_controls(&key);
        let body = record.body.len();
        // Whatever the rules, a record is as usable.
        let Some(entry) = Entry::from_record(record, &Settings::default()) else {
            self.unusable += 1;
            return format!("{:<7} {body:>10} {:>22}  {key}", "bad", "unusable");
        };
        self.bytes += body as u64;
        let expires = if expires_at > now {
            self.fresh += 1;
            format!("in {}", seconds(expires_at - now))
        } else if stale_until > now {
            self.stale += 1;
            format!("stale, usable {}", seconds(stale_until - now))
        } else {
            self.expired += 1;
            format!("expired {} ago", seconds(now - expires_at))
        };
        let status = entry.head.status;
        format!("{status:<7} {body:>10} {expires:>22}  {key}")
    }
}

fn seconds(ms: u64) -> String {
    match ms / 1000 {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}
