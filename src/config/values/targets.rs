//! Targets: `targets` as written, the addresses a name stands for, and
//! `check`'s account of them.

use super::scalars::{parse_duration, parse_fail_timeout, parse_max_fails, parse_number};
use crate::config::{AgentCheck, Config, Endpoint, Target, UnresolvedTargets, MAX_WEIGHT};
use crate::digits::percent_decoded;
use crate::http::send_proxy::ProxyVersion;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// `host:port[ weight=N][ max_conns=N][ backup][ down][ max_fails=N][ fail_timeout=D][ tls][ tls_name=NAME][ send_proxy|send_proxy_v2][ fastcgi][ check_port=N][ agent_port=N[ agent_addr=IP][ agent_inter=D][ agent_send=TEXT]], ...`
/// (`max_fails` and `fail_timeout` override the global keys for that
/// target only), or `unix:PATH` with the same options but TLS, or
/// `srv:NAME` with the same options, whose SRV records give addresses
/// and ports (asked of `resolver`, see [`crate::dns::srv`]); each
/// name is resolved once, here, so a
/// typo is a start-up error rather than a stream of 502s, and stands for a
/// target per address it gives (see [`addresses_of`] and [`Target::at`]).
/// A name that does not resolve but had addresses in the running
/// configuration (`last`, at a reload) keeps them, whatever
/// `unresolved_targets` says. Else, with `unresolved_targets = wait`, a
/// name that does not resolve is said and kept as written instead, in the
/// second list (see [`Config::unresolved`]).
pub(in crate::config) fn parse_targets(
    v: &str,
    resolver: Option<SocketAddr>,
    unresolved_targets: UnresolvedTargets,
    last: &LastAddresses,
) -> Result<(Vec<Target>, Vec<Target>), String> {
    let mut targets = Vec::new();
    let mut unresolved: Vec<Target> = Vec::new();
    for item in v.split(',') {
        let mut words = item.split_whitespace();
        let Some(name) = words.next() else {
            if v.trim().is_empty() {
                break;
            }
            return Err("empty entry in the targets list".to_string());
        };
        let mut weight = None;
        let mut max_conns = None;
        let mut max_fails = None;
        let mut fail_timeout = None;
        let mut backup = false;
        let mut down = false;
        let mut tls = false;
        let mut fastcgi = false;
        let mut tls_name = None;
        let mut send_proxy = None;
        let mut agent_port = None;
        let mut check_port = None;
        let mut agent_addr = None;
        let mut agent_inter = None;
        let mut agent_send: Option<Box<[u8]>> = None;
        let once = |key: &str| format!("target {name}: {key} given twice");
        let bad = |key: &str, m: String| format!("target {name}: {key}: {m}");
        for option in words {
            if option == "backup" {
                if backup {
                    return Err(once("backup"));
                }
                backup = true;
                continue;
            }
            if option == "down" {
                if down {
                    return Err(once("down"));
                }
                down = true;
                continue;
            }
            if option == "tls" {
                if tls {
                    return Err(once("tls"));
                }
                tls = true;
                continue;
            }
            if option == "fastcgi" {
                if fastcgi {
                    return Err(once("fastcgi"));
                }
                fastcgi = true;
                continue;
            }
            if let Some(version) = [ProxyVersion::V1, ProxyVersion::V2]
                .into_iter()
                .find(|v| v.option() == option)
            {
                if let Some(given) = send_proxy.replace(version) {
                    return Err(match given == version {
                        true => once(option),
                        false => format!(
                            "target {name}: send_proxy and send_proxy_v2 given both (one \
                             header per connection: choose the version its backend reads)"
                        ),
                    });
                }
                continue;
            }
            match option.split_once('=') {
                Some(("tls_name", _)) if tls_name.is_some() => return Err(once("tls_name")),
                Some(("tls_name", n)) => tls_name = Some(n),
                Some(("weight", _)) if weight.is_some() => return Err(once("weight")),
                Some(("weight", w)) => {
                    weight = Some(parse_number(w, 1..=MAX_WEIGHT).map_err(|m| bad("weight", m))?)
                }
                Some(("max_conns", _)) if max_conns.is_some() => return Err(once("max_conns")),
                Some(("max_conns", n)) => {
                    max_conns =
                        Some(parse_number(n, 1..=1_000_000).map_err(|m| bad("max_conns", m))?)
                }
                Some(("max_fails", _)) if max_fails.is_some() => return Err(once("max_fails")),
                Some(("max_fails", n)) => {
                    max_fails = Some(parse_max_fails(n).map_err(|m| bad("max_fails", m))?)
                }
                Some(("fail_timeout", _)) if fail_timeout.is_some() => {
                    return Err(once("fail_timeout"))
                }
                Some(("fail_timeout", d)) => {
                    fail_timeout = Some(parse_fail_timeout(d).map_err(|m| bad("fail_timeout", m))?)
                }
                Some(("agent_port", _)) if agent_port.is_some() => return Err(once("agent_port")),
                Some(("agent_port", n)) => {
                    let port = parse_number(n, 1..=65_535).map_err(|m| bad("agent_port", m))?;
                    agent_port = Some(port as u16);
                }
                Some(("check_port", _)) if check_port.is_some() => return Err(once("check_port")),
                Some(("check_port", n)) => {
                    let port = parse_number(n, 1..=65_535).map_err(|m| bad("check_port", m))?;
                    check_port = Some(port as u16);
                }
                Some(("agent_addr", _)) if agent_addr.is_some() => return Err(once("agent_addr")),
                Some(("agent_addr", a)) => {
                    let ip = (a.strip_prefix('[')).and_then(|a| a.strip_suffix(']'));
                    agent_addr = Some(ip.unwrap_or(a).parse::<IpAddr>().map_err(|_| {
                        bad(
                            "agent_addr",
                            format!("`{}` is not an IP address", a.escape_debug()),
                        )
                    })?);
                }
                Some(("agent_inter", _)) if agent_inter.is_some() => {
                    return Err(once("agent_inter"))
                }
                Some(("agent_inter", d)) => {
                    let every = parse_duration(d).map_err(|m| bad("agent_inter", m))?;
                    if every < Duration::from_millis(100) {
                        return Err(bad("agent_inter", "less than 100ms".into()));
                    }
                    agent_inter = Some(every);
                }
                Some(("agent_send", _)) if agent_send.is_some() => return Err(once("agent_send")),
                Some(("agent_send", text)) => {
                    let sent = percent_decoded(text).filter(|t| !t.is_empty() && t.len() <= 1024);
                    agent_send = Some(sent.map(Vec::into_boxed_slice).ok_or_else(|| {
                        bad(
                            "agent_send",
                            "give the text sent, 1 to 1024 bytes, `%XX` for a byte that is no \
                             visible character (`%0A` a new line, `%20` a space)"
                                .into(),
                        )
                    })?);
                }
                _ => {
                    return Err(format!(
                        "target {name}: unknown option `{option}` (expected weight=N, \
                         max_conns=N, backup or down; for passive health, max_fails=N or \
                         fail_timeout=D; for health checks at another port, check_port=N; \
                         for TLS, tls and tls_name=NAME; for a PROXY protocol header, \
                         send_proxy or send_proxy_v2; for a FastCGI server, fastcgi; \
                         for an agent, \
                         agent_port=N, agent_addr=IP, agent_inter=D and agent_send=TEXT)"
                    ))
                }
            }
        }
        let tls = match (tls, tls_name) {
            (false, None) => None,
            (false, Some(_)) => {
                return Err(format!(
                    "target {name}: tls_name= is for a target spoken to over TLS: add `tls`"
                ))
            }
            (true, tls_name) => {
                let host = match written(name)? {
                    Written::Unix(_) => {
                        return Err(format!(
                            "target {name}: tls over a Unix socket is not supported (it stays \
                             on this machine: speak plain HTTP to it)"
                        ))
                    }
                    Written::Address(addr) => addr.ip().to_string(),
                    Written::Name { host, .. } => host.to_string(),
                    Written::Srv(name) => service_domain(name).to_string(),
                };
                let name = crate::tls::backends::server_name(&host, tls_name)
                    .map_err(|m| format!("target {name}: tls_name: {m}"))?;
                Some(name)
            }
        };
        let agent = match agent_port {
            Some(port) => Some(AgentCheck {
                port,
                addr: agent_addr,
                interval: agent_inter,
                send: agent_send,
            }),
            None => {
                let given = [
                    ("agent_addr", agent_addr.is_some()),
                    ("agent_inter", agent_inter.is_some()),
                    ("agent_send", agent_send.is_some()),
                ];
                if let Some((key, _)) = given.iter().find(|(_, given)| *given) {
                    return Err(format!(
                        "target {name}: {key}= is for its agent: give agent_port=N too"
                    ));
                }
                None
            }
        };
        if agent.as_ref().is_some_and(|a| a.addr.is_none())
            && matches!(written(name)?, Written::Unix(_))
        {
            return Err(format!(
                "target {name}: agent_port= needs an address to ask the agent at, which a \
                 Unix socket has not: give it with agent_addr=IP"
            ));
        }
        if check_port.is_some() && matches!(written(name)?, Written::Unix(_)) {
            return Err(format!(
                "target {name}: check_port= is a port of its address, which a Unix socket \
                 has not: take it away"
            ));
        }
        if fastcgi && (tls.is_some() || send_proxy.is_some()) {
            let with = match send_proxy {
                Some(version) if tls.is_none() => version.option(),
                _ => "tls",
            };
            return Err(format!(
                "target {name}: fastcgi and {with} given both (a FastCGI server takes \
                 FastCGI records from the first byte, no TLS and no PROXY header)"
            ));
        }
        // As written; `at` gives it each address found.
        let as_written = Target {
            name: name.to_string(),
            addr: Endpoint::Tcp(SocketAddr::from(([0, 0, 0, 0], 0))),
            weight: weight.unwrap_or(1),
            backup,
            down,
            max_conns,
            max_fails,
            fail_timeout,
            tls,
            send_proxy,
            agent,
            check_port,
            fastcgi,
            record_weight: weight.is_none() && matches!(written(name)?, Written::Srv(_)),
            record_backup: false,
        };
        // A name stands for a target per address it gives.
        let mut spread = |answer: std::io::Result<Vec<Found>>| {
            let found = match answer.or_else(|e| last.kept(name, e)) {
                Ok(answer) => as_written.addresses_in(answer),
                Err(_) if unresolved.iter().any(|t| t.name == name) => {
                    return Err(format!("target {name} is listed twice"))
                }
                Err(e) if unresolved_targets == UnresolvedTargets::Wait => {
                    log::warn!(
                        "target {name} does not resolve yet: {e}; it has no address until it does"
                    );
                    unresolved.push(as_written.clone());
                    return Ok(Vec::new());
                }
                Err(e) => return Err(format!("target `{name}` does not resolve: {e}")),
            };
            if let Some(warning) = found.cap_warning(name) {
                log::warn!("{warning}");
            }
            Ok::<_, String>(as_written.at(&found.used))
        };
        let found = match written(name)? {
            // A path, not a name: nothing to look up.
            Written::Unix(path) => vec![Target {
                addr: Endpoint::Unix(path.to_path_buf()),
                ..as_written.clone()
            }],
            Written::Address(addr) => as_written.at(&[Found::from(addr)]),
            Written::Name { host, port } => {
                spread(lookup(host, port).map(|a| a.into_iter().map(Found::from).collect()))?
            }
            Written::Srv(service) => {
                spread(crate::dns::srv::lookup(service, resolver).map(|a| a.found))?
            }
        };
        for target in found {
            // By address: `127.0.0.1:80` and `localhost:80` are one backend.
            if let Some(twin) = targets.iter().find(|t: &&Target| t.addr == target.addr) {
                return Err(format!(
                    "target {name} is listed twice (as {}, both {}; use weight=N instead)",
                    twin.name, target.addr
                ));
            }
            targets.push(target);
        }
    }
    Ok((targets, unresolved))
}

