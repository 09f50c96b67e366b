//! `state_file`: the drain and maintenance states and the weights set
//! through the admin listener, kept across restarts, as HAProxy's
//! `server-state-file` read with `load-server-state-from-file`. A reload
//! keeps them in memory anyway; a restart (a crash, a reboot, a binary
//! upgrade under `reuse_port`, where a new process starts beside the old
//! one) would otherwise put every target back in rotation at the weight
//! its configuration gives it.
//!
//! # Format, version 1
//!
//! UTF-8 text, one line each (`\n`; `\r\n` is read too):
//!
//! ```text
//! inverso-state 1
//! # <target> <state>, <target> weight=<N> configured=<N>: what is not as configured
//! app:8000 maint
//! 10.0.0.7:80 drain
//! 10.0.0.8:80 weight=5 configured=1
//! ```
//!
//! The first line names the format and its version, so that a later one
//! can be told apart instead of sniffed. Then one line per target that is
//! not in the state its configuration gives it (`ready`, or `maint` for
//! one written `down`): the target and its state (`ready`, `drain` or `maint`, in
//! any case), separated by blanks; and one per target given another
//! weight than its configured one: the weight, and the configured weight
//! it was given over. That weight is applied only while the configuration
//! still gives the target the one it was given over, as HAProxy applies
//! its file's `srv_uweight` only while `srv_iweight` is the
//! configuration's: a `weight=` edited since wins. A reader of version 1
//! from before weights were kept skips a weight line, with a warning, and
//! applies the states. Blank lines and lines starting with `#`
//! are ignored. The target is named as `/status` shows it (its `name`, or
//! its `address`), or by a name as written in `targets` that gives several
//! addresses, which stands for each of them: the file is written so when
//! every address of such a name is in one state (or has one weight), and
//! an address the name gives at the next start is then in that state (or
//! of that weight) too, as a re-resolution puts it (see
//! `Upstreams::keep_state_of`). `name@address`, the name of
//! one address of such a name, also finds that address once the name
//! gives it alone.
//!
//! # Reading
//!
//! Once, at start-up (and by `inverso check`, which says what it would
//! apply). The file may hold anything: it is read up to
//! [`MAX_STATE_FILE`] bytes, and a line that does not parse is skipped
//! with a warning naming the file and the line; the lines that do parse
//! are applied, in order (a later line for a target wins). A target the
//! configuration no longer has is ignored with a warning. A missing file
//! is nothing to apply. Nothing in it can stop the proxy from starting.
//!
//! # Writing
//!
//! Whole, after every `PUT /targets/...` and at every reload, on the
//! thread that made the change (an admin connection's, the signal
//! thread's; never a request's), through [`persist::write_atomically`]: a
//! temporary file in the same directory, fsync, rename, directory fsync,
//! with the directory locked so that two processes sharing the file (the
//! old and the new one of an upgrade) neither remove each other's
//! temporary file nor rename a half-written one into place. Each writes
//! the states it holds; the last write wins.

use super::admin_state::AdminState;
use super::pools::Pools;
use super::Upstream;
use crate::cache::persist::{self, PersistError};
use crate::cache::timer::with_causes;
use crate::config::{printable, weight_from, MAX_WEIGHT};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{self, Read, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The first word of the first line.
const MAGIC: &str = "inverso-state";
pub const FORMAT_VERSION: u32 = 1;
/// The most of a state file read: one line per target not ready is a few
/// kilobytes for hundreds of targets; what is beyond this is not a state
/// file, and is not read.
pub const MAX_STATE_FILE: u64 = 1024 * 1024;
/// Warnings said about one file; the rest are counted. A file of garbage
/// would otherwise give one per line.
const MAX_WARNINGS: usize = 10;
/// The most of a bad line quoted in its warning.
const QUOTED: usize = 60;

/// One line that sets a target's state or its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1 for the first line of the file.
    pub number: usize,
    /// As the file names it.
    pub target: String,
    pub setting: Setting,
}

/// What a line sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    State(AdminState),
    /// A weight given at run time (`PUT /targets/... weight=N`, an
    /// agent's share), and the configured weight it was given over.
    Weight {
        weight: u32,
        configured: u32,
    },
}

impl std::fmt::Display for Setting {
    /// As the file writes it after the target.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Setting::State(state) => write!(f, "{state}"),
            Setting::Weight { weight, configured } => {
                write!(f, "weight={weight} configured={configured}")
            }
        }
    }
}

/// What [`parse`] found.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The lines that parse, in file order.
    pub lines: Vec<Line>,
    /// Another version's file, or a first line that names the format
    /// without a version: nothing was applied.
    pub foreign: bool,
    pub warnings: Warnings,
}

/// What was skipped and why, each with its line if it has one; past
/// [`MAX_WARNINGS`] only counted.
#[derive(Debug, Default)]
pub struct Warnings {
    said: Vec<(Option<usize>, String)>,
    more: usize,
}

impl Warnings {
    fn push(&mut self, line: Option<usize>, message: String) {
        if self.said.len() < MAX_WARNINGS {
            self.said.push((line, message));
        } else {
            self.more += 1;
        }
    }

