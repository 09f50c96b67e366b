//! `inverso check`: the configuration validated as a run would load it,
//! and the effective settings printed, each with where it came from;
//! then what the file's pools, routes, rewrites, pages, users and state
//! file come to.

use crate::{load, ConfigArgs, Failure};
use anyhow::Context;
use inverso::access_log::PoolFile;
use inverso::config::{self, Asking, Config, Loader};
use inverso::files::listing::Format;
use inverso::ratelimit::Limit;
use std::io::Write as _;
use std::sync::Arc;

pub(super) fn check(args: &ConfigArgs) -> Result<(), Failure> {
    let (config, loader) = load(args, config::LastAddresses::default())?;
    // What a run would open first: a log file it cannot open stops it
    // (created if missing, as nginx -t creates its logs).
    if let Some(path) = &config.path_to_log {
        inverso::access_log::open_log_file(path)
            .map_err(|e| Failure::usage(anyhow::anyhow!("path_to_log: {e}")))?;
    }
    for file in PoolFile::all_of(&config) {
        file.open().map_err(Failure::usage)?;
    }
    // And the snapshot's directory, created if missing, as a run would.
    if let Some(path) = config
        .path_to_persistence
        .as_ref()
        .filter(|_| config.cache_size > 0)
    {
        inverso::cache::persist::ensure_directory(path).map_err(|error| {
            let path = path.clone();
            Failure::usage(inverso::server::StartError::Persistence { path, error })
        })?;
    }
    // And the disk tier's, created if missing too.
    if let Some(path) = (config.cache_disk_dir.as_ref()).filter(|_| config.cache_size > 0) {
        std::fs::create_dir_all(path).map_err(|error| {
            let path = path.clone();
            Failure::usage(inverso::server::StartError::DiskDir { path, error })
        })?;
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(out, "# {}: OK", loader.source())?;
    if let [_, included @ ..] = loader.files_read() {
        if !included.is_empty() {
            let names: Vec<String> = included.iter().map(|n| config::printable(n)).collect();
            writeln!(out, "# included, in order: {}", names.join(", "))?;
        }
    }
    for (key, setting) in loader.effective() {
        let line = format!("{key} = {}", shown(key, &setting.value));
        writeln!(out, "{line:<48} # {}", setting.origin)?;
    }
    // The fields set and removed on every request and response, in the
    // file's order.
    for (family, key, conditional, setting) in loader.field_settings() {
        let line = format!(
            "{} = {}",
            config::printable(&key),
            config::printable(&setting.value)
        );
        let does = if setting.value.is_empty() {
            "removed from"
        } else {
            "set on"
        };
        let to_whom = match conditional {
            true => " when its condition is met",
            false => "",
        };
        writeln!(
            out,
            "{line:<48} # {} ({does} {}{to_whom})",
            setting.origin,
            family.messages()
        )?;
    }
    let named = (loader.pool_and_route_settings())
        .chain(loader.rewrite_settings())
        .chain(loader.deny_settings())
        .chain(loader.stream_settings());
    for (key, setting) in named {
        let line = format!(
            "{} = {}",
            config::printable(&key),
            shown(&key, &setting.value)
        );
        writeln!(out, "{line:<48} # {}", setting.origin)?;
    }
    write_list_sizes(&mut out, &loader)?;
    for line in config::target_lines(&config) {
        writeln!(out, "{line}")?;
    }
    write_pools(&mut out, &config)?;
    write_denials(&mut out, &config, &loader)?;
    write_rewrites(&mut out, &config, &loader)?;
    write_streams(&mut out, &config)?;
    if let Some(syslog) = inverso::access_log::Syslog::of(&config) {
        writeln!(out, "# {}", config::escape_controls(&syslog.describe()))?;
    }
    write_template(&mut out, "", &config.log_format)?;
    for pool in &config.pools {
        if let Some(format) = &pool.log_format {
            write_template(&mut out, &format!("pool {}: ", pool.name), format)?;
        }
    }
    write_error_pages(&mut out, "", &config.error_pages)?;
    for pool in &config.pools {
        // A pool's own directory (one that has the top level's says
        // nothing more).
        if pool.config.error_pages.dir() != config.error_pages.dir() {
            let whose = format!("pool {}: ", pool.name);
            write_error_pages(&mut out, &whose, &pool.config.error_pages)?;
        }
    }
    if let Some(db) = &config.geoip {
        writeln!(out, "# geoip_database: {}", db.summary())?;
    }
    let key = "auth_basic_user_file";
    write_users(&mut out, key, &config.auth_users)?;
    for pool in &config.pools {
        let own = match (&pool.config.auth_users, &config.auth_users) {
            (Some(pool_users), Some(top_users)) => !Arc::ptr_eq(pool_users, top_users),
            (pool_users, _) => pool_users.is_some(),
        };
        if own {
            let whose = format!("pool {}: {key}", pool.name);
            write_users(&mut out, &whose, &pool.config.auth_users)?;
        }
    }
    write_users(
        &mut out,
        "admin_auth_basic_user_file",
        &config.admin_auth_users,
    )?;
    if let Some(keys) = &config.auth_jwt_keys {
        writeln!(out, "# {}: {}", keys.key(), keys.summary())?;
    }
    for pool in &config.pools {
        let own = match (&pool.config.auth_jwt_keys, &config.auth_jwt_keys) {
            (Some(pool_keys), Some(top_keys)) => !pool_keys.same_as(top_keys),
            (pool_keys, _) => pool_keys.is_some(),
        };
        if let Some(keys) = pool.config.auth_jwt_keys.as_ref().filter(|_| own) {
            let (name, key) = (&pool.name, keys.key());
            writeln!(out, "# pool {name}: {key}: {}", keys.summary())?;
        }
    }
    let choice = &config.tls_choice;
    if config.tls.is_some() && (choice.suites_chosen() || choice.groups_chosen()) {
        let (suites, groups) = choice.describe();
        writeln!(
            out,
            "# tls_port offers the cipher suites {}",
            suites.join(", ")
        )?;
        writeln!(
            out,
            "# tls_port offers the key exchange groups {}",
            groups.join(", ")
        )?;
    }
    if let Some(served) = &config.tls_served {
        write_certificate_directories(&mut out, served)?;
        for stapled in served.stapled() {
            writeln!(
                out,
                "# tls_certificates {}: OCSP response {} stapled, {}",
                config::printable(&stapled.chain.display().to_string()),
                config::printable(&stapled.from.display().to_string()),
                stapled.good
            )?;
        }
    }
    if let Some(acme) = config.acme() {
        for line in inverso::acme::summary(acme) {
            writeln!(out, "# acme_domains {}", config::printable(&line))?;
        }
        let reached = match acme.challenge {
            // Answered on every plain HTTP listener: `listen`'s too.
            inverso::acme::Challenge::Http01 => {
                let on_80 = config.listen.iter().any(|l| l.port() == 80);
                Some((if on_80 { 80 } else { config.port }, "`port`", 80))
            }
            inverso::acme::Challenge::TlsAlpn01 => {
                Some((config.tls_port.unwrap_or(443), "tls_port", 443))
            }
            inverso::acme::Challenge::Dns01 => None,
        };
        match (reached, acme.dns_update()) {
            (Some((port, key, wanted)), _) if port != wanted => writeln!(
                out,
                "# acme_domains: the ACME server proves each name on its port {wanted} \
                 ({}): it must reach {key} {port}",
                acme.challenge.name()
            )?,
            (None, Some(dns)) => writeln!(
                out,
                "# acme_domains: each name is proven by a TXT record at _acme-challenge.<name> \
                 in zone {}, written by {} with key {}, its validation asked for {}s after",
                dns.zones.join(", "),
                dns.server,
                dns.key.name,
                acme.dns_wait.as_secs()
            )?,
            _ => {}
        }
    }
    write_state_file(&mut out, &config)?;
    out.flush().context("cannot write the output")?;
    Ok(())
}

/// `value` as `check` prints it for `key` (`pool.<name>.<key>` too).
fn shown(key: &str, value: &str) -> String {
    let name = key.rsplit('.').next().unwrap_or(key);
    if value.trim().is_empty() || !config::SECRET_KEYS.contains(&name) {
        return config::printable(value);
    }
    match (name, value.rsplit_once(':')) {
        // The algorithm and the key's name, which the DNS server's
        // configuration is checked against.
        ("acme_dns_key", Some((named, _))) => format!("{}:(secret)", config::printable(named)),
        _ => "(secret)".to_string(),
    }
}

/// How many blocks each list of addresses that reads a file holds in all
/// (a file that is not the one meant shows at once).
fn write_list_sizes(out: &mut impl std::io::Write, loader: &config::Loader) -> std::io::Result<()> {
    let top = loader.effective().map(|(key, s)| (key.to_string(), s));
    let named = loader.pool_and_route_settings();
    for (key, setting) in top.chain(named) {
        let name = key.rsplit('.').next().unwrap_or(&key);
        if !config::ADDRESS_LISTS.contains(&name) || !setting.value.contains("file:") {
            continue;
        }
        // Read as the configuration was a moment ago: it loaded.
        if let Ok(count) = config::address_blocks(&setting.value) {
            let noun = if count == 1 { "block" } else { "blocks" };
            writeln!(out, "# {}: {count} {noun} in all", config::printable(&key))?;
        }
    }
    Ok(())
}

/// The files each directory of `tls_certificates` was found to hold, in
/// the order read: a site dropped there but not served shows at once.
fn write_certificate_directories(
    out: &mut impl std::io::Write,
    served: &inverso::tls::Certificates,
) -> std::io::Result<()> {
    let mut listed: Vec<(&std::path::Path, Vec<String>)> = Vec::new();
    for files in served.files() {
        let Some(dir) = &files.directory else {
            continue;
        };
        let name = files.chain.file_name().unwrap_or_default();
        let name = config::printable(&name.to_string_lossy());
        match listed.last_mut() {
            Some((last, names)) if *last == dir.as_path() => names.push(name),
            _ => listed.push((dir, vec![name])),
        }
    }
    for (dir, names) in listed {
        let noun = if names.len() == 1 { "file" } else { "files" };
        writeln!(
            out,
            "# tls_certificates {}: {} certificate {noun}: {}",
            config::printable(&dir.display().to_string()),
            names.len(),
            names.join(", ")
        )?;
    }
    Ok(())
}

/// `check`'s account of a users file (`key`'s): how many users it read
/// (a file that is not the one meant shows at once).
fn write_users(
    out: &mut impl std::io::Write,
    key: &str,
    users: &Option<Arc<inverso::auth::Users>>,
) -> std::io::Result<()> {
    let Some(users) = users else {
        return Ok(());
    };
    let path = config::printable(&users.path().display().to_string());
    let count = users.len();
    let noun = if count == 1 { "user" } else { "users" };
    writeln!(out, "# {key}: {count} {noun} in {path}")
}

/// A `log_format` template (`whose`: a pool's own, else the main log's)
/// whole, as a template runs longer than the values `printable` shows
/// whole, and what it was taken to say, on a made-up request.
fn write_template(
    out: &mut impl std::io::Write,
    whose: &str,
    format: &config::LogFormat,
) -> std::io::Result<()> {
    let config::LogFormat::Template(template) = format else {
        return Ok(());
    };
    let source = config::escape_controls(template.source());
    writeln!(out, "# {whose}log_format template: {source}")?;
    let example = config::escape_controls(&template.example_line());
    writeln!(out, "# {whose}a line looks like:   {example}")
}

/// `check`'s account of `error_pages`: each page found, or that none was
/// (every status then keeps its plain-text body, likely not what was meant).
fn write_error_pages(
    out: &mut impl std::io::Write,
    whose: &str,
    pages: &inverso::error_pages::ErrorPages,
) -> std::io::Result<()> {
    let Some(dir) = pages.dir() else {
        return Ok(());
    };
    let mut found = 0;
    for (status, path, size) in pages.found() {
        let path = config::printable(&path.display().to_string());
        writeln!(out, "# {whose}error page {status} <- {path} ({size} bytes)")?;
        found += 1;
    }
    if found == 0 {
        let dir = config::printable(&dir.display().to_string());
        writeln!(
            out,
            "# {whose}error_pages: no <status>.html in {dir}: every error keeps its plain-text body"
        )?;
    }
    Ok(())
}

/// `check`'s account of the pools and routes: each pool's targets and
/// the settings it has of its own, then the routes in the order they are
/// tried.
fn write_pools(out: &mut impl std::io::Write, config: &Config) -> std::io::Result<()> {
    for pool in &config.pools {
        let settings = &pool.config;
        // Whether its clients sign in: a pool that opens what the top
        // level closes (or the other way round) shows at a glance.
        let sign_in = match (&settings.auth_basic, &config.auth_basic) {
            (Some(realm), _) if settings.auth_basic_except_from.is_empty() => {
                format!(", auth_basic \"{realm}\"")
            }
            (Some(realm), _) => {
                let spared: Vec<String> = (settings.auth_basic_except_from.iter())
                    .map(|block| block.to_string())
                    .collect();
                format!(", auth_basic \"{realm}\" but for {}", spared.join(", "))
            }
            (None, Some(_)) => ", auth_basic off".to_string(),
            (None, None) => String::new(),
        };
        let token = match (&settings.auth_jwt, &config.auth_jwt) {
            (Some(realm), _) => format!(", auth_jwt \"{realm}\""),
            (None, Some(_)) => ", auth_jwt off".to_string(),
            (None, None) => String::new(),
        };
        let sign_in = sign_in + &token;
        // Its own, or the top level's, which it takes.
        let mirrored = (settings.mirror.as_ref()).map_or(String::new(), |to| {
            format!(", mirrored to {}", config::printable(to))
        });
        writeln!(
            out,
            "# pool {}: balance {}{}{sign_in}{mirrored}",
            pool.name,
            settings.balance.name(),
            match &settings.health_check_path {
                Some(path) => match settings.health_check_method {
                    "GET" => format!(", health_check_path {}", config::printable(path)),
                    method => format!(
                        ", health_check_path {} by {method}",
                        config::printable(path)
                    ),
                },
                None if settings.health_check_tcp => {
                    format!(", health_check_tcp{}", conversation(settings))
                }
                None if settings.health_check_udp => {
                    format!(", health_check_udp{}", conversation(settings))
                }
                None => String::new(),
            }
        )?;
        for line in config::target_lines(settings) {
            writeln!(out, "{line}")?;
        }
    }
    if config.routes.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "# routes, in the order they are tried (the rest go to targets):"
    )?;
    for route in config.routes.iter() {
        let pool = match route.pool {
            0 => config::DEFAULT_POOL,
            i => config.pools.get(i - 1).map_or("?", |p| &*p.name),
        };
        if let Some((status, to)) = route.redirect() {
            writeln!(out, "# route {route} -> redirect {status} to {to}")?;
            continue;
        }
        if let Some(answer) = route.returned() {
            // As written: `$$` and the variables' names.
            let text = answer.text.as_ref().map(|t| t.source().escape_debug());
            let text = match (text, &answer.content_type) {
                (Some(text), Some(of)) => format!(" \"{text}\" ({of})"),
                (Some(text), None) => format!(" \"{text}\""),
                (None, _) => String::new(),
            };
            writeln!(out, "# route {route} -> return {}{text}", answer.status)?;
            continue;
        }
        if let Some((files, fallback)) = route.files() {
            let max_age = match files.cache_control() {
                Some(cache_control) => format!(", Cache-Control: {cache_control}"),
                None => String::new(),
            };
            let rest = match (fallback, files.fallback_file()) {
                (true, _) => format!(", the rest to {pool}"),
                (false, Some(file)) => format!(", the rest answered with /{}", file.display()),
                (false, None) => String::new(),
            };
            let dir = files.dir().display();
            let rest = match route.is_internal() {
                true => format!("{rest}, for X-Accel-Redirect alone"),
                false => rest,
            };
            let rest = format!("{rest}{}", route_limit(route));
            let precompressed = match files.precompressed() {
                true => ", .br and .gz copies sent to who takes them",
                false => "",
            };
            let listed = match files.autoindex() {
                Some(Format::Html) => ", directories without index.html listed",
                Some(Format::Json) => ", directories without index.html listed in JSON",
                None => "",
            };
            writeln!(
                out,
                "# route {route} -> files in {dir}{max_age}{precompressed}{listed}{rest}"
            )?;
            continue;
        }
        let rewrite = match route.rewrite() {
            Some(to) if route.rewrites_cookie_paths() => {
                format!(", its prefix rewritten to {to}, and back in cookie paths")
            }
            Some(to) => format!(", its prefix rewritten to {to}"),
            None => String::new(),
        };
        let limit = route_limit(route);
        let own = match route.own_settings() {
            own if own.is_empty() => String::new(),
            own => format!(", {own} in place of its pool's"),
        };
        writeln!(out, "# route {route} -> {pool}{rewrite}{limit}{own}")?;
    }
    Ok(())
}