/// `check`'s account of the targets: each with its address and options,
/// and a name that gives several addresses said once, before its targets.
/// A target's `max_fails` and `fail_timeout` are said where they are not
/// the global keys' (those lines come before, with the other keys).
/// A name that gave no address yet comes last, said so.
pub fn target_lines(config: &Config) -> Vec<String> {
    let targets: Vec<&Target> = config.written_targets().collect();
    let mut lines = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        let written = target.as_written();
        let first_of_several =
            written != target.name && !targets[..i].iter().any(|t| t.as_written() == written);
        if first_of_several {
            let count = targets.iter().filter(|t| t.as_written() == written).count();
            lines.push(format!(
                "# target {written} resolves to {count} addresses, each a target of its own:"
            ));
        }
        let mut options = format!("weight {}", target.weight);
        if let Some(n) = target.max_conns {
            options.push_str(&format!(", max_conns {n}"));
        }
        if let Some(name) = &target.tls {
            options.push_str(&format!(", tls for {}", name.to_str()));
        }
        if let Some(version) = target.send_proxy {
            options.push_str(&format!(", {}", version.option()));
        }
        if target.fastcgi {
            options.push_str(&format!(
                ", FastCGI with scripts under {}",
                config.fastcgi.root
            ));
        }
        if let Some(port) = target.check_port {
            options.push_str(&format!(", checked on port {port}"));
        }
        if let Some(agent) = &target.agent {
            options.push_str(&format!(", agent on port {}", agent.port));
            if let Some(ip) = agent.addr {
                options.push_str(&format!(" of {ip}"));
            }
            if let Some(every) = agent.interval {
                options.push_str(&format!(" every {every:?}"));
            }
            if let Some(text) = &agent.send {
                let text = crate::config::printable(&String::from_utf8_lossy(text));
                options.push_str(&format!(" sent `{text}`"));
            }
        }
        if target.backup {
            options.push_str(", backup");
        }
        if target.down {
            options.push_str(", down (in maintenance from the start)");
        }
        let max_fails = config.max_fails_of(target);
        if max_fails != config.max_fails {
            options.push_str(&format!(", max_fails {max_fails}"));
        }
        let fail_timeout = config.fail_timeout_of(target);
        if fail_timeout != config.fail_timeout {
            options.push_str(&format!(", fail_timeout {fail_timeout:?}"));
        }
        let at = match target.has_no_address() {
            true => "(no address yet)".to_string(),
            false => target.addr.to_string(),
        };
        lines.push(format!("# target {} -> {at} ({options})", target.name));
    }
    lines
}

