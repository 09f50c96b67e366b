//! `stream.<name> = <pool> listen=[ADDR:]PORT [proxy_protocol]`: a TCP
//! listener whose connections are relayed, bytes as they come, to a
//! target of a pool (HAProxy's `mode tcp`, nginx's `stream` block; see
//! `crate::proxy::tcp`); and `stream.<name>.<host> = <pool>`, the pool
//! of the TLS clients whose hello asks for that host (nginx's
//! `ssl_preread`). In the file only.

use super::listeners::clashes;
use super::pools::{index_named, on_line, PoolConfig};
use super::{Balance, Config, ConfigError, Loader, Origin, Setting};
use crate::routes::{parse_host, HostPattern};
use crate::tcp_keepalive::Keepalive;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// The most `stream.<name>` keys: each is a listener and its workers.
const MAX_STREAMS: usize = 100;
/// The most `stream.<name>.<host>` keys in all (a hello is matched
/// against its stream's in turn), as many as routes may be.
const MAX_NAMES: usize = 10_000;

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
    /// TLS is ended here (`tls`), with `tls_port`'s certificates and
    /// settings, the bytes relayed being the session's.
    pub tls: bool,
    /// The protocols offered in ALPN (`alpn=`) when `tls`, in the order
    /// written; none: none agreed.
    pub alpn: Arc<[&'static str]>,
    /// TCP keepalive probes on the client's socket and the target's
    /// (`so_keepalive`).
    pub keepalive: Option<Keepalive>,
    /// How long a session may carry nothing either way (`timeout=`,
    /// nginx's `proxy_timeout`); `None`: the pool's `tunnel_timeout`, or
    /// [`UDP_TIMEOUT`] for `udp`.
    pub timeout: Option<Duration>,
    /// Datagrams (`udp`) rather than a TCP listener: each client address
    /// a session with a target of its own (see `crate::proxy::udp`).
    pub udp: bool,
    /// How fast a TCP session's client is read (`upload_rate=`, nginx's
    /// `proxy_upload_rate`) and its target (`download_rate=`, nginx's
    /// `proxy_download_rate`), in bytes a second; 0: as fast as they send.
    pub upload_rate: u64,
    pub download_rate: u64,
    /// With `udp`, the datagrams a target answers each of the client's
    /// with (`responses=N`, nginx's `proxy_responses`): the session ends
    /// once they have all come (`responses=0`, as each is sent: syslog);
    /// `None`: it ends when it idles out.
    pub responses: Option<u32>,
    /// With `udp`, the client's datagrams a session takes (`requests=N`,
    /// nginx's `proxy_requests`): the client's next one begins another,
    /// while this one waits for its answers; `None`: no limit.
    pub requests: Option<u32>,
    /// `stream.<name>.alpn:<protocol>` and `stream.<name>.<host>`: the
    /// pools of the TLS clients whose hello offers those protocols or
    /// asks for those hosts, in the order tried (the protocols as
    /// written, then the hosts, most specific first); none: every
    /// connection goes to `pool`.
    pub(crate) by_hello: Arc<[ByHello]>,
}

/// One `stream.<name>.<host> = <pool>` or `stream.<name>.alpn:<protocol>
/// = <pool>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ByHello {
    pub key: HelloKey,
    pub pool: usize,
    pub pool_name: Arc<str>,
}

/// What of a TLS hello chooses a pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum HelloKey {
    /// The host it asks for (SNI).
    Host(HostPattern),
    /// A protocol it offers in ALPN (with `tls`: the one agreed).
    Protocol(&'static str),
}

/// A host or protocol key, as `check` says it.
pub enum Asking<'a> {
    /// As written (lower case; `*.` and a name for its subdomains).
    Host(String),
    Protocol(&'a str),
}

/// What precedes a protocol in its key: `stream.<name>.alpn:h2`.
const PROTOCOL_KEY: &str = "alpn:";

/// As written after the stream's name: `shop.example`, `alpn:h2`.
impl std::fmt::Display for HelloKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HelloKey::Host(host) => write!(f, "{host}"),
            HelloKey::Protocol(protocol) => write!(f, "{PROTOCOL_KEY}{protocol}"),
        }
    }
}

impl StreamListener {
    /// Whether what a TLS client's hello asks for chooses the pool.
    pub fn chooses_by_hello(&self) -> bool {
        !self.by_hello.is_empty()
    }

    /// Whether a connection's TLS hello is read, and passed on, to choose
    /// its pool (with `tls`, the handshake tells the host and protocol).
    pub fn reads_hello(&self) -> bool {
        self.chooses_by_hello() && !self.tls
    }

    /// Each host or protocol key, and its pool's name, in the order
    /// tried.
    pub fn hello_keys(&self) -> impl Iterator<Item = (Asking<'_>, &str)> {
        (self.by_hello.iter()).map(|b| {
            let asking = match &b.key {
                HelloKey::Host(host) => Asking::Host(host.to_string()),
                HelloKey::Protocol(protocol) => Asking::Protocol(protocol),
            };
            (asking, &*b.pool_name)
        })
    }

