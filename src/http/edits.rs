//! Header fields the operator sets or removes: on every response sent to a
//! client (`response_header.<Name>`, nginx's `add_header ... always` and
//! `proxy_hide_header`), and on every request sent to a backend
//! (`request_header.<Name>`, nginx's `proxy_set_header`). Applied as each
//! head is written, never to what is stored or read: the cache keeps what
//! the backend sent, and keys and matches what the client sent.
//!
//! This module knows names and bytes; which names the configuration may
//! edit, in which direction, is the configuration's business.

use super::head::is_tchar;
use super::headers::Headers;
use crate::field_value::{Facts, FieldValue, Pending};
use std::fmt;
use std::sync::Arc;

/// The fields to set and remove, in configuration order. Empty by default,
/// and then every method is a no-op: a response path asks
/// [`FieldEdits::is_empty`] (the length of a slice held by value) before
/// doing anything else.
#[derive(Clone, PartialEq, Eq)]
pub struct FieldEdits {
    edits: Arc<[Edit]>,
    /// `Name: value\r\n` for every field set, in order: written after the
    /// fields of each head as it is, built once per configuration. Without
    /// those whose value holds variables, rendered for each request (see
    /// [`FieldEdits::render_variable_lines`]).
    set_lines: Arc<[u8]>,
    /// Some value holds variables.
    has_variables: bool,
}

/// An edited name as written, with the value it is set to; `None` removes
/// the field.
type Edit = (Box<str>, Option<FieldValue>);

impl Default for FieldEdits {
    fn default() -> Self {
        FieldEdits {
            edits: Arc::from([]),
            set_lines: Arc::from([]),
            has_variables: false,
        }
    }
}

impl FieldEdits {
    /// Edits from `(name, value)` pairs, `None` removing the field. Names
    /// must be tokens and values (trimmed) visible ASCII with spaces and
    /// tabs inside (RFC 9110 §5.5, without obs-text): anything else, which
    /// could split a head, is refused here whatever the caller checked.
    pub fn new(
        edits: impl IntoIterator<Item = (String, Option<FieldValue>)>,
    ) -> Result<FieldEdits, String> {
        let mut list = Vec::new();
        let mut set_lines = Vec::new();
        let mut has_variables = false;
        for (name, value) in edits {
            if name.is_empty() || !name.bytes().all(is_tchar) {
                return Err(format!(
                    "`{}` is not a header field name",
                    name.escape_debug()
                ));
            }
            if let Some(value) = &value {
                let source = value.source();
                if let Some(bad) = source.bytes().find(|&b| !is_value_byte(b)) {
                    return Err(format!(
                        "the value of {name} holds the byte {bad:#04x}: only visible ASCII, \
                         spaces and tabs may"
                    ));
                }
                if source.trim() != source {
                    return Err(format!("the value of {name} is not trimmed"));
                }
                match value.text() {
                    Some(text) => push_line(&mut set_lines, &name, text.as_bytes()),
                    None => has_variables = true,
                }
            }
            list.push((name.into_boxed_str(), value));
        }
        Ok(FieldEdits {
            edits: list.into(),
            set_lines: set_lines.into(),
            has_variables,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }

    /// Each edited name as configured, with the value it is set to (`None`:
    /// removed).
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        (self.edits.iter()).map(|(n, v)| (&**n, v.as_ref().map(FieldValue::source)))
    }

    /// The text the field `name` (any case) is set to, if it is set to
    /// text without variables.
    pub fn value_of(&self, name: &str) -> Option<&str> {
        (self.edits.iter())
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_ref()?.text())
    }