    /// Each as `file:line: message` (`file: message` without a line),
    /// in the order of the lines, then how many more there were.
    fn said_of(&self, file: &str) -> Vec<String> {
        let mut said: Vec<&(Option<usize>, String)> = self.said.iter().collect();
        said.sort_by_key(|(line, _)| *line);
        let mut out: Vec<String> = (said.into_iter())
            .map(|(line, message)| match line {
                Some(n) => format!("{file}:{n}: {message}"),
                None => format!("{file}: {message}"),
            })
            .collect();
        if self.more > 0 {
            out.push(format!("{file}: {} more warnings not shown", self.more));
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.said.is_empty()
    }
}

/// Reads a state file's bytes, whatever they are: a line that does not
/// parse is skipped with a warning. Without the `inverso-state 1` line
/// first (comments and blank lines aside: a file written by hand), the
/// lines are read as version 1, with a warning; with another version,
/// nothing is (its lines may mean something else).
pub fn parse(bytes: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut lines = (bytes.split(|&b| b == b'\n'))
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .enumerate()
        .map(|(i, line)| (i + 1, line))
        .peekable();
    // The header is the first line that says anything: blank lines and
    // comments before it (a file edited by hand) do not hide it.
    while lines.next_if(|(_, line)| says_nothing(line)).is_some() {}
    let Some(&(at, first)) = lines.peek() else {
        // Empty, or blank: nothing to apply (a file made with `touch`).
        return parsed;
    };
    match header(first) {
        Header::Version(FORMAT_VERSION) => {
            lines.next();
        }
        Header::Version(other) => {
            let message = format!(
                "format version {other}; this build reads version {FORMAT_VERSION}: nothing applied"
            );
            parsed.warnings.push(Some(at), message);
            parsed.foreign = true;
            return parsed;
        }
        Header::Bad => {
            let message = format!(
                "`{MAGIC}` is not followed by a version number (`{MAGIC} {FORMAT_VERSION}`): \
                 nothing applied"
            );
            parsed.warnings.push(Some(at), message);
            parsed.foreign = true;
            return parsed;
        }
        Header::None => {
            let message = format!(
                "no `{MAGIC} {FORMAT_VERSION}` line first: read as version {FORMAT_VERSION}"
            );
            parsed.warnings.push(Some(at), message);
        }
    }
    for (number, line) in lines {
        match parse_line(line) {
            Ok(Some((target, setting))) => parsed.lines.push(Line {
                number,
                target,
                setting,
            }),
            Ok(None) => {}
            Err(message) => parsed.warnings.push(Some(number), message),
        }
    }
    parsed
}

/// A blank line or a comment.
fn says_nothing(line: &[u8]) -> bool {
    let text = line.trim_ascii();
    text.is_empty() || text.starts_with(b"#")
}

/// What the first line of a file says of its format.
enum Header {
    Version(u32),
    /// `inverso-state` with something else than a version after it.
    Bad,
    /// Not a header: a file written by hand, or garbage.
    None,
}

fn header(line: &[u8]) -> Header {
    let text = String::from_utf8_lossy(line);
    let mut words = text.split_whitespace();
    if words.next() != Some(MAGIC) {
        return Header::None;
    }
    match (words.next().map(str::parse::<u32>), words.next()) {
        (Some(Ok(version)), None) => Header::Version(version),
        _ => Header::Bad,
    }
}

/// A target and what the line sets; `None` for a blank line or a comment.
fn parse_line(line: &[u8]) -> Result<Option<(String, Setting)>, String> {
    if says_nothing(line) {
        return Ok(None);
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return Err("not UTF-8 text: skipped".to_string());
    };
    let text = text.trim();
    let mut words = text.split_whitespace();
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some(target), Some(state), None, None) => match state.parse() {
            Ok(state) => Ok(Some((target.to_string(), Setting::State(state)))),
            Err(e) => Err(format!("{e}: skipped")),
        },
        (Some(target), Some(weight), Some(configured), None) if weight.contains('=') => {
            match (
                weight_of(weight, "weight"),
                weight_of(configured, "configured"),
            ) {
                (Ok(weight), Ok(configured)) => Ok(Some((
                    target.to_string(),
                    Setting::Weight { weight, configured },
                ))),
                (Err(e), _) | (_, Err(e)) => Err(format!("{e}: skipped")),
            }
        }
        _ => Err(format!(
            "expected `<target> <state>` or `<target> weight=<N> configured=<N>`, \
             found `{}`: skipped",
            quote(text)
        )),
    }
}

/// `name=N`, N a weight a target may have.
fn weight_of(word: &str, name: &str) -> Result<u32, String> {
    (word.split_once('='))
        .filter(|(key, _)| key.eq_ignore_ascii_case(name))
        .and_then(|(_, n)| weight_from(n))
        .ok_or_else(|| {
            format!(
                "expected `{name}=N` (1 to {MAX_WEIGHT}), found `{}`",
                quote(word)
            )
        })
}

/// A bad line as a warning quotes it: its first characters, controls
/// escaped.
fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTED) {
        Some((cut, _)) => format!("{}...", printable(&text[..cut])),
        None => printable(text),
    }
}

/// What reading the file at start-up found, and what was applied.
#[derive(Debug, Default)]
pub struct Restored {
    /// No file there: nothing to apply (it is written at the first change).
    pub missing: bool,
    /// Each line applied, as `file:line: target -> state`, with the targets
    /// it set when they are named otherwise.
    pub applied: Vec<String>,
    /// What was skipped or ignored and why, naming the file and the line.
    pub warnings: Vec<String>,
    /// The file is another version's (or names the format without a
    /// version): nothing of it was applied.
    pub foreign: bool,
}

