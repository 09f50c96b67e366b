//! The `inverso` command: parse the command line, load the configuration,
//! start the server, and turn signals into actions: SIGINT/SIGTERM a
//! graceful shutdown (a second one exits at once), SIGHUP a reload of the
//! configuration, SIGUSR1 a reopen of the access-log file. Errors are
//! printed as one line with their causes; exit codes: 0 clean shutdown,
//! 1 runtime failure, 2 bad configuration or usage.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use crossbeam_channel::{bounded, Sender};
use inverso::config::{self, Config, Loader};
use inverso::files::listing::Format;
use inverso::server::{ReloadError, StartError};
use inverso::{demo, systemd, Server};
use parking_lot::{Mutex, MutexGuard};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

mod inspect;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "inverso",
    version,
    about = "HTTP/1.1 reverse proxy and load balancer with a persistent cache"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: ConfigArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration and print the effective settings.
    Check(ConfigArgs),
    /// Start built-in origin servers (two targets and a routed pool) and the proxy in front of them.
    Demo {
        /// Port of the proxy.
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
    /// Work with cache snapshot files.
    #[command(subcommand)]
    Cache(CacheCommand),
}

#[derive(Subcommand)]
enum CacheCommand {
    /// List what a snapshot file holds.
    Inspect {
        /// The snapshot file (path_to_persistence).
        file: PathBuf,
    },
}

#[derive(Args, Clone)]
struct ConfigArgs {
    /// Configuration file [default: proxy.conf, which may be absent; a
    /// file named here must exist].
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Listening port (overrides `port`). Read as the key's value is,
    /// so that a flag takes what the file and environment take.
    #[arg(long)]
    port: Option<String>,
    /// Listening address (overrides `bind`).
    #[arg(long)]
    bind: Option<String>,
    /// Backends, comma separated host:port or unix:PATH, each with optional
    /// weight=N, max_conns=N, `backup`, and `tls` (with tls_name=NAME) for
    /// one spoken to over TLS (overrides `targets`).
    #[arg(long)]
    targets: Option<String>,
    /// Override any key, e.g. `--set cache_size=128MiB` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// A failure and the exit code it maps to.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl Failure {
    /// A configuration the command cannot run with: exit code 2.
    fn usage(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code: 2,
            error: error.into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: 1,
            error: e.into(),
        }
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // A write past the file-size limit (`ulimit -f`, systemd's
    // LimitFSIZE=) must fail with EFBIG, which the snapshot and log
    // writers report and survive, rather than kill the process.
    // SAFETY: setting a signal's disposition to "ignore" installs no
    // handler and touches no memory; nothing else handles SIGXFSZ.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        None => run(&cli.run),
        Some(Command::Check(args)) => check(&args),
        Some(Command::Demo { port }) => run_demo(port),
        Some(Command::Cache(CacheCommand::Inspect { file })) => {
            inspect::run(&file).map_err(Failure::from)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Whoever read the output stopped (`| head`): nothing to say.
        Err(Failure { error, .. }) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(Failure { code, error }) => {
            // Messages quote what came in (paths, values): printed safe.
            eprintln!(
                "inverso: {}",
                config::escape_controls(&format!("{error:#}"))
            );
            ExitCode::from(code)
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

impl ConfigArgs {
    fn config_path(&self) -> PathBuf {
        self.config.clone().unwrap_or_else(|| "proxy.conf".into())
    }
}

fn load(args: &ConfigArgs) -> Result<(Config, Loader), Failure> {
    let mut flags: Vec<(&str, String, &str)> = Vec::new();
    if let Some(port) = &args.port {
        flags.push(("port", port.clone(), "--port"));
    }
    if let Some(bind) = &args.bind {
        flags.push(("bind", bind.clone(), "--bind"));
    }
    if let Some(targets) = &args.targets {
        flags.push(("targets", targets.clone(), "--targets"));
    }
    for item in &args.set {
        let Some((key, value)) = item.split_once('=') else {
            return Err(Failure::usage(anyhow::anyhow!(
                "--set {item}: expected KEY=VALUE"
            )));
        };
        flags.push((key.trim(), value.to_string(), "--set"));
    }
    let explicit = args.config.is_some();
    config::load(&args.config_path(), explicit, inverso_env()?, &flags).map_err(Failure::usage)
}

/// The `INVERSO_*` variables of the environment. Others are not ours to
/// judge (`std::env::vars` would panic on any that is not UTF-8); one of
/// ours that is not UTF-8 is a configuration error.
fn inverso_env() -> Result<Vec<(String, String)>, Failure> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.starts_with("INVERSO_")) else {
            continue;
        };
        let Some(value) = value.to_str() else {
            return Err(Failure::usage(anyhow::anyhow!(
                "{name}: the value is not UTF-8"
            )));
        };
        vars.push((name.to_string(), value.to_string()));
    }
    Ok(vars)
}

