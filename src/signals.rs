//! Serving until a stop: the server started, its `pid_file` written
//! (and removed at the end), systemd told how it goes, and signals
//! turned into actions on their own threads: SIGINT/SIGTERM
//! a graceful shutdown (a second one exits at once), SIGHUP a reload,
//! SIGUSR1 a reopen of the access-log file.

use crate::{load, ConfigArgs, Failure};
use anyhow::Context;
use crossbeam_channel::{bounded, Sender};
use inverso::config::{self, Config};
use inverso::server::{ReloadError, ServerHandle, StartError};
use inverso::{systemd, Server};
use parking_lot::{Mutex, MutexGuard};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;
use std::sync::Arc;

/// Runs until SIGINT/SIGTERM. `reload_from`: how to read the configuration
/// again on SIGHUP (the same file, environment and flags); `None` ignores
/// SIGHUP (the demo).
/// `started` is shown the running server, for the addresses it listens on.
/// `at_forced_exit`: what a second stop signal, which ends the process
/// without unwinding, must still do (the demo's directory removed).
pub(super) fn serve(
    config: Config,
    reload_from: Option<ConfigArgs>,
    started: impl FnOnce(&ServerHandle),
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
    let pid_file = config.pid_file.clone();
    // A file the configuration names that cannot be opened (`check`
    // refuses it too) is a bad configuration; a port taken, the system's
    // limits, a failure at run time.
    let handle = Server::start(config).map_err(|e| {
        let named_file = matches!(
            e,
            StartError::AccessLog(_) | StartError::Persistence { .. } | StartError::DiskDir { .. }
        );
        let error = anyhow::Error::new(e).context("cannot start");
        match named_file {
            true => Failure::usage(error),
            false => Failure::from(error),
        }
    })?;
    // Once listening: a process that could not bind leaves the file of
    // the one still running (an upgrade's old process) as it was.
    if let Some(path) = &pid_file {
        if let Err(e) = inverso::pid_file::write(path) {
            handle.shutdown(std::time::Duration::ZERO);
            return Err(Failure::usage(
                anyhow::Error::new(e).context("cannot start"),
            ));
        }
    }
    let remove_pid_file = move || {
        if let Some(path) = &pid_file {
            inverso::pid_file::remove_if_ours(path);
        }
    };
    started(&handle);
    let https = handle.tls_addr().map(|a| format!(", https on {a}"));
    systemd::notify(&format!(
        "READY=1\nSTATUS=serving on {}{}",
        handle.local_addr(),
        https.unwrap_or_default()
    ));
    let remove_pid_file = Arc::new(remove_pid_file);
    let forced_remove_pid_file = remove_pid_file.clone();
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
                            forced_remove_pid_file();
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
    remove_pid_file();
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
    let reloaded = match load(args, control.last_addresses()) {
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