/// `check`'s account of a route's own `rate_limit=`, if any.
fn route_limit(route: &inverso::routes::Route) -> String {
    match route.rate_limit() {
        Some(Limit { rate, burst, delay }) => {
            let delayed = match delay {
                Some(at_once) if at_once < burst => format!(", delayed past {at_once}"),
                _ => String::new(),
            };
            format!(", rate_limit {rate} (burst {burst}{delayed}) of its own, its pool's too")
        }
        None => String::new(),
    }
}

/// `check`'s account of the `rewrite.<name>` rules: each with its line
/// and what it does, in the order they are tried.
fn write_rewrites(
    out: &mut impl std::io::Write,
    config: &Config,
    loader: &Loader,
) -> std::io::Result<()> {
    if config.rewrites.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "# rewrites, in the order they are tried (the first that matches applies, before routing):"
    )?;
    // The keys are the rules, in the same order.
    for (rule, (_, setting)) in config.rewrites.iter().zip(loader.rewrite_settings()) {
        let rule_text = config::printable(&rule.to_string());
        writeln!(
            out,
            "# rewrite {} ({}): {rule_text}",
            rule.name(),
            setting.origin
        )?;
    }
    Ok(())
}

/// `check`'s account of the `deny.<name>` rules: each with its line and
/// what it refuses, in the order they are tried.
fn write_denials(
    out: &mut impl std::io::Write,
    config: &Config,
    loader: &Loader,
) -> std::io::Result<()> {
    if config.deny.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "# deny rules, in the order they are tried (the first met refuses, before rewrites and \
         routes):"
    )?;
    for (rule, (_, setting)) in config.deny.iter().zip(loader.deny_settings()) {
        let rule_text = config::printable(&rule.to_string());
        writeln!(
            out,
            "# deny {} ({}): {rule_text}",
            rule.name(),
            setting.origin
        )?;
    }
    Ok(())
}