fn check(args: &ConfigArgs) -> Result<(), Failure> {
    let (config, loader) = load(args)?;
    // What a run would open first: a log file it cannot open stops it
    // (created if missing, as nginx -t creates its logs).
    if let Some(path) = &config.path_to_log {
        inverso::access_log::open_log_file(path)
            .map_err(|e| Failure::usage(anyhow::anyhow!("path_to_log: {e}")))?;
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
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(out, "# {}: OK", loader.source())?;
    for (key, setting) in loader.effective() {
        let line = format!("{key} = {}", config::printable(&setting.value));
        writeln!(out, "{line:<48} # {}", setting.origin)?;
    }
    // The fields set and removed on every request and response, in the
    // file's order.
    for (family, key, setting) in loader.field_settings() {
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
        writeln!(
            out,
            "{line:<48} # {} ({does} {})",
            setting.origin,
            family.messages()
        )?;
    }
    for (key, setting) in (loader.pool_and_route_settings()).chain(loader.rewrite_settings()) {
        let line = format!(
            "{} = {}",
            config::printable(&key),
            config::printable(&setting.value)
        );
        writeln!(out, "{line:<48} # {}", setting.origin)?;
    }
    for line in config::target_lines(&config) {
        writeln!(out, "{line}")?;
    }
    write_pools(&mut out, &config)?;
    write_rewrites(&mut out, &config, &loader)?;
    if let Some(syslog) = inverso::access_log::Syslog::of(&config) {
        writeln!(out, "# {}", config::escape_controls(&syslog.describe()))?;
    }
    if let config::LogFormat::Template(template) = &config.log_format {
        // Whole (a template runs longer than the values `printable` shows
        // whole), and what it was taken to say, on a made-up request.
        writeln!(
            out,
            "# log_format template: {}",
            config::escape_controls(template.source())
        )?;
        writeln!(
            out,
            "# a line looks like:   {}",
            config::escape_controls(&template.example_line())
        )?;
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
    write_state_file(&mut out, &config)?;
    out.flush().context("cannot write the output")?;
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
                Some(path) => format!(", health_check_path {}", config::printable(path)),
                None if settings.health_check_tcp => ", health_check_tcp".to_string(),
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
            let text = match &answer.text {
                Some(text) => format!(" \"{}\"", text.escape_debug()),
                None => String::new(),
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
        writeln!(out, "# route {route} -> {pool}{rewrite}{limit}")?;
    }
    Ok(())
}

/// `check`'s account of a route's own `rate_limit=`, if any.
fn route_limit(route: &inverso::routes::Route) -> String {
    match route.rate_limit() {
        Some((rate, burst)) => {
            format!(", rate_limit {rate} (burst {burst}) of its own, its pool's too")
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
            "# state_file {file}: none yet: every target starts ready"
        )?;
    } else if restored.applied.is_empty() {
        writeln!(out, "# state_file {file}: every target starts ready")?;
    }
    for applied in &restored.applied {
        writeln!(out, "# {applied}")?;
    }
    for warning in &restored.warnings {
        writeln!(out, "# warning: {warning}")?;
    }
    Ok(())
}

fn run(args: &ConfigArgs) -> Result<(), Failure> {
    let (config, loader) = load(args)?;
    // The default file may be absent at start-up, but once read it is the
    // configuration: a reload that finds it gone (mid-replacement by a
    // tool that deletes, then writes) is refused like any file that does
    // not load, rather than run on the defaults.
    let mut reload_from = args.clone();
    if loader.read_a_file() {
        reload_from.config = Some(args.config_path());
    }
    serve(config, Some(reload_from), |_, _| {}, || {})
}

/// Runs until SIGINT/SIGTERM. `reload_from`: how to read the configuration
/// again on SIGHUP (the same file, environment and flags); `None` ignores
/// SIGHUP (the demo).
/// `started` is told the addresses the proxy listens on: `port`'s, and
/// `tls_port`'s when it is set.
/// `at_forced_exit`: what a second stop signal, which ends the process
/// without unwinding, must still do (the demo's directory removed).
fn serve(
    config: Config,
    reload_from: Option<ConfigArgs>,
    started: impl FnOnce(std::net::SocketAddr, Option<std::net::SocketAddr>),
    at_forced_exit: impl Fn() + Send + 'static,
) -> Result<(), Failure> {
    // Before anything starts: a signal that came between "listening on"
    // and the handlers would get its default action, and SIGHUP's and
    // SIGTERM's is to end the process on the spot. One that comes while
    // the server starts (loading a large snapshot, say) waits for it.
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP, SIGUSR1])
        .context("cannot install signal handlers")?;
    if config.path_to_persistence.is_some() && config.cache_size > 0 {
        // A snapshot of many GiB on a slow disk may take longer than
        // systemd's start timeout (90 s by default): not a failed start.
        systemd::notify(&format!(
            "STATUS=loading the cache snapshot\nEXTEND_TIMEOUT_USEC={}",
            systemd::SNAPSHOT_LOAD_ALLOWANCE.as_micros()
        ));
    }
    // A file the configuration names that cannot be opened (`check`
    // refuses it too) is a bad configuration; a port taken, the system's
    // limits, a failure at run time.
    let handle = Server::start(config).map_err(|e| {
        let named_file = matches!(e, StartError::AccessLog(_) | StartError::Persistence { .. });
        let error = anyhow::Error::new(e).context("cannot start");
        match named_file {
            true => Failure::usage(error),
            false => Failure::from(error),
        }
    })?;
    started(handle.local_addr(), handle.tls_addr());
    let https = handle.tls_addr().map(|a| format!(", https on {a}"));
    systemd::notify(&format!(
        "READY=1\nSTATUS=serving on {}{}",
        handle.local_addr(),
        https.unwrap_or_default()
    ));
    let trigger = handle.stop_trigger();
    let control = handle.control();
    let reloads = match reload_from {
        Some(args) => Some(start_reloading(args, control.clone())?),
        None => None,
    };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut stops = 0;
            for signal in signals.forever() {
                match signal {
                    // A drain finishes on the settings it began with.
                    SIGHUP if stops > 0 => log::info!("SIGHUP: shutting down, not reloading"),
                    SIGHUP => match &reloads {
                        Some(reloads) => reloads.ask(),
                        None => log::info!("SIGHUP: nothing to reload in the demo"),
                    },
                    SIGUSR1 => match control.reopen_log() {
                        Ok(()) => log::info!("SIGUSR1: access log reopened"),
                        Err(e) => log::error!("SIGUSR1: cannot reopen the access log: {e}"),
                    },
                    _ => {
                        stops += 1;
                        // Held while systemd is told: no reload's READY=1
                        // comes after the STOPPING=1.
                        let _stopping = reloads.as_ref().map(Reloads::stop);
                        if stops == 1 {
                            log::info!(
                                "signal {signal}: shutting down (send it again to exit at once)"
                            );
                            systemd::notify("STOPPING=1\nSTATUS=shutting down");
                            trigger.stop();
                        } else {
                            log::warn!("second signal: exiting now");
                            at_forced_exit();
                            std::process::exit(1);
                        }
                    }
                }
            }
        })
        .context("cannot start the signal thread")?;
    if !handle.wait_configured() {
        log::warn!("some connections were cut at the end of the grace period");
    }
    log::info!("stopped");
    Ok(())
}

