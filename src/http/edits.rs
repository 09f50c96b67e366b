//! Header fields the operator sets or removes: on every response sent to a
//! client (`response_header.<Name>`, nginx's `add_header ... always` and
//! `proxy_hide_header`), and on every request sent to a backend
//! (`request_header.<Name>`, nginx's `proxy_set_header`), or on the
//! requests that meet a condition (`response_header.<Name> if <condition>`,
//! HAProxy's `http-response set-header ... if <acl>`), or on the responses
//! of some statuses (`... if status 404`). Applied as each head is
//! written, never to what is stored or read: the cache keeps what the
//! backend sent, and keys and matches what the client sent.
//!
//! This module knows names and bytes; which names the configuration may
//! edit, in which direction, is the configuration's business.

use super::head::is_tchar;
use super::headers::Headers;
use super::status_rule::StatusRule;
use crate::field_value::{Facts, FieldValue, Pending};
use crate::routes::{path_of_target, unambiguous_reading, Asked, Condition, Lookup};
use std::fmt;
use std::sync::Arc;

/// Most edits one set holds: a pool's own keys beside the top level's
/// it does not replace, 64 of each. [`Chosen`] has a bit for each.
const MAX_EDITS: usize = 128;

/// The fields to set and remove, in configuration order. Empty by default,
/// and then every method is a no-op: a response path asks
/// [`FieldEdits::is_empty`] (the length of a slice held by value) before
/// doing anything else.
#[derive(Clone, PartialEq, Eq)]
pub struct FieldEdits {
    edits: Arc<[Edit]>,
    /// `Name: value\r\n` for every field set to a fixed value whatever
    /// the request, in order: written after the fields of each head as
    /// it is, built once per configuration. The others are rendered for
    /// each request (see [`Applied::render_variable_lines`]).
    set_lines: Arc<[u8]>,
    /// [`FieldEdits::set_lines`] and the lines of the other fields set to
    /// a fixed value without a condition, but for those some status
    /// decides: what the answers to a request no condition was asked of
    /// get (see [`Chosen::UNCONDITIONAL`]).
    unconditional_lines: Arc<[u8]>,
    /// A bit for each edit without a condition on the request: those a
    /// request never routed may take, as its answer's status says.
    unrouted: u128,
    /// What some edit sends varies from request to request.
    per_request: bool,
    /// Some edit has a condition.
    conditional: bool,
    /// Some edit has a condition on the response's status.
    by_status: bool,
}

/// One field set or removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldEdit {
    /// As written.
    pub name: String,
    /// `None` removes the field.
    pub value: Option<FieldValue>,
    /// Only for the requests that meet it; of the edits of one name, the
    /// first whose condition a request meets, else the one without.
    pub when: Option<Condition>,
    /// Only on the responses of these statuses: part of the condition as
    /// `when` is (a response field's alone).
    pub on_status: Option<StatusRule>,
}

