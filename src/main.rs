//! The `inverso` command: parse the command line, load the configuration,
//! start the server, and turn signals into actions: SIGINT/SIGTERM a
//! graceful shutdown (a second one exits at once), SIGHUP a reload of the
//! configuration, SIGUSR1 a reopen of the access-log file. Errors are
//! printed as one line with their causes; exit codes: 0 clean shutdown,
//! 1 runtime failure, 2 bad configuration or usage.
//!
//! # Layout
//! - `signals`: serving until a stop, signals turned into actions.
//! - `check`: `inverso check`, the effective settings printed.
//! - `inspect`: `inverso cache inspect`, what a snapshot holds.
//! - here: the command line, the configuration loaded from it, the
//!   demo's setup, `inverso signal` (the signal sent to the process the
//!   `pid_file` names), and errors turned into exit codes.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use inverso::config::{self, Config, LastAddresses, Loader};
use inverso::demo;
use std::path::PathBuf;

mod check;
mod inspect;
mod signals;
use check::check;
use signals::serve;
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
    /// Signal the running proxy whose ID the configuration's pid_file holds.
    Signal {
        /// reload (SIGHUP), reopen the access log (SIGUSR1), or stop
        /// gracefully (SIGTERM).
        action: Action,
        #[command(flatten)]
        args: ConfigArgs,
    },
}

/// What `inverso signal` asks of the running proxy, as `nginx -s`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Action {
    Reload,
    Reopen,
    Stop,
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
    /// weight=N, max_conns=N, `backup`, `down`, max_fails=N, fail_timeout=D,
    /// and `tls` (with tls_name=NAME) for one spoken to over TLS (overrides
    /// `targets`).
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
        Some(Command::Signal { action, args }) => signal(action, &args),
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

/// The configuration the command line names, built; a name that does not
/// resolve keeps what `last` gives it (a reload's, the addresses in force).
fn load(args: &ConfigArgs, last: LastAddresses) -> Result<(Config, Loader), Failure> {
    let mut loader = read(args)?;
    let config = (loader.keep_last_addresses(last).build()).map_err(Failure::usage)?;
    Ok((config, loader))
}

/// The configuration the command line names, its values as written (see
/// [`config::read`]).
fn read(args: &ConfigArgs) -> Result<Loader, Failure> {
    let explicit = args.config.is_some();
    config::read(&args.config_path(), explicit, environment()?, &flags(args)?)
        .map_err(Failure::usage)
}

/// The keys the command line sets: `(key, value, flag name)`.
fn flags(args: &ConfigArgs) -> Result<Vec<(&str, String, &'static str)>, Failure> {
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
    Ok(flags)
}

/// The variables of the environment: `INVERSO_*` ones set keys, and any
/// may be a file's `{$NAME}`. One that is not UTF-8 is not ours to judge
/// (`std::env::vars` would panic on it) and is left out, as if not set;
/// one of ours that is not UTF-8 is a configuration error.
fn environment() -> Result<Vec<(String, String)>, Failure> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str() else {
            continue;
        };
        let value = match value.to_str() {
            Some(value) => value,
            None if name.starts_with("INVERSO_") => {
                return Err(Failure::usage(anyhow::anyhow!(
                    "{name}: the value is not UTF-8"
                )))
            }
            None => continue,
        };
        vars.push((name.to_string(), value.to_string()));
    }
    Ok(vars)
}

fn run(args: &ConfigArgs) -> Result<(), Failure> {
    let (config, loader) = load(args, LastAddresses::default())?;
    // The default file may be absent at start-up, but once read it is the
    // configuration: a reload that finds it gone (mid-replacement by a
    // tool that deletes, then writes) is refused like any file that does
    // not load, rather than run on the defaults.
    let mut reload_from = args.clone();
    if loader.read_a_file() {
        reload_from.config = Some(args.config_path());
    }
    serve(config, Some(reload_from), |_| {}, || {})
}

/// `inverso signal`: the signal for `action` sent to the process the
/// configuration's `pid_file` names.
/// Only that key is read: the rest of the file need not build (a target
/// whose name does not resolve must not keep the proxy from stopping).
fn signal(action: Action, args: &ConfigArgs) -> Result<(), Failure> {
    let loader = read(args)?;
    let Some(path) = loader.value_of("pid_file").filter(|p| !p.is_empty()) else {
        return Err(Failure::usage(anyhow::anyhow!(
            "{}: pid_file is not set: no process to signal",
            loader.source()
        )));
    };
    let path = PathBuf::from(path);
    let pid = inverso::pid_file::read(&path)?;
    let (signal, name) = match action {
        Action::Reload => (libc::SIGHUP, "SIGHUP"),
        Action::Reopen => (libc::SIGUSR1, "SIGUSR1"),
        Action::Stop => (libc::SIGTERM, "SIGTERM"),
    };
    // `read` gives a pid above 1 that fits a pid_t: one process, never a
    // group (0, -1) nor init.
    let target = libc::pid_t::try_from(pid).context("a process ID past pid_t")?;
    // SAFETY: kill(2) touches no memory of ours.
    if unsafe { libc::kill(target, signal) } != 0 {
        let error = std::io::Error::last_os_error();
        let why = match error.raw_os_error() {
            Some(libc::ESRCH) => format!("no process {pid} (a pid_file left by one that died?)"),
            _ => format!("cannot signal process {pid}: {error}"),
        };
        return Err(anyhow::anyhow!("{}: {why}", path.display()).into());
    }
    eprintln!("inverso: sent {name} to process {pid}");
    Ok(())
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
    loader.env(environment()?);
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
        // The admin listener and its page, on another such port.
        ("admin_port", "0".to_string()),
        ("tls_certificates", certificate.display().to_string()),
    ] {
        loader.flag(key, &value, "demo").map_err(Failure::usage)?;
    }
    let config = loader.build().map_err(Failure::usage)?;
    // Said once the proxy listens: the port it got (for `--port 0`), and
    // nothing at all if it could not bind.
    let banner = |server: &inverso::server::ServerHandle| {
        let url = format!("http://{}", server.local_addr());
        let https = server.tls_addr().map_or_else(String::new, |tls| {
            format!(
                "\x20 curl -ik https://{tls}/cached       # over HTTPS (-k: the demo's certificate is its own)\n"
            )
        });
        let admin = server.admin_addr().map_or_else(String::new, |admin| {
            format!("The admin listener's page, for a browser: http://{admin}/?refresh=5\n")
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
         {admin}\
         Each request is logged below, one line each. Ctrl-C stops everything.\n",
            a.name, a.addr, b.name, b.addr, api.name
        );
    };
    let forced = site.remover();
    serve(config, None, banner, forced)
}
