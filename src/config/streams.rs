//! `stream.<name> = <pool> listen=[ADDR:]PORT [proxy_protocol]`: a TCP
//! listener whose connections are relayed, bytes as they come, to a
//! target of a pool (HAProxy's `mode tcp`, nginx's `stream` block; see
//! `crate::proxy::tcp`). In the file only.

use super::listeners::listeners_overlap;
use super::pools::{index_named, on_line, PoolConfig};
use super::{Balance, Config, ConfigError, Loader, Origin, Setting};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The most `stream.*` keys: each is a listener and its workers.
const MAX_STREAMS: usize = 100;

/// One `stream.<name>` as it is served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamListener {
    /// Its name: the access log's request line (`TCP <name>`) and
    /// [`crate::server::ServerHandle::stream_addr`] know it by it.
    pub name: Arc<str>,
    /// The address and port it listens on (port 0: one the system picks).
    pub listen: SocketAddr,
    /// The pool its connections go to (0: `targets`), and its name.
    pub pool: usize,
    pub pool_name: Arc<str>,
    /// Each connection starts with a PROXY protocol header naming the
    /// client, from a balancer in front.
    pub proxy_protocol: bool,
}

/// A `stream.<name>` key as read.
#[derive(Clone, Debug)]
pub(super) struct StreamKey {
    name: String,
    setting: Setting,
}

impl Loader {
    /// Takes `stream.<name> = value` from the file; it is read at
    /// [`Loader::build`], once the pools are known.
    pub(super) fn stream_key(
        &mut self,
        name: &str,
        value: &str,
        origin: Origin,
    ) -> Result<(), ConfigError> {
        check_name(name).map_err(|m| ConfigError::at(&origin, m))?;
        if let Some(first) = self.stream_keys.iter().find(|k| k.name == name) {
            let first = on_line(&first.setting);
            return Err(ConfigError::at(
                &origin,
                format!("duplicate key `stream.{name}`{first}"),
            ));
        }
        if self.stream_keys.len() >= MAX_STREAMS {
            return Err(ConfigError::at(
                &origin,
                format!("`stream.{name}`: more than {MAX_STREAMS} streams"),
            ));
        }
        self.stream_keys.push(StreamKey {
            name: name.to_string(),
            setting: Setting {
                value: value.to_string(),
                origin,
            },
        });
        Ok(())
    }

    /// Every `stream.<name>` key with its value and origin, in the file's
    /// order.
    pub fn stream_settings(&self) -> impl Iterator<Item = (String, &Setting)> {
        (self.stream_keys.iter()).map(|k| (format!("stream.{}", k.name), &k.setting))
    }

    /// The streams, each refused at its line when it cannot be served:
    /// its pool unknown or unfit for bytes alone, its address another
    /// listener's.
    pub(super) fn build_streams(
        &self,
        top: &Config,
        pools: &[PoolConfig],
    ) -> Result<Arc<[StreamListener]>, ConfigError> {
        let mut streams: Vec<StreamListener> = Vec::with_capacity(self.stream_keys.len());
        for StreamKey { name, setting } in &self.stream_keys {
            let refused =
                |m: String| ConfigError::at(&setting.origin, format!("stream.{name}: {m}"));
            let stream = parse(name, &setting.value, top.bind, pools).map_err(refused)?;
            let pool = match stream.pool.checked_sub(1) {
                Some(i) => &pools[i].config,
                None => top,
            };
            check_pool(&stream, pool).map_err(refused)?;
            if let Some(taken) = taken_by(&stream, top, &streams) {
                return Err(refused(format!(
                    "{} is also {taken}'s address and port",
                    stream.listen
                )));
            }
            streams.push(stream);
        }
        Ok(streams.into())
    }
}

impl Config {
    /// The `stream.<name>` of that name.
    pub fn stream_named(&self, name: &str) -> Option<&StreamListener> {
        self.streams.iter().find(|s| *s.name == *name)
    }

    /// The streams as a reload puts them in force, `was` the settings
    /// running: the listeners stay those running (binding others waits
    /// for a restart), each with the pool these settings give it, its own
    /// key's or else the pool of the name it had. Whether the listeners
    /// written differ from those running (the reload says a restart is
    /// needed); an error for a running stream whose pool is gone or
    /// cannot take it.
    pub fn keep_streams_of(&mut self, was: &Config) -> Result<bool, String> {
        let listens = |s: &StreamListener| (s.name.clone(), s.listen, s.proxy_protocol);
        if self
            .streams
            .iter()
            .map(listens)
            .eq(was.streams.iter().map(listens))
        {
            return Ok(false);
        }
        let mut kept = Vec::with_capacity(was.streams.len());
        for running in was.streams.iter() {
            let pool_name = self
                .stream_named(&running.name)
                .map_or(&running.pool_name, |s| &s.pool_name)
                .clone();
            let names = self.pools.iter().map(|p| &*p.name);
            let pool = index_named(&pool_name, names)
                .map_err(|m| format!("stream.{} listens until a restart: {m}", running.name))?;
            let stream = StreamListener {
                pool,
                pool_name,
                ..running.clone()
            };
            check_pool(&stream, self.config_of_pool(pool))
                .map_err(|m| format!("stream.{}: {m}", running.name))?;
            kept.push(stream);
        }
        self.streams = kept.into();
        Ok(true)
    }