/// How a target is written: as an address, as a name for the system
/// resolver, as the name of SRV records (`srv:NAME`: addresses and
/// ports; names of both kinds are the only targets re-resolved while the
/// proxy runs, see `resolve_interval`), or as a Unix socket's path
/// (`unix:PATH`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Written<'a> {
    Address(SocketAddr),
    Name {
        host: &'a str,
        port: u16,
    },
    /// The name after `srv:` (`_http._tcp.app.service.consul`).
    Srv(&'a str),
    Unix(&'a Path),
}

/// The most addresses one name stands for: past it, the first
/// [`MAX_ADDRESSES_PER_NAME`] in sorted order are used (and a warning
/// says so), so that a name answering with a whole subnet does not
/// become thousands of targets, each with its health checker thread.
pub const MAX_ADDRESSES_PER_NAME: usize = 64;

/// The addresses a target as written stands for: see [`addresses_of`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Addresses {
    /// Without duplicates, of one family, the primaries first, each part
    /// sorted (see [`Found::order`]); at most [`MAX_ADDRESSES_PER_NAME`].
    pub used: Vec<Found>,
    /// Addresses of that family past the cap, not used.
    pub left_out: usize,
}

impl Addresses {
    /// What to warn of, if anything was left out.
    pub fn cap_warning(&self, name: &str) -> Option<String> {
        (self.left_out > 0).then(|| {
            format!(
                "target {name} resolves to {} addresses; only the first {} (sorted) are used",
                self.used.len() + self.left_out,
                self.used.len()
            )
        })
    }
}

/// The addresses each target written as a name stands at in the running
/// configuration, by the name as written: what a reload keeps for a name
/// that does not resolve at that moment, as HAProxy's `init-addr last`
/// does, and as `resolve_interval` keeps them when a lookup fails. A
/// moment's DNS failure must not take a pool's backends away, nor refuse
/// a reload made for something else: the name resolved before, so it is
/// no typo. Empty at start-up and for `check`.
#[derive(Clone, Debug, Default)]
pub struct LastAddresses(Arc<HashMap<String, Vec<Found>>>);