    /// How fast a session's client and its target are read, in that
    /// order (`upload_rate=`, `download_rate=`).
    pub fn pacing(&self) -> [crate::pace::Pacing; 2] {
        [self.upload_rate, self.download_rate].map(|rate| crate::pace::Pacing { rate, after: 0 })
    }

    /// How long a session may carry nothing either way before it is
    /// closed, `pool` the settings of the pool it went to.
    pub fn idle_timeout(&self, pool: &Config) -> Duration {
        let otherwise = match self.udp {
            true => UDP_TIMEOUT,
            false => pool.tunnel_timeout,
        };
        self.timeout.unwrap_or(otherwise)
    }

    /// The pool, by index and name, of a connection whose hello asked for
    /// `host` (`None`: for none, or no hello came) and offered
    /// `protocols`.
    pub fn pool_for(&self, host: Option<&str>, protocols: &[&str]) -> (usize, &Arc<str>) {
        let chooses = |b: &&ByHello| match &b.key {
            HelloKey::Host(pattern) => pattern.matches(host),
            HelloKey::Protocol(protocol) => protocols.contains(protocol),
        };
        (self.by_hello.iter().find(chooses))
            .map_or((self.pool, &self.pool_name), |b| (b.pool, &b.pool_name))
    }
}

/// A `stream.<name>` or `stream.<name>.<host>` key as read.
#[derive(Clone, Debug)]
pub(super) struct StreamKey {
    name: String,
    host: Option<String>,
    setting: Setting,
}

impl StreamKey {
    fn key(&self) -> String {
        match &self.host {
            Some(host) => format!("stream.{}.{host}", self.name),
            None => format!("stream.{}", self.name),
        }
    }
}

impl Loader {
    /// Takes `stream.<name> = value` or `stream.<name>.<host> = value`
    /// (`key` is what follows `stream.`) from the file; it is read at
    /// [`Loader::build`], once the pools are known.
    pub(super) fn stream_key(
        &mut self,
        key: &str,
        value: &str,
        origin: Origin,
    ) -> Result<(), ConfigError> {
        // A host is lower-cased; a protocol is as written (ALPN's
        // names are compared byte for byte).
        let (name, host) = match key.split_once('.') {
            Some((name, rest)) => match rest.get(..PROTOCOL_KEY.len()) {
                Some(prefix) if prefix.eq_ignore_ascii_case(PROTOCOL_KEY) => (
                    name,
                    Some(format!("{PROTOCOL_KEY}{}", &rest[PROTOCOL_KEY.len()..])),
                ),
                _ => (name, Some(rest.to_ascii_lowercase())),
            },
            None => (key, None),
        };
        check_name(name).map_err(|m| ConfigError::at(&origin, m))?;
        let same = |k: &&StreamKey| k.name == name && k.host == host;
        if let Some(first) = self.stream_keys.iter().find(same) {
            let first = on_line(&first.setting, &origin);
            return Err(ConfigError::at(
                &origin,
                format!("duplicate key `stream.{key}`{first}"),
            ));
        }
        let (most, what) = match host {
            None => (MAX_STREAMS, "streams"),
            Some(_) => (MAX_NAMES, "stream host and protocol keys"),
        };
        let alike = |k: &&StreamKey| k.host.is_some() == host.is_some();
        if self.stream_keys.iter().filter(alike).count() >= most {
            return Err(ConfigError::at(
                &origin,
                format!("`stream.{key}`: more than {most} {what}"),
            ));
        }
        self.stream_keys.push(StreamKey {
            name: name.to_string(),
            host,
            setting: Setting {
                value: value.to_string(),
                origin,
            },
        });
        Ok(())
    }

    /// Every `stream.*` key with its value and origin, in the file's
    /// order.
    pub fn stream_settings(&self) -> impl Iterator<Item = (String, &Setting)> {
        (self.stream_keys.iter()).map(|k| (k.key(), &k.setting))
    }

    /// Whether a stream ends TLS (`tls` among its options): `tls_port`'s
    /// settings are then read without `tls_port` too. Asked before the
    /// streams are built, which needs the pools.
    pub(super) fn streams_take_tls(&self) -> bool {
        (self.stream_keys.iter())
            .filter(|k| k.host.is_none())
            .any(|k| {
                k.setting
                    .value
                    .split_whitespace()
                    .skip(1)
                    .any(|w| w == "tls")
            })
    }

