//! Just enough JSON writing for the access log and the admin listener:
//! strings escaped per RFC 8259 §7, everything else written by the caller.

use std::fmt::Write as _;

/// Appends `s` as a JSON string, quotes included. Control characters are
/// escaped, and so are the characters Unicode counts as line ends (NEL,
/// LINE SEPARATOR, PARAGRAPH SEPARATOR): valid raw in JSON, but a reader
/// splitting the log by Unicode lines would cut a record in two.
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20
                || matches!(c, '\u{7f}' | '\u{85}' | '\u{2028}' | '\u{2029}') =>
            {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
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
}
