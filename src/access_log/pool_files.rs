//! Each pool's own file (`pool.<name>.path_to_log`): the lines of the
//! requests routed to that pool, besides the main log's (stdout,
//! `path_to_log`, syslog), which keeps every line.

use super::sink::{open_log_file, Sink};
use crate::config::{log_key, same_file, Config};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// A pool's own log file, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolFile {
    pub pool: Arc<str>,
    pub path: PathBuf,
}

impl PoolFile {
    /// The files `config`'s pools set, in the file's order: at most one a
    /// pool, so at most `MAX_POOLS`.
    pub fn all_of(config: &Config) -> Vec<PoolFile> {
        (config.pools.iter())
            .filter_map(|p| {
                Some(PoolFile {
                    pool: p.name.clone(),
                    path: p.path_to_log.clone()?,
                })
            })
            .collect()
    }

    /// The key that names the file, for messages.
    pub fn key(&self) -> String {
        log_key(Some(&self.pool))
    }

    /// Opens the file as `path_to_log`'s is opened; an error names the key.
    pub fn open(&self) -> io::Result<File> {
        open_log_file(&self.path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.key())))
    }
}

/// The pools' files, open: each file once, however many pools share it,
/// so that their lines go out in one write a batch, as the main file's do.
#[derive(Default)]
pub(super) struct PoolSinks {
    sinks: Vec<Sink<File>>,
    /// Each pool with a file of its own, and that file's place in `sinks`.
    by_pool: HashMap<Arc<str>, usize>,
}

impl PoolSinks {
    /// Opens every file, or none: one that cannot be opened fails them
    /// all, so that a reload refused keeps the files in use as they were.
    pub(super) fn open(files: &[PoolFile]) -> io::Result<PoolSinks> {
        let mut open = PoolSinks::default();
        let mut paths: Vec<&Path> = Vec::new();
        for file in files {
            let at = match paths.iter().position(|p| same_file(p, &file.path)) {
                Some(at) => at,
                None => {
                    let sink = Sink::for_file(&file.path, file.open()?).named(file.key());
                    open.sinks.push(sink);
                    paths.push(&file.path);
                    paths.len() - 1
                }
            };
            open.by_pool.insert(file.pool.clone(), at);
        }
        Ok(open)
    }

    /// Adds `line` to the file of `pool`, if it has one.
    pub(super) fn write(&mut self, pool: Option<&str>, line: &[u8], lost: &AtomicU64) {
        let at = pool.and_then(|p| self.by_pool.get(p)).copied();
        if let Some(sink) = at.and_then(|at| self.sinks.get_mut(at)) {
            sink.write(line, lost);
        }
    }

    pub(super) fn flush(&mut self, lost: &AtomicU64) {
        for sink in &mut self.sinks {
            sink.flush(lost);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    fn file(pool: &str, path: &Path) -> PoolFile {
        PoolFile {
            pool: pool.into(),
            path: path.to_path_buf(),
        }
    }

    #[test]
    fn two_pools_sharing_a_file_open_it_once_and_others_go_nowhere() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shop.log");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let spelled_otherwise = dir.path().join("sub/../shop.log");
        let own = dir.path().join("api.log");
        let files = [
            file("web", &shared),
            file("api", &own),
            file("img", &spelled_otherwise),
        ];
        let mut sinks = PoolSinks::open(&files).unwrap();
        assert_eq!(sinks.sinks.len(), 2);
        let lost = AtomicU64::new(0);
        for pool in [Some("web"), Some("api"), Some("img"), Some("other"), None] {
            let line = format!("{}\n", pool.unwrap_or("-"));
            sinks.write(pool, line.as_bytes(), &lost);
        }
        sinks.flush(&lost);
        assert_eq!(std::fs::read_to_string(&shared).unwrap(), "web\nimg\n");
        assert_eq!(std::fs::read_to_string(&own).unwrap(), "api\n");
        assert_eq!(lost.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn one_file_that_cannot_be_opened_fails_them_all_naming_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            file("web", &dir.path().join("web.log")),
            file("api", &dir.path().join("missing/api.log")),
        ];
        let e = PoolSinks::open(&files).err().unwrap().to_string();
        assert!(e.starts_with("pool.api.path_to_log: cannot open "), "{e}");
    }
}