/// What a probe by connecting or by datagram sends and expects, for
/// `check`'s pool lines: ` sending "PING\r\n" expecting "+PONG"`, or,
/// by connecting, ` conversing: expect "220", send "QUIT\r\n"`.
fn conversation(settings: &Config) -> String {
    use inverso::config::ProbeStep;
    let shown = |bytes: &Option<Vec<u8>>| bytes.as_deref().map(|b| b.escape_ascii().to_string());
    let mut said = String::new();
    if let Some(steps) =
        (settings.health_check_conversation.as_ref()).filter(|_| settings.health_check_tcp)
    {
        let steps: Vec<String> = (steps.iter())
            .map(|step| match step {
                ProbeStep::Send(b) => format!("send \"{}\"", b.escape_ascii()),
                ProbeStep::Expect(b) => format!("expect \"{}\"", b.escape_ascii()),
            })
            .collect();
        said += &format!(" conversing: {}", steps.join(", "));
    }
    if let Some(send) = shown(&settings.health_check_send) {
        said += &format!(" sending \"{send}\"");
    }
    if let Some(expect) = shown(&settings.health_check_expect) {
        said += &format!(" expecting \"{expect}\"");
    }
    said
}

/// `check`'s account of the streams: where each listens, and which pool
/// takes which connections.
fn write_streams(out: &mut impl std::io::Write, config: &Config) -> std::io::Result<()> {
    for stream in config.streams.iter() {
        let behind = match stream.proxy_protocol {
            true => ", each connection's PROXY header read first",
            false => "",
        };
        let (over, alpn) = match (stream.tls, stream.alpn.join(",")) {
            _ if stream.udp => ("UDP", String::new()),
            (false, _) => ("TCP", String::new()),
            (true, alpn) if alpn.is_empty() => ("TLS ended", String::new()),
            (true, alpn) => ("TLS ended", format!(" (ALPN {alpn})")),
        };
        writeln!(
            out,
            "# stream {}: {over} on {}{alpn}{behind}, to pool {}",
            stream.name, stream.listen, stream.pool_name
        )?;
        for (asking, pool) in stream.hello_keys() {
            let asking = match (asking, stream.tls) {
                (Asking::Host(host), true) => format!("a handshake naming {host}"),
                (Asking::Host(host), false) => format!("a TLS hello asking for {host}"),
                (Asking::Protocol(p), true) => format!("a handshake agreeing {p} in ALPN"),
                (Asking::Protocol(p), false) => format!("a TLS hello offering {p} in ALPN"),
            };
            writeln!(out, "#   {asking}: to pool {pool}")?;
        }
    }
    Ok(())
}

/// `check`'s account of `state_file`: the states a start would put
/// targets in, and the lines it would skip or ignore (a run starts
/// whatever the file holds).
fn write_state_file(out: &mut impl std::io::Write, config: &Config) -> std::io::Result<()> {
    let Some(path) = &config.state_file else {
        return Ok(());
    };
    // Applied as a start applies them, to targets made for the purpose.
    let pools = inverso::upstream::pools::Pools::new(config);
    let restored = inverso::upstream::state_file::restore(&pools, path);
    let file = config::printable(&path.display().to_string());
    if restored.missing {
        writeln!(
            out,
            "# state_file {file}: none yet: every target starts as configured"
        )?;
    } else if restored.applied.is_empty() {
        writeln!(
            out,
            "# state_file {file}: every target starts as configured"
        )?;
    }
    for applied in &restored.applied {
        writeln!(out, "# {applied}")?;
    }
    for warning in &restored.warnings {
        writeln!(out, "# warning: {warning}")?;
    }
    Ok(())
}