    /// The settings of the pool at `index` (0: `targets`, the top level's).
    fn config_of_pool(&self, index: usize) -> &Config {
        let pool = index.checked_sub(1).and_then(|i| self.pools.get(i));
        pool.map_or(self, |p| &p.config)
    }
}

/// `<pool> listen=[ADDR:]PORT [proxy_protocol]`, a port alone on `bind`.
fn parse(
    name: &str,
    value: &str,
    bind: IpAddr,
    pools: &[PoolConfig],
) -> Result<StreamListener, String> {
    const SHAPE: &str = "a stream is `<pool> listen=[ADDR:]PORT [proxy_protocol]`, \
                         e.g. `stream.postgres = db listen=5432`";
    let mut words = value.split_whitespace();
    let Some(pool_name) = words.next() else {
        return Err(SHAPE.into());
    };
    let pool = index_named(pool_name, pools.iter().map(|p| &*p.name))?;
    let (mut listen, mut proxy_protocol) = (None, false);
    for word in words {
        match word.split_once('=') {
            Some(("listen", at)) if listen.is_none() => listen = Some(listen_at(at, bind)?),
            Some(("listen", _)) => return Err("listen= given twice".into()),
            None if word == "proxy_protocol" && !proxy_protocol => proxy_protocol = true,
            None if word == "proxy_protocol" => return Err("proxy_protocol given twice".into()),
            _ => return Err(format!("unknown option `{}`: {SHAPE}", word.escape_debug())),
        }
    }
    let Some(listen) = listen else {
        return Err(format!("no listen=: {SHAPE}"));
    };
    Ok(StreamListener {
        name: name.into(),
        listen,
        pool,
        pool_name: pool_name.into(),
        proxy_protocol,
    })
}

/// `PORT` (on `bind`), `ADDR:PORT` or `[V6]:PORT`.
fn listen_at(at: &str, bind: IpAddr) -> Result<SocketAddr, String> {
    if let Ok(port) = at.parse::<u16>() {
        return Ok(SocketAddr::new(bind, port));
    }
    at.parse::<SocketAddr>().map_err(|_| {
        format!(
            "listen={}: expected a port (on `bind`'s address), ADDR:PORT or [IPv6]:PORT",
            at.escape_debug()
        )
    })
}

/// A connection carries no request: the pool may not balance by one,
/// nor speak FastCGI to its targets, nor have the stream's own listener
/// among them.
fn check_pool(stream: &StreamListener, pool: &Config) -> Result<(), String> {
    let pool_name = &stream.pool_name;
    let by_request = match pool.balance {
        Balance::UriHash => Some("uri_hash"),
        Balance::Hash => Some("hash"),
        _ => None,
    };
    if let Some(balance) = by_request {
        return Err(format!(
            "pool `{pool_name}` balances by `{balance}`, a request's URI or fields, which a TCP \
             connection has none of (`ip_hash` balances by the client's address)"
        ));
    }
    if let Some(t) = pool.targets.iter().find(|t| t.fastcgi) {
        return Err(format!(
            "pool `{pool_name}`'s target {} speaks FastCGI, which needs HTTP requests",
            t.name
        ));
    }
    if let Some(t) = super::target_at(stream.listen, &pool.targets) {
        return Err(format!(
            "pool `{pool_name}`'s target {} is the stream's own listener (its connections \
             would come back to it)",
            t.name
        ));
    }
    Ok(())
}

/// What else listens at `stream`'s address and port, if anything: `port`,
/// `tls_port`, `admin_port` or an earlier stream (port 0 takes a free
/// port each: never another's).
fn taken_by(stream: &StreamListener, top: &Config, streams: &[StreamListener]) -> Option<String> {
    let port = stream.listen.port();
    let clash = |addr: SocketAddr| {
        port != 0 && addr.port() == port && listeners_overlap(addr.ip(), stream.listen.ip())
    };
    let own = [
        Some(("port", top.listen_addr())),
        top.tls_addr().map(|a| ("tls_port", a)),
        top.admin_addr().map(|a| ("admin_port", a)),
    ];
    if let Some((key, _)) = own.into_iter().flatten().find(|(_, a)| clash(*a)) {
        return Some(format!("`{key}`"));
    }
    (streams.iter())
        .find(|s| clash(s.listen))
        .map(|s| format!("`stream.{}`", s.name))
}