    /// The streams, each refused at its line when it cannot be served:
    /// its pool unknown or unfit for bytes alone, its address another
    /// listener's, a host name's key for no stream.
    pub(super) fn build_streams(
        &self,
        top: &Config,
        pools: &[PoolConfig],
    ) -> Result<Arc<[StreamListener]>, ConfigError> {
        let pool_of = |i: usize| i.checked_sub(1).map_or(top, |i| &pools[i].config);
        let mut streams: Vec<StreamListener> = Vec::new();
        let listeners = self.stream_keys.iter().filter(|k| k.host.is_none());
        for key in listeners {
            let refused =
                |m: String| ConfigError::at(&key.setting.origin, format!("{}: {m}", key.key()));
            let stream = parse(&key.name, &key.setting.value, top.bind, pools).map_err(refused)?;
            check_pool(&stream, &stream.pool_name, pool_of(stream.pool)).map_err(refused)?;
            if stream.tls && top.tls.is_none() {
                return Err(refused(
                    "tls: there is no certificate to serve: set `tls_certificates` (a stream \
                     ends TLS with tls_port's certificates and settings)"
                        .into(),
                ));
            }
            if let Some(taken) = taken_by(&stream, top, &streams) {
                return Err(refused(format!(
                    "{} is also {taken}'s address and port",
                    stream.listen
                )));
            }
            streams.push(stream);
        }
        let mut by_hellos: Vec<Vec<ByHello>> = vec![Vec::new(); streams.len()];
        for key in &self.stream_keys {
            let Some(host) = &key.host else {
                continue;
            };
            let refused =
                |m: String| ConfigError::at(&key.setting.origin, format!("{}: {m}", key.key()));
            let Some(at) = streams.iter().position(|s| *s.name == *key.name) else {
                return Err(refused(format!(
                    "there is no `stream.{}` to take it: give one, e.g. `stream.{} = <pool> \
                     listen=443`",
                    key.name, key.name
                )));
            };
            if streams[at].udp {
                return Err(refused(format!(
                    "`stream.{}` is `udp`: its datagrams carry no TLS hello to choose a pool by",
                    key.name
                )));
            }
            let by_hello = by_hello(host, &key.setting.value, pools).map_err(&refused)?;
            check_pool(&streams[at], &by_hello.pool_name, pool_of(by_hello.pool))
                .map_err(&refused)?;
            if let HelloKey::Protocol(protocol) = by_hello.key {
                let stream = &streams[at];
                if stream.tls && !stream.alpn.contains(&protocol) {
                    return Err(refused(format!(
                        "`stream.{}` ends TLS, and agrees only the protocols of its alpn= \
                         ({}): `{protocol}` is never agreed",
                        stream.name,
                        match stream.alpn.join(",") {
                            offered if offered.is_empty() => "none".to_string(),
                            offered => offered,
                        }
                    )));
                }
            }
            if let Some(first) = by_hellos[at].iter().find(|b| b.key == by_hello.key) {
                return Err(refused(format!("`{}` is named twice", first.key)));
            }
            by_hellos[at].push(by_hello);
        }
        for (stream, mut by_hello) in streams.iter_mut().zip(by_hellos) {
            // Protocols first, then hosts, the most specific first;
            // stable: among equals, the order written.
            by_hello.sort_by_key(|b| match &b.key {
                HelloKey::Protocol(_) => (0, std::cmp::Reverse((0, 0))),
                HelloKey::Host(host) => (1, std::cmp::Reverse(host.rank())),
            });
            stream.by_hello = by_hello.into();
        }
        Ok(streams.into())
    }
}

/// `stream.<name>.<host> = <pool>`, `host` a name or `*.` and a name,
/// or `stream.<name>.alpn:<protocol> = <pool>` (`key` what follows the
/// stream's name).
fn by_hello(key: &str, value: &str, pools: &[PoolConfig]) -> Result<ByHello, String> {
    let key = match key.strip_prefix(PROTOCOL_KEY) {
        Some(protocol) => HelloKey::Protocol(crate::tls::alpn::protocol(protocol)?),
        None => match parse_host(key)? {
            HostPattern::Any => {
                return Err(
                    "a host after the stream's name: `stream.<name>.<host> = <pool>`".into(),
                )
            }
            host => HelloKey::Host(host),
        },
    };
    let mut words = value.split_whitespace();
    let (Some(pool_name), None) = (words.next(), words.next()) else {
        return Err(format!("`stream.<name>.{key} = <pool>` takes one pool"));
    };
    Ok(ByHello {
        key,
        pool: index_named(pool_name, pools.iter().map(|p| &*p.name))?,
        pool_name: pool_name.into(),
    })
}

impl Config {
    /// The `stream.<name>` of that name.
    pub fn stream_named(&self, name: &str) -> Option<&StreamListener> {
        self.streams.iter().find(|s| *s.name == *name)
    }

    /// The settings `stream` ends TLS with: `tls_port`'s, offering its
    /// own protocols in ALPN (none without `alpn=`, as nginx's stream
    /// does: HTTP's would tell a client to speak HTTP to a stream). The
    /// same sessions and ticket key: a client resumes on either. `None`
    /// for a stream that ends no TLS.
    pub fn stream_tls(&self, stream: &StreamListener) -> Option<Arc<rustls::ServerConfig>> {
        let https = self.tls.as_ref().filter(|_| stream.tls)?;
        let mut settings = (**https).clone();
        settings.alpn_protocols = (stream.alpn.iter())
            .map(|p| p.as_bytes().to_vec())
            .collect();
        Some(Arc::new(settings))
    }