/// Reads the state file at `path` and puts the targets it names in their
/// states. Never fails: what cannot be read or applied is a warning.
pub fn restore(upstreams: &Pools, path: &Path) -> Restored {
    let file = format!("state_file {}", printable(&path.display().to_string()));
    let mut restored = Restored::default();
    let mut warnings = Warnings::default();
    match read(path) {
        Ok(None) => restored.missing = true,
        Err(e) => warnings.push(
            None,
            format!("cannot read it: {e}; every target starts ready"),
        ),
        Ok(Some((bytes, cut))) => {
            if cut {
                let message =
                    format!("larger than {MAX_STATE_FILE} bytes: what is past them is not read");
                warnings.push(None, message);
            }
            let parsed = parse(&bytes);
            restored.foreign = parsed.foreign;
            let parse_warnings = parsed.warnings;
            for (line, message) in parse_warnings.said {
                warnings.push(line, message);
            }
            warnings.more += parse_warnings.more;
            for line in parsed.lines {
                let targets = targets_named(upstreams, &line.target);
                if targets.is_empty() {
                    let message = format!(
                        "no target is named `{}` (not in `targets` any more?): ignored",
                        quote(&line.target)
                    );
                    warnings.push(Some(line.number), message);
                    continue;
                }
                let targets = match line.setting {
                    Setting::State(state) => {
                        for target in &targets {
                            upstreams.set_admin_state(target, state);
                        }
                        targets
                    }
                    Setting::Weight { weight, configured } => {
                        match weigh(upstreams, targets, weight, configured) {
                            Ok(weighed) => weighed,
                            Err(why) => {
                                warnings.push(Some(line.number), format!("{why}: ignored"));
                                continue;
                            }
                        }
                    }
                };
                let set = match line.setting {
                    Setting::State(state) => state.to_string(),
                    Setting::Weight { weight, .. } => format!("weight {weight}"),
                };
                let mut said = format!("{file}:{}: {} -> {set}", line.number, line.target);
                if targets.len() > 1 || *targets[0].name != line.target {
                    let names: Vec<&str> = targets.iter().map(|t| &*t.name).collect();
                    let _ = write!(said, " ({})", names.join(", "));
                }
                restored.applied.push(said);
            }
        }
    }
    if let Some(problem) = unwritable_directory(path) {
        warnings.push(None, problem);
    }
    restored.warnings = warnings.said_of(&file);
    restored
}

/// Gives each of `targets` still configured with the weight `weight` was
/// given over that weight; returns those it gave it, or why it gave it to
/// none.
fn weigh<'a>(
    upstreams: &Pools,
    targets: Vec<&'a Upstream>,
    weight: u32,
    configured: u32,
) -> Result<Vec<&'a Upstream>, String> {
    let (same, edited): (Vec<&Upstream>, Vec<&Upstream>) =
        targets.into_iter().partition(|t| t.weight == configured);
    if same.is_empty() {
        let now = edited.first().map_or(configured, |t| t.weight);
        return Err(format!(
            "weight {weight} was given over weight={configured}, and the configuration says \
             weight={now} now, which stands"
        ));
    }
    if let Some(pool) = (same.iter())
        .map(|t| upstreams.pool_of(t))
        .find(|pool| !pool.balance().weighs_as_it_picks())
    {
        return Err(format!(
            "weight {weight}: pool {} balances by {}, which does not read a weight as it picks",
            pool.name(),
            pool.balance().name()
        ));
    }
    for target in &same {
        target.health.admin().set_weight(Some(weight));
    }
    Ok(same)
}

/// [`restore`] at start-up: a file of another version, of which nothing
/// was applied, is then moved aside as the cache snapshot's is (to
/// `NAME.unread-SECONDS`, see [`persist::set_aside`]), so that the first
/// write of the states (a `PUT`, a reload) does not destroy it: the
/// newer version an operator went back from, started again, finds its
/// states there by hand.
pub fn restore_at_start(upstreams: &Pools, path: &Path) -> Restored {
    let mut restored = restore(upstreams, path);
    if restored.foreign {
        let file = format!("state_file {}", printable(&path.display().to_string()));
        let now = (SystemTime::now().duration_since(UNIX_EPOCH)).map_or(0, |d| d.as_secs());
        match persist::set_aside(path, "unread", now) {
            Ok(Some(aside)) => restored.warnings.push(format!(
                "{file}: kept as {} (the next write of the states would replace it)",
                printable(&aside.display().to_string())
            )),
            Ok(None) => {}
            Err(e) => restored.warnings.push(format!(
                "{file}: it could not be moved aside ({}), and the next write of the states will replace it",
                with_causes(&e)
            )),
        }
    }
    restored
}

/// The file's bytes, at most [`MAX_STATE_FILE`] of them (cut after the
/// last whole line within, and said so with `true`); `None` when there
/// is no file.
fn read(path: &Path) -> io::Result<Option<(Vec<u8>, bool)>> {
    // A FIFO or a device is refused, not read: it could block start-up.
    let file = match persist::open_regular(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(MAX_STATE_FILE + 1).read_to_end(&mut bytes)?;
    let cut = bytes.len() as u64 > MAX_STATE_FILE;
    if cut {
        let end = (bytes[..MAX_STATE_FILE as usize].iter())
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        bytes.truncate(end);
    }
    Ok(Some((bytes, cut)))
}

/// Why the file could not be written, when its directory is missing or
/// is not one: said at start-up rather than at the first change.
fn unwritable_directory(path: &Path) -> Option<String> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => return None,
    };
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => None,
        _ => Some(format!(
            "{} is not a directory: the states set through the admin listener cannot be saved",
            printable(&dir.display().to_string())
        )),
    }
}

/// The targets a line of the file names: one by its name or address, or
/// those a name as written in `targets` stands for (as the admin listener
/// finds them),
/// or, for `name@address`, that address of that name whatever it is
/// called now (the name came to give that address alone).
fn targets_named<'a>(upstreams: &'a Pools, id: &str) -> Vec<&'a Upstream> {
    if let Some(target) = upstreams.find(id) {
        return vec![target];
    }
    let written = upstreams.written_as(id);
    if !written.is_empty() {
        return written;
    }
    let Some((written, addr)) = id.rsplit_once('@') else {
        return Vec::new();
    };
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        return Vec::new();
    };
    (upstreams.targets())
        .filter(|t| *t.written == *written && t.addr.tcp() == Some(addr))
        .collect()
}