    /// The names of the fields set to values that hold variables.
    pub fn rendered_names(&self) -> impl Iterator<Item = Box<str>> + '_ {
        (self.edits.iter())
            .filter(|(_, v)| v.as_ref().is_some_and(|v| v.text().is_none()))
            .map(|(name, _)| name.clone())
    }

    /// Whether some value holds variables: then the lines of those fields
    /// are rendered for each request ([`FieldEdits::render_variable_lines`]),
    /// after [`FieldEdits::set_lines`].
    pub fn has_variables(&self) -> bool {
        self.has_variables
    }

    /// Whether the field `name` (any case) is set or removed: every field
    /// of that name that comes with a message is dropped.
    pub fn edits(&self, name: &[u8]) -> bool {
        self.edits
            .iter()
            .any(|(n, _)| n.len() == name.len() && n.as_bytes().eq_ignore_ascii_case(name))
    }

    /// The lines of the fields set, each ending in CRLF: what every head
    /// gets after its own fields (but those whose value holds variables).
    pub fn set_lines(&self) -> &[u8] {
        &self.set_lines
    }

    /// Appends the lines of the fields set to values with variables,
    /// rendered for the request `facts` tells of: what a head that has
    /// [`FieldEdits::set_lines`] lacks, but for those that name the
    /// response's variables ([`FieldEdits::pending`]). A value that
    /// renders empty sends no field (as nginx's `proxy_set_header`),
    /// though the message's own fields of that name are removed all the
    /// same.
    pub fn render_variable_lines(&self, facts: &Facts<'_>, out: &mut Vec<u8>) {
        for (name, set) in self.edits.iter() {
            let Some(set) = (set.as_ref()).filter(|v| v.text().is_none() && !v.of_response())
            else {
                continue;
            };
            let line = out.len();
            for part in [name.as_bytes(), b": "] {
                out.extend_from_slice(part);
            }
            let value = out.len();
            set.render(facts, out);
            if out.len() == value {
                out.truncate(line);
            } else {
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    /// Appends the fields set to values that name the response's
    /// variables, rendered as far as the request `facts` tells of goes:
    /// each response head finishes them.
    pub fn pending(&self, facts: &Facts<'_>, out: &mut Vec<Pending>) {
        for (name, set) in self.edits.iter() {
            if let Some(set) = set.as_ref().filter(|v| v.of_response()) {
                out.push(set.pending(name, facts));
            }
        }
    }

    /// Takes every edited field out of a parsed head (to be written, then
    /// followed by [`FieldEdits::set_lines`]).
    pub fn remove_from(&self, headers: &mut Headers) {
        if !self.is_empty() {
            headers.retain(|name, _| !self.edits(name));
        }
    }

    /// [`FieldEdits::remove_from`] with `_` and `-` taken for one another,
    /// as backends that read `_` as `-` (CGI, WSGI, Rack) read names: for
    /// a request, whose `X_Debug` such a backend would otherwise take for
    /// the `X-Debug` removed, or `X_Backend_Auth` for the one set.
    pub fn remove_read_alike_from(&self, headers: &mut Headers) {
        if !self.is_empty() {
            headers.retain(|name, _| {
                !(self.edits.iter()).any(|(n, _)| super::headers::read_alike(n.as_bytes(), name))
            });
        }
    }

    /// Whether a serialized head (`Name: value\r\n` lines, as
    /// [`Headers::write_to`] writes them, maybe after a status line) has a
    /// line of an edited field.
    pub fn touches(&self, lines: &[u8]) -> bool {
        !self.is_empty()
            && lines
                .split(|&b| b == b'\n')
                .any(|l| self.edits(line_name(l)))
    }

    /// Appends the lines of a serialized head but those of edited fields
    /// and of the fields named in `also` (any case). A status line is
    /// kept: its "name" (what comes before a colon) has a space in it, and
    /// no field name has.
    pub fn push_kept(&self, out: &mut Vec<u8>, lines: &[u8], also: &[&str]) {
        if self.is_empty() && also.is_empty() {
            out.extend_from_slice(lines);
            return;
        }
        for line in lines.split_inclusive(|&b| b == b'\n') {
            let name = line_name(line);
            let named = |n: &&str| n.len() == name.len() && n.as_bytes().eq_ignore_ascii_case(name);
            if !self.edits(name) && !also.iter().any(named) {
                out.extend_from_slice(line);
            }
        }
    }
}

fn push_line(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    for part in [name.as_bytes(), b": ", value, b"\r\n"] {
        out.extend_from_slice(part);
    }
}

/// What comes before the first colon of a head line (the whole line if
/// it has none, which names no field).
fn line_name(line: &[u8]) -> &[u8] {
    line.iter()
        .position(|&b| b == b':')
        .map_or(line, |i| &line[..i])
}

/// A byte a configured value may hold: visible ASCII, space and tab
/// (RFC 9110 §5.5's field-vchar without obs-text).
pub fn is_value_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | 0x21..=0x7e)
}

