//! A configuration loaded the way the binary does: proxy.conf read from
//! disk (a regular file, of bounded size), its `{$NAME}`s from the
//! environment, then the environment's keys and flags over it.

use super::{ConfigError, Loader};
use std::path::Path;

/// Most configurations are a few dozen lines, but one may carry a country's
/// address blocks in `deny_from` or thousands of routes (each some tens of
/// bytes, 100,000 blocks near 2 MiB); anything larger than this is some
/// other file (or /dev/zero), refused before it fills the memory.
pub(super) const MAX_CONFIG_BYTES: u64 = 16 << 20;

pub(super) fn read_config_file(path: &Path) -> std::io::Result<String> {
    read_bounded(path, "a configuration file")
}

/// The text of the regular file at `path`, of at most
/// [`MAX_CONFIG_BYTES`]: a larger one is said not to be `what` (a
/// configuration file, a list of addresses). A FIFO would hang `check`,
/// or a SIGHUP's reload and with it the signal thread: only a regular
/// file is read.
pub(super) fn read_bounded(path: &Path, what: &str) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    crate::cache::persist::open_regular(path)?
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_CONFIG_BYTES} bytes: not {what}"),
        ));
    }
    Ok(text)
}

/// Reads a configuration the way the binary does: the file (if `path` is
/// given it must exist; the default `proxy.conf` may be absent), its
/// `{$NAME}`s read from `env`, then the environment's `INVERSO_<KEY>`s,
/// then flags `(key, value, flag name)`. The values as
/// written, not built ([`Loader::build`]): what needs one key alone
/// (`inverso signal`'s `pid_file`) is not kept from it by a target's name
/// that does not resolve, or a certificate's file gone.
pub fn read(
    path: &Path,
    path_is_explicit: bool,
    env: Vec<(String, String)>,
    flags: &[(&str, String, &str)],
) -> Result<Loader, ConfigError> {
    let mut loader = Loader::new();
    loader.variables(env.iter().cloned());
    let name = path.display().to_string();
    match read_config_file(path) {
        Ok(text) => {
            loader.file(&name, &text)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !path_is_explicit => {
            log::info!("{name} not found; using defaults, environment and flags");
        }
        Err(e) => {
            return Err(ConfigError {
                place: name,
                message: format!("cannot read: {e}"),
            })
        }
    }
    loader.env(env);
    for (key, value, flag) in flags {
        loader.flag(key, value, flag)?;
    }
    Ok(loader)
}