impl From<(String, Option<FieldValue>)> for FieldEdit {
    fn from((name, value): (String, Option<FieldValue>)) -> FieldEdit {
        FieldEdit {
            name,
            value,
            when: None,
            on_status: None,
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
struct Edit {
    name: Box<str>,
    value: Option<FieldValue>,
    when: Option<Condition>,
    on_status: Option<StatusRule>,
    /// Some edit of its name has a condition on the status: its line, a
    /// fixed one, is written as each response is (see
    /// [`Applied::push_set_lines`]), not rendered as the request is routed.
    by_status: bool,
    /// Its line is in [`FieldEdits::set_lines`].
    fixed: bool,
    /// A bit for each edit of its name, itself among them (as in
    /// [`Chosen`]).
    same_name: u128,
    /// What it sends varies from request to request: a value with
    /// variables, or a field some edit's condition decides.
    varies: bool,
}

impl Edit {
    /// A field set to a value rendered, or chosen, for each request.
    fn per_request(&self) -> bool {
        self.value.is_some() && !self.fixed
    }

    fn conditional(&self) -> bool {
        self.when.is_some() || self.on_status.is_some()
    }

    fn named(&self, name: &[u8]) -> bool {
        self.name.len() == name.len() && self.name.as_bytes().eq_ignore_ascii_case(name)
    }
}

/// Which edits may apply to one request, as it is routed: those whose
/// condition it meets (but for its part on the status), and those
/// without. Which of them do, of each name, is settled for each response
/// (see [`FieldEdits::for_response`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Chosen(Option<u128>);

impl Chosen {
    /// The edits without a condition: for a request no condition was
    /// asked of (one never routed), or a set without conditions.
    pub const UNCONDITIONAL: Chosen = Chosen(None);

    fn takes(self, index: usize, edit: &Edit) -> bool {
        match self.0 {
            None => !edit.conditional(),
            Some(bits) => bits >> index & 1 == 1,
        }
    }
}

impl Default for FieldEdits {
    fn default() -> Self {
        FieldEdits {
            edits: Arc::from([]),
            set_lines: Arc::from([]),
            unconditional_lines: Arc::from([]),
            unrouted: 0,
            per_request: false,
            conditional: false,
            by_status: false,
        }
    }
}

impl FieldEdits {
    /// Edits in configuration order. Names must be tokens and values
    /// (trimmed) visible ASCII with spaces and tabs inside (RFC 9110 §5.5,
    /// without obs-text): anything else, which could split a head, is
    /// refused here whatever the caller checked.
    pub fn new(
        edits: impl IntoIterator<Item = impl Into<FieldEdit>>,
    ) -> Result<FieldEdits, String> {
        let edits: Vec<FieldEdit> = edits.into_iter().map(Into::into).collect();
        if edits.len() > MAX_EDITS {
            return Err(format!("more than {MAX_EDITS} fields edited"));
        }
        for FieldEdit { name, value, .. } in &edits {
            check(name, value.as_ref())?;
        }
        // A fixed value whose line may not be sent (another edit of its
        // name, with a condition, may replace it) is rendered as the
        // request is, or, if the status decides it, written as the
        // response is.
        let of_name = |name: &str, with: fn(&FieldEdit) -> bool| {
            (edits.iter()).any(|e| with(e) && e.name.eq_ignore_ascii_case(name))
        };
        let decided: Vec<(bool, bool)> = (edits.iter())
            .map(|e| {
                let by_status = of_name(&e.name, |e| e.on_status.is_some());
                (
                    by_status || of_name(&e.name, |e| e.when.is_some()),
                    by_status,
                )
            })
            .collect();
        let same_name: Vec<u128> = (edits.iter())
            .map(|e| {
                let same = (edits.iter().enumerate())
                    .filter(|(_, other)| other.name.eq_ignore_ascii_case(&e.name));
                same.fold(0, |bits, (i, _)| bits | 1 << i)
            })
            .collect();
        let (mut set_lines, mut unconditional_lines) = (Vec::new(), Vec::new());
        let mut list = Vec::with_capacity(edits.len());
        let each = edits.into_iter().zip(decided).zip(same_name);
        for ((edit, (decided, by_status)), same_name) in each {
            let FieldEdit {
                name,
                value,
                when,
                on_status,
            } = edit;
            let text = value.as_ref().and_then(FieldValue::text);
            if by_status && value.is_some() && text.is_none() {
                return Err(format!(
                    "{name} is set by the response's status, so its values are text \
                     without variables"
                ));
            }
            let fixed = text.is_some() && !decided;
            if let Some(text) = text.filter(|_| when.is_none() && !by_status) {
                push_line(&mut unconditional_lines, &name, text.as_bytes());
            }
            if let Some(text) = text.filter(|_| fixed) {
                push_line(&mut set_lines, &name, text.as_bytes());
            }
            list.push(Edit {
                varies: decided || (value.is_some() && !fixed),
                name: name.into_boxed_str(),
                value,
                when,
                on_status,
                by_status,
                fixed,
                same_name,
            });
        }
        let unrouted = (list.iter().enumerate())
            .filter(|(_, e)| e.when.is_none())
            .fold(0u128, |bits, (i, _)| bits | 1 << i);
        Ok(FieldEdits {
            unrouted,
            per_request: list.iter().any(|e| e.varies),
            conditional: list.iter().any(Edit::conditional),
            by_status: list.iter().any(|e| e.on_status.is_some()),
            edits: list.into(),
            set_lines: set_lines.into(),
            unconditional_lines: unconditional_lines.into(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }

    /// Each edited name as configured, with the value it is set to (`None`:
    /// removed).
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        (self.edits.iter()).map(|e| (&*e.name, e.value.as_ref().map(FieldValue::source)))
    }

    /// The text the field `name` (any case) is set to, if it is set to
    /// text on every request (without variables or a condition).
    pub fn value_of(&self, name: &str) -> Option<&str> {
        (self.edits.iter())
            .find(|e| e.fixed && e.name.eq_ignore_ascii_case(name))
            .and_then(|e| e.value.as_ref()?.text())
    }

    /// The names of the fields whose values are rendered, or which are
    /// set or removed as conditions decide, for each request.
    pub fn rendered_names(&self) -> impl Iterator<Item = Box<str>> + '_ {
        (self.edits.iter())
            .filter(|e| e.varies)
            .map(|e| e.name.clone())
    }

    /// Whether what some edit sends varies from request to request (a
    /// value with variables, a condition): then which edits apply is
    /// chosen for each request ([`FieldEdits::choose`]), and the lines of
    /// those fields rendered ([`Applied::render_variable_lines`]) after
    /// [`FieldEdits::set_lines`].
    pub fn per_request(&self) -> bool {
        self.per_request
    }

    /// Whether some edit, with a condition or without, sets or removes
    /// the field `name` (any case).
    pub fn edits(&self, name: &[u8]) -> bool {
        self.edits.iter().any(|e| e.named(name))
    }

    /// The lines of the fields set to a fixed value on every request,
    /// each ending in CRLF: what every head gets after its own fields.
    pub fn set_lines(&self) -> &[u8] {
        &self.set_lines
    }

    /// Which edits may apply to the request `asked`, whose
    /// request-target is `target`: those whose condition it meets, but
    /// for its part on the status, and those without. A path is read as
    /// routes read it (the one a route was chosen by); one servers read
    /// in several ways, as it came.
    pub fn choose(&self, asked: &Asked<'_>, target: &str) -> Chosen {
        if !self.conditional {
            return Chosen::UNCONDITIONAL;
        }
        let path = path_of_target(target);
        let read = unambiguous_reading(path).unwrap_or(path.into());
        let meets = |c: &Condition| c.met(Lookup::Request(asked), &read);
        let bits = (self.edits.iter().enumerate())
            .filter(|(_, edit)| edit.when.as_ref().is_none_or(meets))
            .fold(0u128, |bits, (i, _)| bits | 1 << i);
        Chosen(Some(bits))
    }

    /// Of the edits `chosen` for a request, those that apply to its
    /// response of `status` (`None`: to the request itself, or before
    /// there is a response): of each field, the first (as written) whose
    /// condition holds, else the one without.
    fn settled(&self, chosen: Chosen, status: Option<u16>) -> Chosen {
        let Chosen(Some(candidates)) = chosen else {
            return chosen;
        };
        let holds = |e: &Edit| match (&e.on_status, status) {
            (None, _) => true,
            (Some(rule), Some(status)) => rule.met(status),
            (Some(_), None) => false,
        };
        let mut bits = 0u128;
        for conditional in [true, false] {
            for (i, edit) in self.edits.iter().enumerate() {
                let candidate = candidates >> i & 1 == 1 && edit.conditional() == conditional;
                if candidate && holds(edit) && bits & edit.same_name == 0 {
                    bits |= 1 << i;
                }
            }
        }
        Chosen(Some(bits))
    }

    /// These edits as they apply to one request: to the request sent on,
    /// or to the fields rendered for its responses as it is routed (a
    /// field the status decides is written by [`Applied::push_set_lines`]
    /// as each response is).
    pub fn applied(&self, chosen: Chosen) -> Applied<'_> {
        Applied {
            edits: self,
            candidates: chosen,
            chosen: self.settled(chosen, None),
            status: None,
        }
    }

    /// These edits as they apply to a response of `status` to a request
    /// they were `chosen` for.
    pub fn for_response(&self, chosen: Chosen, status: u16) -> Applied<'_> {
        self.applied(chosen).at(status)
    }

    /// [`FieldEdits::applied`] to a request no condition was asked of.
    pub fn unconditional(&self) -> Applied<'_> {
        self.applied(Chosen::UNCONDITIONAL)
    }
}

/// A name that is a token and a value that cannot split a head.
fn check(name: &str, value: Option<&FieldValue>) -> Result<(), String> {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(format!(
            "`{}` is not a header field name",
            name.escape_debug()
        ));
    }
    let Some(source) = value.map(FieldValue::source) else {
        return Ok(());
    };
    if let Some(bad) = source.bytes().find(|&b| !is_value_byte(b)) {
        return Err(format!(
            "the value of {name} holds the byte {bad:#04x}: only visible ASCII, \
             spaces and tabs may"
        ));
    }
    if source.trim() != source {
        return Err(format!("the value of {name} is not trimmed"));
    }
    Ok(())
}