    /// The streams as a reload puts them in force, `was` the settings
    /// running: the listeners stay those running (binding others waits
    /// for a restart), each with the pools these settings give it (its
    /// own keys', or else those of the names it had). Whether the
    /// listeners written differ from those running (the reload says a
    /// restart is needed); an error for a running stream whose pool is
    /// gone or cannot take it.
    pub fn keep_streams_of(&mut self, was: &Config) -> Result<bool, String> {
        let listens = |s: &StreamListener| (s.name.clone(), s.listen, s.proxy_protocol, s.udp);
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
            let stream = match self.stream_named(&running.name) {
                // A TCP listener cannot take datagrams, nor the other way.
                Some(written) if written.udp == running.udp => StreamListener {
                    listen: running.listen,
                    proxy_protocol: running.proxy_protocol,
                    ..written.clone()
                },
                _ => self
                    .pools_again(running)
                    .map_err(|m| format!("stream.{} listens until a restart: {m}", running.name))?,
            };
            kept.push(stream);
        }
        self.streams = kept.into();
        Ok(true)
    }

    /// `stream` with its pools found again by name in these settings.
    fn pools_again(&self, stream: &StreamListener) -> Result<StreamListener, String> {
        let find = |name: &str| {
            let pool = index_named(name, self.pools.iter().map(|p| &*p.name))?;
            check_pool(stream, name, self.config_of_pool(pool))?;
            Ok::<usize, String>(pool)
        };
        let by_hello = (stream.by_hello.iter())
            .map(|b| {
                Ok(ByHello {
                    pool: find(&b.pool_name)?,
                    ..b.clone()
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(StreamListener {
            pool: find(&stream.pool_name)?,
            by_hello,
            ..stream.clone()
        })
    }

    /// The settings of the pool at `index` (0: `targets`, the top level's).
    fn config_of_pool(&self, index: usize) -> &Config {
        let pool = index.checked_sub(1).and_then(|i| self.pools.get(i));
        pool.map_or(self, |p| &p.config)
    }
}

/// `<pool> listen=[ADDR:]PORT [proxy_protocol] [tls [alpn=P,...]]
/// [so_keepalive[=IDLE:INTERVAL:COUNT]] [timeout=DUR] [upload_rate=RATE]
/// [download_rate=RATE]`, or `<pool> listen=[ADDR:]PORT udp [requests=N]
/// [responses=N] [timeout=DUR]`; a port alone on `bind`.
fn parse(
    name: &str,
    value: &str,
    bind: IpAddr,
    pools: &[PoolConfig],
) -> Result<StreamListener, String> {
    const SHAPE: &str = "a stream is `<pool> listen=[ADDR:]PORT [proxy_protocol] \
                         [tls [alpn=PROTOCOL,...]] [so_keepalive[=IDLE:INTERVAL:COUNT]] \
                         [timeout=DURATION] [upload_rate=RATE] [download_rate=RATE]`, e.g. \
                         `stream.postgres = db listen=5432`, or `<pool> listen=[ADDR:]PORT udp \
                         [requests=N] [responses=N] [timeout=DURATION]`";
    let mut words = value.split_whitespace();
    let Some(pool_name) = words.next() else {
        return Err(SHAPE.into());
    };
    let pool = index_named(pool_name, pools.iter().map(|p| &*p.name))?;
    let (mut listen, mut alpn, mut keepalive) = (None, None, None);
    let (mut timeout, mut requests, mut responses) = (None, None, None);
    let (mut upload_rate, mut download_rate) = (None, None);
    let (mut proxy_protocol, mut tls, mut so_keepalive, mut udp) = (false, false, false, false);
    for word in words {
        let flag = match word {
            "proxy_protocol" => Some(&mut proxy_protocol),
            "tls" => Some(&mut tls),
            "so_keepalive" => Some(&mut so_keepalive),
            "udp" => Some(&mut udp),
            _ => None,
        };
        if let Some(flag) = flag {
            if std::mem::replace(flag, true) {
                return Err(format!("{word} given twice"));
            }
            continue;
        }
        match word.split_once('=') {
            Some(("listen", at)) if listen.is_none() => {
                listen = Some(listen_at(at, bind).map_err(|e| format!("listen={e}"))?)
            }
            Some(("alpn", names)) if alpn.is_none() => {
                alpn = Some(crate::tls::alpn::parse_list(names)?)
            }
            Some(("so_keepalive", value)) if keepalive.is_none() => {
                keepalive = Some(Keepalive::parse(value)?)
            }
            Some(("timeout", value)) if timeout.is_none() => {
                timeout = Some(positive_duration(value)?)
            }
            Some(("upload_rate", value)) if upload_rate.is_none() => {
                upload_rate = Some(positive_rate("upload_rate", value)?)
            }
            Some(("download_rate", value)) if download_rate.is_none() => {
                download_rate = Some(positive_rate("download_rate", value)?)
            }
            Some(("requests", value)) if requests.is_none() => {
                requests = Some(count_of_datagrams("requests", value, 1)?)
            }
            Some(("responses", value)) if responses.is_none() => {
                responses = Some(count_of_datagrams("responses", value, 0)?)
            }
            Some((
                option @ ("listen" | "alpn" | "so_keepalive" | "timeout" | "upload_rate"
                | "download_rate" | "requests" | "responses"),
                _,
            )) => return Err(format!("{option}= given twice")),
            _ => return Err(format!("unknown option `{}`: {SHAPE}", word.escape_debug())),
        }
    }
    let Some(listen) = listen else {
        return Err(format!("no listen=: {SHAPE}"));
    };
    if alpn.is_some() && !tls {
        return Err("alpn= names what a TLS handshake agrees: it goes with `tls`".into());
    }
    if so_keepalive && keepalive.is_some() {
        return Err("so_keepalive given twice".into());
    }
    let keepalive = keepalive.or(so_keepalive.then(Keepalive::default));
    let tcp_only = [
        ("tls", tls),
        ("proxy_protocol", proxy_protocol),
        ("so_keepalive", keepalive.is_some()),
        ("upload_rate=", upload_rate.is_some()),
        ("download_rate=", download_rate.is_some()),
    ];
    if let Some((option, _)) = tcp_only.iter().find(|(_, set)| udp && *set) {
        return Err(format!(
            "{option} is for a TCP stream; a `udp` one relays datagrams as they come"
        ));
    }
    if responses.is_some() && !udp {
        return Err("responses= counts a target's datagrams: it goes with `udp`".into());
    }
    if requests.is_some() && !udp {
        return Err("requests= counts a client's datagrams: it goes with `udp`".into());
    }
    Ok(StreamListener {
        name: name.into(),
        listen,
        pool,
        pool_name: pool_name.into(),
        proxy_protocol,
        tls,
        alpn: alpn.unwrap_or_default().into(),
        keepalive,
        timeout,
        upload_rate: upload_rate.unwrap_or(0),
        download_rate: download_rate.unwrap_or(0),
        udp,
        responses,
        requests,
        by_hello: Arc::new([]),
    })
}

/// How long a `udp` stream's session may carry nothing either way when
/// `timeout=` does not say: a session of datagrams has no end of its own,
/// and each holds a socket, so a quiet one is not kept for the pool's
/// `tunnel_timeout` (nginx keeps it for `proxy_timeout`, 10 minutes); a
/// NAT forgets a quiet UDP flow after about as long.
pub const UDP_TIMEOUT: Duration = Duration::from_secs(30);

/// The most `requests=` and `responses=` may say: a session that takes
/// or waits for more is one that idles out.
const MAX_DATAGRAMS: u32 = 1_000_000;

/// `timeout=`: a duration of at least a millisecond.
fn positive_duration(value: &str) -> Result<Duration, String> {
    match super::parse_duration(value)? {
        d if d.is_zero() => Err("timeout=0: a session would end at once".into()),
        d => Ok(d),
    }
}

/// `upload_rate=` or `download_rate=` (`option`): bytes a second, more
/// than none (a stream without one is not paced).
fn positive_rate(option: &str, value: &str) -> Result<u64, String> {
    match super::parse_rate(value) {
        Ok(0) => Err(format!("{option}=0: leave it out for no limit")),
        Ok(rate) => Ok(rate),
        Err(e) => Err(format!("{option}={}: {e}", value.escape_debug())),
    }
}

/// `requests=` or `responses=` (`option`): `least` (1, or 0 for answers
/// none of which is awaited) to [`MAX_DATAGRAMS`].
fn count_of_datagrams(option: &str, value: &str, least: u32) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(n) if (least..=MAX_DATAGRAMS).contains(&n) => Ok(n),
        _ => Err(format!(
            "{option}={}: expected a count of datagrams from {least} to {MAX_DATAGRAMS}",
            value.escape_debug()
        )),
    }
}

/// `PORT` (on `bind`), `ADDR:PORT` or `[V6]:PORT`: a stream's `listen=`,
/// and each address of the `listen` key.
pub(super) fn listen_at(at: &str, bind: IpAddr) -> Result<SocketAddr, String> {
    if let Ok(port) = at.parse::<u16>() {
        return Ok(SocketAddr::new(bind, port));
    }
    at.parse::<SocketAddr>().map_err(|_| {
        format!(
            "{}: expected a port (on `bind`'s address), ADDR:PORT or [IPv6]:PORT",
            at.escape_debug()
        )
    })
}

/// A connection carries no request: the pool `pool_name` of `stream` may
/// not balance by one, nor speak FastCGI to its targets, nor have the
/// stream's own listener among them; a `udp` stream's targets are
/// addresses that take datagrams, spoken to as they are.
fn check_pool(stream: &StreamListener, pool_name: &str, pool: &Config) -> Result<(), String> {
    let listen = stream.listen;
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
    if let Some(t) = pool.written_targets().find(|t| t.fastcgi) {
        return Err(format!(
            "pool `{pool_name}`'s target {} speaks FastCGI, which needs HTTP requests",
            t.name
        ));
    }
    if stream.udp {
        let by_udp = |t: &super::Target| {
            let why = match () {
                _ if t.addr.tcp().is_none() => "is a Unix socket",
                _ if t.tls.is_some() => "is spoken to over TLS",
                _ if t.send_proxy.is_some() => "is sent a PROXY header",
                _ => return None,
            };
            Some(why)
        };
        if let Some((t, why)) = pool
            .written_targets()
            .find_map(|t| by_udp(t).map(|why| (t, why)))
        {
            return Err(format!(
                "pool `{pool_name}`'s target {} {why}, which datagrams cannot be",
                t.name
            ));
        }
    }
    if let Some(t) = super::target_at(listen, &pool.targets) {
        return Err(format!(
            "pool `{pool_name}`'s target {} is the stream's own listener (its connections \
             would come back to it)",
            t.name
        ));
    }
    Ok(())
}

/// What else listens at `stream`'s address and port, if anything: `port`,
/// `tls_port`, `admin_port` or an earlier stream, of TCP or of UDP as it
/// is (DNS takes port 53 of both; port 0 takes a free port each: never
/// another's).
fn taken_by(stream: &StreamListener, top: &Config, streams: &[StreamListener]) -> Option<String> {
    let clash = |addr: SocketAddr| clashes(stream.listen, addr);
    let own = [
        Some(("port", top.listen_addr())),
        top.tls_addr().map(|a| ("tls_port", a)),
        top.admin_addr().map(|a| ("admin_port", a)),
    ];
    let listen = top.listen.iter().map(|&a| ("listen", a));
    let of_tcp = (own.into_iter().flatten().chain(listen)).filter(|_| !stream.udp);
    if let Some((key, _)) = of_tcp.into_iter().find(|(_, a)| clash(*a)) {
        return Some(format!("`{key}`"));
    }
    (streams.iter())
        .find(|s| s.udp == stream.udp && clash(s.listen))
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
    use super::super::tests::{build_after_targets as build, refused_after_targets as refused};
    use super::*;

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
        // One port for TCP and UDP (DNS): no clash; timeouts as written,
        // else the pool's for TCP and 30 s for UDP.
        let c = build(
            "pool.dns = 127.0.0.1:5353\npool.dns.tunnel_timeout = 2h\n\
             stream.dns = dns listen=53 timeout=90s\n\
             stream.dns_udp = dns listen=53 udp requests=3 responses=2\n\
             stream.dns_quiet = dns listen=54 udp timeout=2s\nstream.tcp = dns listen=55\n",
        )
        .unwrap();
        let pool = &c.pools[0].config;
        let timeout = |name| c.stream_named(name).unwrap().idle_timeout(pool);
        assert_eq!(timeout("dns"), Duration::from_secs(90));
        assert_eq!(timeout("dns_udp"), UDP_TIMEOUT);
        assert_eq!(timeout("dns_quiet"), Duration::from_secs(2));
        assert_eq!(timeout("tcp"), Duration::from_secs(7200));
        let udp = c.stream_named("dns_udp").unwrap();
        assert!(udp.udp && !c.stream_named("dns").unwrap().udp);
        assert_eq!((udp.requests, udp.responses), (Some(3), Some(2)));
        assert_eq!(c.stream_named("dns_quiet").unwrap().requests, None);
        // TCP keepalive: the system's settings, or those written.
        let c = build(
            "stream.a = default listen=9 so_keepalive\n\
             stream.b = default listen=10 so_keepalive=10m::4\nstream.c = default listen=11\n",
        )
        .unwrap();
        let keepalive = |name| c.stream_named(name).unwrap().keepalive;
        assert_eq!(keepalive("a"), Some(Keepalive::default()));
        let written = Keepalive::parse("10m::4").unwrap();
        assert_eq!(keepalive("b"), Some(written));
        assert_eq!(keepalive("c"), None);
        // Rates each way, in bytes a second; none without them.
        let c = build(
            "stream.a = default listen=9 upload_rate=64KiB download_rate=1MiB/s\n\
             stream.b = default listen=10 download_rate=100\n",
        )
        .unwrap();
        let rates = |name| c.stream_named(name).unwrap().pacing().map(|p| p.rate);
        assert_eq!(rates("a"), [64 << 10, 1 << 20]);
        assert_eq!(rates("b"), [0, 100]);
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
                "stream.s = default listen=9 ssl",
                "stream.s: unknown option `ssl`: a stream is `<pool> listen=[ADDR:]PORT \
                 [proxy_protocol] [tls [alpn=PROTOCOL,...]] [so_keepalive[=IDLE:INTERVAL:COUNT]] \
                 [timeout=DURATION] [upload_rate=RATE] [download_rate=RATE]`, e.g. \
                 `stream.postgres = db listen=5432`, or `<pool> listen=[ADDR:]PORT udp",
            ),
            (
                "stream.s = default listen=9 tls",
                "proxy.conf:2: stream.s: tls: there is no certificate to serve: set \
                 `tls_certificates`",
            ),
            (
                "stream.s = default listen=9 alpn=h2",
                "stream.s: alpn= names what a TLS handshake agrees: it goes with `tls`",
            ),
            (
                "stream.s = default listen=9 tls tls",
                "stream.s: tls given twice",
            ),
            (
                "stream.s = default listen=9 tls alpn=h2 alpn=h2",
                "stream.s: alpn= given twice",
            ),
            (
                "stream.s = default listen=9 tls alpn=h2,h2",
                "stream.s: alpn= names `h2` twice",
            ),
            (
                "stream.s = default listen=9 tls alpn=",
                "stream.s: alpn=: `` is not a protocol's name",
            ),
            (
                "stream.s = default listen=9 so_keepalive so_keepalive=::3",
                "stream.s: so_keepalive given twice",
            ),
            (
                "stream.s = default listen=9 so_keepalive=::3 so_keepalive=::3",
                "stream.s: so_keepalive= given twice",
            ),
            (
                "stream.s = default listen=9 so_keepalive=30m",
                "stream.s: so_keepalive=30m: expected IDLE:INTERVAL:COUNT",
            ),
            (
                "stream.s = default listen=9 udp tls",
                "stream.s: tls is for a TCP stream; a `udp` one relays datagrams",
            ),
            (
                "stream.s = default listen=9 udp proxy_protocol",
                "stream.s: proxy_protocol is for a TCP stream",
            ),
            (
                "stream.s = default listen=9 udp so_keepalive",
                "stream.s: so_keepalive is for a TCP stream",
            ),
            (
                "stream.s = default listen=9 responses=1",
                "stream.s: responses= counts a target's datagrams: it goes with `udp`",
            ),
            (
                "stream.s = default listen=9 udp responses=1000001",
                "stream.s: responses=1000001: expected a count of datagrams from 0 to 1000000",
            ),
            (
                "stream.s = default listen=9 udp upload_rate=1MiB",
                "stream.s: upload_rate= is for a TCP stream",
            ),
            (
                "stream.s = default listen=9 download_rate=0",
                "stream.s: download_rate=0: leave it out for no limit",
            ),
            (
                "stream.s = default listen=9 upload_rate=fast",
                "stream.s: upload_rate=fast: `fast` is not a size",
            ),
            (
                "stream.s = default listen=9 upload_rate=1k upload_rate=1k",
                "stream.s: upload_rate= given twice",
            ),
            (
                "stream.s = default listen=9 requests=1",
                "stream.s: requests= counts a client's datagrams: it goes with `udp`",
            ),
            (
                "stream.s = default listen=9 udp requests=0",
                "stream.s: requests=0: expected a count of datagrams from 1 to 1000000",
            ),
            (
                "stream.s = default listen=9 udp requests=2 requests=2",
                "stream.s: requests= given twice",
            ),
            (
                "stream.s = default listen=9 udp udp",
                "stream.s: udp given twice",
            ),
            (
                "stream.s = default listen=9 timeout=0",
                "stream.s: timeout=0: a session would end at once",
            ),
            (
                "stream.s = default listen=9 timeout=soon",
                "`soon` is not a duration",
            ),
            (
                "stream.s = default listen=9 udp\nstream.s.a.example = default",
                "proxy.conf:3: stream.s.a.example: `stream.s` is `udp`: its datagrams carry no \
                 TLS hello",
            ),
            (
                "stream.s = default listen=9\nstream.s.alpn:h2 = default\nstream.s.ALPN:h2 = default",
                "proxy.conf:4: duplicate key `stream.s.ALPN:h2` (first set on line 3)",
            ),
            (
                "stream.s = default listen=9\nstream.s.alpn: = default",
                "stream.s.alpn:: `` is not a protocol's name",
            ),
            (
                "stream.s = default listen=9\nstream.s.alpn:h2 = default default",
                "stream.s.alpn:h2: `stream.<name>.alpn:h2 = <pool>` takes one pool",
            ),
            (
                "stream.a = default listen=127.0.0.1:53 udp\nstream.b = default listen=53 udp",
                "stream.b: 0.0.0.0:53 is also `stream.a`'s address and port",
            ),
            (
                "pool.u = unix:/run/dns.sock\nstream.s = u listen=53 udp",
                "pool `u`'s target unix:/run/dns.sock is a Unix socket, which datagrams cannot be",
            ),
            (
                "pool.t = 127.0.0.1:853 tls\nstream.s = t listen=53 udp",
                "pool `t`'s target 127.0.0.1:853 is spoken to over TLS",
            ),
            (
                "pool.p = 127.0.0.1:53 send_proxy\nstream.s = p listen=53 udp",
                "pool `p`'s target 127.0.0.1:53 is sent a PROXY header",
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

    /// A stream that ends TLS is chosen by the protocol agreed, which is
    /// one of its `alpn=` or none.
    #[test]
    fn a_tls_stream_s_protocol_key_names_one_it_may_agree() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let pem = dir.path().join("site.pem");
        std::fs::write(&pem, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
        let text = |alpn: &str| {
            format!(
                "tls_certificates = {}\nstream.s = default listen=9 tls {alpn}\n\
                 stream.s.alpn:h2 = default\n",
                pem.display()
            )
        };
        assert!(build(&text("alpn=h2,http/1.1")).is_ok());
        for (alpn, offered) in [("alpn=x-echo", "x-echo"), ("", "none")] {
            let e = build(&text(alpn)).unwrap_err();
            assert_eq!(
                e.message,
                format!(
                    "stream.s.alpn:h2: `stream.s` ends TLS, and agrees only the protocols of its \
                     alpn= ({offered}): `h2` is never agreed"
                )
            );
        }
    }

    #[test]
    fn host_names_choose_a_pool_the_most_specific_first() {
        let c = build(
            "pool.a = 127.0.0.1:2\npool.b = 127.0.0.1:3\npool.c = 127.0.0.1:4\n\
             stream.tls.*.example.com = a\n\
             stream.tls = default listen=443\n\
             stream.tls.*.shop.example.com = b\n\
             stream.tls.WWW.Example.COM = c\n\
             stream.tls.ALPN:acme-tls/1 = b\n\
             stream.tls.alpn:h2 = a\n\
             stream.plain = a listen=5432\n",
        )
        .unwrap();
        let tls = c.stream_named("tls").unwrap();
        let order: Vec<String> = tls.by_hello.iter().map(|b| b.key.to_string()).collect();
        assert_eq!(
            order,
            [
                "alpn:acme-tls/1",
                "alpn:h2",
                "www.example.com",
                "*.shop.example.com",
                "*.example.com"
            ]
        );
        assert!(tls.reads_hello() && !c.stream_named("plain").unwrap().reads_hello());
        for (host, pool) in [
            (Some("www.example.com"), "c"),
            (Some("x.shop.example.com"), "b"),
            (Some("shop.example.com"), "a"),
            (Some("example.com"), "default"),
            (None, "default"),
        ] {
            let (index, name) = tls.pool_for(host, &["http/1.1"]);
            assert_eq!(&**name, pool, "{host:?}");
            assert_eq!(
                index,
                ["default", "a", "b", "c"]
                    .iter()
                    .position(|p| *p == pool)
                    .unwrap()
            );
        }
        // A protocol offered comes before the host: the first key's that
        // the hello offers, in the order written.
        for (offered, pool) in [
            (&["acme-tls/1"][..], "b"),
            (&["h2", "acme-tls/1"], "b"),
            (&["h2", "http/1.1"], "a"),
            (&["H2"], "c"),
            (&[], "c"),
        ] {
            let (_, name) = tls.pool_for(Some("www.example.com"), offered);
            assert_eq!(&**name, pool, "{offered:?}");
        }
    }

    #[test]
    fn a_host_name_s_key_that_cannot_be_served_is_refused_at_its_line() {
        let base = "pool.a = 127.0.0.1:2\nstream.tls = default listen=443\n";
        for (text, says) in [
            ("stream.other.a.example = a", "proxy.conf:4: stream.other.a.example: there is no `stream.other`"),
            ("stream.tls.a.example = nope", "proxy.conf:4: stream.tls.a.example: no pool is named `nope`"),
            ("stream.tls.a.example = a b", "`stream.<name>.a.example = <pool>` takes one pool"),
            ("stream.tls.a.example =", "takes one pool"),
            ("stream.tls.a b = a", "`a b` is no host"),
            ("stream.tls.a.example = a\nstream.tls.A.Example = a", "proxy.conf:5: duplicate key `stream.tls.A.Example`"),
            (
                "pool.php = 127.0.0.1:9000 fastcgi\npool.php.fastcgi_root = /srv\n\
                 stream.tls.a.example = php",
                "proxy.conf:6: stream.tls.a.example: pool `php`'s target 127.0.0.1:9000 speaks FastCGI",
            ),
        ] {
            let message = refused(&format!("{base}{text}\n"));
            assert!(message.contains(says), "{text}:\n{message}\nshould say {says}");
        }
    }

    #[test]
    fn a_reload_keeps_the_running_listeners_with_the_pools_written_now() {
        let was = build("pool.a = 127.0.0.1:2\nstream.s = a listen=9000\nstream.s.x.example = a\n")
            .unwrap();
        // The same listeners: nothing to restart, the new pools in force.
        let mut next =
            build("pool.a = 127.0.0.1:2\npool.b = 127.0.0.1:3\nstream.s = b listen=9000\n")
                .unwrap();
        assert_eq!(next.keep_streams_of(&was), Ok(false));
        assert_eq!(
            next.stream_named("s")
                .unwrap()
                .pool_for(Some("x.example"), &[])
                .1
                .as_ref(),
            "b"
        );
        // Listening elsewhere: the running address, the pools written.
        let mut next = build("pool.b = 127.0.0.1:3\nstream.s = b listen=9001\n").unwrap();
        assert_eq!(next.keep_streams_of(&was), Ok(true));
        let kept = next.stream_named("s").unwrap();
        assert_eq!(
            (kept.listen.port(), kept.pool, &*kept.pool_name),
            (9000, 1, "b")
        );
        // The PROXY protocol turned on is the listener's: a restart, the
        // running one taking connections without it meanwhile.
        let mut next =
            build("pool.a = 127.0.0.1:2\nstream.s = a listen=9000 proxy_protocol\n").unwrap();
        assert_eq!(next.keep_streams_of(&was), Ok(true));
        assert!(!next.stream_named("s").unwrap().proxy_protocol);
        // Datagrams written where bytes are taken: a restart, the running
        // listener kept meanwhile.
        let mut next = build("pool.a = 127.0.0.1:2\nstream.s = a listen=9000 udp\n").unwrap();
        assert_eq!(next.keep_streams_of(&was), Ok(true));
        assert!(!next.stream_named("s").unwrap().udp);
        // Taken out: its pools found again by name, or the reload refused.
        let mut next = build("pool.z = 127.0.0.1:9\npool.a = 127.0.0.1:2\n").unwrap();
        assert_eq!(next.keep_streams_of(&was), Ok(true));
        let kept = next.stream_named("s").unwrap();
        assert_eq!((kept.pool, kept.by_hello[0].pool), (2, 2));
        let mut next = build("pool.z = 127.0.0.1:9\n").unwrap();
        let e = next.keep_streams_of(&was).unwrap_err();
        assert!(
            e.starts_with("stream.s listens until a restart: no pool is named `a`"),
            "{e}"
        );
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