impl LastAddresses {
    /// From each name as written and what its targets are at; a name
    /// with no address yet has none to keep.
    pub fn new(names: impl IntoIterator<Item = (String, Vec<Found>)>) -> LastAddresses {
        let known = names.into_iter().filter(|(_, found)| !found.is_empty());
        LastAddresses(Arc::new(known.collect()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What `name`, whose lookup failed with `e`, is taken to give: its
    /// last addresses, with a warning naming it and `e`; else `e`.
    fn kept(&self, name: &str, e: std::io::Error) -> std::io::Result<Vec<Found>> {
        let Some(found) = self.0.get(name) else {
            return Err(e);
        };
        log::warn!(
            "{}, as before this reload",
            does_not_resolve(name, &e, found)
        );
        Ok(found.clone())
    }
}

/// The warning for a name that did not resolve and keeps the addresses
/// `was` (or has none until it resolves): `target app:8000 does not
/// resolve: ...; it stays at 10.0.0.5:8000`.
pub fn does_not_resolve(name: &str, e: &std::io::Error, was: &[Found]) -> String {
    let stays = match was.is_empty() {
        true => "it has no address until it does".into(),
        false => format!("it stays at {}", listed(was)),
    };
    format!("target {name} does not resolve: {e}; {stays}")
}

/// `10.0.0.5:8000, 10.0.0.6:8000 (weight 2, backup)`; `no address` for
/// a name that had none yet (see [`Config::unresolved`]).
pub fn listed(addrs: &[Found]) -> String {
    if addrs.is_empty() {
        return "no address".into();
    }
    let listed: Vec<String> = addrs.iter().map(Found::to_string).collect();
    listed.join(", ")
}

/// An address a name gives, with what its SRV record says of it: a
/// name the system resolver looks up gives neither a weight nor a
/// backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Found {
    pub addr: SocketAddr,
    /// Its record's weight, 1 to [`MAX_WEIGHT`]; `None`: the one written
    /// for the name (see [`Target::at`]).
    pub weight: Option<u32>,
    /// Its record's priority is above the lowest: a fallback, used as a
    /// `backup` target is.
    pub backup: bool,
}

impl Found {
    /// The order a name's addresses are used in: primaries first, so
    /// that the cap leaves backups out before them; then by address, so
    /// that the order a DNS server rotates its answers in does not count.
    pub fn order(&self) -> (bool, SocketAddr) {
        (self.backup, self.addr)
    }

    /// Of the records of one address, the one it takes is the highest so
    /// ranked: the primary, else the larger weight (nginx Plus's choice).
    fn rank(&self) -> (bool, Option<u32>) {
        (!self.backup, self.weight)
    }

    /// What `target` was made of, as [`Target::at`] made it: the weight
    /// and backup its record gave it, where they are the record's.
    pub fn of(target: &Target) -> Option<Found> {
        Some(Found {
            addr: target.addr.tcp()?,
            weight: target.record_weight.then_some(target.weight),
            backup: target.record_backup,
        })
    }
}

impl From<SocketAddr> for Found {
    fn from(addr: SocketAddr) -> Found {
        Found {
            addr,
            weight: None,
            backup: false,
        }
    }
}

/// `10.0.0.5:8000`, and what its record gave it: `10.0.0.5:8000 (weight
/// 3, backup)`.
impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.addr)?;
        match (self.weight, self.backup) {
            (None, false) => Ok(()),
            (None, true) => write!(f, " (backup)"),
            (Some(w), false) => write!(f, " (weight {w})"),
            (Some(w), true) => write!(f, " (weight {w}, backup)"),
        }
    }
}

/// The addresses of a resolver's answer that become targets: those of
/// the family of its first address (a dual-stack `localhost` gives `::1`
/// and `127.0.0.1`, a backend usually listens on one of them: two
/// targets, one refusing every connection, is nginx's known annoyance),
/// each once (of two SRV records giving one, as `Found::rank` says),
/// sorted (see [`Found::order`]), so that the set does not depend on the
/// order a DNS server rotates its answers in, and at most
/// [`MAX_ADDRESSES_PER_NAME`] of them. The one rule for start-up, reloads
/// and re-resolution alike.
pub fn addresses_of<T: Into<Found>>(answer: impl IntoIterator<Item = T>) -> Addresses {
    let mut answer = answer.into_iter().map(Into::into).peekable();
    let Some(family) = answer.peek().map(|f: &Found| f.addr.is_ipv4()) else {
        return Addresses::default();
    };
    let mut used: Vec<Found> = answer.filter(|f| f.addr.is_ipv4() == family).collect();
    used.sort_unstable_by(|a, b| (a.addr.cmp(&b.addr)).then_with(|| b.rank().cmp(&a.rank())));
    used.dedup_by_key(|f| f.addr);
    used.sort_unstable_by_key(Found::order);
    let left_out = used.len().saturating_sub(MAX_ADDRESSES_PER_NAME);
    used.truncate(MAX_ADDRESSES_PER_NAME);
    Addresses { used, left_out }
}

/// Every address the system resolver gives for `host`, in its order
/// (getaddrinfo's, RFC 6724); never none. Blocks for as long as the
/// resolver takes.
pub fn lookup(host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
    let found: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    if found.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no address returned",
        ));
    }
    Ok(found)
}

/// What a target as written in `targets` is: an address, a name and a
/// port, or a Unix socket's path; an error says what is wrong with it.
pub fn written(name: &str) -> Result<Written<'_>, String> {
    // Before the scheme check: `unix:///run/app.sock` (Docker's spelling)
    // is the path `///run/app.sock`, which is `/run/app.sock`.
    if let Some(path) = name.strip_prefix("unix:") {
        return unix_path(path).map(Written::Unix);
    }
    if let Some(service) = name.strip_prefix("srv:") {
        return srv_name(service).map(Written::Srv);
    }
    if let Some((scheme, rest)) = name.split_once("://") {
        let rest = rest.trim_end_matches('/');
        let hint = match scheme.to_ascii_lowercase().as_str() {
            "http" => format!(" (`{rest}`)"),
            "https" if rest.ends_with(']') || !rest.contains(':') => {
                format!(", and `tls` for HTTPS (`{rest}:443 tls`)")
            }
            "https" => format!(", and `tls` for HTTPS (`{rest} tls`)"),
            _ => String::new(),
        };
        return Err(format!(
            "target `{name}`: write host:port, without a scheme{hint}"
        ));
    }
    // Each address of a name giving several is called `name@address`
    // (see `Target::as_written`); no host has an `@` in it.
    if name.contains('@') {
        return Err(format!(
            "target `{name}`: `@` has no place in host:port (write a name, or one address)"
        ));
    }
    // `[::1]`: its last colon is the address's, not a port's.
    let (host, port) = (name.rsplit_once(':'))
        .filter(|(_, port)| !port.ends_with(']'))
        .ok_or_else(|| format!("target `{name}` needs a port (host:port)"))?;
    if host.is_empty() {
        return Err(format!("target `{name}` has no host"));
    }
    let port = parse_number(port, 1..=65535).map_err(|m| format!("target `{name}`: port {m}"))?;
    let port = port as u16;
    // Brackets are for IPv6 addresses (RFC 3986 §3.2.2), and an IPv6
    // address needs them: `::1:80` could be an address without a port.
    if let Some(inner) = host.strip_prefix('[') {
        return inner
            .strip_suffix(']')
            .and_then(|ip| ip.parse::<std::net::Ipv6Addr>().ok())
            .map(|ip| Written::Address(SocketAddr::new(ip.into(), port)))
            .ok_or_else(|| {
                format!("target `{name}`: `{host}` is not an IPv6 address in brackets")
            });
    }
    if host.contains(':') {
        return Err(format!(
            "target `{name}`: an IPv6 address goes in brackets, as `[{host}]:{port}`"
        ));
    }
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(Written::Address(SocketAddr::new(ip, port))),
        Err(_) => Ok(Written::Name { host, port }),
    }
}

