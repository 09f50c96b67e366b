//! Just enough JSON writing for the access log, the admin listener and a
//! request's values in a `return` route's JSON text:
//! strings escaped per RFC 8259 §7, everything else written by the caller.

use std::fmt::Write as _;

/// Appends `s` as a JSON string, quotes included. Control characters are
/// escaped, and so are the characters Unicode counts as line ends (NEL,
/// LINE SEPARATOR, PARAGRAPH SEPARATOR): valid raw in JSON, but a reader
/// splitting the log by Unicode lines would cut a record in two. So are
/// the C1 controls (U+0080 to U+009F: a client's obs-text `C2 9B` is CSI,
/// which a terminal showing the log obeys) and the bidirectional
/// overrides and isolates (which make it show a line reordered); decoded,
/// the string is the same.
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    push_escaped(out, s);
    out.push('"');
}

/// Appends `s` escaped as [`push_str`] escapes it, without the quotes:
/// for a string whose quotes are written by someone else (a `log_format`
/// template with `escape=json`).
pub fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') || is_bidi_control(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// The invisible characters that reorder how a line is shown: the
/// bidirectional embeddings, overrides and isolates (and the marks).
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Appends `"key":` (the key escaped like any string).
pub fn push_key(out: &mut String, key: &str) {
    push_str(out, key);
    out.push(':');
}

/// Appends a string or `null`.
pub fn push_opt_str(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => push_str(out, s),
        None => out.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_quotes_backslashes_and_controls() {
        let mut out = String::new();
        push_str(&mut out, "a\"b\\c\nd\u{1}é\u{85}\u{2028}\u{2029}");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é\u0085\u2028\u2029""#);
    }

    #[test]
    fn escapes_c1_controls_and_bidi_overrides() {
        // A User-Agent of obs-text bytes C2 9B is U+009B, CSI to a
        // terminal showing the log; U+202E shows the rest of the line
        // reversed.
        let mut out = String::new();
        push_str(&mut out, "a\u{9b}31mb\u{202e}c\u{2066}d\u{a0}é");
        // A no-break space is neither: it stays as it is.
        assert_eq!(out, "\"a\\u009b31mb\\u202ec\\u2066d\u{a0}é\"");
    }
}
