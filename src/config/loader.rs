//! The [`Loader`]: raw values from the file, the environment and flags,
//! each over the one before, built into a typed [`Config`].

use super::expand::{expand, Environment};
use super::include::{IncludeSource, OnDisk, MAX_DEPTH, MAX_FILES};
use super::keys::find_key;
use super::listeners::listeners_overlap;
use super::load::MAX_CONFIG_BYTES;
use super::pools::{PoolKey, RouteKey, Scope};
use super::rewrites::RuleKeys;
use super::streams::StreamKey;
use super::suggest::{file_only, file_only_keys, unknown_key_message, FILE_ONLY};
use super::{
    first_set, Config, ConfigError, FieldFamily, FieldKey, LastAddresses, LogFormat, Origin,
    UnresolvedTargets, KEYS,
};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// TLS settings for backends, and the keys they were made of.
type BackendTlsMade = (
    crate::tls::backends::BackendTlsKeys,
    Arc<rustls::ClientConfig>,
);

/// A value and where it came from.
#[derive(Clone, Debug)]
pub struct Setting {
    pub value: String,
    pub origin: Origin,
}

/// Collects raw values from the sources in increasing precedence, then
/// builds the typed [`Config`]. Later sources override earlier ones.
#[derive(Clone, Debug)]
pub struct Loader {
    pub(super) settings: BTreeMap<&'static str, Setting>,
    /// The `request_header.<Name>` and `response_header.<Name>` keys, in
    /// the file's order.
    pub(super) field_keys: Vec<FieldKey>,
    /// The `pool.*` keys, in the file's order, but for the next.
    pub(super) pool_keys: Vec<PoolKey>,
    /// The `pool.<name>.request_header.<Name>` and
    /// `pool.<name>.response_header.<Name>` keys: each with its pool.
    pub(super) pool_field_keys: Vec<(String, FieldKey)>,
    /// The `route.*` keys, in the file's order.
    pub(super) route_keys: Vec<RouteKey>,
    /// The `rewrite.*` keys, in the file's order.
    pub(super) rewrite_keys: RuleKeys,
    /// The `deny.*` keys, in the file's order.
    pub(super) deny_keys: RuleKeys,
    /// The `stream.*` keys, in the file's order.
    pub(super) stream_keys: Vec<StreamKey>,
    /// The file name whole-file errors are reported against.
    pub(super) file: String,
    /// Whether a file was read (else defaults, environment and flags only).
    pub(super) file_read: bool,
    /// The files read, the main one first, then those it includes in the
    /// order read.
    pub(super) files: Vec<String>,
    /// The TLS settings for backends as made, by the keys they were made
    /// of: one for every pool that sets none of its own, so their files
    /// are read, and their sessions kept, once.
    pub(super) backend_tls: std::cell::RefCell<Vec<BackendTlsMade>>,
    /// At a reload, the addresses of the names in force (see
    /// [`Loader::keep_last_addresses`]).
    last_addresses: LastAddresses,
    /// The variables given to [`Loader::variables`], which a file's
    /// `{$NAME}` reads.
    environment: Environment,
}

impl Default for Loader {
    fn default() -> Self {
        Self::new()
    }
}

impl Loader {
    /// Starts with every key at its default.
    pub fn new() -> Self {
        let settings = KEYS
            .iter()
            .map(|k| {
                let s = Setting {
                    value: k.default.to_string(),
                    origin: Origin::Default,
                };
                (k.name, s)
            })
            .collect();
        Loader {
            settings,
            field_keys: Vec::new(),
            pool_keys: Vec::new(),
            pool_field_keys: Vec::new(),
            route_keys: Vec::new(),
            rewrite_keys: RuleKeys::rewrites(),
            deny_keys: RuleKeys::denials(),
            stream_keys: Vec::new(),
            file: "configuration".to_string(),
            file_read: false,
            files: Vec::new(),
            backend_tls: Default::default(),
            last_addresses: LastAddresses::default(),
            environment: Environment::default(),
        }
    }

    /// The file read, or `configuration` when none was (defaults,
    /// environment and flags only).
    pub fn source(&self) -> &str {
        &self.file
    }

    /// Whether a configuration file was read.
    pub fn read_a_file(&self) -> bool {
        self.file_read
    }

