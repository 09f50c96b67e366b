//! `include = <file or pattern>`: more of the configuration read from
//! other files, as nginx's `include conf.d/*.conf;`, so that each site
//! keeps a file of its own and a secret can live in a file only the
//! proxy's user reads.
//!
//! A path is taken relative to the directory of the file that names it.
//! `*` and `?` may stand in the file name (not in a directory's): the
//! files they match are read in the order of their names, a name starting
//! with a dot only by a pattern starting with one, and a pattern that
//! matches nothing (or a directory that is not there) reads nothing; a
//! file named without them must exist.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The longest chain of files each included by the one before (the main
/// file first): a cycle is found before it, but a configuration this deep
/// is a mistake too.
pub(super) const MAX_DEPTH: usize = 8;
/// The most files one configuration is read from.
pub(super) const MAX_FILES: usize = 1024;

/// A file an `include` line names, with its text.
pub struct Included {
    /// As lines are reported against: the path as written, from the
    /// directory of the file that includes it.
    pub name: String,
    /// Equal for two names of the same file (a cycle's test).
    pub identity: String,
    pub text: String,
}

/// Where `include` lines find their files: the disk ([`OnDisk`]), or a
/// test's files in memory.
pub trait IncludeSource {
    /// What the file named `name` is, for telling whether it is being
    /// read already.
    fn identity(&self, name: &str) -> String;
    /// The files `pattern`, written in the file `from`, names, in the
    /// order they are read; why not, otherwise.
    fn read(&mut self, from: &str, pattern: &str) -> Result<Vec<Included>, String>;
}

/// Files read from the disk, as the binary reads them.
pub struct OnDisk;

impl IncludeSource for OnDisk {
    fn identity(&self, name: &str) -> String {
        // Canonical, so that `./a.conf` and `a.conf` are one file; a name
        // that cannot be made so (gone since) stands for itself.
        std::fs::canonicalize(name).map_or_else(|_| name.to_string(), |p| p.display().to_string())
    }

    fn read(&mut self, from: &str, pattern: &str) -> Result<Vec<Included>, String> {
        let (dir, file) = resolve(from, pattern)?;
        let names = if has_wildcards(&file) {
            let listed = match std::fs::read_dir(dir_or_here(&dir)) {
                // No directory, no file the pattern matches, as a glob
                // finds none: `conf.d` made when the first site comes.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                listed => listed.map_err(|e| format!("cannot list {}: {e}", shown(&dir)))?,
            };
            let mut names = Vec::new();
            for entry in listed {
                let entry = entry.map_err(|e| format!("cannot list {}: {e}", shown(&dir)))?;
                // A directory (or a socket) a pattern happens to match
                // is not a configuration file; a link to one is followed.
                let is_file = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file());
                if let (Some(name), true) = (entry.file_name().to_str(), is_file) {
                    names.push(name.to_string());
                }
            }
            chosen(&file, names)
        } else {
            vec![file]
        };
        // Bounded before all is read: a pattern that names a directory of
        // something else is refused without reading it whole.
        if names.len() > MAX_FILES {
            return Err(format!("matches more than {MAX_FILES} files"));
        }
        let mut files = Vec::with_capacity(names.len());
        let mut bytes = 0;
        for name in names {
            let path = dir.join(&name);
            let text = super::load::read_config_file(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            bytes += text.len() as u64;
            if bytes > super::load::MAX_CONFIG_BYTES {
                return Err(format!("more than {} bytes", super::load::MAX_CONFIG_BYTES));
            }
            let name = path.display().to_string();
            files.push(Included {
                identity: self.identity(&name),
                name,
                text,
            });
        }
        Ok(files)
    }
}

/// Files in memory by path, found as [`OnDisk`] finds them on the disk:
/// for tests, and for fuzzing the loader without reading the disk.
#[doc(hidden)]
pub struct InMemory(pub BTreeMap<String, String>);

impl IncludeSource for InMemory {
    fn identity(&self, name: &str) -> String {
        name.to_string()
    }