/// The longest name a `srv:` target may have, without a final dot (RFC
/// 1035 §2.3.4: 255 bytes in wire form, its length bytes counted).
const MAX_SRV_NAME: usize = 253;

/// The name of a `srv:NAME` target: a DNS name (letters, digits, `-` and
/// `_`, as `_http._tcp.app.service.consul`; labels of 1 to 63 bytes, at
/// most 253 bytes in all, a final dot allowed), without a port, which
/// its records give.
fn srv_name(service: &str) -> Result<&str, String> {
    let name = format!("srv:{service}");
    let name = name.escape_debug();
    if service.is_empty() {
        return Err(format!(
            "target `{name}` has no name (write srv:_http._tcp.app.service.consul)"
        ));
    }
    if service.contains(':') {
        return Err(format!(
            "target `{name}`: an SRV name takes no port, its records give them"
        ));
    }
    let bare = service.strip_suffix('.').unwrap_or(service);
    if bare.len() > MAX_SRV_NAME {
        return Err(format!(
            "target `{name}`: the name is {} bytes, and a DNS name is at most {MAX_SRV_NAME}",
            bare.len()
        ));
    }
    for label in bare.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!(
                "target `{name}`: a label of a DNS name is 1 to 63 bytes, not {}",
                label.len()
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return Err(format!(
                "target `{name}`: `{}` has no place in a DNS name (letters, digits, `-`, `_` \
                 and dots between labels)",
                c.escape_debug()
            ));
        }
    }
    Ok(service)
}

/// The domain a `srv:` name is of: the name without the service and
/// protocol labels that begin with `_` (`app.service.consul` for
/// `_http._tcp.app.service.consul`), as RFC 6125 §6.2.1 takes it for a
/// certificate's name. It is the TLS server name of such a target's
/// addresses and, with each one's port, its `Host` where the proxy
/// writes one (a request without, a health check).
pub fn service_domain(service: &str) -> &str {
    let mut domain = service.trim_end_matches('.');
    for _ in 0..2 {
        match domain.split_once('.') {
            Some((label, rest)) if label.starts_with('_') => domain = rest,
            _ => break,
        }
    }
    domain
}

/// `resolver`: a DNS server's `<ip>:<port>` or `<ip>` (port 53), an IPv6
/// address in brackets with a port; empty: `None`.
pub(in crate::config) fn parse_resolver(v: &str) -> Result<Option<SocketAddr>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    let addr = match v.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            let ip = v.strip_prefix('[').and_then(|v| v.strip_suffix(']'));
            let ip = ip.unwrap_or(v).parse::<IpAddr>().map_err(|_| {
                format!(
                    "`{}` is not a DNS server's address: write <ip>:<port> or <ip> (port 53), \
                     as 127.0.0.1:8600 for Consul's",
                    v.escape_debug()
                )
            })?;
            SocketAddr::new(ip, crate::dns::srv::DNS_PORT)
        }
    };
    if addr.port() == 0 {
        return Err(format!("`{v}`: port 0 is no DNS server's"));
    }
    Ok(Some(addr))
}

/// The longest path a Unix socket may be reached at: `sun_path` of
/// `sockaddr_un` less its terminating NUL (107 bytes on Linux, 103 on
/// the BSDs and macOS). A longer one cannot be connected to at all.
pub fn max_unix_path() -> usize {
    // SAFETY: `sockaddr_un` is plain integers and arrays of them, for
    // which all-zero is a valid value.
    let addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_path.len() - 1
}