/// The file for the states and weights `upstreams` have now: one line
/// per target not in the state its configuration gives it (`ready`, or
/// `maint` for one written `down`), one per target given another weight
/// than its configured one, or one for a name that gives several
/// addresses, all in one state (or of one weight). A target written
/// `down` and in maintenance is left out: a start puts it there anyway,
/// and one whose word was taken out meanwhile starts `ready`, as the
/// configuration now says.
pub fn render(upstreams: &Pools) -> String {
    let mut out = format!(
        "{MAGIC} {FORMAT_VERSION}\n\
         # <target> <state>, <target> weight=<N> configured=<N>: what is not as configured, \
         as set through the admin listener\n"
    );
    let targets: Vec<&Upstream> = upstreams.targets().collect();
    // Read once: a change made meanwhile by another admin request is
    // written by that request.
    let states: Vec<Setting> = (targets.iter())
        .map(|t| Setting::State(t.health.admin_state()))
        .collect();
    let weights: Vec<Setting> = (targets.iter())
        .map(|t| Setting::Weight {
            weight: t.weight_now(),
            configured: t.weight,
        })
        .collect();
    let configured_state = |target: &Upstream| match target.down {
        true => Setting::State(AdminState::Maint),
        false => Setting::State(AdminState::Ready),
    };
    let configured_weight = |target: &Upstream| Setting::Weight {
        weight: target.weight,
        configured: target.weight,
    };
    write_settings(&mut out, &targets, &states, configured_state);
    write_settings(&mut out, &targets, &weights, configured_weight);
    out
}

/// A line for each of `settings` (one per target) that is not what
/// `configured` gives its target, or one for a name that gives several
/// addresses whose settings are all one.
fn write_settings(
    out: &mut String,
    targets: &[&Upstream],
    settings: &[Setting],
    configured: impl Fn(&Upstream) -> Setting,
) {
    let mut names_done: HashSet<&str> = HashSet::new();
    for (i, target) in targets.iter().enumerate() {
        let setting = settings[i];
        let mut group = (0..targets.len()).filter(|&j| targets[j].written == target.written);
        let several = group.clone().nth(1).is_some();
        if several && group.all(|j| settings[j] == setting) {
            if setting != configured(target) && names_done.insert(&target.written) {
                let _ = writeln!(out, "{} {setting}", target.written);
            }
            continue;
        }
        if setting != configured(target) {
            let _ = writeln!(out, "{} {setting}", target.name);
        }
    }
}

/// Writes of this process one after the other (the directory's lock
/// orders them too, where the file system has `flock`): each renders the
/// states after the last one wrote, so the last write holds the latest.
static SAVING: Mutex<()> = Mutex::new(());

/// Writes the states `upstreams` are in now to `path`, crash-safely.
pub fn save(path: &Path, upstreams: &Pools) -> Result<(), PersistError> {
    let _saving = SAVING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    persist::write_atomically(path, |out| out.write_all(render(upstreams).as_bytes()))
}