/// The thread SIGHUP's reloads run on, one after the other: not the
/// signal thread's, which a reload that hangs (a name lookup, a state
/// file's directory another process holds locked) would keep from
/// hearing SIGTERM, a second one too.
struct Reloads {
    asked: Sender<()>,
    stopping: Arc<Mutex<bool>>,
}

impl Reloads {
    /// A reload, unless one is waiting already: it reads the file as it
    /// will be then.
    fn ask(&self) {
        let _ = self.asked.try_send(());
    }

    /// No reload begins once a shutdown has, nor tells systemd it ended.
    fn stop(&self) -> MutexGuard<'_, bool> {
        let mut stopping = self.stopping.lock();
        *stopping = true;
        stopping
    }
}

fn start_reloading(args: ConfigArgs, control: inverso::Control) -> Result<Reloads, Failure> {
    let (asked, asks) = bounded::<()>(1);
    let stopping = Arc::new(Mutex::new(false));
    let stopped = stopping.clone();
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            for () in asks {
                reload(&args, &control, &stopped);
            }
        })
        .context("cannot start the reload thread")?;
    Ok(Reloads { asked, stopping })
}

/// SIGHUP: reads the configuration again; a bad one is refused with its
/// `file:line` error and the running one stays. None once `stopping`.
fn reload(args: &ConfigArgs, control: &inverso::Control, stopping: &Mutex<bool>) {
    {
        // Checked as systemd is told: nothing after its STOPPING=1.
        let stopping = stopping.lock();
        if *stopping {
            log::info!("SIGHUP: shutting down, not reloading");
            return;
        }
        systemd::reloading();
    }
    let reloaded = match load(args) {
        // Checked with the cache that stays on until a restart.
        Ok((config, loader)) => match loader.check_cache_kept(&config, control.cache_size()) {
            Ok(()) => match control.reload(config) {
                // The shutdown came while the file was read: said
                // STOPPING=1 already, nothing more to tell systemd.
                Err(ReloadError::ShuttingDown) => {
                    log::info!("SIGHUP: shutting down, not reloading");
                    return;
                }
                reloaded => reloaded.map_err(|e| e.to_string()),
            },
            Err(e) => {
                control.refused();
                Err(e.to_string())
            }
        },
        Err(Failure { error, .. }) => {
            control.refused();
            Err(format!("{error:#}"))
        }
    };
    let status = match reloaded {
        Ok(reloaded) if reloaded.needs_restart.is_empty() => "configuration reloaded".to_string(),
        Ok(reloaded) => format!(
            "configuration reloaded; a restart is needed for {}",
            reloaded.needs_restart.join(", ")
        ),
        Err(why) => {
            // It quotes what the file says (a path), printed safe.
            let why = config::escape_controls(&why);
            log::error!("SIGHUP: reload refused, keeping the running configuration: {why}");
            format!("reload refused: {why}")
        }
    };
    // Serving either way: on the new settings, or on the old ones; unless
    // a shutdown has begun meanwhile, which systemd was told of.
    let stopping = stopping.lock();
    if *stopping {
        return;
    }
    systemd::notify(&format!(
        "READY=1\nSTATUS={}",
        systemd::status_line(&status)
    ));
}