/// [`FieldEdits`] as they apply to one request ([`Chosen`]), or to one
/// response to it.
#[derive(Clone, Copy)]
pub struct Applied<'a> {
    edits: &'a FieldEdits,
    /// As the request was routed.
    candidates: Chosen,
    /// Settled, for the request or a response.
    chosen: Chosen,
    /// The response's, once [`Applied::at`] has it.
    status: Option<u16>,
}

impl<'a> Applied<'a> {
    /// These edits as they apply to a response of `status`.
    pub fn at(self, status: u16) -> Applied<'a> {
        let chosen = match self.edits.by_status {
            true => self.edits.settled(self.candidates, Some(status)),
            false => self.chosen,
        };
        Applied {
            chosen,
            status: Some(status),
            ..self
        }
    }

    fn taken(self) -> impl Iterator<Item = &'a Edit> {
        let chosen = self.chosen;
        (self.edits.edits.iter().enumerate())
            .filter(move |(i, e)| chosen.takes(*i, e))
            .map(|(_, e)| e)
    }

    pub fn is_empty(self) -> bool {
        self.edits.is_empty()
    }

    /// See [`FieldEdits::value_of`].
    pub fn value_of(self, name: &str) -> Option<&'a str> {
        self.edits.value_of(name)
    }

    /// The lines every head gets after its own fields:
    /// [`FieldEdits::set_lines`], or, to a request no condition was asked
    /// of, those of every field set to a fixed value without a condition
    /// (a request never routed is rendered nothing).
    pub fn set_lines(self) -> &'a [u8] {
        match self.chosen {
            Chosen::UNCONDITIONAL => &self.edits.unconditional_lines,
            _ => self.edits.set_lines(),
        }
    }

    /// Appends [`Applied::set_lines`] and the lines of the fields the
    /// response's status decides: what every response head gets after
    /// its own fields. To a request never routed, of those fields the
    /// edits without a condition on the request: a malformed request's
    /// 400 gets `if status 400`'s.
    pub fn push_set_lines(self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.set_lines());
        if !self.edits.by_status {
            return;
        }
        let chosen = match self.chosen {
            Chosen::UNCONDITIONAL => {
                (self.edits).settled(Chosen(Some(self.edits.unrouted)), self.status)
            }
            chosen => chosen,
        };
        for (i, edit) in self.edits.edits.iter().enumerate() {
            let text = edit.value.as_ref().and_then(FieldValue::text);
            match text {
                Some(text) if edit.by_status && chosen.takes(i, edit) => {
                    push_line(out, &edit.name, text.as_bytes())
                }
                _ => {}
            }
        }
    }

    /// The fields set to values rendered, or chosen, for this request:
    /// not those [`Applied::set_lines`] holds, nor those the status
    /// decides.
    fn rendered(self) -> impl Iterator<Item = &'a Edit> {
        let unconditional = self.chosen == Chosen::UNCONDITIONAL;
        let fixed = |e: &Edit| e.value.as_ref().and_then(FieldValue::text).is_some();
        (self.taken())
            .filter(move |e| e.per_request() && !e.by_status && !(unconditional && fixed(e)))
    }

    /// Whether the field `name` (any case) is set or removed: every field
    /// of that name that comes with a message is dropped.
    pub fn edits(self, name: &[u8]) -> bool {
        !self.is_empty() && self.taken().any(|e| e.named(name))
    }

    /// Appends the lines of the fields set to values rendered or chosen
    /// for the request `facts` tells of: what a head that has
    /// [`FieldEdits::set_lines`] lacks, but for those that name the
    /// response's variables ([`Applied::pending`]). A value that renders
    /// empty sends no field (as nginx's `proxy_set_header`), though the
    /// message's own fields of that name are removed all the same.
    pub fn render_variable_lines(self, facts: &Facts<'_>, out: &mut Vec<u8>) {
        for edit in self.rendered() {
            let Some(set) = edit.value.as_ref().filter(|v| !v.of_response()) else {
                continue;
            };
            let line = out.len();
            for part in [edit.name.as_bytes(), b": "] {
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
    pub fn pending(self, facts: &Facts<'_>, out: &mut Vec<Pending>) {
        for edit in self.taken() {
            if let Some(set) = edit.value.as_ref().filter(|v| v.of_response()) {
                out.push(set.pending(&edit.name, facts));
            }
        }
    }

    /// Takes every edited field out of a parsed head (to be written, then
    /// followed by [`FieldEdits::set_lines`]).
    pub fn remove_from(self, headers: &mut Headers) {
        if !self.is_empty() {
            headers.retain(|name, _| !self.edits(name));
        }
    }

    /// [`Applied::remove_from`] with `_` and `-` taken for one another,
    /// as backends that read `_` as `-` (CGI, WSGI, Rack) read names: for
    /// a request, whose `X_Debug` such a backend would otherwise take for
    /// the `X-Debug` removed, or `X_Backend_Auth` for the one set.
    pub fn remove_read_alike_from(self, headers: &mut Headers) {
        if !self.is_empty() {
            headers.retain(|name, _| {
                !self
                    .taken()
                    .any(|e| super::headers::read_alike(e.name.as_bytes(), name))
            });
        }
    }

    /// Whether a serialized head (`Name: value\r\n` lines, as
    /// [`Headers::write_to`] writes them, maybe after a status line) has a
    /// line of an edited field.
    pub fn touches(self, lines: &[u8]) -> bool {
        !self.is_empty()
            && lines
                .split(|&b| b == b'\n')
                .any(|l| self.edits(line_name(l)))
    }

    /// Appends the lines of a serialized head but those of edited fields
    /// and of the fields named in `also` (any case). A status line is
    /// kept: its "name" (what comes before a colon) has a space in it, and
    /// no field name has.
    pub fn push_kept(self, out: &mut Vec<u8>, lines: &[u8], also: &[&str]) {
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

    /// A `GET` of `target` without fields.
    fn request_for(target: &str) -> crate::http::RequestHead {
        crate::http::RequestHead {
            method: "GET".into(),
            target: target.into(),
            version: crate::http::Version::Http11,
            headers: Headers::new(),
        }
    }

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
        assert!(e.per_request());
        assert_eq!(e.set_lines(), b"X-Fixed: 5$\r\n");
        let head = request_for("/p");
        let mut variable = Vec::new();
        e.unconditional()
            .render_variable_lines(&Facts::plain(&head), &mut variable);
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
            !edits(&[("X-A", Some("$uri"))]).per_request(),
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
        let head = request_for("/p");
        let facts = Facts::plain(&head);
        let mut now = Vec::new();
        e.unconditional().render_variable_lines(&facts, &mut now);
        assert_eq!(now, b"X-Path: /p\r\n");
        let mut pending = Vec::new();
        e.unconditional().pending(&facts, &mut pending);
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
        assert!(!none
            .unconditional()
            .touches(b"HTTP/1.1 200 OK\r\nServer: x\r\n"));
        let mut h = Headers::new();
        h.push("Server", "x");
        none.unconditional().remove_from(&mut h);
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
        e.unconditional().remove_from(&mut h);
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
        assert!(e.unconditional().touches(head));
        assert!(!e
            .unconditional()
            .touches(b"HTTP/1.1 200 OK\r\nServer-Timing: a\r\n"));
        let mut out = Vec::new();
        e.unconditional().push_kept(&mut out, head, &["x-other"]);
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
            e.unconditional().push_kept(&mut out, head, also);
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
        e.unconditional().remove_read_alike_from(&mut h);
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

    /// `(name, value, condition)` edits, conditions as a key's `if`.
    fn conditional(list: &[(&str, Option<&str>, Option<&str>)]) -> FieldEdits {
        FieldEdits::new(list.iter().map(|(name, value, when)| FieldEdit {
            name: name.to_string(),
            value: value.map(FieldValue::fixed),
            when: when.map(|c| Condition::parse(c).unwrap()),
            on_status: None,
        }))
        .unwrap()
    }

    /// The lines `edits` give a request of `method` for `target` with the
    /// fields `fields`, and whether they take the field `name` away.
    fn applied_to(
        edits: &FieldEdits,
        (method, target): (&str, &str),
        fields: &[(&str, &str)],
        name: &str,
    ) -> (String, bool) {
        let mut headers = Headers::new();
        for (n, v) in fields {
            headers.push(n, v);
        }
        let asked = Asked {
            method,
            target,
            headers: &headers,
            client: "192.0.2.10".parse().unwrap(),
            listener: "127.0.0.1:80".parse().unwrap(),
            https: false,
            geoip: crate::geoip::Geo::default(),
        };
        let applied = edits.applied(edits.choose(&asked, target));
        let head = crate::http::RequestHead {
            method: method.into(),
            target: target.into(),
            version: crate::http::Version::Http11,
            headers: headers.clone(),
        };
        let mut lines = applied.set_lines().to_vec();
        applied.render_variable_lines(&Facts::plain(&head), &mut lines);
        (
            String::from_utf8(lines).unwrap(),
            applied.edits(name.as_bytes()),
        )
    }

    #[test]
    fn of_one_name_the_first_condition_met_applies_else_the_one_without() {
        let e = conditional(&[
            ("X-Frame-Options", Some("DENY"), None),
            ("X-Frame-Options", None, Some("path_beg /embed/")),
            (
                "X-Frame-Options",
                Some("SAMEORIGIN"),
                Some("path_beg /embed/,/partners/"),
            ),
            ("X-Other", Some("1"), None),
        ]);
        assert!(e.per_request());
        // Only the field no condition decides is in every head as it is.
        assert_eq!(e.set_lines(), b"X-Other: 1\r\n");
        let names: Vec<Box<str>> = e.rendered_names().collect();
        assert_eq!(names.len(), 3, "{names:?}");
        let get = |target| applied_to(&e, ("GET", target), &[], "x-frame-options");
        assert_eq!(
            get("/"),
            ("X-Other: 1\r\nX-Frame-Options: DENY\r\n".into(), true)
        );
        // Removed: the first met, though the next is met too.
        assert_eq!(get("/embed/v"), ("X-Other: 1\r\n".into(), true));
        assert_eq!(
            get("/partners/p?x"),
            ("X-Other: 1\r\nX-Frame-Options: SAMEORIGIN\r\n".into(), true)
        );
        // A request no condition was asked of (a malformed one's 400):
        // the one without, in the lines every head gets.
        let none = e.unconditional();
        assert!(none.edits(b"x-frame-options"));
        assert_eq!(none.set_lines(), b"X-Frame-Options: DENY\r\nX-Other: 1\r\n");
        let mut lines = Vec::new();
        let head = request_for("/embed/");
        none.render_variable_lines(&Facts::plain(&head), &mut lines);
        assert_eq!(lines, b"", "nothing rendered twice");
    }

    #[test]
    fn a_field_whose_conditions_are_not_met_is_left_as_it_came() {
        let e = conditional(&[
            ("X-Api", Some("v2"), Some("header X-Version 2")),
            ("Server", None, Some("not client 10.0.0.0/8")),
        ]);
        assert_eq!(e.set_lines(), b"");
        let asked = |fields: &[(&str, &str)], name| applied_to(&e, ("GET", "/"), fields, name);
        assert_eq!(asked(&[], "x-api"), (String::new(), false));
        assert_eq!(
            asked(&[("X-Version", "2")], "x-api"),
            ("X-Api: v2\r\n".into(), true)
        );
        // The client is not in 10/8: the condition holds, the field goes.
        assert_eq!(asked(&[], "server"), (String::new(), true));
        let mut h = Headers::new();
        h.push("X-Api", "v1");
        e.unconditional().remove_from(&mut h);
        assert_eq!(h.len(), 1, "no condition asked: nothing applies");
        assert_eq!(e.value_of("x-api"), None);
    }

    #[test]
    fn a_field_the_status_decides_is_settled_for_each_response() {
        use crate::http::status_rule::StatusTest;
        let on = |negated, ranges: &[(u16, u16)]| {
            StatusRule::new(vec![StatusTest {
                negated,
                ranges: ranges.into(),
            }])
        };
        let edit = |name: &str, value: Option<&str>, when: Option<&str>, on_status| FieldEdit {
            name: name.to_string(),
            value: value.map(FieldValue::fixed),
            when: when.map(|c| Condition::parse(c).unwrap()),
            on_status,
        };
        let e = FieldEdits::new([
            edit("Cache-Control", Some("max-age=60"), None, None),
            edit(
                "Cache-Control",
                Some("no-store"),
                None,
                on(false, &[(404, 404)]),
            ),
            edit("Server", None, None, on(false, &[(500, 599)])),
            edit(
                "X-Api",
                Some("1"),
                Some("path_beg /api"),
                on(true, &[(300, 399)]),
            ),
            edit("X-Fixed", Some("f"), None, None),
        ])
        .unwrap();
        // Only the field nothing decides is in every head as it is.
        assert_eq!(e.set_lines(), b"X-Fixed: f\r\n");
        let headers = Headers::new();
        let asked = |target| Asked {
            method: "GET",
            target,
            headers: &headers,
            client: "192.0.2.10".parse().unwrap(),
            listener: "127.0.0.1:80".parse().unwrap(),
            https: false,
            geoip: crate::geoip::Geo::default(),
        };
        let sent = |target, status| {
            let applied = e.for_response(e.choose(&asked(target), target), status);
            let mut lines = Vec::new();
            applied.push_set_lines(&mut lines);
            (String::from_utf8(lines).unwrap(), applied.edits(b"server"))
        };
        assert_eq!(
            sent("/", 200),
            ("X-Fixed: f\r\nCache-Control: max-age=60\r\n".into(), false)
        );
        assert_eq!(
            sent("/", 404),
            ("X-Fixed: f\r\nCache-Control: no-store\r\n".into(), false)
        );
        assert_eq!(
            sent("/", 503),
            ("X-Fixed: f\r\nCache-Control: max-age=60\r\n".into(), true)
        );
        assert_eq!(
            sent("/api/x", 200),
            (
                "X-Fixed: f\r\nCache-Control: max-age=60\r\nX-Api: 1\r\n".into(),
                false
            )
        );
        assert_eq!(
            sent("/api/x", 301).0,
            "X-Fixed: f\r\nCache-Control: max-age=60\r\n"
        );
        // Nothing of them is rendered as the request is routed, and an
        // answer to a request never routed gets those without a condition
        // on the request, as its status chooses them.
        let routed = e.applied(e.choose(&asked("/api/x"), "/api/x"));
        let head = request_for("/api/x");
        let mut rendered = Vec::new();
        routed.render_variable_lines(&Facts::plain(&head), &mut rendered);
        assert_eq!(rendered, b"");
        let unrouted = |status: Option<u16>| {
            let mut lines = Vec::new();
            match status {
                Some(status) => e.unconditional().at(status).push_set_lines(&mut lines),
                None => e.unconditional().push_set_lines(&mut lines),
            }
            String::from_utf8(lines).unwrap()
        };
        assert_eq!(
            unrouted(Some(404)),
            "X-Fixed: f\r\nCache-Control: no-store\r\n"
        );
        assert_eq!(
            unrouted(Some(400)),
            "X-Fixed: f\r\nCache-Control: max-age=60\r\n"
        );
        assert_eq!(
            unrouted(None),
            "X-Fixed: f\r\nCache-Control: max-age=60\r\n"
        );
        // Its values are fixed: a variable's would be rendered before
        // there is a status to choose it by.
        let varied = FieldEdits::new([
            edit("X-B", Some("a"), None, on(false, &[(200, 200)])),
            FieldEdit {
                value: Some(
                    FieldValue::parse("$uri", crate::config::FieldFamily::Response).unwrap(),
                ),
                ..edit("x-b", None, None, None)
            },
        ]);
        assert!(varied.unwrap_err().contains("without variables"));
    }
}