/// The path of a `unix:PATH` target: not empty, no NUL byte (the kernel
/// would end it there, and connect to another socket) nor other control
/// character, and short enough for `sockaddr_un`. Whether a socket is
/// there is not asked: a backend may well start after the proxy, and
/// until it does the target fails as a refused TCP connection does.
fn unix_path(path: &str) -> Result<&Path, String> {
    let name = format!("unix:{path}");
    let name = name.escape_debug();
    if path.is_empty() {
        return Err(format!(
            "target `{name}` has no path (write unix:/run/app.sock)"
        ));
    }
    if path.contains('\0') {
        return Err(format!("target `{name}`: a path holds no NUL byte"));
    }
    // The name goes as it is into the access log's `upstream=`, the
    // state file and `check`'s lines, where one would garble the line.
    if path.chars().any(char::is_control) {
        return Err(format!(
            "target `{name}`: the path holds a control character"
        ));
    }
    let max = max_unix_path();
    if path.len() > max {
        return Err(format!(
            "target `{name}`: the path is {} bytes, and a Unix socket's path is at most {max}",
            path.len()
        ));
    }
    Ok(Path::new(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Targets as `targets` reads them, no `srv:` among them.
    fn parse_targets(v: &str) -> Result<Vec<Target>, String> {
        let none = LastAddresses::default();
        super::parse_targets(v, None, UnresolvedTargets::Refuse, &none).map(|(targets, _)| targets)
    }

    #[test]
    fn an_srv_target_is_a_dns_name_without_a_port() {
        assert_eq!(
            written("srv:_http._tcp.app.service.consul"),
            Ok(Written::Srv("_http._tcp.app.service.consul"))
        );
        assert_eq!(written("srv:app.test."), Ok(Written::Srv("app.test.")));
        let longest = vec!["a".repeat(63); 4].join(".");
        let longest = &longest[..253];
        assert_eq!(
            written(&format!("srv:{longest}")),
            Ok(Written::Srv(longest))
        );
        for (bad, says) in [
            ("srv:", "has no name"),
            ("srv:_http._tcp.app.test:80", "takes no port"),
            ("srv:_http.._tcp", "1 to 63 bytes, not 0"),
            (
                &format!("srv:{}.test", "a".repeat(64)),
                "1 to 63 bytes, not 64",
            ),
            (&format!("srv:{longest}a"), "at most 253"),
            ("srv:_http._tcp.app test", "` ` has no place"),
            ("srv:_http._tcp.app/x", "`/` has no place"),
            ("srv:app@10.0.0.1", "`@` has no place"),
            ("srv:a\u{1}b", "has no place"),
        ] {
            let e = written(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
            assert!(!e.contains('\u{1}'), "{bad:?}: {e}");
            // The options are refused before any lookup.
            assert!(parse_targets(&format!("{bad} weight=2")).is_err());
        }
    }

    #[test]
    fn an_srv_names_domain_is_the_name_without_its_service_labels() {
        assert_eq!(
            service_domain("_http._tcp.app.service.consul"),
            "app.service.consul"
        );
        assert_eq!(service_domain("_http._tcp.App.test."), "App.test");
        assert_eq!(service_domain("app.test"), "app.test");
        assert_eq!(service_domain("_a._b._c.test"), "_c.test");
    }

    #[test]
    fn a_resolver_is_an_address_with_port_53_unless_one_is_given() {
        let ok = |v: &str| parse_resolver(v).unwrap();
        assert_eq!(ok(""), None);
        assert_eq!(ok("127.0.0.1:8600"), "127.0.0.1:8600".parse().ok());
        assert_eq!(ok("10.0.0.53"), "10.0.0.53:53".parse().ok());
        assert_eq!(ok("::1"), "[::1]:53".parse().ok());
        assert_eq!(ok("[::1]"), "[::1]:53".parse().ok());
        assert_eq!(ok("[::1]:8600"), "[::1]:8600".parse().ok());
        for bad in [
            "consul:8600",
            "127.0.0.1:",
            "127.0.0.1:0",
            "1.2.3.4:99999",
            "fe80::1%eth0",
        ] {
            assert!(parse_resolver(bad).is_err(), "{bad}");
        }
    }

    fn addrs(list: &[&str]) -> Vec<Found> {
        (list.iter())
            .map(|a| a.parse::<SocketAddr>().unwrap().into())
            .collect()
    }

    #[test]
    fn only_the_family_of_the_first_answer_is_used() {
        // A dual-stack localhost: the backend listens on one of the two.
        let found = addresses_of(addrs(&["[::1]:3000", "127.0.0.1:3000"]));
        assert_eq!(found.used, addrs(&["[::1]:3000"]));
        let found = addresses_of(addrs(&["127.0.0.1:3000", "[::1]:3000", "127.0.0.2:3000"]));
        assert_eq!(found.used, addrs(&["127.0.0.1:3000", "127.0.0.2:3000"]));
        assert_eq!(found.left_out, 0);
    }

    #[test]
    fn addresses_are_sorted_and_each_used_once() {
        let a = addresses_of(addrs(&[
            "10.0.0.7:80",
            "10.0.0.5:80",
            "10.0.0.7:80",
            "10.0.0.6:80",
        ]));
        let b = addresses_of(addrs(&["10.0.0.6:80", "10.0.0.7:80", "10.0.0.5:80"]));
        assert_eq!(
            a.used,
            addrs(&["10.0.0.5:80", "10.0.0.6:80", "10.0.0.7:80"])
        );
        assert_eq!(a, b, "the order of the answer does not matter");
        assert_eq!(addresses_of(Vec::<Found>::new()), Addresses::default());
    }

    #[test]
    fn a_name_gives_at_most_the_first_addresses_in_sorted_order() {
        // Given from the highest down, so the first are not the first given.
        let answer: Vec<SocketAddr> = (0..100u8)
            .rev()
            .map(|i| SocketAddr::from(([10, 0, 0, i], 80)))
            .collect();
        let found = addresses_of(answer);
        assert_eq!(found.used.len(), MAX_ADDRESSES_PER_NAME);
        assert_eq!(found.left_out, 100 - MAX_ADDRESSES_PER_NAME);
        assert_eq!(found.used[0].addr, SocketAddr::from(([10, 0, 0, 0], 80)));
        assert_eq!(
            found.used[MAX_ADDRESSES_PER_NAME - 1].addr,
            SocketAddr::from(([10, 0, 0, MAX_ADDRESSES_PER_NAME as u8 - 1], 80))
        );
        assert_eq!(
            found.cap_warning("app:80").as_deref(),
            Some("target app:80 resolves to 100 addresses; only the first 64 (sorted) are used")
        );
        let exactly = addresses_of((0..64u8).map(|i| SocketAddr::from(([10, 0, 0, i], 80))));
        assert_eq!((exactly.used.len(), exactly.left_out), (64, 0));
        assert_eq!(exactly.cap_warning("app:80"), None, "nothing to warn of");
        let one_past = addresses_of((0..65u8).map(|i| SocketAddr::from(([10, 0, 0, i], 80))));
        assert_eq!(
            one_past.cap_warning("app:80").as_deref(),
            Some("target app:80 resolves to 65 addresses; only the first 64 (sorted) are used")
        );
    }

    #[test]
    fn an_agents_options_are_read_each_once_beside_its_port() {
        let [target] = &parse_targets(
            "127.0.0.1:1 agent_port=9 agent_addr=[::1] agent_inter=100ms agent_send=up%0A",
        )
        .unwrap()[..] else {
            panic!("one target");
        };
        let agent = target.agent.as_ref().unwrap();
        assert_eq!(agent.port, 9);
        assert_eq!(agent.addr, "::1".parse().ok());
        assert_eq!(agent.interval, Some(Duration::from_millis(100)));
        assert_eq!(agent.send.as_deref(), Some(&b"up\n"[..]));
        // The bounds the README gives: asked at most every 100ms, a text
        // of 1 to 1024 bytes.
        let longest = format!("127.0.0.1:1 agent_port=9 agent_send={}", "a".repeat(1024));
        assert!(parse_targets(&longest).is_ok());
        for (bad, says) in [
            ("agent_inter=99ms", "agent_inter: less than 100ms"),
            (
                &format!("agent_send={}", "a".repeat(1025)),
                "give the text sent",
            ),
            ("agent_port=10", "agent_port given twice"),
            ("agent_addr=::1 agent_addr=::2", "agent_addr given twice"),
            ("agent_inter=1s agent_inter=2s", "agent_inter given twice"),
            ("agent_send=a agent_send=b", "agent_send given twice"),
        ] {
            let e = parse_targets(&format!("127.0.0.1:1 agent_port=9 {bad}")).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn fastcgi_is_a_word_given_once_and_check_says_where_the_scripts_are() {
        let targets = parse_targets("127.0.0.1:9000 fastcgi, unix:/run/php.sock fastcgi").unwrap();
        assert!(targets.iter().all(|t| t.fastcgi));
        let mut config = Config::with_targets(targets);
        config.fastcgi.root = "/srv/www".into();
        assert_eq!(
            target_lines(&config),
            [
                "# target 127.0.0.1:9000 -> 127.0.0.1:9000 (weight 1, FastCGI with scripts under \
                 /srv/www)",
                "# target unix:/run/php.sock -> unix:/run/php.sock (weight 1, FastCGI with \
                 scripts under /srv/www)",
            ]
        );
        let e = parse_targets("127.0.0.1:9000 fastcgi fastcgi").unwrap_err();
        assert!(e.contains("fastcgi given twice"), "{e}");
    }

    #[test]
    fn check_port_is_a_port_given_once_and_refused_on_a_unix_socket() {
        let targets = parse_targets("127.0.0.1:1 check_port=8081, 127.0.0.1:2").unwrap();
        let ports: Vec<_> = targets.iter().map(|t| t.check_port).collect();
        assert_eq!(ports, [Some(8081), None]);
        assert_eq!(
            target_lines(&Config::with_targets(targets)),
            [
                "# target 127.0.0.1:1 -> 127.0.0.1:1 (weight 1, checked on port 8081)",
                "# target 127.0.0.1:2 -> 127.0.0.1:2 (weight 1)",
            ]
        );
        for (bad, says) in [
            (
                "127.0.0.1:1 check_port=0",
                "target 127.0.0.1:1: check_port: ",
            ),
            (
                "127.0.0.1:1 check_port=65536",
                "target 127.0.0.1:1: check_port: ",
            ),
            (
                "127.0.0.1:1 check_port=1 check_port=2",
                "check_port given twice",
            ),
            (
                "unix:/run/app.sock check_port=8081",
                "target unix:/run/app.sock: check_port= is a port of its address, which a \
                 Unix socket has not",
            ),
        ] {
            let e = parse_targets(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    fn written_as(name: &str) -> Target {
        Target {
            name: name.into(),
            addr: Endpoint::Tcp(SocketAddr::from(([0, 0, 0, 0], 0))),
            weight: 3,
            backup: true,
            down: false,
            max_conns: Some(7),
            max_fails: None,
            fail_timeout: None,
            tls: None,
            send_proxy: None,
            agent: None,
            check_port: None,
            fastcgi: false,
            record_weight: false,
            record_backup: false,
        }
    }

    #[test]
    fn a_name_giving_one_address_is_the_target_it_always_was() {
        let [one] = &written_as("app:8000").at(&addrs(&["10.0.0.5:8000"]))[..] else {
            panic!("one target");
        };
        assert_eq!(one.name, "app:8000");
        assert_eq!(one.as_written(), "app:8000");
        assert_eq!(one.addr.tcp(), "10.0.0.5:8000".parse().ok());
        assert_eq!((one.weight, one.backup, one.max_conns), (3, true, Some(7)));
        // The sticky cookie hashes the name: as before for such a target.
        assert_eq!(
            crate::upstream::sticky::id_of(&one.name),
            crate::upstream::sticky::id_of("app:8000")
        );
    }

    #[test]
    fn each_address_of_a_name_giving_several_is_a_target_named_by_it() {
        let several = addrs(&["10.0.0.5:8000", "[fd00::6]:8000"]);
        let targets = written_as("app:8000").at(&several);
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["app:8000@10.0.0.5:8000", "app:8000@[fd00::6]:8000"]);
        for (t, addr) in targets.iter().zip(&several) {
            assert_eq!(t.addr, Endpoint::Tcp(addr.addr));
            assert_eq!(t.as_written(), "app:8000");
            assert_eq!((t.weight, t.backup, t.max_conns), (3, true, Some(7)));
            // Spread again from one of its own targets: the same.
            assert_eq!(t.at(&several), targets);
        }
        // An address keeps its name whatever else the name gives.
        let more = written_as("app:8000").at(&addrs(&["10.0.0.4:8000", "10.0.0.5:8000"]));
        assert_eq!(more[1].name, targets[0].name);
    }

    /// `srv:NAME` as written without options, then with `extra` on it.
    fn srv_written(extra: impl FnOnce(&mut Target)) -> Target {
        let mut t = Target {
            record_weight: true,
            ..Target::new("srv:_http._tcp.app.test", "0.0.0.0:0".parse().unwrap())
        };
        extra(&mut t);
        t
    }

    /// What an SRV lookup gives: two primaries of weights 3 and 0 (so
    /// 1), and a backup of weight 5 at one of their addresses too.
    fn srv_answer() -> Vec<Found> {
        let found = |addr: &str, weight, backup| Found {
            addr: addr.parse().unwrap(),
            weight: Some(weight),
            backup,
        };
        vec![
            found("10.0.0.6:80", 1, false),
            found("10.0.0.5:80", 3, false),
            found("10.0.0.9:80", 5, true),
            found("10.0.0.5:80", 5, true),
        ]
    }

    /// Each target's address, weight and backup.
    fn shares(targets: &[Target]) -> Vec<(String, u32, bool)> {
        (targets.iter())
            .map(|t| (t.addr.to_string(), t.weight, t.backup))
            .collect()
    }

    #[test]
    fn an_srv_names_addresses_have_their_records_weights_and_priorities() {
        let written = srv_written(|_| {});
        let targets = written.at(&written.addresses_in(srv_answer()).used);
        assert_eq!(
            shares(&targets),
            [
                ("10.0.0.5:80".into(), 3, false),
                ("10.0.0.6:80".into(), 1, false),
                ("10.0.0.9:80".into(), 5, true),
            ]
        );
        // Spread again from any of them, a backup too: the same.
        for t in &targets {
            assert_eq!(t.at(&t.addresses_in(srv_answer()).used), targets);
        }
        assert_eq!(
            target_lines(&Config::with_targets(targets))[1..],
            [
                "# target srv:_http._tcp.app.test@10.0.0.5:80 -> 10.0.0.5:80 (weight 3)",
                "# target srv:_http._tcp.app.test@10.0.0.6:80 -> 10.0.0.6:80 (weight 1)",
                "# target srv:_http._tcp.app.test@10.0.0.9:80 -> 10.0.0.9:80 (weight 5, backup)",
            ]
        );
    }

    #[test]
    fn weight_written_for_an_srv_name_is_every_addresss() {
        let written = srv_written(|t| (t.weight, t.record_weight) = (2, false));
        let targets = written.at(&written.addresses_in(srv_answer()).used);
        assert_eq!(
            shares(&targets),
            [
                ("10.0.0.5:80".into(), 2, false),
                ("10.0.0.6:80".into(), 2, false),
                ("10.0.0.9:80".into(), 2, true),
            ]
        );
    }

    #[test]
    fn backup_written_for_an_srv_name_makes_the_primaries_backups_and_drops_the_rest() {
        let written = srv_written(|t| t.backup = true);
        let targets = written.at(&written.addresses_in(srv_answer()).used);
        assert_eq!(
            shares(&targets),
            [
                ("10.0.0.5:80".into(), 3, true),
                ("10.0.0.6:80".into(), 1, true)
            ]
        );
        assert!(targets.iter().all(|t| !t.record_backup));
        for t in &targets {
            assert_eq!(t.at(&t.addresses_in(srv_answer()).used), targets);
        }
    }

    #[test]
    fn check_lists_each_address_of_a_name_under_the_name() {
        let mut targets = vec![Target {
            send_proxy: Some(ProxyVersion::V2),
            ..Target::new("10.0.0.1:80", "10.0.0.1:80".parse().unwrap())
        }];
        targets.extend(written_as("app:80").at(&addrs(&["10.0.0.5:80", "10.0.0.6:80"])));
        targets.extend(written_as("db:80").at(&addrs(&["10.0.0.9:80"])));
        assert_eq!(
            target_lines(&Config::with_targets(targets)),
            [
                "# target 10.0.0.1:80 -> 10.0.0.1:80 (weight 1, send_proxy_v2)",
                "# target app:80 resolves to 2 addresses, each a target of its own:",
                "# target app:80@10.0.0.5:80 -> 10.0.0.5:80 (weight 3, max_conns 7, backup)",
                "# target app:80@10.0.0.6:80 -> 10.0.0.6:80 (weight 3, max_conns 7, backup)",
                "# target db:80 -> 10.0.0.9:80 (weight 3, max_conns 7, backup)",
            ]
        );
    }

    #[test]
    fn a_unix_target_is_its_path_with_the_options_of_any_target() {
        let targets = parse_targets(
            "unix:/run/app.sock weight=2 max_conns=4 backup max_fails=3 fail_timeout=30s, \
             unix:run/app@1.sock, 10.0.0.5:8000",
        )
        .unwrap();
        let [app, relative, tcp] = &targets[..] else {
            panic!("three targets: {targets:?}");
        };
        assert_eq!(app.name, "unix:/run/app.sock");
        assert_eq!(app.as_written(), "unix:/run/app.sock");
        assert_eq!(app.addr, Endpoint::Unix("/run/app.sock".into()));
        assert_eq!(app.addr.to_string(), "unix:/run/app.sock");
        assert_eq!(app.addr.tcp(), None);
        assert_eq!((app.weight, app.max_conns, app.backup), (2, Some(4), true));
        assert_eq!(
            (app.max_fails, app.fail_timeout),
            (Some(3), Some(Duration::from_secs(30)))
        );
        // Relative, from the working directory; an `@` in a path is no
        // `name@address`.
        assert_eq!(relative.addr, Endpoint::Unix("run/app@1.sock".into()));
        assert_eq!(relative.as_written(), "unix:run/app@1.sock");
        assert_eq!(tcp.addr, Endpoint::Tcp("10.0.0.5:8000".parse().unwrap()));
        assert_eq!(
            written("unix:/run/app.sock"),
            Ok(Written::Unix(Path::new("/run/app.sock")))
        );
        // Built for tests and embedders, named as `targets` names it.
        assert_eq!(
            parse_targets("unix:/run/app.sock").unwrap(),
            [Target::unix("/run/app.sock")]
        );
    }

    #[test]
    fn one_socket_is_one_target_however_its_path_is_spelled() {
        for twice in [
            "unix:/run/app.sock, unix:/run//app.sock",
            "unix:/run/app.sock, unix:///run/./app.sock",
        ] {
            let e = parse_targets(twice).unwrap_err();
            assert!(e.contains("listed twice"), "{twice}: {e}");
        }
        assert_eq!(
            parse_targets("unix:/run/a.sock, unix:/run/b.sock")
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn a_unix_path_that_cannot_be_connected_to_is_refused() {
        let max = max_unix_path();
        if cfg!(target_os = "linux") {
            assert_eq!(max, 107);
        }
        let longest = format!("/{}", "s".repeat(max - 1));
        assert_eq!(parse_targets(&format!("unix:{longest}")).unwrap().len(), 1);
        for (bad, says) in [
            ("unix:", "has no path"),
            ("unix: weight=2", "has no path"),
            ("unix:/run/a\0b.sock", "NUL"),
            ("unix:/run/a\u{1}b.sock", "control character"),
            (&format!("unix:{longest}s"), &format!("at most {max}")),
        ] {
            let e = parse_targets(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
            assert!(!e.contains('\0'), "{bad:?}: {e}");
        }
    }

    #[test]
    fn check_lists_a_unix_target_with_its_path() {
        let targets = parse_targets("unix:/run/app.sock max_conns=8, 10.0.0.1:80").unwrap();
        assert_eq!(
            target_lines(&Config::with_targets(targets)),
            [
                "# target unix:/run/app.sock -> unix:/run/app.sock (weight 1, max_conns 8)",
                "# target 10.0.0.1:80 -> 10.0.0.1:80 (weight 1)",
            ]
        );
    }

    #[test]
    fn a_target_is_written_without_an_at_sign() {
        for name in ["app:8000@10.0.0.5:8000", "user@app:8000"] {
            let e = written(name).unwrap_err();
            assert!(e.contains("`@`"), "{e}");
        }
    }
}