fn run_demo(port: u16) -> Result<(), Failure> {
    let a = demo::start_origin("origin-1").context("cannot start demo origin")?;
    let b = demo::start_origin("origin-2").context("cannot start demo origin")?;
    let api = demo::start_origin("api-1").context("cannot start demo origin")?;
    let site = demo::write_site().context("cannot write the demo's files")?;
    let certificate =
        demo::write_certificate(&site).context("cannot write the demo's certificate")?;
    let mut loader = Loader::new();
    // A pool and routes, as a file would give them (they are keys of the
    // file only).
    let routing = format!(
        "pool.api = {}\nroute./api/ = api rewrite=/\nroute./healthz = return 200 ok\n\
         route./files/ = files {} max_age=1m\n",
        api.addr,
        site.path().display()
    );
    loader.file("demo", &routing).map_err(Failure::usage)?;
    loader.env(inverso_env()?);
    for (key, value) in [
        ("bind", "127.0.0.1".to_string()),
        ("port", port.to_string()),
        ("targets", format!("{}, {}", a.addr, b.addr)),
        ("path_to_persistence", String::new()),
        // A try-out on loopback: no need for the descriptors and threads
        // of 10,000 connections (nor the warning that the system's limits
        // would not give them).
        ("max_connections", "1000".to_string()),
        ("gzip", "true".to_string()),
        // HTTPS on a port the system picks, with a certificate of its own.
        ("tls_port", "0".to_string()),
        ("tls_certificates", certificate.display().to_string()),
    ] {
        loader.flag(key, &value, "demo").map_err(Failure::usage)?;
    }
    let config = loader.build().map_err(Failure::usage)?;
    // Said once the proxy listens: the port it got (for `--port 0`), and
    // nothing at all if it could not bind.
    let banner = |addr: std::net::SocketAddr, tls: Option<std::net::SocketAddr>| {
        let url = format!("http://{addr}");
        let https = tls.map_or_else(String::new, |tls| {
            format!(
                "\x20 curl -ik https://{tls}/cached       # over HTTPS (-k: the demo's certificate is its own)\n"
            )
        });
        eprintln!(
            "\ninverso demo: the proxy listens on {url}, in front of {} ({}) and {} ({}).\n\
         Try, in another terminal:\n\
         \x20 curl -i {url}/              # answered by each origin in turn (round robin)\n\
         \x20 curl -i {url}/cached        # cacheable for 30 s\n\
         \x20 curl -i {url}/edge          # no-store for browsers, 30 s in the cache (Surrogate-Control)\n\
         \x20 curl -si --compressed {url}/page | head -12   # gzipped for a client that takes it\n\
         \x20 curl -i {url}/echo          # what the origin received: X-Forwarded-For, Via, ...\n\
         \x20 curl -i {url}/slow          # an origin that takes a second\n\
         \x20 curl -i {url}/api/echo      # routed to the pool `api` ({}), which is sent /echo\n\
         \x20 curl -i {url}/healthz       # answered by the proxy itself (a `return` route)\n\
         \x20 curl -i {url}/files/        # a page from a directory (a `files` route)\n\
         {https}\
         Each request is logged below, one line each. Ctrl-C stops everything.\n",
            a.name, a.addr, b.name, b.addr, api.name
        );
    };
    let forced = site.remover();
    serve(config, None, banner, forced)
}
