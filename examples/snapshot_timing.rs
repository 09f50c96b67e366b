//! Times writing and loading a cache snapshot of 10,000 entries, 64 MiB of
//! bodies in all, through the same code the timer thread and start-up use.
//!
//!     cargo run --release --example snapshot_timing [DIR]
//!
//! The snapshot goes to DIR (default: the system temporary directory) and
//! is removed afterwards.

use inverso::cache::policy::{Lifetime, Settings};
use inverso::cache::{timer, Cache, Entry};
use inverso::http::ResponseHead;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const ENTRIES: usize = 10_000;
const TOTAL_BODY: usize = 64 << 20;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(std::env::temp_dir, PathBuf::from);
    let path = dir.join(format!(
        "inverso-snapshot-timing-{}.bin",
        std::process::id()
    ));
    let capacity = 2 * TOTAL_BODY as u64;
    let cache = Cache::new(capacity, capacity);
    let body: Arc<[u8]> = vec![b'x'; TOTAL_BODY / ENTRIES].into();
    let lifetime = Lifetime {
        fresh: Duration::from_secs(3600),
        stale_if_error: Duration::from_secs(3600),
    };
    for i in 0..ENTRIES {
        let mut head = ResponseHead::new(200);
        head.headers.push("Content-Type", "text/plain");
        head.headers.push("Cache-Control", "max-age=3600");
        head.headers.push("ETag", format!("\"{i}\""));
        let key = format!("example.com/object/{i}");
        cache.insert(Entry::new(
            key,
            head,
            body.clone(),
            SystemTime::now(),
            lifetime,
            &Settings::default(),
        ));
    }

    let started = Instant::now();
    let stats = timer::snapshot(&cache, &path).expect("write the snapshot");
    let wrote = started.elapsed();
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());

    let fresh = Cache::new(capacity, capacity);
    let started = Instant::now();
    let settings = Settings::default();
    let loaded = timer::load(&fresh, &path, |_| Some(&settings));
    let load = started.elapsed();
    let _ = std::fs::remove_file(&path);

    println!(
        "snapshot of {} entries, {:.1} MiB on disk: written (with fsync and rename) in {:.0} ms, loaded ({} entries) in {:.0} ms",
        stats.records,
        size as f64 / (1 << 20) as f64,
        wrote.as_secs_f64() * 1000.0,
        loaded,
        load.as_secs_f64() * 1000.0
    );
}