    /// Reads proxy.conf text: `key = value` lines, `#` comments and blank
    /// lines ignored. Unknown and repeated keys are errors. The files its
    /// `include` lines name are read from the disk, from `path`'s
    /// directory. A value's `{$NAME}` is the variable NAME of those given
    /// to [`Loader::variables`] before.
    pub fn file(&mut self, path: &str, text: &str) -> Result<&mut Self, ConfigError> {
        self.file_including(path, text, &mut OnDisk)
    }

    /// [`Loader::file`], with the files `include` lines name taken from
    /// `source`.
    pub fn file_including(
        &mut self,
        path: &str,
        text: &str,
        source: &mut dyn IncludeSource,
    ) -> Result<&mut Self, ConfigError> {
        self.file = path.to_string();
        self.file_read = true;
        self.files = vec![path.to_string()];
        let mut reading = Reading {
            seen: BTreeMap::new(),
            within: vec![source.identity(path)],
            bytes: text.len(),
        };
        self.lines(path, text, source, &mut reading)?;
        Ok(self)
    }

    /// The files read, the main one first (none when no file was).
    pub fn files_read(&self) -> &[String] {
        &self.files
    }

    /// Takes the lines of `text`, read from the file `path`.
    fn lines(
        &mut self,
        path: &str,
        text: &str,
        source: &mut dyn IncludeSource,
        reading: &mut Reading,
    ) -> Result<(), ConfigError> {
        // Some editors start a UTF-8 file with a byte order mark.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, raw) in text.lines().enumerate() {
            let origin = Origin::File {
                path: path.to_string(),
                line: index + 1,
            };
            let content = strip_comment(raw).trim();
            if content.is_empty() {
                continue;
            }
            let Some((key, value)) = content.split_once('=') else {
                return Err(ConfigError::at(
                    &origin,
                    format!("expected `key = value`, found `{content}`"),
                ));
            };
            let key = key.trim();
            let value = self.expanded(value.trim(), &origin, reading)?;
            let value = value.as_ref();
            if key == "include" {
                self.include((path, value), &origin, source, reading)?;
                continue;
            }
            if let Some((family, name)) = FieldFamily::of(key) {
                self.field_key(family, name, value, origin)?;
                continue;
            }
            if let Some(rest) = key.strip_prefix("pool.") {
                self.pool_key(rest, value, origin)?;
                continue;
            }
            if let Some(spec) = key.strip_prefix("route.") {
                self.route_key(spec.trim(), value, origin)?;
                continue;
            }
            if let Some(name) = key.strip_prefix("rewrite.") {
                self.rewrite_keys.take(name, value, origin)?;
                continue;
            }
            if let Some(name) = key.strip_prefix("deny.") {
                self.deny_keys.take(name, value, origin)?;
                continue;
            }
            if let Some(name) = key.strip_prefix("stream.") {
                self.stream_key(name, value, origin)?;
                continue;
            }
            let Some(spec) = find_key(key) else {
                return Err(ConfigError::at(&origin, unknown_key_message(key)));
            };
            if let Some(first) = reading.seen.get(spec.name) {
                return Err(ConfigError::at(
                    &origin,
                    format!("duplicate key `{key}`{}", first_set(first, &origin)),
                ));
            }
            reading.seen.insert(spec.name, origin.clone());
            self.put(spec.name, value, origin);
        }
        Ok(())
    }

    /// `value`, read at `origin`, with its `{$NAME}`s expanded (and
    /// trimmed again, as any value is, for what a variable holds).
    fn expanded<'v>(
        &self,
        value: &'v str,
        origin: &Origin,
        reading: &mut Reading,
    ) -> Result<Cow<'v, str>, ConfigError> {
        let expanded =
            expand(value, &self.environment).map_err(|e| ConfigError::at(origin, e.to_string()))?;
        // A variable may hold far more than its reference takes: the
        // bound on a configuration's bytes is on what is parsed.
        reading.bytes += expanded.len().saturating_sub(value.len());
        if reading.bytes as u64 > MAX_CONFIG_BYTES {
            let why = format!(
                "with environment variables expanded, more than {MAX_CONFIG_BYTES} bytes in all: \
                 not a configuration"
            );
            return Err(ConfigError::at(origin, why));
        }
        Ok(match expanded {
            Cow::Borrowed(value) => Cow::Borrowed(value),
            Cow::Owned(value) => Cow::Owned(value.trim().to_string()),
        })
    }

    /// Reads the files `pattern`, written in the file `path` at `origin`,
    /// names, in order.
    fn include(
        &mut self,
        (path, pattern): (&str, &str),
        origin: &Origin,
        source: &mut dyn IncludeSource,
        reading: &mut Reading,
    ) -> Result<(), ConfigError> {
        let refused = |why: String| ConfigError::at(origin, format!("include {pattern}: {why}"));
        if reading.within.len() >= MAX_DEPTH {
            let why = format!("files include files more than {MAX_DEPTH} deep");
            return Err(refused(why));
        }
        for file in source.read(path, pattern).map_err(refused)? {
            if reading.within.contains(&file.identity) {
                let why = format!("{} is being read already (an include cycle)", file.name);
                return Err(refused(why));
            }
            reading.bytes += file.text.len();
            if self.files.len() >= MAX_FILES || reading.bytes as u64 > MAX_CONFIG_BYTES {
                let why = format!(
                    "more than {MAX_FILES} files or {MAX_CONFIG_BYTES} bytes in all: not a configuration"
                );
                return Err(refused(why));
            }
            self.files.push(file.name.clone());
            reading.within.push(file.identity);
            self.lines(&file.name, &file.text, source, reading)?;
            reading.within.pop();
        }
        Ok(())
    }

    /// Keeps `vars` for the `{$NAME}`s of a file read after (see
    /// [`Loader::file`]); sets no key.
    pub fn variables(&mut self, vars: impl IntoIterator<Item = (String, String)>) -> &mut Self {
        for (var, value) in vars {
            self.environment.set(&var, &value);
        }
        self
    }

    /// Applies `INVERSO_<KEY>` variables. Other variables are ignored
    /// (see [`Loader::variables`]); a value is taken as it is: no
    /// `{$NAME}` in it is read.
    pub fn env(&mut self, vars: impl IntoIterator<Item = (String, String)>) -> &mut Self {
        for (var, value) in vars {
            let Some(rest) = var.strip_prefix("INVERSO_") else {
                continue;
            };
            // One spelling per key: with `INVERSO_port` beside `INVERSO_PORT`
            // the winner would depend on the environment's order.
            if rest != rest.to_ascii_uppercase() {
                log::warn!(
                    "{var}: environment keys are upper case (INVERSO_{}); ignored",
                    rest.to_ascii_uppercase()
                );
                continue;
            }
            let key = rest.to_ascii_lowercase();
            if key == "include" {
                log::warn!("{var}: `include` is read from the configuration file only; ignored");
                continue;
            }
            if let Some(family) = FieldFamily::named_at_start_of(&key) {
                log::warn!("{var}: {}; ignored", file_only(family, &key));
                continue;
            }
            let family = |f: &&str| {
                (key.strip_prefix(*f)).is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
            };
            if FILE_ONLY.iter().any(family) {
                log::warn!("{var}: {}; ignored", file_only_keys(&key));
                continue;
            }
            match find_key(&key) {
                Some(spec) => self.put(spec.name, value.trim(), Origin::Env(var.clone())),
                // Not an error: the environment is shared with other
                // programs. But a misspelt key should not vanish silently.
                None => log::warn!(
                    "{var}: {}; ignored",
                    unknown_key_message(&rest.to_ascii_lowercase())
                ),
            }
        }
        self
    }

    /// Applies a command-line override of one key.
    pub fn flag(&mut self, key: &str, value: &str, flag: &str) -> Result<&mut Self, ConfigError> {
        let origin = Origin::Flag(flag.to_string());
        if key == "include" {
            let why = "`include` is read from the configuration file only";
            return Err(ConfigError::at(&origin, why));
        }
        if let Some((family, _)) = FieldFamily::of(key) {
            return Err(ConfigError::at(&origin, file_only(family, key)));
        }
        if FILE_ONLY
            .iter()
            .any(|f| key.strip_prefix(f).is_some_and(|k| k.starts_with('.')))
        {
            return Err(ConfigError::at(&origin, file_only_keys(key)));
        }
        let Some(spec) = find_key(key) else {
            return Err(ConfigError::at(&origin, unknown_key_message(key)));
        };
        self.put(spec.name, value.trim(), origin);
        Ok(self)
    }

    fn put(&mut self, key: &'static str, value: &str, origin: Origin) {
        self.settings.insert(
            key,
            Setting {
                value: value.to_string(),
                origin,
            },
        );
    }

    /// The value of `key` as written where it was set last (or its
    /// default), not parsed.
    pub fn value_of(&self, key: &str) -> Option<&str> {
        self.settings.get(key).map(|s| s.value.as_str())
    }

    /// Every key with its effective value and origin, in key-table order.
    pub fn effective(&self) -> impl Iterator<Item = (&'static str, &Setting)> {
        KEYS.iter().map(|k| (k.name, &self.settings[k.name]))
    }

    /// For a reload: a name that does not resolve as the file is built
    /// keeps the addresses `last` gives it (those in force, see
    /// `Control::last_addresses`), with a warning, rather than being
    /// refused or kept waiting with none (see [`LastAddresses`]).
    pub fn keep_last_addresses(&mut self, last: LastAddresses) -> &mut Self {
        self.last_addresses = last;
        self
    }

    /// Parses every value into a [`Config`], resolving target names.
    pub fn build(&self) -> Result<Config, ConfigError> {
        let mut config = Config::blank();
        config.last_addresses = self.last_addresses.clone();
        for key in KEYS {
            let setting = &self.settings[key.name];
            (key.apply)(&mut config, &setting.value)
                .map_err(|m| ConfigError::at(&setting.origin, format!("{}: {m}", key.name)))?;
        }
        config.request_headers = self.field_edits(FieldFamily::Request, &config)?;
        config.response_headers = self.field_edits(FieldFamily::Response, &config)?;
        if config.unresolved_targets == UnresolvedTargets::Wait && config.resolve_interval.is_none()
        {
            return Err(self.refused(
                "unresolved_targets",
                "wait needs resolve_interval (e.g. `resolve_interval = 5s`): a name that does \
                 not resolve would never be looked up again"
                    .into(),
            ));
        }
        if config.targets.is_empty() && config.unresolved.is_empty() {
            let setting = &self.settings["targets"];
            let place = match &setting.origin {
                Origin::Default => self.file.clone(),
                other => other.to_string(),
            };
            return Err(ConfigError {
                place,
                message: "targets: at least one backend is required, e.g. `targets = 127.0.0.1:9001, 127.0.0.1:9002`".to_string(),
            });
        }
        // Both listeners on one port: caught here rather than as a bind
        // error once `check` has said the configuration is fine (port 0
        // asks the system for a free port, a different one each).
        if config.admin_port == Some(config.port)
            && config.port != 0
            && listeners_overlap(config.admin_bind, config.bind)
        {
            return Err(self.refused("admin_port", format!("{} is also `port`", config.port)));
        }
        self.check_listen(&config)?;
        self.check_tls(&mut config)?;
        self.backend_tls_for(&mut config, Scope::Top)?;
        self.check_backends(&config, Scope::Top)?;
        // An object larger than the whole cache could never be stored: the
        // setting would silently mean less than it says.
        if let Some(max) = config
            .max_object_size
            .filter(|&m| config.cache_size > 0 && m > config.cache_size)
        {
            return Err(self.refused(
                "max_object_size",
                format!(
                    "{max} bytes is more than cache_size ({} bytes); an object larger than the cache cannot be stored",
                    config.cache_size
                ),
            ));
        }
        if let Some(why) = config.snapshot_leaves_out() {
            log::warn!("{}", self.refused("max_object_size", why));
        }
        if let Some((key, why)) = config.set_in_vain().first() {
            return Err(self.refused(key, why.to_string()));
        }
        if let Some(why) = config.rate_limit_key_unread() {
            return Err(self.refused("rate_limit_key", why));
        }
        self.check_cache(&config, Scope::Top, None)?;
        self.check_auth(&config, Scope::Top)?;
        self.check_request_buffer_dir(&config, Scope::Top)?;
        // Spans are of traced requests alone: with none, none would go.
        if config.otel_exporter.is_some()
            && config.trace_context == crate::trace_context::TraceMode::Off
        {
            let why = "sends the spans of traced requests: set trace_context (propagate)";
            return Err(self.refused("otel_exporter", why.into()));
        }
        config.rewrites = Arc::new(self.build_rewrites()?);
        config.deny = Arc::new(self.build_denials(config.geoip.is_some())?);
        self.build_pools(&mut config)?;
        self.check_https_redirect(&config)?;
        // Once the pools, with their own log files and formats, are built.
        // The heads would be copied at every request and never written.
        let template = |f: &LogFormat| matches!(f, LogFormat::Template(_));
        if config.log_headers && config.log_formats().all(template) {
            return Err(self.refused(
                "log_headers",
                "adds the heads to combined and json lines; a log_format template writes \
                 only what it names (a request field as $http_<name>)"
                    .into(),
            ));
        }
        if let Some(why) = config.state_file_shared() {
            return Err(self.refused("state_file", why));
        }
        if let Some((pool, why)) = config.log_file_refused() {
            let scope = pool.map_or(Scope::Top, Scope::Pool);
            return Err(self.refused_in(scope, "path_to_log", why));
        }
        // Read by `targets` alone: no stale addresses ride along.
        config.last_addresses = LastAddresses::default();
        for pool in &mut config.pools {
            pool.config.last_addresses = LastAddresses::default();
        }
        Ok(config)
    }
}

