//! A configuration that cannot be used: where the value at fault came
//! from, and the message made safe to print.

use std::fmt;

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Default,
    File { path: String, line: usize },
    Env(String),
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File { path, line } => write!(f, "{path}:{line}"),
            Origin::Env(var) => write!(f, "environment {var}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A configuration that cannot be used, with where the problem is. The
/// message quotes values as they came, so it is shown [`printable`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{place}: {}", printable(.message))]
pub struct ConfigError {
    /// `proxy.conf:7`, `environment INVERSO_PORT`, `flag --port`, or just
    /// the file name for whole-file problems.
    pub place: String,
    pub message: String,
}

/// `text` made safe to print on a terminal or in a log: control
/// characters (an escape sequence, a newline that would fake another
/// line) and bidirectional overrides escaped, and anything past 300
/// characters cut.
pub fn printable(text: &str) -> String {
    const SHOWN: usize = 300;
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => escape_controls(&text[..cut]) + "...",
        None => escape_controls(text),
    }
}

/// `text` with control characters and bidirectional overrides (which
/// reorder what a terminal shows) escaped.
pub fn escape_controls(text: &str) -> String {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if hidden(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// ` (first set on line N)` for a key set again at `again` that was
/// first set at `first` in the same file; ` (first set at FILE:N)` when
/// that was another file (one an `include` read); nothing when it was
/// not set in a file.
pub(crate) fn first_set(first: &Origin, again: &Origin) -> String {
    match (first, again) {
        (Origin::File { path, line }, Origin::File { path: now, .. }) if path == now => {
            format!(" (first set on line {line})")
        }
        (Origin::File { .. }, _) => format!(" (first set at {first})"),
        _ => String::new(),
    }
}

impl ConfigError {
    pub(super) fn at(origin: &Origin, message: impl Into<String>) -> Self {
        ConfigError {
            place: origin.to_string(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::build;

    #[test]
    fn errors_show_values_printable_and_bounded() {
        let e = build("targets = 127.0.0.1:1\nttl = 5\u{1b}[31m\n").unwrap_err();
        let shown = e.to_string();
        assert!(
            !shown.contains('\u{1b}') && shown.contains("\\u{1b}"),
            "{shown}"
        );
        let long = format!(
            "targets = 127.0.0.1:1\nlog_format = {}\n",
            "x".repeat(100_000)
        );
        assert!(build(&long).unwrap_err().to_string().len() < 400);
    }
}