    fn read(&mut self, from: &str, pattern: &str) -> Result<Vec<Included>, String> {
        let (dir, file) = resolve(from, pattern)?;
        let in_dir = (self.0.keys())
            .map(Path::new)
            .filter(|path| path.parent() == Some(dir.as_path()))
            .filter_map(|path| path.file_name()?.to_str().map(String::from));
        let names = match has_wildcards(&file) {
            true => chosen(&file, in_dir.collect()),
            false => vec![file],
        };
        let read = |name: String| {
            let name = dir.join(name).display().to_string();
            match self.0.get(&name) {
                Some(text) => Ok(Included {
                    identity: name.clone(),
                    text: text.clone(),
                    name,
                }),
                None => Err(format!("cannot read {name}: No such file or directory")),
            }
        };
        names.into_iter().map(read).collect()
    }
}

/// `pattern` read from the file `from`: the directory it names (from
/// `from`'s, unless absolute) and the file name, wildcards and all.
pub(super) fn resolve(from: &str, pattern: &str) -> Result<(PathBuf, String), String> {
    if pattern.is_empty() {
        return Err("a file, or a pattern of files (`conf.d/*.conf`), is needed".into());
    }
    let written = Path::new(pattern);
    let file = match written.file_name().and_then(|name| name.to_str()) {
        Some(file) if !pattern.ends_with('/') => file.to_string(),
        _ => return Err("names a directory: name its files (`conf.d/*.conf`)".into()),
    };
    let dir = written.parent().unwrap_or(Path::new(""));
    if has_wildcards(&dir.display().to_string()) {
        return Err("`*` and `?` are taken in the file name only, not in a directory's".into());
    }
    let base = Path::new(from).parent().unwrap_or(Path::new(""));
    // Joined with nothing, a path would gain a trailing slash.
    match dir.as_os_str().is_empty() {
        true => Ok((base.to_path_buf(), file)),
        false => Ok((base.join(dir), file)),
    }
}

fn dir_or_here(dir: &Path) -> &Path {
    match dir.as_os_str().is_empty() {
        true => Path::new("."),
        false => dir,
    }
}

fn shown(dir: &Path) -> String {
    dir_or_here(dir).display().to_string()
}

pub(super) fn has_wildcards(text: &str) -> bool {
    text.contains(['*', '?'])
}

/// The names of `names` that `pattern` matches, in order: a hidden one
/// (`.site.conf.swp`) only by a pattern that starts with a dot, as a
/// shell's glob.
pub(super) fn chosen(pattern: &str, mut names: Vec<String>) -> Vec<String> {
    names.retain(|name| {
        (pattern.starts_with('.') || !name.starts_with('.')) && matches(pattern, name)
    });
    names.sort_unstable();
    names
}