/// [`save`], a failure said as a warning (`during` names what changed the
/// states) and returned as a one-line message: the states are in force in
/// memory whatever became of the file.
pub fn save_or_warn(path: &Path, upstreams: &Pools, during: &str) -> Result<(), String> {
    save(path, upstreams).map_err(|e| {
        let message = with_causes(&e);
        log::warn!(
            "{during}: state_file {}: {message}; the states are in force, but a restart \
             would not find them",
            printable(&path.display().to_string())
        );
        message
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Balance, Config, Found, Target};

    fn target(name: &str, addr: &str) -> Target {
        Target::new(name, addr.parse().unwrap())
    }

    /// 127.0.0.1 at each of `ports`, as a lookup finds it.
    fn found(ports: &[u16]) -> Vec<Found> {
        (ports.iter())
            .map(|&p| SocketAddr::from(([127, 0, 0, 1], p)).into())
            .collect()
    }

    fn upstreams(targets: Vec<Target>) -> Pools {
        let mut config = Config::with_targets(targets);
        config.max_fails = 0;
        Pools::new(&config)
    }

    /// `app:80` giving two addresses, and two targets written as such.
    fn three_of_a_name_and_two() -> Pools {
        let mut targets = target("app:80", "127.0.0.1:1").at(&found(&[1, 2]));
        targets.push(target("127.0.0.1:3", "127.0.0.1:3"));
        targets.push(target("db.internal:5432", "127.0.0.1:4"));
        upstreams(targets)
    }

    fn states(up: &Pools) -> Vec<(String, AdminState)> {
        (up.get(0).targets().iter())
            .map(|t| (t.name.to_string(), t.health.admin_state()))
            .collect()
    }

    fn said(parsed: &Parsed) -> Vec<String> {
        parsed.warnings.said_of("f")
    }

    #[test]
    fn a_file_as_written_parses_to_its_lines() {
        let parsed = parse(
            b"inverso-state 1\n# a comment\n\napp:8000 maint\r\n  10.0.0.7:80\tDRAIN  \n[::1]:81 ready\n",
        );
        assert!(parsed.warnings.is_empty(), "{:?}", said(&parsed));
        let lines: Vec<(usize, &str, Setting)> = (parsed.lines.iter())
            .map(|l| (l.number, &*l.target, l.setting))
            .collect();
        assert_eq!(
            lines,
            [
                (4, "app:8000", Setting::State(AdminState::Maint)),
                (5, "10.0.0.7:80", Setting::State(AdminState::Drain)),
                (6, "[::1]:81", Setting::State(AdminState::Ready)),
            ]
        );
    }

    #[test]
    fn an_empty_or_blank_file_is_nothing_to_apply_and_nothing_to_say() {
        for bytes in [&b""[..], b"\n", b" \r\n\t\n", b"\xEF\xBB\xBF"] {
            let parsed = parse(bytes);
            assert!(
                parsed.lines.is_empty() && parsed.warnings.is_empty(),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn bad_lines_are_skipped_with_their_number_and_the_good_ones_kept() {
        let parsed = parse(
            b"inverso-state 1\na:1 maint\nb:2\nc:3 drained\nd:4 drain extra\n\xff\xfe maint\ne:5 drain\nf:6 mai",
        );
        let kept: Vec<&str> = parsed.lines.iter().map(|l| &*l.target).collect();
        assert_eq!(kept, ["a:1", "e:5"]);
        let warnings = said(&parsed);
        let at = |n: usize| warnings.iter().find(|w| w.starts_with(&format!("f:{n}: ")));
        assert!(at(3).unwrap().contains(
            "expected `<target> <state>` or `<target> weight=<N> configured=<N>`, found `b:2`"
        ));
        assert!(at(4).unwrap().contains("unknown target state `drained`"));
        assert!(at(5).unwrap().contains("found `d:4 drain extra`"));
        assert!(at(6).unwrap().contains("not UTF-8"));
        // A line cut short (a file truncated by hand) is a bad line too.
        assert!(at(8).unwrap().contains("unknown target state `mai`"));
        assert_eq!(warnings.len(), 5, "{warnings:?}");
    }

    #[test]
    fn a_weight_line_parses_and_a_bad_one_says_what_it_expected() {
        let parsed = parse(
            b"inverso-state 1\na:1 weight=5 configured=1\nb:2 WEIGHT=10000 Configured=7\n\
              c:3 weight=0 configured=1\nd:4 weight=5 configured=10001\ne:5 weight=+5 configured=1\n\
              f:6 configured=1 weight=5\ng:7 weight=5 configured=1 drain\nh:8 weight= configured=1\n",
        );
        let kept: Vec<(&str, Setting)> = (parsed.lines.iter())
            .map(|l| (&*l.target, l.setting))
            .collect();
        let weight = |weight, configured| Setting::Weight { weight, configured };
        assert_eq!(kept, [("a:1", weight(5, 1)), ("b:2", weight(10_000, 7))]);
        let warnings = said(&parsed);
        let at = |n: usize| {
            (warnings.iter())
                .find(|w| w.starts_with(&format!("f:{n}: ")))
                .unwrap_or_else(|| panic!("line {n}: {warnings:?}"))
        };
        assert!(at(4).contains("expected `weight=N` (1 to 10000), found `weight=0`"));
        assert!(at(5).contains("expected `configured=N` (1 to 10000), found `configured=10001`"));
        assert!(at(6).contains("found `weight=+5`"));
        assert!(at(7).contains("expected `weight=N`"), "the order is fixed");
        assert!(at(8).contains("expected `<target> <state>` or"));
        assert!(at(9).contains("found `weight=`"));
        assert_eq!(warnings.len(), 6, "{warnings:?}");
        assert_eq!(weight(5, 1).to_string(), "weight=5 configured=1");
    }

    /// Two targets under `weighted_round_robin` (or `balance`), the first
    /// written `weight=configured`.
    fn weighed(balance: Balance, configured: u32) -> Pools {
        let mut targets = vec![
            target("127.0.0.1:1", "127.0.0.1:1"),
            target("127.0.0.1:2", "127.0.0.1:2"),
        ];
        targets[0].weight = configured;
        let mut config = Config::with_targets(targets);
        config.balance = balance;
        Pools::new(&config)
    }

    #[test]
    fn a_weight_is_saved_over_its_configured_one_and_restored_only_while_that_stands() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let up = weighed(Balance::WeightedRoundRobin, 2);
        let [first, second] = up.get(0).targets() else {
            panic!()
        };
        first.health.admin().set_weight(Some(6));
        // Given its configured weight: as configured, not listed.
        second.health.admin().set_weight(Some(1));
        up.set_admin_state(second, AdminState::Drain);
        let body = |up: &Pools| render(up).lines().skip(2).collect::<Vec<_>>().join("\n");
        assert_eq!(
            body(&up),
            "127.0.0.1:2 drain\n127.0.0.1:1 weight=6 configured=2"
        );
        save(&path, &up).unwrap();

        let next = weighed(Balance::WeightedRoundRobin, 2);
        let restored = restore(&next, &path);
        assert!(restored.warnings.is_empty(), "{:?}", restored.warnings);
        assert_eq!(next.get(0).targets()[0].weight_now(), 6);
        let file = format!("state_file {}", path.display());
        assert_eq!(
            restored.applied,
            [
                format!("{file}:3: 127.0.0.1:2 -> drain"),
                format!("{file}:4: 127.0.0.1:1 -> weight 6"),
            ]
        );
        // `weight=` edited since: the configuration's stands.
        let edited = weighed(Balance::WeightedRoundRobin, 3);
        let restored = restore(&edited, &path);
        assert_eq!(edited.get(0).targets()[0].weight_now(), 3);
        assert_eq!(
            restored.applied,
            [format!("{file}:3: 127.0.0.1:2 -> drain")]
        );
        assert_eq!(
            restored.warnings,
            [format!(
                "{file}:4: weight 6 was given over weight=2, and the configuration says \
                 weight=3 now, which stands: ignored"
            )]
        );
        // A balancer that weighs nothing is given nothing, and says so.
        let unweighed = weighed(Balance::RoundRobin, 2);
        let restored = restore(&unweighed, &path);
        assert_eq!(unweighed.get(0).targets()[0].health.admin().weight(), None);
        assert!(
            restored.warnings[0].ends_with(
                "weight 6: pool default balances by round_robin, which does not read \
                 a weight as it picks: ignored"
            ),
            "{:?}",
            restored.warnings
        );
    }

    #[test]
    fn a_name_whose_addresses_share_a_weight_is_written_once_and_restored_to_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let generation = || {
            let mut config =
                Config::with_targets(target("app:80", "127.0.0.1:1").at(&found(&[1, 2])));
            config.balance = Balance::LeastConn;
            Pools::new(&config)
        };
        let up = generation();
        let [a1, a2] = up.get(0).targets() else {
            panic!()
        };
        a1.health.admin().set_weight(Some(4));
        let body = |up: &Pools| render(up).lines().skip(2).collect::<Vec<_>>().join("\n");
        assert_eq!(body(&up), "app:80@127.0.0.1:1 weight=4 configured=1");
        a2.health.admin().set_weight(Some(4));
        assert_eq!(body(&up), "app:80 weight=4 configured=1");
        save(&path, &up).unwrap();
        let next = generation();
        let restored = restore(&next, &path);
        let weights: Vec<u32> = next
            .get(0)
            .targets()
            .iter()
            .map(|t| t.weight_now())
            .collect();
        assert_eq!(weights, [4, 4]);
        assert!(
            restored.applied[0]
                .ends_with(":3: app:80 -> weight 4 (app:80@127.0.0.1:1, app:80@127.0.0.1:2)"),
            "{:?}",
            restored.applied
        );
    }

    #[test]
    fn without_the_header_lines_are_read_as_version_one_with_a_warning() {
        let parsed = parse(b"app:8000 maint\n");
        assert_eq!(parsed.lines.len(), 1);
        assert_eq!(parsed.lines[0].number, 1);
        let warnings = said(&parsed);
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with("f:1: no `inverso-state 1` line"),
            "{warnings:?}"
        );
    }

    #[test]
    fn another_versions_file_is_moved_aside_at_start_up_not_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let newer = b"inverso-state 2\n127.0.0.1:3 maint weight=0\n";
        std::fs::write(&path, newer).unwrap();
        let up = three_of_a_name_and_two();
        let restored = restore_at_start(&up, &path);
        assert!(restored.foreign && restored.applied.is_empty());
        assert!(
            restored.warnings[1].contains("kept as"),
            "{:?}",
            restored.warnings
        );
        // The first change through the admin listener writes the states.
        save(&path, &up).unwrap();
        let aside: Vec<_> = (std::fs::read_dir(dir.path()).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p != &path)
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert!(aside[0].to_string_lossy().contains("state.unread-"));
        assert_eq!(std::fs::read(&aside[0]).unwrap(), newer);
        // A file this version reads stays where it is.
        let restored = restore_at_start(&up, &path);
        assert!(!restored.foreign && path.exists());
    }

    #[test]
    fn another_version_or_a_bad_header_applies_nothing() {
        for (bytes, says) in [
            (
                &b"inverso-state 2\napp:8000 maint\n"[..],
                "format version 2",
            ),
            (
                b"inverso-state\napp:8000 maint\n",
                "not followed by a version",
            ),
            (
                b"inverso-state one\napp:8000 maint\n",
                "not followed by a version",
            ),
        ] {
            let parsed = parse(bytes);
            assert!(parsed.lines.is_empty());
            let warnings = said(&parsed);
            assert!(warnings[0].starts_with("f:1: ") && warnings[0].contains(says));
            assert!(warnings[0].contains("nothing applied"), "{warnings:?}");
        } // Found past comments and blank lines a hand's edit put first.
        let parsed = parse(b"# kept by hand\n\n  \ninverso-state 2\napp:8000 maint\n");
        assert!(parsed.lines.is_empty() && parsed.foreign);
        let warnings = said(&parsed);
        assert!(
            warnings[0].starts_with("f:4: format version 2"),
            "{warnings:?}"
        );
        let parsed = parse(b"# kept by hand\ninverso-state 1\napp:8000 maint\n");
        assert_eq!(parsed.lines.len(), 1);
        assert!(parsed.warnings.is_empty(), "{:?}", said(&parsed));
    }

    #[test]
    fn garbage_gives_a_bounded_number_of_warnings_and_a_count() {
        let mut bytes = b"inverso-state 1\n".to_vec();
        for i in 0..1000 {
            match i % 2 {
                0 => bytes.extend_from_slice(b"\xff\xfe\x00 maint\n"),
                _ => bytes.extend_from_slice(b"\x00\x1b[2J a b\n"),
            }
        }
        bytes.extend_from_slice(b"ok:1 drain\n");
        let parsed = parse(&bytes);
        assert_eq!(parsed.lines.len(), 1);
        let warnings = said(&parsed);
        assert_eq!(warnings.len(), MAX_WARNINGS + 1);
        assert_eq!(warnings[MAX_WARNINGS], "f: 990 more warnings not shown");
        // What a line holds is quoted with its controls escaped.
        assert!(warnings.iter().all(|w| !w.contains('\x1b')), "{warnings:?}");
    }

    #[test]
    fn a_long_bad_line_is_quoted_in_part() {
        let line = format!("inverso-state 1\n{}\n", "x".repeat(10_000));
        let warnings = said(&parse(line.as_bytes()));
        assert!(warnings[0].len() < 200, "{}", warnings[0]);
        assert!(warnings[0].contains("xxx..."));
    }

    #[test]
    fn render_writes_the_targets_not_ready_and_a_name_all_in_one_state_once() {
        let up = three_of_a_name_and_two();
        assert_eq!(
            render(&up),
            "inverso-state 1\n\
             # <target> <state>, <target> weight=<N> configured=<N>: what is not as configured, \
             as set through the admin listener\n"
        );
        let [a1, a2, third, db] = up.get(0).targets() else {
            panic!()
        };
        up.set_admin_state(a1, AdminState::Maint);
        up.set_admin_state(third, AdminState::Drain);
        let body = |up: &Pools| render(up).lines().skip(2).collect::<Vec<_>>().join("\n");
        assert_eq!(body(&up), "app:80@127.0.0.1:1 maint\n127.0.0.1:3 drain");
        up.set_admin_state(a2, AdminState::Maint);
        up.set_admin_state(db, AdminState::Maint);
        assert_eq!(
            body(&up),
            "app:80 maint\n127.0.0.1:3 drain\ndb.internal:5432 maint"
        );
        up.set_admin_state(third, AdminState::Ready);
        up.set_admin_state(a1, AdminState::Ready);
        assert_eq!(
            body(&up),
            "app:80@127.0.0.1:2 maint\ndb.internal:5432 maint"
        );
    }

    #[test]
    fn a_target_written_down_is_saved_only_out_of_maintenance() {
        let generation = || {
            let mut down = target("127.0.0.1:2", "127.0.0.1:2");
            down.down = true;
            upstreams(vec![target("127.0.0.1:1", "127.0.0.1:1"), down])
        };
        let up = generation();
        let body = |up: &Pools| render(up).lines().skip(2).collect::<Vec<_>>().join("\n");
        // In maintenance as written: nothing to keep.
        assert_eq!(body(&up), "");
        let down = &up.get(0).targets()[1];
        up.set_admin_state(down, AdminState::Ready);
        assert_eq!(body(&up), "127.0.0.1:2 ready");
        up.set_admin_state(down, AdminState::Drain);
        assert_eq!(body(&up), "127.0.0.1:2 drain");
        // The operator's ready outlives a restart, as a drain does.
        up.set_admin_state(down, AdminState::Ready);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        save(&path, &up).unwrap();
        let next = generation();
        assert_eq!(
            next.get(0).targets()[1].health.admin_state(),
            AdminState::Maint
        );
        restore(&next, &path);
        assert_eq!(states(&next), states(&up));
    }

    #[test]
    fn what_is_saved_is_what_the_next_start_restores() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let up = three_of_a_name_and_two();
        let [a1, a2, third, _] = up.get(0).targets() else {
            panic!()
        };
        up.set_admin_state(a1, AdminState::Drain);
        up.set_admin_state(a2, AdminState::Drain);
        up.set_admin_state(third, AdminState::Maint);
        save(&path, &up).unwrap();
        let next = three_of_a_name_and_two();
        let restored = restore(&next, &path);
        assert!(restored.warnings.is_empty(), "{:?}", restored.warnings);
        assert_eq!(states(&next), states(&up));
        let file = format!("state_file {}", path.display());
        assert_eq!(
            restored.applied,
            [
                format!("{file}:3: app:80 -> drain (app:80@127.0.0.1:1, app:80@127.0.0.1:2)"),
                format!("{file}:4: 127.0.0.1:3 -> maint"),
            ]
        );
    }

    #[test]
    fn a_unix_target_is_saved_and_found_by_its_unix_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        // An `@` in a path is no `name@address`.
        let with_unix = || {
            upstreams(vec![
                Target::unix("/run/app@1.sock"),
                target("127.0.0.1:3", "127.0.0.1:3"),
            ])
        };
        let up = with_unix();
        up.set_admin_state(&up.get(0).targets()[0], AdminState::Maint);
        let body = render(&up);
        assert_eq!(body.lines().nth(2), Some("unix:/run/app@1.sock maint"));
        save(&path, &up).unwrap();
        let next = with_unix();
        let restored = restore(&next, &path);
        assert!(restored.warnings.is_empty(), "{:?}", restored.warnings);
        assert_eq!(states(&next), states(&up));
        assert_eq!(targets_named(&next, "unix:/run/app@1.sock").len(), 1);
        assert!(targets_named(&next, "unix:/run/app").is_empty());
    }

    #[test]
    fn targets_are_found_by_name_address_name_as_written_or_former_name() {
        let up = three_of_a_name_and_two();
        let names = |id: &str| -> Vec<String> {
            (targets_named(&up, id).iter())
                .map(|t| t.name.to_string())
                .collect()
        };
        assert_eq!(names("db.internal:5432"), ["db.internal:5432"]);
        assert_eq!(names("127.0.0.1:4"), ["db.internal:5432"]);
        assert_eq!(
            names("app:80"),
            ["app:80@127.0.0.1:1", "app:80@127.0.0.1:2"]
        );
        assert_eq!(names("app:80@127.0.0.1:2"), ["app:80@127.0.0.1:2"]);
        // The name that gave two addresses gives one now: its line for
        // that one still finds it, not the others'.
        let one = upstreams(target("app:80", "127.0.0.1:1").at(&found(&[1])));
        assert_eq!(targets_named(&one, "app:80@127.0.0.1:1").len(), 1);
        assert!(targets_named(&one, "app:80@127.0.0.1:2").is_empty());
        for unknown in [
            "nope:80",
            "127.0.0.1:9",
            "db.internal:5432@127.0.0.1:9",
            "@",
            "",
        ] {
            assert!(names(unknown).is_empty(), "{unknown}");
        }
    }

    #[test]
    fn unknown_targets_and_bad_lines_are_warned_of_and_the_rest_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        std::fs::write(
            &path,
            b"inverso-state 1\ngone.internal:80 maint\n127.0.0.1:3 maint\n\x00\x01\x02\ndb.internal:5432 drain",
        )
        .unwrap();
        let up = three_of_a_name_and_two();
        let restored = restore(&up, &path);
        let file = format!("state_file {}", path.display());
        assert_eq!(restored.warnings.len(), 2, "{:?}", restored.warnings);
        assert!(restored.warnings[0]
            .starts_with(&format!("{file}:2: no target is named `gone.internal:80`")));
        assert!(restored.warnings[1].starts_with(&format!("{file}:4: expected")));
        assert_eq!(
            up.get(0).targets()[2].health.admin_state(),
            AdminState::Maint
        );
        assert_eq!(
            up.get(0).targets()[3].health.admin_state(),
            AdminState::Drain
        );
        assert_eq!(
            up.get(0).targets()[0].health.admin_state(),
            AdminState::Ready
        );
    }

    #[test]
    fn a_missing_file_is_nothing_to_apply_and_an_unreadable_one_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let up = three_of_a_name_and_two();
        let restored = restore(&up, &dir.path().join("state"));
        assert!(restored.missing);
        assert!(restored.applied.is_empty() && restored.warnings.is_empty());
        // A directory where the file should be.
        let restored = restore(&up, dir.path());
        assert!(!restored.missing);
        assert!(
            restored.warnings[0].contains("cannot read it"),
            "{:?}",
            restored.warnings
        );
        // A regular file where its directory should be: it cannot be read,
        // nor written later, and the start-up says so.
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let restored = restore(&up, &file.join("state"));
        assert_eq!(restored.warnings.len(), 2, "{:?}", restored.warnings);
        assert!(restored.warnings[1].contains("is not a directory"));
        assert!(states(&up).iter().all(|(_, s)| *s == AdminState::Ready));
    }

    #[test]
    fn a_file_over_the_limit_is_read_up_to_its_last_whole_line_within_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let mut bytes = b"inverso-state 1\n127.0.0.1:3 maint\n".to_vec();
        while bytes.len() < MAX_STATE_FILE as usize - 10 {
            bytes.extend_from_slice(b"# padding padding padding\n");
        }
        // Across the limit: cut, and not read as `db.internal:5` or so.
        bytes.extend_from_slice(b"db.internal:5432 maint\n127.0.0.1:4 drain\n");
        std::fs::write(&path, &bytes).unwrap();
        let up = three_of_a_name_and_two();
        let restored = restore(&up, &path);
        assert_eq!(restored.warnings.len(), 1, "{:?}", restored.warnings);
        assert!(restored.warnings[0].contains("larger than 1048576 bytes"));
        assert_eq!(
            up.get(0).targets()[2].health.admin_state(),
            AdminState::Maint
        );
        assert_eq!(
            up.get(0).targets()[3].health.admin_state(),
            AdminState::Ready
        );
    }

    #[test]
    fn a_file_of_the_limit_exactly_is_read_whole_and_one_byte_more_loses_its_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        // The line whose newline is the last within the limit sets a
        // state, and the one after it ends right at the limit.
        let (kept, last) = (&b"127.0.0.1:3 maint\n"[..], &b"127.0.0.1:4 drain\n"[..]);
        let mut bytes = b"inverso-state 1\n#".to_vec();
        let padding = MAX_STATE_FILE as usize - bytes.len() - 1 - kept.len() - last.len();
        bytes.extend(std::iter::repeat_n(b'x', padding));
        bytes.push(b'\n');
        bytes.extend_from_slice(kept);
        bytes.extend_from_slice(last);
        assert_eq!(bytes.len() as u64, MAX_STATE_FILE);
        std::fs::write(&path, &bytes).unwrap();
        let up = three_of_a_name_and_two();
        let restored = restore(&up, &path);
        assert!(restored.warnings.is_empty(), "{:?}", restored.warnings);
        let [.., third, db] = up.get(0).targets() else {
            panic!()
        };
        assert_eq!(third.health.admin_state(), AdminState::Maint);
        assert_eq!(db.health.admin_state(), AdminState::Drain);

        // One byte more, a blank at the end of the last line: that line
        // crosses the limit and is dropped whole, though the part within
        // would read as a line; the one before it is read as it is.
        bytes.insert(bytes.len() - 1, b' ');
        std::fs::write(&path, &bytes).unwrap();
        let up = three_of_a_name_and_two();
        let restored = restore(&up, &path);
        assert_eq!(restored.warnings.len(), 1, "{:?}", restored.warnings);
        assert!(restored.warnings[0].contains("larger than 1048576 bytes"));
        let [.., third, db] = up.get(0).targets() else {
            panic!()
        };
        assert_eq!(third.health.admin_state(), AdminState::Maint);
        assert_eq!(db.health.admin_state(), AdminState::Ready);
    }

    #[test]
    fn a_file_of_garbage_at_start_up_says_how_many_warnings_it_did_not_show() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let mut bytes = b"inverso-state 1\n".to_vec();
        for _ in 0..MAX_WARNINGS + 5 {
            bytes.extend_from_slice(b"garbage\n");
        }
        std::fs::write(&path, &bytes).unwrap();
        let parsed = parse(&bytes);
        assert!(!parsed.warnings.is_empty());
        let restored = restore(&three_of_a_name_and_two(), &path);
        assert_eq!(restored.warnings.len(), MAX_WARNINGS + 1);
        assert_eq!(
            restored.warnings[MAX_WARNINGS],
            format!("state_file {}: 5 more warnings not shown", path.display())
        );
    }

    #[test]
    fn a_line_that_names_one_target_otherwise_says_which_it_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        std::fs::write(&path, b"127.0.0.1:4 drain\n127.0.0.1:3 maint\n").unwrap();
        let restored = restore(&three_of_a_name_and_two(), &path);
        let file = format!("state_file {}", path.display());
        assert_eq!(
            restored.applied,
            [
                format!("{file}:1: 127.0.0.1:4 -> drain (db.internal:5432)"),
                format!("{file}:2: 127.0.0.1:3 -> maint"),
            ]
        );
    }

    #[test]
    fn a_file_in_the_working_directory_has_a_directory() {
        assert_eq!(unwritable_directory(Path::new("state")), None);
        assert!(unwritable_directory(Path::new("no-such-directory/state")).is_some());
    }

    #[test]
    fn a_save_that_fails_says_why() {
        let dir = tempfile::tempdir().unwrap();
        // A regular file where the state file's directory should be.
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let failed = save_or_warn(&file.join("state"), &three_of_a_name_and_two(), "test");
        let why = failed.unwrap_err();
        assert!(why.contains("Not a directory"), "{why}");
        assert_eq!(std::fs::read(&file).unwrap(), b"x");
    }

    #[test]
    fn two_writers_of_one_file_never_show_a_reader_half_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let up = three_of_a_name_and_two();
                    for i in 0..100 {
                        let state = AdminState::ALL[(i + w) % 3];
                        for t in up.get(0).targets() {
                            up.set_admin_state(t, state);
                        }
                        // As another process would: without this one's
                        // mutex, under the directory's lock alone.
                        persist::write_atomically(&path, |out| {
                            out.write_all(render(&up).as_bytes())
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        let mut reads = 0;
        while !writers.iter().all(|w| w.is_finished()) || reads == 0 {
            if let Ok(bytes) = std::fs::read(&path) {
                let parsed = parse(&bytes);
                assert!(parsed.warnings.is_empty(), "{:?}", said(&parsed));
                assert!(bytes.starts_with(b"inverso-state 1\n"));
                reads += 1;
            }
        }
        for w in writers {
            w.join().unwrap();
        }
        // Neither removed the other's temporary file under it (a write
        // would have failed), and none is left.
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1);
    }
}