/// What reading a file and the files it includes keeps track of.
struct Reading {
    /// Where each key was set, for the one set twice.
    seen: BTreeMap<&'static str, Origin>,
    /// The files being read, the one including the next first: a file
    /// among them included again would be read without end.
    within: Vec<String>,
    /// Bytes read in all.
    bytes: usize,
}

/// `#` starts a comment anywhere on a line (values never contain `#`).
fn strip_comment(line: &str) -> &str {
    line.split_once('#').map_or(line, |(before, _)| before)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::build;
    use std::time::Duration;

    #[test]
    fn reads_keys_comments_and_blank_lines() {
        let c = build(
            "# a comment\n\nport = 9000\nbalance = least_conn\ntargets = 127.0.0.1:1, [::1]:2 weight=3 # trailing\ncache_size = 2MiB\nttl = 90s\npath_to_persistence =\n",
        )
        .unwrap();
        assert_eq!(c.port, 9000);
        assert_eq!(c.targets.len(), 2);
        assert_eq!(c.targets[1].weight, 3);
        assert_eq!(c.targets[1].addr.tcp(), "[::1]:2".parse().ok());
        assert_eq!(c.cache_size, 2 << 20);
        assert_eq!(c.ttl, Duration::from_secs(90));
        assert_eq!(c.path_to_persistence, None);
        assert_eq!(c.connection_timeout, Duration::from_secs(30));
        assert_eq!(c.path_to_log, None);
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_key() {
        let c = build("\u{feff}targets = 127.0.0.1:1\nport = 81\n").unwrap();
        assert_eq!(c.port, 81);
    }

    #[test]
    fn errors_name_the_line() {
        let e = build("targets = 127.0.0.1:1\n\nport = http\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        assert!(e.message.contains("port"), "{e}");

        let e = build("targets = 127.0.0.1:1\nprot = 80\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxy.conf:2: unknown key `prot` (did you mean `port`?)"
        );
        let e = build("targets = 127.0.0.1:1\nfoo = 80\n").unwrap_err();
        assert_eq!(e.to_string(), "proxy.conf:2: unknown key `foo`");

        let e = build("targets = 127.0.0.1:1\nport = 1\n# x\nport = 2\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:4");
        assert!(e.message.contains("duplicate"));

        let e = build("port 80\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:1");

        let e = build("port = 80\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf");
        assert!(e.message.contains("targets"));

        let e = build("targets = 127.0.0.1:1\nunit_time = 0\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:2");
        for bad in ["127.0.0.1", "[::1]", "[2001:db8::1]"] {
            let e = build(&format!("targets = {bad}\n")).unwrap_err();
            assert!(e.message.contains("needs a port"), "{bad}: {e}");
        }
        let e = build("targets = 127.0.0.1:1 weight=0\n").unwrap_err();
        assert!(e.message.contains("weight"), "{e}");
        let e = build("targets = 127.0.0.1:1,,127.0.0.1:2\n").unwrap_err();
        assert!(e.message.contains("empty entry"), "{e}");
        let e = build("targets = no-such-host.invalid:80\n").unwrap_err();
        assert!(e.message.contains("does not resolve"), "{e}");
        let e = build("targets = 127.0.0.1:1 weight=2 weight=3\n").unwrap_err();
        assert!(e.message.contains("weight given twice"), "{e}");
        let c = build("targets = 127.0.0.1:1 max_conns=8 backup, 127.0.0.1:2\n").unwrap();
        assert_eq!(
            c.targets.iter().map(|t| t.max_conns).collect::<Vec<_>>(),
            [Some(8), None]
        );
        for bad in [
            "max_conns=0",
            "max_conns=x",
            "max_conns=1 max_conns=2",
            "maxconn=3",
        ] {
            let e = build(&format!("targets = 127.0.0.1:1 {bad}\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:1", "{bad}");
        }
        let c = build("targets = 127.0.0.1:1, 127.0.0.1:2 backup\n").unwrap();
        assert_eq!(
            c.targets.iter().map(|t| t.backup).collect::<Vec<_>>(),
            [false, true]
        );
        let e = build("targets = 127.0.0.1:1, 127.0.0.1:2 backup backup\n").unwrap_err();
        assert!(e.message.contains("backup given twice"), "{e}");
        let e = build("targets = 127.0.0.1:1 backup\n").unwrap_err();
        assert!(e.message.contains("every target is a backup"), "{e}");
        let e = build("targets = 127.0.0.1:1 spare\n").unwrap_err();
        assert!(
            e.message
                .contains("expected weight=N, max_conns=N, backup or down"),
            "{e}"
        );
        // One backend under two names.
        let e = build("targets = 127.0.0.1:1, 127.0.0.1:01\n").unwrap_err();
        assert!(e.message.contains("listed twice"), "{e}");
        // Spellings that would be read some other way than meant.
        for (target, says) in [
            ("http://127.0.0.1:80/", "without a scheme (`127.0.0.1:80`)"),
            (
                "https://127.0.0.1:8443",
                "`tls` for HTTPS (`127.0.0.1:8443 tls`)",
            ),
            (
                "https://localhost/",
                "`tls` for HTTPS (`localhost:443 tls`)",
            ),
            ("::1:80", "as `[::1]:80`"),
            ("[127.0.0.1]:80", "not an IPv6 address in brackets"),
            ("[::1:80", "not an IPv6 address in brackets"),
            ("127.0.0.1:+80", "not a whole number"),
        ] {
            let e = build(&format!("targets = {target}\n")).unwrap_err();
            assert!(e.message.contains(says), "{target}: {e}");
        }
        assert!(build("port = +80\ntargets = 127.0.0.1:1\n").is_err());
        // TLS: checked for the host as written, or for tls_name=.
        let c = build("targets = localhost:1 tls, 127.0.0.1:2 tls tls_name=api.test\n").unwrap();
        let names: Vec<_> = (c.targets.iter())
            .map(|t| t.tls.as_ref().map(|n| n.to_str().into_owned()))
            .collect();
        assert_eq!(names, [Some("localhost".into()), Some("api.test".into())]);
        assert!(c.backend_tls.is_some());
        assert!(build("targets = 127.0.0.1:1\n")
            .unwrap()
            .backend_tls
            .is_none());
        for (targets, says) in [
            ("127.0.0.1:1 tls_name=a.test", "add `tls`"),
            ("127.0.0.1:1 tls tls", "tls given twice"),
            (
                "127.0.0.1:1 tls tls_name=a.test tls_name=b.test",
                "tls_name given twice",
            ),
            ("127.0.0.1:1 tls tls_name=no_such^name", "not a host name"),
            ("unix:/run/app.sock tls", "not supported"),
        ] {
            let e = build(&format!("targets = {targets}\n")).unwrap_err();
            assert!(e.message.contains(says), "{targets}: {e}");
        }
        // PROXY protocol: either version, on any target, once.
        let c = build(
            "targets = 127.0.0.1:1 send_proxy, 127.0.0.1:2 tls send_proxy_v2, \
                       unix:/run/app.sock send_proxy, 127.0.0.1:3\n",
        )
        .unwrap();
        let sent: Vec<_> = c.targets.iter().map(|t| t.send_proxy).collect();
        use crate::http::send_proxy::ProxyVersion::{V1, V2};
        assert_eq!(sent, [Some(V1), Some(V2), Some(V1), None]);
        for (targets, says) in [
            (
                "127.0.0.1:1 send_proxy send_proxy",
                "send_proxy given twice",
            ),
            (
                "127.0.0.1:1 send_proxy_v2 send_proxy_v2",
                "send_proxy_v2 given twice",
            ),
            ("127.0.0.1:1 send_proxy send_proxy_v2", "given both"),
            (
                "127.0.0.1:1 send_proxy=v2",
                "unknown option `send_proxy=v2`",
            ),
            ("127.0.0.1:1 send-proxy", "send_proxy or send_proxy_v2"),
        ] {
            let e = build(&format!("targets = {targets}\n")).unwrap_err();
            assert!(e.message.contains(says), "{targets}: {e}");
        }
        assert_eq!(
            build("worker_priority = -5\ntargets = 127.0.0.1:1\n")
                .unwrap()
                .worker_priority,
            Some(-5)
        );
    }

    #[test]
    fn environment_keys_have_one_spelling() {
        let mut l = Loader::new();
        l.env([
            ("INVERSO_port".to_string(), "1".to_string()),
            ("INVERSO_PORT".to_string(), "2".to_string()),
            ("INVERSO_Port".to_string(), "3".to_string()),
        ]);
        l.flag("targets", "127.0.0.1:1", "--targets").unwrap();
        assert_eq!(l.build().unwrap().port, 2);
    }

    #[test]
    fn precedence_is_flag_env_file_default() {
        let mut l = Loader::new();
        l.file(
            "proxy.conf",
            "targets = 127.0.0.1:1\nport = 1000\nttl = 5s\n",
        )
        .unwrap();
        l.env([
            ("INVERSO_PORT".to_string(), "2000".to_string()),
            ("INVERSO_TTL".to_string(), "7s".to_string()),
            ("HOME".to_string(), "/".to_string()),
        ]);
        l.flag("port", "3000", "--port").unwrap();
        let c = l.build().unwrap();
        assert_eq!(c.port, 3000);
        assert_eq!(c.ttl, Duration::from_secs(7));
        assert_eq!(c.unit_time, Duration::from_secs(5));
        let origins: BTreeMap<_, _> = l
            .effective()
            .map(|(k, s)| (k, s.origin.to_string()))
            .collect();
        assert_eq!(origins["port"], "flag --port");
        assert_eq!(origins["ttl"], "environment INVERSO_TTL");
        assert_eq!(origins["targets"], "proxy.conf:1");
        assert_eq!(origins["unit_time"], "default");

        let mut l = Loader::new();
        l.env([("INVERSO_PORT".to_string(), "x".to_string())]);
        l.flag("targets", "127.0.0.1:1", "--targets").unwrap();
        assert_eq!(l.build().unwrap_err().place, "environment INVERSO_PORT");
    }

    #[test]
    fn an_object_limit_larger_than_the_cache_is_refused() {
        let e = build("targets = 127.0.0.1:1\ncache_size = 1MiB\nmax_object_size = 2MiB\n")
            .unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        assert!(e.message.contains("more than cache_size"), "{e}");
        // Equal is fine, and so is any limit with the cache off.
        assert!(
            build("targets = 127.0.0.1:1\ncache_size = 1MiB\nmax_object_size = 1MiB\n").is_ok()
        );
        assert!(build("targets = 127.0.0.1:1\ncache_size = 0\nmax_object_size = 2MiB\n").is_ok());
    }

    #[test]
    fn the_source_is_the_file_read_else_configuration() {
        let mut l = Loader::new();
        assert_eq!((l.source(), l.read_a_file()), ("configuration", false));
        l.file("proxy.conf", "targets = 127.0.0.1:1\n").unwrap();
        assert_eq!((l.source(), l.read_a_file()), ("proxy.conf", true));
    }

    #[test]
    fn pool_route_and_rewrite_keys_in_the_environment_are_ignored_as_file_only() {
        for var in [
            "INVERSO_POOL",
            "INVERSO_POOL_API",
            "INVERSO_ROUTE",
            "INVERSO_REWRITE_X",
        ] {
            let (_, lines) = crate::test_log::logged(|| {
                Loader::new().env([(var.to_string(), "127.0.0.1:2".to_string())]);
            });
            assert_eq!(lines.len(), 1, "{var}: {lines:?}");
            assert!(
                lines[0].contains("read from the configuration file only"),
                "{var}: {lines:?}"
            );
        }
    }
}