/// Names and values, as `check` shows them.
impl fmt::Debug for FieldEdits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FieldFamily;

    fn edits(pairs: &[(&str, Option<&str>)]) -> FieldEdits {
        FieldEdits::new(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.map(FieldValue::fixed))),
        )
        .unwrap()
    }

    #[test]
    fn values_with_variables_are_rendered_in_order_and_an_empty_one_sends_nothing() {
        let parsed = |v: &str| Some(FieldValue::parse(v, FieldFamily::Request).unwrap());
        let e = FieldEdits::new([
            ("X-Path".to_string(), parsed("$uri")),
            ("X-Fixed".to_string(), parsed("5$$")),
            ("X-Absent".to_string(), parsed("$http_x_absent")),
            ("X-Gone".to_string(), None),
            ("X-Args".to_string(), parsed("[$args]")),
        ])
        .unwrap();
        assert!(e.has_variables());
        assert_eq!(e.set_lines(), b"X-Fixed: 5$\r\n");
        let head = crate::http::RequestHead {
            method: "GET".into(),
            target: "/p".into(),
            version: crate::http::Version::Http11,
            headers: Headers::new(),
        };
        let mut variable = Vec::new();
        e.render_variable_lines(&Facts::plain(&head), &mut variable);
        assert_eq!(
            String::from_utf8(variable).unwrap(),
            "X-Path: /p\r\nX-Args: []\r\n"
        );
        assert!(
            e.edits(b"x-absent"),
            "the client's X-Absent goes all the same"
        );
        // What the cache must not store a response varying on.
        let rendered: Vec<String> = e.rendered_names().map(String::from).collect();
        assert_eq!(rendered, ["X-Path", "X-Absent", "X-Args"]);
        assert!(
            !edits(&[("X-A", Some("$uri"))]).has_variables(),
            "text as it came"
        );
    }

    #[test]
    fn values_naming_the_response_wait_for_it() {
        let parsed = |v: &str| Some(FieldValue::parse(v, FieldFamily::Response).unwrap());
        let e = FieldEdits::new([
            ("X-Upstream".to_string(), parsed("$upstream_addr")),
            ("X-Path".to_string(), parsed("$uri")),
            ("X-Both".to_string(), parsed("$uri $status")),
        ])
        .unwrap();
        let head = crate::http::RequestHead {
            method: "GET".into(),
            target: "/p".into(),
            version: crate::http::Version::Http11,
            headers: Headers::new(),
        };
        let facts = Facts::plain(&head);
        let mut now = Vec::new();
        e.render_variable_lines(&facts, &mut now);
        assert_eq!(now, b"X-Path: /p\r\n");
        let mut pending = Vec::new();
        e.pending(&facts, &mut pending);
        let answer = crate::field_value::Answer {
            status: 304,
            cache: Some("HIT"),
            last: crate::upstream_tries::UpstreamTry::default(),
            earlier: &[],
            upstream_queue: None,
            elapsed: std::time::Duration::ZERO,
        };
        let mut head = Vec::new();
        for field in &pending {
            field.finish(&answer, &mut head);
        }
        assert_eq!(head, b"X-Both: /p 304\r\n", "an empty value sends nothing");
    }

    #[test]
    fn empty_edits_change_nothing() {
        let none = FieldEdits::default();
        assert!(none.is_empty());
        assert_eq!(none.set_lines(), b"");
        assert!(!none.touches(b"HTTP/1.1 200 OK\r\nServer: x\r\n"));
        let mut h = Headers::new();
        h.push("Server", "x");
        none.remove_from(&mut h);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn set_fields_replace_every_line_of_their_name_and_removed_ones_go() {
        let e = edits(&[
            ("X-Frame-Options", Some("DENY")),
            ("x-powered-by", None),
            (
                "Content-Security-Policy",
                Some("default-src 'self'; img-src *, data:"),
            ),
        ]);
        assert_eq!(
            e.set_lines(),
            b"X-Frame-Options: DENY\r\nContent-Security-Policy: default-src 'self'; img-src *, data:\r\n"
        );
        let mut h = Headers::new();
        h.push("x-frame-options", "SAMEORIGIN");
        h.push("X-Powered-By", "Express");
        h.push("Content-Type", "text/html");
        h.push("X-FRAME-OPTIONS", "ALLOW-FROM x");
        e.remove_from(&mut h);
        let names: Vec<&str> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Content-Type"]);
        // `check` shows them so, in configuration order.
        assert_eq!(
            format!("{e:?}"),
            "{\"X-Frame-Options\": Some(\"DENY\"), \"x-powered-by\": None, \
             \"Content-Security-Policy\": Some(\"default-src 'self'; img-src *, data:\")}"
        );
    }

    #[test]
    fn serialized_heads_lose_edited_lines_by_whole_name() {
        let e = edits(&[("Server", None), ("X-Frame-Options", Some("DENY"))]);
        assert_eq!(e.value_of("x-frame-options"), Some("DENY"));
        assert_eq!(e.value_of("server"), None);
        assert_eq!(e.value_of("X-Other"), None);
        let head = b"HTTP/1.1 200 Server: odd reason\r\nserver: app\r\nServer-Timing: db;dur=5\r\nX-Frame-Options: SAMEORIGIN\r\nX-Other: Server: x\r\n";
        assert!(e.touches(head));
        assert!(!e.touches(b"HTTP/1.1 200 OK\r\nServer-Timing: a\r\n"));
        let mut out = Vec::new();
        e.push_kept(&mut out, head, &["x-other"]);
        assert_eq!(
            out,
            b"HTTP/1.1 200 Server: odd reason\r\nServer-Timing: db;dur=5\r\n"
        );
    }

    #[test]
    fn a_serialized_head_loses_the_lines_of_edits_or_of_also_alone() {
        let head = b"HTTP/1.1 200 OK\r\nServer: app\r\nX-Cache: HIT\r\nX-Other: 1\r\n";
        let kept = |e: &FieldEdits, also: &[&str]| {
            let mut out = Vec::new();
            e.push_kept(&mut out, head, also);
            String::from_utf8(out).unwrap()
        };
        let server = edits(&[("Server", None)]);
        assert_eq!(
            kept(&server, &[]),
            "HTTP/1.1 200 OK\r\nX-Cache: HIT\r\nX-Other: 1\r\n"
        );
        // `X-Cache` is as long as `x-other`: only the name itself counts.
        assert_eq!(
            kept(&FieldEdits::default(), &["x-other"]),
            "HTTP/1.1 200 OK\r\nServer: app\r\nX-Cache: HIT\r\n"
        );
    }

    #[test]
    fn read_alike_removal_takes_underscores_for_dashes_both_ways() {
        let e = edits(&[("X-Debug", None), ("X_Api_Key", Some("k"))]);
        let mut h = Headers::new();
        for name in [
            "x_debug",
            "X-DEBUG",
            "X-Api-Key",
            "x_api_key",
            "X-Debugs",
            "X.Debug",
        ] {
            h.push(name, "v");
        }
        e.remove_read_alike_from(&mut h);
        let names: Vec<&str> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["X-Debugs", "X.Debug"]);
    }

    #[test]
    fn values_that_could_split_a_head_are_refused() {
        for bad in ["a\r\nX-Injected: 1", "a\nb", "a\0b", "caf\u{e9}", "a\u{7f}"] {
            let made = FieldEdits::new([("X-A".to_string(), Some(FieldValue::fixed(bad)))]);
            assert!(made.is_err(), "{bad:?}");
        }
        for bad in ["", "X A", "X:A", "X\r\nY"] {
            let made = FieldEdits::new([(bad.to_string(), None)]);
            assert!(made.is_err(), "{bad:?}");
        }
        let ok = edits(&[("X-A", Some("tab\there, \"quoted\"; ok"))]);
        assert_eq!(ok.set_lines(), b"X-A: tab\there, \"quoted\"; ok\r\n");
    }
}