/// 1 to 64 letters, digits, `-` or `_`.
fn check_name(name: &str) -> Result<(), String> {
    let valid = (1..=64).contains(&name.len())
        && (name.bytes()).all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match valid {
        true => Ok(()),
        false => Err(format!(
            "`stream.{}`: a stream's name is 1 to 64 letters, digits, `-` or `_` \
             (e.g. `stream.postgres = db listen=5432`)",
            name.escape_debug()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(text: &str) -> Result<Config, ConfigError> {
        let text = format!("targets = 127.0.0.1:1\n{text}");
        Loader::new().file("proxy.conf", &text)?.build()
    }

    #[track_caller]
    fn refused(text: &str) -> String {
        build(text).unwrap_err().to_string()
    }

    #[test]
    fn a_stream_names_its_pool_and_where_it_listens() {
        let c = build(
            "bind = 127.0.0.2\n\
             pool.db = 127.0.0.1:5432 max_conns=10, 127.0.0.1:5433 backup\n\
             stream.postgres = db listen=5432\n\
             stream.redis = default listen=[::1]:6380 proxy_protocol\n\
             stream.any = db listen=0.0.0.0:7000\n",
        )
        .unwrap();
        let shown: Vec<_> = (c.streams.iter())
            .map(|s| {
                (
                    &*s.name,
                    s.listen.to_string(),
                    s.pool,
                    &*s.pool_name,
                    s.proxy_protocol,
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("postgres", "127.0.0.2:5432".into(), 1, "db", false),
                ("redis", "[::1]:6380".into(), 0, "default", true),
                ("any", "0.0.0.0:7000".into(), 1, "db", false),
            ]
        );
        // A pool a stream uses is not one no route sends requests to.
        assert!(build("").unwrap().streams.is_empty());
    }

    #[test]
    fn a_stream_that_cannot_be_served_is_refused_at_its_line() {
        for (text, says) in [
            (
                "stream.s = nope listen=9",
                "proxy.conf:2: stream.s: no pool is named `nope`",
            ),
            (
                "stream.s = default",
                "proxy.conf:2: stream.s: no listen=: a stream is",
            ),
            (
                "stream.s =",
                "proxy.conf:2: stream.s: a stream is `<pool> listen=",
            ),
            (
                "stream.s = default listen=70000",
                "stream.s: listen=70000: expected a port",
            ),
            (
                "stream.s = default listen=host:80",
                "listen=host:80: expected a port",
            ),
            (
                "stream.s = default listen=9 listen=10",
                "stream.s: listen= given twice",
            ),
            (
                "stream.s = default listen=9 tls",
                "stream.s: unknown option `tls`",
            ),
            (
                "stream.s = default listen=9 proxy_protocol proxy_protocol",
                "proxy_protocol given twice",
            ),
            (
                "stream.a/b = default listen=9",
                "proxy.conf:2: `stream.a/b`: a stream's name is",
            ),
            (
                "stream. = default listen=9",
                "`stream.`: a stream's name is 1 to 64",
            ),
            (
                "stream.s = default listen=9\nstream.s = default listen=10",
                "proxy.conf:3: duplicate key `stream.s` (first set on line 2)",
            ),
            (
                "stream.a = default listen=127.0.0.1:9\nstream.b = default listen=9",
                "proxy.conf:3: stream.b: 0.0.0.0:9 is also `stream.a`'s address and port",
            ),
            (
                "port = 8080\nstream.s = default listen=127.0.0.1:8080",
                "proxy.conf:3: stream.s: 127.0.0.1:8080 is also `port`'s address and port",
            ),
            (
                "admin_port = 9901\nstream.s = default listen=9901",
                "is also `admin_port`'s",
            ),
            (
                "balance = uri_hash\nstream.s = default listen=9",
                "pool `default` balances by `uri_hash`, a request's URI or fields",
            ),
            (
                "pool.h = 127.0.0.1:2\npool.h.balance = hash\npool.h.hash_on = header:X-Key\n\
                 stream.s = h listen=9",
                "stream.s: pool `h` balances by `hash`, a request's URI or fields",
            ),
            (
                "pool.php = 127.0.0.1:9000 fastcgi\npool.php.fastcgi_root = /srv\n\
                 stream.s = php listen=9",
                "pool `php`'s target 127.0.0.1:9000 speaks FastCGI",
            ),
            (
                "pool.me = 127.0.0.1:7000\nstream.s = me listen=127.0.0.1:7000",
                "pool `me`'s target 127.0.0.1:7000 is the stream's own listener",
            ),
        ] {
            let message = refused(text);
            assert!(
                message.contains(says),
                "{text}:\n{message}\nshould say {says}"
            );
        }
        // Port 0 is a free port each: never a clash.
        let c = build("port = 0\nstream.a = default listen=0\nstream.b = default listen=0\n");
        assert_eq!(c.unwrap().streams.len(), 2);
        // One port on two addresses that do not overlap.
        let c = build(
            "stream.a = default listen=127.0.0.1:9\nstream.b = default listen=127.0.0.2:9\n\
             balance = ip_hash\n",
        );
        assert_eq!(c.unwrap().streams.len(), 2);
    }

    #[test]
    fn stream_keys_come_from_the_file_alone() {
        let mut l = Loader::new();
        l.file("proxy.conf", "targets = 127.0.0.1:1\n").unwrap();
        let e = l.flag("stream.s", "default listen=9", "--set").unwrap_err();
        assert!(
            e.to_string()
                .contains("read from the configuration file only"),
            "{e}"
        );
    }
}