/// Whether `name` matches `pattern`, where `*` stands for any run of
/// characters and `?` for one.
pub(super) fn matches(pattern: &str, name: &str) -> bool {
    let (pattern, name): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), name.chars().collect());
    let (mut p, mut n) = (0, 0);
    // Where the last `*` was, and the name's position it stood for up to:
    // on a mismatch the star takes one more character and matching goes on.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == '?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((at, upto)) => {
                    star = Some((at, upto + 1));
                    p = at + 1;
                    n = upto + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigError, Loader};

    /// `proxy.conf` holding `main`, beside `files` (path, text), loaded.
    fn load(main: &str, files: &[(&str, &str)]) -> Result<Loader, ConfigError> {
        let files = files.iter().map(|(p, t)| (p.to_string(), t.to_string()));
        let mut source = InMemory(files.collect());
        let mut loader = Loader::new();
        loader.file_including("proxy.conf", main, &mut source)?;
        Ok(loader)
    }

    fn error(main: &str, files: &[(&str, &str)]) -> String {
        match load(main, files) {
            Ok(_) => panic!("taken: {main}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn included_files_are_read_in_order_where_the_include_stands() {
        let loader = load(
            "port = 9000\ninclude = conf.d/*.conf\ninclude = secrets/keys.conf\n",
            &[
                ("conf.d/b-api.conf", "route./api = api\n"),
                (
                    "conf.d/a-pools.conf",
                    "\u{feff}pool.api = 127.0.0.1:9002\ntargets = 127.0.0.1:9001\n",
                ),
                ("conf.d/.a-pools.conf.swp", "nonsense\n"),
                ("conf.d/notes.txt", "nonsense\n"),
                ("secrets/keys.conf", "secure_link_secret = s3cret\n"),
            ],
        )
        .unwrap();
        assert_eq!(
            loader.files_read(),
            [
                "proxy.conf",
                "conf.d/a-pools.conf",
                "conf.d/b-api.conf",
                "secrets/keys.conf"
            ]
        );
        let origin = |key: &str| loader.settings[key].origin.to_string();
        assert_eq!(origin("port"), "proxy.conf:1");
        assert_eq!(origin("targets"), "conf.d/a-pools.conf:2");
        assert_eq!(origin("secure_link_secret"), "secrets/keys.conf:1");
        let config = loader.build().unwrap();
        assert_eq!(config.port, 9000);
        assert_eq!(config.secure_link_secret.as_deref(), Some("s3cret"));
        assert_eq!(
            config.pools.len(),
            1,
            "the pool of one file, routed to by another"
        );
        assert_eq!(config.routes.iter().count(), 1);
    }

    #[test]
    fn an_include_reads_from_the_directory_of_the_file_that_names_it() {
        let loader = load(
            "include = sites/main.conf\n",
            &[
                ("sites/main.conf", "include = more/*.conf\n"),
                ("sites/more/t.conf", "targets = 127.0.0.1:9001\n"),
            ],
        )
        .unwrap();
        assert_eq!(
            loader.settings["targets"].origin.to_string(),
            "sites/more/t.conf:1"
        );
    }

    #[test]
    fn a_pattern_that_matches_nothing_reads_nothing_and_a_missing_file_is_an_error() {
        let loader = load("targets = 127.0.0.1:1\ninclude = conf.d/*.conf\n", &[]).unwrap();
        assert_eq!(loader.files_read(), ["proxy.conf"]);
        assert_eq!(
            error("targets = 127.0.0.1:1\ninclude = conf.d/site.conf\n", &[]),
            "proxy.conf:2: include conf.d/site.conf: cannot read conf.d/site.conf: No such file or directory"
        );
        assert_eq!(
            error("include =\n", &[]),
            "proxy.conf:1: include : a file, or a pattern of files (`conf.d/*.conf`), is needed"
        );
    }

    #[test]
    fn an_error_names_the_included_file_and_its_line() {
        let files = [("conf.d/a.conf", "targets = 127.0.0.1:1\nprot = 80\n")];
        let e = error("include = conf.d/a.conf\n", &files);
        assert!(e.starts_with("conf.d/a.conf:2: unknown key `prot`"), "{e}");
    }

    #[test]
    fn a_key_set_in_two_files_names_where_it_was_first_set() {
        let files = [("conf.d/a.conf", "\ntargets = 127.0.0.1:2\n")];
        assert_eq!(
            error("targets = 127.0.0.1:1\ninclude = conf.d/a.conf\n", &files),
            "conf.d/a.conf:2: duplicate key `targets` (first set at proxy.conf:1)"
        );
        let files = [
            ("a.conf", "pool.x = 127.0.0.1:2\n"),
            ("b.conf", "pool.x = 127.0.0.1:3\n"),
        ];
        assert_eq!(
            error("include = *.conf\n", &files),
            "b.conf:1: duplicate key `pool.x` (first set at a.conf:1)"
        );
        // In one file, as before.
        assert_eq!(
            error("port = 1\nport = 2\n", &[]),
            "proxy.conf:2: duplicate key `port` (first set on line 1)"
        );
    }

    #[test]
    fn a_cycle_and_a_chain_too_deep_are_refused() {
        let files = [
            ("a.conf", "include = b.conf\n"),
            ("b.conf", "include = a.conf\n"),
        ];
        assert_eq!(
            error("include = a.conf\n", &files),
            "b.conf:1: include a.conf: a.conf is being read already (an include cycle)"
        );
        let e = error("include = proxy.conf\n", &[("proxy.conf", "")]);
        assert!(
            e.ends_with("proxy.conf is being read already (an include cycle)"),
            "{e}"
        );
        // proxy.conf, then 1.conf to 7.conf, each including the next:
        // 8 files deep, and 8.conf one too many.
        let chain: Vec<(String, String)> = (1..=8)
            .map(|n| (format!("{n}.conf"), format!("include = {}.conf\n", n + 1)))
            .chain([("9.conf".to_string(), "targets = 127.0.0.1:1\n".to_string())])
            .collect();
        let files: Vec<(&str, &str)> = chain
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        assert_eq!(
            error("include = 1.conf\n", &files),
            "7.conf:1: include 8.conf: files include files more than 8 deep"
        );
        let mut shorter = files.clone();
        shorter[6].1 = "targets = 127.0.0.1:1\n";
        assert!(load("include = 1.conf\n", &shorter).is_ok());
    }

    #[test]
    fn include_is_a_line_of_a_file_not_a_variable() {
        let mut loader = load("targets = 127.0.0.1:1\n", &[]).unwrap();
        loader.env([("INVERSO_INCLUDE".to_string(), "conf.d/*.conf".to_string())]);
        assert_eq!(loader.files_read(), ["proxy.conf"]);
        assert!(loader.build().is_ok());
        let flag = loader.flag("include", "conf.d/*.conf", "--set");
        assert_eq!(
            flag.err().map(|e| e.to_string()).as_deref(),
            Some("flag --set: `include` is read from the configuration file only")
        );
    }

    #[test]
    fn stars_and_question_marks_match_as_a_shell_does() {
        for (pattern, name) in [
            ("*.conf", "site.conf"),
            ("*.conf", ".conf"),
            ("site-?.conf", "site-a.conf"),
            ("*", "x"),
            ("a*b*c", "aXbYbZc"),
            ("**.conf", "a.conf"),
            ("exact.conf", "exact.conf"),
            ("*é*", "café.conf"),
        ] {
            assert!(matches(pattern, name), "{pattern} {name}");
        }
        for (pattern, name) in [
            ("*.conf", "site.conf.bak"),
            ("site-?.conf", "site-ab.conf"),
            ("site-?.conf", "site-.conf"),
            ("a*b*c", "aXbYc-"),
            ("exact.conf", "exact.con"),
            ("", "x"),
        ] {
            assert!(!matches(pattern, name), "{pattern} {name}");
        }
    }

    #[test]
    fn hidden_files_are_left_out_unless_the_pattern_names_them_and_the_rest_is_sorted() {
        let names = ["b.conf", ".a.conf.swp", "a.conf", ".hidden.conf", "c.txt"];
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        assert_eq!(chosen("*.conf", names.clone()), ["a.conf", "b.conf"]);
        assert_eq!(chosen(".*.conf", names), [".hidden.conf"]);
    }

    #[test]
    fn a_path_is_read_from_the_including_files_directory() {
        let resolved =
            |from, pattern| resolve(from, pattern).map(|(d, f)| (d.display().to_string(), f));
        assert_eq!(
            resolved("proxy.conf", "conf.d/*.conf"),
            Ok(("conf.d".into(), "*.conf".into()))
        );
        assert_eq!(
            resolved("/etc/inverso/proxy.conf", "sites/a.conf"),
            Ok(("/etc/inverso/sites".into(), "a.conf".into()))
        );
        assert_eq!(
            resolved("/etc/inverso/proxy.conf", "/run/secrets/keys.conf"),
            Ok(("/run/secrets".into(), "keys.conf".into()))
        );
        assert_eq!(
            resolved("conf.d/a.conf", "b.conf"),
            Ok(("conf.d".into(), "b.conf".into()))
        );
        assert_eq!(
            resolved("a.conf", "b.conf"),
            Ok(("".into(), "b.conf".into()))
        );
        for bad in ["", "conf.d/", "*/site.conf", "..", "sites/.."] {
            assert!(resolved("proxy.conf", bad).is_err(), "{bad}");
        }
    }

    /// Files in all past 16 MiB refuse the include, the bound itself not.
    #[test]
    fn the_files_of_a_configuration_are_bounded_in_bytes_in_all() {
        let main = "include = big.conf\n";
        let bound = crate::config::load::MAX_CONFIG_BYTES as usize;
        let big = format!("#{}", "-".repeat(bound - main.len() - 1));
        let loader = load(main, &[("big.conf", &big)]).unwrap();
        assert_eq!(loader.files_read(), ["proxy.conf", "big.conf"]);
        let e = error(main, &[("big.conf", &format!("{big}-"))]);
        assert!(
            e.starts_with("proxy.conf:1: include big.conf: more than"),
            "{e}"
        );
    }

    /// A directory of `name`s (and texts) made on the disk, its path.
    fn on_disk(files: &[(&str, &str)]) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let path = dir.path().display().to_string();
        (dir, path)
    }

    #[test]
    fn on_the_disk_a_pattern_reads_the_files_it_matches_in_order() {
        let (_dir, at) = on_disk(&[
            ("conf.d/b.conf", "port = 2\n"),
            ("conf.d/a.conf", "port = 1\n"),
            ("conf.d/.a.conf.swp", "nonsense\n"),
            ("conf.d/old.conf/x", "nonsense\n"),
            ("keys.conf", "secure_link_secret = s\n"),
        ]);
        let from = format!("{at}/proxy.conf");
        let read = OnDisk.read(&from, "conf.d/*.conf").unwrap();
        let names: Vec<&str> = read.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [format!("{at}/conf.d/a.conf"), format!("{at}/conf.d/b.conf")]
        );
        assert_eq!(read[1].text, "port = 2\n");
        let canonical = std::fs::canonicalize(&read[0].name).unwrap();
        assert_eq!(read[0].identity, canonical.display().to_string());
        assert_eq!(
            OnDisk.identity(&format!("{at}/conf.d/./a.conf")),
            read[0].identity
        );
        assert_ne!(read[0].identity, read[1].identity);
        let read = OnDisk.read(&from, "keys.conf").unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].text, "secure_link_secret = s\n");
    }

    #[test]
    fn on_the_disk_a_missing_directory_matches_nothing_and_a_file_is_no_directory() {
        let (_dir, at) = on_disk(&[("a.conf", "port = 1\n")]);
        let from = format!("{at}/proxy.conf");
        assert!(OnDisk.read(&from, "none.d/*.conf").unwrap().is_empty());
        let e = OnDisk.read(&from, "a.conf/*.conf").err().unwrap();
        assert!(e.starts_with(&format!("cannot list {at}/a.conf: ")), "{e}");
        assert!(OnDisk.read(&from, "none.conf").is_err());
    }

    #[test]
    fn on_the_disk_the_files_a_pattern_matches_are_bounded_in_count() {
        let names: Vec<String> = (0..=MAX_FILES).map(|n| format!("{n:04}.conf")).collect();
        let files: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "")).collect();
        let (_dir, at) = on_disk(&files);
        let from = format!("{at}/proxy.conf");
        let e = OnDisk.read(&from, "*.conf").err().unwrap();
        assert_eq!(e, format!("matches more than {MAX_FILES} files"));
        std::fs::remove_file(format!("{at}/0000.conf")).unwrap();
        assert_eq!(OnDisk.read(&from, "*.conf").unwrap().len(), MAX_FILES);
    }

    #[test]
    fn on_the_disk_the_files_a_pattern_matches_are_bounded_in_bytes() {
        let half = crate::config::load::MAX_CONFIG_BYTES as usize / 2;
        let text = format!("#{}", "-".repeat(half - 1));
        let (_dir, at) = on_disk(&[("a.conf", &text), ("b.conf", &text)]);
        let from = format!("{at}/proxy.conf");
        assert_eq!(OnDisk.read(&from, "*.conf").unwrap().len(), 2);
        std::fs::write(format!("{at}/b.conf"), format!("{text}-")).unwrap();
        let e = OnDisk.read(&from, "*.conf").err().unwrap();
        assert!(e.starts_with("more than "), "{e}");
    }
}
